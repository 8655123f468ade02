//! Bottom-up builds (`Session::update_affected_by`): only what the changed files affect executes, in dependency
//! order, with early cutoff; everything else is neither executed nor re-checked; results and soundness verdicts
//! are those of a top-down build.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;
use dev_util::Dir;
use pie::dependency::Dependency;
use pie::stamp::FileStamper;
use pie::tracker::event::EventTracker;
use pie::tracker::{CompositeTracker, Tracker};
use pie::Pie;

/// Counts the file dependencies that were re-checked (each one is a stamp of the file).
#[derive(Clone, Default)]
struct FileChecks(Arc<Mutex<Vec<PathBuf>>>);

impl FileChecks {
    fn take(&self) -> Vec<PathBuf> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Tracker<TestTask> for FileChecks {
    fn check_dependency_start(&mut self, dependency: &Dependency<TestTask, TestResult>) {
        if let Dependency::RequireFile(file) | Dependency::ProvideFile(file) = dependency {
            self.0.lock().unwrap().push(file.path().to_path_buf());
        }
    }
}

type CountingPie = Pie<TestTask, TestResult, CompositeTracker<EventTracker<TestTask, TestResult>, FileChecks>>;

fn counting_pie() -> (CountingPie, FileChecks) {
    let checks = FileChecks::default();
    (
        Pie::with_tracker(CompositeTracker(EventTracker::default(), checks.clone())),
        checks,
    )
}

fn executed(pie: &CountingPie) -> Vec<TestTask> {
    pie.tracker().0.executed_tasks().into_iter().cloned().collect()
}

/// Runs `update_affected_by(changed)` in a new session and returns what executed.
fn update(pie: &mut TestPie, changed: &[&Path]) -> Vec<TestTask> {
    pie.new_session().update_affected_by(changed.iter().copied());
    pie.executed()
}

/// Brings `root` up to date after `changed` changed, bottom-up ([`update`]) or top-down (`require`), and returns
/// what executed.
fn rebuild(pie: &mut TestPie, bottom_up: bool, changed: &[&Path], root: &TestTask) -> Vec<TestTask> {
    if bottom_up {
        update(pie, changed)
    } else {
        pie.require(root).unwrap();
        pie.executed()
    }
}

/// Two inputs `a` = "a" and `b` = "b", their readers, and a `Pie` in which both readers are roots:
/// `(dir, [a, b], [read_a, read_b], pie)`.
fn two_readers() -> (Dir, [PathBuf; 2], [TestTask; 2], TestPie) {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let b = dir.create("b", "b");
    let (read_a, read_b) = (read(&a), read(&b));
    let mut pie = test_pie();
    pie.new_session().require_all(&[read_a.clone(), read_b.clone()]);
    (dir, [a, b], [read_a, read_b], pie)
}

/// An input `a` = "a", its reader, and a root that requires the reader while the input `config` says `on` (it
/// does): `(a, config, reader, root)`.
fn reader_behind_config(dir: &Dir) -> (PathBuf, PathBuf, TestTask, TestTask) {
    let a = dir.create("a", "a");
    let config = dir.create("config", "on");
    let reader = read(&a);
    let root = TestTask::RequireIfOn(config.clone(), Box::new(reader.clone()));
    (a, config, reader, root)
}

/// [`reader_behind_config`] after a build and an edit of `a` (to "A") rebuilt bottom-up, which found the reader
/// live by walking up to the root: `(dir, a, config, root, pie)`.
fn reader_found_live() -> (Dir, PathBuf, PathBuf, TestTask, TestPie) {
    let dir = Dir::new();
    let (a, config, reader, root) = reader_behind_config(&dir);
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    dir.write(&a, "A");
    assert_eq!(update(&mut pie, &[&a]), vec![reader, root.clone()]);
    (dir, a, config, root, pie)
}

/// Creates `flag` and reports it changed: the task that panics while the flag exists panics out of
/// `update_affected_by`, leaving the store unsettled. Then removes the flag again.
fn panic_out_of_an_update(pie: &mut TestPie, dir: &Dir, flag: &Path) {
    dir.create(flag, "");
    assert_eq!(
        expect_panic(|| pie.new_session().update_affected_by([flag])),
        TASK_PANIC_MESSAGE
    );
    dir.remove(flag);
}

#[test]
fn nothing_changed_executes_and_checks_nothing() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let task = to_upper(read(&a));
    let (mut pie, checks) = counting_pie();
    pie.new_session().require(&task).unwrap();
    checks.take();
    pie.new_session().update_affected_by(std::iter::empty::<&str>());
    assert!(executed(&pie).is_empty());
    pie.new_session().update_affected_by([dir.join("unrelated")]);
    assert!(executed(&pie).is_empty());
    assert!(checks.take().is_empty(), "no file is stamped");
}

