//! Test helpers shared by pie's tests, examples and benchmarks.
//!
//! [`Dir`] is the fixture of every test that needs files: a temporary folder in which each step of the setup is one
//! line (`dir.create("ghi/toplevel.txt", "xyz")`), and which is removed when the test ends.
//! [`write_until_modified`] is the write underneath, for code that writes files outside a `Dir`.
//! [`nginx::Nginx`] is a private nginx serving a remote cache, for the tests of `pie::remote`. [`take_until`] collects
//! a stream of results up to the one a test waits for.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

pub mod nginx;

pub use tempfile::TempDir;

/// A temporary folder for one test, removed with everything in it when dropped.
///
/// Paths given to its methods are relative to the folder; an absolute path is accepted too, as long as it lies in
/// the folder (so a path returned by [`Dir::create`] can be handed back). Methods that touch the file system refuse
/// a path outside the folder, or one with `..` in it. Every method that touches the file
/// system panics with a message naming the path when it fails: in a test, a failed setup step is a failed test.
///
/// ```
/// use dev_util::Dir;
///
/// let dir = Dir::new();
/// let input = dir.create("ghi/toplevel.txt", "xyz");
/// assert_eq!(input, dir.path().join("ghi").join("toplevel.txt"));
/// dir.write(&input, "abc");
/// assert_eq!(dir.read("ghi/toplevel.txt"), "abc");
/// ```
#[derive(Debug)]
pub struct Dir {
    temp: TempDir,
}

impl Dir {
    /// A new, empty temporary folder. Panics when the folder cannot be made.
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// assert!(dir.path().is_dir());
    /// ```
    pub fn new() -> Self {
        let temp = create_temp_dir().unwrap_or_else(|e| panic!("cannot create a temporary folder: {e}"));
        Self { temp }
    }

    /// The absolute path of the folder.
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// assert!(dir.path().is_absolute());
    /// ```
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The absolute path of `path` in the folder, without touching the file system (like [`Path::join`]: `.` and
    /// `..` stay as they are).
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// let path = dir.join("sub/out.txt");
    /// assert_eq!(path, dir.path().join("sub").join("out.txt"));
    /// assert!(!path.exists());
    /// ```
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        self.path().join(path)
    }

