//! A guided tour of incremental builds that survive the process, printed as pie's build log.
//!
//! Run it twice: `cargo run --release --example incremental`. It keeps a tiny project in `target/pie-example/`
//! of the workspace (or in the folder given as its argument): two inputs, `a.txt` and `b.txt`, are read,
//! `a.txt` is upper-cased, and both are combined into `out.txt`. pie's store, `pie.store`, sits beside them.
//! 1. The project is built with the store saved by the previous run. The first run executes every task; the next
//!    runs execute nothing. (Edit `b.txt` there between runs, and only what it affects executes.)
//! 2. On a scratch copy, made afresh on every run so that this part always shows the same thing: the store is
//!    saved and loaded as a new process would, an input is edited, and only the tasks it affects execute.
//! 3. A second task writing `out.txt` is refused, because the store records who writes it.
//!
//! In the build log, `→`/`←` a task is required, `▶` it executes, `?` a dependency is checked and `✓` it is still
//! consistent or `✗` it changed, `r`/`p` a file is read/written.

use std::error::Error;
use std::fs;
use std::io::Read;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use pie::tracker::writing::WritingTracker;
use pie::tracker::{CompositeTracker, Tracker};
use pie::{Context, Pie, Task};
use serde::{Deserialize, Serialize};

/// The build steps. `Serialize` and `Deserialize` let pie save them in its store.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
enum Step {
    /// Reads a file.
    Read(PathBuf),
    /// Upper-cases what another step returns.
    Upper(Box<Step>),
    /// Writes the concatenation of other steps' outputs to a file.
    Combine(Vec<Step>, PathBuf),
}

impl Task for Step {
    type Output = Result<String, String>;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> Self::Output {
        match self {
            Step::Read(path) => {
                let mut text = String::new();
                if let Some(mut file) = context.require_file(path).map_err(|e| e.to_string())? {
                    file.read_to_string(&mut text).map_err(|e| e.to_string())?;
                }
                Ok(text)
            }
            Step::Upper(step) => Ok(context.require_task(step)?.to_uppercase()),
            Step::Combine(steps, out) => {
                let mut text = String::new();
                for step in steps {
                    text.push_str(&context.require_task(step)?);
                }
                fs::write(out, &text).map_err(|e| e.to_string())?;
                context.provide_file(out).map_err(|e| e.to_string())?;
                Ok(text)
            }
        }
    }
}

/// Counts task executions, next to the build log.
#[derive(Default)]
struct Executions(usize);

impl Tracker<Step> for Executions {
    fn execute_start(&mut self, _task: &Step) {
        self.0 += 1;
    }
}

type Log = CompositeTracker<WritingTracker<std::io::Stdout>, Executions>;

fn log() -> Log {
    CompositeTracker(WritingTracker::with_stdout(), Executions::default())
}

/// Makes `folder` the current folder, with the inputs `a.txt` and `b.txt` (written only when missing, so that
/// edits survive). The tasks name files relative to it, which keeps the log short; pie's store keeps each file's
/// absolute path, so a later run must start from the same folder (as this example does).
fn enter_project(folder: &Path) -> std::io::Result<()> {
    fs::create_dir_all(folder)?;
    std::env::set_current_dir(folder)?;
    for (path, text) in [("a.txt", "hello, "), ("b.txt", "world")] {
        if !Path::new(path).exists() {
            fs::write(path, text)?;
        }
    }
    Ok(())
}

/// `out.txt` = upper-cased `a.txt` followed by `b.txt`.
fn combine() -> Step {
    let upper_a = Step::Upper(Box::new(Step::Read("a.txt".into())));
    Step::Combine(vec![upper_a, Step::Read("b.txt".into())], "out.txt".into())
}

const STORE: &str = "pie.store";

fn heading(text: &str) {
    println!("\n=== {text} ===");
}

fn main() -> Result<(), Box<dyn Error>> {
    let folder = match std::env::args_os().nth(1) {
        Some(folder) => PathBuf::from(folder),
        // The workspace's `target/` folder; this example belongs to the `pie/` package inside the workspace.
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target")
            .join("pie-example"),
    };
    let folder = std::path::absolute(folder)?;
    enter_project(&folder)?;

    heading(&format!(
        "1. build the project in {}, with the store of the previous run",
        folder.display()
    ));
    let mut pie = match Pie::load(STORE, log()) {
        Ok(pie) if pie.task_count() == 0 => {
            println!("No store yet: this first run executes every task.");
            pie
        }
        Ok(pie) => {
            println!(
                "Loaded the store of the previous run: {} tasks and their outputs.",
                pie.task_count()
            );
            pie
        }
        Err(error) => {
            // A store that cannot be used is only a cache: report it and start from scratch.
            println!("{error}\nStarting from scratch.");
            Pie::with_tracker(log())
        }
    };
    pie.new_session().require(&combine())?;
    match pie.tracker().1 .0 {
        0 => println!(
            "Nothing executed: every output came from the store. (Edit {} and run again to see an edit.)",
            folder.join("b.txt").display()
        ),
        n => println!("{n} tasks executed. Run the example again: the next run executes nothing."),
    }
    pie.save(STORE)?;
    println!("out.txt = {:?}", fs::read_to_string("out.txt")?);
    println!("Saved the store {STORE} ({} bytes).", fs::metadata(STORE)?.len());

    let scratch = folder.join("scratch");
    if scratch.exists() {
        fs::remove_dir_all(&scratch)?;
    }
    enter_project(&scratch)?;
    heading(&format!("2. edit b.txt of a fresh copy in {}", scratch.display()));
    let mut quiet = Pie::default();
    quiet.new_session().require(&combine())?;
    quiet.save(STORE)?;
    println!("Built the copy without a log and saved its store. Now load the store, as a new process would,");
    println!("write \"pie\" to b.txt, and build again: only Read(b.txt) and Combine execute.");
    let mut pie = Pie::load(STORE, log())?;
    dev_util::write_until_modified("b.txt", "pie")?;
    pie.new_session().require(&combine())?;
    println!(
        "{} tasks executed; Upper(Read(a.txt)) was reused from the store. out.txt = {:?}",
        pie.tracker().1 .0,
        fs::read_to_string("out.txt")?
    );
    pie.save(STORE)?;

    heading("3. a second task writing out.txt is refused, because the loaded store records its writer");
    let rival = Step::Combine(vec![Step::Read("b.txt".into())], "out.txt".into());
    let mut pie = Pie::load(STORE, log())?;
    panic::set_hook(Box::new(|info| {
        println!("Refused: {}", info.payload_as_str().unwrap_or("?"))
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(|| pie.new_session().require(&rival)));
    let _ = panic::take_hook();
    match result {
        Err(_) => println!("(The build script is unsound, so pie stops instead of producing a wrong result.)"),
        Ok(_) => return Err("the overlapping write was not refused".into()),
    }
    Ok(())
}
