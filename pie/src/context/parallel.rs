//! Parallel builds: `require_tasks` (and `Session::require_all`) make their tasks consistent on several lanes.
//!
//! # Design
//! A *lane* is a thread working on a build: the caller's thread (lane 0) and, during a parallel build, `threads - 1`
//! worker threads. The engine's shared state (store, marks, tracker, session state) is used by one lane at a time:
//! a lane *holds the engine* while it checks dependencies, runs soundness checks and records what a task did, and
//! lets go of it while a task's own code runs (and while it waits). So tasks' own work (reading, computing,
//! writing) runs in parallel, and every graph operation sees a consistent graph; an overlap check and the claim of a
//! file are one step, as are a hidden-dependency check and the record of the read. Tracker calls are therefore
//! serialised too.
//!
//! - **Reads recorded late.** While no file has a provider (in a top-down build of a store in which no task provides
//!   a file), a task's `require_file` in a branch does not take the engine: it stamps and opens the file, and the
//!   lane checks and records the reads, in order, when it next takes the engine, for the task's next step or its end
//!   (`TopDownContext::read_late`, `apply_pending_reads`). A task that reads files and then ends takes the engine
//!   once, at its end, however many files it read (otherwise once per read, and once more at its end). The first
//!   provide of the build turns this off before it is checked (`Parallel::reads_late`): a provider that the late
//!   check then finds provided the file after the read, without seeing it, and the late check gives the violation
//!   that the provider's check would have given, deferred to the task that comes later on one thread
//!   (`check_late_require`, see below), so verdicts stay those of one thread.
//! - **Forks.** `require_tasks` with at least two tasks, on a `Pie` with threads to spare, opens a *fork*: one
//!   *branch* per task (with the task's id, which the opening lane finds or creates for the whole group at once),
//!   each making its task consistent without attaching dependencies to the requiring task (in top-down and
//!   bottom-up builds alike). Idle workers take branches of any fork, a contiguous share that shrinks as the
//!   branches run out (guided self-scheduling, see `Taken`); the lane that opened the fork runs its branches too,
//!   and when none is left to take it waits for the others to finish. Then it records the requiring task's
//!   dependencies on the tasks, in argument order, and the outputs are returned in that order.
//!   Every task is required even when one panics; the first panic in argument order then goes on. A build on one
//!   thread does the same one task after the other, so verdicts do not depend on the thread count.
//! - **Verdicts as on one thread.** On one thread a fork's branches run in argument order; in parallel a later branch
//!   may read or provide a file before an earlier one provides it. Each lane knows where it stands in that order
//!   (`Position`: the fork and the branch, with the session's lineage of forks), and so does each task entered in a
//!   parallel build. When a soundness check finds a conflict with a task whose branch comes later, the violation is
//!   that task's, as on one thread: its execution fails with it (at its next call of the `Context` or when it ends; if
//!   it already ended, its execution is forgotten), its claim on the file goes, and the earlier task goes on. A lane
//!   that needs it while it is still in progress meets the violation at once. At the join, what that task entered since
//!   it was entered (tasks one thread may never have entered) is forgotten, and so is every task that saw one of them
//!   or the failed task, in any branch of the fork; the branches whose task is among them run again, in argument order,
//!   and meet its panic (which they may catch) as on one thread (`TopDownContext::defer_violation`, `meet_deferred`).
//!   So the first panic in argument order is the one a build on one thread meets.
//! - **Groups re-checked in parallel.** The store remembers which task dependencies came from one `require_tasks`
//!   call. When a top-down check, going through a group in order, meets the first task of it that must execute,
//!   it makes that task and the rest of the group consistent in a fork, then goes on comparing versions in order:
//!   on one thread the same tasks are made consistent, by the check or by the requiring task's execution, which
//!   makes the same call (see `fork_rest_of_group`). A group whose tasks are all consistent forks nothing: checks
//!   hold the engine, so more lanes would only add hand-overs.
//! - **Forks held back until work starts.** Likewise, the fork of a `require_tasks` or `Session::require_all` starts
//!   *held back*: the lane that opened it runs its branches itself, in argument order, as one thread would, until it
//!   executes a task, waits for another lane, or opens another fork; then the other branches are handed out
//!   (`Fork::held_back`, `let_go_held_back`). Meanwhile, in a top-down build, the files that the tasks read are
//!   stamped ahead on helper threads (`crate::context::prefetch`). So a no-op of many roots is one lane's checks, in
//!   order, holding the engine throughout, not two lanes handing the engine back and forth (which made it slower on
//!   two threads than on one), and the tracker sees what one thread shows.
//! - **Claims.** A task is in progress on exactly one lane (on that lane's stack of frames). A lane that needs a
//!   task in progress on another lane waits for it: never two executions of a task at once, and at most one per
//!   session, except for the tasks forgotten when a fork joins after a violation reached a task that ran ahead
//!   (see above), which execute again on the joining lane.
//! - **No deadlock, and no false cycle.** A lane waits only for a task in progress elsewhere, or, at the end of a
//!   fork, for its branches. Before waiting it follows *who waits for whom* (a waiting lane for the lane that has
//!   the task in progress, a joining lane for the lanes running its branches): reaching itself means the tasks
//!   form a cycle, which panics with `Cyclic task dependency` as a build on one thread would. A lane that waits at
//!   the end of a fork takes only branches of that fork or of forks opened below it: their tasks are required by
//!   the tasks on its stack, so anything they find in progress on its stack is a true cycle. It never picks up
//!   unrelated work, which could need a task below it on its own stack and block forever (the self-deadlock of
//!   work stealing).
//! - **Threads.** The workers are scoped threads that live for the outermost fork of a build; nested forks reuse
//!   them. A build that never forks starts no thread and takes no lock: on one lane, holding the engine costs a
//!   branch per `Context` call.
//!
//! # Limits
//! The engine is one lock: graph operations are serialised, so the speed-up comes from tasks' own code and from
//! stamping files outside the lock (a task's `require_file`/`provide_file` stamp without holding it; a top-down check
//! stamps the files of a long run of required tasks on helper threads, `crate::context::prefetch`). The checking itself
//! runs on one lane at a time (a group's tasks are checked in parallel branches, but each branch's graph work holds the
//! engine). A no-op build hands the engine to no other lane (a group of consistent tasks forks nothing, and a fork of
//! `require_tasks` is held back until a task executes): its checks run on one lane while helpers stamp the files, so
//! its CPU work does not scale with the threads, its I/O does. In bottom-up builds, the `require_tasks` of
//! executing tasks fork as in top-down ones, and the build's own loop forks the scheduled tasks of one group, or
//! scheduled roots (see `crate::context::bottom_up`); other scheduled tasks that the loop takes from its queue run one
//! after the other. Reads are recorded late only while no file has a provider: in a store where some task provides a
//! file, and in bottom-up builds, each read takes the engine.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::OnceLock;

