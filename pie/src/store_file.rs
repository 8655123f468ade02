//! The store file as a resource shared by processes: [`StoreFile`] holds an exclusive lock on a store for a whole
//! load–build–save cycle (cargo feature `serde`). Its documentation describes the lock and its limits; this module
//! keeps the invariant that a `StoreFile` exists only while its process holds the lock.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::tracker::Tracker;
use crate::{LoadError, Pie, SaveError, Task};

/// Why a [`StoreFile`] could not be opened. Every message names the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process (or another handle in this process) holds the store ([`StoreFile::try_open`] only).
    #[error("the pie store '{}' is in use by {}", path.display(), Holder(*pid))]
    Held {
        /// The store file.
        path: PathBuf,
        /// The id of the process holding the store, as it wrote it into the lock file; `None` when it could not be
        /// read. Informational: it may be stale for a moment after the lock changed hands.
        pid: Option<u32>,
    },
    /// The lock file could not be created, opened or locked.
    #[error("cannot lock the pie store '{}': {step} failed: {source}", path.display())]
    Io {
        /// The store file.
        path: PathBuf,
        /// The step that failed, naming the file or folder it was applied to.
        step: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl LockError {
    /// The store file that could not be opened.
    pub fn path(&self) -> &Path {
        match self {
            LockError::Held { path, .. } | LockError::Io { path, .. } => path,
        }
    }
}

/// A store file held exclusively: load the [`Pie`] through it, build, and save through it; no other process
/// holding a `StoreFile` of the same store runs its cycle in between. The lock is released on drop.
///
/// [`Pie::load`] and [`Pie::save`] alone take no lock. Each is safe on its own (a save replaces the file
/// atomically, a load sees the old or the new file), but two processes that each load, build and save one store
/// lose work: the second save replaces the first with a store that never saw the first build. Getting the `Pie`
/// from a `StoreFile` and saving it through the same handle makes the cycle exclusive, so every process starts
/// from the store the previous one saved.
///
/// # The lock
///
/// The lock is taken on a sibling of the store, `NAME.lock` (created when missing, never deleted), not on the
/// store itself: [`Pie::save`] replaces the store by renaming a new file over it, so a lock on the store's file
/// would be a lock on a file that the next save unlinks. The lock is the operating system's advisory whole-file
/// lock ([`File::lock`]: `flock` on Unix, `LockFileEx` on Windows): it excludes every process that also asks for
/// it, none that does not. It is released when the `StoreFile` is dropped, and by the operating system when the
/// process ends in any way, so a killed build never leaves a store locked. Processes that tasks spawn do not
/// inherit it.
///
/// While holding the lock, a process writes its id into the lock file so that a waiting process can say who holds
/// the store. That id is informational only: it may be missing or stale for a moment after the lock changes hands
/// (and is not readable on Windows, where the lock also excludes reading).
///
/// The lock belongs to the open file, not to the process: a second [`open`](Self::open) of the same store in the
/// same process waits for the first handle to be dropped (so it waits forever on the same thread), and
/// [`try_open`](Self::try_open) reports [`LockError::Held`] with the process's own id. Deleting the lock file
/// while a store is held would let the next process lock a new file; don't.
///
/// # Example
/// One load–build–save cycle, as a build tool runs it once per invocation:
/// ```
/// use pie::tracker::NoopTracker;
/// use pie::{Context, Pie, StoreFile, Task};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
/// struct Square(u64);
///
/// impl Task for Square {
///     type Output = u64;
///     fn execute<C: Context<Self>>(&self, _context: &mut C) -> u64 {
///         self.0 * self.0
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("build").join("pie.store");
///
/// // Waits while another process holds the store; from here until `store` is dropped, nobody else loads or saves
/// // it through a `StoreFile`.
/// let store = StoreFile::open(&path)?;
/// let mut pie: Pie<Square, u64> = store.load(NoopTracker)?;
/// assert_eq!(pie.new_session().require(&Square(7)), 49);
/// store.save(&pie)?;
///
/// // While the store is held, another handle cannot get it.
/// assert!(matches!(StoreFile::try_open(&path), Err(pie::LockError::Held { .. })));
/// drop(store);
///
/// // The next cycle starts from what the last one saved.
/// let store = StoreFile::try_open(&path)?;
/// let pie: Pie<Square, u64> = store.load(NoopTracker)?;
/// assert_eq!(pie.task_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StoreFile {
    /// The store, absolute.
    path: PathBuf,
    /// The sibling that is locked.
    lock_path: PathBuf,
    /// The open lock file; the lock lasts as long as it is open.
    lock: File,
}

