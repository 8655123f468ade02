//! Test tasks and helpers shared by pie's integration tests.
//!
//! [`TestTask`] is a small language of build steps (return a string, read a file, write a file, transform, require
//! other tasks, misbehave on purpose) from which every test builds its graph. [`TestPie`] is a `Pie` that records the
//! events of each build with an [`EventTracker`], and optionally logs them to stderr (set `PIE_TEST_LOG=1`), and
//! [`TestPieExt`] has the assertions most tests start with.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::any::Any;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use dev_util::write_until_modified;
use pie::stamp::{FileStamper, OutputStamper};
use pie::tracker::event::EventTracker;
use pie::tracker::writing::WritingTracker;
use pie::tracker::CompositeTracker;
use pie::{Context, Pie, Task};

/// The start of the message of a panic on overlapping provided files.
pub const OVERLAP: &str = "Overlapping provided file";
/// The start of the message of a panic on a hidden dependency.
pub const HIDDEN: &str = "Hidden dependency";
/// The start of the message of a panic on a cyclic task dependency.
pub const CYCLE: &str = "Cyclic task dependency";

/// Every file stamper, for tests that hold for each of them.
pub const STAMPERS: [FileStamper; 3] = [FileStamper::Exists, FileStamper::Modified, FileStamper::Hash];

/// A successful output of a [`TestTask`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum TestOutput {
    String(String),
    Unit,
}

impl TestOutput {
    /// The string; panics for [`TestOutput::Unit`].
    pub fn as_str(&self) -> &str {
        match self {
            TestOutput::String(s) => s,
            TestOutput::Unit => panic!("expected a string output, got Unit"),
        }
    }

    pub fn into_string(self) -> String {
        match self {
            TestOutput::String(s) => s,
            TestOutput::Unit => panic!("expected a string output, got Unit"),
        }
    }
}

impl From<&str> for TestOutput {
    fn from(s: &str) -> Self {
        TestOutput::String(s.to_string())
    }
}

/// What a [`TestTask`] returns: task failures are I/O error kinds, so that outputs stay comparable.
pub type TestResult = Result<TestOutput, ErrorKind>;

/// `Ok(TestOutput::String(s))`.
pub fn ok(s: &str) -> TestResult {
    Ok(TestOutput::from(s))
}

