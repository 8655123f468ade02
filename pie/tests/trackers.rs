//! Trackers: the writing tracker's log format, a failing log writer, the event tracker's queries, the composite
//! tracker's forwarding, and the no-op tracker.

mod common;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use common::*;
use dev_util::Dir;
use pie::dependency::{Dependency, FileDependency, Inconsistency, TaskDependency};
use pie::stamp::{FileStamper, OutputStamper};
use pie::tracker::event::{Event, EventTracker};
use pie::tracker::writing::WritingTracker;
use pie::tracker::{CompositeTracker, NoopTracker, Tracker};
use pie::Pie;

type LogPie = Pie<TestTask, TestResult, WritingTracker<Vec<u8>>>;

fn log_pie() -> LogPie {
    Pie::with_tracker(WritingTracker::new(Vec::new()))
}

/// Requires `task` in a new session and returns the log lines written for that build.
fn require_and_log(pie: &mut LogPie, task: &TestTask) -> (TestResult, Vec<String>) {
    pie.tracker_mut().writer_mut().clear();
    let output = pie.new_session().require(task);
    let log = String::from_utf8(pie.tracker().writer().clone()).expect("the log is UTF-8");
    (output, log.lines().map(str::to_string).collect())
}

#[test]
fn writing_tracker_logs_a_first_build_nested_by_indentation() {
    let task = to_upper(ret("hi"));
    let mut pie = log_pie();
    let (output, lines) = require_and_log(&mut pie, &task);
    assert_eq!(output, ok("HI"));
    let inner = ret("hi");
    let expected = vec![
        format!("→ {task:?}"),
        format!("  ▶ {task:?}"),
        format!("    → {inner:?}"),
        format!("      ▶ {inner:?}"),
        format!("      ◀ {:?}", ok("hi")),
        format!("    ← {:?}", ok("hi")),
        format!("  ◀ {:?}", ok("HI")),
        format!("← {:?}", ok("HI")),
        "🏁".to_string(),
    ];
    assert_eq!(lines, expected);
}

#[test]
fn writing_tracker_logs_consistent_dependency_checks() {
    let task = to_upper(ret("hi"));
    let mut pie = log_pie();
    require_and_log(&mut pie, &task).0.unwrap();
    let (_, lines) = require_and_log(&mut pie, &task);
    let inner = ret("hi");
    let expected = vec![
        format!("→ {task:?}"),
        format!("  ? {inner:?}"),
        format!("  ✓ {inner:?}"),
        format!("← {:?}", ok("HI")),
        "🏁".to_string(),
    ];
    assert_eq!(lines, expected);
}

#[test]
fn writing_tracker_logs_required_and_provided_files_and_inconsistent_checks() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "text");
    let output = dir.join("out.txt");
    let read = read(&input);
    let write = write(read.clone(), &output);
    let mut pie = log_pie();

    let (_, lines) = require_and_log(&mut pie, &write);
    let r = format!("r {}", input.display());
    let p = format!("p {}", output.display());
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
    // Each file line shows the stamp recorded: here the modification time, as a UTC date with sub-seconds.
    let position = |prefix: &str| {
        let prefix = format!("{prefix} (modified ");
        trimmed
            .iter()
            .position(|l| l.starts_with(&prefix) && l.ends_with(')'))
            .unwrap_or_else(|| panic!("no line starting with {prefix} in {lines:#?}"))
    };
    assert!(
        position(&r) < position(&p),
        "the input is read before the output is written"
    );
    // The read happens while `read` executes: below the writer's require and execution, and `read`'s own.
    let r_line = &lines[position(&r)];
    assert_eq!(r_line.len() - r_line.trim_start().len(), 8, "{lines:#?}");
    let year = r_line.trim_start()[r.len() + " (modified ".len()..]
        .split('-')
        .next()
        .unwrap();
    assert!(year.len() == 4 && year.starts_with("20"), "a year: {r_line}");
    // The write happens in the writer's execution, after `read` returned.
    let p_line = &lines[position(&p)];
    assert_eq!(p_line.len() - p_line.trim_start().len(), 4, "{lines:#?}");
    let recorded = r_line.trim_start()[r.len()..].to_string();

    dir.write(&input, "changed");
    let (_, lines) = require_and_log(&mut pie, &write);
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
    // The check starts with the stamp that the execution recorded, as the `r` line showed it.
    assert!(trimmed.contains(&format!("? {r}{recorded}").as_str()), "{lines:#?}");
    let inconsistent = trimmed
        .iter()
        .find(|l| l.starts_with(&format!("✗ {r}")))
        .unwrap_or_else(|| panic!("no inconsistent file check in {lines:#?}"));
    assert!(
        inconsistent.starts_with(&format!("✗ {r} (was modified 20")) && inconsistent.contains(", now modified 20"),
        "the recorded and the new stamp are shown: {inconsistent}"
    );
    assert!(
        trimmed.iter().any(|l| l.starts_with(&format!("✗ {read:?}"))),
        "the task dependency is inconsistent: {lines:#?}"
    );
    assert!(trimmed.contains(&format!("▶ {write:?}").as_str()));
    assert_eq!(lines.last().map(String::as_str), Some("🏁"));

    // Untouched: every check succeeds, including the provided file's.
    let (_, lines) = require_and_log(&mut pie, &write);
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
    assert!(trimmed.contains(&format!("✓ {p}").as_str()), "{lines:#?}");
    assert!(trimmed.contains(&format!("✓ {r}").as_str()), "{lines:#?}");
    assert!(
        !trimmed.iter().any(|l| l.starts_with('▶') || l.starts_with('✗')),
        "{lines:#?}"
    );
}