// With the `shuttle` feature (tests only), the synchronisation and the threads are shuttle's, so that its scheduler
// explores the interleavings of lanes (`tests/shuttle.rs`).
#[cfg(feature = "shuttle")]
use shuttle::{
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::{Condvar, Mutex, MutexGuard},
    thread,
};
#[cfg(not(feature = "shuttle"))]
use std::{
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::{Condvar, Mutex, MutexGuard},
    thread,
};

use crate::context::marks::Mark;
use crate::context::state::{Branch, LaneState, Payload, Position, Ptr};
use crate::context::top_down::TopDownContext;
use crate::dependency::{Dep, Dependency, Group, TaskDependency, FAILED_BIT};
use crate::ids::TaskId;
use crate::stamp::OutputStamper;
use crate::tracker::{set_lane, Tracker};
use crate::{grow_stack, Context, Task};

/// The number of lanes for `Pie::set_threads(threads)`: 0 means one per available core (asked once per process).
pub(crate) fn resolve_threads(threads: usize) -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    match threads {
        0 => *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
}

/// What a lane is doing, for the search for cycles through waiting lanes.
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
enum Status {
    /// Working, or idle: waits for nobody.
    Running,
    /// Waits for a task in progress on another lane.
    Waiting(TaskId),
    /// Waits for the branches of a fork (by index) that other lanes run.
    Joining(usize),
}

/// One lane of a parallel build, as the others see it.
struct LaneInfo {
    /// The lane's own state (its stack of frames); read by other lanes only while they hold the engine.
    state: *const LaneState,
    status: Status,
}

/// A parallel `require_tasks`: its branches, who runs them, and how they ended.
struct Fork<T> {
    /// The fork whose branch opened this one, if any.
    parent: Option<usize>,
    /// Its number in the session's lineage of forks (see `Position`).
    number: u32,
    /// Whether a top-down check opened it (see `fork_rest_of_group`): its branches make their tasks consistent
    /// without telling the tracker of a require (the check tells of its dependencies on them).
    check: bool,
    /// Whether only the lane that opened it takes its branches, in order, as on one thread. A fork of
    /// `require_tasks` (or `Session::require_all`) starts held back, and is let go (its other branches are handed
    /// out) once that lane executes a task, waits, or opens another fork: until then it only checks consistent
    /// tasks, which hold the engine, so more lanes would only hand it back and forth (see the module doc).
    held_back: bool,
    stamper: OutputStamper,
    /// The branches' tasks and ids, borrowed from the lane that opened the fork (see [`Branches`]).
    branches: Branches<T>,
    /// The first branch not taken yet: branches are taken in order, in contiguous shares.
    next: usize,
    /// Lanes running a branch of this fork.
    running: Vec<usize>,
    /// Branches not finished yet, or finished in a share whose lane has not reported it yet (see `Parallel::finish`).
    remaining: usize,
    /// How each branch ended: a panic, with whether it was a soundness violation.
    results: Vec<Option<Result<(), (Payload, bool)>>>,
}

/// The tasks of a fork's branches and their ids, in order: the slices that the lane that opened the fork passed to
/// `TopDownContext::fork`, borrowed without copying a task (a copy each was the largest part of opening a fork of
/// many tasks, on one lane, while the others waited).
///
/// Sound because the opening lane stays in `fork` until every branch has finished and its lane has reported it
/// (`Fork::remaining`), so the slices outlive every use; a lane uses a branch only between taking it and reporting
/// it. Should `fork` unwind before that (a bug: only internal invariants can panic there), [`AbortOnUnwind`] stops
/// the process rather than let other lanes read freed tasks.
struct Branches<T> {
    tasks: *const T,
    ids: *const TaskId,
    len: usize,
}

impl<T> Clone for Branches<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Branches<T> {}

// SAFETY: lanes only read the tasks (`T: Sync`) and ids, within the lifetime argued above.
unsafe impl<T: Sync> Send for Branches<T> {}

impl<T> Branches<T> {
    fn new(tasks: &[T], ids: &[TaskId]) -> Self {
        assert_eq!(tasks.len(), ids.len(), "BUG: an id per task of a fork");
        Self {
            tasks: tasks.as_ptr(),
            ids: ids.as_ptr(),
            len: tasks.len(),
        }
    }

    /// The id and task of branch `index`.
    ///
    /// # Safety
    /// The fork is open and the caller runs this branch or its share (see the type's doc).
    unsafe fn get<'a>(self, index: usize) -> (TaskId, &'a T) {
        assert!(index < self.len, "BUG: a branch beyond its fork");
        // SAFETY: in bounds, and alive (the caller's contract).
        unsafe { (*self.ids.add(index), &*self.tasks.add(index)) }
    }
}

/// Aborts the process when dropped: held by `TopDownContext::fork` while other lanes may use the tasks it lent them
/// (see [`Branches`]), and forgotten once they no longer can, so that only an unwinding `fork` drops it.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("pie: BUG: a fork unwound while other lanes could still run its branches; aborting");
        std::process::abort();
    }
}

/// The bookkeeping of a parallel build, behind one mutex (held briefly, never while a task runs).
struct Sched<T> {
    /// Set when the outermost fork is done: the workers leave.
    shutdown: bool,
    lanes: Vec<LaneInfo>,
    forks: Vec<Option<Fork<T>>>,
    /// Indexes of closed forks in `forks`, for reuse.
    free: Vec<usize>,
    /// Forks with pending branches, in the order they were opened.
    ready: VecDeque<usize>,
}

/// The shared part of a parallel build (see the module doc).
///
/// The engine is held by at most one lane (`held`). Taking it spins briefly (the engine is held for microseconds at a
/// time, and a futex round trip costs as much), then sleeps on `wake`. A lane that sleeps counts itself in
/// `sleepers` *before* it looks at what it waits for, and a lane that lets go of the engine (or changes what others
/// wait for) looks at `sleepers` *after* the change, all sequentially consistent: so either the sleeper sees the
/// change or the changer sees the sleeper and wakes it (under the mutex, so the wake cannot fall between the
/// sleeper's look and its wait).
pub(crate) struct Parallel<T> {
    sched: Mutex<Sched<T>>,
    wake: Condvar,
    /// The engine's lock word, alone on its cache lines: every take and release writes it.
    engine: CacheLine<EngineLock>,
    /// Whether a `require_file` of a task's code may be recorded (checked and added to the graph) at the lane's next
    /// engine take instead of at once (see `TopDownContext::read_late`): while no file has a
    /// provider in a top-down build. Cleared, for the rest of the parallel build, before a provide is checked. On its
    /// own cache lines: every read of a task's code looks at it, and a write of the lock word would evict it.
    reads_late: CacheLine<AtomicBool>,
}

