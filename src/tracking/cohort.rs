//! Cohorts: the tasks of one check spawned at one site, by one parent, from one thread, in one
//! stop epoch of the check, that have not yielded yet.
//!
//! Most tasks finish in their first poll. Such a task is counted by its check, counted in its
//! cohort and holds a reference to it, and gets a record of its own only if it yields (see
//! `Tracked`), so the spawn path allocates nothing per task. The cohort knows everything the
//! report needs about its tasks but their state. Cohorts are per thread so that spawning touches
//! the spawning thread's cohort, not one every thread shares.
//!
//! What a task does to its cohort's memory is kept off the spawning thread's cache lines: that
//! thread counts spawns on a line of their own, the threads that run the tasks count their ends
//! on another, and a finished task's reference is dropped later, in a batch, by the thread that
//! finished it ([`let_go`]), rather than at once on the line the spawning thread writes next.
//! The cohort's counts say how many of its tasks are alive, for the report; the check's own
//! counters (see `CheckCore::live`) say whether any task is.

use std::cell::RefCell;
use std::panic::Location;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use crate::tracking::ownership::Owner;
use crate::tracking::registry::{count_alive, unique_thread_hint, CheckCore};
use crate::tracking::task::{Origin, Parent, ParentRef, TaskRecord};

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
    /// What alone spawns into it, if one thing does: once that can spawn no more, nothing can
    /// spawn into the cohort any more, and the check can let it go when empty.
    spawner: Option<Spawner>,
    /// Made when one of its tasks first spawns a child, which links to it. Every task of a
    /// cohort has the same origin, so they share it.
    origin_for_children: OnceLock<Arc<Origin>>,
    /// Tasks spawned into it. Only its thread spawns into it (see `CohortKey`), so this is
    /// written without a read-modify-write.
    spawned: Counter,
    /// Tasks of it that finished or yielded (and got a record), on a line of its own: the
    /// threads that run its tasks write it, the one that spawns them does not.
    gone: Counter,
}

/// The one spawner of a cohort.
enum Spawner {
    /// A task with a record: it spawns no more once it is done.
    Record(Weak<TaskRecord>),
    /// The tasks of another cohort, while they have not yielded: they spawn no more once that
    /// cohort is spent.
    Cohort(Weak<Cohort>),
}

