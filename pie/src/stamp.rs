//! Stamps: how a file or a task output is fingerprinted so that a later build can tell whether it changed.
//!
//! A *stamper* is the method ([`FileStamper`], [`OutputStamper`]); a *stamp* is its result ([`FileStamp`],
//! [`OutputStamp`]). A dependency records the stamper and the stamp it saw; re-stamping later and comparing tells
//! whether the dependency is still consistent.
//!
//! Invariant: stamping never changes the file system and a stamp of a missing file is a value, not an error.

use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::Path;
use std::time::SystemTime;

/// How a file is stamped.
///
/// ```
/// use pie::stamp::{FileStamp, FileStamper};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("missing.txt");
/// assert_eq!(FileStamper::Exists.stamp(&path)?, FileStamp::Exists(false));
/// std::fs::write(&path, "hi")?;
/// assert_eq!(FileStamper::Exists.stamp(&path)?, FileStamp::Exists(true));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum FileStamper {
    /// Whether something exists at the path.
    Exists,
    /// The last-modified time of the file (`None` when missing). The default: one `stat` per check.
    #[default]
    Modified,
    /// A blake3 digest of the file's contents (`None` when missing); rewriting identical bytes is consistent.
    /// For a directory, a digest of its sorted entry names, made so that it is never the digest of a file.
    Hash,
}

/// The fingerprint of a file, made by a [`FileStamper`].
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum FileStamp {
    /// Made by [`FileStamper::Exists`].
    Exists(bool),
    /// Made by [`FileStamper::Modified`]: `None` when nothing is at the path.
    Modified(#[cfg_attr(feature = "serde", serde(with = "serde_mtime"))] Option<SystemTime>),
    /// Made by [`FileStamper::Hash`]: `None` when nothing is at the path.
    Hash(Option<[u8; 32]>),
}

impl FileStamper {
    /// Stamps the file (or directory) at `path`. A missing file gives a stamp; other I/O failures are errors.
    pub fn stamp(&self, path: &Path) -> io::Result<FileStamp> {
        match self {
            FileStamper::Exists => match fs::metadata(path) {
                Ok(_) => Ok(FileStamp::Exists(true)),
                Err(e) if is_missing(&e) => Ok(FileStamp::Exists(false)),
                Err(e) => Err(e),
            },
            FileStamper::Modified => match fs::metadata(path) {
                Ok(metadata) => Ok(FileStamp::Modified(Some(metadata.modified()?))),
                Err(e) if is_missing(&e) => Ok(FileStamp::Modified(None)),
                Err(e) => Err(e),
            },
            FileStamper::Hash => hash(path).map(FileStamp::Hash),
        }
    }
}

/// Whether `error` means that nothing is at the path (including a path through a regular file).
pub(crate) fn is_missing(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

fn hash(path: &Path) -> io::Result<Option<[u8; 32]>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    // On Linux, reading a directory fails with `EISDIR` before anything is read, which saves a `stat` per check of
    // a regular file; elsewhere (some systems let a directory be read) the kind is asked first.
    let is_dir = !cfg!(target_os = "linux") && file.metadata()?.is_dir();
    if !is_dir {
        let mut hasher = blake3::Hasher::new();
        match hasher.update_reader(file) {
            Ok(_) => return Ok(Some(*hasher.finalize().as_bytes())),
            Err(e) if cfg!(target_os = "linux") && e.kind() == ErrorKind::IsADirectory => {}
            Err(e) => return Err(e),
        }
    }
    directory_digest(path).map(Some)
}

/// The blake3 key-derivation context of a directory's digest. A file's digest is blake3's plain hash of its bytes
/// and a directory's is blake3 in key-derivation mode: the two modes are domain-separated inside blake3, so no
/// file's bytes have the digest of any directory.
const DIRECTORY_CONTEXT: &str = "pie 2026-05 FileStamper::Hash directory entry names";

/// The digest of the directory at `path`: its entry names, sorted.
fn directory_digest(path: &Path) -> io::Result<[u8; 32]> {
    let mut names = fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(entries_digest(names.iter().map(|name| name.as_encoded_bytes())))
}

/// The digest of a list of entry names. Each name is prefixed with its length, so that no two lists encode to the
/// same bytes, whatever bytes the names hold.
fn entries_digest<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(DIRECTORY_CONTEXT);
    for name in names {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name);
    }
    *hasher.finalize().as_bytes()
}

/// The serialised form of a modification time: whole seconds relative to the Unix epoch (negative before it) and
/// nanoseconds. serde's own `SystemTime` impl refuses times before 1970, which would make a whole store unsaveable
/// because of one oddly dated file.
#[cfg(feature = "serde")]
mod serde_mtime {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub(super) fn serialize<S: Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
        time.map(to_parts).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<(i64, u32)>::deserialize(deserializer)? {
            None => Ok(None),
            Some(parts) => from_parts(parts)
                .map(Some)
                .ok_or_else(|| D::Error::custom("modification time out of range")),
        }
    }

    fn to_parts(time: SystemTime) -> (i64, u32) {
        // Saturating is safe: a time beyond ±292 billion years reads back as another time, so its dependency is
        // merely inconsistent.
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => (i64::try_from(after.as_secs()).unwrap_or(i64::MAX), after.subsec_nanos()),
            Err(e) => {
                let before = e.duration();
                let seconds = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                match before.subsec_nanos() {
                    0 => (-seconds, 0),
                    nanos => ((-seconds).saturating_sub(1), 1_000_000_000 - nanos),
                }
            }
        }
    }

    fn from_parts((seconds, nanos): (i64, u32)) -> Option<SystemTime> {
        if nanos >= 1_000_000_000 {
            return None;
        }
        let whole = if seconds >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
        };
        whole?.checked_add(Duration::from_nanos(u64::from(nanos)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times_before_and_after_the_epoch_round_trip() {
            for offset in [0, 1, 999_999_999, 1_000_000_000, 1_300_000_000, 86_400_000_000_123] {
                let offset = Duration::from_nanos(offset);
                for time in [UNIX_EPOCH + offset, UNIX_EPOCH - offset] {
                    assert_eq!(from_parts(to_parts(time)), Some(time), "{time:?}");
                }
            }
            assert_eq!(from_parts((0, 1_000_000_000)), None);
        }
    }
}

