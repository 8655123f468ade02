//! The state of the builds of one session that is not in the store, split as parallel builds need it: what all
//! lanes share (`SessionState`: dependency-check errors, whether builds completed, the bottom-up scheduler), and what
//! each lane (the caller's thread, or a worker thread of a parallel build) keeps for itself (`LaneState`: the
//! explicit stack of frames of the top-down check, the executing task, panics waiting to meet their requirer).
//! `Ptr` is how a lane reaches the shared state while it holds the engine.

use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::context::bottom_up::{Executions, Scheduler};
use crate::ids::{FileId, TaskId};

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

/// See [`LaneState::pending_stamp`].
#[derive(Debug)]
pub(crate) struct PendingStamp {
    pub(crate) task: TaskId,
    /// The index of the dependency among the task's.
    pub(crate) index: usize,
    pub(crate) file: crate::ids::FileId,
    pub(crate) stamp: Option<crate::stamp::FileStamp>,
    pub(crate) stamper: crate::stamp::FileStamper,
    pub(crate) provided: bool,
}

/// See [`LaneState::pending_reads`].
#[derive(Debug)]
pub(crate) struct PendingRead {
    pub(crate) task: TaskId,
    pub(crate) stamper: crate::stamp::FileStamper,
    pub(crate) stamp: Option<crate::stamp::FileStamp>,
    /// Whether normalising the path changed it: then the normalised path is the second of the read's pair in
    /// [`LaneState::read_paths`], else it is the first (the path as the task gave it).
    pub(crate) normalised: bool,
}

/// What one lane (a thread working on a build) keeps for itself.
#[derive(Default, Debug)]
pub(crate) struct LaneState {
    /// Tasks being made consistent on this lane, outermost first. Every task marked in progress is on the stack of
    /// exactly one lane (which is how a parallel build tells a cycle from a task to wait for).
    pub(crate) stack: Vec<Frame>,
    /// The task whose `execute` is running on this lane, to which new dependencies are attached; `None` in a
    /// branch of a parallel `require_tasks`, whose requiring task records its dependencies when they all finished.
    pub(crate) current: Option<TaskId>,
    /// Panics of tasks that executed while a task above them was only being checked, kept until that task executes
    /// and requires them (then the panic goes on, with its original payload, where the requiring task may catch
    /// it, as in a clean build). Emptied when a build starts.
    pub(crate) failures: Failures,
    /// Whether the panic unwinding now on this lane is a soundness violation (which may not repeat: see
    /// `Store::fail_execution`); taken by the execution it unwinds through first.
    pub(crate) violation: bool,
    /// A file dependency recorded in a parallel build without its stamp, which was taken without holding the
    /// engine; filled in when the lane next takes it (see `TopDownContext::apply_pending`).
    pub(crate) pending_stamp: Option<PendingStamp>,
    /// The `require_file` calls of the executing task in a parallel build, in order, that neither checked nor
    /// recorded anything yet (while no file has a provider, see `crate::context::parallel`): checked and recorded,
    /// with their stamps, when the lane next takes the engine (see `TopDownContext::apply_pending_reads`).
    pub(crate) pending_reads: Vec<PendingRead>,
    /// The paths of the pending reads, by index: as the task gave it (for the tracker) and normalised (when that
    /// differs). Buffers kept for the lane's next pending reads, so that recording one allocates nothing once they
    /// are large enough.
    pub(crate) read_paths: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    /// The path of the pending stamp's file as the task gave it, for the tracker: a buffer kept for the lane's next
    /// pending stamp, so that recording one allocates nothing once it is large enough.
    pub(crate) pending_path: std::path::PathBuf,
    /// The run of task dependencies (task, end index) whose required tasks' files were last considered for
    /// prefetching (see `crate::context::prefetch`).
    pub(crate) prefetched_run: Option<(TaskId, usize)>,
    /// The stamps that helper threads take ahead of this lane's checks of the last such run, while it lasts.
    pub(crate) prefetch: Option<crate::context::prefetch::Prefetch>,
    /// A task marked failed in this session that is about to execute again (see `Store::fail_execution`).
    pub(crate) failed_before: Option<TaskId>,
    /// The branches of parallel `require_tasks` calls this lane is running, innermost last (see
    /// `crate::context::parallel`).
    pub(crate) branches: Vec<Branch>,
    /// The tasks executing on this lane in a bottom-up build (see `crate::context::bottom_up`).
    pub(crate) executions: Executions,
    /// The forks this lane opened and holds back (by slot; see `crate::context::parallel`).
    pub(crate) held_back: Vec<usize>,
}

