#![cfg_attr(not(feature = "remote-cache"), allow(dead_code))]
//! The engine's side of a shared cache (see `crate::remote` for the cache itself): before a task executes, its
//! *constructive trace* is looked up and replayed; after it executes, its trace is uploaded.
//!
//! A trace holds the dependencies that an execution recorded, in order, each with what it saw (a digest of the
//! file's contents; a digest of the required task's output), plus the output and the files it provided. Replaying
//! it is executing the task without its code, in two passes through the same [`Context`] methods a task uses:
//!
//! 1. *Check*: the requires, in the recorded order. A required file's contents must have the recorded digest (it
//!    is compared before the require is recorded); a required task is required (made consistent, maybe restored
//!    from the cache itself) and its output must have the recorded digest. The first difference is a miss, after
//!    which the task executes for real. Requiring the task of dependency `k` is what the execution would do too:
//!    every dependency before it matched, so its code, deterministic by contract, came to the same require. A
//!    panic out of a require (the required task failed, or a soundness check refused) is a miss too: the task's
//!    code may catch a failure, and executing it meets a refusal at the same point, so the verdict is the
//!    execution's.
//! 2. *Record*, once every require matched: the provided files are written (atomically, from the content store),
//!    the dependencies recorded so far are dropped, and every dependency is recorded again in the recorded order,
//!    provided files included, so the store holds what the execution would have left, and the overlap and
//!    hidden-dependency checks run on it as on an execution.
//!
//! The network calls (lookup, upload) run without holding the engine, like a task's code, so that in a parallel
//! build the lookups of independent tasks overlap.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use crate::context::top_down::TopDownContext;
use crate::dependency::Dep;
use crate::ids::TaskId;
use crate::stamp::{FileStamp, FileStamper, OutputStamper};
use crate::tracker::Tracker;
use crate::{Context, Task};

/// A 32-byte digest of a file's contents or of a task's output, as the cache computes it.
pub(crate) type ContentDigest = [u8; 32];

/// What the engine asks of a shared cache; implemented for serialisable task and output types by
/// `crate::remote::cache` (the engine itself needs no serde bounds). Every method is infallible: the cache turns
/// its failures into misses and skipped uploads.
pub(crate) trait RemoteHook<T, O>: Send + Sync {
    /// The trace of `task` to replay, with every blob it names fetched and verified; `None` on a miss.
    fn lookup(&self, task: &T) -> Option<Replay<T, O>>;
    /// Whether `task`'s executions are uploaded (a cache that can be written, and a task that does not opt out).
    fn uploads(&self, task: &T) -> bool;
    /// Whether `task` is looked up at all (it does not opt out).
    fn looks_up(&self, task: &T) -> bool;
    /// The digest of the contents at `path` now (missing, a directory's listing, or a file's bytes); `None` when
    /// it cannot be read.
    fn content_digest(&self, path: &std::path::Path) -> Option<ContentDigest>;
    /// The digest of a task's output; `None` when it cannot be serialised.
    fn output_digest(&self, output: &O) -> Option<ContentDigest>;
    /// Writes the provided files of a hit (each atomically); `false` when one cannot be written.
    fn restore_files(&self, replay: &Replay<T, O>) -> bool;
    /// Uploads the trace of an execution of `task` that recorded `deps` and returned `output`.
    fn upload(&self, task: &T, deps: Vec<Recorded<T, O>>, output: &O);
    /// The cache itself, for `Pie::remote_cache`.
    #[cfg(feature = "remote-cache")]
    fn cache(&self) -> &crate::remote::RemoteCache;
}

/// A trace fetched from the cache, ready to replay.
pub(crate) struct Replay<T, O> {
    /// The dependencies in the order the execution recorded them.
    pub(crate) deps: Vec<ReplayDep<T>>,
    /// The output the execution returned.
    pub(crate) output: O,
    /// The contents of the provided files (`None`: the task provided a path where it left nothing).
    pub(crate) files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

/// One dependency of a trace.
pub(crate) enum ReplayDep<T> {
    /// A required file and the digest of the contents the execution saw.
    RequireFile {
        path: PathBuf,
        stamper: FileStamper,
        content: ContentDigest,
    },
    /// A required task and the digest of the output the execution saw.
    RequireTask {
        task: T,
        stamper: OutputStamper,
        output: ContentDigest,
    },
    /// A provided file (its contents are among the replay's files).
    ProvideFile { path: PathBuf, stamper: FileStamper },
}

/// One dependency of an execution, as the engine recorded it, for the upload of its trace.
pub(crate) enum Recorded<T, O> {
    /// A required file and its recorded stamp (`None`: the stamping failed).
    RequireFile {
        path: PathBuf,
        stamper: FileStamper,
        stamp: Option<FileStamp>,
    },
    /// A required task and its output (`None`: it failed, and the execution met its panic).
    RequireTask {
        task: T,
        stamper: OutputStamper,
        output: Option<O>,
    },
    /// A provided file and its recorded stamp.
    ProvideFile {
        path: PathBuf,
        stamper: FileStamper,
        stamp: Option<FileStamp>,
    },
}

/// How a replay ended.
pub(crate) enum Replayed<O> {
    /// Every dependency matched: the output, with the dependencies recorded.
    Hit(O),
    /// A dependency differed, a file could not be restored, or a panic came out of a require: the task must
    /// execute, its record cleared.
    Miss,
}

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// Looks task `task` up in the shared cache, if one is configured and the task does not opt out; without the
    /// engine.
    pub(super) fn remote_lookup(&mut self, task: &T) -> Option<Replay<T, T::Output>> {
        let remote = self.remote?;
        if !remote.looks_up(task) {
            return None;
        }
        self.outside_engine(|_| remote.lookup(task))
    }

