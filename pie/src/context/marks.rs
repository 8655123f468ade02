//! Marks: where each task stands in the current session (unseen, scheduled, in progress, done, failed), and which
//! tasks are known to be live in it. Kept in the `Pie` between sessions and stamped with the session's epoch, so
//! that starting a session is O(1): marks of earlier sessions simply read as unseen.
//!
//! Apart from the session's own knowledge of liveness (`known_live`, "live when the session started", which a
//! bottom-up build proves by walking up to a root) and of neededness (`known_needed`, "reachable now from a root or
//! a task of this session through tasks that are not scheduled", void as soon as a task it relied on is scheduled
//! or forgotten), the marks remember across sessions which tasks were found
//! *live now* (reachable from a root through current dependencies), valid for as long as the store's
//! [`liveness_changes`](crate::store::Store::liveness_changes) count stays the same: nothing can have made such a
//! task dead since. A bottom-up build of a chain then proves nothing again per session.

use crate::ids::TaskId;

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
    /// (see `LaneState::failures`).
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
    /// `needed_epoch` for a task known to be needed (see [`known_needed`](Self::known_needed)).
    needed: Vec<u32>,
    /// Advances at every session and whenever a task known to be needed is scheduled or forgotten, which voids
    /// every entry of `needed` at once.
    needed_epoch: u32,
    /// For each task, the number of the last graph walk that visited it (see [`start_walk`](Self::start_walk)).
    /// Kept between sessions, so that a walk never costs the size of the graph to set up.
    visits: Vec<u32>,
    walk: u32,
    /// For a task in progress during a parallel build: the lane on whose stack it is (see
    /// `crate::context::parallel`). Written only by parallel builds; meaningless for a task not in progress.
    owners: Vec<u16>,
    /// For each task, the `clock` when it was last found live now (see the module doc); entries below
    /// `valid_from` are void.
    found_live: Vec<u32>,
    /// Advances at every session and at every invalidation of `found_live`.
    clock: u32,
    /// The clock at the last invalidation.
    valid_from: u32,
    /// The clock when the session in progress started: valid entries below it were found in earlier sessions.
    session_start: u32,
    /// The store's `liveness_changes` for which `found_live` is valid.
    basis: u64,
}

impl Default for Marks {
    fn default() -> Self {
        Self {
            epoch: 1,
            marks: Vec::new(),
            live: Vec::new(),
            needed: Vec::new(),
            needed_epoch: 1,
            visits: Vec::new(),
            walk: 0,
            owners: Vec::new(),
            found_live: Vec::new(),
            clock: 1,
            valid_from: 1,
            session_start: 1,
            basis: 0,
        }
    }
}

