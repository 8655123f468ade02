//! The fallbacks of watch mode: lost events and folders that cannot be watched.
//!
//! Real file-system events throughout, as in `tests/watch.rs`, whose style these tests follow: no sleep decides an
//! outcome; each test waits (with a generous timeout) for the build that shows what it expects, and a *cookie* file
//! read by a root of its own tells when every earlier event has been built. Two things cannot be made for real,
//! so they go through the watcher's insides: a lost-events message (an inotify queue overflow cannot be caused on
//! purpose) is sent down the watcher's own channel, and a folder's watch is refused through `Folders::refuse`
//! (running as root, as CI does, no permission makes a watch fail, and the watch limit is a system-wide setting).
//! One more message is sent that way, an access event, to show that it starts no build. Changes that no event
//! reports are made for real: through a hard link in a folder nobody watches, or in a folder whose watch failed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use dev_util::Dir;
use notify::event::Flag;
use notify_debouncer_full::DebouncedEvent;

use super::*;
use crate::stamp::FileStamper;

/// How long a test waits for a build before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Reads a file; its output is the file's text (empty when it is missing). Its stamp is a hash, so that a file
/// replaced within one tick of the file system's clock is a change too.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct ReadFile(PathBuf);

impl Task for ReadFile {
    type Output = String;
    fn execute<C: crate::Context<Self>>(&self, context: &mut C) -> String {
        let mut text = String::new();
        if let Ok(Some(mut file)) = context.require_file_with_stamper(&self.0, FileStamper::Hash) {
            file.read_to_string(&mut text).expect("cannot read");
        }
        text
    }
}

/// Counts sessions (builds, in the tracker's sense), whether reported or not.
#[derive(Clone, Default)]
struct Sessions(Arc<AtomicUsize>);