#[test]
fn directly_and_transitively_affected_tasks_execute_in_dependency_order() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let b = dir.create("b", "b");
    let upper_a = to_upper(read(&a));
    let root = seq([upper_a.clone(), to_upper(read(&b))]);
    let (mut pie, checks) = counting_pie();
    pie.new_session().require(&root).unwrap();
    checks.take();

    dir.write(&a, "changed");
    pie.new_session().update_affected_by([&a]);
    assert_eq!(executed(&pie), vec![read(&a), upper_a.clone(), root.clone()]);
    let stamped = checks.take();
    assert!(
        !stamped.is_empty() && stamped.iter().all(|p| *p == a),
        "only the changed file is stamped: {stamped:?}"
    );
    let mut session = pie.new_session();
    assert_eq!(session.require(&upper_a), ok("CHANGED"));
    drop(session);
    // A top-down session afterwards finds nothing to do.
    pie.new_session().require(&root).unwrap();
    assert!(executed(&pie).is_empty());
}

#[test]
fn early_cutoff_stops_propagation() {
    let dir = Dir::new();
    let a = dir.create("a", "abc");
    let upper = to_upper(read(&a));
    let lower = to_lower(upper.clone());
    let mut pie = test_pie();
    pie.require(&lower).unwrap();
    dir.write(&a, "ABC");
    assert_eq!(update(&mut pie, &[&a]), vec![read(&a), upper]);
}

#[test]
fn several_changes_at_once() {
    let dir = Dir::new();
    let [a, b, c] = ["a", "b", "c"].map(|name| dir.create(name, "x"));
    let root = seq([read(&a), read(&b), read(&c)]);
    let (mut pie, mut top_down) = (test_pie(), test_pie());
    pie.require(&root).unwrap();
    top_down.require(&root).unwrap();
    dir.write(&a, "1");
    dir.write(&c, "3");
    let executed = update(&mut pie, &[&c, &a, &a]);
    // `read(a)` first; its output changed, so the root executes and requires `read(c)`, scheduled, which executes
    // then: the order of a top-down build.
    assert_eq!(executed, vec![read(&a), root.clone(), read(&c)]);
    top_down.require(&root).unwrap();
    assert_eq!(executed, top_down.executed());
    let mut session = pie.new_session();
    assert_eq!(session.require(&read(&a)), ok("1"));
    assert_eq!(session.require(&read(&c)), ok("3"));
}

#[test]
fn a_provided_file_changed_by_someone_else_makes_its_provider_execute() {
    let dir = Dir::new();
    let out = dir.join("out");
    let writer = write(ret("generated"), &out);
    let mut pie = test_pie();
    pie.require(&writer).unwrap();
    dir.write(&out, "tampered");
    assert_eq!(update(&mut pie, &[&out]), vec![writer.clone()]);
    assert_eq!(dir.read(&out), "generated");
    pie.require_then_assert_no_execute(&writer).unwrap();
}

#[test]
fn a_file_written_by_an_executed_task_schedules_its_changed_readers() {
    let dir = Dir::new();
    let input = dir.create("in", "one");
    let out = dir.join("out");
    let writer = write(read(&input), &out);
    let reader = read_after(writer.clone(), &out);
    let mut pie = test_pie();
    assert_eq!(pie.require(&reader), ok("one"));
    dir.write(&input, "two");
    // The writer's output (Unit) does not change; the reader runs again because the file it reads changed.
    assert_eq!(update(&mut pie, &[&input]), vec![read(&input), writer, reader.clone()]);
    assert_eq!(pie.require(&reader), ok("two"));
}

