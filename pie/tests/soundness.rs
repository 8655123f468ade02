//! Soundness checks: overlapping provided files, hidden dependencies and cycles are refused with a panic whose
//! message starts with the documented prefix and names the file and the tasks.

mod common;

use std::path::Path;

use common::*;
use dev_util::Dir;
use pie::stamp::FileStamper;

fn display(path: &Path) -> String {
    path.display().to_string()
}

// Overlapping provided files.

#[test]
#[should_panic(expected = "Overlapping provided file")]
fn overlapping_provided_file_panics() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let input = dir.create("in.txt", "Hello, World!");
    let write_1 = write(ret("Hi there"), &output);
    let write_2 = write(read(&input), &output);
    test_pie().require(&seq([write_1, write_2])).unwrap();
}

#[test]
fn overlap_within_one_build_names_the_file_and_both_tasks() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write_1 = write(ret("one"), &output);
    let write_2 = write(ret("two"), &output);
    let mut pie = test_pie();
    let message = expect_panic(|| pie.require(&seq([write_1.clone(), write_2.clone()])));
    assert_message(
        &message,
        OVERLAP,
        &[&display(&output), &debug(&write_1), &debug(&write_2)],
    );
}

#[test]
fn overlap_across_separately_required_tasks_panics() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let input = dir.create("in.txt", "Hello, World!");
    let write_1 = write(ret("Hi there"), &output);
    let write_2 = write(read(&input), &output);
    let mut pie = test_pie();
    pie.require(&write_1).unwrap();
    let message = expect_panic(|| pie.require(&write_2));
    assert_message(
        &message,
        OVERLAP,
        &[&display(&output), &debug(&write_1), &debug(&write_2)],
    );
}

#[test]
fn overlap_across_tasks_required_in_one_session_panics() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write_1 = write(ret("one"), &output);
    let write_2 = write(ret("two"), &output);
    let mut pie = test_pie();
    let mut session = pie.new_session();
    session.require(&write_1).unwrap();
    let message = expect_panic(|| session.require(&write_2));
    assert_message(
        &message,
        OVERLAP,
        &[&display(&output), &debug(&write_1), &debug(&write_2)],
    );
}

#[test]
fn reexecuting_the_same_providing_task_is_not_an_overlap() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let input = dir.create("in.txt", "Hi there");
    let read = read(&input);
    let write = write(read.clone(), &output);
    let mut pie = test_pie();
    pie.require_then_assert_executed(&write, &[&write, &read]).unwrap();
    assert_eq!(dir.read(&output), "Hi there");

    dir.write(&input, "Hello there");
    pie.require_then_assert_executed(&write, &[&read, &write]).unwrap();
    assert_eq!(dir.read(&output), "Hello there");
    pie.require_then_assert_no_execute(&write).unwrap();
}

#[test]
fn separate_output_files_are_fine() {
    let dir = Dir::new();
    let output_1 = dir.join("out_1.txt");
    let output_2 = dir.join("out_2.txt");
    let input = dir.create("in.txt", "Hello, World!");
    let ret = ret("Hi there");
    let read = read(&input);
    let write_1 = write(ret.clone(), &output_1);
    let write_2 = write(read.clone(), &output_2);
    let sequence = seq([write_1.clone(), write_2.clone()]);
    let mut pie = test_pie();

    pie.require(&sequence).unwrap();
    assert_eq!(dir.read(&output_1), "Hi there");
    assert_eq!(dir.read(&output_2), "Hello, World!");

    dir.write(&input, "World, Hello?");
    // Requiring `write_1` makes only `output_1` consistent, which it already is.
    pie.require_then_assert_no_execute(&write_1).unwrap();
    assert_eq!(dir.read(&output_1), "Hi there");
    pie.require_then_assert_executed(&write_2, &[&read, &write_2]).unwrap();
    assert_eq!(dir.read(&output_2), "World, Hello?");
    pie.require_then_assert_no_execute(&sequence).unwrap();
}

#[test]
fn providing_the_same_file_twice_in_one_execution_panics() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let task = TestTask::ProvideTwice(Box::new(ret("twice")), output.clone());
    let message = expect_panic(|| test_pie().require(&task));
    assert_message(&message, OVERLAP, &[&display(&output), &debug(&task)]);
}

// Hidden dependencies.

#[test]
fn requiring_a_provided_file_without_its_provider_panics() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write = write(ret("generated"), &output);
    let read = read(&output);
    let mut pie = test_pie();
    let message = expect_panic(|| pie.require(&seq([write.clone(), read.clone()])));
    assert_message(&message, HIDDEN, &[&display(&output), &debug(&read), &debug(&write)]);
}

#[test]
fn requiring_a_file_provided_in_an_earlier_session_without_its_provider_panics() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let write = write(ret("generated"), &output);
    let read = read_with(&output, FileStamper::Hash);
    let mut pie = test_pie();
    pie.require(&write).unwrap();
    let message = expect_panic(|| pie.require(&read));
    assert_message(&message, HIDDEN, &[&display(&output), &debug(&read), &debug(&write)]);
}

#[test]
fn providing_a_file_that_another_task_required_without_requiring_the_provider_panics() {
    let dir = Dir::new();
    let file = dir.create("file.txt", "plain input");
    let read = read(&file);
    let write = write(ret("generated"), &file);
    let mut pie = test_pie();
    let message = expect_panic(|| pie.require(&seq([read.clone(), write.clone()])));
    assert_message(&message, HIDDEN, &[&display(&file), &debug(&read), &debug(&write)]);
}

