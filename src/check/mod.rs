//! The check that runs when a test body ends: wait for the test's own tasks, then report and
//! abort whatever is still alive, and stop its background work.

pub(crate) mod dump;
#[cfg(tokio_unstable)]
pub(crate) mod hooks;
pub(crate) mod wait;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeMetrics};

use crate::config::allow::AllowList;
use crate::tracking::clock;
use crate::tracking::cohort::Cohort;
use crate::tracking::ownership::Owner;
use crate::tracking::registry::CheckCore;
use crate::report::{LeakReport, ReportKind, Straggler};
use crate::tracking::task::{TaskKind, TaskRecord};
use crate::check::wait::Until;

/// How often tokio's alive-task count is re-read while settling; it cannot wake anyone.
const RECOUNT_EVERY: Duration = Duration::from_millis(5);
/// How long aborted tasks get to be dropped before the test moves on.
const DROP_TIMEOUT: Duration = Duration::from_secs(1);
/// A woken task not polled for this long at the deadline is waiting for a thread, and the
/// deadline moves on by this much, up to the hard deadline.
const PATIENCE: Duration = Duration::from_millis(10);

pub(crate) struct Check {
    core: Arc<CheckCore>,
    test: String,
    grace: Duration,
    allow: AllowList,
    runtime: Option<RuntimeCount>,
}

/// Tasks of a runtime that the test owns alone, counted by tokio however they were spawned.
struct RuntimeCount {
    handle: Handle,
    metrics: RuntimeMetrics,
    baseline: usize,
}

