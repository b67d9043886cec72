//! The check that runs when a test body ends: wait for the test's own tasks (settle), decide
//! (verdict), then stop everything of the check that is still alive (cleanup), however many
//! generations of tasks their `Drop`s spawn.

pub(crate) mod dump;
#[cfg(tokio_unstable)]
pub(crate) mod hooks;
pub(crate) mod wait;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor, RuntimeMetrics};

use crate::config::allow::AllowList;
use crate::report::{LeakReport, ReportKind, StopOutcome, Straggler, Unstoppable};
use crate::tracking::owner::Owner;
use crate::tracking::record::TaskKind;
use crate::tracking::{CheckCore, Phase, TaskRecord};
use wait::Until;

/// How often tokio's alive-task count is re-read while settling; it cannot wake anyone.
const RECOUNT_EVERY: Duration = Duration::from_millis(5);
/// How long the tasks stopped in one round of cleanup get to be dropped.
const DROP_TIMEOUT: Duration = Duration::from_secs(1);
/// A woken task not polled for this long at the deadline is waiting for a thread, and the
/// deadline moves on by this much, up to the hard deadline.
const PATIENCE: Duration = Duration::from_millis(10);
/// After one of the check's tasks ended, how long tokio's count of a multi-thread runtime's
/// tasks may still include it: tokio takes a task out of its count just after dropping its
/// future, on the same thread, which a busy machine can take off its core in between.
const PLAIN_COUNT_LAG: Duration = Duration::from_millis(50);
/// While the check's own tasks keep ending (their count reaches a new low at least this often),
/// the verdict waits past the hard deadline, up to [`Check::drain_deadline`]: a test whose tasks
/// are still ending is not leaking, only slow.
const DRAIN_WINDOW: Duration = Duration::from_millis(100);
/// Rounds of cleanup (each stops what the `Drop`s of the round before spawned) before the check
/// closes, after which whatever is spawned is aborted at once.
const MAX_CLEANUP_ROUNDS: usize = 64;

pub(crate) struct Check {
    core: Arc<CheckCore>,
    test: String,
    /// The checked helper the check is for, when a test called one (see `LeakReport::helper`).
    helper: Option<&'static str>,
    grace: Duration,
    allow: AllowList,
    runtime: Option<RuntimeCount>,
}

/// The runtime the test owns alone, whose tasks tokio counts however they were spawned.
struct RuntimeCount {
    handle: Handle,
    metrics: RuntimeMetrics,
    baseline: usize,
    /// The runtime's token (see `owner::runtime_token`): which tracked tasks run on it.
    token: u64,
}

impl Check {
    /// Starts a check. `own_runtime` is the runtime the test runs on alone, if any, with its
    /// token: its tasks are then counted even when spawned with plain `tokio::spawn`.
    pub(crate) fn begin(
        test: String,
        helper: Option<&'static str>,
        grace: Duration,
        allow: AllowList,
        own_runtime: Option<(&Handle, u64)>,
    ) -> Check {
        let runtime = own_runtime.map(|(handle, token)| {
            let metrics = handle.metrics();
            RuntimeCount {
                handle: handle.clone(),
                baseline: metrics.num_alive_tasks(),
                metrics,
                token,
            }
        });
        Check {
            core: Arc::new(CheckCore::new()),
            test,
            helper,
            grace,
            allow,
            runtime,
        }
    }

    #[cfg(tokio_unstable)]
    pub(crate) fn core(&self) -> Arc<CheckCore> {
        self.core.clone()
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner::Body(self.core.clone())
    }

    /// Alive tasks of the test's own runtime that leak-check does not track: tokio's count less
    /// the tracked tasks spawned onto it (so a tracked task of another runtime never hides a
    /// plain one, even where a thread of the test's runtime drives it).
    fn untracked(&self, live: &[Arc<TaskRecord>]) -> usize {
        if self.allow.untracked {
            return 0;
        }
        let Some(count) = &self.runtime else {
            return 0;
        };
        let tracked_here = live
            .iter()
            .filter(|record| matches!(record.kind, TaskKind::Async | TaskKind::Plain))
            .filter(|record| record.bound.is(&count.handle, count.token))
            .count();
        count
            .metrics
            .num_alive_tasks()
            .saturating_sub(count.baseline + tracked_here)
    }

