//! The shared cache (`Pie::set_remote_cache`) end to end, against a real nginx serving Bazel's HTTP remote-cache
//! protocol on a loopback port (`dev_util::nginx`): a second folder with an empty store builds from the cache, an
//! edit misses only what it affects, bad entries and blobs are misses, a server that goes away mid-build costs one
//! warning, a read-only cache never writes, and soundness checks apply to restored tasks.
//!
//! Which tasks ran their code is counted from a log that each execution appends to (`executions.log` in the
//! workspace, which no task depends on): a restored task does not run its code.
//!
//! Without nginx these tests print a notice and pass, except in CI, where they fail: `.ci/run` installs it.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dev_util::nginx::Nginx;
use dev_util::Dir;
use pie::remote::{HttpCache, RemoteCache};
use pie::tracker::writing::WritingTracker;
use pie::{Context, Pie, Task};
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
enum T {
    /// Reads the file (under the workspace `root`).
    Read { root: PathBuf, file: String },
    /// Requires `Read` of `from`, writes it upper-cased to `to`, provides `to`; returns the written path.
    Upper { root: PathBuf, from: String, to: String },
    /// Requires every task with `require_tasks` and joins their outputs.
    All(Vec<T>),
    /// Writes `text` to `file` and provides it.
    Write { root: PathBuf, file: String, text: String },
    /// Stops the nginx on `port` (see `SERVERS`), then requires the tasks one by one. Never cached.
    StopServerThen { port: u16, tasks: Vec<T> },
    /// Sleeps this many milliseconds; returns "slept". Never cached.
    Sleep(u64),
}

/// The servers that a `StopServerThen` task may stop, by port.
static SERVERS: Mutex<Option<HashMap<u16, Nginx>>> = Mutex::new(None);

fn log_execution(root: &Path, task: &T) {
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("executions.log"))
        .unwrap();
    writeln!(log, "{}", label(task)).unwrap();
}

fn label(task: &T) -> String {
    match task {
        T::Read { file, .. } => format!("read {file}"),
        T::Upper { from, .. } => format!("upper {from}"),
        T::All(tasks) => format!("all {}", tasks.len()),
        T::Write { file, text, .. } => format!("write {file} {text}"),
        T::StopServerThen { .. } => "stop server".to_string(),
        T::Sleep(ms) => format!("sleep {ms}"),
    }
}

impl Task for T {
    type Output = String;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
        match self {
            T::Read { root, file } => {
                log_execution(root, self);
                let path = root.join(file);
                context.require_file(&path).unwrap();
                fs::read_to_string(&path).unwrap_or_default()
            }
            T::Upper { root, from, to } => {
                log_execution(root, self);
                let text = context.require_task(&T::Read {
                    root: root.clone(),
                    file: from.clone(),
                });
                let path = root.join(to);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, text.to_uppercase()).unwrap();
                context.provide_file(&path).unwrap();
                path.display().to_string()
            }
            T::All(tasks) => context.require_tasks(tasks).join("+"),
            T::Write { root, file, text } => {
                log_execution(root, self);
                let path = root.join(file);
                fs::write(&path, text).unwrap();
                context.provide_file(&path).unwrap();
                String::new()
            }
            T::StopServerThen { port, tasks } => {
                if let Some(mut server) = SERVERS.lock().unwrap().get_or_insert_with(HashMap::new).remove(port) {
                    server.stop();
                }
                tasks
                    .iter()
                    .map(|task| context.require_task(task))
                    .collect::<Vec<_>>()
                    .join("+")
            }
            T::Sleep(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
                "slept".to_string()
            }
        }
    }

    fn remote_cacheable(&self) -> bool {
        !matches!(self, T::StopServerThen { .. } | T::Sleep(_))
    }
}

/// A workspace folder with three inputs, and the root task that upper-cases each into `out/`.
fn workspace() -> (Dir, T) {
    let dir = Dir::new();
    for (name, text) in [("a.txt", "alpha"), ("b.txt", "beta"), ("c.txt", "gamma")] {
        dir.create(name, text);
    }
    let root = root_task(dir.path());
    (dir, root)
}

