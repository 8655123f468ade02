//! Executing a task, and what a task sees while it executes: the [`Context`] through which it requires files and
//! tasks and provides files. An execution replaces the task's recorded dependencies; its panic is caught, recorded
//! as a failure (see `Store::fail_execution`) and handed back, so that the caller decides which task meets it.

use std::fs::File;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use crate::context::marks::Mark;
use crate::context::remote::Replayed;
use crate::context::state::{Payload, PendingRead, PendingStamp};
use crate::context::top_down::TopDownContext;
use crate::dependency::{FileDep, FileDependency, TaskDependency};
use crate::ids::{FileId, TaskId};
use crate::path::NormalPath;
use crate::stamp::{FileStamper, OutputStamper};
use crate::tracker::Tracker;
use crate::{Context, Task};

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// Executes task `id` (`task` is its value when the caller has it). A panic of the execution is returned, with
    /// the failure recorded (see `Store::fail_execution`) and the executing task restored; the caller decides who
    /// meets it.
    pub(super) fn execute(&mut self, id: TaskId, task: Option<&T>) -> Result<(), Payload> {
        let owned;
        let task = match task {
            Some(task) => task,
            None => {
                owned = self.store.task(id).clone();
                &owned
            }
        };
        // Other lanes may take the branches of a fork this lane held back while it only checked tasks.
        self.let_go_held_back();
        self.tracker.execute_start(task);
        if let Some(executed) = &mut self.state.executed {
            executed.push(id);
        }
        let bottom_up = self.state.bottom_up.is_some();
        let before = bottom_up.then(|| self.before_execution(id));
        let failed_before = self.lane.failed_before.take() == Some(id);
        let previous = self.store.start_execution(id);
        let parent = self.lane.current.replace(id);
        // In a parallel build, the task's own code runs without holding the engine (see `crate::context::parallel`).
        // With a shared cache, a hit replays the task's recorded trace instead (see `crate::context::remote`).
        let (result, restored) = if self.remote.is_some() {
            self.run_or_replay(id, task)
        } else {
            (self.run(task), false)
        };
        self.lane.current = parent;
        // In a parallel build, a violation found on another lane may be this execution's (see
        // `TopDownContext::defer_violation`): then it fails with it, as on one thread.
        let deferred = if self.state.deferred.is_empty() {
            None
        } else {
            self.take_deferred(id)
        };
        let doomed = deferred.is_some();
        let result = match deferred {
            Some(message) => {
                self.lane.violation = true;
                Err(Box::new(message) as Payload)
            }
            None => result,
        };
        match result {
            Ok(output) => {
                self.store.finish_execution(id, output, previous);
                if self.remote.is_some() && !restored {
                    self.remote_upload(id, task);
                    // The upload let go of the engine: a violation may have been deferred to it meanwhile.
                    if !self.state.deferred.is_empty() {
                        if let Some(message) = self.take_deferred(id) {
                            self.store.invalidate(id);
                            self.lane.violation = true;
                            if let Some(before) = before {
                                self.after_execution(id, before);
                            }
                            return Err(Box::new(message));
                        }
                    }
                }
                if let Some(before) = before {
                    self.after_execution(id, before);
                }
                let output = self.store.output(id).expect("BUG: executed task without output");
                if restored {
                    self.tracker.restored(task);
                }
                self.tracker.execute_end(task, output);
                Ok(())
            }
            Err(payload) => {
                // A violation that its code met at a require (in this task or below) and let through is one too:
                // the tasks that checked or replayed their way to this one go on with it as it is (see
                // `make_consistent` and `replay`); executing them now would read what the violating task wrote.
                let violation = std::mem::take(&mut self.lane.violation);
                let repeatable = !violation && !self.is_violation_of_session(&payload);
                self.store.fail_execution(id, repeatable, failed_before, previous);
                if !repeatable {
                    self.note_violation(id, &payload);
                }
                if doomed {
                    // On one thread it failed before what it did since, claims and reads included.
                    self.store.invalidate(id);
                }
                if let Some(before) = before {
                    self.after_execution(id, before);
                }
                Err(payload)
            }
        }
    }

    /// Runs the task's own code (without the engine in a parallel build), catching its panic.
    #[inline(always)]
    fn run(&mut self, task: &T) -> Result<T::Output, Payload> {
        self.outside_engine(|this| panic::catch_unwind(AssertUnwindSafe(|| task.execute(this))))
    }

    /// With a shared cache: replays the task's trace if one is found and matches, otherwise runs its code. Returns
    /// the result and whether it was restored.
    #[inline(never)]
    fn run_or_replay(&mut self, id: TaskId, task: &T) -> (Result<T::Output, Payload>, bool) {
        let replayed = match self.remote_lookup(task) {
            Some(replay) => self.replay(id, replay),
            None => Replayed::Miss(Vec::new()),
        };
        match replayed {
            Replayed::Hit(output) => (Ok(output), true),
            Replayed::Failed(payload) => (Err(payload), false),
            Replayed::Miss(kept) => {
                let result = self.run(task);
                for id in kept {
                    self.lane.failures.take(id);
                }
                (result, false)
            }
        }
    }

    fn current(&self, operation: &str) -> TaskId {
        match self.lane.current {
            Some(id) => id,
            None => panic!("BUG: {operation} called while no task is executing"),
        }
    }

    fn file_node(&mut self, path: &Path) -> io::Result<FileId> {
        Ok(self.file_node_of(path, NormalPath::new(path))?.0)
    }

    /// The file node of `path`, normalised already (`normal`, maybe before taking the engine), and the normalised
    /// path.
    fn file_node_of<'p>(
        &mut self,
        path: &Path,
        normal: io::Result<NormalPath<'p>>,
    ) -> io::Result<(FileId, NormalPath<'p>)> {
        match normal {
            Ok(normal) => Ok((self.store.get_or_create_file(normal.clone()), normal)),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot make path '{}' absolute: {e}", path.display()),
            )),
        }
    }
}

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    #[track_caller]
    fn require_file_in_engine(&mut self, path: &Path, stamper: FileStamper) -> io::Result<Option<File>> {
        let current = self.current("require_file");
        self.meet_own_deferred();
        let file = self.file_node(path)?;
        self.check_require(current, file);
        let normal = self.store.file_path(file);
        let (stamp, result) = stamp_and_open(stamper, normal, path);
        self.store.add_require_file(current, FileDep { file, stamper, stamp });
        if let Some(stamp) = stamp {
            self.tracker
                .require_file_end(&FileDependency::new(path, stamper, stamp));
        }
        result
    }

    #[track_caller]
    fn provide_file_in_engine(&mut self, path: &Path, stamper: FileStamper) -> io::Result<()> {
        let current = self.current("provide_file");
        self.meet_own_deferred();
        let file = self.file_node(path)?;
        if let Some(par) = self.parallel() {
            par.stop_reading_late();
        }
        self.check_provide(current, file);
        let stamp = stamper.stamp(self.store.file_path(file));
        self.store.add_provide_file(
            current,
            FileDep {
                file,
                stamper,
                stamp: stamp.as_ref().ok().copied(),
            },
        );
        match stamp {
            Ok(stamp) => {
                self.tracker
                    .provide_file_end(&FileDependency::new(path, stamper, stamp));
                Ok(())
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot stamp provided file '{}': {e}", path.display()),
            )),
        }
    }

    /// `require_file` from a task's own code in a parallel build: the soundness check and the record of the
    /// dependency (without a stamp yet) in one step holding the engine; stamping (hashing, maybe) and opening the
    /// file without it, so that other lanes go on meanwhile; the stamp is filled in the next time this lane takes
    /// the engine, which is before the execution ends (see [`apply_pending`](Self::apply_pending)).
    /// Until then the recorded stamp reads as failed, which is never consistent, and nobody checks the dependencies
    /// of a task while it executes.
    fn require_file_outside_engine(&mut self, path: &Path, stamper: FileStamper) -> io::Result<Option<File>> {
        if let Some(result) = self.read_late(path, stamper) {
            return result;
        }
        let (current, file, index, normal) = self.record_unstamped(path, stamper, false)?;
        let (stamp, result) = stamp_and_open(stamper, normal.as_path(), path);
        self.lane.pending_stamp = Some(PendingStamp {
            task: current,
            index,
            file,
            stamp,
            stamper,
            provided: false,
        });
        set_path(&mut self.lane.pending_path, path);
        result
    }

    /// `require_file` from a task's own code in a parallel build while no file has a provider (see
    /// `Parallel::reads_late`): stamps and opens the file without taking the engine at all, and leaves the check and
    /// the record of the dependency to the lane's next engine take, which comes before the task's next step in the
    /// engine and before its execution ends (see [`apply_pending_reads`](Self::apply_pending_reads)). Until then the
    /// task only runs its own code and reads files, so the reads are recorded in order, in their place among the
    /// task's dependencies. `None` when the read must take the engine now: a provide may have been checked, the lane
    /// has a stamp pending, the lane runs no branch of a fork, or the path cannot be normalised (its error comes after
    /// the checks).
    #[inline]
    fn read_late(&mut self, path: &Path, stamper: FileStamper) -> Option<io::Result<Option<File>>> {
        if self.lane.pending_stamp.is_some() || self.lane.branches.is_empty() {
            return None;
        }
        let task = self.lane.current?;
        if !self.parallel()?.reads_late() {
            return None;
        }
        let normal = NormalPath::new(path).ok()?;
        let (stamp, result) = stamp_and_open(stamper, normal.as_path(), path);
        let normalised = !normal.is_borrowed();
        let lane = &mut *self.lane;
        let index = lane.pending_reads.len();
        if index == lane.read_paths.len() {
            lane.read_paths.push(Default::default());
        }
        let (given, normal_buffer) = &mut lane.read_paths[index];
        set_path(given, path);
        if normalised {
            set_path(normal_buffer, normal.as_path());
        }
        lane.pending_reads.push(PendingRead {
            task,
            stamper,
            stamp,
            normalised,
        });
        Some(result)
    }

    /// Holding the engine: the soundness checks of the executing task requiring (or, with `provided`, providing)
    /// the file at `path`, and the record of the dependency without a stamp. Returns the task, the file, the index
    /// of the dependency and the file's normalised path.
    fn record_unstamped<'p>(
        &mut self,
        path: &'p Path,
        stamper: FileStamper,
        provided: bool,
    ) -> io::Result<(TaskId, FileId, usize, NormalPath<'p>)> {
        // Normalised before taking the engine (lexical work, and the current directory for a relative path), but
        // its error returned only after the checks that come first on one thread too.
        let normal = NormalPath::new(path);
        self.in_engine(|this| {
            let current = this.current(if provided { "provide_file" } else { "require_file" });
            this.meet_own_deferred();
            let (file, normal) = this.file_node_of(path, normal)?;
            let dep = FileDep {
                file,
                stamper,
                stamp: None,
            };
            let index = if provided {
                if let Some(par) = this.parallel() {
                    par.stop_reading_late();
                }
                this.check_provide(current, file);
                let index = this.store.dep_count(current);
                this.store.add_provide_file(current, dep);
                index
            } else {
                this.check_require(current, file);
                let index = this.store.dep_count(current);
                this.store.add_require_file(current, dep);
                index
            };
            Ok((current, file, index, normal))
        })
    }

    /// `provide_file` from a task's own code in a parallel build: the checks and the claim in one step holding the
    /// engine, stamping without it (see [`require_file_outside_engine`](Self::require_file_outside_engine)).
    fn provide_file_outside_engine(&mut self, path: &Path, stamper: FileStamper) -> io::Result<()> {
        let (current, file, index, normal) = self.record_unstamped(path, stamper, true)?;
        let stamp = stamper.stamp(normal.as_path());
        self.lane.pending_stamp = Some(PendingStamp {
            task: current,
            index,
            file,
            stamp: stamp.as_ref().ok().copied(),
            stamper,
            provided: true,
        });
        set_path(&mut self.lane.pending_path, path);
        stamp.map(drop).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot stamp provided file '{}': {e}", path.display()),
            )
        })
    }

    /// Checks and records the reads this lane left pending (see [`read_late`](Self::read_late)), or fills in the
    /// stamp of the file dependency that it recorded without one, if any, and tells the tracker. Called whenever the
    /// lane takes the engine in a parallel build.
    #[inline]
    pub(super) fn apply_pending(&mut self) {
        if !self.lane.pending_reads.is_empty() {
            self.apply_pending_reads();
        }
        if let Some(pending) = self.lane.pending_stamp.take() {
            self.store
                .set_file_stamp(pending.task, pending.index, pending.file, pending.stamp);
            if let Some(stamp) = pending.stamp {
                let dependency = FileDependency::new(&self.lane.pending_path, pending.stamper, stamp);
                if pending.provided {
                    self.tracker.provide_file_end(&dependency);
                } else {
                    self.tracker.require_file_end(&dependency);
                }
            }
        }
    }

    /// Checks and records the reads this lane left pending (see [`read_late`](Self::read_late)), in order. When a
    /// file has a provider now, it provided the file after the read, and the violation, if any, is deferred to
    /// whichever task comes later on one thread (see `check_late_require`): this does not panic. A task to which a
    /// violation was deferred (meanwhile, or by one of these reads) fails with it, and on one thread never got past
    /// that point: its reads from there on are dropped.
    #[inline(never)]
    fn apply_pending_reads(&mut self) {
        let reads = std::mem::take(&mut self.lane.pending_reads);
        for (index, read) in reads.iter().enumerate() {
            if !self.state.deferred.is_empty() && self.is_deferred(read.task) {
                break;
            }
            let file = {
                let (given, normal) = &self.lane.read_paths[index];
                let normal = if read.normalised { normal } else { given };
                self.store.get_or_create_file(NormalPath::again(normal))
            };
            self.check_late_require(read.task, file);
            self.store.add_require_file(
                read.task,
                FileDep {
                    file,
                    stamper: read.stamper,
                    stamp: read.stamp,
                },
            );
            if let Some(stamp) = read.stamp {
                let given = &self.lane.read_paths[index].0;
                self.tracker
                    .require_file_end(&FileDependency::new(given, read.stamper, stamp));
            }
        }
        // The list goes back to the lane, empty, with its room.
        let mut reads = reads;
        reads.clear();
        self.lane.pending_reads = reads;
    }

    #[track_caller]
    fn require_task_in_engine(&mut self, task: &T, stamper: OutputStamper) -> T::Output {
        let id = self.store.get_or_create_task(task);
        self.require_known_task_in_engine(id, task, stamper)
    }

    /// [`require_task_with_stamper`](Context::require_task_with_stamper) of `task`, whose id the caller looked up
    /// already (`id`), holding the engine or taking it.
    #[track_caller]
    pub(super) fn require_known_task(&mut self, id: TaskId, task: &T, stamper: OutputStamper) -> T::Output {
        if self.held {
            self.require_known_task_in_engine(id, task, stamper)
        } else {
            self.in_engine(|this| this.require_known_task_in_engine(id, task, stamper))
        }
    }

    /// [`require_known_task`](Self::require_known_task) without a copy of the output, for a branch of a fork, whose
    /// requiring task takes the outputs from the store when the fork joins.
    #[track_caller]
    pub(super) fn require_known_task_for_branch(&mut self, id: TaskId, task: &T, stamper: OutputStamper) {
        if self.held {
            self.make_required_consistent(id, task, stamper)
        } else {
            self.in_engine(|this| this.make_required_consistent(id, task, stamper))
        }
    }

    #[track_caller]
    fn require_known_task_in_engine(&mut self, id: TaskId, task: &T, stamper: OutputStamper) -> T::Output {
        self.make_required_consistent(id, task, stamper);
        self.store
            .output(id)
            .expect("BUG: consistent task without output")
            .clone()
    }

    /// The engine's part of requiring task `id` (`task`): makes it consistent, records the dependency of the
    /// executing task on it, and tells the tracker; its output is then in the store.
    #[track_caller]
    #[inline(always)]
    fn make_required_consistent(&mut self, id: TaskId, task: &T, stamper: OutputStamper) {
        self.meet_own_deferred();
        self.tracker.require_task_start(task, &stamper);
        // A task in progress on this lane's stack is a cycle, found here so that the panic is located at the build
        // script's `require_task` (a cycle found deeper, below a required task, is located in the engine).
        let mark = self.marks.get(id);
        if mark == Mark::InProgress && (self.par.is_none() || self.marks.owner(id) == self.lane_index) {
            self.cycle(id)
        }
        // A task already consistent in this session (required again, or by several tasks) is done at once: what
        // `make_consistent` and `bring_up_to_date` do first, without the guard that restores the session on a panic.
        let executed = if mark == Mark::Done {
            false
        } else if self.state.bottom_up.is_some() {
            self.bring_up_to_date_or_unwind(id, task, stamper)
        } else {
            self.make_consistent_or_unwind(id, task, stamper)
        };
        if let Some(current) = self.lane.current {
            let version = self.store.version(id);
            self.record_require(current, id, stamper, version);
        }
        let output = self.store.output(id).expect("BUG: consistent task without output");
        self.tracker
            .require_task_end(&TaskDependency::new(task, stamper), output, executed);
    }
}

