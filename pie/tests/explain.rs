//! `ExplainTracker`: the reason of every execution, through the public API: new tasks, files created, deleted and
//! modified (for each stamper), a provided file changed by someone else, a required task whose output changed, a
//! failed dependency check, a required task that failed while checked, and a parallel build.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dev_util::{write_until_modified, Dir};
use pie::stamp::{FileStamp, FileStamper};
use pie::tracker::explain::{ExplainTracker, Reason};
use pie::{Context, Pie, Task};

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum T {
    /// Reads the file (nothing when missing, `error` when the read fails), sleeping a few milliseconds first.
    Read(PathBuf, FileStamper),
    /// Writes the text to the file and provides it.
    Write(PathBuf, &'static str),
    /// Requires the task and upper-cases its output.
    Upper(Box<T>),
    /// Requires the tasks with `require_tasks` and joins their outputs.
    All(Vec<T>),
    /// Panics when something is at the path (an `Exists` dependency).
    PanicIfExists(PathBuf),
}

impl Task for T {
    type Output = String;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
        match self {
            T::Read(path, stamper) => {
                std::thread::sleep(Duration::from_millis(5));
                match context.require_file_with_stamper(path, *stamper) {
                    Ok(Some(_)) => std::fs::read_to_string(path).unwrap_or_default(),
                    Ok(None) => String::new(),
                    Err(_) => "error".to_string(),
                }
            }
            T::Write(path, text) => {
                write_until_modified(path, text).unwrap();
                context.provide_file(path).unwrap();
                String::new()
            }
            T::Upper(task) => context.require_task(task).to_uppercase(),
            T::All(tasks) => context.require_tasks(tasks).join("+"),
            T::PanicIfExists(path) => {
                context.require_file_with_stamper(path, FileStamper::Exists).unwrap();
                assert!(!path.exists(), "{} exists", path.display());
                String::new()
            }
        }
    }
}

type ExplainPie = Pie<T, String, ExplainTracker<T, String>>;

fn explain_pie() -> ExplainPie {
    Pie::with_tracker(ExplainTracker::default())
}

/// Requires `task` in a new session; returns the explanations as (task, reason).
fn build(pie: &mut ExplainPie, task: &T) -> Vec<(T, Reason<T, String>)> {
    pie.new_session().require(task);
    reasons(pie)
}

fn reasons(pie: &ExplainPie) -> Vec<(T, Reason<T, String>)> {
    pie.tracker()
        .explanations()
        .iter()
        .map(|e| (e.task.clone(), e.reason.clone()))
        .collect()
}

/// The file reason of `task`'s execution in the last build, with its text.
fn file_reason(pie: &ExplainPie, task: &T) -> (bool, FileStamp, FileStamp, String) {
    match pie.tracker().reason_of(task) {
        Some(reason @ Reason::File { provided, old, new, .. }) => (*provided, *old, *new, reason.to_string()),
        other => panic!("expected a file reason for {task:?}, got {other:?}"),
    }
}

fn read(path: &Path, stamper: FileStamper) -> T {
    T::Read(path.to_path_buf(), stamper)
}

#[test]
fn new_tasks_have_no_cached_output_and_consistent_tasks_no_explanation() {
    let dir = Dir::new();
    let inner = read(&dir.join("a"), FileStamper::Modified);
    let outer = T::Upper(Box::new(inner.clone()));
    let mut pie = explain_pie();
    assert_eq!(
        build(&mut pie, &outer),
        [(outer.clone(), Reason::NoOutput), (inner.clone(), Reason::NoOutput)]
    );
    let line = pie.tracker().explanations()[0].to_string();
    assert_eq!(
        line,
        format!("{outer:?}: no cached output (new, or its last execution failed)")
    );
    assert_eq!(build(&mut pie, &outer), []);
    assert_eq!(pie.tracker().reason_of(&outer), None);
}

