//! Ownership by lineage: a task belongs to the check that was active where it was spawned.
//!
//! The owner travels in a thread-local that is set while the test body or a tracked task is
//! being polled (or a tracked blocking closure runs), so every spawn made from there inherits it,
//! however deep, and tests running in parallel on one runtime never see each other's tasks.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::registry::CheckCore;
use crate::task::TaskRecord;

#[derive(Clone)]
pub(crate) enum Owner {
    Body(Arc<CheckCore>),
    Task(Arc<TaskRecord>),
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
    let current = Current { owner, task };
    let previous = CURRENT
        .try_with(|cell| cell.replace(Some(current)))
        .ok()
        .flatten();
    Entered { previous }
}

/// Whether a check owns this place (see [`with_current`]).
pub(crate) fn is_owned() -> bool {
    with_current(|_| ()).is_some()
}

pub(crate) struct Entered {
    previous: Option<Current>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|cell| cell.set(previous));
    }
}

/// A tracked task's entry in its check; dropping it (the task finished, was aborted, or its
/// runtime shut down) counts the task as finished.
pub(crate) struct Registration {
    pub(crate) record: Arc<TaskRecord>,
}

impl Registration {
    pub(crate) fn new(record: TaskRecord) -> Self {
        let record = Arc::new(record);
        record.check.register(&record);
        Registration { record }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.record.check.finish(&self.record);
    }
}

pin_project_lite::pin_project! {
    /// A tracked task's future: polls the user's future with the task as the current owner and
    /// with the task's record as its waker. The user's future is always dropped with the task
    /// as the owner (tasks spawned by its `Drop` impls belong to the test too), and before the
    /// task counts as finished.
    pub(crate) struct Tracked<F> {
        // `None` once finished or aborted: an aborted task is then an empty shell until its
        // runtime drops it.
        #[pin]
        inner: Option<F>,
        record_waker: Waker,
        registration: Option<Registration>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(registration) = this.registration.as_ref() {
                drop_as_owner(this.inner, registration);
            }
        }
    }
}

/// Drops a pinned future with its task as the current owner.
fn drop_as_owner<F>(mut future: Pin<&mut Option<F>>, registration: &Registration) {
    if future.is_some() {
        let _owner = enter(Owner::Task(registration.record.clone()));
        future.set(None);
    }
}

impl<F> Tracked<F> {
    pub(crate) fn new(inner: F, registration: Registration) -> Self {
        let record_waker = Waker::from(registration.record.clone());
        Tracked {
            inner: Some(inner),
            record_waker,
            registration: Some(registration),
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let Some(registration) = this.registration.as_ref() else {
            return Poll::Pending;
        };
        if registration.record.abort_requested() {
            // Drop the user's future here and now, then count the task as finished.
            drop_as_owner(this.inner.as_mut(), registration);
            *this.registration = None;
            return Poll::Pending;
        }
        let record = &registration.record;
        record.poll_started();
        let result = {
            let _owner = enter(Owner::Task(record.clone()));
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                return Poll::Pending;
            };
            let result = inner.poll(&mut Context::from_waker(this.record_waker));
            if result.is_ready() {
                // Done: drop it while the owner is still entered, so the drop needs no more.
                this.inner.set(None);
            }
            result
        };
        record.poll_ended(result.is_pending(), cx.waker());
        result
    }
}

/// Runs a blocking closure as a tracked task: spawns made inside it belong to the same check.
pub(crate) fn run_blocking<R>(registration: Registration, f: impl FnOnce() -> R) -> R {
    registration.record.closure_started();
    let _owner = enter(Owner::Task(registration.record.clone()));
    let result = f();
    drop(registration);
    result
}