#[test]
fn a_task_requiring_a_scheduled_task_gets_it_up_to_date_first() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let b = dir.create("b", "b");
    // The root reads `b` first, then requires the reader of `a`: both are scheduled; the reader of `a` is needed
    // only through the scheduled root, so it executes when the root requires it.
    let inner = read(&a);
    let root = TestTask::ReadThenRequire(b.clone(), FileStamper::Modified, Box::new(inner.clone()));
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    dir.write(&a, "A");
    dir.write(&b, "B");
    assert_eq!(update(&mut pie, &[&a, &b]), vec![root.clone(), inner.clone()]);
    let mut top_down = test_pie();
    top_down.require(&root).unwrap();
    assert_eq!(pie.require(&root), top_down.require(&root));
}

#[test]
fn a_new_task_executes_as_in_top_down() {
    let dir = Dir::new();
    let config = dir.create("config", "off");
    let new = to_upper(ret("new"));
    let root = TestTask::RequireIfOn(config.clone(), Box::new(new.clone()));
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    dir.write(&config, "on");
    assert_eq!(
        update(&mut pie, &[&config]),
        vec![root.clone(), new.clone(), ret("new")]
    );
    pie.require_then_assert_no_execute(&root).unwrap();
}

#[test]
fn dead_tasks_are_never_executed() {
    let (dir, [a, b], [read_a, read_b], mut pie) = two_readers();
    pie.unobserve(&read_a);
    dir.write(&a, "A");
    dir.write(&b, "B");
    assert_eq!(update(&mut pie, &[&a, &b]), vec![read_b]);
    // Observed again, the dead task is checked top-down: its change was never propagated to it.
    assert_eq!(pie.require(&read_a), ok("A"));
}

#[test]
fn a_hidden_dependency_left_by_a_dropped_require_is_refused() {
    let dir = Dir::new();
    let config = dir.create("config", "on");
    let out = dir.join("out");
    let writer = write(ret("x"), &out);
    let middle = TestTask::RequireIfOn(config.clone(), Box::new(writer.clone()));
    let reader = TestTask::ReadAfter(Box::new(middle), out.clone(), FileStamper::Hash);
    let root = seq([reader.clone(), writer.clone()]);
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    dir.write(&config, "off");
    let message = expect_panic(|| pie.new_session().update_affected_by([&config]));
    assert_message(&message, HIDDEN, &[&debug(&reader), &debug(&writer)]);
}

#[test]
fn an_overlap_made_by_a_re_executed_task_is_refused() {
    let dir = Dir::new();
    let name = dir.create("name", "one");
    let one = dir.create("one", "1");
    let two = dir.join("two");
    // The second writer copies `name`'s contents to the file it names: after the edit, `one`, which the first
    // writer provides.
    let first = write(ret("first"), &one);
    let second = TestTask::CopyUpper(name.clone(), two.clone());
    let mut pie = test_pie();
    pie.require(&seq([first.clone(), second.clone()])).unwrap();
    // Make the second task provide `one` as well: swap it for a writer of `one` whose input changes.
    let rival = write(read(&name), &one);
    let message = expect_panic(|| pie.require(&seq([first.clone(), rival.clone()])));
    assert_message(&message, OVERLAP, &[&debug(&first), &debug(&rival)]);
    // Bottom-up: the rival, now observed, re-executes when its input changes and is refused again.
    dir.write(&name, "changed");
    let message = expect_panic(|| pie.new_session().update_affected_by([&name]));
    assert_message(&message, OVERLAP, &[&debug(&first), &debug(&rival)]);
}

