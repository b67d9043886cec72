//! Cleanup is complete: what a check stops stays stopped, however many generations of tasks the
//! stopped tasks' `Drop`s spawn; tasks that appear during cleanup are told apart by their own
//! records; and tokio's count of a test's runtime is not offset by tasks that run elsewhere.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, run_tests, site, SHARED};

const SOURCE: &str = include_str!("cleanup.rs");

fn site_of(label: &str) -> String {
    site("tests/cleanup.rs", SOURCE, label)
}

/// Spawns, when dropped, a task that holds another of these one generation down, down to
/// generation 0, whose task counts its polls for ever.
struct Generation {
    left: usize,
    ticks: Arc<AtomicUsize>,
}

impl Drop for Generation {
    fn drop(&mut self) {
        let ticks = self.ticks.clone();
        let left = self.left;
        // site(generation): leak_check::spawn
        leak_check::spawn(async move {
            if left == 0 {
                loop {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let _next = Generation {
                left: left - 1,
                ticks,
            };
            std::future::pending::<()>().await
        });
    }
}

static DEEP_TICKS: once_cell::sync::Lazy<Arc<AtomicUsize>> =
    once_cell::sync::Lazy::new(|| Arc::new(AtomicUsize::new(0)));

// On a runtime shared by the whole binary, a straggler whose Drop spawns a task whose Drop spawns
// a task ... four generations down, the last one ticking for ever: every generation is stopped.
#[leak_check]
#[test]
#[ignore = "leaks on purpose; run by every_generation_spawned_by_drops_is_stopped"]
fn leak_generations_on_a_shared_runtime() {
    let ticks = DEEP_TICKS.clone();
    leak_check::spawn_on(
        async move {
            let _first = Generation { left: 4, ticks };
            std::future::pending::<()>().await
        },
        SHARED.handle(),
    );
}

#[test]
fn every_generation_spawned_by_drops_is_stopped() {
    let run = run_tests(
        &[
            "--ignored",
            "--exact",
            "leak_generations_on_a_shared_runtime",
            "--test-threads=1",
        ],
        &[],
    );
    assert!(!run.passed, "{}", run.output);
    // Generations 4..1 each outlive the grace period they are given as late stragglers; the
    // report lists the first straggler, then each late generation.
    assert!(run.output.contains("leaked 6 tasks"), "{}", run.output);
    assert_reports(&run.output, 5, &site_of("generation"));
}

// The same, checked from inside: after the check, the last generation ticks no more.
#[test]
fn nothing_of_an_ended_check_runs_on() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let checked = std::panic::catch_unwind(|| {
        generations_checked(ticks.clone());
    });
    assert!(checked.is_err(), "the check should have failed the body");
    let after_check = ticks.load(Ordering::SeqCst);
    assert!(after_check > 0, "the last generation never ran");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        after_check,
        "a task of the ended check still runs"
    );
}

#[leak_check]
fn generations_checked(ticks: Arc<AtomicUsize>) {
    leak_check::spawn_on(
        async move {
            let _first = Generation { left: 3, ticks };
            std::future::pending::<()>().await
        },
        SHARED.handle(),
    );
}

/// Spawns, when dropped, a task that never ends.
struct SpawnsPendingOnDrop;

impl Drop for SpawnsPendingOnDrop {
    fn drop(&mut self) {
        // site(late): leak_check::spawn
        leak_check::spawn(std::future::pending::<()>());
    }
}

// 100 stragglers whose Drops each spawn a task that never ends: 100 late tasks, however the
// allocator reuses the stopped stragglers' memory for them.
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by late_stragglers_are_told_apart_by_identity"]
async fn leak_a_hundred_late_tasks() {
    for _ in 0..100 {
        // site(hundred): leak_check::spawn
        leak_check::spawn(async {
            let _guard = SpawnsPendingOnDrop;
            std::future::pending::<()>().await
        });
    }
}

