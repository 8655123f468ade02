//! Persistence: a [`Pie`]'s dependency graph and cached outputs saved to one file and loaded by a later process,
//! so that a build tool made with pie executes only what changed since its last run (cargo feature `serde`).
//!
//! # The store file
//!
//! A fixed header followed by the payload; integers are little-endian.
//!
//! | offset | size | field                                                                     |
//! |-------:|-----:|---------------------------------------------------------------------------|
//! |      0 |    8 | magic bytes `PIESTORE`                                                    |
//! |      8 |    4 | format version, `u32` (currently 1)                                       |
//! |     12 |   32 | type fingerprint: blake3 of the task and output type names               |
//! |     44 |    8 | payload length in bytes, `u64`                                            |
//! |     52 |   32 | checksum: blake3 of header bytes 0..52 followed by the payload           |
//! |     84 |  ... | payload: the store, encoded with [postcard] (a compact serde format)     |
//!
//! The payload holds the tasks in id order and, for each, its cached output, output version, position in the
//! topological order and its dependencies in the order they were made (with their stamps); the file paths; and
//! the counters for new orders and versions. What can be derived is not stored but rebuilt on load: the reverse
//! edges (who requires a task or a file, who provides a file). Session state (marks, the require stack) is never
//! part of a store.
//!
//! [`Pie::load`] checks, in this order, and refuses the file with the matching [`LoadError`]: the magic, the format
//! version, the length (truncated, trailing bytes), the checksum, the type fingerprint, the decoding of the
//! payload, and the invariants of the graph (ids in range, a valid topological order, at most one provider per
//! file...). Only a file that passes every check is used, so a damaged store is never decoded into a wrong graph
//! and a bad store never makes pie panic.
//!
//! The type fingerprint is made from [`std::any::type_name`] of the task and output types: it refuses a store
//! written for another build script or for renamed types. It cannot see a type whose fields changed under the
//! same name; such a store usually fails to decode or to validate and is refused, but a change that happens to
//! decode (say, two fields of the same type swapped) would be read as the new layout. When changing the fields of
//! a task or output type, rename the type or delete the store. (Type names may also differ between compiler
//! versions; a store is then refused, never misread.)
//!
//! # Crash safety
//!
//! [`Pie::save`] never writes to the store file itself. It writes the complete new file to a temporary file in the
//! same folder (`.NAME.tmp.PID.N`), flushes it to the disk (fsync), renames it over the store and flushes the
//! folder. A rename within one file system replaces the folder entry atomically: every reader, and the file system
//! after a crash, finds the name pointing either to the complete old file or to the complete new one. Flushing the
//! temporary file before the rename means that after a power loss the name cannot point to a file whose contents
//! never reached the disk; flushing the folder makes the rename itself durable before `save` returns. A process
//! killed during `save` leaves the old store and at worst a stray temporary file, which is never read and may be
//! deleted. Should the file be damaged anyway (a disk error, a file system without these guarantees, an edit by
//! hand), the checksum refuses it. Two processes saving to one path concurrently each write a complete file; the
//! last rename wins.

use std::any::type_name;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::Store;
use crate::tracker::Tracker;
use crate::{Pie, Task};

const MAGIC: [u8; 8] = *b"PIESTORE";
/// The version of the store format this pie reads and writes. Bump it whenever the header or the serialised form
/// of the store (`Store`, `Dep`, stamps, paths) changes.
pub(crate) const FORMAT_VERSION: u32 = 2;
const VERSION_END: usize = 12;
const FINGERPRINT: std::ops::Range<usize> = 12..44;
const LENGTH: std::ops::Range<usize> = 44..52;
const CHECKSUM: std::ops::Range<usize> = 52..84;
const HEADER_LEN: usize = 84;

