//! loom models of the invariants stated in the module doc of [`tracking`](super). Each races
//! the real operations of `CheckCore`, `Registration` and `TaskRecord` on loom threads and
//! asserts one invariant in every interleaving loom explores. Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg leak_check_loom" cargo test --release --lib --features tracking -- loom
//! ```
//!
//! (`--cfg loom` itself would also switch tokio into its own loom mode, which it does not
//! support outside its own test suite.)

use std::collections::HashSet;
use std::panic::Location;
use std::sync::Arc;
use std::task::{Wake, Waker};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

use super::check_core::{CheckCore, Phase};
use super::owner::Owner;
use super::record::{Bound, TaskKind, TaskRecord};
use super::tracked::Registration;

/// A task spawned where `owner` is current.
fn spawn(owner: &Owner) -> Registration {
    let record = TaskRecord::new(
        owner,
        Location::caller(),
        None,
        TaskKind::Async,
        Bound::Token(0),
        false,
    );
    Registration::new(owner.check(), record)
}

/// The record of a task that has not ended.
fn record(registration: &Registration) -> &Arc<TaskRecord> {
    registration.record().expect("not ended")
}

/// A task's end: its future is dropped (`dropped` set) and then its registration.
fn end(registration: Registration, dropped: &AtomicBool) {
    dropped.store(true, Ordering::SeqCst);
    drop(registration);
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Invariant 1: a parent spawns a child and ends while the check reads its count: a read of 0
/// means both futures are gone.
#[test]
fn loom_live_never_reads_zero_while_a_task_is_alive() {
    model(|| {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let parent = spawn(&body);
        let parent_gone = Arc::new(AtomicBool::new(false));
        let child_gone = Arc::new(AtomicBool::new(false));
        let worker = {
            let (parent_gone, child_gone) = (parent_gone.clone(), child_gone.clone());
            thread::spawn(move || {
                let child = spawn(&Owner::Task(record(&parent).clone()));
                let child_thread = thread::spawn(move || end(child, &child_gone));
                end(parent, &parent_gone);
                child_thread.join().unwrap();
            })
        };
        if check.own_live() == 0 {
            assert!(parent_gone.load(Ordering::SeqCst) && child_gone.load(Ordering::SeqCst));
        }
        worker.join().unwrap();
        assert_eq!(check.own_live(), 0);
    });
}

/// Invariant 2: tasks spawned and ended on two threads while the check takes a snapshot: each
/// listed once, and the snapshot agrees with the count read under the same lock.
#[test]
fn loom_every_straggler_is_listed_exactly_once() {
    model(|| {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let stays = spawn(&body);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let body = body.clone();
                thread::spawn(move || {
                    let task = spawn(&body);
                    drop(task);
                    spawn(&body)
                })
            })
            .collect();
        let listed = check.snapshot();
        let ids: HashSet<u64> = listed.iter().map(|record| record.id).collect();
        assert_eq!(ids.len(), listed.len(), "a task listed twice");
        assert!(ids.contains(&record(&stays).id), "a live task not listed");
        assert!(listed.len() <= 3);
        let kept: Vec<Registration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let listed = check.snapshot();
        assert_eq!(listed.len(), 3);
        assert_eq!(check.own_live(), 3);
        drop(kept);
        drop(stays);
    });
}

/// Invariant 3: a task that has ended is never listed: an end that returned before the
/// snapshot began leaves no trace in it.
#[test]
fn loom_a_finished_task_is_never_listed() {
    model(|| {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let task = spawn(&body);
        let id = record(&task).id;
        let ended = Arc::new(AtomicBool::new(false));
        let worker = {
            let ended = ended.clone();
            thread::spawn(move || {
                drop(task);
                ended.store(true, Ordering::SeqCst);
            })
        };
        let ended_before = ended.load(Ordering::SeqCst);
        let listed = check.snapshot();
        if ended_before {
            assert!(
                listed.iter().all(|record| record.id != id),
                "an ended task listed"
            );
        }
        worker.join().unwrap();
        assert!(check.snapshot().is_empty());
    });
}

