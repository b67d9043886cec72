//! The controls a real suite needs, each proven on a real run of this test binary: allow-lists,
//! background work, the hang guard, run-wide modes, CI annotations and the JSON report.

mod support;

use std::time::Duration;

use leak_check::leak_check;
use support::ticker::{start_ticker, SaysWhenDropped};
use support::{assert_reports, expect_failure, run_tests, site};

const SOURCE: &str = include_str!("controls.rs");

fn site_of(label: &str) -> String {
    site("tests/controls.rs", SOURCE, label)
}

fn passes(name: &str, envs: &[(&str, &str)]) -> String {
    let run = run_tests(&["--ignored", "--exact", name], envs);
    assert!(run.passed, "`{name}` should have passed:\n{}", run.output);
    run.output
}

// --- Allow-lists ---------------------------------------------------------------------------

#[leak_check(allow_sites = ["tests/support/ticker.rs"], allow_names = ["metrics-*"])]
#[ignore = "run by allowed_stragglers_pass_and_are_stopped"]
async fn allowed_stragglers() {
    start_ticker();
    leak_check::Builder::new()
        .name("metrics-flusher")
        .spawn(async {
            let _guard = SaysWhenDropped("flusher dropped");
            std::future::pending::<()>().await;
        });
    // Let them start, so that stopping them has something to drop.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[test]
fn allowed_stragglers_pass_and_are_stopped() {
    let output = passes("allowed_stragglers", &[]);
    assert!(output.contains("ticker dropped"), "{output}");
    assert!(output.contains("flusher dropped"), "{output}");
}

#[leak_check]
#[ignore = "run by allow_lists_from_the_environment"]
async fn leaks_a_ticker() {
    start_ticker();
}

#[test]
fn allow_lists_from_the_environment() {
    expect_failure("leaks_a_ticker");
    passes(
        "leaks_a_ticker",
        &[("LEAK_CHECK_ALLOW_SITES", "src/x.rs, */ticker.rs")],
    );
}

#[leak_check(allow_names = ["metrics-*"])]
#[ignore = "leaks on purpose; run by allow_lists_leave_other_leaks_alone"]
async fn leak_beside_an_allowed_task() {
    leak_check::Builder::new()
        .name("metrics-flusher")
        .spawn(std::future::pending::<()>());
    // site(not_allowed): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
}

#[test]
fn allow_lists_leave_other_leaks_alone() {
    let output = expect_failure("leak_beside_an_allowed_task");
    assert!(output.contains("leaked 1 task "), "{output}");
    assert_reports(&output, 1, &site_of("not_allowed"));
    assert!(
        output.contains("1 straggler left out by an allow-list"),
        "{output}"
    );
}

// --- Background work -----------------------------------------------------------------------

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by background_work_is_never_reported_and_always_stopped"]
async fn with_a_background_server() {
    let (requests, mut incoming) =
        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<u32>>(8);
    leak_check::spawn_background(async move {
        let _guard = SaysWhenDropped("server dropped");
        while let Some(reply) = incoming.recv().await {
            // The server's own per-request tasks are background work too.
            leak_check::spawn(async move { reply.send(7).ok() });
        }
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    requests.send(tx).await.unwrap();
    assert_eq!(rx.await.unwrap(), 7);
    std::mem::forget(requests); // the server would serve forever
}

#[test]
fn background_work_is_never_reported_and_always_stopped() {
    let output = passes("with_a_background_server", &[]);
    assert!(!output.contains("leak-check: test"), "{output}");
    assert!(output.contains("server dropped"), "{output}");
}

// --- The hang guard ------------------------------------------------------------------------

#[leak_check(timeout_ms = 300)]
#[ignore = "hangs on purpose; run by a_hanging_body_fails_with_its_tasks"]
async fn hangs() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // site(hang): leak_check::spawn
    leak_check::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let _ = tx.send(());
    });
    rx.await.unwrap();
}

#[leak_check]
#[ignore = "hangs on purpose; run by a_hanging_body_fails_with_its_tasks"]
async fn hangs_without_its_own_timeout() {
    std::future::pending::<()>().await;
}

#[leak_check(timeout_ms = 200)]
#[tokio::test]
#[should_panic]
#[ignore = "hangs on purpose; run by a_hanging_should_panic_test_fails"]
async fn hangs_but_expects_a_panic() {
    std::future::pending::<()>().await;
}

#[test]
fn a_hanging_should_panic_test_fails() {
    // A timeout must not count as the panic the test expects.
    let output = expect_failure("hangs_but_expects_a_panic");
    assert!(output.contains("did not panic as expected"), "{output}");
    assert!(output.contains("did not finish within 200 ms"), "{output}");
}

