//! The check that runs when a test body ends: wait for the test's own tasks, then report and
//! abort whatever is still alive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeMetrics};

use crate::ownership::Owner;
use crate::registry::CheckCore;
use crate::report::{LeakReport, Straggler};
use crate::task::{TaskKind, TaskRecord};
use crate::wait::Until;

/// How often tokio's alive-task count is re-read while settling; it cannot wake anyone.
const RECOUNT_EVERY: Duration = Duration::from_millis(5);
/// How long aborted tasks get to be dropped before the test moves on.
const DROP_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Check {
    core: Arc<CheckCore>,
    test: String,
    grace: Duration,
    runtime: Option<RuntimeCount>,
}

/// Tasks of a runtime that the test owns alone, counted by tokio however they were spawned.
struct RuntimeCount {
    metrics: RuntimeMetrics,
    baseline: usize,
}

impl Check {
    /// Starts a check. `own_runtime` is the runtime the test runs on alone, if any: its tasks are
    /// then counted even when spawned with plain `tokio::spawn`.
    pub(crate) fn begin(test: String, grace: Duration, own_runtime: Option<&Handle>) -> Check {
        let runtime = own_runtime.map(|handle| {
            let metrics = handle.metrics();
            RuntimeCount {
                baseline: metrics.num_alive_tasks(),
                metrics,
            }
        });
        Check {
            core: Arc::new(CheckCore::new()),
            test,
            grace,
            runtime,
        }
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner::Body(self.core.clone())
    }

    /// Alive tasks of the test's own runtime not spawned through leak-check, given how many of
    /// the tracked ones run as runtime tasks (not blocking, not local). Tracked tasks of this
    /// check that run on another runtime are subtracted too, which can only hide an untracked
    /// task, never invent one.
    fn untracked(&self, tracked_runtime_tasks: usize) -> usize {
        self.runtime.as_ref().map_or(0, |count| {
            count
                .metrics
                .num_alive_tasks()
                .saturating_sub(count.baseline + tracked_runtime_tasks)
        })
    }

    fn is_clean(&self) -> bool {
        self.core.live() == 0 && self.untracked(0) == 0
    }

    /// Call when the body has returned or panicked. Returns the report if tasks leaked, after
    /// aborting them.
    pub(crate) async fn conclude(self) -> Option<LeakReport> {
        if self.is_clean() {
            return None;
        }
        let body_ended = Instant::now();
        for record in self.core.snapshot() {
            record.mark();
        }
        let starved = || {
            self.core
                .snapshot()
                .iter()
                .any(|record| record.starved_since(body_ended))
        };
        let deadline = body_ended + self.grace;
        let hard_deadline = deadline + (self.grace * 4).max(Duration::from_secs(1));
        let settled = self
            .until(0, || self.is_clean(), starved, deadline, hard_deadline)
            .await;
        if settled {
            return None;
        }
        let report = self.report(body_ended);
        if report.is_empty() {
            return None;
        }
        let stragglers = self.core.snapshot();
        let blocking = count_kind(&stragglers, TaskKind::Blocking);
        for record in &stragglers {
            record.abort();
        }
        drop(stragglers);
        // Running blocking closures cannot be aborted: wait for the rest to be dropped.
        let abort_deadline = Instant::now() + DROP_TIMEOUT;
        let only_blocking_left = || self.core.live() <= blocking;
        self.until(
            blocking,
            only_blocking_left,
            || false,
            abort_deadline,
            abort_deadline,
        )
        .await;
        Some(report)
    }

    fn until<'a>(
        &'a self,
        live_target: usize,
        done: impl FnMut() -> bool + Unpin + 'a,
        may_extend: impl FnMut() -> bool + Unpin + 'a,
        deadline: Instant,
        hard_deadline: Instant,
    ) -> Until<impl FnMut() -> bool + Unpin + 'a, impl FnMut() -> bool + Unpin + 'a> {
        let core = self.core.clone();
        Until {
            done,
            may_extend,
            register: Box::new(move |waker| core.wake_when_at_most(live_target, waker)),
            deadline,
            hard_deadline,
            recheck_every: self.runtime.as_ref().map(|_| RECOUNT_EVERY),
            timer: None,
        }
    }

    fn report(&self, body_ended: Instant) -> LeakReport {
        let now = Instant::now();
        let records = self.core.snapshot();
        let stragglers: Vec<Straggler> = records
            .iter()
            .map(|record| Straggler::describe(record, now))
            .collect();
        let tracked_runtime_tasks = count_kind(&records, TaskKind::Async);
        drop(records);
        // tokio's count is not strongly consistent across workers: take the least of a few reads.
        let untracked = (0..3)
            .map(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.untracked(tracked_runtime_tasks)
            })
            .min()
            .unwrap_or(0);
        LeakReport {
            test: self.test.clone(),
            waited: now.saturating_duration_since(body_ended),
            stragglers,
            untracked,
        }
    }
}

fn count_kind(records: &[Arc<TaskRecord>], kind: TaskKind) -> usize {
    records.iter().filter(|record| record.kind == kind).count()
}