#[test]
fn after_a_panic_the_next_bottom_up_build_checks_everything_top_down() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let flag = dir.join("flag");
    let reader = read(&a);
    let panicky = panic_if_exists(&flag, ret("p"));
    let mut pie = test_pie();
    pie.new_session().require_all(&[reader.clone(), panicky.clone()]);
    panic_out_of_an_update(&mut pie, &dir, &flag);
    // `a` changed but is not reported: the panicked session left the store unsettled, so the next bottom-up
    // build checks every root top-down and finds it.
    dir.write(&a, "A");
    let executed = update(&mut pie, &[&flag]);
    assert!(
        executed.contains(&reader) && executed.contains(&panicky),
        "{executed:?}"
    );
    // Settled again: an unreported change is now the caller's broken promise, and bottom-up trusts it.
    dir.write(&a, "again");
    assert!(update(&mut pie, &[] as &[&Path]).is_empty());
}

#[test]
fn a_top_down_session_that_checked_only_some_roots_is_completed_by_the_next_bottom_up_build() {
    let (dir, [_, b], [read_a, read_b], mut pie) = two_readers();
    dir.write(&b, "B");
    pie.require(&read_a).unwrap(); // a top-down session that never looked at `read_b`
    assert_eq!(update(&mut pie, &[] as &[&Path]), vec![read_b]);
}

#[test]
fn a_task_revived_after_being_dead_sees_the_changes_made_while_it_was_dead() {
    let (dir, [a, _], [read_a, _], mut pie) = two_readers();
    pie.unobserve(&read_a);
    dir.write(&a, "changed while dead");
    assert!(update(&mut pie, &[&a]).is_empty(), "a dead task is not executed");
    // Required again in a bottom-up session: it was dead when the session started, so it is checked.
    let mut session = pie.new_session();
    session.update_affected_by(std::iter::empty::<&str>());
    assert_eq!(session.require(&read_a), ok("changed while dead"));
}

#[test]
fn the_top_down_fallback_after_a_panic_checks_below_re_executed_tasks() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let b = dir.create("b", "b");
    let flag = dir.join("flag");
    let middle = to_upper(read(&a));
    let root = TestTask::ReadThenRequire(b.clone(), FileStamper::Modified, Box::new(middle.clone()));
    let panicky = panic_if_exists(&flag, ret("p"));
    let mut pie = test_pie();
    pie.new_session().require_all(&[root.clone(), panicky.clone()]);
    panic_out_of_an_update(&mut pie, &dir, &flag);
    // Unreported changes below and at the root: the fallback re-executes the root, which requires `middle`; that
    // require must check `middle` top-down rather than trust it.
    dir.write(&a, "new");
    dir.write(&b, "B");
    pie.new_session().update_affected_by([&flag]);
    let mut session = pie.new_session();
    session.update_affected_by(std::iter::empty::<&str>());
    assert_eq!(session.require(&middle), ok("NEW"));
}
/// Found by the oracle (`pie/tests/oracle.rs`): a dead task whose input changed is scheduled by
/// `update_affected_by` but never executed (no root needs it); it must still count as dead, so a new task may take
/// over the file it provided, as in a top-down session.
#[test]
fn a_dead_task_scheduled_by_a_change_makes_no_claims() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let out = dir.join("out");
    // The old task reads `a` itself, so the change schedules it.
    let old = TestTask::CopyUpper(a.clone(), out.clone());
    let new = write(ret("new"), &out);
    let mut pie = test_pie();
    pie.require(&old).unwrap();
    pie.retain_roots(|_| false);
    dir.write(&a, "A");
    let mut session = pie.new_session();
    session.update_affected_by([&a]);
    assert_eq!(session.require(&new), Ok(TestOutput::Unit));
    drop(session);
    assert!(!pie.executed().contains(&old), "the dead task never executes");
    assert_eq!(dir.read(&out), "new");
}

/// The same as a reader: a dead reader of a file, scheduled by a change to that file but never executed, is no
/// hidden dependency of a new task that provides the file.
#[test]
fn a_dead_reader_scheduled_by_a_change_is_no_hidden_dependency() {
    let dir = Dir::new();
    let out = dir.create("out", "hand-written");
    let reader = read(&out);
    let writer = write(ret("generated"), &out);
    let mut pie = test_pie();
    pie.require(&reader).unwrap();
    pie.retain_roots(|_| false);
    dir.write(&out, "edited by hand");
    let mut session = pie.new_session();
    session.update_affected_by([&out]);
    assert_eq!(session.require(&writer), Ok(TestOutput::Unit));
    drop(session);
    assert_eq!(dir.read(&out), "generated");
}

