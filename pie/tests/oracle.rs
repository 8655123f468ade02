//! The correctness oracle: random task graphs, random file edits, and after every edit a comparison of the
//! incremental build with a clean one.
//!
//! A graph has a few input files and a few tasks. Task `i` runs a list of operations: read an input file, require
//! a task `j < i` (so the graph is acyclic), read the file that a task `j < i` writes *after requiring it* (so the
//! build is sound), or do one of those only when an input file exists or has an odd length, or only when the
//! output of a task `j < i` has an odd byte sum (so dependencies change with the inputs, and with other tasks'
//! outputs). A task may write its result to its own output file, read it back, and return either the result or a
//! lossy digest of it (so that early cutoff happens). Files are read with the `Modified`, `Hash` or (for existence
//! conditions) `Exists` stamper; tasks are required with `Equals` or `Inconsequential`.
//!
//! The build script has *versions*: task `i` of version `v` is a task of its own (another value), which requires
//! and reads the tasks of version `v` and writes the same output file as every other version of task `i`, with a
//! different text. A step between rounds may switch to the next version (as an edited build script does), usually
//! unobserving the roots of the older ones; other steps `unobserve` a root, `retain_roots` keep a random subset,
//! and `collect_garbage` (deleting provided files or not).
//!
//! Each round edits files (new contents, same-contents rewrites, deletions, and tampering with output files) and
//! then requires a random list of tasks of the current version in one session. Two `Pie`s live through the same
//! history, each in a folder of its own with the same files: one builds top-down; the other builds the same way in
//! a *top-down round*, and bottom-up in a *bottom-up round* — `update_affected_by` with every file edited since its
//! last session, then `require` of the round's tasks in the same session. The second `Pie` runs on 1, 2 or 4
//! threads (`Pie::set_threads`), so that its bottom-up rounds fork affected roots. In a bottom-up round the top-down `Pie`
//! requires the round's tasks and then every other root, so that both make every live task consistent.
//!
//! After each round, for each `Pie`:
//! (a) every output and every written file of the tasks the build made consistent equals a clean build's
//!     ([`NonIncrementalContext`] in a fresh copy of the inputs);
//! (b) every task that executed was new or had a dependency, recorded at its previous execution, that is now
//!     inconsistent (a file whose stamp changed, an `Equals` task whose output changed); and conversely every task
//!     made consistent without executing has only consistent dependencies;
//! (c) an immediate second build executes nothing; and (d) the store's invariants hold.
//! A panic other than a task's own is a refusal (an unsound build, possible only while roots of two versions are
//! live), which a clean build of the live roots must also make: dead tasks never cause one. (The one exception, a
//! task live only through a dependency that a root recorded and would no longer make, is in [`Side::check_panic`].)
//! A refusal ends the case, since the refused task has already written its file.
//!
//! In a bottom-up round, moreover: the `require`s after `update_affected_by` execute only tasks that were not
//! live after it (new ones, ones dead before the session, ones the update dropped); and while both `Pie`s have the
//! same history (no panic yet), the bottom-up one executes exactly the tasks the top-down one executes (see
//! [`bottom_up_executed_more`] for the one principled exception).
//!
//! A garbage collection step checks on disk that it deleted only files that a dead task provided and no live task
//! provides, that it removed exactly the dead tasks, and that a store saved and loaded afterwards (when every live
//! task is consistent) builds with nothing executed.
//!
//! The second property adds panics: every task first requires its flag file (`Exists`) and, while the flag exists,
//! panics after doing all its work (its output file is already written). Edits create and delete flags. A panic
//! that escapes a required task is caught and the session goes on with the next task. Then the roots that panicked
//! must panic again in the next session (no stale output), and everything above holds for the roots that did not.
//!
//! The model in this file knows the graph and looks at the file system with the public stampers; it never looks
//! inside the store. Cases: `PIE_PROPTEST_CASES` (default 128); proptest's `PROPTEST_RNG_SEED` fixes the seed.
//! A failure shows the case readably and a trace of every step and session (which tasks executed, in order);
//! `PIE_ORACLE_STATS=1` prints how often the cases reached each checked situation.

mod common;

use common::{catch, reports_internal_bug, TASK_PANIC_MESSAGE};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dev_util::{write_until_modified, Dir};
use pie::context::non_incremental::NonIncrementalContext;
use pie::stamp::{FileStamp, FileStamper, OutputStamper};
use pie::tracker::Tracker;
use pie::{Context, Pie, Task};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestCaseResult};

/// How many versions of the build script a case may go through.
const VERSIONS: usize = 3;

/// The beginnings of the messages of soundness violations (refusals).
const REFUSALS: [&str; 3] = [
    "Overlapping provided file",
    "Hidden dependency",
    "Cyclic task dependency",
];

// The graph and its interpretation.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// Read input `k`; contributes its contents (`-` when missing).
    ReadInput(usize, FileStamper),
    /// Require task `j`; contributes its output when `Equals`.
    Require(usize, OutputStamper),
    /// Require task `j`, then read the file it writes; contributes the output (when `Equals`) and the contents.
    ReadOutput(usize, OutputStamper, FileStamper),
    /// Read input `k`; when it exists (`Exists` stamper) or has an odd length (other stampers), run the operation.
    When(usize, FileStamper, Box<Op>),
    /// Require task `j` (`Equals`); when its output's bytes have an odd sum, run the operation.
    WhenOutput(usize, Box<Op>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    ops: Vec<Op>,
    /// Writes the result to the task's output file and provides it with this stamper.
    writes: Option<FileStamper>,
    /// After writing, reads the output file back.
    read_back: bool,
    /// Returns a digest of the result (its length modulo 3) instead of the result.
    digest: bool,
}

/// The tasks of a graph are numbered by *id*: task `index` of version `version` has id
/// `version * tasks.len() + index`.
#[derive(Debug)]
struct Graph {
    root: PathBuf,
    inputs: usize,
    tasks: Vec<Spec>,
    /// Each task requires its flag file (with `Exists`) first, and panics at its very end while the flag exists.
    panics: bool,
}

impl Graph {
    fn id(&self, version: usize, index: usize) -> usize {
        version * self.tasks.len() + index
    }
    fn index(&self, id: usize) -> usize {
        id % self.tasks.len()
    }
    fn version(&self, id: usize) -> usize {
        id / self.tasks.len()
    }
    /// The number of task ids.
    fn ids(&self) -> usize {
        VERSIONS * self.tasks.len()
    }
    fn writes(&self, id: usize) -> bool {
        self.tasks[self.index(id)].writes.is_some()
    }
    fn input(&self, k: usize) -> PathBuf {
        self.root.join(format!("in_{k}"))
    }
    /// The output file of task `id`, shared by all versions of the task.
    fn output(&self, id: usize) -> PathBuf {
        self.root.join(format!("out_{}", self.index(id)))
    }
    fn flag(&self, id: usize) -> PathBuf {
        self.root.join(format!("flag_{}", self.index(id)))
    }
    /// A copy of this graph in another folder.
    fn moved_to(&self, root: &Path) -> Arc<Graph> {
        Arc::new(Graph {
            root: root.to_path_buf(),
            inputs: self.inputs,
            tasks: self.tasks.clone(),
            panics: self.panics,
        })
    }
}

/// How panic messages and failures name task `id`: `T3`, or `T3@v1` for version 1.
fn name(graph: &Graph, id: usize) -> String {
    match graph.version(id) {
        0 => format!("T{}", graph.index(id)),
        v => format!("T{}@v{v}", graph.index(id)),
    }
}

/// Task `id` of a graph. Tasks of one graph compare by id; tasks of different graphs never compare equal.
#[derive(Clone)]
struct OracleTask {
    graph: Arc<Graph>,
    id: usize,
}

impl PartialEq for OracleTask {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.graph, &other.graph) && self.id == other.id
    }
}

impl Eq for OracleTask {}

impl Hash for OracleTask {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl std::fmt::Debug for OracleTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&name(&self.graph, self.id))
    }
}

/// A task is saved as its id; loading needs the graph it belongs to, set by [`load`] for the duration of a load.
#[cfg(feature = "serde")]
mod persisted {
    use std::cell::RefCell;
    use std::path::Path;
    use std::sync::Arc;

