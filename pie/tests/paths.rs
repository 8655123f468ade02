//! Path normalisation: `dir/f`, `dir/./f`, `dir/sub/../f`, and a relative form of the same file are one file for
//! dependencies, overlap checks and hidden-dependency checks.

mod common;

use std::path::PathBuf;

use common::*;
use dev_util::Dir;

/// `dir/f` in four spellings: plain, with `.`, with `sub/..`, and relative to the current directory.
fn spellings(dir: &Dir) -> [PathBuf; 4] {
    dir.create_dir("sub");
    [
        dir.join("f"),
        dir.join("./f"),
        dir.join("sub/../f"),
        relative_form(&dir.join("f")),
    ]
}

#[test]
fn every_spelling_is_one_file_for_dependencies() {
    let dir = Dir::new();
    let forms = spellings(&dir);
    for (index, form) in forms.iter().enumerate() {
        let task = read(form);
        dir.create(&forms[0], "before");
        let mut pie = test_pie();
        assert_eq!(pie.require(&task), ok("before"));
        // The event keeps the spelling the task used; queries compare normalised paths.
        let event = pie
            .events()
            .first_require_file(&forms[0])
            .expect("require event for the plain spelling");
        assert_eq!(&event.path, form);
        pie.require_then_assert_no_execute(&task).unwrap();

        // Change the file through another spelling.
        write_file(&forms[(index + 1) % forms.len()], "after");
        assert_eq!(
            pie.require_then_assert_one_execute(&task),
            ok("after"),
            "spelling {form:?}"
        );
    }
}

#[test]
fn every_pair_of_spellings_overlaps() {
    let dir = Dir::new();
    let forms = spellings(&dir);
    for first in &forms {
        for second in &forms {
            let write_1 = write(ret("one"), first);
            let write_2 = write(ret("two"), second);
            let message = expect_panic(|| test_pie().require(&seq([write_1.clone(), write_2.clone()])));
            let normal = forms[0].display().to_string();
            assert_message(&message, OVERLAP, &[&normal, &debug(&write_1), &debug(&write_2)]);
        }
    }
}

#[test]
fn every_pair_of_spellings_is_a_hidden_dependency_on_the_require_side() {
    let dir = Dir::new();
    let forms = spellings(&dir);
    for provided in &forms {
        for required in &forms {
            let write = write(ret("generated"), provided);
            let read = read(required);
            let mut pie = test_pie();
            pie.require(&write).unwrap();
            let message = expect_panic(|| pie.require(&read));
            assert_message(
                &message,
                HIDDEN,
                &[&forms[0].display().to_string(), &debug(&write), &debug(&read)],
            );
        }
    }
}

#[test]
fn every_pair_of_spellings_is_a_hidden_dependency_on_the_provide_side() {
    let dir = Dir::new();
    let forms = spellings(&dir);
    dir.create(&forms[0], "input");
    for required in &forms {
        for provided in &forms {
            let read = read(required);
            let write = write(ret("generated"), provided);
            let mut pie = test_pie();
            pie.require(&read).unwrap();
            let message = expect_panic(|| pie.require(&write));
            assert_message(
                &message,
                HIDDEN,
                &[&forms[0].display().to_string(), &debug(&write), &debug(&read)],
            );
            dir.write(&forms[0], "input");
        }
    }
}

#[test]
fn reading_through_the_provider_with_another_spelling_is_fine() {
    let dir = Dir::new();
    let forms = spellings(&dir);
    for provided in &forms {
        for required in &forms {
            let write = write(ret("generated"), provided);
            let reader = read_after(write.clone(), required);
            let mut pie = test_pie();
            assert_eq!(pie.require(&reader), ok("generated"));
            pie.require_then_assert_no_execute(&reader).unwrap();
            dir.remove(&forms[0]);
            assert_eq!(
                pie.require_then_assert_executed(&reader, &[&write, &reader]),
                ok("generated")
            );
            pie.check_invariants();
            dir.remove(&forms[0]);
        }
    }
}

#[test]
fn in_place_edit_is_refused_through_a_spelling_of_the_provided_file() {
    let dir = Dir::new();
    let forms = spellings(&dir);
    dir.create(&forms[0], "lower");
    for from in &forms {
        for to in &forms {
            let edit = TestTask::CopyUpper(from.clone(), to.clone());
            let message = expect_panic(|| test_pie().require(&edit));
            assert_message(
                &message,
                HIDDEN,
                &[&forms[0].display().to_string(), &debug(&edit), "in-place"],
            );
            dir.write(&forms[0], "lower");
        }
    }
}
