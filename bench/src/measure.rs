//! Measuring one workload with one stamper, in a process of its own (so that RSS figures are its own).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use pie::Pie;
use serde::{Deserialize, Serialize};

use crate::ninja;
use crate::workload::{generate_inputs, input_path, set_workspace, BenchTask, Shape, StamperArg, Workload};

/// The figures of one workload with one stamper. Times are medians, in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The workload's shape.
    pub workload: Workload,
    /// The stamper of every file dependency.
    pub stamper: StamperArg,
    /// The requested size.
    pub n: u32,
    /// Lattice width (`null` for other workloads).
    pub width: Option<u32>,
    /// Tasks in the store after the fresh build (including roots and input readers).
    pub tasks: usize,
    /// Input files.
    pub files: u32,
    /// Median of up to five fresh builds, each with a new `Pie` (only the first when it took 3 s or more).
    pub fresh_ms: f64,
    /// Rebuild with nothing changed, in the same process (nine rounds alternating with the floors).
    pub noop_ms: f64,
    /// New process: load the store, then build; measured inside the child.
    pub noop_cold_ms: Option<f64>,
    /// New process: the child's whole wall time, from spawn to exit (what ninja's figure is).
    pub noop_cold_process_ms: Option<f64>,
    /// Load time inside the cold child.
    pub noop_cold_load_ms: Option<f64>,
    /// Rebuild after giving one input a new mtime (same bytes); `null` when the workload has no input files.
    pub touch_ms: Option<f64>,
    /// Rebuild after changing one input's bytes; `null` when the workload has no input files.
    pub modify_ms: Option<f64>,
    /// The `touch_ms` edit, rebuilt bottom-up: a new session, `update_affected_by([changed])`, then `require` of
    /// the root (which returns at once). Rounds alternate with top-down ones.
    pub bottom_up_touch_ms: Option<f64>,
    /// The `modify_ms` edit, rebuilt bottom-up as for `bottom_up_touch_ms`.
    pub bottom_up_modify_ms: Option<f64>,
    /// A loop of `fs::metadata` (and the mtime) over the inputs: the floor of a Modified no-op.
    pub stat_floor_ms: f64,
    /// A loop that opens, reads and blake3-hashes the inputs: the floor of a Hash no-op.
    pub hash_floor_ms: f64,
    /// `null` when ninja is not installed or the workload is not `wide`.
    pub ninja_noop_ms: Option<f64>,
    /// `Pie::save` of the store after the builds above.
    pub save_ms: Option<f64>,
    /// `Pie::load` of that store, in this process.
    pub load_ms: Option<f64>,
    /// Size of the store file.
    pub store_bytes: Option<u64>,
    /// VmHWM of the measuring process.
    pub peak_rss_bytes: u64,
    /// Anonymous RSS (see [`anonymous_rss_bytes`]) after the fresh build minus the same just before the `Pie` was
    /// created.
    pub rss_growth_bytes: u64,
    /// `rss_growth_bytes / tasks`.
    pub bytes_per_task: f64,
    /// Average bytes a task value owns (inline size plus heap).
    pub task_own_bytes: f64,
    /// The size of an output.
    pub output_bytes: usize,
    /// `bytes_per_task` less the tasks' and outputs' own sizes: pie's overhead per task.
    pub overhead_bytes_per_task: f64,
    /// `Pie::collect_garbage(false)` of a store in which about half the tasks are dead (see `Shape::half_root`);
    /// median of five, each on a freshly loaded copy.
    pub gc_ms: f64,
    /// Tasks in that store before collecting (the workload's tasks, plus the half root where it is a task of its
    /// own).
    pub gc_tasks_before: usize,
    /// Tasks the collection removed.
    pub gc_removed_tasks: usize,
    /// Size of that store, saved before collecting.
    pub store_bytes_before_gc: u64,
    /// Size of that store, saved after collecting.
    pub store_bytes_after_gc: u64,
    /// `wide` only: the debounce of the watch figures (see `crate::watch`).
    pub watch_debounce_ms: Option<f64>,
    /// `wide` only: from writing one input to a `pie::watch::Watcher` delivering the rebuilt root output, median
    /// of 20 edits.
    pub watch_latency_ms: Option<f64>,
    /// `wide` only: the median duration of those builds themselves (the bottom-up session).
    pub watch_build_ms: Option<f64>,
}

