//! `bench parallel`: the figures of parallel builds, as ratios of a build with `--threads N` to the same build on
//! one thread, measured in alternation within one run (so that a load change on the machine affects both alike).
//!
//! - `cpu`: `n` independent tasks of about 100 µs of hashing in memory each, required with one `require_tasks`;
//!   fresh builds. Target: 2 threads ≤ 0.56× of 1 thread.
//! - `wide`: `n` readers of one file each, required with one `require_tasks`. Fresh builds with Hash stamps
//!   (target: 2 threads ≤ 0.65× of 1 thread), and no-op rebuilds with Modified stamps against the stat floor
//!   (target: 2 threads ≤ 0.75× of the floor).
//! - `wide hash floor`: the file work of the fresh `wide` Hash build without pie (per input what the build asks of
//!   the system: open, fstat, a read from offset 0 hashed with blake3, the reader's own reads, close), on one
//!   thread and on N threads taking contiguous runs of the inputs: how far the file work itself scales on this
//!   machine (no target). From it, the *bound* of the fresh build's ratio: its N-thread time if pie's own work
//!   (the 1-thread build's time beyond the 1-thread floor and the root's own code) divided perfectly over the
//!   threads. The root's own code (making the list of its readers, before its `require_tasks`) runs on one thread
//!   whatever the threads, so no engine divides it.
//! - `wide roots`: the same readers as roots of the session (`Session::require_all`), no-op rebuilds with Modified
//!   stamps against the stat floor: the checks of independent roots (no target).
//! - `cpu bottom-up`: the `cpu` tasks, each reading an input first, required with one `require_tasks`; every input
//!   changes, and a bottom-up build (`update_affected_by`) brings them up to date (no target: the figure shows
//!   that bottom-up builds use the threads too).
//! - `cpu bottom-up, cut off`: the same with tasks whose outputs do not change, so that their requirer never
//!   executes again: the bottom-up build takes every one of them from its queue.
//! - `cpu bottom-up, roots`: the cut-off tasks required as roots of the session (`Session::require_all`), without a
//!   task that requires them.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use pie::stamp::FileStamper;
use pie::Pie;
use serde::Serialize;

use crate::measure::{middle, ms, stat_all, timed};
use crate::workload::{cpu_work, digest, generate_inputs, set_workspace, wide_readers, BenchTask, Shape, Workload};

/// Rounds of each alternation.
const ROUNDS: usize = 5;

/// The parallel figures of one run.
#[derive(Serialize, Debug)]
pub struct ParallelRow {
    pub threads: usize,
    pub cpu_n: u32,
    pub wide_n: u32,
    /// One `Cpu` task's work, outside pie.
    pub cpu_task_us: f64,
    pub cpu_fresh_1_ms: f64,
    pub cpu_fresh_n_ms: f64,
    pub wide_hash_fresh_1_ms: f64,
    pub wide_hash_fresh_n_ms: f64,
    pub wide_hash_floor_1_ms: f64,
    pub wide_hash_floor_n_ms: f64,
    /// The root's own code in the fresh `wide` build: making the list of its readers (and dropping it).
    pub wide_root_code_ms: f64,
    pub wide_modified_noop_1_ms: f64,
    pub wide_modified_noop_n_ms: f64,
    pub stat_floor_ms: f64,
    pub wide_roots_noop_1_ms: f64,
    pub wide_roots_noop_n_ms: f64,
    pub cpu_bottom_up_1_ms: f64,
    pub cpu_bottom_up_n_ms: f64,
    pub cpu_cut_off_1_ms: f64,
    pub cpu_cut_off_n_ms: f64,
    pub cpu_roots_1_ms: f64,
    pub cpu_roots_n_ms: f64,
}

fn pie_with(threads: usize) -> Pie<BenchTask, u64> {
    let mut pie = Pie::default();
    pie.set_threads(threads);
    pie
}

/// A fresh build of `root` with a new `Pie` on `threads` threads, in ms.
fn fresh(root: &BenchTask, threads: usize) -> f64 {
    let mut pie = pie_with(threads);
    ms(timed(|| pie.new_session().require(root)).1)
}

