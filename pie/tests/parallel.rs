//! Parallel builds through the public API: real parallelism (two branches meet, which one thread cannot do),
//! claims (a task required by many branches executes once), cycles through tasks on different threads, panics on
//! worker threads, overlaps and hidden dependencies between branches, dependencies recorded in argument order, and
//! deep graphs. Verdicts are checked many times over, since which thread gets where first varies.

mod common;

use std::collections::HashMap;
use std::fs;
use std::panic;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use common::{assert_message, catch, CYCLE, HIDDEN, OVERLAP};
use dev_util::Dir;
use pie::dependency::Dependency;
use pie::tracker::event::{Event, EventTracker};
use pie::tracker::writing::WritingTracker;
use pie::tracker::Tracker;
use pie::{Context, Pie, Task};

/// How long a task waits for its partner at a meeting point before it gives up (a generous bound: a parallel
/// build meets within milliseconds; only a build that runs the partners one after the other reaches it).
const PATIENCE: Duration = Duration::from_secs(30);

/// Meeting points by name: how many tasks arrived at each.
fn meetings() -> &'static (Mutex<HashMap<String, usize>>, Condvar) {
    static MEETINGS: OnceLock<(Mutex<HashMap<String, usize>>, Condvar)> = OnceLock::new();
    MEETINGS.get_or_init(Default::default)
}

/// Waits until `parties` tasks arrived at meeting point `name` (only the first `parties` arrivals wait: a task
/// executed again later passes at once). Panics with `no meeting at NAME` after `patience`.
fn meet(name: &str, parties: usize, patience: Duration) {
    let (arrived, wake) = meetings();
    let mut arrived = arrived.lock().unwrap();
    let count = arrived.entry(name.to_string()).or_insert(0);
    *count += 1;
    if *count > parties {
        return;
    }
    wake.notify_all();
    let (arrived, timeout) = wake
        .wait_timeout_while(arrived, patience, |arrived| arrived[name] < parties)
        .unwrap();
    drop(arrived);
    if timeout.timed_out() {
        panic!("no meeting at {name}");
    }
}

/// Executions of `Counted` tasks by name, across all tests (names are unique per test).
fn executions() -> &'static Mutex<HashMap<String, usize>> {
    static EXECUTIONS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    EXECUTIONS.get_or_init(Default::default)
}

fn count_execution(name: &str) {
    *executions().lock().unwrap().entry(name.to_string()).or_insert(0) += 1;
}

fn execution_count(name: &str) -> usize {
    executions().lock().unwrap().get(name).copied().unwrap_or(0)
}

/// The payload of [`Par::PanicWith`].
#[derive(Debug, PartialEq)]
struct Payload(u32);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Par {
    /// Returns the string.
    Return(String),
    /// Waits at meeting point `.0` for `.1` parties, then returns `.0`.
    Meet(String, usize, Duration),
    /// Requires the tasks with `require_tasks`; returns their outputs joined with `+`.
    All(Vec<Par>),
    /// Requires the task with `require_task`, then the others with `require_tasks`; returns the outputs joined.
    OneThenAll(Box<Par>, Vec<Par>),
    /// Counts its execution under the name, sleeps a little, returns the name.
    Counted(String),
    /// Panics with `Payload(.0)` (after meeting at `.1` with two parties, when given).
    PanicWith(u32, Option<String>),
    /// Writes the text to the file and provides it; returns the text.
    Write(PathBuf, String),
    /// Requires the file and returns its contents.
    Read(PathBuf),
    /// Meets at `.0` (two parties), then reads the file.
    MeetThenRead(String, PathBuf),
    /// Meets at `.0` (two parties), then writes `.2` to the file and provides it.
    MeetThenWrite(String, PathBuf, String),
    /// Link of a chain: requires the next link (with `require_tasks` of one task), or returns at 0.
    Link(u32),
    /// Link of a forked chain: requires the next link and a leaf in one `require_tasks`.
    ForkedLink(u32),
    /// A leaf of a forked chain.
    Leaf(u32),
    /// Meets at `.0` (two parties), then requires `Cycle(.0, other side)`.
    Cycle(String, char),
    /// Requires, with `require_tasks`, itself and a task returning `.0`.
    SelfFork(String),
    /// Requires the tasks with `require_tasks`, then reads the file.
    ReadAfterAll(Vec<Par>, PathBuf),
    /// Takes the steps in order; returns what it read, joined with `+`.
    Steps(Vec<Step>),
    /// Requires the first task; when its output is `.1`, requires the second task too. Returns the first's output.
    IfOutput(Box<Par>, String, Box<Par>),
}

/// A step of [`Par::Steps`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Step {
    /// Meets at the meeting point (two parties).
    Meet(String),
    /// Writes the text to the file and provides it.
    Write(PathBuf, String),
    /// Requires the file.
    Read(PathBuf),
    /// Panics with `Payload(.0)`.
    Panic(u32),
    /// Requires the file; when it names a meeting point, meets there (two parties, ten seconds' patience).
    MeetAsFileSays(PathBuf),
    /// Like `MeetAsFileSays`, adding nothing to the output.
    MeetQuietlyAsFileSays(PathBuf),
    /// Requires the file and then, with `require_tasks`, two tasks as it says: `meet:NAME`, two tasks that meet at
    /// `NAME`; `cycle:NAME`, the two sides of [`Par::Cycle`] at `NAME`; nothing when it is empty.
    ForkAsFileSays(PathBuf),
    /// Requires the task, catching its panic; adds its output, or `caught` with the panic's message.
    Try(Box<Par>),
}

impl Task for Par {
    type Output = String;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
        match self {
            Par::Return(s) => s.clone(),
            Par::Meet(name, parties, patience) => {
                meet(name, *parties, *patience);
                name.clone()
            }
            Par::All(tasks) => context.require_tasks(tasks).join("+"),
            Par::OneThenAll(first, rest) => {
                let first = context.require_task(first);
                let rest = context.require_tasks(rest).join("+");
                format!("{first}|{rest}")
            }
            Par::Counted(name) => {
                count_execution(name);
                thread::sleep(Duration::from_millis(20));
                name.clone()
            }
            Par::PanicWith(n, meeting) => {
                if let Some(name) = meeting {
                    meet(name, 2, PATIENCE);
                }
                panic::panic_any(Payload(*n))
            }
            Par::Write(path, text) => {
                fs::write(path, text).unwrap();
                context.provide_file(path).unwrap();
                text.clone()
            }
            Par::Read(path) => read(context, path),
            Par::MeetThenRead(name, path) => {
                meet(name, 2, PATIENCE);
                read(context, path)
            }
            Par::MeetThenWrite(name, path, text) => {
                meet(name, 2, PATIENCE);
                fs::write(path, text).unwrap();
                context.provide_file(path).unwrap();
                text.clone()
            }
            Par::Link(0) | Par::ForkedLink(0) => "bottom".to_string(),
            Par::Link(n) => context.require_tasks(&[Par::Link(n - 1)]).remove(0),
            Par::ForkedLink(n) => context
                .require_tasks(&[Par::ForkedLink(n - 1), Par::Leaf(*n)])
                .remove(0),
            Par::Leaf(n) => n.to_string(),
            Par::Cycle(name, side) => {
                meet(name, 2, PATIENCE);
                let other = if *side == 'a' { 'b' } else { 'a' };
                context.require_task(&Par::Cycle(name.clone(), other))
            }
            Par::SelfFork(name) => context
                .require_tasks(&[Par::Return(name.clone()), self.clone()])
                .join("+"),
            Par::ReadAfterAll(tasks, path) => {
                context.require_tasks(tasks);
                read(context, path)
            }
            Par::Steps(steps) => {
                let mut texts = Vec::new();
                for step in steps {
                    match step {
                        Step::Meet(name) => meet(name, 2, PATIENCE),
                        Step::Write(path, text) => {
                            fs::write(path, text).unwrap();
                            context.provide_file(path).unwrap();
                        }
                        Step::Read(path) => texts.push(read(context, path)),
                        Step::Panic(n) => panic::panic_any(Payload(*n)),
                        Step::MeetAsFileSays(path) => texts.push(meet_as_file_says(context, path)),
                        Step::MeetQuietlyAsFileSays(path) => {
                            meet_as_file_says(context, path);
                        }
                        Step::ForkAsFileSays(path) => {
                            let text = read(context, path);
                            let tasks = match text.split_once(':') {
                                Some(("meet", name)) => vec![
                                    meet_task(name, PATIENCE),
                                    Par::Meet(name.to_string(), 2, PATIENCE + Duration::from_millis(1)),
                                ],
                                Some(("cycle", name)) => {
                                    vec![Par::Cycle(name.to_string(), 'a'), Par::Cycle(name.to_string(), 'b')]
                                }
                                _ => Vec::new(),
                            };
                            texts.extend(context.require_tasks(&tasks));
                        }
                        Step::Try(task) => {
                            let result = panic::catch_unwind(panic::AssertUnwindSafe(|| context.require_task(task)));
                            texts.push(result.unwrap_or_else(|payload| {
                                let message = payload.downcast_ref::<String>().map_or("", String::as_str);
                                format!("caught {}", message.split(':').next().unwrap_or(""))
                            }));
                        }
                    }
                }
                texts.join("+")
            }
            Par::IfOutput(first, on, then) => {
                let output = context.require_task(first);
                if output == *on {
                    context.require_task(then);
                }
                output
            }
        }
    }
}