#[test]
fn writing_tracker_shows_paths_as_given_hashes_and_files_created_or_deleted() {
    let dir = Dir::new();
    dir.create_dir("sub");
    // A spelling that is not normal: checks know only the normal path, and still show this one.
    let given = dir.path().join("sub").join("..").join("in.txt");
    let task = read_with(&given, FileStamper::Hash);
    let mut pie = log_pie();
    let (_, lines) = require_and_log(&mut pie, &task);
    let r = format!("r {}", given.display());
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
    assert!(trimmed.contains(&format!("{r} (missing)").as_str()), "{lines:#?}");

    dir.create("in.txt", "text");
    let (_, lines) = require_and_log(&mut pie, &task);
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
    assert!(trimmed.contains(&format!("? {r} (missing)").as_str()), "{lines:#?}");
    assert!(trimmed.contains(&format!("✗ {r} (created)").as_str()), "{lines:#?}");
    // A digest: 16 hex digits, the first 8 bytes of blake3("text").
    let digest: String = blake3::hash(b"text").as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(trimmed.contains(&format!("{r} (hash {digest})").as_str()), "{lines:#?}");

    dir.remove("in.txt");
    let (_, lines) = require_and_log(&mut pie, &task);
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
    assert!(
        trimmed.contains(&format!("? {r} (hash {digest})").as_str()),
        "{lines:#?}"
    );
    assert!(trimmed.contains(&format!("✗ {r} (deleted)").as_str()), "{lines:#?}");
}

#[test]
fn writing_tracker_logs_failed_checks() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "x");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Modified);
    let mut pie = log_pie();
    require_and_log(&mut pie, &probe).0.unwrap();
    make_unreadable(&path);
    let (_, lines) = require_and_log(&mut pie, &probe);
    let prefix = format!("✗ r {} (check failed:", path.display());
    assert!(lines.iter().any(|l| l.trim_start().starts_with(&prefix)), "{lines:#?}");
}

/// A writer that fails every call.
struct FailingWriter;

impl Write for FailingWriter {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("the log is broken"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::other("the log is broken"))
    }
}

#[test]
fn writing_tracker_whose_writer_fails_never_fails_a_build() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "text");
    let output = dir.join("out.txt");
    let write = write(to_upper(read(&input)), &output);
    let reader = read_after(write.clone(), &output);
    let tracker = CompositeTracker(EventTracker::default(), WritingTracker::new(FailingWriter));
    let mut pie = Pie::with_tracker(tracker);

    assert_eq!(pie.new_session().require(&reader), ok("TEXT"));
    dir.write(&input, "again");
    assert_eq!(pie.new_session().require(&reader), ok("AGAIN"));
    assert!(pie.tracker().0.one_execute_of(&write));
    pie.new_session().require(&reader).unwrap();
    assert!(!pie.tracker().0.any_execute());
    // Soundness checks still work: the violation, not the log, is what panics.
    let message = expect_panic(|| pie.new_session().require(&read(&output)));
    assert_message(&message, HIDDEN, &[]);
}