    /// Blocking closures of the test's own runtime, still running, not spawned through
    /// leak-check (tokio counts its busy blocking threads only with `tokio_unstable`).
    ///
    /// tokio counts busy blocking threads, not who started their closures: while background or
    /// allowed work of the check is alive (which may be doing blocking I/O through tokio, as
    /// `tokio::fs` and DNS lookups do), the count cannot be held against the test. A task of the
    /// check inside a poll may be inside `block_in_place`, whose worker's place a blocking thread
    /// takes: one busy thread less is counted for each.
    #[cfg(tokio_unstable)]
    fn untracked_blocking(&self, live: &[Arc<TaskRecord>]) -> usize {
        let Some(count) = &self.runtime else {
            return 0;
        };
        if self.allow.untracked
            || live
                .iter()
                .any(|record| record.background || self.is_allowed(record))
        {
            return 0;
        }
        let busy = count
            .metrics
            .num_blocking_threads()
            .saturating_sub(count.metrics.num_idle_blocking_threads());
        let tracked_here = live
            .iter()
            .filter(|record| {
                (record.closure_running()
                    || (record.kind != TaskKind::Blocking && record.in_poll()))
                    && record.bound.is(&count.handle, count.token)
            })
            .count();
        busy.saturating_sub(tracked_here)
    }

    #[cfg(not(tokio_unstable))]
    fn untracked_blocking(&self, _live: &[Arc<TaskRecord>]) -> usize {
        0
    }

    fn is_allowed(&self, record: &TaskRecord) -> bool {
        (self.allow.untracked && record.kind == TaskKind::Plain)
            || self
                .allow
                .allows(record.origin.site, record.origin.name.as_deref())
    }

    /// A straggler the report lists: not background work, not allowed.
    fn is_reportable(&self, record: &TaskRecord) -> bool {
        !record.background && !self.is_allowed(record)
    }

    /// Nothing to report now: no own task (or only allowed ones), nothing untracked.
    fn is_clean(&self) -> bool {
        // Without an allow-list, every own task is reportable: its count decides, cheaply.
        if !self.allow.may_allow_some() {
            if self.core.own_live() > 0 {
                return false;
            }
            if self.runtime.is_none() {
                return true;
            }
        }
        let live = self.core.snapshot();
        !live.iter().any(|record| self.is_reportable(record))
            && self.untracked(&live) == 0
            && self.untracked_blocking(&live) == 0
    }

    /// Call when the body has returned or panicked. Returns the report if tasks leaked; stops
    /// everything of the check either way.
    pub(crate) async fn conclude(self) -> Option<LeakReport> {
        let report = self.settle().await;
        self.clean_up(report, Instant::now()).await
    }

    /// A report of everything alive now, for a body that did not finish in time; everything is
    /// then stopped as after a leak.
    pub(crate) async fn timed_out(self, limit: Duration, body_started: Instant) -> LeakReport {
        let report = self.report(ReportKind::Timeout(limit), body_started);
        self.clean_up(Some(report), Instant::now())
            .await
            .expect("a report given to clean_up comes back")
    }

    /// Waits out the grace period; if tasks are left, returns the report.
    async fn settle(&self) -> Option<LeakReport> {
        if self.is_clean() {
            return None;
        }
        let body_ended = Instant::now();
        for record in self.core.snapshot() {
            record.mark();
        }
        // The verdict is judged in real time, whatever the test's clock was doing.
        let clock_resumed = resume_paused_clock();
        let deadline = body_ended + self.grace;
        let hard_deadline = self.hard_deadline(deadline);
        let mut overloaded = overloaded_since(deadline);
        // Watched at every look, not only once the deadline has passed.
        let progress = Progress::new(&self.core);
        let may_extend = || {
            let now = Instant::now();
            progress.observe(&self.core, now);
            // Asked every time, so that the overload clock keeps up.
            let late = overloaded();
            if now >= hard_deadline {
                // Past it, only tasks that keep ending are waited for.
                return progress.draining(now);
            }
            // A task that may still end, given a thread: the extra time is for it.
            let ending = || {
                self.core.snapshot().iter().any(|record| {
                    self.is_reportable(record) && record.may_end_soon(now, PATIENCE, self.grace)
                })
            };
            late || self.plain_count_may_lag(&progress, now) || ending()
        };
        let own_at_most = (!self.allow.may_allow_some()).then_some(0);
        let settled = self
            .until(
                own_at_most,
                || {
                    progress.observe(&self.core, Instant::now());
                    self.is_clean()
                },
                may_extend,
                deadline,
                self.drain_deadline(deadline),
            )
            .await;
        if settled {
            return None;
        }
        let mut report = self.report(ReportKind::Leak, body_ended);
        if report.is_empty() {
            return None;
        }
        report.clock_resumed = clock_resumed;
        self.add_traces(&mut report).await;
        Some(report)
    }