fn read<C: Context<Par>>(context: &mut C, path: &PathBuf) -> String {
    match context.require_file(path).unwrap() {
        Some(mut file) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).unwrap();
            text
        }
        None => String::new(),
    }
}

/// Requires the file; when it names a meeting point, meets there (two parties, ten seconds' patience). Returns
/// what it read.
fn meet_as_file_says<C: Context<Par>>(context: &mut C, path: &PathBuf) -> String {
    let name = read(context, path);
    if !name.is_empty() {
        meet(&name, 2, Duration::from_secs(10));
    }
    name
}

fn meet_task(name: &str, patience: Duration) -> Par {
    Par::Meet(name.to_string(), 2, patience)
}

#[allow(clippy::type_complexity)]
fn pie_with(threads: usize) -> Pie<Par, String, EventTracker<Par, String>> {
    let mut pie = Pie::with_tracker(EventTracker::default());
    pie.set_threads(threads);
    pie
}

/// A unique name per call, so that repeated runs use fresh meeting points and counters.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn quiet_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let expected = info.payload().downcast_ref::<Payload>().is_some()
                || info
                    .payload()
                    .downcast_ref::<String>()
                    .is_some_and(|m| [CYCLE, OVERLAP, HIDDEN, "no meeting"].iter().any(|p| m.starts_with(p)));
            if !expected {
                default(info);
            }
        }));
    });
}

#[test]
fn two_branches_of_require_tasks_run_at_the_same_time() {
    let a = unique("meet");
    // Two different tasks (their patience differs by a millisecond) at one meeting point: each waits for the other.
    let root = Par::All(vec![
        meet_task(&a, PATIENCE),
        Par::Meet(a.clone(), 2, PATIENCE + Duration::from_millis(1)),
    ]);
    let mut pie = pie_with(2);
    assert_eq!(pie.new_session().require(&root), format!("{a}+{a}"));
    assert!(pie.tracker().one_execute_of(&root));
}

#[test]
fn require_all_runs_roots_at_the_same_time() {
    let name = unique("roots");
    let roots = [
        meet_task(&name, PATIENCE),
        Par::Meet(name.clone(), 2, PATIENCE + Duration::from_millis(1)),
    ];
    let mut pie = pie_with(2);
    assert_eq!(pie.new_session().require_all(&roots), vec![name.clone(), name.clone()]);
    assert_eq!(pie.roots().count(), 2);
    assert!(!pie.tracker().any_execute_of(&Par::Return(String::new())));
    // A rebuild executes nothing.
    pie.new_session().require_all(&roots);
    assert!(!pie.tracker().any_execute());
}

#[test]
fn on_one_thread_the_branches_run_one_after_the_other() {
    // The counter-check of the tests above: on one thread, the first task waits in vain.
    quiet_panics();
    let name = unique("alone");
    let patience = Duration::from_millis(200);
    let root = Par::All(vec![
        meet_task(&name, patience),
        Par::Meet(name.clone(), 2, patience + Duration::from_millis(1)),
    ]);
    let mut pie = pie_with(1);
    let message = catch(|| pie.new_session().require(&root)).unwrap_err();
    assert_eq!(message, format!("no meeting at {name}"));
}

#[test]
fn a_task_required_by_many_branches_executes_once() {
    for threads in [2, 4, 8] {
        let name = unique("shared");
        let shared = Par::Counted(name.clone());
        let branches: Vec<Par> = (0..16)
            .map(|i| Par::OneThenAll(Box::new(Par::Return(i.to_string())), vec![shared.clone()]))
            .collect();
        let root = Par::All(branches);
        let mut pie = pie_with(threads);
        let output = pie.new_session().require(&root);
        assert_eq!(output.split('+').count(), 16);
        assert_eq!(execution_count(&name), 1, "{threads} threads");
        assert!(pie.tracker().one_execute_of(&shared));
    }
}

#[test]
fn outputs_come_in_argument_order_and_dependencies_are_checked_in_it() {
    let tasks: Vec<Par> = (0..32).map(|i| Par::Counted(unique(&format!("order{i}")))).collect();
    let root = Par::All(tasks.clone());
    let expected: Vec<String> = tasks
        .iter()
        .map(|t| match t {
            Par::Counted(name) => name.clone(),
            _ => unreachable!(),
        })
        .collect();
    let mut pie = Pie::with_tracker(TaskChecks::default());
    pie.set_threads(4);
    assert_eq!(pie.new_session().require(&root), expected.join("+"));
    // A rebuild on one thread checks the root's dependencies one by one, in the order they were recorded.
    pie.set_threads(1);
    pie.tracker_mut().0.clear();
    pie.new_session().require(&root);
    assert_eq!(pie.tracker().0, tasks);
}

