//! Sessions: the unit within which each task is checked or executed at most once.
//!
//! A [`Session`] holds the state of its builds (`crate::context::state`) and starts each build through a
//! `TopDownContext`; per-session bookkeeping never goes into the store. Marks are stamped with the session's epoch
//! (`crate::context::marks`), so starting a session is O(1): marks of earlier sessions simply read as unseen.

use std::io;
use std::path::Path;

use crate::context::marks::Mark;
use crate::context::parallel::resolve_threads;
use crate::context::state::{LaneState, Ptr, SessionState};
use crate::context::top_down::TopDownContext;
#[cfg(feature = "watch")]
use crate::ids::TaskId;
use crate::tracker::{NoopTracker, Tracker};
use crate::{Pie, Task};

/// A build session: within it each task is checked or executed at most once, so file changes made during a
/// session are only seen by the next one (the one exception, in parallel builds that break a soundness rule, is
/// in [`Pie::set_threads`]). Create one with [`Pie::new_session`].
pub struct Session<'p, T: Task, O, A: Tracker<T> = NoopTracker> {
    pie: &'p mut Pie<T, O, A>,
    state: SessionState,
    /// The state of the caller's lane (lane 0 of parallel builds).
    lane: LaneState,
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
            lane: LaneState::default(),
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
    /// root top-down. Results equal those of a top-down build, and every soundness check holds. One verdict may be
    /// stricter: when a task provides a file that a live task read without requiring it first, and the provider
    /// executes before that reader was brought up to date, the reader fails with the hidden dependency too (the
    /// provider's write came before the reader's look at the file, which no clean build does).
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
            store: Ptr::new(&mut pie.store),
            tracker: Ptr::new(&mut pie.tracker),
            marks: Ptr::new(&mut pie.marks),
            state: Ptr::new(&mut self.state),
            lane: Ptr::new(&mut self.lane),
            par: None,
            held: true,
            threads: resolve_threads(pie.threads),
            lane_index: 0,
            remote: pie.remote.as_deref(),
        }
    }

    /// Makes every task of `tasks` consistent, like [`require`](Self::require) for each, in one build, and returns
    /// their outputs in the order of `tasks`. Each task becomes a root.
    ///
    /// The tasks are made consistent in parallel where the [`Pie`] has threads to spare ([`Pie::set_threads`]); with
    /// one thread, one after the other in order. Results are the same either way. As with
    /// [`Context::require_tasks`](crate::Context::require_tasks), the calling thread checks the tasks in order until
    /// one must execute, and only then do other threads join in.
    ///
    /// # Panics
    /// As [`require`](Self::require). Every task is required even when one panics; the first panic, in the order of
    /// `tasks`, then goes on, with its original payload. The [`Pie`] stays usable afterwards.
    pub fn require_all(&mut self, tasks: &[T]) -> Vec<T::Output> {
        self.context().require_all_initial(tasks)
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
