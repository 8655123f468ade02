//! Persistence through the public API: a saved store, loaded in this process or in a new one, behaves exactly like
//! the `Pie` that saved it; saving is atomic under SIGKILL; bad store files are refused with an error naming the
//! file and the reason, never a panic.
//!
//! "A new process" is this test binary run again with `PIE_PERSIST_CHILD` naming a role: it runs only the test
//! [`child_process`], which plays that role (without a role, it tests the child entry itself).
#![cfg(feature = "serde")]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::expect_panic;
use dev_util::Dir;
use pie::stamp::FileStamper;
use pie::tracker::event::EventTracker;
use pie::tracker::NoopTracker;
use pie::{Context, LoadError, Pie, SaveError, Task};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// The build steps of these tests.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
enum Job {
    /// Reads a file; a missing file reads as "".
    Read(PathBuf, FileStamper),
    /// Upper-cases another job's output (an edit that only changes case is cut off here).
    Upper(Box<Job>),
    /// Concatenates the outputs of jobs.
    Concat(Vec<Job>),
    /// Another job's output, under a distinct task (to make large graphs).
    Label(u32, Box<Job>),
    /// Concatenates the outputs of jobs, writes them to a file and provides it.
    Write(Vec<Job>, PathBuf, FileStamper),
    /// Requires a job (the writer of the file), then reads a file.
    ReadAfter(Box<Job>, PathBuf, FileStamper),
    /// Reads the file whose path has these bytes (on Unix): a file name need not be UTF-8, but serde saves a
    /// `PathBuf` only when it is.
    ReadBytePath(Vec<u8>),
}

type Output = Result<String, String>;

impl Task for Job {
    type Output = Output;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> Output {
        match self {
            Job::Read(path, stamper) => read(context, path, *stamper),
            Job::Upper(job) => Ok(context.require_task(job)?.to_uppercase()),
            Job::Concat(jobs) => concat(context, jobs),
            Job::Label(_, job) => context.require_task(job),
            Job::Write(jobs, path, stamper) => {
                let text = concat(context, jobs)?;
                fs::write(path, &text).map_err(|e| e.to_string())?;
                context
                    .provide_file_with_stamper(path, *stamper)
                    .map_err(|e| e.to_string())?;
                Ok(text)
            }
            Job::ReadAfter(job, path, stamper) => {
                context.require_task(job)?;
                read(context, path, *stamper)
            }
            Job::ReadBytePath(bytes) => read(context, &byte_path(bytes), FileStamper::Modified),
        }
    }
}

fn read<C: Context<Job>>(context: &mut C, path: &Path, stamper: FileStamper) -> Output {
    let mut text = String::new();
    if let Some(mut file) = context
        .require_file_with_stamper(path, stamper)
        .map_err(|e| e.to_string())?
    {
        file.read_to_string(&mut text).map_err(|e| e.to_string())?;
    }
    Ok(text)
}

#[cfg(unix)]
fn byte_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn byte_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

fn concat<C: Context<Job>>(context: &mut C, jobs: &[Job]) -> Output {
    let mut text = String::new();
    for job in jobs {
        text.push_str(&context.require_task(job)?);
    }
    Ok(text)
}

fn read_job(path: impl Into<PathBuf>) -> Job {
    Job::Read(path.into(), FileStamper::Modified)
}

fn upper(job: Job) -> Job {
    Job::Upper(Box::new(job))
}

type TestPie = Pie<Job, Output, EventTracker<Job, Output>>;

fn load(path: &Path) -> TestPie {
    match Pie::load(path, EventTracker::default()) {
        Ok(pie) => pie,
        Err(e) => panic!("loading failed: {e}"),
    }
}

fn save(pie: &TestPie, path: &Path) {
    if let Err(e) = pie.save(path) {
        panic!("saving failed: {e}");
    }
}

fn executed(pie: &TestPie) -> Vec<Job> {
    pie.tracker().executed_tasks().into_iter().cloned().collect()
}

/// The output of `job` built from scratch, with no store.
fn clean_output(job: &Job) -> Output {
    Pie::default().new_session().require(job)
}

/// A project folder: inputs `a.txt` = "abc", `b.txt` = "x", `c.txt` = "c"; the store is `store/pie.store`.
struct Project {
    dir: Dir,
}