    /// Stops everything of the check still alive, round after round, until nothing is left that
    /// can be stopped: tasks spawned by the `Drop` of a stopped task are stopped in the next
    /// round. Own tasks that appear during cleanup get a grace period of their own; those still
    /// alive after it are stragglers too, added to the report (made here if the test was clean).
    async fn clean_up(&self, mut report: Option<LeakReport>, since: Instant) -> Option<LeakReport> {
        let first = self.core.enter(Phase::Stopping);
        if first.is_empty() && report.is_none() {
            // A clean test with nothing left: close at once. Whatever a thread with no owner of
            // its own spawned for the check in between (through tokio's hooks) is stopped too.
            stop(&self.core.enter(Phase::Closed));
            return None;
        }
        // Plain tasks alive before anything is stopped, as tokio counts them (see
        // `plain_spawned_while_stopping`): the larger of two reads, since a tracked task that
        // ends between a snapshot and tokio's count makes a read one too low.
        let plain_before = self
            .untracked(&first)
            .max(self.untracked(&self.core.snapshot()));
        let mut handled: HashSet<u64> = first.iter().map(|record| record.id).collect();
        let mut stopped_background = first.iter().any(|record| record.background);
        stop(&first);
        drop(first);
        let mut late = Vec::new();
        // One budget for all of cleanup's extended graces, however many rounds there are.
        let extend_until = self.hard_deadline(Instant::now() + self.grace);
        // Tasks a round already waited for in vain (stuck in a poll): later rounds do not wait
        // for them again.
        let mut given_up: HashSet<u64> = HashSet::new();
        for _round in 0..MAX_CLEANUP_ROUNDS {
            // Until the tasks stopped so far are gone (but those that cannot be waited out), or
            // new ones appear.
            let deadline = Instant::now() + DROP_TIMEOUT;
            let settled = || {
                let live = self.core.snapshot();
                live.iter().any(|record| !handled.contains(&record.id))
                    || live
                        .iter()
                        .all(|record| !can_be_waited_out(record) || given_up.contains(&record.id))
            };
            let stopped = self
                .until(None, settled, || false, deadline, deadline)
                .await;
            if !stopped {
                given_up.extend(
                    self.core
                        .snapshot()
                        .iter()
                        .map(|record| record.id)
                        .filter(|id| handled.contains(id)),
                );
            }
            let new: Vec<_> = self
                .core
                .snapshot()
                .into_iter()
                .filter(|record| !handled.contains(&record.id))
                .collect();
            if new.is_empty() {
                break;
            }
            handled.extend(new.iter().map(|record| record.id));
            let (own, others): (Vec<_>, Vec<_>) = new
                .into_iter()
                .partition(|record| self.is_reportable(record));
            stopped_background |= others.iter().any(|record| record.background);
            stop(&others);
            late.extend(self.late_stragglers(own, extend_until).await);
        }
        // From here on whatever is spawned is aborted before it can run.
        for record in self.core.enter(Phase::Closed) {
            if !handled.contains(&record.id) {
                if self.is_reportable(&record) {
                    late.push(Straggler::describe(&record, Instant::now()));
                }
                record.abort();
            }
        }
        // Without tokio's hooks, plain tasks that background work's `Drop` spawned look like
        // the test's own: once cleanup has stopped background work, they cannot be held
        // against the test (the README says so).
        let late_plain = if stopped_background && !cfg!(tokio_unstable) {
            0
        } else {
            self.plain_spawned_while_stopping(plain_before, extend_until)
                .await
        };
        if !late.is_empty() || late_plain > 0 {
            let report = report.get_or_insert_with(|| self.empty_report(ReportKind::Leak, since));
            report.stragglers.extend(late);
            report.untracked += late_plain;
            report.untracked_late = late_plain;
        }
        if let Some(report) = &mut report {
            self.say_what_became_of(report, &given_up);
        }
        report
    }

