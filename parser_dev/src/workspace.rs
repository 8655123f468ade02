//! A grammar, a rule and programs, with the long-lived [`Pie`] that builds them and the store it persists to.
//!
//! Both modes go through [`Workspace::build`]: batch mode builds once, the editor once per save. Each build is one
//! pie session that requires the grammar's compile task and every program's parse task; those tasks are the
//! session's roots. Before the store is saved, the roots of earlier runs that this workspace does not name (a
//! program no longer given, another rule or grammar) are unobserved and everything only they required is removed
//! ([`Workspace::save_store`]), so the store holds what the current project needs and no more: one run with a huge
//! program does not leave its parse tree in the store forever.
//!
//! A workspace holds its store with a [`StoreFile`] from [`Workspace::open`] (which loads it) until
//! [`Workspace::close_store`] or the end of the workspace, so the whole load–build–save cycle of a batch run, and
//! the whole life of an editor, is exclusive: a second parser_dev on the same store waits, then starts from what
//! the first saved, and no run's results are lost.
//!
//! With a remote cache ([`Workspace::set_remote_cache`]), results are also restored from and uploaded to a shared
//! server; [`ExecutedTasks`] tells a restored task (whose code did not run) from an executed one, and the reports
//! count them apart.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pie::dependency::{Dependency, FileDependency, Inconsistency, TaskDependency};
use pie::remote::{HttpCache, RemoteCache};
use pie::stamp::OutputStamper;
use pie::tracker::explain::{ExplainTracker, Reason};
use pie::tracker::progress::{ProgressHandle, ProgressTracker};
use pie::tracker::trace::TraceTracker;
use pie::tracker::writing::WritingTracker;
use pie::tracker::{CompositeTracker, Tracker};
use pie::watch::{BuildCause, StopHandle, WatchConfig, Watcher};
use pie::{Pie, StoreFile};

use crate::task::{CompiledGrammar, GrammarError, Outcome, ParserTask, ProgramError};

/// Where pie's build log goes.
#[derive(Debug)]
pub enum LogTarget {
    /// Nowhere.
    Off,
    /// Standard error (batch mode's `--log`).
    Stderr,
    /// A buffer, drained with [`Workspace::take_log`] (the editor's log pane).
    Memory(Vec<u8>),
}

impl LogTarget {
    /// An empty target of the same kind.
    fn fresh(&self) -> Self {
        match self {
            LogTarget::Off => LogTarget::Off,
            LogTarget::Stderr => LogTarget::Stderr,
            LogTarget::Memory(_) => LogTarget::Memory(Vec::new()),
        }
    }
}

impl Write for LogTarget {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LogTarget::Off => Ok(buf.len()),
            LogTarget::Stderr => io::stderr().write(buf),
            LogTarget::Memory(buffer) => buffer.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LogTarget::Stderr => io::stderr().flush(),
            LogTarget::Off | LogTarget::Memory(_) => Ok(()),
        }
    }
}

/// Records which tasks executed since it was last cleared (by [`Workspace::build`], once per build), and which of
/// those were restored from the remote cache instead of running their code; and hands each program's outcome, as
/// soon as its task is up to date, to the build that asked for it.
///
/// The sets are shared with the workspace, which reads them while a session (and so the `Pie` holding this tracker)
/// is borrowed: when each program's outcome is reported, to tell whether its task executed or was restored.
#[derive(Clone, Default, Debug)]
pub struct ExecutedTasks {
    /// Every task that pie executed: ran its code, or replayed a trace from the remote cache.
    executed: Arc<Mutex<HashSet<ParserTask>>>,
    /// Those of `executed` whose code did not run: restored from the remote cache.
    restored: Arc<Mutex<HashSet<ParserTask>>>,
    reports: Arc<Mutex<Option<Sender<(ParserTask, Outcome)>>>>,
}

