//! Trackers: observers of a build, for logging, testing and metrics.
//!
//! A [`Tracker`] is called at every build event with borrowed views of what happened. Invariant: trackers observe
//! and never change a build; a tracker that fails (for example a [`writing::WritingTracker`] whose writer errors)
//! never fails the build.
//!
//! In a parallel build ([`Pie::set_threads`](crate::Pie::set_threads)), events come from several threads, one at a
//! time: tracker calls are serialised (the engine calls a tracker only while it holds its lock), and each call is
//! made on the thread where the event happens. [`lane`] tells which.

use std::cell::Cell;
use std::io;

use crate::dependency::{Dependency, FileDependency, Inconsistency, TaskDependency};
use crate::stamp::OutputStamper;
use crate::Task;

pub mod event;
pub mod explain;
pub mod progress;
pub mod trace;
#[cfg(feature = "tracing")]
pub mod tracing;
pub mod writing;

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// The lane of the current thread in a parallel build: 0 for the thread that called into the session (and for
/// every thread outside pie's workers), `1..threads` for pie's worker threads. A tracker can use it to tell apart
/// events that happen at once, as [`writing::WritingTracker`] does.
///
/// ```
/// assert_eq!(pie::tracker::lane(), 0);
/// ```
pub fn lane() -> usize {
    LANE.with(Cell::get)
}

/// Sets the lane of the current thread (a worker of a parallel build).
pub(crate) fn set_lane(lane: usize) {
    LANE.with(|l| l.set(lane));
}

/// Observer of build events. Every method has an empty default body: implement only what you need.
///
/// ```
/// use pie::tracker::Tracker;
/// use pie::Task;
///
/// /// Counts executions.
/// #[derive(Default)]
/// struct Count(usize);
/// impl<T: Task> Tracker<T> for Count {
///     fn execute_start(&mut self, _task: &T) {
///         self.0 += 1;
///     }
/// }
/// ```
#[allow(unused_variables)]
pub trait Tracker<T: Task>: Send {
    /// Start: a build, that is, one [`Session::require`](crate::Session::require),
    /// [`Session::require_all`](crate::Session::require_all) or
    /// [`Session::update_affected_by`](crate::Session::update_affected_by).
    fn build_start(&mut self) {}
    /// End: the build finished.
    fn build_end(&mut self) {}

    /// End: the executing task required a file, creating `dependency`.
    fn require_file_end(&mut self, dependency: &FileDependency) {}
    /// End: the executing task provided (wrote) a file, creating `dependency`.
    fn provide_file_end(&mut self, dependency: &FileDependency) {}
    /// Start: require `task` using `stamper`.
    fn require_task_start(&mut self, task: &T, stamper: &OutputStamper) {}
    /// End: required a task, creating `dependency`, with the up-to-date `output`; `was_executed` tells whether
    /// the task executed to produce it.
    fn require_task_end(&mut self, dependency: &TaskDependency<T, T::Output>, output: &T::Output, was_executed: bool) {}

    /// Start: check whether a recorded `dependency` is still consistent.
    fn check_dependency_start(&mut self, dependency: &Dependency<T, T::Output>) {}
    /// End: checked `dependency`: `Ok(None)` consistent, `Ok(Some(_))` inconsistent, `Err(_)` the check failed
    /// (which also counts as inconsistent).
    ///
    /// In a parallel build, when the check of a dependency on a task of a `require_tasks` group finds that the
    /// task must execute, the check ends there (`Ok(None)`), the rest of the group is made consistent on several
    /// threads, and the dependency is checked again, from its start, with the task's new output.
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<T, T::Output>,
        inconsistency: Result<Option<&Inconsistency<T::Output>>, &io::Error>,
    ) {
    }

    /// Start: execute `task`.
    fn execute_start(&mut self, task: &T) {}
    /// End: executed `task`, producing `output`.
    fn execute_end(&mut self, task: &T, output: &T::Output) {}

    /// Between `execute_start` and `execute_end` of `task`: its code did not run, its result was restored from the
    /// shared cache instead (`Pie::set_remote_cache`, feature `remote-cache`): its provided files written, its
    /// recorded dependencies replayed (their events come before this one).
    fn restored(&mut self, task: &T) {}
}

/// A tracker that does nothing: the default, and free.
#[derive(Copy, Clone, Default, Debug)]
pub struct NoopTracker;

impl<T: Task> Tracker<T> for NoopTracker {}

/// Forwards every event to both of its trackers, first `.0`, then `.1`.
///
/// ```
/// use pie::tracker::{event::EventTracker, writing::WritingTracker, CompositeTracker};
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct T;
/// # impl pie::Task for T { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
/// let tracker = CompositeTracker(EventTracker::default(), WritingTracker::new(Vec::new()));
/// let mut pie = pie::Pie::with_tracker(tracker);
/// pie.new_session().require(&T);
/// assert!(pie.tracker().0.one_execute_of(&T));
/// assert!(!pie.tracker().1.writer().is_empty());
/// ```
#[derive(Clone, Default, Debug)]
pub struct CompositeTracker<A1, A2>(pub A1, pub A2);

impl<T: Task, A1: Tracker<T>, A2: Tracker<T>> Tracker<T> for CompositeTracker<A1, A2> {
    fn build_start(&mut self) {
        self.0.build_start();
        self.1.build_start();
    }
    fn build_end(&mut self) {
        self.0.build_end();
        self.1.build_end();
    }
    fn require_file_end(&mut self, dependency: &FileDependency) {
        self.0.require_file_end(dependency);
        self.1.require_file_end(dependency);
    }
    fn provide_file_end(&mut self, dependency: &FileDependency) {
        self.0.provide_file_end(dependency);
        self.1.provide_file_end(dependency);
    }
    fn require_task_start(&mut self, task: &T, stamper: &OutputStamper) {
        self.0.require_task_start(task, stamper);
        self.1.require_task_start(task, stamper);
    }
    fn require_task_end(&mut self, dependency: &TaskDependency<T, T::Output>, output: &T::Output, was_executed: bool) {
        self.0.require_task_end(dependency, output, was_executed);
        self.1.require_task_end(dependency, output, was_executed);
    }
    fn check_dependency_start(&mut self, dependency: &Dependency<T, T::Output>) {
        self.0.check_dependency_start(dependency);
        self.1.check_dependency_start(dependency);
    }
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<T, T::Output>,
        inconsistency: Result<Option<&Inconsistency<T::Output>>, &io::Error>,
    ) {
        self.0.check_dependency_end(dependency, inconsistency);
        self.1.check_dependency_end(dependency, inconsistency);
    }
    fn execute_start(&mut self, task: &T) {
        self.0.execute_start(task);
        self.1.execute_start(task);
    }
    fn execute_end(&mut self, task: &T, output: &T::Output) {
        self.0.execute_end(task, output);
        self.1.execute_end(task, output);
    }
    fn restored(&mut self, task: &T) {
        self.0.restored(task);
        self.1.restored(task);
    }
}
