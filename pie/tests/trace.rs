//! `TraceTracker`: the Chrome trace parses as JSON, every complete event has its fields, spans nest per thread,
//! lanes are named, a parallel build uses several lanes, and the summary counts and measures the build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use dev_util::Dir;
use pie::tracker::trace::TraceTracker;
use pie::{Context, Pie, Task};
use serde_json::Value;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum T {
    /// Sleeps this many milliseconds, then returns the name.
    Sleep(&'static str, u64),
    /// Reads the file.
    Read(PathBuf),
    /// Requires the task, then sleeps this many milliseconds.
    Then(Box<T>, u64),
    /// Requires the tasks with `require_tasks`.
    All(Vec<T>),
    /// Panics.
    Panic,
    /// Requires the first task, catching its panic, then the second.
    Catch(Box<T>, Box<T>),
}

impl Task for T {
    type Output = String;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
        match self {
            T::Sleep(name, millis) => {
                std::thread::sleep(Duration::from_millis(*millis));
                name.to_string()
            }
            T::Read(path) => {
                context.require_file(path).unwrap();
                std::fs::read_to_string(path).unwrap_or_default()
            }
            T::Then(task, millis) => {
                let output = context.require_task(task);
                std::thread::sleep(Duration::from_millis(*millis));
                output
            }
            T::All(tasks) => context.require_tasks(tasks).join("+"),
            T::Panic => panic!("on purpose"),
            T::Catch(first, second) => {
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| context.require_task(first)));
                assert!(caught.is_err());
                context.require_task(second)
            }
        }
    }
}

/// The trace of the last build, parsed.
fn trace(pie: &Pie<T, String, TraceTracker>) -> Vec<Value> {
    let mut json = Vec::new();
    pie.tracker().write_json(&mut json).unwrap();
    let value: Value = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("the trace is not JSON ({e}): {}", String::from_utf8_lossy(&json)));
    value["traceEvents"].as_array().expect("a traceEvents array").clone()
}

/// Checks every event's fields and the nesting per thread; returns the complete events by thread, sorted by start.
fn check(events: &[Value]) -> BTreeMap<u64, Vec<&Value>> {
    let mut by_tid: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    let mut named = BTreeMap::new();
    for event in events {
        match event["ph"].as_str() {
            Some("X") => {
                for field in ["name", "cat", "ph", "ts", "dur", "pid", "tid"] {
                    assert!(event.get(field).is_some(), "{field} missing in {event}");
                }
                assert!(event["name"].is_string(), "{event}");
                let cat = event["cat"].as_str().unwrap();
                assert!(["execute", "check", "require"].contains(&cat), "{event}");
                assert!(event["ts"].as_f64().unwrap() >= 0.0, "{event}");
                assert!(event["dur"].as_f64().unwrap() >= 0.0, "{event}");
                assert_eq!(event["pid"], 1, "{event}");
                by_tid.entry(event["tid"].as_u64().unwrap()).or_default().push(event);
            }
            Some("M") => {
                assert_eq!(event["name"], "thread_name", "{event}");
                named.insert(
                    event["tid"].as_u64().unwrap(),
                    event["args"]["name"].as_str().unwrap().to_string(),
                );
            }
            other => panic!("unexpected phase {other:?} in {event}"),
        }
    }
    for (tid, spans) in &mut by_tid {
        let expected = if *tid == 0 {
            "caller".to_string()
        } else {
            format!("worker {tid}")
        };
        assert_eq!(named.get(tid), Some(&expected), "thread {tid} is named");
        // Outer spans first among spans that start together, so that each span comes after those containing it.
        let interval = |e: &Value| {
            let start = (e["ts"].as_f64().unwrap() * 1000.0).round() as i64;
            (start, start + (e["dur"].as_f64().unwrap() * 1000.0).round() as i64)
        };
        spans.sort_by_key(|e| {
            let (start, end) = interval(e);
            (start, -end)
        });
        let mut open: Vec<(i64, i64)> = Vec::new();
        for span in spans.iter() {
            let (start, end) = interval(span);
            while open.last().is_some_and(|&(_, outer_end)| outer_end <= start) {
                open.pop();
            }
            if let Some(&(outer_start, outer_end)) = open.last() {
                assert!(
                    outer_start <= start && end <= outer_end,
                    "on thread {tid}, {span} overlaps [{outer_start}, {outer_end}] ns without nesting in it"
                );
            }
            open.push((start, end));
        }
    }
    by_tid
}

