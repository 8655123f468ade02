//! End-to-end tests of batch mode: the real binary, run in a temporary folder holding a copy of the examples.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dev_util::Dir;

/// A temporary folder with the example grammar, two example programs and one with a syntax error.
fn examples() -> Dir {
    let dir = Dir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    dir.copy_from(source, &["grammar.pest", "program1.txt", "program2.txt", "error.txt"]);
    dir
}

/// Runs parser_dev in `dir` with `args`.
fn run<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parser_dev"))
        // A remote cache configured in the environment would restore results these tests expect parsed.
        .env_remove("PIE_REMOTE_CACHE")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run parser_dev")
}

/// Runs parser_dev on the two good example programs.
fn run_examples(dir: &Path) -> Output {
    run(dir, &["grammar.pest", "main", "program1.txt", "program2.txt"])
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn store(dir: &Path) -> PathBuf {
    dir.join(".pie").join("parser_dev.store")
}

#[test]
fn first_run_parses_every_program_and_saves_the_store() {
    let dir = examples();
    let output = run_examples(dir.path());
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.contains("✓ program1.txt (parsed)\n- main\n  - let_stmt\n    - ident: \"x\""),
        "{out}"
    );
    assert!(out.contains("✓ program2.txt (parsed)"), "{out}");
    assert!(
        out.ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{out}"
    );
    assert!(store(dir.path()).is_file(), "the store is saved beside the grammar");
}

#[test]
fn second_run_with_nothing_changed_executes_nothing() {
    let dir = examples();
    let first = run_examples(dir.path());
    assert_eq!(first.status.code(), Some(0));
    let second = run_examples(dir.path());
    let out = stdout(&second);
    assert_eq!(second.status.code(), Some(0), "{out}{}", stderr(&second));
    assert!(out.contains("✓ program1.txt (cached)\n- main"), "{out}");
    assert!(out.contains("✓ program2.txt (cached)"), "{out}");
    assert!(out.ends_with("nothing to do: 0 tasks executed\n"), "{out}");
}

#[test]
fn editing_one_program_parses_only_that_program() {
    let dir = examples();
    assert_eq!(run_examples(dir.path()).status.code(), Some(0));
    dir.write("program2.txt", "print 42;\n");
    let output = run_examples(dir.path());
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.contains("✓ program1.txt (cached)"), "{out}");
    assert!(out.contains("✓ program2.txt (parsed)\n- main\n  - print_stmt"), "{out}");
    assert!(out.contains("number: \"42\""), "{out}");
    assert!(out.ends_with("1 task executed (1 program parsed)\n"), "{out}");
}

#[test]
fn editing_the_grammar_compiles_it_and_parses_every_program() {
    let dir = examples();
    assert_eq!(run_examples(dir.path()).status.code(), Some(0));
    let grammar = dir.read("grammar.pest");
    dir.write("grammar.pest", grammar.replace("\"print\"", "\"show\""));
    let output = run_examples(dir.path());
    let out = stdout(&output);
    // Both programs use `print`, which is no longer a keyword.
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{out}"
    );
    assert!(out.contains("✗ program1.txt (parsed)\nprogram1.txt:2:"), "{out}");
}