#[test]
fn late_stragglers_are_told_apart_by_identity() {
    let output = expect_failure("leak_a_hundred_late_tasks");
    assert!(output.contains("leaked 200 tasks"), "{output}");
    assert_reports(&output, 100, &site_of("hundred"));
    assert_reports(&output, 100, &site_of("late"));
}

// An allowed task's Drop that spawns a task that never ends: the new task is not allowed, so it
// is a leak.
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by an_allowed_tasks_drop_can_leak"]
async fn leak_from_an_allowed_tasks_drop() {
    leak_check::Builder::new().name("allowed").spawn(async {
        let _guard = SpawnsPendingOnDrop;
        std::future::pending::<()>().await
    });
    // Polled once, so that its guard exists when it is stopped.
    tokio::task::yield_now().await;
}

#[test]
fn an_allowed_tasks_drop_can_leak() {
    let run = run_tests(
        &["--ignored", "--exact", "leak_from_an_allowed_tasks_drop"],
        &[("LEAK_CHECK_ALLOW_NAMES", "allowed")],
    );
    assert!(!run.passed, "{}", run.output);
    assert!(run.output.contains("leaked 1 task"), "{}", run.output);
    assert_reports(&run.output, 1, &site_of("late"));
}

/// Sets its flag when dropped.
struct MarksStopped(&'static AtomicBool);

impl Drop for MarksStopped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// When dropped, spawns a task that holds a [`MarksStopped`] for its flag and never ends.
struct SpawnsAsItStops(&'static AtomicBool);

impl Drop for SpawnsAsItStops {
    fn drop(&mut self) {
        let marks = MarksStopped(self.0);
        // Background by lineage: stopped with the rest, never reported.
        leak_check::spawn(async move {
            let _marks = marks;
            std::future::pending::<()>().await
        });
    }
}

#[leak_check]
#[tokio::test]
async fn background_work_that_spawns_as_it_stops_is_clean() {
    static UNUSED: AtomicBool = AtomicBool::new(false);
    leak_check::spawn_background(async {
        let _guard = SpawnsAsItStops(&UNUSED);
        std::future::pending::<()>().await
    });
    tokio::task::yield_now().await;
}

static BACKGROUND_CHILD_STOPPED: AtomicBool = AtomicBool::new(false);

#[leak_check]
fn background_work_that_spawns_as_it_stops_on_a_shared_runtime() {
    let (started, has_started) = std::sync::mpsc::channel();
    leak_check::Builder::new().background().spawn_on(
        async move {
            let _guard = SpawnsAsItStops(&BACKGROUND_CHILD_STOPPED);
            let _ = started.send(());
            std::future::pending::<()>().await
        },
        SHARED.handle(),
    );
    has_started.recv().unwrap();
}

#[test]
fn the_background_child_was_stopped() {
    // Clean (it would panic otherwise), and by the time the check returns, the task the
    // background work's Drop spawned has been stopped: its future, and its flag, dropped.
    background_work_that_spawns_as_it_stops_on_a_shared_runtime();
    assert!(BACKGROUND_CHILD_STOPPED.load(Ordering::SeqCst));
}

// tokio's count of the test's runtime less the tracked tasks that run on it: tracked and
// background tasks on another runtime, and tracked or background blocking closures, cannot
// offset a plain tokio::spawn leak on the test's runtime.
static OTHER: once_cell::sync::Lazy<tokio::runtime::Runtime> = once_cell::sync::Lazy::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
});

