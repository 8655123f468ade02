//! Watch mode (cargo feature `watch`): a [`Watcher`] keeps the outputs of some root tasks up to date as the files
//! they depend on change, rebuilding bottom-up in time proportional to the change.
//!
//! It runs a first top-down build of the roots, then waits for file-system events (through `notify` and
//! `notify-debouncer-full`), and for each debounced batch runs one session with
//! [`Session::update_affected_by`](crate::Session::update_affected_by) and hands the roots' outputs to the caller
//! as a [`Build`]. What is watched and why is described in `watch/folders.rs`; the invariants this module keeps:
//!
//! - **Every change after a task's read reaches a later build.** Watches are set up (after each build) for the
//!   folders of every file a live task requires or provides; a file read before its folder's watch existed is
//!   stamped once the watch is in place, in a pass of its own. Events that arrive while a build runs wait in a
//!   channel for the next one.
//! - **pie's own writes are not changes.** A file that a task provided is named by the events of its own write,
//!   but its stamp equals the recorded one, so `update_affected_by` executes nothing for it; a build that executed
//!   nothing is not reported. Reads are not changes either: events that only say a file was opened or read (pie's
//!   own reads among them) start no build.
//! - **Lost events mean a full check.** When the watcher says it lost events (`Rescan`, a queue overflow) or
//!   reports an error, the next build is top-down over the roots, and its [`Build::cause`] says why; after it every
//!   watch is made anew (a folder replaced while its events were lost took its watch with it) and the files it
//!   covers stamped. While a folder cannot be watched at all (the operating system's watch limit), every build is
//!   top-down and one runs every [`WatchConfig::with_poll_interval`] too; the failure is said once, in
//!   [`Build::notices`], and the watch is tried again after every build.

mod folders;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind};
use notify_debouncer_full::DebounceEventResult;

use crate::ids::{FileId, TaskId};
use crate::path::NormalPath;
use crate::tracker::{NoopTracker, Tracker};
use crate::{Pie, Task};
#[cfg(feature = "serde")]
use crate::{SaveError, StoreFile};

use folders::Folders;

/// How a [`Watcher`] waits for changes. Build one from [`WatchConfig::default`] with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use pie::watch::WatchConfig;
///
/// let config = WatchConfig::default().with_debounce(Duration::from_millis(20));
/// assert_eq!(config.debounce(), Duration::from_millis(20));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    debounce: Duration,
    tick: Option<Duration>,
    poll_interval: Duration,
}

impl Default for WatchConfig {
    /// A debounce of 50 ms, a tick of a tenth of it, and a poll interval of 1 s.
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(50),
            tick: None,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl WatchConfig {
    /// How long a file must stay quiet before its change is built (at least 1 ms): the events of one save (an
    /// editor writing a temporary file and renaming it over the original, say) then arrive as one batch.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = pie::watch::WatchConfig::default().with_debounce(Duration::from_millis(100));
    /// assert_eq!(config.debounce(), Duration::from_millis(100));
    /// ```
    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce.max(Duration::from_millis(1));
        self
    }

    /// How often quiet changes are looked for (at most the debounce time; by default a tenth of it, at least
    /// 1 ms). A change is built between `debounce` and `debounce + tick` after its last event.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = pie::watch::WatchConfig::default().with_tick(Duration::from_millis(2));
    /// assert_eq!(config.tick(), Duration::from_millis(2));
    /// ```
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = Some(tick.max(Duration::from_millis(1)));
        self
    }

    /// How often a top-down check runs while some folder cannot be watched (default 1 s): one is due this long after
    /// the last top-down build began, whatever events came meanwhile.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = pie::watch::WatchConfig::default().with_poll_interval(Duration::from_secs(5));
    /// assert_eq!(config.poll_interval(), Duration::from_secs(5));
    /// ```
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The debounce time (see [`with_debounce`](Self::with_debounce)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(pie::watch::WatchConfig::default().debounce(), Duration::from_millis(50));
    /// ```
    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    /// The tick (see [`with_tick`](Self::with_tick)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(pie::watch::WatchConfig::default().tick(), Duration::from_millis(5));
    /// ```
    pub fn tick(&self) -> Duration {
        self.tick
            .unwrap_or(self.debounce / 10)
            .clamp(Duration::from_millis(1), self.debounce)
    }

    /// The poll interval (see [`with_poll_interval`](Self::with_poll_interval)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(pie::watch::WatchConfig::default().poll_interval(), Duration::from_secs(1));
    /// ```
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }
}

