//! Path normalisation: every file node is keyed by an absolute, lexically normalised path, so that `dir/f`,
//! `dir/./f`, `dir/sub/../f` and the absolute form of any of them are one file for every check.
//!
//! Normalisation is lexical (no symlinks are resolved, the file need not exist): `.` components are dropped and
//! `..` removes the preceding normal component. Invariant: a [`NormalPath`] is only made by [`NormalPath::new`].

use std::borrow::Cow;
use std::io;
use std::path::{Component, Path, PathBuf};

/// An absolute path without `.` or `..` components (except `..` directly below the root, which stays). Borrows
/// the given path when it is already absolute and spelt normally (the common case: no allocation per required
/// file), owns a normalised copy otherwise.
#[derive(Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
pub(crate) struct NormalPath<'a>(Cow<'a, Path>);

impl<'a> NormalPath<'a> {
    /// Makes `path` absolute (against the current directory) and removes `.` and `..` lexically.
    pub(crate) fn new(path: &'a Path) -> io::Result<Self> {
        if path.is_absolute() {
            if is_spelt_normally(path) {
                return Ok(Self(Cow::Borrowed(path)));
            }
            return Ok(Self(Cow::Owned(normalize_absolute(path))));
        }
        Ok(Self(Cow::Owned(normalize_absolute(&std::path::absolute(path)?))))
    }

    /// A path that [`NormalPath::new`] made earlier (kept as a plain `Path` meanwhile).
    pub(crate) fn again(path: &'a Path) -> Self {
        debug_assert!(path.is_absolute(), "not normalised: {}", path.display());
        Self(Cow::Borrowed(path))
    }

    /// Whether the normalised path is the given one (no copy was needed).
    pub(crate) fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    pub(crate) fn as_path(&self) -> &Path {
        &self.0
    }
}

/// Paths are stored as their raw bytes on Unix, so that a file name that is not UTF-8 can still be saved (serde's
/// own `Path` impl refuses it); elsewhere as a string. A decoded path is checked by `Store::validate`.
#[cfg(feature = "serde")]
impl serde::Serialize for NormalPath<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SerializePath(&self.0).serialize(serializer)
    }
}

/// Serialises a borrowed path exactly as a [`NormalPath`] is serialised (the interner stores paths unowned).
#[cfg(feature = "serde")]
pub(crate) struct SerializePath<'a>(pub(crate) &'a Path);

#[cfg(feature = "serde")]
impl serde::Serialize for SerializePath<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[cfg(unix)]
        {
            serializer.serialize_bytes(self.0.as_os_str().as_encoded_bytes())
        }
        #[cfg(not(unix))]
        {
            self.0.serialize(serializer)
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for NormalPath<'static> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            struct Bytes;
            impl serde::de::Visitor<'_> for Bytes {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("the bytes of a path")
                }
                fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(bytes.to_vec())
                }
                fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
                    Ok(bytes)
                }
            }
            let bytes = deserializer.deserialize_byte_buf(Bytes)?;
            Ok(Self(Cow::Owned(PathBuf::from(std::ffi::OsString::from_vec(bytes)))))
        }
        #[cfg(not(unix))]
        {
            PathBuf::deserialize(deserializer).map(|p| Self(Cow::Owned(p)))
        }
    }
}

/// Normalises `path` for comparison, falling back to the path as given when it cannot be made absolute.
pub(crate) fn normalized_for_comparison(path: &Path) -> PathBuf {
    match NormalPath::new(path) {
        Ok(p) => p.0.into_owned(),
        Err(_) => path.to_path_buf(),
    }
}

/// Whether the absolute `path` is already spelt in normal form: one pass over its bytes, no allocation (this runs
/// on every required or provided file and on every path of a loaded store).
#[cfg(unix)]
fn is_spelt_normally(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    match bytes.strip_prefix(b"/") {
        Some(b"") => true,
        Some(rest) => rest
            .split(|b| *b == b'/')
            .all(|name| !name.is_empty() && name != b"." && name != b".."),
        None => false,
    }
}

#[cfg(not(unix))]
fn is_spelt_normally(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    !(path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || bytes.ends_with(b"/")
        || bytes.ends_with(b"/.")
        || bytes.windows(2).any(|w| w == b"//")
        || bytes.windows(3).any(|w| w == b"/./"))
}

fn normalize_absolute(path: &Path) -> PathBuf {
    // `components()` silently skips interior `.` and repeated separators, so the bytes are inspected too: a stored
    // path must be spelt normally (it is shown in messages and saved), not merely compare equal to its normal form.
    if is_spelt_normally(path) {
        return path.to_path_buf();
    }
    let mut out = PathBuf::with_capacity(path.as_os_str().len());
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> PathBuf {
        NormalPath::new(Path::new(p)).unwrap().0.into_owned()
    }

    #[test]
    fn a_normally_spelt_absolute_path_is_borrowed_not_copied() {
        assert!(matches!(
            NormalPath::new(Path::new("/a/b")).unwrap().0,
            Cow::Borrowed(_)
        ));
        assert!(matches!(NormalPath::new(Path::new("/a/./b")).unwrap().0, Cow::Owned(_)));
        assert!(matches!(NormalPath::new(Path::new("a/b")).unwrap().0, Cow::Owned(_)));
    }

    #[test]
    fn normal_spelling_is_recognised() {
        for normal in ["/", "/a", "/a/b", "/a/.b/..c/b.", "/a/...", "/a b/c"] {
            assert!(is_spelt_normally(Path::new(normal)), "{normal}");
            assert_eq!(n(normal), PathBuf::from(normal));
        }
        for odd in ["/a/", "//a", "/a//b", "/a/./b", "/a/.", "/a/..", "/../a", "/.", "a/b"] {
            assert!(!is_spelt_normally(Path::new(odd)), "{odd}");
        }
        assert_eq!(n("/a//b").as_os_str(), "/a/b");
        assert_eq!(n("/a/.").as_os_str(), "/a");
    }

    #[test]
    fn dot_and_dot_dot_are_removed() {
        assert_eq!(n("/a/./b"), PathBuf::from("/a/b"));
        assert_eq!(n("/a/sub/../b"), PathBuf::from("/a/b"));
        assert_eq!(n("/a/b/"), PathBuf::from("/a/b"));
        assert_eq!(n("/../a"), PathBuf::from("/a"));
        assert_eq!(n("/a/b/c/../../d"), PathBuf::from("/a/d"));
    }

    #[test]
    fn interior_dots_and_repeated_separators_are_removed_from_the_spelling() {
        // `Path` equality already ignores these, so compare the bytes.
        for (given, normal) in [
            ("/a/./b", "/a/b"),
            ("/a//b", "/a/b"),
            ("/a/b/.", "/a/b"),
            ("/a/.//./b/", "/a/b"),
        ] {
            assert_eq!(n(given).as_os_str(), normal, "{given}");
        }
    }

    #[test]
    fn relative_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(n("x/./y"), cwd.join("x/y"));
        assert_eq!(n("x/z/../y"), cwd.join("x/y"));
    }
}