fn names<'a>(spans: impl IntoIterator<Item = &'a &'a Value>, cat: &str) -> Vec<String> {
    spans
        .into_iter()
        .filter(|e| e["cat"] == cat)
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_trace_is_json_with_complete_events_nested_per_thread() {
    let dir = Dir::new();
    let path = dir.create("in \"quoted\"\\\n.txt", "text");
    let read = T::Read(path.clone());
    let top = T::Then(Box::new(T::Then(Box::new(read.clone()), 20)), 1);
    let mut pie = Pie::with_tracker(TraceTracker::new());
    pie.new_session().require(&top);
    let events = trace(&pie);
    let by_tid = check(&events);
    assert_eq!(by_tid.keys().copied().collect::<Vec<_>>(), [0], "one thread");
    let spans = &by_tid[&0];
    assert_eq!(names(spans, "execute").len(), 3);
    assert_eq!(names(spans, "require").len(), 3);
    assert_eq!(
        names(spans, "execute")[2],
        format!("{read:?}"),
        "quotes, backslashes and newlines survive"
    );
    let top_execution = spans.iter().find(|e| e["cat"] == "execute").unwrap();
    assert_eq!(top_execution["args"]["task"], format!("{top:?}"));
    assert_eq!(
        pie.tracker().summary(0).critical_path_tasks.len(),
        3,
        "nested executions form a chain"
    );
    assert_eq!(
        top_execution["args"]["why"],
        "no cached output (new, or its last execution failed)"
    );
    assert!(
        top_execution["dur"].as_f64().unwrap() >= 21_000.0,
        "it slept 21 ms: {top_execution}"
    );

    // A changed file: checks, and the reason of each execution.
    dir.write(&path, "changed");
    pie.new_session().require(&top);
    let events = trace(&pie);
    let by_tid = check(&events);
    let spans = &by_tid[&0];
    let checks = names(spans, "check");
    assert!(checks.contains(&path.display().to_string()), "{checks:?}");
    let read_execution = spans
        .iter()
        .find(|e| e["cat"] == "execute" && e["name"] == format!("{read:?}"))
        .unwrap();
    let why = read_execution["args"]["why"].as_str().unwrap();
    assert!(why.starts_with(&format!("file {} changed", path.display())), "{why}");
    let top_execution = spans
        .iter()
        .find(|e| e["cat"] == "execute" && e["name"] == format!("{top:?}"))
        .unwrap();
    assert!(top_execution["args"]["why"]
        .as_str()
        .unwrap()
        .starts_with("the output of required task"));

    let summary = pie.tracker().summary(2);
    assert_eq!(summary.executed, 3);
    assert_eq!(summary.checked, 3, "the file and the two task dependencies");
    assert!(summary.build_time >= Duration::from_millis(21));
    // Each execution waited for the one below it: the critical path is the chain of all three, outermost first.
    assert_eq!(summary.critical_path_tasks.len(), 3);
    assert_eq!(summary.critical_path_tasks[0], format!("{top:?}"));
    assert!(summary.critical_path >= Duration::from_millis(21), "{summary:?}");
    assert!(summary.critical_path <= summary.build_time);
    assert_eq!(summary.slowest.len(), 2);
    // The middle task slept 20 ms itself, the top one 1 ms.
    assert!(summary.slowest[0].task.starts_with("Then(Read("), "{summary:?}");
    assert!(summary.slowest[0].self_time >= Duration::from_millis(20));
    assert!(summary.slowest[0].total_time >= summary.slowest[0].self_time);
    let text = summary.to_string();
    assert!(
        text.starts_with("3 tasks executed, 3 dependencies checked in "),
        "{text}"
    );
    assert!(text.contains("critical path: "), "{text}");
}

#[test]
fn a_parallel_build_traces_several_lanes() {
    let tasks: Vec<T> = ["a", "b", "c", "d", "e", "f"]
        .into_iter()
        .map(|n| T::Sleep(n, 10))
        .collect();
    let all = T::All(tasks.clone());
    let mut pie = Pie::with_tracker(TraceTracker::new());
    pie.set_threads(2);
    assert_eq!(pie.new_session().require(&all), "a+b+c+d+e+f");
    let events = trace(&pie);
    let by_tid = check(&events);
    assert!(by_tid.len() >= 2, "at least two lanes: {:?}", by_tid.keys());
    let executed: BTreeSet<String> = by_tid.values().flat_map(|spans| names(spans, "execute")).collect();
    let expected: BTreeSet<String> = tasks.iter().chain([&all]).map(|t| format!("{t:?}")).collect();
    assert_eq!(executed, expected, "each task once");
    let summary = pie.tracker().summary(10);
    assert_eq!(summary.executed, 7);
    // Six sleeps of 10 ms on two lanes take at least 30 ms.
    assert!(summary.build_time >= Duration::from_millis(30), "{summary:?}");
}

#[test]
fn an_empty_tracker_writes_an_empty_trace_and_a_new_build_forgets_the_last() {
    let mut pie = Pie::with_tracker(TraceTracker::new());
    assert!(trace(&pie).is_empty());
    let task = T::Sleep("a", 0);
    pie.new_session().require(&task);
    assert_eq!(trace(&pie).iter().filter(|e| e["cat"] == "execute").count(), 1);
    pie.new_session().require(&task);
    let events = trace(&pie);
    assert_eq!(events.iter().filter(|e| e["cat"] == "execute").count(), 0);
    assert_eq!(events.iter().filter(|e| e["cat"] == "require").count(), 1);
    assert_eq!(pie.tracker().summary(3).executed, 0);
}

#[test]
fn spans_that_a_caught_panic_left_open_are_closed_unfinished_and_still_nest() {
    let top = T::Catch(Box::new(T::Then(Box::new(T::Panic), 0)), Box::new(T::Sleep("after", 1)));
    let mut pie = Pie::with_tracker(TraceTracker::new());
    std::panic::set_hook(Box::new(|_| {}));
    let output = pie.new_session().require(&top);
    let _ = std::panic::take_hook();
    assert_eq!(output, "after");
    let events = trace(&pie);
    let by_tid = check(&events);
    let spans = &by_tid[&0];
    let unfinished: Vec<&str> = spans
        .iter()
        .filter(|e| e["args"]["unfinished"] == true)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(unfinished.len(), 4, "two requires and two executions: {unfinished:?}");
    assert!(unfinished.contains(&"Panic"), "{unfinished:?}");
    let after = spans
        .iter()
        .find(|e| e["cat"] == "execute" && e["name"] == format!("{:?}", T::Sleep("after", 1)));
    assert!(after.unwrap()["args"].get("unfinished").is_none());
    assert_eq!(pie.tracker().summary(5).executed, 4);
}
