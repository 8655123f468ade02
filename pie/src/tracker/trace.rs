//! Where the time of a build went: [`TraceTracker`] records the spans of the last build's requires, checks and
//! executions per lane, writes them as a Chrome trace (`chrome://tracing`, Perfetto, Speedscope read it) and sums
//! them up as text ([`Summary`]).
//!
//! The trace is a JSON object `{"traceEvents":[...]}` of *complete* events (`"ph":"X"`), one per span: `name` (the
//! task's `Debug` form, or a file's path for a file check), `cat` (`require`, `check` or `execute`), `ts` and `dur`
//! in microseconds since the build started, `pid` 1, `tid` the lane (see [`lane`]), and `args` (the task, and for
//! an execution why it ran, as [`explain`](crate::tracker::explain) tells it). A metadata event
//! (`"ph":"M"`, `"name":"thread_name"`) names each lane: `caller` for lane 0, `worker 1`, `worker 2`, ... for pie's
//! worker threads. Spans of one lane nest; spans of different lanes overlap in time.
//!
//! A span that a panic left without its end event is closed when the enclosing span ends (or at the build's end),
//! with `"unfinished":true` in its args.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::dependency::{Dependency, Inconsistency, TaskDependency};
use crate::stamp::OutputStamper;
use crate::tracker::explain::{reason_of_check, Frame, Given, Nesting, Open, Reason};
use crate::tracker::{lane, Tracker};
use crate::Task;

/// What a span is.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Category {
    Require,
    Check,
    Execute,
}

impl Category {
    fn name(self) -> &'static str {
        match self {
            Category::Require => "require",
            Category::Check => "check",
            Category::Execute => "execute",
        }
    }
}

/// A finished span.
#[derive(Clone, Debug)]
struct Span {
    name: String,
    category: Category,
    /// Nanoseconds since the build started.
    start: u64,
    duration: u64,
    /// For an execution: why it ran; for a check: its result.
    why: Option<String>,
    /// Whether it ended with its own end event.
    finished: bool,
    /// For an execution: its self time (see [`Summary::critical_path`]).
    self_time: u64,
    /// For an execution: the span (same lane) that continues its longest chain.
    next: Option<usize>,
}

/// What an open span keeps.
#[derive(Clone, Debug)]
struct OpenSpan {
    name: String,
    category: Category,
    start: u64,
    why: Option<String>,
    /// For an execution: the total duration of the executions nested in it (directly: the nearest on its lane).
    nested: u64,
    /// The longest chain of executions that finished inside this span so far: its time and last execution.
    best: Option<(u64, usize)>,
    /// For an execution: the longest chain that finished, before it started, inside the span that encloses it
    /// (while the task's dependencies were made consistent).
    before: Option<(u64, usize)>,
}

impl OpenSpan {
    fn new(name: String, category: Category, start: u64) -> Self {
        Self {
            name,
            category,
            start,
            why: None,
            nested: 0,
            best: None,
            before: None,
        }
    }
}

/// The longer of two chains.
fn longer(a: Option<(u64, usize)>, b: Option<(u64, usize)>) -> Option<(u64, usize)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The finished spans of the last build.
#[derive(Clone, Debug, Default)]
struct Recorded {
    /// Finished spans per lane.
    spans: Vec<Vec<Span>>,
    /// The longest chain of executions that ended outside every span: its time, lane and last execution.
    critical: Option<(u64, usize, usize)>,
}

type Nest = Nesting<String, String, OpenSpan>;