impl Tracker<ReadFile> for Sessions {
    fn build_start(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Sessions {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a test sees of one build.
#[derive(Debug)]
struct Seen {
    cause: BuildCause,
    changed: Vec<PathBuf>,
    executed: Vec<ReadFile>,
    /// The input's text, then the cookie's.
    outputs: Vec<String>,
    notices: Vec<String>,
}

/// A watcher of two roots, the reader of an input and the reader of a cookie, running on a thread of its own.
struct Running {
    builds: Receiver<Seen>,
    stop: StopHandle,
    /// The watcher's own channel, to send it what its file watcher would.
    sender: Sender<Message>,
    refuse: folders::Refuse,
    sessions: Sessions,
    thread: Option<JoinHandle<()>>,
    cookie: PathBuf,
    cookies: u32,
}

impl Running {
    /// Watches `input` (and a cookie in `dir`) with `config`, refusing to watch the folders in `refuse` until the
    /// test allows it, and returns the first build.
    fn start(dir: &Dir, input: &Path, config: WatchConfig, refuse: &[PathBuf]) -> (Self, Seen) {
        let cookie = dir.create("cookie.txt", "cookie 0");
        let sessions = Sessions::default();
        let pie = Pie::with_tracker(sessions.clone());
        let roots = vec![ReadFile(input.to_path_buf()), ReadFile(cookie.clone())];
        let watcher = Watcher::new(pie, roots, config);
        watcher
            .refuse
            .lock()
            .expect("refused paths poisoned")
            .extend(refuse.iter().cloned());
        let (sender, builds) = mpsc::channel();
        let mut running = Self {
            builds,
            stop: watcher.stop_handle(),
            sender: watcher.sender.clone(),
            refuse: watcher.refuse.clone(),
            sessions,
            thread: None,
            cookie,
            cookies: 0,
        };
        running.thread = Some(thread::spawn(move || {
            let mut watcher = watcher;
            watcher
                .run(|build| {
                    let seen = Seen {
                        cause: build.cause().clone(),
                        changed: build.changed().to_vec(),
                        executed: build.executed().cloned().collect(),
                        outputs: build.outputs().to_vec(),
                        notices: build.notices().to_vec(),
                    };
                    // The test may have stopped listening (it failed); keep building until stopped.
                    let _ = sender.send(seen);
                    ControlFlow::Continue(())
                })
                .expect("the watcher failed");
        }));
        let first = running.next("the first build");
        assert_eq!(first.cause, BuildCause::Initial);
        (running, first)
    }

    /// The next build; fails the test after [`PATIENCE`].
    fn next(&mut self, waiting_for: &str) -> Seen {
        match self.builds.recv_timeout(PATIENCE) {
            Ok(seen) => seen,
            Err(_) => {
                self.stop.stop();
                panic!("no build within {PATIENCE:?} while waiting for {waiting_for}");
            }
        }
    }

    /// Builds up to and including the first for which `done` holds.
    fn wait_for(&mut self, waiting_for: &str, done: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        dev_util::take_until(|| self.next(waiting_for), done)
    }

    /// Builds up to the one whose input's text is `text`.
    fn wait_for_input(&mut self, text: &str) -> Vec<Seen> {
        self.wait_for(&format!("the input's text '{text}'"), |seen| seen.outputs[0] == text)
    }

    /// Writes a new cookie and returns every build up to the one that read it: by then every event from before
    /// the cookie was written has been built.
    fn settle(&mut self) -> Vec<Seen> {
        self.cookies += 1;
        let text = format!("cookie {}", self.cookies);
        dev_util::write_until_modified(&self.cookie, &text).expect("cannot write the cookie");
        let reader = ReadFile(self.cookie.clone());
        self.wait_for(&format!("the build that reads '{text}'"), |seen| {
            seen.executed.contains(&reader) && seen.outputs[1] == text
        })
    }

    /// Puts a new cookie in place by renaming it from `stage`, a folder nobody watches: one event (a plain write
    /// is several, which the debouncer may hand over in more than one batch), so the build it causes names the
    /// cookie. Returns every build up to the one that read it.
    fn rename_cookie(&mut self, stage: &Path) -> Vec<Seen> {
        self.cookies += 1;
        let text = format!("cookie {}", self.cookies);
        let staged = stage.join("cookie.txt");
        std::fs::write(&staged, &text).expect("cannot write the cookie");
        std::fs::rename(&staged, &self.cookie).expect("cannot rename the cookie");
        self.wait_for(&format!("the build that reads '{text}'"), |seen| {
            seen.outputs[1] == text
        })
    }

    /// Sends the watch loop what its file watcher would.
    fn send(&self, events: DebounceEventResult) {
        self.sender
            .send(Message::Events(events))
            .expect("the watch loop is gone");
    }

    /// Lets `path` be watched from now on.
    fn allow(&self, path: &Path) {
        self.refuse.lock().expect("refused paths poisoned").remove(path);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            // A failed test is failing already; a second panic would abort.
            if thread.join().is_err() && !thread::panicking() {
                panic!("the watch thread panicked");
            }
        }
    }
}

/// A quick debounce keeps the tests short; nothing in them depends on its value.
fn config() -> WatchConfig {
    WatchConfig::default().with_debounce(Duration::from_millis(20))
}

/// What notify sends when the kernel dropped events (an inotify queue overflow).
fn rescan() -> DebounceEventResult {
    let event = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
    Ok(vec![DebouncedEvent::new(event, Instant::now())])
}

/// `in.txt` ("one"), and a hard link to it in `elsewhere/`, a folder that no task depends on and so nobody
/// watches. Writing through the link changes `in.txt` without an event: inotify reports a write to the watch of
/// the folder it went through. That is a change only lost events could hide from a watched folder.
fn input_with_hidden_door() -> (Dir, PathBuf, PathBuf) {
    let dir = Dir::new();
    let input = dir.create("in.txt", "one");
    let link = dir.create_dir("elsewhere").join("door.txt");
    std::fs::hard_link(&input, &link).expect("cannot make a hard link");
    (dir, input, link)
}

/// Changes the input through its hidden door, and checks that the bottom-up builds missed it.
fn change_unseen(running: &mut Running, input: &Path, link: &Path, text: &str) {
    let before = std::fs::read_to_string(input).expect("cannot read the input");
    dev_util::write_until_modified(link, text).expect("cannot write through the link");
    assert_eq!(std::fs::read_to_string(input).expect("cannot read the input"), text);
    let builds = running.settle();
    let reader = ReadFile(input.to_path_buf());
    assert!(
        builds
            .iter()
            .all(|b| !b.executed.contains(&reader) && b.outputs[0] == before),
        "the write through the hard link made an event after all: {builds:?}"
    );
}

#[test]
fn lost_events_make_the_next_build_a_full_check_once() {
    let (dir, input, link) = input_with_hidden_door();
    let (mut running, first) = Running::start(&dir, &input, config(), &[]);
    assert_eq!(first.outputs[0], "one");
    let reader = ReadFile(input.clone());

    // A change whose event is lost, then the message that says events were lost.
    change_unseen(&mut running, &input, &link, "two");
    running.send(rescan());
    let lost = running.next("the full check");
    assert_eq!(
        lost.cause,
        BuildCause::FullCheck("the file watcher lost events".to_string())
    );
    assert_eq!(
        lost.executed,
        vec![reader.clone()],
        "the top-down build found the hidden change"
    );
    assert_eq!(lost.outputs[0], "two");

    // Lost events with nothing changed: the check executes nothing, and is reported all the same.
    running.send(rescan());
    let lost = running.next("the second full check");
    assert_eq!(
        lost.cause,
        BuildCause::FullCheck("the file watcher lost events".to_string())
    );
    assert_eq!(lost.executed, Vec::<ReadFile>::new());
    assert!(lost.notices.is_empty());

    // Said once: the next edit is built bottom-up again.
    dir.write(&input, "three");
    let builds = running.wait_for_input("three");
    assert!(
        builds.iter().all(|b| b.cause == BuildCause::Changes),
        "after the full check, changes are built bottom-up: {builds:?}"
    );
    let edit = builds.last().expect("one build at least");
    assert_eq!(edit.executed, vec![reader]);
    assert!(edit.changed.contains(&input), "{:?}", edit.changed);
    assert!(running.settle().iter().all(|b| b.cause == BuildCause::Changes));
}

#[test]
fn a_watcher_error_makes_a_full_check_that_names_it() {
    let (dir, input, link) = input_with_hidden_door();
    let (mut running, _) = Running::start(&dir, &input, config(), &[]);

    change_unseen(&mut running, &input, &link, "two");
    running.send(Err(vec![
        notify::Error::generic("queue overflow"),
        notify::Error::new(notify::ErrorKind::MaxFilesWatch),
    ]));
    let failed = running.next("the full check");
    assert_eq!(
        failed.cause,
        BuildCause::FullCheck("the file watcher failed: queue overflow; OS file watch limit reached.".to_string())
    );
    assert_eq!(failed.executed, vec![ReadFile(input.clone())]);
    assert_eq!(failed.outputs[0], "two");

    dir.write(&input, "three");
    let builds = running.wait_for_input("three");
    assert!(builds.iter().all(|b| b.cause == BuildCause::Changes), "{builds:?}");
}

/// The cause of every build while a folder cannot be watched.
fn degraded() -> BuildCause {
    BuildCause::FullCheck("some folders cannot be watched".to_string())
}

#[test]
fn a_folder_that_cannot_be_watched_is_polled_until_it_can_be() {
    let dir = Dir::new();
    let input = dir.create("sub/in.txt", "one");
    let sub = dir.join("sub");
    let poll = config().with_poll_interval(Duration::from_millis(30));
    let (mut running, first) = Running::start(&dir, &input, poll, std::slice::from_ref(&sub));
    assert_eq!(first.notices.len(), 1, "{:?}", first.notices);
    let notice = &first.notices[0];
    assert!(
        notice.starts_with(&format!("cannot watch '{}'", sub.display())) && notice.contains("watch limit"),
        "{notice}"
    );

    // Nothing reports this edit: a poll finds it, with a top-down build.
    for text in ["two", "three"] {
        dir.write(&input, text);
        let builds = running.wait_for_input(text);
        let found = builds.last().expect("one build at least");
        assert_eq!(found.cause, degraded());
        assert!(found.changed.is_empty(), "an event named {:?}", found.changed);
        assert_eq!(found.executed, vec![ReadFile(input.clone())]);
        assert!(
            builds.iter().all(|b| b.notices.is_empty()),
            "the failure was said again: {builds:?}"
        );
    }
    // Changes that are reported are built top-down too.
    let builds = running.settle();
    assert!(
        builds.iter().all(|b| b.cause == degraded() && b.notices.is_empty()),
        "{builds:?}"
    );

    // Watching is possible again: the watch is retried after the next build, and edits are events again.
    running.allow(&sub);
    running.settle();
    dir.write(&input, "four");
    let builds = running.wait_for_input("four");
    assert!(builds.iter().all(|b| b.cause == BuildCause::Changes), "{builds:?}");
    let edit = builds.last().expect("one build at least");
    assert!(edit.changed.contains(&input), "{:?}", edit.changed);
    assert!(builds.iter().all(|b| b.notices.is_empty()), "{builds:?}");
}

#[test]
fn while_a_folder_cannot_be_watched_builds_are_top_down_and_polls_keep_their_interval() {
    let dir = Dir::new();
    let input = dir.create("sub/in.txt", "one");
    let sub = dir.join("sub");
    // A folder nobody watches, made before the watcher starts: what is written there makes no event.
    let stage = dir.create_dir("stage");
    // No poll within the test: every build below is caused by an event.
    let poll = config().with_poll_interval(Duration::from_secs(3600));
    let (mut running, first) = Running::start(&dir, &input, poll, std::slice::from_ref(&sub));
    assert_eq!(first.notices.len(), 1, "{:?}", first.notices);
    let sessions = running.sessions.count();
    let cookie = ReadFile(running.cookie.clone());

    // An edit nothing reports, then one that is reported: the build of the second finds the first.
    dir.write(&input, "two");
    let builds = running.rename_cookie(&stage);
    assert_eq!(builds.len(), 1, "a build before the cookie's event: {builds:?}");
    assert_eq!(
        builds[0].changed,
        vec![running.cookie.clone()],
        "not the build of the cookie's event: {builds:?}"
    );
    assert_eq!(builds[0].cause, degraded());
    assert_eq!(builds[0].executed, vec![ReadFile(input.clone()), cookie.clone()]);
    assert_eq!(builds[0].outputs[0], "two");
    assert!(builds[0].notices.is_empty());

    // Events that only say a file was opened start no build (the top-down checks of hashed files open them: they
    // would start the next build, and that one the next).
    running.send(opened(&running.cookie));
    let builds = running.rename_cookie(&stage);
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].executed, vec![cookie]);
    // One session for each cookie's event, none for reads (pie's own, or the one sent), none without an event.
    assert_eq!(running.sessions.count() - sessions, 2, "sessions for two cookies");
}

