//! Marks: where each task stands in the current session (unseen, scheduled, in progress, done, failed), and which
//! tasks are known to be live in it. Kept in the `Pie` between sessions and stamped with the session's epoch, so
//! that starting a session is O(1): marks of earlier sessions simply read as unseen.
//!
//! Apart from the session's own knowledge of liveness (`known_live`, "live when the session started", which a
//! bottom-up build proves by walking up to a root) and of neededness (`known_needed`, "reachable now from a root or
//! a task done in this session through tasks that are not scheduled", void as soon as the mark of a task it relied
//! on changes), the marks remember across sessions which tasks were found
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
    /// `needed_epoch << 1 | supports` for a task known to be needed (see [`known_needed`](Self::known_needed));
    /// `supports` when the mark of another task that is not scheduled relies on this one.
    needed: Vec<u32>,
    /// Advances at every session and whenever the mark of a task that supports another's changes, which voids every
    /// entry of `needed` at once.
    needed_epoch: u32,
    /// Whether some task supports another's needed mark in the current `needed_epoch` (so that setting a mark, on the
    /// hot path of every build, costs one test while none does).
    supporting: bool,
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
            supporting: false,
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
        // A task whose mark changes may no longer carry the path that made the tasks below it needed: scheduled, it
        // executes first and then requires them or not; in progress, it may be executing and drop them; forgotten,
        // it is no longer a task of this session.
        if self.supporting {
            self.forget_needed_through(id);
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

    /// Makes room for the marks and lanes of tasks with indexes below `count` (parallel builds, when a fork opens):
    /// [`set`](Self::set) and [`set_owner`](Self::set_owner) then write only their task's entry, not the lengths
    /// in this struct, which every lane reads (a length written at each new task would move their cache line from
    /// lane to lane at every step).
    pub(crate) fn make_room(&mut self, count: usize) {
        if self.marks.len() < count {
            self.marks.resize(count, 0);
        }
        if self.owners.len() < count {
            self.owners.resize(count, 0);
        }
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

    /// Whether `id` is known to be *needed*: reachable from a root, or from a task done in this session, through
    /// tasks that are not scheduled, and the mark of no task on the path that showed it has changed since.
    /// Unlike [`known_live`](Self::known_live), which holds for the rest of the session, this changes as the
    /// session schedules tasks.
    ///
    /// The marks form paths up to their ends: a task marked needed has its path's tasks above it, and the end,
    /// marked as *supporting* it (see [`set_known_needed`](Self::set_known_needed)). A change to the mark of a
    /// supporting task (scheduled, in progress, forgotten) voids every mark at once (see [`set`](Self::set)); a
    /// change to one that supports nothing (the lowest task of a path, right above the scheduled task whose walk
    /// found it) voids nothing, so that executing the task a walk started from, which schedules that lowest task,
    /// keeps what the walk found.
    #[inline]
    pub(crate) fn known_needed(&self, id: TaskId) -> bool {
        matches!(self.needed.get(id.index()), Some(&mark) if mark >> 1 == self.needed_epoch)
    }

    /// Whether `id` is marked needed and supports the mark of another task.
    #[inline]
    fn supports_needed(&self, id: TaskId) -> bool {
        self.needed.get(id.index()) == Some(&(self.needed_epoch << 1 | 1))
    }

    /// Remembers that `id` is needed (see [`known_needed`](Self::known_needed)) and, with `supports`, that the mark
    /// of another task that is not scheduled relies on it: the caller marks every task of the path that showed it
    /// needed, each above the lowest one, and the path's end, as supporting.
    #[inline]
    pub(crate) fn set_known_needed(&mut self, id: TaskId, supports: bool) {
        let index = id.index();
        if index >= self.needed.len() {
            self.needed.resize(index + 1, 0);
        }
        let supported = self.supports_needed(id);
        self.needed[index] = self.needed_epoch << 1 | u32::from(supports || supported);
        self.supporting |= supports;
    }

    /// Voids every [`known_needed`](Self::known_needed) mark if `id` supports one (kept out of line, so that
    /// [`set`](Self::set) stays small enough to inline wherever a build marks a task).
    #[cold]
    #[inline(never)]
    fn forget_needed_through(&mut self, id: TaskId) {
        if self.supports_needed(id) {
            self.forget_needed();
        }
    }

    /// Voids every [`known_needed`](Self::known_needed) mark (O(1), amortised).
    fn forget_needed(&mut self) {
        self.supporting = false;
        self.needed_epoch += 1;
        if self.needed_epoch >= u32::MAX >> 1 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: u32) -> TaskId {
        TaskId::from_raw(raw)
    }

    #[test]
    fn a_change_to_a_supporting_task_voids_every_needed_mark() {
        let mut marks = Marks::default();
        marks.new_session();
        // A path 1 → 2 → 3 found from a scheduled task 0: 1 is the lowest task, 2 and the end 3 support it.
        marks.set_known_needed(id(1), false);
        marks.set_known_needed(id(2), true);
        marks.set_known_needed(id(3), true);
        // Scheduling the lowest task (its requirer 0 executed) voids nothing.
        marks.set(id(1), Mark::Scheduled);
        assert!((1..=3).all(|raw| marks.known_needed(id(raw))));
        // A task not marked voids nothing either.
        marks.set(id(7), Mark::InProgress);
        assert!(marks.known_needed(id(2)));
        // A supporting task in progress may drop what it required: every mark goes.
        marks.set(id(2), Mark::InProgress);
        assert!((1..=3).all(|raw| !marks.known_needed(id(raw))));
    }

    #[test]
    fn a_supporting_mark_is_never_weakened_and_a_session_voids_every_mark() {
        let mut marks = Marks::default();
        marks.new_session();
        marks.set_known_needed(id(4), true);
        // Found again as the lowest task of another path: it still supports the first path's tasks.
        marks.set_known_needed(id(4), false);
        marks.set(id(4), Mark::Scheduled);
        assert!(!marks.known_needed(id(4)));
        marks.set_known_needed(id(5), false);
        marks.new_session();
        assert!(!marks.known_needed(id(5)));
        assert_eq!(marks.get(id(4)), Mark::Unseen);
    }
}
