//! A tracker that records build events, for asserting incrementality in tests.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::dependency::{FileDependency, TaskDependency};
use crate::path::normalized_for_comparison;
use crate::stamp::{FileStamp, FileStamper, OutputStamp, OutputStamper};
use crate::tracker::Tracker;
use crate::Task;

/// Records the [`Event`]s of the last build (cleared at each build start).
///
/// ```
/// use pie::tracker::event::EventTracker;
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
/// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
/// let mut pie = pie::Pie::with_tracker(EventTracker::default());
/// pie.new_session().require(&Hello);
/// assert!(pie.tracker().one_execute_of(&Hello));
/// pie.new_session().require(&Hello);
/// assert!(!pie.tracker().any_execute());
/// ```
#[derive(Clone, Debug)]
pub struct EventTracker<T, O> {
    events: Vec<Event<T, O>>,
}

impl<T: Task> Default for EventTracker<T, T::Output> {
    fn default() -> Self {
        Self { events: Vec::new() }
    }
}

/// A build event.
#[derive(Clone, Debug)]
pub enum Event<T, O> {
    /// A task required a file.
    RequireFileEnd(FileDependencyEnd),
    /// A task provided a file.
    ProvideFileEnd(FileDependencyEnd),
    /// Start requiring a task.
    RequireTaskStart(RequireTaskStart<T>),
    /// Finished requiring a task.
    RequireTaskEnd(RequireTaskEnd<T, O>),
    /// Start executing a task.
    ExecuteStart(ExecuteStart<T>),
    /// Finished executing a task.
    ExecuteEnd(ExecuteEnd<T, O>),
}

/// Data of [`Event::RequireFileEnd`] and [`Event::ProvideFileEnd`].
#[derive(Clone, Debug)]
pub struct FileDependencyEnd {
    /// The path as the task gave it.
    pub path: PathBuf,
    /// The stamper used.
    pub stamper: FileStamper,
    /// The stamp recorded.
    pub stamp: FileStamp,
    /// Position of this event in [`EventTracker::slice`].
    pub index: usize,
}

/// Data of [`Event::RequireTaskStart`].
#[derive(Clone, Debug)]
pub struct RequireTaskStart<T> {
    /// The required task.
    pub task: T,
    /// The stamper used.
    pub stamper: OutputStamper,
    /// Position of this event in [`EventTracker::slice`].
    pub index: usize,
}

/// Data of [`Event::RequireTaskEnd`].
#[derive(Clone, Debug)]
pub struct RequireTaskEnd<T, O> {
    /// The required task.
    pub task: T,
    /// The stamper used.
    pub stamper: OutputStamper,
    /// The stamp of `output` made by `stamper`.
    pub stamp: OutputStamp<O>,
    /// The up-to-date output.
    pub output: O,
    /// Whether the task executed to produce `output`.
    pub was_executed: bool,
    /// Position of this event in [`EventTracker::slice`].
    pub index: usize,
}

/// Data of [`Event::ExecuteStart`].
#[derive(Clone, Debug)]
pub struct ExecuteStart<T> {
    /// The executing task.
    pub task: T,
    /// Position of this event in [`EventTracker::slice`].
    pub index: usize,
}

/// Data of [`Event::ExecuteEnd`].
#[derive(Clone, Debug)]
pub struct ExecuteEnd<T, O> {
    /// The executed task.
    pub task: T,
    /// Its output.
    pub output: O,
    /// Position of this event in [`EventTracker::slice`].
    pub index: usize,
}

impl<T: Task> EventTracker<T, T::Output> {
    fn file_event(&self, dependency: &FileDependency) -> FileDependencyEnd {
        FileDependencyEnd {
            path: dependency.path().to_path_buf(),
            stamper: *dependency.stamper(),
            stamp: *dependency.stamp(),
            index: self.events.len(),
        }
    }
}