/// An event that says `path` was opened.
fn opened(path: &Path) -> DebounceEventResult {
    use notify::event::{AccessKind, AccessMode};
    let event = notify::Event::new(EventKind::Access(AccessKind::Open(AccessMode::Any))).add_path(path.to_path_buf());
    Ok(vec![DebouncedEvent::new(event, Instant::now())])
}

#[test]
fn events_that_start_no_build_do_not_put_off_a_poll() {
    let dir = Dir::new();
    let input = dir.create("sub/in.txt", "one");
    let sub = dir.join("sub");
    let poll = config().with_poll_interval(Duration::from_millis(100));
    let (mut running, _) = Running::start(&dir, &input, poll, std::slice::from_ref(&sub));

    // Reads in a watched folder, more often than the poll interval, until the poll has found the edit.
    let (done, stop_reading) = mpsc::channel::<()>();
    let sender = running.sender.clone();
    let cookie = running.cookie.clone();
    let reader = thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop_reading.recv_timeout(Duration::from_millis(10)) {
            if sender.send(Message::Events(opened(&cookie))).is_err() {
                return;
            }
        }
    });
    dir.write(&input, "two");
    let builds = running.wait_for_input("two");
    drop(done);
    reader.join().expect("the reading thread panicked");
    let found = builds.last().expect("one build at least");
    assert_eq!(found.cause, degraded());
    assert!(found.changed.is_empty(), "{:?}", found.changed);
}

