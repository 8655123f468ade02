//! The public contract of `../shared/API.md`, pinned by the compiler: every path and signature it names is used
//! here with the exact types it gives, so that a change that would break a user's build script (a renamed item, a
//! reshaped signature, a lost `Send` bound) fails this test's compilation. The test bodies then build one small
//! graph through those items and assert what the contract promises about it.

use std::fs::File;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};

use dev_util::Dir;
use pie::stamp::{FileStamp, FileStamper, OutputStamp, OutputStamper};
use pie::tracker::event::{Event, EventTracker};
use pie::tracker::writing::WritingTracker;
use pie::tracker::{CompositeTracker, NoopTracker, Tracker};
use pie::{Context, Garbage, LoadError, Pie, SaveError, Session, Task};

/// A task that copies a file, or requires other copies.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
enum Copy {
    File(PathBuf, PathBuf),
    All(Vec<Copy>),
}

impl Task for Copy {
    type Output = Result<usize, String>;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> Self::Output {
        match self {
            Copy::File(from, to) => {
                let file: io::Result<Option<File>> = context.require_file(from);
                file.map_err(|e| e.to_string())?;
                let text = std::fs::read_to_string(from).map_err(|e| e.to_string())?;
                std::fs::write(to, &text).map_err(|e| e.to_string())?;
                let provided: io::Result<()> = context.provide_file(to);
                provided.map_err(|e| e.to_string())?;
                Ok(text.len())
            }
            Copy::All(tasks) => {
                let outputs: Vec<Self::Output> = context.require_tasks(tasks);
                outputs.into_iter().sum()
            }
        }
    }
}

/// The contract's trait bounds, checked by the compiler.
fn bounds<T: Task>()
where
    T::Output: Clone + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    fn send<X: Send>() {}
    fn sync<X: Sync>() {}
    fn copy_eq_hash_debug<X: std::marker::Copy + Eq + Hash + std::fmt::Debug>() {}
    send::<T>();
    sync::<T>();
    send::<NoopTracker>();
    send::<EventTracker<T, T::Output>>();
    send::<WritingTracker<io::Stderr>>();
    send::<CompositeTracker<NoopTracker, EventTracker<T, T::Output>>>();
    copy_eq_hash_debug::<FileStamper>();
    copy_eq_hash_debug::<OutputStamper>();
    let _: fn(&FileStamp) -> FileStamp = Clone::clone;
    let _: fn(&OutputStamp<T::Output>) -> OutputStamp<T::Output> = Clone::clone;
}

/// Every `Context` method with the contract's signature.
#[allow(dead_code)]
fn context_methods<T: Task, C: Context<T>>(context: &mut C, task: &T, path: &Path) {
    let _: io::Result<Option<File>> = context.require_file(path);
    let _: io::Result<Option<File>> = context.require_file_with_stamper(path, FileStamper::Hash);
    let _: io::Result<()> = context.provide_file(path);
    let _: io::Result<()> = context.provide_file_with_stamper(path, FileStamper::Exists);
    let _: T::Output = context.require_task(task);
    let _: T::Output = context.require_task_with_stamper(task, OutputStamper::Inconsequential);
    let _: Vec<T::Output> = context.require_tasks(std::slice::from_ref(task));
    let _: Vec<T::Output> = context.require_tasks_with_stamper(std::slice::from_ref(task), OutputStamper::Equals);
}

/// Every `Pie`, `Session` and tracker item with the contract's signature.
#[allow(dead_code)]
fn pie_methods<T, A>(pie: &mut Pie<T, T::Output, A>, task: &T)
where
    T: Task + serde::Serialize + serde::de::DeserializeOwned,
    T::Output: serde::Serialize + serde::de::DeserializeOwned,
    A: Tracker<T>,
{
    let _: &A = pie.tracker();
    let _: &mut A = pie.tracker_mut();
    pie.set_threads(0);
    let _: Vec<&T> = pie.roots().collect();
    pie.unobserve(task);
    pie.retain_roots(|_: &T| true);
    let garbage: Garbage = pie.collect_garbage(false);
    let _: (usize, Vec<PathBuf>) = (garbage.removed_tasks, garbage.deleted_files);
    let _: Result<(), SaveError> = pie.save("store");
    let _: usize = pie.run_in_session(|mut session: Session<'_, T, T::Output, A>| {
        let _: T::Output = session.require(task);
        let _: Vec<T::Output> = session.require_all(std::slice::from_ref(task));
        session.update_affected_by([Path::new("a")]);
        session.update_affected_by(vec![PathBuf::from("b")]);
        session.dependency_check_errors().len()
    });
    let session: Session<'_, T, T::Output, A> = pie.new_session();
    let _: &[io::Error] = session.dependency_check_errors();
    drop(session);
}

