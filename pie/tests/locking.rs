//! `StoreFile`: one process at a time loads, builds and saves a store, so concurrent processes never lose each
//! other's work.
//!
//! The other processes are this test binary run again with `PIE_LOCKING_CHILD` naming a role (see
//! [`child_process`]). Parent and children coordinate through pipes (a child says `child: locked PID` on stdout
//! and holds the store until its stdin closes) and an append-only event log file; no test sleeps to make something
//! happen, and every wait for a child has a generous deadline, so a bug fails the test instead of hanging it.
#![cfg(feature = "serde")]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use dev_util::Dir;
use pie::tracker::NoopTracker;
use pie::{Context, LockError, Pie, StoreFile, Task};
use serde::{Deserialize, Serialize};

/// How long any child may take to reach its next step; far beyond what a working lock needs.
const DEADLINE: Duration = Duration::from_secs(60);

/// The counter's increments: the store's task count is the counter.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
struct Tick(usize);

impl Task for Tick {
    type Output = usize;
    fn execute<C: Context<Self>>(&self, _context: &mut C) -> usize {
        self.0
    }
}

type Counter = Pie<Tick, usize>;

/// Adds one to the counter: requires a task the store does not have yet.
fn increment(pie: &mut Counter) {
    let next = Tick(pie.task_count());
    pie.new_session().require(&next);
}

fn count(store: &Path) -> usize {
    let pie: Counter = Pie::load(store, NoopTracker).expect("loading the counter");
    pie.task_count()
}

/// A folder for one test, with the store's path in it.
struct Fixture {
    dir: Dir,
}

impl Fixture {
    fn new() -> Self {
        Self { dir: Dir::new() }
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store/pie.store")
    }

    /// The lock file beside the store.
    fn lock(&self) -> PathBuf {
        self.dir.join("store/pie.store.lock")
    }

    /// The event log that children append to.
    fn log(&self) -> PathBuf {
        self.dir.join("events")
    }

    fn events(&self) -> Vec<String> {
        let text = fs::read_to_string(self.log()).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }

    /// Runs this test binary again as a child in `role` on this fixture's store.
    fn spawn(&self, role: &str, name: &str) -> ChildProcess {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["child_process", "--exact", "--nocapture", "--test-threads=1"])
            .env("PIE_LOCKING_CHILD", role)
            .env("PIE_LOCKING_NAME", name)
            .env("PIE_LOCKING_STORE", self.store())
            .env("PIE_LOCKING_LOG", self.log())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning a child process");
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().expect("the child's stdout"));
        let stderr = lines(child.stderr.take().expect("the child's stderr"));
        ChildProcess {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }
}

/// The lines of `pipe`, read on a thread so that the test can wait for them with a deadline.
fn lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A running child; killed when dropped before it finished, so a failing test leaves no process behind.
struct ChildProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// The stderr lines read so far.
    stderr_seen: Vec<String>,
}

