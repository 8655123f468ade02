//! Sessions: the unit within which each task is checked or executed at most once.
//!
//! Per-session bookkeeping lives here, never in the store: a mark per task (unseen, in progress, done), the stack
//! of tasks being made consistent, the executing task, and the dependency-check errors. Marks are stamped with
//! the session's epoch, so starting a session is O(1): marks of earlier sessions simply read as unseen.

use std::io;
use std::path::Path;

use crate::context::bottom_up::Scheduler;
use crate::context::top_down::TopDownContext;
use crate::store::TaskId;
use crate::tracker::{NoopTracker, Tracker};
use crate::{Pie, Task};

/// Where a task stands in the current session.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum Mark {
    Unseen,
    /// Scheduled by a bottom-up build: inconsistent, to be executed (not yet checked or executed).
    Scheduled,
    InProgress,
    Done,
    /// Has no output, and this session found that it panics: it executed and panicked, or its recorded
    /// dependencies are consistent with an execution that panicked in its own code (so it would panic again).
    /// Requiring it executes it (again), unless the panic of its execution in this session is waiting to be met
    /// (see `SessionState::failures`).
    Failed,
}

/// Epoch-stamped per-task marks, reused across sessions; also the session's cache of tasks known to be live.
#[derive(Clone, Debug)]
pub(crate) struct Marks {
    epoch: u32,
    /// `epoch << 2 | state`, state 0 in progress, 1 done, 2 scheduled, 3 failed; any other epoch reads as unseen.
    marks: Vec<u32>,
    /// `epoch` for a task known to be live in this session (see `crate::liveness`).
    live: Vec<u32>,
}

impl Default for Marks {
    fn default() -> Self {
        Self {
            epoch: 1,
            marks: Vec::new(),
            live: Vec::new(),
        }
    }
}

impl Marks {
    /// Starts a new session: every mark reads as [`Mark::Unseen`], no task is known to be live.
    pub(crate) fn new_session(&mut self) {
        self.epoch += 1;
        if self.epoch >= u32::MAX >> 2 {
            self.marks.clear();
            self.live.clear();
            self.epoch = 1;
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: TaskId) -> Mark {
        match self.marks.get(id.index()) {
            Some(m) if m >> 2 == self.epoch => match m & 3 {
                0 => Mark::InProgress,
                1 => Mark::Done,
                2 => Mark::Scheduled,
                _ => Mark::Failed,
            },
            _ => Mark::Unseen,
        }
    }

    #[inline]
    pub(crate) fn set(&mut self, id: TaskId, mark: Mark) {
        let index = id.index();
        if index >= self.marks.len() {
            self.marks.resize(index + 1, 0);
        }
        self.marks[index] = match mark {
            Mark::Unseen => 0,
            Mark::InProgress => self.epoch << 2,
            Mark::Done => (self.epoch << 2) | 1,
            Mark::Scheduled => (self.epoch << 2) | 2,
            Mark::Failed => (self.epoch << 2) | 3,
        };
    }

    /// Whether `id` is known to be live in this session.
    #[inline]
    pub(crate) fn known_live(&self, id: TaskId) -> bool {
        self.live.get(id.index()) == Some(&self.epoch)
    }

    /// Remembers that `id` is live for the rest of this session.
    pub(crate) fn set_known_live(&mut self, id: TaskId) {
        let index = id.index();
        if index >= self.live.len() {
            self.live.resize(index + 1, 0);
        }
        self.live[index] = self.epoch;
    }
}

/// A task being made consistent: the explicit stack frame of the top-down check.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Frame {
    pub(crate) id: TaskId,
    /// The index of the next dependency to check.
    pub(crate) next: u32,
    /// Whether the dependency at `next` is a task dependency whose check has started and whose required task has
    /// just been made consistent, so that only the comparison of its output version is left.
    pub(crate) resume: bool,
    /// Whether the task has no output and is checked only to learn whether its last (panicking) execution still
    /// holds: when every dependency is consistent it is marked [`Mark::Failed`] without executing.
    pub(crate) probe: bool,
}

/// The payload of a panic, as `catch_unwind` gives it.
pub(crate) type Payload = Box<dyn std::any::Any + Send + 'static>;

