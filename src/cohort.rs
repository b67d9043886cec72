//! Cohorts: the tasks of one check spawned at one site, by one parent, from one thread, that
//! have not yielded yet.
//!
//! Most tasks finish in their first poll. Such a task is counted by its check and holds a
//! reference to its cohort, and gets a record of its own only if it yields (see `Tracked`), so
//! the spawn path allocates nothing per task. The cohort knows everything the report needs about
//! its tasks but their state; how many are alive is the cohort's reference count, less the one
//! its check holds. Cohorts are per thread so that spawning touches only the spawning thread's
//! cache lines.

use std::cell::RefCell;
use std::panic::Location;
use std::sync::{Arc, OnceLock, Weak};

use crate::ownership::Owner;
use crate::registry::{thread_hint, CheckCore};
use crate::task::{Origin, Parent, ParentRef};

pub(crate) struct Cohort {
    pub(crate) check: Arc<CheckCore>,
    pub(crate) site: &'static Location<'static>,
    pub(crate) parent: Parent,
    pub(crate) depth: u32,
    /// Made when one of its tasks first spawns a child, which links to it. Every task of a
    /// cohort has the same origin, so they share it.
    origin_for_children: OnceLock<Arc<Origin>>,
}

/// What tells cohorts of one check apart: the spawn site, the parent (the check itself for the
/// body, else the parent's origin) and the thread. The check or origin it points to is kept
/// alive by the cohort, so an address cannot be reused for another while the cohort lives.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CohortKey {
    site: usize,
    parent: usize,
    cut: bool,
    thread: usize,
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
    /// from the start: background work (stopped by its record), or a check that has ended.
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
            thread: thread_hint(),
        };
        if let Some(cohort) = cached(&key) {
            return Some(cohort);
        }
        let cohort = lineage.check.cohort(key, || Cohort {
            check: lineage.check.clone(),
            site,
            parent: lineage.parent.to_parent(),
            depth: lineage.depth,
            origin_for_children: OnceLock::new(),
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

    /// How many of its tasks are alive and have not yielded, given that the caller holds no
    /// reference of its own (its check's map holds one).
    pub(crate) fn unyielded(self: &Arc<Self>) -> usize {
        Arc::strong_count(self).saturating_sub(1)
    }
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
