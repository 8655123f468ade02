//! A guided tour of an incremental build, printed as pie's build log.
//!
//! Run with `cargo run --release --example incremental`. It builds a tiny pipeline in a temporary folder:
//! two text files are read, upper-cased and combined into an output file, then it shows
//! 1. a first build executing every task,
//! 2. a second session reusing every result (nothing executes),
//! 3. an edit to one input re-executing only the tasks it affects,
//! 4. two tasks writing one file being refused with pie's message.

use std::fs;
use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use pie::tracker::writing::WritingTracker;
use pie::{Context, Pie, Task};

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
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

fn heading(text: &str) {
    println!("\n=== {text} ===");
}

fn main() -> io::Result<()> {
    let dir = dev_util::create_temp_dir()?;
    let (a, b, out) = (
        dir.path().join("a.txt"),
        dir.path().join("b.txt"),
        dir.path().join("out.txt"),
    );
    fs::write(&a, "hello ")?;
    fs::write(&b, "world")?;
    let combine = Step::Combine(
        vec![Step::Upper(Box::new(Step::Read(a.clone()))), Step::Read(b.clone())],
        out.clone(),
    );

    let mut pie = Pie::with_tracker(WritingTracker::with_stdout());

    heading("1. first build: every task executes (▶)");
    pie.new_session().require(&combine).map_err(io::Error::other)?;
    println!("out.txt = {:?}", fs::read_to_string(&out)?);

    heading("2. new session, nothing changed: dependencies are checked (✓), nothing executes");
    pie.new_session().require(&combine).map_err(io::Error::other)?;

    heading("3. edit b.txt: only Read(b.txt) and Combine execute; Upper(Read(a.txt)) is reused");
    dev_util::write_until_modified(&b, "pie")?;
    pie.new_session().require(&combine).map_err(io::Error::other)?;
    println!("out.txt = {:?}", fs::read_to_string(&out)?);

    heading("4. a second task writing out.txt is refused");
    let rival = Step::Combine(vec![Step::Read(a.clone())], out.clone());
    panic::set_hook(Box::new(|info| {
        println!("refused: {}", info.payload_as_str().unwrap_or("?"))
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut session = pie.new_session();
        session.require(&combine).map_err(io::Error::other)?;
        session.require(&rival).map_err(io::Error::other)
    }));
    let _ = panic::take_hook();
    match result {
        Err(_) => println!("(the build script is unsound, so pie stops instead of producing a wrong result)"),
        Ok(_) => return Err(io::Error::other("the overlapping write was not refused")),
    }
    Ok(())
}
