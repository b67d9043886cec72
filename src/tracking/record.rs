//! What leak-check knows about one tracked task: who it is (a number of its own, never an
//! address), where it came from, what it is doing, and how to stop it.
//!
//! The record is also the waker handed to the task's future, so one allocation per task covers
//! identity, activity and wake tracking (and most tasks reuse the allocation of an ended task's
//! record: see invariant 6); how many wakers are held elsewhere is then read off the record's
//! strong count. Which fields are written by whom is stated once, in the module doc of
//! [`tracking`](super).

use std::borrow::Cow;
use std::panic::Location;
use std::sync::{Arc, OnceLock};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use super::check_core::CheckCore;
use super::owner::Owner;
use super::sync::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering};

/// Chains longer than this are cut, so a task that re-spawns itself forever does not keep an
/// ever-growing list of ancestors alive.
const MAX_CHAIN_DEPTH: u32 = 16;

/// The instant activity times count from, so that a record keeps them in plain atomics.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Numbers threads, for record ids.
static NEXT_THREAD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// This thread's number (high bits) and its next record's (low bits): ids unique in the
    /// process without a counter that every spawning thread writes.
    static NEXT_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A number no other record in the process has (never 0).
fn new_id() -> u64 {
    NEXT_ID
        .try_with(|next| {
            let mut id = next.get();
            if id == 0 {
                id = NEXT_THREAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32;
            }
            next.set(id + 1);
            id + 1
        })
        // A thread whose thread-locals are gone: a number from the shared counter's own range.
        .unwrap_or_else(|_| NEXT_THREAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The instant `nanos` after `EPOCH`; `None` for 0 (never).
fn at_nanos(nanos: u64) -> Option<Instant> {
    match nanos {
        0 => None,
        nanos => EPOCH
            .get()
            .map(|epoch| *epoch + Duration::from_nanos(nanos)),
    }
}

fn since_epoch(at: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    at.saturating_duration_since(epoch).as_nanos() as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Async,
    /// On a `LocalSet`, which tokio's alive-task count of the runtime does not include.
    Local,
    Blocking,
    /// Spawned with plain `tokio::spawn` and seen through tokio's task hooks
    /// (`--cfg tokio_unstable`): its polls are seen, its wakers are not, and leak-check holds no
    /// handle to abort it: its runtime's shutdown drops it.
    Plain,
}

/// Where a task came from: its spawn site, name, and who spawned it.
#[derive(Clone)]
pub(crate) struct Origin {
    pub(crate) site: &'static Location<'static>,
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) parent: Parent,
    depth: u32,
    /// How many ancestors in a row were spawned at this same site: a task that re-spawns itself
    /// has one more than its parent.
    pub(crate) respawns: u32,
}

/// The runtime a task was spawned onto, as its spawn knew it: what tells, while the task has not
/// run yet, whether tokio counts it among the test's own runtime's tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// The runtime whose threads carry this token (see `owner::runtime_token`; 0: a runtime
    /// leak-check did not build): a plain task seen by that runtime's hooks.
    Token(u64),
    /// The runtime behind the handle the spawn was given, or the current one, where tokio
    /// spawns (which need not be the thread's own: a runtime entered with `Handle::enter`).
    Runtime(tokio::runtime::Id),
}

impl Bound {
    /// Whether tokio counts a task bound so among the tasks of the runtime behind `handle`,
    /// which carries `token` on its threads: tokio counts a task in the runtime it was spawned
    /// onto, whichever thread polls it (a thread of one runtime can drive another's tasks,
    /// through `block_on` in `block_in_place` or in a blocking closure).
    pub(crate) fn is(self, handle: &tokio::runtime::Handle, token: u64) -> bool {
        match self {
            Bound::Token(bound) => bound == token,
            Bound::Runtime(id) => id == handle.id(),
        }
    }

