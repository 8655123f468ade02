//! The claim/wait protocol of parallel builds, model-checked with shuttle: with the `shuttle` feature, the engine's
//! lanes use shuttle's mutex, condition variable, atomics and threads, so shuttle's randomised scheduler (and its
//! PCT scheduler, which finds bugs that need a few specific preemptions) explores how lanes interleave: who takes
//! the engine, who waits for whom, who runs which branch. Each schedule must give the clean build's outputs and
//! verdicts, execute every task at most once, and never deadlock (shuttle fails a schedule in which every thread
//! blocks). The helper threads that stamp files ahead of a no-op check (`context/prefetch.rs`) are shuttle's too.
//!
//! Run with `cargo test -p pie --features shuttle --test shuttle`; `PIE_SHUTTLE_ITERATIONS` sets the schedules per
//! test (default 300).
#![cfg(feature = "shuttle")]

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use pie::{Context, Pie, Task};
use shuttle::scheduler::{PctScheduler, RandomScheduler};
use shuttle::{Config, Runner};

/// Executions per task in the schedule being explored (schedules run one after the other).
static EXECUTIONS: Mutex<Vec<(Graph, usize)>> = Mutex::new(Vec::new());

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Graph {
    /// Returns its number.
    Leaf(u32),
    /// Requires the tasks with `require_tasks`; returns the sum of their outputs plus its number.
    All(u32, Vec<Graph>),
    /// Requires the task with `require_task`; returns its output plus one.
    One(Box<Graph>),
    /// Requires `Cycle(1 - .0)`.
    Cycle(u32),
    /// Panics with `Payload(.0)`.
    Panic(u32),
    /// Requires the file (hash stamps); returns the number it holds.
    Read(std::path::PathBuf),
    /// Writes its number to the file and provides it; returns the number.
    Write(std::path::PathBuf, u32),
}

#[derive(Debug, PartialEq)]
struct Payload(u32);

impl Task for Graph {
    type Output = u64;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> u64 {
        {
            let mut executions = EXECUTIONS.lock().unwrap();
            match executions.iter_mut().find(|(task, _)| task == self) {
                Some((_, count)) => *count += 1,
                None => executions.push((self.clone(), 1)),
            }
        }
        match self {
            Graph::Leaf(n) => u64::from(*n),
            Graph::All(n, tasks) => context.require_tasks(tasks).iter().sum::<u64>() + u64::from(*n),
            Graph::One(task) => context.require_task(task) + 1,
            Graph::Cycle(side) => context.require_task(&Graph::Cycle(1 - side)),
            Graph::Panic(n) => panic::panic_any(Payload(*n)),
            Graph::Read(path) => {
                context
                    .require_file_with_stamper(path, pie::stamp::FileStamper::Hash)
                    .unwrap();
                std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
            }
            Graph::Write(path, n) => {
                std::fs::write(path, n.to_string()).unwrap();
                context.provide_file(path).unwrap();
                u64::from(*n)
            }
        }
    }
}

/// How often `task` executed in the schedule being explored.
fn executions_of(task: &Graph) -> usize {
    EXECUTIONS
        .lock()
        .unwrap()
        .iter()
        .find(|(t, _)| t == task)
        .map_or(0, |(_, count)| *count)
}