fn upper(root: &Path, name: &str) -> T {
    T::Upper {
        root: root.to_path_buf(),
        from: format!("{name}.txt"),
        to: format!("out/{name}.txt"),
    }
}

fn root_task(root: &Path) -> T {
    T::All(["a", "b", "c"].iter().map(|name| upper(root, name)).collect())
}

fn pie_with_cache(server: &Nginx, root: &Path, read_only: bool) -> Pie<T, String> {
    let http = HttpCache::new(&server.url()).unwrap().read_only(read_only);
    let mut pie = Pie::default();
    pie.set_threads(2);
    pie.set_remote_cache(Some(RemoteCache::new(http, root).unwrap()));
    pie
}

/// The executions logged in `dir` since the last call, sorted; the log is emptied.
fn executions(dir: &Dir) -> Vec<String> {
    let path = dir.join("executions.log");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let _ = fs::remove_file(&path);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn files_of(dir: &Dir) -> Vec<(String, String)> {
    ["a", "b", "c"]
        .iter()
        .map(|name| {
            let file = format!("out/{name}.txt");
            let text = fs::read_to_string(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            (file, text)
        })
        .collect()
}

/// The root's output for the workspace at `root`: the written paths, joined.
fn expected_output(root: &Path) -> String {
    ["a", "b", "c"]
        .iter()
        .map(|name| root.join(format!("out/{name}.txt")).display().to_string())
        .collect::<Vec<_>>()
        .join("+")
}

/// Fills the cache from a fresh workspace; returns it.
fn fill(server: &Nginx) -> Dir {
    let (dir, task) = workspace();
    let mut pie = pie_with_cache(server, dir.path(), false);
    assert_eq!(pie.new_session().require(&task), expected_output(dir.path()));
    assert_eq!(executions(&dir).len(), 6, "three reads and three upper-casings");
    let cache = pie.remote_cache().unwrap();
    assert_eq!(cache.traces_uploaded(), 7, "every task, the root too");
    assert_eq!(cache.tasks_restored(), 0);
    dir
}

#[test]
fn a_second_folder_with_an_empty_store_builds_everything_from_the_cache() {
    let Some(server) = Nginx::start() else { return };
    let first = fill(&server);

    let (second, task) = workspace();
    assert_ne!(first.path(), second.path());
    let mut pie = pie_with_cache(&server, second.path(), false);
    // Paths in the output are the second folder's: stored relative to the workspace root.
    assert_eq!(pie.new_session().require(&task), expected_output(second.path()));
    assert_eq!(executions(&second), Vec::<String>::new(), "nothing executed");
    assert_eq!(pie.remote_cache().unwrap().tasks_restored(), 7);
    assert_eq!(files_of(&second), files_of(&first), "byte-identical provided files");
    assert_eq!(files_of(&second)[0].1, "ALPHA");

    // The restored tasks recorded their dependencies: a new session finds nothing to do, and an edit is seen.
    pie.new_session().require(&task);
    assert_eq!(executions(&second), Vec::<String>::new());
    second.write("b.txt", "bravo");
    pie.new_session().require(&task);
    assert_eq!(executions(&second), ["read b.txt", "upper b.txt"]);
    assert_eq!(second.read("out/b.txt"), "BRAVO");
}

#[test]
fn an_edit_misses_only_what_it_affects() {
    let Some(server) = Nginx::start() else { return };
    let _first = fill(&server);

    let (second, task) = workspace();
    second.write("c.txt", "gimel");
    let mut pie = pie_with_cache(&server, second.path(), false);
    assert_eq!(pie.new_session().require(&task), expected_output(second.path()));
    assert_eq!(executions(&second), ["read c.txt", "upper c.txt"]);
    assert_eq!(second.read("out/c.txt"), "GIMEL");
    assert_eq!(second.read("out/a.txt"), "ALPHA");
    // Restored: the reads and upper-casings of a and b, and the root: upper c executed, but its output (the path
    // it wrote) is the one the root's trace recorded.
    assert_eq!(pie.remote_cache().unwrap().tasks_restored(), 5);

    // What the second folder uploaded is found by a third with the same edit.
    let (third, task) = workspace();
    third.write("c.txt", "gimel");
    let mut pie = pie_with_cache(&server, third.path(), true);
    pie.new_session().require(&task);
    assert_eq!(executions(&third), Vec::<String>::new());
    assert_eq!(third.read("out/c.txt"), "GIMEL");
}

/// Every file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().path())
        .flat_map(|path| if path.is_dir() { files_below(&path) } else { vec![path] })
        .collect()
}

#[test]
fn tampered_blobs_and_garbage_entries_are_misses() {
    let Some(server) = Nginx::start() else { return };
    let _first = fill(&server);
    let blobs = files_below(&server.data_dir().join("cas"));
    assert!(!blobs.is_empty());
    let saved: Vec<(PathBuf, Vec<u8>)> = blobs.iter().map(|p| (p.clone(), fs::read(p).unwrap())).collect();
    for blob in &blobs {
        fs::write(blob, b"tampered").unwrap();
    }
    let (second, task) = workspace();
    let mut pie = pie_with_cache(&server, second.path(), true);
    assert_eq!(pie.new_session().require(&task), expected_output(second.path()));
    assert_eq!(
        executions(&second).len(),
        6,
        "every blob is a miss: everything executes"
    );
    assert_eq!(files_of(&second)[1].1, "BETA");
    assert_eq!(pie.remote_cache().unwrap().tasks_restored(), 0);

    // The blobs back, the action entries garbage.
    for (path, bytes) in saved {
        fs::write(path, bytes).unwrap();
    }
    let entries = files_below(&server.data_dir().join("ac"));
    assert_eq!(entries.len(), 7);
    for (index, entry) in entries.iter().enumerate() {
        let garbage: &[u8] = match index % 3 {
            0 => b"\xff\xff\xff garbage",
            1 => b"",
            _ => b"\x0a\x05hello",
        };
        fs::write(entry, garbage).unwrap();
    }
    let (third, task) = workspace();
    let mut pie = pie_with_cache(&server, third.path(), true);
    assert_eq!(pie.new_session().require(&task), expected_output(third.path()));
    assert_eq!(executions(&third).len(), 6);
    assert_eq!(pie.remote_cache().unwrap().tasks_restored(), 0);
}

#[test]
fn a_server_stopped_mid_build_costs_one_failure_and_the_build_goes_on_locally() {
    let Some(server) = Nginx::start() else { return };
    let url = server.url();
    let port = server.port();
    let (dir, _) = workspace();
    let tasks: Vec<T> = ["a", "b", "c"].iter().map(|name| upper(dir.path(), name)).collect();
    SERVERS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(port, server);
    let task = T::StopServerThen { port, tasks };
    let http = HttpCache::new(&url).unwrap();
    let mut pie: Pie<T, String> = Pie::default();
    pie.set_threads(1);
    pie.set_remote_cache(Some(RemoteCache::new(http, dir.path()).unwrap()));
    assert_eq!(pie.new_session().require(&task), expected_output(dir.path()));
    assert_eq!(executions(&dir).len(), 6);
    assert_eq!(files_of(&dir)[2].1, "GAMMA");
    let cache = pie.remote_cache().unwrap();
    assert!(cache.http().unavailable().is_some(), "the client noticed");
    assert_eq!(cache.http().stats().errors, 1, "one failure, then no more requests");
}

#[test]
fn a_read_only_cache_reads_and_never_writes() {
    let Some(server) = Nginx::start() else { return };
    let (dir, task) = workspace();
    let mut pie = pie_with_cache(&server, dir.path(), true);
    pie.new_session().require(&task);
    assert_eq!(executions(&dir).len(), 6);
    assert_eq!(pie.remote_cache().unwrap().traces_uploaded(), 0);
    assert!(
        files_below(&server.data_dir()).is_empty(),
        "nothing written to the server"
    );
}

/// Requires `task` in a new session; the panic message, if it panicked.
fn panic_message(pie: &mut Pie<T, String>, task: &T) -> Option<String> {
    let result = panic::catch_unwind(AssertUnwindSafe(|| pie.new_session().require(task)));
    let payload = result.err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

#[test]
fn a_restored_task_that_provides_a_file_another_task_provides_is_an_overlap() {
    let Some(server) = Nginx::start() else { return };
    let write = |root: &Path, text: &str| T::Write {
        root: root.to_path_buf(),
        file: "shared.txt".to_string(),
        text: text.to_string(),
    };
    // The first folder uploads a writer of shared.txt.
    let first = Dir::new();
    let mut pie = pie_with_cache(&server, first.path(), false);
    pie.new_session().require(&write(first.path(), "one"));

    // The second builds two writers of it: one executes; the other's trace is found, and its replay provides the
    // file, which is an overlap, as in a build without the cache. (A replay that meets a refusal is a miss: the
    // task then executes and meets it itself, so the verdict is the execution's.)
    let second = Dir::new();
    let both = |root: &Path| T::All(vec![write(root, "two"), write(root, "one")]);
    let mut pie = pie_with_cache(&server, second.path(), false);
    pie.set_threads(1);
    let message = panic_message(&mut pie, &both(second.path())).expect("an overlap");
    assert!(message.starts_with("Overlapping provided file"), "{message}");
    assert_eq!(executions(&second), ["write shared.txt one", "write shared.txt two"]);
    assert_eq!(pie.remote_cache().unwrap().tasks_restored(), 0);

    let third = Dir::new();
    let mut local: Pie<T, String> = Pie::default();
    local.set_threads(1);
    let message = panic_message(&mut local, &both(third.path())).expect("an overlap");
    assert!(message.starts_with("Overlapping provided file"), "{message}");
}

#[test]
fn the_build_log_says_which_tasks_were_restored() {
    let Some(server) = Nginx::start() else { return };
    let _first = fill(&server);
    let (second, task) = workspace();
    second.write("a.txt", "aleph");
    let http = HttpCache::new(&server.url()).unwrap();
    let mut pie = Pie::with_tracker(WritingTracker::new(Vec::<u8>::new()));
    pie.set_threads(1);
    pie.set_remote_cache(Some(RemoteCache::new(http, second.path()).unwrap()));
    pie.new_session().require(&task);
    let log = String::from_utf8(pie.tracker().writer().clone()).unwrap();
    // Restored: read and upper of b and c (a's missed); the root's trace saw upper a's output, a path, unchanged.
    assert_eq!(log.matches("⇣ restored from the shared cache").count(), 5, "{log}");
    assert_eq!(executions(&second), ["read a.txt", "upper a.txt"]);
}

#[test]
fn a_task_restored_on_a_worker_replays_its_require_tasks_group_in_parallel() {
    let Some(server) = Nginx::start() else { return };
    // A group within a group: the inner `All` is restored within the outer fork, and its replay requires its own
    // group in a fork of its own, whose slow task (never cached) the other lane, idle after restoring `upper c`,
    // takes; the replaying lane then waits for it. Each build has a bound, so that a lane that hangs fails it.
    let nested = |root: &Path| {
        T::All(vec![
            T::All(vec![upper(root, "a"), T::Sleep(30), upper(root, "b")]),
            upper(root, "c"),
        ])
    };
    let first = workspace().0;
    let mut pie = pie_with_cache(&server, first.path(), false);
    let expected = pie.new_session().require(&nested(first.path()));
    for round in 0..10 {
        let (second, _) = workspace();
        let task = nested(second.path());
        let root = second.path().to_path_buf();
        let (send, receive) = std::sync::mpsc::channel();
        let server_url = server.url();
        std::thread::spawn(move || {
            let http = HttpCache::new(&server_url).unwrap();
            let mut pie: Pie<T, String> = Pie::default();
            pie.set_threads(2);
            pie.set_remote_cache(Some(RemoteCache::new(http, &root).unwrap()));
            let output = pie.new_session().require(&task);
            let _ = send.send((output, pie.remote_cache().unwrap().tasks_restored()));
        });
        let (output, restored) = receive
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: the build did not end: {e}"));
        assert_eq!(
            output,
            expected.replace(first.path().to_str().unwrap(), second.path().to_str().unwrap())
        );
        assert_eq!(
            restored, 8,
            "round {round}: the root, the inner group, three upper-casings and three reads"
        );
        assert_eq!(executions(&second), Vec::<String>::new(), "round {round}");
    }
}