#[test]
fn invalid_grammar_is_reported_once_with_line_and_column() {
    let dir = examples();
    dir.write("grammar.pest", "main = { SOI ~ item* ~ EOI }\nitem = { \"x\" ~ }\n");
    let output = run_examples(dir.path());
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert_eq!(out.matches("error: invalid grammar grammar.pest").count(), 1, "{out}");
    assert_eq!(out.matches("grammar.pest:2:").count(), 1, "{out}");
    assert!(out.contains("grammar.pest:2:16: expected"), "{out}");
    // The programs were not parsed, so they are neither labelled nor counted as parsed.
    assert!(
        out.contains("✗ program1.txt\nnot parsed: the grammar failed\n"),
        "{out}"
    );
    assert!(
        out.contains("✗ program2.txt\nnot parsed: the grammar failed\n"),
        "{out}"
    );
    assert!(!out.contains("(parsed)") && !out.contains("(cached)"), "{out}");
    assert!(
        out.ends_with("3 tasks executed (grammar compiled, 2 programs not parsed)\n"),
        "{out}"
    );

    // Nor are they `cached` when the failure is found again.
    let again = stdout(&run_examples(dir.path()));
    assert!(
        again.contains("✗ program1.txt\nnot parsed: the grammar failed\n"),
        "{again}"
    );
    assert!(!again.contains("(parsed)") && !again.contains("(cached)"), "{again}");
    assert!(again.ends_with("nothing to do: 0 tasks executed\n"), "{again}");

    // Fixing the grammar parses them.
    dir.write(
        "grammar.pest",
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grammar.pest")).unwrap(),
    );
    let fixed = stdout(&run_examples(dir.path()));
    assert!(fixed.contains("✓ program1.txt (parsed)\n- main"), "{fixed}");
    assert!(
        fixed.ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{fixed}"
    );
}

#[test]
fn a_program_stopped_by_an_unknown_rule_is_not_counted_as_parsed() {
    let dir = examples();
    let output = run(dir.path(), &["grammar.pest", "nope", "program1.txt"]);
    let out = stdout(&output);
    assert!(
        out.contains("✗ program1.txt\nnot parsed: unknown rule `nope`\n"),
        "{out}"
    );
    assert!(
        out.ends_with("2 tasks executed (grammar compiled, 1 program not parsed)\n"),
        "{out}"
    );
}

