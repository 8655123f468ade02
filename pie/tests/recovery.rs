//! Panic recovery: after a panic escapes `Session::require` and is caught, the same `Pie` keeps working, in a new
//! session and in the same one. No stale output is served, the failed task runs again, a repeated violation is
//! reported with the same message, and unrelated tasks build normally.

mod common;

use std::path::PathBuf;

use common::*;
use dev_util::Dir;

/// Files for a task that panics while a flag file exists.
struct Flagged {
    dir: Dir,
    input: PathBuf,
    flag: PathBuf,
    read: TestTask,
    panicky: TestTask,
    upper: TestTask,
}

/// `upper` = upper-case(`panicky`), `panicky` = panic if the flag exists, else `read` the input.
fn flagged() -> Flagged {
    let dir = Dir::new();
    let input = dir.create("in.txt", "first");
    let flag = dir.join("panic.flag");
    let read = read(&input);
    let panicky = panic_if_exists(&flag, read.clone());
    let upper = to_upper(panicky.clone());
    Flagged {
        dir,
        input,
        flag,
        read,
        panicky,
        upper,
    }
}

#[test]
fn task_panic_leaves_the_pie_usable_and_the_failed_task_runs_again() {
    let f = flagged();
    let mut pie = test_pie();
    assert_eq!(pie.require(&f.upper), ok("FIRST"));

    f.dir.write(&f.input, "second");
    f.dir.create(&f.flag, "");
    let message = expect_panic(|| pie.require(&f.upper));
    assert_eq!(message, TASK_PANIC_MESSAGE);

    // Still panicking: the old output ("FIRST") must not be served, in a new session or the same one.
    assert_eq!(expect_panic(|| pie.require(&f.upper)), TASK_PANIC_MESSAGE);
    let mut session = pie.new_session();
    assert_eq!(expect_panic(|| session.require(&f.upper)), TASK_PANIC_MESSAGE);
    assert_eq!(expect_panic(|| session.require(&f.panicky)), TASK_PANIC_MESSAGE);
    drop(session);

    f.dir.remove(&f.flag);
    pie.require_then_assert(&f.upper, |events| {
        assert!(events.one_execute_of(&f.panicky), "the failed task runs again");
        assert!(events.one_execute_of(&f.upper));
        assert!(
            events.one_execute_of(&f.read),
            "its dependency saw the change made before the panic"
        );
    })
    .unwrap();
    assert_eq!(pie.require_then_assert_no_execute(&f.upper), ok("SECOND"));
    pie.check_invariants();
}

#[test]
fn task_panic_then_continuing_in_the_same_session() {
    let f = flagged();
    let mut pie = test_pie();
    f.dir.create(&f.flag, "");
    let mut session = pie.new_session();
    assert_eq!(expect_panic(|| session.require(&f.upper)), TASK_PANIC_MESSAGE);

    // Unrelated work in the same session is fine.
    let unrelated = to_lower(ret("UNRELATED"));
    assert_eq!(session.require(&unrelated), ok("unrelated"));
    // The panicked tasks are not mistaken for a cycle, and they run again once the flag is gone. (The flag is a
    // dependency of the failed execution, which is discarded, so the new state of the file is seen.)
    f.dir.remove(&f.flag);
    assert_eq!(session.require(&f.upper), ok("FIRST"));
    drop(session);
    assert!(pie.events().one_execute_of(&f.panicky));
    assert!(pie.events().one_execute_of(&f.upper));
    assert_eq!(pie.require_then_assert_no_execute(&f.upper), ok("FIRST"));
    pie.check_invariants();
}

#[test]
fn panic_while_checking_does_not_serve_the_dependent_stale_output() {
    let f = flagged();
    let mut pie = test_pie();
    assert_eq!(pie.require(&f.upper), ok("FIRST"));

    // `upper` has an output and is only being checked when its dependency panics.
    f.dir.create(&f.flag, "");
    assert_eq!(expect_panic(|| pie.require(&f.upper)), TASK_PANIC_MESSAGE);
    f.dir.write(&f.input, "second");
    assert_eq!(expect_panic(|| pie.require(&f.upper)), TASK_PANIC_MESSAGE);

    f.dir.remove(&f.flag);
    assert_eq!(pie.require(&f.upper), ok("SECOND"));
    assert!(pie.events().one_execute_of(&f.upper));
    assert_eq!(pie.require_then_assert_no_execute(&f.upper), ok("SECOND"));
}

