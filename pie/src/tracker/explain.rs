//! Why each task executed: [`ExplainTracker`] records, for every execution of the last build, its [`Reason`].
//!
//! How a reason is found. The engine reports the check of a recorded dependency as a `check_dependency_start` /
//! `check_dependency_end` pair, and checks the dependencies of a task in order, stopping at the first inconsistent
//! one; a required task is made consistent *inside* the check of the dependency on it (its own checks and, if it
//! must, its execution nest between the start and the end), and a task executes right after the checks of its
//! dependencies, at the nesting level where they were made. So, per lane (see [`lane`]), the reason of an
//! execution is the last inconsistent `check_dependency_end` (an `Ok(Some(_))` or an `Err(_)`) seen at the same
//! nesting level before its `execute_start`; with none, the task had no cached output. A task that executes because
//! a task it requires executed first and changed its output is seen as the inconsistent check of that dependency,
//! which ends after the required task's execution.
//!
//! A panic unwinds without end events. The bookkeeping (shared with the
//! [`trace`](crate::tracker::trace) tracker) therefore matches each end with its own
//! start (by task or path) and drops the frames left open above it, and reads an `execute_start` right above an
//! open execution, or inside the open check of another task, as what it is: the execution that follows when a task
//! being checked failed, so that the task below it executes and meets the panic ([`Reason::RequiredTaskFailed`]).

use std::fmt::{self, Debug, Display};
use std::io;
use std::path::{Path, PathBuf};

use crate::dependency::{Dependency, Inconsistency};
use crate::stamp::FileStamp;
use crate::tracker::{lane, Tracker};
use crate::Task;

/// Why a task executed.
///
/// Its [`Display`] is a sentence for people, such as `file /p/a.txt changed (2026-12-02 04:40:01.123456789 →
/// 2026-12-02 04:41:13.000000004)`; stamps are shown with [`FileStamp::for_people`]. Paths are those of the
/// dependency checks: absolute and normalised.
///
/// ```
/// use pie::tracker::explain::Reason;
/// use pie::stamp::FileStamp;
/// let reason: Reason<(), ()> = Reason::File {
///     path: "/p/a.txt".into(),
///     provided: false,
///     old: FileStamp::Exists(false),
///     new: FileStamp::Exists(true),
/// };
/// assert_eq!(reason.to_string(), "file /p/a.txt was created (missing → exists)");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reason<T, O> {
    /// The task had no cached output: it is new, or its last execution failed (panicked, or was forgotten). The
    /// events do not tell these apart.
    NoOutput,
    /// A file that the task required (or, with `provided`, wrote) has another stamp now: it was created
    /// (`old` is missing), deleted (`new` is missing) or changed.
    File {
        /// The file's path (absolute, normalised).
        path: PathBuf,
        /// Whether the task wrote the file (someone else changed it since), rather than read it.
        provided: bool,
        /// The stamp recorded when the task last executed.
        old: FileStamp,
        /// The stamp now.
        new: FileStamp,
    },
    /// The file's stamp is unchanged, but the task that provides it is no longer required before the read.
    ProviderNotRequired {
        /// The file's path (absolute, normalised).
        path: PathBuf,
    },
    /// A required task's output changed (it executed first, in this build, and produced another output).
    TaskOutput {
        /// The required task.
        task: T,
        /// Its new output.
        output: O,
    },
    /// A required task has no output that this task saw: it is new to this task's record, or it failed.
    TaskWithoutOutput {
        /// The required task.
        task: T,
    },
    /// A required task failed (panicked) when it executed while this task was being checked; this task executes
    /// to meet that panic where it requires the task, as a clean build would.
    RequiredTaskFailed {
        /// The task that failed.
        task: T,
    },
    /// Checking a dependency failed (for example a permission error, or a path through a regular file), which
    /// counts as a change.
    CheckFailed {
        /// The path of the dependency whose check failed.
        path: PathBuf,
        /// The error's message.
        message: String,
    },
    /// A bottom-up build ([`Session::update_affected_by`](crate::Session::update_affected_by)) scheduled the task
    /// because something it depends on changed, and no check event told what.
    Affected,
}