#[test]
fn a_created_modified_and_deleted_file_is_explained_for_every_stamper() {
    for stamper in [FileStamper::Modified, FileStamper::Hash, FileStamper::Exists] {
        let dir = Dir::new();
        let path = dir.join("a.txt");
        let task = read(&path, stamper);
        let mut pie = explain_pie();
        build(&mut pie, &task);

        put(&dir, "a.txt", "one");
        build(&mut pie, &task);
        let (provided, old, new, text) = file_reason(&pie, &task);
        assert!(!provided);
        assert!(old.is_missing() && !new.is_missing(), "{stamper:?}: {old:?} → {new:?}");
        assert!(
            text.starts_with(&format!("file {} was created (missing → ", path.display())),
            "{text}"
        );
        match stamper {
            FileStamper::Exists => assert!(text.ends_with("(missing → exists)"), "{text}"),
            FileStamper::Hash => {
                let digest = &text[text.rfind("→ ").unwrap() + "→ ".len()..text.len() - 1];
                assert_eq!(digest.len(), 16, "{text}");
                assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
                assert!(blake3::hash(b"one").to_hex().starts_with(digest), "{text}");
            }
            FileStamper::Modified => assert_utc_date(&text[text.rfind("→ ").unwrap() + "→ ".len()..text.len() - 1]),
        }

        if stamper != FileStamper::Exists {
            put(&dir, "a.txt", "two");
            build(&mut pie, &task);
            let (_, old, new, text) = file_reason(&pie, &task);
            assert!(!old.is_missing() && !new.is_missing() && old != new);
            assert!(
                text.starts_with(&format!("file {} changed (", path.display())),
                "{text}"
            );
        }

        dir.remove("a.txt");
        build(&mut pie, &task);
        let (_, old, new, text) = file_reason(&pie, &task);
        assert!(!old.is_missing() && new.is_missing());
        assert!(
            text.starts_with(&format!("file {} was deleted (", path.display())),
            "{text}"
        );
        assert!(text.ends_with(" → missing)"), "{text}");
        assert_eq!(build(&mut pie, &task), []);
    }
}

/// `2026-12-02 04:40:01.123456789`, a plausible date of now.
fn assert_utc_date(text: &str) {
    let bytes = text.as_bytes();
    assert_eq!(text.len(), 29, "{text}");
    for (i, &b) in bytes.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(b, b'-', "{text}"),
            10 => assert_eq!(b, b' ', "{text}"),
            13 | 16 => assert_eq!(b, b':', "{text}"),
            19 => assert_eq!(b, b'.', "{text}"),
            _ => assert!(b.is_ascii_digit(), "{text}"),
        }
    }
    let year: u32 = text[..4].parse().unwrap();
    assert!((2020..2200).contains(&year), "{text}");
}

#[test]
fn a_modification_time_is_shown_as_the_utc_date_of_the_file() {
    let dir = Dir::new();
    let path = dir.join("a.txt");
    let task = read(&path, FileStamper::Modified);
    let mut pie = explain_pie();
    put(&dir, "a.txt", "one");
    build(&mut pie, &task);
    put(&dir, "a.txt", "two");
    build(&mut pie, &task);
    let (_, _, new, text) = file_reason(&pie, &task);
    let FileStamp::Modified(Some(time)) = new else {
        panic!("{new:?}")
    };
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap();
    let nanos = format!(".{:09})", since_epoch.subsec_nanos());
    assert!(text.ends_with(&nanos), "{text} should end with {nanos}");
    let seconds = since_epoch.as_secs() % 60;
    assert!(text.ends_with(&format!(":{seconds:02}{nanos}")), "{text}");
}

#[test]
fn a_provided_file_changed_by_someone_else_is_explained() {
    let dir = Dir::new();
    let path = dir.join("out.txt");
    let task = T::Write(path.clone(), "made");
    let mut pie = explain_pie();
    build(&mut pie, &task);
    dir.remove("out.txt");
    build(&mut pie, &task);
    let (provided, _, _, text) = file_reason(&pie, &task);
    assert!(provided);
    assert!(
        text.starts_with(&format!("provided file {} was deleted", path.display())),
        "{text}"
    );
}