/// Invariant 4: a straggler's `Drop` spawns a task while the check moves to `Stopping` and then
/// `Closed`: the new task is in the list taken at `Stopping`, or marked late; once `Closed`, it
/// is also aborted before it can run.
#[test]
fn loom_a_task_spawned_while_the_check_stops_is_seen() {
    model(|| {
        let check = Arc::new(CheckCore::new());
        let straggler = spawn(&Owner::Body(check.clone()));
        let parent = record(&straggler).clone();
        let worker = thread::spawn(move || {
            // The straggler's future is dropped, and its Drop spawns.
            let late = spawn(&Owner::Task(parent));
            drop(straggler);
            late
        });
        let stopping: HashSet<u64> = check
            .enter(Phase::Stopping)
            .iter()
            .map(|record| record.id)
            .collect();
        let closed = check.enter(Phase::Closed);
        let late = worker.join().unwrap();
        let record = record(&late);
        assert!(
            stopping.contains(&record.id) || record.is_late(),
            "spawned during cleanup, yet neither listed nor marked late"
        );
        let listed_at_close = closed.iter().any(|listed| listed.id == record.id);
        assert!(
            stopping.contains(&record.id) || listed_at_close || record.abort_requested(),
            "spawned after the check closed, yet not aborted"
        );
        drop(late);
    });
}

/// Spare records (see `CheckCore::end`): a record is reused only once nothing else holds it,
/// and then as a new record. A task is stopped and ends on one thread and another is spawned
/// there, while the check lists its tasks: every listed record keeps the id it was listed with,
/// and the new task has an id of its own and carries nothing of the stopped one. (That a held
/// record is never reused is `Arc::get_mut`'s guarantee; what the model adds is that the reuse
/// it allows does happen, in some interleaving, and leaves nothing of the old task.)
#[test]
fn loom_a_record_is_reused_only_when_nobody_holds_it() {
    static REUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    model(|| {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let first = spawn(&body);
        let first_id = record(&first).id;
        let worker = {
            let (body, check) = (body.clone(), check.clone());
            thread::spawn(move || {
                record(&first).request_stop();
                drop(first);
                // The only spare is the first task's record: the next spawn takes it.
                let spared = check.spare_count() == 1;
                (spawn(&body), spared)
            })
        };
        let listed = check.snapshot();
        let ids_when_listed: Vec<u64> = listed.iter().map(|record| record.id).collect();
        let (second, spared) = worker.join().unwrap();
        if spared {
            REUSED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let ids_now: Vec<u64> = listed.iter().map(|record| record.id).collect();
        assert_eq!(ids_when_listed, ids_now, "a listed record was reused");
        let second = record(&second);
        assert_ne!(second.id, first_id, "a reused record kept its old id");
        assert!(
            !second.stop_requested() && !second.is_late(),
            "a reused record kept its old state"
        );
    });
    assert!(
        REUSED.load(std::sync::atomic::Ordering::Relaxed),
        "no interleaving reused the record: the model checks nothing"
    );
}

/// Invariant 5: the check registers its waker, then looks; the last task ends on another
/// thread: either the look sees it gone or the end wakes the check.
#[test]
fn loom_the_check_is_woken_by_the_last_end() {
    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    model(|| {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let first = spawn(&body);
        let second = spawn(&body);
        let woken = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let ends = thread::spawn(move || {
            drop(first);
            drop(second);
        });
        check.wake_when(Some(0), &waker);
        let saw_zero = check.own_live() == 0;
        ends.join().unwrap();
        assert!(
            saw_zero || woken.0.load(Ordering::SeqCst) > 0,
            "a lost wake"
        );
    });
}

/// Background work is counted apart: ending an own task while background tasks come and go on
/// another thread brings the own count to zero exactly when the own task is gone.
#[test]
fn loom_background_work_does_not_cancel_out_own_tasks() {
    model(|| {
        let check = Arc::new(CheckCore::new());
        let body = Owner::Body(check.clone());
        let own = spawn(&body);
        let own_gone = Arc::new(AtomicBool::new(false));
        let background = Registration::new(
            &check,
            TaskRecord::new(
                &body,
                Location::caller(),
                None,
                TaskKind::Async,
                Bound::Token(0),
                true,
            ),
        );
        let worker = {
            let own_gone = own_gone.clone();
            thread::spawn(move || {
                let child = spawn(&Owner::Task(record(&background).clone()));
                drop(background);
                drop(child);
                end(own, &own_gone);
            })
        };
        if check.own_live() == 0 {
            assert!(own_gone.load(Ordering::SeqCst));
        }
        worker.join().unwrap();
        assert_eq!(check.all_live(), 0);
    });
}
