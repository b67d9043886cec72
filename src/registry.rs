//! The live tasks of one check, kept in a few independently locked shards so that workers
//! spawning at once rarely meet, and no lock is shared between checks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use slab::Slab;

use crate::task::{TaskKind, TaskRecord};

static SHARD_COUNT: Lazy<usize> = Lazy::new(|| {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 2).next_power_of_two().min(64)
});

static NEXT_THREAD_HINT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_HINT: usize = NEXT_THREAD_HINT.fetch_add(1, Ordering::Relaxed);
}

/// Keeps each shard's lock on its own cache line.
#[repr(align(128))]
struct Shard(Mutex<Slab<Arc<TaskRecord>>>);

/// Where a task sits in its check's registry.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    shard: usize,
    key: usize,
}

/// The shared heart of one check: its live tasks and the waker of whoever waits for them.
pub(crate) struct CheckCore {
    shards: Box<[Shard]>,
    waiter: Waiter,
}

impl CheckCore {
    pub(crate) fn new() -> Self {
        CheckCore {
            shards: (0..*SHARD_COUNT)
                .map(|_| Shard(Mutex::new(Slab::new())))
                .collect(),
            waiter: Waiter::default(),
        }
    }

    pub(crate) fn register(&self, record: Arc<TaskRecord>) -> Slot {
        let shard = THREAD_HINT.try_with(|hint| *hint).unwrap_or(0) % self.shards.len();
        let key = self.shards[shard].0.lock().insert(record);
        Slot { shard, key }
    }

    pub(crate) fn unregister(&self, slot: Slot) {
        let (record, now_empty) = {
            let mut shard = self.shards[slot.shard].0.lock();
            let record = shard.try_remove(slot.key);
            (record, shard.is_empty())
        };
        // Dropped outside the lock: it may release a parent chain or a task's memory.
        drop(record);
        if now_empty {
            self.waiter.notify();
        }
    }

    /// Counts live tasks: all of them, and those running as tasks of a runtime (not in the
    /// blocking pool or a `LocalSet`), which tokio's `num_alive_tasks` also counts.
    pub(crate) fn live_counts(&self) -> LiveCounts {
        let mut counts = LiveCounts::default();
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            counts.all += shard.len();
            for (_, record) in shard.iter() {
                match record.kind {
                    TaskKind::Async => counts.runtime_tasks += 1,
                    TaskKind::Blocking => counts.blocking += 1,
                    TaskKind::Local => {}
                }
            }
        }
        counts
    }

    pub(crate) fn snapshot(&self) -> Vec<Arc<TaskRecord>> {
        let mut records = Vec::new();
        for shard in self.shards.iter() {
            records.extend(shard.0.lock().iter().map(|(_, record)| record.clone()));
        }
        records
    }

    pub(crate) fn set_waker(&self, waker: &Waker) {
        self.waiter.set(waker);
    }
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct LiveCounts {
    pub(crate) all: usize,
    pub(crate) runtime_tasks: usize,
    pub(crate) blocking: usize,
}

/// The waker of the check that waits for this registry to empty. Task exits only touch its lock
/// when a shard empties and someone is waiting.
#[derive(Default)]
struct Waiter {
    armed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Waiter {
    fn set(&self, waker: &Waker) {
        let mut stored = self.waker.lock();
        if !stored.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *stored = Some(waker.clone());
        }
        self.armed.store(true, Ordering::SeqCst);
    }

    fn notify(&self) {
        if self.armed.load(Ordering::SeqCst) {
            if let Some(waker) = self.waker.lock().as_ref() {
                waker.wake_by_ref();
            }
        }
    }
}
