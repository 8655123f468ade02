//! Test helpers shared by pie's tests, examples and benchmarks.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

pub use tempfile::TempDir;

/// A new temporary directory, removed when dropped.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