/// How many times [`Cohort::alive`] reads before it lets other threads run between reads.
const SPIN_READS: usize = 16;

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
            spawner: match owner {
                // Past the chain's cut, every spawner at this site on this thread shares the
                // cohort: no one spawner's end makes it spent.
                _ if cut => None,
                Owner::Body(_) => None,
                Owner::Task(record) => Some(Spawner::Record(Arc::downgrade(record))),
                Owner::Unyielded(cohort) => Some(Spawner::Cohort(Arc::downgrade(cohort))),
            },
            origin_for_children: OnceLock::new(),
            spawned: Counter::default(),
            gone: Counter::default(),
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
        // tokio's spawn orders this before the task runs, so a reader that sees the task counted
        // gone sees it counted here too.
        let spawned = self.spawned.0.load(Ordering::Relaxed);
        self.spawned.0.store(spawned + 1, Ordering::Relaxed);
    }

    /// Counts one of its tasks as gone from it: finished, or yielded and counted by its record.
    pub(crate) fn count_gone(&self) {
        self.gone.0.fetch_add(1, Ordering::SeqCst);
    }

    /// How many of its tasks are alive and have not yielded, as it was at one moment of the
    /// call. Reading the two counts one after the other would count a task spawned and gone in
    /// between as alive (a phantom straggler), or, the other way round, miss a live one; so it
    /// reads until one count held still across a read of the other. Every read is a moment when
    /// a task was spawned or ended since the last, so it ends as soon as both pause.
    pub(crate) fn alive(&self) -> usize {
        let mut spawned = self.spawned.0.load(Ordering::SeqCst);
        let mut gone = self.gone.0.load(Ordering::SeqCst);
        let mut reads = 0;
        loop {
            let spawned_after = self.spawned.0.load(Ordering::SeqCst);
            if spawned_after == spawned {
                // No spawn while `gone` was read: right as of that read.
                return count_alive(spawned, gone);
            }
            let gone_after = self.gone.0.load(Ordering::SeqCst);
            if gone_after == gone {
                // No end while `spawned_after` was read: right as of that read.
                return count_alive(spawned_after, gone);
            }
            (spawned, gone) = (spawned_after, gone_after);
            reads += 1;
            if reads < SPIN_READS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Empty, and nothing can spawn into it any more: it has one spawner (its key holds that
    /// spawner's own origin), a task that is done or a cohort that is spent. The check may let
    /// it go then, and a thread that still finds it through its cache (a reference held for
    /// [`let_go`] keeps it alive) finds it only for that spawner, which spawns no more. (A
    /// cohort of the body, or past the chain's cut, may get tasks again at any time from any of
    /// its spawners; there are only as many of those as spawn sites, threads and stop epochs.)
    pub(crate) fn is_spent(&self) -> bool {
        // The spawner first: once it can spawn no more, every task it spawned here is counted
        // (its spawns came before its end, or before its tasks counted themselves gone, which
        // this reads with acquire ordering, or through the fence when it is gone already).
        let spawner_done = match &self.spawner {
            None => false,
            Some(Spawner::Record(record)) => record.upgrade().is_none_or(|r| r.is_done()),
            // A spent or dropped cohort stays so. The chain's cut bounds this recursion.
            Some(Spawner::Cohort(cohort)) => cohort.upgrade().is_none_or(|c| c.is_spent()),
        };
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
/// spawn path's cost. Tasks are counted by counters, not by references. Holding a reference
/// longer keeps the cohort, and its check, in memory (at most `LET_GO_BATCH` - 1 per thread,
/// until the thread's next batch or its exit), and keeps a thread's cache able to find a cohort
/// its check has let go of or closed: see [`Cohort::is_spent`] for why that is safe.
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
    use crate::tracking::ownership::{enter, Owner, Registration};
    use crate::tracking::registry::CheckCore;
    use crate::tracking::task::{TaskKind, TaskRecord};

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
            // In this order: if the last link had not ended after `live()` was read, it was
            // alive when it was read.
            let live = check.live();
            if last_ended.load(Ordering::SeqCst) {
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

    /// A task record `depth` deep in a chain from the body.
    fn record_at_depth(body: &Owner, depth: u32) -> Vec<Registration> {
        let site = Location::caller();
        let mut chain = vec![Registration::new(TaskRecord::new(
            body,
            site,
            None,
            TaskKind::Async,
            false,
        ))];
        while chain.last().unwrap().record.depth() < depth {
            let parent = Owner::Task(chain.last().unwrap().record.clone());
            let child = TaskRecord::new(&parent, site, None, TaskKind::Async, false);
            chain.push(Registration::new(child));
        }
        chain
    }

    /// Past the chain's cut, siblings share a cohort. When the first of them is done and the
    /// cohort is empty, the check must not let it go: a finished task's reference held for
    /// `let_go` keeps it alive, this thread's cache still finds it, and the next sibling's task
    /// would go where the check never looks.
    #[test]
    fn a_cohort_past_the_cut_is_kept_while_siblings_can_spawn() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let chain = record_at_depth(&body, 15);
        let parent = Owner::Task(chain.last().unwrap().record.clone());
        let site = Location::caller();
        let first = Registration::new(TaskRecord::new(&parent, site, None, TaskKind::Async, false));
        let second =
            Registration::new(TaskRecord::new(&parent, site, None, TaskKind::Async, false));
        assert_eq!(first.record.depth(), 16);
        let child_site = Location::caller();
        // The first sibling's child ends on this thread, which holds on to its reference.
        let ended = Cohort::for_spawn(&Owner::Task(first.record.clone()), child_site).unwrap();
        ended.count_spawn();
        ended.count_gone();
        super::let_go(ended);
        drop(first);
        // Another thread makes enough cohorts for the check to let go of spent ones.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let parents: Vec<_> = (0..100)
                    .map(|_| {
                        let parent = Registration::new(TaskRecord::new(
                            &body,
                            site,
                            None,
                            TaskKind::Async,
                            false,
                        ));
                        let owner = Owner::Task(parent.record.clone());
                        drop(Cohort::for_spawn(&owner, child_site));
                        parent
                    })
                    .collect();
                drop(parents);
            });
        });
        // The second sibling's child, at the same site on this thread, is alive and listed.
        let alive = Cohort::for_spawn(&Owner::Task(second.record.clone()), child_site).unwrap();
        alive.count_spawn();
        let listed = check.unyielded_cohorts();
        assert!(
            listed
                .iter()
                .any(|(cohort, n)| Arc::ptr_eq(cohort, &alive) && *n == 1),
            "a live task's cohort is not listed by its check"
        );
        assert!(check.has_unyielded());
        alive.count_gone();
        drop((second, chain));
        check.close_cohorts();
    }

    /// A cohort with one task alive for good, whose thread spawns and ends one task after
    /// another: it always has one or two alive, and `alive()` always says so. A task spawned and
    /// gone while it reads must not count (a phantom straggler), and must not hide the live one.
    #[test]
    fn alive_is_right_while_tasks_come_and_go() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let cohort = Cohort::for_spawn(&body, Location::caller()).unwrap();
        cohort.count_spawn();
        let done = AtomicBool::new(false);
        let (mut fewest, mut most) = (usize::MAX, 0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(500) {
                    for n in 0..1000u32 {
                        // Runs of tasks that end at once, and of tasks that live a little, so
                        // that reads land between them and inside them.
                        let lifetime = if n / 100 % 2 == 0 { 0 } else { n % 64 };
                        cohort.count_spawn();
                        for i in 0..lifetime {
                            std::hint::black_box(i);
                        }
                        cohort.count_gone();
                    }
                }
                done.store(true, Ordering::SeqCst);
            });
            while !done.load(Ordering::SeqCst) {
                let alive = cohort.alive();
                (fewest, most) = (fewest.min(alive), most.max(alive));
            }
        });
        assert!(
            fewest >= 1,
            "alive() read {fewest} with a task alive for good"
        );
        assert!(
            most <= 2,
            "alive() read {most} with at most two tasks alive"
        );
        cohort.count_gone();
        assert_eq!(cohort.alive(), 0);
        drop(cohort);
        check.close_cohorts();
    }

    /// A task that has not yielded and spawns makes a cohort of its own children. Once its
    /// own cohort is spent (its spawner done, its tasks gone), that cohort can get no more
    /// tasks either, and the check lets it go when it is empty.
    #[test]
    fn cohorts_spawned_by_cohorts_are_let_go_with_them() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let site = Location::caller();
        for _ in 0..1000 {
            let parent =
                Registration::new(TaskRecord::new(&body, site, None, TaskKind::Async, false));
            let child = Cohort::for_spawn(&Owner::Task(parent.record.clone()), site).unwrap();
            child.count_spawn();
            // The child, in its first poll, spawns a grandchild that ends at once.
            let grandchild = Cohort::for_spawn(&Owner::Unyielded(child.clone()), site).unwrap();
            grandchild.count_spawn();
            grandchild.count_gone();
            child.count_gone();
        }
        assert!(
            check.cohorts_kept() < 200,
            "{} cohorts kept",
            check.cohorts_kept()
        );
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