impl Recorded {
    /// Records the span of `frame`, which ends at `end`, on `lane`, whose open frames (in `nesting`) are those that
    /// enclose it.
    fn finish(
        &mut self,
        nesting: &mut Nest,
        lane: usize,
        frame: Frame<String, String, OpenSpan>,
        end: u64,
        finished: bool,
        why: Option<String>,
    ) {
        let span = frame.data;
        let duration = end.saturating_sub(span.start);
        if lane >= self.spans.len() {
            self.spans.resize_with(lane + 1, Vec::new);
        }
        let index = self.spans[lane].len();
        let (mut self_time, mut next, mut chain) = (0, None, span.best);
        if span.category == Category::Execute {
            self_time = duration.saturating_sub(span.nested);
            let previous = longer(span.before, span.best);
            next = previous.map(|(_, index)| index);
            chain = Some((self_time + previous.map_or(0, |(time, _)| time), index));
            if let Some(outer) = nesting.innermost_execution(lane) {
                outer.nested += duration;
            }
        }
        match nesting.frames_mut(lane).and_then(|frames| frames.last_mut()) {
            Some(outer) => outer.data.best = longer(outer.data.best, chain),
            None => {
                if let Some((time, index)) = chain {
                    if self.critical.is_none_or(|(longest, _, _)| longest < time) {
                        self.critical = Some((time, lane, index));
                    }
                }
            }
        }
        self.spans[lane].push(Span {
            name: span.name,
            category: span.category,
            start: span.start,
            duration,
            why: why.or(span.why),
            finished,
            self_time,
            next,
        });
    }
}

/// Records a Chrome trace of the last build (cleared at `build_start`, unless made
/// [`accumulating`](TraceTracker::accumulating)) and sums it up.
///
/// Per lane (see [`lane`]), it keeps the open spans (their start and nesting) and the finished spans in a buffer
/// of its own: tracker calls are serialised, so recording a span costs no lock. It formats each task's `Debug`
/// form once per span. See the [module documentation](self) for the format.
///
/// ```
/// use pie::tracker::trace::TraceTracker;
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
/// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
/// let mut pie = pie::Pie::with_tracker(TraceTracker::default());
/// pie.new_session().require(&Hello);
/// let mut json = Vec::new();
/// pie.tracker().write_json(&mut json)?;
/// let json = String::from_utf8(json).unwrap();
/// assert!(json.starts_with(r#"{"traceEvents":["#));
/// assert!(json.contains(r#""name":"Hello","cat":"execute","ph":"X""#));
/// assert_eq!(pie.tracker().summary(5).executed, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceTracker {
    /// When the last build started (the first since the last clear, when accumulating).
    start: Option<Instant>,
    /// Whether a build start keeps what the builds before recorded (see [`TraceTracker::accumulating`]).
    accumulate: bool,
    /// How long it took (until its end event, or its last event if none came).
    build_time: u64,
    recorded: Recorded,
    nesting: Nest,
}

impl TraceTracker {
    /// An empty tracker.
    ///
    /// ```
    /// let tracker = pie::tracker::trace::TraceTracker::new();
    /// assert_eq!(tracker.summary(3).executed, 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that keeps recording over every build until [`clear`](Self::clear), instead of recording the last
    /// build only: for a program whose one build is several pie builds (several `require` calls in a session).
    /// Times count from the start of the first build; the summary's build time runs to the end of the last.
    ///
    /// ```
    /// use pie::tracker::trace::TraceTracker;
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello(u8);
    /// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
    /// let mut pie = pie::Pie::with_tracker(TraceTracker::accumulating());
    /// let mut session = pie.new_session();
    /// session.require(&Hello(1));
    /// session.require(&Hello(2));
    /// drop(session);
    /// assert_eq!(pie.tracker().summary(0).executed, 2);
    /// pie.tracker_mut().clear();
    /// assert_eq!(pie.tracker().summary(0).executed, 0);
    /// ```
    pub fn accumulating() -> Self {
        Self {
            accumulate: true,
            ..Self::default()
        }
    }

    /// Forgets what was recorded; the next build starts the clock again.
    ///
    /// ```
    /// let mut tracker = pie::tracker::trace::TraceTracker::accumulating();
    /// tracker.clear();
    /// assert_eq!(tracker.summary(1).executed, 0);
    /// ```
    pub fn clear(&mut self) {
        self.start = None;
        self.build_time = 0;
        self.recorded = Recorded::default();
        self.nesting.clear();
    }