/// The test tasks. Each variant documents what it does; string-producing tasks are those whose output is
/// `Ok(TestOutput::String(_))`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum TestTask {
    /// Returns the string.
    Return(&'static str),
    /// Requires the file with the stamper and returns its contents (`""` when it is missing).
    ReadFile(PathBuf, FileStamper),
    /// Requires the string-producing task, writes its string to the file with `write_until_modified`, then provides
    /// the file with the stamper. Returns `Unit`.
    WriteFile(Box<TestTask>, PathBuf, FileStamper),
    /// Lower-cases the string of the task.
    ToLower(Box<TestTask>),
    /// Upper-cases the string of the task.
    ToUpper(Box<TestTask>),
    /// Requires the tasks in order, propagating the first error. Returns `Unit`.
    Sequence(Vec<TestTask>),
    /// Requires the task and returns its output.
    Require(Box<TestTask>),
    /// Requires the task with the `Inconsequential` stamper and returns `Unit` (ignoring its output, errors too).
    RequireInconsequential(Box<TestTask>),
    /// Requires the task twice in one execution and returns its output.
    RequireTwice(Box<TestTask>),
    /// Requires itself.
    RequireSelf,
    /// Requires [`TestTask::RequireCycleB`].
    RequireCycleA,
    /// Requires [`TestTask::RequireCycleA`].
    RequireCycleB,
    /// Requires the task (the provider), then reads the file with the stamper: the sound way to read a file that
    /// another task writes.
    ReadAfter(Box<TestTask>, PathBuf, FileStamper),
    /// Reads the file twice (two require-file dependencies) and returns the contents.
    ReadFileTwice(PathBuf, FileStamper),
    /// Writes the string of the task to the file and provides it, then requires the file again and returns what it
    /// reads back.
    WriteThenReadBack(Box<TestTask>, PathBuf, FileStamper),
    /// Writes the string of the task to the file and provides it twice (an overlap with itself).
    ProvideTwice(Box<TestTask>, PathBuf),
    /// Requires the file, then writes its contents upper-cased back to it and provides it (an in-place edit).
    EditInPlace(PathBuf),
    /// Requires the first file, then writes its contents upper-cased to the second file and provides it. With two
    /// spellings of one file, an in-place edit.
    CopyUpper(PathBuf, PathBuf),
    /// Requires the flag file with the `Exists` stamper and panics when it exists; otherwise requires the task
    /// and returns its output.
    PanicIfExists(PathBuf, Box<TestTask>),
    /// Requires the file with the stamper and returns `"none"` when nothing is there (`Ok(None)`), otherwise
    /// `"some:"` followed by its contents; an I/O error from `require_file` becomes `Err(kind)`.
    ProbeFile(PathBuf, FileStamper),
    /// Requires the file with the stamper, *then* requires the task; returns the file's contents. Reading before
    /// requiring the file's provider is a hidden dependency.
    ReadThenRequire(PathBuf, FileStamper, Box<TestTask>),
    /// Reads the config file; requires the task only while the config says `on`. Returns `Unit` either way.
    RequireIfOn(PathBuf, Box<TestTask>),
    /// Reads the config file; while it says `on`, writes the text to the file and provides it. Returns `Unit`.
    WriteIfOn(PathBuf, &'static str, PathBuf),
    /// Requires the task inside `catch_unwind` (a task that collects failures), then reads the file. Returns
    /// `"caught:"` or `"ok:"` followed by the file's contents.
    CatchThenRead(Box<TestTask>, PathBuf),
    /// Link `index` of a chain of `len` tasks: requires link `index + 1`; the last link requires the bottom task.
    /// Returns the bottom task's output.
    Chain(u32, u32, Box<TestTask>),
    /// Requires the first task; while its string output is `on`, requires the second task. Returns `Unit`. What
    /// it requires depends on another task's output, not on a file it reads itself.
    RequireIfOutputOn(Box<TestTask>, Box<TestTask>),
}

/// The message of a [`TestTask::PanicIfExists`] panic.
pub const TASK_PANIC_MESSAGE: &str = "test task panicked on purpose";

fn require_string<C: Context<TestTask>>(context: &mut C, task: &TestTask) -> Result<String, ErrorKind> {
    Ok(context.require_task(task)?.into_string())
}

fn read_file<C: Context<TestTask>>(context: &mut C, path: &Path, stamper: FileStamper) -> Result<String, ErrorKind> {
    let mut text = String::new();
    if let Some(mut file) = context.require_file_with_stamper(path, stamper).map_err(|e| e.kind())? {
        file.read_to_string(&mut text).map_err(|e| e.kind())?;
    }
    Ok(text)
}

fn write_and_provide<C: Context<TestTask>>(
    context: &mut C,
    text: &str,
    path: &Path,
    stamper: FileStamper,
) -> Result<(), ErrorKind> {
    write_until_modified(path, text.as_bytes()).map_err(|e| e.kind())?;
    context.provide_file_with_stamper(path, stamper).map_err(|e| e.kind())
}

impl Task for TestTask {
    type Output = TestResult;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> Self::Output {
        use TestTask::*;
        match self {
            Return(s) => ok(s),
            ReadFile(path, stamper) => Ok(TestOutput::String(read_file(context, path, *stamper)?)),
            WriteFile(task, path, stamper) => {
                let text = require_string(context, task)?;
                write_and_provide(context, &text, path, *stamper)?;
                Ok(TestOutput::Unit)
            }
            ToLower(task) => Ok(TestOutput::String(require_string(context, task)?.to_lowercase())),
            ToUpper(task) => Ok(TestOutput::String(require_string(context, task)?.to_uppercase())),
            Sequence(tasks) => {
                for task in tasks {
                    context.require_task(task)?;
                }
                Ok(TestOutput::Unit)
            }
            Require(task) => context.require_task(task),
            RequireInconsequential(task) => {
                let _ = context.require_task_with_stamper(task, OutputStamper::Inconsequential);
                Ok(TestOutput::Unit)
            }
            RequireTwice(task) => {
                let first = context.require_task(task);
                let second = context.require_task(task);
                assert_eq!(
                    first, second,
                    "requiring a task twice in one execution gave two outputs"
                );
                second
            }
            RequireSelf => context.require_task(self),
            RequireCycleA => context.require_task(&RequireCycleB),
            RequireCycleB => context.require_task(&RequireCycleA),
            ReadAfter(provider, path, stamper) => {
                context.require_task(provider)?;
                Ok(TestOutput::String(read_file(context, path, *stamper)?))
            }
            ReadFileTwice(path, stamper) => {
                let first = read_file(context, path, *stamper)?;
                let second = read_file(context, path, *stamper)?;
                assert_eq!(first, second, "one file read twice in one execution gave two contents");
                Ok(TestOutput::String(second))
            }
            WriteThenReadBack(task, path, stamper) => {
                let text = require_string(context, task)?;
                write_and_provide(context, &text, path, *stamper)?;
                Ok(TestOutput::String(read_file(context, path, *stamper)?))
            }
            ProvideTwice(task, path) => {
                let text = require_string(context, task)?;
                write_and_provide(context, &text, path, FileStamper::Modified)?;
                context.provide_file(path).map_err(|e| e.kind())?;
                Ok(TestOutput::Unit)
            }
            EditInPlace(path) => {
                let text = read_file(context, path, FileStamper::Modified)?;
                write_and_provide(context, &text.to_uppercase(), path, FileStamper::Modified)?;
                Ok(TestOutput::Unit)
            }
            CopyUpper(from, to) => {
                let text = read_file(context, from, FileStamper::Modified)?;
                write_and_provide(context, &text.to_uppercase(), to, FileStamper::Modified)?;
                Ok(TestOutput::Unit)
            }
            PanicIfExists(flag, task) => {
                if context
                    .require_file_with_stamper(flag, FileStamper::Exists)
                    .map_err(|e| e.kind())?
                    .is_some()
                {
                    panic!("{TASK_PANIC_MESSAGE}");
                }
                context.require_task(task)
            }
            ProbeFile(path, stamper) => match context
                .require_file_with_stamper(path, *stamper)
                .map_err(|e| e.kind())?
            {
                None => ok("none"),
                Some(mut file) => {
                    let mut text = String::new();
                    file.read_to_string(&mut text).map_err(|e| e.kind())?;
                    Ok(TestOutput::String(format!("some:{text}")))
                }
            },
            ReadThenRequire(path, stamper, task) => {
                let text = read_file(context, path, *stamper)?;
                context.require_task(task)?;
                Ok(TestOutput::String(text))
            }
            RequireIfOn(config, task) => {
                if read_file(context, config, FileStamper::Modified)? == "on" {
                    context.require_task(task)?;
                }
                Ok(TestOutput::Unit)
            }
            WriteIfOn(config, text, path) => {
                if read_file(context, config, FileStamper::Modified)? == "on" {
                    write_and_provide(context, text, path, FileStamper::Modified)?;
                }
                Ok(TestOutput::Unit)
            }
            CatchThenRead(task, path) => {
                let caught = panic::catch_unwind(AssertUnwindSafe(|| context.require_task(task))).is_err();
                let text = read_file(context, path, FileStamper::Modified)?;
                Ok(TestOutput::String(format!(
                    "{}:{text}",
                    if caught { "caught" } else { "ok" }
                )))
            }
            RequireIfOutputOn(condition, task) => {
                if require_string(context, condition)? == "on" {
                    context.require_task(task)?;
                }
                Ok(TestOutput::Unit)
            }
            Chain(index, len, bottom) => {
                if index + 1 < *len {
                    context.require_task(&Chain(index + 1, *len, bottom.clone()))
                } else {
                    context.require_task(bottom)
                }
            }
        }
    }
}

// Constructors that keep test setup short.

pub fn ret(s: &'static str) -> TestTask {
    TestTask::Return(s)
}

pub fn read(path: impl Into<PathBuf>) -> TestTask {
    TestTask::ReadFile(path.into(), FileStamper::Modified)
}

pub fn read_with(path: impl Into<PathBuf>, stamper: FileStamper) -> TestTask {
    TestTask::ReadFile(path.into(), stamper)
}

pub fn write(task: TestTask, path: impl Into<PathBuf>) -> TestTask {
    TestTask::WriteFile(Box::new(task), path.into(), FileStamper::Modified)
}

pub fn write_with(task: TestTask, path: impl Into<PathBuf>, stamper: FileStamper) -> TestTask {
    TestTask::WriteFile(Box::new(task), path.into(), stamper)
}

pub fn read_after(provider: TestTask, path: impl Into<PathBuf>) -> TestTask {
    TestTask::ReadAfter(Box::new(provider), path.into(), FileStamper::Modified)
}

pub fn to_lower(task: TestTask) -> TestTask {
    TestTask::ToLower(Box::new(task))
}

pub fn to_upper(task: TestTask) -> TestTask {
    TestTask::ToUpper(Box::new(task))
}

pub fn seq(tasks: impl IntoIterator<Item = TestTask>) -> TestTask {
    TestTask::Sequence(tasks.into_iter().collect())
}

pub fn require(task: TestTask) -> TestTask {
    TestTask::Require(Box::new(task))
}

pub fn chain(len: u32, bottom: TestTask) -> TestTask {
    TestTask::Chain(0, len, Box::new(bottom))
}

pub fn panic_if_exists(flag: impl Into<PathBuf>, task: TestTask) -> TestTask {
    TestTask::PanicIfExists(flag.into(), Box::new(task))
}

/// The writer of a [`TestPie`]'s build log: stderr with `PIE_TEST_LOG=1`, nowhere otherwise.
pub type LogWriter = Box<dyn Write + Send>;

/// The tracker of a [`TestPie`]: events for assertions, and an optional log.
pub type TestTracker = CompositeTracker<EventTracker<TestTask, TestResult>, WritingTracker<LogWriter>>;

pub type TestPie = Pie<TestTask, TestResult, TestTracker>;

/// A `Pie` for tests: records events, and logs each build to stderr when `PIE_TEST_LOG` is set.
pub fn test_pie() -> TestPie {
    Pie::with_tracker(test_pie_tracker())
}

/// The tracker of a [`test_pie`], for loading a store into a `TestPie`.
pub fn test_pie_tracker() -> TestTracker {
    let log: LogWriter = if std::env::var_os("PIE_TEST_LOG").is_some() {
        Box::new(io::stderr())
    } else {
        Box::new(io::sink())
    };
    CompositeTracker(EventTracker::default(), WritingTracker::new(log))
}

/// Assertions on a [`TestPie`]; each `require*` method builds in a new session.
pub trait TestPieExt {
    /// The events of the last build.
    fn events(&self) -> &EventTracker<TestTask, TestResult>;
    /// Requires `task` in a new session; fails the test on a dependency-check error.
    fn require(&mut self, task: &TestTask) -> TestResult;
    /// Requires `task` in a new session, then runs `check` on the events of that build.
    fn require_then_assert(
        &mut self,
        task: &TestTask,
        check: impl FnOnce(&EventTracker<TestTask, TestResult>),
    ) -> TestResult;
    /// Requires `task` in a new session and asserts that no task executed.
    fn require_then_assert_no_execute(&mut self, task: &TestTask) -> TestResult;
    /// Requires `task` in a new session and asserts that it (and only it) executed, once.
    fn require_then_assert_one_execute(&mut self, task: &TestTask) -> TestResult;
    /// Requires `task` in a new session and asserts that exactly `expected` executed, in that order.
    fn require_then_assert_executed(&mut self, task: &TestTask, expected: &[&TestTask]) -> TestResult;
    /// The tasks that executed in the last build, in the order they started.
    fn executed(&self) -> Vec<TestTask>;
}

impl TestPieExt for TestPie {
    fn events(&self) -> &EventTracker<TestTask, TestResult> {
        &self.tracker().0
    }

    fn require(&mut self, task: &TestTask) -> TestResult {
        let mut session = self.new_session();
        let output = session.require(task);
        // A dependency check that failed made a task execute again: a test that does not expect it would be
        // asserting the wrong thing. Tests of failing checks use a `Session` directly.
        assert!(
            session.dependency_check_errors().is_empty(),
            "unexpected dependency-check errors: {:?}",
            session.dependency_check_errors()
        );
        output
    }

    fn require_then_assert(
        &mut self,
        task: &TestTask,
        check: impl FnOnce(&EventTracker<TestTask, TestResult>),
    ) -> TestResult {
        let output = self.require(task);
        check(self.events());
        output
    }

    fn require_then_assert_no_execute(&mut self, task: &TestTask) -> TestResult {
        self.require_then_assert(task, |events| {
            assert!(
                !events.any_execute(),
                "expected no task to execute, but these did: {:?}",
                events.executed_tasks()
            );
        })
    }

    fn require_then_assert_one_execute(&mut self, task: &TestTask) -> TestResult {
        self.require_then_assert(task, |events| {
            assert_eq!(
                events.executed_tasks(),
                vec![task],
                "expected only {task:?} to execute, once"
            );
        })
    }

    fn require_then_assert_executed(&mut self, task: &TestTask, expected: &[&TestTask]) -> TestResult {
        self.require_then_assert(task, |events| {
            assert_eq!(events.executed_tasks(), expected, "executed tasks differ");
        })
    }

    fn executed(&self) -> Vec<TestTask> {
        self.events().executed_tasks().into_iter().cloned().collect()
    }
}

/// The output of `task` executed from scratch, without incrementality (files it writes are written).
pub fn clean_output(task: &TestTask) -> TestResult {
    pie::context::non_incremental::NonIncrementalContext.require(task)
}

/// Runs `f`, returning the message of its panic as `Err`.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(panic_message)
}