    /// The runtime a spawn onto `handle`, or onto the current runtime for `None`, puts its task
    /// on. Without a current runtime (the spawn is about to panic, or a blocking closure is
    /// spawned from a thread of no runtime), the thread's token.
    pub(crate) fn of(handle: Option<&tokio::runtime::Handle>) -> Self {
        match handle {
            Some(handle) => Bound::Runtime(handle.id()),
            None => tokio::runtime::Handle::try_current().map_or_else(
                |_| Bound::Token(super::owner::runtime_token()),
                |current| Bound::Runtime(current.id()),
            ),
        }
    }
}

/// Who spawned a task: the test body itself, another tracked task, or an ancestor too far up.
#[derive(Clone)]
pub(crate) enum Parent {
    Body,
    Task(Arc<Origin>),
    Cut,
}

/// What a task inherits from whoever spawns it.
pub(crate) struct Lineage<'a> {
    pub(crate) check: &'a Arc<CheckCore>,
    parent: Option<&'a TaskRecord>,
    pub(crate) background: bool,
}

impl<'a> Lineage<'a> {
    pub(crate) fn of_body(check: &'a Arc<CheckCore>) -> Self {
        Lineage {
            check,
            parent: None,
            background: false,
        }
    }

    pub(crate) fn of_task(record: &'a TaskRecord) -> Self {
        Lineage {
            check: record.check(),
            parent: Some(record),
            background: record.background,
        }
    }

    fn origin(&self, site: &'static Location<'static>, name: Option<Cow<'static, str>>) -> Origin {
        let Some(parent) = self.parent else {
            return Origin {
                site,
                name,
                parent: Parent::Body,
                depth: 1,
                respawns: 0,
            };
        };
        let respawns = if parent.origin.site == site {
            parent.origin.respawns + 1
        } else {
            0
        };
        let (parent_link, depth) = if parent.origin.depth >= MAX_CHAIN_DEPTH {
            (Parent::Cut, 1)
        } else {
            (
                Parent::Task(parent.origin_for_children().clone()),
                parent.origin.depth + 1,
            )
        };
        Origin {
            site,
            name,
            parent: parent_link,
            depth,
            respawns,
        }
    }
}

/// How a task is stopped through tokio: its abort handle (a plain task, seen through the hooks,
/// has none). Kept under a lock of its own: the abort can be asked for before tokio has handed
/// out the task's handle (a task spawned while its check stops), and whichever of the two comes
/// second does the abort.
#[derive(Default)]
struct Abort {
    requested: bool,
    handle: Option<AbortHandle>,
}

pub(crate) struct TaskRecord {
    /// Unique in the process: what tells two records apart, even after one is freed.
    pub(crate) id: u64,
    /// `None` only while the record is a spare (see [`TaskRecord::empty`]): a spare kept by its
    /// check must not keep the check alive.
    check: Option<Arc<CheckCore>>,
    pub(crate) origin: Origin,
    pub(crate) kind: TaskKind,
    pub(crate) bound: Bound,
    /// Sanctioned to outlive the body (a server, a ticker): never reported, always stopped at
    /// the end. Whatever such a task spawns is background too.
    pub(crate) background: bool,
    /// Its place in its check's live set: written by `CheckCore::register` before the task can
    /// run, read by `CheckCore::end`, both under the check's lock.
    slot: AtomicUsize,
    /// Set by the poll that hands the future the record as its waker (see `Tracked`).
    waker_handed: AtomicBool,
    /// Spawned after its check began to stop its tasks (from a `Drop`). Written by
    /// `CheckCore::register` under the check's lock, before the task can run.
    late: AtomicBool,
    /// Made when the task first spawns a child, which links to it.
    origin_for_children: OnceLock<Arc<Origin>>,
    abort: Mutex<Abort>,
    /// Set by a stop; read at each poll, which then drops the future instead of polling it.
    stop_requested: AtomicBool,
    /// Set by its first poll (a blocking task: when its closure starts), and never reset: the
    /// poll count wraps.
    polled: AtomicBool,
    /// When the task first returned `Pending` (a blocking task: when its closure started), in
    /// nanoseconds since `EPOCH` (0: not yet).
    started: AtomicU64,
    polls: AtomicU32,
    /// What `mark` saw when the body ended (see [`TaskRecord::mark`]): written and read by the
    /// check alone.
    polls_at_mark: AtomicU32,
    polled_at_mark: AtomicBool,
    in_poll_at_mark: AtomicBool,
    in_poll: AtomicBool,
    /// Set once its future has returned `Ready`: it is ending, and only waits for tokio to drop
    /// it.
    finished: AtomicBool,
    /// Set when its unfinished future (or unrun closure) starts to be dropped: a thread runs it.
    dropping: AtomicBool,
    /// Whether the hand-over poll had happened at the mark (see [`TaskRecord::mark`]).
    handed_at_mark: AtomicBool,
    /// Set by a wake, cleared when a poll starts. A new task starts scheduled.
    woken: AtomicBool,
    /// When the last poll returned `Pending`, in nanoseconds since `EPOCH` (0: never).
    last_pending: AtomicU64,
    /// tokio's waker for the task, to which every wake is forwarded.
    task_waker: OnceLock<Waker>,
    /// tokio's id for a plain task (seen through the hooks); a tracked task's is its abort
    /// handle's.
    #[cfg(tokio_unstable)]
    task_id: OnceLock<tokio::task::Id>,
}

