//! Stamps: how a file or a task output is fingerprinted so that a later build can tell whether it changed.
//!
//! A *stamper* is the method ([`FileStamper`], [`OutputStamper`]); a *stamp* is its result ([`FileStamp`],
//! [`OutputStamp`]). A dependency records the stamper and the stamp it saw; re-stamping later and comparing tells
//! whether the dependency is still consistent.
//!
//! Invariant: stamping never changes the file system and a stamp of a missing file is a value, not an error.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::Path;
use std::time::SystemTime;

/// How a file is stamped.
///
/// Whatever the stamper, requiring a path never blocks and reads nothing but a regular file: a FIFO, a socket or
/// a device at the path is `Ok(None)` from [`require_file`](crate::Context::require_file), like a directory.
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
    /// Whether something exists at the path: a regular file, a directory or anything else alike. A file replaced
    /// by a directory keeps its stamp, although [`require_file`](crate::Context::require_file) then gives
    /// `Ok(None)`: use it where only existence matters, and `Modified` or `Hash` for a file that is read.
    Exists,
    /// The last-modified time of the file (`None` when missing). The default: one `stat` per check.
    ///
    /// It cannot see a change that keeps the modification time: two writes within one tick of the file system's
    /// clock (up to two seconds on FAT, a few milliseconds on Linux's usual file systems), or a file replaced by a
    /// copy that keeps its time (`cp -p`, an unpacked archive). Use `Hash` when that matters.
    #[default]
    Modified,
    /// A blake3 digest of the file's contents (`None` when missing); rewriting identical bytes is consistent.
    /// For a directory, a digest of its sorted entry names, made so that it is never the digest of a file.
    ///
    /// Something that is neither a regular file nor a directory (a FIFO, a socket, a device) is never read: it
    /// could block, or never end. Its digest is one fixed value, unlike any file's or directory's, so that such a
    /// thing replaced by a file or a directory (or the reverse) is a change, while one FIFO replaced by another is
    /// not: [`require_file`](crate::Context::require_file) gives `Ok(None)` for both.
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

impl FileStamp {
    /// Whether the stamp says that nothing is at the path: `Exists(false)`, `Modified(None)` or `Hash(None)`.
    ///
    /// ```
    /// use pie::stamp::FileStamp;
    /// assert!(FileStamp::Hash(None).is_missing());
    /// assert!(!FileStamp::Exists(true).is_missing());
    /// ```
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            FileStamp::Exists(false) | FileStamp::Modified(None) | FileStamp::Hash(None)
        )
    }

    /// The stamp as people read it: `exists` or `missing` for [`FileStamp::Exists`]; a modification time as a
    /// UTC date with nanoseconds (`2026-12-02 04:40:01.123456789`); a digest as the hex of its first 8 bytes;
    /// `missing` when nothing is at the path.
    ///
    /// ```
    /// use pie::stamp::FileStamp;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let time = UNIX_EPOCH + Duration::new(1_796_186_401, 123_456_789);
    /// assert_eq!(FileStamp::Modified(Some(time)).for_people().to_string(), "2026-12-02 04:40:01.123456789");
    /// assert_eq!(FileStamp::Hash(Some([0xab; 32])).for_people().to_string(), "abababababababab");
    /// assert_eq!(FileStamp::Exists(false).for_people().to_string(), "missing");
    /// ```
    pub fn for_people(&self) -> impl std::fmt::Display + '_ {
        ForPeople(self)
    }
}

/// [`FileStamp::for_people`].
struct ForPeople<'a>(&'a FileStamp);

impl std::fmt::Display for ForPeople<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            stamp if stamp.is_missing() => f.write_str("missing"),
            FileStamp::Exists(_) => f.write_str("exists"),
            FileStamp::Modified(Some(time)) => write_utc(f, *time),
            FileStamp::Hash(Some(digest)) => digest[..8].iter().try_for_each(|byte| write!(f, "{byte:02x}")),
            FileStamp::Modified(None) | FileStamp::Hash(None) => f.write_str("missing"),
        }
    }
}