impl<T: Debug, O> Display for Reason<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoOutput => f.write_str("no cached output (new, or its last execution failed)"),
            Reason::File {
                path,
                provided,
                old,
                new,
            } => {
                let what = if *provided { "provided file" } else { "file" };
                let how = match (old.is_missing(), new.is_missing()) {
                    (true, false) => "was created",
                    (false, true) => "was deleted",
                    _ => "changed",
                };
                write!(
                    f,
                    "{what} {} {how} ({} → {})",
                    path.display(),
                    old.for_people(),
                    new.for_people()
                )
            }
            Reason::ProviderNotRequired { path } => write!(
                f,
                "file {} is provided by a task no longer required before the read",
                path.display()
            ),
            Reason::TaskOutput { task, .. } => write!(f, "the output of required task {task:?} changed"),
            Reason::TaskWithoutOutput { task } => write!(
                f,
                "required task {task:?} has no output it saw (new, or its last execution failed)"
            ),
            Reason::RequiredTaskFailed { task } => {
                write!(f, "required task {task:?} failed while it was checked")
            }
            Reason::CheckFailed { message, .. } => write!(f, "checking a dependency failed: {message}"),
            Reason::Affected => f.write_str("affected by a change (bottom-up build)"),
        }
    }
}

impl<T, O> Reason<T, O> {
    /// The path of the file behind this reason, if a file is.
    ///
    /// ```
    /// use pie::tracker::explain::Reason;
    /// assert_eq!(Reason::<(), ()>::NoOutput.path(), None);
    /// ```
    pub fn path(&self) -> Option<&Path> {
        match self {
            Reason::File { path, .. } | Reason::ProviderNotRequired { path } | Reason::CheckFailed { path, .. } => {
                Some(path)
            }
            _ => None,
        }
    }
}

/// The reason given by an inconsistent dependency check, `None` for a consistent one.
pub(crate) fn reason_of_check<T: Clone, O: Clone>(
    dependency: &Dependency<T, O>,
    inconsistency: Result<Option<&Inconsistency<O>>, &io::Error>,
) -> Option<Reason<T, O>> {
    let inconsistency = match inconsistency {
        Ok(None) => return None,
        Ok(Some(inconsistency)) => inconsistency,
        Err(error) => {
            let path = match dependency {
                Dependency::RequireFile(d) | Dependency::ProvideFile(d) => d.path().to_path_buf(),
                Dependency::RequireTask(_) => PathBuf::new(),
            };
            return Some(Reason::CheckFailed {
                path,
                message: error.to_string(),
            });
        }
    };
    Some(match (dependency, inconsistency) {
        (Dependency::RequireFile(d) | Dependency::ProvideFile(d), Inconsistency::File(new)) => Reason::File {
            path: d.path().to_path_buf(),
            provided: matches!(dependency, Dependency::ProvideFile(_)),
            old: *d.stamp(),
            new: *new,
        },
        (Dependency::RequireFile(d) | Dependency::ProvideFile(d), _) => Reason::ProviderNotRequired {
            path: d.path().to_path_buf(),
        },
        (Dependency::RequireTask(d), Inconsistency::Task(output)) => Reason::TaskOutput {
            task: d.task().clone(),
            output: (*output).clone(),
        },
        (Dependency::RequireTask(d), _) => Reason::TaskWithoutOutput { task: d.task().clone() },
    })
}

/// What opened a frame of a lane's nesting; an end event closes the frame that its own start opened.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Open<K> {
    /// `require_task_start` of a task.
    Require(K),
    /// `check_dependency_start` of a task dependency.
    CheckTask(K),
    /// `check_dependency_start` of a file dependency.
    CheckFile(PathBuf),
    /// `execute_start` of a task.
    Execute(K),
}

