//! Cohorts: the tasks of one check spawned at one site, by one parent, from one thread, in one
//! stop epoch of the check, that have not yielded yet.
//!
//! Most tasks finish in their first poll. Such a task is counted by its check, counted in its
//! cohort and holds a reference to it, and gets a record of its own only if it yields (see
//! `Tracked`), so the spawn path allocates nothing per task. The cohort knows everything the
//! report needs about its tasks but their state. Cohorts are per thread so that spawning touches
//! the spawning thread's cohort, not one every thread shares.
//!
//! What a task does to its cohort's memory is kept off the other threads' caches: the spawning
//! thread counts spawns on a line of their own, each finishing thread counts on its own line,
//! and a finished task's reference is dropped later, in a batch, by the thread that finished it
//! ([`let_go`]), rather than at once on the line the spawning thread writes next. The cohort's
//! counts say how many of its tasks are alive, for the report; the check's own counters (see
//! `CheckCore::live`) say whether any task is.

use std::cell::RefCell;
use std::panic::Location;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use crate::ownership::Owner;
use crate::registry::{shard_count, thread_hint, unique_thread_hint, CheckCore};
use crate::task::{Origin, Parent, ParentRef, TaskRecord};

pub(crate) struct Cohort {
    pub(crate) check: Arc<CheckCore>,
    pub(crate) site: &'static Location<'static>,
    pub(crate) parent: Parent,
    pub(crate) depth: u32,
    /// The check's stop epoch when the cohort was made: its tasks are dropped unpolled once the
    /// check has stopped its tasks since, and a report can tell tasks spawned after it.
    pub(crate) epoch: u32,
    /// The thread (its `thread_hint`) that spawns into it.
    pub(crate) thread: usize,
    /// The recorded task whose children these are, if that is what spawned them: once it is
    /// done, nothing can spawn into the cohort any more, and the check can let it go when empty.
    spawner: Option<Weak<TaskRecord>>,
    /// Made when one of its tasks first spawns a child, which links to it. Every task of a
    /// cohort has the same origin, so they share it.
    origin_for_children: OnceLock<Arc<Origin>>,
    /// Tasks spawned into it. Only its thread spawns into it (see `CohortKey`), so this is
    /// written without a read-modify-write.
    spawned: Counter,
    /// Tasks of it that finished or yielded (and got a record), counted by the thread that saw
    /// it, on the counter of that thread's shard.
    gone: Box<[Counter]>,
}

/// A counter on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Counter(AtomicU64);

/// What tells cohorts of one check apart: the spawn site, the parent (the check itself for the
/// body, else the parent's origin), the thread and the stop epoch. The check or origin it points
/// to is kept alive by the cohort, so an address cannot be reused for another while the cohort
/// lives.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CohortKey {
    site: usize,
    parent: usize,
    cut: bool,
    thread: usize,
    epoch: u32,
}

/// How many cohorts each thread remembers, most recently made or found first.
const CACHE_SIZE: usize = 8;

type CachedCohort = Option<(CohortKey, Weak<Cohort>)>;

thread_local! {
    static CACHE: RefCell<[CachedCohort; CACHE_SIZE]> =
        const { RefCell::new([const { None }; CACHE_SIZE]) };
}

impl Cohort {
    /// The cohort of a task spawned at `site` by `owner`, or `None` when the task needs a record
    /// from the start: background work (stopped by its record), a thread that is exiting (a
    /// cohort needs its spawning thread told apart from every other), or, for a cohort this
    /// thread has not cached, a check that has ended.
    pub(crate) fn for_spawn(owner: &Owner, site: &'static Location<'static>) -> Option<Arc<Self>> {
        let lineage = owner.lineage();
        if lineage.background {
            return None;
        }
        let (parent, cut) = match lineage.parent {
            ParentRef::Body => (Arc::as_ptr(lineage.check) as usize, false),
            ParentRef::Task(origin) => (Arc::as_ptr(origin) as usize, false),
            ParentRef::Cut => (Arc::as_ptr(lineage.check) as usize, true),
        };
        let key = CohortKey {
            site: std::ptr::from_ref(site) as usize,
            parent,
            cut,
            thread: unique_thread_hint()?,
            epoch: lineage.check.stop_epoch(),
        };
        if let Some(cohort) = cached(&key) {
            return Some(cohort);
        }
        let cohort = lineage.check.cohort(key, || Cohort {
            check: lineage.check.clone(),
            site,
            parent: lineage.parent.to_parent(),
            depth: lineage.depth,
            epoch: key.epoch,
            thread: key.thread,
            spawner: lineage.spawner.map(Arc::downgrade),
            origin_for_children: OnceLock::new(),
            spawned: Counter::default(),
            gone: (0..shard_count()).map(|_| Counter::default()).collect(),
        })?;
        remember(key, &cohort);
        Some(cohort)
    }