/// A poisoned lock is used as it is: a panic while one of these sets was locked (there is none: only inserts,
/// reads and clears happen under the lock) would leave it intact.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ExecutedTasks {
    /// Where the outcomes of programs' tasks go while a build runs (`None`: nowhere).
    fn reports(&self) -> MutexGuard<'_, Option<Sender<(ParserTask, Outcome)>>> {
        locked(&self.reports)
    }

    /// Forgets the tasks executed and restored so far.
    fn clear(&self) {
        locked(&self.executed).clear();
        locked(&self.restored).clear();
    }

    /// Whether `task` ran its code since the last clear.
    fn ran(&self, task: &ParserTask) -> bool {
        locked(&self.executed).contains(task) && !self.was_restored(task)
    }

    /// Whether `task` was restored from the remote cache since the last clear.
    fn was_restored(&self, task: &ParserTask) -> bool {
        locked(&self.restored).contains(task)
    }

    /// How many tasks ran their code, and how many were restored, since the last clear.
    fn counts(&self) -> (usize, usize) {
        let restored = locked(&self.restored).len();
        (locked(&self.executed).len() - restored, restored)
    }
}

impl Tracker<ParserTask> for ExecutedTasks {
    fn execute_start(&mut self, task: &ParserTask) {
        locked(&self.executed).insert(task.clone());
    }

    fn restored(&mut self, task: &ParserTask) {
        locked(&self.restored).insert(task.clone());
    }

    fn require_task_end(&mut self, dependency: &TaskDependency<ParserTask, Outcome>, output: &Outcome, _: bool) {
        if let (ParserTask::Parse { .. }, Some(sender)) = (dependency.task(), &*self.reports()) {
            // The build that asked may have stopped listening (it returns when its session does).
            let _ = sender.send((dependency.task().clone(), output.clone()));
        }
    }
}

/// The trackers that batch mode's `--explain` and `--profile` turn on ([`Workspace::observe`]); each is `None`
/// (and costs nothing) unless asked for. Both accumulate over the two pie builds of one [`Workspace::build`] (the
/// grammar, then the programs) and are cleared when the next starts.
#[derive(Debug, Default)]
pub struct Insights {
    /// Why each task executed.
    pub explain: Option<ExplainTracker<ParserTask, Outcome>>,
    /// Where the time went.
    pub trace: Option<TraceTracker>,
}

impl Insights {
    fn clear(&mut self) {
        if let Some(explain) = &mut self.explain {
            explain.clear();
        }
        if let Some(trace) = &mut self.trace {
            trace.clear();
        }
    }
}

/// Calls `$method` with `$args` on each tracker of an [`Insights`] that is on.
macro_rules! forward {
    ($self:ident.$method:ident($($arg:expr),*)) => {{
        if let Some(explain) = &mut $self.explain {
            explain.$method($($arg),*);
        }
        if let Some(trace) = &mut $self.trace {
            Tracker::<ParserTask>::$method(trace, $($arg),*);
        }
    }};
}

impl Tracker<ParserTask> for Insights {
    fn build_start(&mut self) {
        forward!(self.build_start())
    }
    fn build_end(&mut self) {
        forward!(self.build_end())
    }
    fn require_file_end(&mut self, dependency: &FileDependency) {
        forward!(self.require_file_end(dependency))
    }
    fn provide_file_end(&mut self, dependency: &FileDependency) {
        forward!(self.provide_file_end(dependency))
    }
    fn require_task_start(&mut self, task: &ParserTask, stamper: &OutputStamper) {
        forward!(self.require_task_start(task, stamper))
    }
    fn require_task_end(&mut self, dependency: &TaskDependency<ParserTask, Outcome>, output: &Outcome, executed: bool) {
        forward!(self.require_task_end(dependency, output, executed))
    }
    fn check_dependency_start(&mut self, dependency: &Dependency<ParserTask, Outcome>) {
        forward!(self.check_dependency_start(dependency))
    }
    fn check_dependency_end(
        &mut self,
        dependency: &Dependency<ParserTask, Outcome>,
        inconsistency: Result<Option<&Inconsistency<Outcome>>, &io::Error>,
    ) {
        forward!(self.check_dependency_end(dependency, inconsistency))
    }
    fn execute_start(&mut self, task: &ParserTask) {
        forward!(self.execute_start(task))
    }
    fn execute_end(&mut self, task: &ParserTask, output: &Outcome) {
        forward!(self.execute_end(task, output))
    }
}