impl<T: Task> Tracker<T> for EventTracker<T, T::Output> {
    fn build_start(&mut self) {
        self.events.clear();
    }
    fn require_file_end(&mut self, dependency: &FileDependency) {
        let data = self.file_event(dependency);
        self.events.push(Event::RequireFileEnd(data));
    }
    fn provide_file_end(&mut self, dependency: &FileDependency) {
        let data = self.file_event(dependency);
        self.events.push(Event::ProvideFileEnd(data));
    }
    fn require_task_start(&mut self, task: &T, stamper: &OutputStamper) {
        let data = RequireTaskStart {
            task: task.clone(),
            stamper: *stamper,
            index: self.events.len(),
        };
        self.events.push(Event::RequireTaskStart(data));
    }
    fn require_task_end(&mut self, dependency: &TaskDependency<T, T::Output>, output: &T::Output, was_executed: bool) {
        let data = RequireTaskEnd {
            task: dependency.task().clone(),
            stamper: *dependency.stamper(),
            stamp: dependency.stamper().stamp(output.clone()),
            output: output.clone(),
            was_executed,
            index: self.events.len(),
        };
        self.events.push(Event::RequireTaskEnd(data));
    }
    fn execute_start(&mut self, task: &T) {
        let data = ExecuteStart {
            task: task.clone(),
            index: self.events.len(),
        };
        self.events.push(Event::ExecuteStart(data));
    }
    fn execute_end(&mut self, task: &T, output: &T::Output) {
        let data = ExecuteEnd {
            task: task.clone(),
            output: output.clone(),
            index: self.events.len(),
        };
        self.events.push(Event::ExecuteEnd(data));
    }
}

impl<T: Task> Event<T, T::Output> {
    /// `Some(data)` if this is a [`Event::RequireFileEnd`] for `path` (compared after normalisation).
    pub fn match_require_file_end(&self, path: impl AsRef<Path>) -> Option<&FileDependencyEnd> {
        match self {
            Event::RequireFileEnd(data) if same_file(&data.path, path.as_ref()) => Some(data),
            _ => None,
        }
    }
    /// `Some(data)` if this is a [`Event::ProvideFileEnd`] for `path` (compared after normalisation).
    pub fn match_provide_file_end(&self, path: impl AsRef<Path>) -> Option<&FileDependencyEnd> {
        match self {
            Event::ProvideFileEnd(data) if same_file(&data.path, path.as_ref()) => Some(data),
            _ => None,
        }
    }
    /// `Some(data)` if this is a [`Event::RequireTaskStart`] for `task`.
    pub fn match_require_task_start(&self, task: &T) -> Option<&RequireTaskStart<T>> {
        match self {
            Event::RequireTaskStart(data) if data.task == *task => Some(data),
            _ => None,
        }
    }
    /// `Some(data)` if this is a [`Event::RequireTaskEnd`] for `task`.
    pub fn match_require_task_end(&self, task: &T) -> Option<&RequireTaskEnd<T, T::Output>> {
        match self {
            Event::RequireTaskEnd(data) if data.task == *task => Some(data),
            _ => None,
        }
    }
    /// Whether this is an [`Event::ExecuteStart`] or [`Event::ExecuteEnd`].
    pub fn is_execute(&self) -> bool {
        matches!(self, Event::ExecuteStart(_) | Event::ExecuteEnd(_))
    }
    /// Whether this is an [`Event::ExecuteStart`] or [`Event::ExecuteEnd`] of `task`.
    pub fn is_execute_of(&self, task: &T) -> bool {
        match self {
            Event::ExecuteStart(ExecuteStart { task: t, .. }) | Event::ExecuteEnd(ExecuteEnd { task: t, .. }) => {
                t == task
            }
            _ => false,
        }
    }
    /// `Some(data)` if this is an [`Event::ExecuteStart`] of `task`.
    pub fn match_execute_start(&self, task: &T) -> Option<&ExecuteStart<T>> {
        match self {
            Event::ExecuteStart(data) if data.task == *task => Some(data),
            _ => None,
        }
    }
    /// `Some(data)` if this is an [`Event::ExecuteEnd`] of `task`.
    pub fn match_execute_end(&self, task: &T) -> Option<&ExecuteEnd<T, T::Output>> {
        match self {
            Event::ExecuteEnd(data) if data.task == *task => Some(data),
            _ => None,
        }
    }
}

