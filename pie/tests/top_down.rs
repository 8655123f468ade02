//! Incrementality of the top-down context: what executes, and in what order, after which change.

mod common;

use common::*;
use dev_util::Dir;
use pie::stamp::FileStamper;

#[test]
fn first_build_executes_and_second_session_executes_nothing() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "HELLO");
    let read = read(&path);
    let lower = to_lower(read.clone());
    let mut pie = test_pie();

    assert_eq!(pie.require_then_assert_executed(&lower, &[&lower, &read]), ok("hello"));
    assert_eq!(pie.require_then_assert_no_execute(&lower), ok("hello"));
    assert_eq!(pie.require_then_assert_no_execute(&read), ok("HELLO"));
}

#[test]
fn file_change_reexecutes_only_affected_tasks_dependencies_first() {
    let dir = Dir::new();
    let path_1 = dir.create("one.txt", "One");
    let path_2 = dir.create("two.txt", "Two");
    let read_1 = read(&path_1);
    let read_2 = read(&path_2);
    let lower_1 = to_lower(read_1.clone());
    let upper_2 = to_upper(read_2.clone());
    let both = seq([lower_1.clone(), upper_2.clone()]);
    let mut pie = test_pie();
    pie.require(&both).unwrap();

    dir.write(&path_1, "Uno");
    pie.require_then_assert_executed(&both, &[&read_1, &lower_1, &both])
        .unwrap();
    assert_eq!(pie.require_then_assert_no_execute(&lower_1), ok("uno"));
    assert_eq!(pie.require_then_assert_no_execute(&upper_2), ok("TWO"));

    dir.write(&path_2, "Dos");
    // `lower_1`'s branch is checked but nothing in it executes.
    pie.require_then_assert_executed(&both, &[&read_2, &upper_2, &both])
        .unwrap();
    assert_eq!(pie.require_then_assert_no_execute(&upper_2), ok("DOS"));
}

#[test]
fn dependencies_are_checked_in_order_and_checking_stops_at_the_first_inconsistent_one() {
    let dir = Dir::new();
    let path_1 = dir.create("one.txt", "1");
    let path_2 = dir.create("two.txt", "2");
    let read_1 = read(&path_1);
    let read_2 = read(&path_2);
    let both = seq([read_1.clone(), read_2.clone()]);
    let mut pie = test_pie();
    pie.require(&both).unwrap();

    dir.write(&path_1, "one");
    dir.write(&path_2, "two");
    // `read_1` is inconsistent, so `both` executes before `read_2` is checked; its execution requires `read_2`.
    pie.require_then_assert_executed(&both, &[&read_1, &both, &read_2])
        .unwrap();
    assert_eq!(pie.require_then_assert_no_execute(&read_2), ok("two"));
}

#[test]
fn unchanged_equals_output_does_not_reexecute_dependents() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "HELLO");
    let read = read(&path);
    let lower = to_lower(read.clone());
    let upper = to_upper(lower.clone());
    let mut pie = test_pie();
    assert_eq!(pie.require(&upper), ok("HELLO"));

    // `read`'s output changes, `lower`'s does not: `upper` is cut off.
    dir.write(&path, "hello");
    assert_eq!(pie.require_then_assert_executed(&upper, &[&read, &lower]), ok("HELLO"));
    assert_eq!(pie.require_then_assert_no_execute(&upper), ok("HELLO"));

    dir.write(&path, "bye");
    assert_eq!(
        pie.require_then_assert_executed(&upper, &[&read, &lower, &upper]),
        ok("BYE")
    );
}

#[test]
fn inconsequential_dependency_does_not_reexecute_on_output_change() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "a");
    let read = read(&path);
    let ignore = TestTask::RequireInconsequential(Box::new(read.clone()));
    let mut pie = test_pie();
    assert_eq!(
        pie.require_then_assert_executed(&ignore, &[&ignore, &read]),
        Ok(TestOutput::Unit)
    );

    dir.write(&path, "b");
    // The required task is still made consistent, but its new output does not matter to `ignore`.
    pie.require_then_assert_executed(&ignore, &[&read]).unwrap();
    assert_eq!(pie.require_then_assert_no_execute(&read), ok("b"));
}

