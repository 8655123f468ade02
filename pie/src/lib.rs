//! pie: a programmatic incremental build system.
//!
//! Build scripts are ordinary Rust. A [`Task`] is a value that, when executed through a [`Context`], requires
//! other tasks and reads ([`Context::require_file`]) or writes ([`Context::provide_file`]) files. A [`Pie`] caches
//! every task's output and dependencies; within a [`Session`], requiring a task re-executes only what a change
//! actually affects. Unsound build scripts (two tasks writing one file, reading a file without depending on the
//! task that writes it, a cycle) are refused with a panic that names the file and the tasks.
//!
//! ```
//! use std::io::{self, Read};
//! use std::path::PathBuf;
//! use pie::{Context, Pie, Task};
//! use pie::tracker::event::EventTracker;
//!
//! /// Reads a file to a string.
//! #[derive(Clone, PartialEq, Eq, Hash, Debug)]
//! struct ReadFile(PathBuf);
//!
//! impl Task for ReadFile {
//!     type Output = Result<String, io::ErrorKind>;
//!     fn execute<C: Context<Self>>(&self, context: &mut C) -> Self::Output {
//!         let mut text = String::new();
//!         if let Some(mut file) = context.require_file(&self.0).map_err(|e| e.kind())? {
//!             file.read_to_string(&mut text).map_err(|e| e.kind())?;
//!         }
//!         Ok(text)
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("in.txt");
//! std::fs::write(&path, "hello")?;
//! let task = ReadFile(path.clone());
//!
//! let mut pie = Pie::with_tracker(EventTracker::default());
//! assert_eq!(pie.new_session().require(&task), Ok("hello".to_string()));
//! assert!(pie.tracker().one_execute_of(&task));
//! // Nothing changed: nothing executes.
//! pie.new_session().require(&task);
//! assert!(!pie.tracker().any_execute());
//! # Ok::<(), io::Error>(())
//! ```
//!
//! Modules: [`stamp`] (fingerprints of files and outputs), [`dependency`] (what trackers are shown of recorded
//! dependencies), [`context`] (the algorithms that execute tasks), [`tracker`] (observers of a build). The store
//! (the dependency graph) is internal.
//!
//! With the `serde` cargo feature (on by default), [`Pie::load`] and [`Pie::save`] keep the dependency graph and
//! cached outputs in a file between processes, so that a build tool's next run executes only what changed.
//!
//! With the `watch` cargo feature (off by default), `pie::watch` keeps root tasks up to date as the files they
//! depend on change: a file watcher feeds bottom-up builds.
//!
//! # Limitations
//!
//! - **Paths are compared lexically.** A path is made absolute against the current directory and its `.` and `..`
//!   components are removed without asking the file system, so `dir/link/../f` is `dir/f` even when `link` is a
//!   symbolic link to a folder elsewhere (where the operating system would find another `f`), and a file reached
//!   through a symbolic link to a folder is another path than the same file reached directly: dependencies,
//!   overlapping-file and hidden-dependency checks do not see through links. Spell each file one way.
//! - **[`FileStamper::Modified`] cannot see a change that keeps the modification time**: two writes within one
//!   tick of the file system's clock (up to two seconds on FAT, a few milliseconds on Linux's usual file systems),
//!   or a file replaced by a copy that keeps its time. The task that read the first version then does not execute
//!   again. Use [`FileStamper::Hash`] for files that may change that quickly or that way.

#![warn(missing_docs)]

use std::fmt::Debug;
use std::fs::File;
use std::hash::Hash;
use std::io;
use std::path::Path;

pub mod context;
pub mod dependency;
mod gc;
mod ids;
mod intern;
mod liveness;
mod path;
#[cfg(feature = "serde")]
mod persist;
#[cfg(feature = "remote-cache")]
pub mod remote;
mod session;
pub mod stamp;
mod store;
#[cfg(feature = "serde")]
mod store_file;
pub mod tracker;
#[cfg(feature = "watch")]
pub mod watch;

