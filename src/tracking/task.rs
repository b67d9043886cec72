//! What leak-check knows about one tracked task: where it came from and what it is doing.
//!
//! The record is also the waker handed to the task's future, so one allocation per task covers
//! identity, activity and wake tracking; how many wakers are held elsewhere is then read off the
//! record's strong count.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Wake, Waker};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::tracking::clock;
use crate::tracking::cohort::Cohort;
use crate::tracking::ownership::Owner;
use crate::tracking::registry::CheckCore;

/// Chains longer than this are cut, so a task that re-spawns itself forever does not keep an
/// ever-growing list of ancestors alive.
const MAX_CHAIN_DEPTH: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Async,
    Local,
    Blocking,
    /// Spawned with plain `tokio::spawn` and seen through tokio's task hooks
    /// (`--cfg tokio_unstable`): its polls are seen, its wakers are not.
    Plain,
}

/// Where a task came from: its spawn site, name, and who spawned it.
#[derive(Clone)]
pub(crate) struct Origin {
    pub(crate) site: &'static Location<'static>,
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) parent: Parent,
    depth: u32,
}

/// Who spawned a task: the test body itself, another tracked task, or an ancestor too far up.
#[derive(Clone)]
pub(crate) enum Parent {
    Body,
    Task(Arc<Origin>),
    Cut,
}

impl Origin {
    pub(crate) fn new(
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
        parent: Parent,
        depth: u32,
    ) -> Origin {
        Origin {
            site,
            name,
            parent,
            depth,
        }
    }
}

/// What a task inherits from whoever spawns it.
pub(crate) struct Lineage<'a> {
    pub(crate) check: &'a Arc<CheckCore>,
    pub(crate) parent: ParentRef<'a>,
    /// The new task's depth in the chain from the test body (1 for the body's own tasks).
    pub(crate) depth: u32,
    pub(crate) background: bool,
}

#[derive(Clone, Copy)]
pub(crate) enum ParentRef<'a> {
    Body,
    Task(&'a Arc<Origin>),
    Cut,
}

impl ParentRef<'_> {
    pub(crate) fn to_parent(self) -> Parent {
        match self {
            ParentRef::Body => Parent::Body,
            ParentRef::Task(origin) => Parent::Task(origin.clone()),
            ParentRef::Cut => Parent::Cut,
        }
    }
}

impl<'a> Lineage<'a> {
    /// A child of a task at `depth` whose children link to `origin`.
    pub(crate) fn child_of(
        check: &'a Arc<CheckCore>,
        depth: u32,
        origin: impl FnOnce() -> &'a Arc<Origin>,
        background: bool,
    ) -> Lineage<'a> {
        let (parent, depth) = if depth >= MAX_CHAIN_DEPTH {
            (ParentRef::Cut, 1)
        } else {
            (ParentRef::Task(origin()), depth + 1)
        };
        Lineage {
            check,
            parent,
            depth,
            background,
        }
    }
}

pub(crate) struct TaskRecord {
    pub(crate) check: Arc<CheckCore>,
    pub(crate) origin: Origin,
    pub(crate) kind: TaskKind,
    /// Sanctioned to outlive the body (a server, a ticker): never reported, always stopped at
    /// the end. Whatever such a task spawns is background too.
    pub(crate) background: bool,
    /// Made when the task first spawns a child, which links to it.
    origin_for_children: OnceLock<Arc<Origin>>,
    /// Only blocking tasks have one; an async task is aborted through `abort_requested`.
    abort: OnceLock<AbortHandle>,
    abort_requested: AtomicBool,
    /// Set once the task's future (or closure) is gone: finished, aborted, or its runtime shut.
    done: AtomicBool,
    /// When the task first returned `Pending` (a blocking task: when its closure started). Its
    /// age counts from there, so that a task that finishes in its first poll reads no clock.
    started_nanos: AtomicU64,
    polls: AtomicU32,
    polls_at_mark: AtomicU32,
    in_poll: AtomicBool,
    /// Set by a wake, cleared when a poll starts. A new task starts scheduled.
    woken: AtomicBool,
    last_pending_nanos: AtomicU64,
    /// tokio's waker for this task, to which every wake is forwarded.
    task_waker: OnceLock<Waker>,
    /// tokio's id for the task, kept only where task dumps can use it.
    task_id: OnceLock<tokio::task::Id>,
    /// See [`TaskRecord::cohort_epoch`].
    cohort_epoch: Option<u32>,
}

/// Strong references a live, tracked task holds to its own record when it is not being polled:
/// its registration and the waker it polls with. Any more are wakers held elsewhere.
pub(crate) const OWN_REFS: usize = 2;

