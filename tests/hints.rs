//! The report's hints follow the evidence, end to end: each `#[ignore]`d target leaks in one
//! shape, and a runner test runs it in a child process and reads what the report tells the user.
//! Some evidence exists only in some builds (a task's site under `tokio_unstable`, its async
//! backtrace with the `taskdump` feature as well): those runners check what each build says.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, run_tests, site};

const SOURCE: &str = include_str!("hints.rs");

fn site_of(label: &str) -> String {
    site("tests/hints.rs", SOURCE, label)
}

/// Whether this build takes task dumps (the report then names each task's innermost await).
const DUMPS: bool = cfg!(all(
    tokio_unstable,
    feature = "taskdump",
    target_os = "linux",
    any(
        target_arch = "aarch64",
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "s390x"
    )
));

/// The hint lines of a report.
fn hints(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("hint: "))
        .collect()
}

// --- Tickers: told about their loop, never about a message ---------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_ticker_is_told_about_its_loop"]
async fn leak_fast_ticker() {
    // site(fast_ticker): leak_check::spawn
    leak_check::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
        }
    });
}

#[test]
fn a_ticker_is_told_about_its_loop() {
    let output = expect_failure("leak_fast_ticker");
    assert_reports(&output, 1, &site_of("fast_ticker"));
    let hint = hints(&output)[0];
    if DUMPS {
        assert!(
            output.contains("innermost await: an interval's `tick` at tests/hints.rs:"),
            "{output}"
        );
        assert!(
            hint.starts_with("a loop on an interval never ends by itself"),
            "{output}"
        );
    } else {
        // Polled every 10 ms or so during the grace period: a ticker, by its pace.
        assert!(hint.starts_with("polled about every "), "{output}");
        assert!(
            hint.contains("a timer loop (a ticker, a retry loop) that never ends"),
            "{output}"
        );
    }
    assert!(!output.contains("message"), "{output}");
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_slow_ticker_is_not_told_about_a_message"]
async fn leak_slow_ticker() {
    // site(slow_ticker): leak_check::spawn
    leak_check::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
        }
    });
}

#[test]
fn a_slow_ticker_is_not_told_about_a_message() {
    // Its period is longer than the grace period: its polls say nothing about a loop.
    let output = expect_failure("leak_slow_ticker");
    assert_reports(&output, 1, &site_of("slow_ticker"));
    let hint = hints(&output)[0];
    if DUMPS {
        assert!(
            hint.starts_with("a loop on an interval never ends by itself"),
            "{output}"
        );
        assert!(!output.contains("message"), "{output}");
    } else {
        // What its polls show (the immediate first tick, then a wait) is no proof of a timer:
        // a timer is named among the possibilities, never a message alone.
        assert!(!hint.contains("waits for a message"), "{output}");
        assert!(
            hint.contains("an interval") || hint.contains("a timer"),
            "{output}"
        );
    }
}

// --- A task of a dependency: the allow_sites entry to paste, which really matches ----------

mod dependency {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/registry/src/index.crates.io-0000000000000000/fake-dep-1.0.0/src/spawn.rs"
    ));
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_dependency_is_told_its_allow_entry"]
async fn leak_in_dependency() {
    dependency::start_pool_worker();
}

#[test]
fn a_dependency_is_told_its_allow_entry() {
    let output = expect_failure("leak_in_dependency");
    let paste = "allow it: #[leak_check(allow_sites = [\"*/fake-dep-1.0.0/*\"])] on the test, or \
                 LEAK_CHECK_ALLOW_SITES='*/fake-dep-1.0.0/*' for the run";
    let hint = hints(&output)
        .into_iter()
        .find(|hint| hint.starts_with("spawned inside a dependency (fake-dep-1.0.0)"))
        .unwrap_or_else(|| panic!("no dependency hint:\n{output}"));
    assert!(hint.ends_with(paste), "{output}");
    // Pasted as told, it allows the task: the test passes.
    let allowed = run_tests(
        &["--ignored", "--exact", "leak_in_dependency"],
        &[("LEAK_CHECK_ALLOW_SITES", "*/fake-dep-1.0.0/*")],
    );
    assert!(allowed.passed, "{}", allowed.output);
}

#[leak_check(allow_sites = ["*/fake-dep-1.0.0/*"])]
#[tokio::test]
async fn a_dependency_allowed_as_told_passes() {
    dependency::start_pool_worker();
}

// --- A server loop the test left running -------------------------------------------------

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_server_in_the_test_is_pointed_at_spawn_background"]
async fn leak_plain_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // site(server): tokio::spawn
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
}