fn iterations() -> usize {
    std::env::var("PIE_SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Explores `f` under the random scheduler and the PCT scheduler, with stacks large enough for the engine. One test
/// at a time: the execution counts are global.
fn explore(f: impl Fn() + Send + Sync + 'static) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let f = std::sync::Arc::new(f);
    let mut config = Config::new();
    config.stack_size = 1 << 20;
    let g = f.clone();
    Runner::new(RandomScheduler::new(iterations()), config.clone()).run(move || g());
    Runner::new(PctScheduler::new(3, iterations()), config).run(move || f());
}

fn pie(threads: usize) -> Pie<Graph, u64> {
    let mut pie = Pie::default();
    pie.set_threads(threads);
    pie
}

/// A diamond of forks: two branches that share a task below them, and a task required twice in one fork.
fn diamond() -> Graph {
    let shared = Graph::All(10, vec![Graph::Leaf(1), Graph::Leaf(2)]);
    Graph::All(
        0,
        vec![
            Graph::All(100, vec![shared.clone(), Graph::Leaf(3)]),
            Graph::One(Box::new(shared.clone())),
            shared,
        ],
    )
}

#[test]
fn shared_tasks_execute_once_and_outputs_equal_one_thread() {
    let expected = pie(1).new_session().require(&diamond());
    explore(move || {
        EXECUTIONS.lock().unwrap().clear();
        let root = diamond();
        let mut pie = pie(3);
        assert_eq!(pie.new_session().require(&root), expected);
        let executions = EXECUTIONS.lock().unwrap().clone();
        assert!(executions.iter().all(|(_, count)| *count == 1), "{executions:?}");
        assert_eq!(executions.len(), 7, "{executions:?}");
        // Nothing changed: nothing executes.
        EXECUTIONS.lock().unwrap().clear();
        assert_eq!(pie.new_session().require(&root), expected);
        assert!(EXECUTIONS.lock().unwrap().is_empty());
    });
}

#[test]
fn a_cycle_across_lanes_is_a_cycle_never_a_deadlock() {
    explore(|| {
        let root = Graph::All(0, vec![Graph::Cycle(0), Graph::Cycle(1)]);
        let mut pie = pie(2);
        let payload = panic::catch_unwind(AssertUnwindSafe(|| pie.new_session().require(&root))).unwrap_err();
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| panic!("a panic without a message"));
        assert!(message.starts_with("Cyclic task dependency"), "{message}");
        assert!(executions_of(&Graph::Cycle(0)) >= 1);
        // The Pie stays usable.
        assert_eq!(pie.new_session().require(&Graph::Leaf(7)), 7);
        EXECUTIONS.lock().unwrap().clear();
    });
}

#[test]
fn the_first_panic_in_argument_order_reaches_the_caller() {
    explore(|| {
        EXECUTIONS.lock().unwrap().clear();
        let root = Graph::All(
            0,
            vec![
                Graph::Leaf(1),
                Graph::Panic(1),
                Graph::One(Box::new(Graph::Panic(2))),
                Graph::Leaf(2),
            ],
        );
        let mut pie = pie(3);
        let payload = panic::catch_unwind(AssertUnwindSafe(|| pie.new_session().require(&root))).unwrap_err();
        assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(1)));
        // Every task was required; none twice.
        assert_eq!(executions_of(&Graph::Leaf(2)), 1);
        assert_eq!(executions_of(&Graph::Panic(2)), 1);
        assert_eq!(pie.new_session().require(&Graph::Leaf(3)), 3);
    });
}

#[test]
fn a_bottom_up_build_brings_each_affected_task_up_to_date_once() {
    explore(|| {
        let dir = dev_util::Dir::new();
        let files: Vec<_> = (0..4).map(|i| dir.create(format!("{i}.txt"), "1")).collect();
        let read = |i: usize| Graph::Read(files[i].clone());
        // Two branches share a task that reads a file; each also reads a file of its own, and so does the root.
        let shared = Graph::One(Box::new(read(2)));
        let root = Graph::All(
            0,
            vec![
                Graph::All(10, vec![read(0), shared.clone()]),
                Graph::All(20, vec![shared.clone(), read(1)]),
                read(3),
            ],
        );
        let mut pie = pie(3);
        assert_eq!(pie.new_session().require(&root), 37);
        // Every file changes: every task is affected. The root, scheduled by its own read, executes first (the
        // other readers are reached only through it), and brings both branches up to date in parallel, which
        // meet at the shared task.
        for file in &files {
            std::fs::write(file, "5").unwrap();
        }
        EXECUTIONS.lock().unwrap().clear();
        let mut session = pie.new_session();
        session.update_affected_by(&files);
        assert_eq!(session.require(&root), 57);
        drop(session);
        let executions = EXECUTIONS.lock().unwrap().clone();
        assert!(executions.iter().all(|(_, count)| *count == 1), "{executions:?}");
        assert_eq!(executions.len(), 8, "{executions:?}");
        // A clean build agrees.
        assert_eq!(pie_fresh_output(&root), 57);
    });
}

/// The fork of `require_all` starts held back: the lane that opened it checks the consistent roots itself, and lets
/// the other lanes take the rest once it executes one (`Fork::held_back`). Under every explored interleaving, each
/// edited reader executes once, nothing else does, and the outputs are those of one thread.
#[test]
fn a_held_back_fork_lets_go_when_its_lane_executes() {
    explore(|| {
        let dir = dev_util::Dir::new();
        let files: Vec<_> = (0..5).map(|i| dir.create(format!("{i}.txt"), "1")).collect();
        let roots: Vec<Graph> = files.iter().map(|f| Graph::Read(f.clone())).collect();
        let mut pie = pie(3);
        assert_eq!(pie.new_session().require_all(&roots), [1; 5]);
        for (i, value) in [(1, 2), (3, 4)] {
            std::fs::write(&files[i], value.to_string()).unwrap();
        }
        EXECUTIONS.lock().unwrap().clear();
        assert_eq!(pie.new_session().require_all(&roots), [1, 2, 1, 4, 1]);
        let mut executions = EXECUTIONS.lock().unwrap().clone();
        executions.retain(|(task, _)| roots.contains(task));
        executions.sort_by_key(|(task, _)| roots.iter().position(|root| root == task));
        assert_eq!(executions, [(roots[1].clone(), 1), (roots[3].clone(), 1)]);
        // Nothing changed: nothing executes, and the outputs stay.
        EXECUTIONS.lock().unwrap().clear();
        assert_eq!(pie.new_session().require_all(&roots), [1, 2, 1, 4, 1]);
        assert!(EXECUTIONS.lock().unwrap().iter().all(|(task, _)| !roots.contains(task)));
    });
}

