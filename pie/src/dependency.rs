//! Dependencies: one recorded fact about what a task read, wrote or required, and how to re-check it.
//!
//! The store keeps compact records (`Dep`: node ids, the stamper and the stamp or output version seen). Trackers
//! are shown borrowed views of them ([`Dependency`], [`FileDependency`], [`TaskDependency`]) so that observing a
//! build never copies a path or a task.
//!
//! A file dependency is re-checked by stamping the file again; a task dependency by making the required task
//! consistent and comparing its output version with the one recorded (see `context::top_down`).

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::path::Path;

use crate::ids::{FileId, TaskId};
use crate::stamp::{FileStamp, FileStamper, OutputStamper};

/// One recorded dependency of a task, in the order the task made it.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) enum Dep {
    RequireFile(FileDep),
    ProvideFile(FileDep),
    RequireTask(TaskDep),
}

/// How the store keeps a [`Dep`]: 48 bytes instead of 56. `Dep`'s two file variants carry the same payload, so its
/// tag cannot hide in a niche and takes a word of its own; here the kind is a flag beside the node id, and a task
/// dependency's output version shares the space of a file dependency's stamp (in a niche of the stamp's tag). A
/// store holds one per recorded dependency (a `require_tasks` of 100k tasks records 100k of them), so the 8 bytes
/// count. It serialises as the `Dep` it holds, so the store file is the same.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(from = "Dep", into = "Dep")
)]
pub(crate) struct PackedDep {
    payload: Payload,
    /// The file's id for a file dependency, the task's for a task dependency.
    node: u32,
    /// A file dependency: whether it is a provide. A task dependency: `false`.
    provided: bool,
    /// A file dependency's stamper; the default for a task dependency.
    file_stamper: FileStamper,
    /// A task dependency's stamper and group; the defaults for a file dependency.
    output_stamper: OutputStamper,
    group: Group,
}

/// The stamp of a file dependency or the output version of a task dependency.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
enum Payload {
    File(Option<FileStamp>),
    Task(u64),
}

impl PackedDep {
    /// The dependency.
    #[inline]
    pub(crate) fn get(self) -> Dep {
        match self.payload {
            Payload::File(stamp) => {
                let dep = FileDep {
                    file: FileId(self.node),
                    stamper: self.file_stamper,
                    stamp,
                };
                if self.provided {
                    Dep::ProvideFile(dep)
                } else {
                    Dep::RequireFile(dep)
                }
            }
            Payload::Task(version) => Dep::RequireTask(TaskDep {
                task: TaskId(self.node),
                stamper: self.output_stamper,
                group: self.group,
                version,
            }),
        }
    }
}

impl From<Dep> for PackedDep {
    #[inline]
    fn from(dep: Dep) -> Self {
        let file = |dep: FileDep, provided: bool| PackedDep {
            payload: Payload::File(dep.stamp),
            node: dep.file.0,
            provided,
            file_stamper: dep.stamper,
            output_stamper: OutputStamper::default(),
            group: Group::default(),
        };
        match dep {
            Dep::RequireFile(dep) => file(dep, false),
            Dep::ProvideFile(dep) => file(dep, true),
            Dep::RequireTask(dep) => PackedDep {
                payload: Payload::Task(dep.version),
                node: dep.task.0,
                provided: false,
                file_stamper: FileStamper::default(),
                output_stamper: dep.stamper,
                group: dep.group,
            },
        }
    }
}

impl From<PackedDep> for Dep {
    #[inline]
    fn from(packed: PackedDep) -> Self {
        packed.get()
    }
}

/// A file dependency. `stamp` is `None` when stamping or opening failed: such a dependency is never consistent.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct FileDep {
    pub(crate) file: FileId,
    pub(crate) stamper: FileStamper,
    pub(crate) stamp: Option<FileStamp>,
}

impl FileDep {
    /// Stamps `path` (this dependency's file) again: `Ok(Some(new_stamp))` when it is inconsistent.
    pub(crate) fn check(&self, path: &Path) -> io::Result<Option<FileStamp>> {
        let new = self.stamper.stamp(path)?;
        Ok((self.stamp != Some(new)).then_some(new))
    }
}