#[test]
fn a_fork_of_roots_is_held_back_on_the_calling_lane_until_it_executes_one() {
    let dir = Dir::new();
    const N: usize = 256;
    let inputs: Vec<PathBuf> = (0..N).map(|i| dir.path().join(format!("in{i}.txt"))).collect();
    for (i, path) in inputs.iter().enumerate() {
        fs::write(path, format!("input {i}")).unwrap();
    }
    let (late0, late1) = (dir.path().join("late0.txt"), dir.path().join("late1.txt"));
    fs::write(&late0, "a").unwrap();
    fs::write(&late1, "b").unwrap();
    for round in 0..5 {
        let meeting = unique("late");
        let mut roots: Vec<Par> = inputs.iter().map(|path| Par::Read(path.clone())).collect();
        roots.push(Par::MeetThenRead(meeting.clone(), late0.clone()));
        roots.push(Par::MeetThenRead(meeting.clone(), late1.clone()));
        let mut pie = Pie::with_tracker(FileCheckLanes::default());
        pie.set_threads(2);
        let outputs = pie.new_session().require_all(&roots);
        assert_eq!(outputs[3], "input 3");
        // A no-op: every root is consistent, and each is checked on the lane that called, in the order of the roots
        // (the fork is held back: on two lanes they would only hand the engine back and forth).
        pie.tracker_mut().0.clear();
        assert_eq!(pie.new_session().require_all(&roots), outputs);
        let checked: Vec<(usize, PathBuf)> = pie.tracker().0.clone();
        let mut expected: Vec<(usize, PathBuf)> = inputs.iter().map(|path| (0, path.clone())).collect();
        expected.push((0, late0.clone()));
        expected.push((0, late1.clone()));
        assert_eq!(
            checked, expected,
            "round {round}: the lanes and order of the file checks of a no-op"
        );
        // The last two roots must execute, and meet: the consistent roots are checked, in order, on the calling
        // lane, which lets the other lanes take the rest of the fork once it executes the first of the two.
        fs::write(&late0, format!("a{round}")).unwrap();
        fs::write(&late1, format!("b{round}")).unwrap();
        pie.tracker_mut().0.clear();
        let outputs = pie.new_session().require_all(&roots);
        assert_eq!(outputs[N..], [format!("a{round}"), format!("b{round}")]);
        let checked = &pie.tracker().0;
        assert_eq!(
            checked[..N],
            expected[..N],
            "round {round}: the consistent roots' checks"
        );
    }
}

/// Records the lane and the path of every check of a file a task requires, in order.
#[derive(Default)]
struct FileCheckLanes(Vec<(usize, PathBuf)>);

impl Tracker<Par> for FileCheckLanes {
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<Par, String>,
        _: Result<Option<&pie::dependency::Inconsistency<String>>, &std::io::Error>,
    ) {
        if let Dependency::RequireFile(file) = dependency {
            self.0.push((pie::tracker::lane(), file.path().to_path_buf()));
        }
    }
}

/// Records the tasks whose dependency checks start, in order.
#[derive(Default)]
struct TaskChecks(Vec<Par>);

impl Tracker<Par> for TaskChecks {
    fn check_dependency_start(&mut self, dependency: &Dependency<Par, String>) {
        if let Dependency::RequireTask(task) = dependency {
            self.0.push(task.task().clone());
        }
    }
}

#[test]
fn a_panic_on_a_worker_reaches_the_caller_with_its_payload_and_the_pie_stays_usable() {
    quiet_panics();
    for _ in 0..20 {
        let meeting = unique("panic");
        let root = Par::All(vec![
            meet_task(&meeting, PATIENCE),
            Par::PanicWith(7, Some(meeting.clone())),
        ]);
        let mut pie = pie_with(2);
        let payload = panic::catch_unwind(panic::AssertUnwindSafe(|| pie.new_session().require(&root))).unwrap_err();
        assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(7)));
        // Usable: a sound build in a new session works.
        let fine = Par::All(vec![Par::Return("x".into()), Par::Return("y".into())]);
        assert_eq!(pie.new_session().require(&fine), "x+y");
        pie.check_invariants();
    }
}

#[test]
fn of_several_panicking_branches_the_first_in_argument_order_goes_on() {
    quiet_panics();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let root = Par::All(vec![
                Par::Return("fine".into()),
                Par::PanicWith(1, None),
                Par::PanicWith(2, None),
                Par::Return("also fine".into()),
            ]);
            let mut pie = pie_with(threads);
            let payload =
                panic::catch_unwind(panic::AssertUnwindSafe(|| pie.new_session().require(&root))).unwrap_err();
            assert_eq!(
                payload.downcast_ref::<Payload>(),
                Some(&Payload(1)),
                "{threads} threads"
            );
            // Every task was required, whatever the thread count.
            assert!(pie.tracker().one_execute_of(&Par::Return("also fine".into())));
        }
    }
}

#[test]
fn a_cycle_through_tasks_on_two_threads_is_a_cycle_not_a_deadlock() {
    quiet_panics();
    for _ in 0..20 {
        let meeting = unique("cycle");
        // a requires b and b requires a, each after meeting the other, so that both are in progress, on two threads.
        let (a, b) = (Par::Cycle(meeting.clone(), 'a'), Par::Cycle(meeting.clone(), 'b'));
        let root = Par::All(vec![a, b]);
        let mut pie = pie_with(2);
        let message = catch(|| pie.new_session().require(&root)).unwrap_err();
        assert_message(&message, CYCLE, &["Cycle"]);
        // The same verdict again in a new session, and the Pie stays usable.
        let again = catch(|| pie.new_session().require(&root)).unwrap_err();
        assert!(again.starts_with(CYCLE), "{again}");
        assert_eq!(pie.new_session().require(&Par::Return("ok".into())), "ok");
        pie.check_invariants();
    }
}

#[test]
fn a_branch_that_requires_the_task_that_forked_it_is_a_cycle() {
    quiet_panics();
    for threads in [1, 2] {
        let root = Par::SelfFork(unique("self"));
        let mut pie = pie_with(threads);
        let message = catch(|| pie.new_session().require(&root)).unwrap_err();
        assert_message(&message, CYCLE, &["SelfFork"]);
    }
}

#[test]
fn two_branches_providing_one_file_overlap_whoever_comes_first() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2] {
        for _ in 0..20 {
            let (path, meeting) = path_and_meeting(&dir, "overlap");
            // On one thread the branches cannot meet: they run one after the other.
            let write = |text: &str| match threads {
                1 => Par::Write(path.clone(), text.into()),
                _ => Par::MeetThenWrite(meeting.clone(), path.clone(), text.into()),
            };
            let root = Par::All(vec![write("one"), write("two")]);
            let mut pie = pie_with(threads);
            let message = catch(|| pie.new_session().require(&root)).unwrap_err();
            assert_message(&message, OVERLAP, &["Write"]);
            pie.check_invariants();
        }
    }
}

#[test]
fn a_branch_reading_what_another_branch_writes_is_a_hidden_dependency_whoever_comes_first() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2] {
        for _ in 0..20 {
            let (path, meeting) = path_and_meeting(&dir, "hidden");
            let root = match threads {
                1 => Par::All(vec![Par::Write(path.clone(), "text".into()), Par::Read(path.clone())]),
                _ => Par::All(vec![
                    Par::MeetThenWrite(meeting.clone(), path.clone(), "text".into()),
                    Par::MeetThenRead(meeting, path.clone()),
                ]),
            };
            let mut pie = pie_with(threads);
            let message = catch(|| pie.new_session().require(&root)).unwrap_err();
            assert_message(&message, HIDDEN, &["Write", "Read"]);
            pie.check_invariants();
        }
    }
}

