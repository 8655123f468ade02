//! Stamps see what `require_file` sees: a stamp that stays the same promises the same `Option<File>`.
//!
//! - The `Hash` stamper tells a file from a directory, even when the file's bytes spell the directory's entries.
//! - What is neither a regular file nor a directory (a FIFO, a socket, a device) is `Ok(None)` for every stamper,
//!   and requiring it never blocks: each such build runs on its own thread under a timeout, so a regression fails
//!   the test instead of hanging the test run.
//! - `NonIncrementalContext`, the reference, normalises paths exactly as the incremental context does.

mod common;

use std::any::Any;
use std::fs;
#[cfg(unix)]
use std::os::unix::net::UnixListener;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use common::*;
use dev_util::Dir;
use pie::stamp::FileStamper;

/// Generous: a build here takes milliseconds; only a blocked `open` or an endless read takes this long.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `f` on a thread of its own and returns its result, re-raising its panic. Fails the test when `f` has not
/// finished after [`TIMEOUT`] (the blocked thread is left behind; it ends with the test process).
fn within_timeout<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (sender, receiver) = mpsc::channel::<Result<R, Box<dyn Any + Send>>>();
    thread::spawn(move || {
        let _ = sender.send(panic::catch_unwind(AssertUnwindSafe(f)));
    });
    match receiver.recv_timeout(TIMEOUT) {
        Ok(Ok(result)) => result,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {TIMEOUT:?}: it blocks"),
        Err(RecvTimeoutError::Disconnected) => panic!("BUG: the thread of {what} ended without a result"),
    }
}

/// Makes a named pipe at `path` with the `mkfifo` utility.
#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("cannot run mkfifo");
    assert!(status.success(), "mkfifo {} failed: {status}", path.display());
}

/// Requires `path` with every stamper, each in a fresh `Pie` under a timeout: the first build gives `"none"`, the
/// second executes nothing and checks without errors, and the reference context agrees.
fn assert_none_without_blocking_for_every_stamper(path: &Path) {
    for stamper in STAMPERS {
        let probe = TestTask::ProbeFile(path.to_path_buf(), stamper);
        within_timeout(&format!("requiring {} with {stamper:?}", path.display()), move || {
            let mut pie = test_pie();
            assert_eq!(pie.require(&probe), ok("none"), "{stamper:?}");
            let mut session = pie.new_session();
            assert_eq!(session.require(&probe), ok("none"), "{stamper:?}");
            assert!(session.dependency_check_errors().is_empty(), "{stamper:?}");
            drop(session);
            assert!(!pie.events().any_execute(), "{stamper:?}: the stamp is stable");
            assert_eq!(clean_output(&probe), ok("none"), "{stamper:?}: the reference agrees");
        });
    }
}

/// Requires `path` with the `Hash` stamper in `pie` under a timeout and returns the output and whether the probe
/// executed.
#[cfg(unix)]
fn probe_hash(pie: TestPie, path: &Path) -> (TestPie, TestResult, bool) {
    let probe = TestTask::ProbeFile(path.to_path_buf(), FileStamper::Hash);
    within_timeout(&format!("requiring {} with Hash", path.display()), move || {
        let mut pie = pie;
        let output = pie.require(&probe);
        let executed = pie.events().one_execute_of(&probe);
        (pie, output, executed)
    })
}

#[test]
fn hash_stamp_tells_an_empty_file_from_an_empty_directory() {
    let dir = Dir::new();
    let path = dir.create("thing", "");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Hash);
    let mut pie = test_pie();
    assert_eq!(pie.require(&probe), ok("some:"));

    dir.remove(&path);
    dir.create_dir(&path);
    assert_eq!(pie.require_then_assert_one_execute(&probe), ok("none"));
    assert_eq!(pie.require_then_assert_no_execute(&probe), ok("none"));

    dir.remove(&path);
    dir.create(&path, "");
    assert_eq!(pie.require_then_assert_one_execute(&probe), ok("some:"));
}

#[test]
fn hash_stamp_tells_a_file_from_a_directory_whose_entries_its_bytes_spell() {
    let dir = Dir::new();
    // The old digest of a directory was its sorted entry names, each followed by a zero byte.
    let path = dir.create("thing", "x\0");
    let probe = TestTask::ProbeFile(path.clone(), FileStamper::Hash);
    let mut pie = test_pie();
    assert_eq!(pie.require(&probe), ok("some:x\0"));

    dir.remove(&path);
    dir.create_dir(&path);
    dir.create(path.join("x"), "inside");
    assert_eq!(pie.require_then_assert_one_execute(&probe), ok("none"));
    assert_eq!(clean_output(&probe), ok("none"));
}

#[test]
#[cfg(unix)] // FIFOs
fn requiring_a_fifo_never_blocks_and_is_none_for_every_stamper() {
    let dir = Dir::new();
    let fifo = dir.join("pipe");
    mkfifo(&fifo);
    assert_none_without_blocking_for_every_stamper(&fifo);
}

