//! leak-check beside the attributes real suites already use: rstest, serial_test, test-log. Each
//! clean test must pass, and each leaking one must still be caught.

mod support;

use leak_check::leak_check;
use rstest::rstest;
use serial_test::serial;
use support::{assert_reports, expect_failure, site};

const SOURCE: &str = include_str!("compose.rs");

fn site_of(label: &str) -> String {
    site("tests/compose.rs", SOURCE, label)
}

async fn doubled(n: u32) -> u32 {
    leak_check::spawn(async move { n * 2 }).await.unwrap()
}

// --- rstest: cases and fixtures -------------------------------------------------------------

#[rstest]
#[case(1, 2)]
#[case(21, 42)]
#[leak_check]
#[tokio::test]
async fn rstest_cases(#[case] n: u32, #[case] expected: u32) {
    assert_eq!(doubled(n).await, expected);
}

#[rstest]
#[case(3)]
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by rstest_leaks_are_caught"]
async fn rstest_leak(#[case] n: u32) {
    // site(rstest): leak_check::spawn
    leak_check::spawn(async move {
        let _keep = n;
        std::future::pending::<()>().await
    });
}

// Written above `#[rstest]`, the check is the same for every case, and each case's report is
// named after the case (libtest's name for its thread).
#[leak_check]
#[rstest]
#[case(4)]
#[case(5)]
#[tokio::test]
#[ignore = "leaks on purpose; run by rstest_leaks_are_caught"]
async fn rstest_leak_above(#[case] n: u32) {
    // site(rstest_above): leak_check::spawn
    leak_check::spawn(async move {
        let _keep = n;
        std::future::pending::<()>().await
    });
}

#[test]
fn rstest_leaks_are_caught() {
    let output = expect_failure("rstest_leak::case_1");
    assert_reports(&output, 1, &site_of("rstest"));
    assert!(
        output.contains("test `rstest_leak::case_1` leaked"),
        "{output}"
    );
    let output = expect_failure("rstest_leak_above::case_2");
    assert_reports(&output, 1, &site_of("rstest_above"));
    assert!(
        output.contains("test `rstest_leak_above::case_2` leaked"),
        "{output}"
    );
}

// --- serial_test: tests that need the process to themselves --------------------------------

#[leak_check]
#[serial]
#[tokio::test]
async fn serial_above() {
    assert_eq!(doubled(4).await, 8);
}

#[serial]
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
async fn serial_alone_form() {
    assert_eq!(doubled(5).await, 10);
}

#[leak_check]
#[serial]
#[tokio::test]
#[ignore = "leaks on purpose; run by serial_leaks_are_caught"]
async fn serial_leak() {
    // site(serial): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
}

#[test]
fn serial_leaks_are_caught() {
    let output = expect_failure("serial_leak");
    assert_reports(&output, 1, &site_of("serial"));
}

// --- test-log: its own test attribute runs the runtime; the check goes inside the body -------

#[leak_check]
#[test_log::test(tokio::test)]
async fn test_log_async() {
    log::info!("logging works beside leak-check");
    assert_eq!(doubled(6).await, 12);
}

#[leak_check]
#[test_log::test]
fn test_log_sync() {
    log::info!("a sync test under test-log");
}

// Below test-log, a sync test that binds its own `body` to an async block is not mistaken for
// an expanded `#[tokio::test]`.
#[test_log::test]
#[leak_check]
fn test_log_sync_with_its_own_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let body = async { 1 + 1 };
    assert_eq!(runtime.block_on(body), 2);
    for n in 0..2u32 {
        let body = async move { n * 2 };
        assert_eq!(runtime.block_on(body), n * 2);
    }
}

#[leak_check]
#[test_log::test(tokio::test)]
#[ignore = "leaks on purpose; run by test_log_leaks_are_caught"]
async fn test_log_leak() {
    // site(test_log): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
}

#[test]
fn test_log_leaks_are_caught() {
    let output = expect_failure("test_log_leak");
    assert_reports(&output, 1, &site_of("test_log"));
}