    /// Writes `contents` to the file at `path`, creating the folders above it, and returns its absolute path. A file
    /// already there is replaced. The write is repeated until the file's modification time changes (see
    /// [`write_until_modified`]), so a `Modified` stamp always sees it.
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// let path = dir.create("a/b/c.txt", "xyz");
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "xyz");
    /// ```
    pub fn create(&self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.inside(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create folder {}: {e}", parent.display()));
        }
        write_until_modified(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Rewrites the file at `path`, which must exist, with `contents`; like [`Dir::create`], the modification time
    /// always changes. For changing an input between builds: a mistyped name panics instead of creating a file that
    /// no task reads.
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// let path = dir.create("in.txt", "old");
    /// let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    /// dir.write(&path, "old");
    /// assert_ne!(std::fs::metadata(&path).unwrap().modified().unwrap(), before);
    /// assert_eq!(dir.read("in.txt"), "old");
    /// ```
    pub fn write(&self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.inside(path);
        assert!(
            path.is_file(),
            "cannot rewrite {}: there is no file (Dir::create makes one)",
            path.display()
        );
        write_until_modified(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// The contents of the file at `path`, which must be UTF-8.
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// dir.create("in.txt", "text");
    /// assert_eq!(dir.read("in.txt"), "text");
    /// ```
    pub fn read(&self, path: impl AsRef<Path>) -> String {
        let path = self.inside(path);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// Removes the file, symbolic link or empty folder at `path`. Panics when nothing is there.
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// let file = dir.create("in.txt", "text");
    /// let folder = dir.create_dir("sub");
    /// dir.remove("in.txt");
    /// dir.remove(&folder);
    /// assert!(!file.exists() && !folder.exists());
    /// ```
    pub fn remove(&self, path: impl AsRef<Path>) {
        let path = self.inside(path);
        let metadata = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        let removed = if metadata.is_dir() {
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
    }

    /// Creates the folder at `path` and the folders above it, and returns its absolute path. A folder already there
    /// is fine.
    ///
    /// ```
    /// let dir = dev_util::Dir::new();
    /// let sub = dir.create_dir("a/b");
    /// assert!(sub.is_dir());
    /// ```
    pub fn create_dir(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = self.inside(path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create folder {}: {e}", path.display()));
        path
    }

    /// Copies each of the files `names` from the folder `from` to the same name in this folder.
    ///
    /// ```
    /// let examples = dev_util::Dir::new();
    /// examples.create("grammar.pest", "main = { \"x\" }");
    /// let dir = dev_util::Dir::new();
    /// dir.copy_from(examples.path(), &["grammar.pest"]);
    /// assert_eq!(dir.read("grammar.pest"), "main = { \"x\" }");
    /// ```
    pub fn copy_from(&self, from: impl AsRef<Path>, names: &[&str]) {
        for name in names {
            let source = from.as_ref().join(name);
            let target = self.inside(name);
            fs::copy(&source, &target)
                .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", source.display(), target.display()));
        }
    }

    /// [`Dir::join`], checked to stay in the folder: under it, and without `..`, so that no test writes or removes
    /// anything elsewhere.
    fn inside(&self, path: impl AsRef<Path>) -> PathBuf {
        let joined = self.join(&path);
        let below = joined.strip_prefix(self.path()).ok();
        assert!(
            below.is_some_and(|below| below.components().all(|c| c != Component::ParentDir)),
            "{} is outside the test folder {}",
            path.as_ref().display(),
            self.path().display()
        );
        joined
    }
}

impl Default for Dir {
    /// [`Dir::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// A new temporary directory, removed when dropped. Tests use [`Dir`], which panics instead of returning an error
/// and has the file operations a test needs.
pub fn create_temp_dir() -> io::Result<TempDir> {
    tempfile::tempdir()
}

/// Writes `contents` to `path`, repeating the write until the file's modification time differs from what it was
/// before, so that a [`Modified`](https://docs.rs/pie) stamp sees the change even on file systems with a coarse
/// clock. A file that did not exist counts as changed after the first write.
pub fn write_until_modified(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref();
    let contents = contents.as_ref();
    let before = modified(path)?;
    loop {
        fs::write(path, contents)?;
        let after = modified(path)?;
        if after != before {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn modified(path: &Path) -> io::Result<Option<SystemTime>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.modified()?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes items from `next` up to and including the first for which `done` holds, and returns them all: for tests
/// that wait for one of a stream of results (a watch loop's builds) and check the ones before it too.
///
/// ```
/// let mut counter = 0;
/// let seen = dev_util::take_until(
///     || {
///         counter += 1;
///         counter
///     },
///     |n| *n == 3,
/// );
/// assert_eq!(seen, vec![1, 2, 3]);
/// ```
pub fn take_until<S>(mut next: impl FnMut() -> S, done: impl Fn(&S) -> bool) -> Vec<S> {
    let mut seen = Vec::new();
    loop {
        let item = next();
        let finished = done(&item);
        seen.push(item);
        if finished {
            return seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{self, AssertUnwindSafe};

    use super::*;

    /// The message of the panic of `f`; fails the test when `f` does not panic.
    fn panic_message(f: impl FnOnce()) -> String {
        let payload = panic::catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
        match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s.to_string(),
            (None, None) => panic!("a panic without a message"),
        }
    }

    #[test]
    fn write_until_modified_changes_mtime_every_time() {
        let dir = create_temp_dir().unwrap();
        let path = dir.path().join("f");
        write_until_modified(&path, "a").unwrap();
        let first = modified(&path).unwrap();
        write_until_modified(&path, "a").unwrap();
        assert_ne!(modified(&path).unwrap(), first);
        assert_eq!(fs::read_to_string(&path).unwrap(), "a");
    }

    #[test]
    fn dir_is_removed_when_dropped() {
        let dir = Dir::new();
        dir.create("sub/f", "x");
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn join_is_lexical_and_touches_nothing() {
        let dir = Dir::new();
        assert_eq!(dir.join("a/../b"), dir.path().join("a").join("..").join("b"));
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn create_makes_parent_folders_and_returns_the_absolute_path() {
        let dir = Dir::new();
        let path = dir.create("a/b/c.txt", "xyz");
        assert!(path.is_absolute());
        assert_eq!(path, dir.path().join("a/b/c.txt"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "xyz");
        // Bytes that are not UTF-8 are fine.
        let bytes = dir.create("bytes", b"\xff\x00");
        assert_eq!(fs::read(bytes).unwrap(), b"\xff\x00");
    }

    #[test]
    fn create_replaces_a_file_and_always_changes_its_modification_time() {
        let dir = Dir::new();
        let path = dir.create("f", "same");
        for _ in 0..3 {
            let before = modified(&path).unwrap();
            assert_eq!(dir.create("f", "same"), path);
            assert_ne!(modified(&path).unwrap(), before);
        }
        dir.create(&path, "other");
        assert_eq!(dir.read("f"), "other");
    }

    #[test]
    fn write_rewrites_an_existing_file_by_relative_or_absolute_path() {
        let dir = Dir::new();
        let path = dir.create("f", "one");
        let before = modified(&path).unwrap();
        dir.write("f", "one");
        assert_ne!(modified(&path).unwrap(), before);
        dir.write(&path, "two");
        assert_eq!(dir.read(&path), "two");
    }

    #[test]
    fn write_refuses_a_missing_file() {
        let dir = Dir::new();
        let message = panic_message(|| dir.write("typo.txt", "x"));
        assert!(message.starts_with("cannot rewrite "), "{message}");
        assert!(message.contains("typo.txt"), "{message}");
        assert!(!dir.join("typo.txt").exists());
    }

    #[test]
    fn read_names_a_missing_file() {
        let dir = Dir::new();
        let message = panic_message(|| {
            dir.read("missing.txt");
        });
        assert!(message.starts_with("cannot read "), "{message}");
        assert!(message.contains("missing.txt"), "{message}");
    }

    #[test]
    fn remove_takes_files_links_and_empty_folders() {
        let dir = Dir::new();
        let file = dir.create("f", "x");
        let folder = dir.create_dir("sub");
        let link = dir.join("link");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&link, &link).unwrap();
        #[cfg(windows)]
        std::os::windows::fs::symlink_file(&link, &link).unwrap();
        dir.remove(&file);
        dir.remove("sub");
        dir.remove("link");
        assert!(!file.exists() && !folder.exists() && fs::symlink_metadata(&link).is_err());
        let message = panic_message(|| dir.remove("f"));
        assert!(message.starts_with("cannot remove "), "{message}");
    }

    #[test]
    fn create_dir_makes_parents_and_accepts_an_existing_folder() {
        let dir = Dir::new();
        let sub = dir.create_dir("a/b");
        assert!(sub.is_dir());
        assert_eq!(dir.create_dir("a/b"), sub);
        assert_eq!(sub, dir.path().join("a").join("b"));
    }

    #[test]
    fn copy_from_copies_the_named_files_only() {
        let from = Dir::new();
        from.create("one", "1");
        from.create("two", "2");
        let dir = Dir::new();
        dir.copy_from(from.path(), &["one"]);
        assert_eq!(dir.read("one"), "1");
        assert!(!dir.join("two").exists());
        let message = panic_message(|| dir.copy_from(from.path(), &["three"]));
        assert!(message.starts_with("cannot copy "), "{message}");
    }

    #[test]
    fn paths_outside_the_folder_are_refused() {
        let dir = Dir::new();
        let other = Dir::new();
        let outside = other.join("f");
        let message = panic_message(|| {
            dir.create(&outside, "x");
        });
        assert!(message.contains("is outside the test folder"), "{message}");
        assert!(!outside.exists());
        let message = panic_message(|| {
            dir.read("/etc/hostname");
        });
        assert!(message.contains("is outside the test folder"), "{message}");
        let message = panic_message(|| {
            dir.create_dir("sub/../../escaped");
        });
        assert!(message.contains("is outside the test folder"), "{message}");
        assert!(!dir.path().with_file_name("escaped").exists());
    }
}
