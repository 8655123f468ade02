//! Watch mode with real file-system events (cargo feature `watch`).
//!
//! No test sleeps to wait for the watcher: each waits for a build that shows what it waits for, with a generous
//! timeout that fails the test instead of hanging it. To know that every earlier event has been built, a test
//! writes a *cookie* file that a root of its own reads, and waits for the build that delivers the cookie's new
//! contents (events of one watcher arrive in order, and the debouncer releases an older event no later than a
//! newer one).

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::*;
use dev_util::Dir;
use pie::tracker::Tracker;
use pie::watch::{BuildCause, StopHandle, WatchConfig, WatchError, Watcher};
use pie::{Pie, Task};

/// How long a test waits for a build before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// What a test sees of one build.
#[derive(Debug)]
struct Seen<T: Task> {
    cause: BuildCause,
    changed: Vec<PathBuf>,
    executed: Vec<T>,
    outputs: Vec<T::Output>,
}

/// A watcher running on a thread of its own; the test edits files and waits for the builds it expects.
struct Watching<T: Task, A: Tracker<T>> {
    builds: Receiver<Seen<T>>,
    stop: StopHandle,
    thread: Option<JoinHandle<Result<Watcher<T, A>, WatchError>>>,
    cookie: PathBuf,
    cookie_task: T,
    cookies: u32,
}

impl<T: Task, A: Tracker<T> + 'static> Watching<T, A> {
    /// Runs `watcher`, whose last root must be `cookie_task`, a task that reads `cookie` and returns its contents,
    /// and waits for the first build, which it returns.
    fn start(watcher: Watcher<T, A>, cookie: PathBuf, cookie_task: T) -> (Self, Seen<T>) {
        assert_eq!(
            watcher.roots().last(),
            Some(&cookie_task),
            "the cookie's reader is the last root"
        );
        let (sender, builds) = mpsc::channel();
        let stop = watcher.stop_handle();
        let thread = thread::spawn(move || {
            let mut watcher = watcher;
            watcher.run(|build| {
                let seen = Seen {
                    cause: build.cause().clone(),
                    changed: build.changed().to_vec(),
                    executed: build.executed().cloned().collect(),
                    outputs: build.outputs().to_vec(),
                };
                // The test may have stopped listening (it failed); keep building until stopped.
                let _ = sender.send(seen);
                ControlFlow::Continue(())
            })?;
            Ok(watcher)
        });
        let mut watching = Self {
            builds,
            stop,
            thread: Some(thread),
            cookie,
            cookie_task,
            cookies: 0,
        };
        let first = watching.next("the first build");
        assert_eq!(first.cause, BuildCause::Initial);
        (watching, first)
    }

    /// The next build; fails the test after [`PATIENCE`].
    fn next(&mut self, waiting_for: &str) -> Seen<T> {
        match self.builds.recv_timeout(PATIENCE) {
            Ok(seen) => seen,
            Err(_) => {
                self.stop.stop();
                panic!("no build within {PATIENCE:?} while waiting for {waiting_for}");
            }
        }
    }

    /// Builds up to and including the first for which `done` holds.
    fn wait_for(&mut self, waiting_for: &str, done: impl Fn(&Seen<T>) -> bool) -> Vec<Seen<T>> {
        dev_util::take_until(|| self.next(waiting_for), done)
    }

    /// Writes a new cookie and returns every build up to the one that read it: by then every event from before
    /// the cookie was written has been built.
    fn settle(&mut self, cookie_output: impl Fn(&str) -> T::Output) -> Vec<Seen<T>> {
        self.cookies += 1;
        let text = format!("cookie {}", self.cookies);
        dev_util::write_until_modified(&self.cookie, &text).expect("cannot write the cookie");
        let cookie_task = self.cookie_task.clone();
        let expected = cookie_output(&text);
        self.wait_for(&format!("the build that reads '{text}'"), |seen| {
            seen.executed.contains(&cookie_task) && seen.outputs.last() == Some(&expected)
        })
    }

    /// Stops the watcher and returns it.
    fn stop(mut self) -> Watcher<T, A> {
        self.stop.stop();
        let thread = self.thread.take().expect("stopped twice");
        thread
            .join()
            .expect("the watch thread panicked")
            .expect("the watcher failed")
    }
}

impl<T: Task, A: Tracker<T>> Drop for Watching<T, A> {
    fn drop(&mut self) {
        // A failed test still stops its watcher.
        self.stop.stop();
    }
}