/// The message of a panic payload.
pub fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Runs `f` and returns its panic message; fails the test when `f` does not panic.
pub fn expect_panic<R: std::fmt::Debug>(f: impl FnOnce() -> R) -> String {
    match catch(f) {
        Ok(value) => panic!("expected a panic, but got {value:?}"),
        Err(message) => message,
    }
}

/// Whether `message` reports a broken invariant of pie itself: those panics start their text with `BUG:`. The
/// colon matters: a message may name a temporary directory such as `/tmp/.tmpMBUGtq`, whose name is alphanumeric.
pub fn reports_internal_bug(message: &str) -> bool {
    message.contains("BUG:")
}

/// Asserts that `message` starts with `prefix`, is not an internal bug (see [`reports_internal_bug`]), and contains
/// each of `mentions`.
pub fn assert_message(message: &str, prefix: &str, mentions: &[&str]) {
    assert!(
        message.starts_with(prefix),
        "expected a message starting with {prefix:?}, got: {message}"
    );
    assert!(
        !reports_internal_bug(message),
        "a user error was reported as an internal bug: {message}"
    );
    for mention in mentions {
        assert!(
            message.contains(mention),
            "expected the message to mention {mention:?}, got: {message}"
        );
    }
}

/// The `Debug` form of a task, as panic messages name tasks.
pub fn debug(task: &TestTask) -> String {
    format!("{task:?}")
}

