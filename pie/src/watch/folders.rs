//! The watched set: which folders are watched so that every change to a file that a live task depends on is seen.
//!
//! Files are not watched one by one: a non-recursive watch on a folder reports every entry of it that appears,
//! changes, is renamed or disappears, so one watch per *folder holding dependencies* suffices (a million inputs
//! in one folder cost one watch). A folder that does not exist (yet) is stood in for by its nearest existing
//! ancestor, whose watch reports the folder's creation. Invariants kept here:
//!
//! - Every file that a live task depends on has its folder *desired*, and every desired folder is *attached* to
//!   the path actually watched for it (its *target*: the folder itself or its nearest existing ancestor), or is
//!   listed as failed.
//! - **Nothing read before its watch existed is trusted.** When a target starts being watched (for the first time,
//!   or again because it was removed and made anew, or events were lost, or the folder it stood in for appeared),
//!   every dependency file of the folders attached to it is handed back as *pending*: the caller stamps those files
//!   in a bottom-up pass, so a change made between a task's read and the watch is not lost.
//! - The watched set follows the graph: new dependencies are added after every build (from the tasks that
//!   executed, at a cost proportional to them); folders that no live task needs any more are dropped by a full
//!   recomputation, which runs after top-down builds and once enough tasks executed since the last one that its
//!   cost (proportional to the graph) is amortised over them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use notify::RecursiveMode;
use notify_debouncer_full::{Debouncer, RecommendedCache};

use crate::dependency::Dep;
use crate::ids::{FileId, TaskId};
use crate::liveness;
use crate::store::Store;
use crate::Task;

/// The debouncer in use: the platform's recommended watcher.
pub(super) type FileWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Starts a [`FileWatcher`] that calls `handler` with each batch of events, debounced over `debounce` and looked at
/// every `tick`. It asks the operating system for changes only (`EventKindMask::CORE`): no event when a file is
/// opened or read. Builds read the watched files (every file a `Hash` stamp looks at); on Linux, each open was an
/// `IN_OPEN` event, and a build that checked a large folder overflowed the inotify queue (16,384 events by
/// default) with its own reads, so that every build after it was a full check for lost events.
pub(super) fn start_watcher(
    debounce: std::time::Duration,
    tick: Option<std::time::Duration>,
    handler: impl notify_debouncer_full::DebounceEventHandler,
) -> notify::Result<FileWatcher> {
    let config = notify::Config::default().with_event_kinds(notify::EventKindMask::CORE);
    notify_debouncer_full::new_debouncer_opt(debounce, tick, handler, RecommendedCache::new(), config)
}

/// Which file-system object is at a path, to notice a folder that was removed and made anew under the same name
/// (its old watch died with it).
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
struct Identity(#[cfg(unix)] (u64, u64));

fn identity_of(path: &Path) -> Option<Identity> {
    let meta = fs::metadata(path).ok().filter(|m| m.is_dir())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(Identity((meta.dev(), meta.ino())))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Some(Identity())
    }
}

/// The nearest existing folder at or above `folder`, with its identity.
fn nearest_existing(folder: &Path) -> Option<(PathBuf, Identity)> {
    folder
        .ancestors()
        .find_map(|path| identity_of(path).map(|identity| (path.to_path_buf(), identity)))
}

/// A folder holding dependency files.
#[derive(Debug, Default)]
struct Desired {
    files: Vec<FileId>,
    /// The watched path standing for it; `None` while it is not attached.
    target: Option<PathBuf>,
}

/// A watched path.
#[derive(Debug)]
struct Watched {
    identity: Identity,
    /// The desired folders attached to it (itself, or folders below it that do not exist).
    folders: Vec<PathBuf>,
    /// Whether the watch is in place; `false` when watching failed (see `Folders::failed`).
    ok: bool,
}

/// What a synchronisation found.
#[derive(Debug, Default)]
pub(super) struct SyncResult {
    /// Dependency files to stamp now: their folder's watch was (re)established after they may have been read.
    pub(super) pending: Vec<FileId>,
    /// Folders that started being watched again (or instead of a removed folder), for the report.
    pub(super) rewatched: Vec<PathBuf>,
    /// Messages about paths that could not be watched, each said once.
    pub(super) notices: Vec<String>,
}