    use pie::Pie;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Executions, Graph, OracleTask};

    thread_local! {
        static LOADING: RefCell<Option<Arc<Graph>>> = const { RefCell::new(None) };
    }

    impl Serialize for OracleTask {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            (self.id as u64).serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for OracleTask {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let id = u64::deserialize(deserializer)?;
            let graph = LOADING
                .with(|g| g.borrow().clone())
                .ok_or_else(|| D::Error::custom("no graph to load oracle tasks into"))?;
            Ok(OracleTask { graph, id: id as usize })
        }
    }

    /// Loads the store at `path` with tasks of `graph`.
    pub(super) fn load(path: &Path, graph: &Arc<Graph>) -> Result<Pie<OracleTask, String, Executions>, pie::LoadError> {
        LOADING.with(|g| *g.borrow_mut() = Some(graph.clone()));
        let loaded = Pie::load(path, Executions::default());
        LOADING.with(|g| *g.borrow_mut() = None);
        loaded
    }
}

/// What a task's operations run against: a real context, or the model's dry run.
trait Env {
    fn read(&mut self, path: &Path, stamper: FileStamper) -> Option<String>;
    fn require(&mut self, id: usize, stamper: OutputStamper) -> String;
    fn write(&mut self, path: &Path, stamper: FileStamper, text: &str);
    /// Task `id` found its panic flag and has done everything else.
    fn fail(&mut self, id: usize);
}

fn interpret(graph: &Graph, id: usize, env: &mut impl Env) -> String {
    let (index, version) = (graph.index(id), graph.version(id));
    let spec = &graph.tasks[index];
    let flagged = graph.panics && env.read(&graph.flag(id), FileStamper::Exists).is_some();
    let mut parts = Vec::new();
    for op in &spec.ops {
        run(graph, version, op, env, &mut parts);
    }
    let parts = parts.join(",");
    // Version 0 writes what the oracle wrote before it had versions.
    let text = match version {
        0 => format!("{index}({parts})"),
        v => format!("{index}@v{v}({parts})"),
    };
    if let Some(stamper) = spec.writes {
        let path = graph.output(id);
        env.write(&path, stamper, &text);
        if spec.read_back {
            let back = env.read(&path, stamper);
            assert_eq!(back.as_deref(), Some(text.as_str()), "T{index} read back what it wrote");
        }
    }
    if flagged {
        env.fail(id);
    }
    if spec.digest {
        format!("{index}:{}", text.len() % 3)
    } else {
        text
    }
}

fn run(graph: &Graph, version: usize, op: &Op, env: &mut impl Env, parts: &mut Vec<String>) {
    match op {
        Op::ReadInput(k, stamper) => parts.push(env.read(&graph.input(*k), *stamper).unwrap_or_else(|| "-".into())),
        Op::Require(j, stamper) => {
            let output = env.require(graph.id(version, *j), *stamper);
            if *stamper == OutputStamper::Equals {
                parts.push(output);
            }
        }
        Op::ReadOutput(j, task_stamper, file_stamper) => {
            let id = graph.id(version, *j);
            let output = env.require(id, *task_stamper);
            if *task_stamper == OutputStamper::Equals {
                parts.push(output);
            }
            parts.push(env.read(&graph.output(id), *file_stamper).unwrap_or_else(|| "-".into()));
        }
        Op::When(k, stamper, then) => {
            let contents = env.read(&graph.input(*k), *stamper);
            let holds = match stamper {
                FileStamper::Exists => contents.is_some(),
                _ => contents.is_some_and(|c| c.len() % 2 == 1),
            };
            parts.push(if holds { "y" } else { "n" }.to_string());
            if holds {
                run(graph, version, then, env, parts);
            }
        }
        Op::WhenOutput(j, then) => {
            let output = env.require(graph.id(version, *j), OutputStamper::Equals);
            let holds = output.bytes().map(u32::from).sum::<u32>() % 2 == 1;
            parts.push(format!("{output}{}", if holds { "y" } else { "n" }));
            if holds {
                run(graph, version, then, env, parts);
            }
        }
    }
}

struct ContextEnv<'c, C> {
    context: &'c mut C,
    graph: &'c Arc<Graph>,
}

impl<C: Context<OracleTask>> Env for ContextEnv<'_, C> {
    fn read(&mut self, path: &Path, stamper: FileStamper) -> Option<String> {
        let mut file = self
            .context
            .require_file_with_stamper(path, stamper)
            .expect("oracle files are readable")?;
        let mut text = String::new();
        file.read_to_string(&mut text).expect("oracle files are UTF-8");
        Some(text)
    }
    fn require(&mut self, id: usize, stamper: OutputStamper) -> String {
        let task = OracleTask {
            graph: self.graph.clone(),
            id,
        };
        self.context.require_task_with_stamper(&task, stamper)
    }
    fn write(&mut self, path: &Path, stamper: FileStamper, text: &str) {
        write_until_modified(path, text).expect("cannot write an oracle output");
        self.context
            .provide_file_with_stamper(path, stamper)
            .expect("cannot stamp an oracle output");
    }
    fn fail(&mut self, _id: usize) {
        panic!("{TASK_PANIC_MESSAGE}");
    }
}

impl Task for OracleTask {
    type Output = String;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
        let graph = self.graph.clone();
        interpret(&graph, self.id, &mut ContextEnv { context, graph: &graph })
    }
}

// The model: what each task depended on at its last execution, with the stamps and output versions it saw.

#[derive(Clone, Debug)]
struct Record {
    /// Files with the stamp seen, and whether the task provided (rather than required) the file.
    files: Vec<(PathBuf, FileStamper, FileStamp, bool)>,
    tasks: Vec<(usize, OutputStamper, u64)>,
}

impl Record {
    fn provides(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f.3 && f.0 == path)
    }
}

/// The model of one `Pie`, indexed by task id.
#[derive(Default)]
struct Model {
    records: Vec<Option<Record>>,
    outputs: Vec<Option<String>>,
    /// Changes exactly when the output changes, like a task dependency's notion of "changed".
    versions: Vec<u64>,
    next_version: u64,
    /// Whether the task is in the store: it started executing once, and no garbage collection removed it since.
    in_store: Vec<bool>,
    /// For a task whose last execution did not finish: the tasks it required in it. The store keeps those
    /// dependencies (a panic is recorded where it happened), so they keep tasks live.
    partial: Vec<Vec<usize>>,
}

/// Records the dependencies of a task by running its operations without writing anything.
struct DryEnv<'m> {
    model: &'m Model,
    files: Vec<(PathBuf, FileStamper, bool)>,
    tasks: Vec<(usize, OutputStamper)>,
}

impl Env for DryEnv<'_> {
    fn read(&mut self, path: &Path, stamper: FileStamper) -> Option<String> {
        self.files.push((path.to_path_buf(), stamper, false));
        fs::read_to_string(path).ok()
    }
    fn require(&mut self, id: usize, stamper: OutputStamper) -> String {
        self.tasks.push((id, stamper));
        self.model.outputs[id].clone().expect("a required task has an output")
    }
    fn write(&mut self, path: &Path, stamper: FileStamper, _text: &str) {
        self.files.push((path.to_path_buf(), stamper, true));
    }
    fn fail(&mut self, id: usize) {
        panic!("model: task {id} finished although its panic flag exists");
    }
}

fn stamp(path: &Path, stamper: FileStamper) -> FileStamp {
    stamper.stamp(path).expect("oracle files can be stamped")
}

impl Model {
    fn new(ids: usize) -> Self {
        Self {
            records: vec![None; ids],
            outputs: vec![None; ids],
            versions: vec![0; ids],
            next_version: 1,
            in_store: vec![false; ids],
            partial: vec![Vec::new(); ids],
        }
    }

    /// The first reason why task `i` must execute, if any, judging the files it provided only when `provided`.
    ///
    /// Files are judged as they are now. That is right for required files, which only change during a build before
    /// the requiring task is checked (their provider is required first), but not for a task's own provided file
    /// after a build in which it rewrote it: judge those before the build.
    fn inconsistency(&self, i: usize, provided: bool) -> Option<String> {
        let Some(record) = &self.records[i] else {
            return Some("new".into());
        };
        for (path, stamper, recorded, _) in record.files.iter().filter(|f| provided || !f.3) {
            let now = stamp(path, *stamper);
            if now != *recorded {
                return Some(format!("{} changed: {recorded:?} → {now:?}", path.display()));
            }
        }
        for (j, stamper, version) in &record.tasks {
            // A required task that panicked (whatever the stamper): the requiring task executes and meets the
            // panic where it requires the task, as in a clean build.
            if self.outputs[*j].is_none() {
                return Some(format!("task {j} panicked"));
            }
            if *stamper == OutputStamper::Equals && self.versions[*j] != *version {
                return Some(format!("output of task {j} changed"));
            }
        }
        None
    }

