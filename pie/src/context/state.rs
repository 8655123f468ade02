//! The state of the builds of one session that is not in the store: the explicit stack of frames of the top-down
//! check, the executing task, panics waiting to meet their requirer, the dependency-check errors, and whether
//! builds completed (which decides whether the store is settled).

use std::io;

use crate::context::bottom_up::Scheduler;
use crate::ids::TaskId;

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
    /// holds: when every dependency is consistent it is marked failed (`Mark::Failed`) without executing.
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