impl ChildProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to say `child: locked PID` on stdout (the test harness's own output around it is
    /// skipped; it may share the line).
    fn expect_locked(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains("child: ") => {
                    let said = &line[line.find("child: ").unwrap_or_default()..];
                    assert_eq!(said, format!("child: locked {}", self.pid()), "child {}", self.name);
                    return;
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("child {} did not lock the store in time", self.name),
                Err(RecvTimeoutError::Disconnected) => {
                    let stderr = self.drain_stderr();
                    panic!("child {} ended before it locked the store:\n{stderr}", self.name)
                }
            }
        }
    }

    /// Waits for a line on stderr that starts with `prefix`, and returns it.
    fn expect_stderr(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("child {} did not say {prefix:?} in time", self.name),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "child {} ended without saying {prefix:?}:\n{}",
                    self.name,
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Closes the child's stdin: a holder then releases the store and exits.
    fn release(&mut self) {
        self.stdin = None;
    }

    /// Waits (with the deadline) for the child to exit and checks that it succeeded; returns its whole stderr.
    fn finish(mut self) -> String {
        self.release();
        let status = self.wait();
        let stderr = self.drain_stderr();
        assert!(status.success(), "child {} failed ({status}):\n{stderr}", self.name);
        stderr
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a child") {
                return status;
            }
            assert!(Instant::now() < deadline, "child {} did not exit in time", self.name);
            // Polling a process's exit, not timing the test: the assertions never depend on this interval.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every stderr line, once the child has exited (or closed stderr).
    fn drain_stderr(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        while let Ok(line) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.stderr_seen.push(line);
        }
        self.stderr_seen.join("\n")
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Appends a line to the event log shared by the children (one `write` per line, in append mode).
fn log_event(log: &Path, event: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("opening the event log");
    file.write_all(format!("{event}\n").as_bytes())
        .expect("writing the event log");
}

/// The entry of a child process; in an ordinary test run (no role set), a test of that entry itself: a child
/// started with the role `count` completes its cycles under the lock.
///
/// Roles: `hold` and `open` take the store with `StoreFile::open`, log `NAME locked`, say `child: locked PID` on
/// stdout, hold the store until stdin closes, log `NAME releasing` and release it; `count` runs five
/// load–increment–save cycles, each under its own `StoreFile`.
#[test]
fn child_process() {
    let Some(role) = std::env::var_os("PIE_LOCKING_CHILD") else {
        let fixture = Fixture::new();
        fixture.spawn("count", "the only counter").finish();
        assert_eq!(count(&fixture.store()), 5);
        return;
    };
    let var = |name| std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set"));
    let name = var("PIE_LOCKING_NAME").to_string_lossy().into_owned();
    let store = PathBuf::from(var("PIE_LOCKING_STORE"));
    let log = PathBuf::from(var("PIE_LOCKING_LOG"));
    match role.to_str() {
        Some("hold" | "open") => {
            let handle = StoreFile::open(&store).expect("opening the store");
            log_event(&log, &format!("{name} locked"));
            println!("child: locked {}", std::process::id());
            std::io::stdout().flush().expect("flushing stdout");
            std::io::stdin()
                .read_to_end(&mut Vec::new())
                .expect("reading stdin to its end");
            log_event(&log, &format!("{name} releasing"));
            drop(handle);
        }
        Some("count") => {
            for _ in 0..5 {
                let handle = StoreFile::open(&store).expect("opening the store");
                let mut pie: Counter = handle.load(NoopTracker).expect("loading the store");
                increment(&mut pie);
                handle.save(&pie).expect("saving the store");
            }
        }
        _ => panic!("unknown child role {role:?}"),
    }
}

#[test]
fn try_open_fails_while_another_process_holds_the_store_and_names_it() {
    let fixture = Fixture::new();
    let mut holder = fixture.spawn("hold", "holder");
    holder.expect_locked();

    let error = StoreFile::try_open(fixture.store()).expect_err("the child holds the store");
    let LockError::Held { path, pid } = &error else {
        panic!("expected Held, got {error:?}");
    };
    assert_eq!(path, &fixture.store());
    assert_eq!(*pid, Some(holder.pid()));
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "the pie store '{}' is in use by process {}",
            fixture.store().display(),
            holder.pid()
        )
    );

    holder.finish();
    let handle = StoreFile::try_open(fixture.store()).expect("the child released the store");
    assert_eq!(handle.path(), fixture.store());
}

#[test]
fn open_waits_until_the_holder_is_done_and_says_once_who_holds_the_store() {
    let fixture = Fixture::new();
    let mut holder = fixture.spawn("hold", "holder");
    holder.expect_locked();

    let mut waiter = fixture.spawn("open", "waiter");
    let notice = waiter.expect_stderr("pie: waiting for the store");
    assert_eq!(
        notice,
        format!(
            "pie: waiting for the store '{}', held by process {}",
            fixture.store().display(),
            holder.pid()
        )
    );
    assert_eq!(
        fixture.events(),
        ["holder locked"],
        "the waiter must not have the store yet"
    );

    holder.finish();
    waiter.expect_locked();
    let stderr = waiter.finish();
    assert_eq!(stderr.matches("pie: waiting").count(), 1, "said once: {stderr}");
    assert_eq!(
        fixture.events(),
        ["holder locked", "holder releasing", "waiter locked", "waiter releasing"]
    );
}

