//! The `parser_dev` command: batch mode, watch mode with `--watch`, or the terminal editor with `--edit`.

use std::io::{self, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use crossterm::event::{self, Event, KeyEventKind};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parser_dev::app::{App, Control};
use parser_dev::disk::DiskWatcher;
use parser_dev::report::{batch_end, batch_grammar, batch_program, explanations, watch_header};
use parser_dev::workspace::{Config, LogTarget, Reached, Workspace};
use pie::remote::HttpCache;
use pie::tracker::progress::ProgressHandle;
use pie::watch::{StopHandle, WatchConfig};

/// Develop a pest grammar against example programs. Each program is parsed with RULE of the grammar; results
/// are cached in a store, so only what changed since the last run is compiled or parsed again.
///
/// Exit status: 0 when the grammar compiled and every program parsed, 1 when the grammar or a program failed,
/// 2 for a usage error (including --edit without a terminal). With --watch: 0 when stopped by Ctrl-C (after
/// saving the store), 1 when files cannot be watched.
#[derive(Parser, Debug)]
#[command(name = "parser_dev", version)]
struct Cli {
    /// The store file [default: .pie/parser_dev.store in the grammar's folder].
    #[arg(long, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Write pie's build log to standard error (batch and watch mode).
    #[arg(long)]
    log: bool,
    /// Edit the grammar and programs in a terminal editor, rebuilding on every save and every change on disk.
    #[arg(short = 'e', long, conflicts_with = "watch")]
    edit: bool,
    /// Batch mode that keeps running: rebuild and print the results after every change on disk, until Ctrl-C.
    #[arg(short = 'w', long)]
    watch: bool,
    /// After the results, say why each task executed (batch mode): one line per task, naming the changed file.
    #[arg(long, conflicts_with_all = ["edit", "watch"])]
    explain: bool,
    /// Write a Chrome trace of the build to FILE (open it in chrome://tracing or ui.perfetto.dev), then print where
    /// it went and a summary (critical path, slowest tasks) on standard error (batch mode).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["edit", "watch"])]
    profile: Option<PathBuf>,
    /// Share results through a remote cache speaking Bazel's HTTP protocol (nginx with WebDAV, bazel-remote) at
    /// URL, e.g. http://127.0.0.1:8080/cache [default: $PIE_REMOTE_CACHE; $PIE_REMOTE_CACHE_AUTH is sent as the
    /// Authorization header]. Batch and watch mode. Results are restored from it instead of computed, and
    /// computed ones uploaded; an unreachable cache gives one warning and the build goes on locally.
    #[arg(long, value_name = "URL", conflicts_with = "edit")]
    cache: Option<String>,
    /// Only read the remote cache, never upload to it (say, a developer's machine using what CI filled).
    #[arg(long, conflicts_with = "edit")]
    cache_read_only: bool,
    /// The pest grammar file.
    grammar: PathBuf,
    /// The grammar's rule that every program is parsed with.
    rule: String,
    /// The program files.
    #[arg(required = true)]
    programs: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = Config {
        grammar: cli.grammar,
        rule: cli.rule,
        programs: cli.programs,
        store: cli.store,
    };
    if cli.edit {
        return edit(&config);
    }
    let cache = match remote_cache(cli.cache.as_deref(), cli.cache_read_only) {
        Ok(cache) => cache,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.watch {
        watch(&config, cli.log, cache)
    } else {
        batch(&config, cli.log, cli.explain, cli.profile.as_deref(), cache)
    }
}

/// The remote cache's client: at `url` (`--cache`), else at `$PIE_REMOTE_CACHE` when it is set and not empty, else
/// none; with `$PIE_REMOTE_CACHE_AUTH` as the `Authorization` header when that is set and not empty. The error is
/// a message: the URL cannot be used.
fn remote_cache(url: Option<&str>, read_only: bool) -> Result<Option<HttpCache>, String> {
    let http = match url {
        Some(url) => {
            let auth = std::env::var(pie::remote::ENV_AUTH)
                .ok()
                .filter(|auth| !auth.is_empty());
            Some(HttpCache::new(url).map_err(|e| e.to_string())?.auth_header(auth))
        }
        None => HttpCache::from_env().map_err(|e| format!("{e} (from ${})", pie::remote::ENV_URL))?,
    };
    if read_only && http.is_none() {
        eprintln!(
            "warning: --cache-read-only without a remote cache (--cache URL or ${}) does nothing",
            pie::remote::ENV_URL
        );
    }
    Ok(http.map(|http| http.read_only(read_only)))
}

/// Opens the workspace of a batch or watch run (log on stderr if asked), saying why an old store is not used, with
/// the remote cache if there is one.
fn open_workspace(config: &Config, log: bool, cache: Option<HttpCache>) -> Workspace {
    let log = if log { LogTarget::Stderr } else { LogTarget::Off };
    let (mut workspace, warning) = Workspace::open(config, log);
    if let Some(warning) = warning {
        eprintln!("{warning}");
    }
    if let Err(error) = workspace.set_remote_cache(cache) {
        eprintln!("warning: {error}; building without it");
    }
    workspace
}

fn batch(config: &Config, log: bool, explain: bool, profile: Option<&Path>, cache: Option<HttpCache>) -> ExitCode {
    let mut workspace = open_workspace(config, log, cache);
    workspace.observe(explain, profile.is_some());
    // Each result is printed as soon as the build reaches it; the summary once the store is saved.
    let grammar = workspace.grammar().shown.clone();
    let rule = workspace.rule().to_string();
    let progress = shows_progress(log, io::stderr().is_terminal()).then(|| {
        let total = 1 + workspace.programs().len() as u64;
        ProgressDisplay::start(workspace.progress(), total)
    });
    // Results go to stdout between redraws of the bar (if any), so that neither garbles the other.
    let print = |text: String| {
        let write = || {
            print!("{text}");
            let _ = io::stdout().flush();
        };
        match &progress {
            Some(progress) => {
                progress.bar.suspend(write);
                progress.bar.inc(1);
            }
            None => write(),
        }
    };
    let report = workspace.build_with(|reached| match reached {
        Reached::Grammar(outcome) => print(batch_grammar(outcome, &grammar, &rule)),
        Reached::Program(program) => print(batch_program(program, &rule)),
    });
    if let Some(progress) = progress {
        progress.finish();
    }
    if let Err(error) = workspace.close_store() {
        eprintln!("warning: {error}; the next run will build everything again");
    }
    print!("{}", batch_end(&report));
    let _ = io::stdout().flush();
    if let Some(line) = workspace.remote_summary() {
        eprintln!("{line}");
    }
    if let Some(lines) = workspace.explanations() {
        print!("{}", explanations(&lines));
    }
    if let Some(path) = profile {
        match workspace.write_profile(path) {
            Some(Ok(summary)) => eprint!("profile written to {}\n{summary}", path.display()),
            Some(Err(error)) => eprintln!("warning: {error}"),
            None => {}
        }
    }
    if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// How long a batch build runs before its progress bar appears: a quick build shows none.
const PROGRESS_DELAY: Duration = Duration::from_millis(200);

/// How often the progress bar reads the build's counts.
const PROGRESS_TICK: Duration = Duration::from_millis(50);

/// Whether batch mode shows a progress bar: only on a terminal's stderr, and never when the build log (`--log`)
/// goes there too.
fn shows_progress(log: bool, stderr_is_terminal: bool) -> bool {
    !log && stderr_is_terminal
}

/// Batch mode's progress bar on stderr: hidden for the first [`PROGRESS_DELAY`], then drawn by a thread of its own
/// that reads the build's counts (tasks executed and checked, from pie's progress tracker) while the main thread
/// builds; its position is the results printed so far (the grammar's and each program's).
struct ProgressDisplay {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    ticker: thread::JoinHandle<()>,
}

impl ProgressDisplay {
    fn start(handle: ProgressHandle, total: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{bar:24} {pos}/{len} results · {msg} · {elapsed}") {
            bar.set_style(style);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (bar, stop) = (bar.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let started = Instant::now();
                let mut shown = false;
                while !stop.load(Ordering::Acquire) {
                    let progress = handle.snapshot();
                    bar.set_message(format!("{} executed, {} checked", progress.executed, progress.checked));
                    if !shown && started.elapsed() >= PROGRESS_DELAY {
                        bar.set_draw_target(ProgressDrawTarget::stderr());
                        shown = true;
                    }
                    thread::park_timeout(PROGRESS_TICK);
                }
            })
        };
        Self { bar, stop, ticker }
    }

    /// Stops the thread and clears the bar (if it was drawn).
    fn finish(self) {
        self.stop.store(true, Ordering::Release);
        self.ticker.thread().unpark();
        let _ = self.ticker.join();
        self.bar.finish_and_clear();
    }
}

fn watch(config: &Config, log: bool, cache: Option<HttpCache>) -> ExitCode {
    let mut workspace = open_workspace(config, log, cache);
    let grammar = workspace.grammar().shown.clone();
    let rule = workspace.rule().to_string();
    let cwd = std::env::current_dir().unwrap_or_default();
    let install_stop = |stop: StopHandle| {
        if let Err(error) = ctrlc::set_handler(move || stop.stop()) {
            eprintln!("warning: cannot handle Ctrl-C ({error}); stop with a signal that ends the process");
        }
    };
    let result = workspace.watch(WatchConfig::default(), install_stop, |build| {
        let report = build.report;
        let mut out = watch_header(build, &cwd, SystemTime::now());
        out.push_str(&batch_grammar(&report.grammar, &grammar, &rule));
        for program in &report.programs {
            out.push_str(&batch_program(program, &rule));
        }
        out.push_str(&batch_end(report));
        print!("{out}");
        // Piped output is block-buffered: without a flush a reader would see a build only after the next.
        let _ = io::stdout().flush();
        ControlFlow::Continue(())
    });
    let saved = workspace.close_store();
    if let Err(error) = &saved {
        eprintln!("warning: {error}; the next run will build everything again");
    }
    if let Some(line) = workspace.remote_summary() {
        eprintln!("{line}");
    }
    match result {
        Ok(()) => {
            eprintln!("stopped{}", if saved.is_ok() { "; the store is saved" } else { "" });
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn edit(config: &Config) -> ExitCode {
    // Checked before the store is taken and before the terminal is touched, so that nothing (no escape sequence to
    // leave an alternate screen never entered) is written to a pipe or file.
    if !(io::stdin().is_terminal() && io::stdout().is_terminal()) {
        eprintln!(
            "error: the editor (--edit) needs a terminal, but standard input or output is not one; \
             run without --edit for batch mode"
        );
        return ExitCode::from(2);
    }
    let (workspace, warning) = Workspace::open(config, LogTarget::Memory(Vec::new()));
    // Watching starts before the buffers are read, so that no change after the read goes unseen (one before it
    // is reported too, and ignored: the buffer already holds that version).
    let files: Vec<PathBuf> = std::iter::once(workspace.grammar())
        .chain(workspace.programs())
        .map(|file| file.path.clone())
        .collect();
    let (disk, disk_warnings) = match DiskWatcher::new(&files, DISK_DEBOUNCE) {
        Ok((disk, warnings)) => (Some(disk), warnings),
        Err(error) => (
            None,
            vec![format!("warning: {error}; changes on disk are seen only when saving")],
        ),
    };
    let mut app = match App::new(workspace) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    for warning in warning.into_iter().chain(disk_warnings) {
        app.push_log(warning);
    }
    let result = run_terminal(&mut app, disk.as_ref());
    ratatui::restore();
    if let Err(error) = result {
        eprintln!("error: terminal: {error}");
        return ExitCode::FAILURE;
    }
    if let Some(error) = app.store_error() {
        eprintln!("warning: {error}; the next run will build everything again");
    }
    ExitCode::SUCCESS
}

/// How long a file on disk must be quiet before the editor takes in its change (the events of one save arrive as
/// one batch, and the file is not read half-written).
const DISK_DEBOUNCE: Duration = Duration::from_millis(50);

/// How long the loop waits for a key before it looks for changes on disk.
const KEY_WAIT: Duration = Duration::from_millis(50);

/// Draws, and forwards key presses and changes on disk, until the app quits.
fn run_terminal(app: &mut App, disk: Option<&DiskWatcher>) -> io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let mut redraw = true;
    loop {
        if redraw {
            terminal.draw(|frame| app.render(frame))?;
            redraw = false;
        }
        if event::poll(KEY_WAIT)? {
            // Any event may need a redraw (a resize, say); only key presses go to the app.
            redraw = true;
            if let Event::Key(key) = event::read()? {
                if key.kind == KeyEventKind::Press && app.handle_input(key.into()) == Control::Quit {
                    return Ok(());
                }
            }
        }
        if let Some(disk) = disk {
            let changes = disk.changes(Duration::ZERO);
            if !changes.is_empty() {
                app.disk_changed(changes);
                redraw = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_shown_only_on_a_terminal_without_the_log() {
        assert!(shows_progress(false, true));
        assert!(!shows_progress(true, true), "the log has stderr");
        assert!(!shows_progress(false, false), "stderr is piped or a file");
        assert!(!shows_progress(true, false));
    }
}
