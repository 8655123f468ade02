//! Garbage-collection figures: `Pie::collect_garbage` on a store in which about half the tasks are dead.
//!
//! The workload is built with two roots, the whole workload ([`Shape::root`]) and its lower half
//! ([`Shape::half_root`], whose tasks are tasks of the whole); then the whole root is unobserved, so everything
//! only it reaches (about half the tasks) is dead. That store is saved once; each timed round loads a copy and
//! times `collect_garbage(false)` alone.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use pie::stamp::FileStamper;
use pie::Pie;

use crate::persist::Executed;
use crate::workload::{BenchTask, Shape};

/// Rounds of {load a copy, collect garbage}; the median is reported.
const REPEAT: usize = 5;

/// What garbage collection of the half-dead store measured.
pub struct GcFigures {
    /// Median time of `collect_garbage(false)`, in milliseconds.
    pub gc_ms: f64,
    /// Tasks in the store before collecting.
    pub tasks_before: usize,
    /// Tasks removed.
    pub removed_tasks: usize,
    /// Size of the saved store before collecting.
    pub store_bytes_before: u64,
    /// Size of the saved store after collecting.
    pub store_bytes_after: u64,
}

/// Builds `shape` with its whole and half roots, unobserves the whole one, and measures collecting the dead half.
/// Stores are written in `dir`.
pub fn measure(shape: &Shape, stamper: FileStamper, dir: &Path) -> io::Result<GcFigures> {
    let whole = shape.root(stamper);
    let half = shape.half_root(stamper);
    let before = dir.join("gc-before.pie");
    let after = dir.join("gc-after.pie");

    let mut pie: Pie<BenchTask, u64> = Pie::default();
    let outputs = pie.new_session().require_all(&[whole.clone(), half.clone()]);
    pie.unobserve(&whole);
    if pie.roots().ne([&half]) {
        return Err(io::Error::other(
            "after unobserving the whole workload, its half should be the one root",
        ));
    }
    let tasks_before = pie.task_count();
    pie.save(&before).map_err(io::Error::other)?;
    drop(pie);

    let mut times = Vec::with_capacity(REPEAT);
    let mut removed_tasks = None;
    for round in 0..REPEAT {
        let mut pie: Pie<BenchTask, u64, Executed> =
            Pie::load(&before, Executed::default()).map_err(io::Error::other)?;
        let start = Instant::now();
        let garbage = pie.collect_garbage(false);
        times.push(start.elapsed());
        if removed_tasks.is_some_and(|removed| removed != garbage.removed_tasks) {
            return Err(io::Error::other(
                "collecting garbage removed a different number of tasks",
            ));
        }
        removed_tasks = Some(garbage.removed_tasks);
        if round == 0 {
            pie.save(&after).map_err(io::Error::other)?;
            // What is left is the half workload, whole and up to date.
            pie.check_invariants();
            let output = pie.new_session().require(&half);
            if output != outputs[1] || pie.tracker().0 || pie.task_count() != tasks_before - garbage.removed_tasks {
                return Err(io::Error::other(
                    "after collecting garbage, the half workload is not an up-to-date no-op",
                ));
            }
        }
    }
    times.sort();
    Ok(GcFigures {
        gc_ms: ms(times[times.len() / 2]),
        tasks_before,
        removed_tasks: removed_tasks.unwrap_or(0),
        store_bytes_before: fs::metadata(&before)?.len(),
        store_bytes_after: fs::metadata(&after)?.len(),
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