#[test]
fn a_killed_holder_releases_the_store() {
    let fixture = Fixture::new();
    let mut holder = fixture.spawn("hold", "holder");
    holder.expect_locked();
    assert!(matches!(
        StoreFile::try_open(fixture.store()),
        Err(LockError::Held { .. })
    ));

    holder.child.kill().expect("killing the holder");
    holder.wait();
    StoreFile::try_open(fixture.store()).expect("the operating system released the killed holder's lock");
    assert_eq!(fixture.events(), ["holder locked"]);
}

#[test]
fn concurrent_processes_lose_no_increment() {
    const PROCESSES: usize = 6;
    let fixture = Fixture::new();
    let children: Vec<ChildProcess> = (0..PROCESSES)
        .map(|i| fixture.spawn("count", &format!("counter {i}")))
        .collect();
    for child in children {
        child.finish();
    }
    assert_eq!(count(&fixture.store()), PROCESSES * 5);
}

/// Why the lock exists: two cycles that interleave without it lose the first one's work.
#[test]
fn without_the_lock_interleaved_cycles_lose_an_increment() {
    let fixture = Fixture::new();
    let store = fixture.store();
    let mut first: Counter = Pie::load(&store, NoopTracker).unwrap();
    let mut second: Counter = Pie::load(&store, NoopTracker).unwrap();
    increment(&mut first);
    increment(&mut second);
    first.save(&store).unwrap();
    second.save(&store).unwrap();
    assert_eq!(count(&store), 1, "two increments, one survives");
}

#[test]
fn a_second_handle_in_this_process_is_refused_until_the_first_is_dropped() {
    let fixture = Fixture::new();
    let handle = StoreFile::open(fixture.store()).unwrap();
    let error = StoreFile::try_open(fixture.store()).expect_err("held by the first handle");
    assert!(
        matches!(error, LockError::Held { pid: Some(pid), .. } if pid == std::process::id()),
        "{error:?}"
    );
    assert!(error.to_string().ends_with("(this process)"), "{error}");
    drop(handle);
    StoreFile::try_open(fixture.store()).expect("dropping the handle released the store");
}

#[test]
fn a_holder_that_wrote_no_id_is_another_process() {
    let fixture = Fixture::new();
    fixture.dir.create_dir("store");
    // A lock taken by something other than `StoreFile`: nothing in the file.
    let foreign = File::create(fixture.lock()).unwrap();
    foreign.lock().unwrap();
    let error = StoreFile::try_open(fixture.store()).expect_err("the foreign lock holds");
    assert!(matches!(error, LockError::Held { pid: None, .. }), "{error:?}");
    assert!(error.to_string().ends_with("is in use by another process"), "{error}");
}

#[test]
fn open_creates_the_folder_and_a_lock_file_beside_the_store() {
    let fixture = Fixture::new();
    let handle = StoreFile::open(fixture.store()).unwrap();
    assert_eq!(handle.lock_path(), fixture.lock());
    assert!(handle.lock_path().is_file());
    let mut pie: Counter = handle.load(NoopTracker).expect("no store yet: an empty Pie");
    assert_eq!(pie.task_count(), 0);
    increment(&mut pie);
    handle.save(&pie).unwrap();
    drop(handle);
    assert!(fixture.lock().is_file(), "never deleted");
    assert_eq!(count(&fixture.store()), 1);
}

#[test]
fn a_path_without_a_file_name_is_an_error_naming_it() {
    let fixture = Fixture::new();
    let path = fixture.dir.join("missing/..");
    let error = StoreFile::try_open(&path).expect_err("no file name");
    assert!(matches!(&error, LockError::Io { .. }), "{error:?}");
    assert_eq!(error.path(), path);
    assert_eq!(
        error.to_string(),
        format!(
            "cannot lock the pie store '{}': choosing the lock file's name failed: the path does not name a file",
            path.display()
        )
    );
}

#[test]
fn a_folder_is_not_a_store() {
    let fixture = Fixture::new();
    let error = StoreFile::try_open(fixture.dir.path()).expect_err("a folder");
    assert_eq!(error.path(), fixture.dir.path());
    assert!(
        error
            .to_string()
            .ends_with("checking the path failed: the path names a folder, not a store file"),
        "{error}"
    );
    let mut beside = fixture.dir.path().file_name().unwrap().to_os_string();
    beside.push(".lock");
    assert!(
        !fixture.dir.path().with_file_name(beside).exists(),
        "no lock file beside the folder"
    );
}