    /// Tells, for each straggler, what cleanup did: a task no longer alive was stopped; one still
    /// alive is a plain task its runtime's shutdown drops, a running blocking closure, or a task
    /// inside a poll that has not returned.
    fn say_what_became_of(&self, report: &mut LeakReport, waited_in_vain: &HashSet<u64>) {
        let alive: HashMap<u64, Arc<TaskRecord>> = self
            .core
            .snapshot()
            .into_iter()
            .map(|record| (record.id, record))
            .collect();
        for straggler in &mut report.stragglers {
            straggler.stop = match alive.get(&straggler.id) {
                None => StopOutcome::Aborted,
                Some(record) if record.kind == TaskKind::Plain => StopOutcome::DroppedWithRuntime,
                Some(record) if record.closure_running() => {
                    StopOutcome::CannotStop(Unstoppable::BlockingClosure)
                }
                Some(record) if record.in_poll() => StopOutcome::CannotStop(Unstoppable::InPoll),
                // Cleanup waited for its drop in vain, and no thread has begun it: nothing runs
                // it. (One whose `Drop` is slow is being dropped.)
                Some(record) if waited_in_vain.contains(&record.id) && !record.dropping() => {
                    StopOutcome::AbortedNotRun
                }
                // Aborted, and not dropped yet: tokio drops it when its runtime next runs it.
                Some(_) => StopOutcome::Aborted,
            };
        }
    }