/// A task dependency: the required task, how its output is stamped, and the output version that was seen.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct TaskDep {
    pub(crate) task: TaskId,
    pub(crate) stamper: OutputStamper,
    /// Whether the dependency came from a `require_tasks` call, and where in it (in the padding after `stamper`:
    /// no extra space). A top-down check makes a group's tasks consistent in parallel, and a shared cache's
    /// replay requires them together.
    pub(crate) group: Group,
    pub(crate) version: u64,
}

/// Where a task dependency stands in the `require_tasks` call that made it, if any: replaying a trace requires a
/// group's tasks together, as the execution did (see `crate::context::remote`).
#[derive(Copy, Clone, Eq, PartialEq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) enum Group {
    /// Required on its own (`require_task`).
    #[default]
    Alone,
    /// The first task of a `require_tasks` call of two or more tasks.
    First,
    /// A later task of that call.
    Member,
}

/// The output version of a task without output whose next execution may do anything: a new task, a task whose
/// recorded execution was forgotten (`Store::invalidate`), or a task whose last execution ended in a panic that may
/// not repeat (a soundness violation depends on other tasks). A dependency that recorded it is never consistent.
/// Real versions start at 1.
pub(crate) const UNKNOWN_VERSION: u64 = 0;

/// Set in the output version of a task whose last execution panicked in its own code (a *failure version*): it has
/// no output, and executing it again with the same recorded dependencies panics again, so a task that caught the
/// panic stays consistent while the failure version is unchanged. Versions count below `u64::MAX / 2`, so the bit
/// is free.
pub(crate) const FAILED_BIT: u64 = 1 << 63;

impl TaskDep {
    /// Whether this dependency is inconsistent, given the required task's current output version. A failure
    /// version on either side is compared whatever the stamper: a task that saw a panic must see a success, and
    /// a task that saw a success must see a panic.
    #[inline]
    pub(crate) fn is_inconsistent(&self, current_version: u64) -> bool {
        if self.version == current_version {
            return self.version == UNKNOWN_VERSION;
        }
        match self.stamper {
            OutputStamper::Equals => true,
            OutputStamper::Inconsequential => {
                (self.version | current_version) & FAILED_BIT != 0
                    || self.version == UNKNOWN_VERSION
                    || current_version == UNKNOWN_VERSION
            }
        }
    }
}

/// A file that a task required or provided, as shown to a [`Tracker`](crate::tracker::Tracker).
#[derive(Copy, Clone, Debug)]
pub struct FileDependency<'a> {
    path: &'a Path,
    stamper: FileStamper,
    stamp: FileStamp,
}

impl<'a> FileDependency<'a> {
    pub(crate) fn new(path: &'a Path, stamper: FileStamper, stamp: FileStamp) -> Self {
        Self { path, stamper, stamp }
    }
    /// The file's path: as the task gave it for require/provide events, normalised for dependency checks.
    pub fn path(&self) -> &'a Path {
        self.path
    }
    /// The stamper used.
    pub fn stamper(&self) -> &FileStamper {
        &self.stamper
    }
    /// The stamp recorded (for a failed stamp at the time of recording, the stamper's "missing" stamp).
    pub fn stamp(&self) -> &FileStamp {
        &self.stamp
    }
}

/// A task that a task required, as shown to a [`Tracker`](crate::tracker::Tracker).
#[derive(Debug)]
pub struct TaskDependency<'a, T, O> {
    task: &'a T,
    stamper: OutputStamper,
    _output: PhantomData<&'a O>,
}

impl<T, O> Clone for TaskDependency<'_, T, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, O> Copy for TaskDependency<'_, T, O> {}

impl<'a, T, O> TaskDependency<'a, T, O> {
    pub(crate) fn new(task: &'a T, stamper: OutputStamper) -> Self {
        Self {
            task,
            stamper,
            _output: PhantomData,
        }
    }
    /// The required task.
    pub fn task(&self) -> &'a T {
        self.task
    }
    /// How the required task's output is stamped.
    pub fn stamper(&self) -> &OutputStamper {
        &self.stamper
    }
}