    /// Whether a file that task `i` provided has changed since.
    fn provided_changed(&self, i: usize) -> Option<String> {
        let record = self.records[i].as_ref()?;
        record
            .files
            .iter()
            .filter(|f| f.3 && stamp(&f.0, f.1) != f.2)
            .map(|f| format!("provided {} changed", f.0.display()))
            .next()
    }

    fn executed(&mut self, i: usize, output: &str) {
        if self.outputs[i].as_deref() != Some(output) {
            self.versions[i] = self.next_version;
            self.next_version += 1;
            self.outputs[i] = Some(output.to_string());
        }
    }

    /// Records what task `i` depends on now, having just executed; returns its output from a dry run.
    fn record(&mut self, graph: &Graph, i: usize) -> String {
        let mut env = DryEnv {
            model: self,
            files: Vec::new(),
            tasks: Vec::new(),
        };
        let output = interpret(graph, i, &mut env);
        let (files, tasks) = (env.files, env.tasks);
        let record = Record {
            files: files
                .into_iter()
                .map(|(path, stamper, provided)| {
                    let now = stamp(&path, stamper);
                    (path, stamper, now, provided)
                })
                .collect(),
            tasks: tasks.into_iter().map(|(j, s)| (j, s, self.versions[j])).collect(),
        };
        self.records[i] = Some(record);
        output
    }

    /// The tasks reachable from `roots` through recorded task dependencies (of finished executions, and of
    /// unfinished ones up to their panic), in order of id: between sessions, the live tasks.
    fn reachable<'r>(&self, roots: impl IntoIterator<Item = &'r usize>) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = roots.into_iter().copied().collect();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                if let Some(record) = &self.records[i] {
                    stack.extend(record.tasks.iter().map(|(j, _, _)| *j));
                }
                stack.extend(self.partial[i].iter().copied());
            }
        }
        let mut reached: Vec<usize> = seen.into_iter().collect();
        reached.sort_unstable();
        reached
    }

    /// The tasks whose last (finished) execution required task `j`.
    fn dependents(&self, j: usize) -> Vec<usize> {
        (0..self.records.len())
            .filter(|i| {
                self.records[*i]
                    .as_ref()
                    .is_some_and(|r| r.tasks.iter().any(|t| t.0 == j))
            })
            .collect()
    }
}

/// An execution starting, or finishing with an output; and the start of a build (a `require` or an
/// `update_affected_by`).
#[derive(Clone, Debug)]
enum Execution {
    Build,
    Start(usize),
    /// A task requires task `j` (the innermost task executing).
    Require(usize),
    End(usize, String),
}

/// Records executions, across the builds of a session.
#[derive(Default)]
struct Executions(Vec<Execution>);

impl Tracker<OracleTask> for Executions {
    fn build_start(&mut self) {
        self.0.push(Execution::Build);
    }
    fn execute_start(&mut self, task: &OracleTask) {
        self.0.push(Execution::Start(task.id));
    }
    fn require_task_start(&mut self, task: &OracleTask, _stamper: &OutputStamper) {
        self.0.push(Execution::Require(task.id));
    }
    fn execute_end(&mut self, task: &OracleTask, output: &String) {
        self.0.push(Execution::End(task.id, output.clone()));
    }
}

/// The tasks that started executing, in order, with repetitions.
fn started(executions: &[Execution]) -> Vec<usize> {
    executions
        .iter()
        .filter_map(|e| match e {
            Execution::Start(i) => Some(*i),
            _ => None,
        })
        .collect()
}

// Random cases.

/// An index into a list whose length is known only later: the raw value modulo the length. (Unlike proptest's
/// `Index`, a case can be written down, so that a shrunk case can be replayed.)
#[derive(Clone, Copy, Debug)]
struct Pick(usize);

