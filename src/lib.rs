//! Make a test fail when it leaks tokio tasks, and say where each straggler was spawned.
//!
//! A leaked task outlives its purpose: blocked on a channel whose sender lives on, looping in a
//! `select!` with no way out, detached by a dropped `JoinHandle`. `#[tokio::test]` hides them by
//! dropping its runtime, which cancels them silently. [`#[leak_check]`](leak_check) waits briefly
//! for the test's own tasks when the body ends, then fails the test with a report of each task
//! still alive: its spawn site, the chain of spawns back to the test, what it was doing, and what
//! usually fixes that.
//!
//! ```
//! use std::time::Duration;
//!
//! use leak_check::leak_check;
//!
//! #[leak_check]
//! #[tokio::test]
//! async fn the_flusher_is_stopped() {
//!     let flusher = leak_check::spawn(async {
//!         loop {
//!             tokio::time::sleep(Duration::from_millis(10)).await; // flush a buffer
//!         }
//!     });
//!     // ... the test's work ...
//!
//!     // Without this line, the flusher outlives the test, and the test fails with a report.
//!     flusher.abort();
//! }
//! ```
//!
//! Spawn with [`spawn`] and the rest of the spawn family, drop-ins for `tokio::spawn` and its
//! kin, and put [`#[leak_check]`](leak_check) on the test: above `#[tokio::test]`, alone on an
//! `async fn`, on a plain `#[test]` whose tasks run on a runtime that outlives it, or on a module
//! of tests. The attribute's documentation lists its forms and arguments; the constants here name
//! the environment variables that set the same controls for a whole run.
//!
//! Tasks are attributed by lineage: a task belongs to the test whose body (or whose task, or
//! whose blocking closure) spawned it, so tests running in parallel, even on one shared runtime,
//! only ever see their own tasks.
//!
//! # Features
//!
//! - `tracking` (default): the check. Without it, every spawn function here is the tokio function
//!   it stands for, `#[leak_check]` is not there, and leak-check builds nothing but itself and
//!   tokio with its `rt` feature. So production code depends on the crate without it, and tests
//!   turn it on:
//!
//!   ```toml
//!   [dependencies]
//!   leak-check = { version = "0.1", default-features = false }
//!
//!   [dev-dependencies]
//!   leak-check = "0.1"
//!   ```
//!
//! - `taskdump`: with `--cfg tokio_unstable`, on Linux, the report shows where each straggler is
//!   stuck, its async backtrace from tokio's task dumps. Elsewhere it compiles to nothing.
//!
//! The README, in the package, walks through a leak and its report, the controls for a real
//! suite, CI, and the limits.

#![warn(missing_docs)]
// docs.rs: each item gated by a feature says so.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without `tracking` nothing is ever registered, so the bookkeeping below is unused.
#![cfg_attr(not(feature = "tracking"), allow(dead_code))]

/// Every Rust block in the README, compiled by `cargo test --doc` (and `cargo test --workspace`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// The stages, in the order a task meets them: spawned (spawn), tracked by its check
// (tracking), checked when the body ends (check), reported (report); settings come from config.
// Without `tracking` only the spawn functions (tokio's own) and the settings' names are built.
#[cfg(feature = "tracking")]
mod check;
mod config;
#[cfg(feature = "tracking")]
mod report;
mod spawn;
#[cfg(feature = "tracking")]
mod tracking;