/// The mutable state of one session.
#[derive(Default, Debug)]
pub(crate) struct SessionState {
    /// Tasks being made consistent, outermost first.
    pub(crate) stack: Vec<Frame>,
    /// The task whose `execute` is running, to which new dependencies are attached.
    pub(crate) current: Option<TaskId>,
    pub(crate) errors: Vec<io::Error>,
    /// Whether a build ran in this session (an empty session says nothing about consistency).
    pub(crate) built: bool,
    /// Whether a build is running; still `true` after a build when a panic escaped it.
    pub(crate) building: bool,
    /// Whether a panic escaped a build of this session.
    pub(crate) panicked: bool,
    /// Whether a bottom-up build of this session completed: every live task is then consistent.
    pub(crate) bottom_up_completed: bool,
    /// Bottom-up state, from the first `update_affected_by` of the session on: requires then trust what it made
    /// consistent.
    pub(crate) bottom_up: Option<Scheduler>,
    /// Tasks that became roots in this session: they may have been dead (and so stale) when it started.
    pub(crate) new_roots: Vec<TaskId>,
    /// Panics of tasks that executed while a task above them was only being checked, kept until that task executes
    /// and requires them (then the panic goes on, with its original payload, where the requiring task may catch
    /// it, as in a clean build). Emptied when a build starts.
    pub(crate) failures: Failures,
    /// Whether the panic unwinding now is a soundness violation (which may not repeat: see
    /// `Store::fail_execution`); taken by the execution it unwinds through first.
    pub(crate) violation: bool,
    /// The tasks executed in this session, in the order they started, when asked for (watch mode reports them);
    /// `None`, and no cost beyond a branch per execution, otherwise.
    pub(crate) executed: Option<Vec<TaskId>>,
}

/// See [`SessionState::failures`].
#[derive(Default)]
pub(crate) struct Failures(Vec<(TaskId, Payload)>);

impl Failures {
    pub(crate) fn push(&mut self, id: TaskId, payload: Payload) {
        self.0.push((id, payload));
    }

    /// Takes the kept panic of task `id`, if any.
    pub(crate) fn take(&mut self, id: TaskId) -> Option<Payload> {
        let index = self.0.iter().position(|(t, _)| *t == id)?;
        Some(self.0.swap_remove(index).1)
    }

    /// Takes the first kept panic of a task for which `pick` holds.
    pub(crate) fn take_first(&mut self, mut pick: impl FnMut(TaskId) -> bool) -> Option<Payload> {
        let index = self.0.iter().position(|(t, _)| pick(*t))?;
        Some(self.0.remove(index).1)
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(id, _)| id)).finish()
    }
}

/// A build session: within it each task is checked or executed at most once, so file changes made during a
/// session are only seen by the next one. Create one with [`Pie::new_session`].
pub struct Session<'p, T: Task, O, A: Tracker<T> = NoopTracker> {
    pie: &'p mut Pie<T, O, A>,
    state: SessionState,
}

impl<T: Task, O, A: Tracker<T>> Drop for Session<'_, T, O, A> {
    /// Records whether this session left every live task consistent, which later bottom-up builds rely on.
    fn drop(&mut self) {
        let state = &self.state;
        if !state.built {
            return;
        }
        let store = &mut self.pie.store;
        let marks = &self.pie.marks;
        let settled = !state.panicked
            && !state.building
            && ((state.bottom_up_completed && store.is_settled())
                || store.roots().all(|root| marks.get(root) == Mark::Done));
        store.set_settled(settled);
    }
}

impl<'p, T: Task, A: Tracker<T>> Session<'p, T, T::Output, A> {
    pub(crate) fn new(pie: &'p mut Pie<T, T::Output, A>) -> Self {
        pie.marks.new_session();
        Self {
            pie,
            state: SessionState::default(),
        }
    }

    /// Makes `task` consistent, executing it and what it requires only where needed, and returns its output.
    ///
    /// # Panics
    /// On an unsound build script (messages start with `Overlapping provided file`, `Hidden dependency` or
    /// `Cyclic task dependency`), and when a task panics. The [`Pie`] stays usable afterwards.
    pub fn require(&mut self, task: &T) -> T::Output {
        self.context().require_initial(task)
    }