/// What taking and letting go of the engine use (see [`Parallel`]).
struct EngineLock {
    /// Whether a lane holds the engine.
    held: AtomicBool,
    /// Bumped whenever a lane lets go of the engine: a waiting lane looks again after a change.
    generation: AtomicU64,
    /// Threads asleep on `wake`, or about to be.
    sleepers: AtomicUsize,
    /// The session's count of tasks entered (see `SessionState::entries`) while this parallel build runs, written
    /// only by the lane that holds the engine: here, on the cache line that taking the engine brings to that lane
    /// anyway, rather than one more line that moves from lane to lane at every task.
    clock: AtomicU32,
}

/// A value alone on its cache lines (128 bytes: two lines, as adjacent lines are fetched in pairs), so that writes to
/// its neighbours do not take it away from the cores that read it.
#[repr(align(128))]
struct CacheLine<V>(V);

impl<V> std::ops::Deref for CacheLine<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.0
    }
}

/// How many tasks ahead a fork's join asks a task's record into the cache (see `require_group_each`).
const PREFETCH_AHEAD: usize = 8;

/// How often taking the engine is tried before sleeping.
const SPINS: u32 = 200;

// SAFETY: the raw lane pointers in `Sched` are dereferenced only by a lane that holds the engine, while the lane
// they point to is registered (its state outlives its registration); everything else in it is `Send`.
unsafe impl<T: Send> Send for Sched<T> {}

/// Branches taken by a lane to run, one after the other: a share of the fork's pending branches that shrinks as they
/// run out (guided self-scheduling: the pending branches divided by twice the lanes, at least one). So a lane runs
/// a contiguous run of a wide fork at a time, and the lanes work on tasks far apart in the store: handed out one at
/// a time, neighbouring tasks ran on different lanes, whose writes to the same cache lines of the per-task tables
/// (marks, owners, outputs, dependencies) then moved between the cores at every task (a wide fresh build on two
/// threads takes 0.89x the time with shares, BENCHMARKS.md). Checking a wide group of consistent tasks hands the
/// engine over a few times per lane, not once per task; and the last branches still spread over the lanes.
struct Taken<T> {
    /// The fork's slot.
    fork: usize,
    /// The fork's number in the session's lineage.
    number: u32,
    /// The fork's branches (see [`Branches`]).
    branches: Branches<T>,
    /// The taken share of them: contiguous, in order.
    share: std::ops::Range<usize>,
    stamper: OutputStamper,
    /// See `Fork::check`.
    check: bool,
}

/// What a lane at the end of a fork does next.
enum JoinStep<T> {
    /// Run this branch.
    Run(Taken<T>),
    /// Every branch finished: how each ended.
    Done(Vec<Result<(), (Payload, bool)>>),
    /// Others still run branches: wait.
    Wait,
}

impl<T> Parallel<T> {
    /// `reads_late`: whether no file has a provider, in a top-down build (see `Parallel::reads_late`).
    /// `clock`: the session's count of entered tasks so far (see `EngineLock::clock`).
    fn new(lanes: usize, reads_late: bool, clock: u32) -> Self {
        Self {
            sched: Mutex::new(Sched {
                shutdown: false,
                lanes: (0..lanes)
                    .map(|_| LaneInfo {
                        state: std::ptr::null(),
                        status: Status::Running,
                    })
                    .collect(),
                forks: Vec::new(),
                free: Vec::new(),
                ready: VecDeque::new(),
            }),
            wake: Condvar::new(),
            engine: CacheLine(EngineLock {
                held: AtomicBool::new(true),
                generation: AtomicU64::new(0),
                sleepers: AtomicUsize::new(0),
                clock: AtomicU32::new(clock),
            }),
            reads_late: CacheLine(AtomicBool::new(reads_late)),
        }
    }

    /// The count of tasks entered in the session so far (see `EngineLock::clock`); the caller holds the engine.
    pub(super) fn clock(&self) -> u32 {
        self.engine.clock.load(Ordering::Relaxed)
    }

    /// Counts one more entered task and returns the new count; the caller holds the engine (so no other lane writes
    /// the count, and the next lane to take the engine sees it).
    pub(super) fn tick(&self) -> u32 {
        let clock = self.engine.clock.load(Ordering::Relaxed) + 1;
        self.engine.clock.store(clock, Ordering::Relaxed);
        clock
    }

    /// Whether a read may be recorded at the lane's next engine take (see `Parallel::reads_late`). A read for which
    /// this holds comes, in the order of the engine's steps, before every provide checked from now on.
    pub(super) fn reads_late(&self) -> bool {
        self.reads_late.load(Ordering::SeqCst)
    }