#[test]
fn a_hanging_body_fails_with_its_tasks() {
    let output = expect_failure("hangs");
    assert!(
        output.contains("test `hangs` did not finish within 300 ms"),
        "{output}"
    );
    assert_reports(&output, 1, &site_of("hang"));
    let run = run_tests(
        &["--ignored", "--exact", "hangs_without_its_own_timeout"],
        &[("LEAK_CHECK_TIMEOUT_MS", "200")],
    );
    assert!(!run.passed, "{}", run.output);
    assert!(
        run.output.contains("did not finish within 200 ms"),
        "{}",
        run.output
    );
    let annotated = run_tests(
        &["--ignored", "--exact", "hangs"],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert!(
        annotated
            .output
            .contains("when the timeout stopped `hangs`"),
        "{}",
        annotated.output
    );
}

// --- Run-wide modes ------------------------------------------------------------------------

#[leak_check]
#[ignore = "leaks on purpose; run by the mode tests"]
async fn leak_for_modes() {
    // site(modes): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
}

#[test]
fn warn_mode_prints_the_report_and_passes() {
    let output = passes("leak_for_modes", &[("LEAK_CHECK", "warn")]);
    assert_reports(&output, 1, &site_of("modes"));
    assert!(output.contains("LEAK_CHECK=warn"), "{output}");
    assert!(!output.contains('\x1b'), "no colour into a pipe:\n{output}");
}

#[test]
fn off_mode_does_not_check() {
    let output = passes("leak_for_modes", &[("LEAK_CHECK", "off")]);
    assert!(!output.contains("leak-check: test"), "{output}");
}

// --- GitHub Actions annotations ------------------------------------------------------------

#[test]
fn github_annotations_point_at_the_spawn_line() {
    let site = site_of("modes");
    let mut parts = site.rsplitn(3, ':');
    let (col, line, file) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let workspace = env!("CARGO_MANIFEST_DIR");
    let run = run_tests(
        &["--ignored", "--exact", "leak_for_modes"],
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_WORKSPACE", workspace)],
    );
    assert!(!run.passed);
    let expected = format!(
        "::error file={file},line={line},col={col},title=leak-check%3A leak_for_modes leaked 1 task::1 task spawned here still alive after the body of `leak_for_modes` returned: 1 stranded"
    );
    assert!(
        run.output.lines().any(|l| l.trim() == expected),
        "expected `{expected}`:\n{}",
        run.output
    );

    // With one test thread libtest writes `test name ... ` before the test runs: the command
    // must still start a line of its own.
    let one_thread = run_tests(
        &[
            "--ignored",
            "--exact",
            "leak_for_modes",
            "--test-threads",
            "1",
        ],
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_WORKSPACE", workspace)],
    );
    assert!(
        one_thread.output.lines().any(|l| l.trim() == expected),
        "expected `{expected}` on a line of its own:\n{}",
        one_thread.output
    );

    let elsewhere = run_tests(&["--ignored", "--exact", "leak_for_modes"], &[]);
    assert!(
        !elsewhere.output.contains("::error"),
        "{}",
        elsewhere.output
    );
}

// --- The JSON report -----------------------------------------------------------------------

#[leak_check]
#[ignore = "leaks on purpose; run by json_reports_are_one_line_per_leaking_test"]
async fn json_leak_a() {
    let named = leak_check::Builder::new().name("worker");
    for _ in 0..2 {
        // site(json_a): spawn(
        named.clone().spawn(std::future::pending::<()>());
    }
}

#[leak_check]
#[ignore = "leaks on purpose; run by json_reports_are_one_line_per_leaking_test"]
async fn json_leak_b() {
    leak_check::spawn(async {
        leak_check::spawn(std::future::pending::<()>());
    });
}

#[test]
fn json_reports_are_one_line_per_leaking_test() {
    let dir = std::env::temp_dir().join(format!("leak-check-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.jsonl");
    let _ = std::fs::remove_file(&file);
    let file_text = file.to_str().unwrap().to_owned();
    // Four processes at once, each with both leaking tests running in parallel.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                run_tests(
                    &["--ignored", "json_leak_"],
                    &[("LEAK_CHECK_REPORT", &file_text)],
                )
            });
        }
    });
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert_eq!(lines.len(), 8, "{text}");
    let a: Vec<_> = lines
        .iter()
        .filter(|v| v["test"] == "controls::json_leak_a")
        .collect();
    assert_eq!(a.len(), 4);
    let site = &a[0]["sites"][0];
    assert_eq!(site["site"], site_of("json_a"));
    assert_eq!(site["count"], 2);
    assert_eq!(site["names"], serde_json::json!(["worker"]));
    assert_eq!(site["states"]["stranded"], 2);
    assert_eq!(a[0]["outcome"], "leaked");
    assert_eq!(a[0]["mode"], "fail");
    let b = lines
        .iter()
        .find(|v| v["test"] == "controls::json_leak_b")
        .unwrap();
    assert_eq!(b["tasks"], 1);
    assert_eq!(b["sites"][0]["chains"][0].as_array().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

// --- Tasks not spawned through leak-check, allowed --------------------------------------------

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by untracked_tasks_can_be_allowed"]
async fn leaks_a_dependency_style_task() {
    // A dependency's own background task, which the test cannot spawn differently.
    tokio::spawn(std::future::pending::<()>());
}

#[leak_check(flavor = "multi_thread", worker_threads = 2, allow_untracked = true)]
#[ignore = "leaks on purpose; run by untracked_tasks_can_be_allowed"]
async fn allows_untracked_but_leaks_a_tracked_task() {
    tokio::spawn(std::future::pending::<()>());
    // site(tracked_despite_allow): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
}

#[test]
fn untracked_tasks_can_be_allowed() {
    expect_failure("leaks_a_dependency_style_task");
    passes(
        "leaks_a_dependency_style_task",
        &[("LEAK_CHECK_ALLOW_UNTRACKED", "1")],
    );
    // What leak-check spawned is still checked.
    let output = expect_failure("allows_untracked_but_leaks_a_tracked_task");
    assert!(output.contains("leaked 1 task "), "{output}");
    assert_reports(&output, 1, &site_of("tracked_despite_allow"));
}
