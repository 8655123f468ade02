//! Contexts: the algorithms that execute tasks.
//!
//! - `top_down` (crate-private, reached through [`Session`](crate::Session)): the incremental algorithm. A
//!   required task is checked (its dependencies re-checked in the order they were made, recursively) and executed
//!   only when new or inconsistent. It also enforces soundness: overlapping provided files, hidden dependencies and
//!   cycles panic.
//! - [`non_incremental`]: executes every required task every time; the reference that incremental builds must
//!   agree with.
//!
//! Invariant: only contexts execute tasks, and only `top_down` writes to the store.

pub(crate) mod bottom_up;
pub mod non_incremental;
pub(crate) mod top_down;
