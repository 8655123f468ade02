//! Save/load figures and the cold (new-process) no-op child.

use std::io;
use std::path::{Path, PathBuf};

use pie::Pie;

use crate::workload::BenchTask;

/// Save and load figures of one store.
pub struct Persisted {
    pub store: PathBuf,
    pub save_ms: f64,
    pub load_ms: f64,
    pub store_bytes: u64,
}

/// Saves `pie` in `dir` and loads it back; `None` while pie has no persistence.
pub fn measure(_pie: &Pie<BenchTask, u64>, _dir: &Path) -> io::Result<Option<Persisted>> {
    Ok(None)
}

/// Loads the store at `store` and builds `root`: the load time in ms and whether anything executed.
pub fn cold_noop(_store: &Path, _root: &BenchTask) -> io::Result<(f64, bool)> {
    Err(io::Error::other("pie has no persistence yet"))
}