/// Why a [`Build`] ran. Its `Display` form is short enough for a header line.
///
/// ```
/// use pie::watch::BuildCause;
/// assert_eq!(BuildCause::Changes.to_string(), "changes");
/// assert_eq!(BuildCause::FullCheck("events lost".into()).to_string(), "full check (events lost)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildCause {
    /// The first build of [`Watcher::run`], top-down.
    Initial,
    /// Files changed: a bottom-up build of what they affect.
    Changes,
    /// Changes may have gone unseen, so every root was checked top-down; the string says why.
    FullCheck(String),
}

impl fmt::Display for BuildCause {
    /// `first build`, `changes`, or `full check (REASON)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildCause::Initial => write!(f, "first build"),
            BuildCause::Changes => write!(f, "changes"),
            BuildCause::FullCheck(reason) => write!(f, "full check ({reason})"),
        }
    }
}

/// One build of a [`Watcher`], handed to the callback of [`Watcher::run`]: the roots' outputs and what led to
/// them. Builds that executed nothing (say, the events of files that pie's own tasks wrote) are not handed over,
/// except the first.
///
/// ```
/// use std::ops::ControlFlow;
/// use pie::watch::{BuildCause, WatchConfig, Watcher};
/// use pie::tracker::event::EventTracker;
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Two;
/// # impl pie::Task for Two { type Output = u32; fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> u32 { 2 } }
///
/// let pie = pie::Pie::with_tracker(EventTracker::default());
/// let mut watcher = Watcher::new(pie, vec![Two], WatchConfig::default());
/// watcher.run(|build| {
///     assert_eq!((build.number(), build.cause()), (1, &BuildCause::Initial));
///     assert!(build.changed().is_empty() && build.notices().is_empty());
///     assert_eq!(build.roots(), &[Two]);
///     assert_eq!((build.outputs(), build.output(&Two)), (&[2][..], Some(&2)));
///     assert_eq!(build.executed().collect::<Vec<_>>(), vec![&Two]);
///     assert!(build.pie().tracker().one_execute_of(&Two));
///     println!("built in {:?}", build.duration());
///     ControlFlow::Break(())
/// })?;
/// # Ok::<(), pie::watch::WatchError>(())
/// ```
pub struct Build<'a, T: Task, A> {
    number: u64,
    cause: &'a BuildCause,
    changed: &'a [PathBuf],
    roots: &'a [T],
    outputs: &'a [T::Output],
    executed: &'a [TaskId],
    notices: &'a [String],
    duration: Duration,
    pie: &'a Pie<T, T::Output, A>,
}

impl<'a, T: Task, A> Build<'a, T, A> {
    /// The number of this build in the run: 1 for the first, then counting the builds handed over.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Why it ran.
    pub fn cause(&self) -> &'a BuildCause {
        self.cause
    }

    /// The changed paths that the build looked at, sorted: files that tasks depend on, and watched folders that
    /// were removed, replaced or made (whose files were then all checked). Empty for the first build.
    pub fn changed(&self) -> &'a [PathBuf] {
        self.changed
    }

    /// The roots, as given to [`Watcher::new`].
    pub fn roots(&self) -> &'a [T] {
        self.roots
    }

    /// The roots' up-to-date outputs, in the order of [`roots`](Self::roots).
    pub fn outputs(&self) -> &'a [T::Output] {
        self.outputs
    }

    /// The up-to-date output of `root`, if it is one of the roots.
    pub fn output(&self, root: &T) -> Option<&'a T::Output> {
        let index = self.roots.iter().position(|r| r == root)?;
        self.outputs.get(index)
    }

    /// The tasks this build executed, in the order they started.
    pub fn executed(&self) -> impl ExactSizeIterator<Item = &'a T> + 'a {
        let store = &self.pie.store;
        self.executed.iter().map(move |id| store.task(*id))
    }

    /// Messages about folders that cannot be watched, each said once (in the first build after it happened).
    pub fn notices(&self) -> &'a [String] {
        self.notices
    }

    /// How long the build took (the session, not the wait for events).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The `Pie`, for its tracker.
    pub fn pie(&self) -> &'a Pie<T, T::Output, A> {
        self.pie
    }
}

