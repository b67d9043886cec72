//! One check's tasks: the set of its live tasks, kept under one lock, and whoever waits for
//! them to end. The protocol is stated in the module doc of [`tracking`](super).

use std::sync::Arc;
use std::task::Waker;

use super::record::TaskRecord;
use super::sync::Mutex;

/// The shared heart of one check.
pub(crate) struct CheckCore {
    tasks: Mutex<Tasks>,
}

/// Where a check is in its life. It only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// The body runs, or the check waits for its tasks: spawns are ordinary.
    Open,
    /// The check stops its tasks: a task spawned now (from a `Drop`) is marked late.
    Stopping,
    /// The check has ended: a task spawned now is marked late and aborted at once.
    Closed,
}

struct Tasks {
    /// Every live task of the check, own, allowed and background alike.
    live: Slab,
    /// Of `live`: tasks that are not background work.
    own: usize,
    /// Tasks that have ended, ever.
    ended: u64,
    phase: Phase,
    waiter: Option<Waiter>,
    /// Records of ended tasks that nothing else held, emptied, for the next spawns to reuse.
    spare: Vec<Arc<TaskRecord>>,
}

/// Spare records a check keeps at most: enough for a burst of short tasks, and a bound on what a
/// check holds once its tasks are gone (each about 250 bytes).
const MAX_SPARE: usize = 256;

/// The check waiting for its tasks, and when to wake it.
struct Waiter {
    waker: Waker,
    /// Wake once at most this many own tasks are left (`None`: on every task's end).
    own_at_most: Option<usize>,
}

impl CheckCore {
    pub(crate) fn new() -> Self {
        CheckCore {
            tasks: Mutex::new(Tasks {
                live: Slab::default(),
                own: 0,
                ended: 0,
                phase: Phase::Open,
                waiter: None,
                spare: Vec::new(),
            }),
        }
    }

    /// Adds a task to the set. Called before the task can run, so that it is in the set before
    /// it can end, and from where its spawner is current, so that the spawner is still in the
    /// set: the set is never empty while a task of the check lives (invariant 1).
    ///
    /// A task spawned once the check is stopping is marked late, and once it has closed, it is
    /// also aborted (`TaskRecord::abort` is asked for under the lock, so no stop can miss it).
    ///
    /// The record goes into a spare if the check has one: a spare is held by the check alone
    /// (see [`CheckCore::end`]), so nobody who kept a record ever sees it reused, and the new
    /// record has a new id.
    pub(crate) fn register(&self, record: TaskRecord) -> Arc<TaskRecord> {
        let mut tasks = self.tasks.lock();
        let record = match tasks.spare.pop() {
            Some(mut spare) => match Arc::get_mut(&mut spare) {
                Some(emptied) => {
                    // What is overwritten was emptied by `end`: nothing of tokio's or the
                    // user's is dropped under the lock.
                    *emptied = record;
                    spare
                }
                None => Arc::new(record),
            },
            None => Arc::new(record),
        };
        if tasks.phase != Phase::Open {
            record.mark_late();
            if tasks.phase == Phase::Closed {
                record.abort();
            }
        }
        if !record.background {
            tasks.own += 1;
        }
        let slot = tasks.live.insert(record.clone());
        record.set_slot(slot);
        record
    }

    /// Takes an ended task out of its check's set: called once its future (or closure) has been
    /// dropped, so that whatever its `Drop` spawned is in the set first. Wakes the waiting check
    /// if it asked for this end. Then, if nothing else holds the record (no snapshot, no waker
    /// kept by a channel), it is emptied and kept as a spare for the next spawn, while the check
    /// is not closed (a closed check spawns no more of its own).
    pub(crate) fn end(mut record: Arc<TaskRecord>) {
        record.check().remove(&record);
        if let Some(emptied) = Arc::get_mut(&mut record) {
            if let Some(check) = emptied.empty() {
                let mut tasks = check.tasks.lock();
                if tasks.phase != Phase::Closed && tasks.spare.len() < MAX_SPARE {
                    tasks.spare.push(record);
                }
            }
        }
    }