impl Marks {
    /// Starts a new session: every mark reads as [`Mark::Unseen`], no task is known to be live.
    pub(crate) fn new_session(&mut self) {
        self.tick();
        self.session_start = self.clock;
        self.epoch += 1;
        if self.epoch >= u32::MAX >> 2 {
            self.marks.clear();
            self.live.clear();
            self.epoch = 1;
        }
        self.forget_needed();
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
        // A task that is scheduled, or forgotten (unseen again), no longer carries the paths that made the tasks
        // below it needed.
        if matches!(mark, Mark::Scheduled | Mark::Unseen) && self.known_needed(id) {
            self.forget_needed();
        }
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

    /// Notes that task `id`, in progress, is on the stack of lane `lane` (parallel builds only).
    pub(crate) fn set_owner(&mut self, id: TaskId, lane: usize) {
        let index = id.index();
        if index >= self.owners.len() {
            self.owners.resize(index + 1, 0);
        }
        self.owners[index] = lane as u16;
    }

    /// The lane of task `id`, in progress in a parallel build (see [`set_owner`](Self::set_owner)).
    pub(crate) fn owner(&self, id: TaskId) -> usize {
        usize::from(self.owners.get(id.index()).copied().unwrap_or(0))
    }

    /// Whether `id` is known to be live in this session.
    #[inline]
    pub(crate) fn known_live(&self, id: TaskId) -> bool {
        self.live.get(id.index()) == Some(&self.epoch)
    }

    /// Remembers that `id` is live for the rest of this session.
    #[inline]
    pub(crate) fn set_known_live(&mut self, id: TaskId) {
        let index = id.index();
        if index >= self.live.len() {
            self.live.resize(index + 1, 0);
        }
        self.live[index] = self.epoch;
    }

    /// Whether `id` is known to be *needed*: reachable from a root, or from a task in progress, done or failed in
    /// this session, through tasks that are not scheduled, and nothing on the path that showed it has been
    /// scheduled or forgotten since (see [`set`](Self::set)). Unlike [`known_live`](Self::known_live), which
    /// holds for the rest of the session, this changes as the session schedules tasks.
    #[inline]
    pub(crate) fn known_needed(&self, id: TaskId) -> bool {
        self.needed.get(id.index()) == Some(&self.needed_epoch)
    }

    /// Remembers that `id` is needed, until a task known to be needed is scheduled or forgotten. The caller marks
    /// every task of the path that showed it, its end included, so that a change to any of them voids the mark.
    #[inline]
    pub(crate) fn set_known_needed(&mut self, id: TaskId) {
        let index = id.index();
        if index >= self.needed.len() {
            self.needed.resize(index + 1, 0);
        }
        self.needed[index] = self.needed_epoch;
    }

    /// Voids every [`known_needed`](Self::known_needed) mark (O(1), amortised).
    fn forget_needed(&mut self) {
        self.needed_epoch = self.needed_epoch.wrapping_add(1);
        if self.needed_epoch == 0 {
            self.needed.fill(0);
            self.needed_epoch = 1;
        }
    }

    /// Starts a walk over a graph of `task_count` tasks in which no task is visited yet (O(1), amortised).
    pub(crate) fn start_walk(&mut self, task_count: usize) {
        self.walk = self.walk.wrapping_add(1);
        if self.walk == 0 {
            self.visits.fill(0);
            self.walk = 1;
        }
        if self.visits.len() < task_count {
            self.visits.resize(task_count, 0);
        }
    }

    /// Marks `id` visited by the current walk; whether it was not yet.
    #[inline]
    pub(crate) fn first_visit(&mut self, id: TaskId) -> bool {
        std::mem::replace(&mut self.visits[id.index()], self.walk) != self.walk
    }

    /// Advances the clock of `found_live`, starting afresh when it would wrap.
    fn tick(&mut self) {
        self.clock += 1;
        if self.clock == u32::MAX {
            self.found_live.clear();
            self.clock = 1;
            self.valid_from = 1;
            self.session_start = 1;
        }
    }

    /// Whether `id` was found live now and nothing (by the store's count `changes`) can have made it dead since.
    #[inline]
    pub(crate) fn live_now(&self, id: TaskId, changes: u64) -> bool {
        self.basis == changes && matches!(self.found_live.get(id.index()), Some(&found) if found >= self.valid_from)
    }

    /// Whether [`live_now`](Self::live_now) holds by what an earlier session found, so that `id` was live when
    /// this session started.
    #[inline]
    pub(crate) fn live_before_session(&self, id: TaskId, changes: u64) -> bool {
        self.basis == changes
            && matches!(self.found_live.get(id.index()), Some(&found) if found >= self.valid_from && found < self.session_start)
    }

    /// Remembers that `id` is live now (reachable from a root through current dependencies), where the store's
    /// count of liveness changes is `changes`.
    #[inline]
    pub(crate) fn set_live_now(&mut self, id: TaskId, changes: u64) {
        if self.basis != changes {
            self.tick();
            self.valid_from = self.clock;
            self.basis = changes;
        }
        let index = id.index();
        if index >= self.found_live.len() {
            self.found_live.resize(index + 1, 0);
        }
        self.found_live[index] = self.clock;
    }
}