impl Project {
    fn new() -> Self {
        let dir = Dir::new();
        for (name, text) in [("a.txt", "abc"), ("b.txt", "x"), ("c.txt", "c")] {
            dir.create(name, text);
        }
        Project { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store/pie.store")
    }
}

/// `out.txt` = upper(a.txt) + b.txt, written by this task.
fn writer(dir: &Path) -> Job {
    Job::Write(
        vec![upper(read_job(dir.join("a.txt"))), read_job(dir.join("b.txt"))],
        dir.join("out.txt"),
        FileStamper::Modified,
    )
}

/// The root of the project's build: the writer, a reader of its output, and a reader of `c.txt`.
fn root(dir: &Path) -> Job {
    Job::Concat(vec![
        Job::ReadAfter(Box::new(writer(dir)), dir.join("out.txt"), FileStamper::Modified),
        read_job(dir.join("c.txt")),
    ])
}

/// A second writer of `out.txt`.
fn rival(dir: &Path) -> Job {
    Job::Write(
        vec![read_job(dir.join("c.txt"))],
        dir.join("out.txt"),
        FileStamper::Modified,
    )
}

/// Builds the project's root in a fresh `Pie` and saves it.
fn build_and_save(project: &Project) -> TestPie {
    let mut pie = load(&project.store());
    assert_eq!(pie.task_count(), 0, "no store yet: an empty Pie");
    assert_eq!(pie.new_session().require(&root(project.dir.path())), Ok("ABCxc".into()));
    save(&pie, &project.store());
    pie
}

#[test]
fn loaded_store_executes_nothing_when_nothing_changed() {
    let project = Project::new();
    let saved = build_and_save(&project);
    let mut pie = load(&project.store());
    assert_eq!(pie.task_count(), saved.task_count());
    pie.check_invariants();
    assert_eq!(pie.new_session().require(&root(project.dir.path())), Ok("ABCxc".into()));
    assert_eq!(executed(&pie), vec![]);
}

#[test]
fn loaded_store_re_executes_only_what_an_edit_affects_with_early_cutoff() {
    let project = Project::new();
    let dir = project.dir.path();
    build_and_save(&project);

    // Same letters, other case: the reader and the upper-caser execute; the upper-cased output is unchanged, so
    // the writer and everything after it are cut off.
    project.dir.write("a.txt", "ABC");
    let mut pie = load(&project.store());
    assert_eq!(pie.new_session().require(&root(dir)), Ok("ABCxc".into()));
    let a = read_job(dir.join("a.txt"));
    assert_eq!(executed(&pie), vec![a.clone(), upper(a)]);
    save(&pie, &project.store());

    project.dir.write("b.txt", "y");
    let mut pie = load(&project.store());
    assert_eq!(pie.new_session().require(&root(dir)), Ok("ABCyc".into()));
    let after = Job::ReadAfter(Box::new(writer(dir)), dir.join("out.txt"), FileStamper::Modified);
    assert_eq!(
        executed(&pie),
        vec![read_job(dir.join("b.txt")), writer(dir), after.clone(), root(dir)]
    );
    save(&pie, &project.store());

    // The provided file is deleted behind pie's back: its writer executes again.
    project.dir.remove("out.txt");
    let mut pie = load(&project.store());
    assert_eq!(pie.new_session().require(&root(dir)), Ok("ABCyc".into()));
    assert_eq!(executed(&pie), vec![writer(dir), after]);
    assert_eq!(project.dir.read("out.txt"), "ABCy");
}

#[test]
fn second_provider_of_a_file_from_a_loaded_store_is_refused() {
    let project = Project::new();
    let dir = project.dir.path();
    build_and_save(&project);
    let mut pie = load(&project.store());
    let message = expect_panic(|| {
        let _ = pie.new_session().require(&rival(dir));
    });
    assert!(message.starts_with("Overlapping provided file"), "{message}");
    assert!(
        message.contains("out.txt") && message.contains(&format!("{:?}", writer(dir))),
        "{message}"
    );
}

#[test]
fn reading_a_file_provided_in_a_loaded_store_without_its_writer_is_refused() {
    let project = Project::new();
    let dir = project.dir.path();
    build_and_save(&project);
    let mut pie = load(&project.store());
    let message = expect_panic(|| {
        let _ = pie.new_session().require(&read_job(dir.join("out.txt")));
    });
    assert!(message.starts_with("Hidden dependency"), "{message}");
    assert!(
        message.contains("out.txt") && message.contains(&format!("{:?}", writer(dir))),
        "{message}"
    );
}

#[test]
fn providing_a_file_required_in_a_loaded_store_is_refused() {
    let project = Project::new();
    let dir = project.dir.path();
    build_and_save(&project);
    let mut pie = load(&project.store());
    // `c.txt` is required by a task of the saved build; a new task writing it does not come before that reader.
    let overwrite = Job::Write(vec![], dir.join("c.txt"), FileStamper::Modified);
    let message = expect_panic(|| {
        let _ = pie.new_session().require(&overwrite);
    });
    assert!(message.starts_with("Hidden dependency"), "{message}");
    assert!(message.contains("c.txt"), "{message}");
}

#[test]
fn missing_store_loads_as_an_empty_pie_and_save_creates_its_folders() {
    let project = Project::new();
    let store = project.dir.join("deeper/still/pie.store");
    let mut pie = load(&store);
    assert_eq!(pie.task_count(), 0);
    assert_eq!(
        pie.new_session().require(&read_job(project.dir.join("a.txt"))),
        Ok("abc".into())
    );
    save(&pie, &store);
    assert_eq!(load(&store).task_count(), 1);
    // Saving again replaces the file; no temporary file is left beside it.
    save(&pie, &store);
    let names: Vec<_> = fs::read_dir(project.dir.join("deeper/still")).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

/// Identifies the file at `path`: a save that writes replaces it with a new file (a rename), one that finds
/// nothing to write leaves it.
#[cfg(unix)]
fn file_identity(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let metadata = fs::metadata(path).unwrap();
    (metadata.dev(), metadata.ino())
}

/// Issue 9: saving after a build that changed nothing rewrote the whole store. Now the file is kept when it holds
/// exactly what would be written, and replaced whenever it does not: after a change, when damaged, when a link.
#[cfg(unix)]
#[test]
fn save_writes_only_when_the_file_differs() {
    let project = Project::new();
    let dir = project.dir.path();
    build_and_save(&project);
    let first = file_identity(&project.store());

    let mut pie = load(&project.store());
    assert_eq!(pie.new_session().require(&root(dir)), Ok("ABCxc".into()));
    assert_eq!(executed(&pie), vec![]);
    save(&pie, &project.store());
    assert_eq!(
        file_identity(&project.store()),
        first,
        "a no-op build's save wrote the store"
    );

    // A change is written.
    project.dir.write("c.txt", "C");
    assert_eq!(pie.new_session().require(&root(dir)), Ok("ABCxC".into()));
    save(&pie, &project.store());
    let second = file_identity(&project.store());
    assert_ne!(second, first, "a changed store was not written");
    assert_eq!(
        load(&project.store()).new_session().require(&root(dir)),
        Ok("ABCxC".into())
    );

    // A damaged copy on the disk is rewritten, even where its header still matches.
    let good = fs::read(project.store()).unwrap();
    let mut damaged = good.clone();
    *damaged.last_mut().unwrap() ^= 1;
    fs::write(project.store(), &damaged).unwrap();
    save(&pie, &project.store());
    assert_eq!(fs::read(project.store()).unwrap(), good);

    // A symbolic link to an identical file is replaced by the store, as documented.
    let elsewhere = project.dir.create("elsewhere.store", &good);
    project.dir.remove(project.store());
    std::os::unix::fs::symlink(&elsewhere, project.store()).unwrap();
    save(&pie, &project.store());
    assert!(fs::symlink_metadata(project.store()).unwrap().file_type().is_file());
    assert_eq!(fs::read(project.store()).unwrap(), good);
}

#[test]
fn odd_file_names_and_times_survive_a_round_trip() {
    let project = Project::new();
    let old = project.dir.create("old.txt", "old");
    let before_1970 = UNIX_EPOCH - Duration::from_millis(86_400_500);
    fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(before_1970))
        .unwrap();
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut jobs = vec![read_job(&old), Job::Read(old.clone(), FileStamper::Hash)];
    #[cfg(unix)]
    {
        let mut odd = project.dir.path().as_os_str().as_encoded_bytes().to_vec();
        odd.extend_from_slice(b"/not-utf8-\xff.txt");
        project.dir.create(byte_path(&odd), "odd");
        jobs.push(Job::ReadBytePath(odd));
    }
    let all = Job::Concat(jobs);
    let mut pie = load(&project.store());
    let output = pie.new_session().require(&all);
    save(&pie, &project.store());
    let mut pie = load(&project.store());
    assert_eq!(pie.new_session().require(&all), output);
    assert_eq!(executed(&pie), vec![]);
}

// A new process: the same checks, with the store loaded by this test binary run again.

/// Runs this test binary again as a child in `role`, on the project folder; returns its report, one line per fact.
fn run_child(role: &str, dir: &Path) -> Vec<String> {
    let output = child_command(role, dir).output().expect("running the child process");
    let report = fs::read_to_string(dir.join(format!("report-{role}"))).unwrap_or_default();
    assert!(
        output.status.success() && report.ends_with("done\n"),
        "child {role} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    report.lines().map(str::to_string).collect()
}

fn child_command(role: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["child_process", "--exact", "--nocapture", "--test-threads=1"])
        .env("PIE_PERSIST_CHILD", role)
        .env("PIE_PERSIST_DIR", dir);
    command
}

/// The entry of a child process, started by [`child_command`] with a role; in an ordinary test run (no role set),
/// a test of that entry itself: a child started with the role `build` on a saved project executes nothing.
#[test]
fn child_process() {
    let (Some(role), Some(dir)) = (
        std::env::var_os("PIE_PERSIST_CHILD"),
        std::env::var_os("PIE_PERSIST_DIR"),
    ) else {
        let project = Project::new();
        build_and_save(&project);
        let report = run_child("build", project.dir.path());
        assert_eq!(
            report,
            vec![r#"output Ok("ABCxc")"#, "done"],
            "a child process builds from the saved store"
        );
        return;
    };
    let role = role.to_string_lossy().into_owned();
    let dir = PathBuf::from(dir);
    let store = dir.join("store/pie.store");
    let mut report = String::new();
    match role.as_str() {
        "build" => {
            let mut pie = load(&store);
            let output = pie.new_session().require(&root(&dir));
            report.push_str(&format!("output {output:?}\n"));
            for job in executed(&pie) {
                report.push_str(&format!("executed {job:?}\n"));
            }
            save(&pie, &store);
        }
        "rival" | "sneak" => {
            let mut pie = load(&store);
            let job = if role == "rival" {
                rival(&dir)
            } else {
                read_job(dir.join("out.txt"))
            };
            let message = expect_panic(|| {
                let _ = pie.new_session().require(&job);
            });
            report.push_str(&format!("panic {}\n", message.replace('\n', " ")));
        }
        "saver" => save_forever(&dir),
        "evolving-old-layout" => {
            let mut pie: Pie<Evolving, u32> = Pie::default();
            pie.new_session().require(&Evolving::Leaf(5));
            if let Err(e) = pie.save(&store) {
                panic!("saving failed: {e}");
            }
        }
        other => panic!("unknown child role {other}"),
    }
    report.push_str("done\n");
    fs::write(dir.join(format!("report-{role}")), report).expect("writing the report");
}

#[test]
fn store_saved_by_one_process_is_used_by_the_next() {
    let project = Project::new();
    let dir = project.dir.path();
    build_and_save(&project);

    let report = run_child("build", dir);
    assert_eq!(
        report,
        vec![r#"output Ok("ABCxc")"#, "done"],
        "nothing executes in a new process"
    );

    project.dir.write("a.txt", "ABC");
    let report = run_child("build", dir);
    let a = read_job(dir.join("a.txt"));
    let expected = [
        r#"output Ok("ABCxc")"#.to_string(),
        format!("executed {a:?}"),
        format!("executed {:?}", upper(a)),
        "done".to_string(),
    ];
    assert_eq!(
        report, expected,
        "only the edited reader and its upper-caser execute (early cutoff)"
    );

    let report = run_child("build", dir);
    assert_eq!(
        report.len(),
        2,
        "the child's own save is used by the next child: {report:?}"
    );

    let report = run_child("rival", dir);
    assert!(report[0].starts_with("panic Overlapping provided file"), "{report:?}");
    assert!(report[0].contains(&format!("{:?}", writer(dir))), "{report:?}");

    let report = run_child("sneak", dir);
    assert!(report[0].starts_with("panic Hidden dependency"), "{report:?}");
    assert!(report[0].contains("out.txt"), "{report:?}");

    // The parent loads what the children saved. The rival wrote `out.txt` before it was refused, so its rightful
    // writer executes again (and so does the reader of the file), with the same output.
    let mut pie = load(&project.store());
    assert_eq!(pie.new_session().require(&root(dir)), Ok("ABCxc".into()));
    let after = Job::ReadAfter(Box::new(writer(dir)), dir.join("out.txt"), FileStamper::Modified);
    assert_eq!(executed(&pie), vec![writer(dir), after]);
    assert_eq!(project.dir.read("out.txt"), "ABCx");
}

// Crash safety: a child saves two different stores in turn, forever, and is killed with SIGKILL at random moments.

/// Ten inputs `f0`..`f9`.
fn crash_inputs(dir: &Path) -> Vec<PathBuf> {
    (0..10).map(|i| dir.join(format!("f{i}"))).collect()
}

fn crash_roots(dir: &Path) -> [Job; 2] {
    let inputs = crash_inputs(dir);
    let labelled = |count: u32, wrap: fn(Job) -> Job| {
        Job::Concat(
            (0..count)
                .map(|k| Job::Label(k, Box::new(wrap(read_job(&inputs[k as usize % inputs.len()])))))
                .collect(),
        )
    };
    [labelled(400, upper), labelled(600, |job| job)]
}

/// The child: loads the two reference stores and saves them to the store path in turn until it is killed. It
/// reports on its stdout (written directly, as the test harness may capture `println!`): "ready" once, then a dot
/// per round, so that it stops by itself when its parent is gone (the pipe breaks); it also stops after a bounded
/// number of rounds, far more than the parent ever waits for.
fn save_forever(dir: &Path) {
    let a = load(&dir.join("ref-a"));
    let b = load(&dir.join("ref-b"));
    let mut stdout = std::io::stdout();
    if stdout.write_all(b"ready\n").and_then(|()| stdout.flush()).is_err() {
        return;
    }
    let store = dir.join("store/pie.store");
    for _ in 0..100_000 {
        save(&a, &store);
        save(&b, &store);
        if stdout.write_all(b".").and_then(|()| stdout.flush()).is_err() {
            return;
        }
    }
}

#[test]
fn killed_saves_leave_the_old_or_the_new_store() {
    let project = Project::new();
    let dir = project.dir.path();
    let inputs = crash_inputs(dir);
    for (i, input) in inputs.iter().enumerate() {
        project.dir.create(input, format!("input {i};"));
    }
    let [root_a, root_b] = crash_roots(dir);

    // Two different stores: A knows one root, built with f3 = "one"; B knows both, built with f3 = "two".
    project.dir.write(&inputs[3], "one");
    let mut a: TestPie = Pie::with_tracker(EventTracker::default());
    let output_a = a.new_session().require(&root_a);
    project.dir.write(&inputs[3], "two");
    let mut b: TestPie = Pie::with_tracker(EventTracker::default());
    let mut session = b.new_session();
    assert_ne!(session.require(&root_a), output_a);
    assert!(session.require(&root_b).is_ok());
    drop(session);
    save(&a, &project.dir.join("ref-a"));
    save(&b, &project.dir.join("ref-b"));
    let ref_a = fs::read(project.dir.join("ref-a")).unwrap();
    let ref_b = fs::read(project.dir.join("ref-b")).unwrap();
    assert_ne!(ref_a, ref_b);
    project.dir.create(project.store(), &ref_a);

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut saw_a, mut saw_b, mut strays) = (0, 0, 0);
    for round in 0..60 {
        let mut child = child_command("saver", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning the saver");
        let mut lines = BufReader::new(child.stdout.take().expect("the child's stdout")).lines();
        let ready = lines.any(|line| line.is_ok_and(|l| l.ends_with("ready")));
        assert!(ready, "the saver died before it was ready (seed {seed})");
        std::thread::sleep(Duration::from_micros(next() % 30_000));
        child.kill().expect("killing the saver (SIGKILL)");
        child.wait().expect("reaping the saver");

        // Stray temporary files from killed saves are never read; only they and the store are in the folder.
        strays += temp_files(&project).len();
        let bytes = fs::read(project.store()).unwrap();
        assert!(
            bytes == ref_a || bytes == ref_b,
            "round {round} (seed {seed}): the store is neither the old nor the new one"
        );
        if bytes == ref_a {
            saw_a += 1;
        } else {
            saw_b += 1;
        }
        let mut pie = load(&project.store());
        for root in [&root_a, &root_b] {
            assert_eq!(
                pie.new_session().require(root),
                clean_output(root),
                "round {round} (seed {seed})"
            );
        }
        // Change an input now and then, so that the cached outputs of one store or the other are stale.
        if next() % 3 == 0 {
            let text = if next() % 2 == 0 { "one" } else { "three" };
            project.dir.write(&inputs[3], text);
        }
    }
    // The next save removes the temporary files that killed saves left (their processes are gone).
    save(&load(&project.store()), &project.store());
    if cfg!(target_os = "linux") {
        assert_eq!(temp_files(&project), Vec::<String>::new());
    }
    eprintln!("seed {seed}: after a kill the store held A {saw_a} times, B {saw_b} times; {strays} strays seen");
}

/// The names of the files beside the store other than the store, all of which must be temporary files of the store.
fn temp_files(project: &Project) -> Vec<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(project.store().parent().unwrap()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "pie.store" {
            assert!(name.starts_with(".pie.store.pie-tmp."), "{name}");
            names.push(name);
        }
    }
    names.sort();
    names
}

/// Plants a file `name` beside the store, last written `age` ago.
fn plant(project: &Project, name: &str, age: Duration) {
    let path = project.dir.create(format!("store/{name}"), "half a store");
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// Regression (issue 9): temporary files left by killed saves piled up beside the store. A save removes those of
/// its store whose process is gone, or that nobody wrote for an hour; never one that a live save may be writing.
#[test]
fn save_removes_stale_temporary_files_of_its_store_only() {
    let project = Project::new();
    let saved = build_and_save(&project);
    // No process has an id beyond Linux's largest possible one (2^22); process 1 always runs.
    let gone = ".pie.store.pie-tmp.4194305.0";
    let gone_old = ".pie.store.pie-tmp.4194305.1";
    let live_fresh = ".pie.store.pie-tmp.1.0";
    let live_idle = ".pie.store.pie-tmp.1.1";
    let own = format!(".pie.store.pie-tmp.{}.999", std::process::id());
    let other_store = ".other.store.pie-tmp.4194305.0";
    let not_temp = ".pie.store.pie-tmp.notes";
    let minute = Duration::from_secs(60);
    for (name, age) in [
        (gone, minute),
        (gone_old, 120 * minute),
        (live_fresh, minute),
        (live_idle, 120 * minute),
        (own.as_str(), minute),
        (other_store, 120 * minute),
        (not_temp, 120 * minute),
    ] {
        plant(&project, name, age);
    }
    save(&load(&project.store()), &project.store());
    let mut expected = vec![live_fresh, own.as_str(), other_store, not_temp];
    if !cfg!(target_os = "linux") {
        // Whether a process runs is only told on Linux; elsewhere a temporary file goes when it is an hour old.
        expected.push(gone);
    }
    expected.sort();
    let mut left: Vec<String> = fs::read_dir(project.dir.join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "pie.store")
        .collect();
    left.sort();
    assert_eq!(left, expected);
    assert_eq!(load(&project.store()).task_count(), saved.task_count());
}

// Bad stores: refused with an error that names the file and the reason, never a panic.

/// A small valid store.
fn small_store(project: &Project) -> Vec<u8> {
    build_and_save(project);
    fs::read(project.store()).unwrap()
}

/// Writes `bytes` as the store and loads it.
fn load_bytes(project: &Project, bytes: &[u8]) -> Result<TestPie, LoadError> {
    fs::create_dir_all(project.dir.join("store")).unwrap();
    fs::write(project.store(), bytes).unwrap();
    Pie::load(project.store(), EventTracker::default())
}

#[track_caller]
fn assert_refused(project: &Project, bytes: &[u8], reason: &str) -> LoadError {
    match load_bytes(project, bytes) {
        Ok(_) => panic!("a bad store was loaded (expected: {reason})"),
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains(&project.store().display().to_string()), "{message}");
            assert!(message.contains(reason), "expected '{reason}' in: {message}");
            assert_eq!(error.path(), project.store());
            error
        }
    }
}

#[test]
fn empty_store_is_refused() {
    let project = Project::new();
    small_store(&project);
    assert!(matches!(
        assert_refused(&project, b"", "is empty"),
        LoadError::Empty { .. }
    ));
}

#[test]
fn truncated_store_is_refused_at_every_length() {
    let project = Project::new();
    let bytes = small_store(&project);
    for len in 1..bytes.len() {
        let error = assert_refused(&project, &bytes[..len], "truncated");
        assert!(matches!(error, LoadError::Truncated { .. }), "{error}");
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    let project = Project::new();
    let bytes = small_store(&project);
    let mut flipped = bytes.clone();
    for index in 0..bytes.len() {
        for bit in 0..8 {
            flipped[index] ^= 1 << bit;
            assert!(
                load_bytes(&project, &flipped).is_err(),
                "a store with bit {bit} of byte {index} flipped was loaded"
            );
            flipped[index] ^= 1 << bit;
        }
    }
    // And a flip in the payload is reported as corruption.
    flipped[bytes.len() - 3] ^= 0x10;
    assert_refused(&project, &flipped, "checksum does not match");
}

#[test]
fn random_bytes_wrong_magic_and_trailing_bytes_are_refused() {
    let project = Project::new();
    let bytes = small_store(&project);
    assert_refused(&project, b"hello, I am a text file\n", "not a pie store");
    let mut wrong = bytes.clone();
    wrong[0] = b'Q';
    assert_refused(&project, &wrong, "not a pie store");
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"tail");
    assert_refused(&project, &longer, "4 unexpected trailing bytes");
}

#[test]
fn store_of_another_format_version_is_refused() {
    let project = Project::new();
    let mut bytes = small_store(&project);
    for (version, message) in [(3u32, "format version 3"), (5, "format version 5")] {
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let error = assert_refused(&project, &bytes, message);
        assert!(
            matches!(error, LoadError::UnsupportedVersion { found, supported: 4, .. } if found == version),
            "{error}"
        );
    }
}

/// A task type whose serialised shape depends on the process, as a build script's task type does on the version
/// of the script that was compiled: in a child process with the role `evolving-old-layout` it has the variant
/// `Leaf` only; elsewhere it gained `Extra`, before `Leaf`. Its type name is the same in both.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Evolving {
    /// Outputs its number.
    Leaf(u32),
    /// Outputs its number plus 1000 (only in the new layout).
    Extra(u32),
}