#[test]
fn a_grammar_without_rules_says_so() {
    let dir = examples();
    dir.create("empty.pest", "// nothing here yet\n");
    let output = run(dir.path(), &["empty.pest", "main", "program1.txt"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.starts_with("error: grammar empty.pest has no rules\n"), "{out}");
    assert!(!out.contains("its rules are"), "{out}");
    assert!(out.contains("✗ program1.txt\nnot parsed: unknown rule `main`"), "{out}");
}

#[test]
fn a_directory_given_as_grammar_is_reported_as_a_directory() {
    let dir = examples();
    fs::create_dir(dir.join("folder.pest")).unwrap();
    let output = run(dir.path(), &["folder.pest", "main", "program1.txt"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert_eq!(
        out.matches("error: cannot read grammar folder.pest: is a directory\n")
            .count(),
        1,
        "{out}"
    );
    assert!(!out.contains("no such file"), "{out}");
}

#[test]
fn a_directory_given_as_program_is_reported_as_a_directory_and_a_missing_one_as_missing() {
    let dir = examples();
    fs::create_dir(dir.join("folder")).unwrap();
    let args = ["grammar.pest", "main", "folder", "missing.txt", "program1.txt"];
    let out = stdout(&run(dir.path(), &args));
    assert!(
        out.contains("✗ folder\nerror: cannot read program folder: is a directory\n"),
        "{out}"
    );
    assert!(
        out.contains("✗ missing.txt\nerror: cannot read program missing.txt: no such file\n"),
        "{out}"
    );
    assert!(out.contains("✓ program1.txt (parsed)"), "{out}");
    assert!(
        out.ends_with("4 tasks executed (grammar compiled, 1 program parsed, 2 programs not parsed)\n"),
        "{out}"
    );

    // The stored results follow the file system: the missing file made a directory, the directory removed.
    fs::create_dir(dir.join("missing.txt")).unwrap();
    fs::remove_dir(dir.join("folder")).unwrap();
    let out = stdout(&run(dir.path(), &args));
    assert!(
        out.contains("error: cannot read program folder: no such file\n"),
        "{out}"
    );
    assert!(
        out.contains("error: cannot read program missing.txt: is a directory\n"),
        "{out}"
    );
    assert!(out.ends_with("2 tasks executed (2 programs not parsed)\n"), "{out}");
}

#[test]
fn program_syntax_error_names_the_file_line_and_column() {
    let dir = examples();
    let output = run(dir.path(), &["grammar.pest", "main", "program1.txt", "error.txt"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("✓ program1.txt (parsed)"), "{out}");
    assert!(
        out.contains("✗ error.txt (parsed)\nerror.txt:1:12: expected \"term\"\n"),
        "{out}"
    );
    assert!(out.contains("1 | let y = 4 +;"), "{out}");
}

#[test]
fn missing_program_is_reported_and_the_others_still_parse() {
    let dir = examples();
    let output = run(dir.path(), &["grammar.pest", "main", "program1.txt", "missing.txt"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("✓ program1.txt (parsed)"), "{out}");
    assert!(
        out.contains("✗ missing.txt\nerror: cannot read program missing.txt: no such file"),
        "{out}"
    );
    assert!(
        out.ends_with("3 tasks executed (grammar compiled, 1 program parsed, 1 program not parsed)\n"),
        "{out}"
    );

    // Creating the file later is seen.
    dir.create("missing.txt", "print 1;\n");
    let output = run(dir.path(), &["grammar.pest", "main", "program1.txt", "missing.txt"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("✓ missing.txt (parsed)"), "{out}");
    assert!(out.ends_with("1 task executed (1 program parsed)\n"), "{out}");
}

#[test]
fn missing_grammar_is_reported_once() {
    let dir = examples();
    let output = run(dir.path(), &["nope.pest", "main", "program1.txt", "program2.txt"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert_eq!(
        out.matches("error: cannot read grammar nope.pest: no such file")
            .count(),
        1,
        "{out}"
    );
    assert_eq!(out.matches("not parsed: the grammar failed").count(), 2, "{out}");
}

#[test]
fn unknown_rule_lists_the_grammars_rules() {
    let dir = examples();
    let output = run(dir.path(), &["grammar.pest", "program", "program1.txt", "program2.txt"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert_eq!(out.matches("error: rule `program` is not defined").count(), 1, "{out}");
    assert!(
        out.contains("its rules are: COMMENT, WHITESPACE, add_op, expr,"),
        "{out}"
    );
    assert_eq!(out.matches("not parsed: unknown rule `program`").count(), 2, "{out}");
}

#[test]
fn corrupt_store_warns_then_rebuilds_and_saves_a_fresh_store() {
    let dir = examples();
    dir.create(store(dir.path()), b"\x00\x17 this is not a store \xff");
    let output = run_examples(dir.path());
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(err.starts_with("warning: "), "{err}");
    assert!(err.contains("parser_dev.store"), "the warning names the store: {err}");
    assert!(err.contains("rebuilding everything"), "{err}");
    assert!(
        out.ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{out}"
    );

    let again = run_examples(dir.path());
    assert!(stderr(&again).is_empty(), "{}", stderr(&again));
    assert!(
        stdout(&again).ends_with("nothing to do: 0 tasks executed\n"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn unusable_store_path_warns_but_still_builds() {
    let dir = examples();
    // A folder where the store file should be: it can be neither loaded nor saved.
    let output = run(dir.path(), &["--store", ".", "grammar.pest", "main", "program1.txt"]);
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(err.contains("warning: "), "{err}");
    assert!(
        out.ends_with("2 tasks executed (grammar compiled, 1 program parsed)\n"),
        "{out}"
    );
}

#[test]
fn store_option_chooses_the_store_file() {
    let dir = examples();
    let output = run(
        dir.path(),
        &["--store", "my.store", "grammar.pest", "main", "program1.txt"],
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(dir.join("my.store").is_file());
    assert!(!store(dir.path()).exists());
}

#[test]
fn log_writes_the_build_log_to_stderr() {
    let dir = examples();
    let output = run(dir.path(), &["--log", "grammar.pest", "main", "program1.txt"]);
    let err = stderr(&output);
    assert!(err.contains("▶ CompileGrammar(grammar.pest)"), "{err}");
    assert!(err.contains("▶ Parse(grammar.pest, main, program1.txt)"), "{err}");
    assert!(err.contains("◀ Program(Ok(parse tree of 16 lines))"), "{err}");
    assert!(!stdout(&output).contains('▶'), "the log stays out of the results");

    let again = run(dir.path(), &["--log", "grammar.pest", "main", "program1.txt"]);
    let err = stderr(&again);
    assert!(!err.contains('▶'), "{err}");
    assert!(err.contains('✓'), "{err}");
}

#[test]
fn piped_output_has_no_progress_bar() {
    // A build long enough that a terminal would show the bar (it appears after 200 ms): many long programs.
    let dir = examples();
    let programs: Vec<String> = (0..64).map(|i| format!("long{i}.txt")).collect();
    for (i, program) in programs.iter().enumerate() {
        dir.create(program, format!("let x{i} = {i};\n").repeat(2000));
    }
    let mut args = vec!["grammar.pest", "main"];
    args.extend(programs.iter().map(String::as_str));
    let started = Instant::now();
    let output = run(dir.path(), &args);
    let took = started.elapsed();
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(
        out.ends_with("65 tasks executed (grammar compiled, 64 programs parsed)\n"),
        "{out}"
    );
    // No escape sequences, no carriage returns (redraws), nothing on stderr at all.
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        assert!(
            !text.contains('\x1b') && !text.contains('\r'),
            "{name} ({took:?}): {text}"
        );
    }
    assert_eq!(err, "", "stderr is empty when piped ({took:?})");
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = examples();
    let output = run(dir.path(), &["grammar.pest", "main"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("Usage:"), "{}", stderr(&output));

    let output = run(dir.path(), &["--frobnicate", "grammar.pest", "main", "program1.txt"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty());
}

/// Runs parser_dev in `dir` with `args`, its stdout and stderr going to the files `NAME.out` and `NAME.err` there
/// (no pipe to fill up while it waits for the store).
fn spawn(dir: &Path, name: &str, args: &[&str]) -> Child {
    let file = |ext: &str| File::create(dir.join(format!("{name}.{ext}"))).expect("create an output file");
    Command::new(env!("CARGO_BIN_EXE_parser_dev"))
        .env_remove("PIE_REMOTE_CACHE")
        .current_dir(dir)
        .args(args)
        .stdout(file("out"))
        .stderr(file("err"))
        .spawn()
        .expect("spawn parser_dev")
}

/// Waits for `child`, failing the test (and killing it) when it takes longer than a working lock ever would.
fn finish(dir: &Path, name: &str, mut child: Child) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for parser_dev") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("run {name} did not finish in time");
        }
        // Polling for the exit; nothing is asserted about timing.
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |ext: &str| fs::read_to_string(dir.join(format!("{name}.{ext}"))).expect("read an output file");
    let (out, err) = (read("out"), read("err"));
    assert!(status.success(), "run {name}: {status}\n{out}{err}");
    (out, err)
}

#[test]
fn concurrent_runs_share_the_store_and_parse_each_program_once() {
    let dir = examples();
    let programs: Vec<String> = (1..=8).map(|i| format!("p{i}.txt")).collect();
    for (i, program) in programs.iter().enumerate() {
        dir.create(program, format!("print {i};\n"));
    }
    let mut args = vec!["--log", "grammar.pest", "main"];
    args.extend(programs.iter().map(String::as_str));
    let first = run(dir.path(), &args);
    assert!(
        stdout(&first).ends_with("9 tasks executed (grammar compiled, 8 programs parsed)\n"),
        "{}",
        stdout(&first)
    );
    for (i, program) in programs.iter().enumerate() {
        dir.write(program, format!("let x{i} = {i};\n"));
    }

    let runs: Vec<(String, Child)> = (0..8)
        .map(|i| {
            let name = format!("run{i}");
            let child = spawn(dir.path(), &name, &args);
            (name, child)
        })
        .collect();
    let outputs: Vec<(String, String)> = runs
        .into_iter()
        .map(|(name, child)| finish(dir.path(), &name, child))
        .collect();

    for program in &programs {
        let parsed = outputs
            .iter()
            .filter(|(out, _)| out.contains(&format!("✓ {program} (parsed)")))
            .count();
        let executed = outputs
            .iter()
            .map(|(_, err)| err.matches(&format!("▶ Parse(grammar.pest, main, {program})")).count())
            .sum::<usize>();
        assert_eq!((parsed, executed), (1, 1), "{program} is parsed once in all");
    }
    let summaries: Vec<&str> = outputs
        .iter()
        .map(|(out, _)| out.lines().last().unwrap_or_default())
        .collect();
    let did_the_work = summaries
        .iter()
        .filter(|s| **s == "8 tasks executed (8 programs parsed)")
        .count();
    let found_it_done = summaries
        .iter()
        .filter(|s| **s == "nothing to do: 0 tasks executed")
        .count();
    assert_eq!((did_the_work, found_it_done), (1, 7), "{summaries:#?}");

    let ninth = run(dir.path(), &args);
    assert!(
        stdout(&ninth).ends_with("nothing to do: 0 tasks executed\n"),
        "{}",
        stdout(&ninth)
    );
    assert!(!stderr(&ninth).contains('▶'), "{}", stderr(&ninth));
}

#[test]
fn a_run_waits_for_the_store_and_says_who_holds_it() {
    let dir = examples();
    let store = store(dir.path());
    let holder = pie::StoreFile::open(&store).expect("take the store");
    let child = spawn(dir.path(), "waiting", &["grammar.pest", "main", "program1.txt"]);
    // The run can only say it waits; it cannot finish while the store is held.
    let notice_end = format!("parser_dev.store', held by process {}\n", std::process::id());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fs::read_to_string(dir.join("waiting.err"))
        .unwrap_or_default()
        .contains(&notice_end)
    {
        assert!(Instant::now() < deadline, "the run never said it waits");
        // Polling the run's stderr; nothing is asserted about timing.
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(holder);
    let (out, err) = finish(dir.path(), "waiting", child);
    assert!(err.starts_with("pie: waiting for the store '"), "{err}");
    assert!(
        err.ends_with(&notice_end) && err.lines().count() == 1,
        "said once: {err}"
    );
    assert!(
        out.ends_with("2 tasks executed (grammar compiled, 1 program parsed)\n"),
        "{out}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_program_whose_name_is_not_utf8_is_parsed_and_stored() {
    use std::os::unix::ffi::OsStrExt;

    let dir = examples();
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    dir.create(name, "print 1;\n");
    let args = [OsStr::new("grammar.pest"), OsStr::new("main"), name];
    let output = run(dir.path(), &args);
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(err.is_empty(), "the store is saved without a warning: {err}");
    assert!(out.contains("✓ caf\u{fffd}.txt (parsed)"), "{out}");

    let again = run(dir.path(), &args);
    assert!(stderr(&again).is_empty(), "{}", stderr(&again));
    assert!(
        stdout(&again).ends_with("nothing to do: 0 tasks executed\n"),
        "{}",
        stdout(&again)
    );
}

/// A generated program of `lines` statements, each with a parse tree of a dozen lines: a program whose stored
/// parse tree is large.
fn large_program(lines: usize) -> String {
    (0..lines)
        .map(|i| format!("let v{i} = {i} + {i} * ({i} - 2.5);\n"))
        .collect()
}

fn file_size(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

#[test]
fn a_program_no_longer_named_is_forgotten_and_the_store_shrinks() {
    let dir = examples();
    dir.create("large.txt", large_program(10_000));
    let dir = dir.path();
    let both = ["grammar.pest", "main", "large.txt", "program2.txt"];
    let only_p2 = ["grammar.pest", "main", "program2.txt"];

    let first = run(dir, &both);
    assert!(
        stdout(&first).ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "{}",
        stdout(&first)
    );
    let with_large = file_size(&store(dir));

    // Naming only program2: nothing needs building, and the large program's parse is removed before saving.
    let second = run(dir, &only_p2);
    assert!(
        stdout(&second).ends_with("nothing to do: 0 tasks executed\n"),
        "{}",
        stdout(&second)
    );
    let without_large = file_size(&store(dir));

    // What a run naming only program2 saves from scratch (same paths, another store).
    let fresh = run(dir, &["--store", "fresh.store", "grammar.pest", "main", "program2.txt"]);
    assert_eq!(fresh.status.code(), Some(0), "{}", stdout(&fresh));
    let fresh_size = file_size(&dir.join("fresh.store"));
    eprintln!(
        "store sizes: with large.txt {with_large}, after naming only program2.txt {without_large}, fresh {fresh_size}"
    );
    assert!(
        without_large < with_large / 10,
        "the store shrinks: {with_large} -> {without_large} bytes"
    );
    assert!(
        without_large <= 2 * fresh_size,
        "the store holds about what a fresh run saves: {without_large} vs {fresh_size} bytes"
    );

    let third = run(dir, &only_p2);
    assert!(
        stdout(&third).ends_with("nothing to do: 0 tasks executed\n"),
        "{}",
        stdout(&third)
    );
    assert_eq!(file_size(&store(dir)), without_large, "nothing more to forget");

    // The large program's result was removed, so naming it again parses it again (and only it).
    let fourth = run(dir, &both);
    let out = stdout(&fourth);
    assert!(out.contains("✓ large.txt (parsed)"), "{out}");
    assert!(out.contains("✓ program2.txt (cached)"), "{out}");
    assert!(out.ends_with("1 task executed (1 program parsed)\n"), "{out}");
}

#[test]
fn another_grammar_or_rule_replaces_the_old_results_in_the_store() {
    let dir = examples();
    dir.create("other.pest", dir.read("grammar.pest"));
    let dir = dir.path();
    let with = |grammar, rule| ["--store", "shared.store", grammar, rule, "program1.txt", "program2.txt"];
    let everything = "3 tasks executed (grammar compiled, 2 programs parsed)\n";
    let programs_only = "2 tasks executed (2 programs parsed)\n";

    assert!(stdout(&run(dir, &with("grammar.pest", "main"))).ends_with(everything));
    assert!(stdout(&run(dir, &with("other.pest", "main"))).ends_with(everything));
    // grammar.pest's tasks were forgotten when other.pest's run saved the store.
    let output = run(dir, &with("grammar.pest", "main"));
    assert!(stdout(&output).ends_with(everything), "{}", stdout(&output));

    // Likewise the parses with rule `main` once the programs are parsed with another rule.
    let output = run(dir, &with("grammar.pest", "let_stmt"));
    assert!(stdout(&output).ends_with(programs_only), "{}", stdout(&output));
    let output = run(dir, &with("grammar.pest", "main"));
    assert!(stdout(&output).ends_with(programs_only), "{}", stdout(&output));
}

#[test]
fn log_says_how_many_tasks_were_forgotten() {
    let dir = examples();
    let dir = dir.path();
    assert_eq!(run_examples(dir).status.code(), Some(0));
    let output = run(dir, &["--log", "grammar.pest", "main", "program2.txt"]);
    let err = stderr(&output);
    assert!(
        err.ends_with("forgot 1 task of programs, rules or grammars no longer named\n"),
        "{err}"
    );
    let again = run(dir, &["--log", "grammar.pest", "main", "program2.txt"]);
    assert!(!stderr(&again).contains("forgot"), "{}", stderr(&again));
}

#[test]
fn an_up_to_date_result_is_printed_at_once_and_an_edit_meanwhile_is_not_lost() {
    let dir = examples();
    // A parse tree of megabytes: far more than a pipe holds, so printing it blocks until the test reads it.
    let large: String = (0..20_000).map(|i| format!("let v{i} = {i};\n")).collect();
    dir.create("large.txt", large);
    let args = ["grammar.pest", "main", "large.txt", "program2.txt"];
    assert_eq!(run(dir.path(), &args).status.code(), Some(0));

    let mut child = Command::new(env!("CARGO_BIN_EXE_parser_dev"))
        .env_remove("PIE_REMOTE_CACHE")
        .current_dir(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn parser_dev");
    let mut out = BufReader::new(child.stdout.take().expect("its stdout"));
    let mut header = String::new();
    out.read_line(&mut header).expect("read the first line");
    // The up-to-date result comes first, while the run is blocked printing it (the pipe cannot hold the tree).
    assert_eq!(header, "✓ large.txt (cached)\n");
    // The programs are checked in parallel, so program2.txt may or may not have been looked at yet: an edit now
    // is seen by this run or by the next one, never lost.
    dir.write("program2.txt", "print 42;\n");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("read the rest");
    assert!(child.wait().expect("wait for parser_dev").success());
    if !rest.contains("✓ program2.txt (parsed)\n- main\n  - print_stmt") {
        assert!(
            rest.ends_with("nothing to do: 0 tasks executed\n"),
            "{}",
            &rest[rest.len().saturating_sub(500)..]
        );
        let again = run(dir.path(), &args);
        let stdout = String::from_utf8_lossy(&again.stdout);
        assert!(
            stdout.contains("✓ program2.txt (parsed)\n- main\n  - print_stmt"),
            "{stdout}"
        );
        assert!(stdout.ends_with("1 task executed (1 program parsed)\n"), "{stdout}");
    }
}

#[test]
fn the_editor_without_a_terminal_says_so_and_writes_no_escape_sequence() {
    let dir = examples();
    let output = Command::new(env!("CARGO_BIN_EXE_parser_dev"))
        .env_remove("PIE_REMOTE_CACHE")
        .current_dir(dir.path())
        .args(["-e", "grammar.pest", "main", "program1.txt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run parser_dev");
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(2), "{out}{err}");
    assert!(!output.stdout.contains(&0x1b), "no escape sequence on stdout: {out:?}");
    assert!(out.is_empty(), "{out:?}");
    assert!(
        err.starts_with("error: the editor (--edit) needs a terminal") && err.contains("run without --edit"),
        "{err}"
    );
    assert!(!output.stderr.contains(&0x1b), "{err:?}");
    assert!(!store(dir.path()).exists(), "the store is not even taken");
}

/// Runs parser_dev with `--explain` on the two good example programs; returns the output after the summary line.
fn run_explained(dir: &Path) -> (Output, String) {
    let output = run(
        dir,
        &["--explain", "grammar.pest", "main", "program1.txt", "program2.txt"],
    );
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    let out = stdout(&output);
    let after = out
        .find("executed")
        .and_then(|at| out[at..].find('\n').map(|end| out[at + end + 1..].to_string()))
        .unwrap_or_else(|| panic!("no summary line in {out}"));
    (output, after)
}

#[test]
fn explain_says_why_each_task_executed_naming_the_changed_file() {
    let dir = examples();
    let (_, why) = run_explained(dir.path());
    let new = "no cached output (new, or its last execution failed)";
    // The programs are parsed in parallel: their lines come in the order their executions started.
    let mut lines: Vec<&str> = why.lines().collect();
    lines[2..].sort_unstable();
    assert_eq!(
        lines.join("\n"),
        format!(
            "why each task executed:\n  compile grammar.pest: {new}\n  parse program1.txt: {new}\n  \
             parse program2.txt: {new}"
        )
    );

    let (_, why) = run_explained(dir.path());
    assert_eq!(why, "why: nothing executed, everything was up to date\n");

    dir.write("program2.txt", "print 42;\n");
    let (_, why) = run_explained(dir.path());
    let prefix = "why each task executed:\n  parse program2.txt: file program2.txt changed (";
    assert!(why.starts_with(prefix), "{why}");
    // Hash stamps: the first 8 bytes of each digest in hex.
    let stamps = why[prefix.len()..].trim_end().trim_end_matches(')');
    let (old, new) = stamps.split_once(" → ").unwrap_or_else(|| panic!("{why}"));
    for digest in [old, new] {
        assert!(
            digest.len() == 16 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{why}"
        );
    }
    assert_eq!(why.lines().count(), 2, "only program2.txt executed: {why}");

    let grammar = dir.read("grammar.pest");
    dir.write("grammar.pest", format!("{grammar}\n// a comment\n"));
    let (_, why) = run_explained(dir.path());
    let lines: Vec<&str> = why.lines().collect();
    assert_eq!(lines.len(), 4, "{why}");
    assert!(
        lines[1].starts_with("  compile grammar.pest: file grammar.pest changed ("),
        "{why}"
    );
    // The comment does not change the compiled grammar, but the programs' tasks read the grammar file too. The
    // programs are parsed in parallel: their lines come in the order their executions started.
    let mut lines = lines;
    lines[2..].sort_unstable();
    for (line, program) in lines[2..].iter().zip(["program1.txt", "program2.txt"]) {
        assert!(line.starts_with(&format!("  parse {program}: ")), "{why}");
    }

    // A grammar whose compiled form changes: the programs' tasks execute because of the grammar task, and the
    // line names the file that changed at the start of that chain.
    let grammar = dir.read("grammar.pest");
    dir.write(
        "grammar.pest",
        grammar.replace(r#""print" ~ expr"#, r#""print" ~ expr ~ "!"?"#),
    );
    let (_, why) = run_explained(dir.path());
    let mut lines: Vec<&str> = why.lines().collect();
    assert_eq!(lines.len(), 4, "{why}");
    lines[2..].sort_unstable();
    for (line, program) in lines[2..].iter().zip(["program1.txt", "program2.txt"]) {
        assert_eq!(
            *line,
            format!("  parse {program}: compile grammar.pest changed its result, because grammar.pest changed"),
            "{why}"
        );
    }

    dir.remove("program1.txt");
    let output = run(
        dir.path(),
        &["--explain", "grammar.pest", "main", "program1.txt", "program2.txt"],
    );
    let out = stdout(&output);
    assert!(
        out.contains("  parse program1.txt: file program1.txt was deleted ("),
        "{out}"
    );
    assert!(out.contains(" → missing)\n"), "{out}");
}

#[test]
fn profile_writes_a_chrome_trace_and_a_summary() {
    let dir = examples();
    let output = run(
        dir.path(),
        &[
            "--profile",
            "trace.json",
            "grammar.pest",
            "main",
            "program1.txt",
            "program2.txt",
        ],
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{}{err}", stdout(&output));
    assert!(
        stdout(&output).ends_with("3 tasks executed (grammar compiled, 2 programs parsed)\n"),
        "the report is unchanged"
    );
    assert!(err.starts_with("profile written to trace.json\n"), "{err}");
    assert!(err.contains("\n3 tasks executed, "), "{err}");
    assert!(err.contains("\ncritical path: "), "{err}");
    assert!(err.contains("\nslowest tasks (self time, total time):\n"), "{err}");

    let json: serde_json::Value = serde_json::from_str(&dir.read("trace.json")).expect("the trace is JSON");
    let events = json["traceEvents"].as_array().expect("traceEvents");
    let executed: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "execute")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(executed.len(), 3, "{executed:?}");
    assert!(
        executed.iter().any(|name| name.starts_with("CompileGrammar")),
        "{executed:?}"
    );
    assert!(events.iter().any(|e| e["ph"] == "M" && e["args"]["name"] == "caller"));
    for event in events.iter().filter(|e| e["ph"] == "X") {
        for field in ["name", "cat", "ts", "dur", "pid", "tid"] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
    }

    // Nothing to do: the trace holds the checks, and no execution.
    let output = run(
        dir.path(),
        &[
            "--profile",
            "trace.json",
            "grammar.pest",
            "main",
            "program1.txt",
            "program2.txt",
        ],
    );
    assert!(stderr(&output).contains("\n0 tasks executed, "), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&dir.read("trace.json")).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["cat"] == "check"));
    assert!(!events.iter().any(|e| e["cat"] == "execute"));
}

#[test]
fn a_profile_that_cannot_be_written_is_a_warning() {
    let dir = examples();
    let output = run(
        dir.path(),
        &[
            "--profile",
            "no/such/folder/trace.json",
            "grammar.pest",
            "main",
            "program1.txt",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.starts_with("warning: cannot write the profile no/such/folder/trace.json: "),
        "{err}"
    );
}

#[test]
fn explain_and_profile_are_batch_mode_options() {
    let dir = examples();
    for args in [["--explain", "--watch"], ["--profile=x", "--edit"]] {
        let output = run(dir.path(), &[args[0], args[1], "grammar.pest", "main", "program1.txt"]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("cannot be used with"), "{}", stderr(&output));
    }
}
