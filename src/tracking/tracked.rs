//! A tracked task: its registration in its check, and the future wrapper that polls and drops
//! the user's future with the task as the current owner.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::check_core::Key;
use super::owner::{enter, Owner};
use super::record::TaskRecord;

/// A tracked task's place in its check's set; dropping it (the task's future or closure is gone:
/// finished, aborted, or dropped with its runtime) ends the task.
pub(crate) struct Registration {
    pub(crate) record: Arc<TaskRecord>,
    key: Option<Key>,
}

impl Registration {
    /// Adds a new task to its check's set. Call before the task can run.
    pub(crate) fn new(record: TaskRecord) -> Self {
        let record = Arc::new(record);
        let key = record.check.register(&record);
        Registration {
            record,
            key: Some(key),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.record.check.end(key);
        }
    }
}

pin_project_lite::pin_project! {
    /// A tracked task's future: polls the user's future with the task as the current owner,
    /// handing it the task's record as its waker, so that the report can tell whether anything
    /// can still wake it. The user's future is always dropped with the task as the owner (tasks
    /// spawned by its `Drop` impls belong to the test too), and before the task ends.
    pub(crate) struct Tracked<F> {
        // `None` once finished.
        #[pin]
        inner: Option<F>,
        registration: Registration,
        // The record as a waker, made at the first poll.
        waker: Option<Waker>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.inner.is_some() {
                let _owner = enter(Owner::Task(this.registration.record.clone()));
                this.inner.set(None);
            }
            // The registration drops after this, even if the future's `Drop` panicked.
        }
    }
}

impl<F> Tracked<F> {
    pub(crate) fn new(inner: F, registration: Registration) -> Self {
        Tracked {
            inner: Some(inner),
            registration,
            waker: None,
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let record = &this.registration.record;
        if record.stop_requested() {
            // Stopped in the middle of a poll: drop the future now, as its owner; tokio's
            // abort, on its way, then ends the task.
            if this.inner.is_some() {
                let _owner = enter(Owner::Task(record.clone()));
                this.inner.set(None);
            }
            return Poll::Pending;
        }
        record.poll_started();
        let waker = this
            .waker
            .get_or_insert_with(|| Waker::from(record.clone()));
        let result = {
            let _owner = enter(Owner::Task(record.clone()));
            match this.inner.as_mut().as_pin_mut() {
                Some(inner) => {
                    let result = inner.poll(&mut Context::from_waker(waker));
                    if result.is_ready() {
                        // Dropped here, as the owner, before tokio drops the output's task.
                        this.inner.set(None);
                    }
                    result
                }
                None => Poll::Pending,
            }
        };
        record.poll_ended(result.is_pending(), cx.waker());
        result
    }
}

/// Runs a blocking closure as a tracked task: spawns made inside it belong to the same check.
pub(crate) fn run_blocking<R>(registration: Registration, f: impl FnOnce() -> R) -> R {
    registration.record.closure_started();
    let _owner = enter(Owner::Task(registration.record.clone()));
    f()
}