/// The watched set; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct Folders {
    desired: HashMap<PathBuf, Desired>,
    watched: HashMap<PathBuf, Watched>,
    /// By file id: whether the file is listed in its desired folder.
    known: Vec<bool>,
    /// Targets to check again (their folder was named by an event: it may have been removed, replaced or made).
    recheck: Vec<PathBuf>,
    /// Targets to watch anew whatever they look like now (see `note_event_path`).
    renew: Vec<PathBuf>,
    /// Tasks executed since the last full recomputation.
    executed_since_full: usize,
    /// Paths whose failure to be watched was already said.
    failed_said: HashSet<PathBuf>,
    /// Testing only: paths whose watch fails as if the operating system's watch limit were reached (no real way to
    /// make a watch fail works when tests run as root, as in CI's containers).
    #[cfg(test)]
    pub(super) refuse: Refuse,
}

/// Testing only: the paths that [`Folders`] may not watch, shared with the test that changes them while the
/// watcher runs.
#[cfg(test)]
pub(super) type Refuse = std::sync::Arc<std::sync::Mutex<HashSet<PathBuf>>>;

impl Folders {
    /// Whether some folder could not be watched: changes there are only seen by top-down builds.
    pub(super) fn degraded(&self) -> bool {
        self.watched.values().any(|w| !w.ok)
    }

    /// Whether `path` is a desired or watched folder (an event naming one is worth reporting).
    pub(super) fn is_folder(&self, path: &Path) -> bool {
        self.desired.contains_key(path) || self.watched.contains_key(path)
    }

    /// Notes a path named by an event. When the path is watched and the event says an entry was made, removed or
    /// renamed there, its watch may have died (a folder removed and made anew may even get the same inode
    /// number), so it is watched anew at the next sync; an entry appearing in a path that stands in for missing
    /// folders makes those folders be looked for again.
    pub(super) fn note_event_path(&mut self, path: &Path, structural: bool) {
        if structural && self.watched.contains_key(path) {
            self.renew.push(path.to_path_buf());
        }
        if let Some(parent) = path.parent() {
            if let Some(watched) = self.watched.get(parent) {
                if watched.folders.iter().any(|f| f != parent) {
                    self.recheck.push(parent.to_path_buf());
                }
            }
        }
    }

    /// Notes that events were lost (a queue overflow, a watcher error): among them may be the only sign that a
    /// watched folder was removed and made anew (perhaps with the same inode number), whose watch then died with
    /// the old folder. Every watch is made anew at the next sync, and the files of its folders become pending.
    pub(super) fn events_lost(&mut self) {
        self.renew
            .extend(self.watched.iter().filter(|(_, w)| w.ok).map(|(path, _)| path.clone()));
    }

    /// Brings the watched set up to date after a build. `executed` are the tasks the build executed; `full` asks
    /// for a recomputation from the live tasks (after a top-down build). Returns the files to stamp now.
    pub(super) fn sync<T: Task>(
        &mut self,
        store: &Store<T, T::Output>,
        watcher: &mut FileWatcher,
        executed: &[TaskId],
        full: bool,
    ) -> SyncResult {
        let mut result = SyncResult::default();
        self.executed_since_full += executed.len();
        // The full recomputation costs O(graph); doing it once per `task_count / 64` executions keeps its cost per
        // executed task constant, while small graphs get it after every build.
        if full || self.executed_since_full.saturating_mul(64) >= store.task_count() {
            self.recompute(store, watcher, &mut result);
        } else {
            for &id in executed {
                for_each_file_dep(store, id, |file| self.add_file(store, file, watcher, &mut result));
            }
        }
        let mut renew = std::mem::take(&mut self.renew);
        renew.sort_unstable();
        renew.dedup();
        for target in renew {
            self.check_target(&target, true, watcher, &mut result);
        }
        let mut recheck = std::mem::take(&mut self.recheck);
        // Failed watches are retried after every build: the limit may have been raised or other watches freed.
        recheck.extend(self.watched.iter().filter(|(_, w)| !w.ok).map(|(path, _)| path.clone()));
        recheck.sort_unstable();
        recheck.dedup();
        for target in recheck {
            self.check_target(&target, false, watcher, &mut result);
        }
        self.collect_pending(&mut result);
        result
    }

