//! The correctness oracle: random task graphs, random file edits, and after every edit a comparison of the
//! incremental build with a clean one.
//!
//! A graph has a few input files and a few tasks. Task `i` runs a list of operations: read an input file, require
//! a task `j < i` (so the graph is acyclic), read the file that a task `j < i` writes *after requiring it* (so the
//! build is sound), or do one of those only when an input file exists or has an odd length (so dependencies change
//! with the inputs). A task may write its result to its own output file, read it back, and return either the
//! result or a lossy digest of it (so that early cutoff happens). Files are read with the `Modified`, `Hash` or
//! (for existence conditions) `Exists` stamper; tasks are required with `Equals` or `Inconsequential`.
//!
//! Each round edits files (new contents, same-contents rewrites, deletions, and tampering with output files) and
//! then requires a random list of tasks in one session. After each round:
//! (a) every output and every written file of the tasks the build made consistent equals a clean build's
//!     ([`NonIncrementalContext`] in a fresh copy of the inputs);
//! (b) every task that executed was new or had a dependency, recorded at its previous execution, that is now
//!     inconsistent (a file whose stamp changed, an `Equals` task whose output changed); and conversely every task
//!     made consistent without executing has only consistent dependencies;
//! (c) an immediate second build executes nothing; and (d) the store's invariants hold.
//!
//! The second property adds panics: every task first requires its flag file (`Exists`) and, while the flag exists,
//! panics after doing all its work (its output file is already written). Edits create and delete flags. A panic
//! that escapes a required task is caught and the session goes on with the next task. Then the roots that panicked
//! must panic again in the next session (no stale output), and everything above holds for the roots that did not.
//!
//! The model in this file knows the graph and looks at the file system with the public stampers; it never looks
//! inside the store. Cases: `PIE_PROPTEST_CASES` (default 128).

mod common;

use common::{catch, TASK_PANIC_MESSAGE};

use std::collections::HashSet;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dev_util::write_until_modified;
use pie::context::non_incremental::NonIncrementalContext;
use pie::stamp::{FileStamp, FileStamper, OutputStamper};
use pie::tracker::Tracker;
use pie::{Context, Pie, Task};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestCaseResult};

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

#[derive(Debug)]
struct Graph {
    root: PathBuf,
    inputs: usize,
    tasks: Vec<Spec>,
    /// Each task requires its flag file (with `Exists`) first, and panics at its very end while the flag exists.
    panics: bool,
}

impl Graph {
    fn input(&self, k: usize) -> PathBuf {
        self.root.join(format!("in_{k}"))
    }
    fn output(&self, i: usize) -> PathBuf {
        self.root.join(format!("out_{i}"))
    }
    fn flag(&self, i: usize) -> PathBuf {
        self.root.join(format!("flag_{i}"))
    }
}

/// Task `index` of a graph. Tasks of one graph compare by index; tasks of different graphs never compare equal.
#[derive(Clone)]
struct OracleTask {
    graph: Arc<Graph>,
    index: usize,
}

impl PartialEq for OracleTask {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.graph, &other.graph) && self.index == other.index
    }
}

impl Eq for OracleTask {}

impl Hash for OracleTask {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state);
    }
}

impl std::fmt::Debug for OracleTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "T{}", self.index)
    }
}

/// What a task's operations run against: a real context, or the model's dry run.
trait Env {
    fn read(&mut self, path: &Path, stamper: FileStamper) -> Option<String>;
    fn require(&mut self, index: usize, stamper: OutputStamper) -> String;
    fn write(&mut self, path: &Path, stamper: FileStamper, text: &str);
    /// Task `index` found its panic flag and has done everything else.
    fn fail(&mut self, index: usize);
}

fn interpret(graph: &Graph, index: usize, env: &mut impl Env) -> String {
    let spec = &graph.tasks[index];
    let flagged = graph.panics && env.read(&graph.flag(index), FileStamper::Exists).is_some();
    let mut parts = Vec::new();
    for op in &spec.ops {
        run(graph, op, env, &mut parts);
    }
    let text = format!("{index}({})", parts.join(","));
    if let Some(stamper) = spec.writes {
        let path = graph.output(index);
        env.write(&path, stamper, &text);
        if spec.read_back {
            let back = env.read(&path, stamper);
            assert_eq!(back.as_deref(), Some(text.as_str()), "T{index} read back what it wrote");
        }
    }
    if flagged {
        env.fail(index);
    }
    if spec.digest {
        format!("{index}:{}", text.len() % 3)
    } else {
        text
    }
}