/// The tracker of a workspace's `Pie`: executed tasks, the build log, the build's progress (read from another
/// thread through [`Workspace::progress`]), and the optional [`Insights`].
pub type BuildTracker = CompositeTracker<
    ExecutedTasks,
    CompositeTracker<WritingTracker<LogTarget>, CompositeTracker<ProgressTracker, Insights>>,
>;

/// The `Pie` of parser_dev.
pub type ParserPie = Pie<ParserTask, Outcome, BuildTracker>;

/// A file as the user named it and as tasks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as given, for messages.
    pub shown: String,
    /// The absolute path (not canonicalized), for tasks and for writing.
    pub path: PathBuf,
}

impl SourceFile {
    /// The file at `path`, made absolute against the working directory.
    pub fn new(path: &Path) -> Self {
        Self {
            shown: path.display().to_string(),
            // `absolute` fails only for an empty path or an unknown working directory; the path as given is then
            // the best there is, and reading it will report the problem.
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        }
    }
}

/// What to build: the command line's arguments.
#[derive(Clone, Debug)]
pub struct Config {
    /// The grammar file.
    pub grammar: PathBuf,
    /// The rule that programs are parsed with.
    pub rule: String,
    /// The program files.
    pub programs: Vec<PathBuf>,
    /// The store file; `None` for [`default_store_path`].
    pub store: Option<PathBuf>,
}

/// The default store: `.pie/parser_dev.store` in the grammar's folder.
pub fn default_store_path(grammar: &Path) -> PathBuf {
    let folder = match grammar.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    folder.join(".pie").join("parser_dev.store")
}

/// The result of one build.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// The grammar's outcome.
    pub grammar: Result<CompiledGrammar, GrammarError>,
    /// Whether the grammar was compiled in this build (rather than its cached result reused, or restored).
    pub grammar_compiled: bool,
    /// Whether the grammar's result was restored from the remote cache in this build.
    pub grammar_restored: bool,
    /// Every program's outcome, in the order given.
    pub programs: Vec<ProgramReport>,
    /// How many tasks executed (ran their code) in this build.
    pub executed: usize,
    /// How many tasks were restored from the remote cache in this build instead of executing.
    pub restored: usize,
    /// I/O errors met while checking dependencies (the affected tasks executed again), as messages.
    pub check_errors: Vec<String>,
}

/// A program's outcome in a [`BuildReport`].
#[derive(Clone, Debug)]
pub struct ProgramReport {
    /// The program file.
    pub file: SourceFile,
    /// Its parse tree, or why there is none.
    pub result: Result<String, ProgramError>,
    /// Whether its task executed in this build (rather than its cached result being reused, or its result being
    /// restored from the remote cache). The task executes also when it stops before parsing (see
    /// [`ProgramReport::has_parse`]).
    pub executed: bool,
    /// Whether its result was restored from the remote cache in this build (the task's code did not run).
    pub restored: bool,
}

impl ProgramReport {
    /// Whether the result comes from parsing the program: a parse tree or a syntax error. It does not when the
    /// grammar failed, lacks the rule, or the program could not be read.
    pub fn has_parse(&self) -> bool {
        matches!(self.result, Ok(_) | Err(ProgramError::Syntax(_)))
    }

    /// Whether the program was parsed in this build.
    pub fn parsed(&self) -> bool {
        self.executed && self.has_parse()
    }
}

impl BuildReport {
    /// True when the grammar compiled and every program parsed.
    pub fn success(&self) -> bool {
        self.grammar.is_ok() && self.programs.iter().all(|p| p.result.is_ok())
    }

    /// How many programs were parsed in this build.
    pub fn parsed_count(&self) -> usize {
        self.programs.iter().filter(|p| p.parsed()).count()
    }