/// How many times each repeated figure is taken (the median is reported).
const REPEAT: usize = 5;
/// Rounds of {no-op, stat floor, hash floor}.
const NOOP_REPEAT: usize = 9;
/// Fresh builds are repeated (with a new `Pie`) while the first took less than this.
const FRESH_REPEAT_BELOW: Duration = Duration::from_secs(3);
/// Rounds of {pie's new-process no-op, ninja's no-op}.
const COLD_REPEAT: usize = 5;

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

pub fn middle(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let result = f();
    (result, start.elapsed())
}

/// The resident memory that the process allocated (`RssAnon`: heap, stacks, anonymous maps), or all of it (`VmRSS`)
/// where the system does not tell them apart. Not the pages of the executable that a first build faults in: they
/// are file-backed, do not grow with the tasks, and vary by a few hundred KiB from run to run and from build to
/// build of the same code (with the binary's layout), which at 100k tasks was 3-10 bytes per task of noise.
pub fn anonymous_rss_bytes() -> u64 {
    match proc_status_bytes("RssAnon") {
        0 => proc_status_bytes("VmRSS"),
        anonymous => anonymous,
    }
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`); 0 where unavailable.
pub fn proc_status_bytes(field: &str) -> u64 {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Sets the modification time of `path` to a new value without changing its bytes.
fn touch(path: &Path, step: u64) -> io::Result<()> {
    let file = File::options().write(true).open(path)?;
    file.set_modified(SystemTime::now() + Duration::from_secs(step))
}

/// Measures `shape` with `stamper` in this process, using the folder `dir`.
pub fn run(shape: Shape, stamper_arg: StamperArg, dir: &Path, exe: &Path) -> io::Result<Row> {
    set_workspace(dir);
    let stamper = stamper_arg.stamper();
    let inputs = generate_inputs(&shape)?;
    let root = shape.root(stamper);

    // Fresh build, and its memory: growth of the anonymous RSS over the moment before the `Pie` exists.
    let rss_before = anonymous_rss_bytes();
    let mut pie: Pie<BenchTask, u64> = Pie::default();
    let (expected, fresh) = timed(|| pie.new_session().require(&root));
    let rss_after = anonymous_rss_bytes();
    let tasks = pie.task_count();

    // No-op rebuilds and the floors in alternation, so that a load change on the machine affects both alike.
    let (mut noop, mut stat_floor, mut hash_floor) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..NOOP_REPEAT {
        let (output, time) = timed(|| pie.new_session().require(&root));
        assert_eq!(output, expected, "no-op rebuild changed the output");
        noop.push(ms(time));
        stat_floor.push(ms(timed(|| stat_all(&inputs)).1));
        hash_floor.push(ms(timed(|| hash_all(&inputs)).1));
    }
    let (noop_ms, stat_floor_ms, hash_floor_ms) = (middle(noop), middle(stat_floor), middle(hash_floor));

    let (touch_ms, modify_ms, bottom_up_touch_ms, bottom_up_modify_ms) = if inputs.is_empty() {
        (None, None, None, None)
    } else {
        let changed = input_path(shape.changed_input());
        let original_mtime = fs::metadata(&changed)?.modified()?;
        let mut step = 0;
        // Each round: the edit rebuilt top-down, then the same kind of edit rebuilt bottom-up.
        let top_down = |pie: &mut Pie<BenchTask, u64>| timed(|| pie.new_session().require(&root));
        let bottom_up = |pie: &mut Pie<BenchTask, u64>| {
            timed(|| {
                let mut session = pie.new_session();
                session.update_affected_by([&changed]);
                session.require(&root)
            })
        };
        let (mut touch_td, mut touch_bu) = (Vec::new(), Vec::new());
        for _ in 0..REPEAT {
            step += 1;
            touch(&changed, step)?;
            let (expected_output, time) = top_down(&mut pie);
            touch_td.push(ms(time));
            step += 1;
            touch(&changed, step)?;
            let (output, time) = bottom_up(&mut pie);
            assert_eq!(output, expected_output, "bottom-up and top-down rebuilds disagree");
            touch_bu.push(ms(time));
        }
        let original = fs::read(&changed)?;
        let mut version = 0;
        let (mut modify_td, mut modify_bu) = (Vec::new(), Vec::new());
        for _ in 0..REPEAT {
            for bottom_up_round in [false, true] {
                version += 1;
                step += 1;
                fs::write(&changed, format!("modified {version}\n"))?;
                touch(&changed, step)?; // a distinct mtime even on a coarse clock
                if bottom_up_round {
                    modify_bu.push(ms(bottom_up(&mut pie).1));
                } else {
                    modify_td.push(ms(top_down(&mut pie).1));
                }
            }
        }
        let (touch_ms, modify_ms) = (middle(touch_td), middle(modify_td));
        let (bottom_up_touch_ms, bottom_up_modify_ms) = (middle(touch_bu), middle(modify_bu));
        // Back to the original bytes and mtime, so that the stored outputs match the inputs for the save below and
        // ninja's outputs are newer than every input again.
        fs::write(&changed, original)?;
        File::options()
            .write(true)
            .open(&changed)?
            .set_modified(original_mtime)?;
        pie.new_session().require(&root);
        (
            Some(touch_ms),
            Some(modify_ms),
            Some(bottom_up_touch_ms),
            Some(bottom_up_modify_ms),
        )
    };

    let persisted = Some(crate::persist::measure(&pie, dir)?);
    let ninja_dir = if shape.workload == Workload::Wide {
        ninja::prepare(dir, &inputs)?
    } else {
        None
    };
    // pie's new-process no-op and ninja's in alternation, so that a load change on the machine affects both alike.
    let mut cold_runs = Vec::new();
    let mut ninja_runs = Vec::new();
    if let Some(p) = &persisted {
        for _ in 0..COLD_REPEAT {
            cold_runs.push(cold_noop(exe, &shape, stamper_arg, dir, &p.store)?);
            if let Some(ninja_dir) = &ninja_dir {
                ninja_runs.push(ninja::noop_once(ninja_dir)?);
            }
        }
    }
    cold_runs.sort_by(|a, b| a.build_ms.total_cmp(&b.build_ms));
    let cold = (!cold_runs.is_empty()).then(|| cold_runs.swap_remove(cold_runs.len() / 2));
    let ninja_noop_ms = (!ninja_runs.is_empty()).then(|| middle(ninja_runs));

    let peak_rss_bytes = proc_status_bytes("VmHWM");

    // More fresh builds for a stable median (after the peak RSS was read, one `Pie` at a time).
    drop(pie);
    let mut fresh_runs = vec![ms(fresh)];
    if fresh < FRESH_REPEAT_BELOW {
        for _ in 0..REPEAT - 1 {
            let mut pie: Pie<BenchTask, u64> = Pie::default();
            fresh_runs.push(ms(timed(|| pie.new_session().require(&root)).1));
        }
    }

    // Watch mode, from the saved store (it edits inputs, so after every figure that reads them but the last).
    let watch = match (&persisted, shape.workload) {
        (Some(p), Workload::Wide) => Some(crate::watch::measure(&shape, stamper, &p.store)?),
        _ => None,
    };

    // Garbage collection last, so that nothing above is affected by it.
    let gc = crate::gc::measure(&shape, stamper, dir)?;

    let rss_growth_bytes = rss_after.saturating_sub(rss_before);
    let bytes_per_task = rss_growth_bytes as f64 / tasks as f64;
    let task_own_bytes = own_task_bytes(&shape, stamper, &root);
    let output_bytes = std::mem::size_of::<u64>();
    Ok(Row {
        workload: shape.workload,
        stamper: stamper_arg,
        n: shape.n,
        width: (shape.workload == Workload::Lattice).then_some(shape.width),
        tasks,
        files: shape.inputs(),
        fresh_ms: middle(fresh_runs),
        noop_ms,
        noop_cold_ms: cold.as_ref().map(|c| c.build_ms),
        noop_cold_process_ms: cold.as_ref().map(|c| c.process_ms),
        noop_cold_load_ms: cold.as_ref().map(|c| c.load_ms),
        touch_ms,
        modify_ms,
        bottom_up_touch_ms,
        bottom_up_modify_ms,
        stat_floor_ms,
        hash_floor_ms,
        ninja_noop_ms,
        save_ms: persisted.as_ref().map(|p| p.save_ms),
        load_ms: persisted.as_ref().map(|p| p.load_ms),
        store_bytes: persisted.as_ref().map(|p| p.store_bytes),
        peak_rss_bytes,
        rss_growth_bytes,
        bytes_per_task,
        task_own_bytes,
        output_bytes,
        overhead_bytes_per_task: bytes_per_task - task_own_bytes - output_bytes as f64,
        gc_ms: gc.gc_ms,
        gc_tasks_before: gc.tasks_before,
        gc_removed_tasks: gc.removed_tasks,
        store_bytes_before_gc: gc.store_bytes_before,
        store_bytes_after_gc: gc.store_bytes_after,
        watch_debounce_ms: watch.as_ref().map(|_| crate::watch::DEBOUNCE.as_secs_f64() * 1e3),
        watch_latency_ms: watch.as_ref().map(|w| w.latency_ms),
        watch_build_ms: watch.as_ref().map(|w| w.build_ms),
    })
}

/// The average inline plus heap size of the workload's task values.
fn own_task_bytes(shape: &Shape, stamper: pie::stamp::FileStamper, root: &BenchTask) -> f64 {
    let inline = std::mem::size_of::<BenchTask>() as f64;
    let reads = match shape.workload {
        Workload::Trivial => 0,
        _ => shape.inputs(),
    };
    let sample = BenchTask::Read(input_path(shape.changed_input()), stamper);
    let heap = reads as f64 * sample.heap_bytes() as f64 + root.heap_bytes() as f64;
    let tasks = match shape.workload {
        Workload::Trivial | Workload::Wide => shape.n as f64 + 1.0,
        Workload::Chain => shape.n as f64 + 1.0,
        Workload::Lattice => (shape.n / shape.width.max(1)).max(1) as f64 * shape.width.min(shape.n) as f64 + 1.0,
    };
    inline + heap / tasks
}

/// The stat floor: one `fs::metadata` (and its mtime) per input.
pub fn stat_all(inputs: &[PathBuf]) -> u64 {
    let mut sum = 0u64;
    for path in inputs {
        if let Ok(time) = fs::metadata(path).and_then(|m| m.modified()) {
            sum = sum.wrapping_add(
                time.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            );
        }
    }
    std::hint::black_box(sum)
}

/// The hash floor: read and blake3-hash every input.
fn hash_all(inputs: &[PathBuf]) -> u64 {
    let mut sum = 0u64;
    for path in inputs {
        if let Ok(mut file) = File::open(path) {
            let mut hasher = blake3::Hasher::new();
            let mut buffer = [0u8; 8192];
            while let Ok(read) = file.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
            sum = sum.wrapping_add(u64::from(hasher.finalize().as_bytes()[0]));
        }
    }
    std::hint::black_box(sum)
}

/// What the cold child measured, and its wall time as seen from here.
struct Cold {
    load_ms: f64,
    build_ms: f64,
    process_ms: f64,
}

/// What the cold child prints.
#[derive(Serialize, Deserialize)]
pub struct ColdReport {
    /// `Pie::load` alone.
    pub load_ms: f64,
    /// Load plus build.
    pub total_ms: f64,
    /// Whether any task executed (then the store was not up to date, and the figure is no no-op).
    pub executed: bool,
}

/// One no-op in a new process: the child loads the store and builds.
fn cold_noop(exe: &Path, shape: &Shape, stamper: StamperArg, dir: &Path, store: &Path) -> io::Result<Cold> {
    let start = Instant::now();
    let output = Command::new(exe)
        .arg("cold-child")
        .args(["--workload", shape.workload.name()])
        .args(["--n", &shape.n.to_string()])
        .args(["--width", &shape.width.to_string()])
        .args(["--stamper", stamper.name()])
        .arg("--dir")
        .arg(dir)
        .arg("--store")
        .arg(store)
        .output()?;
    let process_ms = ms(start.elapsed());
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "cold child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let report: ColdReport = serde_json::from_slice(&output.stdout).map_err(io::Error::other)?;
    if report.executed {
        return Err(io::Error::other(
            "the cold no-op rebuild executed tasks: the loaded store is not up to date",
        ));
    }
    Ok(Cold {
        load_ms: report.load_ms,
        build_ms: report.total_ms,
        process_ms,
    })
}