impl TaskRecord {
    pub(crate) fn new(
        owner: &Owner,
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
        kind: TaskKind,
        background: bool,
    ) -> Self {
        let lineage = owner.lineage();
        let origin = Origin::new(site, name, lineage.parent.to_parent(), lineage.depth);
        Self::with_origin(
            lineage.check.clone(),
            origin,
            kind,
            background || lineage.background,
        )
    }

    /// The record of a task of `cohort` that has just returned `Pending` from its first poll.
    /// That poll is not counted: the task is woken at once to be polled again with the record
    /// as its waker (see `Tracked`), and that poll counts as its first.
    pub(crate) fn yielded(cohort: &Cohort) -> Self {
        let mut record = Self::with_origin(
            cohort.check.clone(),
            cohort.origin(),
            TaskKind::Async,
            false,
        );
        record.cohort_epoch = Some(cohort.epoch);
        record
    }

    /// The stop epoch of the cohort the task was one of before it yielded, if it began in one.
    pub(crate) fn cohort_epoch(&self) -> Option<u32> {
        self.cohort_epoch
    }

    fn with_origin(
        check: Arc<CheckCore>,
        origin: Origin,
        kind: TaskKind,
        background: bool,
    ) -> Self {
        TaskRecord {
            check,
            origin,
            kind,
            background,
            origin_for_children: OnceLock::new(),
            abort: OnceLock::new(),
            abort_requested: AtomicBool::new(false),
            done: AtomicBool::new(false),
            started_nanos: AtomicU64::new(0),
            polls: AtomicU32::new(0),
            polls_at_mark: AtomicU32::new(0),
            in_poll: AtomicBool::new(false),
            woken: AtomicBool::new(true),
            last_pending_nanos: AtomicU64::new(0),
            task_waker: OnceLock::new(),
            task_id: OnceLock::new(),
            cohort_epoch: None,
        }
    }

    /// Remembers tokio's id for the task, where task dumps can use it (see `dump`).
    pub(crate) fn note_task_id(&self, id: Option<tokio::task::Id>) {
        if crate::check::dump::ENABLED {
            if let Some(id) = id {
                let _ = self.task_id.set(id);
            }
        }
    }

    pub(crate) fn task_id(&self) -> Option<tokio::task::Id> {
        self.task_id.get().copied()
    }

    pub(crate) fn origin_for_children(&self) -> &Arc<Origin> {
        self.origin_for_children
            .get_or_init(|| Arc::new(self.origin.clone()))
    }

    pub(crate) fn depth(&self) -> u32 {
        self.origin.depth
    }

    /// Keeps a blocking task's handle. An abort that came before the handle is passed on:
    /// `abort` sets its flag before looking for the handle, and this stores the handle before
    /// looking at the flag, so one of the two always aborts.
    pub(crate) fn set_abort_handle(&self, handle: AbortHandle) {
        let handle = self.abort.get_or_init(|| handle);
        fence(Ordering::SeqCst);
        if self.abort_requested() {
            handle.abort();
        }
    }

    /// Aborts the task: a blocking one through tokio (effective only if it has not started);
    /// an async one is woken to drop its future at its next poll.
    pub(crate) fn abort(self: &Arc<Self>) {
        self.abort_requested.store(true, Ordering::SeqCst);
        if let Some(handle) = self.abort.get() {
            handle.abort();
        }
        self.wake_by_ref();
    }

    pub(crate) fn abort_requested(&self) -> bool {
        self.abort_requested.load(Ordering::SeqCst)
    }

    /// A blocking task whose closure has started (it can no longer be aborted).
    pub(crate) fn closure_running(&self) -> bool {
        self.kind == TaskKind::Blocking && self.started_nanos.load(Ordering::Relaxed) != 0
    }

    /// For blocking tasks, whose age counts from the start of their closure.
    pub(crate) fn closure_started(&self) {
        self.started_nanos.store(clock::now(), Ordering::Relaxed);
    }

