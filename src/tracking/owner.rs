//! The thread-local scope: who owns what is spawned here and now.
//!
//! The owner is set while the test body or a tracked task is being polled (or a tracked blocking
//! closure runs), so every spawn made from there inherits it, however deep, and tests running in
//! parallel on one runtime never see each other's tasks.
//!
//! The thread also carries a runtime token: the number of the leak-check runtime it works for,
//! if any, which names the runtime of a plain task its hooks see, and of a spawn made where no
//! runtime is current.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::check_core::CheckCore;
use super::record::{Lineage, TaskRecord};

#[derive(Clone)]
pub(crate) enum Owner {
    /// The test body (or a checked sync test's closure).
    Body(Arc<CheckCore>),
    /// A tracked task, while it is polled or dropped, or its blocking closure runs.
    Task(Arc<TaskRecord>),
}

impl Owner {
    /// The check whatever is spawned here belongs to.
    pub(crate) fn check(&self) -> &Arc<CheckCore> {
        match self {
            Owner::Body(check) => check,
            Owner::Task(record) => record.check(),
        }
    }

    /// What a task spawned here inherits.
    pub(crate) fn lineage(&self) -> Lineage<'_> {
        match self {
            Owner::Body(check) => Lineage::of_body(check),
            Owner::Task(record) => Lineage::of_task(record),
        }
    }
}

/// The owner of this thread's current scope, and the tokio task (if any) that entered it.
struct Current {
    owner: Owner,
    task: Option<tokio::task::Id>,
}

thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// Calls `f` with the owner of whatever is spawned here and now, if a check is active.
///
/// A tokio task other than the one that entered the scope may be running inside it: a sync
/// test's body that calls `block_on` on a current-thread runtime polls that runtime's tasks,
/// which belong to whoever spawned them, not to this test.
pub(crate) fn with_current<R>(f: impl FnOnce(&Owner) -> R) -> Option<R> {
    CURRENT
        .try_with(|cell| {
            let current = cell.take()?;
            let result = (current.task == tokio::task::try_id()).then(|| f(&current.owner));
            cell.set(Some(current));
            result
        })
        .ok()
        .flatten()
}

/// Makes `owner` current until the guard drops, then restores what was current before.
pub(crate) fn enter(owner: Owner) -> Entered {
    enter_for(owner, tokio::task::try_id())
}

/// Like [`enter`], for the tokio task `task` (which need not be running yet: tokio's poll hooks
/// run just before the task's id is set).
pub(crate) fn enter_for(owner: Owner, task: Option<tokio::task::Id>) -> Entered {
    // Without the thread-local (the thread is exiting) nothing is entered.
    let previous = CURRENT
        .try_with(|cell| cell.replace(Some(Current { owner, task })))
        .ok()
        .flatten();
    Entered { previous }
}

/// Whether a check owns this place (see [`with_current`]).
pub(crate) fn is_owned() -> bool {
    with_current(|_| ()).is_some()
}

/// Restores, when dropped, the owner that was current before [`enter`].
pub(crate) struct Entered {
    previous: Option<Current>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|cell| cell.set(previous));
    }
}

static NEXT_RUNTIME_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static RUNTIME_TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// A number for a runtime leak-check builds, unique in the process (never 0).
pub(crate) fn new_runtime_token() -> u64 {
    NEXT_RUNTIME_TOKEN.fetch_add(1, Ordering::Relaxed)
}

/// The token of the leak-check runtime this thread works for; 0 for none.
pub(crate) fn runtime_token() -> u64 {
    RUNTIME_TOKEN.try_with(Cell::get).unwrap_or(0)
}

/// Marks this thread as working for the runtime `token` (0: none); returns what it was.
pub(crate) fn set_runtime_token(token: u64) -> u64 {
    RUNTIME_TOKEN
        .try_with(|cell| cell.replace(token))
        .unwrap_or(0)
}