pub use gc::Garbage;
#[cfg(feature = "serde")]
pub use persist::{LoadError, SaveError};
pub use session::Session;
#[cfg(feature = "serde")]
pub use store_file::{LockError, StoreFile};

use crate::context::marks::Marks;
use crate::stamp::{FileStamper, OutputStamper};
use crate::store::Store;
use crate::tracker::{NoopTracker, Tracker};

/// A unit of computation: a value that is executed through a [`Context`] and produces an output.
///
/// Tasks are keys: two equal tasks are the same task, so a task must contain everything that determines what it
/// does (paths, options), and `execute` must be deterministic given the task, the files it requires and the
/// outputs of the tasks it requires.
///
/// Tasks and outputs are `Send + Sync + 'static` because a [`Pie`] may execute tasks on several threads
/// ([`Pie::set_threads`]) and keeps both in its store, shared by those threads, beyond any borrow.
pub trait Task: Clone + Eq + Hash + Debug + Send + Sync + 'static {
    /// The output. It is cached and compared (`Eq`) to decide whether dependents must execute again.
    type Output: Clone + Eq + Debug + Send + Sync + 'static;
    /// Executes the task, recording dependencies through `context`.
    fn execute<C: Context<Self>>(&self, context: &mut C) -> Self::Output;

    /// Whether a shared cache (`Pie::set_remote_cache`, feature `remote-cache`) may store and restore this
    /// task's results; `true` unless overridden. Return `false` for a task that is not deterministic (its output
    /// and files are not a function of its value and dependencies) or that is cheaper to execute than to fetch.
    ///
    /// ```
    /// # use pie::{Context, Task};
    /// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    /// struct Now;
    /// impl Task for Now {
    ///     type Output = u64;
    ///     fn execute<C: Context<Self>>(&self, _: &mut C) -> u64 {
    ///         std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    ///     }
    ///     fn remote_cacheable(&self) -> bool {
    ///         false
    ///     }
    /// }
    /// assert!(!Now.remote_cacheable());
    /// ```
    fn remote_cacheable(&self) -> bool {
        true
    }
}