    pub(crate) fn mark_done(&self) {
        self.done.store(true, Ordering::Release);
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    pub(crate) fn poll_started(&self) {
        if crate::check::dump::ENABLED && self.task_id.get().is_none() {
            self.note_task_id(tokio::task::try_id());
        }
        self.woken.store(false, Ordering::SeqCst);
        self.in_poll.store(true, Ordering::Relaxed);
        // Only the thread polling the task writes the count: no read-modify-write needed.
        let polls = self.polls.load(Ordering::Relaxed);
        self.polls.store(polls.wrapping_add(1), Ordering::Relaxed);
    }

    /// `task_waker` is tokio's waker for the task. Only a task that returned `Pending` can need
    /// waking later, so only then is it kept, and a task that finishes in its first poll never
    /// pays for it. A wake that came during the poll, before it was kept, is passed on here:
    /// the waker is stored before `woken` is read, and a waking thread sets `woken` before
    /// reading the waker, so one of the two always wakes the task.
    pub(crate) fn poll_ended(&self, pending: bool, task_waker: &Waker) {
        if pending && self.task_waker.get().is_none() {
            let _ = self.task_waker.set(task_waker.clone());
            fence(Ordering::SeqCst);
            if self.woken.load(Ordering::SeqCst) {
                task_waker.wake_by_ref();
            }
        }
        self.poll_returned(pending);
    }

    /// The end of a poll, when the task's waker is not ours to keep (a plain task).
    pub(crate) fn poll_returned(&self, pending: bool) {
        if pending {
            let now = clock::now();
            self.last_pending_nanos.store(now, Ordering::Relaxed);
            if self.started_nanos.load(Ordering::Relaxed) == 0 {
                self.started_nanos.store(now, Ordering::Relaxed);
            }
        }
        self.in_poll.store(false, Ordering::Release);
    }

    /// Remembers the poll count, so the report can tell a task that kept running during the
    /// grace period from one that sat still.
    pub(crate) fn mark(&self) {
        self.polls_at_mark
            .store(self.polls.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Waiting for a thread rather than stuck: a blocking closure not started yet, or a task
    /// woken (or never polled) whose last poll ended more than `patience` ago. `now` is a reading
    /// of [`clock::precise_now`], which never makes the task look fresher than it is.
    pub(crate) fn starved(&self, now: u64, patience: Duration) -> bool {
        if self.kind == TaskKind::Blocking {
            return !self.closure_running();
        }
        let last_poll = self.last_pending_nanos.load(Ordering::Relaxed);
        self.woken.load(Ordering::SeqCst)
            && !self.in_poll.load(Ordering::Acquire)
            && (last_poll == 0 || clock::since(now, last_poll) > patience)
    }

    /// What the task is doing. `now` is a reading of [`clock::precise_now`]; `held_by_caller` is how
    /// many references to the record the caller holds besides the task's own.
    pub(crate) fn activity(self: &Arc<Self>, now: u64, held_by_caller: usize) -> Activity {
        let polls = self.polls.load(Ordering::Relaxed);
        let polls_during_grace = polls.wrapping_sub(self.polls_at_mark.load(Ordering::Relaxed));
        let since = |nanos: u64| (nanos != 0).then(|| clock::since(now, nanos));
        let in_poll = self.in_poll.load(Ordering::Acquire);
        // A poll still running is not evidence of a loop: count the ones that returned.
        let completed_during_grace = polls_during_grace.saturating_sub(u32::from(in_poll));
        let idle_for = if in_poll {
            None
        } else {
            since(self.last_pending_nanos.load(Ordering::Relaxed))
        };
        let age = since(self.started_nanos.load(Ordering::Relaxed));
        let state = if self.kind == TaskKind::Blocking {
            if self.closure_running() {
                TaskState::Blocking
            } else {
                TaskState::Runnable
            }
        } else if in_poll && completed_during_grace <= 1 {
            // Inside a poll that began before the grace period, or after at most one other.
            TaskState::StuckInPoll
        } else if completed_during_grace >= 2 {
            TaskState::Busy
        } else if self.kind == TaskKind::Plain {
            TaskState::Pending
        } else if self.woken.load(Ordering::Acquire) || in_poll {
            TaskState::Runnable
        } else if Arc::strong_count(self) <= OWN_REFS + held_by_caller {
            TaskState::Stranded
        } else {
            TaskState::Waiting
        };
        Activity {
            polls,
            age,
            idle_for,
            state,
        }
    }
}

impl Wake for TaskRecord {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if let Some(waker) = self.task_waker.get() {
            waker.wake_by_ref();
        }
    }
}

/// What a straggler was doing when the grace period ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TaskState {
    /// Pending, and nothing holds a waker for it: nothing can ever wake it.
    Stranded,
    /// Pending, and something holds its waker (a channel, timer, socket...), which never fired.
    Waiting,
    /// Polled again and again during the grace period: a loop that never ends.
    Busy,
    /// Woken and waiting for a worker to poll it.
    Runnable,
    /// Inside one poll for the whole grace period: blocking the worker thread.
    StuckInPoll,
    /// A `spawn_blocking` closure that has not returned.
    Blocking,
    /// Pending, spawned with plain `tokio::spawn`: whether anything holds its waker is unknown.
    Pending,
    /// Never returned from its first poll, or never polled: tasks are recorded one by one only
    /// once they yield, so what it is doing is not known beyond that.
    NotYielded,
}

pub(crate) struct Activity {
    pub(crate) polls: u32,
    /// Since its first poll that returned `Pending` (blocking: since its closure started);
    /// `None` if that never happened.
    pub(crate) age: Option<Duration>,
    pub(crate) idle_for: Option<Duration>,
    pub(crate) state: TaskState,
}