/// Strong references to the record of a live, tracked async task when it is not being polled:
/// its registration and its check's live set. Any more are wakers held elsewhere.
pub(crate) const OWN_REFS: usize = 2;

impl TaskRecord {
    /// The record of a task spawned where `owner` is current.
    pub(crate) fn new(
        owner: &Owner,
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
        kind: TaskKind,
        bound: Bound,
        background: bool,
    ) -> Self {
        let lineage = owner.lineage();
        TaskRecord {
            id: new_id(),
            check: Some(lineage.check.clone()),
            origin: lineage.origin(site, name),
            kind,
            bound,
            background: background || lineage.background,
            slot: AtomicUsize::new(usize::MAX),
            waker_handed: AtomicBool::new(false),
            late: AtomicBool::new(false),
            origin_for_children: OnceLock::new(),
            abort: Mutex::new(Abort::default()),
            stop_requested: AtomicBool::new(false),
            polled: AtomicBool::new(false),
            started: AtomicU64::new(0),
            polls: AtomicU32::new(0),
            polls_at_mark: AtomicU32::new(0),
            polled_at_mark: AtomicBool::new(false),
            in_poll_at_mark: AtomicBool::new(false),
            in_poll: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            dropping: AtomicBool::new(false),
            handed_at_mark: AtomicBool::new(false),
            woken: AtomicBool::new(true),
            last_pending: AtomicU64::new(0),
            task_waker: OnceLock::new(),
            #[cfg(tokio_unstable)]
            task_id: OnceLock::new(),
        }
    }

    /// The check the task belongs to.
    pub(crate) fn check(&self) -> &Arc<CheckCore> {
        self.check
            .as_ref()
            .expect("only a spare record has no check, and a spare is held by its check alone")
    }

    /// Empties the record of a task that has ended and that nothing else holds, so that its
    /// check can keep it as a spare for the next task (see `CheckCore::end`): lets go of what
    /// it holds in tokio (the abort handle, the task's waker) and of its ancestors, here and not
    /// later under the check's lock, since dropping a handle into tokio can free the task.
    /// Returns the check, which a spare does not hold.
    pub(super) fn empty(&mut self) -> Option<Arc<CheckCore>> {
        self.abort.get_mut().handle = None;
        self.task_waker.take();
        self.origin_for_children.take();
        self.origin.name = None;
        self.origin.parent = Parent::Body;
        self.check.take()
    }

    fn origin_for_children(&self) -> &Arc<Origin> {
        self.origin_for_children
            .get_or_init(|| Arc::new(self.origin.clone()))
    }

    pub(super) fn set_slot(&self, slot: usize) {
        self.slot.store(slot, Ordering::Relaxed);
    }

    pub(super) fn slot(&self) -> usize {
        self.slot.load(Ordering::Relaxed)
    }