/// A recorded dependency, as shown to a [`Tracker`](crate::tracker::Tracker) while it is re-checked.
#[derive(Debug)]
pub enum Dependency<'a, T, O> {
    /// The task read the file.
    RequireFile(FileDependency<'a>),
    /// The task wrote the file.
    ProvideFile(FileDependency<'a>),
    /// The task required another task.
    RequireTask(TaskDependency<'a, T, O>),
}

impl<T, O> Clone for Dependency<'_, T, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, O> Copy for Dependency<'_, T, O> {}

/// Why a dependency is inconsistent.
#[derive(Debug)]
pub enum Inconsistency<'a, O> {
    /// The file's stamp changed; this is the new stamp.
    File(FileStamp),
    /// The required task's output changed; this is the new output.
    Task(&'a O),
    /// The required task has no output (its last execution panicked, or it never finished executing), and this
    /// task did not see that very failure: this task executes again and requires it anew, meeting its panic (or
    /// its output) as a clean build would.
    Panicked,
    /// The file's stamp is unchanged, but the file is provided by a task that this task no longer (transitively)
    /// requires before reading it: a required task further down dropped the require. This task executes again,
    /// which refuses the read as a hidden dependency if it still makes it.
    UnrequiredProvider,
}

/// The stamp shown to trackers for a dependency whose stamping failed when it was recorded.
pub(crate) fn missing_stamp(stamper: FileStamper) -> FileStamp {
    match stamper {
        FileStamper::Exists => FileStamp::Exists(false),
        FileStamper::Modified => FileStamp::Modified(None),
        FileStamper::Hash => FileStamp::Hash(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_dep_is_inconsistent_after_change_and_when_recorded_stamp_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "a").unwrap();
        let stamp = FileStamper::Hash.stamp(&path).unwrap();
        let dep = FileDep {
            file: FileId(0),
            stamper: FileStamper::Hash,
            stamp: Some(stamp),
        };
        assert_eq!(dep.check(&path).unwrap(), None);
        std::fs::write(&path, "b").unwrap();
        assert!(dep.check(&path).unwrap().is_some());
        let failed = FileDep { stamp: None, ..dep };
        std::fs::write(&path, "a").unwrap();
        assert!(failed.check(&path).unwrap().is_some());
    }

    #[test]
    fn inconsequential_task_dep_is_never_inconsistent() {
        let dep = TaskDep {
            task: crate::ids::TaskId::for_test(0),
            stamper: OutputStamper::Inconsequential,
            group: Group::Alone,
            version: 1,
        };
        assert!(!dep.is_inconsistent(2));
        let dep = TaskDep {
            stamper: OutputStamper::Equals,
            ..dep
        };
        assert!(dep.is_inconsistent(2));
        assert!(!dep.is_inconsistent(1));
    }

    #[test]
    fn a_packed_dependency_unpacks_to_the_same_one() {
        let stamps = [
            None,
            Some(FileStamp::Exists(true)),
            Some(FileStamp::Modified(None)),
            Some(FileStamp::Modified(Some(
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(7, 9),
            ))),
            Some(FileStamp::Hash(None)),
            Some(FileStamp::Hash(Some([0xab; 32]))),
        ];
        let mut deps = Vec::new();
        for stamp in stamps {
            for stamper in [FileStamper::Exists, FileStamper::Modified, FileStamper::Hash] {
                let dep = FileDep {
                    file: FileId(u32::MAX - 1),
                    stamper,
                    stamp,
                };
                deps.push(Dep::RequireFile(dep));
                deps.push(Dep::ProvideFile(dep));
            }
        }
        for version in [UNKNOWN_VERSION, 1, FAILED_BIT, FAILED_BIT | 5, u64::MAX] {
            for stamper in [OutputStamper::Inconsequential, OutputStamper::Equals] {
                for group in [Group::Alone, Group::First, Group::Member] {
                    deps.push(Dep::RequireTask(TaskDep {
                        task: TaskId(3),
                        stamper,
                        group,
                        version,
                    }));
                }
            }
        }
        for dep in &deps {
            assert_eq!(PackedDep::from(*dep).get(), *dep);
        }
        // Different dependencies stay different when packed.
        for (i, a) in deps.iter().enumerate() {
            for b in &deps[i + 1..] {
                assert_ne!(PackedDep::from(*a), PackedDep::from(*b), "{a:?} and {b:?}");
            }
        }
    }
}