#[test]
fn a_task_whose_required_task_changed_its_output_names_that_task() {
    let (dir, inner, outer, mut pie) = upper_of_a_file_built();
    put(&dir, "a.txt", "two");
    let reasons = build(&mut pie, &outer);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, inner);
    assert!(matches!(&reasons[0].1, Reason::File { path, .. } if *path == dir.join("a.txt")));
    assert_eq!(
        reasons[1],
        (
            outer.clone(),
            Reason::TaskOutput {
                task: inner.clone(),
                output: "two".to_string()
            }
        )
    );
    let text = pie.tracker().explanations()[1].to_string();
    assert_eq!(
        text,
        format!("{outer:?}: the output of required task {inner:?} changed")
    );

    // A new modification time with the same bytes: the reader executes, its output does not change, so the task
    // that requires it does not (early cutoff) and has no explanation.
    let (modified, inner_modified) = (dir.join("b.txt"), read(&dir.join("b.txt"), FileStamper::Modified));
    let outer_modified = T::Upper(Box::new(inner_modified.clone()));
    put(&dir, "b.txt", "same");
    build(&mut pie, &outer_modified);
    write_until_modified(&modified, "same").unwrap();
    assert_eq!(
        build(&mut pie, &outer_modified)
            .iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>(),
        [&inner_modified],
        "early cutoff: only the reader executes"
    );
}

#[test]
fn a_failed_dependency_check_is_explained_with_its_message() {
    let dir = Dir::new();
    put(&dir, "a.txt", "one");
    let path = dir.join("a.txt");
    let task = read(&path, FileStamper::Modified);
    let mut pie = explain_pie();
    build(&mut pie, &task);
    // A symbolic link to itself: stamping it fails ("too many levels of symbolic links"), for root too.
    dir.remove("a.txt");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&path, &path).unwrap();
    #[cfg(windows)]
    std::os::windows::fs::symlink_file(&path, &path).unwrap();
    let reasons = build(&mut pie, &task);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    match &reasons[0].1 {
        Reason::CheckFailed { path: checked, message } => {
            assert_eq!(*checked, path);
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected a failed check, got {other:?}"),
    }
    let text = reasons[0].1.to_string();
    assert!(text.starts_with("checking a dependency failed: "), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn a_task_whose_required_task_fails_while_checked_is_explained() {
    let dir = Dir::new();
    let flag = dir.join("flag");
    let failing = T::PanicIfExists(flag.clone());
    let outer = T::Upper(Box::new(failing.clone()));
    let mut pie = explain_pie();
    build(&mut pie, &outer);
    put(&dir, "flag", "");
    let caught = panic::catch_unwind(AssertUnwindSafe(|| pie.new_session().require(&outer)));
    assert!(caught.is_err());
    let reasons = reasons(&pie);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, failing);
    assert!(
        reasons[0].1.to_string().contains("was created (missing → exists)"),
        "{:?}",
        reasons[0]
    );
    assert_eq!(
        reasons[1],
        (outer, Reason::RequiredTaskFailed { task: failing.clone() })
    );

    // The flag is gone: both failed, so both have no output and execute again.
    dir.remove("flag");
    let outer = T::Upper(Box::new(failing.clone()));
    assert_eq!(
        build(&mut pie, &outer),
        [(outer.clone(), Reason::NoOutput), (failing, Reason::NoOutput)]
    );
}

#[test]
fn a_parallel_build_keeps_the_reason_of_each_task() {
    let dir = Dir::new();
    let names = ["a", "b", "c", "d"];
    let readers = files_and_readers(&dir, &names);
    let all = T::All(readers.clone());
    let mut pie = explain_pie();
    pie.set_threads(2);
    let first = build(&mut pie, &all);
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|(_, reason)| *reason == Reason::NoOutput), "{first:?}");

    put(&dir, "a", "A");
    dir.remove("c");
    put(&dir, "d", "D");
    let reasons = build(&mut pie, &all);
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    for (reader, name, how) in [
        (&readers[0], "a", "changed"),
        (&readers[2], "c", "was deleted"),
        (&readers[3], "d", "changed"),
    ] {
        let reason = pie
            .tracker()
            .reason_of(reader)
            .unwrap_or_else(|| panic!("{name} did not execute"));
        assert_eq!(reason.path(), Some(dir.join(name).as_path()), "{reason}");
        assert!(reason.to_string().contains(how), "{reason}");
    }
    assert_eq!(pie.tracker().reason_of(&readers[1]), None);
    match pie.tracker().reason_of(&all) {
        Some(Reason::TaskOutput { task, output }) => {
            assert_eq!(*task, readers[0], "the first changed dependency in order");
            assert_eq!(output, "A");
        }
        other => panic!("{other:?}"),
    }
}