impl StoreFile {
    /// Takes the lock on the store at `path`, waiting as long as another process holds it; while waiting, says
    /// once on standard error which process holds it:
    /// `pie: waiting for the store 'PATH', held by process PID`.
    ///
    /// The store need not exist (loading it then gives an empty `Pie`); its folder is created when missing, for
    /// the lock file. A relative `path` is made absolute against the working directory now.
    ///
    /// # Errors
    /// [`LockError::Io`] when `path` names a folder or no file at all, or when the lock file cannot be created,
    /// opened or locked (say, the folder is read-only, or the file system does not support locks).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LockError> {
        Self::acquire(path.as_ref(), Wait::Yes)
    }

    /// Takes the lock on the store at `path` when nobody holds it; does not wait.
    ///
    /// # Errors
    /// [`LockError::Held`] at once when another process (or another handle in this process) holds the store,
    /// naming that process when it can; [`LockError::Io`] as for [`open`](Self::open).
    pub fn try_open(path: impl AsRef<Path>) -> Result<Self, LockError> {
        Self::acquire(path.as_ref(), Wait::No)
    }

    /// The store file (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file beside the store: the store's name followed by `.lock`.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// Loads the store, as [`Pie::load`] does, reporting to `tracker`; without a store file yet, an empty `Pie`.
    ///
    /// # Errors
    /// The [`LoadError`] of [`Pie::load`] for a file that cannot be used. The lock is still held, so a build from
    /// an empty `Pie` followed by [`save`](Self::save) replaces the bad file without racing anyone.
    pub fn load<T, A>(&self, tracker: A) -> Result<Pie<T, T::Output, A>, LoadError>
    where
        T: Task + Serialize + DeserializeOwned,
        T::Output: Serialize + DeserializeOwned,
        A: Tracker<T>,
    {
        Pie::load(&self.path, tracker)
    }

    /// Saves `pie` to the store atomically, as [`Pie::save`] does. May be called more than once (an editor saves
    /// after every build); the lock stays held until the handle is dropped.
    ///
    /// # Errors
    /// The [`SaveError`] of [`Pie::save`]; the store file then still holds what it held before.
    pub fn save<T, A>(&self, pie: &Pie<T, T::Output, A>) -> Result<(), SaveError>
    where
        T: Task + Serialize + DeserializeOwned,
        T::Output: Serialize + DeserializeOwned,
        A: Tracker<T>,
    {
        pie.save(&self.path)
    }

    fn acquire(path: &Path, wait: Wait) -> Result<Self, LockError> {
        let failed = |path: &Path, step: String| {
            let path = path.to_path_buf();
            move |source| LockError::Io { path, step, source }
        };
        let path = std::path::absolute(path).map_err(failed(path, "making the path absolute".to_string()))?;
        if path.is_dir() {
            let source = io::Error::new(io::ErrorKind::IsADirectory, "the path names a folder, not a store file");
            return Err(failed(&path, "checking the path".to_string())(source));
        }
        let Some(name) = path.file_name() else {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file");
            return Err(failed(&path, "choosing the lock file's name".to_string())(source));
        };
        let mut lock_name = name.to_os_string();
        lock_name.push(".lock");
        let lock_path = path.with_file_name(lock_name);
        if let Some(folder) = lock_path.parent() {
            fs::create_dir_all(folder).map_err(failed(&path, format!("creating the folder '{}'", folder.display())))?;
        }
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            // The holder's id is in there; only the next holder may overwrite it.
            .truncate(false)
            .open(&lock_path)
            .map_err(failed(
                &path,
                format!("opening the lock file '{}'", lock_path.display()),
            ))?;
        let locking = || format!("locking the lock file '{}'", lock_path.display());
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = read_pid(&lock);
                if wait == Wait::No {
                    return Err(LockError::Held { path, pid });
                }
                eprintln!(
                    "pie: waiting for the store '{}', held by {}",
                    path.display(),
                    Holder(pid)
                );
                lock_waiting(&lock).map_err(failed(&path, locking()))?;
            }
            Err(TryLockError::Error(source)) => return Err(failed(&path, locking())(source)),
        }
        // Best effort: the id only makes a waiting process's message more helpful; the lock holds without it.
        let _ = write_pid(&lock);
        Ok(Self { path, lock_path, lock })
    }
}

impl Drop for StoreFile {
    fn drop(&mut self) {
        // Best effort: an id left behind names a process that no longer holds the store, until the next holder
        // overwrites it. Closing the file (right after this) releases the lock in any case.
        let _ = self.lock.set_len(0);
        let _ = self.lock.unlock();
    }
}

/// Whether to wait for the lock.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Wait {
    Yes,
    No,
}

/// Who holds a store, for messages: `process PID`, with `(this process)` when it is this one.
struct Holder(Option<u32>);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) if pid == std::process::id() => write!(f, "process {pid} (this process)"),
            Some(pid) => write!(f, "process {pid}"),
            None => write!(f, "another process"),
        }
    }
}

/// Blocks until `file` is locked, retrying when a signal interrupts the wait.
fn lock_waiting(file: &File) -> io::Result<()> {
    loop {
        match file.lock() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// The process id in the lock file, if it holds one.
fn read_pid(mut file: &File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    // An id is a few digits; more is not an id.
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(mut file: &File) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
}
