//! Ownership by lineage, the spawn family, the grace period, and parallel tests sharing a runtime.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leak_check::leak_check;
use once_cell::sync::Lazy;
use support::{assert_reports, expect_failure, run_tests, site, SHARED};
use tokio::task::{JoinSet, LocalSet};
use tokio_util::sync::CancellationToken;

const SOURCE: &str = include_str!("ownership.rs");

fn site_of(label: &str) -> String {
    site("tests/ownership.rs", SOURCE, label)
}

// --- Lineage through every spawn function ------------------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by spawns_inside_blocking_closures_belong_to_the_test"]
async fn leak_from_blocking_closure() {
    // site(blocking_parent): leak_check::spawn_blocking
    leak_check::spawn_blocking(|| {
        // site(from_blocking): leak_check::spawn_on
        leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
    })
    .await
    .unwrap();
}

#[test]
fn spawns_inside_blocking_closures_belong_to_the_test() {
    let output = expect_failure("leak_from_blocking_closure");
    assert_reports(&output, 1, &site_of("from_blocking"));
    let chain = format!(
        "test body -> task spawned at {}",
        site_of("blocking_parent")
    );
    assert!(output.contains(&chain), "expected `{chain}`:\n{output}");
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by join_set_and_local_set_tasks_are_tracked"]
async fn leak_join_set_and_local_set() {
    let mut set = JoinSet::new();
    // site(join_set): leak_check::spawn_in
    leak_check::spawn_in(&mut set, std::future::pending::<()>());
    std::mem::forget(set);
    let local = LocalSet::new();
    local
        .run_until(async {
            let (_keep, rx) = tokio::sync::oneshot::channel::<()>();
            // site(local): leak_check::spawn_local
            leak_check::spawn_local(rx);
            std::mem::forget(_keep);
        })
        .await;
    // The LocalSet is dropped at the end of the body, which drops its tasks: leak it instead.
    std::mem::forget(local);
}

#[test]
fn join_set_and_local_set_tasks_are_tracked() {
    let output = expect_failure("leak_join_set_and_local_set");
    assert_reports(&output, 1, &site_of("join_set"));
    assert_reports(&output, 1, &site_of("local"));
}

#[leak_check]
#[tokio::test]
async fn join_set_and_local_set_clean() {
    let mut set = JoinSet::new();
    for i in 0..5 {
        leak_check::spawn_in(&mut set, async move { i });
    }
    while set.join_next().await.is_some() {}
    let local = LocalSet::new();
    let value = local
        .run_until(async {
            leak_check::spawn_local(async { std::rc::Rc::new(3) })
                .await
                .unwrap()
        })
        .await;
    assert_eq!(*value, 3);
}

// --- Tasks the test does not own --------------------------------------------------------------

static BACKGROUND_STARTED: Lazy<()> = Lazy::new(|| {
    // Spawned from a thread no check owns: belongs to no test, and lives forever.
    std::thread::spawn(|| {
        leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
        SHARED.spawn(std::future::pending::<()>());
    })
    .join()
    .unwrap();
});

#[leak_check]
#[test]
fn tasks_spawned_outside_any_check_are_not_counted() {
    Lazy::force(&BACKGROUND_STARTED);
    let handle = leak_check::spawn_on(async { 1 }, SHARED.handle());
    assert_eq!(SHARED.block_on(handle).unwrap(), 1);
}

// --- The grace period ------------------------------------------------------------------------

/// A task told to stop as the body ends, which needs `delay` to wind down.
fn slow_to_stop(delay: Duration) -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    // site(slow): leak_check::spawn
    leak_check::spawn(async move {
        token.cancelled().await;
        tokio::time::sleep(delay).await;
    });
    stop
}

#[leak_check]
#[tokio::test]
async fn tasks_that_stop_a_moment_after_the_body_pass() {
    slow_to_stop(Duration::from_millis(10)).cancel();
}

#[leak_check(grace_ms = 3000)]
async fn a_longer_grace_period_per_test() {
    slow_to_stop(Duration::from_millis(400)).cancel();
}

#[leak_check]
#[tokio::test]
#[ignore = "too slow for the default grace period; run by grace_period_decides"]
async fn leak_slower_than_grace() {
    slow_to_stop(Duration::from_millis(800)).cancel();
}

#[test]
fn grace_period_decides() {
    let output = expect_failure("leak_slower_than_grace");
    assert_reports(&output, 1, &site_of("slow"));
    let run = run_tests(
        &["--ignored", "--exact", "leak_slower_than_grace"],
        &[("LEAK_CHECK_GRACE_MS", "5000")],
    );
    assert!(
        run.passed,
        "the environment's grace period was not used:\n{}",
        run.output
    );
}

#[leak_check(grace_ms = 60000)]
#[ignore = "run by the check_is_woken_by_the_last_exit"]
async fn finishes_long_before_a_long_grace() {
    slow_to_stop(Duration::from_millis(50)).cancel();
}

#[test]
fn the_check_is_woken_by_the_last_exit() {
    // Not a speed claim: with a 60 s grace period, a check that slept instead of being woken
    // by the task's exit would take a minute; being woken takes milliseconds.
    let started = Instant::now();
    let run = run_tests(
        &["--ignored", "--exact", "finishes_long_before_a_long_grace"],
        &[],
    );
    assert!(run.passed, "{}", run.output);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the check waited out its grace period"
    );
}

// --- Parallel tests on one shared runtime -------------------------------------------------------

fn busy_clean_test(seed: u64) {
    // Tasks that overlap with the other tests, finish after the body, or are joined.
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(leak_check::spawn_on(
            async move {
                tokio::time::sleep(Duration::from_millis((seed * 7 + i) % 15)).await;
                leak_check::spawn(async move { i }).await.unwrap()
            },
            SHARED.handle(),
        ));
    }
    support::spawn_until_stopped(&stop);
    for handle in handles {
        SHARED.block_on(handle).unwrap();
    }
    stop.store(true, Ordering::Release);
}

macro_rules! shared_runtime_tests {
    ($($name:ident = $seed:expr),*) => {$(
        #[leak_check]
        #[test]
        fn $name() {
            busy_clean_test($seed);
        }
    )*};
}

shared_runtime_tests!(
    shared_rt_clean_0 = 0,
    shared_rt_clean_1 = 1,
    shared_rt_clean_2 = 2,
    shared_rt_clean_3 = 3,
    shared_rt_clean_4 = 4,
    shared_rt_clean_5 = 5,
    shared_rt_clean_6 = 6,
    shared_rt_clean_7 = 7
);

#[leak_check]
#[test]
#[ignore = "leaks on purpose; run by only_the_leaking_parallel_test_fails"]
fn shared_rt_leaky() {
    busy_clean_test(8);
    // site(parallel): leak_check::spawn_on
    leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
}

#[test]
fn only_the_leaking_parallel_test_fails() {
    let run = run_tests(
        &["--include-ignored", "--test-threads", "9", "shared_rt_"],
        &[],
    );
    assert!(!run.passed, "{}", run.output);
    assert!(run.output.contains("8 passed; 1 failed"), "{}", run.output);
    assert!(
        run.output.contains("test shared_rt_leaky ... FAILED"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains("leak-check: test `shared_rt_leaky` leaked 1 task"),
        "{}",
        run.output
    );
    assert_reports(&run.output, 1, &site_of("parallel"));
}
