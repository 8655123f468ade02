//! A human-readable build log.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Stderr, Stdout, Write};
use std::path::{Path, PathBuf};

use crate::dependency::{Dependency, FileDependency, Inconsistency, TaskDependency};
use crate::path::normalized_for_comparison;
use crate::stamp::{FileStamp, OutputStamper};
use crate::tracker::{lane, Tracker};
use crate::Task;

/// Writes one line per build event to `W`, indented by nesting:
///
/// | symbol | event |
/// |---|---|
/// | `→` / `←` | require a task: start / end (with the output) |
/// | `▶` / `◀` | execute a task: start / end (with the output) |
/// | `?` / `✓` / `✗` | check a dependency: start / consistent / inconsistent or failed |
/// | `r PATH` / `p PATH` | the executing task required / provided a file |
/// | `🏁` | the build ended |
///
/// A file's stamp follows its path in parentheses, as the task recorded it (in `r`/`p` lines and when a check
/// starts) and as a failed check found it: `modified 2026-12-02 04:40:01.123456789` (its modification time, UTC),
/// `hash 0123456789abcdef` (the first 8 bytes of its content digest), `exists` or `missing`; a check that finds a
/// file appeared or gone says `created` or `deleted`, other changes `was …, now …`. Paths are shown as the task
/// gave them when it required or provided the file while this tracker watched (checks know only the normalised
/// path: after loading a store, the first build shows that).
///
/// Write errors are ignored: a log that cannot be written never fails a build.
///
/// In a parallel build, the lines of the events on pie's worker threads start with the worker's lane in brackets
/// (`[1] `, see [`lane`]), and each lane is indented by its own nesting; lines without a lane
/// are events on the caller's thread.
///
/// ```
/// use pie::tracker::writing::WritingTracker;
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
/// # impl pie::Task for Hello { type Output = &'static str; fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> &'static str { "hi" } }
/// let mut pie = pie::Pie::with_tracker(WritingTracker::new(Vec::new()));
/// pie.new_session().require(&Hello);
/// let log = String::from_utf8(pie.tracker().writer().clone()).unwrap();
/// assert!(log.contains("▶ Hello"));
/// assert!(log.contains("◀ \"hi\""));
/// ```
#[derive(Clone, Debug)]
pub struct WritingTracker<W> {
    writer: W,
    /// The nesting of each lane.
    indentation: Vec<usize>,
    /// How tasks spelt the paths of the files they required or provided, by normalised path: checks show the
    /// spelling of the task.
    spelling: HashMap<PathBuf, PathBuf>,
}

/// Nesting deeper than this is not indented further, so that a log of a very deep graph stays linear in size.
const MAX_INDENT: usize = 64;

impl WritingTracker<Stdout> {
    /// A tracker writing to standard output.
    pub fn with_stdout() -> Self {
        Self::new(io::stdout())
    }
}

impl WritingTracker<Stderr> {
    /// A tracker writing to standard error.
    pub fn with_stderr() -> Self {
        Self::new(io::stderr())
    }
}

impl<W: Write> WritingTracker<W> {
    /// A tracker writing to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer,
            indentation: vec![0],
            spelling: HashMap::new(),
        }
    }
    /// The writer.
    pub fn writer(&self) -> &W {
        &self.writer
    }
    /// The writer, mutably.
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    fn line(&mut self, args: std::fmt::Arguments) {
        let lane = lane();
        if lane > 0 {
            let _ = write!(self.writer, "[{lane}] ");
        }
        let indent = (*self.nesting()).min(MAX_INDENT) * 2;
        let _ = write!(self.writer, "{:indent$}", "");
        let _ = self.writer.write_fmt(args);
        let _ = self.writer.write_all(b"\n");
    }

    fn nesting(&mut self) -> &mut usize {
        let lane = lane();
        if lane >= self.indentation.len() {
            self.indentation.resize(lane + 1, 0);
        }
        &mut self.indentation[lane]
    }

    fn indent(&mut self) {
        *self.nesting() += 1;
    }

    fn unindent(&mut self) {
        let nesting = self.nesting();
        *nesting = nesting.saturating_sub(1);
    }
}