/// A branch of a parallel `require_tasks` call that a lane runs.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Branch {
    /// The fork's slot among the open forks of the parallel build; `None` for a branch run again after its fork
    /// joined (see `TopDownContext::redo_branch`).
    pub(crate) fork: Option<usize>,
    /// The height of the lane's stack when the branch started.
    pub(crate) height: usize,
    /// Where the branch stands in the order of a build on one thread (see [`Position`]).
    pub(crate) position: Position,
}

/// Where a task was entered in a parallel build, in the order a build on one thread would follow: the fork (by its
/// number in [`SessionState::lineage`]) and the index of the branch in it. `Position::NONE` outside forks.
///
/// Two positions are ordered where their chains of forks (a fork's parent position is in the lineage) first meet:
/// the one in the later branch of that fork comes later on one thread (see `TopDownContext::runs_later`).
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
pub(crate) struct Position(pub(crate) u64);

impl Position {
    /// Outside every fork of the session's current parallel build.
    pub(crate) const NONE: Position = Position(0);

    pub(crate) fn new(fork: u32, branch: u32) -> Self {
        Self((u64::from(fork) + 1) << 32 | u64::from(branch))
    }

    /// The fork's number and the branch's index; `None` for [`Position::NONE`].
    pub(crate) fn get(self) -> Option<(u32, u32)> {
        (self.0 != 0).then(|| (((self.0 >> 32) - 1) as u32, self.0 as u32))
    }
}

/// A soundness violation found in a parallel build on the side of the task that would meet it last in a build on
/// one thread, while the other task was running: it is that task's, as on one thread (see
/// `TopDownContext::defer_violation`).
#[derive(Debug)]
pub(crate) struct Deferred {
    pub(crate) task: TaskId,
    pub(crate) message: String,
    /// The fork where the two tasks' branches part, and the index of the task's branch in it.
    pub(crate) fork: u32,
    pub(crate) branch: u32,
    /// What the task did in the build that one thread would not have done lies between these two entry numbers
    /// (see [`SessionState::entries`]): from its entry to the end of its execution (when the violation reached it
    /// in progress) or to the moment the violation was found (when it had finished).
    pub(crate) from: u32,
    pub(crate) to: u32,
    /// Whether the task's execution ended with the violation (it was in progress when the violation was found).
    pub(crate) ended: bool,
    /// The file of the violation, and whether the task provided a file after its dependency on it, which one
    /// thread never sees written (known once its execution ended).
    pub(crate) file: FileId,
    pub(crate) wrote_past: bool,
}