/// Why [`Pie::load`] refused a store file. Every message names the file and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file exists but could not be read.
    #[error("cannot read the pie store '{}': {source}", path.display())]
    Io {
        /// The store file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is empty.
    #[error("the pie store '{}' is empty", path.display())]
    Empty {
        /// The store file.
        path: PathBuf,
    },
    /// The file is shorter than its header says, or than a header.
    #[error("the pie store '{}' is truncated: it has {actual} bytes where {expected} are needed", path.display())]
    Truncated {
        /// The store file.
        path: PathBuf,
        /// The file's length.
        actual: u64,
        /// The length the file should have (for a file shorter than a header: the header's length).
        expected: u64,
    },
    /// The file does not start with the magic bytes: it is not a pie store.
    #[error("'{}' is not a pie store: it does not start with the magic bytes \"PIESTORE\"", path.display())]
    WrongMagic {
        /// The file.
        path: PathBuf,
    },
    /// The store was written in a format version this pie does not read.
    #[error(
        "the pie store '{}' has format version {found}, but this pie reads only version {supported}; delete it to \
         start from scratch",
        path.display()
    )]
    UnsupportedVersion {
        /// The store file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this pie reads.
        supported: u32,
    },
    /// The store was written for other task or output types (another build script, or renamed types).
    #[error(
        "the pie store '{}' was written for other task or output types than `{task}` and `{output}` (by another \
         build script, or before they were renamed); delete it to start from scratch",
        path.display()
    )]
    TypeMismatch {
        /// The store file.
        path: PathBuf,
        /// The task type that loading expected.
        task: &'static str,
        /// The output type that loading expected.
        output: &'static str,
    },
    /// The file is longer than its header says, or its payload has bytes left over after decoding.
    #[error("the pie store '{}' is corrupt: it has {count} unexpected trailing bytes", path.display())]
    TrailingBytes {
        /// The store file.
        path: PathBuf,
        /// How many bytes are left over.
        count: u64,
    },
    /// The checksum does not match the contents: the file was damaged.
    #[error("the pie store '{}' is corrupt: its checksum does not match its contents", path.display())]
    ChecksumMismatch {
        /// The store file.
        path: PathBuf,
    },
    /// The payload does not decode as the task and output types (their fields changed under the same names?).
    #[error(
        "the pie store '{}' does not decode as the current task and output types ({reason}); were their fields \
         changed? Delete it to start from scratch",
        path.display()
    )]
    CorruptPayload {
        /// The store file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The payload decodes but is not a valid dependency graph.
    #[error("the pie store '{}' holds an invalid dependency graph: {reason}", path.display())]
    InvalidGraph {
        /// The store file.
        path: PathBuf,
        /// The first violated invariant.
        reason: String,
    },
}

impl LoadError {
    /// The store file that was refused.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::Io { path, .. }
            | LoadError::Empty { path }
            | LoadError::Truncated { path, .. }
            | LoadError::WrongMagic { path }
            | LoadError::UnsupportedVersion { path, .. }
            | LoadError::TypeMismatch { path, .. }
            | LoadError::TrailingBytes { path, .. }
            | LoadError::ChecksumMismatch { path }
            | LoadError::CorruptPayload { path, .. }
            | LoadError::InvalidGraph { path, .. } => path,
        }
    }
}

