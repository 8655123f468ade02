//! One phase of one workload, run inside `profile_phase` so that a profiler can collect just that phase.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use pie::Pie;

use crate::workload::{generate_inputs, input_path, set_workspace, BenchTask, Shape, StamperArg};

/// What is profiled.
#[derive(Copy, Clone, Eq, PartialEq, Debug, clap::ValueEnum)]
pub enum Phase {
    /// The fresh build (repeated with a new `Pie` each time).
    Fresh,
    /// A no-op rebuild.
    Noop,
    /// A rebuild after modifying one input.
    Modify,
    /// A bottom-up build (`update_affected_by`) after modifying one input, in `profile_phase_bottom_up`.
    BottomUpModify,
    /// A bottom-up build after touching one input (a new modification time, the same bytes).
    BottomUpTouch,
    /// `collect_garbage(false)` with about half the tasks dead (see `Shape::half_root`), in `profile_phase_gc`;
    /// each round first builds a new `Pie` with the whole and the half root and unobserves the whole one.
    Gc,
}

/// Runs `phase` `repeat` times and prints the total time of the profiled part. With `group`, the root of `wide`
/// requires its readers with one `require_tasks`, as in the parallel figures.
pub fn run(
    shape: Shape,
    stamper: StamperArg,
    dir: &Path,
    phase: Phase,
    repeat: u32,
    threads: usize,
    group: bool,
) -> io::Result<()> {
    let new_pie = || {
        let mut pie: Pie<BenchTask, u64> = Pie::default();
        pie.set_threads(threads);
        pie
    };
    set_workspace(dir);
    generate_inputs(&shape)?;
    let root = match shape.root(stamper.stamper()) {
        BenchTask::WideRoot(n, stamper) if group => BenchTask::WideRootAll(n, stamper),
        root => root,
    };
    let mut total = Duration::ZERO;
    if phase == Phase::Gc {
        let roots = [root.clone(), shape.half_root(stamper.stamper())];
        for _ in 0..repeat {
            let mut pie = new_pie();
            pie.new_session().require_all(&roots);
            pie.unobserve(&root);
            let start = Instant::now();
            std::hint::black_box(profile_phase_gc(&mut pie));
            total += start.elapsed();
        }
        return report(total, repeat);
    }
    let mut pie = new_pie();
    if phase != Phase::Fresh {
        pie.new_session().require(&root);
    }
    for round in 0..repeat {
        let modify = matches!(phase, Phase::Modify | Phase::BottomUpModify);
        let touch = phase == Phase::BottomUpTouch;
        if (modify || touch) && shape.inputs() > 0 {
            let path = input_path(shape.changed_input());
            if modify {
                fs::write(&path, format!("modified {round}\n"))?;
            }
            fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(SystemTime::now() + Duration::from_secs(u64::from(round) + 1))?;
        }
        if phase == Phase::Fresh {
            pie = new_pie();
        }
        let start = Instant::now();
        if matches!(phase, Phase::BottomUpModify | Phase::BottomUpTouch) {
            profile_phase_bottom_up(&mut pie, &input_path(shape.changed_input()));
        } else {
            std::hint::black_box(profile_phase(&mut pie, &root));
        }
        total += start.elapsed();
    }
    report(total, repeat)
}

/// Prints the time per run and the peak RSS.
fn report(total: Duration, repeat: u32) -> io::Result<()> {
    println!(
        "{:.3} ms per run; peak RSS {:.1} MB",
        total.as_secs_f64() * 1e3 / f64::from(repeat.max(1)),
        crate::measure::proc_status_bytes("VmHWM") as f64 / 1e6
    );
    Ok(())
}

#[inline(never)]
fn profile_phase_gc(pie: &mut Pie<BenchTask, u64>) -> usize {
    pie.collect_garbage(false).removed_tasks
}

#[inline(never)]
fn profile_phase_bottom_up(pie: &mut Pie<BenchTask, u64>, changed: &Path) {
    pie.new_session().update_affected_by([changed]);
}

#[inline(never)]
fn profile_phase(pie: &mut Pie<BenchTask, u64>, root: &BenchTask) -> u64 {
    pie.new_session().require(root)
}