/// How a task's output is stamped by a task that requires it.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OutputStamper {
    /// The output is ignored: the dependency only makes sure the required task is consistent (and ordered first).
    Inconsequential,
    /// The requiring task re-executes when the output changed (compared with `Eq`). The default.
    #[default]
    Equals,
}

/// The fingerprint of a task output, made by an [`OutputStamper`].
///
/// ```
/// use pie::stamp::{OutputStamp, OutputStamper};
/// assert_eq!(OutputStamper::Equals.stamp(7), OutputStamp::Equals(7));
/// assert_eq!(OutputStamper::Inconsequential.stamp(7), OutputStamp::Inconsequential);
/// ```
#[derive(Clone, Eq, PartialEq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OutputStamp<O> {
    /// Made by [`OutputStamper::Inconsequential`].
    Inconsequential,
    /// Made by [`OutputStamper::Equals`]: the output itself.
    Equals(O),
}

impl OutputStamper {
    /// Stamps `output`.
    pub fn stamp<O>(&self, output: O) -> OutputStamp<O> {
        match self {
            OutputStamper::Inconsequential => OutputStamp::Inconsequential,
            OutputStamper::Equals => OutputStamp::Equals(output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_stamp_ignores_identical_rewrite_and_sees_content_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(FileStamper::Hash.stamp(&path).unwrap(), FileStamp::Hash(None));
        fs::write(&path, "a").unwrap();
        let first = FileStamper::Hash.stamp(&path).unwrap();
        fs::write(&path, "a").unwrap();
        assert_eq!(FileStamper::Hash.stamp(&path).unwrap(), first);
        fs::write(&path, "b").unwrap();
        assert_ne!(FileStamper::Hash.stamp(&path).unwrap(), first);
    }

    #[test]
    fn modified_stamp_of_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = FileStamper::Modified.stamp(&dir.path().join("nope")).unwrap();
        assert_eq!(stamp, FileStamp::Modified(None));
    }

    fn digest(path: &Path) -> [u8; 32] {
        match FileStamper::Hash.stamp(path).unwrap() {
            FileStamp::Hash(Some(digest)) => digest,
            other => panic!("expected a digest of {}, got {other:?}", path.display()),
        }
    }

    #[test]
    fn hash_of_a_file_is_blake3_of_its_bytes() {
        // Unchanged from earlier versions, so that stored `Hash` stamps of files stay consistent.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for len in [0, 1, 65_535, 65_536, 65_537, 200_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            fs::write(&path, &bytes).unwrap();
            assert_eq!(digest(&path), *blake3::hash(&bytes).as_bytes(), "{len} bytes");
        }
    }

    #[test]
    fn hash_digests_of_an_empty_file_and_an_empty_directory_differ() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        let folder = dir.path().join("folder");
        fs::write(&file, "").unwrap();
        fs::create_dir(&folder).unwrap();
        assert_ne!(digest(&file), digest(&folder));
    }

    #[test]
    fn hash_digest_of_a_file_differs_from_a_directory_whose_entries_its_bytes_spell() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        let folder = dir.path().join("folder");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("x"), "").unwrap();
        let mut length_prefixed = 1u64.to_le_bytes().to_vec();
        length_prefixed.push(b'x');
        for bytes in [&b"x\0"[..], b"x", &length_prefixed] {
            fs::write(&file, bytes).unwrap();
            assert_ne!(digest(&file), digest(&folder), "{bytes:?}");
        }
    }

    #[test]
    fn entry_lists_are_told_apart_whatever_bytes_the_names_hold() {
        let lists: [&[&[u8]]; 7] = [
            &[],
            &[b"a"],
            &[b"a", b"b"],
            &[b"ab"],
            &[b"a\0b"],
            &[b"a\0", b"b"],
            &[b"\x01\0\0\0\0\0\0\0a"],
        ];
        for (i, first) in lists.iter().enumerate() {
            for second in &lists[i + 1..] {
                assert_ne!(
                    entries_digest(first.iter().copied()),
                    entries_digest(second.iter().copied()),
                    "{first:?} and {second:?}"
                );
            }
        }
    }

    #[test]
    fn hash_stamp_of_directory_follows_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let empty = FileStamper::Hash.stamp(dir.path()).unwrap();
        assert!(matches!(empty, FileStamp::Hash(Some(_))));
        fs::write(dir.path().join("x"), "").unwrap();
        assert_ne!(FileStamper::Hash.stamp(dir.path()).unwrap(), empty);
    }
}
