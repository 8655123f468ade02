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
//! |      8 |    4 | format version, `u32` (currently 4)                                       |
//! |     12 |   32 | type fingerprint: blake3 of the task and output types' serialised shapes |
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
//! # The type fingerprint
//!
//! The fingerprint covers the serialised *shape* of the task type and of the output type: every struct and enum
//! they contain, by (unqualified) name, with their fields and variants in order and the types of those, as
//! [serde-reflection](serde_reflection) traces them through their `Deserialize` impls. A store written before
//! a type gained, lost, renamed, reordered or retyped a variant or a field is refused with
//! [`LoadError::TypeMismatch`] instead of being decoded into other values. Module paths are not part of a shape:
//! moving a type to another module keeps its stores. Tracing happens once per task type and process.
//!
//! Tracing does not work for every type; then the fingerprint of that type (task or output) falls back to its
//! [`std::any::type_name`], which refuses a store of other or renamed types but not one of a type whose fields changed
//! under the same name (such a store usually fails to decode or to validate, but a change that happens to decode would
//! be misread: when changing such a type, delete its stores). Tracing fails, among others, for a type whose
//! `Deserialize` refuses the values tracing makes up (a validating impl, say a non-zero number); for
//! `deserialize_any`-based impls (untagged or internally tagged enums, `serde_json::Value`); for two different
//! containers of one name (the same generic type instantiated twice, say `Result<A, B>` and `Result<C, D>`, or two
//! `Error` types of different modules); for an enum whose first variant contains the enum (tracing would not terminate;
//! put a variant without recursion first); and for an enum reached only through later variants of other enums when
//! tracing cannot see all its variants that way. The type names may also differ between compiler versions, so that a
//! store of a type that falls back is refused, never misread, after a compiler upgrade.
//!
//! # Crash safety
//!
//! [`Pie::save`] never writes to the store file itself. It writes the complete new file to a temporary file in the same
//! folder (`.NAME.pie-tmp.PID.N`), flushes it to the disk (fsync), renames it over the store and flushes the folder. A
//! rename within one file system replaces the folder entry atomically: every reader, and the file system after a crash,
//! finds the name pointing either to the complete old file or to the complete new one. Flushing the temporary file
//! before the rename means that after a power loss the name cannot point to a file whose contents never reached the
//! disk; flushing the folder makes the rename itself durable before `save` returns. A process killed during `save`
//! leaves the old store and at worst a stray temporary file, which is never read; the next `save` of the same store
//! removes it, once the process that made it no longer runs (as far as can be told: on Linux) or it has not been
//! written for an hour. A temporary file of a save in progress in another process is kept; removing one would not harm
//! the store, only make that save fail. Should the file be damaged anyway (a disk error, a file system without these
//! guarantees, an edit by hand), the checksum refuses it. Two processes saving to one path concurrently each write a
//! complete file; the last rename wins.

use std::any::{type_name, TypeId};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;

use self::shape::Shape;
use crate::store::Store;
use crate::tracker::Tracker;
use crate::{Pie, Task};

const MAGIC: [u8; 8] = *b"PIESTORE";
/// The version of the store format this pie reads and writes. Bump it whenever the header or the serialised form
/// of the store (`Store`, `Dep`, stamps, paths) changes.
/// (2: the type fingerprint covers the types' serialised shapes, not only their names; tasks have a root flag;
/// the store says whether it is settled. 3: the output version of a task without output says whether its last
/// execution panicked in its own code, and a task that caught that panic recorded that version.)
pub(crate) const FORMAT_VERSION: u32 = 4;
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
    /// The store was written for other task or output types (another build script, or types that were renamed or
    /// whose variants or fields changed since).
    #[error(
        "the pie store '{}' was written for other task or output types than `{task}` and `{output}` (by another \
         build script, or before they were renamed or their variants or fields changed); delete it to start from \
         scratch",
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
    /// The payload does not decode as the task and output types (fields changed in a type whose shape could not
    /// be traced?).
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
    /// The whole store is encoded every time; it is written (about 25 ms for 100,000 tasks) unless the file at `path`
    /// already holds exactly these bytes, as after a build that changed nothing since the store was loaded from `path`
    /// or last saved there. The new store is first written to a temporary file `.NAME.pie-tmp.PID.N` beside `path`; a
    /// crash can leave such a file behind, which is never read, and which a later `save` to `path` removes (see the
    /// module doc). A symbolic link at `path` is replaced by the store file, not followed.
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
        if holds_exactly(path, &header, &payload) {
            // Nothing changed since this store was loaded or last saved: no write, no new modification time.
            if let Some(name) = path.file_name() {
                remove_stale_temp_files(folder_of(path), name);
            }
            return Ok(());
        }
        write_atomically(path, &[&header, &payload])
    }
}

