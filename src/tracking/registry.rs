//! The tasks of one check, kept so that the spawn path touches only memory of its own thread.
//!
//! Each shard (one per thread, by a thread's hint) holds weak references to the records spawned
//! there and two monotonic counters: tasks spawned by its threads, tasks finished on its threads.
//! A finishing task never touches the spawner's shard; finished records are swept out by later
//! spawns, amortized. Nothing here is shared between checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Waker;

use once_cell::sync::Lazy;
use parking_lot::Mutex;

use crate::tracking::cohort::{Cohort, CohortKey};
use crate::tracking::task::TaskRecord;

static SHARD_COUNT: Lazy<usize> = Lazy::new(|| {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 2).next_power_of_two().min(64)
});

static NEXT_THREAD_HINT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_HINT: usize = NEXT_THREAD_HINT.fetch_add(1, Ordering::Relaxed);
}

/// Tasks alive from monotonic counts of spawns and ends (read ends first: see `CheckCore::live`).
pub(crate) fn count_alive(spawned: u64, finished: u64) -> usize {
    usize::try_from(spawned.saturating_sub(finished)).unwrap_or(usize::MAX)
}

/// A number for this thread, unique in the process (0 once its thread-locals are gone).
pub(crate) fn thread_hint() -> usize {
    unique_thread_hint().unwrap_or(0)
}

/// A number for this thread, unique in the process, while it has its thread-locals.
pub(crate) fn unique_thread_hint() -> Option<usize> {
    THREAD_HINT.try_with(|hint| *hint).ok()
}

/// A shard's list is swept when it reaches this many entries, or twice its size after the last
/// sweep, whichever is more.
const MIN_SWEEP_AT: usize = 64;

/// Keeps each shard on its own cache lines.
#[repr(align(128))]
struct Shard {
    records: Mutex<Records>,
    spawned: AtomicU64,
    finished: AtomicU64,
    /// Background tasks are counted apart: the check never waits for them.
    background_spawned: AtomicU64,
    background_finished: AtomicU64,
}

struct Records {
    list: Vec<Weak<TaskRecord>>,
    sweep_at: usize,
}

fn keep_in(shard: &Shard, record: &Arc<TaskRecord>) {
    let mut records = shard.records.lock();
    if records.list.len() >= records.sweep_at {
        records.list.retain(|weak| weak.strong_count() > 0);
        records.sweep_at = (records.list.len() * 2).max(MIN_SWEEP_AT);
    }
    records.list.push(Arc::downgrade(record));
}

/// The shared heart of one check: its tasks and the waker of whoever waits for them.
pub(crate) struct CheckCore {
    shards: Box<[Shard]>,
    waiter: Waiter,
    cohorts: Mutex<Cohorts>,
    /// Moves on each time the check stops its tasks: a task that has not yielded and was
    /// spawned in an earlier epoch is dropped at its next poll.
    stop_epoch: AtomicU32,
}

/// The check's cohorts of tasks that have not yielded. Each holds the check, so the check
/// holds them only until it ends (`close_cohorts`); after that, spawns get records, unless the
/// spawning thread still has the cohort in its cache (a straggler of the ended check, counted
/// by its counters, which no one reads any more).
struct Cohorts {
    by_key: HashMap<CohortKey, Arc<Cohort>>,
    /// Spent cohorts (see `Cohort::is_spent`) are let go when the map reaches this size.
    prune_at: usize,
    closed: bool,
}

impl Default for Cohorts {
    fn default() -> Self {
        Cohorts {
            by_key: HashMap::new(),
            prune_at: MIN_SWEEP_AT,
            closed: false,
        }
    }
}

impl CheckCore {
    pub(crate) fn new() -> Self {
        CheckCore {
            shards: (0..*SHARD_COUNT)
                .map(|_| Shard {
                    records: Mutex::new(Records {
                        list: Vec::new(),
                        sweep_at: MIN_SWEEP_AT,
                    }),
                    spawned: AtomicU64::new(0),
                    finished: AtomicU64::new(0),
                    background_spawned: AtomicU64::new(0),
                    background_finished: AtomicU64::new(0),
                })
                .collect(),
            waiter: Waiter::default(),
            cohorts: Mutex::default(),
            stop_epoch: AtomicU32::new(0),
        }
    }

