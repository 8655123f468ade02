//! Bottom-up building: bring the live tasks affected by a set of changed files up to date, at a cost that scales
//! with what the change affects, not with the size of the project.
//!
//! Algorithm (after Konat, Erdweg and Visser, *Scalable Incremental Building with Dynamic Task Dependencies*):
//! 1. *Schedule* the tasks whose recorded dependencies on the changed files are inconsistent: readers whose stamp
//!    of a file changed, and the provider of a file that someone else changed. Only the changed files are stamped.
//! 2. Take scheduled tasks from a priority queue keyed by the store's topological order (dependencies first; a key
//!    that went stale because the order changed is re-queued, never re-sorted) and execute each one that is still
//!    *needed*: reachable from a root through tasks that are not themselves scheduled. A task reachable only
//!    through scheduled tasks waits: those execute first and require it again (it then executes on demand), or drop
//!    it. A task that no root reaches is dead and never executes. The walk up that proves a task needed is skipped
//!    when it is the only scheduled task and an earlier walk found it live with nothing since that could have made
//!    a task dead (`Store::liveness_changes`, `Marks::live_now`): a chain rebuilt bottom-up walks once, not per
//!    session.
//! 3. After a task executes: if its output changed, schedule the dependents whose stamper sees the change (early
//!    cutoff); for every file it provides, schedule the readers whose stamp of the file changed; and for every task
//!    it no longer requires, check the readers of the files provided below that task: a reader that no longer
//!    depends on a file's provider is scheduled, so that executing it decides the hidden dependency as a top-down
//!    check would.
//!
//! While a task executes, requiring a task (see [`TopDownContext::bring_up_to_date`]) returns at once when the
//! task is done or unaffected; a scheduled task, or one that depends on a scheduled task, is brought up to date
//! first. The search for scheduled tasks below a required task visits only tasks ordered after the lowest queued
//! task, which no other task can reach. A task whose state cannot be trusted (new, without output, or dead when
//! the session started, so that earlier changes were never propagated to it) is checked top-down instead.
//!
//! In a parallel build (see `crate::context::parallel`), the `require_tasks` of an executing task forks as in a
//! top-down build, and its branches bring their tasks up to date as above, on several lanes: the queue and the
//! marks are shared (used only while holding the engine); what each lane executes (`Executions`) is its own. A
//! task in progress on another lane is waited for, as in top-down builds (a cycle through lanes panics). A required
//! task is trusted without a look only when no task in progress on any lane is ordered before it, checked again
//! after bringing the scheduled tasks below it up to date (which lets go of the engine, so that another lane may
//! have started a task below it meanwhile); otherwise it is checked top-down, which waits for such a task.
//!
//! The loop that takes scheduled tasks from the queue runs on the caller's lane. When the task it takes and the
//! next one in the queue belong to one `require_tasks` group of an unscheduled task that is consistent up to that
//! group and stays needed whatever the scheduled tasks do (see
//! [`stays_needed`](TopDownContext::stays_needed)), it brings the group's scheduled tasks up to date in a fork (see
//! [`fork_scheduled_group`](TopDownContext::fork_scheduled_group): the build on one thread brings each of them up
//! to date too, whether their outputs change or are cut off); when they are roots, it forks the roots next in the
//! queue ([`fork_scheduled_roots`](TopDownContext::fork_scheduled_roots)); any other task it brings up to date
//! alone.
//!
//! Bottom-up relies on every live task having been consistent at the end of the last session that built
//! something (`Store::is_settled`); when that does not hold (a panic escaped, or a top-down session left roots
//! unchecked), it checks every root top-down first, which subsumes the changed files.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::panic::{self, AssertUnwindSafe};

use rustc_hash::{FxHashMap, FxHashSet};
use std::path::Path;

use crate::context::marks::{Mark, Marks};
use crate::context::state::{Payload, SessionState};
use crate::dependency::{Dep, Dependency, Group, Inconsistency, TaskDependency, UNKNOWN_VERSION};
use crate::ids::{FileId, TaskId};
use crate::path::NormalPath;
use crate::stamp::OutputStamper;
use crate::store::Store;
use crate::tracker::Tracker;
use crate::Task;

use super::top_down::TopDownContext;

/// The bottom-up state of a session: the queue of scheduled tasks, and what executing tasks required before.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    /// Scheduled tasks by (topological order when queued, id); the smallest first. Entries of tasks that are no
    /// longer scheduled are skipped when popped.
    queue: TaskQueue,
    /// An emptied vector kept for reuse (see `schedule_after_provides`).
    spare: Vec<TaskId>,
    /// Scheduled tasks taken from the queue but not needed yet, by (topological order then, id): each waits for a
    /// task above it to require it, and searches for scheduled tasks must still see it. Entries of tasks that are
    /// no longer scheduled (executed on demand since) are dropped when they come first.
    waiting: TaskQueue,
    /// The files that may have changed since the last session: the changed paths, and the files written by the
    /// tasks executed since. Every other file is consistent by the caller's promise.
    touched: FxHashSet<FileId>,
    /// Scratch space of [`reaches_live`](TopDownContext::reaches_live), kept so that a walk allocates nothing
    /// (which tasks it visited is in the marks): the visited tasks with the index of the task they were reached
    /// from, and the stack.
    parent: Vec<(TaskId, usize)>,
    stack: Vec<usize>,
    /// The `require_tasks` groups of the dependents that [`fork_scheduled_group`](TopDownContext::fork_scheduled_group)
    /// looked at: for each dependent, the index of the first dependency of the group of each task in one (found
    /// with one pass over its dependencies per session; read again from the store before use).
    groups: FxHashMap<TaskId, FxHashMap<TaskId, u32>>,
    /// Groups (dependent, index of the group's first dependency) that `fork_scheduled_group` found it cannot
    /// bring up to date in parallel: not looked at again in this session.
    declined: FxHashSet<(TaskId, u32)>,
}

/// How many tasks [`stays_needed`](TopDownContext::stays_needed) may visit on its walk up before it gives up: a
/// bound on what deciding to fork costs (a fork is declined beyond it, never wrongly made).
const STAYS_NEEDED_BUDGET: usize = 256;

/// The panic of a task's failure that the loop of `update_affected_by` keeps for the task's dependents (see
/// `LaneState::failures`), as it comes out of a branch of `fork_scheduled_group`.
pub(super) struct KeptFailure(Payload);