#[leak_check(allow_names = ["elsewhere"])]
#[tokio::test]
#[ignore = "leaks on purpose; run by the_plain_count_is_per_runtime"]
async fn leak_plain_beside_tasks_elsewhere() {
    let (release, released) = std::sync::mpsc::channel::<()>();
    leak_check::Builder::new()
        .name("elsewhere")
        .spawn_on(std::future::pending::<()>(), OTHER.handle());
    leak_check::Builder::new()
        .background()
        .spawn_on(std::future::pending::<()>(), OTHER.handle());
    leak_check::spawn_background(async {});
    leak_check::Builder::new()
        .name("elsewhere")
        .spawn_blocking(move || released.recv_timeout(Duration::from_secs(5)));
    leak_check::Builder::new().background().spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(300));
    });
    // site(plain): tokio::spawn
    tokio::spawn(std::future::pending::<()>());
    tokio::task::yield_now().await;
    // The blocking closure ends when the check drops its sender, after the verdict.
    std::mem::forget(release);
}

#[test]
fn the_plain_count_is_per_runtime() {
    let output = expect_failure("leak_plain_beside_tasks_elsewhere");
    assert!(output.contains("leaked 1 task"), "{output}");
    if cfg!(tokio_unstable) {
        // tokio's hooks see the plain task, with its site.
        assert_reports(&output, 1, &site_of("plain"));
    } else {
        assert!(output.contains("with plain `tokio::spawn`"), "{output}");
    }
}

// A tracked task that has not run yet counts on the test's runtime only if it was spawned onto
// it: one bound for a runtime nobody drives does not hide a plain leak, and adds none.
static UNDRIVEN: once_cell::sync::Lazy<tokio::runtime::Runtime> =
    once_cell::sync::Lazy::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    });

fn spawn_where_nothing_runs_it() {
    leak_check::Builder::new()
        .name("elsewhere")
        .spawn_on(std::future::pending::<()>(), UNDRIVEN.handle());
    {
        // Spawned onto the runtime entered here, not the thread's own.
        let _entered = UNDRIVEN.enter();
        leak_check::Builder::new()
            .name("elsewhere")
            .spawn(std::future::pending::<()>());
    }
    leak_check::Builder::new()
        .name("elsewhere")
        .spawn_blocking_on(|| (), UNDRIVEN.handle());
}

#[leak_check(allow_names = ["elsewhere"])]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_task_not_run_elsewhere_hides_no_plain_leak"]
async fn leak_plain_beside_a_task_not_run_elsewhere() {
    spawn_where_nothing_runs_it();
    // site(plain_unrun): tokio::spawn
    tokio::spawn(std::future::pending::<()>());
}

#[leak_check(allow_names = ["elsewhere"])]
#[tokio::test]
async fn a_task_not_run_elsewhere_adds_no_plain_leak() {
    spawn_where_nothing_runs_it();
}

#[test]
fn a_task_not_run_elsewhere_hides_no_plain_leak() {
    let output = expect_failure("leak_plain_beside_a_task_not_run_elsewhere");
    assert!(output.contains("leaked 1 task"), "{output}");
    if cfg!(tokio_unstable) {
        assert_reports(&output, 1, &site_of("plain_unrun"));
    } else {
        assert!(output.contains("with plain `tokio::spawn`"), "{output}");
    }
}

// tokio counts a task in the runtime it was spawned onto, whichever thread runs it: a tracked task
// of another runtime that a thread of the test's runtime drives (from `block_in_place`, or from a
// blocking closure) does not hide a plain leak, and adds none.
fn drive_another_runtime_here() {
    let side = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    side.block_on(async {
        leak_check::Builder::new()
            .name("elsewhere")
            .spawn(std::future::pending::<()>());
        leak_check::spawn_background(std::future::pending::<()>());
        tokio::task::yield_now().await;
    });
    // Its tasks stay alive, and were polled by this thread.
    std::mem::forget(side);
}

#[leak_check(allow_names = ["elsewhere"])]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_task_run_elsewhere_by_the_tests_thread_hides_no_plain_leak"]
async fn leak_plain_beside_a_task_run_elsewhere_in_place() {
    // site(plain_beside_in_place): tokio::spawn
    tokio::spawn(std::future::pending::<()>());
    tokio::task::block_in_place(drive_another_runtime_here);
}

