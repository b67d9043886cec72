//! Tasks that have not yielded yet (never polled, or inside their first poll): reported at their
//! spawn site with their chain like any other, and stopped without running on.

mod support;

use std::time::{Duration, Instant};

use leak_check::leak_check;
use support::{assert_reports, expect_failure, run_tests, site};

const SOURCE: &str = include_str!("unyielded.rs");

fn site_of(label: &str) -> String {
    site("tests/unyielded.rs", SOURCE, label)
}

// A first poll that never returns is reported at its spawn site, and the test still ends.
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_task_blocked_in_its_first_poll_is_reported"]
async fn leak_blocked_in_first_poll() {
    // site(blocked): leak_check::spawn
    leak_check::spawn(async { std::thread::sleep(Duration::from_secs(2)) });
}

#[test]
fn a_task_blocked_in_its_first_poll_is_reported() {
    let output = expect_failure("leak_blocked_in_first_poll");
    assert_reports(&output, 1, &site_of("blocked"));
    assert!(output.contains("still in its first poll"), "{output}");
    assert!(output.contains("stuck in poll"), "{output}");
}

// With the only worker blocked, a task that was never polled is reported at its site too, and
// it is dropped without ever being polled when leak-check stops the test's tasks.
#[leak_check(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "leaks on purpose; run by a_task_never_polled_is_reported_and_never_polled"]
async fn leak_never_polled() {
    // site(blocker): leak_check::spawn
    leak_check::spawn(async { std::thread::sleep(Duration::from_secs(3)) });
    // site(idle): leak_check::spawn
    leak_check::spawn(async {
        eprintln!("the idle task was polled");
        std::future::pending::<()>().await
    });
}

#[test]
fn a_task_never_polled_is_reported_and_never_polled() {
    let output = expect_failure("leak_never_polled");
    assert_reports(&output, 1, &site_of("blocker"));
    assert_reports(&output, 1, &site_of("idle"));
    assert!(output.contains("leaked 2 tasks"), "{output}");
    // A task dump (which CI takes under tokio_unstable) polls every task to trace it.
    if !cfg!(tokio_unstable) {
        assert!(!output.contains("the idle task was polled"), "{output}");
    }
}

// A parent that finishes in its first poll still links its children to its spawn site.
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_child_of_a_task_that_never_yielded_has_its_chain"]
async fn leak_child_of_unyielded_parent() {
    // site(quick_parent): leak_check::spawn
    leak_check::spawn(async {
        // site(orphan): leak_check::spawn
        leak_check::spawn(std::future::pending::<()>());
    })
    .await
    .unwrap();
}

#[test]
fn a_child_of_a_task_that_never_yielded_has_its_chain() {
    let output = expect_failure("leak_child_of_unyielded_parent");
    assert_reports(&output, 1, &site_of("orphan"));
    let chain = format!(
        "spawned by: test body -> task spawned at {}",
        site_of("quick_parent")
    );
    assert!(output.contains(&chain), "expected `{chain}`:\n{output}");
    // It yielded, so it has a record: leak-check can tell that nothing can wake it.
    assert!(output.contains("stranded"), "{output}");
    assert!(output.contains("polled once"), "{output}");
}

// Clean twins: each of these tasks ends before the body does, however it ends.

#[leak_check]
#[tokio::test]
async fn a_task_that_panics_in_its_first_poll_is_not_a_straggler() {
    let handle = leak_check::spawn(async { panic!("a panic inside a spawned task") });
    assert!(handle.await.unwrap_err().is_panic());
}

#[leak_check]
#[tokio::test]
async fn a_task_aborted_before_its_first_poll_is_not_a_straggler() {
    let handle = leak_check::spawn(std::future::pending::<()>());
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
}

#[leak_check]
#[tokio::test]
async fn a_join_set_dropped_before_its_tasks_ran_leaves_nothing() {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        leak_check::spawn_in(&mut set, std::future::pending::<()>());
    }
    drop(set);
}

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_never_yield_and_finish_late_are_clean() {
    for _ in 0..4 {
        leak_check::spawn(async { std::thread::sleep(Duration::from_millis(30)) });
    }
}