/// A priority queue of tasks by (topological order, id), the smallest first: a binary heap with the smallest entry
/// kept apart while it is alone or known smallest, so that a build in which one task at a time is scheduled (a
/// chain) never sifts the heap.
#[derive(Debug, Default)]
struct TaskQueue {
    /// When set, no entry of `heap` is smaller.
    front: Option<(u64, u32)>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

impl TaskQueue {
    #[inline]
    fn push(&mut self, entry: (u64, u32)) {
        match self.front {
            None if self.heap.is_empty() => self.front = Some(entry),
            Some(front) if entry < front => {
                self.heap.push(Reverse(front));
                self.front = Some(entry);
            }
            _ => self.heap.push(Reverse(entry)),
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<(u64, u32)> {
        match self.front.take() {
            Some(front) => Some(front),
            None => self.heap.pop().map(|Reverse(entry)| entry),
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.front.is_none() && self.heap.is_empty()
    }

    #[inline]
    fn peek(&self) -> Option<(u64, u32)> {
        self.front.or_else(|| self.heap.peek().map(|Reverse(entry)| *entry))
    }
}

/// The tasks executing on one lane in a bottom-up session (part of `LaneState`: in a parallel build, each lane
/// executes its own nest of tasks).
#[derive(Debug, Default)]
pub(crate) struct Executions {
    /// For each task executing on the lane, innermost at `depth - 1`: what it required in its previous execution
    /// and whether it was live when the session started. Entries from `depth` on are unused, kept so that their
    /// vectors are reused: an execution costs no allocation for this bookkeeping.
    executing: Vec<Executing>,
    depth: usize,
}

impl Executions {
    /// Forgets executions that a panic cut short (a new build starts with none).
    pub(crate) fn clear(&mut self) {
        self.depth = 0;
    }
}

/// A task executing in a bottom-up session (see [`TopDownContext::before_execution`]).
#[derive(Debug, Default)]
struct Executing {
    /// The tasks it required in its previous execution, sorted.
    previously_required: Vec<TaskId>,
    /// Whether it was live when the session started, so that what it previously required was too.
    certified: bool,
}

/// What a task required before it executed again (see [`TopDownContext::before_execution`]).
pub(crate) struct BeforeExecution {
    version: u64,
}

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// Brings every live task affected by changes to `changed` up to date: a bottom-up build.
    pub(crate) fn update_affected_by<P: AsRef<Path>>(&mut self, changed: impl IntoIterator<Item = P>) {
        self.recover_from_unwind();
        self.tracker.build_start();
        if self.store.is_settled() && !self.state.panicked {
            self.state.bottom_up.get_or_insert_with(Scheduler::default);
            self.store.take_reorder_floor();
            for path in changed {
                // A path that names no file (it cannot be made absolute) has no dependents.
                if let Ok(normal) = NormalPath::new(path.as_ref()) {
                    if let Some(file) = self.store.find_file(&normal) {
                        self.scheduler().touched.insert(file);
                        self.schedule_dependents_of_changed_file(file);
                    }
                }
            }
            while let Some(id) = self.pop() {
                if self.needed(id) {
                    // Either fork takes the tasks next in the queue along: with none queued (a chain, one task at a
                    // time), neither is looked for.
                    if self.threads > 1
                        && !self.scheduler().queue.is_empty()
                        && (self.fork_scheduled_group(id) || self.fork_scheduled_roots(id))
                    {
                        continue;
                    }
                    // A failure schedules the tasks that require the failed task, which meet its panic when they
                    // require it (and may catch it); what reaches a root goes on to the caller below.
                    if let Err(payload) = self.update_scheduled(id) {
                        self.lane.failures.push(id, payload);
                    }
                } else {
                    // It waits, scheduled, for a task above it to require it: searches must still find it.
                    let order = self.store.order(id);
                    self.scheduler().waiting.push((order, id.raw()));
                }
            }
        } else {
            // Earlier changes may not have reached every live task: check every root top-down (purely top-down:
            // no bottom-up state while it runs), after which every live task is done for this session.
            self.state.bottom_up = None;
            let roots: Vec<TaskId> = self.store.roots().collect();
            for root in roots {
                self.or_unwind(root, OutputStamper::Equals, |this| this.make_consistent(root, None));
            }
            self.state.bottom_up = Some(Scheduler::default());
        }
        let store = &*self.store;
        if let Some(payload) = self.lane.failures.take_first(|id| store.is_root(id)) {
            panic::resume_unwind(payload);
        }
        self.state.bottom_up_completed = true;
        self.tracker.build_end();
        self.state.building = false;
    }

    /// Schedules the tasks whose dependencies on `file` (read or provided) are inconsistent with it now.
    fn schedule_dependents_of_changed_file(&mut self, file: FileId) {
        let mut tasks: Vec<TaskId> = self.store.requirers(file).collect();
        tasks.extend(self.store.provider(file));
        tasks.sort_unstable();
        tasks.dedup();
        for id in tasks {
            if self.file_deps_inconsistent(id, file, true) {
                self.schedule(id);
            }
        }
    }

    /// Whether a dependency of `id` on `file` is inconsistent now: a read (and, with `provided`, a provide) whose
    /// stamp of the file changed. Stamps only that file, reporting each check to the tracker as top-down does.
    fn file_deps_inconsistent(&mut self, id: TaskId, file: FileId, provided: bool) -> bool {
        (0..self.store.dep_count(id)).any(|index| match self.store.dep(id, index) {
            Dep::RequireFile(dep) if dep.file == file => self.check_file(dep, Some((id, index))),
            Dep::ProvideFile(dep) if provided && dep.file == file => self.check_file(dep, None),
            _ => false,
        })
    }

    /// Schedules `id` unless it is already scheduled, in progress or done in this session.
    pub(super) fn schedule(&mut self, id: TaskId) {
        if self.marks.get(id) == Mark::Unseen {
            self.marks.set(id, Mark::Scheduled);
            let order = self.store.order(id);
            self.scheduler().queue.push((order, id.raw()));
        }
    }

    /// The scheduled task first in the topological order, if any.
    fn pop(&mut self) -> Option<TaskId> {
        loop {
            let (order, raw) = self.scheduler().queue.pop()?;
            let id = TaskId::from_raw(raw);
            if self.marks.get(id) != Mark::Scheduled {
                continue;
            }
            let current = self.store.order(id);
            if current != order {
                self.scheduler().queue.push((current, raw));
                continue;
            }
            return Some(id);
        }
    }

    /// A lower bound of the topological order of every scheduled task: the lowest key queued, or lower where a
    /// reordering since the build started moved a task lower than the key it was queued with. Drops entries of
    /// tasks that are no longer scheduled from the top first, so that tasks executed on demand do not keep the
    /// bound low.
    fn lowest_queued_order(&mut self) -> Option<u64> {
        let queued = self.lowest_scheduled_key(false);
        let waiting = self.lowest_scheduled_key(true);
        let lowest = match (queued, waiting) {
            (Some(q), Some(w)) => q.min(w),
            (q, w) => q.or(w)?,
        };
        Some(lowest.min(self.store.reorder_floor()))
    }

    /// The lowest key of the queue (or of the waiting tasks) whose task is still scheduled, dropping the entries
    /// before it.
    fn lowest_scheduled_key(&mut self, waiting: bool) -> Option<u64> {
        loop {
            let scheduler = self.scheduler();
            let heap = if waiting {
                &mut scheduler.waiting
            } else {
                &mut scheduler.queue
            };
            let (order, raw) = heap.peek()?;
            if self.marks.get(TaskId::from_raw(raw)) == Mark::Scheduled {
                return Some(order);
            }
            let scheduler = self.scheduler();
            let heap = if waiting {
                &mut scheduler.waiting
            } else {
                &mut scheduler.queue
            };
            heap.pop();
        }
    }

    /// Whether no task is scheduled (the task just popped aside).
    #[inline]
    fn nothing_else_scheduled(&mut self) -> bool {
        let scheduler = self.scheduler();
        (scheduler.queue.is_empty() && scheduler.waiting.is_empty())
            || (self.lowest_scheduled_key(false).is_none() && self.lowest_scheduled_key(true).is_none())
    }

    /// Whether task `id`, in progress, is on another lane's stack (in a parallel build).
    fn in_progress_elsewhere(&self, id: TaskId) -> bool {
        self.par.is_some() && self.marks.owner(id) != self.lane_index
    }

    fn scheduler(&mut self) -> &mut Scheduler {
        scheduler_in(&mut self.state)
    }

    /// Whether the scheduled task `id` is still inconsistent, checked as top-down would, in the order its
    /// dependencies were made, but stamping only touched files: a required task is brought up to date first and
    /// its output version compared; a read of an untouched file is only checked against its provider. A task
    /// scheduled by a file that a task then wrote back as it was, or by a required task that has since been cut
    /// off, does not execute.
    ///
    /// A required task that fails in its own code makes `id` inconsistent (it executes and meets the panic, see
    /// `make_consistent`), and so does a cycle found at a require; any other panic (a soundness violation below)
    /// is returned, to go on as it is.
    fn still_inconsistent(&mut self, id: TaskId) -> Result<bool, Payload> {
        for index in 0..self.store.dep_count(id) {
            let inconsistent = match self.store.dep(id, index) {
                Dep::RequireTask(dep) => {
                    let mark = self.marks.get(dep.task);
                    // Reported as a check, as top-down does, so that trackers see why this task executes (the
                    // required task's execution, if any, nests inside).
                    let view = TaskDependency::new(self.store.task(dep.task), dep.stamper);
                    self.tracker.check_dependency_start(&Dependency::RequireTask(view));
                    // A task without output whose very failure (in its own code) this task saw fails the same way
                    // while nothing below it is scheduled: consistent. Any other required task is brought up to
                    // date (a task that failed in its own code executes) and its version compared.
                    let failed = self.store.output(dep.task).is_none();
                    // In a parallel build, a task in progress on another lane: waited for, then compared.
                    let elsewhere = mark == Mark::InProgress && self.in_progress_elsewhere(dep.task);
                    if failed
                        && !elsewhere
                        && !matches!(mark, Mark::Done | Mark::Failed)
                        && self.store.version(dep.task) == UNKNOWN_VERSION
                    {
                        // No telling what executing it does: this task executes and requires it itself.
                        self.tracker
                            .check_dependency_end(&Dependency::RequireTask(view), Ok(Some(&Inconsistency::Panicked)));
                        return Ok(true);
                    }
                    let same_failure = failed
                        && !dep.is_inconsistent(self.store.version(dep.task))
                        && mark == Mark::Unseen
                        && self.lowest_scheduled_below(dep.task).is_none();
                    if !matches!(mark, Mark::Done | Mark::Failed) && !same_failure {
                        let task = self.store.task(dep.task).clone();
                        if let Err(payload) =
                            panic::catch_unwind(AssertUnwindSafe(|| self.bring_up_to_date(dep.task, &task)))
                        {
                            let cycle = std::mem::take(&mut self.lane.violation);
                            if self.marks.get(dep.task) == Mark::Failed
                                && self.store.version(dep.task) != UNKNOWN_VERSION
                            {
                                // It executes and meets the panic when it requires the task.
                                self.lane.failures.push(dep.task, payload);
                                return Ok(true);
                            }
                            if cycle {
                                return Ok(true);
                            }
                            return Err(payload);
                        }
                    }
                    self.finish_task_check(dep)
                }
                Dep::RequireFile(dep) if self.scheduler().touched.contains(&dep.file) => {
                    self.check_file(dep, Some((id, index)))
                }
                Dep::RequireFile(dep) => !self.reads_after_provider(id, index, dep.file),
                Dep::ProvideFile(dep) if self.scheduler().touched.contains(&dep.file) => self.check_file(dep, None),
                Dep::ProvideFile(_) => false,
            };
            if inconsistent {
                return Ok(true);
            }
        }
        Ok(self.store.output(id).is_none())
    }

    /// Brings the scheduled task `id` (popped, or required while scheduled) up to date: executes it when it is
    /// still inconsistent (see [`still_inconsistent`](Self::still_inconsistent)). In progress meanwhile, so that
    /// a cycle through it is caught. Returns whether it executed, or the panic of its execution (it is then marked
    /// failed).
    fn update_scheduled(&mut self, id: TaskId) -> Result<bool, Payload> {
        // Found live in an earlier session with no liveness change since: trusted without a look at what executes.
        let trusted = self.marks.live_before_session(id, self.store.liveness_changes()) || self.trusted(id);
        if !trusted {
            // Dead when the session started (a root since, say): changes before this session may not have reached
            // it, so the changed files say nothing about it. Checked top-down, every file stamped.
            self.marks.set(id, Mark::Unseen);
            return panic::catch_unwind(AssertUnwindSafe(|| self.make_consistent(id, None)));
        }
        self.enter(id, false);
        let inconsistent = match self.still_inconsistent(id) {
            Ok(inconsistent) => inconsistent,
            Err(payload) => {
                let base = self.lane.stack.len() - 1;
                self.forget_frames_from(base);
                panic::resume_unwind(payload)
            }
        };
        let result = if inconsistent {
            crate::grow_stack(|| self.execute(id, None))
        } else {
            Ok(())
        };
        self.lane.stack.pop();
        match result {
            Ok(()) => {
                self.marks.set(id, Mark::Done);
                Ok(inconsistent)
            }
            Err(payload) => {
                self.marks.set(id, Mark::Failed);
                Err(payload)
            }
        }
    }

    /// Whether the scheduled task `id` must execute now: a root, or reachable from a root (or a task of this
    /// session) through tasks that are not scheduled themselves. A task reachable only through scheduled tasks is
    /// executed on demand if they still require it; a task no root reaches is dead.
    fn needed(&mut self, id: TaskId) -> bool {
        // The only scheduled task, with nothing in progress: every path to it avoids scheduled tasks, so it is
        // needed if it is live, which earlier sessions may have found (a chain's bottom-up build then walks nothing).
        if self.lane.stack.is_empty()
            && self.marks.live_now(id, self.store.liveness_changes())
            && self.nothing_else_scheduled()
        {
            return true;
        }
        self.reaches_live(id, false)
    }

    /// In a parallel build, when the scheduled task `id`, just taken from the queue and needed, belongs to a
    /// `require_tasks` group of a dependent that stays needed and is not scheduled, whose dependencies before the
    /// group are consistent, and another task of that group is scheduled too: brings the group's scheduled tasks up to
    /// date in parallel, in branches of a fork, and returns `true`. Otherwise returns `false`, and `id` is brought
    /// up to date alone. Always `false` while no other task is queued (it takes the next one along), so the loop of
    /// `update_affected_by` does not call it then (nor `fork_scheduled_roots`).
    ///
    /// This is what the build on one thread does, only sooner (as `fork_rest_of_group` is in a top-down check).
    /// There, `id` is brought up to date first. When its new output is one the dependent's stamper sees, the
    /// dependent is scheduled, and it executes before any of the group's other scheduled tasks that only it needs;
    /// its dependencies before the group being consistent and its code deterministic, it makes the same
    /// `require_tasks` call, which brings every task of the group up to date. When the output is cut off, the
    /// group's next scheduled task is taken from the queue in turn, needed through the dependent. Either way each
    /// scheduled task of the group is brought up to date. What that build does in between concerns tasks that no
    /// dependency before the group reaches (none of those has a scheduled task below it), so it cannot turn the
    /// dependent away from the call. A panic goes where the loop takes it: a failure that the loop keeps for the
    /// task's dependents is kept (see `LaneState::failures`), any other panic goes on to the caller.
    #[inline(never)]
    fn fork_scheduled_group(&mut self, id: TaskId) -> bool {
        if !self.lane.failures.is_empty() || !self.lane.stack.is_empty() {
            return false;
        }
        // The next task in the queue (its first entry is then a scheduled task).
        if self.lowest_scheduled_key(false).is_none() {
            return false;
        }
        let Some((_, next)) = self.scheduler().queue.peek() else {
            return false;
        };
        let next = TaskId::from_raw(next);
        let mut dependents: Vec<TaskId> = self.store.live_dependents(id).collect();
        dependents.sort_unstable();
        dependents.dedup();
        let Some((members, stamper)) = dependents
            .into_iter()
            .find_map(|dependent| self.scheduled_group_of(dependent, id, next))
        else {
            return false;
        };
        self.bring_up_to_date_in_fork(members, stamper);
        true
    }

    /// In a parallel build, when the scheduled task `id`, just taken from the queue, is a root, and so are the
    /// scheduled tasks next in the queue: brings them all up to date in parallel, in branches of a fork, and returns
    /// `true` (otherwise `false`, and `id` is brought up to date alone: always while no other task is queued, when
    /// the loop of `update_affected_by` does not call it).
    ///
    /// A root is needed whatever other tasks do, and the build on one thread brings each of them up to date in
    /// turn, with nothing in between when each is ordered before what executing the roots before it can schedule
    /// (see [`lowest_consequence`](Self::lowest_consequence)); what one's execution changes for another is what
    /// the other's check meets, waiting for a task in progress on another lane (a task is trusted without a look
    /// only when no task in progress is ordered before it), as between the branches of `Session::require_all`.
    #[inline(never)]
    fn fork_scheduled_roots(&mut self, id: TaskId) -> bool {
        if !self.lane.failures.is_empty()
            || !self.lane.stack.is_empty()
            || !self.store.is_root(id)
            || self.store.output(id).is_none()
        {
            return false;
        }
        let mut members = vec![id];
        let mut bound = self.lowest_consequence(id);
        while let Some(order) = self.lowest_scheduled_key(false) {
            let Some((_, raw)) = self.scheduler().queue.peek() else {
                break;
            };
            let next = TaskId::from_raw(raw);
            if !self.store.is_root(next)
                || self.store.output(next).is_none()
                || self.store.order(next) != order
                || order >= bound
            {
                break;
            }
            self.scheduler().queue.pop();
            members.push(next);
            bound = bound.min(self.lowest_consequence(next));
        }
        // Queued again (see `bring_up_to_date_in_fork`); with one member, just the one `update_affected_by` takes.
        for member in &members[1..] {
            let entry = (self.store.order(*member), member.raw());
            self.scheduler().queue.push(entry);
        }
        if members.len() < 2 {
            return false;
        }
        let entry = (self.store.order(id), id.raw());
        self.scheduler().queue.push(entry);
        self.bring_up_to_date_in_fork(members, OutputStamper::Equals);
        true
    }

    /// The lowest topological order of a task that executing `id` may schedule: its dependents and the readers of
    /// the files it provides (`u64::MAX`: none).
    fn lowest_consequence(&self, id: TaskId) -> u64 {
        let mut lowest = u64::MAX;
        for dependent in self.store.live_dependents(id) {
            lowest = lowest.min(self.store.order(dependent));
        }
        for k in 0..self.store.dep_count(id) {
            if let Dep::ProvideFile(dep) = self.store.dep(id, k) {
                for reader in self.store.requirers(dep.file) {
                    lowest = lowest.min(self.store.order(reader));
                }
            }
        }
        lowest
    }

    /// Brings the scheduled tasks `members` up to date in branches of a fork (see
    /// [`bring_scheduled_up_to_date`](Self::bring_scheduled_up_to_date)); `stamper` is the one they are required
    /// with. Those taken from the queue must be queued again first, so that searches for scheduled tasks (bounded by
    /// the lowest queued task) see them until a branch brings them up to date (the loop skips the entries then):
    /// another branch may reach one first. A panic goes where the loop takes it: a failure that the loop keeps for
    /// the task's dependents is kept (see `LaneState::failures`), any other panic goes on to the caller, the first
    /// in `members` first.
    fn bring_up_to_date_in_fork(&mut self, members: Vec<TaskId>, stamper: OutputStamper) {
        let tasks: Vec<T> = members.iter().map(|member| self.store.task(*member).clone()).collect();
        let results = self.fork(true, &tasks, &members, stamper);
        let mut escaped = None;
        for ((member, task), result) in members.into_iter().zip(&tasks).zip(results) {
            let failure = match result {
                Ok(()) if self.store.output(member).is_none() && self.marks.get(member) != Mark::Failed => {
                    // Its execution was forgotten after its branch finished (a violation deferred to it): brought up
                    // to date again here, it meets what it meets now.
                    panic::catch_unwind(AssertUnwindSafe(|| {
                        self.bring_up_to_date_or_unwind(member, task, stamper);
                    }))
                    .err()
                    .map(|payload| (payload, true))
                }
                Ok(()) => None,
                Err((payload, _)) => match payload.downcast::<KeptFailure>() {
                    Ok(kept) => Some((kept.0, true)),
                    Err(payload) => Some((payload, self.marks.get(member) == Mark::Failed)),
                },
            };
            match failure {
                Some((payload, true)) => self.lane.failures.push(member, payload),
                Some((payload, false)) => {
                    escaped.get_or_insert(payload);
                }
                None => {}
            }
        }
        if let Some(payload) = escaped {
            panic::resume_unwind(payload);
        }
    }

    /// The scheduled tasks, in order, of the `require_tasks` group of `dependent` that `id` belongs to, and the
    /// group's stamper, when `fork_scheduled_group` may bring them up to date in parallel: the next task in the
    /// queue, `next`, belongs to the group too, no task of the group is in progress or failed, every scheduled one
    /// has an output, and `dependent` stays needed, is not scheduled, and is consistent up to the group (its
    /// dependencies before it are consistent, none of them a file that may have changed, and no scheduled task below them).
    ///
    /// Costs one pass over the dependent's dependencies per session, then, for a group whose next queued task
    /// belongs to it, one over the group and the dependencies before it; a group found unfit is not looked at
    /// again in the session.
    ///
    /// Queues `id` again before it looks below the dependencies before the group, so that searches for scheduled
    /// tasks (bounded by the lowest queued task) see it until it is brought up to date (the loop skips the entry
    /// then): those searches, and in a fork another branch's, may reach it first.
    fn scheduled_group_of(
        &mut self,
        dependent: TaskId,
        id: TaskId,
        next: TaskId,
    ) -> Option<(Vec<TaskId>, OutputStamper)> {
        if self.marks.get(dependent) != Mark::Unseen || self.store.output(dependent).is_none() {
            return None;
        }
        if !self.scheduler().groups.contains_key(&dependent) {
            let groups = group_starts(&self.store, dependent);
            self.scheduler().groups.insert(dependent, groups);
        }
        let groups = &self.scheduler().groups[&dependent];
        let start = *groups.get(&id)?;
        if groups.get(&next) != Some(&start) || self.scheduler().declined.contains(&(dependent, start)) {
            return None;
        }
        let start = start as usize;
        let Dep::RequireTask(first) = self.store.dep(dependent, start) else {
            return None;
        };
        if first.group != Group::First {
            return None;
        }
        let mut members = Vec::new();
        let mut seen = FxHashSet::default();
        let mut fit = true;
        for k in start..self.store.dep_count(dependent) {
            let Dep::RequireTask(dep) = self.store.dep(dependent, k) else {
                break;
            };
            if k > start && dep.group != Group::Member {
                break;
            }
            match self.marks.get(dep.task) {
                Mark::Done | Mark::Unseen => {}
                Mark::Scheduled if self.store.output(dep.task).is_some() => {
                    if seen.insert(dep.task) {
                        members.push(dep.task);
                    }
                }
                _ => fit = false,
            }
        }
        fit &= members.len() >= 2 && seen.contains(&id);
        if fit {
            // Queued again (see `bring_up_to_date_in_fork`) before the search below the dependencies before the
            // group, which must see it too.
            let entry = (self.store.order(id), id.raw());
            if self.scheduler().queue.peek() != Some(entry) {
                self.scheduler().queue.push(entry);
            }
            fit = self.consistent_before(dependent, start);
        }
        if !fit {
            self.scheduler().declined.insert((dependent, start as u32));
            return None;
        }
        Some((members, first.stamper))
    }

    /// Whether the dependencies of `dependent` before index `end` are consistent and stay so while the tasks of a
    /// group after them are brought up to date (see `scheduled_group_of`), and `dependent` stays needed.
    fn consistent_before(&mut self, dependent: TaskId, end: usize) -> bool {
        self.consistent_prefix(dependent, end) && self.stays_needed(dependent)
    }

    /// Whether the task `id` (not scheduled) stays needed in this build whatever the scheduled tasks do, so that the
    /// build on one thread brings the scheduled tasks it requires up to date: it is a root, or a dependent of it
    /// that is not scheduled, whose dependencies before its first on `id` are consistent and stay so (see
    /// [`consistent_prefix`](Self::consistent_prefix)), stays needed. Such a dependent may be scheduled later (a
    /// dependency after `id` changed), and `id` then waits, but when it executes, its code being deterministic, it
    /// requires `id` again, since everything it required before is as it was.
    ///
    /// Being needed now is not enough: on one thread, what executes first may schedule every dependent on the
    /// paths to the roots (and one of them may then no longer require `id`), while a fork would already have
    /// executed what `id` requires. The walk up visits at most [`STAYS_NEEDED_BUDGET`] tasks; beyond, it answers
    /// `false` (and the build goes on one task at a time, as on one thread).
    fn stays_needed(&mut self, id: TaskId) -> bool {
        let mut stack = vec![id];
        let mut seen: FxHashSet<TaskId> = FxHashSet::default();
        seen.insert(id);
        while let Some(at) = stack.pop() {
            if self.store.is_root(at) {
                return true;
            }
            let dependents: Vec<TaskId> = self.store.live_dependents(at).collect();
            for dependent in dependents {
                if !seen.insert(dependent) {
                    continue;
                }
                if seen.len() > STAYS_NEEDED_BUDGET {
                    return false;
                }
                if self.marks.get(dependent) != Mark::Unseen || self.store.output(dependent).is_none() {
                    continue;
                }
                let first = (0..self.store.dep_count(dependent))
                    .find(|k| matches!(self.store.dep(dependent, *k), Dep::RequireTask(dep) if dep.task == at));
                if let Some(first) = first {
                    if self.consistent_prefix(dependent, first) {
                        stack.push(dependent);
                    }
                }
            }
        }
        false
    }

    /// Whether the dependencies of `dependent` before index `end` are consistent and stay so while scheduled tasks
    /// elsewhere are brought up to date: every required task among them is done or unaffected (no scheduled task
    /// below it) with the output the dependency recorded, and every file among them is one no change touched, read
    /// after requiring its provider.
    fn consistent_prefix(&mut self, dependent: TaskId, end: usize) -> bool {
        let mut unseen = Vec::new();
        for k in 0..end {
            let consistent = match self.store.dep(dependent, k) {
                Dep::RequireTask(dep) => {
                    let mark = self.marks.get(dep.task);
                    if mark == Mark::Unseen {
                        unseen.push(dep.task);
                    }
                    matches!(mark, Mark::Done | Mark::Unseen) && !dep.is_inconsistent(self.store.version(dep.task))
                }
                Dep::RequireFile(dep) => {
                    !self.scheduler().touched.contains(&dep.file)
                        && (!self.store.any_provider()
                            || self
                                .store
                                .provider(dep.file)
                                .is_none_or(|provider| self.store.depends_on_before(dependent, k, provider)))
                }
                Dep::ProvideFile(dep) => !self.scheduler().touched.contains(&dep.file),
            };
            if !consistent {
                return false;
            }
        }
        self.lowest_scheduled_below_any(&unseen).is_none()
    }

    /// Brings the scheduled task `id` up to date in a branch of `fork_scheduled_group`, as the loop of
    /// `update_affected_by` would: a failure that the loop keeps comes out as a panic with a [`KeptFailure`]. A
    /// task that another branch brought up to date meanwhile is left as it is; one in progress on another lane is
    /// waited for first.
    pub(super) fn bring_scheduled_up_to_date(&mut self, id: TaskId) {
        loop {
            match self.marks.get(id) {
                Mark::Scheduled => {
                    if let Err(payload) = self.update_scheduled(id) {
                        panic::resume_unwind(Box::new(KeptFailure(payload)));
                    }
                    return;
                }
                Mark::InProgress => self.wait_or_cycle_then(id, false),
                _ => return,
            }
        }
    }

    /// Whether the state of `id` can be trusted, i.e. bottom-up propagation reached it: it was live when the
    /// session started (required through a recorded dependency by the executing task's previous execution, or
    /// reachable through current dependents from a task that was a root then), or it was made consistent in this
    /// session (every dependency recorded in this session was made when its task was consistent).
    fn trusted(&mut self, id: TaskId) -> bool {
        let executions = &self.lane.executions;
        if let Some(executing) = executions.depth.checked_sub(1).map(|d| &executions.executing[d]) {
            if executing.certified && executing.previously_required.binary_search(&id).is_ok() {
                return true;
            }
        }
        if self.marks.live_before_session(id, self.store.liveness_changes()) {
            return true;
        }
        self.reaches_live(id, true)
    }

    /// Walks up from `id` through current dependents. With `trust`, until it meets a task that was a root when the
    /// session started or a task already known to have been live then (*certified*), walking through scheduled
    /// dependents. Without, until it meets a root of the session's start that is not scheduled, a task of this
    /// session (in progress, done or failed), or a task known to be needed (`Marks::known_needed`), never walking
    /// through a scheduled dependent (it executes first and requires `id` again, or not). On a success, every task
    /// on the path found is remembered as live for the rest of the session when the path ends at a certified task,
    /// and without `trust` as needed until the mark of a task above it on the path changes, so that walks from
    /// tasks below them stop there (a chain costs O(n) in all, not O(n²)).
    ///
    /// A task in progress does not certify a task below it for `trust`: it may be a task that was dead, being
    /// checked top-down, whose old dependencies have not been checked yet.
    fn reaches_live(&mut self, id: TaskId, trust: bool) -> bool {
        let new_roots = &self.state.new_roots;
        let known = if trust {
            certified(&self.store, &self.marks, new_roots, id, true)
        } else {
            self.marks.known_needed(id) || self.store.is_root(id)
        };
        if known {
            return true;
        }
        // The scratch space is taken out of the scheduler for the walk and put back afterwards.
        let scheduler = scheduler_in(&mut self.state);
        let mut parent = std::mem::take(&mut scheduler.parent);
        let mut stack = std::mem::take(&mut scheduler.stack);
        let found = walk_up(
            &self.store,
            &mut self.marks,
            &self.state.new_roots,
            id,
            trust,
            &mut parent,
            &mut stack,
        );
        let scheduler = self.scheduler();
        scheduler.parent = parent;
        scheduler.stack = stack;
        found
    }

    /// Requires task `id` while executing in a bottom-up session: done tasks return at once; a scheduled task
    /// executes; an unaffected task whose state can be trusted first has the scheduled tasks below it brought up
    /// to date, then executes if that scheduled it, and otherwise returns at once without checking anything; any
    /// other task is checked top-down. Returns whether it executed. Restores the session on a panic.
    pub(super) fn bring_up_to_date_or_unwind(&mut self, id: TaskId, task: &T, stamper: OutputStamper) -> bool {
        self.or_unwind(id, stamper, |this| this.bring_up_to_date(id, task))
    }

    fn bring_up_to_date(&mut self, id: TaskId, task: &T) -> bool {
        loop {
            match self.marks.get(id) {
                Mark::Done => return false,
                // A cycle, or, in a parallel build, a task that another lane works on: look again after it.
                Mark::InProgress => self.wait_or_cycle(id),
                Mark::Scheduled => return self.update_scheduled(id).unwrap_or_else(|p| panic::resume_unwind(p)),
                Mark::Failed => return self.make_consistent(id, Some(task)),
                Mark::Unseen => break,
            }
        }
        // A task ordered after a task in progress may (through its recorded dependencies) require that task: a
        // cycle, which only checking its dependencies finds. Any other unaffected task reaches no task in progress.
        if self.store.output(id).is_none() || !self.trusted(id) || !self.ordered_before_every_task_in_progress(id) {
            return self.make_consistent(id, Some(task));
        }
        while let Some(below) = self.lowest_scheduled_below(id) {
            if let Err(payload) = self.update_scheduled(below) {
                // The tasks between `id` and the failed task may catch its panic: check `id` top-down, which
                // executes them, and they meet the panic when they require the failed task.
                self.lane.failures.push(below, payload);
                return self.make_consistent(id, Some(task));
            }
        }
        match self.marks.get(id) {
            Mark::Scheduled => return self.update_scheduled(id).unwrap_or_else(|p| panic::resume_unwind(p)),
            // In a parallel build, another lane may have made it consistent meanwhile, or be at it (see above).
            Mark::Unseen => {}
            _ => return self.bring_up_to_date(id, task),
        }
        // In a parallel build, a task below it may have started on another lane while this lane brought others up
        // to date (which lets go of the engine): then its check decides, waiting for that task.
        if self.par.is_some() && !self.ordered_before_every_task_in_progress(id) {
            return self.make_consistent(id, Some(task));
        }
        self.marks.set(id, Mark::Done);
        false
    }

    /// Whether `id` is ordered before every task in progress (on the frame stack of this lane, and in a parallel
    /// build on every lane's), so that, its dependencies being ordered before it, it cannot reach one of them.
    fn ordered_before_every_task_in_progress(&self, id: TaskId) -> bool {
        let order = self.store.order(id);
        let after = |frame: &crate::context::state::Frame| self.store.order(frame.id) > order;
        self.lane.stack.iter().all(after) && self.parallel().is_none_or(|par| par.every_frame(after))
    }

    /// The scheduled task first in topological order among those that `id` (transitively) requires. Visits only
    /// tasks ordered after the lowest queued task: no task ordered before it can reach a queued task.
    #[inline]
    fn lowest_scheduled_below(&mut self, id: TaskId) -> Option<TaskId> {
        self.lowest_scheduled_below_any(&[id])
    }

    /// [`lowest_scheduled_below`](Self::lowest_scheduled_below) of any task of `ids`, in one walk.
    fn lowest_scheduled_below_any(&mut self, ids: &[TaskId]) -> Option<TaskId> {
        let bound = self.lowest_queued_order()?;
        let mut stack: Vec<TaskId> = ids.iter().copied().filter(|id| self.store.order(*id) > bound).collect();
        if stack.is_empty() {
            return None;
        }
        let mut lowest: Option<TaskId> = None;
        self.marks.start_walk(self.store.task_count());
        while let Some(at) = stack.pop() {
            for required in self.store.required_tasks(at) {
                if self.store.order(required) < bound || !self.marks.first_visit(required) {
                    continue;
                }
                if self.marks.get(required) == Mark::Scheduled
                    && lowest.is_none_or(|l| self.store.order(required) < self.store.order(l))
                {
                    lowest = Some(required);
                }
                stack.push(required);
            }
        }
        lowest
    }

    /// Remembers what is needed after task `id` executes in a bottom-up session.
    pub(super) fn before_execution(&mut self, id: TaskId) -> BeforeExecution {
        let certified = certified(&self.store, &self.marks, &self.state.new_roots, id, true);
        let store = &*self.store;
        let executions = &mut self.lane.executions;
        if executions.depth == executions.executing.len() {
            executions.executing.push(Executing::default());
        }
        let executing = &mut executions.executing[executions.depth];
        executions.depth += 1;
        let previous = &mut executing.previously_required;
        previous.clear();
        previous.extend(store.required_tasks(id));
        if previous.len() > 1 {
            previous.sort_unstable();
            previous.dedup();
        }
        executing.certified = certified;
        BeforeExecution {
            version: store.version(id),
        }
    }

    /// Schedules what task `id`'s execution affected (see the module doc, step 3).
    pub(super) fn after_execution(&mut self, id: TaskId, before: BeforeExecution) {
        let executions = &mut self.lane.executions;
        executions.depth = executions
            .depth
            .checked_sub(1)
            .expect("BUG: an execution without its previous requirements");
        let store = &*self.store;
        let scheduler = scheduler_in(&mut self.state);
        // Dependents whose stamper sees the new output.
        let version = store.version(id);
        if version != before.version {
            for dependent in store.live_dependents(id) {
                if self.marks.get(dependent) == Mark::Unseen && task_deps_inconsistent(store, dependent, id, version) {
                    self.marks.set(dependent, Mark::Scheduled);
                    scheduler.queue.push((store.order(dependent), dependent.raw()));
                }
            }
        }
        // Nothing below concerns an execution while no task provides a file (most builds): the readers of provided
        // files, and readers cut off from a provider.
        if self.store.any_provider() {
            let depth = self.lane.executions.depth;
            let mut previous = std::mem::take(&mut self.lane.executions.executing[depth].previously_required);
            self.schedule_after_provides(id, &mut previous);
            self.lane.executions.executing[depth].previously_required = previous;
        }
    }

    /// The part of [`after_execution`](Self::after_execution) that concerns provided files: schedules the readers of
    /// the files `id` wrote whose stamps changed, and the readers that may have lost their path to a provider
    /// through a require this execution dropped (`previous` holds what `id` required before; it is left holding
    /// the tasks no longer required).
    #[inline(never)]
    fn schedule_after_provides(&mut self, id: TaskId, previous: &mut Vec<TaskId>) {
        for index in 0..self.store.dep_count(id) {
            if let Dep::ProvideFile(dep) = self.store.dep(id, index) {
                self.scheduler().touched.insert(dep.file);
                let readers: Vec<TaskId> = self.store.requirers(dep.file).filter(|r| *r != id).collect();
                for reader in readers {
                    if self.marks.get(reader) == Mark::Unseen && self.file_deps_inconsistent(reader, dep.file, false) {
                        self.schedule(reader);
                    }
                }
            }
        }
        if previous.is_empty() {
            return;
        }
        let mut now = std::mem::take(&mut self.scheduler().spare);
        now.extend(self.store.required_tasks(id));
        now.sort_unstable();
        previous.retain(|t| now.binary_search(t).is_err());
        if !previous.is_empty() {
            self.schedule_readers_cut_off_below(previous);
        }
        now.clear();
        self.scheduler().spare = now;
    }

    /// For every file provided by the tasks in `roots` or below them, schedules the readers that no longer depend
    /// on the file's provider through what they required before reading it.
    fn schedule_readers_cut_off_below(&mut self, roots: &[TaskId]) {
        let mut visited: HashSet<TaskId> = roots.iter().copied().collect();
        let mut stack = roots.to_vec();
        let mut files = Vec::new();
        while let Some(at) = stack.pop() {
            for index in 0..self.store.dep_count(at) {
                match self.store.dep(at, index) {
                    Dep::ProvideFile(dep) => files.push(dep.file),
                    Dep::RequireTask(dep) if visited.insert(dep.task) => stack.push(dep.task),
                    _ => {}
                }
            }
        }
        for file in files {
            let Some(provider) = self.store.provider(file) else {
                continue;
            };
            let readers: Vec<TaskId> = self.store.requirers(file).collect();
            for reader in readers {
                if reader == provider || !matches!(self.marks.get(reader), Mark::Unseen) {
                    continue;
                }
                let read = self.store.first_require_of(reader, file).unwrap_or(0);
                if !self.store.depends_on_before(reader, read, provider) {
                    self.schedule(reader);
                }
            }
        }
    }
}

/// Whether a dependency of `dependent` on task `id` is inconsistent with `id`'s output version `version`.
fn task_deps_inconsistent<T: Eq + Hash + Clone + Debug, O: Eq>(
    store: &Store<T, O>,
    dependent: TaskId,
    id: TaskId,
    version: u64,
) -> bool {
    (0..store.dep_count(dependent)).any(|index| match store.dep(dependent, index) {
        Dep::RequireTask(dep) if dep.task == id => dep.is_inconsistent(version),
        _ => false,
    })
}

/// Whether `id` is certified live when the session started: known live in this session, or a root that was one
/// when the session started, or (with `earlier`) found live in an earlier session with no liveness change since.
/// The walk of [`needed`](TopDownContext::needed) does not stop at certified tasks (a task live when the session
/// started may be reachable now only through scheduled tasks); it asks without `earlier` only whether the path it
/// found shows its tasks live when the session started.
#[inline]
fn certified<T: Eq + Hash + Clone + Debug, O: Eq>(
    store: &Store<T, O>,
    marks: &Marks,
    new_roots: &[TaskId],
    id: TaskId,
    earlier: bool,
) -> bool {
    marks.known_live(id)
        || (store.is_root(id) && !new_roots.contains(&id))
        || (earlier && marks.live_before_session(id, store.liveness_changes()))
}

/// The walk of [`reaches_live`](TopDownContext::reaches_live), over plain references (so that the compiler knows
/// that marking a visit writes nothing of the store): depth-first with the parent of each visited task in
/// `parent`, so that the path that succeeded is marked known live.
fn walk_up<T: Eq + Hash + Clone + Debug, O: Eq>(
    store: &Store<T, O>,
    marks: &mut Marks,
    new_roots: &[TaskId],
    id: TaskId,
    trust: bool,
    parent: &mut Vec<(TaskId, usize)>,
    stack: &mut Vec<usize>,
) -> bool {
    marks.start_walk(store.task_count());
    parent.clear();
    stack.clear();
    parent.push((id, usize::MAX));
    marks.first_visit(id);
    stack.push(0);
    let mut found = None;
    'walk: while let Some(at) = stack.pop() {
        for dependent in store.live_dependents(parent[at].0) {
            if !marks.first_visit(dependent) {
                continue;
            }
            let mark = marks.get(dependent);
            let stops = match mark {
                _ if trust => certified(store, marks, new_roots, dependent, true),
                Mark::InProgress | Mark::Done | Mark::Failed => true,
                Mark::Scheduled => false,
                // Not `known_live`: the path that showed it live may go through tasks scheduled since.
                Mark::Unseen => {
                    marks.known_needed(dependent) || (store.is_root(dependent) && !new_roots.contains(&dependent))
                }
            };
            if stops {
                found = Some((at, dependent));
                break 'walk;
            }
            if trust || mark != Mark::Scheduled {
                parent.push((dependent, at));
                stack.push(parent.len() - 1);
            }
        }
    }
    let Some((mut index, end)) = found else {
        return false;
    };
    // The path is live when the session started if it ends at a certified task, and live now (for later sessions
    // too, see `Marks::live_now`) if it ends at a root or a task live now. Without `trust`, it shows the tasks on
    // it above `id` needed until the mark of one above them, or of its end, changes (see `Marks::known_needed`),
    // unless it ends at a task in progress or failed, which may yet drop what it required. `id` itself, scheduled,
    // is not marked: it executes now.
    let changes = store.liveness_changes();
    let session = certified(store, marks, new_roots, end, trust);
    let now = store.is_root(end) || marks.live_now(end, changes);
    let needed = !trust && index != 0 && matches!(marks.get(end), Mark::Unseen | Mark::Done);
    if needed {
        marks.set_known_needed(end, true);
    }
    if session || now || needed {
        while index != usize::MAX {
            let (on_path, below) = parent[index];
            if session {
                marks.set_known_live(on_path);
            }
            if now {
                marks.set_live_now(on_path, changes);
            }
            if needed && index != 0 {
                marks.set_known_needed(on_path, below != 0);
            }
            index = below;
        }
    }
    true
}

/// For each task in a `require_tasks` group of `dependent`, the index of the group's first dependency.
fn group_starts<T: Eq + Hash + Clone + Debug, O: Eq>(store: &Store<T, O>, dependent: TaskId) -> FxHashMap<TaskId, u32> {
    let mut groups = FxHashMap::default();
    let mut start = 0;
    for k in 0..store.dep_count(dependent) {
        if let Dep::RequireTask(dep) = store.dep(dependent, k) {
            match dep.group {
                Group::Alone => continue,
                Group::First => start = k as u32,
                Group::Member => {}
            }
            groups.entry(dep.task).or_insert(start);
        }
    }
    groups
}

/// The bottom-up state of the session `state` (for a caller that holds other parts of the engine borrowed).
#[inline]
fn scheduler_in(state: &mut SessionState) -> &mut Scheduler {
    state
        .bottom_up
        .as_mut()
        .expect("BUG: bottom-up scheduling outside a bottom-up session")
}
