//! Roots, liveness and garbage collection: an edited build script keeps its store, dead tasks make no soundness
//! claims, and `collect_garbage` shrinks the store (and, when asked, deletes what only dead tasks wrote).

mod common;

use std::collections::HashSet;

use common::*;
use dev_util::Dir;

fn roots(pie: &TestPie) -> HashSet<TestTask> {
    pie.roots().cloned().collect()
}

#[test]
fn required_tasks_become_roots_and_stay_until_unobserved() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "text");
    let (a, b, c) = (read(&input), ret("b"), to_upper(read(&input)));
    let mut pie = test_pie();
    pie.require(&a).unwrap();
    pie.new_session().require_all(&[b.clone(), c.clone()]);
    assert_eq!(roots(&pie), HashSet::from([a.clone(), b.clone(), c.clone()]));
    // Tasks required by tasks are not roots.
    pie.require(&to_lower(ret("inner"))).unwrap();
    assert!(roots(&pie).contains(&to_lower(ret("inner"))));
    assert!(!roots(&pie).contains(&ret("inner")));
    pie.unobserve(&to_lower(ret("inner")));

    pie.unobserve(&b);
    pie.unobserve(&ret("never required"));
    pie.unobserve(&b);
    assert_eq!(roots(&pie), HashSet::from([a.clone(), c.clone()]));
    pie.retain_roots(|root| *root == c);
    assert_eq!(roots(&pie), HashSet::from([c]));
}

#[test]
fn a_root_whose_build_panics_is_still_a_root() {
    let dir = Dir::new();
    let flag = dir.create("flag", "");
    let task = panic_if_exists(&flag, ret("a"));
    let mut pie = test_pie();
    assert_eq!(expect_panic(|| pie.require(&task)), TASK_PANIC_MESSAGE);
    assert_eq!(roots(&pie), HashSet::from([task]));
}

/// The new-user story: a task that writes `out.txt` is edited (another list of inputs). While the old task
/// is still a root, it keeps its claim on the file and the edited script is refused; once the script retains only
/// its current roots, it builds, in the same process and after a save and a load.
#[test]
fn edited_script_builds_once_it_retains_only_its_current_roots() {
    let dir = Dir::new();
    let a = dir.create("a", "A");
    let b = dir.create("b", "B");
    let out = dir.join("out.txt");
    let old = write(read(&a), &out);
    let edited = write(read(&b), &out);

    let mut pie = test_pie();
    pie.require(&old).unwrap();
    // A still-observed root keeps its claim, in this session and the next.
    for _ in 0..2 {
        let message = expect_panic(|| pie.require(&edited));
        assert_message(&message, OVERLAP, &[&debug(&old), &debug(&edited)]);
    }

    pie.retain_roots(|root| *root == edited);
    pie.require_then_assert(&edited, |events| {
        assert!(events.one_execute_of(&edited));
        assert!(!events.any_execute_of(&old), "the dead task is never executed");
    })
    .unwrap();
    assert_eq!(dir.read(&out), "B");
    pie.require_then_assert_no_execute(&edited).unwrap();
    pie.check_invariants();
}

#[test]
fn a_task_required_in_this_session_is_live_without_being_a_root() {
    let dir = Dir::new();
    let out = dir.join("out.txt");
    let first = write(ret("1"), &out);
    let second = write(ret("2"), &out);
    let mut pie = test_pie();
    pie.require(&first).unwrap();
    pie.retain_roots(|_| false);
    // `first` is dead before this session, but required (by the sequence) before `second` provides the file.
    let message = expect_panic(|| pie.require(&seq([first.clone(), second.clone()])));
    assert_message(&message, OVERLAP, &[&debug(&first), &debug(&second)]);
}