    /// Whether this poll is the one right after a first poll that returned `Pending`, which
    /// hands the future the record as its waker. Only the polling thread calls it.
    pub(crate) fn first_poll_pending(&self) -> bool {
        self.polled() && !self.waker_handed.load(Ordering::Relaxed) && {
            self.waker_handed.store(true, Ordering::Relaxed);
            true
        }
    }

    /// Marks a task spawned while its check stops its tasks (see `CheckCore::register`).
    pub(super) fn mark_late(&self) {
        self.late.store(true, Ordering::Relaxed);
    }

    /// Whether the task was spawned while its check stopped its tasks. Read under the check's
    /// lock or after taking a snapshot, which orders it after `mark_late`.
    pub(crate) fn is_late(&self) -> bool {
        self.late.load(Ordering::Relaxed)
    }

    /// Remembers tokio's id for a plain task, which has no abort handle to read it from.
    #[cfg(tokio_unstable)]
    pub(crate) fn note_task_id(&self, id: tokio::task::Id) {
        let _ = self.task_id.set(id);
    }

    /// tokio's id for the task, which task dumps (in reports) know it by: read only when a
    /// report is made, so the spawn path pays nothing for it.
    pub(crate) fn task_id(&self) -> Option<tokio::task::Id> {
        #[cfg(tokio_unstable)]
        if let Some(id) = self.task_id.get() {
            return Some(*id);
        }
        self.abort.lock().handle.as_ref().map(AbortHandle::id)
    }

    /// Keeps a task's handle, once tokio has given it; aborts at once if that was asked
    /// for already.
    pub(crate) fn set_abort_handle(&self, handle: AbortHandle) {
        let mut abort = self.abort.lock();
        if abort.requested {
            drop(abort);
            handle.abort();
        } else {
            abort.handle = Some(handle);
        }
    }