impl<K> Open<K> {
    pub(crate) fn of_check<T, O>(dependency: &Dependency<T, O>, key: impl FnOnce(&T) -> K) -> Self {
        match dependency {
            Dependency::RequireFile(d) | Dependency::ProvideFile(d) => Open::CheckFile(d.path().to_path_buf()),
            Dependency::RequireTask(d) => Open::CheckTask(key(d.task())),
        }
    }
}

/// An open frame: what opened it, the reason of the last inconsistent check made directly inside it (taken by the
/// next execution at this level), and what the tracker keeps about it.
#[derive(Clone, Debug)]
pub(crate) struct Frame<K, R, X> {
    pub(crate) open: Open<K>,
    pending: Option<R>,
    pub(crate) data: X,
}

/// One lane's open frames, and the pending reason at its outermost level (a bottom-up build checks and executes
/// there).
#[derive(Clone, Debug)]
struct Lane<K, R, X> {
    frames: Vec<Frame<K, R, X>>,
    pending: Option<R>,
}

/// The nesting of every lane: `K` identifies a task, `R` is a reason, `X` is the tracker's data per frame.
#[derive(Clone, Debug)]
pub(crate) struct Nesting<K, R, X> {
    lanes: Vec<Lane<K, R, X>>,
}

impl<K, R, X> Default for Nesting<K, R, X> {
    fn default() -> Self {
        Self { lanes: Vec::new() }
    }
}

/// What an execution was given: the reason, if the events told one.
pub(crate) enum Given<R, K> {
    /// The last inconsistent check at the execution's level.
    Reason(R),
    /// The frame right below was the open check of task `K`, which failed.
    RequiredFailed(K),
    /// Nothing at the lane's outermost level (a bottom-up build).
    Outermost,
    /// Nothing: the task had no output.
    Nothing,
}

impl<K: PartialEq + Clone, R, X> Nesting<K, R, X> {
    fn lane(&mut self) -> &mut Lane<K, R, X> {
        let lane = lane();
        if lane >= self.lanes.len() {
            self.lanes.resize_with(lane + 1, || Lane {
                frames: Vec::new(),
                pending: None,
            });
        }
        &mut self.lanes[lane]
    }

    /// Forgets everything (a new build).
    pub(crate) fn clear(&mut self) {
        self.lanes.clear();
    }

    /// The data of the innermost open execution on `lane`.
    pub(crate) fn innermost_execution(&mut self, lane: usize) -> Option<&mut X> {
        self.lanes
            .get_mut(lane)?
            .frames
            .iter_mut()
            .rev()
            .find(|frame| matches!(frame.open, Open::Execute(_)))
            .map(|frame| &mut frame.data)
    }

    /// The open frames of `lane`, innermost last.
    pub(crate) fn frames_mut(&mut self, lane: usize) -> Option<&mut Vec<Frame<K, R, X>>> {
        self.lanes.get_mut(lane).map(|lane| &mut lane.frames)
    }

    /// Pops the innermost frame of the last lane that has one, with that lane.
    pub(crate) fn pop_any(&mut self) -> Option<(usize, Frame<K, R, X>)> {
        let (lane, frames) = self
            .lanes
            .iter_mut()
            .enumerate()
            .rev()
            .find(|(_, l)| !l.frames.is_empty())?;
        Some((lane, frames.frames.pop()?))
    }

    /// Opens a frame on the current lane.
    pub(crate) fn start(&mut self, open: Open<K>, data: X) {
        self.lane().frames.push(Frame {
            open,
            pending: None,
            data,
        });
    }

    /// Closes the frame that `open` opened on the current lane and returns it; the frames still open above it
    /// (left open by a panic) are popped one by one and handed to `dangling` first, innermost first, with the
    /// frames below still open. An end without its start (a tracker that joined mid-build) returns `None` and
    /// closes nothing.
    pub(crate) fn end(
        &mut self,
        open: &Open<K>,
        mut dangling: impl FnMut(&mut Self, Frame<K, R, X>),
    ) -> Option<Frame<K, R, X>> {
        let index = self.lane().frames.iter().rposition(|frame| frame.open == *open)?;
        while self.lane().frames.len() > index + 1 {
            let frame = self.lane().frames.pop().expect("a frame above the index");
            dangling(self, frame);
        }
        self.lane().frames.pop()
    }

