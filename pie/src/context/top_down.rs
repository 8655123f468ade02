//! The incremental top-down context: make a required task consistent by re-checking its dependencies, executing
//! it only when it is new or one of them is inconsistent.
//!
//! Algorithm, for `require_task(t)`:
//! 1. If `t` was already made consistent in this session, return its cached output.
//! 2. If `t` is being made consistent right now (it is on the require stack), the build is cyclic: panic.
//! 3. Otherwise check `t`'s dependencies in the order they were made. A file dependency is re-stamped; a task
//!    dependency first makes the required task consistent (recursively), then compares its output version with the
//!    one recorded. The first inconsistent dependency stops the check.
//! 4. If `t` has no output or a dependency was inconsistent, execute `t`: drop its old dependencies, run
//!    `Task::execute` with this context as the [`Context`](crate::Context), and store the output (bumping its
//!    version only when it changed, which gives early cutoff).
//!
//! The other parts of the engine are beside it: executing a task and the [`Context`](crate::Context) a task sees
//! (`execute.rs`), the soundness checks made where dependencies are made (`soundness.rs`), and bottom-up builds
//! (`bottom_up.rs`), all methods of [`TopDownContext`]; the state they share is in `state.rs` and `marks.rs`.
//!
//! Depth: step 3 walks the graph with an explicit stack of frames in the session state (12 bytes a level), so
//! checking a chain of a million tasks needs no native recursion. Only execution recurses natively (a task's
//! `execute` requires tasks through this context), and it goes through [`crate::grow_stack`], so depth is bounded
//! by memory, not by the thread's stack.

use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::context::marks::{Mark, Marks};
use crate::context::parallel::Parallel;
use crate::context::remote::RemoteHook;
use crate::context::state::{Frame, LaneState, Payload, Ptr, SessionState};
use crate::dependency::{
    missing_stamp, Dep, Dependency, FileDep, FileDependency, Group, Inconsistency, TaskDep, TaskDependency,
    UNKNOWN_VERSION,
};
use crate::ids::TaskId;
use crate::stamp::OutputStamper;
use crate::store::Store;
use crate::tracker::Tracker;
use crate::{grow_stack, Task};