impl<T: Task, A> fmt::Debug for Build<'_, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Build")
            .field("number", &self.number)
            .field("cause", &self.cause)
            .field("changed", &self.changed)
            .field("outputs", &self.outputs)
            .field("executed", &self.executed().collect::<Vec<_>>())
            .field("notices", &self.notices)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// Why a [`Watcher`] stopped with an error. Every message says what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The operating system's file watcher could not be started (on Linux: too many inotify instances).
    #[error("cannot start watching files: {0}")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store could not be saved when the watcher stopped.
    #[cfg(feature = "serde")]
    #[error(transparent)]
    Save(#[from] SaveError),
}

/// A message to the watch loop.
enum Message {
    Events(DebounceEventResult),
    /// Look at the stop flag.
    Wake,
}

/// Stops a running [`Watcher`] from another thread (a Ctrl-C handler, say). Cheap to clone.
///
/// ```
/// # use pie::watch::{WatchConfig, Watcher};
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Two;
/// # impl pie::Task for Two { type Output = u32; fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> u32 { 2 } }
/// let mut watcher = Watcher::new(pie::Pie::default(), vec![Two], WatchConfig::default());
/// let stop = watcher.stop_handle();
/// // Asked before `run`: it returns at once, without building.
/// stop.stop();
/// let mut builds = 0;
/// watcher.run(|_| { builds += 1; std::ops::ControlFlow::Continue(()) })?;
/// assert_eq!(builds, 0);
/// # Ok::<(), pie::watch::WatchError>(())
/// ```
#[derive(Clone, Debug)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
    sender: Sender<Message>,
}

impl StopHandle {
    /// Asks the watcher to stop: [`Watcher::run`] returns (after saving the store, if it has one) once the build in
    /// progress, if any, is done.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // The loop may be gone already; then there is nobody to wake.
        let _ = self.sender.send(Message::Wake);
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Events(_) => write!(f, "Events"),
            Message::Wake => write!(f, "Wake"),
        }
    }
}

/// Saves a `Pie` through a store file; instantiated where the task types are serialisable.
#[cfg(feature = "serde")]
type SaveFn<T, A> = fn(&StoreFile, &Pie<T, <T as Task>::Output, A>) -> Result<(), SaveError>;

/// Keeps the outputs of some root tasks up to date as files change: see the [module documentation](self).
///
/// ```
/// use std::io::Read;
/// use std::ops::ControlFlow;
/// use std::path::PathBuf;
/// use pie::watch::{BuildCause, WatchConfig, Watcher};
/// use pie::{Context, Pie, Task};
///
/// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
/// struct ReadFile(PathBuf);
/// impl Task for ReadFile {
///     type Output = String;
///     fn execute<C: Context<Self>>(&self, context: &mut C) -> String {
///         let mut text = String::new();
///         if let Ok(Some(mut file)) = context.require_file(&self.0) {
///             let _ = file.read_to_string(&mut text);
///         }
///         text
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("in.txt");
/// std::fs::write(&path, "one")?;
/// let task = ReadFile(path.clone());
/// let mut watcher = Watcher::new(Pie::default(), vec![task.clone()], WatchConfig::default());
/// let mut seen = Vec::new();
/// watcher.run(|build| {
///     seen.push(build.outputs()[0].clone());
///     if *build.cause() == BuildCause::Initial {
///         // An editor saves the file: the watcher builds again.
///         std::fs::write(&path, "two").unwrap();
///         return ControlFlow::Continue(());
///     }
///     if build.output(&task).is_some_and(|text| text == "two") {
///         ControlFlow::Break(())
///     } else {
///         ControlFlow::Continue(())
///     }
/// })?;
/// assert_eq!(seen.first().map(String::as_str), Some("one"));
/// assert_eq!(seen.last().map(String::as_str), Some("two"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Watcher<T: Task, A: Tracker<T> = NoopTracker> {
    pie: Pie<T, T::Output, A>,
    roots: Vec<T>,
    config: WatchConfig,
    stop: Arc<AtomicBool>,
    sender: Sender<Message>,
    receiver: Receiver<Message>,
    #[cfg(feature = "serde")]
    store: Option<(StoreFile, SaveFn<T, A>)>,
    /// Testing only: paths whose watch fails (see `Folders::refuse`).
    #[cfg(test)]
    refuse: folders::Refuse,
}

