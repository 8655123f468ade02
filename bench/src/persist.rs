//! Save/load figures and the cold (new-process) no-op child.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pie::tracker::Tracker;
use pie::Pie;

use crate::workload::BenchTask;

/// Save and load figures of one store.
pub struct Persisted {
    /// The store file, left for the cold child.
    pub store: PathBuf,
    /// Median `Pie::save` time.
    pub save_ms: f64,
    /// Median `Pie::load` time.
    pub load_ms: f64,
    /// Size of the store file.
    pub store_bytes: u64,
}

const REPEAT: usize = 3;

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Saves `pie` to `dir/store.pie` and loads it back (medians of a few runs); the store stays for the cold child.
pub fn measure(pie: &Pie<BenchTask, u64>, dir: &Path) -> io::Result<Persisted> {
    let store = dir.join("store.pie");
    let mut saves = Vec::new();
    for _ in 0..REPEAT {
        // A full write each time: `save` writes nothing when the file already holds the same store, so each
        // round starts without a file.
        match std::fs::remove_file(&store) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let start = Instant::now();
        pie.save(&store).map_err(io::Error::other)?;
        saves.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mut loads = Vec::new();
    for _ in 0..REPEAT {
        let start = Instant::now();
        let loaded: Pie<BenchTask, u64> = Pie::load(&store, pie::tracker::NoopTracker).map_err(io::Error::other)?;
        loads.push(start.elapsed().as_secs_f64() * 1e3);
        if loaded.task_count() != pie.task_count() {
            return Err(io::Error::other("the loaded store has a different number of tasks"));
        }
        drop(loaded);
    }
    Ok(Persisted {
        store_bytes: fs::metadata(&store)?.len(),
        store,
        save_ms: median(saves),
        load_ms: median(loads),
    })
}

/// Remembers whether any task executed.
#[derive(Default)]
pub struct Executed(pub bool);

impl Tracker<BenchTask> for Executed {
    fn execute_start(&mut self, _task: &BenchTask) {
        self.0 = true;
    }
}

/// Loads the store at `store` and builds `root`: the load time in ms and whether anything executed.
pub fn cold_noop(store: &Path, root: &BenchTask) -> io::Result<(f64, bool)> {
    let start = Instant::now();
    let mut pie = Pie::load(store, Executed::default()).map_err(io::Error::other)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    pie.new_session().require(root);
    Ok((load_ms, pie.tracker().0))
}