/// Why [`Pie::save`] failed. The store file is unchanged: it still holds what it held before.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// A task or output could not be serialised: its `Serialize` impl failed (serde's impl for `Path` does for a
    /// path that is not UTF-8).
    #[error(
        "cannot save the pie store '{}': encoding failed: {reason} (a task or output could not be serialised; \
         serde refuses, for example, a path that is not UTF-8)",
        path.display()
    )]
    Encode {
        /// The store file.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
    /// A file system operation failed.
    #[error("cannot save the pie store '{}': {step} failed: {source}", path.display())]
    Io {
        /// The store file.
        path: PathBuf,
        /// The step that failed, naming the file or folder it was applied to.
        step: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl SaveError {
    /// The store file that could not be saved.
    pub fn path(&self) -> &Path {
        match self {
            SaveError::Encode { path, .. } | SaveError::Io { path, .. } => path,
        }
    }
}

impl<T, A> Pie<T, T::Output, A>
where
    T: Task + Serialize + DeserializeOwned,
    T::Output: Serialize + DeserializeOwned,
    A: Tracker<T>,
{
    /// Loads the store saved at `path` by [`save`](Self::save), reporting to `tracker`; without a file at `path`,
    /// an empty `Pie`.
    ///
    /// The loaded `Pie` behaves exactly like the one that was saved: a build in which nothing changed executes
    /// nothing, an edit re-executes only what it affects, and files provided by tasks in the earlier process still
    /// count for the overlap and hidden-dependency checks.
    ///
    /// # Errors
    /// A file that cannot be used (unreadable, truncated, damaged, not a pie store, another format version, or
    /// written for other task or output types) gives a [`LoadError`] whose message names the file and the reason;
    /// a build tool would typically report it and start from an empty `Pie`. Never panics on a bad file.
    ///
    /// # Example
    /// ```
    /// use pie::tracker::event::EventTracker;
    /// use pie::{Context, Pie, Task};
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
    /// let store = dir.path().join("build").join("pie.store");
    ///
    /// // First run: no store yet, so the task executes.
    /// let mut pie: Pie<Square, u64, _> = Pie::load(&store, EventTracker::default())?;
    /// assert_eq!(pie.new_session().require(&Square(7)), 49);
    /// assert!(pie.tracker().one_execute_of(&Square(7)));
    /// pie.save(&store)?;
    ///
    /// // Next run (normally another process): the output comes from the store, nothing executes.
    /// let mut pie: Pie<Square, u64, _> = Pie::load(&store, EventTracker::default())?;
    /// assert_eq!(pie.new_session().require(&Square(7)), 49);
    /// assert!(!pie.tracker().any_execute());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: impl AsRef<Path>, tracker: A) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let io_error = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::with_tracker(tracker)),
            Err(e) => return Err(io_error(e)),
        };
        let len = file.metadata().map_err(io_error)?.len();
        let mut header = Vec::with_capacity(HEADER_LEN);
        Read::by_ref(&mut file)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut header)
            .map_err(io_error)?;
        let payload_len = check_header(&header, len, path)?;
        // The length was checked against the file's size, so this allocation is bounded by what is on disk.
        let mut payload = vec![0; payload_len];
        file.read_exact(&mut payload).map_err(|e| match e.kind() {
            // The file shrank since its size was read: it is being replaced by something that is not `save`.
            io::ErrorKind::UnexpectedEof => LoadError::Truncated {
                path: path.to_path_buf(),
                actual: len,
                expected: (HEADER_LEN + payload_len) as u64,
            },
            _ => io_error(e),
        })?;
        let mut pie = Self::with_tracker(tracker);
        pie.store = decode_payload(&header, &payload, &type_fingerprint::<T>(), path)?;
        Ok(pie)
    }

    /// Saves the dependency graph and cached outputs to `path` atomically, creating its folder when missing: after
    /// a crash at any moment the file holds either the previous store or the new one. Load it with
    /// [`load`](Self::load). The tracker is not saved.
    ///
    /// The whole store is written every time (about 25 ms for 100,000 tasks), also after a build that changed
    /// nothing. The new store is first written to a temporary file `.NAME.tmp.PID.N` beside `path`; a crash can
    /// leave such a file behind, which is never read and may be deleted. A symbolic link at `path` is replaced by
    /// the store file, not followed.
    ///
    /// # Errors
    /// A [`SaveError`] naming the file and the failed step when a task or output cannot be serialised or a file
    /// system operation fails; the store file then still holds what it held before.
    ///
    /// # Example
    /// ```
    /// use pie::{Context, Pie, Task};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
    /// struct Greet(String);
    ///
    /// impl Task for Greet {
    ///     type Output = String;
    ///     fn execute<C: Context<Self>>(&self, _context: &mut C) -> String {
    ///         format!("hello, {}", self.0)
    ///     }
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = dir.path().join("pie.store");
    /// let mut pie = Pie::default();
    /// pie.new_session().require(&Greet("world".to_string()));
    /// pie.save(&store)?;
    /// assert!(store.is_file());
    ///
    /// let loaded: Pie<Greet, String> = Pie::load(&store, pie::tracker::NoopTracker)?;
    /// assert_eq!(loaded.task_count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        let path = path.as_ref();
        let payload = postcard::to_stdvec(&self.store).map_err(|e| SaveError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let header = seal(&type_fingerprint::<T>(), &payload);
        write_atomically(path, &[&header, &payload])
    }
}

/// The type fingerprint of a store of `T` tasks.
fn type_fingerprint<T: Task>() -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"pie store types\0");
    hasher.update(type_name::<T>().as_bytes());
    hasher.update(b"\0");
    hasher.update(type_name::<T::Output>().as_bytes());
    *hasher.finalize().as_bytes()
}

fn checksum(header: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&header[..CHECKSUM.start]);
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// The header for `payload`.
fn seal(fingerprint: &[u8; 32], payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..MAGIC.len()].copy_from_slice(&MAGIC);
    header[MAGIC.len()..VERSION_END].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[FINGERPRINT].copy_from_slice(fingerprint);
    header[LENGTH].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let checksum = checksum(&header, payload);
    header[CHECKSUM].copy_from_slice(&checksum);
    header
}

