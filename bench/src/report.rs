//! The readable table and the target checks.

use std::fmt::Write as _;

use crate::measure::Row;
use crate::workload::{StamperArg, Workload};

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

/// One line per row, times in milliseconds.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let header = [
        "workload",
        "stamper",
        "tasks",
        "fresh",
        "µs/task",
        "noop",
        "µs/task",
        "cold",
        "cold-proc",
        "touch",
        "modify",
        "bu-touch",
        "bu-modify",
        "stat-fl",
        "hash-fl",
        "ninja",
        "save",
        "load",
        "store-MB",
        "peakRSS-MB",
        "B/task",
        "ovh-B/task",
        "gc",
        "gc-removed",
        "pre-gc-MB",
        "post-gc-MB",
        "watch",
        "w-build",
    ];
    let mut lines = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for row in rows {
        let tasks = row.tasks as f64;
        let workload = match row.width {
            Some(w) => format!("{}(W={w})", row.workload.name()),
            None => row.workload.name().to_string(),
        };
        lines.push(vec![
            workload,
            row.stamper.name().to_string(),
            row.tasks.to_string(),
            format!("{:.1}", row.fresh_ms),
            format!("{:.3}", row.fresh_ms * 1e3 / tasks),
            format!("{:.2}", row.noop_ms),
            format!("{:.3}", row.noop_ms * 1e3 / tasks),
            opt(row.noop_cold_ms),
            opt(row.noop_cold_process_ms),
            row.touch_ms.map_or_else(|| "-".to_string(), |v| format!("{v:.2}")),
            row.modify_ms.map_or_else(|| "-".to_string(), |v| format!("{v:.2}")),
            row.bottom_up_touch_ms
                .map_or_else(|| "-".to_string(), |v| format!("{v:.3}")),
            row.bottom_up_modify_ms
                .map_or_else(|| "-".to_string(), |v| format!("{v:.3}")),
            format!("{:.2}", row.stat_floor_ms),
            format!("{:.2}", row.hash_floor_ms),
            opt(row.ninja_noop_ms),
            opt(row.save_ms),
            opt(row.load_ms),
            row.store_bytes
                .map_or_else(|| "-".to_string(), |b| format!("{:.2}", b as f64 / 1e6)),
            format!("{:.1}", row.peak_rss_bytes as f64 / 1e6),
            format!("{:.0}", row.bytes_per_task),
            format!("{:.0}", row.overhead_bytes_per_task),
            format!("{:.1}", row.gc_ms),
            format!("{}/{}", row.gc_removed_tasks, row.gc_tasks_before),
            format!("{:.2}", row.store_bytes_before_gc as f64 / 1e6),
            format!("{:.2}", row.store_bytes_after_gc as f64 / 1e6),
            opt(row.watch_latency_ms),
            opt(row.watch_build_ms),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        writeln!(out, "| {} |", cells.join(" | ")).expect("write to String");
        if i == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    if c < 2 {
                        "-".repeat(*w)
                    } else {
                        format!("{}:", "-".repeat(w - 1))
                    }
                })
                .collect();
            writeln!(out, "| {} |", rule.join(" | ")).expect("write to String");
        }
    }
    writeln!(
        out,
        "\nTimes in ms (medians). cold = load + build inside a new process; cold-proc = that process's whole wall \
         time (like ninja's). B/task = anonymous RSS growth over the fresh build / tasks (the heap, not the binary's code \
         pages); ovh = less the tasks' and outputs' own \
         sizes. gc = collect_garbage of a store with about half the tasks dead (gc-removed = removed/tasks); \
         pre-gc-MB, post-gc-MB = that store saved before and after. watch = from writing one input to the watcher \
         delivering the rebuilt root output (debounce 50 ms), median of 20 edits; w-build = those builds alone."
    )
    .expect("write to String");
    out
}

fn find(rows: &[Row], workload: Workload, stamper: StamperArg) -> Option<&Row> {
    rows.iter()
        .filter(|r| r.workload == workload && r.stamper == stamper)
        .max_by_key(|r| r.n)
}