impl Check {
    /// Starts a check. `own_runtime` is the runtime the test runs on alone, if any: its tasks are
    /// then counted even when spawned with plain `tokio::spawn`.
    pub(crate) fn begin(
        test: String,
        grace: Duration,
        allow: AllowList,
        own_runtime: Option<&Handle>,
    ) -> Check {
        let runtime = own_runtime.map(|handle| {
            let metrics = handle.metrics();
            RuntimeCount {
                handle: handle.clone(),
                baseline: metrics.num_alive_tasks(),
                metrics,
            }
        });
        Check {
            core: Arc::new(CheckCore::new()),
            test,
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

    /// Alive tasks of the test's own runtime not spawned through leak-check. Every tracked task
    /// still alive is subtracted, whatever runtime it runs on: that can only hide an untracked
    /// task, never invent one.
    fn untracked(&self) -> usize {
        if self.allow.untracked {
            return 0;
        }
        self.runtime.as_ref().map_or(0, |count| {
            let tracked = self.core.live() + self.core.live_background();
            count
                .metrics
                .num_alive_tasks()
                .saturating_sub(count.baseline + tracked)
        })
    }

    fn is_allowed(&self, record: &TaskRecord) -> bool {
        (self.allow.untracked && record.kind == TaskKind::Plain)
            || self
                .allow
                .allows(record.origin.site, record.origin.name.as_deref())
    }

    /// The stragglers to wait for and report: not background work, not allowed.
    fn reportable(&self) -> Vec<Arc<TaskRecord>> {
        let mut records = self.core.snapshot();
        records.retain(|record| !record.background && !self.is_allowed(record));
        records
    }

    /// The cohorts of tasks that have not yielded, with how many, that are not allowed.
    fn reportable_unyielded(&self) -> Vec<(Arc<Cohort>, usize)> {
        let mut cohorts = self.core.unyielded_cohorts();
        cohorts.retain(|(cohort, _)| !self.allow.allows(cohort.site, None));
        cohorts
    }

    fn is_clean(&self) -> bool {
        let tracked_done = self.core.live() == 0
            || (self.allow.may_allow_some()
                && self.reportable_unyielded().is_empty()
                && self.reportable().is_empty());
        tracked_done && self.untracked() == 0
    }

    /// Call when the body has returned or panicked. Returns the report if tasks leaked, after
    /// aborting them; background tasks are stopped either way.
    pub(crate) async fn conclude(self) -> Option<LeakReport> {
        let (mut report, seen) = match self.settle().await {
            Some((report, seen)) => (Some(report), seen),
            None => (None, Seen::default()),
        };
        self.stop_all(false).await;
        // Stopping drops futures, whose Drop impls may spawn: those are stragglers too. Tasks
        // spawned since the report are in cohorts of a later stop epoch, or have records not
        // seen by the report and not from the cohorts it saw.
        let mut late_unyielded = self.reportable_unyielded();
        late_unyielded.retain(|(cohort, _)| cohort.epoch > seen.epoch);
        let mut late = self.reportable();
        late.retain(|record| {
            !seen.records.contains(&Arc::as_ptr(record))
                && record.cohort_epoch().is_none_or(|epoch| epoch > seen.epoch)
        });
        let any_late = !late.is_empty() || !late_unyielded.is_empty();
        if let (Some(report), true) = (&mut report, any_late) {
            let now = clock::precise_now();
            report
                .stragglers
                .extend(unyielded_stragglers(&late_unyielded));
            report
                .stragglers
                .extend(late.iter().map(|record| Straggler::describe(record, now)));
        }
        if any_late {
            drop(late);
            drop(late_unyielded);
            self.stop_all(false).await;
        }
        self.stop_all(true).await;
        report
    }

    /// Stops every live task of one kind: the test's own, or its background work.
    async fn stop_all(&self, background: bool) {
        let unyielded = !background && self.core.has_unyielded();
        if !background {
            self.core.stop_unyielded();
        }
        let tasks: Vec<_> = self
            .core
            .snapshot()
            .into_iter()
            .filter(|record| record.background == background)
            .collect();
        self.stop(tasks, unyielded, background).await;
    }

    /// Waits out the grace period; if tasks are left, returns the report and what its snapshot
    /// saw, so that later stragglers can be told from them.
    async fn settle(&self) -> Option<(LeakReport, Seen)> {
        if self.is_clean() {
            return None;
        }
        let body_ended = Instant::now();
        for record in self.core.snapshot() {
            record.mark();
        }
        // A task that has not yielded may not have had a thread yet: give it the extra time.
        let starved = || {
            let now = clock::precise_now();
            !self.reportable_unyielded().is_empty()
                || self
                    .reportable()
                    .iter()
                    .any(|record| record.starved(now, PATIENCE))
        };
        let deadline = body_ended + self.grace;
        let hard_deadline = deadline + (self.grace * 4).max(Duration::from_secs(1));
        let settled = self
            .until(
                0,
                false,
                || self.is_clean(),
                starved,
                deadline,
                hard_deadline,
            )
            .await;
        if settled {
            return None;
        }
        let (mut report, seen) = self.report_and_seen(ReportKind::Leak, body_ended);
        if report.is_empty() {
            return None;
        }
        self.add_traces(&mut report).await;
        Some((report, seen))
    }

    /// Each straggler's async backtrace, where task dumps are available.
    async fn add_traces(&self, report: &mut LeakReport) {
        let Some(runtime) = self.runtime.as_ref().filter(|_| crate::check::dump::ENABLED) else {
            return;
        };
        let mut traces = crate::check::dump::traces(&runtime.handle).await;
        for straggler in &mut report.stragglers {
            straggler.trace = straggler
                .task_id
                .and_then(|id| traces.remove(&id))
                .filter(|trace| !trace.trim().is_empty());
        }
    }

    /// A report of everything alive now, for a body that did not finish in time; the tasks are
    /// then stopped like stragglers.
    pub(crate) async fn timed_out(self, limit: Duration, body_started: Instant) -> LeakReport {
        let report = self.report(ReportKind::Timeout(limit), body_started);
        self.stop_all(false).await;
        self.stop_all(true).await;
        report
    }

    /// Aborts `records` (and, through the stop epoch, tasks that have not yielded, if
    /// `unyielded`) and waits (bounded) until all but the blocking ones are dropped.
    async fn stop(&self, records: Vec<Arc<TaskRecord>>, unyielded: bool, background: bool) {
        if records.is_empty() && !unyielded {
            return;
        }
        // Running blocking closures cannot be aborted, and plain tasks (seen through tokio's hooks)
        // have no handle here: their runtime's shutdown drops them. Do not wait for those.
        let blocking = records
            .iter()
            .filter(|record| record.closure_running() || record.kind == TaskKind::Plain)
            .count();
        for record in &records {
            record.abort();
        }
        drop(records);
        let abort_deadline = Instant::now() + DROP_TIMEOUT;
        let left = || {
            if background {
                self.core.live_background()
            } else {
                self.core.live()
            }
        };
        let dropped = || left() <= blocking;
        self.until(
            blocking,
            background,
            dropped,
            || false,
            abort_deadline,
            abort_deadline,
        )
        .await;
    }

    fn until<'a>(
        &'a self,
        live_target: usize,
        background: bool,
        done: impl FnMut() -> bool + Unpin + 'a,
        may_extend: impl FnMut() -> bool + Unpin + 'a,
        deadline: Instant,
        hard_deadline: Instant,
    ) -> Until<impl FnMut() -> bool + Unpin + 'a, impl FnMut() -> bool + Unpin + 'a> {
        let core = self.core.clone();
        // With an allow-list, the last reportable task's exit may not bring the count to the
        // target: wake on every exit then.
        let target = if background || !self.allow.may_allow_some() {
            live_target
        } else {
            usize::MAX
        };
        Until {
            done,
            may_extend,
            register: Box::new(move |waker| core.wake_when_at_most(target, waker)),
            deadline,
            hard_deadline,
            recheck_every: self.runtime.as_ref().map(|_| RECOUNT_EVERY),
            timer: None,
        }
    }

    pub(crate) fn report(&self, kind: ReportKind, since: Instant) -> LeakReport {
        self.report_and_seen(kind, since).0
    }

    /// The report, and every task its snapshot saw.
    fn report_and_seen(&self, kind: ReportKind, since: Instant) -> (LeakReport, Seen) {
        let now = Instant::now();
        let stamp = clock::precise_now();
        let epoch = self.core.stop_epoch();
        // Cohorts first: see `CheckCore::unyielded_cohorts`.
        let (allowed_unyielded, unyielded): (Vec<_>, Vec<_>) = self
            .core
            .unyielded_cohorts()
            .into_iter()
            .partition(|(cohort, _)| self.allow.allows(cohort.site, None));
        let all = self.core.snapshot();
        let seen = Seen {
            records: all.iter().map(Arc::as_ptr).collect(),
            epoch,
        };
        let allowed = all
            .iter()
            .filter(|record| !record.background && self.is_allowed(record))
            .count()
            + allowed_unyielded.iter().map(|(_, n)| n).sum::<usize>();
        let mut stragglers: Vec<Straggler> = unyielded_stragglers(&unyielded);
        stragglers.extend(
            all.iter()
                .filter(|record| !record.background && !self.is_allowed(record))
                .map(|record| Straggler::describe(record, stamp)),
        );
        drop(all);
        // Cohorts and records are read at different moments: if nothing is alive now, whatever
        // they listed has ended since (or was a task seen twice as it yielded).
        if self.core.live() == 0 {
            stragglers.clear();
        }
        // tokio's count is not strongly consistent across workers: take the least of a few reads.
        let untracked = (0..3)
            .map(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.untracked()
            })
            .min()
            .unwrap_or(0);
        let report = LeakReport {
            kind,
            test: self.test.clone(),
            waited: now.saturating_duration_since(since),
            stragglers,
            untracked,
            allowed,
        };
        (report, seen)
    }
}

/// The tasks a report's snapshot saw, so that later stragglers can be told from them.
#[derive(Default)]
struct Seen {
    records: Vec<*const TaskRecord>,
    /// The check's stop epoch at the report: tasks of cohorts of this epoch or earlier were
    /// there to be seen.
    epoch: u32,
}

/// One straggler per task of each cohort.
fn unyielded_stragglers(cohorts: &[(Arc<Cohort>, usize)]) -> Vec<Straggler> {
    cohorts
        .iter()
        .flat_map(|(cohort, alive)| std::iter::repeat_n(Straggler::unyielded(cohort), *alive))
        .collect()
}

impl Drop for Check {
    fn drop(&mut self) {
        self.core.close_cohorts();
    }
}