impl<T: Task, A: Tracker<T>> fmt::Debug for Watcher<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("roots", &self.roots)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
impl<T, A> Watcher<T, A>
where
    T: Task + serde::Serialize + serde::de::DeserializeOwned,
    T::Output: serde::Serialize + serde::de::DeserializeOwned,
    A: Tracker<T>,
{
    /// Saves the `Pie` through `store` when [`run`](Self::run) stops (on a [`StopHandle`] or when the callback
    /// breaks), holding the store's lock meanwhile. Typically `store` is the one the `Pie` was loaded from.
    ///
    /// ```
    /// # use pie::watch::{WatchConfig, Watcher};
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)] struct Two;
    /// # impl pie::Task for Two { type Output = u32; fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> u32 { 2 } }
    /// let dir = tempfile::tempdir()?;
    /// let store = pie::StoreFile::open(dir.path().join("pie.store"))?;
    /// let pie = store.load(pie::tracker::NoopTracker)?;
    /// let mut watcher = Watcher::new(pie, vec![Two], WatchConfig::default()).save_on_stop(store);
    /// watcher.run(|_| std::ops::ControlFlow::Break(()))?;
    /// assert!(dir.path().join("pie.store").is_file());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_on_stop(mut self, store: StoreFile) -> Self {
        self.store = Some((store, |store, pie| store.save(pie)));
        self
    }

    /// The `Pie` and the store file given to [`save_on_stop`](Self::save_on_stop), if any.
    ///
    /// ```
    /// # use pie::watch::{WatchConfig, Watcher};
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)] struct Two;
    /// # impl pie::Task for Two { type Output = u32; fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> u32 { 2 } }
    /// let watcher = Watcher::new(pie::Pie::default(), vec![Two], WatchConfig::default());
    /// let (pie, store) = watcher.into_parts();
    /// assert!(store.is_none());
    /// assert_eq!(pie.task_count(), 0);
    /// ```
    pub fn into_parts(self) -> (Pie<T, T::Output, A>, Option<StoreFile>) {
        (self.pie, self.store.map(|(store, _)| store))
    }
}

impl<T: Task, A: Tracker<T>> Watcher<T, A> {
    /// A watcher that keeps `roots` up to date in `pie` (a new one, or one loaded from a store). Nothing happens
    /// until [`run`](Self::run).
    ///
    /// Every live task of `pie` is kept up to date, not only `roots` (a bottom-up build brings every live task up to
    /// date); call [`Pie::retain_roots`] first to drop roots of an earlier build script.
    ///
    /// ```
    /// # use pie::watch::{WatchConfig, Watcher};
    /// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Two;
    /// # impl pie::Task for Two { type Output = u32; fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> u32 { 2 } }
    /// let watcher = Watcher::new(pie::Pie::default(), vec![Two], WatchConfig::default());
    /// assert_eq!(watcher.roots(), &[Two]);
    /// ```
    pub fn new(pie: Pie<T, T::Output, A>, roots: Vec<T>, config: WatchConfig) -> Self {
        let (sender, receiver) = mpsc::channel();
        Self {
            pie,
            roots,
            config,
            stop: Arc::new(AtomicBool::new(false)),
            sender,
            receiver,
            #[cfg(feature = "serde")]
            store: None,
            #[cfg(test)]
            refuse: folders::Refuse::default(),
        }
    }

    /// The roots.
    pub fn roots(&self) -> &[T] {
        &self.roots
    }

    /// The `Pie` (between runs, or after one).
    pub fn pie(&self) -> &Pie<T, T::Output, A> {
        &self.pie
    }

    /// The `Pie`, mutably (between runs).
    pub fn pie_mut(&mut self) -> &mut Pie<T, T::Output, A> {
        &mut self.pie
    }