/// The mutable state of one session that all its lanes share.
#[derive(Default, Debug)]
pub(crate) struct SessionState {
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
    /// The tasks executed in this session, in the order they started, when asked for (watch mode reports them);
    /// `None`, and no cost beyond a branch per execution, otherwise.
    pub(crate) executed: Option<Vec<TaskId>>,
    /// The forks of the session's parallel builds, by number: the position of the branch that opened each (see
    /// [`Position`]).
    pub(crate) lineage: Vec<Position>,
    /// The position of each task entered in a parallel build of the session, by task index (sized on demand, and
    /// for a fork's tasks when it opens, see [`make_room`](Self::make_room)).
    pub(crate) positions: Vec<Position>,
    /// The number of each task's entry in a parallel build of the session, by task index (sized with `positions`),
    /// counted by `clock`: what a task entered while another executed came after it.
    pub(crate) entries: Vec<u32>,
    /// The count of entered tasks between parallel builds; while one runs, its engine lock keeps the count
    /// (`Parallel::clock`), and it comes back here when the build ends.
    pub(crate) clock: u32,
    /// Violations found on the side of the task that meets them later on one thread, not yet met by it.
    pub(crate) deferred: Vec<Deferred>,
    /// The soundness violation each task that failed with one in this session failed with: requiring it again in
    /// the session meets the same violation, instead of executing it again after what its failed execution wrote
    /// (which, in a parallel build, would make the verdict depend on which branch executed it first).
    pub(crate) violations: rustc_hash::FxHashMap<TaskId, String>,
    /// In a parallel build, the files that executions of this session provided (so wrote): a task of an earlier
    /// branch that reads one that a task of a later branch provided reads what one thread would not have written
    /// yet (see `check_require`).
    pub(crate) written: rustc_hash::FxHashSet<FileId>,
}

impl SessionState {
    /// Makes room for the positions and entries of tasks with indexes below `count` (when a fork opens; see
    /// `Marks::make_room`, which does the same for the marks).
    pub(crate) fn make_room(&mut self, count: usize) {
        if self.positions.len() < count {
            self.positions.resize(count, Position::NONE);
            self.entries.resize(count, 0);
        }
    }
}

/// See [`LaneState::failures`].
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

    /// Whether a panic of task `id` is kept.
    pub(crate) fn contains(&self, id: TaskId) -> bool {
        self.0.iter().any(|(t, _)| *t == id)
    }

    /// Whether no panic is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(id, _)| id)).finish()
    }
}

/// A pointer to state of the engine that lanes share (the store, the tracker, the marks, the session state),
/// dereferenced only by the lane that holds the engine.
///
/// In a build on one thread, a `Ptr` is a plain `&mut` (made from one, with its lifetime). In a parallel build,
/// several lanes hold a `Ptr` to the same state and take turns: a lane dereferences it only while it holds the
/// engine (`TopDownContext::held`, see `crate::context::parallel`), which every lane gives up only inside methods
/// that take `&mut TopDownContext` (around a task's own code, and while it waits). So the borrow checker proves that
/// no reference obtained through a `Ptr` lives across a point where another lane may use the state: a lane's
/// references end before it lets go, and the lock's handover orders one lane's accesses before the next one's.
pub(crate) struct Ptr<'s, X> {
    ptr: NonNull<X>,
    _borrow: PhantomData<&'s mut X>,
}

impl<'s, X> Ptr<'s, X> {
    pub(crate) fn new(value: &'s mut X) -> Self {
        Self {
            ptr: NonNull::from(value),
            _borrow: PhantomData,
        }
    }

    /// A second pointer to the same state, for another lane of the same build (see the type's doc).
    pub(crate) fn share(&self) -> Self {
        Self {
            ptr: self.ptr,
            _borrow: PhantomData,
        }
    }

    /// The address, for a lane that reads another lane's state while it holds the engine.
    pub(crate) fn as_ptr(&self) -> *const X {
        self.ptr.as_ptr()
    }
}

impl<X> Deref for Ptr<'_, X> {
    type Target = X;
    #[inline]
    fn deref(&self) -> &X {
        // SAFETY: see the type's doc: made from a `&mut` that outlives `'s`, and dereferenced only by the lane
        // that holds the engine, with no reference living across a release.
        unsafe { self.ptr.as_ref() }
    }
}

impl<X> DerefMut for Ptr<'_, X> {
    #[inline]
    fn deref_mut(&mut self) -> &mut X {
        // SAFETY: as for `deref`.
        unsafe { self.ptr.as_mut() }
    }
}

// SAFETY: a `Ptr` moves to a worker thread only with the engine's lock discipline (see the type's doc), so the state
// is used by one thread at a time, which needs it to be `Send`.
unsafe impl<X: Send> Send for Ptr<'_, X> {}
