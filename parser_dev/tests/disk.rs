//! The editor following the disk with real file-system events: [`DiskWatcher`] alone, and feeding an [`App`] as the
//! terminal loop does.
//!
//! Nothing sleeps to wait for the watcher: each test polls for the report it expects, with a generous deadline that
//! fails the test instead of hanging it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dev_util::Dir;
use parser_dev::app::App;
use parser_dev::disk::{DiskWatcher, OnDisk};
use parser_dev::workspace::{Config, LogTarget, Workspace};

/// How long a test waits for a change to be reported before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

const DEBOUNCE: Duration = Duration::from_millis(20);

fn watcher(files: &[PathBuf]) -> DiskWatcher {
    let (watcher, warnings) = DiskWatcher::new(files, DEBOUNCE).expect("start watching");
    assert_eq!(warnings, Vec::<String>::new());
    watcher
}

/// Waits until `watcher` reports `path` holding `expected`, and returns everything it reported meanwhile.
fn wait_for(watcher: &DiskWatcher, path: &Path, expected: &OnDisk) -> Vec<(PathBuf, OnDisk)> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let changes = watcher.changes(Duration::from_millis(100));
        let found = changes.iter().any(|(p, now)| p == path && now == expected);
        seen.extend(changes);
        if found {
            return seen;
        }
    }
    panic!(
        "no report of {} holding {expected:?} within {PATIENCE:?}; reported: {seen:?}",
        path.display()
    );
}

#[test]
fn saves_by_rename_writes_deletions_and_new_files_are_reported() {
    let dir = Dir::new();
    let a = dir.create("a.txt", "one\n");
    let b = dir.create("b.txt", "two\n");
    let c = dir.join("c.txt");
    let watcher = watcher(&[a.clone(), b.clone(), c.clone()]);

    // An editor's atomic save: a temporary file renamed over the original.
    dir.create("a.txt.tmp", "one, renamed\n");
    fs::rename(dir.join("a.txt.tmp"), &a).expect("rename over a.txt");
    let seen = wait_for(&watcher, &a, &OnDisk::Text("one, renamed\n".into()));
    assert!(seen.iter().all(|(p, _)| p == &a), "only a.txt is reported: {seen:?}");

    // Written in place.
    dir.write("b.txt", "two, rewritten\n");
    wait_for(&watcher, &b, &OnDisk::Text("two, rewritten\n".into()));

    // Made, then deleted.
    dir.create("c.txt", "three\n");
    wait_for(&watcher, &c, &OnDisk::Text("three\n".into()));
    dir.remove("c.txt");
    wait_for(&watcher, &c, &OnDisk::Missing);
}

#[test]
fn files_in_several_folders_are_followed_and_others_ignored() {
    let dir = Dir::new();
    dir.create_dir("sub");
    let top = dir.create("top.txt", "1\n");
    let deep = dir.create("sub/deep.txt", "2\n");
    let watcher = watcher(&[top.clone(), deep.clone()]);

    // A file nobody has open, beside one that is: not reported.
    dir.create("sub/other.txt", "x\n");
    dir.write("sub/deep.txt", "2, changed\n");
    let seen = wait_for(&watcher, &deep, &OnDisk::Text("2, changed\n".into()));
    assert!(seen.iter().all(|(p, _)| p == &deep), "{seen:?}");

    dir.write("top.txt", "1, changed\n");
    wait_for(&watcher, &top, &OnDisk::Text("1, changed\n".into()));
}

#[test]
fn a_missing_folder_is_a_warning() {
    let dir = Dir::new();
    let file = dir.join("nowhere/file.txt");
    let (_watcher, warnings) = DiskWatcher::new(&[file], DEBOUNCE).expect("start watching");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("cannot watch"), "{warnings:?}");
}

#[test]
fn a_program_edited_outside_the_editor_updates_its_results() {
    let dir = Dir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    dir.copy_from(source, &["grammar.pest", "program1.txt", "program2.txt"]);
    let config = Config {
        grammar: dir.join("grammar.pest"),
        rule: "main".to_string(),
        programs: vec![dir.join("program1.txt"), dir.join("program2.txt")],
        store: Some(dir.join(".pie").join("parser_dev.store")),
    };
    let (workspace, _) = Workspace::open(&config, LogTarget::Memory(Vec::new()));
    let files: Vec<PathBuf> = std::iter::once(workspace.grammar())
        .chain(workspace.programs())
        .map(|file| file.path.clone())
        .collect();
    let watcher = watcher(&files);
    let mut app = App::new(workspace).expect("open the buffers");
    assert!(app.buffers()[2].feedback().is_ok());

    // Saved by another editor, by rename: a syntax error on line 2.
    dir.create("program2.tmp", "print 1;\nprint ;\n");
    fs::rename(dir.join("program2.tmp"), dir.join("program2.txt")).expect("rename over program2.txt");
    let deadline = Instant::now() + PATIENCE;
    while app.buffers()[2].feedback().is_ok() && Instant::now() < deadline {
        app.disk_changed(watcher.changes(Duration::from_millis(100)));
    }
    let feedback = app.buffers()[2].feedback();
    assert!(
        matches!(feedback, Err(e) if e.contains("program2.txt:2:")),
        "{feedback:?}"
    );
    assert_eq!(app.buffers()[2].text(), "print 1;\nprint ;");
    assert!(!app.buffers()[2].is_modified());
}

#[test]
fn reading_a_file_is_not_a_change() {
    let dir = Dir::new();
    let a = dir.create("a.txt", "one\n");
    let cookie = dir.join("cookie");
    let watcher = watcher(&[a.clone(), cookie.clone()]);
    // Reads (the watcher's own after a change, the build's tasks') are events too, but no change.
    for _ in 0..3 {
        assert_eq!(OnDisk::read(&a), OnDisk::Text("one\n".into()));
    }
    // A change made after the reads: once it is reported, the reads' events have been through the watcher.
    dir.create("cookie", "");
    let seen = wait_for(&watcher, &cookie, &OnDisk::Text(String::new()));
    assert!(seen.iter().all(|(p, _)| p == &cookie), "{seen:?}");
}