    /// Called holding the engine before a provide is checked: from now on reads are recorded at once.
    pub(super) fn stop_reading_late(&self) {
        if self.reads_late.load(Ordering::Relaxed) {
            self.reads_late.store(false, Ordering::SeqCst);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sched<T>> {
        // A panic never happens while the mutex is held (only bookkeeping runs under it), so poisoning means a bug
        // elsewhere; the bookkeeping itself is still whole.
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until woken; the caller counted itself in `sleepers`.
    fn wait<'a>(&self, sched: MutexGuard<'a, Sched<T>>) -> MutexGuard<'a, Sched<T>> {
        self.wake.wait(sched).unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the sleepers, if any, after a change they may wait for. The caller holds the mutex.
    fn notify(&self) {
        if self.engine.sleepers.load(Ordering::SeqCst) > 0 {
            self.wake.notify_all();
        }
    }

    fn register(&self, lane: usize, state: *const LaneState) {
        self.lock().lanes[lane].state = state;
    }

    fn try_take(&self) -> bool {
        !self.engine.held.load(Ordering::Relaxed)
            && self
                .engine
                .held
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the engine, waiting while another lane holds it.
    fn acquire(&self) {
        for _ in 0..SPINS {
            if self.try_take() {
                return;
            }
            std::hint::spin_loop();
        }
        let mut sched = self.lock();
        self.engine.sleepers.fetch_add(1, Ordering::SeqCst);
        while !self.try_take() {
            sched = self.wait(sched);
        }
        self.engine.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Lets go of the engine.
    fn release(&self) {
        self.engine.held.store(false, Ordering::SeqCst);
        self.engine.generation.fetch_add(1, Ordering::SeqCst);
        if self.engine.sleepers.load(Ordering::SeqCst) > 0 {
            let _sched = self.lock();
            self.wake.notify_all();
        }
    }

    /// Lets go of the engine until another lane has held it and changed something, then takes it again.
    /// `changed`: whether the caller changed something since it took the engine (then others waiting for a change
    /// look again). A lane that only looked again and goes back to sleep passes `false`, so that two waiting lanes
    /// do not wake each other forever while the lane they wait for runs a task.
    fn sleep(&self, changed: bool) {
        let mut sched = self.lock();
        self.engine.sleepers.fetch_add(1, Ordering::SeqCst);
        self.engine.held.store(false, Ordering::SeqCst);
        let seen = if changed {
            self.engine.generation.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.engine.generation.load(Ordering::SeqCst)
        };
        self.wake.notify_all();
        while self.engine.generation.load(Ordering::SeqCst) == seen {
            sched = self.wait(sched);
        }
        while !self.try_take() {
            sched = self.wait(sched);
        }
        self.engine.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// For an idle worker (not holding the engine): the next branch of any fork, with the engine taken, or `None`
    /// when the build is over.
    fn next_work(&self, lane: usize) -> Option<Taken<T>> {
        let mut sched = self.lock();
        self.engine.sleepers.fetch_add(1, Ordering::SeqCst);
        let work = loop {
            if sched.shutdown {
                break None;
            }
            if let Some(work) = take_branch(&mut sched, lane, None, |_, _| true) {
                break Some(work);
            }
            sched = self.wait(sched);
        };
        self.engine.sleepers.fetch_sub(1, Ordering::SeqCst);
        drop(sched);
        if work.is_some() {
            self.acquire();
        }
        work
    }

    /// Opens a fork of `tasks`, number `number` in the session's lineage (the caller holds the engine); returns its
    /// slot.
    fn open(
        &self,
        parent: Option<usize>,
        number: u32,
        check: bool,
        stamper: OutputStamper,
        tasks: &[T],
        ids: &[TaskId],
    ) -> usize {
        let branches = Branches::new(tasks, ids);
        let mut sched = self.lock();
        let fork = Fork {
            parent,
            number,
            check,
            held_back: !check,
            stamper,
            branches,
            next: 0,
            running: Vec::new(),
            remaining: tasks.len(),
            results: (0..tasks.len()).map(|_| None).collect(),
        };
        let index = match sched.free.pop() {
            Some(index) => {
                sched.forks[index] = Some(fork);
                index
            }
            None => {
                sched.forks.push(Some(fork));
                sched.forks.len() - 1
            }
        };
        sched.ready.push_back(index);
        self.notify();
        index
    }

    /// For the lane that opened fork `fork`: a branch of it or of a fork opened below it to run, or the results
    /// when all branches finished, or `Wait` (the lane is then joining).
    fn join_step(&self, fork: usize, lane: usize) -> JoinStep<T> {
        let mut sched = self.lock();
        let own = sched.ready.iter().position(|f| *f == fork);
        if let Some(taken) = take_branch(&mut sched, lane, own, |sched, f| descends(sched, f, fork)) {
            return JoinStep::Run(taken);
        }
        let open = sched.forks[fork].as_mut().expect("BUG: joining a closed fork");
        if open.remaining == 0 {
            let results = open
                .results
                .iter_mut()
                .map(|r| r.take().expect("BUG: finished fork without a result"))
                .collect();
            sched.forks[fork] = None;
            sched.free.push(fork);
            return JoinStep::Done(results);
        }
        sched.lanes[lane].status = Status::Joining(fork);
        JoinStep::Wait
    }

    /// Records how the branches of a share of fork `fork` that `lane` ran ended (by index in the fork), once it ran
    /// them all: the lane then no longer runs any of the fork's. One lock for the share, not one per branch: the
    /// results are read only when the fork joins, which waits for the whole share anyway.
    fn finish(&self, fork: usize, lane: usize, results: impl Iterator<Item = (usize, Result<(), (Payload, bool)>)>) {
        let mut sched = self.lock();
        let open = sched.forks[fork]
            .as_mut()
            .expect("BUG: finishing a branch of a closed fork");
        for (index, result) in results {
            open.results[index] = Some(result);
            open.remaining -= 1;
        }
        if let Some(at) = open.running.iter().position(|l| *l == lane) {
            open.running.swap_remove(at);
        }
    }

    /// Lets go of fork `fork`, held back by the lane that opened it: its pending branches are handed out.
    fn let_go(&self, fork: usize) {
        let mut sched = self.lock();
        if let Some(open) = sched.forks[fork].as_mut() {
            open.held_back = false;
        }
        self.notify();
    }

    fn set_running(&self, lane: usize) {
        self.lock().lanes[lane].status = Status::Running;
    }

    /// Called by `lane`, which holds the engine, about to wait for task `id`, in progress on another lane: `Ok`
    /// after noting that it waits, or the tasks of the cycle (from `id` round to the top of this lane's stack) when
    /// the lanes that `id` waits for, transitively, include this one. `owner` tells the lane of a task in progress,
    /// and `None` for a task no longer in progress: a lane noted as waiting for it waits for nothing (it wakes and
    /// looks again).
    fn wait_for(&self, lane: usize, id: TaskId, owner: impl Fn(TaskId) -> Option<usize>) -> Result<(), Vec<TaskId>> {
        let mut sched = self.lock();
        let mut path = Vec::new();
        let mut visited = vec![false; sched.lanes.len()];
        let Some(holder) = owner(id) else {
            return Ok(());
        };
        if reaches(&sched, holder, lane, &owner, &mut visited, &mut path) {
            // The cycle: on each lane of the path, its stack from where the lane before it entered it (the task it
            // waits for, or the branch of the fork it joins) to its top.
            let mut cycle = Vec::new();
            let mut entry = Entry::Task(id);
            for (l, next) in path {
                // SAFETY: the caller holds the engine, and registered lanes outlive their registration.
                let state = unsafe { &*sched.lanes[l].state };
                let from = match entry {
                    Entry::Task(task) => state.stack.iter().position(|f| f.id == task),
                    Entry::Fork(fork) => state
                        .branches
                        .iter()
                        .rev()
                        .find(|b| b.fork == Some(fork))
                        .map(|b| b.height),
                };
                cycle.extend(state.stack[from.unwrap_or(0)..].iter().map(|f| f.id));
                entry = next;
            }
            cycle.push(id);
            return Err(cycle);
        }
        sched.lanes[lane].status = Status::Waiting(id);
        Ok(())
    }

    /// Whether `pred` holds for the frame of every task in progress on a lane (the caller holds the engine).
    pub(super) fn every_frame(&self, pred: impl Fn(&crate::context::state::Frame) -> bool) -> bool {
        let sched = self.lock();
        sched.lanes.iter().all(|lane| {
            // SAFETY: the caller holds the engine, and registered lanes outlive their registration.
            lane.state.is_null() || unsafe { &*lane.state }.stack.iter().all(&pred)
        })
    }

    /// Tells the workers to leave: the outermost fork is done.
    fn shut_down(&self) {
        let mut sched = self.lock();
        sched.shutdown = true;
        self.notify();
    }
}

/// Takes the first pending branch of the ready fork at `first` in the ready queue, if given, or else of the first
/// ready fork for which `pick` holds, noting that `lane` runs it.
fn take_branch<T>(
    sched: &mut Sched<T>,
    lane: usize,
    first: Option<usize>,
    pick: impl Fn(&Sched<T>, usize) -> bool,
) -> Option<Taken<T>> {
    // Beyond `first`, the first few ready forks only: a lane that finds none of them waits, and every fork's own
    // lane takes its pending branches itself (as `first`).
    let held_back = |f: usize| sched.forks[f].as_ref().is_some_and(|fork| fork.held_back);
    let at = first.or_else(|| {
        sched
            .ready
            .iter()
            .take(16)
            .position(|f| !held_back(*f) && pick(sched, *f))
    })?;
    let f = sched.ready[at];
    let lanes = sched.lanes.len();
    let fork = sched.forks[f].as_mut().expect("BUG: a ready fork is closed");
    let pending = fork.branches.len - fork.next;
    assert!(pending > 0, "BUG: a ready fork has no pending branch");
    let share = fork.next..fork.next + (pending / (2 * lanes)).max(1);
    fork.next = share.end;
    fork.running.push(lane);
    let (stamper, number, check, branches) = (fork.stamper, fork.number, fork.check, fork.branches);
    if fork.next == fork.branches.len {
        sched.ready.remove(at);
    }
    Some(Taken {
        fork: f,
        number,
        branches,
        share,
        stamper,
        check,
    })
}

/// Whether fork `f` is fork `ancestor` or was opened (transitively, at most a few forks down) by a branch of it.
/// Bounded, so that looking for work costs no more than a few steps per ready fork in a deep graph of forks; a fork
/// further down is left to the lane that opened it, which always runs its own pending branches.
fn descends<T>(sched: &Sched<T>, mut f: usize, ancestor: usize) -> bool {
    for _ in 0..16 {
        if f == ancestor {
            return true;
        }
        match sched.forks[f].as_ref().and_then(|fork| fork.parent) {
            Some(parent) => f = parent,
            None => return false,
        }
    }
    false
}

/// How a lane on a path of waiting lanes was entered from the lane before it.
#[derive(Copy, Clone)]
enum Entry {
    /// That lane waits for this task, on this lane's stack.
    Task(TaskId),
    /// That lane joins this fork, whose branch this lane runs.
    Fork(usize),
}

/// Whether lane `from` waits, transitively, for lane `target`; the lanes on the way, each with how the next one
/// was entered, are left in `path` when it does.
fn reaches<T>(
    sched: &Sched<T>,
    from: usize,
    target: usize,
    owner: &impl Fn(TaskId) -> Option<usize>,
    visited: &mut [bool],
    path: &mut Vec<(usize, Entry)>,
) -> bool {
    if from == target {
        path.push((from, Entry::Fork(usize::MAX)));
        return true;
    }
    if std::mem::replace(&mut visited[from], true) {
        return false;
    }
    match sched.lanes[from].status {
        Status::Running => {}
        // A lane still noted as waiting for a task that is no longer in progress is about to wake and look again:
        // it waits for nobody (following the task's last lane instead found cycles that were not there).
        Status::Waiting(id) => {
            let Some(holder) = owner(id) else {
                return false;
            };
            path.push((from, Entry::Task(id)));
            if reaches(sched, holder, target, owner, visited, path) {
                return true;
            }
            path.pop();
        }
        Status::Joining(f) => {
            path.push((from, Entry::Fork(f)));
            let running = sched.forks[f]
                .as_ref()
                .map(|fork| fork.running.clone())
                .unwrap_or_default();
            for lane in running {
                if reaches(sched, lane, target, owner, visited, path) {
                    return true;
                }
            }
            path.pop();
        }
    }
    false
}

/// What a worker thread needs to build its own view of the engine.
struct Shared<'s, T: Task, A> {
    store: Ptr<'s, crate::store::Store<T, T::Output>>,
    tracker: Ptr<'s, A>,
    marks: Ptr<'s, crate::context::marks::Marks>,
    state: Ptr<'s, crate::context::state::SessionState>,
    par: NonNull<Parallel<T>>,
    threads: usize,
    remote: Option<&'s dyn crate::context::remote::RemoteHook<T, T::Output>>,
}

// SAFETY: the pointers are used with the engine's lock discipline (see `Ptr`); `Parallel` is shared by reference
// between the lanes and synchronises itself.
unsafe impl<T: Task, A: Send> Send for Shared<'_, T, A> {}

impl<'s, T: Task, A: Tracker<T>> TopDownContext<'s, T, T::Output, A> {
    /// The parallel build this lane works in, if any. The reference is not tied to `self`: the `Parallel` lives
    /// on the stack of the outermost fork, which clears `par` before it goes.
    pub(super) fn parallel<'p>(&self) -> Option<&'p Parallel<T>> {
        // SAFETY: see above.
        self.par.map(|p| unsafe { &*p.as_ptr() })
    }

    /// Runs `f`, which uses the engine, holding it: a `Context` call from a task's own code in a parallel build
    /// takes the engine first and lets go of it afterwards (also when `f` panics). On one lane the engine is always
    /// held, and this is a branch.
    #[inline]
    pub(super) fn in_engine<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.held {
            return f(self);
        }
        let par = self
            .parallel()
            .expect("BUG: a lane without the engine outside a parallel build");
        par.acquire();
        self.held = true;
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            self.apply_pending();
            f(self)
        }));
        self.held = false;
        par.release();
        result.unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    /// Runs a task's own code, `f`, without holding the engine in a parallel build.
    #[inline(always)]
    pub(super) fn outside_engine<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let Some(par) = self.parallel() else {
            return f(self);
        };
        self.held = false;
        par.release();
        // `f` catches panics (it is a task's execution).
        let result = f(self);
        par.acquire();
        self.held = true;
        self.apply_pending();
        result
    }