/// Found by the oracle: a scheduled task that is not needed yet (reachable only through a scheduled task) waits;
/// when that task executes and requires it again through a task that is not scheduled, it must still execute
/// first, so that the task in between does not return an output computed from the old file.
#[test]
fn a_waiting_task_required_through_an_unscheduled_task_executes_first() {
    let dir = Dir::new();
    let input = dir.create("in", "b");
    let out = dir.join("out");
    let reader = read(&input);
    let middle = require(reader.clone());
    // Reads `in` itself, then requires the middle task: both it and `reader` are scheduled by a change to `in`.
    let top = TestTask::ReadThenRequire(input.clone(), FileStamper::Hash, Box::new(middle.clone()));
    let root = write(top, &out);
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    dir.write(&input, "a");
    let mut session = pie.new_session();
    session.update_affected_by([&input]);
    assert_eq!(session.require(&middle), ok("a"));
    drop(session);
    pie.require_then_assert_no_execute(&middle).unwrap();
}

/// Found by the oracle: a task that was dead when the session started (its dependent dropped it while a change to
/// its input was pending) missed that change; required after `update_affected_by`, it must be checked top-down,
/// not trusted because requiring it has just made it a root.
#[test]
fn a_task_dead_when_the_session_started_is_checked_when_required_after_an_update() {
    let dir = Dir::new();
    let (a, config, reader, root) = reader_behind_config(&dir);
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    // Both change: the reader waits for the root, which then drops it, so the reader never sees `A`.
    dir.write(&config, "off");
    dir.write(&a, "A");
    assert_eq!(update(&mut pie, &[&config, &a]), vec![root.clone()]);
    let mut session = pie.new_session();
    session.update_affected_by(std::iter::empty::<&Path>());
    assert_eq!(session.require(&reader), ok("A"));
}

/// Found by the oracle: after a task's panic escaped `update_affected_by`, a `require` in the same session of a
/// root that requires the failed task must fail again (as it does in a top-down session that goes on after a
/// caught panic, and in a new session), not return the root's old output.
#[test]
fn a_require_after_a_panicked_update_in_the_same_session_does_not_serve_an_old_output() {
    let dir = Dir::new();
    let flag = dir.join("flag");
    let failing = panic_if_exists(&flag, ret("x"));
    let root = TestTask::RequireInconsequential(Box::new(failing.clone()));
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    dir.create(&flag, "");
    let mut session = pie.new_session();
    assert_eq!(expect_panic(|| session.update_affected_by([&flag])), TASK_PANIC_MESSAGE);
    assert_eq!(expect_panic(|| session.require(&root)), TASK_PANIC_MESSAGE);
}

/// Found by the oracle: on an unsettled store (a panic escaped the last session), `update_affected_by` checks every
/// root top-down; a root without output executes first and requires another root that has not been checked yet,
/// which must then be checked (its file changed), not returned as it was.
#[test]
fn an_unsettled_store_checks_a_root_that_an_executing_root_requires() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let flag = dir.join("flag");
    let reader = read(&a);
    let root = panic_if_exists(&flag, reader.clone());
    let mut pie = test_pie();
    pie.new_session().require_all(&[root.clone(), reader.clone()]);
    dir.create(&flag, "");
    assert_eq!(expect_panic(|| pie.require(&root)), TASK_PANIC_MESSAGE);
    dir.remove(&flag);
    dir.write(&a, "A");
    let mut session = pie.new_session();
    session.update_affected_by([&flag, &a]);
    assert_eq!(session.require(&root), ok("A"));
    assert_eq!(session.require(&reader), ok("A"));
}