/// Waits for an event that says `path` was written.
fn wait_for_write(events: &Receiver<DebounceEventResult>, path: &Path) -> bool {
    events_until_write(events, path).is_some()
}

/// The kinds of the events up to the first that says `path` was written, in order, or `None` when none came.
fn events_until_write(events: &Receiver<DebounceEventResult>, path: &Path) -> Option<Vec<EventKind>> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(Ok(batch)) = events.recv_timeout(left) else {
            continue;
        };
        seen.extend(batch.iter().map(|e| e.kind));
        if batch
            .iter()
            .any(|e| matches!(e.kind, EventKind::Modify(_)) && e.paths.iter().any(|p| p == path))
        {
            return Some(seen);
        }
    }
    None
}

#[test]
fn after_lost_events_every_watch_is_made_anew() {
    let dir = Dir::new();
    let input = dir.create("sub/in.txt", "one");
    let sub = dir.join("sub");
    let mut pie: Pie<ReadFile, String> = Pie::default();
    pie.new_session().require(&ReadFile(input.clone()));
    let file = NormalPath::new(&input)
        .ok()
        .and_then(|p| pie.store.find_file(&p))
        .expect("the input is a dependency");
    let (sender, events) = mpsc::channel();
    let mut watcher = folders::start_watcher(Duration::from_millis(10), None, move |result| {
        let _ = sender.send(result);
    })
    .expect("cannot start watching");
    let mut folders = Folders::default();
    let first = folders.sync(&pie.store, &mut watcher, &[], true);
    assert_eq!(first.rewatched, vec![sub.clone()]);

    // The folder is replaced and the events that said so are lost (to `Folders`, which is not told of them): its
    // watch died with the old folder. A full sync alone does not notice.
    std::fs::remove_dir_all(&sub).expect("cannot remove");
    dir.create(&input, "two");
    folders.events_lost();
    let after = folders.sync(&pie.store, &mut watcher, &[], true);
    assert_eq!(after.rewatched, vec![sub.clone()], "the folder was not watched anew");
    assert_eq!(
        after.pending,
        vec![file],
        "its file must be stamped: it may have changed unseen"
    );

    // The new watch works: a write is an event again.
    dir.write(&input, "three");
    assert!(
        wait_for_write(&events, &input),
        "no event for a write in the folder made anew"
    );
}

/// The watcher asks the operating system for changes only: reading a watched file is no event. Builds read every
/// file they stamp with `Hash`; on Linux each open was an `IN_OPEN` event, and a build that checked a folder of
/// 100,000 files overflowed the inotify queue with its own reads (found by the bench's watch figure for `wide`
/// with `Hash` stamps: every build after the first was a full check for lost events).
#[test]
fn reading_a_watched_file_is_no_event() {
    let dir = Dir::new();
    let input = dir.create("watched/in.txt", "one");
    let (sender, events) = mpsc::channel();
    let mut watcher = folders::start_watcher(Duration::from_millis(10), None, move |result| {
        let _ = sender.send(result);
    })
    .expect("cannot start watching");
    watcher
        .watch(dir.join("watched"), notify::RecursiveMode::NonRecursive)
        .expect("cannot watch the folder");
    for _ in 0..200 {
        std::fs::read(&input).expect("cannot read");
    }
    dir.write(&input, "two");
    // Every event up to the write's: none of them may be an access.
    let seen = events_until_write(&events, &input).expect("no event for the write");
    assert!(
        !seen.iter().any(|kind| matches!(kind, EventKind::Access(_))),
        "reads were events: {seen:?}"
    );
}