#[leak_check(allow_names = ["elsewhere"])]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_task_run_elsewhere_by_the_tests_thread_hides_no_plain_leak"]
async fn leak_plain_beside_a_task_run_elsewhere_by_a_blocking_thread() {
    // site(plain_beside_blocking): tokio::spawn
    tokio::spawn(std::future::pending::<()>());
    leak_check::spawn_blocking(drive_another_runtime_here)
        .await
        .unwrap();
}

#[leak_check(allow_names = ["elsewhere"])]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_run_elsewhere_by_the_tests_thread_adds_no_plain_leak() {
    tokio::task::block_in_place(drive_another_runtime_here);
    leak_check::spawn_blocking(drive_another_runtime_here)
        .await
        .unwrap();
}

#[test]
fn a_task_run_elsewhere_by_the_tests_thread_hides_no_plain_leak() {
    for (test, label) in [
        (
            "leak_plain_beside_a_task_run_elsewhere_in_place",
            "plain_beside_in_place",
        ),
        (
            "leak_plain_beside_a_task_run_elsewhere_by_a_blocking_thread",
            "plain_beside_blocking",
        ),
    ] {
        let output = expect_failure(test);
        assert!(output.contains("leaked 1 task"), "{test}: {output}");
        if cfg!(tokio_unstable) {
            assert_reports(&output, 1, &site_of(label));
        } else {
            assert!(
                output.contains("with plain `tokio::spawn`"),
                "{test}: {output}"
            );
        }
    }
}

// A stopped task ends for good: tokio cancels it, so whoever awaits its JoinHandle gets
// `Cancelled` instead of waiting for ever, and it leaves the runtime's count.
#[leak_check]
fn starts_background_ticker() -> tokio::task::JoinHandle<()> {
    background_on_shared::spawn()
}

mod background_on_shared {
    pub fn spawn() -> tokio::task::JoinHandle<()> {
        leak_check::Builder::new().background().spawn_on(
            async {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            },
            super::SHARED.handle(),
        )
    }
}

#[test]
fn a_stopped_tasks_join_handle_completes() {
    let handle = starts_background_ticker();
    let joined =
        SHARED.block_on(async { tokio::time::timeout(Duration::from_secs(5), handle).await });
    let joined = joined.expect("the stopped task's JoinHandle should complete");
    assert!(joined.unwrap_err().is_cancelled());
}

// Blocking closures that a task spawns after its check has ended do not run.
static LATE_CLOSURES_RAN: AtomicUsize = AtomicUsize::new(0);

#[leak_check]
fn blocking_closure_outliving_its_check(release: std::sync::mpsc::Receiver<()>) {
    leak_check::spawn_blocking_on(
        move || {
            let _ = release.recv();
            for _ in 0..10 {
                leak_check::spawn_blocking_on(
                    || {
                        LATE_CLOSURES_RAN.fetch_add(1, Ordering::SeqCst);
                    },
                    SHARED.handle(),
                );
            }
        },
        SHARED.handle(),
    );
}

#[test]
fn blocking_closures_spawned_after_the_check_do_not_run() {
    let (release, released) = std::sync::mpsc::channel();
    let checked = std::panic::catch_unwind(move || blocking_closure_outliving_its_check(released));
    assert!(checked.is_err(), "the running closure is a leak");
    release.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(LATE_CLOSURES_RAN.load(Ordering::SeqCst), 0);
}

// Under tokio_unstable, busy blocking threads are counted; background work doing blocking I/O
// (as tokio::fs does) is not held against a clean test, nor is a plain closure that
// allow_untracked allows.
#[leak_check]
#[tokio::test]
async fn background_blocking_io_is_not_a_plain_closure() {
    leak_check::spawn_background(async {
        loop {
            let _ =
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20))).await;
        }
    });
    tokio::task::yield_now().await;
}

#[leak_check(allow_untracked = true)]
#[tokio::test]
async fn an_allowed_plain_closure_is_not_reported() {
    drop(tokio::task::spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(300))
    }));
}