fn run(graph: &Graph, op: &Op, env: &mut impl Env, parts: &mut Vec<String>) {
    match op {
        Op::ReadInput(k, stamper) => parts.push(env.read(&graph.input(*k), *stamper).unwrap_or_else(|| "-".into())),
        Op::Require(j, stamper) => {
            let output = env.require(*j, *stamper);
            if *stamper == OutputStamper::Equals {
                parts.push(output);
            }
        }
        Op::ReadOutput(j, task_stamper, file_stamper) => {
            let output = env.require(*j, *task_stamper);
            if *task_stamper == OutputStamper::Equals {
                parts.push(output);
            }
            parts.push(env.read(&graph.output(*j), *file_stamper).unwrap_or_else(|| "-".into()));
        }
        Op::When(k, stamper, then) => {
            let contents = env.read(&graph.input(*k), *stamper);
            let holds = match stamper {
                FileStamper::Exists => contents.is_some(),
                _ => contents.is_some_and(|c| c.len() % 2 == 1),
            };
            parts.push(if holds { "y" } else { "n" }.to_string());
            if holds {
                run(graph, then, env, parts);
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
    fn require(&mut self, index: usize, stamper: OutputStamper) -> String {
        let task = OracleTask {
            graph: self.graph.clone(),
            index,
        };
        self.context.require_task_with_stamper(&task, stamper)
    }
    fn write(&mut self, path: &Path, stamper: FileStamper, text: &str) {
        write_until_modified(path, text).expect("cannot write an oracle output");
        self.context
            .provide_file_with_stamper(path, stamper)
            .expect("cannot stamp an oracle output");
    }
    fn fail(&mut self, _index: usize) {
        panic!("{TASK_PANIC_MESSAGE}");
    }
}

impl Task for OracleTask {
    type Output = String;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
        let graph = self.graph.clone();
        interpret(&graph, self.index, &mut ContextEnv { context, graph: &graph })
    }
}

// The model: what each task depended on at its last execution, with the stamps and output versions it saw.

#[derive(Clone, Debug)]
struct Record {
    /// Files with the stamp seen, and whether the task provided (rather than required) the file.
    files: Vec<(PathBuf, FileStamper, FileStamp, bool)>,
    tasks: Vec<(usize, OutputStamper, u64)>,
}

#[derive(Default)]
struct Model {
    records: Vec<Option<Record>>,
    outputs: Vec<Option<String>>,
    /// Changes exactly when the output changes, like a task dependency's notion of "changed".
    versions: Vec<u64>,
    next_version: u64,
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
    fn require(&mut self, index: usize, stamper: OutputStamper) -> String {
        self.tasks.push((index, stamper));
        self.model.outputs[index]
            .clone()
            .expect("a required task has an output")
    }
    fn write(&mut self, path: &Path, stamper: FileStamper, _text: &str) {
        self.files.push((path.to_path_buf(), stamper, true));
    }
    fn fail(&mut self, index: usize) {
        panic!("model: T{index} finished although its panic flag exists");
    }
}

fn stamp(path: &Path, stamper: FileStamper) -> FileStamp {
    stamper.stamp(path).expect("oracle files can be stamped")
}

impl Model {
    fn new(tasks: usize) -> Self {
        Self {
            records: vec![None; tasks],
            outputs: vec![None; tasks],
            versions: vec![0; tasks],
            next_version: 1,
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
            if *stamper == OutputStamper::Equals && self.versions[*j] != *version {
                return Some(format!("output of T{j} changed"));
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

    /// The tasks reachable from `roots` through recorded task dependencies.
    fn reachable(&self, roots: &[usize]) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut stack = roots.to_vec();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                if let Some(record) = &self.records[i] {
                    stack.extend(record.tasks.iter().map(|(j, _, _)| *j));
                }
            }
        }
        let mut reached: Vec<usize> = seen.into_iter().collect();
        reached.sort_unstable();
        reached
    }
}

/// An execution starting, or finishing with an output.
#[derive(Clone, Debug)]
enum Execution {
    Start(usize),
    End(usize, String),
}

/// Records executions, across the builds of a session.
#[derive(Default)]
struct Executions(Vec<Execution>);

impl Tracker<OracleTask> for Executions {
    fn execute_start(&mut self, task: &OracleTask) {
        self.0.push(Execution::Start(task.index));
    }
    fn execute_end(&mut self, task: &OracleTask, output: &String) {
        self.0.push(Execution::End(task.index, output.clone()));
    }
}

// Random cases.

#[derive(Clone, Debug)]
struct RawOp {
    kind: u8,
    task: Index,
    input: Index,
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
    Flag(Index, bool),
    Write(Index, String),
    Rewrite(Index),
    Delete(Index),
    /// Overwrite (or with `None`, delete) the output file of a task that writes one.
    Tamper(Index, Option<String>),
}

#[derive(Clone, Debug)]
struct Round {
    edits: Vec<Edit>,
    roots: Vec<Index>,
}

#[derive(Clone, Debug)]
struct Case {
    inputs: Vec<Option<String>>,
    tasks: Vec<RawTask>,
    rounds: Vec<Round>,
}

fn contents() -> impl Strategy<Value = String> {
    "[ab]{0,3}"
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    (
        0u8..6,
        any::<Index>(),
        any::<Index>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kind, task, input, hash, equals, via_file)| RawOp {
            kind,
            task,
            input,
            hash,
            equals,
            via_file,
        })
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
        3 => (any::<Index>(), contents()).prop_map(|(k, c)| Edit::Write(k, c)),
        2 => any::<Index>().prop_map(Edit::Rewrite),
        1 => any::<Index>().prop_map(Edit::Delete),
        1 => (any::<Index>(), option::of(contents())).prop_map(|(j, c)| Edit::Tamper(j, c)),
        if panics { 3 } else { 0 } => (any::<Index>(), any::<bool>()).prop_map(|(j, on)| Edit::Flag(j, on)),
    ]
}

