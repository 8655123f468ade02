//! The editor following its files on disk: what a file holds now ([`OnDisk`]), and a [`DiskWatcher`] that says
//! which of the open files may have changed, with what each holds after the change.
//!
//! The watcher watches the *folders* of the files (non-recursively), not the files themselves: most editors save by
//! writing a temporary file and renaming it over the original, which replaces the file a watch on it would follow.
//! Events are debounced (`notify-debouncer-full`), so the several events of one save arrive as one batch and the
//! file is read once it is quiet, not half-written. An event names a file of the folder; every open file with that
//! name is then read again and reported, whether or not its content changed (the editor compares it with what it
//! knows, so the events of its own saves change nothing). Accesses (opening, reading) are not changes and are not
//! reported. When the watcher says it lost events, every open file is reported.
//!
//! Only events are followed: a folder that is removed and made again is no longer watched. The editor's save still
//! compares the file with what it last knew before writing it, so an outside change is never overwritten silently.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer_opt, DebounceEventResult, Debouncer, RecommendedCache};

/// What a file holds on disk, as far as the editor cares: text, nothing, or something it cannot edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnDisk {
    /// The file does not exist.
    Missing,
    /// The file's text, byte for byte (line endings and the final newline included).
    Text(String),
    /// The file exists but cannot be read as text; the reason.
    Unreadable(String),
}

impl OnDisk {
    /// Reads what `path` holds now.
    pub fn read(path: &Path) -> Self {
        match fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => OnDisk::Text(text),
                Err(_) => OnDisk::Unreadable("it is not UTF-8 text".to_string()),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => OnDisk::Missing,
            Err(_) if path.is_dir() => OnDisk::Unreadable("it is a directory".to_string()),
            Err(e) => OnDisk::Unreadable(e.to_string()),
        }
    }
}

/// Watches the folders of some files and reports which of them may have changed on disk.
pub struct DiskWatcher {
    /// Kept for its watches; dropping it stops them.
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    events: Receiver<DebounceEventResult>,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for DiskWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskWatcher")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl DiskWatcher {
    /// Starts watching the folders of `files` (absolute paths), reporting changes once a file has been quiet for
    /// `debounce`. The second value holds a warning per folder that cannot be watched (a missing one, say): the
    /// changes of its files are not followed.
    ///
    /// # Errors
    /// The operating system's file watcher cannot be started (on Linux: too many inotify instances).
    pub fn new(files: &[PathBuf], debounce: Duration) -> Result<(Self, Vec<String>), String> {
        let (sender, events) = mpsc::channel();
        // Changes only: the builds read these files, and a read is no change (on Linux, an `IN_OPEN` event each).
        let config = notify::Config::default().with_event_kinds(notify::EventKindMask::CORE);
        let handler = move |result| {
            // The receiver is gone only when the watcher is dropped; nothing to do with late events then.
            let _ = sender.send(result);
        };
        let mut debouncer = new_debouncer_opt(debounce, None, handler, RecommendedCache::new(), config)
            .map_err(|e| format!("cannot follow the files on disk: {e}"))?;
        let folders: BTreeSet<&Path> = files.iter().filter_map(|file| file.parent()).collect();
        let mut warnings = Vec::new();
        for folder in folders {
            if let Err(e) = debouncer.watch(folder, RecursiveMode::NonRecursive) {
                warnings.push(format!(
                    "warning: cannot watch {} ({e}); changes on disk to its files are seen only when saving",
                    folder.display()
                ));
            }
        }
        let watcher = Self {
            _debouncer: debouncer,
            events,
            files: files.to_vec(),
        };
        Ok((watcher, warnings))
    }

    /// The files that may have changed since the last call, each with what it holds now, in the order given (each
    /// once). Waits up to `wait` for the first batch of events (`Duration::ZERO`: not at all), then takes every
    /// batch already there.
    pub fn changes(&self, wait: Duration) -> Vec<(PathBuf, OnDisk)> {
        let first = match self.events.recv_timeout(wait) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return Vec::new(),
        };
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        for batch in std::iter::once(first).chain(self.events.try_iter()) {
            match batch {
                Ok(events) => {
                    for event in events {
                        if event.need_rescan() {
                            touched.extend(0..self.files.len());
                        }
                        // Opening, reading and closing change nothing; reporting them would make every read of a
                        // reported file (this watcher's own, the build's) report it again.
                        if matches!(event.kind, EventKind::Access(_)) {
                            continue;
                        }
                        for path in &event.paths {
                            touched.extend(self.named_by(path));
                        }
                    }
                }
                // Errors may hide changes: look at everything.
                Err(_) => touched.extend(0..self.files.len()),
            }
        }
        let mut seen = BTreeSet::new();
        touched
            .into_iter()
            .map(|index| &self.files[index])
            .filter(|file| seen.insert(*file))
            .map(|file| (file.clone(), OnDisk::read(file)))
            .collect()
    }

    /// The indices of the files that an event naming `path` may concern: those with its name (in a watched folder;
    /// matching names rather than whole paths keeps a path spelled differently from being missed), and those in
    /// `path` itself when it is one of the folders.
    fn named_by<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = usize> + 'a {
        self.files.iter().enumerate().filter_map(move |(index, file)| {
            let same_name = file.file_name().is_some() && file.file_name() == path.file_name();
            let in_folder = file.parent() == Some(path);
            (same_name || in_folder).then_some(index)
        })
    }
}