/// The engine as one lane sees it during one build within a session: the shared state (store, tracker, marks,
/// session state), this lane's own state, and, during a parallel `require_tasks`, the parallel build it takes part
/// in (see `crate::context::parallel`).
pub(crate) struct TopDownContext<'s, T, O, A> {
    pub(crate) store: Ptr<'s, Store<T, O>>,
    pub(crate) tracker: Ptr<'s, A>,
    pub(crate) marks: Ptr<'s, Marks>,
    pub(crate) state: Ptr<'s, SessionState>,
    pub(crate) lane: Ptr<'s, LaneState>,
    /// The parallel build this lane works in, if any: only while a parallel `require_tasks` (or `require_all`) is
    /// in progress.
    pub(crate) par: Option<std::ptr::NonNull<Parallel<T>>>,
    /// Whether this lane holds the engine (always, in a build on one thread); see `crate::context::parallel`.
    pub(crate) held: bool,
    /// How many lanes a parallel build may use (`Pie::set_threads`, with 0 resolved).
    pub(crate) threads: usize,
    /// This lane's index among the lanes of a parallel build: 0 for the caller's thread.
    pub(crate) lane_index: usize,
    /// The shared cache configured on the `Pie`, if any (see `crate::context::remote`).
    pub(crate) remote: Option<&'s dyn RemoteHook<T, O>>,
}

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// Requires `task` as the root of a build, making it a root of the store (see `crate::liveness`).
    pub(crate) fn require_initial(&mut self, task: &T) -> T::Output {
        self.build(std::slice::from_ref(task), |this, ids| {
            this.require_known_task(ids[0], task, OutputStamper::Equals)
        })
    }

    /// Requires `tasks` as the roots of one build (see [`require_group`](Self::require_group)), making each a root.
    pub(crate) fn require_all_initial(&mut self, tasks: &[T]) -> Vec<T::Output> {
        self.build(tasks, |this, ids| {
            this.require_group(tasks, Some(ids), OutputStamper::Equals)
        })
    }

    /// Runs `f` as one build whose roots are `roots` (each made a root of the store), between the tracker's
    /// `build_start` and `build_end`; `f` is given the roots' ids, in order, so that it looks none up again.
    fn build<R>(&mut self, roots: &[T], f: impl FnOnce(&mut Self, &[TaskId]) -> R) -> R {
        self.recover_from_unwind();
        let mut ids = Vec::with_capacity(roots.len());
        for task in roots {
            let id = self.store.get_or_create_task(task);
            if !self.store.is_root(id) {
                self.state.new_roots.push(id);
                self.store.set_root(id, true);
            }
            ids.push(id);
        }
        self.tracker.build_start();
        let result = f(self, &ids);
        self.tracker.build_end();
        self.state.building = false;
        result
    }

    /// After a panic escaped an earlier build of this session, forget what was in progress then, so that those
    /// tasks are checked (and, lacking output, executed) again instead of being mistaken for a cycle.
    /// Also starts the bookkeeping of a new build (see `SessionState::building`).
    pub(super) fn recover_from_unwind(&mut self) {
        for frame in self.lane.stack.drain(..) {
            self.marks.set(frame.id, Mark::Unseen);
        }
        self.lane.current = None;
        self.lane.failures.clear();
        self.lane.violation = false;
        self.lane.executions.clear();
        self.state.deferred.clear();
        if self.state.building {
            // What a bottom-up build of this session scheduled and trusted is no longer reliable.
            self.state.panicked = true;
            self.state.bottom_up = None;
        }
        self.state.built = true;
        self.state.building = true;
    }

    /// Makes task `id` consistent; `task` is the task value when the caller has it (saves a clone). Returns
    /// whether it executed.
    ///
    /// The check is a depth-first walk over recorded task dependencies with an explicit stack of [`Frame`]s
    /// (`state.stack`), so checking a deep graph costs a few bytes per level instead of a native stack frame.
    /// Only executing recurses natively (a task's `execute` requires tasks through this context); that recursion
    /// goes through [`grow_stack`].
    ///
    /// Panics meet the tasks that would meet them in a clean build. When a task executed during the check panics in
    /// its own code, the task below it in the walk (which was only checking its dependency on it) executes
    /// instead, and meets the panic, with its original payload, when it requires the task (see
    /// `LaneState::failures`), so that it may catch it; a cycle found while checking a task's dependencies
    /// makes that task execute too. A soundness violation, and a panic that reaches `id`, unwind to the caller
    /// with the frames popped.
    pub(super) fn make_consistent(&mut self, id: TaskId, task: Option<&T>) -> bool {
        loop {
            match self.marks.get(id) {
                Mark::Done => return false,
                // A cycle, or, in a parallel build, a task that another lane works on: then look again after it.
                Mark::InProgress => self.wait_or_cycle(id),
                Mark::Failed => {
                    // A soundness violation is met again as it was; a kept panic goes on to its requirer.
                    self.repeat_violation(id);
                    self.resume_failure(id);
                    // It executes again; should it fail again, it fails as before (nothing it depends on changes
                    // within a session), so a requirer that caught the first failure stays consistent with it.
                    self.lane.failed_before = Some(id);
                    break;
                }
                Mark::Unseen | Mark::Scheduled => break,
            }
        }
        let base = self.lane.stack.len();
        self.enter(id, false);
        // A task without output executes (the frames pushed by the walk are of tasks with output, or probes).
        let mut execute_top = self.store.output(id).is_none();
        loop {
            if !std::mem::take(&mut execute_top) && !self.walk_or_catch(base) {
                return false;
            }
            let top = self.lane.stack.len() - 1;
            // A task of a `require_tasks` group that the task below recorded: the rest of the group with it, in
            // parallel (see `crate::context::parallel`); the walk then goes on from the task below.
            if top > base && self.threads > 1 && self.fork_rest_of_group(base, top) {
                continue;
            }
            let frame = self.lane.stack[top];
            let task = if top == base { task } else { None };
            let result = grow_stack(|| self.execute(frame.id, task));
            self.lane.stack.pop();
            match result {
                Ok(()) => {
                    self.marks.set(frame.id, Mark::Done);
                    if top == base {
                        return true;
                    }
                }
                Err(payload) => {
                    self.marks.set(frame.id, Mark::Failed);
                    // A soundness violation goes on as it is: the tasks below were only checking their
                    // dependencies, and the failed execution may have changed what they read before it (which is
                    // what the violation says); executing them now would not be what a clean build does.
                    if top == base || self.store.version(frame.id) == UNKNOWN_VERSION {
                        self.unwind_frames_from(base, payload);
                    }
                    self.lane.failures.push(frame.id, payload);
                    execute_top = true;
                }
            }
        }
    }

    /// For a task marked failed in this session with a soundness violation: goes on with that violation again (see
    /// `SessionState::violations`). Otherwise returns.
    #[inline]
    fn repeat_violation(&mut self, id: TaskId) {
        if self.state.violations.is_empty() {
            return;
        }
        if let Some(message) = self.state.violations.get(&id) {
            let message = message.clone();
            self.lane.violation = true;
            panic::resume_unwind(Box::new(message));
        }
    }

    /// For a task marked failed in this session: goes on with the panic of its execution when it is kept (see
    /// `LaneState::failures`); otherwise returns, and the task executes again.
    fn resume_failure(&mut self, id: TaskId) {
        if let Some(payload) = self.lane.failures.take(id) {
            panic::resume_unwind(payload);
        }
    }

    /// [`walk`](Self::walk), except that a cycle found while checking the dependencies of the top frame's task (a
    /// require of a task in progress) makes that task execute: its execution makes the same require and meets the
    /// same panic there, where it may catch it. Any other panic goes on, with the frames popped.
    fn walk_or_catch(&mut self, base: usize) -> bool {
        match panic::catch_unwind(AssertUnwindSafe(|| self.walk(base))) {
            Ok(must_execute) => must_execute,
            Err(_) if std::mem::take(&mut self.lane.violation) => true,
            Err(payload) => self.unwind_frames_from(base, payload),
        }
    }

    /// Pops the frames from `base` on (their tasks are unseen again: they were only being checked) and goes on
    /// with the panic.
    pub(super) fn unwind_frames_from(&mut self, base: usize, payload: Payload) -> ! {
        self.forget_frames_from(base);
        panic::resume_unwind(payload)
    }

    /// Pops the frames from `base` on, whose tasks were only being checked: they are unseen again, or, in a
    /// bottom-up build, scheduled (their check was cut short, and they may depend on a task that failed meanwhile,
    /// whose dependents were then in progress and so not scheduled; executing them again decides).
    pub(super) fn forget_frames_from(&mut self, base: usize) {
        let bottom_up = self.state.bottom_up.is_some();
        while self.lane.stack.len() > base {
            let frame = self.lane.stack.pop().expect("BUG: a frame above the base");
            self.marks.set(frame.id, Mark::Unseen);
            if bottom_up {
                self.schedule(frame.id);
            }
        }
    }

    /// [`make_consistent`](Self::make_consistent), leaving the session as it was if a panic unwinds through it (a
    /// task's own panic or a soundness violation), so that a requiring task that catches the panic goes on with a
    /// sound context: the executing task is restored, the frames pushed since are popped, and the requiring task
    /// depends on the task that panicked (on its failure version: see `Store::fail_execution`).
    pub(super) fn make_consistent_or_unwind(&mut self, id: TaskId, task: &T, stamper: OutputStamper) -> bool {
        self.or_unwind(id, stamper, |this| this.make_consistent(id, Some(task)))
    }

    /// Runs `f`, which makes task `id` consistent, restoring the session if a panic unwinds through it (see
    /// [`make_consistent_or_unwind`](Self::make_consistent_or_unwind)).
    #[inline(always)]
    pub(super) fn or_unwind(&mut self, id: TaskId, stamper: OutputStamper, f: impl FnOnce(&mut Self) -> bool) -> bool {
        let base = self.lane.stack.len();
        let current = self.lane.current;
        match panic::catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(executed) => executed,
            Err(payload) => {
                self.forget_frames_from(base);
                self.lane.current = current;
                if let Some(current) = current {
                    self.record_failed_require(current, id, stamper);
                }
                panic::resume_unwind(payload)
            }
        }
    }

    /// Records that `current` required task `id` with `stamper`, and that a panic came out of it.
    pub(super) fn record_failed_require(&mut self, current: TaskId, id: TaskId, stamper: OutputStamper) {
        // No edge that would close a cycle: the panic may be a cycle found at `id` or below it (then `id` already
        // reaches the requiring task through recorded dependencies).
        if self.marks.get(id) == Mark::InProgress || self.store.depends_on_before(id, self.store.dep_count(id), current)
        {
            return;
        }
        // The failure version of `id`, or, when the panic came from below a task that did not fail itself, a
        // version that is never consistent.
        let version = match self.marks.get(id) {
            Mark::Failed => self.store.version(id),
            _ => UNKNOWN_VERSION,
        };
        self.record_require(current, id, stamper, version);
    }

    /// Records that `current` required task `id` with `stamper`, seeing output version `version`.
    pub(super) fn record_require(&mut self, current: TaskId, id: TaskId, stamper: OutputStamper, version: u64) {
        self.store.add_require_task(
            current,
            TaskDep {
                task: id,
                stamper,
                group: Group::Alone,
                version,
            },
        );
    }

    /// Checks the frames above `base` until the task of the top frame must execute (`true`, the frame stays) or
    /// the frame at `base` turned out consistent (`false`, popped).
    ///
    /// Not inlined, so that its locals stay out of `make_consistent`'s frame, which is on the native stack once per
    /// level of nested executions.
    #[inline(never)]
    fn walk(&mut self, base: usize) -> bool {
        loop {
            let top = self.lane.stack.len() - 1;
            let frame = self.lane.stack[top];
            match self.check_from(frame) {
                None => {} // descended into an unseen required task
                Some(true) => return true,
                // A violation deferred to it while it was checked (see `TopDownContext::defer_violation`): it
                // executes, and meets it there, as on one thread, where its check would have come later.
                Some(false) if !self.state.deferred.is_empty() && self.is_deferred(frame.id) => return true,
                Some(false) => {
                    self.lane.stack.pop();
                    let mark = if frame.probe { Mark::Failed } else { Mark::Done };
                    self.marks.set(frame.id, mark);
                    if top == base {
                        return false;
                    }
                }
            }
        }
    }

    /// Marks `id` in progress and pushes its frame (see [`Frame::probe`]).
    #[inline]
    pub(super) fn enter(&mut self, id: TaskId, probe: bool) {
        self.marks.set(id, Mark::InProgress);
        if self.par.is_some() {
            self.note_lane(id);
        }
        self.lane.stack.push(Frame {
            id,
            next: 0,
            resume: false,
            probe,
        });
    }

    /// Continues checking the dependencies of `frame`'s task, in order: `Some(true)` at the first inconsistent one
    /// (or after pushing the frame of a required task without output, which must execute), `Some(false)` when all
    /// are consistent, and `None` after pushing the frame of an unseen required task (this frame then resumes at
    /// that dependency). A task without output is never walked, unless probed.
    #[inline]
    fn check_from(&mut self, frame: Frame) -> Option<bool> {
        let id = frame.id;
        let mut resume = frame.resume;
        for index in frame.next as usize..self.store.dep_count(id) {
            let inconsistent = match self.store.dep(id, index) {
                Dep::RequireFile(dep) => self.check_file(dep, Some((id, index))),
                Dep::ProvideFile(dep) => self.check_file(dep, None),
                Dep::RequireTask(dep) => {
                    if !std::mem::take(&mut resume) {
                        if self.threads > 1 && self.marks.get(dep.task) == Mark::Unseen {
                            self.prefetch_stamps(id, index);
                        }
                        // A cycle, or, in a parallel build, a task that another lane works on: look again after.
                        let mark = loop {
                            match self.marks.get(dep.task) {
                                Mark::InProgress => self.wait_or_cycle(dep.task),
                                mark => break mark,
                            }
                        };
                        let view = TaskDependency::new(self.store.task(dep.task), dep.stamper);
                        self.tracker.check_dependency_start(&Dependency::RequireTask(view));
                        match mark {
                            Mark::Done | Mark::Failed | Mark::InProgress => {}
                            Mark::Unseen | Mark::Scheduled => {
                                let failed = self.store.output(dep.task).is_none();
                                let version = self.store.version(dep.task);
                                if failed && version == UNKNOWN_VERSION {
                                    // No output, and no telling what executing it does (new, forgotten, or a
                                    // violation last time): this task executes and requires it itself, meeting
                                    // what it does (maybe catching its panic) as a clean build would.
                                    self.tracker.check_dependency_end(
                                        &Dependency::RequireTask(view),
                                        Ok(Some(&Inconsistency::Panicked)),
                                    );
                                    return Some(true);
                                }
                                let top = self.lane.stack.len() - 1;
                                self.lane.stack[top] = Frame {
                                    id,
                                    next: index as u32,
                                    resume: true,
                                    probe: frame.probe,
                                };
                                // A task that failed in its own code is probed (its dependencies checked without
                                // executing it) when this task saw that very failure, which repeats while they
                                // are consistent; otherwise it executes first, and a panic of it makes this task
                                // execute and meet it (see `make_consistent`).
                                let probe = failed && !dep.is_inconsistent(version);
                                self.enter(dep.task, probe);
                                return if failed && !probe { Some(true) } else { None };
                            }
                        }
                    }
                    self.finish_task_check(dep)
                }
            };
            if inconsistent {
                return Some(true);
            }
        }
        Some(false)
    }

    /// Checks a file dependency: a provided file (`read: None`) or a file that dependency `index` of task `id`
    /// requires (`read: Some((id, index))`).
    pub(super) fn check_file(&mut self, dep: FileDep, read: Option<(TaskId, usize)>) -> bool {
        let provided = read.is_none();
        let unrequired_provider = read.is_some_and(|(id, index)| !self.reads_after_provider(id, index, dep.file));
        // Only reads were prefetched.
        let prefetched = read.and_then(|(id, _)| self.take_prefetched(dep, id));
        let path = self.store.file_path(dep.file);
        let view = FileDependency::new(
            path,
            dep.stamper,
            dep.stamp.unwrap_or_else(|| missing_stamp(dep.stamper)),
        );
        let dependency = if provided {
            Dependency::ProvideFile(view)
        } else {
            Dependency::RequireFile(view)
        };
        self.tracker.check_dependency_start(&dependency);
        let checked = match prefetched {
            Some(new) => Ok((dep.stamp != Some(new)).then_some(new)),
            None => dep.check(path),
        };
        match checked {
            Ok(None) if unrequired_provider => {
                self.tracker
                    .check_dependency_end(&dependency, Ok(Some(&Inconsistency::UnrequiredProvider)));
                true
            }
            Ok(None) => {
                self.tracker.check_dependency_end(&dependency, Ok(None));
                false
            }
            Ok(Some(stamp)) => {
                self.tracker
                    .check_dependency_end(&dependency, Ok(Some(&Inconsistency::File(stamp))));
                true
            }
            Err(e) => {
                let error = io::Error::new(
                    e.kind(),
                    format!("checking the dependency on file '{}' failed: {e}", path.display()),
                );
                self.tracker.check_dependency_end(&dependency, Err(&error));
                self.state.errors.push(error);
                true
            }
        }
    }

    /// Compares the output version of the (now consistent, or failed) required task with the recorded one.
    pub(super) fn finish_task_check(&mut self, dep: TaskDep) -> bool {
        let inconsistent = dep.is_inconsistent(self.store.version(dep.task));
        let view = TaskDependency::new(self.store.task(dep.task), dep.stamper);
        let inconsistency = inconsistent.then(|| match self.store.output(dep.task) {
            Some(output) => Inconsistency::Task(output),
            None => Inconsistency::Panicked,
        });
        self.tracker
            .check_dependency_end(&Dependency::RequireTask(view), Ok(inconsistency.as_ref()));
        inconsistent
    }
}
