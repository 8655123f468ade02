//! The `tracing` tracker (feature `tracing`) under a recording subscriber written here: spans arrive, nest as the
//! build does (also with two threads), are entered and exited in order on each thread, and carry the task and, for
//! executions, the reason.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::{self, ThreadId};

use dev_util::Dir;
use pie::stamp::FileStamper;
use pie::tracker::tracing::TracingTracker;
use pie::{Context, Pie, Task};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span as the subscriber saw it.
#[derive(Clone, Debug)]
struct SpanRecord {
    name: &'static str,
    fields: HashMap<String, String>,
    parent: Option<u64>,
    thread: ThreadId,
}

/// An event as the subscriber saw it.
#[derive(Clone, Debug)]
struct EventRecord {
    fields: HashMap<String, String>,
    parent: Option<u64>,
}

#[derive(Default)]
struct Recorded {
    spans: HashMap<u64, SpanRecord>,
    events: Vec<EventRecord>,
    /// The entered spans of each thread, innermost last.
    stacks: HashMap<ThreadId, Vec<u64>>,
    /// Exits of a span that was not the innermost entered one on its thread, and enters of a span twice.
    misnested: Vec<String>,
}

/// Records spans, events, and enters and exits per thread.
#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    recorded: Mutex<Recorded>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = HashMap::new();
        attributes.record(&mut Fields(&mut fields));
        let mut recorded = self.lock();
        let thread = thread::current().id();
        let parent = if attributes.is_contextual() {
            recorded.stacks.get(&thread).and_then(|s| s.last().copied())
        } else {
            attributes.parent().map(Id::into_u64)
        };
        let name = attributes.metadata().name();
        recorded.spans.insert(
            id,
            SpanRecord {
                name,
                fields,
                parent,
                thread,
            },
        );
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut recorded = self.lock();
        let span = recorded.spans.get_mut(&span.into_u64()).expect("a recorded span");
        values.record(&mut Fields(&mut span.fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let mut recorded = self.lock();
        let parent = recorded
            .stacks
            .get(&thread::current().id())
            .and_then(|s| s.last().copied());
        recorded.events.push(EventRecord { fields, parent });
    }
    fn enter(&self, span: &Id) {
        let mut recorded = self.lock();
        let thread = thread::current().id();
        let stack = recorded.stacks.entry(thread).or_default();
        if stack.contains(&span.into_u64()) {
            recorded.misnested.push(format!("entered {span:?} twice"));
        } else {
            stack.push(span.into_u64());
        }
    }
    fn exit(&self, span: &Id) {
        let mut recorded = self.lock();
        let stack = recorded.stacks.entry(thread::current().id()).or_default();
        if stack.last() == Some(&span.into_u64()) {
            stack.pop();
        } else {
            let message = format!("exited {span:?} while {stack:?} were entered");
            recorded.misnested.push(message);
        }
    }
}

/// The recorder, the global default subscriber (worker threads use it too); the tests take turns at it.
fn recorder() -> (&'static Recorder, MutexGuard<'static, ()>) {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let recorder = *RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::set_global_default(Dispatch(recorder)).expect("no other subscriber");
        recorder
    });
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    *recorder.lock() = Recorded::default();
    (recorder, turn)
}

/// The global subscriber forwards to the leaked recorder.
struct Dispatch(&'static Recorder);

impl Subscriber for Dispatch {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        self.0.new_span(attributes)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        self.0.record(span, values)
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.0.record_follows_from(span, follows)
    }
    fn event(&self, event: &Event<'_>) {
        self.0.event(event)
    }
    fn enter(&self, span: &Id) {
        self.0.enter(span)
    }
    fn exit(&self, span: &Id) {
        self.0.exit(span)
    }
}

/// `Root(files)` requires a `Read` task per file (with `require_tasks`) and joins their texts.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Job {
    Root(Vec<String>),
    Read(String),
    /// Requires `Panic`, catching its panic.
    Catch,
    Panic,
}

impl Task for Job {
    type Output = String;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
        match self {
            Job::Root(files) => {
                let reads: Vec<Job> = files.iter().cloned().map(Job::Read).collect();
                context.require_tasks(&reads).concat()
            }
            Job::Read(path) => {
                let mut text = String::new();
                if let Ok(Some(mut file)) = context.require_file_with_stamper(path, FileStamper::Hash) {
                    std::io::Read::read_to_string(&mut file, &mut text).unwrap();
                }
                text
            }
            Job::Catch => {
                let caught =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| context.require_task(&Job::Panic)));
                format!("caught: {}", caught.is_err())
            }
            Job::Panic => panic!("on purpose"),
        }
    }
}

/// The spans named `name` whose `task` field is `task`'s `Debug`.
fn spans_of<'a>(recorded: &'a Recorded, name: &str, task: &Job) -> Vec<(u64, &'a SpanRecord)> {
    let task = format!("{task:?}");
    let mut spans: Vec<(u64, &SpanRecord)> = recorded
        .spans
        .iter()
        .filter(|(_, s)| s.name == name && s.fields.get("task") == Some(&task))
        .map(|(id, s)| (*id, s))
        .collect();
    spans.sort_by_key(|(id, _)| *id);
    spans
}

