//! End-to-end tests of `--watch`: the real binary as a child process, edited files, and Ctrl-C (SIGINT).
//!
//! Nothing sleeps to wait for the watcher: the test reads the child's output line by line and waits for the line
//! it expects, with a generous timeout that fails the test instead of hanging it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use dev_util::Dir;

/// How long a test waits for one line or for the exit before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A temporary folder with the example grammar and two example programs.
fn examples() -> Dir {
    let dir = Dir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    dir.copy_from(source, &["grammar.pest", "program1.txt", "program2.txt"]);
    dir
}

/// `parser_dev --watch` running in a folder, its standard output read line by line on a thread.
struct Watching {
    child: Child,
    lines: Receiver<String>,
    /// Everything read so far, for failure messages.
    seen: Vec<String>,
}

impl Watching {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parser_dev"))
            // A remote cache configured in the environment would restore results these tests expect parsed.
            .env_remove("PIE_REMOTE_CACHE")
            .current_dir(dir)
            .arg("--watch")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn parser_dev --watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines up to and including the first for which `wanted` holds; returns them.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let done = wanted(&line);
                    read.push(line);
                    if done {
                        return read;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line with {what} within {PATIENCE:?}; output:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits for the exit; returns whether it succeeded, and stderr.
    fn interrupt(mut self) -> (bool, String) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for parser_dev") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("parser_dev --watch did not exit within {PATIENCE:?} of Ctrl-C");
            }
            // Polling for the exit; nothing is asserted about timing.
            thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("read stderr");
        }
        (status.success(), stderr)
    }
}

/// Whether `line` is the last line of a build's results (the summary).
fn is_summary(line: &str) -> bool {
    line.contains("executed (") || line.starts_with("nothing to do")
}

#[test]
fn watch_rebuilds_what_an_edit_affects_and_exits_0_on_ctrl_c_with_the_store_saved() {
    let dir = examples();
    let mut watching = Watching::start(dir.path(), &["grammar.pest", "main", "program1.txt", "program2.txt"]);
    let first = watching.wait_for("the first build's summary", is_summary);
    assert!(first[0].contains("build 1 (first build)"), "a header first: {first:?}");
    assert!(first.iter().any(|l| l == "✓ program1.txt (parsed)"), "{first:?}");
    assert_eq!(
        first.last().map(String::as_str),
        Some("3 tasks executed (grammar compiled, 2 programs parsed)")
    );

    dir.write("program1.txt", "print 42;\n");
    let second = watching.wait_for("the rebuild's summary", is_summary);
    let header = &second[0];
    assert!(header.contains("build 2 (changes)"), "{header}");
    assert!(
        header.contains("changed: program1.txt"),
        "the header names the changed file: {header}"
    );
    assert!(header.contains("1 task executed"), "{header}");
    assert!(second.iter().any(|l| l == "✓ program1.txt (parsed)"), "{second:?}");
    assert!(second.iter().any(|l| l == "✓ program2.txt (cached)"), "{second:?}");
    assert!(
        second.iter().any(|l| l.contains("42")),
        "the new parse tree: {second:?}"
    );

    // A grammar edit that breaks it: reported once, the programs not parsed.
    let grammar = dir.read("grammar.pest");
    dir.write("grammar.pest", grammar.replace("main       =  {", "main       =  {{"));
    let broken = watching.wait_for("the broken grammar's summary", is_summary);
    assert!(
        broken
            .iter()
            .any(|l| l.starts_with("error: invalid grammar grammar.pest")),
        "{broken:?}"
    );

    let (success, stderr) = watching.interrupt();
    assert!(success, "exit status 0 after Ctrl-C; stderr:\n{stderr}");
    assert!(stderr.contains("the store is saved"), "{stderr}");

    // The store holds the last build: a batch run with the same (broken) grammar executes nothing.
    let output = Command::new(env!("CARGO_BIN_EXE_parser_dev"))
        .env_remove("PIE_REMOTE_CACHE")
        .current_dir(dir.path())
        .args(["grammar.pest", "main", "program1.txt", "program2.txt"])
        .output()
        .expect("run parser_dev");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("nothing to do"), "{stdout}");
}

#[test]
fn watch_and_edit_cannot_be_combined() {
    let dir = examples();
    let output = Command::new(env!("CARGO_BIN_EXE_parser_dev"))
        .env_remove("PIE_REMOTE_CACHE")
        .current_dir(dir.path())
        .args(["--watch", "--edit", "grammar.pest", "main", "program1.txt"])
        .output()
        .expect("run parser_dev");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be used with"));
}

#[test]
fn watch_with_a_remote_cache_restores_then_uploads_what_an_edit_parses() {
    let Some(server) = dev_util::nginx::Nginx::start() else {
        return;
    };
    let url = server.url();
    let programs = ["grammar.pest", "main", "program1.txt", "program2.txt"];
    let first = examples();
    let filled = Command::new(env!("CARGO_BIN_EXE_parser_dev"))
        .env_remove("PIE_REMOTE_CACHE")
        .current_dir(first.path())
        .args(["--cache", &url])
        .args(programs)
        .output()
        .expect("run parser_dev");
    assert_eq!(filled.status.code(), Some(0));

    let second = examples();
    let mut watching = Watching::start(second.path(), &[&["--cache", &url][..], &programs[..]].concat());
    let is_end = |line: &str| is_summary(line) || line.starts_with("0 tasks executed");
    let restored = watching.wait_for("the first build's summary", is_end);
    assert!(
        restored[0].contains("0 tasks executed, 3 restored"),
        "the header counts the restores: {restored:?}"
    );
    assert!(
        restored.iter().any(|l| l == "✓ program1.txt (restored)"),
        "{restored:?}"
    );
    assert_eq!(
        restored.last().map(String::as_str),
        Some("0 tasks executed, 3 restored from the remote cache (grammar, 2 programs)")
    );

    second.write("program1.txt", "print 42;\n");
    let edited = watching.wait_for("the rebuild's summary", is_end);
    assert!(edited.iter().any(|l| l == "✓ program1.txt (parsed)"), "{edited:?}");
    assert_eq!(
        edited.last().map(String::as_str),
        Some("1 task executed (1 program parsed)")
    );

    let (success, stderr) = watching.interrupt();
    assert!(success, "{stderr}");
    assert!(
        stderr.contains("remote cache: 3 restored, 1 uploaded, 0 failures"),
        "{stderr}"
    );
}