/// The type fingerprint of a store of `T` tasks (see the module doc), computed once per task type and process.
pub(crate) fn type_fingerprint<T>() -> [u8; 32]
where
    T: Task + Serialize + DeserializeOwned,
    T::Output: Serialize + DeserializeOwned,
{
    // Tracing takes tens to hundreds of microseconds; a build tool that loads and saves many stores pays it once.
    static CACHE: OnceLock<Mutex<HashMap<TypeId, [u8; 32]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    // A panic while the lock is held cannot leave a half-made entry: entries are inserted whole.
    let lock = || cache.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(fingerprint) = lock().get(&TypeId::of::<T>()) {
        return *fingerprint;
    }
    // Traced without the lock: tracing runs the types' `Deserialize` impls. Two threads may both trace a type; they
    // get the same fingerprint.
    let fingerprint = fingerprint(&Shape::of::<T>(), &Shape::of::<T::Output>());
    lock().insert(TypeId::of::<T>(), fingerprint);
    fingerprint
}

/// The type fingerprint of the task and output types with these shapes.
pub(crate) fn fingerprint(task: &Shape, output: &Shape) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"pie store types: serialised shapes\0");
    for shape in [task, output] {
        let (kind, bytes) = match shape {
            Shape::Traced(encoded) => (0u8, encoded.as_slice()),
            Shape::Named(name) => (1u8, name.as_bytes()),
        };
        hasher.update(&[kind]);
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
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

/// Whether the file at `path` is a regular file that already holds `header` followed by `payload`, so that saving
/// them would change nothing; such a file is then flushed to the disk, as `save` would have, in case another
/// program wrote it. Any doubt (an error, a symbolic link, another length or header) is a no, and `save` writes.
/// The header holds the checksum of the whole file, so a changed store is told apart by its first bytes and costs
/// one small read; an unchanged one is compared in full all the same, so that a damaged copy on the disk is
/// rewritten.
fn holds_exactly(path: &Path, header: &[u8], payload: &[u8]) -> bool {
    let same_length = fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_file() && m.len() == (header.len() + payload.len()) as u64);
    if !same_length {
        return false;
    }
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let mut buffer = vec![0; HEADER_LEN];
    if file.read_exact(&mut buffer).is_err() || buffer != header {
        return false;
    }
    buffer.resize(1 << 16, 0);
    for expected in payload.chunks(buffer.len()) {
        let read = &mut buffer[..expected.len()];
        if file.read_exact(read).is_err() || read != expected {
            return false;
        }
    }
    file.sync_all().is_ok()
}

/// The folder of the file at `path`.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
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
    let folder = folder_of(path);
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
    } else {
        remove_stale_temp_files(folder, name);
    }
    Ok(())
}

/// The marker between the store's name and the process id in a temporary file name: `.NAME.pie-tmp.PID.N`.
const TEMP_MARKER: &str = ".pie-tmp.";

/// A temporary file name beside the store, unique among live processes and among saves within this process:
/// `.NAME.pie-tmp.PID.N`.
fn temp_name(name: &OsStr) -> OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut temp = OsString::from(".");
    temp.push(name);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    temp.push(format!("{TEMP_MARKER}{}.{count}", std::process::id()));
    temp
}