/// What a task sees: each call holds the engine while it runs (see `crate::context::parallel`).
///
/// The file methods are `#[track_caller]` down to the soundness checks, so that the panic of an overlap or a
/// hidden dependency is located (`std::panic::Location`, the panic message's `at FILE:LINE`) at the build script's
/// `require_file`/`provide_file`, when the executing task holds the engine (always, except in a branch of a
/// parallel `require_tasks`, where the claim is made in a closure that takes the engine, and the location is
/// there). So is a cycle found at the build script's `require_task` (the required task is in progress on the
/// requiring task's own stack); a cycle found deeper (below a required task that is checked, or through tasks in
/// progress on other threads) is located in the engine, past closures that catch panics.
impl<T: Task, A: Tracker<T>> Context<T> for TopDownContext<'_, T, T::Output, A> {
    #[track_caller]
    fn require_file<P: AsRef<Path>>(&mut self, path: P) -> io::Result<Option<File>> {
        self.require_file_with_stamper(path, FileStamper::Modified)
    }

    #[track_caller]
    fn require_file_with_stamper<P: AsRef<Path>>(&mut self, path: P, stamper: FileStamper) -> io::Result<Option<File>> {
        if self.held {
            self.require_file_in_engine(path.as_ref(), stamper)
        } else {
            self.require_file_outside_engine(path.as_ref(), stamper)
        }
    }

    #[track_caller]
    fn provide_file<P: AsRef<Path>>(&mut self, path: P) -> io::Result<()> {
        self.provide_file_with_stamper(path, FileStamper::Modified)
    }

    #[track_caller]
    fn provide_file_with_stamper<P: AsRef<Path>>(&mut self, path: P, stamper: FileStamper) -> io::Result<()> {
        if self.held {
            self.provide_file_in_engine(path.as_ref(), stamper)
        } else {
            self.provide_file_outside_engine(path.as_ref(), stamper)
        }
    }

    #[track_caller]
    fn require_task(&mut self, task: &T) -> T::Output {
        self.require_task_with_stamper(task, OutputStamper::Equals)
    }

    #[track_caller]
    fn require_task_with_stamper(&mut self, task: &T, stamper: OutputStamper) -> T::Output {
        if self.held {
            self.require_task_in_engine(task, stamper)
        } else {
            self.in_engine(|this| this.require_task_in_engine(task, stamper))
        }
    }

    fn require_tasks(&mut self, tasks: &[T]) -> Vec<T::Output> {
        self.require_tasks_with_stamper(tasks, OutputStamper::Equals)
    }

    fn require_tasks_with_stamper(&mut self, tasks: &[T], stamper: OutputStamper) -> Vec<T::Output> {
        self.in_engine(|this| {
            this.meet_own_deferred();
            this.require_group(tasks, None, stamper)
        })
    }
}

/// Makes `buffer` hold `path`, keeping its room.
fn set_path(buffer: &mut std::path::PathBuf, path: &Path) {
    let buffer = buffer.as_mut_os_string();
    buffer.clear();
    buffer.push(path.as_os_str());
}

/// What `require_file` records and returns for the file at `normal` (`path` as the task gave it): the stamp, `None`
/// when stamping or opening failed (a failed stamp is never consistent), and the file, or the error naming `path`.
fn stamp_and_open(
    stamper: FileStamper,
    normal: &Path,
    path: &Path,
) -> (Option<crate::stamp::FileStamp>, io::Result<Option<File>>) {
    match stamper.stamp_and_open(normal) {
        Ok((stamp, opened)) => (Some(stamp), Ok(opened)),
        Err(e) => (
            None,
            Err(io::Error::new(
                e.kind(),
                format!("cannot read file '{}': {e}", path.display()),
            )),
        ),
    }
}
