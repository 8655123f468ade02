//! Garbage collection: removing the tasks that no root uses any more, and optionally the files they wrote.
//!
//! Runs between sessions (it takes `&mut Pie`), where only roots keep tasks live (see `crate::liveness`). The
//! store is rebuilt without the dead tasks, renumbered densely (see `Store::retain_tasks`); files that only dead
//! tasks depended on leave the store with them. Deleting provided files is opt-in and conservative: a file is
//! deleted only when a removed task provided it and no kept task provides it; a file no task provided is never
//! touched.

use std::fmt::Debug;
use std::hash::Hash;
use std::io;
use std::path::PathBuf;

use crate::liveness::live_from_roots;
use crate::stamp::is_missing;
use crate::store::Store;

/// What [`Pie::collect_garbage`](crate::Pie::collect_garbage) removed.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Garbage {
    /// How many tasks were removed (with their outputs, dependencies and claims on files).
    pub removed_tasks: usize,
    /// The files deleted from disk (absolute, normalised paths), when deletion was asked for.
    pub deleted_files: Vec<PathBuf>,
    /// Files that should have been deleted but could not be, with the reason. Missing files are not errors.
    pub failed_deletions: Vec<(PathBuf, io::Error)>,
}

/// Removes every task that no root requires (transitively) from `store`; with `delete_provided_files`, deletes the
/// files that removed tasks provided and no kept task provides.
pub(crate) fn collect<T: Eq + Hash + Clone + Debug, O: Eq>(
    store: &mut Store<T, O>,
    delete_provided_files: bool,
) -> Garbage {
    let live = live_from_roots(store);
    let removed_tasks = live.iter().filter(|live| !**live).count();
    if removed_tasks == 0 {
        return Garbage::default();
    }
    let orphaned = store.retain_tasks(&live);
    let mut garbage = Garbage {
        removed_tasks,
        ..Garbage::default()
    };
    if delete_provided_files {
        for path in orphaned {
            match std::fs::remove_file(&path) {
                Ok(()) => garbage.deleted_files.push(path),
                Err(e) if is_missing(&e) => {}
                Err(e) => garbage.failed_deletions.push((path, e)),
            }
        }
    }
    garbage
}