/// A quick debounce keeps the tests short; nothing in them depends on its value.
fn config() -> WatchConfig {
    WatchConfig::default().with_debounce(Duration::from_millis(20))
}

type TestWatching = Watching<TestTask, TestTracker>;

/// Starts watching `root` in a new `TestPie`, with a cookie in `dir`.
fn watch(dir: &Dir, root: &TestTask) -> (TestWatching, Seen<TestTask>) {
    let cookie = dir.create("cookie.txt", "cookie 0");
    let watcher = Watcher::new(test_pie(), vec![root.clone(), read(&cookie)], config());
    TestWatching::start(watcher, cookie.clone(), read(cookie))
}

fn cookie_output(text: &str) -> TestResult {
    ok(text)
}

/// The tasks executed by `builds`, except the cookie's reader.
fn executed_except_cookie(builds: &[Seen<TestTask>], cookie: &Path) -> Vec<TestTask> {
    let cookie_task = read(cookie);
    builds
        .iter()
        .flat_map(|b| b.executed.iter())
        .filter(|t| **t != cookie_task)
        .cloned()
        .collect()
}

fn output_is(expected: &str) -> impl Fn(&Seen<TestTask>) -> bool {
    let expected = ok(expected);
    move |seen| seen.outputs.first() == Some(&expected)
}

#[test]
fn an_edit_rebuilds_only_the_task_that_reads_the_file() {
    let dir = Dir::new();
    let a = dir.create("a.txt", "a");
    let b = dir.create("b.txt", "b");
    let root = seq([read(&a), read(&b)]);
    let (mut watching, first) = watch(&dir, &root);
    assert!(first.executed.contains(&read(&a)) && first.executed.contains(&read(&b)));
    assert_eq!(first.outputs[0], Ok(TestOutput::Unit));

    dir.write(&a, "A");
    let builds = watching.wait_for("the reader of a.txt", |seen| seen.executed.contains(&read(&a)));
    let edit = builds.last().expect("one build at least");
    assert_eq!(edit.cause, BuildCause::Changes);
    assert_eq!(
        edit.executed,
        vec![read(&a), root.clone()],
        "bottom-up: the reader, then its dependent"
    );
    assert!(
        edit.changed.contains(&a),
        "the build names the changed file: {:?}",
        edit.changed
    );
    let later = watching.settle(cookie_output);
    assert!(
        !executed_except_cookie(&builds, &watching.cookie).contains(&read(&b))
            && executed_except_cookie(&later, &watching.cookie).is_empty(),
        "only a.txt's reader and the root executed"
    );
    watching.stop();
}

/// `in.txt` ("text"), a writer that copies it to `out.txt` (and provides it), and a reader of `out.txt` that
/// requires the writer first.
fn copy_then_read() -> (Dir, PathBuf, PathBuf, TestTask, TestTask) {
    let dir = Dir::new();
    let input = dir.create("in.txt", "text");
    let out = dir.join("out.txt");
    let writer = write(read(&input), &out);
    let reader = read_after(writer.clone(), &out);
    (dir, input, out, writer, reader)
}

#[test]
fn files_that_tasks_write_do_not_trigger_builds() {
    let (dir, input, out, _writer, reader) = copy_then_read();
    let (mut watching, _) = watch(&dir, &reader);
    assert_eq!(dir.read(&out), "text");

    // The edit makes the writer write out.txt while the folder is watched: its events must change nothing.
    dir.write(&input, "new text");
    watching.wait_for("the reader of out.txt", output_is("new text"));
    let later = watching.settle(cookie_output);
    assert_eq!(
        executed_except_cookie(&later, &watching.cookie),
        Vec::<TestTask>::new(),
        "out.txt's events (pie's own write) executed something"
    );
    assert_eq!(later.len(), 1, "a build that executed nothing was reported: {later:?}");
    watching.stop();
}

#[test]
fn a_provided_file_changed_by_someone_else_reruns_its_provider() {
    let (dir, _input, out, writer, reader) = copy_then_read();
    let (mut watching, _) = watch(&dir, &reader);

    dir.write(&out, "overwritten");
    let builds = watching.wait_for("the writer of out.txt", |seen| seen.executed.contains(&writer));
    assert_eq!(builds.last().map(|b| &b.outputs[0]), Some(&ok("text")));
    assert_eq!(dir.read(&out), "text", "the provider wrote its file again");
    watching.stop();
}