/// Measures the parallel figures in the folder `dir`.
pub fn run(threads: usize, cpu_n: u32, wide_n: u32, dir: &Path) -> io::Result<ParallelRow> {
    set_workspace(dir);
    let start = Instant::now();
    for i in 0..1000 {
        cpu_work(i);
    }
    let cpu_task_us = start.elapsed().as_secs_f64() * 1e6 / 1000.0;

    let cpu = BenchTask::CpuRoot(cpu_n);
    let (mut cpu_1, mut cpu_n_ms) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        cpu_1.push(fresh(&cpu, 1));
        cpu_n_ms.push(fresh(&cpu, threads));
    }

    let shape = Shape {
        workload: Workload::Wide,
        n: wide_n,
        width: 1,
    };
    let inputs = generate_inputs(&shape)?;
    let hash_root = BenchTask::WideRootAll(wide_n, FileStamper::Hash);
    let (mut hash_1, mut hash_n) = (Vec::new(), Vec::new());
    let (mut hash_floor_1, mut hash_floor_n, mut root_code) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        hash_1.push(fresh(&hash_root, 1));
        hash_n.push(fresh(&hash_root, threads));
        hash_floor_1.push(hash_floor(&inputs, 1).1);
        hash_floor_n.push(hash_floor(&inputs, threads).1);
        root_code.push(ms(timed(|| {
            drop(std::hint::black_box(wide_readers(wide_n, FileStamper::Hash)))
        })
        .1));
    }

    let modified_root = BenchTask::WideRootAll(wide_n, FileStamper::Modified);
    let mut one = pie_with(1);
    let mut many = pie_with(threads);
    let expected = one.new_session().require(&modified_root);
    assert_eq!(
        many.new_session().require(&modified_root),
        expected,
        "outputs differ between thread counts"
    );
    let (mut noop_1, mut noop_n, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        noop_1.push(ms(timed(|| one.new_session().require(&modified_root)).1));
        noop_n.push(ms(timed(|| many.new_session().require(&modified_root)).1));
        floor.push(ms(timed(|| stat_all(&inputs)).1));
    }
    // The same readers as roots of the session (`Session::require_all`): no task requires them.
    let readers: Vec<BenchTask> = inputs
        .iter()
        .map(|path| BenchTask::Read(path.clone(), FileStamper::Modified))
        .collect();
    let expected = one.new_session().require_all(&readers);
    assert_eq!(
        many.new_session().require_all(&readers),
        expected,
        "outputs differ between thread counts"
    );
    let (mut roots_noop_1, mut roots_noop_n) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        roots_noop_1.push(ms(timed(|| one.new_session().require_all(&readers)).1));
        roots_noop_n.push(ms(timed(|| many.new_session().require_all(&readers)).1));
    }
    drop((one, many));
    let changed = &inputs[..cpu_n as usize];
    let (bottom_up_1, bottom_up_n) = bottom_up(&[BenchTask::CpuReadRoot(cpu_n)], changed, threads)?;
    let (cut_off_1, cut_off_n) = bottom_up(&[BenchTask::CpuReadCutRoot(cpu_n)], changed, threads)?;
    let roots: Vec<BenchTask> = (0..cpu_n).map(BenchTask::CpuReadCut).collect();
    let (roots_1, roots_n) = bottom_up(&roots, changed, threads)?;
    Ok(ParallelRow {
        threads,
        cpu_n,
        wide_n,
        cpu_task_us,
        cpu_fresh_1_ms: middle(cpu_1),
        cpu_fresh_n_ms: middle(cpu_n_ms),
        wide_hash_fresh_1_ms: middle(hash_1),
        wide_hash_fresh_n_ms: middle(hash_n),
        wide_hash_floor_1_ms: middle(hash_floor_1),
        wide_hash_floor_n_ms: middle(hash_floor_n),
        wide_root_code_ms: middle(root_code),
        wide_modified_noop_1_ms: middle(noop_1),
        wide_modified_noop_n_ms: middle(noop_n),
        stat_floor_ms: middle(floor),
        wide_roots_noop_1_ms: middle(roots_noop_1),
        wide_roots_noop_n_ms: middle(roots_noop_n),
        cpu_bottom_up_1_ms: middle(bottom_up_1),
        cpu_bottom_up_n_ms: middle(bottom_up_n),
        cpu_cut_off_1_ms: middle(cut_off_1),
        cpu_cut_off_n_ms: middle(cut_off_n),
        cpu_roots_1_ms: middle(roots_1),
        cpu_roots_n_ms: middle(roots_n),
    })
}

