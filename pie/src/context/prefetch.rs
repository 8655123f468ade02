//! Prefetching stamps: when a top-down check reaches a long run of task dependencies (what a `require_tasks` of many
//! tasks records), helper threads stamp the files that those tasks require while the lane checks them, still one by
//! one in order. The lane takes the files from the front of the run and the helpers from the back, so they meet
//! wherever the lane's checking work puts them; a file is stamped once, by whichever gets to it first, and the
//! lane's check uses a helper's stamp instead of stamping the file itself. So a no-op build of a wide graph stats
//! (or hashes) its files on several threads, while every decision stays that of a build on one thread.
//!
//! Only reading: nothing is executed, and nothing in the graph changes; a task whose check stops early leaves some
//! stamps unused, which costs only their I/O. A stamp is used only for a file that no task provides when the check
//! uses it: a file a task writes in this session may change after the stamp was taken, but a file nobody provides
//! changes only outside the session, which a session need not see.
//!
//! The helpers own what they need (the paths, copied into one buffer, and the slots for the stamps: [`Job`]), so
//! they neither hold the engine nor read the store, which the lane may change meanwhile. The lane's [`Prefetch`]
//! ends the job when it is dropped: when the next run starts, when the lane has passed the run's last file, or with
//! the lane at the end of the build.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

// With the `shuttle` feature (tests only), the helpers are shuttle's threads and the slots use its atomics and
// `StampCell`'s shuttle version, so that `tests/shuttle.rs` explores how the lane and the helpers interleave.
#[cfg(feature = "shuttle")]
use shuttle::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    thread,
};
#[cfg(not(feature = "shuttle"))]
use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    thread,
};

use crate::context::marks::Mark;
use crate::context::top_down::TopDownContext;
use crate::dependency::{Dep, FileDep};
use crate::ids::{FileId, TaskId};
use crate::intern::PathList;
use crate::stamp::{FileStamp, FileStamper};
use crate::tracker::Tracker;
use crate::Task;

/// Runs of task dependencies shorter than this are checked without prefetching (starting threads costs more).
pub(super) const MIN_RUN: usize = 64;

/// How many tasks past the one it checks now the lane looks for the task whose file it checks: a task whose check
/// found it inconsistent early, or that another task's execution made consistent, is skipped.
const LOOKAHEAD: usize = 32;

/// The lane's side of a prefetch in flight (in `LaneState`).
pub(crate) struct Prefetch {
    job: Arc<Job>,
    /// The task of the run whose files the lane checks now (an index into `Job::tasks`).
    task: usize,
    /// Where in the job's files the lane expects the file it checks next.
    next: usize,
}

impl fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prefetch")
            .field("files", &self.job.files.len())
            .field("task", &self.task)
            .field("next", &self.next)
            .finish()
    }
}

impl Prefetch {
    /// Starts `helpers` threads stamping `files`, whose paths are `paths`, from the back; `tasks` says which task
    /// reads which of them.
    fn start(tasks: Vec<(TaskId, u32)>, files: Vec<(FileId, FileStamper)>, paths: PathList, helpers: usize) -> Self {
        let job = Arc::new(Job {
            slots: files.iter().map(|_| Slot::default()).collect(),
            back: AtomicUsize::new(files.len()),
            tasks,
            files,
            paths,
            ended: AtomicBool::new(false),
        });
        for _ in 0..helpers {
            let job = Arc::clone(&job);
            // Without a helper (its thread cannot be started), the lane stamps the files itself.
            let _ = thread::Builder::new()
                .name("pie-prefetch".to_string())
                .spawn(move || job.help());
        }
        Self { job, task: 0, next: 0 }
    }

    /// The stamp a helper took of `file` with `stamper` for `reader`: among the reader's files, when the reader is
    /// the task the lane checks now or one of the next few. `None` when there is none: the file is not there,
    /// stamping it failed, or no helper had claimed it yet (the lane claims it then, so that no helper stamps it);
    /// the lane stamps the file itself.
    fn take(&mut self, reader: TaskId, file: FileId, stamper: FileStamper) -> Option<FileStamp> {
        let job = &*self.job;
        let look = job.tasks.len().min(self.task + LOOKAHEAD);
        let task = (self.task..look).find(|&t| job.tasks[t].0 == reader)?;
        if task != self.task {
            self.task = task;
            self.next = job.start(task);
        }
        let end = job.tasks[task].1 as usize;
        let index = (self.next..end).find(|&i| job.files[i] == (file, stamper))?;
        self.next = index + 1;
        let slot = &job.slots[index];
        if slot.claimed.swap(true, Ordering::AcqRel) {
            // A helper claimed it: its stamp is there or about to be.
            slot.stamp.wait()
        } else {
            None
        }
    }

