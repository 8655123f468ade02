//! Build events as `tracing` spans and events (cargo feature `tracing`), for the subscriber of your
//! choice: a log, a flame graph, a distributed trace.
//!
//! [`TracingTracker`] opens a span per require (`require`, level DEBUG), per dependency check (`check`, level
//! TRACE) and per execution (`execute`, level INFO), enters it when the event starts and exits and closes it when
//! it ends, so that spans nest as the build does. Their fields:
//!
//! | span | fields |
//! |---|---|
//! | `require` | `task` (its `Debug`), `executed` (recorded at the end: whether it executed) |
//! | `check` | `dependency` (`r PATH`, `p PATH` or the task's `Debug`), `consistent` and, when not, `why` (both recorded at the end) |
//! | `execute` | `task`, `reason`: the last inconsistent dependency seen on the lane, as text (`r in.txt: was …, now …`), or that none was seen |
//!
//! A required or provided file is an event (level DEBUG, message `required file` or `provided file`) with the
//! fields `path` (as the task gave it) and `stamp`.
//!
//! In a parallel build each event arrives on the thread where it happens (see [`crate::tracker`]), so each lane's
//! spans are entered and exited on that lane's own thread, as subscribers expect; the tracker keeps a stack of
//! open spans per [`lane`]. A span's parent is the span the subscriber considers current on that thread when it
//! opens: the enclosing span of the same lane, and for the first span of a worker lane whatever the worker thread
//! has (usually none). A panic that unwinds past an event's end leaves spans open; the next end of an enclosing
//! span (or the next build) exits and closes them first.
//!
//! ```
//! use pie::tracker::tracing::TracingTracker;
//! # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Hello;
//! # impl pie::Task for Hello { type Output = (); fn execute<C: pie::Context<Self>>(&self, _: &mut C) {} }
//! // With a subscriber installed (say, `tracing_subscriber::fmt::init()`), this build is one `require` span with
//! // an `execute` span inside.
//! let mut pie = pie::Pie::with_tracker(TracingTracker::new());
//! pie.new_session().require(&Hello);
//! ```

use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;

use ::tracing::{debug, debug_span, field, info_span, trace_span, Span};

use crate::dependency::{Dependency, FileDependency, Inconsistency, TaskDependency};
use crate::stamp::OutputStamper;
use crate::tracker::writing::{show_inconsistency, ShowStamp};
use crate::tracker::{lane, Tracker};
use crate::Task;

/// The `reason` of an execution without an inconsistent dependency before it on its lane.
const NO_INCONSISTENCY: &str = "no inconsistent dependency seen: a new task, one without output, or one that a \
                                bottom-up build scheduled";

/// Emits `tracing` spans and events for build events: see the [module](self).
#[derive(Debug, Default)]
pub struct TracingTracker {
    /// The open spans and the reason in waiting, of each lane.
    lanes: Vec<Lane>,
}

#[derive(Debug, Default)]
struct Lane {
    /// The spans this lane entered and has not exited yet, innermost last.
    open: Vec<Open>,
    /// The last inconsistent dependency seen on this lane since its last execution started, as text.
    reason: Option<String>,
}

/// An entered span, and what it is about: its kind and a hash of its task or dependency, so that its end finds it
/// even if a panic left spans above it open.
#[derive(Debug)]
struct Open {
    span: Span,
    key: u64,
}

/// What a span is about: a kind and a task or dependency.
fn key(kind: u8, what: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    kind.hash(&mut hasher);
    what.hash(&mut hasher);
    hasher.finish()
}

const REQUIRE: u8 = 0;
const CHECK: u8 = 1;
const EXECUTE: u8 = 2;

fn check_key<T: Hash, O>(dependency: &Dependency<T, O>) -> u64 {
    match dependency {
        Dependency::RequireFile(d) => key(CHECK, (0u8, d.path())),
        Dependency::ProvideFile(d) => key(CHECK, (1u8, d.path())),
        Dependency::RequireTask(d) => key(CHECK, (2u8, d.task())),
    }
}