impl Pick {
    fn index(&self, len: usize) -> usize {
        self.0 % len
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    any::<usize>().prop_map(Pick)
}

#[derive(Clone, Debug)]
struct RawOp {
    kind: u8,
    task: Pick,
    input: Pick,
    hash: bool,
    equals: bool,
    via_file: bool,
}

#[derive(Clone, Debug)]
struct RawTask {
    ops: Vec<RawOp>,
    writes: Option<bool>,
    read_back: bool,
    digest: bool,
}

#[derive(Clone, Debug)]
enum Edit {
    /// Create (`true`) or delete the panic flag of a task.
    Flag(Pick, bool),
    Write(Pick, String),
    Rewrite(Pick),
    Delete(Pick),
    /// Overwrite (or with `None`, delete) the output file of a task that writes one.
    Tamper(Pick, Option<String>),
}

/// A change to the roots or the store between sessions.
#[derive(Clone, Debug)]
enum Step {
    /// Unobserve one of the roots (in order of id).
    Unobserve(Pick),
    /// Keep the roots whose position (in order of id, modulo 8) has its bit set.
    Retain(u8),
    /// `collect_garbage(delete_provided_files)`.
    Collect(bool),
    /// From now on, require the tasks of the next version of the build script; with `true`, retain only the roots
    /// of that version (as an edited build script would).
    NewVersion(bool),
}

#[derive(Clone, Debug)]
struct Round {
    steps: Vec<Step>,
    edits: Vec<Edit>,
    roots: Vec<Pick>,
    /// Whether the second `Pie` builds bottom-up in this round.
    bottom_up: bool,
}

#[derive(Clone, Debug)]
struct Case {
    inputs: Vec<Option<String>>,
    tasks: Vec<RawTask>,
    rounds: Vec<Round>,
    /// The threads of the second `Pie` (see `Pie::set_threads`): its bottom-up rounds bring independent affected
    /// tasks, and affected roots, up to date together.
    threads: usize,
}

fn contents() -> impl Strategy<Value = String> {
    "[ab]{0,3}"
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    (0u8..7, pick(), pick(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(kind, task, input, hash, equals, via_file)| RawOp {
            kind,
            task,
            input,
            hash,
            equals,
            via_file,
        },
    )
}

fn raw_task() -> impl Strategy<Value = RawTask> {
    (
        vec(raw_op(), 0..4),
        option::of(any::<bool>()),
        any::<bool>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(ops, writes, read_back, digest)| RawTask {
            ops,
            writes,
            read_back,
            digest,
        })
}

/// An edit; panic flags only when `panics`.
fn edit(panics: bool) -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (pick(), contents()).prop_map(|(k, c)| Edit::Write(k, c)),
        2 => pick().prop_map(Edit::Rewrite),
        1 => pick().prop_map(Edit::Delete),
        1 => (pick(), option::of(contents())).prop_map(|(j, c)| Edit::Tamper(j, c)),
        if panics { 3 } else { 0 } => (pick(), any::<bool>()).prop_map(|(j, on)| Edit::Flag(j, on)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => pick().prop_map(Step::Unobserve),
        1 => any::<u8>().prop_map(Step::Retain),
        3 => any::<bool>().prop_map(Step::Collect),
        1 => prop::bool::weighted(0.7).prop_map(Step::NewVersion),
    ]
}

fn case(panics: bool) -> impl Strategy<Value = Case> {
    let round = (
        vec(step(), 0..3),
        vec(edit(panics), 0..4),
        vec(pick(), 1..4),
        prop::bool::weighted(0.6),
    )
        .prop_map(|(steps, edits, roots, bottom_up)| Round {
            steps,
            edits,
            roots,
            bottom_up,
        });
    (
        vec(option::weighted(0.8, contents()), 1..4),
        vec(raw_task(), 1..8),
        vec(round, 1..7),
        prop_oneof![2 => Just(1), 1 => Just(2), 1 => Just(4)],
    )
        .prop_map(|(inputs, tasks, rounds, threads)| Case {
            inputs,
            tasks,
            rounds,
            threads,
        })
}

fn stamper(hash: bool) -> FileStamper {
    if hash {
        FileStamper::Hash
    } else {
        FileStamper::Modified
    }
}

fn task_stamper(equals: bool) -> OutputStamper {
    if equals {
        OutputStamper::Equals
    } else {
        OutputStamper::Inconsequential
    }
}

/// Turns raw operation `raw` of task `i` into an operation that only refers to tasks before `i`.
fn op(raw: &RawOp, i: usize, inputs: usize, writers: &[usize]) -> Op {
    let read_input = Op::ReadInput(raw.input.index(inputs), stamper(raw.hash));
    let on_task = |equals: bool| {
        if i == 0 {
            read_input.clone()
        } else if !writers.is_empty() && raw.via_file {
            Op::ReadOutput(
                writers[raw.task.index(writers.len())],
                task_stamper(equals),
                stamper(raw.hash),
            )
        } else {
            Op::Require(raw.task.index(i), task_stamper(equals))
        }
    };
    match raw.kind {
        0 | 1 => read_input.clone(),
        2 | 3 => on_task(raw.equals),
        4 => Op::When(raw.input.index(inputs), FileStamper::Exists, Box::new(on_task(true))),
        5 => Op::When(raw.input.index(inputs), stamper(!raw.hash), Box::new(on_task(true))),
        _ if i == 0 => read_input.clone(),
        _ => Op::WhenOutput(raw.input.index(i), Box::new(on_task(raw.equals))),
    }
}

fn specs(case: &Case) -> Vec<Spec> {
    let inputs = case.inputs.len();
    let mut specs: Vec<Spec> = Vec::new();
    for (i, raw) in case.tasks.iter().enumerate() {
        let writers: Vec<usize> = (0..i).filter(|j| specs[*j].writes.is_some()).collect();
        specs.push(Spec {
            ops: raw.ops.iter().map(|o| op(o, i, inputs, &writers)).collect(),
            writes: raw.writes.map(stamper),
            read_back: raw.read_back,
            digest: raw.digest,
        });
    }
    specs
}

fn set_file(path: &Path, contents: Option<&str>) {
    match contents {
        Some(c) => write_until_modified(path, c).expect("cannot write an oracle file"),
        None => {
            if path.exists() {
                fs::remove_file(path).expect("cannot delete an oracle file");
            }
        }
    }
}

/// Applies `edit`; returns the file it may have changed.
fn apply(graph: &Graph, edit: &Edit) -> Option<PathBuf> {
    let n = graph.tasks.len();
    match edit {
        Edit::Flag(j, on) => {
            let path = graph.flag(j.index(n));
            set_file(&path, on.then_some(""));
            Some(path)
        }
        Edit::Write(k, c) => {
            let path = graph.input(k.index(graph.inputs));
            set_file(&path, Some(c));
            Some(path)
        }
        Edit::Rewrite(k) => {
            let path = graph.input(k.index(graph.inputs));
            if let Ok(same) = fs::read_to_string(&path) {
                set_file(&path, Some(&same));
            }
            Some(path)
        }
        Edit::Delete(k) => {
            let path = graph.input(k.index(graph.inputs));
            set_file(&path, None);
            Some(path)
        }
        Edit::Tamper(j, c) => {
            let j = j.index(n);
            graph.tasks[j].writes.map(|_| {
                let path = graph.output(j);
                set_file(&path, c.as_deref());
                path
            })
        }
    }
}

/// A fresh folder with a copy of `graph`'s inputs (and, with `flags`, its panic flags), and the graph moved there.
fn copy_of(graph: &Graph, flags: bool) -> (Dir, Arc<Graph>) {
    let dir = Dir::new();
    let clean = graph.moved_to(dir.path());
    let copies = (0..graph.inputs).map(|k| (graph.input(k), clean.input(k))).chain(
        (0..graph.tasks.len())
            .filter(|_| flags)
            .map(|i| (graph.flag(i), clean.flag(i))),
    );
    for (from, to) in copies {
        if let Ok(contents) = fs::read(from) {
            dir.create(to, contents);
        }
    }
    (dir, clean)
}

/// A clean build of `tasks` from the current files, in a fresh folder: their outputs and written files.
fn clean_build(graph: &Graph, tasks: &[usize]) -> Result<(Vec<String>, Vec<Option<String>>), TestCaseError> {
    let (_dir, clean) = copy_of(graph, true);
    let mut outputs = Vec::new();
    for i in tasks {
        let task = OracleTask {
            graph: clean.clone(),
            id: *i,
        };
        match catch(|| NonIncrementalContext.require(&task)) {
            Ok(output) => outputs.push(output),
            Err(message) => {
                return Err(TestCaseError::fail(format!(
                    "{} was made consistent, but its clean build panics: {message}",
                    name(graph, *i)
                )))
            }
        }
    }
    let files = tasks
        .iter()
        .map(|i| fs::read_to_string(clean.output(*i)).ok())
        .collect();
    Ok((outputs, files))
}

/// A clean build of `roots`, in one session of a fresh `Pie`, without panic flags: the first refusal, if any, and
/// the tasks it executed. Panic flags only cut a build short, so without them a clean build meets every conflict
/// that one with them would.
fn clean_refusal(graph: &Graph, roots: &[usize]) -> (Option<String>, HashSet<usize>) {
    let (_dir, clean) = copy_of(graph, false);
    let mut pie = Pie::with_tracker(Executions::default());
    let mut session = pie.new_session();
    let refusals: Vec<String> = roots
        .iter()
        .filter_map(|r| {
            let task = OracleTask {
                graph: clean.clone(),
                id: *r,
            };
            catch(|| session.require(&task)).err()
        })
        .collect();
    drop(session);
    (
        refusals.into_iter().next(),
        started(&pie.tracker().0).into_iter().collect(),
    )
}

impl Model {
    /// Takes in the executions of a session, in order: a task whose last execution finished has a new output and
    /// new dependencies; one whose last execution did not finish (a panic escaped it) has neither. With
    /// `provided_changed` (judged before the session), first asserts (b)'s upper bound for every task that
    /// executed: it was new, or a dependency recorded at its previous execution is inconsistent.
    fn observe(
        &mut self,
        graph: &Graph,
        executions: &[Execution],
        provided_changed: Option<&[Option<String>]>,
        context: &str,
    ) -> TestCaseResult {
        let mut last: Vec<Option<Option<&str>>> = vec![None; graph.ids()];
        // What each task required in its last execution, and the executions open (innermost last) in this build:
        // a panic ends the build.
        let mut required: Vec<Vec<usize>> = vec![Vec::new(); graph.ids()];
        let mut open: Vec<usize> = Vec::new();
        for execution in executions {
            match execution {
                Execution::Build => open.clear(),
                Execution::Start(i) => {
                    last[*i] = Some(None);
                    required[*i].clear();
                    open.push(*i);
                }
                Execution::Require(j) => {
                    if let Some(i) = open.last() {
                        required[*i].push(*j);
                    }
                }
                Execution::End(i, output) => {
                    last[*i] = Some(Some(output));
                    open.retain(|o| o != i);
                }
            }
        }
        for (i, last) in last.iter().enumerate() {
            match last {
                Some(Some(output)) => self.executed(i, output),
                Some(None) => self.outputs[i] = None,
                None => {}
            }
        }
        if let Some(provided_changed) = provided_changed {
            // Another version of a task may have written its output file in this session, before it executed.
            let overwritten = |i: usize| {
                graph.writes(i)
                    && (0..graph.ids()).any(|j| j != i && last[j].is_some() && graph.index(j) == graph.index(i))
                    && self.provided_changed(i).is_some()
            };
            for (i, _) in last.iter().enumerate().filter(|(_, l)| l.is_some()) {
                prop_assert!(
                    provided_changed[i].is_some() || overwritten(i) || self.inconsistency(i, false).is_some(),
                    "{context}: {} executed, but nothing it depended on changed",
                    name(graph, i)
                );
            }
        }
        for (i, last) in last.iter().enumerate() {
            if last.is_some() {
                self.in_store[i] = true;
            }
            match last {
                Some(Some(output)) => {
                    let dry = self.record(graph, i);
                    prop_assert_eq!(
                        dry.as_str(),
                        *output,
                        "{}: {} executed with an output that its inputs do not give",
                        context,
                        name(graph, i)
                    );
                }
                Some(None) => self.records[i] = None,
                None => {}
            }
            if last.is_some() {
                self.partial[i] = match last {
                    Some(None) => std::mem::take(&mut required[i]),
                    _ => Vec::new(),
                };
            }
        }
        Ok(())
    }
}

// What a case did, for failure messages.

thread_local! {
    static TRACE: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn trace(line: String) {
    TRACE.with(|t| t.borrow_mut().push(line));
}

thread_local! {
    /// How often each checked situation occurred in this thread's cases (see `PIE_ORACLE_STATS`).
    static STATS: std::cell::RefCell<std::collections::BTreeMap<&'static str, usize>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// Counts a situation, to show with `PIE_ORACLE_STATS=1` how much of what the oracle checks the cases reach.
fn stat(situation: &'static str) {
    STATS.with(|s| *s.borrow_mut().entry(situation).or_default() += 1);
}

/// The executions of a session as text: the builds separated by `|`, each a list of the tasks that started
/// executing, in order (`!` after one whose execution did not finish).
fn show_executions(graph: &Graph, executions: &[Execution]) -> String {
    let mut parts: Vec<(String, bool)> = Vec::new();
    let mut open: Vec<(usize, usize)> = Vec::new();
    for execution in executions {
        match execution {
            Execution::Build => parts.push(("|".into(), true)),
            Execution::Start(i) => {
                open.push((*i, parts.len()));
                parts.push((name(graph, *i), false));
            }
            Execution::Require(_) => {}
            Execution::End(i, _) => {
                if let Some(position) = open.iter().rposition(|(j, _)| j == i) {
                    let (_, part) = open.remove(position);
                    parts[part].1 = true;
                }
            }
        }
    }
    parts
        .into_iter()
        .map(|(text, finished)| if finished { text } else { format!("{text}!") })
        .collect::<Vec<_>>()
        .join(" ")
}

// The two `Pie`s.

type OraclePie = Pie<OracleTask, String, Executions>;

/// A `Pie` in a folder of its own, with its model.
struct Side {
    name: &'static str,
    graph: Arc<Graph>,
    pie: OraclePie,
    model: Model,
    /// The files changed since the last session of this `Pie` (for `update_affected_by`).
    changed: Vec<PathBuf>,
    /// Whether every live task is consistent with the files (the last session made every root consistent, and
    /// nothing was edited since).
    consistent: bool,
    _dir: Dir,
}

/// What a panic that escaped a build was.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Panic {
    /// A task's own panic (its flag exists).
    Task,
    /// A soundness violation.
    Refusal,
}

/// What one session of a round did.
struct Outcome {
    /// The result of requiring each root of the round's build, in order.
    results: Vec<Result<String, String>>,
    /// In a bottom-up round, the message of a panic that escaped `update_affected_by`.
    update_panic: Option<String>,
    executions: Vec<Execution>,
}

impl Side {
    fn new(name: &'static str, case: &Case, tasks: &[Spec], panics: bool) -> Self {
        let dir = Dir::new();
        let graph = Arc::new(Graph {
            root: dir.path().to_path_buf(),
            inputs: case.inputs.len(),
            tasks: tasks.to_vec(),
            panics,
        });
        for (k, contents) in case.inputs.iter().enumerate() {
            set_file(&graph.input(k), contents.as_deref());
        }
        Self {
            name,
            model: Model::new(graph.ids()),
            graph,
            pie: Pie::with_tracker(Executions::default()),
            changed: Vec::new(),
            consistent: true,
            _dir: dir,
        }
    }

    fn task(&self, id: usize) -> OracleTask {
        OracleTask {
            graph: self.graph.clone(),
            id,
        }
    }

    fn roots(&self) -> BTreeSet<usize> {
        self.pie.roots().map(|t| t.id).collect()
    }

    /// Requires each of `roots` in one session (after `update_affected_by` of the files changed since the last
    /// session, when `bottom_up`): its output, or the message of the panic that escaped.
    fn build(&mut self, roots: &[usize], bottom_up: bool) -> Result<Outcome, TestCaseError> {
        self.pie.tracker_mut().0.clear();
        let changed = std::mem::take(&mut self.changed);
        let tasks: Vec<OracleTask> = roots.iter().map(|r| self.task(*r)).collect();
        let mut session = self.pie.new_session();
        let update_panic = if bottom_up {
            catch(|| session.update_affected_by(&changed)).err()
        } else {
            None
        };
        let results: Vec<Result<String, String>> = tasks.iter().map(|t| catch(|| session.require(t))).collect();
        let errors = session.dependency_check_errors().len();
        drop(session);
        prop_assert_eq!(errors, 0, "{}: dependency checks failed", self.name);
        let executions = std::mem::take(&mut self.pie.tracker_mut().0);
        let names = |ids: &[usize]| ids.iter().map(|i| name(&self.graph, *i)).collect::<Vec<_>>();
        let file_names = file_names(&changed);
        trace(format!(
            "  {}: {}require {:?}: update panic {:?}; results {:?}; executed {}",
            self.name,
            if bottom_up {
                format!("update_affected_by({file_names:?}), ")
            } else {
                String::new()
            },
            names(roots),
            update_panic,
            results,
            show_executions(&self.graph, &executions)
        ));
        Ok(Outcome {
            results,
            update_panic,
            executions,
        })
    }

    /// Asserts that a panic that escaped a build is a task's own (when the graph has panic flags) or a refusal
    /// that a clean build of the live roots makes too.
    fn check_panic(&self, message: &str, live_roots: &[usize], context: &str) -> Result<Panic, TestCaseError> {
        if message == TASK_PANIC_MESSAGE {
            prop_assert!(self.graph.panics, "{context}: a task panicked without a panic flag");
            return Ok(Panic::Task);
        }
        prop_assert!(
            REFUSALS.iter().any(|r| message.starts_with(r)),
            "{context}: unexpected panic: {message}"
        );
        prop_assert!(!reports_internal_bug(message), "{context}: {message}");
        let (clean, clean_executed) = clean_refusal(&self.graph, live_roots);
        if clean.is_none() {
            // The one exception: a task that is live only through a dependency that a root recorded at its last
            // execution and would no longer make, because an input changed since. Liveness follows recorded
            // dependencies (API.md), and a top-down build that meets the conflict before it re-checks that root
            // cannot know better; a clean build never executes the task.
            let live: HashSet<usize> = self.model.reachable(live_roots).into_iter().collect();
            let named: Vec<usize> = message
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '@'))
                .filter_map(|token| (0..self.graph.ids()).find(|i| name(&self.graph, *i) == token))
                .collect();
            let stale: Vec<usize> = named
                .iter()
                .copied()
                .filter(|i| live.contains(i) && !clean_executed.contains(i))
                .collect();
            prop_assert!(
                !stale.is_empty(),
                "{context}: refused ({message}), but a clean build of the live roots {:?} is not",
                live_roots.iter().map(|r| name(&self.graph, *r)).collect::<Vec<_>>()
            );
            stat("refusal through a stale recorded dependency");
            trace(format!(
                "  refusal through a stale recorded dependency: {:?} live, but not executed by a clean build",
                stale.iter().map(|i| name(&self.graph, *i)).collect::<Vec<_>>()
            ));
        }
        Ok(Panic::Refusal)
    }