/// The earlier branch reads a file after the later branch wrote it. On one thread the reader reads what was there
/// before and goes on, and the writer meets the hidden dependency. In parallel the reader read what one thread has
/// not written yet: it never goes on to an output one thread would not give (here, the new text) — it fails too,
/// stricter than one thread, also when required again in the session.
#[test]
fn a_task_that_read_what_a_later_branch_wrote_does_not_go_on_with_it() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (path, meeting) = path_and_meeting(&dir, "read-later-write");
            fs::write(&path, "old").unwrap();
            let reader = alone(&[Step::Meet(meeting.clone()), Step::Read(path.clone())], threads);
            let writer = alone(&[Step::Write(path.clone(), "new".into()), Step::Meet(meeting)], threads);
            let root = Par::All(vec![reader.clone(), writer]);
            let mut pie = pie_with(threads);
            let mut session = pie.new_session();
            let message = catch(|| session.require(&root)).unwrap_err();
            assert_message(&message, HIDDEN, &[]);
            let again = catch(|| session.require(&reader));
            drop(session);
            match threads {
                1 => assert_eq!(again, Ok("old".to_string())),
                _ => match again {
                    Ok(output) => panic!("{threads} threads: the reader went on with {output:?}, not on one thread"),
                    Err(message) => assert_message(&message, HIDDEN, &["Steps"]),
                },
            }
            pie.check_invariants();
        }
    }
}

/// A task of a later branch that read a file before an earlier branch wrote it, then went on, wrote a file of its
/// own, and failed with a panic of its own before the write was found: on one thread it fails at the read, with the
/// hidden dependency, and never gets to its own panic; so does its branch in parallel (found with seed 2020 of the
/// dynamic oracle, where what the task went on to meet was a cycle through the tasks it required past the read).
#[test]
fn a_task_that_failed_past_a_violation_found_later_fails_with_the_violation() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (path, meeting) = path_and_meeting(&dir, "failed-past");
            let past = dir.join(unique("past"));
            fs::write(&path, "old").unwrap();
            let writer = alone(
                &[Step::Meet(meeting.clone()), Step::Write(path.clone(), "new".into())],
                threads,
            );
            let reader = alone(
                &[
                    Step::Read(path.clone()),
                    Step::Write(past, "past".into()),
                    Step::Meet(meeting),
                    Step::Panic(7),
                ],
                threads,
            );
            let root = Par::All(vec![writer, reader]);
            let mut pie = pie_with(threads);
            let message = catch(|| pie.new_session().require(&root)).unwrap_err();
            assert_message(&message, HIDDEN, &["Steps"]);
            pie.check_invariants();
        }
    }
}

/// A new file path in `dir` and a new meeting, both named after `name`.
fn path_and_meeting(dir: &Dir, name: &str) -> (PathBuf, String) {
    (dir.join(unique(name)), unique(&format!("{name}-meet")))
}

/// A branch that meets at `meeting` (in parallel), then writes "text" to `path` and provides it.
fn meet_then_write(meeting: &str, path: &std::path::Path, threads: usize) -> Par {
    alone(
        &[
            Step::Meet(meeting.to_string()),
            Step::Write(path.to_path_buf(), "text".into()),
        ],
        threads,
    )
}

/// `steps` without its meetings (on one thread the branches cannot meet: they run one after the other).
fn alone(steps: &[Step], threads: usize) -> Par {
    Par::Steps(
        steps
            .iter()
            .filter(|step| threads > 1 || !matches!(step, Step::Meet(_)))
            .cloned()
            .collect(),
    )
}

/// The verdict of a fresh build of `root` and of a build of it in a second session, each as the payload's text.
fn two_verdicts(threads: usize, root: &Par) -> [String; 2] {
    let mut pie = pie_with(threads);
    let first = catch(|| pie.new_session().require(root)).unwrap_err();
    pie.check_invariants();
    let second = catch(|| pie.new_session().require(root)).unwrap_err();
    pie.check_invariants();
    [first, second]
}

/// In parallel the reader (second in argument order) reads before the writer writes; on one thread the writer comes
/// first, and the read meets the violation. Also with the read that meets it between two other reads of the reader,
/// all recorded at once when the reader's task ends (in a store without providers, see `context/parallel.rs`).
#[test]
fn a_later_branch_that_reads_before_an_earlier_one_writes_meets_the_hidden_dependency_as_on_one_thread() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for round in 0..20 {
            let (path, meeting) = path_and_meeting(&dir, "read-first");
            let writer = meet_then_write(&meeting, &path, threads);
            let mut reads = vec![Step::Read(path.clone())];
            if round % 2 == 1 {
                reads.insert(0, Step::Read(dir.create(unique("before"), "b")));
                reads.push(Step::Read(dir.create(unique("after"), "a")));
            }
            reads.push(Step::Meet(meeting.clone()));
            let reader = alone(&reads, threads);
            let root = Par::All(vec![writer, reader]);
            let name = path.file_name().unwrap().to_string_lossy();
            for message in two_verdicts(threads, &root) {
                assert_message(&message, HIDDEN, &[]);
                let requires = message.find("requires file '").map(|at| at + "requires file '".len());
                assert!(
                    message.starts_with("Hidden dependency: task Steps([Read(")
                        && requires.is_some_and(|at| message[at..].split('\'').next().unwrap().ends_with(&*name)),
                    "{threads} threads: the reader meets it at the written file, as on one thread: {message}"
                );
            }
        }
    }
}

/// The other order: an earlier branch reads a file before a later branch writes and provides it, and ends only
/// after the write. On one thread the reader reads first, and the writer meets the violation when it provides the
/// file. In a build in which no file has a provider, a read in parallel is checked at the reading lane's next step
/// in the engine (here the end of the reader's execution), which comes after the provide: the violation is still the
/// writer's, in both sessions.
#[test]
fn an_earlier_branch_that_reads_before_a_later_one_writes_leaves_the_hidden_dependency_to_the_writer() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (path, meeting) = path_and_meeting(&dir, "read-early");
            let written = unique("read-early-written");
            let reader = alone(
                &[
                    Step::Read(path.clone()),
                    Step::Meet(meeting.clone()),
                    Step::Meet(written.clone()),
                ],
                threads,
            );
            let writer = alone(
                &[
                    Step::Meet(meeting),
                    Step::Write(path.clone(), "text".into()),
                    Step::Meet(written),
                ],
                threads,
            );
            let root = Par::All(vec![reader, writer]);
            for message in two_verdicts(threads, &root) {
                assert_message(&message, HIDDEN, &[]);
                let provides = message
                    .find("provides file")
                    .unwrap_or_else(|| panic!("{threads} threads: the writer meets it, as on one thread: {message}"));
                assert!(
                    message[..provides].contains("Write("),
                    "{threads} threads: the writer meets it, as on one thread: {message}"
                );
            }
            let _ = fs::remove_file(&path);
        }
    }
}

#[test]
fn a_later_branch_that_writes_before_an_earlier_one_meets_the_overlap_as_on_one_thread() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (path, meeting) = path_and_meeting(&dir, "write-first");
            let first = alone(
                &[Step::Meet(meeting.clone()), Step::Write(path.clone(), "one".into())],
                threads,
            );
            let second = alone(
                &[Step::Write(path.clone(), "two".into()), Step::Meet(meeting.clone())],
                threads,
            );
            let root = Par::All(vec![first, second]);
            for message in two_verdicts(threads, &root) {
                assert_message(&message, OVERLAP, &[]);
                let one = message.find("\"one\"").expect("the first writer named");
                let two = message.find("\"two\"").expect("the second writer named");
                assert!(
                    one < two,
                    "{threads} threads: the first in argument order provides first: {message}"
                );
            }
        }
    }
}