    /// How many programs' tasks executed in this build without parsing them (the grammar failed or lacks the rule,
    /// or the program could not be read).
    pub fn not_parsed_count(&self) -> usize {
        self.programs.iter().filter(|p| p.executed && !p.has_parse()).count()
    }
}

/// What a build has reached, handed to the callback of [`Workspace::build_with`] as soon as it is known.
#[derive(Debug)]
pub enum Reached<'a> {
    /// The grammar's outcome; it comes first.
    Grammar(&'a Result<CompiledGrammar, GrammarError>),
    /// One program's outcome; the programs come in the order given.
    Program(&'a ProgramReport),
}

/// One build of [`Workspace::watch`].
#[derive(Debug)]
pub struct WatchedBuild<'a> {
    /// 1 for the first build, then counting the builds reported.
    pub number: u64,
    /// Why it ran.
    pub cause: &'a BuildCause,
    /// The changed files (and watched folders) it looked at; empty for the first build.
    pub changed: &'a [PathBuf],
    /// How long the build took.
    pub duration: Duration,
    /// Its results (without dependency-check errors, which watch mode does not collect).
    pub report: &'a BuildReport,
}

/// A grammar, a rule and programs, with the `Pie` that builds them and its store file.
#[derive(Debug)]
pub struct Workspace {
    pie: ParserPie,
    /// The set that the tracker's [`ExecutedTasks`] fills, shared with it.
    executed: ExecutedTasks,
    /// The store as given (or the default).
    store_path: PathBuf,
    /// The store, held; `None` when it could not be locked (the warning of [`Workspace::open`] said so) or after
    /// [`Workspace::close_store`].
    store: Option<StoreFile>,
    grammar: SourceFile,
    rule: String,
    programs: Vec<SourceFile>,
}

impl Workspace {
    /// Opens the workspace of `config`: takes its store, waiting while another process holds it (pie says so
    /// once on stderr), and loads it. The store stays held until [`close_store`](Self::close_store) or the end of
    /// the workspace.
    ///
    /// A store that cannot be used is not fatal: the second value is a warning to show, and the workspace starts
    /// empty (everything is built again). A store that cannot even be locked (its folder is read-only, say) is
    /// neither loaded nor saved.
    pub fn open(config: &Config, log: LogTarget) -> (Self, Option<String>) {
        let store_path = config
            .store
            .clone()
            .unwrap_or_else(|| default_store_path(&config.grammar));
        let executed = ExecutedTasks::default();
        let (store, pie, warning) = match StoreFile::open(&store_path) {
            Ok(store) => {
                let (pie, warning) = load_pie(&store, &executed, log);
                (Some(store), pie, warning)
            }
            Err(error) => (
                None,
                Pie::with_tracker(new_tracker(&executed, log)),
                Some(format!(
                    "warning: {error}; building without the store (nothing is loaded or saved)"
                )),
            ),
        };
        let workspace = Self {
            pie,
            executed,
            store_path,
            store,
            grammar: SourceFile::new(&config.grammar),
            rule: config.rule.clone(),
            programs: config.programs.iter().map(|p| SourceFile::new(p)).collect(),
        };
        (workspace, warning)
    }

    /// The grammar file.
    pub fn grammar(&self) -> &SourceFile {
        &self.grammar
    }

    /// The rule programs are parsed with.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The program files.
    pub fn programs(&self) -> &[SourceFile] {
        &self.programs
    }

    /// Reads the progress of this workspace's builds from another thread, also while one runs (a build is
    /// two pie builds: the grammar's, then the programs').
    pub fn progress(&self) -> ProgressHandle {
        self.pie.tracker().1 .1 .0.handle()
    }

    /// The store file, as given.
    pub fn store_path(&self) -> &Path {
        &self.store_path
    }