#[test]
fn a_dead_requirer_is_no_hidden_dependency_of_a_new_provider() {
    let dir = Dir::new();
    let out = dir.create("out.txt", "hand-written");
    let reader = read(&out);
    let writer = write(ret("generated"), &out);
    let mut pie = test_pie();
    pie.require(&reader).unwrap();
    let message = expect_panic(|| pie.new_session().require(&writer));
    assert_message(&message, HIDDEN, &[&debug(&reader), &debug(&writer)]);

    let mut pie = test_pie();
    pie.require(&reader).unwrap();
    pie.unobserve(&reader);
    pie.require(&writer).unwrap();
    assert_eq!(dir.read(&out), "generated");
    // Requiring the old reader again (without its provider) is refused as in a clean build.
    let message = expect_panic(|| pie.require(&reader));
    assert_message(&message, HIDDEN, &[&debug(&reader), &debug(&writer)]);
}

#[test]
fn a_dead_provider_is_no_hidden_dependency_of_a_new_reader() {
    let dir = Dir::new();
    let out = dir.join("out.txt");
    let writer = write(ret("generated"), &out);
    let reader = read(&out);
    let mut pie = test_pie();
    pie.require(&writer).unwrap();
    let message = expect_panic(|| pie.require(&reader));
    assert_message(&message, HIDDEN, &[&debug(&reader), &debug(&writer)]);

    pie.retain_roots(|root| *root != writer);
    assert_eq!(pie.require(&reader), ok("generated"));
    pie.require_then_assert_no_execute(&reader).unwrap();
    // Observing the provider again brings its claim back: it executes again and finds the reader.
    let message = expect_panic(|| pie.require(&writer));
    assert_message(&message, HIDDEN, &[&debug(&reader), &debug(&writer)]);
}

#[test]
fn collect_garbage_removes_dead_tasks_and_only_the_files_they_alone_provided() {
    let dir = Dir::new();
    let (fa, fb) = (dir.join("a.out"), dir.join("b.out"));
    let input = dir.create("in.txt", "in");
    let (a, b, c) = (write(ret("a"), &fa), write(ret("b"), &fb), read(&input));
    let mut pie = test_pie();
    pie.new_session().require_all(&[a.clone(), b.clone(), c.clone()]);
    assert_eq!(pie.task_count(), 5);

    pie.unobserve(&a);
    let garbage = pie.collect_garbage(true);
    assert_eq!(garbage.removed_tasks, 2, "`a` and the task only it required");
    assert_eq!(garbage.deleted_files, vec![fa.clone()]);
    assert!(garbage.failed_deletions.is_empty());
    assert!(!fa.exists());
    assert!(fb.exists(), "a live task provides it");
    assert!(input.exists(), "no task provided it");
    assert_eq!(pie.task_count(), 3);
    pie.check_invariants();
    assert!(
        pie.collect_garbage(true).removed_tasks == 0,
        "a second collection finds nothing"
    );

    for task in [&b, &c] {
        pie.require_then_assert_no_execute(task).unwrap();
    }
    // The removed task is new again: it executes, and provides its file again.
    pie.require_then_assert(&a, |events| assert!(events.one_execute_of(&a)))
        .unwrap();
    assert!(fa.exists());
}

#[test]
fn collect_garbage_keeps_a_file_that_a_live_task_took_over() {
    let dir = Dir::new();
    let out = dir.join("out.txt");
    let (old, new) = (write(ret("old"), &out), write(ret("new"), &out));
    let mut pie = test_pie();
    pie.require(&old).unwrap();
    pie.retain_roots(|_| false);
    pie.require(&new).unwrap();
    let garbage = pie.collect_garbage(true);
    assert_eq!(garbage.removed_tasks, 2);
    assert!(garbage.deleted_files.is_empty());
    assert_eq!(dir.read(&out), "new");
    pie.require_then_assert_no_execute(&new).unwrap();
}

#[test]
fn collect_garbage_without_deleting_leaves_files_alone() {
    let dir = Dir::new();
    let out = dir.join("out.txt");
    let writer = write(ret("x"), &out);
    let mut pie = test_pie();
    pie.require(&writer).unwrap();
    pie.retain_roots(|_| false);
    let garbage = pie.collect_garbage(false);
    assert_eq!(garbage.removed_tasks, 2);
    assert!(garbage.deleted_files.is_empty());
    assert!(out.exists());
    assert_eq!(pie.task_count(), 0);
    assert_eq!(pie.roots().count(), 0);
}

