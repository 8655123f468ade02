//! The store: pie's dependency graph and cached outputs, and nothing else.
//!
//! Nodes are tasks and files, each interned once (see `crate::intern`) and named by a dense integer id ([`TaskId`],
//! [`FileId`]). Each task owns its dependencies in the order they were made ([`Dep`]); reverse edges (who requires a
//! file, who provides it, who requires a task) are kept lazily: an [`Edge`] names the source task *and the
//! generation of its execution*, and is live only while that task has not executed again. Re-executing a task
//! therefore drops all its edges in O(1) by bumping its generation; stale reverse edges are skipped by every query
//! and compacted before a list would grow.
//!
//! Invariants (checked in release builds too; a violation is a `BUG:` panic):
//! - every live `RequireTask` edge `a → b` has `order(b) < order(a)`: the tasks are kept in a topological order,
//!   dependencies first. New tasks go last; an edge that would break the order moves the requiring task (O(1) when
//!   nothing depends on it yet, which covers every fresh build) or runs the bounded Pearce–Kelly reordering.
//! - a file has at most one live provider.
//! - a task's `version` changes exactly when its stored output changes (or is first stored); a task dependency
//!   records the version it saw, so "output changed since I looked" is one integer comparison.
//!
//! The store never touches the file system and never executes tasks.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use crate::dependency::{Dep, FileDep, Group, PackedDep, TaskDep, FAILED_BIT, UNKNOWN_VERSION};
use crate::ids::{FileId, TaskId};
use crate::intern::{Interner, PathInterner};
use crate::path::NormalPath;
use crate::stamp::{FileStamp, FileStamper};

/// A reverse edge, live while `task` is still in execution generation `generation`.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
struct Edge {
    task: TaskId,
    generation: Generation,
}

/// An execution generation. Never zero, so that an `Option<Edge>` (a file's provider) takes 8 bytes, not 12.
type Generation = NonZeroU32;

const FIRST_GENERATION: Generation = NonZeroU32::MIN;

/// The generation after `generation`, wrapping around (past zero).
fn next_generation(generation: Generation) -> Generation {
    generation.checked_add(1).unwrap_or(FIRST_GENERATION)
}

#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct TaskData<O> {
    /// `None` for a task that never finished executing (new, or its last execution panicked).
    output: Option<O>,
    version: u64,
    /// Not persisted: a loaded store starts every task at the first generation with rebuilt reverse edges.
    #[cfg_attr(feature = "serde", serde(skip, default = "first_generation"))]
    generation: Generation,
    order: u64,
    /// Whether the task is a root: required by a session and not since unobserved. Roots (and what they require,
    /// transitively) are live; see `crate::liveness`.
    root: bool,
    /// Each kept packed (48 bytes, not `Dep`'s 56); [`Store::dep`] unpacks one.
    deps: Vec<PackedDep>,
    /// Not persisted (derived from `deps`); see [`Store::rebuild_after_load`].
    #[cfg_attr(feature = "serde", serde(skip))]
    dependents: EdgeList,
    /// A digest of the sequence of tasks that the last execution required (during an execution: of those required
    /// so far), 0 for none; see [`Store::liveness_changes`]. Derived from `deps`; not persisted.
    #[cfg_attr(feature = "serde", serde(skip))]
    requires: u64,
}

/// The digest of a sequence of required tasks after `id` was appended to a sequence whose digest is `digest`
/// (see `TaskData::requires`). Never 0, the digest of the empty sequence.
#[inline]
fn requires_digest(digest: u64, id: TaskId) -> u64 {
    ((digest.rotate_left(26) ^ u64::from(id.0)).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

/// What [`Store::start_execution`] hands to [`Store::finish_execution`] or [`Store::fail_execution`]: the output
/// of the previous execution, and the digest of what it required.
pub(crate) struct Started<O> {
    output: Option<O>,
    requires: u64,
}

#[cfg(feature = "serde")]
fn first_generation() -> Generation {
    FIRST_GENERATION
}

/// Reverse edges of a file. Not persisted (derived from the tasks' `deps`).
#[derive(Clone, Debug, Default)]
struct FileData {
    requirers: EdgeList,
    provider: Option<Edge>,
}

/// A list of reverse edges, 16 bytes inline and without an allocation for the common case of at most one edge
/// (most tasks have one dependent, most files one requirer); two edges (a lattice, a diamond) take one 16-byte
/// allocation, more a boxed `Vec`.
#[derive(Clone, Debug, Default)]
enum EdgeList {
    #[default]
    Empty,
    One(Edge),
    Two(Box<[Edge; 2]>),
    // Boxed so that the enum stays 16 bytes; lists of three or more edges are the rare case.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Edge>>),
}

impl EdgeList {
    #[inline]
    fn as_slice(&self) -> &[Edge] {
        match self {
            EdgeList::Empty => &[],
            EdgeList::One(edge) => std::slice::from_ref(edge),
            EdgeList::Two(edges) => &edges[..],
            EdgeList::Many(edges) => edges,
        }
    }

    /// Appends `edge` unless it is already last; stale entries (`!is_live`) are dropped first when the list would
    /// otherwise grow, so a list holds at most twice its live edges.
    fn push(&mut self, edge: Edge, is_live: impl Fn(Edge) -> bool) {
        match self {
            EdgeList::Empty => *self = EdgeList::One(edge),
            EdgeList::One(first) if *first == edge => {}
            EdgeList::One(first) if !is_live(*first) => *first = edge,
            EdgeList::One(first) => *self = EdgeList::Two(Box::new([*first, edge])),
            EdgeList::Two(edges) if edges[1] == edge => {}
            EdgeList::Two(edges) => match (is_live(edges[0]), is_live(edges[1])) {
                (true, true) => *self = EdgeList::Many(Box::new(vec![edges[0], edges[1], edge])),
                (true, false) => edges[1] = edge,
                (false, true) => {
                    let live = edges[1];
                    **edges = [live, edge];
                }
                (false, false) => *self = EdgeList::One(edge),
            },
            EdgeList::Many(edges) => {
                if edges.last() == Some(&edge) {
                    return;
                }
                if edges.len() == edges.capacity() {
                    edges.retain(|e| is_live(*e));
                }
                edges.push(edge);
            }
        }
    }
}

/// Up to this many dependencies, a task's list grows exactly, one doubling at a time from one (see [`push_dep`]).
const TIGHT_DEPS: usize = 4;

/// Appends `dep`, growing a small list exactly (1, 2, 4, then doubling): most tasks have one or two
/// dependencies, and `Vec`'s first allocation would otherwise hold four.
#[inline]
fn push_dep(deps: &mut Vec<PackedDep>, dep: Dep) {
    if deps.len() == deps.capacity() && deps.len() < TIGHT_DEPS {
        deps.reserve_exact(deps.len().max(1));
    }
    deps.push(dep.into());
}

/// The dependency graph of tasks and files, with each task's cached output.
///
/// With the `serde` feature, the derived serialisation is the payload of the store file (see `crate::persist`):
/// tasks, outputs, versions, orders and dependencies. Reverse edges and generations are derived data and are
/// rebuilt on load. Changing what is serialised changes the file format: bump `persist::FORMAT_VERSION`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize + Hash + Eq, O: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de> + Hash + Eq, O: serde::Deserialize<'de>"
    ))
)]
pub(crate) struct Store<T, O> {
    tasks: Interner<T>,
    task_data: Vec<TaskData<O>>,
    files: PathInterner,
    /// Not persisted (derived from the tasks' `deps`); see [`Store::rebuild_after_load`].
    #[cfg_attr(feature = "serde", serde(skip))]
    file_data: Vec<FileData>,
    next_order: u64,
    next_version: u64,
    /// Whether every live task was consistent with the files as they were at the end of the last session that
    /// built something: that session brought all roots up to date (top-down, or bottom-up) and no panic escaped
    /// it. Bottom-up builds rely on it; without it they first check every root top-down.
    settled: bool,
    /// The lowest position that a reordering gave a task since [`take_reorder_floor`](Self::take_reorder_floor)
    /// (`u64::MAX`: none). Bottom-up builds bound their searches with it: a queued task's position may have
    /// dropped below the one it was queued with. Not persisted.
    #[cfg_attr(feature = "serde", serde(skip, default = "no_floor"))]
    reorder_floor: u64,
    /// The tasks whose `root` flag is set, in no particular order (derived from the flags; not persisted), so that
    /// listing the roots costs their number, not the store's size.
    #[cfg_attr(feature = "serde", serde(skip))]
    roots: Vec<TaskId>,
    /// See [`any_provider`](Self::any_provider). Derived; not persisted.
    #[cfg_attr(feature = "serde", serde(skip))]
    any_provider: bool,
    /// See [`liveness_changes`](Self::liveness_changes). Not persisted: a loaded store starts a new count.
    #[cfg_attr(feature = "serde", serde(skip))]
    liveness_changes: u64,
}