    /// Checks a round's build of `roots` (see the module doc); returns the roots that failed, or `None` after a
    /// refusal.
    ///
    /// After a refusal only the verdict is checked: the refused task wrote its file before it provided it, so a
    /// task that provides the same file and was made consistent earlier in the session now has another file, as a
    /// build script that writes a file twice would. The case ends there.
    fn check_round(
        &mut self,
        roots: &[usize],
        outcome: &Outcome,
        provided_changed: &[Option<String>],
        live_roots: &[usize],
        context: &str,
    ) -> Result<Option<Vec<usize>>, TestCaseError> {
        let graph = self.graph.clone();
        let mut failed = Vec::new();
        let mut finished = Vec::new();
        let mut panics = Vec::new();
        if let Some(message) = &outcome.update_panic {
            panics.push(self.check_panic(message, live_roots, &format!("{context}: update_affected_by"))?);
        }
        for (root, result) in roots.iter().zip(&outcome.results) {
            match result {
                Ok(output) => finished.push((*root, output.clone())),
                Err(message) => {
                    panics.push(self.check_panic(
                        message,
                        live_roots,
                        &format!("{context}: {}", name(&graph, *root)),
                    )?);
                    failed.push(*root);
                }
            }
        }
        if panics.contains(&Panic::Refusal) {
            return Ok(None);
        }
        if failed.is_empty() && outcome.update_panic.is_none() {
            // Without a panic to recover from, nothing runs twice in a session.
            let mut seen = HashSet::new();
            for i in started(&outcome.executions) {
                prop_assert!(
                    seen.insert(i),
                    "{}: {} executed twice in one session",
                    context,
                    name(&graph, i)
                );
            }
        }
        self.model
            .observe(&graph, &outcome.executions, Some(provided_changed), context)?;

        let finished_roots: Vec<usize> = finished.iter().map(|(r, _)| *r).collect();
        let reached = self.model.reachable(&finished_roots);
        // (b), lower bound: a task made consistent without executing has only consistent dependencies.
        for i in &reached {
            if let Some(reason) = self.model.inconsistency(*i, true) {
                return Err(TestCaseError::fail(format!(
                    "{context}: {} is inconsistent ({reason}) after the build",
                    name(&graph, *i)
                )));
            }
        }

        // (a) outputs and written files equal a clean build's.
        let (clean_outputs, clean_files) = clean_build(&graph, &reached)?;
        for (position, i) in reached.iter().enumerate() {
            prop_assert_eq!(
                self.model.outputs[*i].as_ref(),
                Some(&clean_outputs[position]),
                "{}: output of {}",
                context,
                name(&graph, *i)
            );
            if graph.writes(*i) {
                let file = fs::read_to_string(graph.output(*i)).ok();
                prop_assert_eq!(
                    &file,
                    &clean_files[position],
                    "{}: file written by {}",
                    context,
                    name(&graph, *i)
                );
            }
        }
        for (root, output) in &finished {
            prop_assert_eq!(
                self.model.outputs[*root].as_ref(),
                Some(output),
                "{}: {} returned",
                context,
                name(&graph, *root)
            );
        }

        // (c) an immediate second build (top-down) executes nothing and returns the same outputs; a root that
        // panicked panics again rather than serving an old output.
        let again = self.build(&finished_roots, false)?;
        for ((root, output), result) in finished.iter().zip(&again.results) {
            prop_assert_eq!(
                result.as_ref(),
                Ok(output),
                "{}: second build of {}",
                context,
                name(&graph, *root)
            );
        }
        let executed = started(&again.executions);
        prop_assert!(executed.is_empty(), "{context}: the second build executed {executed:?}");
        let again = self.build(&failed, false)?;
        for (root, result) in failed.iter().zip(&again.results) {
            let message = result.as_ref().err();
            prop_assert!(
                message.is_some_and(|m| m == TASK_PANIC_MESSAGE || REFUSALS.iter().any(|r| m.starts_with(r))),
                "{}: second build of {}, which panicked: {:?}",
                context,
                name(&graph, *root),
                result
            );
        }
        self.model.observe(&graph, &again.executions, None, context)?;

        // (d)
        self.pie.check_invariants();
        Ok(Some(failed))
    }