    /// Plain tasks that appeared on the test's runtime while cleanup stopped the check's tasks
    /// (spawned by their `Drop`s with plain `tokio::spawn`): without `tokio_unstable`, whose
    /// hooks give them records like any other task, tokio's count is all that shows them. Like
    /// own tasks spawned during cleanup, they get the grace period to end (extended up to
    /// `extend_until` while the machine is too loaded to run the check on time); how many are
    /// still alive after it is returned.
    async fn plain_spawned_while_stopping(&self, before: usize, extend_until: Instant) -> usize {
        if self.runtime.is_none() {
            return 0;
        }
        let new_plain = || self.untracked(&self.core.snapshot()).saturating_sub(before);
        if new_plain() == 0 {
            return 0;
        }
        let deadline = Instant::now() + self.grace;
        self.until(
            None,
            || new_plain() == 0,
            overloaded_since(deadline),
            deadline,
            extend_until.max(deadline),
        )
        .await;
        // tokio's count is not strongly consistent across workers: take the least of a few reads.
        (0..3)
            .map(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                new_plain()
            })
            .min()
            .unwrap_or(0)
    }

    /// Own tasks spawned during cleanup: given the grace period to end, extended up to
    /// `extend_until` (cleanup's one budget) while they wait for a thread; those that do not
    /// end are described and stopped.
    async fn late_stragglers(
        &self,
        tasks: Vec<Arc<TaskRecord>>,
        extend_until: Instant,
    ) -> Vec<Straggler> {
        if tasks.is_empty() {
            return Vec::new();
        }
        for record in &tasks {
            record.mark();
        }
        let ids: HashSet<u64> = tasks.iter().map(|record| record.id).collect();
        drop(tasks);
        let alive = || -> Vec<Arc<TaskRecord>> {
            self.core
                .snapshot()
                .into_iter()
                .filter(|record| ids.contains(&record.id))
                .collect()
        };
        let deadline = Instant::now() + self.grace;
        let mut overloaded = overloaded_since(deadline);
        let ending = || {
            let now = Instant::now();
            alive()
                .iter()
                .any(|record| record.may_end_soon(now, PATIENCE, self.grace))
        };
        // Both asked each time, so that the overload clock keeps up.
        let may_extend = move || {
            let late = overloaded();
            ending() || late
        };
        self.until(
            None,
            || alive().is_empty(),
            may_extend,
            deadline,
            extend_until.max(deadline),
        )
        .await;
        let now = Instant::now();
        let alive = alive();
        let stragglers = alive
            .iter()
            .map(|record| Straggler::describe(record, now))
            .collect();
        stop(&alive);
        stragglers
    }

    /// How far a deadline may move while tasks still wait for a thread.
    fn hard_deadline(&self, deadline: Instant) -> Instant {
        deadline + (self.grace * 4).max(Duration::from_secs(1))
    }

    /// How far the verdict's deadline may move while the check's own tasks keep ending.
    fn drain_deadline(&self, deadline: Instant) -> Instant {
        deadline + (self.grace * 10).max(Duration::from_secs(10))
    }

    /// For the verdict's `may_extend`: whether tokio's count of the test's multi-thread runtime
    /// may still include a task of the check that has ended ([`PLAIN_COUNT_LAG`]), while that
    /// count says a plain task is alive. A current-thread runtime's count never lags the check,
    /// which runs on the same thread between tasks.
    fn plain_count_may_lag(&self, progress: &Progress, now: Instant) -> bool {
        let Some(count) = &self.runtime else {
            return false;
        };
        count.handle.runtime_flavor() != RuntimeFlavor::CurrentThread
            && progress
                .ended_at
                .get()
                .is_some_and(|at| now.saturating_duration_since(at) < PLAIN_COUNT_LAG)
            && self.untracked(&self.core.snapshot()) > 0
    }

    /// Each straggler's async backtrace, where task dumps are available.
    async fn add_traces(&self, report: &mut LeakReport) {
        let Some(runtime) = self
            .runtime
            .as_ref()
            .filter(|_| crate::report::dump::ENABLED)
        else {
            return;
        };
        let mut traces = dump::traces(&runtime.handle).await;
        for straggler in &mut report.stragglers {
            straggler.trace = straggler
                .task_id
                .and_then(|id| traces.remove(&id))
                .filter(|trace| !trace.trim().is_empty());
        }
    }

    /// Resolves once `done` says so (checked at each end of a task that leaves at most
    /// `own_at_most` own tasks, or of any task for `None`), or with `false` at the deadline.
    fn until<'a>(
        &'a self,
        own_at_most: Option<usize>,
        done: impl FnMut() -> bool + Unpin + 'a,
        may_extend: impl FnMut() -> bool + Unpin + 'a,
        deadline: Instant,
        hard_deadline: Instant,
    ) -> Until<impl FnMut() -> bool + Unpin + 'a, impl FnMut() -> bool + Unpin + 'a> {
        let core = self.core.clone();
        Until {
            done,
            may_extend,
            register: Box::new(move |waker| core.wake_when(own_at_most, waker)),
            deadline,
            hard_deadline,
            recheck_every: self.runtime.as_ref().map(|_| RECOUNT_EVERY),
            timer: None,
        }
    }

    fn empty_report(&self, kind: ReportKind, since: Instant) -> LeakReport {
        LeakReport {
            kind,
            test: self.test.clone(),
            helper: self.helper,
            waited: Instant::now().saturating_duration_since(since),
            stragglers: Vec::new(),
            untracked: 0,
            untracked_late: 0,
            allowed: 0,
            untracked_blocking: 0,
            background_spawns_untracked: false,
            body_panicked: false,
            clock_resumed: false,
        }
    }

    /// The report of what is alive now: each live task once, from one snapshot.
    pub(crate) fn report(&self, kind: ReportKind, since: Instant) -> LeakReport {
        let now = Instant::now();
        let live = self.core.snapshot();
        let allowed = live
            .iter()
            .filter(|record| !record.background && self.is_allowed(record))
            .count();
        let stragglers = live
            .iter()
            .filter(|record| self.is_reportable(record))
            .map(|record| Straggler::describe(record, now))
            .collect();
        // tokio's count is not strongly consistent across workers: take the least of a few reads.
        let untracked = (0..3)
            .map(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.untracked(&live)
            })
            .min()
            .unwrap_or(0);
        let untracked_blocking = self.untracked_blocking(&live);
        // Without tokio's hooks, a plain task spawned by background work is counted with the
        // test's own: say so when there is background work that may have spawned it.
        let background_spawns_untracked =
            !cfg!(tokio_unstable) && untracked > 0 && live.iter().any(|record| record.background);
        LeakReport {
            kind,
            test: self.test.clone(),
            helper: self.helper,
            waited: now.saturating_duration_since(since),
            stragglers,
            untracked,
            untracked_late: 0,
            allowed,
            untracked_blocking,
            background_spawns_untracked,
            body_panicked: false,
            clock_resumed: false,
        }
    }
}

