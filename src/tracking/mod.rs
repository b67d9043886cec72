//! The bookkeeping: which check owns a task, and which of its tasks are alive.
//!
//! # The protocol
//!
//! Everything a check decides about its own tasks (is a task of mine alive? which ones? what did
//! cleanup leave?) is read from one structure per check, [`CheckCore`], whose state sits behind
//! **one lock**: the set of the check's live tasks (each a [`TaskRecord`] with a number of its
//! own), how many of them are not background work, the check's [`Phase`], the waker of the
//! check if it waits, and the spare records of tasks that have ended. Every change to that
//! state, and every read of it, takes the lock; so all of them happen in one order, and each
//! read sees the state at one moment. There is no other
//! counter, cache or batch to reconcile. (Beside it, the check reads two things it cannot lock:
//! tokio's own counts of a runtime's tasks, for tasks spawned with plain `tokio::spawn`, and each
//! record's activity, for the report and to extend the deadline for a task still waiting for a
//! thread. Neither can end the wait on its own: a wrong reading costs time, or hides a plain
//! task, and the check says so in its docs.)
//!
//! Who writes what:
//!
//! | what | written by | when |
//! | --- | --- | --- |
//! | the live set, the own count | the spawning thread (`register`) | before the task can run, while its spawner is current (so still in the set) |
//! | | the thread that drops the task's future or closure (`end`), which also counts the end | after that drop, so whatever its `Drop` spawned is in the set first |
//! | the phase | the check (`enter`) | once the verdict is in (`Stopping`), once cleanup is done (`Closed`) |
//! | the waiter | the check (`wake_when`) before it looks at the set; read by `end`, which wakes it outside the lock | |
//! | the spare records | `end`, once the task has left the set, if `Arc::get_mut` shows nothing else holds its record (emptied first, outside the lock); taken by `register` | dropped when the check closes |
//! | a record's late mark | `register`, under the check's lock | a task spawned once the phase is past `Open` |
//! | a record's stop mark | a stop (`request_stop`, `abort`), or `register` once `Closed` | read at each poll of an async task and before a blocking closure runs, which then drop the future or closure instead |
//! | a record's abort state (own lock) | the check (`abort`), or `register` once `Closed`; the handle by the spawner once tokio gives it | whichever of request and handle comes second aborts |
//! | a record's activity (polled, polls, woken, in poll, finished, times) | the thread polling the task; `woken` also by any waker; `dropping` by the thread that drops an unfinished future or closure | read by the report, and by the check to extend its deadline and to say what cleanup did |
//! | a record's mark (polls, polled, in poll, hand-over, as the body ended) | the check (`mark`) | read by the check alone, to tell what the task did since |
//!
//! Orderings that pair: the check's lock orders every change of the set and the phase (the lock's
//! release and acquire). A record's abort request and its handle are ordered by the record's own
//! lock (taken after the check's, never the other way). A wake sets `woken` before it reads the
//! task's waker, and the poll that stores the waker reads `woken` after, with a `SeqCst` fence
//! between the store and the load on each side, so a wake that races the first `Pending` is
//! never lost. The owner of the current scope is a
//! thread-local, so it needs no ordering.
//!
//! # The invariants (each is a loom model in `tracking::loom`)
//!
//! The models drive `CheckCore`, `Registration` and `TaskRecord` on loom threads. The wrappers
//! that call them (`Tracked`, `Blocking`) are not modelled: they keep the two rules the
//! invariants rest on, each in one place: add before the task can run (the spawn functions), and
//! end after the future or closure is dropped with the task as owner (their `Drop`s). One thing
//! escapes the second rule: a task's output that nobody joins is dropped by tokio after the task
//! has ended, so a task spawned by that output's `Drop` belongs to no check.
//!
//! 1. **No false clean.** The own count never reads zero while an own task of the check is
//!    alive: a task is added before it can run, by a spawner that is itself in the set (or the
//!    body, which is alive), and taken out only after its future has been dropped.
//! 2. **Each straggler once.** A snapshot lists every live task exactly once: a task's record
//!    is added once and stays in the set until the task ends (only then can its allocation go
//!    to the spares, and come back as another task's record, with another id).
//! 3. **No ghost.** A task that has ended is never listed: it left the set before its end
//!    returned, and a snapshot is taken under the same lock.
//! 4. **Late arrivals are seen.** A task spawned while the check stops its stragglers (from a
//!    `Drop`) is either in the list the check took when it moved to `Stopping`, or marked late;
//!    once `Closed`, it is also marked stopped before it can run (an async task drops its future
//!    at its first poll; a blocking closure does not run).
//! 5. **No lost wake.** A check that registers its waker and then sees tasks alive is woken by
//!    the end that brings the count to what it waits for.
//! 6. **Reuse is invisible.** A record is reused only once nothing but its check's spare list
//!    holds it (`Arc::get_mut` decides, so safe Rust alone rules out the rest; the model checks
//!    that reuse happens and overwrites the whole record), and it is then overwritten whole,
//!    with a new id: whoever holds a record (a
//!    snapshot, a waker, a child's link to its parent) never sees it change owner, and a new task
//!    carries nothing of an old one. Identity is the id, never the address, which a spare
//!    shares with the task before it.
//!
//! Why spares: a task's whole life in tokio costs a few hundred nanoseconds, and allocating and
//! freeing its record (about 250 bytes, often on two threads) was a third of what tracking added
//! to it (see BENCHMARKS.md). Emptying a record lets go of its handles into tokio (which can
//! free the task, and with it, through a runtime's hooks, registrations of plain tasks) outside
//! the check's lock, so that nothing under the lock ever drops what is not the check's own.
//!
//! Ownership is by lineage: the owner (`owner::Owner`) is the test body or the tracked task being
//! polled, set in a thread-local for the duration of the poll, so every spawn inherits it.

pub(crate) mod check_core;
#[cfg(all(test, leak_check_loom))]
mod loom;
pub(crate) mod owner;
pub(crate) mod record;
pub(crate) mod sync;
pub(crate) mod tracked;

pub(crate) use check_core::{CheckCore, Phase};
pub(crate) use record::TaskRecord;