    /// Recomputes the desired folders from the live tasks, attaching new folders and detaching unneeded ones.
    fn recompute<T: Task>(&mut self, store: &Store<T, T::Output>, watcher: &mut FileWatcher, result: &mut SyncResult) {
        self.executed_since_full = 0;
        let live = liveness::live_from_roots(store);
        let mut needed = vec![false; store.file_count()];
        for (index, _) in live.iter().enumerate().filter(|(_, live)| **live) {
            for_each_file_dep(store, TaskId::from_raw(index as u32), |file| {
                needed[file.0 as usize] = true
            });
        }
        // Rebuild every folder's file list; folders left without files are detached.
        for desired in self.desired.values_mut() {
            desired.files.clear();
        }
        self.known = vec![false; needed.len()];
        let mut last: Option<(&Path, PathBuf)> = None;
        for (index, _) in needed.iter().enumerate().filter(|(_, needed)| **needed) {
            let file = FileId(index as u32);
            let path = store.file_path(file);
            let Some(parent) = path.parent() else { continue };
            // Files of one folder are often interned one after another: skip the hash lookup for them.
            let folder = match &last {
                Some((last_parent, folder)) if *last_parent == parent => folder.clone(),
                _ => {
                    let folder = parent.to_path_buf();
                    last = Some((parent, folder.clone()));
                    folder
                }
            };
            self.known[index] = true;
            self.desired.entry(folder).or_default().files.push(file);
        }
        let empty: Vec<PathBuf> = self
            .desired
            .iter()
            .filter(|(_, d)| d.files.is_empty())
            .map(|(folder, _)| folder.clone())
            .collect();
        for folder in empty {
            self.detach(&folder, watcher);
            self.desired.remove(&folder);
        }
        let unattached: Vec<PathBuf> = self
            .desired
            .iter()
            .filter(|(_, d)| d.target.is_none())
            .map(|(folder, _)| folder.clone())
            .collect();
        for folder in unattached {
            self.attach(&folder, watcher, result);
        }
    }

    /// Adds one dependency file (from a task that just executed).
    fn add_file<T: Task>(
        &mut self,
        store: &Store<T, T::Output>,
        file: FileId,
        watcher: &mut FileWatcher,
        result: &mut SyncResult,
    ) {
        let index = file.0 as usize;
        if index >= self.known.len() {
            self.known.resize(index + 1, false);
        }
        if std::mem::replace(&mut self.known[index], true) {
            return;
        }
        let Some(folder) = store.file_path(file).parent() else {
            return;
        };
        let desired = self.desired.entry(folder.to_path_buf()).or_default();
        desired.files.push(file);
        if desired.target.is_none() {
            let folder = folder.to_path_buf();
            self.attach(&folder, watcher, result);
        }
        // A new file in a folder already watched needs no stamping: its watch existed when the task read it.
    }

    /// Attaches `folder` to its nearest existing ancestor, watching that when it is not watched yet.
    fn attach(&mut self, folder: &Path, watcher: &mut FileWatcher, result: &mut SyncResult) {
        let Some((target, identity)) = nearest_existing(folder) else {
            return;
        };
        if self.watched.get(&target).is_some_and(|w| w.identity != identity) {
            // Replaced since it was watched: its old watch died with it. Re-attach what it stood for first.
            self.check_target(&target, false, watcher, result);
        }
        if let Some(desired) = self.desired.get_mut(folder) {
            desired.target = Some(target.clone());
        }
        if let Some(watched) = self.watched.get_mut(&target) {
            watched.folders.push(folder.to_path_buf());
            return;
        }
        let ok = self.start_watch(&target, watcher, result);
        let folders = vec![folder.to_path_buf()];
        self.watched.insert(target, Watched { identity, folders, ok });
    }

    /// Detaches `folder` from its target, unwatching the target when nothing else needs it.
    fn detach(&mut self, folder: &Path, watcher: &mut FileWatcher) {
        let Some(target) = self.desired.get_mut(folder).and_then(|d| d.target.take()) else {
            return;
        };
        if let Some(watched) = self.watched.get_mut(&target) {
            watched.folders.retain(|f| f != folder);
            if watched.folders.is_empty() {
                if watched.ok {
                    // It may already be gone (removed with its folder); nothing to undo then.
                    let _ = watcher.unwatch(&target);
                }
                self.watched.remove(&target);
            }
        }
    }