    /// Records the reason of an inconsistent check that just ended, for the next execution at the current level.
    pub(crate) fn set_pending(&mut self, reason: R) {
        let lane = self.lane();
        match lane.frames.last_mut() {
            Some(frame) => frame.pending = Some(reason),
            None => lane.pending = Some(reason),
        }
    }

    /// Opens the frame of the execution of `task` (whose key is `key`) and tells what explains it. Frames that a
    /// panic left open right below are closed first (handed to `dangling`): an execution directly above another
    /// (a task's execution always requires through a require frame, so that one failed), and the check of a
    /// dependency on another task (that task failed while checked, so this one executes to meet the panic).
    pub(crate) fn execute_start(
        &mut self,
        key: K,
        data: X,
        mut dangling: impl FnMut(&mut Self, Frame<K, R, X>),
    ) -> Given<R, K> {
        while matches!(
            self.lane().frames.last(),
            Some(Frame {
                open: Open::Execute(_),
                ..
            })
        ) {
            let frame = self.lane().frames.pop().expect("the last frame");
            dangling(self, frame);
        }
        let failed = match self.lane().frames.last() {
            Some(Frame {
                open: Open::CheckTask(checked),
                ..
            }) if *checked != key => Some(checked.clone()),
            _ => None,
        };
        let given = if let Some(failed) = failed {
            let frame = self.lane().frames.pop().expect("the last frame");
            dangling(self, frame);
            Given::RequiredFailed(failed)
        } else {
            let lane = self.lane();
            match lane.frames.last_mut() {
                Some(frame) => frame.pending.take().map_or(Given::Nothing, Given::Reason),
                None => lane.pending.take().map_or(Given::Outermost, Given::Reason),
            }
        };
        self.lane().frames.push(Frame {
            open: Open::Execute(key),
            pending: None,
            data,
        });
        given
    }
}

/// One execution and why it happened; its [`Display`] is `TASK: REASON` (the task's `Debug` form).
///
/// ```
/// use pie::tracker::explain::{Explanation, Reason};
/// let explanation = Explanation::<&str, ()> { task: "compile", reason: Reason::NoOutput, lane: 0 };
/// assert_eq!(explanation.to_string(), r#""compile": no cached output (new, or its last execution failed)"#);
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Explanation<T, O> {
    /// The executed task.
    pub task: T,
    /// Why it executed.
    pub reason: Reason<T, O>,
    /// The lane it executed on (see [`lane`]).
    pub lane: usize,
}

impl<T: Debug, O> Display for Explanation<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.task, self.reason)
    }
}

/// Records why each task of the last build executed (cleared at `build_start`, unless made
/// [`accumulating`](ExplainTracker::accumulating)): an [`Explanation`] per execution, in the order the executions
/// started.
///
/// See the [module documentation](self) for how reasons are found. Per lane, it keeps the open require, check and
/// execute frames of that lane, so that it works in parallel builds; it clones each task it sees open a frame.
///
/// ```
/// use pie::tracker::explain::{ExplainTracker, Reason};
/// use pie::{Context, Pie, Task};
///
/// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
/// struct Read(std::path::PathBuf);
/// impl Task for Read {
///     type Output = String;
///     fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
///         context.require_file(&self.0).unwrap();
///         std::fs::read_to_string(&self.0).unwrap_or_default()
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("a.txt");
/// let task = Read(path.clone());
/// let mut pie = Pie::with_tracker(ExplainTracker::default());
/// pie.new_session().require(&task);
/// assert_eq!(pie.tracker().reason_of(&task), Some(&Reason::NoOutput));
/// std::fs::write(&path, "hi")?;
/// pie.new_session().require(&task);
/// let reason = pie.tracker().reason_of(&task).unwrap();
/// assert!(matches!(reason, Reason::File { .. }));
/// assert!(reason.to_string().contains("was created"), "{reason}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ExplainTracker<T, O> {
    explanations: Vec<Explanation<T, O>>,
    nesting: Nesting<T, Reason<T, O>, ()>,
    /// Whether a build start keeps the explanations of the builds before (see [`ExplainTracker::accumulating`]).
    accumulate: bool,
}