#[allow(dead_code)]
fn loading<T, A>(tracker: A) -> Result<Pie<T, T::Output, A>, LoadError>
where
    T: Task + serde::Serialize + serde::de::DeserializeOwned,
    T::Output: serde::Serialize + serde::de::DeserializeOwned,
    A: Tracker<T>,
{
    Pie::load(Path::new("store"), tracker)
}

#[allow(dead_code)]
fn trackers<T: Task>(events: &EventTracker<T, T::Output>, task: &T, path: &PathBuf) {
    let _: &[Event<T, T::Output>] = events.slice();
    let _: bool = events.any_execute();
    let _: bool = events.any_execute_of(task);
    let _: bool = events.one_execute_of(task);
    let _ = events.first_require_file(path);
    let _ = events.first_provide_file(path);
    let mut writing: WritingTracker<Vec<u8>> = WritingTracker::new(Vec::new());
    let _: &Vec<u8> = writing.writer();
    let _: &mut Vec<u8> = writing.writer_mut();
    let _: WritingTracker<io::Stdout> = WritingTracker::with_stdout();
    let _: WritingTracker<io::Stderr> = WritingTracker::with_stderr();
    let composite = CompositeTracker(NoopTracker, EventTracker::<T, T::Output>::default());
    let CompositeTracker(_noop, _events) = composite;
}

#[test]
fn the_contract_builds_saves_loads_and_collects_garbage() {
    bounds::<Copy>();
    let dir = Dir::new();
    let inputs: Vec<PathBuf> = (0..4)
        .map(|i| dir.create(format!("in{i}"), "x".repeat(i + 1)))
        .collect();
    let copies: Vec<Copy> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| Copy::File(input.clone(), dir.join(format!("out{i}"))))
        .collect();
    let all = Copy::All(copies.clone());

    let mut pie: Pie<Copy, Result<usize, String>, EventTracker<Copy, Result<usize, String>>> =
        Pie::with_tracker(EventTracker::default());
    pie.set_threads(2);
    assert_eq!(pie.new_session().require(&all), Ok(1 + 2 + 3 + 4));
    assert!(copies.iter().all(|copy| pie.tracker().one_execute_of(copy)));
    assert_eq!(pie.roots().collect::<Vec<_>>(), vec![&all]);

    let store = dir.join("pie.store");
    pie.save(&store).expect("save");
    let mut pie: Pie<Copy, Result<usize, String>, EventTracker<Copy, Result<usize, String>>> =
        Pie::load(&store, EventTracker::default()).expect("load");
    assert_eq!(pie.new_session().require(&all), Ok(10));
    assert!(
        !pie.tracker().any_execute(),
        "nothing changed: nothing executes after a load"
    );

    dev_util::write_until_modified(&inputs[2], "changed").unwrap();
    pie.run_in_session(|mut session| session.update_affected_by([&inputs[2]]));
    let executed: Vec<&Copy> = pie
        .tracker()
        .slice()
        .iter()
        .filter_map(|event| match event {
            Event::ExecuteStart(start) => Some(&start.task),
            _ => None,
        })
        .collect();
    assert_eq!(
        executed,
        vec![&copies[2], &all],
        "bottom-up: the affected copy, then its requirer"
    );
    assert_eq!(std::fs::read_to_string(dir.join("out2")).unwrap(), "changed");

    pie.unobserve(&all);
    let garbage = pie.collect_garbage(true);
    assert_eq!(garbage.removed_tasks, 5);
    assert_eq!(garbage.deleted_files.len(), 4);
    assert!(!dir.join("out0").exists());
}