// Plain `tokio::spawn` tasks that the stopped tasks' Drops spawn on the test's runtime are seen
// too: with tokio_unstable through its hooks, like any task; without it from tokio's count.
// They get the grace period to end, like tracked tasks spawned during cleanup.
struct SpawnsPlainOnDrop {
    tasks: usize,
    runs_for: Option<Duration>,
}

impl Drop for SpawnsPlainOnDrop {
    fn drop(&mut self) {
        for _ in 0..self.tasks {
            let runs_for = self.runs_for;
            // site(plain_on_drop): tokio::spawn
            tokio::spawn(async move {
                match runs_for {
                    Some(time) => tokio::time::sleep(time).await,
                    None => std::future::pending().await,
                }
            });
        }
    }
}

fn spawn_holding(name: &str, on_drop: SpawnsPlainOnDrop) {
    leak_check::Builder::new()
        .name(name.to_owned())
        .spawn(async move {
            let _on_drop = on_drop;
            std::future::pending::<()>().await
        });
}

#[leak_check(allow_names = ["allowed"])]
#[tokio::test]
#[ignore = "leaks on purpose; run by plain_tasks_spawned_while_stopping_are_seen"]
async fn leak_plain_from_an_allowed_tasks_drop() {
    spawn_holding(
        "allowed",
        SpawnsPlainOnDrop {
            tasks: 1,
            runs_for: None,
        },
    );
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by plain_tasks_spawned_while_stopping_are_seen"]
async fn leak_plain_from_a_stragglers_drop() {
    spawn_holding(
        "straggler",
        SpawnsPlainOnDrop {
            tasks: 2,
            runs_for: None,
        },
    );
}

#[test]
fn plain_tasks_spawned_while_stopping_are_seen() {
    let late = "spawned while the stragglers were being stopped";
    let output = expect_failure("leak_plain_from_an_allowed_tasks_drop");
    assert!(output.contains("leaked 1 task"), "{output}");
    assert!(output.contains(late), "{output}");
    let output = expect_failure("leak_plain_from_a_stragglers_drop");
    assert!(output.contains("leaked 3 tasks"), "{output}");
    assert!(output.contains(late), "{output}");
    if cfg!(tokio_unstable) {
        assert_reports(&output, 2, &site_of("plain_on_drop"));
    } else {
        assert!(
            output.contains("2 tasks spawned with plain `tokio::spawn`"),
            "{output}"
        );
    }
    assert!(
        output.contains("2 are dropped when their runtime shuts down"),
        "{output}"
    );
}

// Their clean twins: plain tasks spawned by Drops during cleanup that end within the grace
// period, from an allowed task and from background work.
#[leak_check(allow_names = ["allowed"])]
#[tokio::test]
async fn plain_tasks_an_allowed_tasks_drop_spawns_may_end_in_time() {
    spawn_holding(
        "allowed",
        SpawnsPlainOnDrop {
            tasks: 3,
            runs_for: Some(Duration::from_millis(5)),
        },
    );
}

// A plain task that background work's Drop spawns is background work too, however long it
// lives: with tokio_unstable its hooks say so; without them it cannot be told from the test's
// own, and is not held against the test.
#[leak_check]
#[tokio::test]
async fn plain_tasks_background_works_drop_spawns_are_background_work() {
    let on_drop = SpawnsPlainOnDrop {
        tasks: 2,
        runs_for: None,
    };
    leak_check::spawn_background(async move {
        let _on_drop = on_drop;
        std::future::pending::<()>().await
    });
}

#[leak_check]
#[tokio::test]
async fn plain_tasks_background_works_drop_spawns_may_end_in_time() {
    let on_drop = SpawnsPlainOnDrop {
        tasks: 3,
        runs_for: Some(Duration::from_millis(5)),
    };
    leak_check::spawn_background(async move {
        let _on_drop = on_drop;
        std::future::pending::<()>().await
    });
}