/// Writes each file of `names` in `dir`, holding its name; returns a reader of each (Hash stamps).
fn files_and_readers(dir: &Dir, names: &[&str]) -> Vec<T> {
    for name in names {
        put(dir, name, name);
    }
    names
        .iter()
        .map(|name| read(&dir.join(name), FileStamper::Hash))
        .collect()
}

/// Writes `text` to the file `name` in `dir`, creating it if needed, so that its modification time changes.
/// A folder with `a.txt` ("one"), a task that reads it with the Hash stamper, a task upper-casing that one's output,
/// and a `Pie` that built the latter.
fn upper_of_a_file_built() -> (Dir, T, T, ExplainPie) {
    let dir = Dir::new();
    put(&dir, "a.txt", "one");
    let inner = read(&dir.join("a.txt"), FileStamper::Hash);
    let outer = T::Upper(Box::new(inner.clone()));
    let mut pie = explain_pie();
    build(&mut pie, &outer);
    (dir, inner, outer, pie)
}

fn put(dir: &Dir, name: &str, text: &str) {
    if dir.join(name).exists() {
        dir.write(name, text);
    } else {
        dir.create(name, text);
    }
}

#[test]
fn a_bottom_up_build_explains_the_reader_by_its_file_and_its_dependent_by_its_output() {
    let (dir, inner, outer, mut pie) = upper_of_a_file_built();
    put(&dir, "a.txt", "two");
    pie.new_session().update_affected_by([dir.join("a.txt")]);
    let reasons = reasons(&pie);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, inner);
    assert!(reasons[0].1.to_string().starts_with("file "), "{reasons:?}");
    assert_eq!(
        reasons[1],
        (
            outer,
            Reason::TaskOutput {
                task: inner,
                output: "two".to_string()
            }
        )
    );
    // Both were scheduled by the one changed file.
    let changed = pie.tracker().changed_files();
    let a = dir.join("a.txt");
    assert_eq!(changed, [Some(a.as_path()), Some(a.as_path())]);
}

#[test]
fn the_changed_file_behind_a_top_down_execution_is_followed_through_required_tasks() {
    let (dir, inner, outer, mut pie) = upper_of_a_file_built();
    let twice = T::Upper(Box::new(outer.clone()));
    build(&mut pie, &twice);
    put(&dir, "a.txt", "two");
    let reasons = build(&mut pie, &twice);
    let tasks: Vec<&T> = reasons.iter().map(|(task, _)| task).collect();
    assert_eq!(tasks, [&inner, &outer, &twice]);
    let a = dir.join("a.txt");
    assert_eq!(pie.tracker().changed_files(), [Some(a.as_path()); 3]);
    // A new task has no changed file behind it, nor has a task that executed because of it.
    let fresh = T::Upper(Box::new(twice.clone()));
    build(&mut pie, &fresh);
    assert_eq!(pie.tracker().changed_files(), [None]);
}

#[test]
fn a_held_back_fork_of_roots_keeps_the_reasons_of_what_executes() {
    let dir = Dir::new();
    let names = ["a", "b", "c"];
    let readers = files_and_readers(&dir, &names);
    let roots: Vec<T> = readers
        .iter()
        .map(|reader| T::Upper(Box::new(reader.clone())))
        .collect();
    let mut pie = explain_pie();
    pie.set_threads(2);
    pie.new_session().require_all(&roots);
    assert_eq!(reasons(&pie).len(), 6);

    // `b`'s reader, below the second root, must execute: the fork of the roots is held back on the calling lane,
    // which checks the first root, then executes `b`'s reader (letting the other lane take the third root).
    put(&dir, "b", "B");
    assert_eq!(pie.new_session().require_all(&roots), ["A", "B", "C"]);
    let reasons = reasons(&pie);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    let reason = pie.tracker().reason_of(&readers[1]).expect("b's reader executed");
    assert_eq!(reason.path(), Some(dir.join("b").as_path()), "{reason}");
    assert!(reason.to_string().contains("changed"), "{reason}");
    match pie.tracker().reason_of(&roots[1]) {
        Some(Reason::TaskOutput { task, output }) => {
            assert_eq!(*task, readers[1]);
            assert_eq!(output, "B");
        }
        other => panic!("{other:?}"),
    }
}