impl<W> WritingTracker<W> {
    /// Remembers how a task spelt `dependency`'s path and returns it.
    fn spelt<'a>(&mut self, dependency: &FileDependency<'a>) -> &'a Path {
        let given = dependency.path();
        let normal = normalized_for_comparison(given);
        if normal.as_path() != given && self.spelling.get(&normal).is_none_or(|known| known != given) {
            self.spelling.insert(normal, given.to_path_buf());
        }
        given
    }

    /// `dependency` as checks show it: `r PATH`, `p PATH` or the task's `Debug`.
    fn describe<T: fmt::Debug, O>(&self, dependency: &Dependency<T, O>) -> String {
        let path = |d: &FileDependency| {
            let path = d.path();
            self.spelling
                .get(path)
                .map_or(path, PathBuf::as_path)
                .display()
                .to_string()
        };
        match dependency {
            Dependency::RequireFile(d) => format!("r {}", path(d)),
            Dependency::ProvideFile(d) => format!("p {}", path(d)),
            Dependency::RequireTask(d) => format!("{:?}", d.task()),
        }
    }
}

/// A file stamp for people: see [`WritingTracker`].
pub(super) struct ShowStamp<'a>(pub(super) &'a FileStamp);

impl fmt::Display for ShowStamp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The stamp as `FileStamp::for_people` shows it, after the kind of a stamp of something present.
        match self.0 {
            FileStamp::Modified(Some(_)) => f.write_str("modified ")?,
            FileStamp::Hash(Some(_)) => f.write_str("hash ")?,
            _ => {}
        }
        write!(f, "{}", self.0.for_people())
    }
}

/// Whether something is at the path, by `stamp`.
fn is_present(stamp: &FileStamp) -> bool {
    !matches!(
        stamp,
        FileStamp::Exists(false) | FileStamp::Modified(None) | FileStamp::Hash(None)
    )
}

/// How a file changed from the `recorded` stamp to the `found` one, for people: `created`, `deleted`, or
/// `was …, now …`.
pub(super) fn show_change(recorded: &FileStamp, found: &FileStamp) -> String {
    match (is_present(recorded), is_present(found)) {
        (false, true) => "created".to_string(),
        (true, false) => "deleted".to_string(),
        _ => format!("was {}, now {}", ShowStamp(recorded), ShowStamp(found)),
    }
}

/// Why a check of `dependency` found it inconsistent (or failed), for people.
pub(super) fn show_inconsistency<T, O: fmt::Debug>(
    dependency: &Dependency<T, O>,
    inconsistency: Result<&Inconsistency<O>, &io::Error>,
) -> String {
    match inconsistency {
        Ok(Inconsistency::File(found)) => match dependency {
            Dependency::RequireFile(d) | Dependency::ProvideFile(d) => show_change(d.stamp(), found),
            Dependency::RequireTask(_) => format!("now {}", ShowStamp(found)),
        },
        Ok(Inconsistency::Task(output)) => format!("now {output:?}"),
        Ok(Inconsistency::Panicked) => "it panicked when last required".to_string(),
        Ok(Inconsistency::UnrequiredProvider) => "its provider is no longer required before the read".to_string(),
        Err(e) => format!("check failed: {e}"),
    }
}

