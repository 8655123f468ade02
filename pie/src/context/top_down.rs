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
//!    `Task::execute` with this context as the [`Context`], and store the output (bumping its version only when it
//!    changed, which gives early cutoff).
//!
//! Soundness checks happen where dependencies are made: `provide_file` refuses a second provider (overlap) and a
//! requirer that does not depend on the provider (hidden dependency); `require_file` refuses to read a provided
//! file without depending on its provider.
//!
//! Depth: step 3 walks the graph with an explicit stack of frames in the session state (12 bytes a level), so
//! checking a chain of a million tasks needs no native recursion. Only execution recurses natively (a task's
//! `execute` requires tasks through this context), and it goes through [`crate::grow_stack`], so depth is bounded
//! by memory, not by the thread's stack.

use std::fs::File;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use crate::dependency::{
    missing_stamp, Dep, Dependency, FileDep, FileDependency, Inconsistency, TaskDep, TaskDependency,
};
use crate::liveness;
use crate::path::NormalPath;
use crate::session::{Frame, Mark, Marks, Payload, SessionState};
use crate::stamp::{FileStamper, OutputStamper};
use crate::store::{FileId, Store, TaskId};
use crate::tracker::Tracker;
use crate::{grow_stack, open_if_file, Context, Task};

/// The top-down context of one build within a session.
pub(crate) struct TopDownContext<'s, T, O, A> {
    pub(crate) store: &'s mut Store<T, O>,
    pub(crate) tracker: &'s mut A,
    pub(crate) marks: &'s mut Marks,
    pub(crate) state: &'s mut SessionState,
}

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// Requires `task` as the root of a build, making it a root of the store (see `crate::liveness`).
    pub(crate) fn require_initial(&mut self, task: &T) -> T::Output {
        self.recover_from_unwind();
        let id = self.store.get_or_create_task(task);
        if !self.store.is_root(id) {
            self.state.new_roots.push(id);
            self.store.set_root(id, true);
        }
        self.tracker.build_start();
        let output = self.require_task_with_stamper(task, OutputStamper::Equals);
        self.tracker.build_end();
        self.state.building = false;
        output
    }

    /// After a panic escaped an earlier build of this session, forget what was in progress then, so that those
    /// tasks are checked (and, lacking output, executed) again instead of being mistaken for a cycle.
    /// Also starts the bookkeeping of a new build (see `SessionState::building`).
    pub(super) fn recover_from_unwind(&mut self) {
        for frame in self.state.stack.drain(..) {
            self.marks.set(frame.id, Mark::Unseen);
        }
        self.state.current = None;
        self.state.failures.clear();
        self.state.violation = false;
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
    /// Panics meet the tasks that would meet them in a clean build. When a task executed during the check panics,
    /// the task below it in the walk (which was only checking its dependency on it) executes instead, and meets
    /// the panic, with its original payload, when it requires the task (see `SessionState::failures`), so that it
    /// may catch it; a panic while checking a task's dependencies (a cycle) makes that task execute too. A panic
    /// that reaches `id` unwinds to the caller with the frames popped.
    pub(super) fn make_consistent(&mut self, id: TaskId, task: Option<&T>) -> bool {
        match self.marks.get(id) {
            Mark::Done => return false,
            Mark::InProgress => self.cycle(id),
            Mark::Failed => self.resume_failure(id),
            Mark::Unseen | Mark::Scheduled => {}
        }
        let base = self.state.stack.len();
        self.enter(id, false);
        // A task without output executes (the frames pushed by the walk are of tasks with output, or probes).
        let mut execute_top = self.store.output(id).is_none();
        loop {
            if !std::mem::take(&mut execute_top) && !self.walk_or_catch(base) {
                return false;
            }
            let top = self.state.stack.len() - 1;
            let frame = self.state.stack[top];
            let task = if top == base { task } else { None };
            let result = grow_stack(|| self.execute(frame.id, task));
            self.state.stack.pop();
            match result {
                Ok(()) => {
                    self.marks.set(frame.id, Mark::Done);
                    if top == base {
                        return true;
                    }
                }
                Err(payload) => {
                    self.marks.set(frame.id, Mark::Failed);
                    if top == base {
                        panic::resume_unwind(payload);
                    }
                    self.state.failures.push(frame.id, payload);
                    execute_top = true;
                }
            }
        }
    }

    /// For a task marked failed in this session: goes on with the panic of its execution when it is kept (see
    /// `SessionState::failures`); otherwise returns, and the task executes again.
    fn resume_failure(&mut self, id: TaskId) {
        if let Some(payload) = self.state.failures.take(id) {
            panic::resume_unwind(payload);
        }
    }

    /// [`walk`](Self::walk), except that a panic while checking the dependencies of the top frame's task (a cycle
    /// through a task in progress) makes that task execute: its execution makes the same require and meets the
    /// same panic there, where it may catch it.
    fn walk_or_catch(&mut self, base: usize) -> bool {
        match panic::catch_unwind(AssertUnwindSafe(|| self.walk(base))) {
            Ok(must_execute) => must_execute,
            Err(_) => {
                self.state.violation = false;
                true
            }
        }
    }

    /// [`make_consistent`](Self::make_consistent), leaving the session as it was if a panic unwinds through it (a
    /// task's own panic or a soundness violation), so that a requiring task that catches the panic goes on with a
    /// sound context: the executing task is restored, the frames pushed since are popped, and the requiring task
    /// depends on the task that panicked (on its failure version: see `Store::fail_execution`).
    fn make_consistent_or_unwind(&mut self, id: TaskId, task: &T, stamper: OutputStamper) -> bool {
        self.or_unwind(id, stamper, |this| this.make_consistent(id, Some(task)))
    }

    /// Runs `f`, which makes task `id` consistent, restoring the session if a panic unwinds through it (see
    /// [`make_consistent_or_unwind`](Self::make_consistent_or_unwind)).
    pub(super) fn or_unwind(&mut self, id: TaskId, stamper: OutputStamper, f: impl FnOnce(&mut Self) -> bool) -> bool {
        let base = self.state.stack.len();
        let current = self.state.current;
        match panic::catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(executed) => executed,
            Err(payload) => {
                for frame in self.state.stack.drain(base..) {
                    self.marks.set(frame.id, Mark::Unseen);
                }
                self.state.current = current;
                // No edge that would close a cycle: the panic may be a cycle found at `id` or below it (then `id`
                // already reaches the requiring task through recorded dependencies).
                let closes_cycle = |this: &Self, current: TaskId| {
                    this.marks.get(id) == Mark::InProgress
                        || this.store.depends_on_before(id, this.store.dep_count(id), current)
                };
                if let Some(current) = current.filter(|c| !closes_cycle(self, *c)) {
                    let version = self.store.version(id);
                    self.store.add_require_task(
                        current,
                        TaskDep {
                            task: id,
                            stamper,
                            version,
                        },
                    );
                }
                panic::resume_unwind(payload)
            }
        }
    }

    /// Checks the frames above `base` until the task of the top frame must execute (`true`, the frame stays) or
    /// the frame at `base` turned out consistent (`false`, popped).
    ///
    /// Not inlined, so that its locals stay out of `make_consistent`'s frame, which is on the native stack once per
    /// level of nested executions.
    #[inline(never)]
    fn walk(&mut self, base: usize) -> bool {
        loop {
            let top = self.state.stack.len() - 1;
            let frame = self.state.stack[top];
            match self.check_from(frame) {
                None => {} // descended into an unseen required task
                Some(true) => return true,
                Some(false) => {
                    self.state.stack.pop();
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
        self.state.stack.push(Frame {
            id,
            next: 0,
            resume: false,
            probe,
        });
    }

    /// Continues checking the dependencies of `frame`'s task, in order: `Some(true)` at the first inconsistent one,
    /// `Some(false)` when all are consistent, and `None` after pushing the frame of an unseen required task (this
    /// frame then resumes at that dependency). A task without output is never walked, unless probed.
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
                        let view = TaskDependency::new(self.store.task(dep.task), dep.stamper);
                        self.tracker.check_dependency_start(&Dependency::RequireTask(view));
                        match self.marks.get(dep.task) {
                            Mark::Done | Mark::Failed => {}
                            Mark::InProgress => self.cycle(dep.task),
                            Mark::Unseen | Mark::Scheduled => {
                                let failed = self.store.output(dep.task).is_none();
                                if failed && dep.is_inconsistent(self.store.version(dep.task)) {
                                    // The required task has no output and this task did not see that very failure:
                                    // this task executes and requires it anew (maybe catching its panic), as a
                                    // clean build would. Executing it here would let its panic escape this check.
                                    self.tracker.check_dependency_end(
                                        &Dependency::RequireTask(view),
                                        Ok(Some(&Inconsistency::Panicked)),
                                    );
                                    return Some(true);
                                }
                                let top = self.state.stack.len() - 1;
                                self.state.stack[top] = Frame {
                                    id,
                                    next: index as u32,
                                    resume: true,
                                    probe: frame.probe,
                                };
                                // A task that saw this failure is consistent while the failure would repeat: probe
                                // the failed task's dependencies without executing it.
                                self.enter(dep.task, failed);
                                return None;
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
        match dep.check(path) {
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

    /// Whether task `id`, whose dependency `index` reads `file`, still depends on the file's live provider (if
    /// any) through the dependencies it made before that read. A re-executed task further down may have dropped
    /// the require that connected them while this task's own dependencies stayed consistent; then the read is
    /// inconsistent, and executing the task again decides whether it is a hidden dependency, as in a clean build.
    /// A dead provider loses its claim on the file.
    pub(super) fn reads_after_provider(&mut self, id: TaskId, index: usize, file: FileId) -> bool {
        if !self.store.any_provider() {
            return true;
        }
        match self.store.provider(file) {
            Some(provider) if !self.store.depends_on_before(id, index, provider) => self.release_if_dead(provider),
            _ => true,
        }
    }

    /// Whether `id` is live (see `crate::liveness`). Called only on a conflict, never on the no-op path.
    fn is_live(&self, id: TaskId) -> bool {
        liveness::is_live(self.store, self.marks, id)
    }

    /// When `id` is dead, makes it give up its claims on files (its last execution is forgotten) and returns
    /// `true`; a live task keeps them (`false`). Dead tasks count neither as providers nor as requirers.
    fn release_if_dead(&mut self, id: TaskId) -> bool {
        if self.is_live(id) {
            return false;
        }
        self.store.invalidate(id);
        true
    }

    fn hidden_read(&mut self, reader: TaskId, file: FileId, provider: TaskId) -> ! {
        let message = format!(
            "Hidden dependency: task {:?} requires file '{}', which is provided by task {:?}, without \
             (transitively) requiring that task first; require the providing task before reading the file",
            self.store.task(reader),
            self.store.file_path(file).display(),
            self.store.task(provider)
        );
        self.violation(message)
    }

    /// Compares the output version of the (now consistent, or failed) required task with the recorded one.
    fn finish_task_check(&mut self, dep: TaskDep) -> bool {
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
        self.tracker.execute_start(task);
        if let Some(executed) = &mut self.state.executed {
            executed.push(id);
        }
        let bottom_up = self.state.bottom_up.is_some();
        let before = bottom_up.then(|| self.before_execution(id));
        let previous = self.store.start_execution(id);
        let parent = self.state.current.replace(id);
        let result = panic::catch_unwind(AssertUnwindSafe(|| task.execute(self)));
        self.state.current = parent;
        match result {
            Ok(output) => {
                self.store.finish_execution(id, output, previous);
                if let Some(before) = before {
                    self.after_execution(id, before);
                }
                let output = self.store.output(id).expect("BUG: executed task without output");
                self.tracker.execute_end(task, output);
                Ok(())
            }
            Err(payload) => {
                let repeatable = !std::mem::take(&mut self.state.violation);
                self.store.fail_execution(id, repeatable);
                if let Some(before) = before {
                    self.after_execution(id, before);
                }
                Err(payload)
            }
        }
    }

    fn current(&self, operation: &str) -> TaskId {
        match self.state.current {
            Some(id) => id,
            None => panic!("BUG: {operation} called while no task is executing"),
        }
    }

    /// Panics with a soundness violation, noting that the panic may not repeat (see `Store::fail_execution`).
    #[track_caller]
    fn violation(&mut self, message: String) -> ! {
        self.state.violation = true;
        panic!("{message}")
    }

    pub(super) fn cycle(&mut self, id: TaskId) -> ! {
        let start = self.state.stack.iter().position(|f| f.id == id).unwrap_or(0);
        let cycle: Vec<String> = self.state.stack[start..]
            .iter()
            .map(|f| f.id)
            .chain(std::iter::once(id))
            .map(|s| format!("{:?}", self.store.task(s)))
            .collect();
        let message = format!(
            "Cyclic task dependency: task {:?} requires itself through {}",
            self.store.task(id),
            cycle.join(" → ")
        );
        self.violation(message)
    }

    fn file_node(&mut self, path: &Path) -> io::Result<FileId> {
        let normal = NormalPath::new(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot make path '{}' absolute: {e}", path.display())))?;
        Ok(self.store.get_or_create_file(normal))
    }
}

impl<T: Task, A: Tracker<T>> Context<T> for TopDownContext<'_, T, T::Output, A> {
    fn require_file<P: AsRef<Path>>(&mut self, path: P) -> io::Result<Option<File>> {
        self.require_file_with_stamper(path, FileStamper::Modified)
    }

    fn require_file_with_stamper<P: AsRef<Path>>(&mut self, path: P, stamper: FileStamper) -> io::Result<Option<File>> {
        let path = path.as_ref();
        let current = self.current("require_file");
        let file = self.file_node(path)?;
        if let Some(provider) = self.store.provider(file) {
            let prefix = self.store.dep_count(current);
            if !self.store.depends_on_before(current, prefix, provider) && !self.release_if_dead(provider) {
                self.hidden_read(current, file, provider);
            }
        }
        let normal = self.store.file_path(file);
        let (stamp, result) = match stamper.stamp(normal) {
            Ok(stamp) => match open_if_file(normal) {
                Ok(opened) => (Some(stamp), Ok(opened)),
                Err(e) => (None, Err(e)),
            },
            Err(e) => (None, Err(e)),
        };
        self.store.add_require_file(current, FileDep { file, stamper, stamp });
        if let Some(stamp) = stamp {
            self.tracker
                .require_file_end(&FileDependency::new(path, stamper, stamp));
        }
        result.map_err(|e| io::Error::new(e.kind(), format!("cannot read file '{}': {e}", path.display())))
    }

    fn provide_file<P: AsRef<Path>>(&mut self, path: P) -> io::Result<()> {
        self.provide_file_with_stamper(path, FileStamper::Modified)
    }

    fn provide_file_with_stamper<P: AsRef<Path>>(&mut self, path: P, stamper: FileStamper) -> io::Result<()> {
        let path = path.as_ref();
        let current = self.current("provide_file");
        let file = self.file_node(path)?;
        if let Some(provider) = self.store.provider(file) {
            if provider == current {
                let message = format!(
                    "Overlapping provided file: file '{}' is provided twice by task {:?} in one execution",
                    self.store.file_path(file).display(),
                    self.store.task(current)
                );
                self.violation(message)
            }
        }
        if let Some(provider) = self.store.provider(file).filter(|p| !self.release_if_dead(*p)) {
            let message = format!(
                "Overlapping provided file: file '{}' is provided by task {:?} and by task {:?}; a file may have \
                 only one providing task",
                self.store.file_path(file).display(),
                self.store.task(provider),
                self.store.task(current)
            );
            self.violation(message)
        }
        let requirers: Vec<TaskId> = self.store.requirers(file).collect();
        for requirer in requirers {
            if requirer == current {
                let message = format!(
                    "Hidden dependency: task {:?} requires file '{}' and afterwards provides it; an in-place edit \
                     cannot be incremental, write the result to another file",
                    self.store.task(current),
                    self.store.file_path(file).display()
                );
                self.violation(message)
            }
            // Only what the requirer required before its first read of the file counts: requiring the provider
            // after reading is too late.
            let read = self.store.first_require_of(requirer, file).unwrap_or(0);
            if !self.store.depends_on_before(requirer, read, current) && !self.release_if_dead(requirer) {
                let message = format!(
                    "Hidden dependency: task {:?} provides file '{}', which is required by task {:?} without \
                     (transitively) requiring the providing task first",
                    self.store.task(current),
                    self.store.file_path(file).display(),
                    self.store.task(requirer)
                );
                self.violation(message)
            }
        }
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

    fn require_task(&mut self, task: &T) -> T::Output {
        self.require_task_with_stamper(task, OutputStamper::Equals)
    }

    fn require_task_with_stamper(&mut self, task: &T, stamper: OutputStamper) -> T::Output {
        self.tracker.require_task_start(task, &stamper);
        let id = self.store.get_or_create_task(task);
        let executed = if self.state.bottom_up.is_some() {
            self.bring_up_to_date_or_unwind(id, task, stamper)
        } else {
            self.make_consistent_or_unwind(id, task, stamper)
        };
        if let Some(current) = self.state.current {
            let version = self.store.version(id);
            self.store.add_require_task(
                current,
                TaskDep {
                    task: id,
                    stamper,
                    version,
                },
            );
        }
        let output = self
            .store
            .output(id)
            .expect("BUG: consistent task without output")
            .clone();
        self.tracker
            .require_task_end(&TaskDependency::new(task, stamper), &output, executed);
        output
    }
}