    /// Its tasks' origin, for the record of one that yields.
    pub(crate) fn origin(&self) -> Origin {
        Origin::new(self.site, None, self.parent.clone(), self.depth)
    }

    pub(crate) fn origin_for_children(&self) -> &Arc<Origin> {
        self.origin_for_children
            .get_or_init(|| Arc::new(self.origin()))
    }

    /// Counts a task spawned into it, before the task can run. Called only by its thread.
    pub(crate) fn count_spawn(&self) {
        // The release orders the count before the spawn, so a reader that sees the task counted
        // gone (which happens after it runs) sees it counted here too.
        let spawned = self.spawned.0.load(Ordering::Relaxed);
        self.spawned.0.store(spawned + 1, Ordering::Release);
    }

    /// Counts one of its tasks as gone from it: finished, or yielded and counted by its record.
    pub(crate) fn count_gone(&self) {
        let shard = thread_hint() & (self.gone.len() - 1);
        self.gone[shard].0.fetch_add(1, Ordering::SeqCst);
    }

    /// Tasks counted gone so far. Read before [`Cohort::spawned`], as the check's counters are.
    pub(crate) fn gone(&self) -> u64 {
        self.gone
            .iter()
            .map(|counter| counter.0.load(Ordering::SeqCst))
            .sum()
    }

    pub(crate) fn spawned(&self) -> u64 {
        self.spawned.0.load(Ordering::SeqCst)
    }

    /// How many of its tasks are alive and have not yielded (never fewer than the truth).
    pub(crate) fn alive(&self) -> usize {
        let gone = self.gone();
        usize::try_from(self.spawned().saturating_sub(gone)).unwrap_or(usize::MAX)
    }

    /// Empty, and nothing can spawn into it any more: its spawner is done. (A cohort of the body
    /// or of tasks that have not yielded may get tasks again at any time, from a thread that
    /// holds it in its cache; there are only as many of those as spawn sites, threads and
    /// depths.)
    pub(crate) fn is_spent(&self) -> bool {
        // The spawner first: once it is done, every task it spawned here is counted (its spawns
        // came before its end, which this reads with acquire ordering, or through the fence when
        // its record is gone already).
        let spawner_done = self
            .spawner
            .as_ref()
            .is_some_and(|spawner| spawner.upgrade().is_none_or(|record| record.is_done()));
        fence(Ordering::Acquire);
        spawner_done && self.alive() == 0
    }
}

/// References to cohorts that finished tasks let go of, per thread, dropped together.
const LET_GO_BATCH: usize = 32;

thread_local! {
    static LET_GO: RefCell<Vec<Arc<Cohort>>> = const { RefCell::new(Vec::new()) };
}

/// Drops a finished task's reference to its cohort, later. Dropping it at once would write the
/// reference count, on the cache line the spawning thread writes as it clones the next one, from
/// the thread that finished the task: perf showed that line's round trips as a fifth of the
/// spawn path's cost. The check counts tasks by its counters, not by references, so holding a
/// few longer changes nothing but when the memory is freed (at most `LET_GO_BATCH` - 1 per
/// thread, or the thread's exit).
pub(crate) fn let_go(cohort: Arc<Cohort>) {
    let batch = LET_GO.try_with(|held| {
        let mut held = held.borrow_mut();
        held.push(cohort);
        (held.len() >= LET_GO_BATCH)
            .then(|| std::mem::replace(&mut *held, Vec::with_capacity(LET_GO_BATCH)))
    });
    // Dropped outside the borrow. (Without the thread-local, the cohort was dropped already.)
    drop(batch);
}