    /// Whether the lane has passed the last file.
    fn is_done(&self) -> bool {
        self.next == self.job.files.len()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.job.ended.store(true, Ordering::Relaxed);
    }
}

/// The files of a run, in the order the lane checks them, shared by the lane and the helpers.
struct Job {
    /// The tasks of the run that read `files`, in order, each with the end of its files there (they start where
    /// the previous task's end).
    tasks: Vec<(TaskId, u32)>,
    files: Vec<(FileId, FileStamper)>,
    /// `paths[i]` is the path of `files[i]`.
    paths: PathList,
    /// `slots[i]` is for the stamp of `files[i]`.
    slots: Box<[Slot]>,
    /// How many files from the front the helpers have not taken yet: they take them from the back.
    back: AtomicUsize,
    /// Set when the lane no longer needs the stamps: the helpers stop.
    ended: AtomicBool,
}

/// One file's stamp: claimed by the lane or by a helper, whichever comes first; a helper that claims it sets the
/// stamp (`None` when stamping failed, and then the lane stamps the file itself).
#[derive(Default)]
struct Slot {
    claimed: AtomicBool,
    stamp: StampCell,
}

/// The stamp of a [`Slot`], set once by the helper that claimed it, which the lane waits for.
#[cfg(not(feature = "shuttle"))]
#[derive(Default)]
struct StampCell(std::sync::OnceLock<Option<FileStamp>>);

#[cfg(not(feature = "shuttle"))]
impl StampCell {
    fn set(&self, stamp: Option<FileStamp>) {
        let _ = self.0.set(stamp);
    }

    /// The stamp, once it is set.
    fn wait(&self) -> Option<FileStamp> {
        *self.0.wait()
    }

    /// The stamp, if it is set.
    #[cfg(test)]
    fn get(&self) -> Option<Option<FileStamp>> {
        self.0.get().copied()
    }
}

/// `StampCell` with shuttle's mutex and condition variable (shuttle has no `OnceLock`), whose waits its scheduler
/// sees.
#[cfg(feature = "shuttle")]
struct StampCell {
    stamp: shuttle::sync::Mutex<Option<Option<FileStamp>>>,
    set: shuttle::sync::Condvar,
}

#[cfg(feature = "shuttle")]
impl Default for StampCell {
    fn default() -> Self {
        Self {
            stamp: shuttle::sync::Mutex::new(None),
            set: shuttle::sync::Condvar::new(),
        }
    }
}

#[cfg(feature = "shuttle")]
impl StampCell {
    fn set(&self, stamp: Option<FileStamp>) {
        let mut cell = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if cell.is_none() {
            *cell = Some(stamp);
            self.set.notify_all();
        }
    }

    fn wait(&self) -> Option<FileStamp> {
        let mut cell = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(stamp) = *cell {
                return stamp;
            }
            cell = self.set.wait(cell).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Job {
    /// Where the files of `tasks[task]` start in `files`.
    fn start(&self, task: usize) -> usize {
        match task {
            0 => 0,
            _ => self.tasks[task - 1].1 as usize,
        }
    }

    /// A helper's work: stamps files from the back until it meets one the lane claimed, or the job ends.
    fn help(&self) {
        while !self.ended.load(Ordering::Relaxed) {
            let Ok(taken) = self
                .back
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |back| back.checked_sub(1))
            else {
                return;
            };
            let index = taken - 1;
            let slot = &self.slots[index];
            if slot.claimed.swap(true, Ordering::AcqRel) {
                // The lane got here first: it has checked (or skipped) everything before.
                return;
            }
            let stamper = self.files[index].1;
            let path = self.paths.get(index as u32);
            // A panic while stamping (none is expected) loses only this stamp: the lane stamps the file itself.
            let stamp = panic::catch_unwind(AssertUnwindSafe(|| path.and_then(|path| stamper.stamp(path).ok())));
            slot.stamp.set(stamp.ok().flatten());
        }
    }
}

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// Before the check of dependency `index` of task `id` (a task dependency on a task not yet seen in this
    /// session): if it starts a long run of task dependencies not yet prefetched, starts helpers that stamp the
    /// files that the unseen tasks of the run require, on `threads - 1` threads.
    #[inline(never)]
    pub(super) fn prefetch_stamps(&mut self, id: TaskId, index: usize) {
        if matches!(self.lane.prefetched_run, Some((task, end)) if task == id && index < end) {
            return;
        }
        let count = self.store.dep_count(id);
        let mut end = index;
        while end < count && matches!(self.store.dep(id, end), Dep::RequireTask(_)) {
            end += 1;
        }
        self.lane.prefetched_run = Some((id, end));
        if end - index < MIN_RUN || self.state.bottom_up.is_some() {
            return;
        }
        let run: Vec<TaskId> = (index..end)
            .filter_map(|k| match self.store.dep(id, k) {
                Dep::RequireTask(dep) => Some(dep.task),
                _ => None,
            })
            .collect();
        self.prefetch_files_of(run);
    }

