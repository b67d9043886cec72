//! The check that runs when a test body ends: wait for the test's own tasks, then report and
//! abort whatever is still alive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeMetrics};

use crate::ownership::Owner;
use crate::registry::{CheckCore, LiveCounts};
use crate::report::{LeakReport, Straggler};
use crate::task::TaskKind;
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

impl RuntimeCount {
    /// Alive tasks that leak-check did not spawn. Tracked tasks of this check that run on another
    /// runtime are subtracted too, which can only hide an untracked task, never invent one.
    fn untracked(&self, live: LiveCounts) -> usize {
        self.metrics
            .num_alive_tasks()
            .saturating_sub(self.baseline + live.runtime_tasks)
    }
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

    fn untracked(&self, live: LiveCounts) -> usize {
        self.runtime
            .as_ref()
            .map_or(0, |count| count.untracked(live))
    }

    fn is_clean(&self) -> bool {
        let live = self.core.live_counts();
        live.all == 0 && self.untracked(live) == 0
    }

    /// Call when the body has returned or panicked. Returns the report if tasks leaked, after
    /// aborting them.
    pub(crate) async fn conclude(self) -> Option<LeakReport> {
        if self.is_clean() {
            return None;
        }
        let body_ended = Instant::now();
        for record in self.core.snapshot() {
            record.probe.mark();
        }
        let settled = self
            .until(
                || self.is_clean(),
                || {
                    self.core.snapshot().iter().any(|record| {
                        record.kind != TaskKind::Blocking && record.probe.starved_since(body_ended)
                    })
                },
                body_ended + self.grace,
                body_ended + self.grace + (self.grace * 4).max(Duration::from_secs(1)),
            )
            .await;
        if settled {
            return None;
        }
        let report = self.report(body_ended);
        if report.is_empty() {
            return None;
        }
        let stragglers = self.core.snapshot();
        for record in &stragglers {
            record.abort();
        }
        drop(stragglers);
        let abort_deadline = Instant::now() + DROP_TIMEOUT;
        let only_blocking_left = || {
            let live = self.core.live_counts();
            live.all == live.blocking
        };
        self.until(only_blocking_left, || false, abort_deadline, abort_deadline)
            .await;
        Some(report)
    }

    fn until<'a>(
        &'a self,
        done: impl FnMut() -> bool + Unpin + 'a,
        may_extend: impl FnMut() -> bool + Unpin + 'a,
        deadline: Instant,
        hard_deadline: Instant,
    ) -> Until<impl FnMut() -> bool + Unpin + 'a, impl FnMut() -> bool + Unpin + 'a> {
        let core = self.core.clone();
        Until {
            done,
            may_extend,
            register: Box::new(move |waker| core.set_waker(waker)),
            deadline,
            hard_deadline,
            recheck_every: self.runtime.as_ref().map(|_| RECOUNT_EVERY),
            timer: None,
        }
    }

    fn report(&self, body_ended: Instant) -> LeakReport {
        let now = Instant::now();
        let stragglers: Vec<Straggler> = self
            .core
            .snapshot()
            .iter()
            .map(|record| Straggler::describe(record, now))
            .collect();
        // tokio's count is not strongly consistent across workers: take the least of a few reads.
        let untracked = (0..3)
            .map(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.untracked(self.core.live_counts())
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