    /// The tasks this workspace requires: the grammar's compile task, and one parse task per program in the
    /// order given. They are the roots of every build, and the only roots [`save_store`](Self::save_store) keeps.
    fn tasks(&self) -> (ParserTask, Vec<ParserTask>) {
        let compile = ParserTask::CompileGrammar {
            grammar: self.grammar.path.clone(),
        };
        let parses = self
            .programs
            .iter()
            .map(|program| ParserTask::Parse {
                grammar: self.grammar.path.clone(),
                rule: self.rule.clone(),
                program: program.path.clone(),
            })
            .collect();
        (compile, parses)
    }

    /// Builds incrementally in a new session: compiles the grammar and parses every program where needed.
    pub fn build(&mut self) -> BuildReport {
        self.build_with(|_| {})
    }

    /// [`build`](Self::build), handing each outcome to `reached` as soon as the build has it: the grammar's once it
    /// is compiled (or found up to date), then each program's, in the order given, once its task and those of the
    /// programs before it are. The programs are parsed in parallel (one `require_all`, on as many threads as the
    /// machine has cores); a program whose result was already up to date is reported at once, not after the
    /// programs that follow it have been parsed.
    pub fn build_with(&mut self, mut reached: impl FnMut(Reached<'_>)) -> BuildReport {
        self.executed.clear();
        self.pie.tracker_mut().1 .1 .1.clear();
        let (compile, parses) = self.tasks();

        let mut session = self.pie.new_session();
        let grammar = match session.require(&compile) {
            Outcome::Grammar(result) => result,
            Outcome::Program(_) => panic!("BUG: CompileGrammar task returned a program outcome"),
        };
        reached(Reached::Grammar(&grammar));

        // The programs are parsed in parallel (`require_all`, on a thread of its own while this one reports), and
        // each outcome is reported in the order given as soon as it and those before it are known.
        let (sender, receiver) = mpsc::channel();
        *self.executed.reports() = Some(sender);
        let mut programs = Vec::with_capacity(parses.len());
        let mut known: HashMap<ParserTask, Result<String, ProgramError>> = HashMap::new();
        let executed = &self.executed;
        let mut report_known = |known: &HashMap<ParserTask, Result<String, ProgramError>>,
                                programs: &mut Vec<ProgramReport>| {
            while let Some(result) = parses.get(programs.len()).and_then(|task| known.get(task)) {
                let program = ProgramReport {
                    file: self.programs[programs.len()].clone(),
                    result: result.clone(),
                    executed: executed.ran(&parses[programs.len()]),
                    restored: executed.was_restored(&parses[programs.len()]),
                };
                reached(Reached::Program(&program));
                programs.push(program);
            }
        };
        let outcomes = std::thread::scope(|scope| {
            let parsing = scope.spawn(|| session.require_all(&parses));
            while programs.len() < parses.len() {
                match receiver.recv_timeout(Duration::from_millis(20)) {
                    Ok((task, Outcome::Program(result))) => {
                        known.insert(task, result);
                        report_known(&known, &mut programs);
                    }
                    Ok((_, Outcome::Grammar(_))) => panic!("BUG: Parse task returned a grammar outcome"),
                    Err(_) if parsing.is_finished() => break,
                    Err(_) => {}
                }
            }
            parsing.join()
        });
        *self.executed.reports() = None;
        let outcomes = outcomes.unwrap_or_else(|payload| std::panic::resume_unwind(payload));
        for (task, outcome) in parses.iter().zip(outcomes) {
            match outcome {
                Outcome::Program(result) => known.entry(task.clone()).or_insert(result),
                Outcome::Grammar(_) => panic!("BUG: Parse task returned a grammar outcome"),
            };
        }
        report_known(&known, &mut programs);
        let check_errors = session
            .dependency_check_errors()
            .iter()
            .map(|e| e.to_string())
            .collect();
        drop(session);

        let (executed, restored) = self.executed.counts();
        BuildReport {
            grammar,
            grammar_compiled: self.executed.ran(&compile),
            grammar_restored: self.executed.was_restored(&compile),
            programs,
            executed,
            restored,
            check_errors,
        }
    }

    /// Watches the grammar and programs (`--watch`): builds them at once, then again after every batch of changes
    /// on disk (bottom-up, with `pie::watch`), calling `on_build` after each build that executed something, until
    /// the [`StopHandle`] handed to `install_stop` is used (say, by a Ctrl-C handler) or `on_build` breaks. The
    /// store stays held throughout; save it afterwards with [`close_store`](Self::close_store).
    ///
    /// # Errors
    /// A message when the file watcher cannot be started (nothing is built then).
    pub fn watch(
        &mut self,
        config: WatchConfig,
        install_stop: impl FnOnce(StopHandle),
        mut on_build: impl FnMut(&WatchedBuild<'_>) -> ControlFlow<()>,
    ) -> Result<(), String> {
        let (compile, parses) = self.tasks();
        let roots: Vec<ParserTask> = std::iter::once(compile.clone()).chain(parses.iter().cloned()).collect();
        // The watcher owns the `Pie` while it runs; an empty one stands in and is replaced when it returns.
        let stand_in = Pie::with_tracker(new_tracker(&self.executed, LogTarget::Off));
        let pie = std::mem::replace(&mut self.pie, stand_in);
        let mut watcher = Watcher::new(pie, roots, config);
        install_stop(watcher.stop_handle());
        let programs = &self.programs;
        let tracked = &self.executed;
        let result = watcher.run(|build| {
            // Every task of `build.executed()` ran its code, except those that `tracked` saw restored.
            let executed: HashSet<&ParserTask> = build.executed().filter(|task| !tracked.was_restored(task)).collect();
            let outputs = build.outputs();
            let grammar = match outputs.first() {
                Some(Outcome::Grammar(result)) => result.clone(),
                _ => panic!("BUG: the first root is not the CompileGrammar task"),
            };
            let programs = programs
                .iter()
                .zip(&parses)
                .zip(&outputs[1..])
                .map(|((file, task), output)| match output {
                    Outcome::Program(result) => ProgramReport {
                        file: file.clone(),
                        result: result.clone(),
                        executed: executed.contains(task),
                        restored: tracked.was_restored(task),
                    },
                    Outcome::Grammar(_) => panic!("BUG: Parse task returned a grammar outcome"),
                })
                .collect();
            let report = BuildReport {
                grammar,
                grammar_compiled: executed.contains(&compile),
                grammar_restored: tracked.was_restored(&compile),
                programs,
                executed: executed.len(),
                restored: build.executed().len() - executed.len(),
                check_errors: Vec::new(),
            };
            // The next build's restores are its own.
            tracked.clear();
            on_build(&WatchedBuild {
                number: build.number(),
                cause: build.cause(),
                changed: build.changed(),
                duration: build.duration(),
                report: &report,
            })
        });
        self.pie = watcher.into_pie();
        result.map_err(|e| e.to_string())
    }

    /// Turns on the trackers of the next builds that say why each task executed (`explain`, read with
    /// [`explanations`](Self::explanations)) and where the time went (`profile`, written with
    /// [`write_profile`](Self::write_profile)).
    pub fn observe(&mut self, explain: bool, profile: bool) {
        let insights = &mut self.pie.tracker_mut().1 .1 .1;
        insights.explain = explain.then(ExplainTracker::accumulating);
        insights.trace = profile.then(TraceTracker::accumulating);
    }

    /// One line per task that the last build executed, in the order they started, saying why: the task (`compile
    /// GRAMMAR` or `parse PROGRAM`, followed by `(restored from the remote cache)` when it was), a colon and the
    /// reason, with the files this workspace names spelled as the
    /// user gave them. `None` unless [`observe`](Self::observe) turned explanations on.
    pub fn explanations(&self) -> Option<Vec<String>> {
        let explain = self.pie.tracker().1 .1 .1.explain.as_ref()?;
        let changed_files = explain.changed_files();
        let lines = explain
            .explanations()
            .iter()
            .zip(changed_files)
            .map(|(explanation, changed)| {
                let reason = match &explanation.reason {
                    Reason::TaskOutput { task, .. } => format!("{} changed its result", self.label(task)),
                    Reason::TaskWithoutOutput { task } => {
                        format!("{} has no result yet (new, or it failed)", self.label(task))
                    }
                    Reason::RequiredTaskFailed { task } => format!("{} failed", self.label(task)),
                    reason => self.shown_paths(&reason.to_string()),
                };
                // A task that executed because of another names the changed file at the start of the chain.
                let because = match changed {
                    Some(file) if explanation.reason.path().is_none() => {
                        format!(", because {} changed", self.shown(file))
                    }
                    _ => String::new(),
                };
                // It executed, as far as pie's engine goes; its code ran only when it was not restored.
                let restored = if self.executed.was_restored(&explanation.task) {
                    " (restored from the remote cache)"
                } else {
                    ""
                };
                format!("{}{restored}: {reason}{because}", self.label(&explanation.task))
            })
            .collect();
        Some(lines)
    }

    /// `compile GRAMMAR` or `parse PROGRAM`, with the file as the user gave it.
    fn label(&self, task: &ParserTask) -> String {
        match task {
            ParserTask::CompileGrammar { grammar } => format!("compile {}", self.shown(grammar)),
            ParserTask::Parse { program, .. } => format!("parse {}", self.shown(program)),
        }
    }

    /// The file at `path` as the user named it, if this workspace names it; otherwise the path.
    fn shown(&self, path: &Path) -> String {
        let path = lexical(path);
        std::iter::once(&self.grammar)
            .chain(&self.programs)
            .find(|file| lexical(&file.path) == path)
            .map_or_else(|| path.display().to_string(), |file| file.shown.clone())
    }

    /// `text` with the absolute paths of the files this workspace names replaced by their names as given.
    fn shown_paths(&self, text: &str) -> String {
        let mut text = text.to_string();
        for file in std::iter::once(&self.grammar).chain(&self.programs) {
            text = text.replace(&lexical(&file.path).display().to_string(), &file.shown);
        }
        text
    }

    /// Writes the Chrome trace of the last build to `path` and returns its summary (with the five slowest tasks).
    /// `None` unless [`observe`](Self::observe) turned profiling on.
    ///
    /// # Errors
    /// A message naming the file when it cannot be written.
    pub fn write_profile(&self, path: &Path) -> Option<Result<String, String>> {
        let trace = self.pie.tracker().1 .1 .1.trace.as_ref()?;
        let written = std::fs::File::create(path)
            .map(io::BufWriter::new)
            .and_then(|file| trace.write_json(file));
        Some(match written {
            Ok(()) => Ok(trace.summary(5).to_string()),
            Err(error) => Err(format!("cannot write the profile {}: {error}", path.display())),
        })
    }

    /// Takes what the build log wrote to a [`LogTarget::Memory`] since the last call (empty for other targets).
    pub fn take_log(&mut self) -> String {
        match self.pie.tracker_mut().1 .0.writer_mut() {
            LogTarget::Memory(buffer) => String::from_utf8_lossy(&std::mem::take(buffer)).into_owned(),
            LogTarget::Off | LogTarget::Stderr => String::new(),
        }
    }

    /// The workspace root of the remote cache: the deepest folder that holds the grammar and every program
    /// (lexically, from their absolute paths). Task paths below it are stored in the cache relative to it, so a
    /// copy of that folder elsewhere (another checkout, another machine) finds the same entries, as long as the
    /// files sit in the same places relative to one another.
    pub fn remote_cache_root(&self) -> PathBuf {
        let mut folders = std::iter::once(&self.grammar)
            .chain(&self.programs)
            .map(|file| lexical(&file.path).parent().map(Path::to_path_buf).unwrap_or_default());
        let first = folders.next().unwrap_or_default();
        folders.fold(first, |common, folder| {
            common
                .components()
                .zip(folder.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect()
        })
    }

    /// Shares results through the remote cache `http` (or stops, with `None`), with
    /// [`remote_cache_root`](Self::remote_cache_root) as its workspace root: before a task executes, its result is
    /// looked up there and restored when every file it read is as it was; after a task executes, its result is
    /// uploaded (unless `http` is read-only). A cache that cannot be reached gives pie's one warning on stderr, and
    /// the builds go on locally.
    ///
    /// # Errors
    /// A message when the workspace root cannot be used (it is not valid UTF-8).
    pub fn set_remote_cache(&mut self, http: Option<HttpCache>) -> Result<(), String> {
        let cache = match http {
            Some(http) => Some(
                RemoteCache::new(http, self.remote_cache_root())
                    .map_err(|e| format!("cannot use the remote cache: {e}"))?,
            ),
            None => None,
        };
        self.pie.set_remote_cache(cache);
        Ok(())
    }

    /// What the remote cache did over the workspace's life, in one line such as
    /// `remote cache: 3 restored, 0 uploaded, 0 failures` (failures: requests that failed; after the first, the
    /// cache is no longer used). `None` without a remote cache.
    pub fn remote_summary(&self) -> Option<String> {
        let cache = self.pie.remote_cache()?;
        let failures = cache.http().stats().errors;
        Some(format!(
            "remote cache: {} restored, {} uploaded, {failures} {}",
            cache.tasks_restored(),
            cache.traces_uploaded(),
            if failures == 1 { "failure" } else { "failures" }
        ))
    }

    /// Unobserves every root that is not one of [`tasks`](Self::tasks) and removes every task that only such roots
    /// required, with its output; the build log says how many were removed, if any.
    fn forget_unnamed(&mut self) {
        let (compile, parses) = self.tasks();
        let named: HashSet<ParserTask> = parses.into_iter().chain([compile]).collect();
        self.pie.retain_roots(|root| named.contains(root));
        // parser_dev's tasks only read files (they provide none), so there is no file for the collection to delete.
        let removed = self.pie.collect_garbage(false).removed_tasks;
        if removed > 0 {
            let tasks = if removed == 1 { "task" } else { "tasks" };
            let _ = writeln!(
                self.pie.tracker_mut().1 .0.writer_mut(),
                "forgot {removed} {tasks} of programs, rules or grammars no longer named"
            );
        }
    }

    /// Forgets what the workspace does not name, then saves the store; the workspace keeps holding it.
    ///
    /// Forgetting unobserves every root that is not one of this workspace's tasks (a program no longer given, a
    /// parse with another rule, another grammar's tasks, from an earlier run or another workspace on the same
    /// store) and removes every task that only such roots required, with its output, so the saved store holds the
    /// current project's results and no more. Without the store (it could not be locked, or it was closed) there
    /// is nothing to forget or save. The error is a message naming the store.
    pub fn save_store(&mut self) -> Result<(), String> {
        if self.store.is_some() {
            self.forget_unnamed();
        }
        match &self.store {
            Some(store) => store.save(&self.pie).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Saves the store and releases it, so that another process may take it; later builds are not saved. The
    /// error is a message naming the store (which is released all the same).
    pub fn close_store(&mut self) -> Result<(), String> {
        let result = self.save_store();
        self.store = None;
        result
    }
}

fn new_tracker(executed: &ExecutedTasks, log: LogTarget) -> BuildTracker {
    CompositeTracker(
        executed.clone(),
        CompositeTracker(
            WritingTracker::new(log),
            CompositeTracker(ProgressTracker::new(), Insights::default()),
        ),
    )
}

/// `path` with its `.` components dropped and each `..` taking away the component before it, as pie normalises
/// the paths of dependencies; for matching those paths with the files a workspace names.
fn lexical(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// Loads the held store, or starts empty with a warning when it cannot be used.
fn load_pie(store: &StoreFile, executed: &ExecutedTasks, log: LogTarget) -> (ParserPie, Option<String>) {
    let fresh = log.fresh();
    match store.load(new_tracker(executed, log)) {
        Ok(pie) => (pie, None),
        Err(error) => (
            Pie::with_tracker(new_tracker(executed, fresh)),
            Some(format!("warning: {error}; rebuilding everything")),
        ),
    }
}