    fn my_shard(&self) -> &Shard {
        self.shard_of(thread_hint())
    }

    fn shard_of(&self, thread: usize) -> &Shard {
        // A power of two (`SHARD_COUNT`): a mask, not a division, on the spawn path.
        &self.shards[thread & (self.shards.len() - 1)]
    }

    /// Counts a task and keeps its record. Called before the task can run, so that it is
    /// counted before it can finish.
    pub(crate) fn register(&self, record: &Arc<TaskRecord>) {
        let shard = self.my_shard();
        keep_in(shard, record);
        let spawned = if record.background {
            &shard.background_spawned
        } else {
            &shard.spawned
        };
        spawned.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a task of a cohort (one without a record). Called before the task can run.
    /// `thread` is the cohort's, which is the spawning thread.
    pub(crate) fn count_spawn_in_cohort(&self, thread: usize) {
        self.shard_of(thread).spawned.fetch_add(1, Ordering::SeqCst);
    }

    /// Keeps the record of a task the check counted already (one that has just yielded).
    pub(crate) fn keep(&self, record: &Arc<TaskRecord>) {
        keep_in(self.my_shard(), record);
    }

    /// Called once the task's future or closure is gone.
    pub(crate) fn finish(&self, record: &TaskRecord) {
        record.mark_done();
        self.count_finish(record.background);
    }

    /// Called once the future of a task of a cohort is gone. Whoever waits is not woken here:
    /// see [`CheckCore::is_waited_for`].
    pub(crate) fn count_finish_in_cohort(&self) {
        self.my_shard().finished.fetch_add(1, Ordering::SeqCst);
    }

    fn count_finish(&self, background: bool) {
        let shard = self.my_shard();
        let finished = if background {
            &shard.background_finished
        } else {
            &shard.finished
        };
        finished.fetch_add(1, Ordering::SeqCst);
        if self.is_waited_for() {
            self.wake_waiter_for(background);
        }
    }

    /// Whether the check waits for its tasks: a finishing task then calls
    /// [`CheckCore::wake_waiter`].
    pub(crate) fn is_waited_for(&self) -> bool {
        self.waiter.armed.load(Ordering::SeqCst)
    }

    /// Wakes the waiting check if few enough of its tasks are left.
    pub(crate) fn wake_waiter(&self) {
        self.wake_waiter_for(false);
    }

    fn wake_waiter_for(&self, background: bool) {
        let left = if background {
            self.live_background()
        } else {
            self.live()
        };
        if left <= self.waiter.target.load(Ordering::SeqCst) {
            self.waiter.wake();
        }
    }

    /// The cohort for `key`, made by `make` if there is none; `None` once the check has ended.
    pub(crate) fn cohort(
        &self,
        key: CohortKey,
        make: impl FnOnce() -> Cohort,
    ) -> Option<Arc<Cohort>> {
        let mut cohorts = self.cohorts.lock();
        if cohorts.closed {
            return None;
        }
        if cohorts.by_key.len() >= cohorts.prune_at {
            cohorts.by_key.retain(|_, cohort| !cohort.is_spent());
            cohorts.prune_at = (cohorts.by_key.len() * 2).max(MIN_SWEEP_AT);
        }
        Some(
            cohorts
                .by_key
                .entry(key)
                .or_insert_with(|| Arc::new(make()))
                .clone(),
        )
    }

    /// Each cohort with tasks that have not yielded, and how many. Read before the records
    /// (`snapshot`): a task that yields is kept as a record before its cohort counts it gone, so
    /// reading in this order may see it twice but never misses it.
    pub(crate) fn unyielded_cohorts(&self) -> Vec<(Arc<Cohort>, usize)> {
        let cohorts = self.cohorts.lock();
        cohorts
            .by_key
            .values()
            .filter_map(|cohort| {
                let alive = cohort.alive();
                (alive > 0).then(|| (cohort.clone(), alive))
            })
            .collect()
    }

    /// Whether any task of the check has not yielded and is alive.
    pub(crate) fn has_unyielded(&self) -> bool {
        let cohorts = self.cohorts.lock();
        cohorts.by_key.values().any(|cohort| cohort.alive() > 0)
    }

    /// Lets go of the cohorts when the check ends (each holds the check).
    pub(crate) fn close_cohorts(&self) {
        let by_key = {
            let mut cohorts = self.cohorts.lock();
            cohorts.closed = true;
            std::mem::take(&mut cohorts.by_key)
        };
        drop(by_key);
    }

    pub(crate) fn stop_epoch(&self) -> u32 {
        self.stop_epoch.load(Ordering::SeqCst)
    }

    /// Makes every task that has not yielded yet drop its future at its next poll.
    pub(crate) fn stop_unyielded(&self) {
        self.stop_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Tasks of this check still alive, with records or not. All `finished` counters are read
    /// before any `spawned` one: a task counted as finished was counted as spawned first, so the
    /// result is never below the truth, and 0 means every task spawned so far has finished;
    /// since only live tasks (or the ended body) can spawn more, it stays 0. (A task is counted
    /// once, whether it yields or not: its cohort's counters only say which cohort it is in.)
    /// Background tasks are not counted here: see [`CheckCore::live_background`].
    pub(crate) fn live(&self) -> usize {
        let finished = self.sum(|s| &s.finished);
        count_alive(self.sum(|s| &s.spawned), finished)
    }

    /// Background tasks of this check still alive, read the same way as [`CheckCore::live`].
    pub(crate) fn live_background(&self) -> usize {
        let finished = self.sum(|s| &s.background_finished);
        count_alive(self.sum(|s| &s.background_spawned), finished)
    }

    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| counter(s).load(Ordering::SeqCst))
            .sum()
    }

