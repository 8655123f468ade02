//! Deep graphs: a chain of 100,000 tasks, each requiring the next, builds and rebuilds on an ordinary 2 MiB thread.

mod common;

use std::thread;

use common::*;
use dev_util::Dir;
use pie::tracker::Tracker;
use pie::{Pie, Task};

const LENGTH: u32 = 100_000;
const STACK_SIZE: usize = 2 * 1024 * 1024;

/// Counts executions; an event log of 100,000 tasks would only slow the test down.
#[derive(Default)]
struct CountExecutions(usize);

impl<T: Task> Tracker<T> for CountExecutions {
    fn execute_start(&mut self, _task: &T) {
        self.0 += 1;
    }
    fn build_start(&mut self) {
        self.0 = 0;
    }
}

/// Runs `f` on a new thread with a 2 MiB stack, propagating its panic.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let handle = thread::Builder::new().stack_size(STACK_SIZE).spawn(f).unwrap();
    if let Err(payload) = handle.join() {
        std::panic::resume_unwind(payload);
    }
}

#[test]
fn chain_of_100_000_tasks_builds_and_rebuilds_on_a_2_mib_thread() {
    on_small_stack(|| {
        let dir = Dir::new();
        let path = dir.create("bottom.txt", "bottom");
        let top = chain(LENGTH, read(&path));
        let all = LENGTH as usize + 1;
        let mut pie = Pie::with_tracker(CountExecutions::default());

        assert_eq!(pie.new_session().require(&top), ok("bottom"));
        assert_eq!(pie.tracker().0, all, "first build executes every link and the reader");
        assert_eq!(pie.task_count(), all);

        assert_eq!(pie.new_session().require(&top), ok("bottom"));
        assert_eq!(pie.tracker().0, 0, "nothing changed, nothing executes");

        dir.write(&path, "changed");
        assert_eq!(pie.new_session().require(&top), ok("changed"));
        assert_eq!(pie.tracker().0, all, "the change propagates through every link");

        // Same output at the bottom: early cutoff right above it.
        dir.write(&path, "changed");
        assert_eq!(pie.new_session().require(&top), ok("changed"));
        assert_eq!(pie.tracker().0, 1, "only the reader executes");

        // Requiring a link in the middle checks only the half below it.
        let middle = TestTask::Chain(LENGTH / 2, LENGTH, Box::new(read(&path)));
        assert_eq!(pie.new_session().require(&middle), ok("changed"));
        assert_eq!(pie.tracker().0, 0);
        pie.check_invariants();
    });
}

#[test]
fn panic_at_the_bottom_of_a_deep_chain_unwinds_and_recovers() {
    on_small_stack(|| {
        const DEPTH: u32 = 20_000;
        let dir = Dir::new();
        let path = dir.create("bottom.txt", "bottom");
        let flag = dir.join("panic.flag");
        let bottom = panic_if_exists(&flag, read(&path));
        let top = chain(DEPTH, bottom.clone());
        let mut pie = test_pie();
        assert_eq!(pie.require(&top), ok("bottom"));

        dir.write(&path, "changed");
        dir.create(&flag, "");
        assert_eq!(expect_panic(|| pie.require(&top)), TASK_PANIC_MESSAGE);
        // The same session and a new one: the whole chain was being checked, none of it may serve "bottom".
        let mut session = pie.new_session();
        assert_eq!(expect_panic(|| session.require(&top)), TASK_PANIC_MESSAGE);
        drop(session);

        dir.remove(&flag);
        assert_eq!(pie.require(&top), ok("changed"));
        // Every link, the panicking task, and the reader below it.
        assert_eq!(pie.executed().len(), DEPTH as usize + 2);
        assert!(pie.events().one_execute_of(&bottom));
        assert_eq!(pie.require_then_assert_no_execute(&top), ok("changed"));
        pie.check_invariants();
    });
}

#[test]
fn cycle_at_the_bottom_of_a_deep_chain_is_reported() {
    on_small_stack(|| {
        const DEPTH: u32 = 20_000;
        let top = chain(DEPTH, TestTask::RequireCycleA);
        let mut pie = test_pie();
        let message = expect_panic(|| pie.require(&top));
        assert_message(&message, CYCLE, &["RequireCycleA", "RequireCycleB"]);
        assert_eq!(expect_panic(|| pie.require(&top)), message);
    });
}