#[test]
fn a_panic_after_writing_goes_on_even_when_a_later_branch_read_the_file_first() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (path, meeting) = path_and_meeting(&dir, "panic-after-write");
            // On one thread the writer panics (first in argument order) before the reader meets its violation.
            let writer = alone(
                &[
                    Step::Meet(meeting.clone()),
                    Step::Write(path.clone(), "text".into()),
                    Step::Panic(3),
                ],
                threads,
            );
            let reader = alone(&[Step::Read(path.clone()), Step::Meet(meeting.clone())], threads);
            let root = Par::All(vec![writer, reader]);
            let mut pie = pie_with(threads);
            let payload =
                panic::catch_unwind(panic::AssertUnwindSafe(|| pie.new_session().require(&root))).unwrap_err();
            assert_eq!(
                payload.downcast_ref::<Payload>(),
                Some(&Payload(3)),
                "{threads} threads"
            );
            pie.check_invariants();
        }
    }
}

/// A later branch's task that read a file and finished before an earlier branch wrote it: on one thread the read
/// comes after the write and fails with the hidden dependency, and a task above it that catches the panic catches
/// it. In parallel the reader's violation arrives when it has finished, and so has the catching task: at the join,
/// the reader fails and the tasks above it in its branch execute again, so the catching task catches it too.
#[test]
fn a_task_that_catches_a_violation_met_after_its_branch_finished_catches_it_as_on_one_thread() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (path, meeting) = path_and_meeting(&dir, "caught");
            let writer = meet_then_write(&meeting, &path, threads);
            // The reader directly below the catching task, and below a task that does not catch.
            let direct = Step::Try(Box::new(Par::Read(path.clone())));
            let below = Step::Try(Box::new(Par::ReadAfterAll(Vec::new(), path.clone())));
            for catching in [direct, below] {
                let catcher = alone(&[catching.clone(), Step::Meet(meeting.clone())], threads);
                let root = Par::All(vec![writer.clone(), catcher.clone()]);
                let mut pie = pie_with(threads);
                // The second session: the reader's violation may not repeat, so the catching task executes again.
                for session in 0..2 {
                    let output = pie.new_session().require(&root);
                    assert_eq!(
                        output, "+caught Hidden dependency",
                        "{threads} threads, session {session}, {catching:?}"
                    );
                    pie.check_invariants();
                }
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// A later branch's task that provided a file which an earlier branch then reads: one thread shows the hidden
/// dependency to the later task at its provide, where it stops. In parallel the violation is found while the task
/// is still running: it meets it at its next call of the `Context` (here a require that it catches), and the task
/// it would require there never executes. (The reading task, which read what one thread has not written yet,
/// fails with the violation too; the earlier branch catches that and goes on to the second meeting.) In the second
/// session the branches do not meet, so only the verdict is checked there: the writer may run ahead of the read
/// (past its provide) before its violation is found, as the tasks a branch entered past its violation are
/// forgotten at the join.
#[test]
fn a_task_still_running_when_its_violation_is_found_meets_it_at_its_next_context_call() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (path, meeting) = path_and_meeting(&dir, "ahead");
            let found = unique("ahead-found");
            let counted = unique("ahead-counted");
            let reader = alone(
                &[
                    Step::Meet(meeting.clone()),
                    Step::Try(Box::new(Par::Read(path.clone()))),
                    Step::Meet(found.clone()),
                ],
                threads,
            );
            let writer = alone(
                &[
                    Step::Write(path.clone(), "text".into()),
                    Step::Meet(meeting),
                    Step::Meet(found),
                    Step::Try(Box::new(Par::Counted(counted.clone()))),
                ],
                threads,
            );
            let root = Par::All(vec![reader, writer]);
            let mut pie = pie_with(threads);
            for session in 0..2 {
                let message = catch(|| pie.new_session().require(&root)).unwrap_err();
                pie.check_invariants();
                assert_message(&message, HIDDEN, &[]);
                assert!(
                    message.starts_with("Hidden dependency: task Steps([Write(") && message.contains("provides file"),
                    "{threads} threads, session {session}: the writer meets it, as on one thread: {message}"
                );
                if session == 0 {
                    assert_eq!(
                        execution_count(&counted),
                        0,
                        "{threads} threads: the writer went past its violation"
                    );
                }
            }
            let _ = fs::remove_file(&path);
        }
    }
}

/// A later branch's task that wrote a second file past the write that one thread refuses, and finished, before an
/// earlier branch read the first file; a task above it caught its panic and read the second file. One thread never
/// writes the second file (the task stops at the first), and the reader finds nothing. Executing the reader again
/// at the join would read what the failed task left on disk, with no provider to refuse it: the build must refuse
/// (stricter than one thread) or give one thread's output, never the left-over contents.
#[test]
fn what_a_task_wrote_past_its_violation_is_never_accepted() {
    quiet_panics();
    let dir = Dir::new();
    for threads in [1, 2, 4] {
        for _ in 0..10 {
            let (first, meeting) = path_and_meeting(&dir, "past");
            let second = dir.join(unique("past-second"));
            let writer = Par::Steps(vec![
                Step::Write(first.clone(), "text".into()),
                Step::Write(second.clone(), "left-over".into()),
            ]);
            let catcher = alone(
                &[
                    Step::Try(Box::new(writer)),
                    Step::Read(second.clone()),
                    Step::Meet(meeting.clone()),
                ],
                threads,
            );
            let reader = alone(&[Step::Meet(meeting), Step::Read(first.clone())], threads);
            let root = Par::All(vec![reader, catcher]);
            let mut pie = pie_with(threads);
            match catch(|| pie.new_session().require(&root)) {
                Ok(output) => assert_eq!(
                    output, "+caught Hidden dependency+",
                    "{threads} threads: the output of one thread"
                ),
                Err(message) => {
                    assert!(threads > 1, "one thread accepts: {message}");
                    assert_message(&message, HIDDEN, &[]);
                }
            }
            pie.check_invariants();
        }
    }
}

#[test]
fn a_rebuild_checks_the_tasks_of_a_require_tasks_call_in_parallel() {
    quiet_panics();
    let dir = Dir::new();
    let files = [dir.create("left.txt", ""), dir.create("right.txt", "")];
    let members: Vec<Par> = files
        .iter()
        .map(|f| Par::Steps(vec![Step::MeetAsFileSays(f.clone())]))
        .collect();
    let root = Par::All(members.clone());
    let mut pie = pie_with(2);
    assert_eq!(pie.new_session().require(&root), "+");
    for round in 0..5 {
        // Both members are inconsistent, and each executes only when the other does at the same time: the check
        // of the root (which is not executed first) must make them consistent in parallel.
        let meeting = unique("recheck");
        for file in &files {
            dir.write(file, &meeting);
        }
        assert_eq!(
            pie.new_session().require(&root),
            format!("{meeting}+{meeting}"),
            "round {round}"
        );
        let executed = executed(pie.tracker());
        assert_eq!(executed.len(), 3, "round {round}");
        assert!(executed[..2].contains(&&members[0]) && executed[..2].contains(&&members[1]));
        assert_eq!(executed[2], &root);
        pie.check_invariants();
    }
}

#[test]
fn reading_what_a_branch_wrote_after_requiring_it_is_sound() {
    let dir = Dir::new();
    let path = dir.join("generated.txt");
    let writer = Par::Write(path.clone(), "generated".into());
    let root = Par::ReadAfterAll(vec![writer.clone(), Par::Return("other".into())], path.clone());
    let mut pie = pie_with(2);
    assert_eq!(pie.new_session().require(&root), "generated");
    pie.new_session().require(&root);
    assert!(!pie.tracker().any_execute());
    // Someone else changes the generated file: its provider runs again, and the reader after it.
    dir.write(&path, "changed by hand");
    assert_eq!(pie.new_session().require(&root), "generated");
    assert!(pie.tracker().one_execute_of(&writer));
}