impl<T: Task> Default for ExplainTracker<T, T::Output> {
    fn default() -> Self {
        Self {
            explanations: Vec::new(),
            nesting: Nesting::default(),
            accumulate: false,
        }
    }
}

impl<T: Task> ExplainTracker<T, T::Output> {
    /// A tracker that keeps the explanations of every build until [`clear`](Self::clear), instead of those of the
    /// last build only: for a program whose one build is several pie builds (several `require` calls in a
    /// session).
    ///
    /// ```
    /// use pie::tracker::explain::ExplainTracker;
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello(u8);
    /// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
    /// let mut pie = pie::Pie::with_tracker(ExplainTracker::accumulating());
    /// let mut session = pie.new_session();
    /// session.require(&Hello(1));
    /// session.require(&Hello(2));
    /// drop(session);
    /// assert_eq!(pie.tracker().explanations().len(), 2);
    /// pie.tracker_mut().clear();
    /// assert!(pie.tracker().explanations().is_empty());
    /// ```
    pub fn accumulating() -> Self {
        Self {
            accumulate: true,
            ..Self::default()
        }
    }

    /// Forgets the explanations recorded so far.
    ///
    /// ```
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
    /// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
    /// let mut tracker = pie::tracker::explain::ExplainTracker::<Hello, ()>::accumulating();
    /// tracker.clear();
    /// assert!(tracker.explanations().is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.explanations.clear();
        self.nesting.clear();
    }

    /// The executions of the last build with their reasons, in the order they started.
    ///
    /// ```
    /// use pie::tracker::explain::ExplainTracker;
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
    /// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
    /// let mut pie = pie::Pie::with_tracker(ExplainTracker::default());
    /// pie.new_session().require(&Hello);
    /// let lines: Vec<String> = pie.tracker().explanations().iter().map(|e| e.to_string()).collect();
    /// assert_eq!(lines, ["Hello: no cached output (new, or its last execution failed)"]);
    /// ```
    pub fn explanations(&self) -> &[Explanation<T, T::Output>] {
        &self.explanations
    }

    /// For each of the [`explanations`](Self::explanations) (in the same order), the changed file behind it: the
    /// path of its own reason if that names a file, or else, when it executed because of a task it requires
    /// ([`Reason::TaskOutput`], [`Reason::TaskWithoutOutput`] or [`Reason::RequiredTaskFailed`]), the changed file
    /// behind that task's execution in the same build, followed down to the task that saw the change. `None` when
    /// no file is behind it (a new task, for example). In a bottom-up build, this is the changed file that
    /// scheduled the task.
    ///
    /// One pass over the explanations: linear in their number.
    ///
    /// ```
    /// use pie::tracker::explain::{ExplainTracker, Reason};
    /// use pie::{Context, Pie, Task};
    /// # use std::path::PathBuf;
    ///
    /// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    /// enum T {
    ///     Read(PathBuf),
    ///     Upper(PathBuf),
    /// }
    /// impl Task for T {
    ///     type Output = String;
    ///     fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
    ///         match self {
    ///             T::Read(path) => {
    ///                 context.require_file(path).unwrap();
    ///                 std::fs::read_to_string(path).unwrap_or_default()
    ///             }
    ///             T::Upper(path) => context.require_task(&T::Read(path.clone())).to_uppercase(),
    ///         }
    ///     }
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("a.txt");
    /// std::fs::write(&path, "one")?;
    /// let mut pie = Pie::with_tracker(ExplainTracker::default());
    /// pie.new_session().require(&T::Upper(path.clone()));
    /// std::fs::write(&path, "two")?;
    /// pie.new_session().update_affected_by([&path]);
    /// let tracker = pie.tracker();
    /// // The reader executed because the file changed, the upper-caser because the reader's output changed.
    /// assert!(matches!(tracker.explanations()[1].reason, Reason::TaskOutput { .. }));
    /// let path = std::fs::canonicalize(&path)?;
    /// let changed: Vec<_> = tracker.changed_files().into_iter().map(|file| file.map(std::fs::canonicalize)).collect();
    /// assert!(matches!(&changed[..], [Some(Ok(a)), Some(Ok(b))] if *a == path && *b == path));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn changed_files(&self) -> Vec<Option<&Path>> {
        let mut last_execution: std::collections::HashMap<&T, usize> = std::collections::HashMap::new();
        let mut changed: Vec<Option<&Path>> = Vec::with_capacity(self.explanations.len());
        for (index, explanation) in self.explanations.iter().enumerate() {
            let file = match &explanation.reason {
                Reason::TaskOutput { task, .. }
                | Reason::TaskWithoutOutput { task }
                | Reason::RequiredTaskFailed { task } => last_execution.get(task).and_then(|&i| changed[i]),
                reason => reason.path().filter(|path| !path.as_os_str().is_empty()),
            };
            changed.push(file);
            last_execution.insert(&explanation.task, index);
        }
        changed
    }

    /// The reason of the last execution of `task` in the last build, `None` if it did not execute.
    ///
    /// ```
    /// use pie::tracker::explain::{ExplainTracker, Reason};
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
    /// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
    /// let mut pie = pie::Pie::with_tracker(ExplainTracker::default());
    /// pie.new_session().require(&Hello);
    /// assert_eq!(pie.tracker().reason_of(&Hello), Some(&Reason::NoOutput));
    /// pie.new_session().require(&Hello);
    /// assert_eq!(pie.tracker().reason_of(&Hello), None);
    /// ```
    pub fn reason_of(&self, task: &T) -> Option<&Reason<T, T::Output>> {
        self.explanations
            .iter()
            .rev()
            .find(|e| e.task == *task)
            .map(|e| &e.reason)
    }
}