/// Found by the oracle: a provided file changed by someone else makes its provider execute, which restores it. A
/// reader that requires the provider before reading the file (`Hash` stamper) reads what it read before: top-down,
/// checking the reader's dependencies in order restores the file before comparing its stamp, and the reader does
/// not execute. Bottom-up should execute exactly the same tasks.
#[test]
fn a_reader_of_a_provided_file_restored_by_its_provider_does_not_execute() {
    let build = |bottom_up: bool| {
        let dir = Dir::new();
        let out = dir.join("out");
        let writer = write(ret("generated"), &out);
        let reader = TestTask::ReadAfter(Box::new(writer.clone()), out.clone(), FileStamper::Hash);
        let mut pie = test_pie();
        pie.require(&reader).unwrap();
        dir.write(&out, "tampered");
        let executed = rebuild(&mut pie, bottom_up, &[&out], &reader);
        assert_eq!(dir.read(&out), "generated");
        (executed, writer)
    };
    let (top_down, writer) = build(false);
    assert_eq!(top_down, vec![writer]);
    let (bottom_up, writer) = build(true);
    assert_eq!(bottom_up, vec![writer]);
}

/// Found by the oracle: on an unsettled store (the last session checked only some roots), `update_affected_by`
/// checks every root top-down; a task that was live only through a root that now drops it was never checked, and
/// requiring it afterwards in the same session must check it, not trust it.
#[test]
fn on_an_unsettled_store_a_task_dropped_by_the_update_is_checked_when_required() {
    let dir = Dir::new();
    let (a, config, reader, root) = reader_behind_config(&dir);
    let other = ret("other");
    let mut pie = test_pie();
    pie.new_session().require_all(&[root.clone(), other.clone()]);
    pie.require(&other).unwrap(); // checks one root of two: the store is unsettled
    dir.write(&config, "off");
    dir.write(&a, "A");
    let mut session = pie.new_session();
    session.update_affected_by([&config, &a]);
    assert_eq!(session.require(&reader), ok("A"));
}

/// The one principled way in which a bottom-up build executes more than a top-down one (see `bottom_up_executed_more`
/// in `oracle.rs`). `x` and `j` change; `d` requires `j` and, while `j` says `on`, `x`. Bottom-up, `x` comes first in
/// the topological order (it was created before `j`) and is needed through `d`, which is not scheduled yet, so it
/// executes; its new output schedules `d`, which requires `j` (now `off`) and drops `x`. Top-down, `d` checks `j`
/// first, executes, drops `x`, and never gets to it. Results are the same, and `x` is dead afterwards.
#[test]
fn a_task_dropped_later_in_the_build_by_its_dependent_may_execute_bottom_up_only() {
    let build = |bottom_up: bool| {
        let dir = Dir::new();
        let x_in = dir.create("x", "x");
        let j_in = dir.create("j", "on");
        let (x, j) = (read(&x_in), read(&j_in));
        let d = TestTask::RequireIfOutputOn(Box::new(j.clone()), Box::new(x.clone()));
        // A first root makes `x` older than `j` in the topological order; then it goes.
        let e = require(x.clone());
        let mut pie = test_pie();
        pie.new_session().require_all(&[e.clone(), d.clone()]);
        pie.unobserve(&e);
        dir.write(&x_in, "X");
        dir.write(&j_in, "off");
        let executed = rebuild(&mut pie, bottom_up, &[&x_in, &j_in], &d);
        pie.require_then_assert_no_execute(&d).unwrap();
        (executed, x, j, d)
    };
    let (top_down, _, j, d) = build(false);
    assert_eq!(top_down, vec![j, d]);
    let (mut bottom_up, x, j, d) = build(true);
    bottom_up.sort_by_key(|t| format!("{t:?}"));
    let mut expected = vec![x, j, d];
    expected.sort_by_key(|t| format!("{t:?}"));
    assert_eq!(bottom_up, expected, "top-down's tasks, and `x`");
}

