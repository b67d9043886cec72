//! `#[leak_check(...)]` on a module checks every test in it, nested modules included, as if the
//! attribute stood above each one; a test's own arguments win, per key, and `off` opts it out.

mod support;

use std::time::Duration;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, run_tests, site};

const SOURCE: &str = include_str!("modules.rs");

fn site_of(label: &str) -> String {
    site("tests/modules.rs", SOURCE, label)
}

#[leak_check(grace_ms = 150, timeout_ms = 30000, allow_names = ["module-allowed"])]
mod checked {
    // Inside a checked module, `#[leak_check(...)]` on a test needs no `use`: the module's
    // attribute reads it.
    use crate::support::SHARED;

    /// Not a test: left alone. Were it checked, it would be a test (form b), and a test takes
    /// no arguments: this file would not compile.
    async fn doubled(n: u32) -> u32 {
        leak_check::spawn(async move { n * 2 }).await.unwrap()
    }

    /// Not a test: left alone. Were it checked (a sync helper), its check would find the task
    /// still waiting when it returns, and panic: see `non_test_functions_are_left_alone`.
    pub(crate) fn start_waiter_on_shared() -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        leak_check::spawn_on(
            async move {
                let _ = rx.await;
            },
            SHARED.handle(),
        );
        tx
    }

    #[tokio::test]
    async fn clean_async_test() {
        assert_eq!(doubled(21).await, 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clean_multi_thread_test() {
        assert_eq!(doubled(4).await, 8);
    }

    /// The module's `timeout_ms` goes to async tests only: this sync test compiles, and its
    /// tasks are checked all the same (`nested::sync_leak`).
    #[test]
    fn clean_sync_test() {
        let task = leak_check::spawn_on(async { 3 }, SHARED.handle());
        assert_eq!(SHARED.block_on(task).unwrap(), 3);
    }

    #[tokio::test]
    async fn returns_a_result() -> Result<(), std::num::ParseIntError> {
        let n: u32 = "5".parse()?;
        assert_eq!(doubled(n).await, 10);
        Ok(())
    }

    #[tokio::test]
    #[ignore = "leaks on purpose; run by a_leak_in_a_checked_module_fails"]
    async fn leak() {
        leak_check::Builder::new()
            .name("module-allowed")
            .spawn(std::future::pending::<()>());
        // site(module): leak_check::spawn
        leak_check::spawn(std::future::pending::<()>());
    }

    // Its own `allow_names` replaces the module's; the module's `grace_ms` still applies.
    #[leak_check(allow_names = ["test-allowed"])]
    #[tokio::test]
    #[ignore = "leaks on purpose; run by a_tests_own_arguments_win"]
    async fn own_arguments() {
        leak_check::Builder::new()
            .name("test-allowed")
            .spawn(std::future::pending::<()>());
        let named = leak_check::Builder::new().name("module-allowed");
        // site(own): spawn(
        named.spawn(std::future::pending::<()>());
    }

    // Its own `allow_sites` lets its leak pass.
    #[leak_check(allow_sites = ["tests/modules.rs"])]
    #[tokio::test]
    #[ignore = "leaks on purpose, allowed; run by a_tests_own_arguments_win"]
    async fn own_allow_list() {
        leak_check::spawn(std::future::pending::<()>());
    }

    // The same leak as `leak`, opted out: a plain `#[tokio::test]`, which passes.
    #[leak_check(off)]
    #[tokio::test]
    #[ignore = "leaks on purpose, unchecked; run by off_opts_a_test_out"]
    async fn opted_out() {
        leak_check::spawn(std::future::pending::<()>());
    }

    mod nested {
        use crate::support::SHARED;

        #[tokio::test]
        #[ignore = "leaks on purpose; run by nested_modules_are_checked"]
        async fn async_leak() {
            // site(nested): leak_check::spawn
            leak_check::spawn(std::future::pending::<()>());
        }

        #[test]
        #[ignore = "leaks on purpose; run by nested_modules_are_checked"]
        fn sync_leak() {
            // site(nested_sync): leak_check::spawn_on
            leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
        }

        // Under another crate's test attribute, the check goes inside the body.
        #[test_log::test(tokio::test)]
        #[ignore = "leaks on purpose; run by nested_modules_are_checked"]
        async fn foreign_leak() {
            // site(nested_foreign): leak_check::spawn
            leak_check::spawn(std::future::pending::<()>());
        }
    }

    // A nested module's own arguments win over the outer module's, per key.
    #[leak_check(grace_ms = 300)]
    mod nested_with_arguments {
        #[tokio::test]
        #[ignore = "leaks on purpose; run by nested_modules_are_checked"]
        async fn leak() {
            // site(nested_args): leak_check::spawn
            leak_check::spawn(std::future::pending::<()>());
        }
    }

    #[leak_check(off)]
    mod nested_off {
        #[tokio::test]
        #[ignore = "leaks on purpose, unchecked; run by off_opts_a_test_out"]
        async fn leak() {
            leak_check::spawn(std::future::pending::<()>());
        }
    }
}

// rstest's `#[rstest]` composes: the attribute goes below it, onto each case.
#[leak_check(grace_ms = 120)]
mod with_rstest {
    use rstest::rstest;

    #[rstest]
    #[case(1, 2)]
    #[case(21, 42)]
    #[tokio::test]
    async fn cases(#[case] n: u32, #[case] expected: u32) {
        let doubled = leak_check::spawn(async move { n * 2 }).await.unwrap();
        assert_eq!(doubled, expected);
    }

    #[rstest]
    #[case(3)]
    #[tokio::test]
    #[ignore = "leaks on purpose; run by rstest_cases_in_a_module_are_checked"]
    async fn leak(#[case] n: u32) {
        // site(rstest): leak_check::spawn
        leak_check::spawn(async move {
            let _keep = n;
            std::future::pending::<()>().await
        });
    }
}

// A module with no tests, or only helpers, is fine.
#[leak_check]
mod empty {}

#[leak_check(grace_ms = 10)]
mod only_helpers {
    #[allow(dead_code)]
    pub(crate) fn helper() -> u32 {
        1
    }
}

/// Asserts that the report says the check waited `grace_ms` or a little more (a loaded machine
/// wakes the check late; the next grace step of the tests here is well above that).
fn assert_waited_at_least(output: &str, grace_ms: u64, what: &str) {
    let waited = output
        .split("(still alive ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no `still alive N ms` in the report:\n{output}"));
    assert!(
        (grace_ms..grace_ms + 100).contains(&waited),
        "{what}: waited {waited} ms, expected {grace_ms} ms or a little more:\n{output}"
    );
}

