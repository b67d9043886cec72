//! What leak-check knows about one tracked task: where it came from and what it is doing.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use tokio::task::AbortHandle;

use crate::registry::CheckCore;

/// Chains longer than this are cut, so a task that re-spawns itself forever does not keep an
/// ever-growing list of finished ancestors alive.
const MAX_CHAIN_DEPTH: u32 = 16;

/// A fixed point that lets a timestamp fit in one `AtomicU64`.
static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

/// Never 0, which stands for "never".
pub(crate) fn nanos_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn instant_from_nanos(nanos: u64) -> Instant {
    *EPOCH + Duration::from_nanos(nanos)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Async,
    Local,
    Blocking,
}

/// Who spawned a task: the test body itself, another tracked task, or an ancestor too far up.
pub(crate) enum Parent {
    Body,
    Task(Arc<TaskRecord>),
    Cut,
}

pub(crate) struct TaskRecord {
    pub(crate) check: Arc<CheckCore>,
    pub(crate) site: &'static Location<'static>,
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) kind: TaskKind,
    pub(crate) parent: Parent,
    depth: u32,
    pub(crate) spawned_at: Instant,
    pub(crate) probe: Arc<WakeProbe>,
    abort: OnceLock<AbortHandle>,
}

impl TaskRecord {
    pub(crate) fn new(
        owner: crate::ownership::Owner,
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
        kind: TaskKind,
    ) -> Self {
        use crate::ownership::Owner;
        let (check, parent, depth) = match owner {
            Owner::Body(check) => (check, Parent::Body, 1),
            Owner::Task(parent) if parent.depth >= MAX_CHAIN_DEPTH => {
                (parent.check.clone(), Parent::Cut, 1)
            }
            Owner::Task(parent) => {
                let depth = parent.depth + 1;
                (parent.check.clone(), Parent::Task(parent), depth)
            }
        };
        TaskRecord {
            check,
            site,
            name,
            kind,
            parent,
            depth,
            spawned_at: Instant::now(),
            probe: Arc::new(WakeProbe::default()),
            abort: OnceLock::new(),
        }
    }

    pub(crate) fn set_abort_handle(&self, handle: AbortHandle) {
        let _ = self.abort.set(handle);
    }

    pub(crate) fn abort(&self) {
        if let Some(handle) = self.abort.get() {
            handle.abort();
        }
    }
}

/// The waker leak-check hands to a tracked future. It forwards every wake to tokio's own waker and
/// remembers that it happened; how many clones of it exist says whether anything could still
/// wake the task.
pub(crate) struct WakeProbe {
    polls: AtomicU32,
    polls_at_mark: AtomicU32,
    in_poll: AtomicBool,
    /// Set by a wake, cleared when a poll starts. A new task starts scheduled.
    woken: AtomicBool,
    last_pending_nanos: AtomicU64,
    task_waker: Mutex<Option<Waker>>,
}

impl Default for WakeProbe {
    fn default() -> Self {
        WakeProbe {
            polls: AtomicU32::new(0),
            polls_at_mark: AtomicU32::new(0),
            in_poll: AtomicBool::new(false),
            woken: AtomicBool::new(true),
            last_pending_nanos: AtomicU64::new(0),
            task_waker: Mutex::new(None),
        }
    }
}

impl Wake for WakeProbe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(waker) = self.task_waker.lock().as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// Clones of the probe's waker held by the task itself: the record's `Arc` and the waker that
/// the tracked future keeps for its polls.
const OWN_PROBE_REFS: usize = 2;

impl WakeProbe {
    pub(crate) fn poll_started(&self, task_waker: &Waker) {
        self.woken.store(false, Ordering::Relaxed);
        self.in_poll.store(true, Ordering::Relaxed);
        self.polls.fetch_add(1, Ordering::Relaxed);
        let mut stored = self.task_waker.lock();
        match stored.as_ref() {
            Some(waker) if waker.will_wake(task_waker) => {}
            _ => *stored = Some(task_waker.clone()),
        }
    }

    pub(crate) fn poll_ended(&self, pending: bool) {
        if pending {
            self.last_pending_nanos
                .store(nanos_since_epoch(Instant::now()), Ordering::Relaxed);
        }
        self.in_poll.store(false, Ordering::Release);
    }

    /// Remembers the poll count, so the report can tell a task that kept running during the
    /// grace period from one that sat still.
    pub(crate) fn mark(&self) {
        self.polls_at_mark
            .store(self.polls.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Woken (or never polled) and not polled since `since`: starved for a worker, not stuck.
    pub(crate) fn starved_since(&self, since: Instant) -> bool {
        self.woken.load(Ordering::Acquire)
            && !self.in_poll.load(Ordering::Acquire)
            && self.last_pending_nanos.load(Ordering::Relaxed) < nanos_since_epoch(since)
    }

    pub(crate) fn activity(self: &Arc<Self>, kind: TaskKind, now: Instant) -> Activity {
        let polls = self.polls.load(Ordering::Relaxed);
        let polls_during_grace = polls.wrapping_sub(self.polls_at_mark.load(Ordering::Relaxed));
        let last_pending = self.last_pending_nanos.load(Ordering::Relaxed);
        let idle_for = (last_pending != 0)
            .then(|| now.saturating_duration_since(instant_from_nanos(last_pending)));
        let state = if kind == TaskKind::Blocking {
            TaskState::Blocking
        } else if self.in_poll.load(Ordering::Acquire) && polls_during_grace == 0 {
            TaskState::StuckInPoll
        } else if polls_during_grace >= 2 {
            TaskState::Busy
        } else if self.woken.load(Ordering::Acquire) {
            TaskState::Runnable
        } else if Arc::strong_count(self) <= OWN_PROBE_REFS {
            TaskState::Stranded
        } else {
            TaskState::Waiting
        };
        Activity {
            polls,
            idle_for,
            state,
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
}

pub(crate) struct Activity {
    pub(crate) polls: u32,
    pub(crate) idle_for: Option<Duration>,
    pub(crate) state: TaskState,
}
