//! Sessions: the unit within which each task is checked or executed at most once.
//!
//! Per-session bookkeeping lives here, never in the store: a mark per task (unseen, in progress, done), the stack
//! of tasks being made consistent, the executing task, and the dependency-check errors. Marks are stamped with
//! the session's epoch, so starting a session is O(1): marks of earlier sessions simply read as unseen.

use std::io;

use crate::context::top_down::TopDownContext;
use crate::store::TaskId;
use crate::tracker::{NoopTracker, Tracker};
use crate::{Pie, Task};

/// Where a task stands in the current session.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum Mark {
    Unseen,
    InProgress,
    Done,
}

/// Epoch-stamped per-task marks, reused across sessions.
#[derive(Clone, Debug)]
pub(crate) struct Marks {
    epoch: u32,
    marks: Vec<u32>,
}

impl Default for Marks {
    fn default() -> Self {
        Self {
            epoch: 1,
            marks: Vec::new(),
        }
    }
}

impl Marks {
    /// Starts a new session: every mark reads as [`Mark::Unseen`].
    pub(crate) fn new_session(&mut self) {
        self.epoch += 1;
        if self.epoch >= u32::MAX >> 1 {
            self.marks.clear();
            self.epoch = 1;
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: TaskId) -> Mark {
        match self.marks.get(id.index()) {
            Some(m) if m >> 1 == self.epoch => {
                if m & 1 == 1 {
                    Mark::Done
                } else {
                    Mark::InProgress
                }
            }
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
            Mark::InProgress => self.epoch << 1,
            Mark::Done => (self.epoch << 1) | 1,
        };
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
}

/// The mutable state of one session.
#[derive(Default, Debug)]
pub(crate) struct SessionState {
    /// Tasks being made consistent, outermost first.
    pub(crate) stack: Vec<Frame>,
    /// The task whose `execute` is running, to which new dependencies are attached.
    pub(crate) current: Option<TaskId>,
    pub(crate) errors: Vec<io::Error>,
}

/// A build session: within it each task is checked or executed at most once, so file changes made during a
/// session are only seen by the next one. Create one with [`Pie::new_session`].
pub struct Session<'p, T, O, A = NoopTracker> {
    pie: &'p mut Pie<T, O, A>,
    state: SessionState,
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
        let pie = &mut *self.pie;
        let mut context = TopDownContext {
            store: &mut pie.store,
            tracker: &mut pie.tracker,
            marks: &mut pie.marks,
            state: &mut self.state,
        };
        context.require_initial(task)
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
}