fn build(threads: usize) {
    let (recorder, _turn) = recorder();
    let dir = Dir::new();
    let files: Vec<String> = (0..4)
        .map(|i| dir.create(format!("{i}.txt"), format!("{i}")).display().to_string())
        .collect();
    let root = Job::Root(files.clone());
    let mut pie = Pie::with_tracker(TracingTracker::new());
    pie.set_threads(threads);
    assert_eq!(pie.new_session().require(&root), "0123");

    {
        let recorded = recorder.lock();
        assert!(recorded.misnested.is_empty(), "{:?}", recorded.misnested);
        assert!(recorded.stacks.values().all(Vec::is_empty), "every span was exited");
        // The root: one require span, with its execution inside, a first execution for want of output.
        let [(require, require_span)] = spans_of(&recorded, "require", &root)[..] else {
            panic!("one require span of the root: {:#?}", recorded.spans)
        };
        assert_eq!(require_span.parent, None);
        assert_eq!(require_span.fields["executed"], "true");
        let [(execute, execute_span)] = spans_of(&recorded, "execute", &root)[..] else {
            panic!("one execute span of the root")
        };
        assert_eq!(execute_span.parent, Some(require));
        assert!(execute_span.fields["reason"].starts_with("no inconsistent dependency"));
        for file in &files {
            let read = Job::Read(file.clone());
            let [(require, require_span)] = spans_of(&recorded, "require", &read)[..] else {
                panic!("one require span of {read:?}")
            };
            // On the root's thread, inside the root's execution; on a worker thread, a span of its own.
            if require_span.thread == execute_span.thread {
                assert_eq!(require_span.parent, Some(execute), "{read:?}");
            } else {
                assert_eq!(threads, 2, "only a parallel build uses another thread");
            }
            let [(read_execute, execute_span)] = spans_of(&recorded, "execute", &read)[..] else {
                panic!("one execute span of {read:?}")
            };
            assert_eq!(execute_span.parent, Some(require), "{read:?}");
            assert_eq!(execute_span.thread, require_span.thread);
            // The file's read is an event inside the execution.
            let event = recorded
                .events
                .iter()
                .find(|e| e.fields.get("path") == Some(file))
                .unwrap_or_else(|| panic!("no event of {file}"));
            assert_eq!(event.fields["message"], "required file");
            assert!(event.fields["stamp"].starts_with("hash "), "{event:?}");
            assert_eq!(event.parent, Some(read_execute));
        }
    }

    // A change to one file: the root is checked, its read task's check finds the file changed, and the read task
    // executes for that reason; then the root executes because the read task's output changed.
    dir.write(&files[2], "two");
    *recorder.lock() = Recorded::default();
    assert_eq!(pie.new_session().require(&root), "01two3");
    let recorded = recorder.lock();
    assert!(recorded.misnested.is_empty(), "{:?}", recorded.misnested);
    let changed = Job::Read(files[2].clone());
    let [(_, execute_span)] = spans_of(&recorded, "execute", &changed)[..] else {
        panic!("one execution of the changed read: {:#?}", recorded.spans)
    };
    let reason = &execute_span.fields["reason"];
    assert!(
        reason.starts_with(&format!("r {}: was hash ", files[2])) && reason.contains(", now hash "),
        "{reason}"
    );
    let check = if threads == 1 {
        let check = recorded
            .spans
            .get(&execute_span.parent.expect("the execution is inside the check"))
            .unwrap();
        assert_eq!(check.name, "check");
        check
    } else {
        // In a parallel build the check that finds the read task inconsistent hands it, with the rest of the root's
        // `require_tasks` group, to a fork (see `Tracker::check_dependency_end`): it executes outside that check,
        // which is made again afterwards and finds the new output.
        let mut checks: Vec<(u64, &SpanRecord)> = recorded
            .spans
            .iter()
            .filter(|(_, s)| s.name == "check" && s.fields["dependency"] == format!("{changed:?}"))
            .map(|(id, s)| (*id, s))
            .collect();
        checks.sort_by_key(|(id, _)| *id);
        assert_eq!(checks.len(), 2, "{checks:#?}");
        assert!(execute_span.parent.is_none_or(|p| recorded.spans[&p].name == "require"));
        checks[1].1
    };
    assert_eq!(check.fields["dependency"], format!("{changed:?}"));
    let [(_, root_execute)] = spans_of(&recorded, "execute", &root)[..] else {
        panic!("one execution of the root")
    };
    assert_eq!(root_execute.fields["reason"], format!("{changed:?}: now \"two\""));
    assert_eq!(check.fields["consistent"], "false");
    for unchanged in [0, 1, 3] {
        let read = Job::Read(files[unchanged].clone());
        assert!(spans_of(&recorded, "execute", &read).is_empty(), "{read:?} executed");
    }
}

#[test]
fn spans_nest_and_carry_task_and_reason_on_one_thread() {
    build(1);
}

#[test]
fn spans_nest_per_thread_in_a_parallel_build() {
    build(2);
}

#[test]
fn spans_left_open_by_a_caught_panic_are_exited_in_order() {
    let (recorder, _turn) = recorder();
    let mut pie = Pie::with_tracker(TracingTracker::new());
    pie.set_threads(1);
    assert_eq!(pie.new_session().require(&Job::Catch), "caught: true");
    let recorded = recorder.lock();
    assert!(recorded.misnested.is_empty(), "{:?}", recorded.misnested);
    assert!(recorded.stacks.values().all(Vec::is_empty), "every span was exited");
    // The panicking task's spans nest inside the catching task's execution.
    let [(catch_execute, _)] = spans_of(&recorded, "execute", &Job::Catch)[..] else {
        panic!("one execution of the catching task")
    };
    let [(panic_require, require_span)] = spans_of(&recorded, "require", &Job::Panic)[..] else {
        panic!("one require of the panicking task")
    };
    assert_eq!(require_span.parent, Some(catch_execute));
    let [(_, execute_span)] = spans_of(&recorded, "execute", &Job::Panic)[..] else {
        panic!("one execution of the panicking task")
    };
    assert_eq!(execute_span.parent, Some(panic_require));
}
