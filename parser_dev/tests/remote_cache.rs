//! `--cache URL` end to end: the real binary against a real nginx serving Bazel's HTTP remote-cache protocol on a
//! loopback port (`dev_util::nginx`). A run in one folder fills the cache; a copy of the examples in another folder,
//! with an empty store, restores every result from it (the programs marked `(restored)`, nothing executed); an
//! edit there misses only its program's parse; an unreachable cache costs one warning and nothing else.
//!
//! Without nginx these tests print a notice and pass, except in CI, where they fail: `.ci/run` installs it.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use dev_util::nginx::Nginx;
use dev_util::Dir;

/// A temporary folder with the example grammar and two example programs.
fn examples() -> Dir {
    let dir = Dir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    dir.copy_from(source, &["grammar.pest", "program1.txt", "program2.txt"]);
    dir
}

/// Runs parser_dev in `dir` on the two example programs, with `args` before them and no remote cache in the
/// environment unless `env` names one.
fn run<S: AsRef<OsStr>>(dir: &Path, args: &[S], env: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parser_dev"));
    command.current_dir(dir).env_remove("PIE_REMOTE_CACHE");
    if let Some(url) = env {
        command.env("PIE_REMOTE_CACHE", url);
    }
    command
        .args(args)
        .args(["grammar.pest", "main", "program1.txt", "program2.txt"])
        .output()
        .expect("run parser_dev")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `out` without its last line (the summary) and with every `(restored)` mark spelled `(parsed)`.
fn results(out: &str) -> String {
    let body = out.trim_end_matches('\n');
    let body = body.rsplit_once('\n').map_or("", |(body, _)| body);
    body.replace(" (restored)", " (parsed)")
}

#[test]
fn a_copy_in_another_folder_restores_every_result_from_the_cache() {
    let Some(server) = Nginx::start() else { return };
    let url = server.url();
    let first = examples();
    let filled = run(first.path(), &["--cache", &url], None);
    assert_eq!(filled.status.code(), Some(0), "{}", stderr(&filled));
    assert!(
        stdout(&filled).ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{}",
        stdout(&filled)
    );
    assert_eq!(stderr(&filled), "remote cache: 0 restored, 3 uploaded, 0 failures\n");

    // Another folder, another store (none yet): every result comes from the cache and no task executes.
    let second = examples();
    let restored = run(second.path(), &["--cache", &url], None);
    let out = stdout(&restored);
    assert_eq!(restored.status.code(), Some(0), "{}", stderr(&restored));
    assert!(out.contains("✓ program1.txt (restored)\n- main"), "{out}");
    assert!(out.contains("✓ program2.txt (restored)\n"), "{out}");
    assert!(
        out.ends_with("0 tasks executed, 3 restored from the remote cache (grammar, 2 programs)\n"),
        "{out}"
    );
    assert_eq!(
        results(&out),
        results(&stdout(&filled)),
        "the same results, parse trees and all"
    );
    assert_eq!(stderr(&restored), "remote cache: 3 restored, 0 uploaded, 0 failures\n");

    // The restored results are in the local store now: the next run there has nothing to do.
    let again = run(second.path(), &["--cache", &url], None);
    assert!(
        stdout(&again).ends_with("nothing to do: 0 tasks executed\n"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn an_edited_program_misses_only_its_parse() {
    let Some(server) = Nginx::start() else { return };
    let url = server.url();
    let first = examples();
    assert_eq!(run(first.path(), &["--cache", &url], None).status.code(), Some(0));

    let second = examples();
    second.write("program2.txt", "print 42;\n");
    let output = run(second.path(), &["--cache", &url], None);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.contains("✓ program1.txt (restored)"), "{out}");
    assert!(out.contains("✓ program2.txt (parsed)\n- main\n  - print_stmt"), "{out}");
    assert!(
        out.ends_with("1 task executed (1 program parsed), 2 restored from the remote cache (grammar, 1 program)\n"),
        "{out}"
    );
    assert_eq!(stderr(&output), "remote cache: 2 restored, 1 uploaded, 0 failures\n");

    // `--explain` says which of the tasks that pie executed were restored.
    let third = examples();
    third.write("program2.txt", "print 43;\n");
    let explained = stdout(&run(third.path(), &["--cache", &url, "--explain"], None));
    assert!(
        explained.contains("  parse program1.txt (restored from the remote cache): no cached output"),
        "{explained}"
    );
    assert!(
        explained.contains("  parse program2.txt: no cached output"),
        "{explained}"
    );
}

#[test]
fn an_unreachable_cache_warns_once_and_the_build_goes_on_locally() {
    let dir = examples();
    // Nothing listens on a port that was free a moment ago: connections are refused.
    let url = format!("http://127.0.0.1:{}/cache", dev_util::nginx::free_port());
    let output = run(dir.path(), &["--cache", &url], None);
    let out = stdout(&output);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(
        out.ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{out}"
    );
    assert_eq!(err.matches("pie: remote cache at ").count(), 1, "one warning: {err}");
    assert!(err.contains("unavailable") && err.contains("building locally"), "{err}");
    assert!(
        err.ends_with("remote cache: 0 restored, 0 uploaded, 1 failure\n"),
        "{err}"
    );
}

#[test]
fn the_environment_names_the_cache_and_the_option_wins_over_it() {
    let Some(server) = Nginx::start() else { return };
    let url = server.url();
    let first = examples();
    let filled = run(first.path(), &[] as &[&str], Some(&url));
    assert_eq!(stderr(&filled), "remote cache: 0 restored, 3 uploaded, 0 failures\n");

    let second = examples();
    let closed = format!("http://127.0.0.1:{}/cache", dev_util::nginx::free_port());
    let output = run(second.path(), &["--cache", &closed], Some(&url));
    let err = stderr(&output);
    assert!(err.contains(&closed), "the option's URL is used: {err}");
    assert!(
        stdout(&output).ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_read_only_cache_restores_and_never_uploads() {
    let Some(server) = Nginx::start() else { return };
    let url = server.url();
    let read_only = ["--cache", &url, "--cache-read-only"];
    let first = examples();
    let output = run(first.path(), &read_only, None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "remote cache: 0 restored, 0 uploaded, 0 failures\n");
    assert!(
        !server.data_dir().join("ac").exists(),
        "nothing was written to the server"
    );

    // Filled by a read-write run, read by a read-only one with an edit: the edited program is parsed, not uploaded.
    let filler = examples();
    assert_eq!(run(filler.path(), &["--cache", &url], None).status.code(), Some(0));
    let entries = std::fs::read_dir(server.data_dir().join("ac")).unwrap().count();
    let second = examples();
    second.write("program2.txt", "print 42;\n");
    let output = run(second.path(), &read_only, None);
    assert_eq!(stderr(&output), "remote cache: 2 restored, 0 uploaded, 0 failures\n");
    assert_eq!(
        std::fs::read_dir(server.data_dir().join("ac")).unwrap().count(),
        entries
    );
}

#[test]
fn an_unusable_url_is_a_usage_error() {
    let dir = examples();
    let output = run(dir.path(), &["--cache", "not a url"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("remote cache URL `not a url` is not usable"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
}