    /// Starts helpers that stamp the files that the unseen tasks among `run` require (and no task provides), on
    /// `threads - 1` threads, when there are enough of them; the lane then checks the tasks in the order of `run`.
    pub(super) fn prefetch_files_of(&mut self, run: impl IntoIterator<Item = TaskId>) {
        let mut tasks: Vec<(TaskId, u32)> = Vec::new();
        let mut files: Vec<(FileId, FileStamper)> = Vec::new();
        for task in run {
            if self.marks.get(task) != Mark::Unseen {
                continue;
            }
            let start = files.len();
            for d in 0..self.store.dep_count(task) {
                if let Dep::RequireFile(file) = self.store.dep(task, d) {
                    if self.store.provider(file.file).is_none() {
                        files.push((file.file, file.stamper));
                    }
                }
            }
            if files.len() > start {
                tasks.push((task, files.len() as u32));
            }
        }
        if files.len() < MIN_RUN {
            return;
        }
        let mut paths = PathList::with_capacity(files.len());
        for (file, _) in &files {
            paths.push(self.store.file_path(*file));
        }
        // Dropping the previous run's prefetch ends its helpers.
        self.lane.prefetch = Some(Prefetch::start(tasks, files, paths, self.threads.saturating_sub(1)));
    }

    /// The prefetched stamp for `dep`, if there is one and it may be used (see the module doc). When a helper has
    /// not claimed the file yet, the lane claims it and stamps it itself (`None`).
    #[inline]
    pub(super) fn take_prefetched(&mut self, dep: FileDep, reader: TaskId) -> Option<FileStamp> {
        self.lane.prefetch.as_ref()?;
        self.take_prefetched_slow(dep, reader)
    }

    #[inline(never)]
    fn take_prefetched_slow(&mut self, dep: FileDep, reader: TaskId) -> Option<FileStamp> {
        let prefetch = self.lane.prefetch.as_mut()?;
        let stamp = prefetch.take(reader, dep.file, dep.stamper);
        if prefetch.is_done() {
            self.lane.prefetch = None;
        }
        stamp.filter(|_| self.store.provider(dep.file).is_none())
    }
}

