//! Contexts: the algorithms that execute tasks.
//!
//! The incremental engine (crate-private, reached through [`Session`](crate::Session)) is one type,
//! `TopDownContext`, whose methods are split by operation:
//! - `top_down`: making a required task consistent (checking its dependencies in the order they were made,
//!   recursively, with an explicit stack) and executing it only when new or inconsistent;
//! - `execute`: executing a task, and the [`Context`](crate::Context) a task sees while it executes;
//! - `soundness`: the overlap, hidden-dependency and cycle checks;
//! - `bottom_up`: builds that start from changed files;
//! - `parallel`: `require_tasks` on several threads (lanes), which take turns holding the engine;
//! - `prefetch`: the files of a long run of required tasks stamped on helper threads while the lane checks them;
//! - `state` and `marks`: what a session's builds keep outside the store (frames, the executing task, panics on
//!   their way, marks per task).
//!
//! [`non_incremental`] executes every required task every time; the reference that incremental builds must agree
//! with.
//!
//! Invariant: only contexts execute tasks, and only the engine (the methods of `TopDownContext`) writes to the
//! store.

pub(crate) mod bottom_up;
mod execute;
pub(crate) mod marks;
pub mod non_incremental;
pub(crate) mod parallel;
pub(crate) mod prefetch;
pub(crate) mod remote;
mod soundness;
pub(crate) mod state;
pub(crate) mod top_down;