#[test]
fn panic_of_a_provider_does_not_leave_its_old_file_trusted() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "first");
    let output = dir.join("out.txt");
    let flag = dir.join("panic.flag");
    let write = write(panic_if_exists(&flag, read(&input)), &output);
    let reader = read_after(write.clone(), &output);
    let mut pie = test_pie();
    assert_eq!(pie.require(&reader), ok("first"));

    dir.write(&input, "second");
    dir.create(&flag, "");
    assert_eq!(expect_panic(|| pie.require(&reader)), TASK_PANIC_MESSAGE);
    assert_eq!(expect_panic(|| pie.require(&reader)), TASK_PANIC_MESSAGE);
    dir.remove(&flag);
    assert_eq!(pie.require(&reader), ok("second"));
    assert!(pie.events().one_execute_of(&write));
    assert_eq!(dir.read(&output), "second");
    pie.require_then_assert_no_execute(&reader).unwrap();
    pie.check_invariants();
}

/// Requires `task` (expected to panic) several times: in new sessions and in one session, checking that every
/// message is the first one and is the expected violation, then builds `unrelated` normally.
fn assert_violation_repeats(pie: &mut TestPie, task: &TestTask, prefix: &str, unrelated: &TestTask) {
    let first = expect_panic(|| pie.require(task));
    assert_message(&first, prefix, &[]);
    for _ in 0..2 {
        assert_eq!(
            expect_panic(|| pie.require(task)),
            first,
            "a repeated violation in a new session"
        );
    }
    let mut session = pie.new_session();
    for _ in 0..2 {
        assert_eq!(
            expect_panic(|| session.require(task)),
            first,
            "a repeated violation in the same session"
        );
    }
    drop(session);
    pie.check_invariants();

    let expected = clean_output(unrelated);
    assert_eq!(pie.require(unrelated), expected);
    assert!(pie.events().any_execute_of(unrelated));
    assert_eq!(pie.require_then_assert_no_execute(unrelated), expected);
}

#[test]
fn repeated_overlap_after_a_caught_panic_has_the_same_message() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let sequence = seq([write(ret("one"), &output), write(ret("two"), &output)]);
    let unrelated = write(ret("fine"), dir.join("other.txt"));
    let mut pie = test_pie();
    assert_violation_repeats(&mut pie, &sequence, OVERLAP, &unrelated);
}

#[test]
fn repeated_overlap_across_tasks_after_a_caught_panic_has_the_same_message() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write_1 = write(ret("one"), &output);
    let write_2 = write(ret("two"), &output);
    let unrelated = to_upper(ret("fine"));
    let mut pie = test_pie();
    pie.require(&write_1).unwrap();
    assert_violation_repeats(&mut pie, &write_2, OVERLAP, &unrelated);
    // The refused task wrote the file before providing it; the first provider, still its owner, notices and
    // writes it again.
    assert_eq!(dir.read(&output), "two");
    pie.require_then_assert_one_execute(&write_1).unwrap();
    assert_eq!(dir.read(&output), "one");
    pie.require_then_assert_no_execute(&write_1).unwrap();
}

#[test]
fn repeated_provide_twice_after_a_caught_panic_has_the_same_message() {
    let dir = Dir::new();
    let task = TestTask::ProvideTwice(Box::new(ret("x")), dir.join("out.txt"));
    let mut pie = test_pie();
    assert_violation_repeats(&mut pie, &task, OVERLAP, &ret("fine"));
}

#[test]
fn repeated_hidden_dependency_on_the_require_side_has_the_same_message() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write = write(ret("generated"), &output);
    let read = read(&output);
    let mut pie = test_pie();
    pie.require(&write).unwrap();
    assert_violation_repeats(&mut pie, &read, HIDDEN, &read_after(write.clone(), &output));
}

#[test]
fn repeated_hidden_dependency_on_the_provide_side_has_the_same_message() {
    let dir = Dir::new();
    let file = dir.create("file.txt", "input");
    let read = read(&file);
    let write = write(ret("generated"), &file);
    let mut pie = test_pie();
    pie.require(&read).unwrap();
    assert_violation_repeats(&mut pie, &write, HIDDEN, &to_lower(read.clone()));
}

#[test]
fn repeated_hidden_dependency_within_one_build_has_the_same_message() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let sequence = seq([write(ret("generated"), &output), read(&output)]);
    let mut pie = test_pie();
    assert_violation_repeats(&mut pie, &sequence, HIDDEN, &ret("fine"));
}

#[test]
fn repeated_in_place_edit_has_the_same_message() {
    let dir = Dir::new();
    let file = dir.create("file.txt", "lower");
    let edit = TestTask::EditInPlace(file.clone());
    let mut pie = test_pie();
    assert_violation_repeats(&mut pie, &edit, HIDDEN, &ret("fine"));
}