    /// Task `id` is in progress (marked so) and this lane needs it: on this lane's stack it is a cycle (panics);
    /// on another lane's, this lane waits until that lane is done with it (its mark changes), unless the lanes wait
    /// for each other, which is a cycle too. Returns holding the engine; the caller looks at the task's mark again.
    ///
    /// A task in progress to which a violation was deferred (see `TopDownContext::defer_violation`) is failing
    /// with it whatever else it does: this lane meets the violation at once, as it meets that of a task that failed
    /// with one (`repeat_violation`). On one thread the task stopped where it met the violation, so waiting for it
    /// could find a cycle that only its going on made (it required a task that now requires it).
    #[cold]
    #[inline(never)]
    pub(super) fn wait_or_cycle(&mut self, id: TaskId) {
        self.wait_or_cycle_then(id, true)
    }

    /// [`wait_or_cycle`](Self::wait_or_cycle); with `meet_deferred` false, a task with a deferred violation is
    /// waited for too (for the bottom-up loop's forks of scheduled tasks, whose branches leave a failed task to
    /// the loop).
    pub(super) fn wait_or_cycle_then(&mut self, id: TaskId, meet_deferred: bool) {
        let Some(par) = self.parallel() else { self.cycle(id) };
        // What this lane did since it took the engine may be what others wait for; looking again is not.
        let mut changed = true;
        while self.marks.get(id) == Mark::InProgress {
            if self.marks.owner(id) == self.lane_index {
                self.cycle(id)
            }
            if let Some(message) = meet_deferred.then(|| self.pending_message(id)).flatten() {
                self.lane.violation = true;
                panic::resume_unwind(Box::new(message));
            }
            let marks = &self.marks;
            let in_progress = |task| (marks.get(task) == Mark::InProgress).then(|| marks.owner(task));
            if let Err(cycle) = par.wait_for(self.lane_index, id, in_progress) {
                self.cycle_across_lanes(&cycle)
            }
            self.let_go_held_back();
            self.held = false;
            par.sleep(std::mem::take(&mut changed));
            self.held = true;
            par.set_running(self.lane_index);
        }
    }