#[test]
#[cfg(unix)] // FIFOs
fn hash_stamp_tells_a_fifo_from_a_file_and_a_directory() {
    let dir = Dir::new();
    let path = dir.join("thing");
    mkfifo(&path);
    let (pie, output, _) = probe_hash(test_pie(), &path);
    assert_eq!(output, ok("none"));

    dir.remove(&path);
    dir.create(&path, "");
    let (pie, output, executed) = probe_hash(pie, &path);
    assert_eq!(output, ok("some:"));
    assert!(executed, "a FIFO replaced by an empty file re-executes");

    dir.remove(&path);
    mkfifo(&path);
    let (pie, output, executed) = probe_hash(pie, &path);
    assert_eq!(output, ok("none"));
    assert!(executed, "an empty file replaced by a FIFO re-executes");

    dir.remove(&path);
    dir.create_dir(&path);
    let (_, output, executed) = probe_hash(pie, &path);
    assert_eq!(output, ok("none"));
    assert!(executed, "a FIFO replaced by a directory re-executes");
}

#[test]
#[cfg(unix)] // Unix sockets
fn requiring_a_socket_is_none_for_every_stamper() {
    let dir = Dir::new();
    let path = dir.join("socket");
    let _listener = UnixListener::bind(&path).expect("cannot bind a Unix socket");
    assert_none_without_blocking_for_every_stamper(&path);
}

#[test]
fn requiring_an_endless_character_device_never_reads_it() {
    // Hashing `/dev/zero` by reading it to its end would never finish.
    let zero = Path::new("/dev/zero");
    assert!(fs::metadata(zero).is_ok(), "this test needs /dev/zero");
    assert_none_without_blocking_for_every_stamper(zero);
}

/// The output of `probe` from the top-down context and from the reference, in that order.
fn top_down_and_reference(probe: &TestTask) -> (TestResult, TestResult) {
    (test_pie().require(probe), clean_output(probe))
}

#[test]
fn reference_context_resolves_dot_dot_lexically_like_top_down() {
    let dir = Dir::new();
    dir.create("f", "here");
    // The operating system would look for the missing folder and fail; lexically this is `dir/f`.
    let path = dir.join("missing/../f");
    for stamper in STAMPERS {
        let probe = TestTask::ProbeFile(path.clone(), stamper);
        assert_eq!(
            top_down_and_reference(&probe),
            (ok("some:here"), ok("some:here")),
            "{stamper:?}"
        );
    }
}

#[test]
fn reference_context_ignores_a_trailing_slash_after_a_file_like_top_down() {
    let dir = Dir::new();
    dir.create("f", "here");
    // The operating system says "not a directory"; normalised, this is `dir/f`.
    let path: PathBuf = dir.join("f/");
    assert!(path.as_os_str().as_encoded_bytes().ends_with(b"f/"));
    for stamper in STAMPERS {
        let probe = TestTask::ProbeFile(path.clone(), stamper);
        assert_eq!(
            top_down_and_reference(&probe),
            (ok("some:here"), ok("some:here")),
            "{stamper:?}"
        );
    }
}

/// A required file reads from its start for every stamper, whatever its length against the buffer that a Hash
/// stamp reads into (empty, short, exactly as long, longer), from a build on one thread and from the parallel
/// branches of `Session::require_all` (where stamping happens outside the engine); and the stamp recorded with it
/// is the one a later check takes: the second build executes nothing.
#[test]
fn a_required_file_reads_from_its_start_and_its_stamp_stays_consistent() {
    let dir = Dir::new();
    let files: Vec<(PathBuf, String)> = [0usize, 5, 64 * 1024, 200_000]
        .iter()
        .map(|&len| {
            let text: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            (dir.create(format!("f{len}"), &text), text)
        })
        .collect();
    let expected: Vec<TestResult> = files
        .iter()
        .map(|(_, text)| Ok(TestOutput::String(format!("some:{text}"))))
        .collect();
    for threads in [1, 2] {
        for stamper in STAMPERS {
            let probes: Vec<TestTask> = files
                .iter()
                .map(|(path, _)| TestTask::ProbeFile(path.clone(), stamper))
                .collect();
            let mut pie = test_pie();
            pie.set_threads(threads);
            assert_eq!(
                pie.new_session().require_all(&probes),
                expected,
                "{stamper:?}, {threads} threads"
            );
            assert_eq!(pie.events().executed_tasks().len(), probes.len());
            assert_eq!(pie.new_session().require_all(&probes), expected);
            assert!(
                !pie.events().any_execute(),
                "{stamper:?}, {threads} threads: the recorded stamp differs from a check's: {:?}",
                pie.events().executed_tasks()
            );
        }
    }
}