/// What a task uses to require files and other tasks while it executes.
pub trait Context<T: Task> {
    /// Requires the file at `path` with the [`FileStamper::Modified`] stamper; call it just before reading.
    ///
    /// `Ok(Some(file))` for an existing regular file, open at its start, `Ok(None)` when nothing (or a directory) is
    /// at the path; the dependency is recorded either way. The recorded stamp is taken from the same open as the
    /// file, so it describes the file the task reads even if the path is replaced meanwhile. An I/O error (say,
    /// permission denied) is returned and the dependency is recorded as never consistent, so the task executes again
    /// in the next session. A path that names no file
    /// (the empty path, which cannot be made absolute) is an `InvalidInput` error and records nothing: requiring it
    /// again gives the same error.
    ///
    /// # Panics
    /// `Hidden dependency` when another task provides the file and the executing task does not (transitively)
    /// require that task.
    fn require_file<P: AsRef<Path>>(&mut self, path: P) -> io::Result<Option<File>>;
    /// [`require_file`](Context::require_file) with a chosen stamper.
    fn require_file_with_stamper<P: AsRef<Path>>(&mut self, path: P, stamper: FileStamper) -> io::Result<Option<File>>;
    /// Records that the executing task wrote the file at `path`, with the [`FileStamper::Modified`] stamper; call it
    /// just after writing, so that the stamp covers what was written.
    ///
    /// # Panics
    /// `Overlapping provided file` when another task provides the file, or this execution already did;
    /// `Hidden dependency` when another task requires the file without (transitively) requiring the executing
    /// task, or when the executing task required the file earlier in this execution (an in-place edit).
    fn provide_file<P: AsRef<Path>>(&mut self, path: P) -> io::Result<()>;
    /// [`provide_file`](Context::provide_file) with a chosen stamper.
    fn provide_file_with_stamper<P: AsRef<Path>>(&mut self, path: P, stamper: FileStamper) -> io::Result<()>;
    /// Requires `task` with the [`OutputStamper::Equals`] stamper and returns its up-to-date output.
    ///
    /// # Panics
    /// `Cyclic task dependency` when `task` is (transitively) requiring the executing task; and with the panic of
    /// `task` (or of a task it requires), with its original payload, when it panics. A task may catch that panic
    /// (`std::panic::catch_unwind` around this call) and go on: its result is then what a clean build gives. It
    /// depends on the failure, and stays consistent while the failing task would panic again the same way (nothing
    /// it depended on before panicking changed); after catching a soundness violation (which depends on other
    /// tasks) it executes again in every session.
    fn require_task(&mut self, task: &T) -> T::Output;
    /// [`require_task`](Context::require_task) with a chosen stamper.
    fn require_task_with_stamper(&mut self, task: &T, stamper: OutputStamper) -> T::Output;
    /// Requires every task of `tasks` with the [`OutputStamper::Equals`] stamper and returns their outputs in the
    /// order of `tasks`. The executing task depends on each of them, as if required one by one in that order.
    ///
    /// The tasks are made consistent in parallel where the [`Pie`] has threads to spare ([`Pie::set_threads`]);
    /// with one thread they are required one by one. Outputs, files and soundness verdicts are the same either way.
    /// The calling thread checks the tasks in order until one of them (or a task below one) must execute; only
    /// then do other threads take the remaining tasks, so a call whose tasks are all consistent costs what it costs
    /// on one thread.
    ///
    /// ```
    /// use pie::{Context, Pie, Task};
    ///
    /// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    /// enum Sum {
    ///     Square(u64),
    ///     All(u64),
    /// }
    /// impl Task for Sum {
    ///     type Output = u64;
    ///     fn execute<C: Context<Self>>(&self, context: &mut C) -> u64 {
    ///         match self {
    ///             Sum::Square(n) => n * n,
    ///             // The squares may be computed on several threads; the outputs come in order.
    ///             Sum::All(n) => context.require_tasks(&(1..=*n).map(Sum::Square).collect::<Vec<_>>()).iter().sum(),
    ///         }
    ///     }
    /// }
    ///
    /// let mut pie = Pie::default();
    /// pie.set_threads(2);
    /// assert_eq!(pie.new_session().require(&Sum::All(3)), 1 + 4 + 9);
    /// ```
    ///
    /// # Panics
    /// As [`require_task`](Context::require_task), for any of the tasks. Every task is required even when one
    /// panics; then the first panic, in the order of `tasks`, goes on, with its original payload.
    fn require_tasks(&mut self, tasks: &[T]) -> Vec<T::Output> {
        self.require_tasks_with_stamper(tasks, OutputStamper::Equals)
    }
    /// [`require_tasks`](Context::require_tasks) with a chosen stamper for every task.
    fn require_tasks_with_stamper(&mut self, tasks: &[T], stamper: OutputStamper) -> Vec<T::Output> {
        tasks
            .iter()
            .map(|task| self.require_task_with_stamper(task, stamper))
            .collect()
    }
}

/// The incremental build system: the dependency graph with cached outputs, and a tracker observing builds.
///
/// `O` is always `T::Output`; `A` is the [`Tracker`].
pub struct Pie<T, O, A = NoopTracker> {
    store: Store<T, O>,
    tracker: A,
    marks: Marks,
    threads: usize,
    /// The shared cache, if one is configured (`Pie::set_remote_cache`, feature `remote-cache`).
    remote: Option<std::sync::Arc<dyn context::remote::RemoteHook<T, O>>>,
}

impl<T: Task> Default for Pie<T, T::Output> {
    fn default() -> Self {
        Self::with_tracker(NoopTracker)
    }
}

impl<T: Task, A: Tracker<T>> Pie<T, T::Output, A> {
    /// An empty `Pie` that reports build events to `tracker`.
    pub fn with_tracker(tracker: A) -> Self {
        Self {
            store: Store::default(),
            tracker,
            marks: Marks::default(),
            threads: 0,
            remote: None,
        }
    }

