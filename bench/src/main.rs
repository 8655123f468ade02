//! pie's benchmark harness: generates workloads in a temporary folder and measures fresh builds, no-op rebuilds
//! (in-process and in a new process), rebuilds after touching and after modifying one input, persistence and
//! memory, garbage collection of a half-dead store, and the latency of watch mode (`wide` only), next to a stat
//! floor, a hash floor and ninja.
//!
//! Every workload/stamper pair is measured in a child process of its own (`bench measure-child`), so that its RSS
//! figures are not polluted by another's; the new-process no-op spawns a further child (`bench cold-child`).
//!
//! ```text
//! cargo run --release -p bench -- --n 100000            # a table of every workload, both stampers
//! cargo run --release -p bench -- --workload chain --n 1000000 --stamper modified
//! cargo run --release -p bench -- --ci                  # N = 1,000, JSON lines: what CI runs
//! cargo run --release -p bench -- --cache --n 10000     # the shared cache against a private nginx
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::measure::{ColdReport, Row};
use crate::workload::{set_workspace, Shape, StamperArg, Workload};

mod cache;
mod gc;
mod measure;
mod ninja;
mod parallel;
mod persist;
mod profile;
mod report;
mod watch;
mod workload;

/// Measure pie on generated workloads.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,
    /// Workloads to measure (repeatable; default: all).
    #[arg(long, value_enum)]
    workload: Vec<Workload>,
    /// Tasks per workload.
    #[arg(long, default_value_t = 100_000)]
    n: u32,
    /// Lattice layer width.
    #[arg(long, default_value_t = 1_000)]
    width: u32,
    /// File stampers to measure (repeatable; default: both). `trivial` has no files and runs once.
    #[arg(long, value_enum)]
    stamper: Vec<StamperArg>,
    /// One JSON object per workload/stamper on stdout, instead of a table.
    #[arg(long)]
    json: bool,
    /// The small CI run: `--n 1000 --width 100 --json`.
    #[arg(long)]
    ci: bool,
    /// Measure parallel builds instead (`cpu` and `wide` with `require_tasks`): this thread count against one
    /// thread. `--n` sets the tasks of `wide`; `cpu` has `n / 50` tasks.
    #[arg(long)]
    threads: Option<usize>,
    /// Measure the shared cache instead, against a private nginx on a loopback port: fresh builds without a cache,
    /// filling an empty cache, and restoring everything in another folder, of `wide` (`--n` readers) and of
    /// parser_dev's tasks (`--programs` programs), on the default thread count.
    #[arg(long, conflicts_with = "threads")]
    cache: bool,
    /// Programs of the parser_dev workload of `--cache`.
    #[arg(long, default_value_t = 200, requires = "cache")]
    programs: u32,
}

/// The harness's own child modes.
#[derive(Subcommand, Debug)]
enum Internal {
    /// Measure one workload with one stamper in this process and print its row as JSON.
    #[command(hide = true)]
    MeasureChild {
        #[command(flatten)]
        target: Target,
    },
    /// Load the store and build the workload once (a no-op in a new process); print the times as JSON.
    #[command(hide = true)]
    ColdChild {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        store: PathBuf,
    },
    /// Run one phase in functions named `profile_*` for a profiler, e.g.
    /// `valgrind --tool=callgrind --toggle-collect='*profile_phase*' bench profile --workload chain --phase noop`.
    #[command(hide = true)]
    Profile {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum)]
        phase: profile::Phase,
        /// Times the phase is run.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// The `Pie`'s thread count (`Pie::set_threads`); 1 by default, the figure that instruction counts compare.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// `wide` only: the root requires its readers with one `require_tasks` (the root of the parallel figures).
        #[arg(long)]
        group: bool,
    },
}

#[derive(clap::Args, Debug)]
struct Target {
    #[arg(long, value_enum)]
    workload: Workload,
    #[arg(long)]
    n: u32,
    #[arg(long)]
    width: u32,
    #[arg(long, value_enum)]
    stamper: StamperArg,
    #[arg(long)]
    dir: PathBuf,
}