    /// Watches `target`, returning whether that worked. A new watch makes the files of its folders pending (see
    /// `collect_pending`); a failure is said once per path.
    fn start_watch(&mut self, target: &Path, watcher: &mut FileWatcher, result: &mut SyncResult) -> bool {
        match self.watch(target, watcher) {
            Ok(()) => {
                self.failed_said.remove(target);
                result.rewatched.push(target.to_path_buf());
                true
            }
            Err(error) => {
                if self.failed_said.insert(target.to_path_buf()) {
                    result
                        .notices
                        .push(format!("cannot watch '{}': {error}", target.display()));
                }
                false
            }
        }
    }

    /// Asks the operating system to watch `target`.
    fn watch(&self, target: &Path, watcher: &mut FileWatcher) -> notify::Result<()> {
        #[cfg(test)]
        if self.refuse.lock().expect("refused paths poisoned").contains(target) {
            return Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch).add_path(target.to_path_buf()));
        }
        watcher.watch(target, RecursiveMode::NonRecursive)
    }

    /// Checks a watched path again: when it disappeared or was replaced, stands for folders that may have
    /// appeared, could not be watched, or `renew` says so, its folders are attached anew (a new watch makes their
    /// files pending).
    fn check_target(&mut self, target: &Path, renew: bool, watcher: &mut FileWatcher, result: &mut SyncResult) {
        let Some(watched) = self.watched.remove(target) else {
            return;
        };
        let stands_for_missing = watched.folders.iter().any(|f| f != target);
        if !renew && watched.ok && !stands_for_missing && identity_of(target) == Some(watched.identity) {
            self.watched.insert(target.to_path_buf(), watched);
            return;
        }
        if watched.ok {
            // Removing a watch whose folder is gone fails harmlessly.
            let _ = watcher.unwatch(target);
        }
        for folder in &watched.folders {
            if let Some(desired) = self.desired.get_mut(folder) {
                desired.target = None;
                // Events for its files may be lost with the old watch (and the debouncer reports only the removal
                // of a folder, not of the files in it): stamp them all.
                if watched.ok {
                    result.pending.extend_from_slice(&desired.files);
                }
            }
        }
        for folder in watched.folders {
            self.attach(&folder, watcher, result);
            // A folder that was not watched is stamped once it is: by `collect_pending` when its own target is
            // watched anew, here when it joined a target watched already. While it still cannot be watched, its
            // files wait for the next top-down build: making them pending would run the next build at once, and
            // the one after, never waiting for events or the poll interval.
            if !watched.ok {
                self.pend_if_watched(&folder, result);
            }
        }
    }

    /// Adds to `result.pending` the files of `folder` when its target is watched.
    fn pend_if_watched(&self, folder: &Path, result: &mut SyncResult) {
        let Some(desired) = self.desired.get(folder) else {
            return;
        };
        let watched = desired.target.as_ref().and_then(|target| self.watched.get(target));
        if watched.is_some_and(|w| w.ok) {
            result.pending.extend_from_slice(&desired.files);
        }
    }

    /// Adds to `result.pending` the files of every folder attached to a path watched anew in this sync.
    fn collect_pending(&self, result: &mut SyncResult) {
        for target in &result.rewatched {
            if let Some(watched) = self.watched.get(target) {
                for folder in &watched.folders {
                    if let Some(desired) = self.desired.get(folder) {
                        result.pending.extend_from_slice(&desired.files);
                    }
                }
            }
        }
        result.pending.sort_unstable_by_key(|f| f.0);
        result.pending.dedup();
    }
}

/// Calls `f` with every file that task `id` requires or provides, by its recorded dependencies.
fn for_each_file_dep<T: Task>(store: &Store<T, T::Output>, id: TaskId, mut f: impl FnMut(FileId)) {
    for index in 0..store.dep_count(id) {
        match store.dep(id, index) {
            Dep::RequireFile(dep) | Dep::ProvideFile(dep) => f(dep.file),
            Dep::RequireTask(_) => {}
        }
    }
}