/// Eight files holding `0` to `7`, a reader of each, and a root that requires the readers with `require_tasks`
/// (its output: what they read, joined with `+`).
fn eight_readers(dir: &Dir) -> (Vec<PathBuf>, Vec<Par>, Par) {
    let files: Vec<PathBuf> = (0..8)
        .map(|i| dir.create(format!("in{i}.txt"), format!("{i}")))
        .collect();
    let readers: Vec<Par> = files.iter().map(|f| Par::Read(f.clone())).collect();
    let root = Par::All(readers.clone());
    (files, readers, root)
}

/// In a store where no task provides a file, the reads of a task in a branch are recorded when its lane next takes
/// the engine (here at the task's end), all at once: they are still recorded in order, with the stamps of what was
/// read, so the tracker shows them in order within the task's execution, an edit of any of them executes that task
/// again, and a rebuild without edits executes nothing.
#[test]
fn the_reads_of_a_branch_recorded_at_its_end_keep_their_order_and_stamps() {
    let dir = Dir::new();
    let files: Vec<Vec<PathBuf>> = (0..8)
        .map(|i| {
            (0..3)
                .map(|j| dir.create(format!("in{i}-{j}.txt"), format!("{i}.{j}")))
                .collect()
        })
        .collect();
    let readers: Vec<Par> = files
        .iter()
        .map(|reads| Par::Steps(reads.iter().map(|f| Step::Read(f.clone())).collect()))
        .collect();
    let root = Par::All(readers.clone());
    for threads in [1, 2, 4] {
        let mut pie = pie_with(threads);
        let expected: Vec<String> = (0..8).map(|i| format!("{i}.0+{i}.1+{i}.2")).collect();
        assert_eq!(pie.new_session().require(&root), expected.join("+"));
        for (reader, reads) in readers.iter().zip(&files) {
            let (start, end) = pie.tracker().first_execute(reader).expect("the reader executed");
            let indexes: Vec<usize> = reads
                .iter()
                .map(|f| pie.tracker().first_require_file(f).expect("the read is tracked").index)
                .collect();
            assert!(
                start.index < indexes[0] && indexes.windows(2).all(|w| w[0] < w[1]) && indexes[2] < end.index,
                "{threads} threads: reads of {reader:?} at {indexes:?}, execution {}..{}",
                start.index,
                end.index
            );
        }
        // An edit of the middle read of one reader, then of the last read of another.
        for (i, j, text) in [(3, 1, "three"), (6, 2, "six")] {
            dir.write(&files[i][j], text);
            let output = pie.new_session().require(&root);
            assert!(output.contains(text), "{threads} threads: {output}");
            assert_eq!(executed(pie.tracker()), vec![&readers[i], &root], "{threads} threads");
        }
        pie.new_session().require(&root);
        assert!(executed(pie.tracker()).is_empty(), "{threads} threads");
        for (i, j) in [(3, 1), (6, 2)] {
            dir.write(&files[i][j], format!("{i}.{j}"));
        }
    }
}

#[test]
fn an_edit_below_one_branch_executes_that_branch_only() {
    let dir = Dir::new();
    let (files, readers, root) = eight_readers(&dir);
    let mut pie = pie_with(2);
    assert_eq!(pie.new_session().require(&root), "0+1+2+3+4+5+6+7");
    dir.write(&files[5], "five");
    assert_eq!(pie.new_session().require(&root), "0+1+2+3+4+five+6+7");
    let executed = executed(pie.tracker());
    assert_eq!(executed, vec![&readers[5], &root]);
}

#[test]
fn a_chain_of_100_000_single_task_groups_builds_on_a_2_mib_thread_with_two_threads() {
    on_small_stack(|| {
        let top = Par::Link(100_000);
        let mut pie: Pie<Par, String> = Pie::default();
        pie.set_threads(2);
        assert_eq!(pie.new_session().require(&top), "bottom");
        assert_eq!(pie.new_session().require(&top), "bottom");
    });
}

#[test]
fn a_deep_chain_of_forks_builds_on_a_2_mib_thread_with_two_threads() {
    on_small_stack(|| {
        const DEPTH: u32 = 10_000;
        let top = Par::ForkedLink(DEPTH);
        let mut pie = pie_with(2);
        assert_eq!(pie.new_session().require(&top), "bottom");
        assert_eq!(executed(pie.tracker()).len(), 2 * DEPTH as usize + 1);
        pie.new_session().require(&top);
        assert!(!pie.tracker().any_execute());
        pie.check_invariants();
    });
}

#[test]
fn the_writing_tracker_names_the_lane_of_worker_events() {
    let name = unique("log");
    let root = Par::All(vec![
        meet_task(&name, PATIENCE),
        Par::Meet(name.clone(), 2, PATIENCE + Duration::from_millis(1)),
    ]);
    let mut pie = Pie::with_tracker(WritingTracker::new(Vec::new()));
    pie.set_threads(2);
    pie.new_session().require(&root);
    let log = String::from_utf8(pie.tracker().writer().clone()).unwrap();
    // One of the two meeting tasks executed on the worker, lane 1, whose lines say so.
    assert!(
        log.lines().any(|l| l.starts_with("[1] ") && l.contains("▶ Meet")),
        "{log}"
    );
    assert!(log.lines().any(|l| !l.starts_with('[') && l.contains("▶ All")), "{log}");
}

/// The tasks that the last build executed, in the order they started.
fn executed(tracker: &EventTracker<Par, String>) -> Vec<&Par> {
    tracker
        .slice()
        .iter()
        .filter_map(|event| match event {
            Event::ExecuteStart(start) => Some(&start.task),
            _ => None,
        })
        .collect()
}

/// Runs `f` on a new thread with a 2 MiB stack, propagating its panic.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let handle = thread::Builder::new().stack_size(2 * 1024 * 1024).spawn(f).unwrap();
    if let Err(payload) = handle.join() {
        panic::resume_unwind(payload);
    }
}

#[test]
fn a_wide_rebuild_checks_files_stamped_in_parallel_and_sees_every_edit() {
    // Enough readers for their files to be stamped ahead of the checks (see `context/prefetch.rs`).
    let dir = Dir::new();
    let files: Vec<PathBuf> = (0..300)
        .map(|i| dir.create(format!("wide{i}.txt"), format!("{i}")))
        .collect();
    let readers: Vec<Par> = files.iter().map(|f| Par::Read(f.clone())).collect();
    let root = Par::All(readers.clone());
    let mut pie = pie_with(2);
    let first = pie.new_session().require(&root);
    pie.new_session().require(&root);
    assert!(!pie.tracker().any_execute(), "a no-op rebuild executes nothing");

    dir.write(&files[17], "seventeen");
    dir.remove(&files[250]);
    let output = pie.new_session().require(&root);
    let executed = executed(pie.tracker());
    // The readers are one `require_tasks` group of the root: its check makes them consistent in parallel, so both
    // changed readers execute (in either order) before the root, which then executes.
    assert_eq!(executed.len(), 3);
    assert!(executed[..2].contains(&&readers[17]) && executed[..2].contains(&&readers[250]));
    assert_eq!(executed[2], &root);
    assert_ne!(output, first);
    // The same as a clean build on one thread.
    assert_eq!(output, pie_with(1).new_session().require(&root));
    pie.new_session().require(&root);
    assert!(!pie.tracker().any_execute());
}