impl<T: Task> Tracker<T> for ExplainTracker<T, T::Output> {
    fn build_start(&mut self) {
        if !self.accumulate {
            self.explanations.clear();
        }
        self.nesting.clear();
    }
    fn require_task_start(&mut self, task: &T, _stamper: &crate::stamp::OutputStamper) {
        self.nesting.start(Open::Require(task.clone()), ());
    }
    fn require_task_end(
        &mut self,
        dependency: &crate::dependency::TaskDependency<T, T::Output>,
        _: &T::Output,
        _: bool,
    ) {
        self.nesting.end(&Open::Require(dependency.task().clone()), |_, _| {});
    }
    fn check_dependency_start(&mut self, dependency: &Dependency<T, T::Output>) {
        self.nesting.start(Open::of_check(dependency, T::clone), ());
    }
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<T, T::Output>,
        inconsistency: Result<Option<&Inconsistency<T::Output>>, &io::Error>,
    ) {
        let closed = self.nesting.end(&Open::of_check(dependency, T::clone), |_, _| {});
        if let (Some(_), Some(reason)) = (closed, reason_of_check(dependency, inconsistency)) {
            self.nesting.set_pending(reason);
        }
    }
    fn execute_start(&mut self, task: &T) {
        let reason = match self.nesting.execute_start(task.clone(), (), |_, _| {}) {
            Given::Reason(reason) => reason,
            Given::RequiredFailed(task) => Reason::RequiredTaskFailed { task },
            Given::Outermost => Reason::Affected,
            Given::Nothing => Reason::NoOutput,
        };
        self.explanations.push(Explanation {
            task: task.clone(),
            reason,
            lane: lane(),
        });
    }
    fn execute_end(&mut self, task: &T, _output: &T::Output) {
        self.nesting.end(&Open::Execute(task.clone()), |_, _| {});
    }
}