    /// Starts a new build session. File changes made before this call are seen by it.
    pub fn new_session(&mut self) -> Session<'_, T, T::Output, A> {
        Session::new(self)
    }

    /// Runs `f` with a new session and returns its result.
    pub fn run_in_session<R>(&mut self, f: impl FnOnce(Session<'_, T, T::Output, A>) -> R) -> R {
        f(self.new_session())
    }

    /// The tracker.
    pub fn tracker(&self) -> &A {
        &self.tracker
    }

    /// The tracker, mutably.
    pub fn tracker_mut(&mut self) -> &mut A {
        &mut self.tracker
    }

    /// Sets how many tasks may execute at once, the caller's thread included: 0 (the default) means one per
    /// available core, 1 means everything runs on the caller's thread.
    ///
    /// Builds give the same outputs, files and soundness verdicts at every thread count. Parallelism comes from
    /// [`Context::require_tasks`] and [`Session::require_all`]: their tasks are made consistent on worker threads
    /// (started for the outermost such call of a build, and stopped at its end) and on the caller's thread. A task
    /// is never executed by two threads; a cycle through tasks on different threads is a `Cyclic task dependency`
    /// panic, never a deadlock; a panic on a worker reaches the caller with its original payload.
    ///
    /// One thing differs from a build on one thread, and only in a build that breaks a soundness rule: a task of a
    /// later `require_tasks` branch may run ahead of a task of an earlier branch that then meets a violation which
    /// one thread would have shown the later task first (the later task provided a file that the earlier one then
    /// reads, say). The later task then fails with it (at its next call of the [`Context`] if it is still running),
    /// and when the `require_tasks` call joins, what it entered and every task that saw it or what it entered
    /// execute once more, so that they meet its panic (and may catch it) as on one thread.
    ///
    /// The threads take turns at the dependency graph (checking dependencies and recording what a task did hold
    /// one lock; the files a task requires or provides are stamped outside it), and run tasks' own code at the same
    /// time: a build speeds up as far as its tasks compute, read or write outside pie. A top-down check that meets
    /// a long run of required tasks (what a `require_tasks` of many tasks records) has their files stamped on the
    /// other threads while it checks them one by one, so a no-op build of a wide graph is faster too. Bottom-up builds
    /// ([`Session::update_affected_by`]) use the threads as well: the `require_tasks` of the tasks they execute
    /// fork, affected roots are brought up to date together, and so are affected tasks of one `require_tasks` group
    /// when the task that required them is unaffected up to that call. Trackers are called from several threads,
    /// one call at a time (see [`tracker::lane`]).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
    }

    /// The thread count set with [`set_threads`](Self::set_threads) (0: one per available core).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The roots: the tasks passed to [`Session::require`] or [`Session::require_all`] and not since unobserved.
    /// They are saved with the store. The order is unspecified.
    ///
    /// A task is *live* while a root requires it, directly or transitively, or while it has been required in the
    /// session in progress; every other task is *dead*. Dead tasks count neither as providers nor as requirers of
    /// files, and [`collect_garbage`](Self::collect_garbage) removes them.
    pub fn roots(&self) -> impl Iterator<Item = &T> {
        self.store.roots().map(|id| self.store.task(id))
    }

    /// Stops observing `task`: it is no longer a root, so what only it required becomes dead. Does nothing when
    /// `task` is not a root.
    pub fn unobserve(&mut self, task: &T) {
        if let Some(id) = self.store.find_task(task) {
            self.store.set_root(id, false);
        }
    }

    /// Keeps as roots only those for which `keep` returns `true`; the others are unobserved.
    ///
    /// This is how an edited build script keeps using its store: the tasks it no longer requires (say, a task
    /// whose list of inputs changed, while it still writes the same file) stop being roots, so their claims on
    /// files no longer conflict with the tasks that replace them.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::path::PathBuf;
    /// use pie::{Context, Pie, Task};
    ///
    /// /// Concatenates the inputs into the output file.
    /// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    /// struct Concat(Vec<PathBuf>, PathBuf);
    ///
    /// impl Task for Concat {
    ///     type Output = ();
    ///     fn execute<C: Context<Self>>(&self, context: &mut C) {
    ///         let mut text = String::new();
    ///         for input in &self.0 {
    ///             if let Ok(Some(mut file)) = context.require_file(input) {
    ///                 let _ = file.read_to_string(&mut text);
    ///             }
    ///         }
    ///         std::fs::write(&self.1, text).unwrap();
    ///         context.provide_file(&self.1).unwrap();
    ///     }
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let [a, b, c, out] = ["a", "b", "c", "out.txt"].map(|name| dir.path().join(name));
    /// for input in [&a, &b, &c] {
    ///     std::fs::write(input, "x")?;
    /// }
    /// let mut pie = Pie::default();
    /// pie.new_session().require(&Concat(vec![a.clone(), b.clone(), c], out.clone()));
    ///
    /// // The build script is edited: the task that writes `out.txt` now has two inputs. Keep only the roots that
    /// // the edited script still has (here: none of the old ones), then build.
    /// let edited = Concat(vec![a, b], out.clone());
    /// pie.retain_roots(|root| *root == edited);
    /// pie.new_session().require(&edited);
    /// assert_eq!(std::fs::read_to_string(&out)?, "xx");
    ///
    /// // The old task is dead; collecting garbage removes it from the store.
    /// let garbage = pie.collect_garbage(false);
    /// assert_eq!(garbage.removed_tasks, 1);
    /// assert_eq!(pie.roots().collect::<Vec<_>>(), vec![&edited]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn retain_roots(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let roots: Vec<_> = self.store.roots().collect();
        for id in roots {
            if !keep(self.store.task(id)) {
                self.store.set_root(id, false);
            }
        }
    }

    /// Removes every dead task (see [`roots`](Self::roots)) with its output, dependencies and claims on files,
    /// renumbering the store so that it has no holes; a saved store shrinks accordingly. Returns what was removed.
    ///
    /// With `delete_provided_files`, also deletes from disk the files that removed tasks provided and no live task
    /// provides (never a file a live task provides, never a file no task provided); a file that is already gone
    /// is skipped, one that cannot be deleted is listed in [`Garbage::failed_deletions`].
    ///
    /// Between sessions, only roots keep tasks live: call this after [`retain_roots`](Self::retain_roots) or
    /// [`unobserve`](Self::unobserve), typically just before saving the store.
    pub fn collect_garbage(&mut self, delete_provided_files: bool) -> Garbage {
        let garbage = gc::collect(&mut self.store, delete_provided_files);
        if garbage.removed_tasks > 0 {
            // Task ids were renumbered: marks of earlier sessions must not be read against new ids.
            self.marks = Marks::default();
        }
        garbage
    }

    /// The number of tasks in the dependency graph (every task ever required and not since removed).
    pub fn task_count(&self) -> usize {
        self.store.task_count()
    }

    /// Checks the dependency graph's internal invariants (topological order, edge targets), panicking with a
    /// `BUG:` message on a violation. Meant for tests of pie itself; it walks the whole graph.
    pub fn check_invariants(&self) {
        self.store.check_invariants();
    }
}

impl<T, O, A: Debug> Debug for Pie<T, O, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pie")
            .field("tracker", &self.tracker)
            .finish_non_exhaustive()
    }
}

/// Opens the file at `path` for reading: `Ok(None)` when nothing or a directory is there.
pub(crate) fn open_if_file(path: &Path) -> io::Result<Option<File>> {
    Ok(stamp::open_entry(path, |_| ())?.into_file())
}

/// Runs `f` on a stack with at least `RED_ZONE` bytes left, switching to a fresh segment when it is short, so that
/// recursion through deep task graphs never overflows.
#[inline]
pub(crate) fn grow_stack<R>(f: impl FnOnce() -> R) -> R {
    const RED_ZONE: usize = 256 * 1024;
    const SEGMENT: usize = 8 * 1024 * 1024;
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