/// Over rounds of random edits (inputs rewritten, removed, created again), a wide rebuild whose root requires
/// enough readers for helper threads to stamp their files while the check goes on (see `context/prefetch.rs`):
/// among the readers, second readers of the same inputs and readers of generated files (whose stamps a check may
/// not take from a helper: a task provides them). Each rebuild on 2, 4 or 8 threads executes exactly the readers of
/// the edited inputs, then the root, and its output is what the files say. `PIE_PROPTEST_CASES` cases (default 8),
/// each with its own seed, number of inputs and thread count.
#[test]
fn wide_rebuilds_with_files_stamped_on_helper_threads_see_every_edit() {
    let cases = std::env::var("PIE_PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(8u64);
    for case in 0..cases {
        let mut random = 0x2545_f491_4f6c_dd1d_u64 ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = move |below: usize| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            (random % below as u64) as usize
        };
        let threads = [2, 4, 8][next(3)];
        let dir = Dir::new();
        let inputs: Vec<PathBuf> = (0..64 + next(300))
            .map(|i| dir.create(format!("in{i}.txt"), format!("{i}")))
            .collect();
        // Reader `i` reads input `i`; every seventh input has a second reader; every fiftieth reader reads a
        // generated file instead.
        let mut readers: Vec<(Par, Option<usize>)> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            if i % 50 == 25 {
                let generated = dir.join(format!("gen{i}.txt"));
                let writer = Par::Write(generated.clone(), format!("generated {i}"));
                readers.push((Par::ReadAfterAll(vec![writer], generated), None));
            }
            readers.push((Par::Read(input.clone()), Some(i)));
            if i % 7 == 3 {
                readers.push((Par::ReadAfterAll(Vec::new(), input.clone()), Some(i)));
            }
        }
        let root = Par::All(readers.iter().map(|(reader, _)| reader.clone()).collect());
        let expected = || {
            let texts: Vec<String> = readers
                .iter()
                .map(|(reader, _)| match reader {
                    Par::Read(path) | Par::ReadAfterAll(_, path) => fs::read_to_string(path).unwrap_or_default(),
                    _ => unreachable!(),
                })
                .collect();
            texts.join("+")
        };
        let mut pie = pie_with(threads);
        assert_eq!(pie.new_session().require(&root), expected());
        let mut removed = vec![false; inputs.len()];
        for round in 0..8 {
            // The readers of an input execute when its modification time changed: not when it was removed, created
            // again and removed again in one round.
            let modified = |path: &PathBuf| fs::metadata(path).and_then(|m| m.modified()).ok();
            let before: Vec<_> = inputs.iter().map(modified).collect();
            for _ in 0..next(12) {
                let i = next(inputs.len());
                match (removed[i], next(3)) {
                    (true, _) => {
                        dir.create(&inputs[i], format!("{i} again in round {round}"));
                        removed[i] = false;
                    }
                    (false, 0) => {
                        dir.remove(&inputs[i]);
                        removed[i] = true;
                    }
                    (false, _) => dir.write(&inputs[i], format!("{i} in round {round}")),
                }
            }
            let edited: Vec<bool> = inputs
                .iter()
                .zip(&before)
                .map(|(input, b)| modified(input) != *b)
                .collect();
            let output = pie.new_session().require(&root);
            assert_eq!(output, expected(), "case {case}, {threads} threads, round {round}");
            let executed = executed(pie.tracker());
            let mut want: Vec<&Par> = readers
                .iter()
                .filter(|(_, input)| input.is_some_and(|i| edited[i]))
                .map(|(reader, _)| reader)
                .collect();
            if !want.is_empty() {
                want.push(&root);
            }
            // Readers of one group execute in parallel, in any order; the root after them.
            let mut got = executed.clone();
            let root_last = got.last() == Some(&&root);
            got.sort_by_key(|task| format!("{task:?}"));
            want.sort_by_key(|task| format!("{task:?}"));
            assert_eq!(got, want, "case {case}, {threads} threads, round {round}");
            assert!(
                want.is_empty() || root_last,
                "case {case}, {threads} threads, round {round}: {executed:?}"
            );
            pie.check_invariants();
        }
        pie.new_session().require(&root);
        assert!(!pie.tracker().any_execute());
    }
}

#[test]
fn a_bottom_up_build_runs_the_branches_of_require_tasks_at_the_same_time() {
    for threads in [2, 4] {
        let dir = Dir::new();
        let script = dir.create("script.txt", "");
        let root = Par::Steps(vec![Step::ForkAsFileSays(script.clone())]);
        let mut pie = pie_with(threads);
        assert_eq!(pie.new_session().require(&root), "");
        for round in 0..3 {
            // The root is affected by the edit and executes bottom-up; the two tasks it then requires with
            // `require_tasks` each finish only when the other runs at the same time.
            let name = unique("bottom-up");
            dir.write(&script, format!("meet:{name}"));
            pie.new_session().update_affected_by([&script]);
            let executed = executed(pie.tracker());
            assert_eq!(executed.len(), 3, "{threads} threads, round {round}: {executed:?}");
            assert_eq!(executed[0], &root);
            pie.check_invariants();
            assert_eq!(
                pie.new_session().require(&root),
                format!("{name}+{name}"),
                "{threads} threads, round {round}"
            );
            assert!(!pie.tracker().any_execute());
            // Nothing changed: nothing executes.
            let mut session = pie.new_session();
            session.update_affected_by(std::iter::empty::<&PathBuf>());
            assert_eq!(session.require(&root), format!("{name}+{name}"));
            drop(session);
            assert!(!pie.tracker().any_execute());
        }
    }
}

#[test]
fn a_bottom_up_build_finds_a_cycle_through_tasks_on_different_threads() {
    quiet_panics();
    for attempt in 0..10 {
        let dir = Dir::new();
        let script = dir.create("script.txt", "");
        let root = Par::Steps(vec![Step::ForkAsFileSays(script.clone())]);
        let mut pie = pie_with(2);
        assert_eq!(pie.new_session().require(&root), "");
        dir.write(&script, format!("cycle:{}", unique("bottom-up-cycle")));
        let message = catch(|| pie.new_session().update_affected_by([&script])).unwrap_err();
        assert_message(&message, CYCLE, &["Cycle("]);
        pie.check_invariants();
        // With the cycle gone, the next bottom-up build (top-down first: the store is not settled) succeeds.
        dir.write(&script, "");
        let mut session = pie.new_session();
        session.update_affected_by([&script]);
        assert_eq!(session.require(&root), "", "attempt {attempt}");
    }
}

#[test]
fn a_bottom_up_build_trusts_the_unaffected_tasks_of_a_group_on_every_thread() {
    let dir = Dir::new();
    let (files, readers, root) = eight_readers(&dir);
    let mut pie = pie_with(4);
    assert_eq!(pie.new_session().require(&root), "0+1+2+3+4+5+6+7");
    dir.write(&files[2], "two");
    dir.write(&files[5], "five");
    pie.new_session().update_affected_by([&files[2], &files[5]]);
    let executed = executed(pie.tracker());
    // The two changed readers belong to the root's group, and nothing before the group changed: they are brought
    // up to date together (in either order), and their new outputs then make the root execute, finding them done.
    let (first, second) = (&readers[2], &readers[5]);
    assert!(
        executed == vec![first, second, &root] || executed == vec![second, first, &root],
        "{executed:?}"
    );
    pie.check_invariants();
    assert_eq!(pie.new_session().require(&root), "0+1+two+3+4+five+6+7");
    assert!(!pie.tracker().any_execute());
}

#[test]
fn a_bottom_up_build_brings_the_affected_tasks_of_a_group_up_to_date_at_the_same_time() {
    // The members' outputs change (each returns what it read): the root executes after them.
    members_meet_bottom_up(Step::MeetAsFileSays, true, HeldBy::Group);
}