/// The targets, each with its ratio and PASS/FAIL, for the rows present.
pub fn targets(rows: &[Row]) -> String {
    let mut out = String::from("\nTargets:\n");
    let mut line = |name: &str, measured: String, pass: bool| {
        let verdict = if pass { "PASS" } else { "FAIL" };
        writeln!(out, "- [{verdict}] {name}: {measured}").expect("write to String");
    };
    if let Some(r) = find(rows, Workload::Wide, StamperArg::Modified) {
        let ratio = r.noop_ms / r.stat_floor_ms;
        line(
            &format!("wide {} Modified no-op ≤ 1.5x stat floor", r.n),
            format!("{:.2} ms / {:.2} ms = {ratio:.2}x", r.noop_ms, r.stat_floor_ms),
            ratio <= 1.5,
        );
    }
    for r in rows
        .iter()
        .filter(|r| r.workload == Workload::Chain && r.stamper == StamperArg::Modified)
    {
        let per_task = r.noop_ms * 1e3 / r.tasks as f64;
        line(
            &format!("chain {} no-op < 0.1 µs/task", r.n),
            format!("{per_task:.4} µs/task"),
            per_task < 0.1,
        );
    }
    if let Some(r) = find(rows, Workload::Wide, StamperArg::Modified) {
        match (r.noop_cold_process_ms, r.noop_cold_ms, r.ninja_noop_ms) {
            (Some(process), Some(inside), Some(ninja)) => line(
                &format!("wide {} new-process no-op ≤ 0.5x ninja's", r.n),
                format!(
                    "whole process {process:.1} ms / ninja {ninja:.1} ms = {:.2}x (load + build inside: {inside:.1} ms \
                     = {:.2}x)",
                    process / ninja,
                    inside / ninja
                ),
                process <= 0.5 * ninja,
            ),
            _ => line(
                "wide new-process no-op ≤ 0.5x ninja's",
                "not measured".to_string(),
                false,
            ),
        }
    }
    if let Some(r) = find(rows, Workload::Trivial, StamperArg::Modified) {
        let per_task = r.fresh_ms * 1e3 / r.tasks as f64;
        line(
            &format!("fresh build overhead per trivial task ({}) < 0.5 µs", r.n),
            format!("{per_task:.3} µs/task"),
            per_task < 0.5,
        );
    }
    for stamper in [StamperArg::Modified, StamperArg::Hash] {
        if let (Some(l), Some(w)) = (
            find(rows, Workload::Lattice, stamper),
            find(rows, Workload::Wide, stamper),
        ) {
            let lattice = l.fresh_ms * 1e3 / l.tasks as f64;
            let wide = w.fresh_ms * 1e3 / w.tasks as f64;
            line(
                &format!(
                    "lattice {} fresh per task within 2x wide {} ({})",
                    l.n,
                    w.n,
                    stamper.name()
                ),
                format!("{lattice:.3} / {wide:.3} µs/task = {:.2}x", lattice / wide),
                lattice <= 2.0 * wide,
            );
        }
    }
    // Bottom-up builds (issue 10).
    if let Some(r) = find(rows, Workload::Wide, StamperArg::Modified) {
        if let (Some(bottom_up), Some(top_down)) = (r.bottom_up_touch_ms, r.touch_ms) {
            let ratio = bottom_up / top_down;
            line(
                &format!("wide {} Modified bottom-up touch ≤ 0.001x top-down touch", r.n),
                format!("{bottom_up:.4} ms / {top_down:.2} ms = {ratio:.5}x"),
                ratio <= 0.001,
            );
        }
    }
    for r in rows {
        if let (Some(bottom_up), Some(top_down)) = (r.bottom_up_modify_ms, r.modify_ms) {
            let limit = if r.workload == Workload::Chain { 1.1 } else { 1.0 };
            line(
                &format!(
                    "{} {} {} bottom-up modify ≤ {limit}x top-down modify",
                    r.workload.name(),
                    r.n,
                    r.stamper.name()
                ),
                format!("{bottom_up:.3} ms / {top_down:.3} ms = {:.3}x", bottom_up / top_down),
                bottom_up <= limit * top_down,
            );
        }
    }
    // Watch mode (issue 12): flat in the project's size, the debounce plus a few milliseconds.
    for r in rows {
        if let (Some(latency), Some(debounce), Some(build)) =
            (r.watch_latency_ms, r.watch_debounce_ms, r.watch_build_ms)
        {
            line(
                &format!("wide {} {} watch latency ≤ debounce + 5 ms", r.n, r.stamper.name()),
                format!(
                    "{latency:.1} ms with a {debounce:.0} ms debounce (the build itself: {build:.1} ms; beyond debounce \
                     and build: {:.1} ms)",
                    latency - debounce - build
                ),
                latency <= debounce + 5.0,
            );
        }
    }
    let mut worst: Option<&Row> = None;
    for r in rows {
        if worst.is_none_or(|w| r.overhead_bytes_per_task > w.overhead_bytes_per_task) {
            worst = Some(r);
        }
    }
    if let Some(w) = worst {
        line(
            "memory ≤ 300 bytes/task beyond tasks' and outputs' own sizes",
            format!(
                "worst {} {} n={}: {:.0} B/task ({:.0} B/task total, {:.0} own task, {} output)",
                w.workload.name(),
                w.stamper.name(),
                w.n,
                w.overhead_bytes_per_task,
                w.bytes_per_task,
                w.task_own_bytes,
                w.output_bytes
            ),
            w.overhead_bytes_per_task <= 300.0,
        );
    }
    if let Some(r) = rows.iter().find(|r| r.workload == Workload::Chain && r.n >= 1_000_000) {
        line(
            &format!("chain of {} builds and rebuilds", r.n),
            format!(
                "fresh {:.0} ms, no-op {:.0} ms, modify {}",
                r.fresh_ms,
                r.noop_ms,
                opt(r.modify_ms)
            ),
            true,
        );
    }
    out
}