/// The output of `task` in a build on one thread with a new `Pie`.
fn pie_fresh_output(task: &Graph) -> u64 {
    pie(1).new_session().require(task)
}

/// A no-op check of a long `require_tasks` run stamps the tasks' files on helper threads while the lane checks
/// them (`context/prefetch.rs`): whoever claims a file first stamps it, and the lane waits for a helper's stamp.
/// Under every explored interleaving of the lane and one or two helpers, the lane sees every edit and nothing else.
#[test]
fn files_stamped_on_helper_threads_show_every_edit_and_nothing_else() {
    // Long enough for prefetching (64 tasks that read 64 files).
    const READERS: usize = 66;
    explore(|| {
        let dir = dev_util::Dir::new();
        let files: Vec<_> = (0..READERS).map(|i| dir.create(format!("{i}.txt"), "1")).collect();
        let root = Graph::All(0, files.iter().map(|f| Graph::Read(f.clone())).collect());
        for threads in [2, 3] {
            let mut pie = pie(threads);
            let mut contents = vec![1; READERS];
            for file in &files {
                std::fs::write(file, "1").unwrap();
            }
            assert_eq!(pie.new_session().require(&root), READERS as u64);
            // Nothing changed; then a file at each end of the run and one in the middle; then the middle one back.
            for edits in [vec![], vec![(0, 2), (33, 3), (READERS - 1, 4)], vec![(33, 1)]] {
                for &(i, value) in &edits {
                    std::fs::write(&files[i], value.to_string()).unwrap();
                    contents[i] = value;
                }
                EXECUTIONS.lock().unwrap().clear();
                assert_eq!(pie.new_session().require(&root), contents.iter().sum::<u64>());
                // Only this test's tasks: another test may execute its own on one thread meanwhile, outside
                // `explore` (which runs one test's schedules at a time).
                let mut executions = EXECUTIONS.lock().unwrap().clone();
                executions
                    .retain(|(task, _)| *task == root || matches!(task, Graph::Read(path) if files.contains(path)));
                let mut expected: Vec<Graph> = edits.iter().map(|&(i, _)| Graph::Read(files[i].clone())).collect();
                if !expected.is_empty() {
                    expected.push(root.clone());
                }
                assert_eq!(
                    executions.len(),
                    expected.len(),
                    "{threads} threads, edits {edits:?}: {executions:?}"
                );
                assert!(
                    expected.iter().all(|task| executions_of(task) == 1),
                    "{threads} threads, edits {edits:?}: {executions:?}"
                );
            }
        }
    });
}

/// The message of the panic that a fresh build of `root` on `threads` threads ends with.
fn fresh_violation(root: &Graph, threads: usize) -> String {
    let payload = panic::catch_unwind(AssertUnwindSafe(|| pie(threads).new_session().require(root))).unwrap_err();
    payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| panic!("a panic without a message"))
}

/// A fresh build in which no file has a provider records a read in a branch when its lane next takes the engine
/// (`context/parallel.rs`), so a branch may provide the file between the read and its check, without seeing it. In
/// every explored interleaving of a reader and a writer of one file, in either argument order (and a second reader
/// of another file, so that lanes also take the engine for unrelated work), the verdict is that of one thread: the
/// later task in argument order meets the hidden dependency.
#[test]
fn a_read_checked_after_a_provide_it_came_before_gives_the_verdict_of_one_thread() {
    let dir = dev_util::Dir::new();
    let shared = dir.create("shared.txt", "1");
    let other = dir.create("other.txt", "2");
    let roots = [
        Graph::All(
            0,
            vec![
                Graph::Read(shared.clone()),
                Graph::Write(shared.clone(), 7),
                Graph::Read(other.clone()),
            ],
        ),
        Graph::All(
            1,
            vec![
                Graph::Write(shared.clone(), 7),
                Graph::Read(other.clone()),
                Graph::Read(shared.clone()),
            ],
        ),
    ];
    let expected: Vec<String> = roots
        .iter()
        .map(|root| {
            std::fs::write(&shared, "1").unwrap();
            fresh_violation(root, 1)
        })
        .collect();
    assert!(expected[0].contains("provides file"), "{}", expected[0]);
    assert!(expected[1].contains("requires file"), "{}", expected[1]);
    explore(move || {
        for (root, expected) in roots.iter().zip(&expected) {
            std::fs::write(&shared, "1").unwrap();
            assert_eq!(&fresh_violation(root, 3), expected);
        }
    });
}