/// Replaces whatever is at `path` (nothing, a file, a link) with a symbolic link to itself: stamping or opening it
/// fails with a "too many levels of symbolic links" error, for every user, root included.
pub fn make_unreadable(path: &Path) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => panic!("cannot remove {}: {e}", path.display()),
        _ => {}
    }
    symlink_to_itself(path);
}

/// Makes a symbolic link at `path` to itself (on Windows, creating one needs Developer Mode or the privilege).
pub fn symlink_to_itself(path: &Path) {
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(path, path);
    #[cfg(windows)]
    let made = std::os::windows::fs::symlink_file(path, path);
    made.expect("cannot create a symbolic link");
}

/// Writes `contents` to `path`, making sure its modification time changes. In a [`dev_util::Dir`], `dir.create` and
/// `dir.write` say the same in fewer words; this is for paths that are not spelled relative to one.
pub fn write_file(path: impl AsRef<Path>, contents: &str) {
    write_until_modified(path, contents).expect("cannot write test file");
}

/// The same file as the absolute `path`, as a relative path from the current directory: enough `..` components
/// to reach the root from any working directory (lexically and physically), then `path` without its root.
pub fn relative_form(path: &Path) -> PathBuf {
    assert!(path.is_absolute(), "relative_form needs an absolute path");
    let depth = std::env::current_dir()
        .expect("no current directory")
        .components()
        .count();
    let mut relative = PathBuf::new();
    for _ in 0..depth + 8 {
        relative.push("..");
    }
    relative.push(path.strip_prefix("/").expect("an absolute path starts at the root"));
    relative
}
