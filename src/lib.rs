//! Make a test fail when it leaks tokio tasks, and say where each straggler was spawned.
//!
//! A leaked task outlives its purpose: blocked on a channel whose sender lives on, looping in a
//! `select!` with no way out, detached by a dropped `JoinHandle`. `#[tokio::test]` hides them by
//! dropping its runtime, which cancels them silently. `#[leak_check]` waits briefly for the
//! test's own tasks when the body ends, then fails the test with a report of each task still
//! alive: its spawn site, the chain of spawns back to the test, and what it was doing.
//!
//! ```
//! use leak_check::leak_check;
//!
//! #[leak_check]
//! #[tokio::test]
//! async fn worker_stops_when_the_channel_closes() {
//!     let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
//!     let worker = leak_check::spawn(async move { while rx.recv().await.is_some() {} });
//!     tx.send(1).await.unwrap();
//!     drop(tx); // without this line, the worker leaks and the test fails
//!     worker.await.unwrap();
//! }
//! ```
//!
//! Tasks are attributed by lineage: a task belongs to the test whose body (or whose task, or
//! whose blocking closure) spawned it, so tests running in parallel, even on one shared runtime,
//! only ever see their own tasks.
//!
//! Tracking is behind the `tracking` feature. Without it, every spawn function here is the tokio
//! function it stands for. Depend on the crate without the feature, and enable it in
//! `[dev-dependencies]`:
//!
//! ```toml
//! [dependencies]
//! leak-check = "0.1"
//!
//! [dev-dependencies]
//! leak-check = { version = "0.1", features = ["tracking"] }
//! ```

#![warn(missing_docs)]
// Without `tracking` nothing is ever registered, so the bookkeeping below is unused.
#![cfg_attr(not(feature = "tracking"), allow(dead_code))]

mod check;
mod config;
mod report;
mod spawn;
mod tracking;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use config::{
    ALLOW_NAMES_ENV, ALLOW_SITES_ENV, ALLOW_UNTRACKED_ENV, DEFAULT_GRACE, GRACE_ENV, MODE_ENV,
    REPORT_ENV, TIMEOUT_ENV,
};
pub use spawn::{
    spawn, spawn_background, spawn_blocking, spawn_blocking_on, spawn_in, spawn_local, spawn_on,
    Builder,
};

/// Checks a test for leaked tasks.
///
/// It goes on a test in one of three ways:
///
/// - above `#[tokio::test]`, with any of its arguments;
/// - alone on an `async fn`, taking the same arguments: `#[leak_check(flavor = "multi_thread",
///   worker_threads = 2)]`;
/// - on a plain `#[test] fn` whose tasks run on a runtime that outlives the test, such as a
///   shared `static` one.
///
/// In the first two forms leak-check builds the runtime, so it also counts tasks spawned with
/// plain `tokio::spawn`, and it shuts the runtime down with a timeout so that a stuck
/// `spawn_blocking` closure cannot hang the test.
///
/// Arguments: `flavor`, `worker_threads`, `start_paused`, `crate` and `unhandled_panic`, as
/// `#[tokio::test]` takes them, and `grace_ms`, how long to wait for the test's tasks after the
/// body returns (default [`DEFAULT_GRACE`], or [`GRACE_ENV`] for a whole run).
///
/// ```
/// use leak_check::leak_check;
///
/// #[leak_check(flavor = "multi_thread", worker_threads = 2, grace_ms = 250)]
/// async fn every_task_is_joined() {
///     let handles: Vec<_> = (0..4).map(|i| leak_check::spawn(async move { i * 2 })).collect();
///     for handle in handles {
///         handle.await.unwrap();
///     }
/// }
/// ```
pub use leak_check_macros::leak_check;