/// Roots and collections across a save and a load, with a serialisable task type of their own.
#[cfg(feature = "serde")]
mod persisted {
    use std::fs;
    use std::path::{Path, PathBuf};

    use pie::tracker::event::EventTracker;
    use pie::{Context, Pie, Task};
    use serde::{Deserialize, Serialize};

    use dev_util::Dir;

    use super::common::{assert_message, expect_panic, OVERLAP};

    /// Writes the text to the file and provides it; returns the text.
    #[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
    struct Write(String, PathBuf);

    impl Task for Write {
        type Output = String;
        fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
            fs::write(&self.1, &self.0).unwrap();
            context.provide_file(&self.1).unwrap();
            self.0.clone()
        }
    }

    type StorePie = Pie<Write, String, EventTracker<Write, String>>;

    fn load(path: &Path) -> StorePie {
        Pie::load(path, EventTracker::default()).unwrap()
    }

    #[test]
    fn roots_are_saved_with_the_store_and_keep_their_claims() {
        let dir = Dir::new();
        let store = dir.join("store");
        let (one, two) = (dir.join("one"), dir.join("two"));
        let (a, b) = (Write("a".into(), one.clone()), Write("b".into(), two.clone()));
        let mut pie = StorePie::with_tracker(EventTracker::default());
        pie.new_session().require_all(&[a.clone(), b.clone()]);
        pie.unobserve(&a);
        pie.save(&store).unwrap();

        let mut loaded = load(&store);
        assert_eq!(loaded.roots().cloned().collect::<Vec<_>>(), vec![b.clone()]);
        // The observed root keeps its claim on `two` in the new process; the unobserved one lost `one`'s.
        let rival = Write("rival".into(), two.clone());
        let message = expect_panic(|| loaded.new_session().require(&rival));
        assert_message(&message, OVERLAP, &[&format!("{b:?}"), &format!("{rival:?}")]);
        loaded.unobserve(&rival);
        let taker = Write("taker".into(), one.clone());
        assert_eq!(loaded.new_session().require(&taker), "taker");
    }

    /// The edited-script workflow across processes: save, load, retain the current roots, collect, save; the
    /// collected store is smaller and a loaded copy builds with nothing executed.
    #[test]
    fn collected_store_is_smaller_and_builds_with_nothing_executed() {
        let dir = Dir::new();
        let store = dir.join("store");
        let out = dir.join("out.txt");
        let mut pie = StorePie::with_tracker(EventTracker::default());
        let olds: Vec<Write> = (0..50)
            .map(|i| Write(format!("old {i}"), dir.join(format!("{i}.txt"))))
            .collect();
        pie.new_session().require_all(&olds);
        pie.new_session().require(&Write("v1".into(), out.clone()));
        pie.save(&store).unwrap();
        let size_before = fs::metadata(&store).unwrap().len();

        let edited = Write("v2".into(), out.clone());
        let mut loaded = load(&store);
        loaded.retain_roots(|root| *root == edited);
        assert_eq!(loaded.new_session().require(&edited), "v2");
        let garbage = loaded.collect_garbage(true);
        assert_eq!(garbage.removed_tasks, 51);
        assert_eq!(
            garbage.deleted_files.len(),
            50,
            "every old output but the taken-over one"
        );
        assert!(olds.iter().all(|old| !old.1.exists()));
        loaded.save(&store).unwrap();
        assert!(fs::metadata(&store).unwrap().len() < size_before / 10);

        let mut again = load(&store);
        again.check_invariants();
        assert_eq!(again.task_count(), 1);
        assert_eq!(again.new_session().require(&edited), "v2");
        assert!(!again.tracker().any_execute());
        assert_eq!(dir.read(&out), "v2");
    }
}
