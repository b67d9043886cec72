//! Paused time (`start_paused`, `time::pause`): the verdict is judged in real time. While the
//! check waits, tokio's clock does not jump to the stragglers' timers, so a task sleeping an hour
//! of paused time is still asleep at the deadline, and reported.

mod support;

use std::time::Duration;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, site};

const SOURCE: &str = include_str!("paused.rs");

fn site_of(label: &str) -> String {
    site("tests/paused.rs", SOURCE, label)
}

#[leak_check]
#[tokio::test(start_paused = true)]
#[ignore = "leaks on purpose; run by a_sleeper_in_paused_time_is_reported"]
async fn leak_sleeper_in_paused_time() {
    // site(sleeper): leak_check::spawn
    leak_check::spawn(tokio::time::sleep(Duration::from_secs(3600)));
}

#[test]
fn a_sleeper_in_paused_time_is_reported() {
    let output = expect_failure("leak_sleeper_in_paused_time");
    assert_reports(&output, 1, &site_of("sleeper"));
    assert!(
        output.contains("the test's clock was paused: leak-check resumed it"),
        "the report says its time was judged in real time:\n{output}"
    );
}

#[leak_check(start_paused = true)]
#[ignore = "leaks on purpose; run by a_sleeper_in_paused_time_is_reported_in_form_b"]
async fn leak_sleeper_in_paused_time_form_b() {
    // site(sleeper_b): leak_check::spawn
    leak_check::spawn(tokio::time::sleep(Duration::from_secs(3600)));
}

#[test]
fn a_sleeper_in_paused_time_is_reported_in_form_b() {
    let output = expect_failure("leak_sleeper_in_paused_time_form_b");
    assert_reports(&output, 1, &site_of("sleeper_b"));
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_sleeper_after_time_pause_is_reported"]
async fn leak_sleeper_after_time_pause() {
    tokio::time::pause();
    // site(paused_later): leak_check::spawn
    leak_check::spawn(tokio::time::sleep(Duration::from_secs(3600)));
}

#[test]
fn a_sleeper_after_time_pause_is_reported() {
    let output = expect_failure("leak_sleeper_after_time_pause");
    assert_reports(&output, 1, &site_of("paused_later"));
}

// The clean twin: paused time still runs the test's own timers, which end before the body does.
#[leak_check]
#[tokio::test(start_paused = true)]
async fn sleeps_awaited_in_paused_time_are_clean() {
    let sleeper = leak_check::spawn(tokio::time::sleep(Duration::from_secs(3600)));
    sleeper.await.unwrap();
}

// A worker that needs a moment of paused time to wind down (a back-off, a flush) gets it: the
// clock runs in real time while the check waits.
#[leak_check]
#[tokio::test(start_paused = true)]
async fn a_worker_that_sleeps_a_millisecond_to_stop_is_clean() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    leak_check::spawn(async move {
        while rx.recv().await.is_some() {}
        tokio::time::sleep(Duration::from_millis(1)).await;
    });
    drop(tx);
}