    /// Collects garbage and checks what was removed and deleted against the model (see the module doc).
    fn collect(
        &mut self,
        roots: &BTreeSet<usize>,
        delete: bool,
        versioned: bool,
        context: &str,
    ) -> Result<pie::Garbage, TestCaseError> {
        let graph = self.graph.clone();
        let live_ids = self.model.reachable(roots);
        let live: HashSet<usize> = live_ids.iter().copied().collect();
        let before = listing(&graph.root);
        let garbage = self.pie.collect_garbage(delete);
        let after = listing(&graph.root);
        prop_assert!(
            garbage.failed_deletions.is_empty(),
            "{context}: {:?}",
            garbage.failed_deletions
        );
        let deleted: BTreeSet<PathBuf> = garbage.deleted_files.iter().cloned().collect();
        prop_assert_eq!(
            deleted.len(),
            garbage.deleted_files.len(),
            "{}: a file deleted twice",
            context
        );
        let vanished: BTreeSet<PathBuf> = before.keys().filter(|p| !after.contains_key(*p)).cloned().collect();
        prop_assert_eq!(
            &vanished,
            &deleted,
            "{}: files gone from disk, and files reported deleted",
            context
        );
        prop_assert!(
            delete || deleted.is_empty(),
            "{context}: deleted files without being asked"
        );
        for (path, contents) in &after {
            prop_assert_eq!(
                Some(contents),
                before.get(path),
                "{}: collecting changed a file",
                context
            );
        }
        let provided_by = |path: &Path, ids: &[usize]| {
            ids.iter()
                .any(|i| self.model.records[*i].as_ref().is_some_and(|r| r.provides(path)))
        };
        for path in &deleted {
            // No live task provides it; some task provided it (only output files of writers are provided).
            prop_assert!(
                !provided_by(path, &live_ids),
                "{context}: deleted {}, which a live task provides",
                path.display()
            );
            let is_output = (0..graph.tasks.len()).any(|i| graph.writes(i) && graph.output(i) == *path);
            prop_assert!(
                is_output,
                "{context}: deleted {}, which no task provided",
                path.display()
            );
        }
        // The model's liveness is exact: exactly the dead tasks are removed.
        let dead: Vec<usize> = (0..graph.ids())
            .filter(|i| self.model.in_store[*i] && !live.contains(i))
            .collect();
        prop_assert_eq!(
            garbage.removed_tasks,
            dead.len(),
            "{}: removed tasks (dead: {:?})",
            context,
            dead.iter().map(|i| name(&graph, *i)).collect::<Vec<_>>()
        );
        // A dead task of a single-version script never gave up its claims (only a conflict makes it), so every file
        // that only dead tasks provided is deleted.
        if delete && !versioned {
            for i in &dead {
                let path = graph.output(*i);
                if before.contains_key(&path) && provided_by(&path, &[*i]) && !provided_by(&path, &live_ids) {
                    prop_assert!(
                        deleted.contains(&path),
                        "{context}: kept {}, which only dead {} provided",
                        path.display(),
                        name(&graph, *i)
                    );
                }
            }
        }
        for i in dead {
            // Removed: new again when next required.
            self.model.records[i] = None;
            self.model.outputs[i] = None;
            self.model.partial[i].clear();
            self.model.in_store[i] = false;
        }
        self.changed.extend(deleted);
        self.pie.check_invariants();
        Ok(garbage)
    }

    /// Saves the store, loads it, and builds every root with the copy, bottom-up as this `Pie` would: nothing
    /// executes, and the outputs are the model's. Only while every live task is consistent.
    #[cfg(feature = "serde")]
    fn check_saved_store(&self, roots: &BTreeSet<usize>, bottom_up: bool, context: &str) -> TestCaseResult {
        let dir = Dir::new();
        let path = dir.join("store");
        self.pie
            .save(&path)
            .map_err(|e| TestCaseError::fail(format!("{context}: cannot save: {e}")))?;
        let mut loaded = persisted::load(&path, &self.graph)
            .map_err(|e| TestCaseError::fail(format!("{context}: cannot load: {e}")))?;
        loaded.check_invariants();
        prop_assert_eq!(loaded.task_count(), self.pie.task_count(), "{}: loaded tasks", context);
        let loaded_roots: BTreeSet<usize> = loaded.roots().map(|t| t.id).collect();
        prop_assert_eq!(&loaded_roots, roots, "{}: loaded roots", context);
        let mut session = loaded.new_session();
        if bottom_up {
            session.update_affected_by(&self.changed);
        }
        let results: Vec<Result<String, String>> = roots
            .iter()
            .map(|r| catch(|| session.require(&self.task(*r))))
            .collect();
        drop(session);
        let executed = started(&loaded.tracker().0);
        prop_assert!(executed.is_empty(), "{context}: the loaded store executed {executed:?}");
        for (root, result) in roots.iter().zip(&results) {
            prop_assert_eq!(
                result.as_ref().ok(),
                self.model.outputs[*root].as_ref(),
                "{}: loaded store's {}",
                context,
                name(&self.graph, *root)
            );
        }
        Ok(())
    }
}

/// The files in `dir` with their contents.
fn listing(dir: &Path) -> HashMap<PathBuf, Vec<u8>> {
    fs::read_dir(dir)
        .expect("cannot list an oracle folder")
        .map(|entry| {
            let path = entry.expect("cannot list an oracle folder").path();
            let contents = fs::read(&path).expect("cannot read an oracle file");
            (path, contents)
        })
        .collect()
}

/// The one principled way in which a bottom-up build executes more than a top-down one.
///
/// A bottom-up build executes a scheduled task `x` once it is *needed*: reachable from a root through tasks that
/// are not scheduled themselves. A dependent `d` of `x` that is not scheduled yet may become scheduled later in the
/// same build, when a task ordered between `x` and `d` changes its output; if `d` then executes and no longer
/// requires `x`, `x` executed for nothing. A top-down build checks `d`'s dependencies in order, finds the changed
/// output first, executes `d`, and never gets to `x`. (Scheduling `x` only once no task below `d` can still change
/// would need to know `d`'s future requirements.)
///
/// So every task that executed bottom-up only must be one the round left dead in both `Pie`s, that was live before
/// the round, and that executed during `update_affected_by`, not in a `require` after it; and some task that
/// required it before the round executed again in both `Pie`s and does not require it any more. Returns the tasks
/// that executed bottom-up only.
fn bottom_up_executed_more(
    [top_down, bottom_up]: &[Side; 2],
    outcomes: (&Outcome, &Outcome),
    before: &Model,
    live_before: &[usize],
    roots: &BTreeSet<usize>,
    bottom_up_round: bool,
    context: &str,
) -> Result<Vec<usize>, TestCaseError> {
    let graph = &bottom_up.graph;
    let (mut top_down_executed, mut bottom_up_executed) =
        (started(&outcomes.0.executions), started(&outcomes.1.executions));
    top_down_executed.sort_unstable();
    bottom_up_executed.sort_unstable();
    let names = |ids: &[usize]| ids.iter().map(|i| name(graph, *i)).collect::<Vec<_>>();
    let extra: Vec<usize> = bottom_up_executed
        .iter()
        .filter(|i| top_down_executed.binary_search(i).is_err())
        .copied()
        .collect();
    let missing: Vec<usize> = top_down_executed
        .iter()
        .filter(|i| bottom_up_executed.binary_search(i).is_err())
        .copied()
        .collect();
    let mismatch = || {
        format!(
            "{context}: top-down executed {:?}, bottom-up {:?}",
            names(&top_down_executed),
            names(&bottom_up_executed)
        )
    };
    prop_assert!(missing.is_empty(), "{}", mismatch());
    prop_assert!(bottom_up_round || extra.is_empty(), "{}", mismatch());
    if extra.is_empty() {
        return Ok(extra);
    }
    let during_update = {
        let mut builds = 0;
        let mut during = HashSet::new();
        for execution in &outcomes.1.executions {
            match execution {
                Execution::Build => builds += 1,
                Execution::Start(i) if builds == 1 => {
                    during.insert(*i);
                }
                _ => {}
            }
        }
        during
    };
    let live_after_top_down: HashSet<usize> = top_down.model.reachable(roots).into_iter().collect();
    let live_after_bottom_up: HashSet<usize> = bottom_up.model.reachable(roots).into_iter().collect();
    for x in &extra {
        let dropped_by = before.dependents(*x).into_iter().find(|d| {
            top_down_executed.binary_search(d).is_ok()
                && bottom_up_executed.binary_search(d).is_ok()
                && !top_down.model.dependents(*x).contains(d)
                && !bottom_up.model.dependents(*x).contains(d)
        });
        prop_assert!(
            during_update.contains(x)
                && live_before.contains(x)
                && !live_after_top_down.contains(x)
                && !live_after_bottom_up.contains(x)
                && dropped_by.is_some(),
            "{}",
            mismatch()
        );
    }
    Ok(extra)
}

