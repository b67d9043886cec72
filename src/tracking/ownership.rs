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

use crate::tracking::cohort::{self, Cohort};
use crate::tracking::registry::CheckCore;
use crate::tracking::task::{Lineage, ParentRef, TaskRecord};

#[derive(Clone)]
pub(crate) enum Owner {
    Body(Arc<CheckCore>),
    Task(Arc<TaskRecord>),
    /// A task that has not yielded yet, polled or dropped as one of its cohort.
    Unyielded(Arc<Cohort>),
}

impl Owner {
    /// What a task spawned here inherits.
    pub(crate) fn lineage(&self) -> Lineage<'_> {
        match self {
            Owner::Body(check) => Lineage {
                check,
                parent: ParentRef::Body,
                depth: 1,
                background: false,
            },
            Owner::Task(record) => Lineage::child_of(
                &record.check,
                record.depth(),
                || record.origin_for_children(),
                record.background,
            ),
            Owner::Unyielded(cohort) => Lineage::child_of(
                &cohort.check,
                cohort.depth,
                || cohort.origin_for_children(),
                false,
            ),
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
    let mut current = Some(Current { owner, task });
    // Without the thread-local (the thread is exiting) nothing is entered, and the owner is
    // kept here to be given back by `leave`.
    let previous = CURRENT
        .try_with(|cell| cell.replace(current.take()))
        .ok()
        .flatten();
    Entered {
        previous,
        unentered: current.map(|current| current.owner),
        left: false,
    }
}

/// Whether a check owns this place (see [`with_current`]).
pub(crate) fn is_owned() -> bool {
    with_current(|_| ()).is_some()
}

pub(crate) struct Entered {
    previous: Option<Current>,
    unentered: Option<Owner>,
    left: bool,
}

impl Entered {
    /// Restores what was current before, and gives back the owner that was entered.
    fn leave(&mut self) -> Option<Owner> {
        if std::mem::replace(&mut self.left, true) {
            return None;
        }
        let previous = self.previous.take();
        let entered = CURRENT
            .try_with(|cell| cell.replace(previous))
            .ok()
            .flatten()
            .map(|current| current.owner);
        entered.or_else(|| self.unentered.take())
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.leave();
    }
}

/// A tracked task's entry in its check; dropping it (the task finished, was aborted, or its
/// runtime shut down) counts the task as finished.
pub(crate) struct Registration {
    pub(crate) record: Arc<TaskRecord>,
}

impl Registration {
    /// Counts a new task and keeps its record.
    pub(crate) fn new(record: TaskRecord) -> Self {
        let record = Arc::new(record);
        record.check.register(&record);
        Registration { record }
    }

    /// Keeps the record of a task its check counted already (one that has just yielded).
    fn adopt(record: TaskRecord) -> Self {
        let record = Arc::new(record);
        record.check.keep(&record);
        Registration { record }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.record.check.finish(&self.record);
    }
}

pin_project_lite::pin_project! {
    /// A tracked task's future: polls the user's future with the task as the current owner.
    ///
    /// A task starts as one of its cohort: counted by its check, with no record of its own, so
    /// that a task that finishes in its first poll costs little. If it yields, it gets a record,
    /// which from then on is also its waker, so that the report can tell whether anything can
    /// still wake it. The user's future is always dropped with the task as the owner (tasks
    /// spawned by its `Drop` impls belong to the test too), and before the task counts as
    /// finished.
    pub(crate) struct Tracked<F> {
        // `None` once finished or aborted: an aborted task is then an empty shell until its
        // runtime drops it.
        #[pin]
        inner: Option<F>,
        task: TaskSlot,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Counted as finished even if the future's Drop panics.
            let finish = Finish(this.task);
            drop_as_owner(this.inner, finish.0);
        }
    }
}

/// What leak-check holds for one tracked task.
enum TaskSlot {
    /// Not yielded yet. If its check stops its tasks before it is first polled (the check's
    /// stop epoch has moved on from its cohort's), it is dropped unpolled.
    InCohort(Arc<Cohort>),
    /// The cohort is lent to the thread as its owner, during a poll or the future's drop.
    Lent,
    /// Boxed, so that a task that never yields carries two words: tokio's task cell for a small
    /// future then stays in its smallest size (128 bytes on x86_64).
    Recorded(Box<Recorded>),
    Finished,
}

/// A task with a record of its own.
struct Recorded {
    registration: Registration,
    /// The record as a waker, handed to the user's future on each poll.
    waker: Waker,
}

impl Recorded {
    fn new(registration: Registration) -> Box<Self> {
        let waker = Waker::from(registration.record.clone());
        Box::new(Recorded {
            registration,
            waker,
        })
    }
}

impl TaskSlot {
    fn abort_requested(&self) -> bool {
        match self {
            TaskSlot::InCohort(cohort) => cohort.check.stop_epoch() != cohort.epoch,
            TaskSlot::Recorded(recorded) => recorded.registration.record.abort_requested(),
            TaskSlot::Lent | TaskSlot::Finished => false,
        }
    }