/// The id of the process that made `file`, when it is a temporary file of the store `name` (see [`temp_name`]).
fn temp_file_pid(file: &OsStr, name: &OsStr) -> Option<u32> {
    let rest = file.as_encoded_bytes().strip_prefix(b".")?;
    let rest = rest.strip_prefix(name.as_encoded_bytes())?;
    let rest = std::str::from_utf8(rest.strip_prefix(TEMP_MARKER.as_bytes())?).ok()?;
    let (pid, count) = rest.split_once('.')?;
    count.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// How long a temporary file may go unwritten before it is taken to be a leftover even if a process of its id
/// lives (ids are reused) or whether it lives cannot be told.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// Removes the temporary files of the store `name` in `folder` that crashed or killed saves left behind: those of
/// another process that no longer runs, or that have not been written for [`STALE_TEMP_AGE`]. The temporary file of
/// a save in progress is left alone: its process runs (this process's own are never removed) and it is being
/// written. Were one removed anyway, that save's rename would fail and report it; the store stays whole either
/// way. Best effort: a leftover is never read, so failing to remove one is not an error.
fn remove_stale_temp_files(folder: &Path, name: &OsStr) {
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let Some(pid) = temp_file_pid(&entry.file_name(), name) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| now.duration_since(modified).is_ok_and(|age| age >= STALE_TEMP_AGE));
        if idle || process_is_gone(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether no process with id `pid` runs, as far as can be told: on Linux through `/proc`; elsewhere it cannot be
/// told without more dependencies, and only the age of a temporary file counts.
fn process_is_gone(pid: u32) -> bool {
    cfg!(target_os = "linux") && Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
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

/// The serialised shape of a type, traced with serde-reflection, for the type fingerprint (see the module doc).
mod shape {
    use std::any::type_name;
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;
    use std::fmt;
    use std::panic::{self, AssertUnwindSafe};

    use crate::grow_stack;
    use serde::de::{
        self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
    };
    use serde::Serialize;
    use serde_reflection::{ContainerFormat, Error, Format, Registry, Samples, Tracer, TracerConfig};

    /// What the type fingerprint knows of one type: its traced shape, or only its name when tracing failed.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) enum Shape {
        /// The canonical encoding of the type's format and the formats of every container it names.
        Traced(Vec<u8>),
        /// The type's name ([`std::any::type_name`]): tracing failed or was incomplete.
        Named(&'static str),
    }

    impl Shape {
        /// The shape of `X`: traced when possible, else its name.
        pub(crate) fn of<X: Serialize + DeserializeOwned>() -> Shape {
            // A `Deserialize` impl run by the tracer might panic on the values the tracer makes up; then the name has to
            // do.
            let traced = panic::catch_unwind(AssertUnwindSafe(trace::<X>))
                .ok()
                .and_then(Result::ok);
            match traced {
                Some((format, registry)) => {
                    Shape::from_formats(&format, &registry).unwrap_or(Shape::Named(type_name::<X>()))
                }
                None => Shape::Named(type_name::<X>()),
            }
        }

        /// The shape described by a traced `format` and the complete `registry` of the containers it names; `None`
        /// when a format in them is still unknown.
        pub(crate) fn from_formats(format: &Format, registry: &Registry) -> Option<Shape> {
            // A `Registry` is a `BTreeMap` (sorted by name), and every format in it lists fields and variants in
            // order, so this encoding is canonical. It fails on an unknown format (a variable left by tracing).
            postcard::to_stdvec(&(format, registry)).ok().map(Shape::Traced)
        }
    }

    /// How many deserialisations one tracing runs at most.
    const ROUNDS: usize = 10_000;
    /// How deeply deserialisations may nest while tracing: deeper, the type is taken to be recursive in a way that
    /// tracing does not terminate on (an enum whose first variant contains the enum).
    const MAX_DEPTH: u32 = 256;

    /// Traces the deserialisation of `X`: the format of `X` and the registry of the containers it names, complete
    /// (every variant of every enum, under its index).
    ///
    /// serde-reflection explores an enum one variant per deserialisation, and marks an enum whose variants it has not
    /// all seen as incomplete: a marked enum is not explored further (its first variant stands in) until the mark is
    /// cleared, which ends recursion. Its `trace_type` clears the mark of the outermost type only, so an enum nested in
    /// a variant other than the first is left incomplete. Here the marks of every enum seen are cleared after every
    /// deserialisation. An enum reached only through later variants of another can still be seen too rarely to find
    /// the index of each of its variants; then a second tracing starts by serialising the values made by the first
    /// (serialising records the index of every variant a value holds).
    pub(crate) fn trace<X: Serialize + DeserializeOwned>() -> Result<(Format, Registry), Error> {
        let guard = Guard::default();
        let mut values: Vec<X> = Vec::new();
        for assisted in [false, true] {
            let mut samples = Samples::new();
            let mut tracer = Tracer::new(TracerConfig::default().record_samples_for_newtype_structs(false));
            if assisted {
                for value in &values {
                    tracer.trace_value(&mut samples, value)?;
                }
            }
            let mut round = 0;
            let format = loop {
                round += 1;
                if round > ROUNDS {
                    return Err(Error::NotSupported("tracing did not finish"));
                }
                let (format, value) = tracer.trace_type_once_with_seed(&samples, Guarded::<X>::new(&guard))?;
                if !assisted {
                    values.push(value);
                }
                let mut progress = false;
                for name in guard.enums.borrow().keys() {
                    progress |= tracer.check_incomplete_enum(name).is_some();
                }
                if !progress {
                    break format;
                }
            };
            if guard.conflict.get() {
                return Err(Error::NotSupported("two enums of one name with different variants"));
            }
            match tracer.registry() {
                Ok(registry) if guard.complete(&registry) => return Ok((format, registry)),
                Ok(_) | Err(Error::MissingVariants(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Err(Error::NotSupported("tracing did not reach every variant of the enums"))
    }

    /// What the deserializer wrapped around serde-reflection's sees: how deeply deserialisations nest, and the
    /// variant names of every enum.
    #[derive(Default)]
    struct Guard {
        depth: Cell<u32>,
        enums: RefCell<BTreeMap<&'static str, &'static [&'static str]>>,
        conflict: Cell<bool>,
    }

    impl Guard {
        /// Enters one more level of nesting; false when that is too deep. Every `enter` is followed by a `leave`.
        fn enter(&self) -> bool {
            let depth = self.depth.get();
            self.depth.set(depth + 1);
            depth < MAX_DEPTH
        }

        fn leave(&self) {
            self.depth.set(self.depth.get() - 1);
        }

        fn saw_enum(&self, name: &'static str, variants: &'static [&'static str]) {
            if *self.enums.borrow_mut().entry(name).or_insert(variants) != variants {
                self.conflict.set(true);
            }
        }

        /// Whether `registry` has every enum seen, each with all its variants under their declaration order's
        /// indices, and no enum that was not seen.
        fn complete(&self, registry: &Registry) -> bool {
            let enums = self.enums.borrow();
            let traced = registry.iter().filter_map(|(name, container)| match container {
                ContainerFormat::Enum(variants) => Some((name.as_str(), variants)),
                _ => None,
            });
            traced.clone().count() == enums.len()
                && traced.into_iter().all(|(name, variants)| {
                    enums.get(name).is_some_and(|declared| {
                        variants
                            .iter()
                            .map(|(index, variant)| (*index as usize, variant.name.as_str()))
                            .eq(declared.iter().copied().enumerate())
                    })
                })
        }
    }

    // A deserializer that fails past `MAX_DEPTH` nested deserialisations, wrapped around serde-reflection's at every
    // level: serde-reflection's tracing does not terminate on some recursive types, and a stack overflow aborts.

    /// Deserialises `X` through [`Depth`] guards.
    struct Guarded<'a, X> {
        guard: &'a Guard,
        marker: std::marker::PhantomData<fn() -> X>,
    }

    impl<'a, X> Guarded<'a, X> {
        fn new(guard: &'a Guard) -> Self {
            Guarded {
                guard,
                marker: std::marker::PhantomData,
            }
        }
    }

    impl<'a, X> Clone for Guarded<'a, X> {
        fn clone(&self) -> Self {
            Guarded::new(self.guard)
        }
    }

    impl<'de, X: de::Deserialize<'de>> DeserializeSeed<'de> for Guarded<'_, X> {
        type Value = X;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<X, D::Error> {
            X::deserialize(Depth(deserializer, self.guard))
        }
    }

    /// Wraps a deserializer, a visitor, an access or a seed, counting the nesting in the cell.
    struct Depth<'a, T>(T, &'a Guard);

    macro_rules! forward {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
            $(
                fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                    let guard = self.1;
                    let result = if guard.enter() {
                        grow_stack(|| self.0.$method($($arg,)* Depth(visitor, guard)))
                    } else {
                        Err(de::Error::custom("the type nests too deeply to be traced"))
                    };
                    guard.leave();
                    result
                }
            )*
        };
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Depth<'_, D> {
        type Error = D::Error;

        forward! {
            deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16(); deserialize_i32();
            deserialize_i64(); deserialize_i128(); deserialize_u8(); deserialize_u16(); deserialize_u32();
            deserialize_u64(); deserialize_u128(); deserialize_f32(); deserialize_f64(); deserialize_char();
            deserialize_str(); deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
            deserialize_unit(); deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str); deserialize_seq(); deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize); deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_identifier();
            deserialize_ignored_any();
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.1.saw_enum(name, variants);
            let guard = self.1;
            let result = if guard.enter() {
                grow_stack(|| self.0.deserialize_enum(name, variants, Depth(visitor, guard)))
            } else {
                Err(de::Error::custom("the type nests too deeply to be traced"))
            };
            guard.leave();
            result
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }
    }

    macro_rules! visit {
        ($($method:ident($ty:ty);)*) => {
            $(
                fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                    self.0.$method(v)
                }
            )*
        };
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Depth<'_, V> {
        type Value = V::Value;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            self.0.expecting(formatter)
        }

        visit! {
            visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64); visit_i128(i128);
            visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64); visit_u128(u128); visit_f32(f32);
            visit_f64(f64); visit_char(char); visit_str(&str); visit_borrowed_str(&'de str); visit_string(String);
            visit_bytes(&[u8]); visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
        }

        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.0.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.0.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
            self.0.visit_some(Depth(deserializer, self.1))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
            self.0.visit_newtype_struct(Depth(deserializer, self.1))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.0.visit_seq(Depth(seq, self.1))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_map(Depth(map, self.1))
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            self.0.visit_enum(Depth(data, self.1))
        }
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Depth<'_, S> {
        type Value = S::Value;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(Depth(deserializer, self.1))
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Depth<'_, A> {
        type Error = A::Error;
        fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
            self.0.next_element_seed(Depth(seed, self.1))
        }
        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Depth<'_, A> {
        type Error = A::Error;
        fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
            self.0.next_key_seed(Depth(seed, self.1))
        }
        fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
            self.0.next_value_seed(Depth(seed, self.1))
        }
        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, 'a, A: EnumAccess<'de>> EnumAccess<'de> for Depth<'a, A> {
        type Error = A::Error;
        type Variant = Depth<'a, A::Variant>;
        fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
            let (value, variant) = self.0.variant_seed(Depth(seed, self.1))?;
            Ok((value, Depth(variant, self.1)))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Depth<'_, A> {
        type Error = A::Error;
        fn unit_variant(self) -> Result<(), A::Error> {
            self.0.unit_variant()
        }
        fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
            self.0.newtype_variant_seed(Depth(seed, self.1))
        }
        fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
            self.0.tuple_variant(len, Depth(visitor, self.1))
        }
        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.struct_variant(fields, Depth(visitor, self.1))
        }
    }
}

#[cfg(test)]
mod tests;