/// The state of a case between rounds: both `Pie`s and what they should agree on.
struct Oracle {
    sides: [Side; 2],
    /// The roots, as both `Pie`s should have them.
    roots: BTreeSet<usize>,
    /// The version of the build script whose tasks the rounds require.
    version: usize,
    /// Whether both `Pie`s have had the same history: same executions, and no panic.
    lockstep: bool,
    /// Whether the last session of the bottom-up `Pie` left every live task consistent (for the statistics).
    settled: bool,
}

/// The names of the files at `paths`.
fn file_names<'p>(paths: impl IntoIterator<Item = &'p PathBuf>) -> Vec<String> {
    paths
        .into_iter()
        .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect()
}

impl Oracle {
    fn names(&self, ids: impl IntoIterator<Item = usize>) -> Vec<String> {
        ids.into_iter().map(|i| name(&self.sides[0].graph, i)).collect()
    }

    /// Applies a step between rounds to both `Pie`s and checks it.
    fn step(&mut self, step: &Step, context: &str) -> TestCaseResult {
        match step {
            Step::Unobserve(index) => {
                if let Some(root) = self.roots.iter().nth(index.index(self.roots.len().max(1))).copied() {
                    for side in &mut self.sides {
                        let task = side.task(root);
                        side.pie.unobserve(&task);
                    }
                    self.roots.remove(&root);
                    trace(format!("step: unobserve {:?}", self.names([root])));
                }
            }
            Step::Retain(mask) => {
                let keep: BTreeSet<usize> = self
                    .roots
                    .iter()
                    .enumerate()
                    .filter(|(position, _)| mask & (1 << (position % 8)) != 0)
                    .map(|(_, r)| *r)
                    .collect();
                for side in &mut self.sides {
                    side.pie.retain_roots(|t| keep.contains(&t.id));
                }
                self.roots = keep;
                trace(format!("step: retain {:?}", self.names(self.roots.iter().copied())));
            }
            Step::NewVersion(retain) => {
                self.version = (self.version + 1).min(VERSIONS - 1);
                let version = self.version;
                trace(format!(
                    "step: version {version}{}",
                    if *retain { ", retain its roots" } else { "" }
                ));
                if *retain {
                    let graph = self.sides[0].graph.clone();
                    self.roots.retain(|r| graph.version(*r) == version);
                    for side in &mut self.sides {
                        side.pie.retain_roots(|t| t.graph.version(t.id) == version);
                    }
                }
            }
            Step::Collect(delete) => {
                let mut garbage = Vec::new();
                for (index, side) in self.sides.iter_mut().enumerate() {
                    let context = format!("{context}, {}", side.name);
                    let g = side.collect(&self.roots, *delete, self.version > 0, &context)?;
                    if g.removed_tasks > 0 {
                        stat("collection removed tasks");
                    }
                    if !g.deleted_files.is_empty() {
                        stat("collection deleted files");
                    }
                    trace(format!(
                        "step: {}: collect_garbage({delete}): removed {}, deleted {:?}",
                        side.name,
                        g.removed_tasks,
                        file_names(&g.deleted_files)
                    ));
                    #[cfg(feature = "serde")]
                    if side.consistent {
                        side.check_saved_store(&self.roots, index == 1, &context)?;
                        stat("saved and loaded store built");
                    }
                    let _ = index; // used only with the `serde` feature
                    garbage.push((g.removed_tasks, file_names(&g.deleted_files)));
                }
                if self.lockstep {
                    prop_assert_eq!(&garbage[0], &garbage[1], "{}: what both Pies collected", context);
                }
            }
        }
        for side in &self.sides {
            prop_assert_eq!(
                &side.roots(),
                &self.roots,
                "{}: roots of the {} Pie",
                context,
                side.name
            );
        }
        Ok(())
    }

    /// Edits files and builds in both `Pie`s, then checks them; `false` when a refusal ends the case.
    fn round(&mut self, round_index: usize, round: &Round) -> Result<bool, TestCaseError> {
        for edit in &round.edits {
            for side in &mut self.sides {
                if let Some(path) = apply(&side.graph, edit) {
                    side.changed.push(path);
                }
                side.consistent = false;
            }
        }

        let n = self.sides[0].graph.tasks.len();
        let round_roots: Vec<usize> = round.roots.iter().map(|r| self.version * n + r.index(n)).collect();
        // In a bottom-up round, the top-down `Pie` makes every root consistent as well.
        let mut build_roots = round_roots.clone();
        if round.bottom_up {
            build_roots.extend(self.roots.iter().filter(|r| !round_roots.contains(r)));
        }
        let roots_before = self.roots.clone();
        self.roots.extend(round_roots.iter().copied());
        let live_roots: Vec<usize> = build_roots
            .iter()
            .chain(self.roots.iter().filter(|r| !build_roots.contains(r)))
            .copied()
            .collect();
        let kind = if round.bottom_up { "bottom-up" } else { "top-down" };
        trace(format!("round {round_index} ({kind})"));
        let context = format!("round {round_index} ({kind}), roots {:?}", self.names(round_roots));
        if round.bottom_up {
            stat(if self.settled {
                "bottom-up round on a settled store"
            } else {
                "bottom-up round on an unsettled store"
            });
        }

        let before = Model {
            records: self.sides[1].model.records.clone(),
            partial: self.sides[1].model.partial.clone(),
            ..Model::default()
        };
        let live_before = self.sides[1].model.reachable(&roots_before);
        let mut outcomes = Vec::new();
        let mut refused = false;
        for (index, side) in self.sides.iter_mut().enumerate() {
            // Provided files changed by the edits, judged before the build rewrites them.
            let provided_changed: Vec<Option<String>> =
                (0..side.graph.ids()).map(|i| side.model.provided_changed(i)).collect();
            let outcome = side.build(&build_roots, index == 1 && round.bottom_up)?;
            let context = format!("{context}, {}", side.name);
            let Some(failed) = side.check_round(&build_roots, &outcome, &provided_changed, &live_roots, &context)?
            else {
                refused = true;
                continue;
            };
            side.consistent = failed.is_empty()
                && outcome.update_panic.is_none()
                && self.roots.iter().all(|r| build_roots.contains(r));
            prop_assert_eq!(&side.roots(), &self.roots, "{}: roots", context);
            outcomes.push(outcome);
        }
        if refused {
            trace("a refusal ends the case".into());
            stat("refusal (ends the case)");
            return Ok(false);
        }
        self.settled = self.sides[1].consistent;

        let bottom_up = &outcomes[1];
        if round.bottom_up && bottom_up.update_panic.is_none() && bottom_up.results.iter().all(Result::is_ok) {
            // The requires after `update_affected_by` execute only tasks that were not live after it: new tasks,
            // tasks dead before the session, and tasks that the update dropped before they were needed.
            let mut phase = 0;
            let (mut during_update, mut in_requires) = (Vec::new(), Vec::new());
            for execution in &bottom_up.executions {
                match execution {
                    Execution::Build => phase += 1,
                    Execution::Start(i) if phase == 1 => during_update.push(*i),
                    Execution::Start(i) => in_requires.push(*i),
                    _ => {}
                }
            }
            let mut after_update = Model {
                records: before.records.clone(),
                partial: before.partial.clone(),
                ..Model::default()
            };
            for i in during_update {
                after_update.records[i] = self.sides[1].model.records[i].clone();
                after_update.partial[i] = self.sides[1].model.partial[i].clone();
            }
            let live_after_update = after_update.reachable(&roots_before);
            for i in in_requires {
                prop_assert!(
                    !live_after_update.contains(&i),
                    "{}: {:?} was live after update_affected_by, yet executed in a require after it",
                    context,
                    self.names([i])
                );
            }
        }

        let panicked = outcomes
            .iter()
            .any(|o| o.update_panic.is_some() || o.results.iter().any(Result::is_err));
        if self.lockstep && !panicked {
            let extra = bottom_up_executed_more(
                &self.sides,
                (&outcomes[0], &outcomes[1]),
                &before,
                &live_before,
                &self.roots,
                round.bottom_up,
                &context,
            )?;
            // A task executed by one `Pie` only has another history there (its record, its written file).
            self.lockstep = extra.is_empty();
            if !extra.is_empty() {
                stat("bottom-up executed more (the principled exception)");
            }
            stat(if round.bottom_up {
                "bottom-up round compared in lockstep"
            } else {
                "top-down round compared in lockstep"
            });
        } else {
            self.lockstep = false;
        }
        Ok(true)
    }
}

