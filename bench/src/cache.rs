//! `bench --cache`: the figures of the shared cache (`pie::remote`, issue 14) against a private nginx serving Bazel's
//! HTTP remote-cache protocol on a loopback port (`dev_util::nginx`, which runs `.ci/nginx-cache`).
//!
//! For each workload, three fresh builds (a new `Pie` with an empty store, on the default thread count) are measured
//! in alternation within one run, so that a load change on the machine affects all three alike:
//!
//! - `fresh`: folder A, no cache;
//! - `cache_fill`: folder A, uploading to an empty cache (a base URL of its own on the server for each round);
//! - `cache_hit`: folder B, a copy of A's inputs, restoring everything from the cache the fill of the same round
//!   filled (paths are stored relative to the workspace root, so B's tasks find A's entries).
//!
//! Workloads:
//! - `wide`: `n` readers of one small file each (Hash stamps), required by a root with one `require_tasks`. The
//!   root opts out of the cache (`Task::remote_cacheable`): executed, it requires its readers in parallel, and each
//!   reader's lookup runs on a worker thread. The per-hit cost divides by the `n` readers. Measured besides, in
//!   the same rounds: `cache_fill_all` and `cache_hit_all`, with the root cached too (what a build gets without
//!   opting out): a replay of the root's trace requires its `n` readers one after the other, as the trace recorded
//!   them, so their lookups are made one round trip at a time.
//! - `parser`: parser_dev's tasks through its library (`parser_dev::workspace::Workspace`): its example grammar and
//!   `programs` programs made from its two examples (each with its own numbers, so their parse trees differ). The
//!   per-hit cost divides by the `programs + 1` tasks.
//!
//! Every hit is checked to restore every task and to return what the fresh build returned; times are not asserted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dev_util::nginx::Nginx;
use parser_dev::workspace::{BuildReport, Config, LogTarget, Workspace};
use pie::remote::{HttpCache, RemoteCache};
use pie::stamp::FileStamper;
use pie::{Context, Pie, Task};
use serde::{Deserialize, Serialize};

use crate::measure::{middle, ms, timed};

/// Rounds of each alternation.
const ROUNDS: usize = 5;

/// The shared-cache figures of one run.
#[derive(Serialize, Debug)]
pub struct CacheRow {
    /// The `Pie`'s thread count (the default: one per core).
    pub threads: usize,
    pub rounds: usize,
    pub wide_n: u32,
    pub wide_fresh_ms: f64,
    pub wide_cache_fill_ms: f64,
    pub wide_cache_hit_ms: f64,
    /// `wide_cache_hit_ms` per restored reader, in µs.
    pub wide_hit_us_per_task: f64,
    /// As `wide_cache_fill_ms` with the root cached too.
    pub wide_cache_fill_all_ms: f64,
    /// As `wide_cache_hit_ms` with the root cached too: its replay requires the readers one at a time.
    pub wide_cache_hit_all_ms: f64,
    /// `wide_cache_hit_all_ms` per restored task (the readers and the root), in µs.
    pub wide_hit_all_us_per_task: f64,
    pub parser_programs: u32,
    /// The grammar's task and one per program.
    pub parser_tasks: u32,
    pub parser_fresh_ms: f64,
    pub parser_cache_fill_ms: f64,
    pub parser_cache_hit_ms: f64,
    /// `parser_cache_hit_ms` per restored task, in µs.
    pub parser_hit_us_per_task: f64,
}

/// The tasks of the `wide` workload; paths are in the tasks (not in a process-wide folder as in `workload.rs`), so
/// that builds in two folders run in one process.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
enum WideTask {
    /// Reads the file (Hash stamp) and returns an FNV-1a digest of its bytes.
    Read(PathBuf),
    /// Requires `Read` of `DIR/in/0..n` with one `require_tasks`; returns the sum of their outputs. Cached in the
    /// remote cache only when `cached`.
    Root { dir: PathBuf, n: u32, cached: bool },
}

impl Task for WideTask {
    type Output = u64;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> u64 {
        match self {
            WideTask::Read(path) => match context.require_file_with_stamper(path, FileStamper::Hash) {
                Ok(Some(mut file)) => {
                    let mut bytes = Vec::new();
                    let _ = io::Read::read_to_end(&mut file, &mut bytes);
                    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |digest, byte| {
                        (digest ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
                    })
                }
                _ => 0,
            },
            WideTask::Root { dir, n, .. } => {
                let tasks: Vec<WideTask> = (0..*n).map(|i| WideTask::Read(wide_input(dir, i))).collect();
                context.require_tasks(&tasks).into_iter().fold(0u64, u64::wrapping_add)
            }
        }
    }

