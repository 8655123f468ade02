//! A human-readable build log.

use std::io::{self, Stderr, Stdout, Write};

use crate::dependency::{Dependency, FileDependency, Inconsistency, TaskDependency};
use crate::stamp::OutputStamper;
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

fn describe<T: std::fmt::Debug, O>(dependency: &Dependency<T, O>) -> String {
    match dependency {
        Dependency::RequireFile(d) => format!("r {}", d.path().display()),
        Dependency::ProvideFile(d) => format!("p {}", d.path().display()),
        Dependency::RequireTask(d) => format!("{:?}", d.task()),
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
        self.line(format_args!("r {}", dependency.path().display()));
    }
    fn provide_file_end(&mut self, dependency: &FileDependency) {
        self.line(format_args!("p {}", dependency.path().display()));
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
        self.line(format_args!("? {}", describe(dependency)));
        self.indent();
    }
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<T, T::Output>,
        inconsistency: Result<Option<&Inconsistency<T::Output>>, &io::Error>,
    ) {
        self.unindent();
        let what = describe(dependency);
        match inconsistency {
            Ok(None) => self.line(format_args!("✓ {what}")),
            Ok(Some(Inconsistency::File(stamp))) => self.line(format_args!("✗ {what} (now {})", stamp.for_people())),
            Ok(Some(Inconsistency::Task(output))) => self.line(format_args!("✗ {what} (now {output:?})")),
            Ok(Some(Inconsistency::Panicked)) => self.line(format_args!("✗ {what} (it panicked when last required)")),
            Ok(Some(Inconsistency::UnrequiredProvider)) => self.line(format_args!(
                "✗ {what} (its provider is no longer required before the read)"
            )),
            Err(e) => self.line(format_args!("✗ {what} (check failed: {e})")),
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
}