#[cfg(feature = "serde")]
fn no_floor() -> u64 {
    u64::MAX
}

impl<T, O> Default for Store<T, O> {
    fn default() -> Self {
        Self {
            tasks: Interner::default(),
            task_data: Vec::new(),
            files: PathInterner::default(),
            file_data: Vec::new(),
            next_order: 0,
            next_version: 1,
            settled: true,
            reorder_floor: u64::MAX,
            roots: Vec::new(),
            any_provider: false,
            liveness_changes: 0,
        }
    }
}

impl<T, O> Store<T, O> {
    /// See the field `settled`.
    pub(crate) fn is_settled(&self) -> bool {
        self.settled
    }

    /// See the field `settled`.
    pub(crate) fn set_settled(&mut self, settled: bool) {
        self.settled = settled;
    }

    /// The lowest position a reordering gave a task since the last call (`u64::MAX`: none); resets it.
    pub(crate) fn take_reorder_floor(&mut self) -> u64 {
        std::mem::replace(&mut self.reorder_floor, u64::MAX)
    }

    /// The lowest position a reordering gave a task since [`take_reorder_floor`](Self::take_reorder_floor).
    pub(crate) fn reorder_floor(&self) -> u64 {
        self.reorder_floor
    }

    /// The roots, in id order.
    pub(crate) fn roots(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.roots.iter().copied()
    }

    /// Rebuilds the list of roots from the tasks' flags (after loading or renumbering).
    fn rebuild_roots(&mut self) {
        self.roots = (0..self.task_data.len() as u32)
            .map(TaskId)
            .filter(|id| self.task_data[id.index()].root)
            .collect();
    }
}

impl<T: Eq + Hash + Clone + Debug, O: Eq> Store<T, O> {
    /// Number of task nodes.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Number of file nodes.
    #[cfg(any(test, feature = "watch"))]
    pub(crate) fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The id of `task`, creating its node (without output, last in the topological order) when it is new.
    pub(crate) fn get_or_create_task(&mut self, task: &T) -> TaskId {
        self.get_or_create_task_with_room(task, 1)
    }

    /// [`get_or_create_task`](Self::get_or_create_task) for a caller about to create up to `room` tasks: when the
    /// tables must grow for a new task, they grow once for all of them, not a doubling at a time. Each growth
    /// re-hashes every task in the table, which for a wide `require_tasks` of new tasks cost more than interning
    /// them did. An existing task grows nothing.
    pub(crate) fn get_or_create_task_with_room(&mut self, task: &T, room: usize) -> TaskId {
        let (index, inserted) = self.tasks.intern_cloned(task, room);
        if !inserted {
            return TaskId(index);
        }
        if self.task_data.len() == self.task_data.capacity() {
            self.task_data.reserve(room);
        }
        let order = self.take_order();
        self.task_data.push(TaskData {
            output: None,
            version: 0,
            generation: FIRST_GENERATION,
            order,
            root: false,
            deps: Vec::new(),
            dependents: EdgeList::Empty,
            requires: 0,
        });
        TaskId(index)
    }

    /// The ids of `tasks`, in order, creating nodes for the new ones, with room for the rest of them whenever the
    /// tables must grow (see [`get_or_create_task_with_room`](Self::get_or_create_task_with_room)).
    pub(crate) fn get_or_create_tasks(&mut self, tasks: &[T]) -> Vec<TaskId> {
        let count = tasks.len();
        let mut ids = Vec::with_capacity(count);
        for (index, task) in tasks.iter().enumerate() {
            ids.push(self.get_or_create_task_with_room(task, count - index));
        }
        ids
    }

