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

use crate::registry::{CheckCore, Slot};
use crate::task::TaskRecord;

#[derive(Clone)]
pub(crate) enum Owner {
    Body(Arc<CheckCore>),
    Task(Arc<TaskRecord>),
}

thread_local! {
    static CURRENT: Cell<Option<Owner>> = const { Cell::new(None) };
}

/// The owner of whatever is spawned here and now, if a check is active.
pub(crate) fn current() -> Option<Owner> {
    CURRENT
        .try_with(|cell| {
            let owner = cell.take();
            let copy = owner.clone();
            cell.set(owner);
            copy
        })
        .ok()
        .flatten()
}

/// Makes `owner` current until the guard drops, then restores what was current before.
pub(crate) fn enter(owner: Owner) -> Entered {
    let previous = CURRENT
        .try_with(|cell| cell.replace(Some(owner)))
        .ok()
        .flatten();
    Entered { previous }
}

pub(crate) struct Entered {
    previous: Option<Owner>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|cell| cell.set(previous));
    }
}

/// A tracked task's place in its check's registry; dropping it (the task finished, was aborted,
/// or its runtime shut down) takes the task off the registry.
pub(crate) struct Registration {
    pub(crate) record: Arc<TaskRecord>,
    slot: Slot,
}

impl Registration {
    pub(crate) fn new(record: TaskRecord) -> Self {
        let record = Arc::new(record);
        let slot = record.check.register(record.clone());
        Registration { record, slot }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.record.check.unregister(self.slot);
    }
}

pin_project_lite::pin_project! {
    /// A tracked task's future: polls the user's future with the task as the current owner and
    /// with a waker that records wakes.
    pub(crate) struct Tracked<F> {
        #[pin]
        inner: F,
        probe_waker: Waker,
        registration: Registration,
    }
}

impl<F> Tracked<F> {
    pub(crate) fn new(inner: F, registration: Registration) -> Self {
        let probe_waker = Waker::from(registration.record.probe.clone());
        Tracked {
            inner,
            probe_waker,
            registration,
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let record = &this.registration.record;
        record.probe.poll_started(cx.waker());
        let _owner = enter(Owner::Task(record.clone()));
        let result = this.inner.poll(&mut Context::from_waker(this.probe_waker));
        record.probe.poll_ended(result.is_pending());
        result
    }
}

/// Runs a blocking closure as a tracked task: spawns made inside it belong to the same check.
pub(crate) fn run_blocking<R>(registration: Registration, f: impl FnOnce() -> R) -> R {
    let _owner = enter(Owner::Task(registration.record.clone()));
    let result = f();
    drop(registration);
    result
}