    /// Nanoseconds since the build started.
    fn now(&mut self) -> u64 {
        let start = *self.start.get_or_insert_with(Instant::now);
        let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.build_time = self.build_time.max(now);
        now
    }

    fn open(&mut self, open: Open<String>, category: Category) {
        let start = self.now();
        let name = match &open {
            Open::Require(name) | Open::CheckTask(name) | Open::Execute(name) => name.clone(),
            Open::CheckFile(path) => path.display().to_string(),
        };
        self.nesting.start(open, OpenSpan::new(name, category, start));
    }

    /// Closes the span that `open` opened, and those a panic left open above it; returns whether it was open.
    fn close(&mut self, open: &Open<String>, why: Option<String>) -> bool {
        let end = self.now();
        let lane = lane();
        let recorded = &mut self.recorded;
        let closed = self.nesting.end(open, |nesting, frame| {
            recorded.finish(nesting, lane, frame, end, false, None)
        });
        match closed {
            Some(frame) => {
                self.recorded.finish(&mut self.nesting, lane, frame, end, true, why);
                true
            }
            None => false,
        }
    }

    /// Writes the trace of the last build as a JSON object `{"traceEvents":[...]}` (see the
    /// [module documentation](self)).
    ///
    /// ```
    /// let mut json = Vec::new();
    /// pie::tracker::trace::TraceTracker::new().write_json(&mut json)?;
    /// assert_eq!(json, br#"{"traceEvents":[]}"#);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_json(&self, mut writer: impl Write) -> io::Result<()> {
        let writer = &mut writer;
        writer.write_all(br#"{"traceEvents":["#)?;
        let mut first = true;
        let mut separator = |writer: &mut dyn Write| -> io::Result<()> {
            if !std::mem::take(&mut first) {
                writer.write_all(b",\n")?;
            }
            Ok(())
        };
        for (lane, spans) in self.recorded.spans.iter().enumerate() {
            if spans.is_empty() {
                continue;
            }
            separator(writer)?;
            let name = match lane {
                0 => "caller".to_string(),
                n => format!("worker {n}"),
            };
            write!(
                writer,
                r#"{{"name":"thread_name","ph":"M","pid":1,"tid":{lane},"args":{{"name":{}}}}}"#,
                Json(&name)
            )?;
            for span in spans {
                separator(writer)?;
                write!(
                    writer,
                    r#"{{"name":{},"cat":"{}","ph":"X","ts":{},"dur":{},"pid":1,"tid":{lane},"args":{{"#,
                    Json(&span.name),
                    span.category.name(),
                    Micros(span.start),
                    Micros(span.duration),
                )?;
                let key = match span.category {
                    Category::Check => "dependency",
                    Category::Require | Category::Execute => "task",
                };
                write!(writer, r#""{key}":{}"#, Json(&span.name))?;
                if let Some(why) = &span.why {
                    let key = match span.category {
                        Category::Execute => "why",
                        Category::Check | Category::Require => "result",
                    };
                    write!(writer, r#","{key}":{}"#, Json(why))?;
                }
                if !span.finished {
                    writer.write_all(br#","unfinished":true"#)?;
                }
                writer.write_all(b"}}")?;
            }
        }
        writer.write_all(b"]}")?;
        writer.flush()
    }

    /// The last build summed up, with the `slowest` tasks of the longest self time.
    ///
    /// ```
    /// use pie::tracker::trace::TraceTracker;
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
    /// # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
    /// let mut pie = pie::Pie::with_tracker(TraceTracker::default());
    /// pie.new_session().require(&Hello);
    /// let summary = pie.tracker().summary(5);
    /// assert_eq!(summary.critical_path_tasks, ["Hello"]);
    /// assert!(summary.to_string().starts_with("1 task executed, 0 dependencies checked"));
    /// ```
    pub fn summary(&self, slowest: usize) -> Summary {
        let executions = || {
            self.recorded
                .spans
                .iter()
                .flatten()
                .filter(|span| span.category == Category::Execute)
        };
        let mut summary = Summary {
            executed: executions().count(),
            checked: self
                .recorded
                .spans
                .iter()
                .flatten()
                .filter(|span| span.category == Category::Check)
                .count(),
            build_time: Duration::from_nanos(self.build_time),
            ..Summary::default()
        };
        if let Some((time, lane, index)) = self.recorded.critical {
            summary.critical_path = Duration::from_nanos(time);
            let mut at = Some(index);
            while let Some(index) = at {
                let span = &self.recorded.spans[lane][index];
                summary.critical_path_tasks.push(span.name.clone());
                at = span.next;
            }
        }
        let mut all: Vec<&Span> = executions().collect();
        all.sort_by_key(|span| std::cmp::Reverse(span.self_time));
        summary.slowest = all
            .into_iter()
            .take(slowest)
            .map(|span| SlowTask {
                task: span.name.clone(),
                self_time: Duration::from_nanos(span.self_time),
                total_time: Duration::from_nanos(span.duration),
            })
            .collect();
        summary
    }
}

/// A build summed up by [`TraceTracker::summary`]. Its [`Display`](std::fmt::Display) is a few lines of text.
///
/// ```
/// use std::time::Duration;
/// let summary = pie::tracker::trace::Summary {
///     executed: 2,
///     checked: 3,
///     build_time: Duration::from_millis(12),
///     critical_path: Duration::from_millis(10),
///     critical_path_tasks: vec!["A".into(), "B".into()],
///     slowest: vec![],
/// };
/// assert_eq!(
///     summary.to_string(),
///     "2 tasks executed, 3 dependencies checked in 12.000 ms\ncritical path: 10.000 ms (A → B)\n"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Summary {
    /// How many executions the build made.
    pub executed: usize,
    /// How many recorded dependencies it checked.
    pub checked: usize,
    /// From the build's start to its end.
    pub build_time: Duration,
    /// The critical path's time: the largest sum of *self times* along a chain of executions on one lane in which
    /// each execution had to finish before the next could: an execution *precedes* the execution of task `t` when
    /// it happened while `t` was being made consistent, that is, inside the span of `t`'s require (or of the check
    /// of a dependency on `t`) before `t`'s execution started (a dependency of `t` that executed first), or nested in
    /// `t`'s execution (a task that `t` required). The self time of an execution is its duration minus the
    /// durations of the executions nested in it on its lane (the nearest ones). Work that a task hands to other
    /// lanes (`require_tasks` with threads to spare) is not linked to it: a branch on a worker lane starts chains
    /// of its own, and the time the task waits for it counts in the task's self time. On one thread, every build
    /// takes at least this long.
    pub critical_path: Duration,
    /// The tasks of the critical path (their `Debug` form), the last to finish first: each one preceded by the next.
    pub critical_path_tasks: Vec<String>,
    /// The executions with the longest self time (see `critical_path`), longest first.
    pub slowest: Vec<SlowTask>,
}

/// One of the [`Summary::slowest`] executions.
///
/// ```
/// use std::time::Duration;
/// let slow = pie::tracker::trace::SlowTask { task: "A".into(), self_time: Duration::ZERO, total_time: Duration::ZERO };
/// assert_eq!(slow.task, "A");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SlowTask {
    /// The task's `Debug` form.
    pub task: String,
    /// The execution's duration without the executions nested in it on its lane.
    pub self_time: Duration,
    /// The execution's whole duration.
    pub total_time: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        writeln!(
            f,
            "{} {} executed, {} {} checked in {}",
            self.executed,
            plural(self.executed, "task", "tasks"),
            self.checked,
            plural(self.checked, "dependency", "dependencies"),
            Millis(self.build_time)
        )?;
        if !self.critical_path_tasks.is_empty() {
            writeln!(
                f,
                "critical path: {} ({})",
                Millis(self.critical_path),
                self.critical_path_tasks.join(" → ")
            )?;
        }
        if !self.slowest.is_empty() {
            writeln!(f, "slowest tasks (self time, total time):")?;
            for slow in &self.slowest {
                writeln!(
                    f,
                    "  {:>12} {:>12}  {}",
                    Millis(slow.self_time).to_string(),
                    Millis(slow.total_time).to_string(),
                    slow.task
                )?;
            }
        }
        Ok(())
    }
}