/// Checks the magic, the version and the length of a file of `file_len` bytes that starts with `header` (its first
/// `HEADER_LEN` bytes, or all of it when shorter); returns the payload's length.
fn check_header(header: &[u8], file_len: u64, path: &Path) -> Result<usize, LoadError> {
    let path_buf = || path.to_path_buf();
    let truncated = |expected: u64| LoadError::Truncated {
        path: path_buf(),
        actual: file_len,
        expected,
    };
    if header.is_empty() {
        return Err(LoadError::Empty { path: path_buf() });
    }
    let magic_len = header.len().min(MAGIC.len());
    if header[..magic_len] != MAGIC[..magic_len] {
        return Err(LoadError::WrongMagic { path: path_buf() });
    }
    let Some(version) = header.get(MAGIC.len()..VERSION_END) else {
        return Err(truncated(HEADER_LEN as u64));
    };
    let version = u32::from_le_bytes(version.try_into().expect("BUG: the version field is 4 bytes"));
    if version != FORMAT_VERSION {
        return Err(LoadError::UnsupportedVersion {
            path: path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if header.len() < HEADER_LEN {
        return Err(truncated(HEADER_LEN as u64));
    }
    let payload_len = u64::from_le_bytes(header[LENGTH].try_into().expect("BUG: the length field is 8 bytes"));
    let expected = payload_len.saturating_add(HEADER_LEN as u64);
    if file_len < expected {
        return Err(truncated(expected));
    }
    if file_len > expected {
        return Err(LoadError::TrailingBytes {
            path: path_buf(),
            count: file_len - expected,
        });
    }
    usize::try_from(payload_len).map_err(|_| truncated(expected))
}

/// Checks the checksum and the fingerprint, decodes the payload and validates the graph.
fn decode_payload<T>(
    header: &[u8],
    payload: &[u8],
    fingerprint: &[u8; 32],
    path: &Path,
) -> Result<Store<T, T::Output>, LoadError>
where
    T: Task + DeserializeOwned,
    T::Output: DeserializeOwned,
{
    let path_buf = || path.to_path_buf();
    if header[CHECKSUM] != checksum(header, payload) {
        return Err(LoadError::ChecksumMismatch { path: path_buf() });
    }
    if header[FINGERPRINT] != fingerprint[..] {
        return Err(LoadError::TypeMismatch {
            path: path_buf(),
            task: type_name::<T>(),
            output: type_name::<T::Output>(),
        });
    }
    let (mut store, rest) =
        postcard::take_from_bytes::<Store<T, T::Output>>(payload).map_err(|e| LoadError::CorruptPayload {
            path: path_buf(),
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(LoadError::TrailingBytes {
            path: path_buf(),
            count: rest.len() as u64,
        });
    }
    store.rebuild_after_load().map_err(|reason| LoadError::InvalidGraph {
        path: path_buf(),
        reason,
    })?;
    Ok(store)
}

/// Replaces the file at `path` with `parts`, concatenated, atomically (see the module doc).
fn write_atomically(path: &Path, parts: &[&[u8]]) -> Result<(), SaveError> {
    let failed = |step: String| {
        move |source| SaveError::Io {
            path: path.to_path_buf(),
            step,
            source,
        }
    };
    let Some(name) = path.file_name() else {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file");
        return Err(failed("choosing the file name".to_string())(source));
    };
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let created_folder = !folder.is_dir();
    if created_folder {
        fs::create_dir_all(folder).map_err(failed(format!("creating the folder '{}'", folder.display())))?;
    }

    let temp = folder.join(temp_name(name));
    let result = write_and_sync(&temp, parts)
        .map_err(failed(format!("writing the temporary file '{}'", temp.display())))
        .and_then(|()| fs::rename(&temp, path).map_err(failed(format!("renaming '{}'", temp.display()))));
    if result.is_err() {
        // Best effort: the temporary file is never read, so a leftover is harmless.
        let _ = fs::remove_file(&temp);
        return result;
    }
    sync_folder(folder).map_err(failed(format!("syncing the folder '{}'", folder.display())))?;
    if created_folder {
        if let Some(parent) = folder.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_folder(parent).map_err(failed(format!("syncing the folder '{}'", parent.display())))?;
        }
    }
    Ok(())
}

/// A temporary file name beside the store, unique among live processes and among saves within this process.
fn temp_name(name: &std::ffi::OsStr) -> OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut temp = OsString::from(".");
    temp.push(name);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    temp.push(format!(".tmp.{}.{count}", std::process::id()));
    temp
}

fn write_and_sync(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    // A leftover of a killed process that had our pid is overwritten, not appended to.
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()
}

#[cfg(unix)]
fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

#[cfg(not(unix))]
fn sync_folder(_folder: &Path) -> io::Result<()> {
    // Folders cannot be opened for syncing on this platform; the rename is made durable by the file system.
    Ok(())
}

#[cfg(test)]
mod tests;