    /// Lets go of the forks this lane holds back (see `Fork::held_back`), if any: it is about to execute a task,
    /// wait, or open another fork. The stamps taken ahead for its checks go too: other lanes check the rest.
    #[inline]
    pub(super) fn let_go_held_back(&mut self) {
        if !self.lane.held_back.is_empty() {
            self.let_go_held_back_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn let_go_held_back_slow(&mut self) {
        let par = self.parallel().expect("BUG: a fork held back outside a parallel build");
        for fork in self.lane.held_back.drain(..) {
            par.let_go(fork);
        }
        self.lane.prefetch = None;
    }

    /// Requires every task of `tasks` (the body of `Context::require_tasks` and `Session::require_all`): in
    /// parallel where the `Pie` has threads to spare, otherwise one after the other. Every task is required; the
    /// first panic, in the order of `tasks`, goes on afterwards. The executing task, if any, depends on every task,
    /// in the order of `tasks`. `ids`, when the caller has them, are the tasks' ids, in order (see
    /// [`require_group_each`](Self::require_group_each)).
    pub(super) fn require_group(
        &mut self,
        tasks: &[T],
        ids: Option<&[TaskId]>,
        stamper: OutputStamper,
    ) -> Vec<T::Output> {
        let mut outputs = Vec::with_capacity(tasks.len());
        let mut first_panic = None;
        for result in self.require_group_each(tasks, ids, stamper) {
            match result {
                Ok(output) => outputs.push(output),
                Err(failure) => {
                    first_panic.get_or_insert(failure);
                }
            }
        }
        if let Some((payload, violation)) = first_panic {
            self.lane.violation = violation;
            panic::resume_unwind(payload);
        }
        outputs
    }

    /// [`require_group`](Self::require_group), with what became of each task: its output, or its panic and whether
    /// that is a soundness violation (see `LaneState::violation`). `known`, when the caller has them, are the ids of
    /// `tasks`, in order (the roots of `Session::require_all`, looked up once).
    pub(super) fn require_group_each(
        &mut self,
        tasks: &[T],
        known: Option<&[TaskId]>,
        stamper: OutputStamper,
    ) -> Vec<Result<T::Output, (Payload, bool)>> {
        // The executing task records a dependency per task, in order, once they are consistent (on this lane alone, or
        // after the fork): its list grows once here.
        if let Some(current) = self.lane.current {
            self.store.reserve_deps(current, tasks.len());
        }
        // The ids first, for the whole group at once, on one lane as in a fork: new tasks grow the tables once, not a
        // doubling at a time, and the interner's tables stay in the cache, away from the tasks' executions (a wide
        // fresh build on one thread takes 0.94x the time of interning each task just before requiring it,
        // BENCHMARKS.md).
        let before = self.store.task_count();
        let ids: std::borrow::Cow<'_, [TaskId]> = match known {
            Some(ids) => ids.into(),
            None => self.store.get_or_create_tasks(tasks).into(),
        };
        let created = self.store.task_count() - before;
        // A kept failure (see `LaneState::failures`) is this lane's: its task is required here, not in a branch.
        let kept = !self.lane.failures.is_empty() && ids.iter().any(|id| self.lane.failures.contains(*id));
        if tasks.len() < 2 || self.threads < 2 || kept {
            return self.require_one_by_one(tasks, &ids, stamper);
        }
        // New tasks may read new files, likely one each at least: their nodes are made holding the engine, so the
        // file tables grow once here rather than while other lanes wait.
        self.store.reserve_files(created);
        // Held back: this lane runs the branches in order, as one thread would, until it executes a task (see
        // `Fork::held_back`); the files the tasks read are stamped ahead meanwhile.
        if self.state.bottom_up.is_none() && tasks.len() >= crate::context::prefetch::MIN_RUN {
            self.prefetch_files_of(ids.iter().copied());
        }
        let results = self.fork(false, tasks, &ids, stamper);
        let current = self.lane.current;
        let start = current.map(|current| self.store.dep_count(current));
        let mut each = Vec::with_capacity(tasks.len());
        for (index, ((task, &id), mut result)) in tasks.iter().zip(ids.iter()).zip(results).enumerate() {
            // The records of the tasks were last written by the lanes that ran them: asked into the cache a few
            // tasks ahead of their use (see `Store::prefetch`).
            if let Some(ahead) = ids.get(index + PREFETCH_AHEAD) {
                self.store.prefetch(*ahead);
            }
            if result.is_ok() && self.store.output(id).is_none() {
                // Its execution was forgotten after its branch finished (a violation deferred to it, see
                // `TopDownContext::defer_violation`): required again here, it meets what it meets now.
                let current = self.lane.current.take();
                result = panic::catch_unwind(AssertUnwindSafe(|| {
                    self.require_task_with_stamper(task, stamper);
                }))
                .map_err(|payload| (payload, std::mem::take(&mut self.lane.violation)));
                self.lane.current = current;
            }
            match result {
                Ok(()) => {
                    if let Some(current) = current {
                        let version = self.store.version(id);
                        self.record_require(current, id, stamper, version);
                    }
                    let output = self.store.output(id).expect("BUG: consistent task without output");
                    each.push(Ok(output.clone()));
                }
                Err(failure) => {
                    if let Some(current) = current {
                        self.record_failed_require(current, id, stamper);
                    }
                    each.push(Err(failure));
                }
            }
        }
        if let (Some(current), Some(start)) = (current, start) {
            self.store.mark_group(current, start);
        }
        each
    }

    /// Notes, in a parallel build, that task `id`, just marked in progress, is this lane's, and where in the order
    /// of a build on one thread (see `Position`). Out of line: a build on one thread never calls it.
    #[cold]
    #[inline(never)]
    pub(super) fn note_lane(&mut self, id: TaskId) {
        self.marks.set_owner(id, self.lane_index);
        self.note_position(id);
    }

    /// In a top-down check, when the task of frame `top` must execute and is a task of a `require_tasks` group that
    /// the task of the frame below recorded (whose dependencies before it are consistent): makes it and the
    /// group's later tasks consistent in parallel instead, and returns `true`; the check then goes on in order
    /// from the frame below, finding them done. Only when at least one more of them is unseen and every one has an
    /// output and is unseen or done (otherwise `false`, and the task executes alone, as on one thread).
    ///
    /// This is what a build on one thread does, only sooner: the task's new output makes the task below execute
    /// (unless it is unchanged, and then the check goes on to the next task of the group), and that task, its
    /// dependencies before the group being consistent and its code deterministic, makes the same `require_tasks`
    /// call, which requires all of them. A panic is met where that build meets it: a task's own failure is kept
    /// for the execution of the task below (see `LaneState::failures`); any other panic goes on when the tasks
    /// before it are consistent (as the check meets it there); after an inconsistent one, the task below executes
    /// and requires the failed task again. A group whose tasks are all consistent forks nothing: checking, which
    /// holds the engine, gains nothing from more lanes.
    #[inline(never)]
    pub(super) fn fork_rest_of_group(&mut self, base: usize, top: usize) -> bool {
        let below = self.lane.stack[top - 1];
        let id = self.lane.stack[top].id;
        if below.probe || self.state.bottom_up.is_some() || !self.lane.failures.is_empty() {
            return false;
        }
        let start = below.next as usize;
        let Dep::RequireTask(first) = self.store.dep(below.id, start) else {
            return false;
        };
        if first.group == Group::Alone || first.task != id {
            return false;
        }
        // The group's tasks from this one on, each with whether it is forked (a done one is not).
        let mut members = vec![(first, true)];
        let mut tasks = vec![self.store.task(id).clone()];
        let mut ids = vec![id];
        for k in start + 1..self.store.dep_count(below.id) {
            let Dep::RequireTask(dep) = self.store.dep(below.id, k) else {
                break;
            };
            if dep.group != Group::Member {
                break;
            }
            let forked = match self.marks.get(dep.task) {
                Mark::Done => false,
                Mark::Unseen | Mark::Scheduled if self.store.output(dep.task).is_some() => true,
                _ => return false,
            };
            if forked {
                tasks.push(self.store.task(dep.task).clone());
                ids.push(dep.task);
            }
            members.push((dep, forked));
        }
        if tasks.len() < 2 {
            return false;
        }
        // The task's frame goes: a branch makes it consistent (it is executed there). The check of the dependency
        // on it ends here for trackers, so that what this lane runs in the fork does not nest in it; the frame
        // below checks it again, from the start, once the fork is done.
        self.lane.stack.pop();
        self.marks.set(id, Mark::Unseen);
        let view = TaskDependency::new(self.store.task(id), first.stamper);
        self.tracker
            .check_dependency_end(&Dependency::RequireTask(view), Ok(None));
        self.lane.stack[top - 1].resume = false;
        let mut results = self.fork(true, &tasks, &ids, first.stamper).into_iter();
        // The tasks before this one are consistent: the check got here.
        let mut consistent = true;
        for (dep, forked) in members {
            let result = if forked { results.next() } else { None };
            match result {
                None | Some(Ok(())) => consistent &= !dep.is_inconsistent(self.store.version(dep.task)),
                Some(Err((payload, _))) => {
                    if self.marks.get(dep.task) == Mark::Failed && self.store.version(dep.task) & FAILED_BIT != 0 {
                        self.lane.failures.push(dep.task, payload);
                        consistent = false;
                    } else if consistent {
                        self.unwind_frames_from(base, payload);
                    }
                }
            }
        }
        true
    }

    /// [`require_group_each`](Self::require_group_each) on this lane alone; `ids` are the ids of `tasks`, in order.
    fn require_one_by_one(
        &mut self,
        tasks: &[T],
        ids: &[TaskId],
        stamper: OutputStamper,
    ) -> Vec<Result<T::Output, (Payload, bool)>> {
        let current = self.lane.current;
        let start = current.map(|current| self.store.dep_count(current));
        let each: Vec<_> = tasks
            .iter()
            .zip(ids)
            .map(|(task, &id)| {
                panic::catch_unwind(AssertUnwindSafe(|| self.require_known_task(id, task, stamper)))
                    .map_err(|payload| (payload, std::mem::take(&mut self.lane.violation)))
            })
            .collect();
        if let (Some(current), Some(start)) = (current, start) {
            if tasks.len() >= 2 {
                self.store.mark_group(current, start);
            }
        }
        each
    }

    /// The outermost fork of a build: starts the workers, runs the fork (`fork`, now inside a parallel build), and
    /// stops them.
    fn fork_with_workers(
        &mut self,
        check: bool,
        tasks: &[T],
        ids: &[TaskId],
        stamper: OutputStamper,
    ) -> Vec<Result<(), (Payload, bool)>> {
        let reads_late = !self.store.any_provider() && self.state.bottom_up.is_none();
        let parallel = Parallel::new(self.threads, reads_late, self.state.clock);
        parallel.register(0, self.lane.as_ptr());
        // The tasks in progress before the fork are this lane's.
        for index in 0..self.lane.stack.len() {
            let id = self.lane.stack[index].id;
            self.marks.set_owner(id, 0);
        }
        self.par = Some(NonNull::from(&parallel));
        let result = thread::scope(|scope| {
            for lane in 1..self.threads {
                let shared = Shared {
                    store: self.store.share(),
                    tracker: self.tracker.share(),
                    marks: self.marks.share(),
                    state: self.state.share(),
                    par: NonNull::from(&parallel),
                    threads: self.threads,
                    remote: self.remote,
                };
                #[cfg(not(feature = "shuttle"))]
                let spawned = thread::Builder::new()
                    .name(format!("pie-worker-{lane}"))
                    .spawn_scoped(scope, move || work(shared, lane))
                    .is_ok();
                #[cfg(feature = "shuttle")]
                let spawned = {
                    scope.spawn(move || work(shared, lane));
                    true
                };
                if !spawned {
                    break; // fewer workers: the lanes that exist do the work
                }
            }
            let result = panic::catch_unwind(AssertUnwindSafe(|| self.fork(check, tasks, ids, stamper)));
            parallel.shut_down();
            result
        });
        self.par = None;
        self.state.clock = parallel.clock();
        result.unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    /// Opens a fork of `tasks`, whose ids are `ids` (opened by a check when `check`: see `Fork::check`), and runs its
    /// branches (and those of forks opened below it) until all are finished; the outermost fork of a build starts
    /// the workers first (`fork_with_workers`). Returns how each branch ended, in the order of `tasks`.
    pub(super) fn fork(
        &mut self,
        check: bool,
        tasks: &[T],
        ids: &[TaskId],
        stamper: OutputStamper,
    ) -> Vec<Result<(), (Payload, bool)>> {
        let Some(par) = self.parallel() else {
            return self.fork_with_workers(check, tasks, ids, stamper);
        };
        self.let_go_held_back();
        let branch = self.lane.branches.last().copied();
        let number = self.state.lineage.len() as u32;
        self.state.lineage.push(branch.map_or(Position::NONE, |b| b.position));
        // The tables by task index grow once here, not a task at a time on every lane (see `Marks::make_room`).
        let end = ids.iter().map(|id| id.index() + 1).max().unwrap_or(0);
        self.marks.make_room(end);
        self.state.make_room(end);
        let fork = par.open(branch.and_then(|b| b.fork), number, check, stamper, tasks, ids);
        // Other lanes use `tasks` and `ids` from here until the fork is done (see `Branches`).
        let lent = AbortOnUnwind;
        if !check {
            self.lane.held_back.push(fork);
        }
        // Whether this lane changed anything since it last slept (see `Parallel::sleep`).
        let mut changed = true;
        loop {
            match par.join_step(fork, self.lane_index) {
                JoinStep::Run(taken) => {
                    self.run_branches(par, &taken);
                    changed = true;
                }
                JoinStep::Done(mut results) => {
                    std::mem::forget(lent);
                    // The slot is free again (the engine is held, so no lane opened a fork in it since).
                    self.lane.held_back.retain(|f| *f != fork);
                    if !self.state.deferred.is_empty() {
                        self.meet_deferred(number, tasks, ids, check, stamper, &mut results);
                    }
                    return results;
                }
                JoinStep::Wait => {
                    self.held = false;
                    par.sleep(std::mem::take(&mut changed));
                    self.held = true;
                    par.set_running(self.lane_index);
                }
            }
        }
    }

    /// Runs taken branches on this lane, one after the other, recording how each ended.
    fn run_branches(&mut self, par: &Parallel<T>, taken: &Taken<T>) {
        let share = taken.share.clone();
        // SAFETY (here and below): this lane runs the share, and reports it only after its last use of a branch.
        let branch = |index| unsafe { taken.branches.get(index) };
        if share.len() == 1 {
            let (id, task) = branch(share.start);
            let result = self.run_branch(taken, share.start, id, task);
            par.finish(taken.fork, self.lane_index, std::iter::once((share.start, result)));
            return;
        }
        let mut results = Vec::with_capacity(share.len());
        for index in share.clone() {
            // Each branch's task record is asked into the cache while the branch before it runs (see
            // `Store::prefetch`).
            if index + 1 < share.end {
                self.store.prefetch(branch(index + 1).0);
            }
            let (id, task) = branch(index);
            results.push((index, self.run_branch(taken, index, id, task)));
        }
        par.finish(taken.fork, self.lane_index, results.into_iter());
    }

    /// Runs branch `index` of the taken ones on this lane: makes its task consistent without attaching it to the
    /// executing task (the fork's requirer records its dependencies in order at the end).
    fn run_branch(&mut self, taken: &Taken<T>, index: usize, id: TaskId, task: &T) -> Result<(), (Payload, bool)> {
        let branch = Branch {
            fork: Some(taken.fork),
            height: self.lane.stack.len(),
            position: Position::new(taken.number, index as u32),
        };
        self.in_branch(branch, id, task, taken.check, taken.stamper)
    }

    /// Runs branch `index` of fork `number`, which has joined, again on this lane, at the branch's position (see
    /// `meet_deferred`). Forks it opens are nobody's branch's: only idle lanes and this one take their branches.
    pub(super) fn redo_branch(
        &mut self,
        number: u32,
        index: u32,
        id: TaskId,
        task: &T,
        check: bool,
        stamper: OutputStamper,
    ) -> Result<(), (Payload, bool)> {
        let branch = Branch {
            fork: None,
            height: self.lane.stack.len(),
            position: Position::new(number, index),
        };
        self.in_branch(branch, id, task, check, stamper)
    }

    /// Makes `task` (whose id is `id`) consistent in `branch`, catching a panic.
    fn in_branch(
        &mut self,
        branch: Branch,
        id: TaskId,
        task: &T,
        check: bool,
        stamper: OutputStamper,
    ) -> Result<(), (Payload, bool)> {
        let current = self.lane.current.take();
        self.lane.branches.push(branch);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            grow_stack(|| {
                if check {
                    if self.state.bottom_up.is_some() {
                        // A fork of scheduled tasks (`fork_scheduled_group`): a check opens none in a bottom-up
                        // build.
                        self.bring_scheduled_up_to_date(id);
                    } else {
                        self.make_consistent_or_unwind(id, task, stamper);
                    }
                } else {
                    self.require_known_task_for_branch(id, task, stamper);
                }
            });
        }));
        self.lane.branches.pop();
        self.lane.current = current;
        result.map_err(|payload| (payload, std::mem::take(&mut self.lane.violation)))
    }
}

/// A worker thread: takes branches of any fork until the build is over.
fn work<T: Task, A: Tracker<T>>(shared: Shared<'_, T, A>, lane_index: usize) {
    set_lane(lane_index);
    let mut lane = LaneState::default();
    let mut cx = TopDownContext {
        store: shared.store,
        tracker: shared.tracker,
        marks: shared.marks,
        state: shared.state,
        lane: Ptr::new(&mut lane),
        par: Some(shared.par),
        held: false,
        threads: shared.threads,
        lane_index,
        remote: shared.remote,
    };
    let par = cx.parallel().expect("BUG: a worker outside a parallel build");
    par.register(lane_index, cx.lane.as_ptr());
    while let Some(taken) = par.next_work(lane_index) {
        cx.held = true;
        cx.run_branches(par, &taken);
        cx.held = false;
        par.release();
    }
    par.register(lane_index, std::ptr::null());
}