    /// The records of the tasks still alive.
    pub(crate) fn snapshot(&self) -> Vec<Arc<TaskRecord>> {
        let mut alive = Vec::new();
        for shard in self.shards.iter() {
            let records = shard.records.lock();
            alive.extend(
                records
                    .list
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|record| !record.is_done()),
            );
        }
        alive
    }

    /// Wakes `waker` whenever a task finishes and at most `target` tasks of its kind (background
    /// or not) are left alive.
    pub(crate) fn wake_when_at_most(&self, target: usize, waker: &Waker) {
        self.waiter.set(target, waker);
    }
}

/// The waker of the check that waits for its tasks. Finishing tasks look at it only while armed.
#[derive(Default)]
struct Waiter {
    armed: AtomicBool,
    target: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl Waiter {
    fn set(&self, target: usize, waker: &Waker) {
        {
            let mut stored = self.waker.lock();
            if !stored.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *stored = Some(waker.clone());
            }
        }
        self.target.store(target, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.lock().as_ref() {
            waker.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::panic::{catch_unwind, AssertUnwindSafe, Location};
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::CheckCore;
    use crate::tracking::ownership::{Owner, Registration};
    use crate::tracking::task::{TaskKind, TaskRecord};

    impl CheckCore {
        /// Cohorts in the check's map.
        pub(crate) fn cohorts_kept(&self) -> usize {
            self.cohorts.lock().by_key.len()
        }

        /// Entries kept in the lists, live or not yet swept.
        fn retained(&self) -> usize {
            self.shards
                .iter()
                .map(|s| s.records.lock().list.len())
                .sum()
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Spawn from check `.0`'s body, or from live task `.1` (an index) when it is `Some`.
        Spawn(usize, Option<usize>),
        Finish(usize),
        Abort(usize),
        /// The task's future panics and is dropped while unwinding.
        Panic(usize),
        Look(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, proptest::option::of(0..64usize)).prop_map(|(c, p)| Op::Spawn(c, p)),
            2 => (0..64usize).prop_map(Op::Finish),
            1 => (0..64usize).prop_map(Op::Abort),
            1 => (0..64usize).prop_map(Op::Panic),
            2 => (0..3usize).prop_map(Op::Look),
        ]
    }

    fn ids(records: &[Arc<TaskRecord>]) -> BTreeSet<usize> {
        records.iter().map(|r| Arc::as_ptr(r) as usize).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The registry against a plain model: every live task is owned by exactly the check it
        /// descends from, and nothing is left behind when tasks end, however they end.
        #[test]
        fn registry_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..200)) {
            let checks: Vec<Arc<CheckCore>> = (0..3).map(|_| Arc::new(CheckCore::new())).collect();
            let mut live: Vec<(usize, Registration)> = Vec::new();
            let mut model: BTreeMap<usize, BTreeSet<usize>> = (0..3).map(|c| (c, BTreeSet::new())).collect();
            let look = |checks: &[Arc<CheckCore>], model: &BTreeMap<usize, BTreeSet<usize>>, c: usize| {
                prop_assert_eq!(checks[c].live(), model[&c].len());
                prop_assert_eq!(&ids(&checks[c].snapshot()), &model[&c]);
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Spawn(c, parent) => {
                        let (check, owner) = match parent.filter(|_| !live.is_empty()) {
                            Some(p) => {
                                let (check, parent) = &live[p % live.len()];
                                (*check, Owner::Task(parent.record.clone()))
                            }
                            None => (c, Owner::Body(checks[c].clone())),
                        };
                        let record = TaskRecord::new(&owner, Location::caller(), None, TaskKind::Async, false);
                        let registration = Registration::new(record);
                        model.get_mut(&check).unwrap().insert(Arc::as_ptr(&registration.record) as usize);
                        live.push((check, registration));
                    }
                    Op::Finish(i) | Op::Abort(i) | Op::Panic(i) if !live.is_empty() => {
                        let (check, registration) = live.swap_remove(i % live.len());
                        model.get_mut(&check).unwrap().remove(&(Arc::as_ptr(&registration.record) as usize));
                        match op {
                            Op::Abort(_) => {
                                registration.record.abort();
                                prop_assert!(registration.record.abort_requested());
                                drop(registration);
                            }
                            Op::Panic(_) => {
                                let unwound = catch_unwind(AssertUnwindSafe(move || {
                                    let _dropped_while_unwinding = registration;
                                    panic!("a task panics");
                                }));
                                prop_assert!(unwound.is_err());
                            }
                            _ => drop(registration),
                        }
                    }
                    Op::Look(c) => look(&checks, &model, c)?,
                    _ => {}
                }
            }
            for c in 0..3 {
                look(&checks, &model, c)?;
            }
            drop(live);
            for check in &checks {
                prop_assert_eq!(check.live(), 0);
                prop_assert!(check.snapshot().is_empty());
            }
        }
    }