#[test]
fn event_tracker_queries_describe_the_last_build() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "text");
    let output = dir.join("out.txt");
    let read = read(&input);
    let write = write(read.clone(), &output);
    let unrelated = ret("unrelated");
    let mut pie = test_pie();
    pie.require(&write).unwrap();

    let events = pie.events();
    let slice = events.slice();
    assert!(matches!(&slice[0], Event::RequireTaskStart(d) if d.task == write && d.stamper == OutputStamper::Equals));
    assert!(matches!(slice.last(), Some(Event::RequireTaskEnd(d)) if d.task == write && d.was_executed));
    for (index, event) in slice.iter().enumerate() {
        let recorded = match event {
            Event::RequireFileEnd(d) | Event::ProvideFileEnd(d) => d.index,
            Event::RequireTaskStart(d) => d.index,
            Event::RequireTaskEnd(d) => d.index,
            Event::ExecuteStart(d) => d.index,
            Event::ExecuteEnd(d) => d.index,
        };
        assert_eq!(recorded, index, "each event knows its position");
    }
    assert!(events.any_execute());
    assert!(events.any_execute_of(&write));
    assert!(events.any_execute_of(&read));
    assert!(!events.any_execute_of(&unrelated));
    assert!(events.one_execute_of(&write));
    assert!(!events.one_execute_of(&unrelated));

    let required = events.first_require_file(&input).expect("the input was required");
    assert_eq!(required.path, input);
    assert_eq!(required.stamper, FileStamper::Modified);
    let provided = events.first_provide_file(&output).expect("the output was provided");
    assert_eq!(provided.path, output);
    assert!(required.index < provided.index);
    assert!(
        events.first_provide_file(&input).is_none(),
        "the input was only required"
    );
    assert!(
        events.first_require_file(&output).is_none(),
        "the output was only provided"
    );

    // Executions nest: `read` executes within `write`'s execution.
    let write_range = events.first_execute_range(&write).unwrap();
    let read_range = events.first_execute_range(&read).unwrap();
    assert!(write_range.start() < read_range.start() && read_range.end() < write_range.end());
    assert!(write_range.contains(&provided.index));
    assert!(read_range.contains(&required.index));
}

#[test]
fn event_tracker_is_cleared_at_each_build_start() {
    let first = ret("first");
    let second = ret("second");
    let mut pie = test_pie();
    let mut session = pie.new_session();
    session.require(&first).unwrap();
    session.require(&second).unwrap();
    drop(session);
    let events = pie.events();
    assert!(events.one_execute_of(&second));
    assert!(
        !events.any_execute_of(&first),
        "events of the earlier build in the session were cleared"
    );
    assert!(events
        .slice()
        .iter()
        .all(|e| !matches!(e, Event::RequireTaskStart(d) if d.task == first)));
}

/// Records the name of every tracker method called, tagged with its own name, into a shared log.
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn record(&self, event: &str) {
        self.log.lock().unwrap().push(format!("{}:{event}", self.name));
    }
}

impl Tracker<TestTask> for Recorder {
    fn build_start(&mut self) {
        self.record("build_start");
    }
    fn build_end(&mut self) {
        self.record("build_end");
    }
    fn require_file_end(&mut self, _dependency: &FileDependency) {
        self.record("require_file_end");
    }
    fn provide_file_end(&mut self, _dependency: &FileDependency) {
        self.record("provide_file_end");
    }
    fn require_task_start(&mut self, _task: &TestTask, _stamper: &OutputStamper) {
        self.record("require_task_start");
    }
    fn require_task_end(&mut self, _dependency: &TaskDependency<TestTask, TestResult>, _output: &TestResult, _: bool) {
        self.record("require_task_end");
    }
    fn check_dependency_start(&mut self, _dependency: &Dependency<TestTask, TestResult>) {
        self.record("check_dependency_start");
    }
    fn check_dependency_end(
        &mut self,
        _dependency: &Dependency<TestTask, TestResult>,
        _inconsistency: Result<Option<&Inconsistency<TestResult>>, &io::Error>,
    ) {
        self.record("check_dependency_end");
    }
    fn execute_start(&mut self, _task: &TestTask) {
        self.record("execute_start");
    }
    fn execute_end(&mut self, _task: &TestTask, _output: &TestResult) {
        self.record("execute_end");
    }
}

