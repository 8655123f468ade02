//! The progress tracker with real builds: counts of checked and executed tasks per build, the previous build's
//! count as an estimate, on one thread and on two (`require_tasks`), read from another thread while builds run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pie::tracker::progress::{Progress, ProgressTracker};
use pie::{Context, Pie, Task};

/// `Fan(n, v)` requires `Leaf(0, v)..Leaf(n, v)` with one `require_tasks`; a leaf sleeps a little and returns its
/// number.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Fan {
    Fan(u32, u32),
    Leaf(u32, u32),
}

impl Task for Fan {
    type Output = u64;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> u64 {
        match self {
            Fan::Fan(n, version) => {
                let leaves: Vec<Fan> = (0..*n).map(|i| Fan::Leaf(i, *version)).collect();
                context.require_tasks(&leaves).iter().sum()
            }
            Fan::Leaf(i, _) => {
                thread::sleep(Duration::from_millis(1));
                u64::from(*i)
            }
        }
    }
}

fn counts(progress: Progress) -> (u64, u64, Option<u64>) {
    (progress.checked, progress.executed, progress.previous_checked)
}

fn builds_are_counted(threads: usize) {
    let mut pie = Pie::with_tracker(ProgressTracker::new());
    pie.set_threads(threads);
    let handle = pie.tracker().handle();
    assert_eq!(counts(handle.snapshot()), (0, 0, None));
    assert_eq!(pie.tracker().remaining(), None);

    // First build: the root and its 10 leaves are required and executed; nothing to estimate from.
    assert_eq!(pie.new_session().require(&Fan::Fan(10, 0)), 45);
    let first = handle.snapshot();
    assert_eq!(counts(first), (11, 11, None));
    assert!(!first.building);
    assert_eq!(first.builds, 1);

    // No change: the root is required, and each leaf checked through it; nothing executes. The first build's 11
    // are the estimate, and it is met.
    pie.new_session().require(&Fan::Fan(10, 0));
    let second = handle.snapshot();
    assert_eq!(counts(second), (11, 0, Some(11)));
    assert_eq!(second.remaining(), Some(0));
    assert_eq!(second.fraction(), Some(1.0));

    // A new root with 20 new leaves: everything executes; the estimate is the no-op build's.
    pie.new_session().require(&Fan::Fan(20, 1));
    assert_eq!(counts(handle.snapshot()), (21, 21, Some(11)));
    assert_eq!(handle.snapshot().builds, 3);

    // Two builds in one session each count on their own.
    let mut session = pie.new_session();
    session.require(&Fan::Fan(20, 1));
    drop(session);
    assert_eq!(counts(pie.tracker().snapshot()), (21, 0, Some(21)));
}

#[test]
fn progress_counts_a_build_on_one_thread() {
    builds_are_counted(1);
}

#[test]
fn progress_counts_a_build_on_two_threads() {
    builds_are_counted(2);
}

#[test]
fn progress_is_read_from_another_thread_while_the_build_runs() {
    let mut pie = Pie::with_tracker(ProgressTracker::new());
    pie.set_threads(2);
    let handle = pie.tracker().handle();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::Acquire) {
                seen.push(handle.snapshot());
                thread::sleep(Duration::from_micros(200));
            }
            seen.push(handle.snapshot());
            seen
        })
    };
    pie.new_session().require(&Fan::Fan(200, 0));
    done.store(true, Ordering::Release);
    let seen = reader.join().unwrap();
    // Counts only grow within the build, never beyond its total, and the last reading is the total.
    for pair in seen.windows(2) {
        assert!(pair[0].checked <= pair[1].checked, "{pair:?}");
        assert!(pair[0].executed <= pair[1].executed, "{pair:?}");
    }
    assert!(seen.iter().all(|p| p.checked <= 201 && p.executed <= 201));
    assert_eq!(counts(*seen.last().unwrap()), (201, 201, None));
    // 200 leaves sleeping 1 ms each on two threads take about 100 ms: the reader saw the build in progress.
    assert!(
        seen.iter().any(|p| p.building && p.checked > 1 && p.checked < 201),
        "no reading during the build"
    );
}