#[test]
fn exists_stamper_reexecutes_only_when_existence_changes() {
    let dir = Dir::new();
    let path = dir.join("in.txt");
    let task = read_with(&path, FileStamper::Exists);
    let mut pie = test_pie();
    assert_eq!(pie.require_then_assert_one_execute(&task), ok(""));

    dir.create(&path, "created");
    assert_eq!(pie.require_then_assert_one_execute(&task), ok("created"));
    dir.write(&path, "changed");
    assert_eq!(pie.require_then_assert_no_execute(&task), ok("created"));
    dir.remove(&path);
    assert_eq!(pie.require_then_assert_one_execute(&task), ok(""));
    assert_eq!(pie.require_then_assert_no_execute(&task), ok(""));
}

#[test]
fn modified_stamper_reexecutes_on_any_write_even_with_same_content() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "same");
    let task = read_with(&path, FileStamper::Modified);
    let lower = to_lower(task.clone());
    let mut pie = test_pie();
    pie.require(&lower).unwrap();

    dir.write(&path, "same");
    // The reader executes again; its output is unchanged, so its dependent does not.
    pie.require_then_assert_executed(&lower, &[&task]).unwrap();
    dir.write(&path, "other");
    assert_eq!(pie.require_then_assert_executed(&lower, &[&task, &lower]), ok("other"));
    dir.remove(&path);
    assert_eq!(pie.require_then_assert_executed(&lower, &[&task, &lower]), ok(""));
}

#[test]
fn hash_stamper_ignores_same_content_rewrite_and_sees_changes() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "same");
    let task = read_with(&path, FileStamper::Hash);
    let mut pie = test_pie();
    pie.require_then_assert_one_execute(&task).unwrap();

    dir.write(&path, "same");
    assert_eq!(pie.require_then_assert_no_execute(&task), ok("same"));
    dir.write(&path, "other");
    assert_eq!(pie.require_then_assert_one_execute(&task), ok("other"));
    dir.remove(&path);
    assert_eq!(pie.require_then_assert_one_execute(&task), ok(""));
    dir.create(&path, "");
    // An empty file is not the same as no file.
    assert_eq!(pie.require_then_assert_one_execute(&task), ok(""));
}

#[test]
fn hash_stamper_on_a_provided_file_ignores_same_content_regeneration() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "Text");
    let output = dir.join("out.txt");
    let lower = to_lower(read(&input));
    let write = write_with(lower.clone(), &output, FileStamper::Hash);
    let reader = TestTask::ReadAfter(Box::new(write.clone()), output.clone(), FileStamper::Hash);
    let mut pie = test_pie();
    assert_eq!(pie.require(&reader), ok("text"));

    // The input changes, the lower-cased text does not: cut off before the writer.
    dir.write(&input, "TEXT");
    pie.require_then_assert_executed(&reader, &[&read(&input), &lower])
        .unwrap();
    // Someone rewrites the output with the same bytes: consistent under Hash.
    dir.write(&output, "text");
    pie.require_then_assert_no_execute(&reader).unwrap();
    dir.write(&output, "tampered");
    // The writer regenerates the same bytes, so the reader's Hash dependency is consistent again.
    pie.require_then_assert_executed(&reader, &[&write]).unwrap();
    assert_eq!(dir.read(&output), "text");
}