#[test]
fn composite_tracker_forwards_every_event_to_both_in_order() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "text");
    let output = dir.join("out.txt");
    let write = write(read(&input), &output);
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = |name| Recorder { name, log: log.clone() };
    let mut pie = Pie::with_tracker(CompositeTracker(recorder("a"), recorder("b")));
    pie.new_session().require(&write).unwrap();
    dir.write(&input, "changed");
    pie.new_session().require(&write).unwrap();

    let log = log.lock().unwrap();
    assert_eq!(log.len() % 2, 0);
    let mut seen = std::collections::BTreeSet::new();
    for pair in log.chunks(2) {
        let (a, b) = (pair[0].strip_prefix("a:").unwrap(), pair[1].strip_prefix("b:").unwrap());
        assert_eq!(a, b, "each event goes to the first tracker, then to the second");
        seen.insert(a.to_string());
    }
    let all = [
        "build_start",
        "build_end",
        "require_file_end",
        "provide_file_end",
        "require_task_start",
        "require_task_end",
        "check_dependency_start",
        "check_dependency_end",
        "execute_start",
        "execute_end",
    ];
    assert_eq!(seen, all.iter().map(|s| s.to_string()).collect());
}

#[test]
fn composite_of_event_and_writing_trackers_both_observe() {
    let task = to_lower(ret("BOTH"));
    let mut pie = Pie::with_tracker(CompositeTracker(
        EventTracker::default(),
        WritingTracker::new(Vec::new()),
    ));
    pie.new_session().require(&task).unwrap();
    assert!(pie.tracker().0.one_execute_of(&task));
    let log = String::from_utf8(pie.tracker().1.writer().clone()).unwrap();
    assert!(log.contains(&format!("▶ {task:?}")), "{log}");
}

#[test]
fn noop_tracker_builds_incrementally() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "Quiet");
    let output = dir.join("out.txt");
    let write = write(to_upper(read(&input)), &output);
    let reader = read_after(write, &output);
    let mut pie: Pie<TestTask, TestResult> = Pie::default();
    let _: &NoopTracker = pie.tracker();
    assert_eq!(pie.new_session().require(&reader), ok("QUIET"));
    let written = std::fs::metadata(&output).unwrap().modified().unwrap();
    assert_eq!(pie.new_session().require(&reader), ok("QUIET"));
    assert_eq!(
        std::fs::metadata(&output).unwrap().modified().unwrap(),
        written,
        "a consistent writer does not write again"
    );
    dir.write(&input, "Loud");
    assert_eq!(pie.new_session().require(&reader), ok("LOUD"));
    assert_eq!(dir.read(&output), "LOUD");
}

#[test]
fn shared_dependency_is_checked_once_per_session() {
    let dir = Dir::new();
    let input = dir.create("in.txt", "Shared");
    let read = read(&input);
    let diamond = seq([to_lower(read.clone()), to_upper(read.clone()), require(read.clone())]);
    let mut pie = log_pie();
    require_and_log(&mut pie, &diamond).0.unwrap();

    // Three tasks depend on `read`; its file is re-checked once, and `read` is the subject of three task checks.
    let (_, lines) = require_and_log(&mut pie, &diamond);
    let count = |line: String| lines.iter().filter(|l| l.trim_start() == line).count();
    let check = format!("? r {} (modified ", input.display());
    let file_checks = lines.iter().filter(|l| l.trim_start().starts_with(&check)).count();
    assert_eq!(file_checks, 1, "{lines:#?}");
    assert_eq!(count(format!("? {read:?}")), 3, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.trim_start().starts_with('▶')), "{lines:#?}");
}
