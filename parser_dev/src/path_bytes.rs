//! Task paths in the store as bytes, for `#[serde(with = "crate::path_bytes")]`.
//!
//! In a human-readable format (JSON: how pie's remote cache keys and stores tasks) a UTF-8 path is a string
//! instead, so that the cache can store a path below the workspace root relative to it (and a copy of the project
//! in another folder finds the same entries); a path that is not UTF-8 is an array of its bytes there, and matches
//! only itself.
//!
//! serde's own impl for `Path` refuses a path that is not UTF-8, and one such program path would make the whole
//! store unsaveable. On Unix a path is bytes, and those bytes are what is stored ([`OsStrExt::as_bytes`]);
//! elsewhere the path's UTF-8 bytes are stored, so there only a path that is not valid Unicode still cannot be
//! saved. In postcard, pie's store format, bytes are encoded like strings (a length, then the bytes), so stores
//! written before paths were bytes load unchanged.
//!
//! [`OsStrExt::as_bytes`]: std::os::unix::ffi::OsStrExt::as_bytes

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Serialises `path` as its bytes.
pub(crate) fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        if let Some(text) = path.to_str() {
            return serializer.serialize_str(text);
        }
    }
    match to_bytes(path) {
        Some(bytes) => serializer.serialize_bytes(bytes),
        None => Err(serde::ser::Error::custom(format!(
            "the path {} is not valid Unicode",
            path.display()
        ))),
    }
}

/// Deserialises a path from its bytes (or from a string or an array of bytes, for self-describing formats).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    deserializer.deserialize_byte_buf(PathVisitor)
}

struct PathVisitor;

impl<'de> Visitor<'de> for PathVisitor {
    type Value = PathBuf;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a path as bytes")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<PathBuf, E> {
        from_bytes(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<PathBuf, E> {
        from_bytes(bytes)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<PathBuf, E> {
        Ok(PathBuf::from(text))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<PathBuf, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        from_bytes(bytes)
    }
}

#[cfg(unix)]
fn to_bytes(path: &Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    Some(path.as_os_str().as_bytes())
}

#[cfg(not(unix))]
fn to_bytes(path: &Path) -> Option<&[u8]> {
    path.to_str().map(str::as_bytes)
}

#[cfg(unix)]
fn from_bytes<E: de::Error>(bytes: Vec<u8>) -> Result<PathBuf, E> {
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn from_bytes<E: de::Error>(bytes: Vec<u8>) -> Result<PathBuf, E> {
    String::from_utf8(bytes)
        .map(PathBuf::from)
        .map_err(|_| E::custom("a stored path is not UTF-8"))
}

#[cfg(all(test, unix))]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use pie::tracker::event::EventTracker;
    use pie::Pie;

    use crate::task::{Outcome, ParserTask};

    #[test]
    fn a_store_with_a_path_that_is_not_utf8_saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join(OsStr::from_bytes(b"caf\xe9.txt"));
        let grammar = dir.path().join("grammar.pest");
        std::fs::write(&grammar, "main = { \"x\" }").unwrap();
        std::fs::write(&program, "x").unwrap();
        let task = ParserTask::Parse {
            grammar,
            rule: "main".to_string(),
            program: program.clone(),
        };
        let store = dir.path().join("pie.store");
        let mut pie: Pie<ParserTask, Outcome> = Pie::default();
        let output = pie.new_session().require(&task);
        pie.save(&store).expect("a path need not be UTF-8");

        // The same task, path and all, comes back: it is found in the store and nothing executes.
        let mut loaded = Pie::load(&store, EventTracker::default()).unwrap();
        assert_eq!(loaded.task_count(), 2);
        assert_eq!(loaded.new_session().require(&task), output);
        assert!(!loaded.tracker().any_execute());
    }

    #[test]
    fn json_has_a_utf8_path_as_a_string_and_another_as_its_bytes() {
        let task = ParserTask::CompileGrammar {
            grammar: "/w/grammar.pest".into(),
        };
        let json = serde_json::to_string(&task).unwrap();
        assert_eq!(json, r#"{"CompileGrammar":{"grammar":"/w/grammar.pest"}}"#);
        assert_eq!(serde_json::from_str::<ParserTask>(&json).unwrap(), task);

        let odd = ParserTask::CompileGrammar {
            grammar: OsStr::from_bytes(b"/w/caf\xe9").into(),
        };
        let json = serde_json::to_string(&odd).unwrap();
        assert!(json.contains("[47,119,47,99,97,102,233]"), "{json}");
        assert_eq!(serde_json::from_str::<ParserTask>(&json).unwrap(), odd);
    }
}