/// The old layout of [`Evolving`].
#[derive(Serialize, Deserialize)]
#[serde(rename = "Evolving")]
enum OldLayout {
    Leaf(u32),
}

/// The new layout of [`Evolving`].
#[derive(Serialize, Deserialize)]
#[serde(rename = "Evolving")]
enum NewLayout {
    Extra(u32),
    Leaf(u32),
}

fn old_layout() -> bool {
    std::env::var_os("PIE_PERSIST_CHILD").is_some_and(|role| role == "evolving-old-layout")
}

impl Serialize for Evolving {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (old_layout(), self) {
            (true, Evolving::Leaf(n)) => OldLayout::Leaf(*n).serialize(serializer),
            (true, Evolving::Extra(_)) => Err(serde::ser::Error::custom("no Extra in the old layout")),
            (false, Evolving::Leaf(n)) => NewLayout::Leaf(*n).serialize(serializer),
            (false, Evolving::Extra(n)) => NewLayout::Extra(*n).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Evolving {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(if old_layout() {
            match OldLayout::deserialize(deserializer)? {
                OldLayout::Leaf(n) => Evolving::Leaf(n),
            }
        } else {
            match NewLayout::deserialize(deserializer)? {
                NewLayout::Extra(n) => Evolving::Extra(n),
                NewLayout::Leaf(n) => Evolving::Leaf(n),
            }
        })
    }
}

impl Task for Evolving {
    type Output = u32;
    fn execute<C: Context<Self>>(&self, _context: &mut C) -> u32 {
        match self {
            Evolving::Leaf(n) => *n,
            Evolving::Extra(n) => n + 1000,
        }
    }
}

/// Regression (issue 8): a store written by a build script whose task enum later gained a variant before the
/// others, under the same type name, was loaded (the fingerprint hashed type names only) and `Leaf(5)` decoded as
/// `Extra(5)`, whose cached output 5 was then served instead of 1005. The old build script is a child process that
/// sees the old layout.
#[test]
fn store_of_a_task_type_that_changed_shape_under_its_name_is_refused() {
    let project = Project::new();
    run_child("evolving-old-layout", project.dir.path());
    match Pie::<Evolving, u32>::load(project.store(), NoopTracker) {
        Err(error) => {
            assert!(matches!(error, LoadError::TypeMismatch { .. }), "{error}");
            let message = error.to_string();
            assert!(message.contains(&project.store().display().to_string()), "{message}");
            assert!(message.contains("Evolving"), "{message}");
        }
        Ok(mut pie) => {
            let output = pie.new_session().require(&Evolving::Extra(5));
            panic!("the old store was loaded; Extra(5) gave {output}, not 1005");
        }
    }
    // The new layout builds and saves afresh.
    project.dir.remove(project.store());
    let mut pie: Pie<Evolving, u32> = Pie::default();
    assert_eq!(pie.new_session().require(&Evolving::Extra(5)), 1005);
    pie.save(project.store()).unwrap();
    assert_eq!(
        Pie::<Evolving, u32>::load(project.store(), NoopTracker)
            .unwrap()
            .task_count(),
        1
    );
}

/// A task type of another build script.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
struct Foreign(String);

impl Task for Foreign {
    type Output = String;
    fn execute<C: Context<Self>>(&self, _context: &mut C) -> String {
        self.0.clone()
    }
}

#[test]
fn store_of_another_task_type_is_refused() {
    let project = Project::new();
    let mut foreign = Pie::default();
    foreign.new_session().require(&Foreign("x".into()));
    foreign.save(project.store()).unwrap();
    let error = Pie::<Job, Output>::load(project.store(), NoopTracker).expect_err("a foreign store was loaded");
    assert!(matches!(error, LoadError::TypeMismatch { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("other task or output types") && message.contains("Job"),
        "{message}"
    );
    // And the other way round.
    project.dir.remove(project.store());
    small_store(&project);
    let error = Pie::<Foreign, String>::load(project.store(), NoopTracker).expect_err("a foreign store was loaded");
    assert!(matches!(error, LoadError::TypeMismatch { .. }), "{error}");
}

#[test]
fn unreadable_store_is_an_io_error() {
    let project = Project::new();
    project.dir.create_dir(project.store());
    let error = Pie::<Job, Output>::load(project.store(), NoopTracker).expect_err("a folder was loaded");
    assert!(matches!(error, LoadError::Io { .. }), "{error}");
    assert!(error.to_string().contains("cannot read the pie store"), "{error}");
}

#[test]
fn failed_save_names_the_file_and_leaves_nothing_behind() {
    let project = Project::new();
    let pie = build_and_save(&project);
    // The store path is a folder: the rename fails.
    let folder_store = project.dir.join("taken");
    project.dir.create_dir("taken/inside");
    let error = pie.save(&folder_store).expect_err("saved over a folder");
    assert!(matches!(error, SaveError::Io { .. }), "{error}");
    assert!(
        error.to_string().contains(&folder_store.display().to_string()),
        "{error}"
    );
    assert_eq!(error.path(), folder_store);
    let leftovers: Vec<_> = fs::read_dir(project.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".pie-tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The parent "folder" is a file.
    let error = pie
        .save(project.dir.join("a.txt/pie.store"))
        .expect_err("saved below a file");
    assert!(error.to_string().contains("a.txt/pie.store"), "{error}");
    // The earlier store is untouched.
    assert_eq!(load(&project.store()).task_count(), pie.task_count());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_loader(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let project = Project::new();
        // Random bytes are refused; the rare accepted one must be a usable Pie.
        if let Ok(pie) = load_bytes(&project, &bytes) {
            pie.check_invariants();
        }
    }

    #[test]
    fn mutated_stores_never_panic_the_loader(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..5),
    ) {
        let project = Project::new();
        let original = small_store(&project);
        let mut bytes = original.clone();
        for (index, byte, kind) in edits {
            match kind {
                1 => { let i = index.index(bytes.len() + 1); bytes.insert(i, byte); }
                // Replacing or removing needs a byte to act on.
                _ if bytes.is_empty() => {}
                0 => { let i = index.index(bytes.len()); bytes[i] = byte; }
                2 => { let i = index.index(bytes.len()); bytes.remove(i); }
                _ => { let len = index.index(bytes.len() + 1); bytes.truncate(len); }
            }
        }
        match load_bytes(&project, &bytes) {
            Ok(mut pie) => {
                // Only an unchanged store may load, and then it serves correct results.
                prop_assert_eq!(&bytes, &original);
                let root = root(project.dir.path());
                prop_assert_eq!(pie.new_session().require(&root), clean_output(&root));
            }
            Err(error) => prop_assert!(error.to_string().contains(&project.store().display().to_string())),
        }
    }
}

// Equivalence: a Pie saved and loaded before every build makes exactly the same decisions as one kept in memory.

/// A fixed graph over inputs `i0`..`i3`, with two writers, a reader of a written file and early cutoffs; every file
/// is stamped by content, so that the two pies building in turn in one folder do not disturb each other.
fn equivalence_root(dir: &Path) -> Job {
    let hash = FileStamper::Hash;
    let input = |i: usize| Job::Read(dir.join(format!("i{i}")), hash);
    let w1 = Job::Write(
        vec![Job::Concat(vec![upper(input(0)), input(1)]), input(2)],
        dir.join("o1"),
        hash,
    );
    let r1 = Job::ReadAfter(Box::new(w1.clone()), dir.join("o1"), hash);
    let w2 = Job::Write(vec![r1, upper(input(3))], dir.join("o2"), hash);
    let all_upper = Job::Concat(vec![upper(input(0)), upper(input(1)), upper(input(2)), upper(input(3))]);
    Job::Concat(vec![w2, all_upper, w1])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn reloaded_pie_decides_like_the_one_in_memory(
        steps in proptest::collection::vec(proptest::collection::vec((0usize..4, 0usize..5), 0..3), 1..6),
    ) {
        let project = Project::new();
        let dir = project.dir.path();
        let texts = ["a", "A", "b", "", "ab"];
        for (i, text) in texts.iter().enumerate().take(4) {
            project.dir.create(format!("i{i}"), text);
        }
        let root = equivalence_root(dir);
        let mut memory: TestPie = Pie::with_tracker(EventTracker::default());
        for edits in steps {
            for (input, text) in edits {
                project.dir.write(format!("i{input}"), texts[text]);
            }
            let output = memory.new_session().require(&root);
            let mut reloaded = load(&project.store());
            prop_assert_eq!(reloaded.new_session().require(&root), output);
            save(&reloaded, &project.store());
            prop_assert_eq!(executed(&memory), executed(&reloaded));
        }
    }
}