#[cfg(feature = "tracking")]
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
/// Or it goes on an inline module, and checks every test in it (see [below](#a-module-of-tests)).
///
/// In the first two forms leak-check builds the runtime, so it also counts tasks spawned with
/// plain `tokio::spawn`, and it shuts the runtime down with a timeout so that a stuck
/// `spawn_blocking` closure cannot hang the test. Under another crate's test attribute
/// (`#[test_log::test(tokio::test)]`), that attribute runs the runtime and the check goes inside
/// the body. `#[leak_check]` must stand above `#[tokio::test]`: below it, the runtime and its
/// tasks would be gone before the check could look, so it is a compile error.
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
///
/// # Arguments
///
/// The runtime's, as `#[tokio::test]` takes them, for an async test whose runtime leak-check
/// builds (given here, or in the `#[tokio::test(...)]` below it, not in both):
///
/// | argument | what it does |
/// | --- | --- |
/// | `flavor = "multi_thread"` | the runtime's flavor: `"current_thread"` (the default) or `"multi_thread"` |
/// | `worker_threads = 2` | the multi-thread runtime's worker count |
/// | `start_paused = true` | starts the current-thread runtime's clock paused (tokio's `test-util` feature) |
/// | `crate = "my_tokio"` | the path of the tokio crate, where it is renamed or re-exported |
/// | `unhandled_panic = "shutdown_runtime"` | what a panicking task does to the current-thread runtime: `"ignore"` (the default) or `"shutdown_runtime"` (needs `--cfg tokio_unstable`) |
///
/// leak-check's controls, for any test (each also set for a whole run by the environment; the
/// test's own setting wins, and allow-lists add up):
///
/// | argument | environment | what it does |
/// | --- | --- | --- |
/// | `grace_ms = 250` | [`GRACE_ENV`] | how long to wait for the test's tasks after the body returns (default [`DEFAULT_GRACE`]) |
/// | `timeout_ms = 30000` | [`TIMEOUT_ENV`] | hang guard, for async tests only: a body still running then fails the test with its live tasks |
/// | `allow_sites = ["src/metrics.rs", "*/bg/*"]` | [`ALLOW_SITES_ENV`] | spawn sites whose stragglers are expected: a path prefix (`src/a.rs:40`) or a glob matched against `file:line:col` |
/// | `allow_names = ["metrics-*"]` | [`ALLOW_NAMES_ENV`] | task names (or globs) whose stragglers are expected |
/// | `allow_untracked = true` | [`ALLOW_UNTRACKED_ENV`] | tasks not spawned through leak-check are not held against the test |
/// | `off` | | only on a test (or a nested module) inside a checked module: opts it out |
///
/// `#[should_panic]`, `#[ignore]`, doc comments and other attributes pass through. A test may
/// return what a test may return: `Result<(), E>` under any name (an alias, `io::Result<()>`,
/// `Result<(), Box<dyn Error>>`). When it returned an error and also leaked, the failure shows
/// the error, then the report.
///
/// ```
/// use leak_check::leak_check;
///
/// type TestResult = Result<(), Box<dyn std::error::Error>>;
///
/// #[leak_check(timeout_ms = 30_000, allow_names = ["metrics-*"])]
/// #[tokio::test(start_paused = true)]
/// async fn parses_after_a_delay() -> TestResult {
///     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///     let n: u32 = leak_check::spawn(async { "42".parse::<u32>() }).await??;
///     assert_eq!(n, 42);
///     Ok(())
/// }
/// ```
///
/// # A module of tests
///
/// `#[leak_check(...)]` on an inline `mod` checks every test in it, nested modules included, as
/// if `#[leak_check(...)]` stood above each one. A test is a function with a test attribute:
/// `#[test]`, `#[tokio::test]`, another crate's `#[name::test]` (test-log's), rstest's
/// `#[rstest]` (the attribute goes below its `#[case]`s), or its own `#[leak_check(...)]`. Other
/// functions are left alone.
///
/// - The module takes leak-check's controls only (`grace_ms`, `timeout_ms`, `allow_sites`,
///   `allow_names`, `allow_untracked`), which apply to each test; runtime arguments go on the
///   tests.
/// - A test's own `#[leak_check(...)]` inside it is merged with the module's: per argument, the
///   test's wins. It needs no `use`: the module's attribute reads it.
/// - `#[leak_check(off)]` opts a test (or a nested module) out: it stays as written, unchecked.
/// - A nested module's own `#[leak_check(...)]` wins over the outer module's, per argument.
/// - The module's `timeout_ms` goes to its async tests only: a sync body cannot be stopped, so its
///   sync tests are checked without it (a sync test's own `timeout_ms` is a compile error).
/// - The attribute sees the module's source as written: not the tests a `macro_rules!` macro
///   would write, nor the items of a module kept in another file (`mod tests;`, a compile error:
///   write it inline, or check its tests one by one).
///
/// ```
/// use leak_check::leak_check;
///
/// #[leak_check(grace_ms = 250, allow_names = ["metrics-*"])]
/// mod tests {
///     #[tokio::test]
///     async fn checked_with_the_modules_settings() {
///         let task = leak_check::spawn(async { 1 + 1 });
///         assert_eq!(task.await.unwrap(), 2);
///     }
///
///     // Its own arguments: the runtime's, and a grace period that wins over the module's.
///     #[leak_check(flavor = "multi_thread", worker_threads = 2, grace_ms = 500)]
///     async fn with_its_own_arguments() {}
///
///     #[leak_check(off)]
///     #[tokio::test]
///     async fn not_checked() {}
///
///     mod nested {
///         #[tokio::test]
///         async fn checked_as_well() {}
///     }
///
///     // Not a test: left as it is.
///     async fn helper() -> u32 {
///         7
///     }
/// }
/// ```
#[cfg(feature = "tracking")]
pub use leak_check_macros::leak_check;