/// Writes `time` as a UTC date and time with nanoseconds, `YYYY-MM-DD hh:mm:ss.nnnnnnnnn` (a year before 0 or
/// after 9999 is written with its sign or extra digits).
fn write_utc(f: &mut std::fmt::Formatter<'_>, time: SystemTime) -> std::fmt::Result {
    let (seconds, nanos) = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => (i128::from(after.as_secs()), after.subsec_nanos()),
        Err(e) => {
            let before = e.duration();
            match before.subsec_nanos() {
                0 => (-i128::from(before.as_secs()), 0),
                nanos => (-i128::from(before.as_secs()) - 1, 1_000_000_000 - nanos),
            }
        }
    };
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    write!(
        f,
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{nanos:09}"
    )
}

/// The proleptic Gregorian date (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01 (negative:
/// before it).
///
/// Counted in eras of 400 years (146,097 days, the calendar's period), each starting on 1 March, so that the leap
/// day is the last day of an era's year: the day of the era gives the year of the era, the day of that year
/// gives the month (counted from March, in the 153-day halves of five months that the 30/31-day pattern repeats
/// in), and January and February belong to the next civil year.
pub(crate) fn civil_from_days(days: i128) -> (i128, u32, u32) {
    // 1970-01-01 is day 719,468 counted from 0000-03-01.
    let from_march_0 = days + 719_468;
    let era = from_march_0.div_euclid(146_097);
    let day_of_era = from_march_0.rem_euclid(146_097); // 0..=146_096
                                                       // Years of the era: every 4th year has a day more, except the 100th (but the 400th, the era's last, does).
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // 0..=365, from 1 March
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
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
            FileStamper::Hash => hash_entry(path, &open_entry(path, fs::Metadata::len)?).map(FileStamp::Hash),
        }
    }

    /// The stamp of what is at `path` and, when it is a regular file, the file open for reading at its start (what
    /// `require_file` returns): one `open` and one `fstat` for both, where [`stamp`](Self::stamp) followed by
    /// opening cost two of each with Hash stamps (and a `stat`, an `open` and an `fstat` with the others). The
    /// stamp is that of the file that is returned, whatever replaces it at the path meanwhile, and equals what
    /// `stamp` gives for the same file.
    pub(crate) fn stamp_and_open(&self, path: &Path) -> io::Result<(FileStamp, Option<File>)> {
        match self {
            FileStamper::Exists => {
                let entry = open_entry(path, |_| ())?;
                Ok((FileStamp::Exists(!matches!(entry, Entry::Missing)), entry.into_file()))
            }
            FileStamper::Modified => Ok(match open_entry(path, fs::Metadata::modified)? {
                Entry::Missing => (FileStamp::Modified(None), None),
                Entry::File(file, modified) => (FileStamp::Modified(Some(modified?)), Some(file)),
                Entry::Directory(modified) | Entry::Special(modified) => (FileStamp::Modified(Some(modified?)), None),
            }),
            FileStamper::Hash => {
                let entry = open_entry(path, fs::Metadata::len)?;
                let stamp = FileStamp::Hash(hash_entry(path, &entry)?);
                let file = entry.into_file();
                // The digest read the bytes with `pread` on Unix, which leaves the cursor at the start.
                #[cfg(not(unix))]
                if let Some(file) = &file {
                    io::Seek::rewind(&mut &*file)?;
                }
                Ok((stamp, file))
            }
        }
    }
}