impl Target {
    fn shape(&self) -> Shape {
        Shape {
            workload: self.workload,
            n: self.n,
            width: self.width,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.internal {
        Some(Internal::MeasureChild { ref target }) => measure_child(target),
        Some(Internal::ColdChild { ref target, ref store }) => cold_child(target, store),
        Some(Internal::Profile {
            ref target,
            phase,
            repeat,
            threads,
            group,
        }) => profile::run(
            target.shape(),
            target.stamper,
            &target.dir,
            phase,
            repeat,
            threads,
            group,
        ),
        None => run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn measure_child(target: &Target) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let row = measure::run(target.shape(), target.stamper, &target.dir, &exe)?;
    println!("{}", serde_json::to_string(&row).map_err(io::Error::other)?);
    Ok(())
}

fn cold_child(target: &Target, store: &Path) -> io::Result<()> {
    set_workspace(&target.dir);
    let root = target.shape().root(target.stamper.stamper());
    let start = Instant::now();
    let (load_ms, executed) = persist::cold_noop(store, &root)?;
    let total_ms = start.elapsed().as_secs_f64() * 1e3;
    let report = ColdReport {
        load_ms,
        total_ms,
        executed,
    };
    println!("{}", serde_json::to_string(&report).map_err(io::Error::other)?);
    Ok(())
}

fn run(mut cli: Cli) -> io::Result<()> {
    if cli.ci {
        cli.n = 1_000;
        cli.width = 100;
        cli.json = true;
    }
    if cli.cache {
        let dir = tempfile::Builder::new().prefix("pie-bench-").tempdir()?;
        let Some(row) = cache::run(cli.n, cli.programs, dir.path())? else {
            return Ok(());
        };
        if cli.json {
            println!("{}", serde_json::to_string(&row).map_err(io::Error::other)?);
        } else {
            print!("{}", cache::table(&row));
        }
        return Ok(());
    }
    if let Some(threads) = cli.threads {
        let dir = tempfile::Builder::new().prefix("pie-bench-").tempdir()?;
        let row = parallel::run(threads.max(1), (cli.n / 50).max(2), cli.n, dir.path())?;
        if cli.json {
            println!("{}", serde_json::to_string(&row).map_err(io::Error::other)?);
        } else {
            print!("{}", parallel::table(&row));
        }
        return Ok(());
    }
    let workloads = if cli.workload.is_empty() {
        Workload::ALL.to_vec()
    } else {
        cli.workload.clone()
    };
    let stampers = if cli.stamper.is_empty() {
        vec![StamperArg::Modified, StamperArg::Hash]
    } else {
        cli.stamper.clone()
    };
    if !ninja::available() && workloads.contains(&Workload::Wide) {
        eprintln!("{}", ninja::INSTALL_HINT);
    }
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for &workload in &workloads {
        let stampers = if workload == Workload::Trivial {
            &stampers[..1]
        } else {
            &stampers[..]
        };
        for &stamper in stampers {
            let shape = Shape {
                workload,
                n: cli.n,
                width: cli.width,
            };
            eprintln!(
                "measuring {} n={} stamper={} ...",
                workload.name(),
                cli.n,
                stamper.name()
            );
            let row = spawn_measure(&exe, &shape, stamper)?;
            if cli.json {
                println!("{}", serde_json::to_string(&row).map_err(io::Error::other)?);
            }
            rows.push(row);
        }
    }
    if !cli.json {
        print!("{}", report::table(&rows));
        print!("{}", report::targets(&rows));
    }
    Ok(())
}

/// Measures one workload/stamper pair in a child process, in a temporary folder of its own.
fn spawn_measure(exe: &Path, shape: &Shape, stamper: StamperArg) -> io::Result<Row> {
    let dir = tempfile::Builder::new().prefix("pie-bench-").tempdir()?;
    let output = Command::new(exe)
        .arg("measure-child")
        .args(["--workload", shape.workload.name()])
        .args(["--n", &shape.n.to_string()])
        .args(["--width", &shape.width.to_string()])
        .args(["--stamper", stamper.name()])
        .arg("--dir")
        .arg(dir.path())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "measuring {} with {} failed ({})",
            shape.workload.name(),
            stamper.name(),
            output.status
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(io::Error::other)
}