#[test]
fn a_server_in_the_test_is_pointed_at_spawn_background() {
    let output = expect_failure("leak_plain_server");
    let background = hints(&output)
        .iter()
        .any(|hint| hint.contains("spawn it with leak_check::spawn_background"));
    if cfg!(tokio_unstable) {
        // Its site is known: a plain task the body left running, told of spawn_background,
        // not of leak_check::spawn.
        assert_reports(&output, 1, &site_of("server"));
        assert!(background, "{output}");
        assert!(
            !output.contains("leak_check::spawn "),
            "told to use leak_check::spawn:\n{output}"
        );
    } else {
        // Only counted: told who may have spawned it and each way out, not only
        // leak_check::spawn.
        assert!(
            output.contains(
                "1 task spawned with plain `tokio::spawn` (or `Handle::spawn`, `JoinSet::spawn`), \
                 by the test or by a dependency, still alive"
            ),
            "{output}"
        );
        let hint = hints(&output)[0];
        assert!(
            hint.contains("spawn your own with leak_check::spawn"),
            "{output}"
        );
        assert!(hint.contains("--cfg tokio_unstable"), "{output}");
        assert!(hint.contains("allow_untracked = true"), "{output}");
    }
}

// --- What a task dump shows (taskdump builds) ----------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_task_dump_names_the_innermost_await"]
async fn leak_waiting_on_notify() {
    let notify = Arc::new(tokio::sync::Notify::new());
    let waits = notify.clone();
    // site(notify): leak_check::spawn
    leak_check::spawn(async move { waits.notified().await });
    std::mem::forget(notify);
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_task_dump_names_the_innermost_await"]
async fn leak_waiting_on_a_task() {
    // site(joiner): leak_check::spawn
    leak_check::spawn(async {
        let never = leak_check::spawn(std::future::pending::<()>());
        let _ = never.await;
    });
}

#[test]
fn a_task_dump_names_the_innermost_await() {
    let notify = expect_failure("leak_waiting_on_notify");
    assert_reports(&notify, 1, &site_of("notify"));
    let joiner = expect_failure("leak_waiting_on_a_task");
    assert_reports(&joiner, 1, &site_of("joiner"));
    if DUMPS {
        assert!(
            notify.contains("innermost await: `Notify::notified` at tests/hints.rs:"),
            "{notify}"
        );
        assert!(
            hints(&notify)[0].starts_with("it waits for a notification: call notify_one"),
            "{notify}"
        );
        assert!(
            joiner.contains("innermost await: another task's `JoinHandle` at tests/hints.rs:"),
            "{joiner}"
        );
        assert!(
            hints(&joiner)[0].starts_with("it awaits another task, which is itself leaking"),
            "{joiner}"
        );
        // leak-check's own wrapper is left out of the backtrace.
        assert!(!notify.contains("leak_check::"), "{notify}");
    } else {
        assert!(!notify.contains("innermost await"), "{notify}");
    }
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_dump_without_a_backtrace_says_so"]
async fn leak_waiting_on_accept() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // site(accept): leak_check::spawn
    leak_check::spawn(async move {
        let _ = listener.accept().await;
    });
}

#[test]
fn a_dump_without_a_backtrace_says_so() {
    // tokio records no backtrace for a task awaiting accept.
    let output = expect_failure("leak_waiting_on_accept");
    assert_reports(&output, 1, &site_of("accept"));
    let said = output.contains(
        "no async backtrace: tokio recorded none for this task (it happens for some leaf \
         futures, e.g. accept or pending())",
    );
    assert_eq!(said, DUMPS, "{output}");
    assert!(!output.contains("where it is stuck"), "{output}");
}

// --- A task that re-spawns itself --------------------------------------------------------

fn respawn() {
    // site(respawn): leak_check::spawn
    leak_check::spawn(async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        respawn();
    });
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_task_that_re_spawns_itself_is_said_to"]
async fn leak_respawning() {
    respawn();
}

#[test]
fn a_task_that_re_spawns_itself_is_said_to() {
    let output = expect_failure("leak_respawning");
    assert_reports(&output, 1, &site_of("respawn"));
    assert!(
        output.contains("it re-spawns itself: each generation spawns the next at this site"),
        "{output}"
    );
    assert!(hints(&output)[0].starts_with("break the cycle"), "{output}");
    assert!(!output.contains("nothing woke it"), "{output}");
    assert!(!output.contains("stranded"), "{output}");
}

// --- The footer: what became of each straggler ----------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by the_footer_says_what_was_stopped"]
async fn leak_task_and_closure() {
    leak_check::spawn(std::future::pending::<()>());
    let stop = Arc::new(AtomicBool::new(false));
    leak_check::spawn_blocking(move || {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

#[test]
fn the_footer_says_what_was_stopped() {
    let output = expect_failure("leak_task_and_closure");
    assert!(
        output.contains(
            "leak-check aborted 1 task; 1 cannot be stopped: its spawn_blocking closure has not \
             returned (a running closure cannot be aborted)."
        ),
        "{output}"
    );
}

// --- A task spawned while the stragglers are stopped ---------------------------------------

/// Spawns a task that never ends when dropped: from a straggler's future, as leak-check stops it.
struct SpawnsWhenDropped;

impl Drop for SpawnsWhenDropped {
    fn drop(&mut self) {
        // site(from_drop): leak_check::spawn
        leak_check::spawn(std::future::pending::<()>());
    }
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_task_spawned_while_stopping_is_labelled"]
async fn leak_spawning_when_stopped() {
    // site(dropped): leak_check::spawn
    leak_check::spawn(async {
        let _spawns = SpawnsWhenDropped;
        std::future::pending::<()>().await;
    });
}

#[test]
fn a_task_spawned_while_stopping_is_labelled() {
    let output = expect_failure("leak_spawning_when_stopped");
    assert_reports(&output, 1, &site_of("dropped"));
    assert_reports(&output, 1, &site_of("from_drop"));
    let late = format!(
        "  1 task spawned at {}\n      spawned by: test body -> task spawned at {}\n      \
         spawned while the stragglers were being stopped (from a Drop, or by a task still running)\n",
        site_of("from_drop"),
        site_of("dropped")
    );
    assert!(output.contains(&late), "expected `{late}`:\n{output}");
    // Only the task spawned late is labelled so.
    assert_eq!(
        output
            .matches("spawned while the stragglers were being stopped")
            .count(),
        1,
        "{output}"
    );
}

// --- Plain tasks beside background work (stable tokio cannot tell whose they are) ----------

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by plain_tasks_beside_background_work_are_said_to_be_ambiguous"]
async fn leak_plain_beside_background() {
    leak_check::spawn_background(std::future::pending::<()>());
    // site(beside_background): tokio::spawn
    tokio::spawn(std::future::pending::<()>());
}

#[test]
fn plain_tasks_beside_background_work_are_said_to_be_ambiguous() {
    let output = expect_failure("leak_plain_beside_background");
    let ambiguous = "the test's background work (leak_check::spawn_background) may have spawned \
                     it: without --cfg tokio_unstable, plain tasks it spawns cannot be told apart \
                     from the test's own, so it may not be a leak of the test";
    if cfg!(tokio_unstable) {
        // tokio's hooks say whose it is: the body's, reported at its site.
        assert_reports(&output, 1, &site_of("beside_background"));
        assert!(!output.contains(ambiguous), "{output}");
    } else {
        assert!(output.contains(ambiguous), "{output}");
        assert!(
            hints(&output)[0].starts_with("spawn it with leak_check::spawn"),
            "{output}"
        );
    }
}

// --- A plain spawn_blocking closure (counted under tokio_unstable) ------------------------

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_plain_blocking_closure_is_counted_without_a_site"]
async fn leak_plain_blocking_closure() {
    let stop = Arc::new(AtomicBool::new(false));
    tokio::task::spawn_blocking(move || {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

#[test]
fn a_plain_blocking_closure_is_counted_without_a_site() {
    let run = run_tests(
        &["--ignored", "--exact", "leak_plain_blocking_closure"],
        &[],
    );
    let counted = "1 blocking closure started with plain `spawn_blocking` still runs after the \
                   body (counted from tokio's blocking threads, so its spawn site is unknown)";
    if cfg!(tokio_unstable) {
        // tokio's blocking-thread metrics count it; its site is not known to anyone.
        assert!(!run.passed, "{}", run.output);
        assert!(run.output.contains(counted), "{}", run.output);
        assert!(
            run.output.contains(
                "hint: spawn it with leak_check::spawn_blocking to see its site; make the closure \
                 return"
            ),
            "{}",
            run.output
        );
        assert!(
            run.output.contains(
                "leak-check aborted none of them; 1 cannot be stopped: its spawn_blocking closure \
                 has not returned"
            ),
            "{}",
            run.output
        );
    } else {
        // Stable tokio has no count of busy blocking threads: it is not seen.
        assert!(!run.output.contains(counted), "{}", run.output);
    }
}