fn cached(key: &CohortKey) -> Option<Arc<Cohort>> {
    CACHE
        .try_with(|cache| {
            let cache = cache.borrow();
            cache.iter().flatten().find_map(|(cached, cohort)| {
                if cached == key {
                    cohort.upgrade()
                } else {
                    None
                }
            })
        })
        .ok()
        .flatten()
}

fn remember(key: CohortKey, cohort: &Arc<Cohort>) {
    let _ = CACHE.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        // A weak reference keeps a dead cohort's memory (not its check): let those go.
        for entry in cache.iter_mut() {
            if entry
                .as_ref()
                .is_some_and(|(_, weak)| weak.strong_count() == 0)
            {
                *entry = None;
            }
        }
        cache.rotate_right(1);
        cache[0] = Some((key, Arc::downgrade(cohort)));
    });
}

#[cfg(test)]
mod tests {
    use std::panic::Location;
    use std::sync::Arc;

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Cohort;
    use crate::ownership::{enter, Owner, Registration};
    use crate::registry::CheckCore;
    use crate::task::{TaskKind, TaskRecord};

    /// One link of a chain: spawns the next link, from its first poll or after yielding (and so
    /// from a cohort or from a record), and ends. The last one says so before it ends.
    fn link(left: u32, last_ended: Arc<AtomicBool>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            if left % 3 == 0 {
                tokio::task::yield_now().await;
            }
            if left == 0 {
                last_ended.store(true, Ordering::SeqCst);
            } else {
                drop(crate::spawn(link(left - 1, last_ended)));
            }
        })
    }

    /// A task's children are counted before it ends, and a task that yields is counted by its
    /// record before its cohort counts it gone: so however the two workers interleave, the
    /// check's count of live tasks never reads 0 while a link of the chain is alive.
    #[test]
    fn live_never_reads_zero_along_a_chain_of_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let check = Arc::new(CheckCore::new());
        let last_ended = Arc::new(AtomicBool::new(false));
        {
            let _body = runtime.enter();
            let _owner = enter(Owner::Body(check.clone()));
            drop(crate::spawn(link(30_000, last_ended.clone())));
        }
        let mut reads = 0u64;
        loop {
            let ended = last_ended.load(Ordering::SeqCst);
            let live = check.live();
            if ended {
                break;
            }
            assert!(live >= 1, "live() read 0 while a link was alive");
            reads += 1;
        }
        assert!(
            reads > 100,
            "the chain ended before it was read: {reads} reads"
        );
        drop(runtime);
        assert_eq!(check.live(), 0);
        check.close_cohorts();
    }

    /// Each recorded parent that spawns has cohorts of its own: once it is done and they are
    /// empty, the check lets them go, so a long test does not keep one per parent.
    #[test]
    fn cohorts_of_parents_that_are_done_are_let_go() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let site = Location::caller();
        let mut live_parents = Vec::new();
        for i in 0..1000 {
            let parent =
                Registration::new(TaskRecord::new(&body, site, None, TaskKind::Async, false));
            let owner = Owner::Task(parent.record.clone());
            let child = Cohort::for_spawn(&owner, site).expect("a cohort");
            child.count_spawn();
            if i % 100 == 0 {
                // A parent still running, whose cohort has a live task: kept.
                live_parents.push((parent, child));
            } else {
                child.count_gone();
            }
        }
        assert!(
            check.cohorts_kept() < 200,
            "{} cohorts kept",
            check.cohorts_kept()
        );
        for (_, child) in &live_parents {
            assert_eq!(child.alive(), 1);
        }
        assert!(check.cohorts_kept() >= live_parents.len());
        drop(live_parents);
        check.close_cohorts();
    }
}