/// Found by the oracle: after a session that checked only some roots (an unsettled store, so `update_affected_by`
/// schedules nothing and checks the roots top-down), a task that was dead when the session started is required,
/// checked and executes. What it requires again, as in its previous execution, was dead too and missed the same
/// change: it must be checked as well, not trusted because the executing task required it before.
#[test]
fn a_task_required_again_by_a_revived_task_is_checked() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let reader = read(&a);
    let revived = TestTask::ReadThenRequire(a.clone(), FileStamper::Modified, Box::new(reader.clone()));
    let mut pie = test_pie();
    pie.require(&revived).unwrap();
    pie.require(&reader).unwrap(); // checks one root of two: the store is unsettled
    pie.retain_roots(|_| false);
    dir.write(&a, "A");
    let mut session = pie.new_session();
    session.update_affected_by([&a]);
    assert_eq!(session.require(&revived), ok("A"));
    assert_eq!(session.require(&reader), ok("A"));
}

/// From the oracle (seed 8): a reader scheduled because its provided input was deleted, and required (while
/// waiting) by a root that executes for another reason, is checked again first: its provider restored the file,
/// so, as in a top-down build, it does not execute.
#[test]
fn a_waiting_reader_whose_provider_restored_its_input_does_not_execute_when_required() {
    let dir = Dir::new();
    let input = dir.create("in", "one");
    let out = dir.join("out");
    let writer = write(ret("x"), &out);
    let reader = TestTask::ReadAfter(Box::new(writer.clone()), out.clone(), FileStamper::Hash);
    let root = TestTask::ReadThenRequire(input.clone(), FileStamper::Modified, Box::new(reader.clone()));
    let (mut pie, mut top_down) = (test_pie(), test_pie());
    for pie in [&mut pie, &mut top_down] {
        pie.new_session().require_all(&[writer.clone(), root.clone()]);
    }
    dir.write(&input, "two");
    dir.remove(&out);
    let executed = update(&mut pie, &[&input, &out]);
    // Top-down (one build per root): the writer restores `out`; the root executes and finds the reader consistent.
    assert_eq!(executed, vec![writer.clone(), root.clone()]);
    let expected = top_down.new_session().require_all(&[writer.clone(), root.clone()]);
    assert_eq!(pie.new_session().require_all(&[writer, root]), expected);
}

/// Liveness found by one bottom-up build is remembered for the next ones, but only while no task can have become
/// dead: a top-down execution that drops a require, or giving up a root, makes the next bottom-up build find out
/// again. Here the reader is found live by an update, then dropped by its root top-down: it must not execute.
#[test]
fn a_task_dropped_by_a_top_down_execution_after_an_update_found_it_live_is_dead() {
    let dir = Dir::new();
    let (a, config, reader, root) = reader_behind_config(&dir);
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    dir.write(&a, "b");
    let both = vec![reader.clone(), root.clone()];
    assert_eq!(
        update(&mut pie, &[&a]),
        both,
        "live: found so by walking up to the root"
    );
    dir.write(&a, "c");
    assert_eq!(update(&mut pie, &[&a]), both, "still live");

    dir.write(&config, "off");
    pie.require_then_assert_one_execute(&root).unwrap();
    dir.write(&a, "d");
    assert_eq!(
        update(&mut pie, &[&a]),
        Vec::<TestTask>::new(),
        "dead: its only requirer dropped it"
    );
}

/// As above, with the root given up instead of a dropped require.
#[test]
fn a_task_below_a_root_given_up_after_an_update_found_it_live_is_dead() {
    let (dir, a, _config, root, mut pie) = reader_found_live();
    pie.unobserve(&root);
    dir.write(&a, "c");
    assert_eq!(update(&mut pie, &[&a]), Vec::<TestTask>::new());
}

// Panics in bottom-up builds meet the tasks a top-down build would let meet them.