#[test]
fn repeated_cycle_has_the_same_message() {
    let mut pie = test_pie();
    assert_violation_repeats(&mut pie, &TestTask::RequireSelf, CYCLE, &ret("one"));
    assert_violation_repeats(&mut pie, &TestTask::RequireCycleA, CYCLE, &ret("two"));
    assert_violation_repeats(&mut pie, &TestTask::RequireCycleB, CYCLE, &to_upper(ret("three")));
    assert_violation_repeats(&mut pie, &require(TestTask::RequireCycleA), CYCLE, &ret("four"));
}

#[test]
fn violation_deep_inside_a_graph_leaves_consistent_parts_reusable() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "shared");
    let output = dir.join("out.txt");
    let shared = to_upper(read(&input));
    let good = write(shared.clone(), &output);
    let bad = write(ret("clash"), &output);
    let root = seq([good.clone(), require(bad.clone())]);
    let mut pie = test_pie();
    let message = expect_panic(|| pie.require(&root));
    assert_message(&message, OVERLAP, &[&debug(&good), &debug(&bad)]);

    // What finished before the panic is consistent and is reused; only the file that the refused task clobbered
    // is written again by its provider.
    assert_eq!(pie.require_then_assert_no_execute(&shared), ok("SHARED"));
    assert_eq!(dir.read(&output), "clash");
    pie.require_then_assert_one_execute(&good).unwrap();
    assert_eq!(dir.read(&output), "SHARED");
    // The root never finished: requiring it again runs it again and meets the same violation.
    assert_eq!(expect_panic(|| pie.require(&root)), message);
    pie.check_invariants();
}

// A task that catches the panic of a task it requires (one that collects failures, say).

/// `f.panicky` with its flag created, and a task that catches its panic and then reads `other.txt` ("one").
fn collector_of_failing(f: &Flagged) -> (TestTask, PathBuf) {
    let other = f.dir.create("other.txt", "one");
    f.dir.create(&f.flag, "");
    (
        TestTask::CatchThenRead(Box::new(f.panicky.clone()), other.clone()),
        other,
    )
}

/// After catching the panic, the catching task's later dependencies are its own (not the panicked task's), so an
/// edit of a file it reads afterwards makes it execute again, and it requires the failing task anew (which
/// executes, as a clean build would); once the required task succeeds, the catching task sees its output.
#[test]
fn task_catching_a_required_tasks_panic_keeps_its_own_dependencies() {
    let f = flagged();
    let (collector, other) = collector_of_failing(&f);
    let mut pie = test_pie();
    assert_eq!(pie.require(&collector), ok("caught:one"));
    pie.check_invariants();

    f.dir.write(&other, "two");
    assert_eq!(pie.require(&collector), ok("caught:two"));
    assert_eq!(clean_output(&collector), ok("caught:two"));
    assert!(pie.events().one_execute_of(&collector));
    assert!(pie.events().one_execute_of(&f.panicky), "the failing task runs again");

    f.dir.remove(&f.flag);
    assert_eq!(pie.require(&collector), ok("ok:two"));
    assert!(pie.events().one_execute_of(&f.panicky));
    assert!(pie.events().one_execute_of(&collector));
    pie.require_then_assert_no_execute(&collector).unwrap();
    pie.check_invariants();
}

/// Within one session, a task that catches a panic can require the same failing task again: it executes again (it
/// has no output) instead of being mistaken for a cycle or a finished task.
#[test]
fn failing_task_required_twice_by_a_catching_task_runs_again() {
    let f = flagged();
    f.dir.create(&f.flag, "");
    let first = TestTask::CatchThenRead(Box::new(f.panicky.clone()), f.input.clone());
    let root = seq([first.clone(), to_lower(f.panicky.clone())]);
    let mut pie = test_pie();
    let message = expect_panic(|| pie.require(&root));
    assert_eq!(message, TASK_PANIC_MESSAGE);
    assert_eq!(
        pie.executed().iter().filter(|t| **t == f.panicky).count(),
        2,
        "the failing task executed once for each require"
    );
}

/// A task that caught the panic of a task it requires stays consistent while that task would panic again (nothing
/// it depended on before panicking changed): a new session executes nothing, as a clean build would give the same
/// result. The failure is recorded with the store, so this holds across save and load too (see `tests/dynamic.rs`).
#[test]
fn task_catching_a_repeating_panic_stays_consistent() {
    let f = flagged();
    let (collector, _) = collector_of_failing(&f);
    let mut pie = test_pie();
    assert_eq!(pie.require(&collector), ok("caught:one"));
    assert_eq!(pie.require_then_assert_no_execute(&collector), ok("caught:one"));
    assert_eq!(pie.require_then_assert_no_execute(&collector), ok("caught:one"));
    pie.check_invariants();

    // Requiring the failing task itself executes it: its panic must reach the caller.
    assert_eq!(expect_panic(|| pie.require(&f.panicky)), TASK_PANIC_MESSAGE);
    assert!(pie.events().one_execute_of(&f.panicky));
    // It failed again (a new failure the catching task did not see): the catching task executes once more.
    assert_eq!(pie.require(&collector), ok("caught:one"));
    assert!(pie.events().one_execute_of(&collector));
    assert_eq!(pie.require_then_assert_no_execute(&collector), ok("caught:one"));
}

