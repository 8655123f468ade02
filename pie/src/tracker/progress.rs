//! Progress of the build in progress, readable from another thread while it runs.
//!
//! [`ProgressTracker`] counts the tasks checked (required, or reached through a recorded task dependency) and
//! executed in the current build, and remembers how many tasks the previous build of the same `Pie` checked, so
//! that [`Progress::remaining`] can estimate how much is left. The counts live in atomics behind an `Arc`; a
//! [`ProgressHandle`] shares them with, say, a user interface thread that draws a progress bar.
//!
//! Tracker calls are serialised (see [`crate::tracker`]), so the counters have one writer at a time and are
//! updated with a plain load and store (no read-modify-write); readers see each counter exactly, though a
//! [`Progress`] read while a build runs may pair counts from slightly different moments.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::dependency::Dependency;
use crate::stamp::OutputStamper;
use crate::tracker::Tracker;
use crate::Task;

/// `previous` when no build has ended yet.
const UNKNOWN: u64 = u64::MAX;

/// The counters shared by a [`ProgressTracker`] and its [`ProgressHandle`]s.
#[derive(Debug)]
struct Counts {
    /// Tasks checked in the current (or last) build (see [`Progress::checked`]).
    checked: AtomicU64,
    /// Executions (`execute_start`) in the current (or last) build.
    executed: AtomicU64,
    /// Tasks checked by the last build that ended before the current one started; [`UNKNOWN`] if none did.
    previous: AtomicU64,
    /// Whether a build is in progress.
    building: AtomicBool,
    /// Builds started so far.
    builds: AtomicU64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            checked: AtomicU64::new(0),
            executed: AtomicU64::new(0),
            previous: AtomicU64::new(UNKNOWN),
            building: AtomicBool::new(false),
            builds: AtomicU64::new(0),
        }
    }
}

impl Counts {
    /// Adds one to `counter`. Only the tracker writes, and tracker calls are serialised (each happens after the
    /// previous one), so a load and a store cannot lose an update.
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Progress {
        let previous = self.previous.load(Ordering::Relaxed);
        Progress {
            checked: self.checked.load(Ordering::Relaxed),
            executed: self.executed.load(Ordering::Relaxed),
            previous_checked: (previous != UNKNOWN).then_some(previous),
            building: self.building.load(Ordering::Relaxed),
            builds: self.builds.load(Ordering::Relaxed),
        }
    }
}

/// What a build has done so far: a cheap copy of the counters of a [`ProgressTracker`].
///
/// ```
/// use pie::tracker::progress::Progress;
/// let progress = Progress { checked: 30, executed: 2, previous_checked: Some(120), building: true, builds: 2 };
/// assert_eq!(progress.remaining(), Some(90));
/// assert_eq!(progress.fraction(), Some(0.25));
/// ```
#[derive(Copy, Clone, Eq, PartialEq, Debug, Default)]
pub struct Progress {
    /// Tasks checked so far in the current build (or in the last one, when none is in progress), whether they
    /// then turned out consistent or executed: each require of a task (`require_task_start`, the build's roots
    /// included) and each check of a recorded dependency on a task (`check_dependency_start`), the two ways in
    /// which a build reaches a task. A task that a check finds inconsistent and that is then required again by
    /// its re-executing dependent counts twice.
    pub checked: u64,
    /// Tasks executed so far in the current (or last) build.
    pub executed: u64,
    /// How many tasks the previous build checked, if a build ended before the current one started.
    pub previous_checked: Option<u64>,
    /// Whether a build is in progress.
    pub building: bool,
    /// How many builds have started since the tracker was made.
    pub builds: u64,
}

impl Progress {
    /// An estimate of the checks still to come, assuming that this build checks as many tasks as the previous
    /// one did: `None` without a previous build, and 0 once this build has checked more than that one.
    pub fn remaining(&self) -> Option<u64> {
        self.previous_checked
            .map(|previous| previous.saturating_sub(self.checked))
    }

    /// The estimated part done, from 0 to 1 (see [`remaining`](Self::remaining)): `None` without a previous
    /// build, 1 for a previous build that checked nothing.
    pub fn fraction(&self) -> Option<f64> {
        self.previous_checked.map(|previous| {
            if previous == 0 {
                1.0
            } else {
                (self.checked as f64 / previous as f64).min(1.0)
            }
        })
    }
}

/// Counts the tasks checked and executed in the current build, keeping the count of the previous build (of the
/// same `Pie`: the tracker lives as long as it) for an estimate of what is left. See the [module](self).
///
/// ```
/// use pie::tracker::progress::ProgressTracker;
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
/// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
/// let mut pie = pie::Pie::with_tracker(ProgressTracker::default());
/// let handle = pie.tracker().handle(); // give it to another thread
/// pie.new_session().require(&Hello);
/// let first = handle.snapshot();
/// assert_eq!((first.checked, first.executed, first.previous_checked), (1, 1, None));
/// pie.new_session().require(&Hello);
/// let second = pie.tracker().snapshot();
/// assert_eq!((second.checked, second.executed, second.previous_checked), (1, 0, Some(1)));
/// assert_eq!(second.remaining(), Some(0));
/// ```
#[derive(Debug, Default)]
pub struct ProgressTracker {
    counts: Arc<Counts>,
}

impl ProgressTracker {
    /// A tracker with no build counted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle that reads this tracker's counts from any thread, also while a build runs.
    pub fn handle(&self) -> ProgressHandle {
        ProgressHandle {
            counts: Arc::clone(&self.counts),
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> Progress {
        self.counts.snapshot()
    }

    /// The estimated requires still to come in the current build (see [`Progress::remaining`]).
    pub fn remaining(&self) -> Option<u64> {
        self.snapshot().remaining()
    }
}

/// Reads the counts of a [`ProgressTracker`] from another thread; cheap to clone.
///
/// ```
/// use pie::tracker::progress::ProgressTracker;
/// let tracker = ProgressTracker::new();
/// let handle = tracker.handle();
/// let reader = std::thread::spawn(move || handle.snapshot().building);
/// assert!(!reader.join().unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct ProgressHandle {
    counts: Arc<Counts>,
}

impl ProgressHandle {
    /// The counts now.
    pub fn snapshot(&self) -> Progress {
        self.counts.snapshot()
    }
}

impl<T: Task> Tracker<T> for ProgressTracker {
    fn build_start(&mut self) {
        let counts = &*self.counts;
        if counts.builds.load(Ordering::Relaxed) > 0 && !counts.building.load(Ordering::Relaxed) {
            // The last build ended (a build that a panic cut short gives no estimate): its count is the estimate.
            counts
                .previous
                .store(counts.checked.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        counts.checked.store(0, Ordering::Relaxed);
        counts.executed.store(0, Ordering::Relaxed);
        Counts::bump(&counts.builds);
        counts.building.store(true, Ordering::Relaxed);
    }
    fn build_end(&mut self) {
        self.counts.building.store(false, Ordering::Relaxed);
    }
    fn require_task_start(&mut self, _task: &T, _stamper: &OutputStamper) {
        Counts::bump(&self.counts.checked);
    }
    fn check_dependency_start(&mut self, dependency: &Dependency<T, T::Output>) {
        if let Dependency::RequireTask(_) = dependency {
            Counts::bump(&self.counts.checked);
        }
    }
    fn execute_start(&mut self, _task: &T) {
        Counts::bump(&self.counts.executed);
    }
}