    fn remote_cacheable(&self) -> bool {
        // See the module documentation: unless `cached`, the root executes, so that its readers are looked up in
        // parallel.
        match self {
            WideTask::Read(_) => true,
            WideTask::Root { cached, .. } => *cached,
        }
    }
}

fn wide_input(dir: &Path, i: u32) -> PathBuf {
    dir.join("in").join(i.to_string())
}

fn write_wide_inputs(dir: &Path, n: u32) -> io::Result<()> {
    fs::create_dir_all(dir.join("in"))?;
    (0..n).try_for_each(|i| fs::write(wide_input(dir, i), format!("input {i}\n")))
}

/// The client of a cache at `url` that the figures use: the defaults, as parser_dev's `--cache` has them.
fn client(url: &str) -> io::Result<HttpCache> {
    HttpCache::new(url).map_err(io::Error::other)
}

/// One fresh build of `wide` in `dir` on the default thread count, with the cache at `url` if any (the root cached
/// too when `cached`): its time in ms, its output and how many tasks were restored.
fn wide_build(dir: &Path, n: u32, url: Option<&str>, cached: bool) -> io::Result<(f64, u64, u64)> {
    let mut pie: Pie<WideTask, u64> = Pie::default();
    if let Some(url) = url {
        pie.set_remote_cache(Some(RemoteCache::new(client(url)?, dir)?));
    }
    let root = WideTask::Root {
        dir: dir.to_path_buf(),
        n,
        cached,
    };
    let (output, time) = timed(|| pie.new_session().require(&root));
    let restored = pie.remote_cache().map_or(0, |cache| cache.tasks_restored());
    check_no_failure(pie.remote_cache())?;
    Ok((ms(time), output, restored))
}

/// An error when the cache had a failed request: the figures would be those of local builds.
fn check_no_failure(cache: Option<&RemoteCache>) -> io::Result<()> {
    match cache.and_then(|cache| cache.http().unavailable()) {
        Some(error) => Err(io::Error::other(format!(
            "the cache failed during a measurement: {error}"
        ))),
        None => Ok(()),
    }
}

/// The `parser` workload's files in `dir`: parser_dev's example grammar and `programs` programs.
fn write_parser_inputs(dir: &Path, programs: u32) -> io::Result<Config> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parser_dev/examples");
    fs::create_dir_all(dir)?;
    fs::copy(examples.join("grammar.pest"), dir.join("grammar.pest"))?;
    let sources = [
        fs::read_to_string(examples.join("program1.txt"))?,
        fs::read_to_string(examples.join("program2.txt"))?,
    ];
    let mut paths = Vec::new();
    for i in 0..programs {
        let path = dir.join(format!("program{i}.txt"));
        let source = &sources[i as usize % 2];
        fs::write(&path, format!("{source}print {i};\n"))?;
        paths.push(path);
    }
    Ok(Config {
        grammar: dir.join("grammar.pest"),
        rule: "main".to_string(),
        programs: paths,
        store: Some(dir.join(".pie").join("bench.store")),
    })
}