fn same_file(recorded: &Path, query: &Path) -> bool {
    recorded == query || normalized_for_comparison(recorded) == normalized_for_comparison(query)
}

impl<T: Task> EventTracker<T, T::Output> {
    /// All events of the last build, in order.
    pub fn slice(&self) -> &[Event<T, T::Output>] {
        &self.events
    }
    /// Iterates over the events of the last build.
    pub fn iter(&self) -> impl Iterator<Item = &Event<T, T::Output>> {
        self.events.iter()
    }
    /// Whether `predicate` holds for any event.
    pub fn any(&self, predicate: impl FnMut(&Event<T, T::Output>) -> bool) -> bool {
        self.iter().any(predicate)
    }
    /// Whether `predicate` holds for exactly one event.
    pub fn one(&self, predicate: impl FnMut(&&Event<T, T::Output>) -> bool) -> bool {
        self.iter().filter(predicate).count() == 1
    }
    /// The first `Some` that `f` returns for an event.
    pub fn find_map<R>(&self, f: impl FnMut(&Event<T, T::Output>) -> Option<&R>) -> Option<&R> {
        self.iter().find_map(f)
    }

    /// The first [`Event::RequireFileEnd`] for `path`.
    pub fn first_require_file(&self, path: &PathBuf) -> Option<&FileDependencyEnd> {
        self.find_map(|e| e.match_require_file_end(path))
    }
    /// The index of the first [`Event::RequireFileEnd`] for `path`.
    pub fn first_require_file_index(&self, path: &PathBuf) -> Option<&usize> {
        self.first_require_file(path).map(|d| &d.index)
    }
    /// The first [`Event::ProvideFileEnd`] for `path`.
    pub fn first_provide_file(&self, path: &PathBuf) -> Option<&FileDependencyEnd> {
        self.find_map(|e| e.match_provide_file_end(path))
    }
    /// The index of the first [`Event::ProvideFileEnd`] for `path`.
    pub fn first_provide_file_index(&self, path: &PathBuf) -> Option<&usize> {
        self.first_provide_file(path).map(|d| &d.index)
    }
    /// The first require start and end events of `task`.
    pub fn first_require_task(&self, task: &T) -> Option<(&RequireTaskStart<T>, &RequireTaskEnd<T, T::Output>)> {
        let start = self.find_map(|e| e.match_require_task_start(task));
        let end = self.find_map(|e| e.match_require_task_end(task));
        start.zip(end)
    }
    /// The index range from the first require start to the first require end event of `task`.
    pub fn first_require_task_range(&self, task: &T) -> Option<RangeInclusive<usize>> {
        self.first_require_task(task).map(|(s, e)| s.index..=e.index)
    }
    /// Whether any task executed.
    pub fn any_execute(&self) -> bool {
        self.any(|e| e.is_execute())
    }
    /// Whether `task` executed.
    pub fn any_execute_of(&self, task: &T) -> bool {
        self.any(|e| e.is_execute_of(task))
    }
    /// Whether `task` executed exactly once.
    pub fn one_execute_of(&self, task: &T) -> bool {
        self.one(|e| e.match_execute_start(task).is_some())
    }
    /// The first execute start and end events of `task`.
    pub fn first_execute(&self, task: &T) -> Option<(&ExecuteStart<T>, &ExecuteEnd<T, T::Output>)> {
        let start = self.find_map(|e| e.match_execute_start(task));
        let end = self.find_map(|e| e.match_execute_end(task));
        start.zip(end)
    }
    /// The index range from the first execute start to the first execute end event of `task`.
    pub fn first_execute_range(&self, task: &T) -> Option<RangeInclusive<usize>> {
        self.first_execute(task).map(|(s, e)| s.index..=e.index)
    }
    /// The tasks that executed, in the order their executions started.
    pub fn executed_tasks(&self) -> Vec<&T> {
        self.iter()
            .filter_map(|e| match e {
                Event::ExecuteStart(d) => Some(&d.task),
                _ => None,
            })
            .collect()
    }
}