// Every way a task can end is counted as its end: with a 60 s grace period, one task counted as
// alive for ever would hold the check for a minute (and then pass, as nothing is left to
// report). Run by `every_end_of_a_task_is_counted`.
// On one thread, so that the tasks aborted before their first poll are not polled first.
#[leak_check(flavor = "current_thread", grace_ms = 60000)]
#[ignore = "run by every_end_of_a_task_is_counted, which times it"]
async fn tasks_ending_every_way() {
    // Finished, or panicked, in the first poll.
    leak_check::spawn(async {}).await.unwrap();
    let panicked = leak_check::spawn(async { panic!("a panic in a first poll") });
    assert!(panicked.await.unwrap_err().is_panic());
    // Aborted before the first poll, alone or with its JoinSet, or with a Drop impl that panics.
    let aborted = leak_check::spawn(std::future::pending::<()>());
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());
    let guard = PanicsOnDrop;
    let aborted = leak_check::spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    aborted.abort();
    assert!(aborted.await.is_err());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        leak_check::spawn_in(&mut set, std::future::pending::<()>());
    }
    drop(set);
    // Finished, panicked, or aborted after yielding.
    leak_check::spawn(tokio::task::yield_now()).await.unwrap();
    let panicked = leak_check::spawn(async {
        tokio::task::yield_now().await;
        panic!("a panic after yielding")
    });
    assert!(panicked.await.unwrap_err().is_panic());
    let aborted = leak_check::spawn(async {
        tokio::task::yield_now().await;
        std::future::pending::<()>().await
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());
    // Spawned by a task in its first poll, and finished later.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    leak_check::spawn(async move {
        leak_check::spawn(async move { rx.await.unwrap() });
    })
    .await
    .unwrap();
    tx.send(()).unwrap();
}

#[test]
fn every_end_of_a_task_is_counted() {
    let started = Instant::now();
    let run = run_tests(&["--ignored", "--exact", "tasks_ending_every_way"], &[]);
    assert!(run.passed, "{}", run.output);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the check waited out its grace period: a task's end was not counted"
    );
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("a Drop impl that panics");
        }
    }
}

/// Runs a closure when the check stops the test's tasks: it is dropped with a named task that
/// waits for ever, which the check aborts then.
fn at_the_stop(f: impl FnOnce() + Send + 'static) {
    struct OnDrop<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let guard = OnDrop(Some(f));
    leak_check::Builder::new()
        .name("stop-signal")
        .spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
}

// A task inside its first poll when the check stops the test's tasks is stopped as soon as it
// yields: it does not run on into later tests.
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_task_in_its_first_poll_at_the_stop_is_stopped_when_it_yields"]
async fn leak_in_first_poll_at_the_stop() {
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    at_the_stop(move || {
        let _ = release.send(());
    });
    leak_check::spawn(async move {
        // Blocks its worker in its first poll until the check stops the tasks.
        let _ = blocked.recv();
        tokio::task::yield_now().await;
        eprintln!("polled again after the check stopped the test's tasks");
        std::future::pending::<()>().await
    });
}

#[test]
fn a_task_in_its_first_poll_at_the_stop_is_stopped_when_it_yields() {
    let output = expect_failure("leak_in_first_poll_at_the_stop");
    assert!(output.contains("stuck in poll"), "{output}");
    assert!(
        !output.contains("polled again after the check stopped"),
        "{output}"
    );
}

// A task spawned while the check stops the test's tasks is a late straggler, even from a spawn
// site and parent whose earlier task the report saw, and which has ended since.
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_late_task_of_a_reported_site_is_reported"]
async fn leak_late_task_of_a_reported_site() {
    fn spawn_child(blocked: Option<std::sync::mpsc::Receiver<()>>) {
        // site(same_site): leak_check::spawn
        leak_check::spawn(async move {
            match blocked {
                Some(blocked) => {
                    let _ = blocked.recv();
                }
                None => std::future::pending::<()>().await,
            }
        });
    }
    leak_check::Builder::new().name("parent").spawn(async {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        // In its first poll when the report is taken; ended by the parent's drop.
        spawn_child(Some(blocked));
        struct AtTheStop(std::sync::mpsc::Sender<()>);
        impl Drop for AtTheStop {
            fn drop(&mut self) {
                let _ = self.0.send(());
                // The same site and parent: a late task.
                spawn_child(None);
            }
        }
        let _at_the_stop = AtTheStop(release);
        std::future::pending::<()>().await
    });
}

#[test]
fn a_late_task_of_a_reported_site_is_reported() {
    let output = expect_failure("leak_late_task_of_a_reported_site");
    assert_reports(&output, 2, &site_of("same_site"));
}