    /// Brings every live task affected by changes to the files at `changed` up to date, bottom-up: executes the
    /// live tasks whose recorded dependencies on those files are inconsistent, then, in dependency order, the live
    /// tasks that their executions affected (a required task's output that changed, with early cutoff; a file
    /// that an executed task wrote, for the tasks whose stamp of it changed). It checks or executes nothing else:
    /// it stamps only the changed files. Trackers see `build_start` and `build_end` around it.
    ///
    /// Afterwards, in this session, [`require`](Self::require) of a live task that the changes did not affect
    /// executes nothing and re-checks no file.
    ///
    /// **When to use it.** The caller promises that `changed` names every file changed since the last session
    /// that built something, as a file watcher or a change journal can. Without such a source of changes, use
    /// [`require`](Self::require) (top-down), which re-checks everything. Paths are compared after
    /// normalisation; paths that no task depends on are ignored. If the last session did not leave every live
    /// task consistent (a panic escaped it, or it required only some roots top-down), this first checks every
    /// root top-down. Results equal those of a top-down build, and every soundness check holds.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::path::PathBuf;
    /// use pie::{Context, Pie, Task};
    /// use pie::stamp::FileStamper;
    /// use pie::tracker::event::EventTracker;
    ///
    /// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    /// struct ReadFile(PathBuf);
    /// impl Task for ReadFile {
    ///     type Output = String;
    ///     fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
    ///         let mut text = String::new();
    ///         // Hash: a test that writes twice within one clock tick still sees the change.
    ///         if let Ok(Some(mut file)) = context.require_file_with_stamper(&self.0, FileStamper::Hash) {
    ///             file.read_to_string(&mut text).unwrap();
    ///         }
    ///         text
    ///     }
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    /// std::fs::write(&a, "a")?;
    /// std::fs::write(&b, "b")?;
    /// let (read_a, read_b) = (ReadFile(a.clone()), ReadFile(b.clone()));
    /// let mut pie = Pie::with_tracker(EventTracker::default());
    /// pie.new_session().require_all(&[read_a.clone(), read_b.clone()]);
    ///
    /// // A watcher reports that `a.txt` changed: only its reader executes, and `b.txt` is not even stamped.
    /// std::fs::write(&a, "A")?;
    /// pie.new_session().update_affected_by([&a]);
    /// assert!(pie.tracker().one_execute_of(&read_a));
    /// assert!(!pie.tracker().any_execute_of(&read_b));
    ///
    /// // In the session of a bottom-up build, requiring a task returns its up-to-date output at once.
    /// std::fs::write(&b, "B")?;
    /// let mut session = pie.new_session();
    /// session.update_affected_by([&b]);
    /// assert_eq!(session.require(&read_a), "A");
    /// assert_eq!(session.require(&read_b), "B");
    /// drop(session);
    /// assert!(!pie.tracker().any_execute(), "the last build, `require(&read_b)`, had nothing left to do");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// As [`require`](Self::require); the [`Pie`] stays usable afterwards.
    pub fn update_affected_by<P: AsRef<Path>>(&mut self, changed: impl IntoIterator<Item = P>) {
        self.context().update_affected_by(changed)
    }

    fn context(&mut self) -> TopDownContext<'_, T, T::Output, A> {
        let pie = &mut *self.pie;
        TopDownContext {
            store: &mut pie.store,
            tracker: &mut pie.tracker,
            marks: &mut pie.marks,
            state: &mut self.state,
        }
    }

    /// Makes every task of `tasks` consistent, like [`require`](Self::require) for each in order, and returns
    /// their outputs in the order of `tasks`.
    ///
    /// # Panics
    /// As [`require`](Self::require); the first panic stops the call.
    pub fn require_all(&mut self, tasks: &[T]) -> Vec<T::Output> {
        tasks.iter().map(|task| self.require(task)).collect()
    }

    /// The I/O errors met while checking file dependencies in this session (each made its task execute again).
    pub fn dependency_check_errors(&self) -> &[io::Error] {
        &self.state.errors
    }

    /// From now on, records which tasks this session executes (see [`take_executed`](Self::take_executed)).
    #[cfg(feature = "watch")]
    pub(crate) fn record_executions(&mut self) {
        self.state.executed.get_or_insert_with(Vec::new);
    }

    /// The tasks executed since [`record_executions`](Self::record_executions), in the order they started.
    #[cfg(feature = "watch")]
    pub(crate) fn take_executed(&mut self) -> Vec<TaskId> {
        self.state.executed.take().unwrap_or_default()
    }
}