/// How the check's tasks have been ending while the verdict waits, watched at each look.
struct Progress {
    /// The check's count of ended tasks when last looked at, and when it last changed.
    ended: Cell<u64>,
    ended_at: Cell<Option<Instant>>,
    /// The fewest own tasks seen alive, and when that last went down.
    lowest_own: Cell<usize>,
    lowered_at: Cell<Option<Instant>>,
}

impl Progress {
    fn new(core: &CheckCore) -> Self {
        Progress {
            ended: Cell::new(core.ended()),
            ended_at: Cell::new(None),
            lowest_own: Cell::new(core.own_live()),
            lowered_at: Cell::new(None),
        }
    }

    fn observe(&self, core: &CheckCore, now: Instant) {
        let ended = core.ended();
        if ended != self.ended.get() {
            self.ended.set(ended);
            self.ended_at.set(Some(now));
        }
        let own = core.own_live();
        if own < self.lowest_own.get() {
            self.lowest_own.set(own);
            self.lowered_at.set(Some(now));
        }
    }

    /// Whether own tasks are still ending: their count reached a new low within the last
    /// [`DRAIN_WINDOW`]. A count that only goes up and down (a loop that spawns short tasks)
    /// reaches no new low.
    fn draining(&self, now: Instant) -> bool {
        self.lowered_at
            .get()
            .is_some_and(|at| now.saturating_duration_since(at) < DRAIN_WINDOW)
    }
}

/// For `Until::may_extend`: whether the check itself woke more than [`PATIENCE`] after it was
/// due (first at `deadline`, then at each extension): the machine is too loaded to run the
/// check on time, so the tasks it waits for may not have had a thread either. What shows that
/// for a tracked task (`TaskRecord::may_end_soon`) is not known of a plain one.
fn overloaded_since(deadline: Instant) -> impl FnMut() -> bool + Unpin {
    let mut due = deadline;
    move || {
        let now = Instant::now();
        let late = now.saturating_duration_since(due) > PATIENCE;
        due = now + wait::EXTENSION_STEP;
        late
    }
}

/// Stops `tasks`: marks them all first, then aborts them, so that a task released by another's
/// drop cannot run on before its own abort.
fn stop(tasks: &[Arc<TaskRecord>]) {
    for record in tasks {
        record.request_stop();
    }
    for record in tasks {
        record.abort();
    }
}

/// Whether cleanup should wait for this live task to be dropped: not a running blocking closure
/// (it cannot be stopped), not a plain task (its runtime's shutdown drops it).
fn can_be_waited_out(record: &TaskRecord) -> bool {
    record.kind != TaskKind::Plain && !record.closure_running()
}

/// Lets a current-thread runtime's paused clock (`start_paused`, `time::pause`) run in real time
/// again, so that the check's wait, and what the test's tasks do meanwhile, happen in real time:
/// a straggler sleeping an hour of paused time is still asleep at the deadline, and a task that
/// needs a millisecond's sleep to end gets it. Only checks that wait pay for the look (a tenth of
/// a millisecond), and only on a current-thread runtime, the only kind whose clock can pause.
/// Returns whether the clock was paused.
fn resume_paused_clock() -> bool {
    let Ok(handle) = Handle::try_current() else {
        return false;
    };
    if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
        return false;
    }
    // tokio gives no way to ask whether its clock is paused: a paused one does not move while
    // real time does.
    let before = tokio::time::Instant::now();
    std::thread::sleep(Duration::from_micros(100));
    let paused = tokio::time::Instant::now() == before;
    if paused {
        tokio::time::resume();
    }
    paused
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check that wakes well after it was due says the machine is overloaded; one woken
    /// before it was due does not.
    #[test]
    fn a_check_woken_late_asks_for_more_time() {
        let mut late = overloaded_since(Instant::now() - Duration::from_millis(50));
        assert!(late(), "woken 50 ms after it was due");
        let mut early = overloaded_since(Instant::now() + Duration::from_secs(3600));
        assert!(!early());
    }
}