/// The file work of a fresh `wide` Hash build of `inputs` without pie, on `threads` threads (see the module doc):
/// what `FileStamper::Hash` asks of the system for a required file, then the reader's `digest`. Returns the sum of
/// [`read_and_hash`] over the inputs, and the time in ms.
fn hash_floor(inputs: &[PathBuf], threads: usize) -> (u64, f64) {
    /// Inputs a thread takes at a time.
    const RUN: usize = 256;
    let next = AtomicUsize::new(0);
    let work = || {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut sum = 0u64;
        loop {
            let start = next.fetch_add(RUN, Ordering::Relaxed);
            let Some(run) = inputs.get(start..inputs.len().min(start + RUN)) else {
                return sum;
            };
            for path in run {
                sum = sum.wrapping_add(read_and_hash(path, &mut buffer));
            }
        }
    };
    let (sum, elapsed) = timed(|| {
        if threads == 1 {
            work()
        } else {
            std::thread::scope(|scope| {
                let spawned: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
                spawned
                    .into_iter()
                    .map(|thread| thread.join().expect("a floor thread panicked"))
                    .fold(0, u64::wrapping_add)
            })
        }
    });
    (std::hint::black_box(sum), ms(elapsed))
}

/// One input of [`hash_floor`]: opened, its size asked, its bytes read from offset 0 and hashed, then read again by
/// the reader's `digest`. 0 when it cannot be read.
fn read_and_hash(path: &Path, buffer: &mut [u8]) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let Ok(len) = file.metadata().map(|m| m.len() as usize) else {
        return 0;
    };
    let size = len.min(buffer.len());
    let buffer = &mut buffer[..size];
    #[cfg(unix)]
    let read = std::os::unix::fs::FileExt::read_at(&file, buffer, 0);
    #[cfg(not(unix))]
    let read = {
        use std::io::{Read, Seek};
        let mut file = &file;
        file.read(buffer).and_then(|read| file.rewind().map(|()| read))
    };
    let Ok(read) = read else { return 0 };
    let hash = u64::from(blake3::hash(&buffer[..read]).as_bytes()[0]);
    hash.wrapping_add(digest(file))
}

/// Bottom-up builds of `roots` after every input of `changed` changed, on a `Pie` with one thread and one with
/// `threads`, alternating (both see each change): the times of each in ms.
fn bottom_up(roots: &[BenchTask], changed: &[PathBuf], threads: usize) -> io::Result<(Vec<f64>, Vec<f64>)> {
    let mut one = pie_with(1);
    let mut many = pie_with(threads);
    one.new_session().require_all(roots);
    many.new_session().require_all(roots);
    let (mut times_1, mut times_n) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for path in changed {
            std::fs::write(path, format!("round {round} of {:?}\n", roots[0]))?;
        }
        times_1.push(ms(timed(|| one.new_session().update_affected_by(changed)).1));
        times_n.push(ms(timed(|| many.new_session().update_affected_by(changed)).1));
    }
    assert_eq!(
        many.new_session().require_all(roots),
        one.new_session().require_all(roots),
        "bottom-up outputs differ between thread counts"
    );
    Ok((times_1, times_n))
}

/// The bound of the fresh `wide` Hash build's ratio (see the module doc) for a build taking `fresh_1` ms on one
/// thread, whose file work takes `floor_1` ms on one thread and `floor_n` on `threads`, and whose serial code takes
/// `serial` ms: the file work on `threads`, plus the serial code, plus the rest of the one-thread time (pie's own
/// work) divided perfectly over the threads; as a ratio to `fresh_1`.
fn bound(fresh_1: f64, floor_1: f64, floor_n: f64, serial: f64, threads: usize) -> f64 {
    let own = (fresh_1 - floor_1 - serial).max(0.0);
    (floor_n + serial + own / threads as f64) / fresh_1
}

