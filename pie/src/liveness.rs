//! Liveness: which tasks a build still uses.
//!
//! A task is *live* while a root requires it, directly or transitively, through the dependencies recorded in the
//! store, or while it has been required in the session in progress (it has a mark); every other task is *dead*.
//! Dead tasks are left-overs of an edited build script: they count neither as providers nor as requirers of files,
//! and `Pie::collect_garbage` removes them.
//!
//! Liveness is decided lazily and only where it matters: the soundness checks call [`is_live`] only after they
//! found a conflict (a second provider, a reader that does not depend on a provider), so a build that meets no
//! conflict never pays for it. [`is_live`] walks *up* from the task through its current dependents until it
//! meets a root or a task required in this session; [`live_from_roots`] walks *down* from every root, for
//! garbage collection between sessions.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

use crate::session::{Mark, Marks};
use crate::store::{Store, TaskId};

/// Whether `id` is live: required in this session (by `marks`), or (transitively) required by a root or by a
/// task required in this session.
pub(crate) fn is_live<T: Eq + Hash + Clone + Debug, O: Eq>(store: &Store<T, O>, marks: &Marks, id: TaskId) -> bool {
    // A task merely scheduled by a bottom-up build was not required in this session.
    let keeps_live =
        |id: TaskId| store.is_root(id) || matches!(marks.get(id), Mark::InProgress | Mark::Done | Mark::Failed);
    if keeps_live(id) {
        return true;
    }
    let mut visited = HashSet::from([id]);
    let mut stack = vec![id];
    while let Some(id) = stack.pop() {
        for dependent in store.live_dependents(id) {
            if keeps_live(dependent) {
                return true;
            }
            if visited.insert(dependent) {
                stack.push(dependent);
            }
        }
    }
    false
}

/// Which tasks are live between sessions: the roots and what they require, transitively. Indexed by task id.
pub(crate) fn live_from_roots<T: Eq + Hash + Clone + Debug, O: Eq>(store: &Store<T, O>) -> Vec<bool> {
    let mut live = vec![false; store.task_count()];
    let mut stack: Vec<TaskId> = store.roots().collect();
    for root in &stack {
        live[root.index()] = true;
    }
    while let Some(id) = stack.pop() {
        for required in store.required_tasks(id) {
            if !std::mem::replace(&mut live[required.index()], true) {
                stack.push(required);
            }
        }
    }
    live
}