impl<T: Task, W: Write + Send> Tracker<T> for WritingTracker<W> {
    fn build_start(&mut self) {
        self.indentation.iter_mut().for_each(|n| *n = 0);
    }
    fn build_end(&mut self) {
        self.line(format_args!("🏁"));
        let _ = self.writer.flush();
    }
    fn require_file_end(&mut self, dependency: &FileDependency) {
        let path = self.spelt(dependency);
        self.line(format_args!("r {} ({})", path.display(), ShowStamp(dependency.stamp())));
    }
    fn provide_file_end(&mut self, dependency: &FileDependency) {
        let path = self.spelt(dependency);
        self.line(format_args!("p {} ({})", path.display(), ShowStamp(dependency.stamp())));
    }
    fn require_task_start(&mut self, task: &T, _stamper: &OutputStamper) {
        self.line(format_args!("→ {task:?}"));
        self.indent();
    }
    fn require_task_end(&mut self, _dependency: &TaskDependency<T, T::Output>, output: &T::Output, _: bool) {
        self.unindent();
        self.line(format_args!("← {output:?}"));
    }
    fn check_dependency_start(&mut self, dependency: &Dependency<T, T::Output>) {
        let what = self.describe(dependency);
        match dependency {
            Dependency::RequireFile(d) | Dependency::ProvideFile(d) => {
                self.line(format_args!("? {what} ({})", ShowStamp(d.stamp())))
            }
            Dependency::RequireTask(_) => self.line(format_args!("? {what}")),
        }
        self.indent();
    }
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<T, T::Output>,
        inconsistency: Result<Option<&Inconsistency<T::Output>>, &io::Error>,
    ) {
        self.unindent();
        let what = self.describe(dependency);
        match inconsistency {
            Ok(None) => self.line(format_args!("✓ {what}")),
            Ok(Some(inconsistency)) => {
                let why = show_inconsistency(dependency, Ok(inconsistency));
                self.line(format_args!("✗ {what} ({why})"))
            }
            Err(e) => {
                let why = show_inconsistency(dependency, Err(e));
                self.line(format_args!("✗ {what} ({why})"))
            }
        }
    }
    fn execute_start(&mut self, task: &T) {
        self.line(format_args!("▶ {task:?}"));
        self.indent();
    }
    fn execute_end(&mut self, _task: &T, output: &T::Output) {
        self.unindent();
        self.line(format_args!("◀ {output:?}"));
    }
    fn restored(&mut self, _task: &T) {
        self.line(format_args!("⇣ restored from the shared cache"));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::stamp::civil_from_days;

    fn is_leap(year: i128) -> bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    fn days_in_month(year: i128, month: u32) -> i128 {
        match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// A modification time as the log shows it, without the `modified ` before it.
    fn show_time(time: std::time::SystemTime) -> String {
        FileStamp::Modified(Some(time)).for_people().to_string()
    }

    /// Days from 1970-01-01 to known dates (counted by another calendar implementation).
    const KNOWN: [(i128, (i128, u32, u32)); 12] = [
        (0, (1970, 1, 1)),
        (-1, (1969, 12, 31)),
        (59, (1970, 3, 1)),
        (10_957, (2000, 1, 1)),
        (11_016, (2000, 2, 29)),
        (11_017, (2000, 3, 1)),
        (47_541, (2100, 3, 1)),
        (-25_509, (1900, 2, 28)),
        (-135_140, (1600, 1, 1)),
        (20_789, (2026, 12, 2)),
        (2_932_896, (9999, 12, 31)),
        (-719_162, (1, 1, 1)),
    ];

    #[test]
    fn civil_from_days_gives_known_dates() {
        for (days, date) in KNOWN {
            assert_eq!(civil_from_days(days), date, "{days} days");
        }
    }

    #[test]
    fn civil_from_days_counts_every_day_once() {
        // Consecutive days are consecutive dates, across leap days, century years and the epoch.
        let mut previous = civil_from_days(-800_000);
        for days in -799_999..800_000 {
            let date = civil_from_days(days);
            let (year, month, day) = previous;
            let next = if i128::from(day) < days_in_month(year, month) {
                (year, month, day + 1)
            } else if month < 12 {
                (year, month + 1, 1)
            } else {
                (year + 1, 1, 1)
            };
            assert_eq!(date, next, "{days} days");
            previous = date;
        }
    }

    #[test]
    fn times_are_utc_dates_with_nanoseconds() {
        let time = UNIX_EPOCH + Duration::new(1_796_186_401, 123_456_789);
        assert_eq!(show_time(time), "2026-12-02 04:40:01.123456789");
        assert_eq!(show_time(UNIX_EPOCH), "1970-01-01 00:00:00.000000000");
        let before = UNIX_EPOCH - Duration::new(0, 1);
        assert_eq!(show_time(before), "1969-12-31 23:59:59.999999999");
        let before = UNIX_EPOCH - Duration::new(86_400, 0);
        assert_eq!(show_time(before), "1969-12-31 00:00:00.000000000");
    }

    #[test]
    fn stamps_and_changes_are_shown_for_people() {
        let time = UNIX_EPOCH + Duration::new(1_796_186_401, 5);
        let modified = FileStamp::Modified(Some(time));
        assert_eq!(
            ShowStamp(&modified).to_string(),
            "modified 2026-12-02 04:40:01.000000005"
        );
        let mut digest = [0xff; 32];
        digest[..8].copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(
            ShowStamp(&FileStamp::Hash(Some(digest))).to_string(),
            "hash 0123456789abcdef"
        );
        assert_eq!(ShowStamp(&FileStamp::Exists(true)).to_string(), "exists");
        for missing in [
            FileStamp::Exists(false),
            FileStamp::Modified(None),
            FileStamp::Hash(None),
        ] {
            assert_eq!(ShowStamp(&missing).to_string(), "missing");
        }
        assert_eq!(
            show_change(&FileStamp::Hash(None), &FileStamp::Hash(Some(digest))),
            "created"
        );
        assert_eq!(show_change(&modified, &FileStamp::Modified(None)), "deleted");
        assert_eq!(
            show_change(&FileStamp::Exists(false), &FileStamp::Exists(true)),
            "created"
        );
        let later = FileStamp::Modified(Some(time + Duration::from_millis(1)));
        assert_eq!(
            show_change(&modified, &later),
            "was modified 2026-12-02 04:40:01.000000005, now modified 2026-12-02 04:40:01.001000005"
        );
    }
}