    fn remove(&self, record: &TaskRecord) {
        let (waker, _record) = {
            let mut tasks = self.tasks.lock();
            let record = tasks.live.remove(record.slot());
            tasks.ended += 1;
            if !record.background {
                tasks.own -= 1;
            }
            let own = tasks.own;
            let waker = tasks
                .waiter
                .as_ref()
                .filter(|waiter| waiter.own_at_most.is_none_or(|at_most| own <= at_most))
                .map(|waiter| waiter.waker.clone());
            // The set's reference is dropped after the lock is released.
            (waker, record)
        };
        // Woken outside the lock: the waker may run the check on this thread.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Live tasks that are not background work.
    pub(crate) fn own_live(&self) -> usize {
        self.tasks.lock().own
    }

    /// Spare records kept now.
    #[cfg(test)]
    pub(crate) fn spare_count(&self) -> usize {
        self.tasks.lock().spare.len()
    }

    /// How many of its tasks have ended so far.
    pub(crate) fn ended(&self) -> u64 {
        self.tasks.lock().ended
    }

    /// Live tasks, background work included.
    #[cfg(all(test, leak_check_loom))]
    pub(crate) fn all_live(&self) -> usize {
        self.tasks.lock().live.len()
    }

    /// Every live task, each once, at one moment (invariants 2 and 3).
    pub(crate) fn snapshot(&self) -> Vec<Arc<TaskRecord>> {
        self.tasks.lock().live.records().cloned().collect()
    }

    /// Wakes `waker` at the next end of a task that leaves at most `own_at_most` own tasks alive
    /// (`None`: at the next end of any task). Register before looking at the set: an end between
    /// the look and the wait then still wakes.
    pub(crate) fn wake_when(&self, own_at_most: Option<usize>, waker: &Waker) {
        let mut tasks = self.tasks.lock();
        match &mut tasks.waiter {
            Some(waiter) if waiter.waker.will_wake(waker) => waiter.own_at_most = own_at_most,
            other => {
                *other = Some(Waiter {
                    waker: waker.clone(),
                    own_at_most,
                })
            }
        }
    }

    /// Moves the check on to `phase` (never back), and gives every task live at that moment:
    /// each task is then either in this list or marked late (invariant 4).
    pub(crate) fn enter(&self, phase: Phase) -> Vec<Arc<TaskRecord>> {
        let mut tasks = self.tasks.lock();
        tasks.phase = tasks.phase.max(phase);
        tasks.waiter = None;
        if tasks.phase == Phase::Closed {
            tasks.spare = Vec::new();
        }
        tasks.live.records().cloned().collect()
    }
}

/// The live set: records in slots, a freed slot reused by the next insert.
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Arc<TaskRecord>>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert(&mut self, record: Arc<TaskRecord>) -> usize {
        match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(record);
                index
            }
            None => {
                self.slots.push(Some(record));
                self.slots.len() - 1
            }
        }
    }

    /// Only the task that was given `index` removes it, once.
    fn remove(&mut self, index: usize) -> Arc<TaskRecord> {
        let record = self.slots[index]
            .take()
            .expect("a task ends once, from the slot it was given");
        self.free.push(index);
        record
    }

    #[cfg(all(test, leak_check_loom))]
    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn records(&self) -> impl Iterator<Item = &Arc<TaskRecord>> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::panic::Location;

    use super::*;
    use crate::tracking::owner::Owner;
    use crate::tracking::record::{Bound, TaskKind};
    use crate::tracking::tracked::Registration;

    fn spawn(owner: &Owner, name: Option<&'static str>) -> Registration {
        let record = TaskRecord::new(
            owner,
            Location::caller(),
            name.map(Into::into),
            TaskKind::Async,
            Bound::Token(0),
            false,
        );
        Registration::new(owner.check(), record)
    }

    /// The spare path is taken (the same allocation serves the next task), and what it serves
    /// is a new record: a new id, no name, no stop, no lineage of the old task.
    #[test]
    fn an_ended_tasks_record_is_reused_as_a_new_one() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let parent = spawn(&body, None);
        let first = spawn(
            &Owner::Task(parent.record().unwrap().clone()),
            Some("first"),
        );
        let (first_id, first_at) = {
            let record = first.record().unwrap();
            record.request_stop();
            (record.id, Arc::as_ptr(record))
        };
        drop(first);
        let second = spawn(&body, None);
        let record = second.record().unwrap();
        assert_eq!(Arc::as_ptr(record), first_at, "the spare was not reused");
        assert_ne!(record.id, first_id);
        assert!(record.origin.name.is_none());
        assert!(matches!(
            record.origin.parent,
            crate::tracking::record::Parent::Body
        ));
        assert!(!record.stop_requested() && !record.is_late() && !record.polled());
        assert_eq!(check.own_live(), 2);
    }

    /// A record someone still holds (a snapshot, a waker) is not reused, and a closed check
    /// keeps no spares.
    #[test]
    fn a_held_record_is_not_reused_and_a_closed_check_keeps_none() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let first = spawn(&body, None);
        let held = check.snapshot();
        drop(first);
        let second = spawn(&body, None);
        assert!(!Arc::ptr_eq(&held[0], second.record().unwrap()));
        drop(held);
        check.enter(Phase::Closed);
        drop(second);
        assert_eq!(check.spare_count(), 0);
    }

    /// Spares kept before the check closes are dropped when it closes.
    #[test]
    fn closing_drops_the_spares_already_kept() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        drop(spawn(&body, None));
        assert_eq!(check.spare_count(), 1);
        check.enter(Phase::Closed);
        assert_eq!(check.spare_count(), 0);
    }

    /// A spare holds no reference to its check: no cycle keeps a check that never closed.
    #[test]
    fn a_spare_does_not_keep_its_check_alive() {
        let check = Arc::new(CheckCore::new());
        let weak = Arc::downgrade(&check);
        let body = Owner::Body(check.clone());
        drop(spawn(&body, None));
        assert_eq!(check.spare_count(), 1);
        drop(body);
        drop(check);
        assert!(weak.upgrade().is_none(), "a spare keeps its check alive");
    }

    /// A child links to a copy of its parent's origin, not to the parent's record, so the
    /// parent's reuse does not rewrite the child's lineage.
    #[test]
    fn a_childs_link_survives_its_parents_reuse() {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let parent = spawn(&body, Some("parent"));
        let child = spawn(
            &Owner::Task(parent.record().unwrap().clone()),
            Some("child"),
        );
        let at = Arc::as_ptr(parent.record().unwrap());
        drop(parent);
        let other = spawn(&body, Some("other"));
        assert_eq!(
            Arc::as_ptr(other.record().unwrap()),
            at,
            "the spare was not reused"
        );
        match &child.record().unwrap().origin.parent {
            crate::tracking::record::Parent::Task(origin) => {
                assert_eq!(origin.name.as_deref(), Some("parent"))
            }
            _ => panic!("the child lost its link to its parent"),
        }
    }
}