    #[test]
    fn a_million_finished_tasks_leave_nothing_behind() {
        let check = Arc::new(CheckCore::new());
        let owner = Owner::Body(check.clone());
        let mut batch = Vec::with_capacity(1000);
        for _ in 0..1000 {
            for _ in 0..1000 {
                let record =
                    TaskRecord::new(&owner, Location::caller(), None, TaskKind::Async, false);
                batch.push(Registration::new(record));
            }
            assert_eq!(check.live(), 1000);
            batch.clear();
        }
        assert_eq!(check.live(), 0);
        assert!(check.snapshot().is_empty());
        // Finished entries are swept as later tasks register: what is kept stays bounded by the
        // largest number alive at once, not by the number ever spawned.
        assert!(
            check.retained() <= 4 * 1000 + 64 * check.shards.len(),
            "{}",
            check.retained()
        );
    }

    #[test]
    fn live_never_reads_zero_while_a_task_is_alive() {
        let check = Arc::new(CheckCore::new());
        let owner = Owner::Body(check.clone());
        let anchor = Registration::new(TaskRecord::new(
            &owner,
            Location::caller(),
            None,
            TaskKind::Async,
            false,
        ));
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..20_000 {
                        let record = TaskRecord::new(
                            &owner,
                            Location::caller(),
                            None,
                            TaskKind::Async,
                            false,
                        );
                        let registration = Registration::new(record);
                        // Finish it on another thread half the time, as workers do.
                        std::thread::scope(|inner| {
                            if rand_bit(&registration) {
                                inner.spawn(move || drop(registration));
                            } else {
                                drop(registration);
                            }
                        });
                    }
                });
            }
            scope.spawn(|| {
                for _ in 0..200_000 {
                    assert!(check.live() >= 1, "live() read 0 while a task was alive");
                }
            });
        });
        drop(anchor);
        assert_eq!(check.live(), 0);
    }

    fn rand_bit(registration: &Registration) -> bool {
        (Arc::as_ptr(&registration.record) as usize >> 7) & 1 == 1
    }
}