fn check(case: &Case, panics: bool) -> TestCaseResult {
    let tasks = specs(case);
    let mut oracle = Oracle {
        sides: [
            Side::new("top-down", case, &tasks, panics),
            Side::new("bottom-up", case, &tasks, panics),
        ],
        roots: BTreeSet::new(),
        version: 0,
        lockstep: true,
        settled: true,
    };
    oracle.sides[1].pie.set_threads(case.threads);
    for (round_index, round) in case.rounds.iter().enumerate() {
        for (step_index, step) in round.steps.iter().enumerate() {
            oracle.step(step, &format!("round {round_index}, step {step_index} ({step:?})"))?;
        }
        if !oracle.round(round_index, round)? {
            break;
        }
    }
    Ok(())
}

/// A readable form of `case`, for failure messages: the tasks with their operations, then each round.
fn describe(case: &Case) -> String {
    let tasks = specs(case);
    let n = tasks.len();
    let mut lines = vec![format!("inputs: {:?}", case.inputs)];
    for (i, spec) in tasks.iter().enumerate() {
        lines.push(format!(
            "T{i}: {:?}{}{}{}",
            spec.ops,
            spec.writes.map(|s| format!(", writes ({s:?})")).unwrap_or_default(),
            if spec.read_back && spec.writes.is_some() {
                ", reads back"
            } else {
                ""
            },
            if spec.digest { ", digest" } else { "" },
        ));
    }
    for (r, round) in case.rounds.iter().enumerate() {
        let edits: Vec<String> = round
            .edits
            .iter()
            .map(|e| match e {
                Edit::Flag(j, on) => format!("flag_{} {}", j.index(n), if *on { "on" } else { "off" }),
                Edit::Write(k, c) => format!("in_{} = {c:?}", k.index(case.inputs.len())),
                Edit::Rewrite(k) => format!("rewrite in_{}", k.index(case.inputs.len())),
                Edit::Delete(k) => format!("delete in_{}", k.index(case.inputs.len())),
                Edit::Tamper(j, c) => format!("tamper out_{} = {c:?}", j.index(n)),
            })
            .collect();
        let roots: Vec<usize> = round.roots.iter().map(|i| i.index(n)).collect();
        lines.push(format!(
            "round {r}: steps {:?}; edits {edits:?}; {} roots (indices) {roots:?}",
            round.steps,
            if round.bottom_up { "bottom-up" } else { "top-down" }
        ));
    }
    lines.join("\n")
}

/// Checks `case`, adding its readable form to a failure.
fn check_described(case: &Case, panics: bool) -> TestCaseResult {
    TRACE.with(|t| t.borrow_mut().clear());
    stat("case");
    if std::env::var_os("PIE_ORACLE_STATS").is_some() {
        STATS.with(|s| {
            eprintln!(
                "oracle stats ({}): {:?}",
                if panics { "panics" } else { "no panics" },
                s.borrow()
            )
        });
    }
    check(case, panics).map_err(|e| match e {
        TestCaseError::Fail(reason) => {
            let trace = TRACE.with(|t| t.borrow().join("\n"));
            TestCaseError::fail(format!("{reason}\n{}\ntrace:\n{trace}", describe(case)))
        }
        other => other,
    })
}

fn cases() -> u32 {
    std::env::var("PIE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        // Failures are kept as named regression tests below, not in a file next to this one.
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn incremental_builds_agree_with_clean_builds(case in case(false)) {
        check_described(&case, false)?;
    }

    #[test]
    fn incremental_builds_recover_from_task_panics(case in case(true)) {
        check_described(&case, true)?;
    }
}

/// Oracle seed 2222 (one thread): round 1's change schedules `T1` and `T2`, readers of `T0`'s file. Walking up from
/// `T0` to prove it trusted went through `T1 → T3 → T5` and marked that path live. `T2`'s new output then scheduled
/// `T5`, the only task that needs `T3` (and so `T1`), and which no longer does when it executes. The walk that
/// decides whether `T1` is needed stopped at `T1`, known live, and `T1` executed for nothing: it is reachable only
/// through a scheduled task, so it must wait for `T5` (a clean build never executes it).
#[test]
fn a_task_reachable_only_through_a_scheduled_task_waits_for_it() {
    let case = Case {
        inputs: vec![None, Some("".to_string())],
        tasks: vec![
            RawTask {
                ops: vec![
                    RawOp {
                        kind: 0,
                        task: Pick(0),
                        input: Pick(9469086373326656965),
                        hash: false,
                        equals: false,
                        via_file: false,
                    },
                    RawOp {
                        kind: 0,
                        task: Pick(0),
                        input: Pick(16318443361456814282),
                        hash: false,
                        equals: false,
                        via_file: false,
                    },
                ],
                writes: Some(false),
                read_back: false,
                digest: false,
            },
            RawTask {
                ops: vec![RawOp {
                    kind: 2,
                    task: Pick(0),
                    input: Pick(0),
                    hash: false,
                    equals: false,
                    via_file: true,
                }],
                writes: Some(false),
                read_back: false,
                digest: false,
            },
            RawTask {
                ops: vec![RawOp {
                    kind: 2,
                    task: Pick(5336150370897492326),
                    input: Pick(0),
                    hash: false,
                    equals: false,
                    via_file: true,
                }],
                writes: None,
                read_back: false,
                digest: false,
            },
            RawTask {
                ops: vec![RawOp {
                    kind: 2,
                    task: Pick(11631521773261973857),
                    input: Pick(0),
                    hash: false,
                    equals: false,
                    via_file: false,
                }],
                writes: None,
                read_back: false,
                digest: false,
            },
            RawTask {
                ops: vec![],
                writes: None,
                read_back: false,
                digest: false,
            },
            RawTask {
                ops: vec![RawOp {
                    kind: 6,
                    task: Pick(7438250353539688608),
                    input: Pick(752382502607464857),
                    hash: false,
                    equals: false,
                    via_file: false,
                }],
                writes: None,
                read_back: false,
                digest: false,
            },
        ],
        rounds: vec![
            Round {
                steps: vec![],
                edits: vec![],
                roots: vec![Pick(406585567011719657)],
                bottom_up: false,
            },
            Round {
                steps: vec![],
                edits: vec![Edit::Delete(Pick(3264053845288537477))],
                roots: vec![Pick(345385878151847686)],
                bottom_up: true,
            },
        ],
        threads: 1,
    };
    if let Err(e) = check_described(&case, true) {
        panic!("{e}");
    }
}

/// Oracle seed 6262 failed once: a refusal named `/tmp/.tmpMBUGtq/out_1`, and the check that no refusal reports an
/// internal bug matched the temporary directory's name. Only the engine's `BUG:` marker counts.
#[test]
fn a_temporary_directory_named_like_a_bug_is_not_an_internal_bug() {
    let refusal = "Overlapping provided file: file '/tmp/.tmpMBUGtq/out_1' is provided by task T1 and by task T1@v1";
    assert!(!reports_internal_bug(refusal));
    assert!(reports_internal_bug("BUG: task id without a task node"));
}
