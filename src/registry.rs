//! The tasks of one check, kept so that the spawn path touches only memory of its own thread.
//!
//! Each shard (one per thread, by a thread's hint) holds weak references to the records spawned
//! there and two monotonic counters: tasks spawned by its threads, tasks finished on its threads.
//! A finishing task never touches the spawner's shard; finished records are swept out by later
//! spawns, amortized. Nothing here is shared between checks.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Waker;

use once_cell::sync::Lazy;
use parking_lot::Mutex;

use crate::task::TaskRecord;

static SHARD_COUNT: Lazy<usize> = Lazy::new(|| {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 2).next_power_of_two().min(64)
});

static NEXT_THREAD_HINT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_HINT: usize = NEXT_THREAD_HINT.fetch_add(1, Ordering::Relaxed);
}

fn thread_hint() -> usize {
    THREAD_HINT.try_with(|hint| *hint).unwrap_or(0)
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
}

struct Records {
    list: Vec<Weak<TaskRecord>>,
    sweep_at: usize,
}

/// The shared heart of one check: its tasks and the waker of whoever waits for them.
pub(crate) struct CheckCore {
    shards: Box<[Shard]>,
    waiter: Waiter,
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
                })
                .collect(),
            waiter: Waiter::default(),
        }
    }

    fn my_shard(&self) -> &Shard {
        &self.shards[thread_hint() % self.shards.len()]
    }

    /// Called before the task can run, so that it is counted before it can finish.
    pub(crate) fn register(&self, record: &Arc<TaskRecord>) {
        let shard = self.my_shard();
        {
            let mut records = shard.records.lock();
            if records.list.len() >= records.sweep_at {
                records.list.retain(|weak| weak.strong_count() > 0);
                records.sweep_at = (records.list.len() * 2).max(MIN_SWEEP_AT);
            }
            records.list.push(Arc::downgrade(record));
        }
        shard.spawned.fetch_add(1, Ordering::SeqCst);
    }

    /// Called once the task's future or closure is gone.
    pub(crate) fn finish(&self, record: &TaskRecord) {
        record.mark_done();
        self.my_shard().finished.fetch_add(1, Ordering::SeqCst);
        if self.waiter.armed.load(Ordering::SeqCst)
            && self.live() <= self.waiter.target.load(Ordering::SeqCst)
        {
            self.waiter.wake();
        }
    }

    /// Tasks of this check still alive. All `finished` counters are read before any `spawned`
    /// one: a task counted as finished was counted as spawned first, so the result is never
    /// below the truth, and 0 means every task spawned so far has finished; since only live
    /// tasks (or the ended body) can spawn more, it stays 0.
    pub(crate) fn live(&self) -> usize {
        let finished: u64 = self
            .shards
            .iter()
            .map(|s| s.finished.load(Ordering::SeqCst))
            .sum();
        let spawned: u64 = self
            .shards
            .iter()
            .map(|s| s.spawned.load(Ordering::SeqCst))
            .sum();
        usize::try_from(spawned.saturating_sub(finished)).unwrap_or(usize::MAX)
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

    /// Wakes `waker` whenever a task finishes and at most `target` tasks are left alive.
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