    /// The id of `task`, if it has a node.
    pub(crate) fn find_task(&self, task: &T) -> Option<TaskId> {
        self.tasks.find(task).map(TaskId)
    }

    /// Whether `id` is a root.
    #[inline]
    pub(crate) fn is_root(&self, id: TaskId) -> bool {
        self.data(id).root
    }

    /// Makes `id` a root or not.
    #[inline]
    pub(crate) fn set_root(&mut self, id: TaskId, root: bool) {
        let data = self.data_mut(id);
        if data.root == root {
            return;
        }
        data.root = root;
        if root {
            self.roots.push(id);
        } else {
            self.roots.retain(|r| *r != id);
            self.liveness_changes += 1;
        }
    }

    /// Forgets the last execution of `id` (a dead task whose claim on a file another task now takes): drops its
    /// dependencies, and thereby its claims as a provider and requirer of files, and its output, so that it
    /// executes again if it is ever required.
    pub(crate) fn invalidate(&mut self, id: TaskId) {
        let started = self.start_execution(id);
        self.count_dropped_requires(id, &started);
        self.data_mut(id).version = UNKNOWN_VERSION;
    }

    /// The task of node `id`.
    pub(crate) fn task(&self, id: TaskId) -> &T {
        self.tasks.get(id.0).expect("BUG: task id without a task node")
    }

    /// The id of the file at `path`, creating its node when it is new.
    pub(crate) fn get_or_create_file(&mut self, path: NormalPath<'_>) -> FileId {
        let (index, inserted) = self.files.intern(path.as_path());
        if inserted {
            self.file_data.push(FileData::default());
        }
        FileId(index)
    }

    /// Makes room for `count` more file nodes at once (a parallel build's fork of new tasks, which may read as
    /// many new files: their nodes are made holding the engine, where growing the tables would stop every lane).
    pub(crate) fn reserve_files(&mut self, count: usize) {
        self.files.reserve(count);
        self.file_data.reserve(count);
    }

    /// The id of the file at `path`, if it has a node.
    pub(crate) fn find_file(&self, path: &NormalPath<'_>) -> Option<FileId> {
        self.files.find(path.as_path()).map(FileId)
    }

    /// The position of `id` in the topological order (dependencies first).
    #[inline]
    pub(crate) fn order(&self, id: TaskId) -> u64 {
        self.data(id).order
    }

    /// The normalised path of file node `id`.
    pub(crate) fn file_path(&self, id: FileId) -> &Path {
        self.files.get(id.0).expect("BUG: file id without a file node")
    }

    /// Asks the processor to bring task `id`'s record into its cache, ahead of a use soon after (a parallel build's
    /// lane, before it runs the task of its next branch: that record was last written on another core, or long ago,
    /// and the first use holds the engine). Only a hint: what the program does is the same without it.
    #[inline]
    pub(crate) fn prefetch(&self, id: TaskId) {
        #[cfg(target_arch = "x86_64")]
        if let Some(data) = self.task_data.get(id.index()) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let start = (data as *const TaskData<O>).cast::<i8>();
            // The record spans up to two cache lines. SAFETY: a prefetch reads nothing and never faults.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start);
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(std::mem::size_of::<TaskData<O>>() - 1));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    #[inline]
    fn data(&self, id: TaskId) -> &TaskData<O> {
        &self.task_data[id.index()]
    }

    #[inline]
    fn data_mut(&mut self, id: TaskId) -> &mut TaskData<O> {
        &mut self.task_data[id.index()]
    }

    /// The cached output of `id`, if it ever finished executing.
    #[inline]
    pub(crate) fn output(&self, id: TaskId) -> Option<&O> {
        self.data(id).output.as_ref()
    }

    /// The version of the output of `id`: changes exactly when the output changes.
    #[inline]
    pub(crate) fn version(&self, id: TaskId) -> u64 {
        self.data(id).version
    }

    /// Makes room for `additional` more dependencies of `id` at once: a `require_tasks` of many tasks records one
    /// per task, and growing the list a doubling at a time copies it over and over. Room for a few grows as
    /// `push_dep` grows any list (tight while it is short, [`TIGHT_DEPS`]), so a task that requires tasks two at a
    /// time keeps small lists.
    pub(crate) fn reserve_deps(&mut self, id: TaskId, additional: usize) {
        if additional > TIGHT_DEPS {
            self.data_mut(id).deps.reserve(additional);
        }
    }

    /// Number of dependencies of `id`.
    #[inline]
    pub(crate) fn dep_count(&self, id: TaskId) -> usize {
        self.data(id).deps.len()
    }

    /// Dependency `index` of `id`, in creation order.
    #[inline]
    pub(crate) fn dep(&self, id: TaskId, index: usize) -> Dep {
        self.data(id).deps[index].get()
    }