#[test]
fn providing_a_file_required_in_an_earlier_session_without_requiring_the_provider_panics() {
    let dir = Dir::new();
    let file = dir.create("file.txt", "plain input");
    let read = read(&file);
    let write = write(ret("generated"), &file);
    let mut pie = test_pie();
    assert_eq!(pie.require(&read), ok("plain input"));
    let message = expect_panic(|| pie.require(&write));
    assert_message(&message, HIDDEN, &[&display(&file), &debug(&read), &debug(&write)]);
}

#[test]
fn reading_a_provided_file_through_its_provider_is_fine() {
    let dir = Dir::new();
    let output = dir.join("out.txt");
    let input = dir.create("in.txt", "first");
    let write = write(read(&input), &output);
    let direct = read_after(write.clone(), &output);
    // Transitively: `indirect` requires `require(write)`, which requires `write`.
    let indirect = read_after(require(write.clone()), &output);
    let mut pie = test_pie();
    assert_eq!(pie.require(&direct), ok("first"));
    assert_eq!(pie.require(&indirect), ok("first"));

    dir.write(&input, "second");
    assert_eq!(pie.require(&indirect), ok("second"));
    assert_eq!(pie.require(&direct), ok("second"));
    pie.require_then_assert_no_execute(&direct).unwrap();
    pie.require_then_assert_no_execute(&indirect).unwrap();
}

#[test]
fn requiring_a_file_then_providing_it_is_refused_as_an_in_place_edit() {
    let dir = Dir::new();
    let file = dir.create("file.txt", "lower");
    let edit = TestTask::EditInPlace(file.clone());
    let message = expect_panic(|| test_pie().require(&edit));
    assert_message(&message, HIDDEN, &[&display(&file), &debug(&edit), "in-place"]);
}

// Cycles.

#[test]
#[should_panic(expected = "Cyclic task dependency")]
fn task_requiring_itself_panics() {
    test_pie().require(&TestTask::RequireSelf).unwrap();
}

#[test]
fn self_cycle_names_the_task() {
    let message = expect_panic(|| test_pie().require(&TestTask::RequireSelf));
    assert_message(&message, CYCLE, &[&debug(&TestTask::RequireSelf)]);
}

#[test]
fn two_task_cycle_names_both_tasks() {
    let message = expect_panic(|| test_pie().require(&TestTask::RequireCycleA));
    assert_message(
        &message,
        CYCLE,
        &[&debug(&TestTask::RequireCycleA), &debug(&TestTask::RequireCycleB)],
    );
    let message = expect_panic(|| test_pie().require(&require(TestTask::RequireCycleB)));
    assert_message(
        &message,
        CYCLE,
        &[&debug(&TestTask::RequireCycleA), &debug(&TestTask::RequireCycleB)],
    );
}

// Regressions: holes where an incremental build accepted what a clean build refuses.

/// A task reads a file and only *afterwards* requires the task that (from the second session on) provides it.
/// Requiring the provider after the read does not make the read sound: the provide-side check counts only the
/// dependencies the reader made before its first read of the file.
#[test]
fn read_before_requiring_the_new_provider_is_a_hidden_dependency() {
    let dir = Dir::new();
    let config = dir.create("config", "off");
    let file = dir.create("f", "source");
    let writer = TestTask::WriteIfOn(config.clone(), "generated", file.clone());
    let reader = TestTask::ReadThenRequire(file.clone(), FileStamper::Hash, Box::new(writer.clone()));
    let mut pie = test_pie();
    assert_eq!(pie.require(&reader), ok("source"));

    dir.write(&config, "on");
    let message = expect_panic(|| pie.require(&reader));
    assert_message(&message, HIDDEN, &[&display(&file), &debug(&reader), &debug(&writer)]);
    // A clean build refuses the script too: the reader reads `f` before requiring its provider.
    dir.write(&file, "source");
    let clean = expect_panic(|| clean_build(&reader));
    assert_message(&clean, HIDDEN, &[]);
}

/// The reader's path to the provider of the file it reads goes through a middle task that drops the require when
/// a config changes; the middle task's output stays the same, so the reader is cut off early. Checking the
/// reader's recorded read must notice that it no longer depends on the file's (still live) provider.
#[test]
fn dropped_transitive_require_of_a_provider_is_a_hidden_dependency() {
    let dir = Dir::new();
    let config = dir.create("config", "on");
    let out = dir.join("out");
    let writer = write(ret("x"), &out);
    let middle = TestTask::RequireIfOn(config.clone(), Box::new(writer.clone()));
    let reader = TestTask::ReadAfter(Box::new(middle), out.clone(), FileStamper::Hash);
    let root = seq([reader.clone(), writer.clone()]);
    let mut pie = test_pie();
    pie.require(&root).unwrap();
    pie.require_then_assert_no_execute(&root).unwrap();

    dir.write(&config, "off");
    let message = expect_panic(|| pie.require(&root));
    assert_message(&message, HIDDEN, &[&display(&out), &debug(&reader), &debug(&writer)]);
    // The refusal is not a one-off: the next session refuses too.
    let message = expect_panic(|| pie.require(&root));
    assert_message(&message, HIDDEN, &[&display(&out)]);
    // A clean build (last: it rewrites `out`) refuses the script too.
    let clean = expect_panic(|| clean_build(&root));
    assert_message(&clean, HIDDEN, &[]);
}

/// A clean build of `task` with a fresh `Pie` (soundness checks included), returning its output or panicking.
fn clean_build(task: &TestTask) -> TestResult {
    test_pie().require(task)
}