/// A task that only gets checked meets the panic of a required task that now fails: a clean build would execute
/// it and let it catch the panic, so it executes, and meets the panic (with its original payload) where it
/// requires the failing task, which executes only once.
#[test]
fn panic_met_while_checking_reaches_the_task_that_catches_it() {
    let f = flagged();
    let other = f.dir.create("other.txt", "one");
    let collector = TestTask::CatchThenRead(Box::new(f.panicky.clone()), other.clone());
    let mut pie = test_pie();
    assert_eq!(pie.require(&collector), ok("ok:one"));

    f.dir.create(&f.flag, "");
    assert_eq!(
        pie.require_then_assert_executed(&collector, &[&f.panicky, &collector]),
        ok("caught:one")
    );
    assert_eq!(clean_output(&collector), ok("caught:one"));
    assert_eq!(pie.require_then_assert_no_execute(&collector), ok("caught:one"));
    pie.check_invariants();
}

/// A panic below a chain of tasks that are only checked meets every task of the chain, as in a clean build: each
/// executes once (from the bottom up, as the check unwinds) and the caller gets the task's own panic message.
#[test]
fn panic_below_a_checked_chain_executes_each_task_once() {
    let f = flagged();
    let chain: Vec<TestTask> = std::iter::successors(Some(f.panicky.clone()), |t| Some(to_upper(t.clone())))
        .take(101)
        .collect();
    let top = chain.last().unwrap().clone();
    let mut pie = test_pie();
    assert_eq!(pie.require(&top), ok("FIRST"));

    f.dir.create(&f.flag, "");
    assert_eq!(expect_panic(|| pie.require(&top)), TASK_PANIC_MESSAGE);
    assert_eq!(
        pie.executed(),
        chain,
        "each task of the chain executed once, the failing one first"
    );
    pie.check_invariants();
    f.dir.remove(&f.flag);
    assert_eq!(pie.require(&top), ok("FIRST"));
}

/// A panic that comes from a soundness violation depends on other tasks, so it is not assumed to repeat: the task
/// that caught the overlap executes again in each session (with the same result while the overlap stays), and
/// after the other provider of the file stops providing it, the task that failed succeeds, as in a clean build.
#[test]
fn caught_violation_is_checked_again_when_the_other_task_changes() {
    let dir = Dir::new();
    let config = dir.create("config.txt", "on");
    let other = dir.create("other.txt", "one");
    let out = dir.join("out.txt");
    let first = TestTask::WriteIfOn(config.clone(), "a", out.clone());
    let second = write(ret("b"), &out);
    let collector = TestTask::CatchThenRead(Box::new(second.clone()), other);
    let root = seq([first.clone(), collector.clone()]);
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    assert_eq!(
        pie.require_then_assert_executed(&collector, &[&collector, &second]),
        ok("caught:one")
    );

    dir.write(&config, "off");
    pie.require(&root).unwrap();
    assert!(pie.events().one_execute_of(&collector));
    assert!(pie.events().one_execute_of(&second));
    assert_eq!(pie.require(&collector), ok("ok:one"));
    assert_eq!(dir.read(&out), "b");
    pie.check_invariants();
}

/// A task that requires a failing task with the `Inconsequential` stamper, not required while that task failed,
/// stays consistent once the task succeeds again, whichever root is checked first: the failed task executes first
/// while it is checked (found by the static oracle, where the roots were checked in the other order).
#[test]
fn inconsequential_requirer_of_a_task_that_recovered_stays_consistent() {
    let f = flagged();
    let requirer = TestTask::RequireInconsequential(Box::new(f.panicky.clone()));
    let mut pie = test_pie();
    pie.new_session().require_all(&[requirer.clone(), f.panicky.clone()]);

    f.dir.create(&f.flag, "");
    assert_eq!(expect_panic(|| pie.require(&f.panicky)), TASK_PANIC_MESSAGE);
    f.dir.remove(&f.flag);
    assert_eq!(
        pie.require_then_assert_executed(&requirer, &[&f.panicky]),
        Ok(TestOutput::Unit)
    );
}