#[test]
fn each_task_is_checked_or_executed_at_most_once_per_session() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "Diamond");
    let read = read(&path);
    let lower = to_lower(read.clone());
    let upper = to_upper(read.clone());
    let diamond = seq([lower.clone(), upper.clone(), read.clone()]);
    let mut pie = test_pie();
    pie.require_then_assert(&diamond, |events| {
        assert!(
            events.one_execute_of(&read),
            "the shared dependency executes exactly once"
        );
        // It is required three times: the first require executes it, the later two find it done.
        let requires: Vec<bool> = events
            .slice()
            .iter()
            .filter_map(|e| e.match_require_task_end(&read).map(|d| d.was_executed))
            .collect();
        assert_eq!(requires, vec![true, false, false]);
    })
    .unwrap();

    let mut session = pie.new_session();
    session.require(&diamond).unwrap();
    // A change made during the session is not seen by it: `read` was already made consistent.
    dir.write(&path, "Changed");
    assert_eq!(session.require(&read), ok("Diamond"));
    assert_eq!(session.require(&upper), ok("DIAMOND"));
    drop(session);
    let events = pie.events();
    assert!(
        !events.any_execute(),
        "a task was checked twice in one session: {:?}",
        events.executed_tasks()
    );

    pie.require_then_assert(&diamond, |events| {
        assert!(
            events.one_execute_of(&read),
            "the shared dependency executes exactly once"
        );
        assert!(events.one_execute_of(&lower));
        assert!(events.one_execute_of(&upper));
        assert!(events.one_execute_of(&diamond));
    })
    .unwrap();
    assert_eq!(pie.require_then_assert_no_execute(&upper), ok("CHANGED"));
}

#[test]
fn changed_provided_file_makes_its_provider_execute_again() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write = write(ret("generated"), &output);
    let mut pie = test_pie();
    pie.require_then_assert_executed(&write, &[&write, &ret("generated")])
        .unwrap();
    assert_eq!(dir.read(&output), "generated");
    pie.require_then_assert_no_execute(&write).unwrap();

    dir.write(&output, "tampered");
    pie.require_then_assert_one_execute(&write).unwrap();
    assert_eq!(dir.read(&output), "generated");
    pie.require_then_assert_no_execute(&write).unwrap();
}

#[test]
fn deleted_provided_file_is_regenerated() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write = write(ret("generated"), &output);
    let reader = read_after(write.clone(), &output);
    let mut pie = test_pie();
    assert_eq!(pie.require(&reader), ok("generated"));

    dir.remove(&output);
    assert_eq!(
        pie.require_then_assert_executed(&reader, &[&write, &reader]),
        ok("generated")
    );
    assert_eq!(dir.read(&output), "generated");
    pie.require_then_assert_no_execute(&reader).unwrap();
}

#[test]
fn provider_rewrites_its_file_when_its_input_changes_and_reader_follows() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "First");
    let output = dir.join("out.txt");
    let upper = to_upper(read(&input));
    let write = write(upper.clone(), &output);
    let reader = read_after(write.clone(), &output);
    let mut pie = test_pie();
    assert_eq!(pie.require(&reader), ok("FIRST"));

    dir.write(&input, "Second");
    assert_eq!(
        pie.require_then_assert_executed(&reader, &[&read(&input), &upper, &write, &reader]),
        ok("SECOND")
    );
    assert_eq!(dir.read(&output), "SECOND");
}

#[test]
fn requiring_the_same_task_twice_in_one_execution_is_fine() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "twice");
    let read = read(&path);
    let twice = TestTask::RequireTwice(Box::new(read.clone()));
    let mut pie = test_pie();
    assert_eq!(pie.require_then_assert_executed(&twice, &[&twice, &read]), ok("twice"));
    assert_eq!(pie.require_then_assert_no_execute(&twice), ok("twice"));
    pie.check_invariants();

    dir.write(&path, "again");
    assert_eq!(pie.require_then_assert_executed(&twice, &[&read, &twice]), ok("again"));
    assert_eq!(pie.require_then_assert_no_execute(&twice), ok("again"));
    pie.check_invariants();
}

#[test]
fn requiring_the_same_file_twice_in_one_execution_is_fine() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "twice");
    let task = TestTask::ReadFileTwice(path.clone(), FileStamper::Hash);
    let mut pie = test_pie();
    assert_eq!(pie.require_then_assert_one_execute(&task), ok("twice"));
    assert_eq!(pie.require_then_assert_no_execute(&task), ok("twice"));
    dir.write(&path, "again");
    assert_eq!(pie.require_then_assert_one_execute(&task), ok("again"));
    assert_eq!(pie.require_then_assert_no_execute(&task), ok("again"));
}