/// Whether `error` means that nothing is at the path (including a path through a regular file).
pub(crate) fn is_missing(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// What is at a path, as [`open_entry`] found it, with what its caller kept of its metadata (`M`).
pub(crate) enum Entry<M> {
    /// Nothing (or a path through a regular file).
    Missing,
    /// A regular file, open for reading (at its start).
    File(File, M),
    /// A directory.
    Directory(M),
    /// Something that is neither a regular file nor a directory: a FIFO, a socket, a device. Never read: reading a
    /// FIFO would block or take another reader's data, and a device such as `/dev/zero` never ends.
    Special(M),
}

impl<M> Entry<M> {
    /// The file, when the entry is a regular file.
    pub(crate) fn into_file(self) -> Option<File> {
        match self {
            Entry::File(file, _) => Some(file),
            Entry::Missing | Entry::Directory(_) | Entry::Special(_) => None,
        }
    }
}

/// Opens what is at `path` for reading and tells what it is, without blocking and without reading anything.
///
/// The open asks not to block (`O_NONBLOCK`), so that a FIFO without a writer opens at once; `fstat` on the open
/// file then tells the kind, race-free. That is one `open` and one `fstat` for a regular file, as `File::open`
/// followed by `metadata` costs; the path's metadata is asked only when the open fails (a socket cannot be
/// opened; on Windows, neither can a directory). `O_NONBLOCK` has no effect on reading a regular file (open(2)).
/// Opening a FIFO does wake a writer that waits for a reader; nothing is read from it.
///
/// `keep` takes what the caller needs of the metadata (the whole `fs::Metadata` is some 180 bytes: carrying it
/// made a no-op Hash check about 130 instructions dearer, callgrind).
pub(crate) fn open_entry<M>(path: &Path, keep: impl Fn(&fs::Metadata) -> M) -> io::Result<Entry<M>> {
    #[cfg(unix)]
    if O_NONBLOCK.is_none() {
        // Without the flag, opening a FIFO would block: look first. Racy, but only on targets not listed there.
        match fs::metadata(path) {
            Ok(metadata) if is_special(&metadata) => return Ok(Entry::Special(keep(&metadata))),
            Err(e) if is_missing(&e) => return Ok(Entry::Missing),
            _ => {}
        }
    }
    let file = match open_without_blocking(path) {
        Ok(file) => file,
        Err(e) if is_missing(&e) => return Ok(Entry::Missing),
        Err(e) => {
            return match fs::metadata(path) {
                Ok(metadata) if metadata.is_dir() => Ok(Entry::Directory(keep(&metadata))),
                Ok(metadata) if is_special(&metadata) => Ok(Entry::Special(keep(&metadata))),
                _ => Err(e),
            }
        }
    };
    let metadata = file.metadata()?;
    let kept = keep(&metadata);
    Ok(if metadata.is_file() {
        Entry::File(file, kept)
    } else if metadata.is_dir() {
        Entry::Directory(kept)
    } else {
        Entry::Special(kept)
    })
}

fn is_special(metadata: &fs::Metadata) -> bool {
    !metadata.is_file() && !metadata.is_dir()
}

fn open_without_blocking(path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    if let Some(flag) = O_NONBLOCK {
        use std::os::unix::fs::OpenOptionsExt;
        return fs::OpenOptions::new().read(true).custom_flags(flag).open(path);
    }
    File::open(path)
}

/// The target's `O_NONBLOCK` open flag, as its C headers define it (std has no name for it, and one number does
/// not justify a `libc` dependency of the core library); `None` on a Unix not listed here.
#[cfg(unix)]
const O_NONBLOCK: Option<i32> = if cfg!(any(target_os = "linux", target_os = "android")) {
    if cfg!(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6"
    )) {
        Some(0x80)
    } else if cfg!(any(target_arch = "sparc", target_arch = "sparc64")) {
        Some(0x4000)
    } else {
        Some(0x800)
    }
} else if cfg!(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)) {
    Some(0x4)
} else if cfg!(any(target_os = "solaris", target_os = "illumos")) {
    Some(0x80)
} else {
    None
};

/// The Hash stamp's digest of `entry`, opened at `path` with its length kept.
fn hash_entry(path: &Path, entry: &Entry<u64>) -> io::Result<Option<[u8; 32]>> {
    Ok(Some(match entry {
        Entry::Missing => return Ok(None),
        Entry::File(file, len) => file_digest(file, *len)?,
        Entry::Directory(_) => directory_digest(path)?,
        Entry::Special(_) => special_digest(),
    }))
}

/// The size of the buffer that [`file_digest`] reads into.
const DIGEST_BUFFER_LEN: usize = 64 * 1024;

thread_local! {
    /// The buffer of [`file_digest`] on this thread, zeroed once when first used rather than at every file: zeroing
    /// 64 KiB cost more than opening, reading and hashing a small file (about 65,000 of the 70,000 instructions of
    /// a stamp, callgrind).
    static DIGEST_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// blake3 of the bytes of `file`, whose length was `len` when it was opened.
///
/// Reading stops at a short read that ends exactly at `len`: that read met the end of the file, so no further
/// read is needed to prove it. A small file thus costs one `open`, one `fstat` and one `read`, where reading to
/// an empty read without asking the kind cost one `open` and two `read`s. A file that grew since it was opened is
/// read to its end, as is a file whose stated length is 0 (as under `/proc`).
fn file_digest(file: &File, len: u64) -> io::Result<[u8; 32]> {
    DIGEST_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.is_empty() {
                buffer.resize(DIGEST_BUFFER_LEN, 0);
            }
            digest_into(file, len, &mut buffer)
        }
        // Never in practice (hashing calls nothing that hashes), but a fresh buffer is always correct.
        Err(_) => digest_into(file, len, &mut vec![0; DIGEST_BUFFER_LEN]),
    })
}