#[test]
fn a_leak_in_a_checked_module_fails() {
    let output = expect_failure("checked::leak");
    assert!(
        output.contains("leak-check: test `checked::leak` leaked 1 task (still alive "),
        "{output}"
    );
    assert_waited_at_least(&output, 150, "the module's grace_ms applies");
    assert_reports(&output, 1, &site_of("module"));
    assert!(
        output.contains("1 straggler left out by an allow-list"),
        "the module's allow_names applies:\n{output}"
    );
}

#[test]
fn a_tests_own_arguments_win() {
    let output = expect_failure("checked::own_arguments");
    assert_waited_at_least(
        &output,
        150,
        "the module's grace_ms still applies beside the test's own allow_names",
    );
    assert_reports(&output, 1, &site_of("own"));
    assert!(
        output.contains("\"module-allowed\""),
        "the test's allow_names replaced the module's:\n{output}"
    );

    let run = run_tests(&["--ignored", "--exact", "checked::own_allow_list"], &[]);
    assert!(
        run.passed && run.output.contains("1 passed"),
        "its own allow_sites lets it pass:\n{}",
        run.output
    );
}

#[test]
fn off_opts_a_test_out() {
    for name in ["checked::opted_out", "checked::nested_off::leak"] {
        let run = run_tests(&["--ignored", "--exact", name], &[]);
        assert!(
            run.passed && run.output.contains("1 passed"),
            "`{name}` is not checked:\n{}",
            run.output
        );
        assert!(!run.output.contains("leak-check:"), "{}", run.output);
    }
}

#[test]
fn nested_modules_are_checked() {
    for (name, label) in [
        ("checked::nested::async_leak", "nested"),
        ("checked::nested::sync_leak", "nested_sync"),
        ("checked::nested::foreign_leak", "nested_foreign"),
    ] {
        let output = expect_failure(name);
        assert!(
            output.contains(&format!("leak-check: test `{name}` leaked 1 task")),
            "{output}"
        );
        assert_reports(&output, 1, &site_of(label));
    }
    let output = expect_failure("checked::nested_with_arguments::leak");
    assert_waited_at_least(&output, 300, "the nested module's grace_ms wins");
    assert_reports(&output, 1, &site_of("nested_args"));
}

#[test]
fn rstest_cases_in_a_module_are_checked() {
    let output = expect_failure("with_rstest::leak::case_1");
    assert_waited_at_least(
        &output,
        120,
        "the module's grace_ms applies to rstest's cases",
    );
    assert_reports(&output, 1, &site_of("rstest"));
}

#[test]
fn non_test_functions_are_left_alone() {
    // Checked, the helper would fail here: its task is still waiting when it returns.
    let tx = checked::start_waiter_on_shared();
    std::thread::sleep(Duration::from_millis(20));
    tx.send(()).unwrap();
}