    /// Marks the task as stopped without waking it: stops mark every task they reach before
    /// they abort any, so that a task released by another's drop cannot run on before its own
    /// abort.
    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
    }

    /// Whether a stop reached the task.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }

    /// Stops the task: an async task's next poll drops its future instead of polling it (the
    /// task is woken for that poll); a blocking closure is aborted through tokio if it has not
    /// started (a running one cannot be stopped).
    pub(crate) fn abort(&self) {
        self.request_stop();
        let handle = {
            let mut abort = self.abort.lock();
            abort.requested = true;
            abort.handle.take()
        };
        if let Some(handle) = handle {
            handle.abort();
        }
        self.wake_task();
    }

    /// Sets `woken`, then passes the wake on to tokio's waker if the task has returned `Pending`
    /// (see [`TaskRecord::poll_ended`] for the other side).
    pub(crate) fn wake_task(&self) {
        self.woken.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(waker) = self.task_waker.get() {
            waker.wake_by_ref();
        }
    }

    #[cfg(all(test, leak_check_loom))]
    pub(crate) fn abort_requested(&self) -> bool {
        self.abort.lock().requested
    }

    /// A blocking task whose closure has started (it can no longer be stopped).
    pub(crate) fn closure_running(&self) -> bool {
        self.kind == TaskKind::Blocking && self.started.load(Ordering::Relaxed) != 0
    }

    /// For blocking tasks, whose age counts from the start of their closure.
    pub(crate) fn closure_started(&self) {
        self.polled.store(true, Ordering::Relaxed);
        self.started
            .store(since_epoch(Instant::now()).max(1), Ordering::Relaxed);
    }

    /// Whether the task has been polled (a blocking task: whether its closure has started).
    pub(crate) fn polled(&self) -> bool {
        self.polled.load(Ordering::Relaxed)
    }

    /// Returns whether this is the task's first poll. `counted` is false for the poll that
    /// only hands the future the record as its waker (see `Tracked`), which is no evidence of a
    /// loop.
    pub(crate) fn poll_started(&self, counted: bool) -> bool {
        // Not `polls == 0`: the count wraps, and a task polled 2^32 times is not new.
        let first = !self.polled();
        if first {
            self.polled.store(true, Ordering::Relaxed);
        }
        // A tracked task's first poll runs with tokio's own waker, and `woken` is left set
        // through it (a new record starts woken): so a first poll that returns `Pending` is
        // woken at once by `poll_ended`, to hand the future the record as its waker (see
        // `Tracked`), and most tasks are spared a full fence. A plain task's wakes never pass
        // through the record, so its flag is cleared at every poll.
        if !first || self.kind == TaskKind::Plain {
            self.woken.store(false, Ordering::SeqCst);
        }
        self.in_poll.store(true, Ordering::Relaxed);
        // Only the thread polling the task writes the count: no read-modify-write needed.
        if counted {
            let polls = self.polls.load(Ordering::Relaxed);
            self.polls.store(polls.wrapping_add(1), Ordering::Relaxed);
        }
        first
    }

    /// `task_waker` is tokio's waker for the task. Only a task that returned `Pending` can need
    /// waking later, so only then is it kept, and a task that finishes in its first poll never
    /// pays for it. A wake that came during the poll, before it was kept, is passed on here:
    /// the waker is stored before `woken` is read, and a waking thread sets `woken` before
    /// reading the waker (both `SeqCst`), so one of the two always wakes the task.
    pub(crate) fn poll_ended(&self, pending: bool, task_waker: &Waker) {
        if pending && self.task_waker.get().is_none() {
            let _ = self.task_waker.set(task_waker.clone());
            // Pairs with the fence in `wake_task`: the waker is stored before `woken` is read,
            // and `woken` is stored there before the waker is read, so one side sees the other.
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
            let now = since_epoch(Instant::now()).max(1);
            if self.started.load(Ordering::Relaxed) == 0 {
                self.started.store(now, Ordering::Relaxed);
            }
            self.last_pending.store(now, Ordering::Relaxed);
        }
        self.in_poll.store(false, Ordering::Release);
    }

    /// Remembers where the task stood when the body ended, so the report can tell a task that
    /// kept running during the grace period from one that sat still, and a poll stuck since
    /// before it from one that began during it. A task spawned later is never marked: all it did
    /// was during the grace period.
    pub(crate) fn mark(&self) {
        self.polls_at_mark
            .store(self.polls.load(Ordering::Relaxed), Ordering::Relaxed);
        self.polled_at_mark.store(self.polled(), Ordering::Relaxed);
        self.in_poll_at_mark
            .store(self.in_poll(), Ordering::Relaxed);
        self.handed_at_mark
            .store(self.waker_handed.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Its unfinished future (or unrun closure) is being dropped, on the thread that calls this.
    pub(crate) fn dropping_started(&self) {
        self.dropping.store(true, Ordering::Relaxed);
    }

    /// Whether a thread has started to drop its unfinished future (or unrun closure): slow as
    /// that drop may be, something runs it.
    pub(crate) fn dropping(&self) -> bool {
        self.dropping.load(Ordering::Relaxed)
    }

    /// The future returned `Ready`: the task ends as soon as tokio drops it.
    pub(crate) fn mark_finished(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// Its polls since the mark.
    fn since_mark(&self) -> SinceMark {
        let started = self
            .polls
            .load(Ordering::Relaxed)
            .wrapping_sub(self.polls_at_mark.load(Ordering::Relaxed));
        let in_poll = self.in_poll();
        // A poll still running is not evidence of a loop, and neither is the task's first poll:
        // count the others that returned.
        let running = u32::from(in_poll && started > 0);
        let first = u32::from(!self.polled_at_mark.load(Ordering::Relaxed) && started > 0);
        // The hand-over poll is not counted (see `Tracked`), but is a poll all the same.
        let handed_over = self.waker_handed.load(Ordering::Relaxed)
            && !self.handed_at_mark.load(Ordering::Relaxed);
        SinceMark {
            in_poll,
            any_began: started > 0 || handed_over,
            // A poll that was not running at the mark began after it too.
            poll_began_after_mark: in_poll
                && (started > 0 || handed_over || !self.in_poll_at_mark.load(Ordering::Relaxed)),
            completed: started.saturating_sub(running).saturating_sub(first),
        }
    }

    /// Inside a poll now.
    pub(crate) fn in_poll(&self) -> bool {
        self.in_poll.load(Ordering::Acquire)
    }

    fn last_pending_at(&self) -> Option<Instant> {
        at_nanos(self.last_pending.load(Ordering::Relaxed))
    }

    /// No evidence of a leak yet, only of a thread it waits for: a blocking closure not started;
    /// a task that returned `Ready` and waits to be dropped; one inside a poll that began after
    /// the mark, unless it keeps coming back (a thread taken from it mid-poll looks the same);
    /// one first polled after the mark, less than `grace` ago (it gets the grace period from
    /// its start); one woken (or never polled) and not polled since, unless it keeps waking
    /// itself (a loop) and was last polled less than `patience` ago.
    pub(crate) fn may_end_soon(&self, now: Instant, patience: Duration, grace: Duration) -> bool {
        if self.kind == TaskKind::Blocking {
            return !self.closure_running();
        }
        if self.finished.load(Ordering::Relaxed) {
            return true;
        }
        let since = self.since_mark();
        if since.in_poll {
            return since.poll_began_after_mark && since.completed <= 1;
        }
        // First polled after the mark: the grace period counts from its first `Pending`.
        if !self.polled_at_mark.load(Ordering::Relaxed)
            && at_nanos(self.started.load(Ordering::Relaxed))
                .is_some_and(|at| now.saturating_duration_since(at) < grace)
        {
            return true;
        }
        self.woken.load(Ordering::SeqCst)
            && (since.completed <= 1
                || self
                    .last_pending_at()
                    .is_none_or(|at| now.saturating_duration_since(at) > patience))
    }

    /// What the task is doing. `held_by_caller` is how many references to the record the caller
    /// holds besides the task's own.
    pub(crate) fn activity(self: &Arc<Self>, now: Instant, held_by_caller: usize) -> Activity {
        let polls = self.polls.load(Ordering::Relaxed);
        let SinceMark {
            in_poll,
            completed,
            any_began,
            ..
        } = self.since_mark();
        let idle_for = if in_poll {
            None
        } else {
            self.last_pending_at()
                .map(|at| now.saturating_duration_since(at))
        };
        let age = at_nanos(self.started.load(Ordering::Relaxed))
            .map(|at| now.saturating_duration_since(at));
        let state = if self.kind == TaskKind::Blocking {
            if self.closure_running() {
                TaskState::Blocking
            } else {
                TaskState::Runnable
            }
        } else if in_poll && completed <= 1 {
            // Inside a poll that began before the grace period, or after at most one other.
            TaskState::StuckInPoll
        } else if completed >= 2 {
            TaskState::Busy
        } else if self.woken.load(Ordering::Acquire)
            || in_poll
            || self.finished.load(Ordering::Relaxed)
        {
            TaskState::Runnable
        } else if self.kind == TaskKind::Plain {
            TaskState::Pending
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
            // A blocking closure counts no polls: one not started waits for a blocking thread.
            unpolled_since_mark: self.kind != TaskKind::Blocking && !any_began && !in_poll,
        }
    }
}

impl Wake for TaskRecord {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_task();
    }
}

/// A task's polls since [`TaskRecord::mark`].
struct SinceMark {
    in_poll: bool,
    /// Whether any poll began since, the hand-over poll included.
    any_began: bool,
    poll_began_after_mark: bool,
    /// Polls that began and returned since, its first poll not counted.
    completed: u32,
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
    /// Woken (or never polled yet) and waiting for a worker to poll it.
    Runnable,
    /// Inside a poll that has not returned (since before the grace period, or long enough that the
    /// check stopped waiting for it): blocking the worker thread.
    StuckInPoll,
    /// A `spawn_blocking` closure that has not returned.
    Blocking,
    /// Pending, spawned with plain `tokio::spawn`: whether anything holds its waker is unknown.
    Pending,
}

pub(crate) struct Activity {
    pub(crate) polls: u32,
    /// Since its first poll that returned `Pending` (blocking: since its closure started);
    /// `None` if that never happened.
    pub(crate) age: Option<Duration>,
    pub(crate) idle_for: Option<Duration>,
    pub(crate) state: TaskState,
    /// No poll began since the body ended (or since its spawn, if later).
    pub(crate) unpolled_since_mark: bool,
}

#[cfg(test)]
mod tests {
    use std::panic::Location;
    use std::sync::Arc;
    use std::task::Waker;
    use std::time::{Duration, Instant};

    use super::{Bound, TaskKind, TaskRecord};
    use crate::tracking::owner::Owner;
    use crate::tracking::CheckCore;

    const PATIENCE: Duration = Duration::from_millis(10);

    fn record() -> Arc<TaskRecord> {
        let owner = Owner::Body(Arc::new(CheckCore::new()));
        Arc::new(TaskRecord::new(
            &owner,
            Location::caller(),
            None,
            TaskKind::Async,
            Bound::Token(0),
            false,
        ))
    }

    /// One poll that returns `Pending` (`counted`: not the hand-over poll).
    fn poll_pending(record: &TaskRecord) {
        record.poll_started(true);
        record.poll_ended(true, Waker::noop());
    }

    fn may_end_soon(record: &TaskRecord) -> bool {
        record.may_end_soon(Instant::now(), PATIENCE, Duration::ZERO)
    }

    #[test]
    fn a_task_that_returned_ready_may_end_soon() {
        let record = record();
        poll_pending(&record);
        record.mark();
        record.poll_started(true);
        record.poll_ended(false, Waker::noop());
        assert!(!may_end_soon(&record), "not woken, not finished: waiting");
        record.mark_finished();
        assert!(may_end_soon(&record), "finished: tokio is about to drop it");
    }

    #[test]
    fn a_poll_begun_after_the_mark_may_end_soon_and_one_from_before_may_not() {
        let stuck = record();
        stuck.poll_started(true);
        stuck.mark();
        assert!(
            !may_end_soon(&stuck),
            "in the same poll since before the mark"
        );

        let running = record();
        poll_pending(&running);
        running.mark();
        running.poll_started(true);
        assert!(may_end_soon(&running), "a poll that began after the mark");

        let handing_over = record();
        poll_pending(&handing_over);
        handing_over.mark();
        handing_over.poll_started(false);
        assert!(
            may_end_soon(&handing_over),
            "the uncounted hand-over poll began after the mark too"
        );
    }

    /// A task that first ran after the body ended gets the grace period from then.
    #[test]
    fn a_task_first_polled_after_the_mark_gets_the_grace_period_from_then() {
        let grace = Duration::from_millis(100);
        let late_starter = record();
        late_starter.mark();
        late_starter.poll_started(true);
        late_starter.poll_ended(true, Waker::noop());
        // Not woken any more: its hand-over poll returned `Pending` too.
        late_starter.poll_started(false);
        late_starter.poll_ended(true, Waker::noop());
        let now = Instant::now();
        assert!(late_starter.may_end_soon(now, PATIENCE, grace));
        assert!(!late_starter.may_end_soon(now + grace, PATIENCE, grace));

        let early_starter = record();
        poll_pending(&early_starter);
        early_starter.poll_started(false);
        early_starter.poll_ended(true, Waker::noop());
        early_starter.mark();
        assert!(
            !early_starter.may_end_soon(Instant::now(), PATIENCE, grace),
            "polled before the mark: its grace period began with the body's end"
        );
    }

    #[test]
    fn a_task_woken_soon_after_its_last_poll_may_end_soon_unless_it_loops() {
        let woken = record();
        woken.mark();
        // Its first poll, after the mark: it starts, and stays woken (see `poll_started`).
        poll_pending(&woken);
        assert!(may_end_soon(&woken), "woken, and polled only to start");

        let looping = record();
        looping.mark();
        let now = Instant::now();
        for _ in 0..4 {
            poll_pending(&looping);
            looping.wake_task();
        }
        assert!(
            !looping.may_end_soon(now, PATIENCE, Duration::ZERO),
            "it keeps waking itself, and was polled just now"
        );
        assert!(
            looping.may_end_soon(Instant::now() + PATIENCE * 2, PATIENCE, Duration::ZERO),
            "a loop not polled for longer than the patience waits for a thread"
        );
    }
}