#[test]
fn a_save_by_rename_is_seen() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "one");
    let (mut watching, _) = watch(&dir, &read(&input));

    // What many editors do: write a temporary file beside the original, then rename it over the original.
    let temp = dir.create("in.txt.tmp~", "two");
    fs::rename(&temp, &input).expect("cannot rename");
    watching.wait_for("the renamed file's contents", output_is("two"));
    watching.stop();
}

#[test]
fn a_truncating_write_is_seen() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "one");
    let (mut watching, _) = watch(&dir, &read(&input));

    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&input)
        .expect("cannot open");
    file.flush().expect("cannot flush");
    file.write_all(b"two, longer").expect("cannot write");
    drop(file);
    watching.wait_for("the rewritten contents", output_is("two, longer"));
    watching.stop();
}

#[test]
fn a_deleted_and_recreated_file_is_seen() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "one");
    let (mut watching, _) = watch(&dir, &read(&input));

    dir.remove(&input);
    watching.wait_for("the missing file", output_is(""));
    dir.create(&input, "two");
    watching.wait_for("the new file", output_is("two"));

    // Both at once, within one debounce window.
    dir.remove(&input);
    dir.create(&input, "three");
    watching.wait_for("the file made again", output_is("three"));
    watching.stop();
}

#[test]
fn a_watched_folder_removed_and_made_again_is_watched_again() {
    let dir = Dir::new();
    let input = dir.create("sub/in.txt", "one");
    let sub = dir.join("sub");
    let (mut watching, _) = watch(&dir, &read(&input));

    fs::remove_dir_all(&sub).expect("cannot remove");
    watching.wait_for("the removed file", output_is(""));
    dir.create(&input, "two");
    watching.wait_for("the file in the new folder", output_is("two"));
    // The new folder's watch is in place: a plain edit is seen.
    dir.write(&input, "three");
    watching.wait_for("the edit in the new folder", output_is("three"));

    // Removed and made again at once: the old watch died with the old folder.
    fs::remove_dir_all(&sub).expect("cannot remove");
    dir.create(&input, "four");
    watching.wait_for("the file in the folder made again", output_is("four"));
    dir.write(&input, "five");
    watching.wait_for("the edit after that", output_is("five"));
    watching.stop();
}

#[test]
fn a_new_dependency_is_watched() {
    let dir = Dir::new();
    let config = dir.create("config.txt", "off");
    // A folder that does not exist yet: its nearest existing ancestor is watched for it.
    let late = dir.join("later/made/new.txt");
    let reader = read(&late);
    let root = TestTask::RequireIfOn(config.clone(), Box::new(reader.clone()));
    let (mut watching, first) = watch(&dir, &root);
    assert!(!first.executed.contains(&reader));

    dir.write(&config, "on");
    watching.wait_for("the new dependency", |seen| seen.executed.contains(&reader));
    dir.create(&late, "made");
    let builds = watching.wait_for("the new file's reader", |seen| seen.executed.contains(&reader));
    assert_eq!(
        builds.last().map(|b| b.executed.clone()),
        Some(vec![reader.clone(), root.clone()]),
        "the reader, then the root that requires it"
    );
    dir.write(&late, "edited");
    watching.wait_for("the edit of the new file", |seen| seen.executed.contains(&reader));
    watching.stop();
}

#[test]
fn a_dependency_in_a_folder_made_later_is_seen() {
    let dir = Dir::new();
    let late = dir.join("a/b/c/in.txt");
    let (mut watching, first) = watch(&dir, &read(&late));
    assert_eq!(first.outputs[0], ok(""));

    // `mkdir -p` and a write: each level appears while the watch stands one level above it.
    dir.create(&late, "here");
    watching.wait_for("the file in the new folders", output_is("here"));
    watching.stop();
}

/// A task that reads a file and, while it executes, lets the test change the file (see
/// `a_change_during_a_build_is_built_next`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Gated {
    Read(PathBuf),
    /// Reads the file, then waits for the test to have edited it.
    ReadAndWait(PathBuf),
}

/// The gate of [`Gated::ReadAndWait`]: the task says it has read, the test says it has edited.
static GATE: std::sync::Mutex<Option<(mpsc::Sender<()>, Receiver<()>)>> = std::sync::Mutex::new(None);

impl Task for Gated {
    type Output = String;
    fn execute<C: pie::Context<Self>>(&self, context: &mut C) -> String {
        let (Gated::Read(path) | Gated::ReadAndWait(path)) = self;
        let mut text = String::new();
        if let Ok(Some(mut file)) = context.require_file(path) {
            std::io::Read::read_to_string(&mut file, &mut text).expect("cannot read");
        }
        if matches!(self, Gated::ReadAndWait(_)) && text == "edit me during the build" {
            let gate = GATE.lock().expect("gate poisoned");
            if let Some((read, edited)) = gate.as_ref() {
                read.send(()).expect("the test is gone");
                edited.recv_timeout(PATIENCE).expect("the test did not edit");
            }
        }
        text
    }
}