/// The figures as a table, with the targets of 2 threads.
pub fn table(row: &ParallelRow) -> String {
    let n = row.threads;
    let verdict = |ratio: f64, target: f64| if ratio <= target { "PASS" } else { "FAIL" };
    let cpu = row.cpu_fresh_n_ms / row.cpu_fresh_1_ms;
    let hash = row.wide_hash_fresh_n_ms / row.wide_hash_fresh_1_ms;
    let noop = row.wide_modified_noop_n_ms / row.stat_floor_ms;
    let mut out = String::new();
    out += &format!(
        "parallel builds, {n} threads vs 1 (one Cpu task: {:.0} µs)\n",
        row.cpu_task_us
    );
    out += &format!(
        "  cpu {} fresh:            1 thread {:8.1} ms, {n} threads {:8.1} ms, ratio {:.3} (target ≤ 0.56 at 2 threads: {})\n",
        row.cpu_n, row.cpu_fresh_1_ms, row.cpu_fresh_n_ms, cpu, verdict(cpu, 0.56)
    );
    out += &format!(
        "  wide {} hash fresh:      1 thread {:8.1} ms, {n} threads {:8.1} ms, ratio {:.3} (target ≤ 0.65 at 2 threads: {})\n",
        row.wide_n, row.wide_hash_fresh_1_ms, row.wide_hash_fresh_n_ms, hash, verdict(hash, 0.65)
    );
    let floor = row.wide_hash_floor_n_ms / row.wide_hash_floor_1_ms;
    let bound = bound(
        row.wide_hash_fresh_1_ms,
        row.wide_hash_floor_1_ms,
        row.wide_hash_floor_n_ms,
        row.wide_root_code_ms,
        n,
    );
    out += &format!(
        "  wide {} hash floor:      1 thread {:8.1} ms, {n} threads {:8.1} ms, ratio {:.3} (the file work alone; root's own code {:.1} ms; bound of the fresh ratio: {:.3})\n",
        row.wide_n, row.wide_hash_floor_1_ms, row.wide_hash_floor_n_ms, floor, row.wide_root_code_ms, bound
    );
    out += &format!(
        "  wide {} modified no-op:  1 thread {:8.1} ms, {n} threads {:8.1} ms, stat floor {:.1} ms, {n} threads / floor {:.3} (target ≤ 0.75 at 2 threads: {})\n",
        row.wide_n, row.wide_modified_noop_1_ms, row.wide_modified_noop_n_ms, row.stat_floor_ms, noop, verdict(noop, 0.75)
    );
    let roots_noop = row.wide_roots_noop_n_ms / row.stat_floor_ms;
    out += &format!(
        "  wide {} roots no-op:     1 thread {:8.1} ms, {n} threads {:8.1} ms, stat floor {:.1} ms, {n} threads / floor {:.3} (each reader a root)\n",
        row.wide_n, row.wide_roots_noop_1_ms, row.wide_roots_noop_n_ms, row.stat_floor_ms, roots_noop
    );
    let bottom_up = row.cpu_bottom_up_n_ms / row.cpu_bottom_up_1_ms;
    out += &format!(
        "  cpu {} bottom-up:        1 thread {:8.1} ms, {n} threads {:8.1} ms, ratio {:.3} (every input changed)\n",
        row.cpu_n, row.cpu_bottom_up_1_ms, row.cpu_bottom_up_n_ms, bottom_up
    );
    let cut_off = row.cpu_cut_off_n_ms / row.cpu_cut_off_1_ms;
    out += &format!(
        "  cpu {} bottom-up cut off: 1 thread {:8.1} ms, {n} threads {:8.1} ms, ratio {:.3} (every input changed, outputs cut off)\n",
        row.cpu_n, row.cpu_cut_off_1_ms, row.cpu_cut_off_n_ms, cut_off
    );
    let roots = row.cpu_roots_n_ms / row.cpu_roots_1_ms;
    out += &format!(
        "  cpu {} bottom-up roots:   1 thread {:8.1} ms, {n} threads {:8.1} ms, ratio {:.3} (every input changed, each task a root)\n",
        row.cpu_n, row.cpu_roots_1_ms, row.cpu_roots_n_ms, roots
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_divides_only_pies_own_work_over_the_threads() {
        // 300 ms on one thread: 200 of file work (120 on two threads), 30 of the root's own code, 70 of pie's.
        let two = bound(300.0, 200.0, 120.0, 30.0, 2);
        assert!((two - (120.0 + 30.0 + 35.0) / 300.0).abs() < 1e-12, "{two}");
        // More threads divide pie's work further, never the serial code.
        assert!(bound(300.0, 200.0, 120.0, 30.0, 4) < two);
        assert!(bound(300.0, 200.0, 120.0, 60.0, 2) > two);
        // A build faster than its floors (a noisy run) still gets a bound: the file work alone.
        assert!((bound(100.0, 200.0, 120.0, 0.0, 2) - 1.2).abs() < 1e-12);
    }

    #[test]
    fn the_hash_floor_reads_every_input_once_whatever_the_threads() {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<PathBuf> = (0..1000).map(|i| dir.path().join(i.to_string())).collect();
        for (i, path) in inputs.iter().enumerate() {
            std::fs::write(path, format!("input {i}\n")).unwrap();
        }
        let mut buffer = vec![0u8; 64];
        let first = read_and_hash(&inputs[0], &mut buffer);
        let hashed = u64::from(blake3::hash(b"input 0\n").as_bytes()[0]);
        let expected = hashed.wrapping_add(digest(File::open(&inputs[0]).unwrap()));
        assert_eq!(first, expected);
        assert_eq!(read_and_hash(&dir.path().join("missing"), &mut buffer), 0);
        let each = inputs
            .iter()
            .map(|path| read_and_hash(path, &mut buffer))
            .fold(0, u64::wrapping_add);
        for threads in [1, 2, 3] {
            assert_eq!(hash_floor(&inputs, threads).0, each, "{threads} threads");
        }
    }
}