// Real threads: outside a shuttle test, shuttle's (feature `shuttle`) cannot start.
#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Files each task of a test's run reads.
    const PER_TASK: u32 = 50;

    /// `n` files with different contents in a new folder, as a prefetch sees them: task `i / PER_TASK` reads file
    /// `i`.
    fn start(n: u32, stamper: FileStamper, helpers: usize) -> (tempfile::TempDir, Vec<PathBuf>, Prefetch) {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("{i}.txt"))).collect();
        let mut list = PathList::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            std::fs::write(path, format!("file {i}")).unwrap();
            list.push(path);
        }
        let tasks = (0..n.div_ceil(PER_TASK))
            .map(|t| (TaskId(t), ((t + 1) * PER_TASK).min(n)))
            .collect();
        let files = (0..n).map(|i| (FileId(i), stamper)).collect();
        (dir, paths, Prefetch::start(tasks, files, list, helpers))
    }

    /// What the lane gets for file `i` with `stamper`, read by its task.
    fn take(prefetch: &mut Prefetch, i: u32, stamper: FileStamper) -> Option<FileStamp> {
        prefetch.take(TaskId(i / PER_TASK), FileId(i), stamper)
    }

    #[test]
    fn helpers_stamp_every_file_the_lane_has_not_claimed() {
        for helpers in [1, 3] {
            let (_dir, paths, mut prefetch) = start(500, FileStamper::Hash, helpers);
            // Let the helpers stamp the back half before the lane starts at the front.
            while prefetch.job.slots[250..].iter().any(|slot| slot.stamp.get().is_none()) {
                std::thread::yield_now();
            }
            let mut from_helpers = 0;
            for (i, path) in paths.iter().enumerate() {
                if let Some(stamp) = take(&mut prefetch, i as u32, FileStamper::Hash) {
                    from_helpers += 1;
                    assert_eq!(
                        stamp,
                        FileStamper::Hash.stamp(path).unwrap(),
                        "file {i}, {helpers} helpers"
                    );
                }
            }
            assert!(prefetch.is_done());
            assert!(from_helpers >= 250, "{from_helpers} stamps from {helpers} helpers");
            // Every slot was claimed once, by the lane or by a helper.
            assert!(prefetch
                .job
                .slots
                .iter()
                .all(|slot| slot.claimed.load(Ordering::Relaxed)));
        }
    }

    #[test]
    fn the_lane_stamps_what_no_helper_claimed_and_helpers_then_stop() {
        // No helper: the lane claims every file and gets no stamp; nothing is stamped behind its back.
        let (_dir, _paths, mut prefetch) = start(100, FileStamper::Modified, 0);
        for i in 0..100 {
            assert_eq!(take(&mut prefetch, i, FileStamper::Modified), None);
        }
        assert!(prefetch.is_done());
        assert!(prefetch.job.slots.iter().all(|slot| slot.stamp.get().is_none()));
        // A helper started now meets the lane's claim on the last file and stops without stamping.
        prefetch.job.help();
        assert!(prefetch.job.slots.iter().all(|slot| slot.stamp.get().is_none()));
    }

    #[test]
    fn the_lane_finds_the_files_of_tasks_after_skipped_ones_and_nothing_else() {
        let (_dir, paths, mut prefetch) = start(400, FileStamper::Modified, 0);
        // Stamp every file as a helper would, before the lane looks.
        prefetch.job.help();
        let stamp = |i: u32| Some(FileStamper::Modified.stamp(&paths[i as usize]).unwrap());
        assert_eq!(take(&mut prefetch, 0, FileStamper::Modified), stamp(0));
        // Task 0's check stopped at its first file, and task 1 was skipped: task 2's files are found.
        assert_eq!(
            take(&mut prefetch, 2 * PER_TASK, FileStamper::Modified),
            stamp(2 * PER_TASK)
        );
        // Another stamper, a file of task 2 already passed, and a task that is not in the run have no stamp.
        let next = 2 * PER_TASK + 1;
        assert_eq!(take(&mut prefetch, next, FileStamper::Hash), None);
        assert_eq!(
            prefetch.take(TaskId(2), FileId(2 * PER_TASK), FileStamper::Modified),
            None
        );
        assert_eq!(prefetch.take(TaskId(99), FileId(next), FileStamper::Modified), None);
        assert_eq!(take(&mut prefetch, next, FileStamper::Modified), stamp(next));
        // Once the lane checks task 3, a file of task 3 read by it has its stamp, one of task 2 does not.
        assert_eq!(prefetch.take(TaskId(3), FileId(next + 1), FileStamper::Modified), None);
        assert_eq!(
            take(&mut prefetch, 3 * PER_TASK, FileStamper::Modified),
            stamp(3 * PER_TASK)
        );
        assert_eq!(take(&mut prefetch, next + 2, FileStamper::Modified), None);
        // The last task's last file ends the run.
        assert!(!prefetch.is_done());
        assert_eq!(take(&mut prefetch, 399, FileStamper::Modified), stamp(399));
        assert!(prefetch.is_done());
    }

    #[test]
    fn dropping_the_prefetch_ends_the_job() {
        let (_dir, _paths, prefetch) = start(64, FileStamper::Modified, 0);
        let job = Arc::clone(&prefetch.job);
        drop(prefetch);
        job.help();
        assert!(job.slots.iter().all(|slot| !slot.claimed.load(Ordering::Relaxed)));
    }
}