/// A duration in milliseconds with three decimals.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03} ms", micros / 1000, micros % 1000)
    }
}

/// Nanoseconds written as microseconds with three decimals.
struct Micros(u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// A string as a JSON string literal.
struct Json<'a>(&'a str);

impl std::fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => write!(f, "\\u{:04x}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

impl<T: Task> Tracker<T> for TraceTracker {
    fn build_start(&mut self) {
        if self.accumulate {
            self.start.get_or_insert_with(Instant::now);
            self.nesting.clear();
        } else {
            self.clear();
            self.start = Some(Instant::now());
        }
    }
    fn build_end(&mut self) {
        let end = self.now();
        // Spans that a panic left open (none, after a build that ended normally).
        while let Some((lane, frame)) = self.nesting.pop_any() {
            self.recorded.finish(&mut self.nesting, lane, frame, end, false, None);
        }
    }
    fn require_task_start(&mut self, task: &T, _stamper: &OutputStamper) {
        self.open(Open::Require(format!("{task:?}")), Category::Require);
    }
    fn require_task_end(&mut self, dependency: &TaskDependency<T, T::Output>, _: &T::Output, executed: bool) {
        let why = if executed { "executed" } else { "up to date" };
        self.close(
            &Open::Require(format!("{:?}", dependency.task())),
            Some(why.to_string()),
        );
    }
    fn check_dependency_start(&mut self, dependency: &Dependency<T, T::Output>) {
        self.open(Open::of_check(dependency, |t| format!("{t:?}")), Category::Check);
    }
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<T, T::Output>,
        inconsistency: Result<Option<&Inconsistency<T::Output>>, &io::Error>,
    ) {
        let reason = reason_of_check(dependency, inconsistency).map(|reason| reason.to_string());
        let result = reason.clone().unwrap_or_else(|| "consistent".to_string());
        let open = Open::of_check(dependency, |t| format!("{t:?}"));
        if let (true, Some(reason)) = (self.close(&open, Some(result)), reason) {
            self.nesting.set_pending(reason);
        }
    }
    fn execute_start(&mut self, task: &T) {
        let start = self.now();
        let lane = lane();
        let name = format!("{task:?}");
        let data = OpenSpan::new(name.clone(), Category::Execute, start);
        let recorded = &mut self.recorded;
        let given = self.nesting.execute_start(name, data, |nesting, frame| {
            recorded.finish(nesting, lane, frame, start, false, None)
        });
        let why = match given {
            Given::Reason(reason) => reason,
            Given::RequiredFailed(task) => format!("required task {task} failed while it was checked"),
            Given::Outermost => Reason::<T, T::Output>::Affected.to_string(),
            Given::Nothing => Reason::<T, T::Output>::NoOutput.to_string(),
        };
        let frames = self.nesting.frames_mut(lane).expect("the execution's lane");
        let before = frames.len().checked_sub(2).and_then(|outer| frames[outer].data.best);
        let execution = &mut frames.last_mut().expect("the execution's frame").data;
        execution.why = Some(why);
        execution.before = before;
    }
    fn execute_end(&mut self, task: &T, _output: &T::Output) {
        self.close(&Open::Execute(format!("{task:?}")), None);
    }
}
