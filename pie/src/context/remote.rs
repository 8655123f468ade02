#![cfg_attr(not(feature = "remote-cache"), allow(dead_code))]
//! The engine's side of a shared cache (see `crate::remote` for the cache itself): before a task executes, its
//! *constructive trace* is looked up and replayed; after it executes, its trace is uploaded.
//!
//! A trace holds the dependencies that an execution recorded, in order, each with what it saw (a digest of the
//! file's contents; a digest of the required task's output), plus the output and the files it provided. Replaying
//! it is executing the task without its code: the dependencies in the recorded order, through the same
//! [`Context`] methods a task uses, so that the store ends up as the execution would leave it and every soundness
//! check runs as for an execution:
//! - a required file's contents must have the recorded digest (compared before the require is recorded);
//! - a required task is required (made consistent, maybe restored from the cache itself), and its output must have
//!   the recorded digest; the tasks of one `require_tasks` call are required together, as the execution did;
//! - a provided file is written (atomically, with the bytes from the content store), then provided: where the
//!   execution wrote it, so that the tasks required after it see what they saw when it executed.
//!
//! The first difference is a miss: what the replay recorded is dropped and the task executes for real. Whatever
//! the replay did up to there, the execution does too: every dependency before it matched, so its code,
//! deterministic by contract, came to the same point, having required the same tasks and written the same files.
//! A panic met by the replay is decided as a task's check decides it (`TopDownContext::make_consistent`):
//! - a required task failed in its own code: a miss; the failure is kept (`LaneState::failures`) and the execution
//!   meets it at the same require, where its code may catch it, without the failed task executing again;
//! - a required task failed with a soundness violation, which may have changed what this task read before it:
//!   the task fails with that panic, as a task being checked does;
//! - a soundness check of this task's own require or provide refused: a miss; the execution meets the refusal at
//!   the same point.
//!
//! The network calls (lookup, upload) run without holding the engine, like a task's code, so that in a parallel
//! build the lookups of independent tasks overlap.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use crate::context::state::Payload;
use crate::context::top_down::TopDownContext;
use crate::dependency::{Dep, Group, UNKNOWN_VERSION};
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
    /// Looks up `tasks` ahead of the requires that will need their traces, several at a time: a replay requires
    /// them one by one (in order, never speculatively), and each then finds its lookup done.
    fn prefetch(&self, tasks: &[&T]);
    /// Whether `task`'s executions are uploaded (a cache that can be written, and a task that does not opt out).
    fn uploads(&self, task: &T) -> bool;
    /// Whether `task` is looked up at all (it does not opt out).
    fn looks_up(&self, task: &T) -> bool;
    /// The digest of the contents at `path` now (missing, a directory's listing, or a file's bytes); `None` when
    /// it cannot be read.
    fn content_digest(&self, path: &std::path::Path) -> Option<ContentDigest>;
    /// The digest of a task's output; `None` when it cannot be serialised.
    fn output_digest(&self, output: &O) -> Option<ContentDigest>;
    /// Writes a provided file of a hit atomically (`None`: removes what is at `path`); `false` when it cannot.
    fn restore_file(&self, path: &std::path::Path, contents: Option<&[u8]>) -> bool;
    /// Counts a hit: a replay that recorded every dependency.
    fn restored(&self);
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
    /// A required task and the digest of the output the execution saw; `group` tells whether it was required
    /// with others in one `require_tasks` call (replayed as one call).
    RequireTask {
        task: T,
        stamper: OutputStamper,
        group: Group,
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
        group: Group,
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
    /// execute, its record cleared. The tasks whose failures the replay kept for the execution (see
    /// `LaneState::failures`); what the execution did not take is dropped after it.
    Miss(Vec<TaskId>),
    /// A required task failed with a soundness violation: the task fails with its panic, as the execution would
    /// at that require (unless its code caught it, see `replay`).
    Failed(Payload),
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
            return Replayed::Miss(Vec::new());
        };
        let mut kept = Vec::new();
        let mut failed = None;
        // The required tasks this store knows nothing of (a fresh build, mostly) will be looked up when required:
        // look them up now, several at a time. A known task is checked locally first, and may need no lookup.
        let required: Vec<&T> = self.in_engine(|this| {
            replay
                .deps
                .iter()
                .filter_map(|dep| match dep {
                    ReplayDep::RequireTask { task, .. } => Some(task),
                    _ => None,
                })
                .filter(|task| {
                    this.store
                        .find_task(task)
                        .is_none_or(|id| this.store.output(id).is_none())
                })
                .collect()
        });
        self.outside_engine(|_| remote.prefetch(&required));
        let replayed = self.outside_engine(|this| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                let mut files = replay.files.iter();
                let mut index = 0;
                while index < replay.deps.len() {
                    match &replay.deps[index] {
                        ReplayDep::RequireFile { path, stamper, content } => {
                            if remote.content_digest(path) != Some(*content) {
                                return false;
                            }
                            // Its result is the file, which the task's code would read; the record is what counts.
                            let _ = this.require_file_with_stamper(path, *stamper);
                            index += 1;
                        }
                        ReplayDep::RequireTask { .. } => {
                            let (group, stamper) = task_group(&replay.deps, index);
                            let tasks: Vec<T> = group.iter().map(|(task, _)| (*task).clone()).collect();
                            let mut matches = true;
                            let mut violation = None;
                            // The execution meets the first panic of the group in argument order (see
                            // `require_group`): a violation after another task's failure is not met at this require.
                            let mut failed_before = false;
                            for (task, (result, (_, output))) in tasks.iter().zip(
                                this.in_engine(|this| this.require_group_each(&tasks, None, stamper))
                                    .into_iter()
                                    .zip(&group),
                            ) {
                                match result {
                                    Ok(seen) => matches &= remote.output_digest(&seen) == Some(**output),
                                    // A required task failed: the execution meets its panic at this require (and
                                    // may catch it), kept for it as when a task fails while its requirer is
                                    // checked (see `LaneState::failures`).
                                    Err((payload, false)) => {
                                        matches = false;
                                        let first = !std::mem::replace(&mut failed_before, true);
                                        let (id, violation_below) = this.in_engine(|this| {
                                            let id = this.store.get_or_create_task(task);
                                            (id, this.store.version(id) == UNKNOWN_VERSION)
                                        });
                                        if violation_below && first {
                                            // A soundness violation below, which may have changed what this task
                                            // read before it (which is what it says): executing the task now is
                                            // not what a build without the cache does. It goes on as it is, as
                                            // when a task's check meets one (see `walk_or_catch`).
                                            failed.get_or_insert(payload);
                                        } else {
                                            this.lane.failures.push(id, payload);
                                            kept.push(id);
                                        }
                                    }
                                    // A soundness violation at this require (a cycle): the execution meets it too,
                                    // unless a task before it in the group failed (its panic goes on first).
                                    Err((payload, true)) => {
                                        matches = false;
                                        if !std::mem::replace(&mut failed_before, true) {
                                            violation = Some(payload);
                                        }
                                    }
                                }
                            }
                            if let Some(payload) = violation {
                                this.lane.violation = true;
                                panic::resume_unwind(payload);
                            }
                            if !matches {
                                return false;
                            }
                            index += group.len();
                        }
                        ReplayDep::ProvideFile { path, stamper } => {
                            // Written where the execution wrote it: what tasks required after it see is the same.
                            match files.next() {
                                Some((file, contents)) if file == path => {
                                    if !remote.restore_file(path, contents.as_deref()) {
                                        return false;
                                    }
                                }
                                _ => return false,
                            }
                            // An error stamping it is recorded in the dependency, as for an execution.
                            let _ = this.provide_file_with_stamper(path, *stamper);
                            index += 1;
                        }
                    }
                }
                true
            }))
        });
        if let Some(payload) = failed {
            for id in kept {
                self.lane.failures.take(id);
            }
            return Replayed::Failed(payload);
        }
        match replayed {
            Ok(true) => {
                remote.restored();
                Replayed::Hit(replay.output)
            }
            Ok(false) => self.restart(id, kept),
            // A soundness check refused: the execution meets the refusal at the same point.
            Err(_) => self.restart_after_panic(id, kept),
        }
    }

    /// [`restart`](Self::restart) after a panic met while replaying: the execution that follows meets what caused
    /// it again (or catches it), so the violation flag it may have raised is cleared first.
    fn restart_after_panic(&mut self, id: TaskId, kept: Vec<TaskId>) -> Replayed<T::Output> {
        self.lane.violation = false;
        self.restart(id, kept)
    }

    /// Drops what task `id` recorded so far in this execution (a replay that missed, or before recording a hit).
    fn restart(&mut self, id: TaskId, kept: Vec<TaskId>) -> Replayed<T::Output> {
        self.in_engine(|this| {
            this.store.start_execution(id);
        });
        Replayed::Miss(kept)
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
                    group: dep.group,
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

/// The task dependency at `index` of `deps` with the rest of its `require_tasks` group, if it starts one: each task
/// with the digest of the output the execution saw, and the group's stamper.
fn task_group<T>(deps: &[ReplayDep<T>], index: usize) -> (Vec<(&T, &ContentDigest)>, OutputStamper) {
    let mut group = Vec::new();
    let mut group_stamper = OutputStamper::default();
    for (offset, dep) in deps[index..].iter().enumerate() {
        match dep {
            ReplayDep::RequireTask {
                task,
                stamper,
                group: mark,
                output,
            } if offset == 0 || (*mark == Group::Member && *stamper == group_stamper) => {
                group_stamper = *stamper;
                group.push((task, output));
                if offset == 0 && *mark != Group::First {
                    break;
                }
            }
            _ => break,
        }
    }
    (group, group_stamper)
}