#[test]
fn a_bottom_up_build_brings_cut_off_tasks_of_a_group_up_to_date_at_the_same_time() {
    // The members' outputs are cut off (each returns nothing): the root never executes again, and the members run
    // only as the bottom-up build takes them from its queue.
    members_meet_bottom_up(Step::MeetQuietlyAsFileSays, false, HeldBy::Group);
}

#[test]
fn a_bottom_up_build_brings_affected_roots_up_to_date_at_the_same_time() {
    // No task requires the two: the bottom-up build takes both from its queue.
    members_meet_bottom_up(Step::MeetAsFileSays, true, HeldBy::Roots);
}

/// How the two tasks of [`members_meet_bottom_up`] are required.
#[derive(Clone, Copy, PartialEq, Debug)]
enum HeldBy {
    /// Together with `require_tasks`, by a root.
    Group,
    /// As the roots of the session, with `Session::require_all`.
    Roots,
}

/// Two tasks required as `held_by` says, each taking `step` on a script of its own, on 2 and 4 threads: in each of
/// three rounds both scripts name one meeting point, so that each task, taken from the bottom-up queue, finishes
/// only when the other runs at the same time (one after the other, the first gives up after ten seconds). Asserts
/// that both executed, then the group's root exactly when `outputs_change`, and that a rebuild executes nothing.
/// A bottom-up build forks the affected tasks of a `require_tasks` group only when the build on one thread brings
/// each of them up to date too. Here the group `[m1, m2]` of `d` is affected, and `d` is needed when `m1` is taken
/// from the queue (the root `q` requires it), but `q` requires `d` only while `x` (which requires `m1` too)
/// outputs what it did: on one thread, `m1`'s new output schedules `x` and `d`, so `m2` is not needed and waits;
/// `x`'s new output schedules `q`, so `d` is not needed either; `q` executes and no longer requires `d`, and `m2`
/// never executes. (`m0`, whose output stays the same, is there so that the walk that finds `m1` needed goes
/// through `x`.)
#[test]
fn a_bottom_up_build_forks_a_group_only_while_its_dependent_stays_needed() {
    let run = |threads: usize| {
        let dir = Dir::new();
        let (c, a, b) = (dir.create("c", "c"), dir.create("a", "on"), dir.create("b", "b"));
        let (m0, m1, m2) = (Par::Read(c.clone()), Par::Read(a.clone()), Par::Read(b.clone()));
        let x = Par::OneThenAll(Box::new(m0.clone()), vec![m1.clone()]);
        let d = Par::All(vec![m1.clone(), m2.clone()]);
        let q = Par::IfOutput(Box::new(x.clone()), "c|on".to_string(), Box::new(d.clone()));
        let mut pie = pie_with(threads);
        // Roots that go again order `m0`, `m1` and `m2` before `x`, `d` and `q`, in that order.
        let roots: Vec<Par> = [&m0, &m1, &m2]
            .into_iter()
            .map(|m| Par::OneThenAll(Box::new(m.clone()), Vec::new()))
            .collect();
        for root in &roots {
            pie.new_session().require(root);
        }
        // Every root checked, so that the store is settled and the update is bottom-up.
        let mut all = roots.clone();
        all.push(q.clone());
        assert_eq!(pie.new_session().require_all(&all)[3], "c|on");
        pie.retain_roots(|root| *root == q);
        dir.write(&c, "c");
        dir.write(&a, "off");
        dir.write(&b, "B");
        pie.new_session().update_affected_by([&c, &a, &b]);
        let names = [(&m0, "m0"), (&m1, "m1"), (&m2, "m2"), (&x, "x"), (&d, "d"), (&q, "q")];
        let executed: Vec<&str> = executed(pie.tracker())
            .into_iter()
            .map(|task| names.iter().find(|(t, _)| *t == task).map_or("?", |(_, name)| *name))
            .collect();
        pie.check_invariants();
        assert_eq!(pie.new_session().require(&q), "c|off");
        assert!(!pie.tracker().any_execute(), "{threads} threads");
        executed
    };
    assert_eq!(run(1), ["m0", "m1", "x", "q"], "one thread");
    for threads in [2, 4] {
        assert_eq!(
            run(threads),
            ["m0", "m1", "x", "q"],
            "{threads} threads: as on one thread"
        );
    }
}

fn members_meet_bottom_up(step: fn(PathBuf) -> Step, outputs_change: bool, held_by: HeldBy) {
    for threads in [2, 4] {
        let dir = Dir::new();
        let scripts = [dir.create("a.txt", ""), dir.create("b.txt", "")];
        let members: Vec<Par> = scripts
            .iter()
            .map(|script| Par::Steps(vec![step(script.clone())]))
            .collect();
        let root = Par::All(members.clone());
        // The outputs joined with `+`, as the group's root joins them.
        let build = |pie: &mut Pie<Par, String, EventTracker<Par, String>>| match held_by {
            HeldBy::Group => pie.new_session().require(&root),
            HeldBy::Roots => pie.new_session().require_all(&members).join("+"),
        };
        let mut pie = pie_with(threads);
        assert_eq!(build(&mut pie), "+");
        let root_executes = outputs_change && held_by == HeldBy::Group;
        for round in 0..3 {
            let name = unique("bottom-up-members");
            for script in &scripts {
                dir.write(script, &name);
            }
            pie.new_session().update_affected_by(&scripts);
            let executed = executed(pie.tracker());
            let context = format!("{threads} threads, {held_by:?}, round {round}: {executed:?}");
            assert_eq!(executed.len(), 2 + usize::from(root_executes), "{context}");
            assert!(
                executed[..2].contains(&&members[0]) && executed[..2].contains(&&members[1]),
                "{context}"
            );
            if root_executes {
                assert_eq!(executed[2], &root, "{context}");
            }
            pie.check_invariants();
            let expected = if outputs_change {
                format!("{name}+{name}")
            } else {
                "+".to_string()
            };
            assert_eq!(build(&mut pie), expected);
            assert!(!pie.tracker().any_execute());
        }
    }
}

#[test]
fn a_task_that_failed_with_a_violation_in_a_later_branch_fails_the_same_way_in_an_earlier_one() {
    quiet_panics();
    for threads in [2, 4] {
        for attempt in 0..5 {
            let dir = Dir::new();
            let file = dir.join("edited.txt");
            let (meeting, name) = (unique("first"), unique("again"));
            // Reads the file, then writes it: a hidden dependency (an in-place edit). Executed again after that
            // write, it would wait in vain at the meeting point its first execution wrote.
            let shared = Par::Steps(vec![
                Step::Meet(meeting.clone()),
                Step::MeetAsFileSays(file.clone()),
                Step::Write(file.clone(), name.clone()),
            ]);
            // The first branch requires the shared task only once the second branch has started it.
            let first = Par::OneThenAll(Box::new(meet_task(&meeting, PATIENCE)), vec![shared.clone()]);
            let root = Par::All(vec![first, shared]);
            let mut pie = pie_with(threads);
            let message = catch(|| pie.new_session().require(&root)).unwrap_err();
            // On one thread the first branch executes the shared task first and meets its violation: so does it in
            // parallel, though the second branch executed it.
            assert_message(&message, HIDDEN, &["edited.txt"]);
            assert_eq!(dir.read(&file), name, "{threads} threads, attempt {attempt}");
            pie.check_invariants();
        }
    }
}