#[test]
fn reading_back_a_file_provided_earlier_in_the_same_execution_is_fine() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "back");
    let output = dir.join("out.txt");
    let read = read(&input);
    let task = TestTask::WriteThenReadBack(Box::new(read.clone()), output.clone(), FileStamper::Modified);
    let mut pie = test_pie();
    assert_eq!(pie.require_then_assert_executed(&task, &[&task, &read]), ok("back"));
    assert_eq!(pie.require_then_assert_no_execute(&task), ok("back"));

    dir.write(&input, "forth");
    assert_eq!(pie.require_then_assert_executed(&task, &[&read, &task]), ok("forth"));
    dir.remove(&output);
    assert_eq!(pie.require_then_assert_one_execute(&task), ok("forth"));
    assert_eq!(pie.require_then_assert_no_execute(&task), ok("forth"));
}

#[test]
fn missing_file_is_none_with_a_dependency_and_creating_it_reexecutes() {
    let dir = Dir::new();
    let path = dir.join("later.txt");
    for stamper in STAMPERS {
        let probe = TestTask::ProbeFile(path.clone(), stamper);
        let mut pie = test_pie();
        assert_eq!(pie.require(&probe), ok("none"), "{stamper:?}");
        assert!(
            pie.events().first_require_file(&path).is_some(),
            "{stamper:?}: the dependency is recorded"
        );
        assert_eq!(pie.require_then_assert_no_execute(&probe), ok("none"), "{stamper:?}");

        dir.create(&path, "here");
        assert_eq!(
            pie.require_then_assert_one_execute(&probe),
            ok("some:here"),
            "{stamper:?}"
        );
        dir.remove(&path);
    }
}

#[test]
fn directory_is_none_like_a_missing_file() {
    let dir = Dir::new();
    let path = dir.create_dir("sub");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Modified);
    let mut pie = test_pie();
    assert_eq!(pie.require(&probe), ok("none"));
    assert_eq!(pie.require_then_assert_no_execute(&probe), ok("none"));
    dir.remove(&path);
    dir.create(&path, "now a file");
    assert_eq!(pie.require_then_assert_one_execute(&probe), ok("some:now a file"));
}

#[test]
fn output_change_from_ok_to_err_propagates() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "x");
    let output = dir.join("missing-dir/out.txt");
    let write = write(read(&input), &output);
    let sequence = seq([write.clone()]);
    let mut pie = test_pie();
    // The output folder does not exist: the write fails, and the failure is the output.
    assert_eq!(pie.require(&sequence), Err(std::io::ErrorKind::NotFound));
    pie.require_then_assert_no_execute(&sequence).unwrap_err();

    dir.create_dir("missing-dir");
    dir.write(&input, "y");
    assert_eq!(
        pie.require_then_assert_executed(&sequence, &[&read(&input), &write, &sequence]),
        Ok(TestOutput::Unit)
    );
    assert_eq!(dir.read(&output), "y");
}

#[test]
fn provided_file_stampers_decide_what_counts_as_changed_by_someone_else() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    for stamper in STAMPERS {
        let write = write_with(ret("generated"), &output, stamper);
        let mut pie = test_pie();
        pie.require(&write).unwrap();

        dir.write(&output, "generated");
        let expected: &[&TestTask] = if stamper == FileStamper::Modified {
            &[&write]
        } else {
            &[]
        };
        pie.require_then_assert_executed(&write, expected).unwrap();
        dir.write(&output, "tampered");
        let expected: &[&TestTask] = if stamper == FileStamper::Exists { &[] } else { &[&write] };
        pie.require_then_assert_executed(&write, expected).unwrap();
        dir.remove(&output);
        pie.require_then_assert_one_execute(&write).unwrap();
        assert_eq!(dir.read(&output), "generated", "{stamper:?}");
        dir.remove(&output);
    }
}
