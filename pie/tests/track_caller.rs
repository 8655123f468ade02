//! Soundness panics point at the build script: the panic hook's `Location` of an overlapping provided file, of a
//! hidden dependency and of a cycle is the line of the task's `provide_file`/`require_file`/`require_task` call in
//! this file.
//! (Its own test binary: it installs a process-wide panic hook.)

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use dev_util::Dir;
use pie::{Context, Pie, Task};

/// The line of the last `provide_file`/`require_file` call that the tasks below made.
static CALL_LINE: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Script {
    /// Writes the file, under a name (two names: two tasks).
    Write(&'static str, PathBuf),
    /// Reads the file without requiring its writer.
    Read(PathBuf),
    /// Requires each task in order.
    All(Vec<Script>),
    /// Requires `Loop(n - 1)`, and `Loop(0)` requires `Loop(depth)`: a cycle of `depth + 1` tasks.
    Loop(u32, u32),
}

impl Task for Script {
    type Output = ();
    fn execute<C: Context<Self>>(&self, context: &mut C) {
        match self {
            Script::Write(_, path) => {
                std::fs::write(path, "x").unwrap();
                CALL_LINE.store(line!() + 1, Ordering::SeqCst);
                context.provide_file(path).unwrap();
            }
            Script::Read(path) => {
                CALL_LINE.store(line!() + 1, Ordering::SeqCst);
                let _ = context.require_file(path);
            }
            Script::All(tasks) => {
                for task in tasks {
                    context.require_task(task);
                }
            }
            Script::Loop(n, depth) => {
                let next = if *n == 0 { *depth } else { n - 1 };
                CALL_LINE.store(line!() + 1, Ordering::SeqCst);
                context.require_task(&Script::Loop(next, *depth));
            }
        }
    }
}

/// Requires `task` with a panic hook that records the panic's location and message; returns them and the line of
/// the last call the tasks made (read under the same lock: the tests run on several threads and share `CALL_LINE`).
fn panic_location(task: &Script) -> (String, u32, String, u32) {
    // The panic hook is process-wide: one test at a time sets it.
    static HOOK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seen = Arc::new(Mutex::new(None));
    let hook = panic::take_hook();
    {
        let seen = Arc::clone(&seen);
        panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| (l.file().to_string(), l.line()));
            let message = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            *seen.lock().unwrap() = location.map(|(file, line)| (file, line, message));
        }));
    }
    let mut pie = Pie::default();
    pie.set_threads(1);
    let result = panic::catch_unwind(AssertUnwindSafe(|| pie.new_session().require(task)));
    panic::set_hook(hook);
    assert!(result.is_err(), "the build panics");
    let call_line = CALL_LINE.load(Ordering::SeqCst);
    let (path, line, message) = seen.lock().unwrap().clone().expect("the hook saw the panic");
    (path, line, message, call_line)
}

#[test]
fn soundness_panics_of_files_point_at_the_build_scripts_call() {
    let dir = Dir::new();
    let file = dir.join("out.txt");

    let overlap = Script::All(vec![Script::Write("a", file.clone()), Script::Write("b", file.clone())]);
    let (path, line, message, call_line) = panic_location(&overlap);
    assert!(message.starts_with("Overlapping provided file"), "{message}");
    assert!(path.ends_with("track_caller.rs"), "{path}:{line}");
    assert_eq!(line, call_line, "{path}:{line}");

    let hidden = Script::All(vec![Script::Write("a", file.clone()), Script::Read(file.clone())]);
    let (path, line, message, call_line) = panic_location(&hidden);
    assert!(message.starts_with("Hidden dependency"), "{message}");
    assert!(path.ends_with("track_caller.rs"), "{path}:{line}");
    assert_eq!(line, call_line, "{path}:{line}");
}

#[test]
fn a_cycle_panic_points_at_the_build_scripts_require_task() {
    for depth in [0, 1, 5] {
        let (path, line, message, call_line) = panic_location(&Script::Loop(depth, depth));
        assert!(message.starts_with("Cyclic task dependency"), "{message}");
        assert!(path.ends_with("track_caller.rs"), "{path}:{line}: {message}");
        assert_eq!(line, call_line, "{path}:{line}");
    }
}