/// A failing task schedules the tasks that require it, whatever their stamper: a root that catches the panic
/// executes (and catches it) within the update, nothing escapes, and the failing task executes once. Later
/// builds, bottom-up or top-down, execute nothing while the failure would repeat.
#[test]
fn a_task_that_fails_in_an_update_meets_the_root_that_catches_it() {
    let dir = Dir::new();
    let other = dir.create("other", "one");
    let flag = dir.join("flag");
    let panicky = panic_if_exists(&flag, ret("p"));
    let collector = TestTask::CatchThenRead(Box::new(panicky.clone()), other.clone());
    let mut pie = test_pie();
    assert_eq!(pie.require(&collector), ok("ok:one"));

    dir.create(&flag, "");
    assert_eq!(update(&mut pie, &[&flag]), vec![panicky.clone(), collector.clone()]);
    let mut session = pie.new_session();
    assert_eq!(session.require(&collector), ok("caught:one"));
    drop(session);
    assert!(!pie.events().any_execute());

    dir.write(&other, "two");
    // The catching task executes, requires the failing task anew and meets its panic again, as a clean build does.
    assert_eq!(update(&mut pie, &[&other]), vec![collector.clone(), panicky.clone()]);
    assert_eq!(pie.require_then_assert_no_execute(&collector), ok("caught:two"));
}

/// A failure that no task catches reaches the caller of the update with the task's own panic, after every task
/// that requires the failing task had its chance to catch it (each executes once), as a top-down build would
/// give it to the caller of `require`.
#[test]
fn a_failure_nobody_catches_escapes_the_update_with_its_payload() {
    let dir = Dir::new();
    let flag = dir.join("flag");
    let panicky = panic_if_exists(&flag, ret("p"));
    let chain: Vec<TestTask> = std::iter::successors(Some(panicky.clone()), |t| Some(to_upper(t.clone())))
        .take(4)
        .collect();
    let root = chain.last().unwrap().clone();
    let mut pie = test_pie();
    assert_eq!(pie.require(&root), ok("P"));

    dir.create(&flag, "");
    let message = expect_panic(|| pie.new_session().update_affected_by([&flag]));
    assert_eq!(message, TASK_PANIC_MESSAGE);
    assert_eq!(
        pie.executed(),
        chain,
        "each task of the chain executed once, the failing one first"
    );
    pie.check_invariants();
    dir.remove(&flag);
    assert_eq!(pie.require(&root), ok("P"));
}

/// Bottom-up builds remember across sessions which tasks they found live, until something may have made a task
/// dead (the two tests above: a require dropped in a top-down session, a root given up); here a require dropped
/// in an earlier bottom-up session, and in the same one. Each case first has a bottom-up build find the reader live,
/// then makes it dead, then changes its input: it must not execute.
#[test]
fn a_task_found_live_by_an_earlier_bottom_up_build_and_dead_since_is_not_executed() {
    // Dropped by a bottom-up session, then changed in a later one.
    let (dir, a, config, root, mut pie) = reader_found_live();
    dir.write(&config, "off");
    assert_eq!(update(&mut pie, &[&config]), vec![root.clone()]);
    dir.write(&a, "AA");
    assert_eq!(update(&mut pie, &[&a]), Vec::<TestTask>::new());

    // Dropped in the same bottom-up session that reports the change.
    let (dir, a, config, root, mut pie) = reader_found_live();
    dir.write(&config, "off");
    dir.write(&a, "AA");
    assert_eq!(update(&mut pie, &[&a, &config]), vec![root.clone()]);
}

/// What a bottom-up build found live in earlier sessions spares it the walk up to a root, and is never wrong about
/// a task that stays live: a chain rebuilt bottom-up again and again executes exactly what top-down would.
#[test]
fn repeated_bottom_up_builds_of_a_chain_execute_every_affected_link_in_order() {
    let dir = Dir::new();
    let a = dir.create("a", "a");
    let mut chain = read(&a);
    let mut links = vec![chain.clone()];
    for _ in 0..5 {
        chain = TestTask::ToUpper(Box::new(chain));
        links.push(chain.clone());
    }
    let mut pie = test_pie();
    pie.require(&chain).unwrap();
    for round in 0..4 {
        dir.write(&a, format!("a{round}"));
        assert_eq!(update(&mut pie, &[&a]), links, "round {round}");
        assert_eq!(pie.require(&chain), ok(&format!("A{round}")));
        assert_eq!(pie.executed(), Vec::<TestTask>::new());
    }
}