/// One fresh build of parser_dev's workspace `config` (its store removed first, and not saved), with the cache at
/// `url` if any: its time in ms, its results as text and how many tasks were restored.
fn parser_build(config: &Config, url: Option<&str>) -> io::Result<(f64, String, u64)> {
    if let Some(store) = &config.store {
        match fs::remove_file(store) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    let (mut workspace, warning) = Workspace::open(config, LogTarget::Off);
    if let Some(warning) = warning {
        return Err(io::Error::other(warning));
    }
    workspace
        .set_remote_cache(url.map(client).transpose()?)
        .map_err(io::Error::other)?;
    let (report, time) = timed(|| workspace.build());
    Ok((ms(time), results(&report), report.restored as u64))
}

/// A build's results, for comparing a restored build with a fresh one.
fn results(report: &BuildReport) -> String {
    let mut text = format!("{:?}\n", report.grammar);
    for program in &report.programs {
        text.push_str(&format!("{:?}\n", program.result));
    }
    text
}

fn check(what: &str, restored: u64, expected: u64, same_output: bool) -> io::Result<()> {
    if restored != expected || !same_output {
        return Err(io::Error::other(format!(
            "{what}: the hit restored {restored} of {expected} tasks, output {}",
            if same_output {
                "as the fresh build's"
            } else {
                "different from the fresh build's"
            }
        )));
    }
    Ok(())
}

/// Measures the shared-cache figures: `wide` with `wide_n` readers and `parser` with `programs` programs, in
/// folders under `dir`. `None` when there is no nginx (and this is not CI; see `dev_util::nginx`).
pub fn run(wide_n: u32, programs: u32, dir: &Path) -> io::Result<Option<CacheRow>> {
    let Some(server) = Nginx::start() else {
        return Ok(None);
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (a, b) = (dir.join("a"), dir.join("b"));
    write_wide_inputs(&a, wide_n)?;
    write_wide_inputs(&b, wide_n)?;
    let (mut fresh, mut fill, mut hit, mut fill_all, mut hit_all) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (time, expected, _) = wide_build(&a, wide_n, None, false)?;
        fresh.push(time);
        for (cached, fill, hit) in [(false, &mut fill, &mut hit), (true, &mut fill_all, &mut hit_all)] {
            let url = format!("{}/wide-{round}-{cached}", server.url());
            let (time, filled, _) = wide_build(&a, wide_n, Some(&url), cached)?;
            fill.push(time);
            let (time, output, restored) = wide_build(&b, wide_n, Some(&url), cached)?;
            hit.push(time);
            let tasks = u64::from(wide_n) + u64::from(cached);
            check("wide", restored, tasks, filled == expected && output == expected)?;
        }
    }
    let (wide_fresh, wide_fill, wide_hit) = (middle(fresh), middle(fill), middle(hit));
    let (wide_fill_all, wide_hit_all) = (middle(fill_all), middle(hit_all));

    let config_a = write_parser_inputs(&dir.join("parser-a"), programs)?;
    let config_b = write_parser_inputs(&dir.join("parser-b"), programs)?;
    let tasks = programs + 1;
    let (mut fresh, mut fill, mut hit) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let url = format!("{}/parser-{round}", server.url());
        let (time, expected, _) = parser_build(&config_a, None)?;
        fresh.push(time);
        let (time, filled, _) = parser_build(&config_a, Some(&url))?;
        fill.push(time);
        let (time, output, restored) = parser_build(&config_b, Some(&url))?;
        hit.push(time);
        check(
            "parser",
            restored,
            u64::from(tasks),
            filled == expected && output == expected,
        )?;
    }
    let (parser_fresh, parser_fill, parser_hit) = (middle(fresh), middle(fill), middle(hit));
    Ok(Some(CacheRow {
        threads,
        rounds: ROUNDS,
        wide_n,
        wide_fresh_ms: wide_fresh,
        wide_cache_fill_ms: wide_fill,
        wide_cache_hit_ms: wide_hit,
        wide_hit_us_per_task: wide_hit * 1e3 / f64::from(wide_n.max(1)),
        wide_cache_fill_all_ms: wide_fill_all,
        wide_cache_hit_all_ms: wide_hit_all,
        wide_hit_all_us_per_task: wide_hit_all * 1e3 / f64::from(wide_n + 1),
        parser_programs: programs,
        parser_tasks: tasks,
        parser_fresh_ms: parser_fresh,
        parser_cache_fill_ms: parser_fill,
        parser_cache_hit_ms: parser_hit,
        parser_hit_us_per_task: parser_hit * 1e3 / f64::from(tasks),
    }))
}

/// The figures as a table, with the ratios to the local fresh build.
pub fn table(row: &CacheRow) -> String {
    let mut out = format!(
        "shared cache (nginx WebDAV on loopback), {} threads, median of {} alternating rounds\n",
        row.threads, row.rounds
    );
    let mut line = |name: String, tasks: u32, fresh: f64, fill: f64, hit: f64, per_hit: f64| {
        out += &format!(
            "  {name:<24} fresh {fresh:8.1} ms, cache_fill {fill:8.1} ms ({:.2}x), cache_hit {hit:8.1} ms ({:.2}x), {per_hit:.0} µs per hit of {tasks} tasks\n",
            fill / fresh,
            hit / fresh
        );
    };
    line(
        format!("wide {}", row.wide_n),
        row.wide_n,
        row.wide_fresh_ms,
        row.wide_cache_fill_ms,
        row.wide_cache_hit_ms,
        row.wide_hit_us_per_task,
    );
    line(
        format!("wide {} (root cached)", row.wide_n),
        row.wide_n + 1,
        row.wide_fresh_ms,
        row.wide_cache_fill_all_ms,
        row.wide_cache_hit_all_ms,
        row.wide_hit_all_us_per_task,
    );
    line(
        format!("parser {} programs", row.parser_programs),
        row.parser_tasks,
        row.parser_fresh_ms,
        row.parser_cache_fill_ms,
        row.parser_cache_hit_ms,
        row.parser_hit_us_per_task,
    );
    out
}
