//! The three forms of `#[leak_check]`, with the arguments and attributes they pass through.

mod support;

use std::time::Duration;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, run_tests, site, SHARED};

const SOURCE: &str = include_str!("forms.rs");

async fn joined_work() -> u32 {
    let handles: Vec<_> = (0..10)
        .map(|i| leak_check::spawn(async move { i }))
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    sum
}

// --- Form a: above #[tokio::test] -----------------------------------------------------------

#[leak_check]
#[tokio::test]
async fn above_tokio_test() {
    assert_eq!(joined_work().await, 45);
}

#[leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_tokio_test_multi_thread() {
    assert_eq!(joined_work().await, 45);
}

#[leak_check]
#[tokio::test(start_paused = true)]
async fn above_tokio_test_start_paused() {
    let sleeper = leak_check::spawn(tokio::time::sleep(Duration::from_secs(3600)));
    sleeper.await.unwrap();
}

/// Doc comments pass through.
#[leak_check(grace_ms = 500)]
#[tokio::test(flavor = "current_thread")]
async fn returns_a_result() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "42".parse()?;
    assert_eq!(n, 42);
    Ok(())
}

#[leak_check]
#[tokio::test]
#[should_panic(expected = "expected failure")]
async fn should_panic_below() {
    panic!("expected failure");
}

#[should_panic(expected = "expected failure")]
#[leak_check]
#[tokio::test]
async fn should_panic_above() {
    panic!("expected failure");
}

#[leak_check]
#[tokio::test]
#[ignore = "passes through: listed as ignored by ignore_passes_through"]
async fn ignored_and_clean() {}

#[test]
fn ignore_passes_through() {
    let run = run_tests(&["--list", "--ignored"], &[]);
    assert!(
        run.output.contains("ignored_and_clean: test"),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("above_tokio_test: test"),
        "{}",
        run.output
    );
}

// --- Form b: alone on an async fn -------------------------------------------------------------

#[leak_check]
async fn alone() {
    assert_eq!(joined_work().await, 45);
}

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
async fn alone_multi_thread() {
    assert_eq!(joined_work().await, 45);
}

#[leak_check(start_paused = true, grace_ms = 200)]
async fn alone_start_paused() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[leak_check(crate = "tokio")]
async fn alone_with_crate_path() {
    assert_eq!(joined_work().await, 45);
}

#[leak_check]
async fn alone_returning_result() -> Result<(), String> {
    let parsed: u32 = "7".parse().map_err(|_| "not a number".to_owned())?;
    assert_eq!(parsed, 7);
    Ok(())
}

// --- Form c: a plain #[test] on a runtime that outlives it ------------------------------------

#[leak_check]
#[test]
fn sync_on_shared_runtime() {
    let handle = leak_check::spawn_on(async { 5 }, SHARED.handle());
    assert_eq!(SHARED.block_on(handle).unwrap(), 5);
}

#[test]
#[leak_check]
fn sync_with_test_attribute_above() {
    let handle = leak_check::spawn_on(async { 6 }, SHARED.handle());
    assert_eq!(SHARED.block_on(handle).unwrap(), 6);
}

#[leak_check]
#[test]
fn sync_returning_result() -> Result<(), String> {
    let handle = leak_check::spawn_on(async { 7 }, SHARED.handle());
    SHARED.block_on(handle).map_err(|e| e.to_string())?;
    Ok(())
}

#[leak_check]
#[test]
#[ignore = "leaks on purpose; run by sync_leak_is_reported"]
fn leak_sync_on_shared_runtime() {
    // site(sync): leak_check::spawn_on
    leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
}

#[test]
fn sync_leak_is_reported() {
    let output = expect_failure("leak_sync_on_shared_runtime");
    assert_reports(&output, 1, &site("tests/forms.rs", SOURCE, "sync"));
}

// --- What the report names ----------------------------------------------------------------

mod nested {
    use leak_check::leak_check;

    #[leak_check]
    #[tokio::test]
    #[ignore = "leaks on purpose; run by report_names_the_test_by_its_path"]
    async fn leak_in_module() {
        leak_check::spawn(std::future::pending::<()>());
    }
}

#[test]
fn report_names_the_test_by_its_path() {
    let output = expect_failure("nested::leak_in_module");
    assert!(
        output.contains("leak-check: test `nested::leak_in_module` leaked 1 task"),
        "{output}"
    );
}

// --- should_panic cannot hide a leak ---------------------------------------------------------

#[leak_check]
#[tokio::test]
#[should_panic(expected = "expected failure")]
#[ignore = "leaks on purpose; run by should_panic_cannot_hide_a_leak"]
async fn leak_in_should_panic() {
    // site(should_panic): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    panic!("expected failure");
}

#[test]
fn should_panic_cannot_hide_a_leak() {
    let output = expect_failure("leak_in_should_panic");
    assert_reports(&output, 1, &site("tests/forms.rs", SOURCE, "should_panic"));
    assert!(output.contains("did not panic as expected"), "{output}");
}

// --- tokio's own panics point at the caller's line ------------------------------------------

// Inside a check, leak-check wraps the task before it calls tokio; a panic in tokio (no runtime
// here) still names the test's line, as it does outside a check.
#[leak_check]
#[test]
#[ignore = "panics on purpose; run by tokios_panics_inside_a_check_name_the_callers_line"]
fn spawn_without_a_runtime() {
    // site(no_runtime): leak_check::spawn
    leak_check::spawn(async {});
}

#[leak_check]
#[test]
#[ignore = "panics on purpose; run by tokios_panics_inside_a_check_name_the_callers_line"]
fn spawn_blocking_without_a_runtime() {
    // site(no_runtime_blocking): leak_check::spawn_blocking
    leak_check::spawn_blocking(|| ());
}

#[test]
fn tokios_panics_inside_a_check_name_the_callers_line() {
    for (test, label) in [
        ("spawn_without_a_runtime", "no_runtime"),
        ("spawn_blocking_without_a_runtime", "no_runtime_blocking"),
    ] {
        let output = expect_failure(test);
        let at = format!("panicked at {}", site("tests/forms.rs", SOURCE, label));
        assert!(output.contains(&at), "expected `{at}`:\n{output}");
    }
}