fn describe<T: Debug, O>(dependency: &Dependency<T, O>) -> String {
    match dependency {
        Dependency::RequireFile(d) => format!("r {}", d.path().display()),
        Dependency::ProvideFile(d) => format!("p {}", d.path().display()),
        Dependency::RequireTask(d) => format!("{:?}", d.task()),
    }
}

impl TracingTracker {
    /// A tracker with no span open.
    pub fn new() -> Self {
        Self::default()
    }

    fn lane(&mut self) -> &mut Lane {
        let lane = lane();
        if lane >= self.lanes.len() {
            self.lanes.resize_with(lane + 1, Lane::default);
        }
        &mut self.lanes[lane]
    }

    /// Enters `span` on this thread and keeps it open on this lane.
    fn open(&mut self, span: Span, key: u64) {
        span.with_subscriber(|(id, dispatch)| dispatch.enter(id));
        self.lane().open.push(Open { span, key });
    }

    /// Exits the innermost open span of this lane about `key`, and the spans opened after it (left open by a
    /// panic), innermost first; returns it (it closes when dropped). `None` when no open span is about `key`.
    fn close(&mut self, key: u64) -> Option<Span> {
        let open = &mut self.lane().open;
        let position = open.iter().rposition(|o| o.key == key)?;
        let mut closed = None;
        for o in open.drain(position..).rev() {
            o.span.with_subscriber(|(id, dispatch)| dispatch.exit(id));
            closed = Some(o.span);
        }
        closed
    }

    fn file_event(&mut self, what: &str, dependency: &FileDependency) {
        let path = dependency.path().display();
        let stamp = ShowStamp(dependency.stamp());
        debug!(path = %path, stamp = %stamp, "{what}");
    }
}

impl<T: Task> Tracker<T> for TracingTracker {
    fn build_start(&mut self) {
        // Spans left open by a panic that escaped the last build: this thread's are exited here; a worker's
        // thread may be gone, so they are only closed.
        let current = lane();
        for (index, lane) in self.lanes.iter_mut().enumerate() {
            for o in lane.open.drain(..).rev() {
                if index == current {
                    o.span.with_subscriber(|(id, dispatch)| dispatch.exit(id));
                }
            }
            lane.reason = None;
        }
    }
    fn require_file_end(&mut self, dependency: &FileDependency) {
        self.file_event("required file", dependency);
    }
    fn provide_file_end(&mut self, dependency: &FileDependency) {
        self.file_event("provided file", dependency);
    }
    fn require_task_start(&mut self, task: &T, _stamper: &OutputStamper) {
        let span = debug_span!("require", task = ?task, executed = field::Empty);
        self.open(span, key(REQUIRE, task));
    }
    fn require_task_end(&mut self, dependency: &TaskDependency<T, T::Output>, _output: &T::Output, executed: bool) {
        if let Some(span) = self.close(key(REQUIRE, dependency.task())) {
            span.record("executed", executed);
        }
    }
    fn check_dependency_start(&mut self, dependency: &Dependency<T, T::Output>) {
        let span = trace_span!(
            "check",
            dependency = %describe(dependency),
            consistent = field::Empty,
            why = field::Empty
        );
        self.open(span, check_key(dependency));
    }
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<T, T::Output>,
        inconsistency: Result<Option<&Inconsistency<T::Output>>, &io::Error>,
    ) {
        let why = match inconsistency {
            Ok(None) => None,
            Ok(Some(inconsistency)) => Some(show_inconsistency(dependency, Ok(inconsistency))),
            Err(e) => Some(show_inconsistency(dependency, Err(e))),
        };
        let span = self.close(check_key(dependency));
        if let Some(why) = why {
            if let Some(span) = &span {
                span.record("consistent", false);
                span.record("why", why.as_str());
            }
            self.lane().reason = Some(format!("{}: {why}", describe(dependency)));
        } else if let Some(span) = &span {
            span.record("consistent", true);
        }
    }
    fn execute_start(&mut self, task: &T) {
        let reason = self.lane().reason.take();
        let reason = reason.as_deref().unwrap_or(NO_INCONSISTENCY);
        let span = info_span!("execute", task = ?task, reason = reason);
        self.open(span, key(EXECUTE, task));
    }
    fn execute_end(&mut self, task: &T, _output: &T::Output) {
        self.close(key(EXECUTE, task));
    }
}
