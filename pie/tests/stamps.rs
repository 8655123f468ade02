//! Stamps see what `require_file` sees: a stamp that stays the same promises the same `Option<File>`.
//!
//! - The `Hash` stamper tells a file from a directory, even when the file's bytes spell the directory's entries.

mod common;

use std::fs;

use common::*;
use pie::stamp::FileStamper;

#[test]
fn hash_stamp_tells_an_empty_file_from_an_empty_directory() {
    let dir = temp_dir();
    let path = dir.path().join("thing");
    write_file(&path, "");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Hash);
    let mut pie = test_pie();
    assert_eq!(pie.require(&probe), ok("some:"));

    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert_eq!(pie.require_then_assert_one_execute(&probe), ok("none"));
    assert_eq!(pie.require_then_assert_no_execute(&probe), ok("none"));

    fs::remove_dir(&path).unwrap();
    write_file(&path, "");
    assert_eq!(pie.require_then_assert_one_execute(&probe), ok("some:"));
}

#[test]
fn hash_stamp_tells_a_file_from_a_directory_whose_entries_its_bytes_spell() {
    let dir = temp_dir();
    let path = dir.path().join("thing");
    // The old digest of a directory was its sorted entry names, each followed by a zero byte.
    write_file(&path, "x\0");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Hash);
    let mut pie = test_pie();
    assert_eq!(pie.require(&probe), ok("some:x\0"));

    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    write_file(path.join("x"), "inside");
    assert_eq!(pie.require_then_assert_one_execute(&probe), ok("none"));
    assert_eq!(clean_output(&probe), ok("none"));
}
