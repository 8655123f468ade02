//! The transport of a shared build cache (cargo feature `remote-cache`): a client of Bazel's HTTP remote-cache
//! protocol, so that what one machine built, another machine restores instead of executing again.
//!
//! The protocol has two stores on one server. The *action cache* maps the digest of an action (for pie, a task
//! and what it depended on) to an `ActionResult` message of the Remote Execution API; the *content store* (CAS)
//! maps the SHA-256 of some bytes to those bytes. Both are plain HTTP: `GET`, `PUT` and `HEAD` of
//! `{base}/ac/{hex}` and `{base}/cas/{hex}`, which nginx with WebDAV, bazel-remote and most cache services serve.
//!
//! - [`Digest`] (`digest.rs`): the SHA-256 hash and size of some bytes, the key of the content store.
//! - [`proto`] (`proto.rs`): the few protobuf messages an action-cache entry holds, written with prost's derive from
//!   the published field numbers.
//! - [`HttpCache`] (`http.rs`): the blocking, thread-safe client, with its options, [`RemoteStats`] and
//!   [`RemoteError`].
//!
//! This module is only the transport: which tasks are looked up, and how a task's trace is keyed and checked, is
//! the engine's business. It keeps these invariants:
//!
//! - **Never fatal, never trusted.** No operation returns an error or panics because of what the network did or
//!   sent: a missing, undecodable, malformed, oversized or tampered entry is a miss (a blob is returned only when
//!   its SHA-256 and size match), and a failed request is a miss or a skipped upload.
//! - **One warning, then silence.** The first failed request makes the client print one warning to stderr and stop
//!   talking to the server for the rest of its life, so a dead server costs one timeout, not one per task.
//! - **Bounded.** Connecting, each request, the retries (only after connection errors and 5xx statuses) and the size
//!   of a downloaded body all have limits.
//! - **Read-only means read-only.** A read-only client never sends a `PUT`.

mod cache;
mod digest;
mod http;
pub mod proto;

pub use cache::{RemoteCache, TRACE_PATH};
pub use digest::Digest;
pub use http::{HttpCache, RemoteError, RemoteStats, ENV_AUTH, ENV_URL};