/// [`file_digest`], reading into `buffer`.
fn digest_into(file: &File, len: u64, buffer: &mut [u8]) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut total: u64 = 0;
    loop {
        let read = match read_at(file, buffer, total) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..read]);
        total += read as u64;
        if read < buffer.len() && total == len {
            break;
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Reads from `file` at `offset`: without moving its cursor on Unix (`pread`), from the cursor (which is at
/// `offset`, as [`digest_into`] reads from the start) elsewhere.
fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buffer, offset);
    #[cfg(not(unix))]
    {
        let _ = offset;
        io::Read::read(&mut &*file, buffer)
    }
}

/// The blake3 key-derivation context of the digest of something that is neither a file nor a directory.
const SPECIAL_CONTEXT: &str = "pie 2026-05 FileStamper::Hash neither a file nor a directory";

/// The one digest of everything that is neither a file nor a directory: unlike any file's (blake3's plain mode)
/// and any directory's (another context).
fn special_digest() -> [u8; 32] {
    blake3::derive_key(SPECIAL_CONTEXT, &[])
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

    /// Days since 1970-01-01 of a proleptic Gregorian date, counted naively day by day from year 0: the
    /// reference that `civil_from_days` is compared with.
    fn days_by_counting(year: i128, month: u32, day: u32) -> i128 {
        let leap = |y: i128| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = |y: i128, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut days: i128 = 0;
        for y in 0..year {
            days += if leap(y) { 366 } else { 365 };
        }
        for m in 1..month {
            days += month_days(year, m);
        }
        days + i128::from(day) - 1 - 719_528 // 719,528 days from 0000-01-01 to 1970-01-01
    }

    #[test]
    fn civil_dates_of_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // a leap day of a year divisible by 400
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1)); // 1900 had no 29 February
        assert_eq!(civil_from_days(-25_509), (1900, 2, 28));
        assert_eq!(civil_from_days(19_722), (2023, 12, 31));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
        assert_eq!(civil_from_days(-719_528), (0, 1, 1));
    }

    #[test]
    fn civil_dates_agree_with_counting_days_over_centuries() {
        for year in [
            0, 1, 99, 100, 399, 400, 1600, 1899, 1900, 1969, 1970, 1999, 2000, 2024, 2100, 2400,
        ] {
            for month in 1..=12 {
                for day in [1, 15, 28] {
                    let days = days_by_counting(year, month, day);
                    assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
                }
            }
        }
        // Every day of 1999 to 2001 (two non-leap years around a leap year divisible by 400), one after the other.
        let start = days_by_counting(1999, 1, 1);
        let mut expected = (1999, 1, 1);
        for days in start..start + 3 * 366 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!((y, m, d), expected);
            let next = civil_from_days(days + 1);
            assert!(
                next == (y, m, d + 1) || next == (y, m + 1, 1) || next == (y + 1, 1, 1),
                "{next:?}"
            );
            expected = next;
        }
    }

    #[test]
    fn stamps_for_people() {
        use std::time::{Duration, UNIX_EPOCH};
        let time = UNIX_EPOCH + Duration::new(1_796_186_401, 123_456_789);
        assert_eq!(
            FileStamp::Modified(Some(time)).for_people().to_string(),
            "2026-12-02 04:40:01.123456789"
        );
        assert_eq!(
            FileStamp::Modified(Some(UNIX_EPOCH)).for_people().to_string(),
            "1970-01-01 00:00:00.000000000"
        );
        let before = UNIX_EPOCH - Duration::new(0, 1);
        assert_eq!(
            FileStamp::Modified(Some(before)).for_people().to_string(),
            "1969-12-31 23:59:59.999999999"
        );
        assert_eq!(FileStamp::Modified(None).for_people().to_string(), "missing");
        let mut digest = [0; 32];
        digest[..9].copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xff]);
        assert_eq!(
            FileStamp::Hash(Some(digest)).for_people().to_string(),
            "0123456789abcdef"
        );
        assert_eq!(FileStamp::Hash(None).for_people().to_string(), "missing");
        assert_eq!(FileStamp::Exists(true).for_people().to_string(), "exists");
        assert_eq!(FileStamp::Exists(false).for_people().to_string(), "missing");
    }

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
    fn the_digest_of_what_is_neither_file_nor_directory_is_neither_a_files_nor_a_directorys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let special = special_digest();
        assert_ne!(special, digest(&file));
        assert_ne!(special, digest(dir.path()));
        assert_ne!(special, entries_digest([]));
        #[cfg(unix)]
        assert_eq!(digest(Path::new("/dev/null")), special, "a character device");
    }

    /// The flag is a number taken from C headers: check it against what the kernel reports for an open file.
    #[cfg(target_os = "linux")]
    #[test]
    fn o_nonblock_is_the_flag_the_kernel_reports() {
        use std::os::fd::AsRawFd;
        fn flags(file: &File) -> i32 {
            let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).unwrap();
            let line = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap();
            i32::from_str_radix(line.trim(), 8).unwrap()
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "").unwrap();
        let blocking = flags(&File::open(&path).unwrap());
        let non_blocking = flags(&open_without_blocking(&path).unwrap());
        assert_eq!(blocking ^ non_blocking, O_NONBLOCK.unwrap());
    }

    #[test]
    fn hash_stamp_of_directory_follows_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let empty = FileStamper::Hash.stamp(dir.path()).unwrap();
        assert!(matches!(empty, FileStamp::Hash(Some(_))));
        fs::write(dir.path().join("x"), "").unwrap();
        assert_ne!(FileStamper::Hash.stamp(dir.path()).unwrap(), empty);
    }

    /// The digest of a file is blake3 of its bytes whatever its length against the reused read buffer (empty,
    /// shorter, exactly as long, longer, several times as long), and on every thread (each has its own buffer).
    #[test]
    fn a_file_digest_is_blake3_of_its_bytes_across_the_read_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let lengths = [
            0,
            1,
            4095,
            DIGEST_BUFFER_LEN - 1,
            DIGEST_BUFFER_LEN,
            DIGEST_BUFFER_LEN + 1,
            3 * DIGEST_BUFFER_LEN + 7,
        ];
        let files: Vec<(std::path::PathBuf, [u8; 32])> = lengths
            .iter()
            .map(|&len| {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let path = dir.path().join(format!("f{len}"));
                fs::write(&path, &bytes).unwrap();
                (path, *blake3::hash(&bytes).as_bytes())
            })
            .collect();
        let check = |files: &[(std::path::PathBuf, [u8; 32])]| {
            // Largest first, so that a short file read after a long one could only pass with the right length.
            for (path, digest) in files.iter().rev().chain(files) {
                assert_eq!(
                    FileStamper::Hash.stamp(path).unwrap(),
                    FileStamp::Hash(Some(*digest)),
                    "{}",
                    path.display()
                );
            }
        };
        check(&files);
        std::thread::scope(|scope| {
            scope.spawn(|| check(&files));
            scope.spawn(|| check(&files));
        });
    }

    /// `stamp_and_open` gives what `stamp` gives, for every stamper, for nothing, a file (shorter and longer than
    /// the read buffer), a directory and a FIFO; it returns a file only for a regular file, read from its start.
    #[cfg(unix)]
    #[test]
    fn stamp_and_open_stamps_as_stamp_does_and_opens_only_a_file() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        fs::write(&short, "short bytes").unwrap();
        let long = dir.path().join("long");
        let long_bytes: Vec<u8> = (0..3 * DIGEST_BUFFER_LEN + 5).map(|i| (i % 253) as u8).collect();
        fs::write(&long, &long_bytes).unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("entry"), "").unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let cases: [(&Path, Option<&[u8]>); 5] = [
            (&dir.path().join("missing"), None),
            (&short, Some(b"short bytes")),
            (&long, Some(&long_bytes)),
            (&sub, None),
            (&fifo, None),
        ];
        for stamper in [FileStamper::Exists, FileStamper::Modified, FileStamper::Hash] {
            for (path, bytes) in cases {
                let (stamp, file) = stamper.stamp_and_open(path).unwrap();
                assert_eq!(stamp, stamper.stamp(path).unwrap(), "{stamper:?} of {}", path.display());
                let read = file.map(|mut file| {
                    let mut read = Vec::new();
                    file.read_to_end(&mut read).unwrap();
                    read
                });
                assert_eq!(read.as_deref(), bytes, "{stamper:?} of {}", path.display());
            }
        }
    }
}