    /// Replays the trace of task `id` (see the module documentation); called where its code would run, with its
    /// record started and `id` the executing task.
    pub(super) fn replay(&mut self, id: TaskId, replay: Replay<T, T::Output>) -> Replayed<T::Output> {
        let Some(remote) = self.remote else {
            return Replayed::Miss;
        };
        let checked = self.outside_engine(|this| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                for dep in &replay.deps {
                    match dep {
                        ReplayDep::RequireFile { path, stamper, content } => {
                            if remote.content_digest(path) != Some(*content) {
                                return false;
                            }
                            // Its result is the file, which the task's code would read; the record is what counts.
                            let _ = this.require_file_with_stamper(path, *stamper);
                        }
                        ReplayDep::RequireTask { task, stamper, output } => {
                            let seen = this.require_task_with_stamper(task, *stamper);
                            if remote.output_digest(&seen) != Some(*output) {
                                return false;
                            }
                        }
                        ReplayDep::ProvideFile { .. } => {}
                    }
                }
                true
            }))
        });
        match checked {
            // A required task failed, or a soundness check refused: the task's code may catch the former, and
            // meets the latter at the same point; executing it decides, as in a build without the cache.
            Err(_) => return self.restart_after_panic(id),
            Ok(false) => return self.restart(id),
            Ok(true) => {}
        }
        if !self.outside_engine(|_| remote.restore_files(&replay)) {
            return self.restart(id);
        }
        self.restart(id);
        let recorded = self.outside_engine(|this| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                for dep in &replay.deps {
                    match dep {
                        ReplayDep::RequireFile { path, stamper, .. } => {
                            let _ = this.require_file_with_stamper(path, *stamper);
                        }
                        ReplayDep::RequireTask { task, stamper, .. } => {
                            this.require_task_with_stamper(task, *stamper);
                        }
                        ReplayDep::ProvideFile { path, stamper } => {
                            // An error stamping it is recorded in the dependency, as for an execution.
                            let _ = this.provide_file_with_stamper(path, *stamper);
                        }
                    }
                }
            }))
        });
        match recorded {
            Ok(()) => Replayed::Hit(replay.output),
            // An overlap or a hidden dependency of a provided file: the execution meets it too.
            Err(_) => self.restart_after_panic(id),
        }
    }

    /// [`restart`](Self::restart) after a panic met while replaying: the execution that follows meets what caused
    /// it again (or catches it), so the violation flag it may have raised is cleared first.
    fn restart_after_panic(&mut self, id: TaskId) -> Replayed<T::Output> {
        self.lane.violation = false;
        self.restart(id)
    }

    /// Drops what task `id` recorded so far in this execution (a replay that missed, or before recording a hit).
    fn restart(&mut self, id: TaskId) -> Replayed<T::Output> {
        self.in_engine(|this| {
            this.store.start_execution(id);
        });
        Replayed::Miss
    }

    /// Uploads the trace of the execution of task `id` that just finished, if the cache takes it; holding the
    /// engine on entry and exit, without it during the upload.
    pub(super) fn remote_upload(&mut self, id: TaskId, task: &T) {
        let Some(remote) = self.remote else {
            return;
        };
        if !remote.uploads(task) {
            return;
        }
        let mut deps = Vec::with_capacity(self.store.dep_count(id));
        for index in 0..self.store.dep_count(id) {
            deps.push(match self.store.dep(id, index) {
                Dep::RequireFile(dep) => Recorded::RequireFile {
                    path: self.store.file_path(dep.file).to_path_buf(),
                    stamper: dep.stamper,
                    stamp: dep.stamp,
                },
                Dep::ProvideFile(dep) => Recorded::ProvideFile {
                    path: self.store.file_path(dep.file).to_path_buf(),
                    stamper: dep.stamper,
                    stamp: dep.stamp,
                },
                Dep::RequireTask(dep) => Recorded::RequireTask {
                    task: self.store.task(dep.task).clone(),
                    stamper: dep.stamper,
                    output: self.store.output(dep.task).cloned(),
                },
            });
        }
        let Some(output) = self.store.output(id).cloned() else {
            return;
        };
        self.outside_engine(|_| remote.upload(task, deps, &output));
    }
}