    /// The task has yielded for the first time: it gets a record of its own, kept before its
    /// cohort counts it gone, so that the check never misses it.
    fn record(&mut self, task_waker: &Waker) {
        let TaskSlot::InCohort(cohort) = self else {
            return;
        };
        let registration = Registration::adopt(TaskRecord::yielded(cohort));
        cohort.count_gone();
        // Read after the record is kept: a check that stops its tasks moves the epoch on and then
        // looks for records, so either it aborts this one or this one sees the new epoch.
        if cohort.check.stop_epoch() != cohort.epoch {
            registration.record.abort();
        }
        // A new record starts woken, so this wakes the task at once: its next poll then hands
        // the future the record as its waker, and the check can see who holds it.
        registration.record.poll_ended(true, task_waker);
        let recorded = TaskSlot::Recorded(Recorded::new(registration));
        if let TaskSlot::InCohort(cohort) = std::mem::replace(self, recorded) {
            cohort::let_go(cohort);
        }
    }

    /// Counts the task as finished (a recorded task: when its registration drops).
    fn finish(&mut self) {
        let TaskSlot::InCohort(cohort) = std::mem::replace(self, TaskSlot::Finished) else {
            return;
        };
        // Gone from its cohort before it counts as finished, so that a check woken by the count
        // reads the cohort's agreeing.
        cohort.count_gone();
        cohort.check.count_finish_in_cohort();
        if cohort.check.is_waited_for() {
            cohort.check.wake_waiter();
        }
        cohort::let_go(cohort);
    }
}

/// Finishes the task when dropped, even by a panic.
struct Finish<'a>(&'a mut TaskSlot);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Runs `f` with the task as the current owner.
fn as_owner<R>(slot: &mut TaskSlot, f: impl FnOnce() -> R) -> R {
    match std::mem::replace(slot, TaskSlot::Lent) {
        TaskSlot::InCohort(cohort) => {
            let _lent = Lent {
                lent: Arc::as_ptr(&cohort),
                entered: enter(Owner::Unyielded(cohort)),
                slot,
            };
            f()
        }
        TaskSlot::Recorded(recorded) => {
            let _owner = enter(Owner::Task(recorded.registration.record.clone()));
            *slot = TaskSlot::Recorded(recorded);
            f()
        }
        other => {
            *slot = other;
            f()
        }
    }
}

/// Gives a task's cohort back to the task when its poll or drop ends, even by a panic, so that
/// the task is still counted as finished when it is dropped.
struct Lent<'a> {
    lent: *const Cohort,
    entered: Entered,
    slot: &'a mut TaskSlot,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(Owner::Unyielded(cohort)) = self.entered.leave() {
            debug_assert!(std::ptr::eq(Arc::as_ptr(&cohort), self.lent));
            *self.slot = TaskSlot::InCohort(cohort);
        }
    }
}

/// Drops a pinned future with its task as the current owner.
fn drop_as_owner<F>(mut future: Pin<&mut Option<F>>, slot: &mut TaskSlot) {
    if future.is_some() {
        as_owner(slot, || future.set(None));
    }
}

/// Polls the user's future, and drops it as soon as it is done, while its owner is entered.
fn poll_inner<F: Future>(mut future: Pin<&mut Option<F>>, waker: &Waker) -> Poll<F::Output> {
    let Some(inner) = future.as_mut().as_pin_mut() else {
        return Poll::Pending;
    };
    let result = inner.poll(&mut Context::from_waker(waker));
    if result.is_ready() {
        future.set(None);
    }
    result
}

impl<F> Tracked<F> {
    /// A task with a record from the start.
    pub(crate) fn new(inner: F, registration: Registration) -> Self {
        Tracked {
            inner: Some(inner),
            task: TaskSlot::Recorded(Recorded::new(registration)),
        }
    }

    /// A task of `cohort`, counted here, before it can run.
    pub(crate) fn in_cohort(inner: F, cohort: Arc<Cohort>) -> Self {
        cohort.count_spawn();
        cohort.check.count_spawn_in_cohort(cohort.thread);
        Tracked {
            inner: Some(inner),
            task: TaskSlot::InCohort(cohort),
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if this.task.abort_requested() {
            // Drop the user's future here and now, then count the task as finished.
            let finish = Finish(this.task);
            drop_as_owner(this.inner.as_mut(), finish.0);
            return Poll::Pending;
        }
        match this.task {
            TaskSlot::Recorded(recorded) => {
                let record = &recorded.registration.record;
                record.poll_started();
                let result = {
                    let _owner = enter(Owner::Task(record.clone()));
                    poll_inner(this.inner.as_mut(), &recorded.waker)
                };
                record.poll_ended(result.is_pending(), cx.waker());
                result
            }
            TaskSlot::InCohort(_) => {
                let result = as_owner(this.task, || poll_inner(this.inner.as_mut(), cx.waker()));
                if result.is_ready() {
                    this.task.finish();
                } else {
                    this.task.record(cx.waker());
                }
                result
            }
            TaskSlot::Lent | TaskSlot::Finished => Poll::Pending,
        }
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

#[cfg(test)]
mod tests {
    use super::Tracked;

    fn tracked_size<F>(_: &F) -> usize {
        std::mem::size_of::<Tracked<F>>()
    }

    /// tokio's task cell on x86_64 is 128 bytes for a future of up to 24 bytes with a unit
    /// output, and 256 bytes above: the wrapper adds two words, so that a small task that never
    /// yields stays in the small cell.
    #[test]
    fn the_wrapper_adds_two_words() {
        let word = std::mem::size_of::<usize>();
        let empty = async {};
        assert_eq!(tracked_size(&empty), 3 * word, "one byte of state, padded");
        let bigger = std::future::ready([0usize; 2]);
        let rounded = std::mem::size_of_val(&bigger).next_multiple_of(word);
        assert_eq!(tracked_size(&bigger), rounded + 2 * word);
    }
}