    /// The dependencies of `id`, in creation order.
    #[inline]
    fn deps(&self, id: TaskId) -> impl Iterator<Item = Dep> + '_ {
        self.data(id).deps.iter().map(|d| d.get())
    }

    /// Starts a new execution of `id`: drops all its dependencies (and thereby its reverse edges) and takes its
    /// output, so that a panicking execution leaves the task without output, never with a stale one.
    pub(crate) fn start_execution(&mut self, id: TaskId) -> Started<O> {
        let data = self.data_mut(id);
        data.generation = next_generation(data.generation);
        data.deps.clear();
        Started {
            output: data.output.take(),
            requires: std::mem::take(&mut data.requires),
        }
    }

    /// A count of the changes since this store was made or loaded that may have made a task dead: a root no longer
    /// a root, an execution (or a forgotten one) that may have dropped a task its previous execution required (its
    /// sequence of required tasks differs, by digest), and garbage collection (which renumbers tasks). While it
    /// stays the same, a task found live stays live (see `crate::context::marks`).
    #[inline]
    pub(crate) fn liveness_changes(&self) -> u64 {
        self.liveness_changes
    }

    /// Counts a liveness change if the execution of `id` that `started` began required tasks before and now
    /// requires a different sequence of tasks (some of the earlier ones may be required no more).
    #[inline]
    fn count_dropped_requires(&mut self, id: TaskId, started: &Started<O>) {
        if started.requires != 0 && self.data(id).requires != started.requires {
            self.liveness_changes += 1;
        }
    }

    /// Records that the execution of `id` panicked (it keeps the dependencies made before the panic, and no
    /// output): a new failure version when executing it again with those dependencies panics again (the panic came
    /// from the task's own code), `UNKNOWN_VERSION` when it may not (a soundness violation, which depends on other
    /// tasks). With `again` (the task already failed in this session, and executed again only because it was
    /// required again), a repeatable failure keeps the failure version it had: it is the same failure.
    pub(crate) fn fail_execution(&mut self, id: TaskId, repeatable: bool, again: bool, started: Started<O>) {
        self.count_dropped_requires(id, &started);
        let kept = self.data(id).version;
        let version = if repeatable && again && kept & FAILED_BIT != 0 {
            kept
        } else if repeatable {
            let version = self.next_version;
            self.next_version += 1;
            version | FAILED_BIT
        } else {
            UNKNOWN_VERSION
        };
        let data = self.data_mut(id);
        data.version = version;
        data.output = None;
    }

    /// Stores the `output` of a finished execution of `id`; bumps the version unless it equals `previous`.
    pub(crate) fn finish_execution(&mut self, id: TaskId, output: O, started: Started<O>) {
        self.count_dropped_requires(id, &started);
        let unchanged = started.output.is_some_and(|p| p == output);
        if !unchanged {
            let version = self.next_version;
            self.next_version += 1;
            self.data_mut(id).version = version;
        }
        self.data_mut(id).output = Some(output);
    }

    #[inline]
    fn is_live(&self, edge: Edge) -> bool {
        self.data(edge.task).generation == edge.generation
    }

    fn edge_from(&self, id: TaskId) -> Edge {
        Edge {
            task: id,
            generation: self.data(id).generation,
        }
    }

    /// Appends `edge` to a reverse-edge list, first dropping stale entries when the list would otherwise grow.
    fn push_reverse(&self, list: &mut EdgeList, edge: Edge) {
        list.push(edge, |e| self.is_live(e));
    }

    /// Records that `id` required a file.
    pub(crate) fn add_require_file(&mut self, id: TaskId, dep: FileDep) {
        let edge = self.edge_from(id);
        let mut list = std::mem::take(&mut self.file_data[dep.file.0 as usize].requirers);
        self.push_reverse(&mut list, edge);
        self.file_data[dep.file.0 as usize].requirers = list;
        push_dep(&mut self.data_mut(id).deps, Dep::RequireFile(dep));
    }

    /// Sets the stamp of file dependency `index` of `id` (on `file`), recorded without one (see
    /// `TopDownContext::require_file_outside_engine`).
    pub(crate) fn set_file_stamp(&mut self, id: TaskId, index: usize, file: FileId, stamp: Option<FileStamp>) {
        let slot = &mut self.data_mut(id).deps[index];
        match slot.get() {
            Dep::RequireFile(mut dep) if dep.file == file => {
                dep.stamp = stamp;
                *slot = Dep::RequireFile(dep).into();
            }
            Dep::ProvideFile(mut dep) if dep.file == file => {
                dep.stamp = stamp;
                *slot = Dep::ProvideFile(dep).into();
            }
            other => panic!("BUG: dependency {index} of task {id:?} is not on file {file:?}: {other:?}"),
        }
    }

    /// Records that `id` provided a file. The caller has checked that no other live provider exists.
    pub(crate) fn add_provide_file(&mut self, id: TaskId, dep: FileDep) {
        let edge = self.edge_from(id);
        let file = &mut self.file_data[dep.file.0 as usize];
        file.provider = Some(edge);
        self.any_provider = true;
        push_dep(&mut self.data_mut(id).deps, Dep::ProvideFile(dep));
    }

    /// Whether any task ever provided a file (since this store was made, loaded or collected): while none did,
    /// no file has a provider, and checks of reads can skip asking for one.
    #[inline]
    pub(crate) fn any_provider(&self) -> bool {
        self.any_provider
    }

    /// Records that `id` required task `dep.task`, keeping the topological order. The caller has ruled out
    /// cycles (the required task finished before this edge is added).
    pub(crate) fn add_require_task(&mut self, id: TaskId, dep: TaskDep) {
        let edge = self.edge_from(id);
        let mut list = std::mem::take(&mut self.data_mut(dep.task).dependents);
        self.push_reverse(&mut list, edge);
        self.data_mut(dep.task).dependents = list;
        let data = self.data_mut(id);
        data.requires = requires_digest(data.requires, dep.task);
        push_dep(&mut data.deps, Dep::RequireTask(dep));
        self.keep_order(id, dep.task);
    }

    /// Marks the task dependencies `start..` of `id` (the tasks of one `require_tasks` call, two or more) as a
    /// group.
    pub(crate) fn mark_group(&mut self, id: TaskId, start: usize) {
        let deps = &mut self.data_mut(id).deps[start..];
        for (index, slot) in deps.iter_mut().enumerate() {
            if let Dep::RequireTask(mut dep) = slot.get() {
                dep.group = if index == 0 { Group::First } else { Group::Member };
                *slot = Dep::RequireTask(dep).into();
            }
        }
    }

    /// Takes back the claim of `id` on `file`, made by the execution of `id` in progress, which will fail (see
    /// `TopDownContext::defer_violation`): another task provides the file in its place.
    pub(crate) fn release_claim(&mut self, id: TaskId, file: FileId) {
        if self.provider(file) == Some(id) {
            self.file_data[file.0 as usize].provider = None;
        }
    }

    /// The task that currently provides `file`, if any.
    pub(crate) fn provider(&self, file: FileId) -> Option<TaskId> {
        self.file_data[file.0 as usize]
            .provider
            .filter(|e| self.is_live(*e))
            .map(|e| e.task)
    }

    /// The tasks that currently require `file` (a task may appear more than once).
    pub(crate) fn requirers(&self, file: FileId) -> impl Iterator<Item = TaskId> + '_ {
        self.file_data[file.0 as usize]
            .requirers
            .as_slice()
            .iter()
            .filter(|e| self.is_live(**e))
            .map(|e| e.task)
    }

    /// Whether `from` requires `to` directly or transitively (or is `to`).
    #[cfg(test)]
    pub(crate) fn depends_on(&self, from: TaskId, to: TaskId) -> bool {
        self.depends_on_before(from, self.dep_count(from), to)
    }

    /// Whether `from` is `to` or requires it, directly or transitively, through one of its first `prefix`
    /// dependencies (the dependencies of the tasks it reaches count whole).
    ///
    /// A reader depends on the provider of a file only through what it required *before* reading the file:
    /// requiring the provider afterwards does not make the read sound, as a clean build would have refused it.
    ///
    /// Scans the prefix for `to` first (the common case: the reader required the provider directly), then searches
    /// depth-first, pruning every task ordered before `to`: no such task can reach `to`, because dependencies are
    /// always ordered before their dependents.
    pub(crate) fn depends_on_before(&self, from: TaskId, prefix: usize, to: TaskId) -> bool {
        if from == to {
            return true;
        }
        let direct = || self.deps(from).take(prefix);
        if direct().any(|d| matches!(d, Dep::RequireTask(d) if d.task == to)) {
            return true;
        }
        let bound = self.data(to).order;
        let mut visited = HashSet::new();
        let mut stack: Vec<TaskId> = direct()
            .filter_map(|d| match d {
                Dep::RequireTask(d) if self.data(d.task).order > bound => Some(d.task),
                _ => None,
            })
            .collect();
        while let Some(id) = stack.pop() {
            for dep in self.deps(id) {
                if let Dep::RequireTask(d) = dep {
                    if d.task == to {
                        return true;
                    }
                    if self.data(d.task).order > bound && visited.insert(d.task) {
                        stack.push(d.task);
                    }
                }
            }
        }
        false
    }

    /// The index of the first dependency of `id` that requires `file`, if any.
    pub(crate) fn first_require_of(&self, id: TaskId, file: FileId) -> Option<usize> {
        self.deps(id)
            .position(|d| matches!(d, Dep::RequireFile(d) if d.file == file))
    }

    /// Whether `id` provides a file after its first dependency (a require or a provide) on `file`; `true` when it
    /// has none.
    pub(crate) fn provides_after(&self, id: TaskId, file: FileId) -> bool {
        let mut deps = self.deps(id);
        let first = deps.position(|d| matches!(d, Dep::RequireFile(d) | Dep::ProvideFile(d) if d.file == file));
        // `position` left `deps` just after the first one.
        first.is_none() || deps.any(|d| matches!(d, Dep::ProvideFile(_)))
    }

    /// Whether `id` provides a file.
    pub(crate) fn provides_any(&self, id: TaskId) -> bool {
        self.deps(id).any(|d| matches!(d, Dep::ProvideFile(_)))
    }

    fn take_order(&mut self) -> u64 {
        let order = self.next_order;
        self.next_order += 1;
        order
    }

    fn has_live_dependents(&self, id: TaskId) -> bool {
        self.data(id).dependents.as_slice().iter().any(|e| self.is_live(*e))
    }

    /// The tasks that currently require `id` (a task may appear more than once).
    pub(crate) fn live_dependents(&self, id: TaskId) -> impl Iterator<Item = TaskId> + '_ {
        self.data(id)
            .dependents
            .as_slice()
            .iter()
            .filter(|e| self.is_live(**e))
            .map(|e| e.task)
    }

    /// Restores `order(dependency) < order(dependent)` after adding the edge `dependent → dependency`.
    fn keep_order(&mut self, dependent: TaskId, dependency: TaskId) {
        if self.data(dependency).order < self.data(dependent).order {
            return;
        }
        if !self.has_live_dependents(dependent) {
            // Nothing is ordered after `dependent` on its account: moving it to the end is always valid.
            let order = self.take_order();
            self.data_mut(dependent).order = order;
            return;
        }
        self.reorder(dependency, dependent);
    }

    /// Pearce–Kelly: `first` must come before `second` but is ordered after it. Reorders only the tasks between
    /// them that are affected: those reachable from `second` through dependents (ordered before `first`), and those
    /// reaching `first` through dependencies (ordered after `second`).
    fn reorder(&mut self, first: TaskId, second: TaskId) {
        let lower = self.data(second).order;
        let upper = self.data(first).order;
        let mut visited = HashSet::new();

        let mut forward = vec![second];
        visited.insert(second);
        let mut stack = vec![second];
        while let Some(id) = stack.pop() {
            for next in self.live_dependents(id) {
                let order = self.data(next).order;
                assert!(
                    next != first,
                    "Cyclic task dependency: {:?} requires {:?}, which depends on it",
                    self.task_debug(second),
                    self.task_debug(first)
                );
                if order < upper && visited.insert(next) {
                    forward.push(next);
                    stack.push(next);
                }
            }
        }

        let mut backward = vec![first];
        visited.insert(first);
        let mut stack = vec![first];
        while let Some(id) = stack.pop() {
            for dep in self.deps(id) {
                if let Dep::RequireTask(d) = dep {
                    let order = self.data(d.task).order;
                    if order > lower && visited.insert(d.task) {
                        backward.push(d.task);
                        stack.push(d.task);
                    }
                }
            }
        }

        backward.sort_by_key(|id| self.data(*id).order);
        forward.sort_by_key(|id| self.data(*id).order);
        let mut slots: Vec<u64> = backward
            .iter()
            .chain(forward.iter())
            .map(|id| self.data(*id).order)
            .collect();
        slots.sort_unstable();
        if let Some(lowest) = slots.first() {
            self.reorder_floor = self.reorder_floor.min(*lowest);
        }
        for (id, order) in backward.into_iter().chain(forward).zip(slots) {
            self.data_mut(id).order = order;
        }
    }

    /// The tasks required by `id` through its recorded dependencies.
    pub(crate) fn required_tasks(&self, id: TaskId) -> impl Iterator<Item = TaskId> + '_ {
        self.deps(id).filter_map(|d| match d {
            Dep::RequireTask(d) => Some(d.task),
            _ => None,
        })
    }

    /// Keeps only the tasks for which `keep[id]` holds, with their outputs, dependencies and claims, and the files
    /// that kept tasks depend on; ids are renumbered densely in their old order, and the topological order is
    /// compacted. Every task required by a kept task must be kept. Returns the paths of the files that removed
    /// tasks provided and no kept task provides.
    pub(crate) fn retain_tasks(&mut self, keep: &[bool]) -> Vec<PathBuf> {
        assert_eq!(keep.len(), self.task_data.len(), "BUG: a keep flag per task");
        let mut task_map = vec![u32::MAX; keep.len()];
        let mut kept = 0u32;
        for (index, keep) in keep.iter().enumerate() {
            if *keep {
                task_map[index] = kept;
                kept += 1;
            }
        }
        let mut file_map = vec![u32::MAX; self.files.len()];
        let mut files = PathInterner::with_capacity(self.files.len());
        let mut provided_by_kept = vec![false; self.files.len()];
        let mut provided_by_removed = Vec::new();
        let old_tasks = std::mem::take(&mut self.tasks).into_values();
        let old_data = std::mem::take(&mut self.task_data);
        let mut tasks = Interner::with_capacity(kept as usize);
        let mut task_data = Vec::with_capacity(kept as usize);
        for ((task, mut data), keep) in old_tasks.into_iter().zip(old_data).zip(keep) {
            if !keep {
                provided_by_removed.extend(data.deps.iter().filter_map(|d| match d.get() {
                    Dep::ProvideFile(d) => Some(d.file),
                    _ => None,
                }));
                continue;
            }
            for slot in &mut data.deps {
                let mut dep = slot.get();
                if let Dep::ProvideFile(d) = dep {
                    provided_by_kept[d.file.0 as usize] = true;
                }
                match &mut dep {
                    Dep::RequireTask(d) => {
                        let new = task_map[d.task.index()];
                        assert!(new != u32::MAX, "BUG: a kept task requires a removed task");
                        d.task = TaskId(new);
                    }
                    Dep::RequireFile(d) | Dep::ProvideFile(d) => {
                        let old = d.file.0 as usize;
                        if file_map[old] == u32::MAX {
                            let path = self.files.get(old as u32).expect("BUG: file id without a file node");
                            file_map[old] = files.intern(path).0;
                        }
                        d.file = FileId(file_map[old]);
                    }
                }
                *slot = dep.into();
            }
            tasks.intern(task);
            task_data.push(data);
        }
        let mut removed_paths: Vec<PathBuf> = provided_by_removed
            .into_iter()
            .filter(|file| !provided_by_kept[file.0 as usize])
            .map(|file| self.file_path(file).to_path_buf())
            .collect();
        removed_paths.sort();
        removed_paths.dedup();
        // Compact the topological order: the relative order of kept tasks stays.
        let mut by_order: Vec<usize> = (0..task_data.len()).collect();
        by_order.sort_unstable_by_key(|index| task_data[*index].order);
        for (order, index) in by_order.into_iter().enumerate() {
            task_data[index].order = order as u64;
        }
        self.next_order = task_data.len() as u64;
        self.tasks = tasks;
        self.task_data = task_data;
        self.files = files;
        self.rebuild_roots();
        self.rebuild_reverse_edges()
            .expect("BUG: a collected store has a dependency on a node that does not exist");
        self.rebuild_requires_digests();
        // Ids changed: what was known live by id is void.
        self.liveness_changes += 1;
        removed_paths
    }

    fn task_debug(&self, id: TaskId) -> String {
        format!("{:?}", self.task(id))
    }

    /// Checks the store's invariants (see [`validate`](Self::validate)); panics with `BUG:` on a violation. For tests.
    pub(crate) fn check_invariants(&self) {
        if let Err(violation) = self.validate() {
            panic!("BUG: the store's invariants do not hold: {violation}");
        }
    }

    /// Checks everything the rest of pie relies on without re-checking, returning the first violation instead of
    /// panicking: for a store decoded from a file, which may hold anything. Walks the whole graph.
    ///
    /// Checked: the tables agree in length and every id is in range; every path is absolute and normalised; every
    /// task dependency is ordered strictly before its dependent (which also rules out cycles); orders are unique
    /// and below `next_order`, versions below `next_version`; the counters leave room to grow (at most
    /// `u64::MAX / 2`, and `next_version` at least 1, as in a new store); every stamp was made by its dependency's
    /// stamper; each file is provided at most once by at most one task, and its live provider edge agrees; reverse
    /// edges name existing tasks.
    pub(crate) fn validate(&self) -> Result<(), String> {
        // The counters grow by one per new task, new output or move in the order, so no build gets near this limit
        // (2^63 steps); a store file that starts near `u64::MAX` would make them overflow. (A crafted store just
        // below the limit passes this check until its counters cross it, long before they could overflow.)
        const COUNTER_LIMIT: u64 = u64::MAX / 2;
        if self.next_order > COUNTER_LIMIT || self.next_version > COUNTER_LIMIT || self.next_version == 0 {
            return Err(format!(
                "the order and version counters ({} and {}) are not between 1 and {COUNTER_LIMIT}",
                self.next_order, self.next_version
            ));
        }
        let task_count = self.task_data.len();
        let file_count = self.file_data.len();
        if self.tasks.len() != task_count {
            return Err(format!("{} tasks but {task_count} task records", self.tasks.len()));
        }
        if self.files.len() != file_count {
            return Err(format!("{} files but {file_count} file records", self.files.len()));
        }
        if task_count >= u32::MAX as usize || file_count >= u32::MAX as usize {
            return Err("more than u32::MAX tasks or files".to_string());
        }
        for (index, path) in self.files.iter().enumerate() {
            // Bytes, not `Path` equality (which ignores `//` and interior `.`): files are interned by their bytes.
            let normal =
                path.is_absolute() && NormalPath::new(path).is_ok_and(|n| n.as_path().as_os_str() == path.as_os_str());
            if !normal {
                return Err(format!(
                    "file {index} has a path that is not absolute and normalised: '{}'",
                    path.display()
                ));
            }
        }
        let mut providers: Vec<Option<usize>> = vec![None; file_count];
        for (index, data) in self.task_data.iter().enumerate() {
            if data.order >= self.next_order || data.version & !FAILED_BIT >= self.next_version {
                return Err(format!(
                    "task {index} has an order or version beyond the store's counters"
                ));
            }
            let failed = data.version & FAILED_BIT != 0 || data.version == UNKNOWN_VERSION;
            if data.output.is_some() == failed {
                return Err(format!(
                    "task {index} has an output version that does not match whether it has an output"
                ));
            }
            for dep in data.deps.iter().map(|d| d.get()) {
                match dep {
                    Dep::RequireTask(d) => {
                        let Some(required) = self.task_data.get(d.task.index()) else {
                            return Err(format!("task {index} requires task {}, which does not exist", d.task.0));
                        };
                        if required.order >= data.order {
                            return Err(format!(
                                "task {index} requires task {}, which is not ordered before it (a cycle or a broken \
                                 topological order)",
                                d.task.0
                            ));
                        }
                        if d.version & !FAILED_BIT >= self.next_version {
                            return Err(format!("task {index} recorded a version beyond the store's counter"));
                        }
                    }
                    Dep::RequireFile(d) | Dep::ProvideFile(d) => {
                        if d.file.0 as usize >= file_count {
                            return Err(format!(
                                "task {index} depends on file {}, which does not exist",
                                d.file.0
                            ));
                        }
                        if !d.stamp.is_none_or(|stamp| stamp_made_by(d.stamper, stamp)) {
                            return Err(format!("task {index} has a file stamp not made by its stamper"));
                        }
                    }
                }
                if let Dep::ProvideFile(d) = dep {
                    let slot = &mut providers[d.file.0 as usize];
                    if let Some(other) = slot {
                        return Err(format!(
                            "file '{}' is provided by task {other} and again by task {index}",
                            self.file_path(d.file).display()
                        ));
                    }
                    *slot = Some(index);
                }
            }
            if data.dependents.as_slice().iter().any(|e| e.task.index() >= task_count) {
                return Err(format!("task {index} has a dependent that does not exist"));
            }
        }
        let mut orders: Vec<u64> = self.task_data.iter().map(|d| d.order).collect();
        orders.sort_unstable();
        if orders.windows(2).any(|w| w[0] == w[1]) {
            return Err("two tasks share a position in the topological order".to_string());
        }
        for (index, data) in self.file_data.iter().enumerate() {
            if data
                .requirers
                .as_slice()
                .iter()
                .chain(&data.provider)
                .any(|e| e.task.index() >= task_count)
            {
                return Err(format!("file {index} has a requirer or provider that does not exist"));
            }
            let live_provider = data.provider.filter(|e| self.is_live(*e)).map(|e| e.task.index());
            if live_provider != providers[index] {
                return Err(format!(
                    "file {index} has a provider edge that disagrees with the tasks' dependencies"
                ));
            }
        }
        Ok(())
    }

    /// Rebuilds what the store file leaves out (reverse edges, execution generations) from the tasks'
    /// dependencies, then [`validate`](Self::validate)s. Every recorded dependency is live after loading, as it
    /// was live when saved: a task's own dependencies are dropped whenever it executes again.
    #[cfg(feature = "serde")]
    pub(crate) fn rebuild_after_load(&mut self) -> Result<(), String> {
        let task_count = self.task_data.len();
        if self.tasks.len() != task_count || task_count >= u32::MAX as usize {
            return Err(format!("{} tasks but {task_count} task records", self.tasks.len()));
        }
        self.rebuild_roots();
        self.rebuild_reverse_edges()?;
        self.rebuild_requires_digests();
        self.validate()
    }

    /// Recomputes every task's digest of what it required (see `TaskData::requires`) from its dependencies.
    fn rebuild_requires_digests(&mut self) {
        for data in &mut self.task_data {
            data.requires = data.deps.iter().fold(0, |digest, dep| match dep.get() {
                Dep::RequireTask(d) => requires_digest(digest, d.task),
                _ => digest,
            });
        }
    }

    /// Rebuilds the reverse edges from the tasks' dependencies, every task at its first generation.
    fn rebuild_reverse_edges(&mut self) -> Result<(), String> {
        let task_count = self.task_data.len();
        self.file_data = vec![FileData::default(); self.files.len()];
        for data in &mut self.task_data {
            data.generation = FIRST_GENERATION;
            data.dependents = EdgeList::Empty;
        }
        for index in 0..task_count {
            let edge = Edge {
                task: TaskId(index as u32),
                generation: FIRST_GENERATION,
            };
            for dep_index in 0..self.task_data[index].deps.len() {
                let dep = self.task_data[index].deps[dep_index].get();
                let missing = || format!("task {index} has a dependency on a node that does not exist");
                match dep {
                    Dep::RequireTask(d) => {
                        let list = &mut self.task_data.get_mut(d.task.index()).ok_or_else(missing)?.dependents;
                        list.push(edge, |_| true);
                    }
                    Dep::RequireFile(d) => {
                        let list = &mut self.file_data.get_mut(d.file.0 as usize).ok_or_else(missing)?.requirers;
                        list.push(edge, |_| true);
                    }
                    Dep::ProvideFile(d) => {
                        self.file_data.get_mut(d.file.0 as usize).ok_or_else(missing)?.provider = Some(edge);
                        self.any_provider = true;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `stamp` is of the kind that `stamper` makes.
fn stamp_made_by(stamper: FileStamper, stamp: FileStamp) -> bool {
    matches!(
        (stamper, stamp),
        (FileStamper::Exists, FileStamp::Exists(_))
            | (FileStamper::Modified, FileStamp::Modified(_))
            | (FileStamper::Hash, FileStamp::Hash(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::{FileStamper, OutputStamper};

    fn task_dep(task: TaskId) -> TaskDep {
        TaskDep {
            task,
            stamper: OutputStamper::Equals,
            group: crate::dependency::Group::Alone,
            version: 0,
        }
    }

    #[test]
    fn fresh_edges_keep_dependencies_first() {
        let mut store: Store<&str, ()> = Store::default();
        let a = store.get_or_create_task(&"a");
        let b = store.get_or_create_task(&"b");
        let c = store.get_or_create_task(&"c");
        // a requires b, b requires c, a requires c: every new dependent moves after its dependencies.
        store.add_require_task(b, task_dep(c));
        store.add_require_task(a, task_dep(b));
        store.add_require_task(a, task_dep(c));
        store.check_invariants();
        assert!(store.data(c).order < store.data(b).order);
        assert!(store.data(b).order < store.data(a).order);
    }

    #[test]
    fn reorder_moves_dependents_of_a_re_executed_task() {
        let mut store: Store<&str, ()> = Store::default();
        let top = store.get_or_create_task(&"top");
        let mid = store.get_or_create_task(&"mid");
        store.add_require_task(top, task_dep(mid));
        store.check_invariants();
        // `mid` re-executes and now requires a brand-new task ordered last, while `top` still depends on `mid`.
        store.start_execution(mid);
        let new = store.get_or_create_task(&"new");
        let leaf = store.get_or_create_task(&"leaf");
        store.add_require_task(new, task_dep(leaf));
        store.add_require_task(mid, task_dep(new));
        store.check_invariants();
        assert!(store.data(new).order < store.data(mid).order);
        assert!(store.data(mid).order < store.data(top).order);
    }

    #[test]
    fn depends_on_follows_live_edges_only() {
        let mut store: Store<&str, ()> = Store::default();
        let a = store.get_or_create_task(&"a");
        let b = store.get_or_create_task(&"b");
        let c = store.get_or_create_task(&"c");
        store.add_require_task(b, task_dep(c));
        store.add_require_task(a, task_dep(b));
        assert!(store.depends_on(a, c));
        assert!(!store.depends_on(c, a));
        store.start_execution(b);
        assert!(!store.depends_on(a, c), "b's old edge to c is dropped by re-execution");
        assert!(store.depends_on(a, b), "a still depends on b until a re-executes");
    }

    #[test]
    fn stale_reverse_edges_are_skipped_and_compacted() {
        let mut store: Store<&str, ()> = Store::default();
        let a = store.get_or_create_task(&"a");
        let file = store.get_or_create_file(NormalPath::new(Path::new("/f")).unwrap());
        let dep = FileDep {
            file,
            stamper: FileStamper::Modified,
            stamp: None,
        };
        for _ in 0..100 {
            store.start_execution(a);
            store.add_require_file(a, dep);
            store.add_provide_file(a, dep);
        }
        assert_eq!(store.requirers(file).collect::<Vec<_>>(), vec![a]);
        assert_eq!(store.provider(file), Some(a));
        assert!(
            store.file_data[0].requirers.as_slice().len() <= 4,
            "stale edges were compacted instead of growing the list"
        );
        store.start_execution(a);
        assert_eq!(store.requirers(file).count(), 0);
        assert_eq!(store.provider(file), None);
        assert_eq!(store.file_count(), 1);
    }

    #[test]
    fn edge_lists_with_several_tasks_stay_bounded() {
        let mut store: Store<&str, ()> = Store::default();
        let a = store.get_or_create_task(&"a");
        let b = store.get_or_create_task(&"b");
        let c = store.get_or_create_task(&"c");
        let file = store.get_or_create_file(NormalPath::new(Path::new("/f")).unwrap());
        let dep = FileDep {
            file,
            stamper: FileStamper::Modified,
            stamp: None,
        };
        for _ in 0..100 {
            for id in [a, b] {
                store.start_execution(id);
                store.add_require_file(id, dep);
                store.add_require_task(id, task_dep(c));
            }
        }
        let mut requirers = store.requirers(file).collect::<Vec<_>>();
        requirers.sort();
        assert_eq!(requirers, vec![a, b]);
        assert!(matches!(store.file_data[0].requirers, EdgeList::Two(_)));
        assert!(matches!(store.data(c).dependents, EdgeList::Two(_)));
        assert_eq!(store.live_dependents(c).count(), 2);
        store.check_invariants();

        // A third requirer spills into a vector, which stays bounded too.
        let d = store.get_or_create_task(&"d");
        for _ in 0..100 {
            for id in [a, b, d] {
                store.start_execution(id);
                store.add_require_file(id, dep);
                store.add_require_task(id, task_dep(c));
            }
        }
        let mut requirers = store.requirers(file).collect::<Vec<_>>();
        requirers.sort();
        assert_eq!(requirers, vec![a, b, d]);
        assert!(store.file_data[0].requirers.as_slice().len() <= 6);
        assert!(store.data(c).dependents.as_slice().len() <= 6);
        assert_eq!(store.live_dependents(c).count(), 3);
        store.check_invariants();
    }

    #[test]
    fn file_records_and_edge_lists_stay_small() {
        // Memory per node is a benchmark target (BENCHMARKS.md): a file's record is its two reverse-edge fields.
        assert_eq!(std::mem::size_of::<EdgeList>(), 16);
        assert_eq!(std::mem::size_of::<Option<Edge>>(), 8);
        assert_eq!(std::mem::size_of::<FileData>(), 24);
        // A recorded dependency: packed into 48 bytes, where `Dep` takes 56.
        assert_eq!(std::mem::size_of::<PackedDep>(), 48);
        assert_eq!(std::mem::size_of::<Dep>(), 56);
    }

    #[test]
    fn generations_wrap_around_without_zero() {
        assert_eq!(next_generation(NonZeroU32::MAX), FIRST_GENERATION);
        assert_eq!(next_generation(FIRST_GENERATION).get(), 2);
    }

    #[test]
    fn version_changes_only_when_output_changes() {
        let mut store: Store<&str, u32> = Store::default();
        let a = store.get_or_create_task(&"a");
        let previous = store.start_execution(a);
        store.finish_execution(a, 1, previous);
        let v1 = store.version(a);
        let previous = store.start_execution(a);
        store.finish_execution(a, 1, previous);
        assert_eq!(store.version(a), v1);
        let previous = store.start_execution(a);
        store.finish_execution(a, 2, previous);
        assert_ne!(store.version(a), v1);
    }
}