fn case(panics: bool) -> impl Strategy<Value = Case> {
    let round = (vec(edit(panics), 0..4), vec(any::<Index>(), 1..4)).prop_map(|(edits, roots)| Round { edits, roots });
    (
        vec(option::weighted(0.8, contents()), 1..4),
        vec(raw_task(), 1..8),
        vec(round, 1..7),
    )
        .prop_map(|(inputs, tasks, rounds)| Case { inputs, tasks, rounds })
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
        _ => Op::When(raw.input.index(inputs), stamper(!raw.hash), Box::new(on_task(true))),
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

fn apply(graph: &Graph, edit: &Edit) {
    match edit {
        Edit::Flag(j, on) => set_file(&graph.flag(j.index(graph.tasks.len())), on.then_some("")),
        Edit::Write(k, c) => set_file(&graph.input(k.index(graph.inputs)), Some(c)),
        Edit::Rewrite(k) => {
            let path = graph.input(k.index(graph.inputs));
            if let Ok(same) = fs::read_to_string(&path) {
                set_file(&path, Some(&same));
            }
        }
        Edit::Delete(k) => set_file(&graph.input(k.index(graph.inputs)), None),
        Edit::Tamper(j, c) => {
            let j = j.index(graph.tasks.len());
            if graph.tasks[j].writes.is_some() {
                set_file(&graph.output(j), c.as_deref());
            }
        }
    }
}

/// A clean build of `tasks` from the current files, in a fresh folder: their outputs and written files.
fn clean_build(graph: &Graph, tasks: &[usize]) -> Result<(Vec<String>, Vec<Option<String>>), TestCaseError> {
    let dir = dev_util::create_temp_dir().expect("cannot create a temporary directory");
    let clean = Arc::new(Graph {
        root: dir.path().to_path_buf(),
        inputs: graph.inputs,
        tasks: graph.tasks.clone(),
        panics: graph.panics,
    });
    let copies = (0..graph.inputs)
        .map(|k| (graph.input(k), clean.input(k)))
        .chain((0..graph.tasks.len()).map(|i| (graph.flag(i), clean.flag(i))));
    for (from, to) in copies {
        if let Ok(contents) = fs::read(from) {
            fs::write(to, contents).expect("cannot copy an input");
        }
    }
    let mut outputs = Vec::new();
    for i in tasks {
        let task = OracleTask {
            graph: clean.clone(),
            index: *i,
        };
        match catch(|| NonIncrementalContext.require(&task)) {
            Ok(output) => outputs.push(output),
            Err(message) => {
                return Err(TestCaseError::fail(format!(
                    "T{i} was made consistent, but its clean build panics: {message}"
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
        let mut last: Vec<Option<Option<&str>>> = vec![None; graph.tasks.len()];
        for execution in executions {
            match execution {
                Execution::Start(i) => last[*i] = Some(None),
                Execution::End(i, output) => last[*i] = Some(Some(output)),
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
            for (i, _) in last.iter().enumerate().filter(|(_, l)| l.is_some()) {
                prop_assert!(
                    provided_changed[i].is_some() || self.inconsistency(i, false).is_some(),
                    "{context}: T{i} executed, but nothing it depended on changed"
                );
            }
        }
        for (i, last) in last.iter().enumerate() {
            match last {
                Some(Some(output)) => {
                    let dry = self.record(graph, i);
                    prop_assert_eq!(
                        dry.as_str(),
                        *output,
                        "{}: T{} executed with an output that its inputs do not give",
                        context,
                        i
                    );
                }
                Some(None) => self.records[i] = None,
                None => {}
            }
        }
        Ok(())
    }
}

/// Requires each of `roots` in one session: its output, or the message of the panic that escaped.
fn build(
    pie: &mut Pie<OracleTask, String, Executions>,
    graph: &Arc<Graph>,
    roots: &[usize],
) -> Vec<Result<String, String>> {
    pie.tracker_mut().0.clear();
    let mut session = pie.new_session();
    roots
        .iter()
        .map(|r| {
            let task = OracleTask {
                graph: graph.clone(),
                index: *r,
            };
            catch(|| session.require(&task))
        })
        .collect()
}

fn check(case: &Case, panics: bool) -> TestCaseResult {
    let dir = dev_util::create_temp_dir().expect("cannot create a temporary directory");
    let graph = Arc::new(Graph {
        root: dir.path().to_path_buf(),
        inputs: case.inputs.len(),
        tasks: specs(case),
        panics,
    });
    for (k, contents) in case.inputs.iter().enumerate() {
        set_file(&graph.input(k), contents.as_deref());
    }
    let n = graph.tasks.len();
    let mut pie = Pie::with_tracker(Executions::default());
    let mut model = Model::new(n);

    for (round_index, round) in case.rounds.iter().enumerate() {
        for edit in &round.edits {
            apply(&graph, edit);
        }
        let roots: Vec<usize> = round.roots.iter().map(|r| r.index(n)).collect();
        let context = format!("round {round_index}, roots {roots:?}");

        // Provided files changed by the edits, judged before the build rewrites them.
        let provided_changed: Vec<Option<String>> = (0..n).map(|i| model.provided_changed(i)).collect();
        let results = build(&mut pie, &graph, &roots);
        let executions = std::mem::take(&mut pie.tracker_mut().0);
        let mut failed = Vec::new();
        let mut finished = Vec::new();
        for (root, result) in roots.iter().zip(&results) {
            match result {
                Ok(output) => finished.push((*root, output.clone())),
                Err(message) => {
                    prop_assert_eq!(message.as_str(), TASK_PANIC_MESSAGE, "{}: T{} panicked", context, root);
                    failed.push(*root);
                }
            }
        }
        if failed.is_empty() {
            // Without a panic to recover from, nothing runs twice in a session.
            let mut started = HashSet::new();
            for execution in &executions {
                if let Execution::Start(i) = execution {
                    prop_assert!(started.insert(*i), "{context}: T{i} executed twice in one session");
                }
            }
        }
        model.observe(&graph, &executions, Some(&provided_changed), &context)?;

        let finished_roots: Vec<usize> = finished.iter().map(|(r, _)| *r).collect();
        let reached = model.reachable(&finished_roots);
        // (b), lower bound: a task made consistent without executing has only consistent dependencies.
        for i in &reached {
            if let Some(reason) = model.inconsistency(*i, true) {
                return Err(TestCaseError::fail(format!(
                    "{context}: T{i} is inconsistent ({reason}) after the build"
                )));
            }
        }

        // (a) outputs and written files equal a clean build's.
        let (clean_outputs, clean_files) = clean_build(&graph, &reached)?;
        for (position, i) in reached.iter().enumerate() {
            prop_assert_eq!(
                model.outputs[*i].as_ref(),
                Some(&clean_outputs[position]),
                "{}: output of T{}",
                context,
                i
            );
            if graph.tasks[*i].writes.is_some() {
                let file = fs::read_to_string(graph.output(*i)).ok();
                prop_assert_eq!(&file, &clean_files[position], "{}: file written by T{}", context, i);
            }
        }
        for (root, output) in &finished {
            prop_assert_eq!(
                model.outputs[*root].as_ref(),
                Some(output),
                "{}: T{} returned",
                context,
                root
            );
        }

        // (c) an immediate second build executes nothing and returns the same outputs; a root that panicked
        // panics again rather than serving an old output.
        let again = build(&mut pie, &graph, &finished_roots);
        for ((root, output), result) in finished.iter().zip(&again) {
            prop_assert_eq!(result.as_ref(), Ok(output), "{}: second build of T{}", context, root);
        }
        let executed: Vec<&Execution> = pie.tracker().0.iter().collect();
        prop_assert!(executed.is_empty(), "{context}: the second build executed {executed:?}");
        let again = build(&mut pie, &graph, &failed);
        for (root, result) in failed.iter().zip(&again) {
            prop_assert_eq!(
                result.as_ref().map_err(String::as_str),
                Err(TASK_PANIC_MESSAGE),
                "{}: second build of T{}, which panicked",
                context,
                root
            );
        }
        let executions = std::mem::take(&mut pie.tracker_mut().0);
        model.observe(&graph, &executions, None, &context)?;

        // (d)
        pie.check_invariants();
    }
    Ok(())
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
        check(&case, false)?;
    }

    #[test]
    fn incremental_builds_recover_from_task_panics(case in case(true)) {
        check(&case, true)?;
    }
}
