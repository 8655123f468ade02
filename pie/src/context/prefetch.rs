//! Prefetching stamps: when a top-down check reaches a long run of task dependencies (what a `require_tasks` of many
//! tasks records), the files that those tasks require are stamped on several threads first, and the checks, still
//! made one by one in order, use those stamps instead of stamping each file themselves. So a no-op build of a wide
//! graph stats (or hashes) its files in parallel, while every decision stays that of a build on one thread.
//!
//! Only reading: nothing is executed, and nothing in the graph changes; a task whose check stops early leaves some
//! stamps unused, which costs only their I/O. A stamp is used only for a file that no task provides when the check
//! uses it: a file a task writes in this session may change after the stamp was taken, but a file nobody provides
//! changes only outside the session, which a session need not see.

use crate::context::marks::Mark;
use crate::context::top_down::TopDownContext;
use crate::dependency::{Dep, FileDep};
use crate::ids::{FileId, TaskId};
use crate::stamp::{FileStamp, FileStamper};
use crate::tracker::Tracker;
use crate::Task;

/// Runs of task dependencies shorter than this are checked without prefetching (starting threads costs more).
const MIN_RUN: usize = 64;

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// Before the check of dependency `index` of task `id` (a task dependency on a task not yet seen in this
    /// session): if it starts a long run of task dependencies not yet prefetched, stamps the files that the
    /// unseen tasks of the run require, on `threads` threads.
    #[inline(never)]
    pub(super) fn prefetch_stamps(&mut self, id: TaskId, index: usize) {
        if matches!(self.lane.prefetched_run, Some((task, end)) if task == id && index < end) {
            return;
        }
        let count = self.store.dep_count(id);
        let mut end = index;
        while end < count && matches!(self.store.dep(id, end), Dep::RequireTask(_)) {
            end += 1;
        }
        self.lane.prefetched_run = Some((id, end));
        if end - index < MIN_RUN || self.state.bottom_up.is_some() {
            return;
        }
        let mut files: Vec<(FileId, FileStamper)> = Vec::new();
        for k in index..end {
            let Dep::RequireTask(dep) = self.store.dep(id, k) else {
                continue;
            };
            if self.marks.get(dep.task) != Mark::Unseen {
                continue;
            }
            for d in 0..self.store.dep_count(dep.task) {
                if let Dep::RequireFile(file) = self.store.dep(dep.task, d) {
                    if self.store.provider(file.file).is_none() {
                        files.push((file.file, file.stamper));
                    }
                }
            }
        }
        if files.len() < MIN_RUN {
            return;
        }
        let store = &*self.store;
        let stamps = stamp_in_parallel(&files, self.threads, |file, stamper| {
            stamper.stamp(store.file_path(file)).ok()
        });
        let prefetched = &mut self.state.prefetched;
        for ((file, stamper), stamp) in files.into_iter().zip(stamps) {
            if let Some(stamp) = stamp {
                prefetched.insert((file, stamper), stamp);
            }
        }
    }

    /// The prefetched stamp for `dep`, if there is one and it may be used (see the module doc).
    #[inline]
    pub(super) fn take_prefetched(&mut self, dep: FileDep) -> Option<FileStamp> {
        if self.state.prefetched.is_empty() {
            return None;
        }
        self.take_prefetched_slow(dep)
    }

    #[inline(never)]
    fn take_prefetched_slow(&mut self, dep: FileDep) -> Option<FileStamp> {
        let stamp = self.state.prefetched.remove(&(dep.file, dep.stamper))?;
        self.store.provider(dep.file).is_none().then_some(stamp)
    }
}

/// Stamps `files` with `stamp` on `threads` threads (the caller's included), in order.
fn stamp_in_parallel(
    files: &[(FileId, FileStamper)],
    threads: usize,
    stamp: impl Fn(FileId, FileStamper) -> Option<FileStamp> + Sync,
) -> Vec<Option<FileStamp>> {
    let chunk = files.len().div_ceil(threads.max(1));
    let stamp_chunk = |part: &[(FileId, FileStamper)]| part.iter().map(|&(f, s)| stamp(f, s)).collect::<Vec<_>>();
    std::thread::scope(|scope| {
        let mut parts = files.chunks(chunk);
        let first = parts.next().unwrap_or_default();
        // A part whose thread cannot be started is stamped here.
        let others: Vec<_> = parts
            .map(|part| {
                std::thread::Builder::new()
                    .name("pie-prefetch".to_string())
                    .spawn_scoped(scope, move || stamp_chunk(part))
                    .map_err(|_| part)
            })
            .collect();
        let mut stamps = stamp_chunk(first);
        for other in others {
            match other.map(|handle| handle.join()) {
                Ok(Ok(part)) => stamps.extend(part),
                Err(part) => stamps.extend(stamp_chunk(part)),
                // A panic while stamping (none is expected) loses only the prefetch: the files are stamped later.
                Ok(Err(_)) => return Vec::new(),
            }
        }
        stamps
    })
}