#[test]
fn a_change_during_a_build_is_built_next() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "start");
    let cookie = dir.create("cookie.txt", "cookie 0");
    let task = Gated::ReadAndWait(input.clone());
    let watcher = Watcher::new(
        Pie::default(),
        vec![task.clone(), Gated::Read(cookie.clone())],
        config(),
    );
    let (mut watching, _) = Watching::start(watcher, cookie.clone(), Gated::Read(cookie));
    let (read_sender, read) = mpsc::channel();
    let (edited, edited_receiver) = mpsc::channel();
    *GATE.lock().expect("gate poisoned") = Some((read_sender, edited_receiver));

    dir.write(&input, "edit me during the build");
    read.recv_timeout(PATIENCE).expect("the task did not read");
    // The build is running, past the read: this edit must reach the next build.
    dir.write(&input, "edited during the build");
    edited.send(()).expect("the task is gone");
    let builds = watching.wait_for("the edit made during the build", |seen| {
        seen.outputs.first().map(String::as_str) == Some("edited during the build")
    });
    assert!(
        builds.len() >= 2,
        "the build that read the first edit, then the next: {builds:?}"
    );
    watching.stop();
}

#[test]
fn stop_ends_the_run_and_the_pie_stays_usable() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "one");
    let task = read(&input);
    let (watching, _) = watch(&dir, &task);
    let watcher = watching.stop();
    let mut pie = watcher.into_pie();
    dir.write(&input, "two");
    assert_eq!(pie.require(&task), ok("two"));
    assert_eq!(pie.executed(), vec![task]);
}

#[test]
fn breaking_out_of_the_callback_ends_the_run() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "one");
    let mut watcher = Watcher::new(test_pie(), vec![read(&input)], config());
    let mut builds = 0;
    watcher
        .run(|build| {
            builds += 1;
            assert_eq!(build.number(), 1);
            assert_eq!(build.outputs(), &[ok("one")]);
            ControlFlow::Break(())
        })
        .expect("the watcher failed");
    assert_eq!(builds, 1);
}

#[cfg(feature = "serde")]
mod store {
    use super::*;
    use pie::tracker::NoopTracker;
    use pie::StoreFile;
    use serde::{Deserialize, Serialize};

    /// Reads a file: a task that can be saved.
    #[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
    struct ReadFile(PathBuf);

    impl Task for ReadFile {
        type Output = String;
        fn execute<C: pie::Context<Self>>(&self, context: &mut C) -> String {
            let mut text = String::new();
            if let Ok(Some(mut file)) = context.require_file(&self.0) {
                std::io::Read::read_to_string(&mut file, &mut text).expect("cannot read");
            }
            text
        }
    }

    #[test]
    fn stopping_saves_the_store_and_the_next_run_starts_from_it() {
        let dir = Dir::new();
        let input = dir.create("in.txt", "one");
        let cookie = dir.create("cookie.txt", "cookie 0");
        let path = dir.join(".pie/store");
        let store = StoreFile::open(&path).expect("cannot open the store");
        let pie: Pie<ReadFile, String> = store.load(NoopTracker).expect("cannot load");
        let roots = vec![ReadFile(input.clone()), ReadFile(cookie.clone())];
        let watcher = Watcher::new(pie, roots.clone(), config()).save_on_stop(store);
        let (mut watching, _) = Watching::start(watcher, cookie.clone(), ReadFile(cookie.clone()));
        dir.write(&input, "two");
        watching.wait_for("the edit", |seen| {
            seen.outputs.first().map(String::as_str) == Some("two")
        });
        let (_, store) = watching.stop().into_parts();
        drop(store);

        // The next run loads what the first saved: its first build executes nothing.
        let store = StoreFile::try_open(&path).expect("the store is still locked");
        let pie: Pie<ReadFile, String> = store.load(NoopTracker).expect("cannot load the saved store");
        assert_eq!(pie.task_count(), 2);
        let watcher = Watcher::new(pie, roots, config());
        let (watching, first) = Watching::start(watcher, cookie.clone(), ReadFile(cookie));
        assert_eq!(first.executed, Vec::<ReadFile>::new());
        assert_eq!(first.outputs[0], "two");
        watching.stop();
    }
}
