//! The watch-mode figure (issue 12): `watch_latency_ms`, from writing one input of `wide` to the rebuilt root
//! output being delivered by a `pie::watch::Watcher`, median of [`EDITS`] edits, each of another input.
//!
//! The watcher runs on a thread of its own with the debounce [`DEBOUNCE`] (its default tick, a tenth of that);
//! it starts from the store that the harness saved, so its first build is a top-down no-op. The time of delivery
//! is read first thing in the callback. Each edit must give a build that executed exactly the changed input's
//! reader and the root (checked, not timed), so the figure is that of a real bottom-up rebuild.

use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pie::stamp::FileStamper;
use pie::tracker::NoopTracker;
use pie::watch::{BuildCause, WatchConfig, Watcher};
use pie::Pie;

use crate::workload::{input_path, BenchTask, Shape};

/// The debounce setting the figure is measured with.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Edits measured.
pub const EDITS: u32 = 20;
/// How long to wait for one build before giving up (a 1M-task first build included).
const PATIENCE: Duration = Duration::from_secs(600);

/// The watch figures of one workload.
pub struct WatchFigures {
    /// Median time from writing an input to the delivery of the rebuilt root output.
    pub latency_ms: f64,
    /// Median time of the builds themselves (`Build::duration`): what the latency holds besides the debounce and
    /// the watcher.
    pub build_ms: f64,
}

/// What the watch thread hands over per build.
struct Delivered {
    at: Instant,
    cause: BuildCause,
    output: u64,
    executed: usize,
    build: Duration,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Measures `watch_latency_ms` for `shape` (a `wide` workload whose store is at `store`, up to date).
pub fn measure(shape: &Shape, stamper: FileStamper, store: &Path) -> io::Result<WatchFigures> {
    let pie: Pie<BenchTask, u64> = Pie::load(store, NoopTracker).map_err(io::Error::other)?;
    let root = shape.root(stamper);
    let watcher = Watcher::new(pie, vec![root], WatchConfig::default().with_debounce(DEBOUNCE));
    let stop = watcher.stop_handle();
    let (sender, builds) = mpsc::channel();
    let thread = thread::spawn(move || {
        let mut watcher = watcher;
        watcher.run(|build| {
            let at = Instant::now();
            let delivered = Delivered {
                at,
                cause: build.cause().clone(),
                output: build.outputs()[0],
                executed: build.executed().len(),
                build: build.duration(),
            };
            if sender.send(delivered).is_err() {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
    });
    let next = || {
        builds
            .recv_timeout(PATIENCE)
            .map_err(|_| io::Error::other("the watcher delivered no build"))
    };
    let first = next()?;
    if first.cause != BuildCause::Initial || first.executed != 0 {
        return Err(io::Error::other(
            "the watcher's first build was not a no-op from the saved store",
        ));
    }
    let mut output = first.output;
    let (mut latencies, mut build_times) = (Vec::new(), Vec::new());
    let inputs = shape.inputs();
    for edit in 0..EDITS {
        // Spread over the inputs, none edited twice.
        let path = input_path((edit * (inputs / EDITS).max(1) + 1) % inputs);
        let written = Instant::now();
        fs::write(&path, format!("watched edit {edit}\n"))?;
        let delivered = loop {
            let delivered = next()?;
            if delivered.output != output {
                break delivered;
            }
        };
        if delivered.cause != BuildCause::Changes || delivered.executed != 2 {
            return Err(io::Error::other(format!(
                "edit {edit}: expected a bottom-up build executing the reader and the root, got {:?} executing {}",
                delivered.cause, delivered.executed
            )));
        }
        output = delivered.output;
        latencies.push((delivered.at - written).as_secs_f64() * 1e3);
        build_times.push(delivered.build.as_secs_f64() * 1e3);
    }
    stop.stop();
    thread
        .join()
        .map_err(|_| io::Error::other("the watch thread panicked"))?
        .map_err(io::Error::other)?;
    Ok(WatchFigures {
        latency_ms: median(latencies),
        build_ms: median(build_times),
    })
}
