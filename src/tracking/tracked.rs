//! A tracked task: its registration in its check, and the future wrapper that polls and drops
//! the user's future with the task as the current owner.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::check_core::CheckCore;
use super::owner::{enter, Owner};
use super::record::TaskRecord;

/// A tracked task's place in its check's set. Ending it ([`Registration::end`], or dropping it:
/// the task's future or closure is gone: finished, stopped, or dropped with its runtime) ends
/// the task.
pub(crate) struct Registration {
    /// `None` once the task has ended.
    record: Option<Arc<TaskRecord>>,
}

// A tracked task's wrapper adds one word to its future.
const _: () = assert!(std::mem::size_of::<Registration>() == std::mem::size_of::<usize>());

impl Registration {
    /// Adds a new task to `check`'s set (the check of the owner `record` was made for). Call
    /// before the task can run.
    pub(crate) fn new(check: &Arc<CheckCore>, record: TaskRecord) -> Self {
        debug_assert!(
            Arc::ptr_eq(check, record.check()),
            "a task is registered in its own check"
        );
        Registration {
            record: Some(check.register(record)),
        }
    }

    /// The task's record, until the task has ended.
    pub(crate) fn record(&self) -> Option<&Arc<TaskRecord>> {
        self.record.as_ref()
    }

    /// Ends the task, once: call after its future or closure has been dropped.
    pub(crate) fn end(&mut self) {
        if let Some(record) = self.record.take() {
            CheckCore::end(record);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.end();
    }
}

pin_project_lite::pin_project! {
    /// A tracked task's future: polls the user's future with the task as the current owner. From
    /// its second poll on it hands the future the task's record as its waker, so that the report
    /// can tell whether anything can still wake it. The user's future is always dropped with the
    /// task as the owner (tasks spawned by its `Drop` impls belong to the test too), and before
    /// the task ends.
    pub(crate) struct Tracked<F> {
        // `None` once finished or stopped.
        #[pin]
        inner: Option<F>,
        // Ended once the task has ended (stopped: tokio still holds this empty shell until its
        // runtime drops it or the abort reaches it).
        registration: Registration,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            drop_as_owner(this.inner, this.registration);
            // The registration drops after this, even if the future's `Drop` panicked.
        }
    }
}

/// Drops the user's future, if it is still there, with its task as the current owner.
fn drop_as_owner<F>(mut inner: Pin<&mut Option<F>>, registration: &Registration) {
    if let (true, Some(record)) = (inner.is_some(), registration.record()) {
        record.dropping_started();
        let _owner = enter(Owner::Task(record.clone()));
        inner.set(None);
    }
}

impl<F> Tracked<F> {
    pub(crate) fn new(inner: F, registration: Registration) -> Self {
        Tracked {
            inner: Some(inner),
            registration,
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let Some(record) = this.registration.record() else {
            return Poll::Pending;
        };
        if record.stop_requested() {
            // Stopped: drop the future now, as its owner, and end the task. tokio keeps the
            // empty shell until its runtime drops it.
            drop_as_owner(this.inner.as_mut(), this.registration);
            this.registration.end();
            return Poll::Pending;
        }
        // The poll right after the first, which only hands over the record's waker, is not
        // counted: it is no evidence of a loop.
        let handing_over = record.first_poll_pending();
        let first_poll = record.poll_started(!handing_over);
        // From the second poll on, the record is the future's waker (a clone per poll, so that
        // the wrapper stays one word over the future and small tasks keep tokio's small cell).
        let record_waker;
        let waker = if first_poll {
            cx.waker()
        } else {
            record_waker = Waker::from(record.clone());
            &record_waker
        };
        let result = {
            let _owner = enter(Owner::Task(record.clone()));
            match this.inner.as_mut().as_pin_mut() {
                Some(inner) => {
                    let result = inner.poll(&mut Context::from_waker(waker));
                    if result.is_ready() {
                        // Dropped here, as the owner, before tokio drops the output's task.
                        this.inner.set(None);
                        record.mark_finished();
                    }
                    result
                }
                None => Poll::Pending,
            }
        };
        // The first poll handed out tokio's waker. It left the record's `woken` mark set (see
        // `TaskRecord::poll_started`), so if it returned `Pending`, `poll_ended` wakes the task
        // at once and it is polled again with the record's waker, so that what holds it from
        // then on is seen.
        record.poll_ended(result.is_pending(), cx.waker());
        result
    }
}

/// A tracked blocking closure, as tokio holds it until a thread runs it. Whether it runs or is
/// dropped unrun (aborted while queued, or its runtime shut down), the closure and whatever it
/// captured are dropped with the task as the current owner, and before the task ends.
pub(crate) struct Blocking<F> {
    f: Option<F>,
    registration: Registration,
}

impl<F> Blocking<F> {
    pub(crate) fn new(registration: Registration, f: F) -> Self {
        Blocking {
            f: Some(f),
            registration,
        }
    }
}

impl<F: FnOnce() -> R, R> Blocking<F> {
    /// Runs the closure with the task as the current owner: spawns made inside it belong to the
    /// same check. A closure stopped before it started (spawned once its check had closed, and
    /// run before tokio's abort could reach it) does not run: the task ends with a panic
    /// payload that says so, without calling the panic hook.
    pub(crate) fn run(mut self) -> R {
        let (Some(f), Some(record)) = (self.f.take(), self.registration.record()) else {
            unreachable!("a blocking task runs once")
        };
        let _owner = enter(Owner::Task(record.clone()));
        if record.stop_requested() {
            drop(f);
            std::panic::resume_unwind(Box::new(
                "leak-check: this blocking closure was stopped before it ran: its check had ended",
            ));
        }
        record.closure_started();
        f()
    }
}

impl<F> Drop for Blocking<F> {
    fn drop(&mut self) {
        if let (Some(f), Some(record)) = (self.f.take(), self.registration.record()) {
            record.dropping_started();
            let _owner = enter(Owner::Task(record.clone()));
            drop(f);
        }
        // The registration drops after the closure, even if the closure's `Drop` panicked.
    }
}
