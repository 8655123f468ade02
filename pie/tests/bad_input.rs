//! Bad input: missing and unreadable files, and failing dependency checks.
//!
//! An unreadable file is made with a symbolic link that points at itself: stamping or opening it fails with a
//! "too many levels of symbolic links" error for every user, root included (permission bits do not stop root, so
//! `chmod 000` alone cannot be relied on; it is exercised as well when the tests do not run as root).

mod common;

use std::io::ErrorKind;
#[cfg(unix)]
use std::{fs, os::unix::fs::PermissionsExt};

use common::*;
use dev_util::Dir;
use pie::stamp::FileStamper;

#[test]
fn missing_file_gives_none_for_every_stamper() {
    let dir = Dir::new();
    for stamper in STAMPERS {
        let probe = TestTask::ProbeFile(dir.join("missing.txt"), stamper);
        let mut pie = test_pie();
        assert_eq!(pie.require(&probe), ok("none"), "{stamper:?}");
        assert!(pie.new_session().dependency_check_errors().is_empty());
    }
}

#[test]
fn path_through_a_regular_file_is_missing() {
    let dir = Dir::new();
    let file = dir.create("file.txt", "not a folder");
    for stamper in STAMPERS {
        let probe = TestTask::ProbeFile(file.join("inside.txt"), stamper);
        let mut pie = test_pie();
        assert_eq!(pie.require(&probe), ok("none"), "{stamper:?}");
        assert_eq!(pie.require_then_assert_no_execute(&probe), ok("none"), "{stamper:?}");
    }
}

#[test]
fn unreadable_file_is_an_io_error_from_require_file() {
    let dir = Dir::new();
    let path = dir.join("loop");
    make_unreadable(&path);
    for stamper in STAMPERS {
        let probe = TestTask::ProbeFile(path.clone(), stamper);
        let mut pie = test_pie();
        let error = pie.require(&probe).unwrap_err();
        assert_ne!(
            error,
            ErrorKind::NotFound,
            "{stamper:?}: an unreadable file is not a missing one"
        );
        assert!(pie.events().one_execute_of(&probe));
    }
}

#[test]
fn failing_dependency_check_is_reported_and_reexecutes() {
    let dir = Dir::new();
    let path = dir.join("in.txt");
    for stamper in STAMPERS {
        dir.create(&path, "readable");
        let probe = TestTask::ProbeFile(path.clone(), stamper);
        let mut pie = test_pie();
        assert_eq!(pie.require(&probe), ok("some:readable"));

        make_unreadable(&path);
        let mut session = pie.new_session();
        assert!(
            session.require(&probe).is_err(),
            "{stamper:?}: the re-execution sees the error"
        );
        let errors = session.dependency_check_errors();
        assert_eq!(errors.len(), 1, "{stamper:?}: {errors:?}");
        let message = errors[0].to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "the error names the file: {message}"
        );
        assert_ne!(errors[0].kind(), ErrorKind::NotFound);
        drop(session);
        assert!(
            pie.events().one_execute_of(&probe),
            "{stamper:?}: a failed check makes the task execute"
        );

        // The dependency made while the file was unreadable is never consistent.
        let mut session = pie.new_session();
        assert!(session.require(&probe).is_err());
        assert_eq!(session.dependency_check_errors().len(), 1);
        drop(session);
        assert!(pie.events().one_execute_of(&probe));

        dir.remove(&path);
        dir.create(&path, "fixed");
        let mut session = pie.new_session();
        assert_eq!(session.require(&probe), ok("some:fixed"), "{stamper:?}");
        assert!(session.dependency_check_errors().is_empty());
        drop(session);
        assert_eq!(
            pie.require_then_assert_no_execute(&probe),
            ok("some:fixed"),
            "{stamper:?}"
        );
        dir.remove(&path);
    }
}

#[test]
fn dependency_check_errors_are_per_session() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "x");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Modified);
    let other = ret("unrelated");
    let mut pie = test_pie();
    pie.require(&probe).unwrap();
    make_unreadable(&path);

    let mut session = pie.new_session();
    session.require(&other).unwrap();
    assert!(session.dependency_check_errors().is_empty());
    session.require(&probe).unwrap_err();
    // Within the session the task is not checked again, so the error is reported once.
    session.require(&probe).unwrap_err();
    assert_eq!(session.dependency_check_errors().len(), 1);
    drop(session);
    assert!(pie.new_session().dependency_check_errors().is_empty());
}

#[test]
fn unreadable_dependency_of_a_dependency_reexecutes_the_chain() {
    let dir = Dir::new();
    let path = dir.create("in.txt", "Deep");
    let read = read(&path);
    let upper = to_upper(read.clone());
    let mut pie = test_pie();
    assert_eq!(pie.require(&upper), ok("DEEP"));

    make_unreadable(&path);
    let mut session = pie.new_session();
    let output = session.require(&upper);
    assert!(output.is_err(), "the error propagates: {output:?}");
    assert_eq!(session.dependency_check_errors().len(), 1);
    drop(session);
    assert_eq!(pie.executed(), vec![read.clone(), upper.clone()]);
}

#[test]
#[cfg(unix)] // permission bits
fn permission_denied_is_an_io_error_when_not_root() {
    let dir = Dir::new();
    let locked = dir.create_dir("locked");
    let path = dir.create("locked/in.txt", "secret");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Modified);
    let mut pie = test_pie();
    assert_eq!(pie.require(&probe), ok("some:secret"));

    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let blocked = fs::metadata(&path).is_err();
    let output = pie.new_session().require(&probe);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    if blocked {
        assert_eq!(output, Err(ErrorKind::PermissionDenied));
    } else {
        // Root ignores permission bits: the file is as readable as before and the task is consistent. The
        // unreadable-file behaviour is pinned for every user by the symbolic-link tests above.
        assert_eq!(output, ok("some:secret"));
        assert!(!pie.events().any_execute());
    }
}

#[test]
fn path_that_cannot_be_made_absolute_is_an_io_error_not_a_panic() {
    // An empty path has no absolute form.
    let probe = TestTask::ProbeFile(std::path::PathBuf::new(), FileStamper::Modified);
    let mut pie = test_pie();
    let error = pie.require(&probe).unwrap_err();
    assert_eq!(error, ErrorKind::InvalidInput);
    // It names no file, so nothing is recorded for it; requiring the task again gives the same error without
    // executing it (the output is cached like any other).
    assert_eq!(pie.require_then_assert_no_execute(&probe), Err(ErrorKind::InvalidInput));
    let write = write(ret("text"), std::path::PathBuf::new());
    assert!(pie.require(&write).is_err());
    pie.check_invariants();
}