    /// The `Pie`, giving up the watcher.
    pub fn into_pie(self) -> Pie<T, T::Output, A> {
        self.pie
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: self.stop.clone(),
            sender: self.sender.clone(),
        }
    }

    /// Builds the roots top-down, then rebuilds after every batch of changes until stopped, calling `on_build`
    /// after every build that executed something (and after the first) with the roots' outputs. Returns when
    /// `on_build` breaks or a [`StopHandle`] asks, after saving the store if
    /// [`save_on_stop`](Self::save_on_stop) gave one. A stop asked before `run` returns at once, without building;
    /// either way the stop request is used up, so `run` may be called again.
    ///
    /// # Errors
    /// [`WatchError::Start`] when the file watcher cannot be started; [`WatchError::Save`] when the store
    /// cannot be saved.
    ///
    /// # Panics
    /// When a task panics or the build script is unsound, as [`Session::require`](crate::Session::require) does.
    /// The `Pie` stays usable, and `run` may be called again.
    pub fn run(&mut self, mut on_build: impl FnMut(&Build<'_, T, A>) -> ControlFlow<()>) -> Result<(), WatchError> {
        // Wake-ups of earlier runs are stale; a stop asked since is still in the flag.
        while self.receiver.try_recv().is_ok() {}
        let result = if self.stop.load(Ordering::SeqCst) {
            Ok(())
        } else {
            self.watch(&mut on_build)
        };
        self.stop.store(false, Ordering::SeqCst);
        result?;
        self.save()
    }

    #[cfg(feature = "serde")]
    fn save(&self) -> Result<(), WatchError> {
        if let Some((store, save)) = &self.store {
            save(store, &self.pie)?;
        }
        Ok(())
    }

    #[cfg(not(feature = "serde"))]
    fn save(&self) -> Result<(), WatchError> {
        Ok(())
    }

    fn watch(&mut self, on_build: &mut impl FnMut(&Build<'_, T, A>) -> ControlFlow<()>) -> Result<(), WatchError> {
        let sender = self.sender.clone();
        let mut watcher = folders::start_watcher(self.config.debounce, Some(self.config.tick()), move |result| {
            // The loop is gone only when `run` returned; nothing to do with late events then.
            let _ = sender.send(Message::Events(result));
        })
        .map_err(|e| WatchError::Start(Box::new(e)))?;
        let mut folders = Folders::default();
        #[cfg(test)]
        {
            folders.refuse = self.refuse.clone();
        }
        if self.pie.task_count() > 0 {
            // A loaded store: watch what it depends on before the first build, which then stamps every file anew.
            folders.sync(&self.pie.store, &mut watcher, &[], true);
        }
        let mut number = 0;
        let mut cause = BuildCause::Initial;
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut files: Vec<FileId> = Vec::new();
        // Whether the build says something the caller must hear even when it executed nothing (lost events).
        let mut announce = false;
        // When the last top-down build started: while degraded, the next one is due a poll interval later.
        let mut last_full = Instant::now();
        loop {
            let top_down = cause != BuildCause::Changes;
            let start = Instant::now();
            if top_down {
                last_full = start;
            }
            let (mut outputs, mut executed) = self.build(top_down, &files);
            let mut sync = folders.sync(&self.pie.store, &mut watcher, &executed, top_down);
            let mut notices = std::mem::take(&mut sync.notices);
            // Files whose folders were watched only now may have changed since they were read: stamp them before
            // handing the build over, so that what it reports was seen with the watches in place. A folder replaced
            // again and again could keep this going; after a few rounds the rest waits for the next build.
            let mut rounds = 0;
            while !sync.pending.is_empty() && rounds < 4 {
                rounds += 1;
                let (more_outputs, more_executed) = self.build(false, &sync.pending);
                outputs = more_outputs;
                sync = folders.sync(&self.pie.store, &mut watcher, &more_executed, false);
                notices.append(&mut sync.notices);
                executed.extend(more_executed);
            }
            let duration = start.elapsed();
            // Periodic checks while degraded are reported only when they found something.
            let report = !executed.is_empty() || !notices.is_empty() || cause == BuildCause::Initial || announce;
            if report {
                number += 1;
                let build = Build {
                    number,
                    cause: &cause,
                    changed: &changed,
                    roots: &self.roots,
                    outputs: &outputs,
                    executed: &executed,
                    notices: &notices,
                    duration,
                    pie: &self.pie,
                };
                if on_build(&build).is_break() {
                    return Ok(());
                }
            }
            files = sync.pending;
            // Wait for the next batch, unless files are still pending.
            let wait = if !files.is_empty() {
                Wait::No
            } else if let Some(poll) = last_full
                .checked_add(self.config.poll_interval)
                .filter(|_| folders.degraded())
            {
                Wait::Until(poll)
            } else {
                Wait::Block
            };
            let batch = loop {
                let Some(batch) = self.next_batch(wait) else {
                    return Ok(());
                };
                // Events that name nothing (only reads, which are not changes) are no reason to build: while
                // degraded, each build is top-down and reads every hashed file again, and its own reads would
                // start the next build, and so on forever.
                let due = match wait {
                    Wait::No => true,
                    Wait::Until(poll) => Instant::now() >= poll,
                    Wait::Block => false,
                };
                if due || !batch.paths.is_empty() || batch.lost.is_some() {
                    break batch;
                }
            };
            changed.clear();
            for (path, structural) in &batch.paths {
                folders.note_event_path(path, *structural);
                // Paths that no task depends on are left out: the bottom-up build would ignore them anyway.
                let file = NormalPath::new(path).ok().and_then(|p| self.pie.store.find_file(&p));
                files.extend(file);
                if file.is_some() || folders.is_folder(path) {
                    changed.push(path.clone());
                }
            }
            changed.sort_unstable();
            changed.dedup();
            if batch.lost.is_some() {
                folders.events_lost();
            }
            announce = batch.lost.is_some();
            cause = if let Some(reason) = batch.lost {
                BuildCause::FullCheck(reason)
            } else if folders.degraded() {
                BuildCause::FullCheck("some folders cannot be watched".to_string())
            } else {
                BuildCause::Changes
            };
        }
    }

    /// One session: top-down over the roots, or bottom-up from `changed` (files by id), then the roots' outputs.
    fn build(&mut self, top_down: bool, files: &[FileId]) -> (Vec<T::Output>, Vec<TaskId>) {
        let paths: Vec<PathBuf> = if top_down {
            Vec::new()
        } else {
            files
                .iter()
                .map(|f| self.pie.store.file_path(*f).to_path_buf())
                .collect()
        };
        let mut session = self.pie.new_session();
        session.record_executions();
        if !top_down {
            session.update_affected_by(&paths);
        }
        // After a bottom-up build every live task is up to date: requiring a root returns its output at once.
        let outputs = session.require_all(&self.roots);
        let executed = session.take_executed();
        (outputs, executed)
    }

    /// Waits for messages and gathers everything that arrived into one batch; `None` when asked to stop.
    fn next_batch(&mut self, wait: Wait) -> Option<Batch> {
        let mut batch = Batch::default();
        let first = match wait {
            Wait::Block => self.receiver.recv().ok(),
            Wait::Until(deadline) => match self
                .receiver
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return None,
            },
            Wait::No => None,
        };
        let mut message = first;
        loop {
            match message {
                Some(Message::Events(Ok(events))) => {
                    for event in events {
                        if event.need_rescan() {
                            batch.lost = Some("the file watcher lost events".to_string());
                        }
                        // Opening, reading and closing a file change nothing (tasks' own reads are events too).
                        if matches!(event.kind, EventKind::Access(_)) {
                            continue;
                        }
                        let structural = matches!(
                            event.kind,
                            EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                        );
                        batch
                            .paths
                            .extend(event.event.paths.into_iter().map(|path| (path, structural)));
                    }
                }
                Some(Message::Events(Err(errors))) => {
                    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    batch.lost = Some(format!("the file watcher failed: {}", errors.join("; ")));
                }
                Some(Message::Wake) | None => {}
            }
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            message = match self.receiver.try_recv() {
                Ok(message) => Some(message),
                Err(TryRecvError::Empty) => return Some(batch),
                Err(TryRecvError::Disconnected) => return None,
            };
        }
    }
}

/// How to wait for the next batch.
#[derive(Copy, Clone, Debug)]
enum Wait {
    Block,
    /// Until a message, or this time (the next poll).
    Until(Instant),
    No,
}

/// Events gathered for one build.
#[derive(Default, Debug)]
struct Batch {
    /// Paths named by events, each with whether its event made, removed or renamed it.
    paths: Vec<(PathBuf, bool)>,
    /// Why events may have been lost, if they may have.
    lost: Option<String>,
}
