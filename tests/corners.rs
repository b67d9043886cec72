//! The corners, each with a defined outcome (the README's "Guarantees and limits" lists them).

mod support;

use std::sync::Arc;
use std::time::Duration;

use leak_check::leak_check;
use once_cell::sync::Lazy;
use support::{assert_reports, expect_failure, run_tests, site, SHARED};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

const SOURCE: &str = include_str!("corners.rs");

fn site_of(label: &str) -> String {
    site("tests/corners.rs", SOURCE, label)
}

// A task that finishes exactly as the check starts: clean.
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
async fn task_finishing_as_the_check_starts_is_clean() {
    let go = Arc::new(Notify::new());
    let waiting = go.clone();
    leak_check::spawn(async move { waiting.notified().await });
    go.notify_one(); // the body's last act releases it
}

// A straggler that spawns more tasks during the check: all of them are reported, with the chain.
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by spawns_during_the_check_are_reported"]
async fn leak_spawner_during_check() {
    // site(spawner): leak_check::spawn
    leak_check::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            // site(spawned): leak_check::spawn
            leak_check::spawn(std::future::pending::<()>());
        }
    });
}

#[test]
fn spawns_during_the_check_are_reported() {
    let output = expect_failure("leak_spawner_during_check");
    assert_reports(&output, 1, &site_of("spawner"));
    let children = format!("spawned at {}", site_of("spawned"));
    assert!(
        output.contains(&children),
        "expected `{children}`:\n{output}"
    );
    let chain = format!("test body -> task spawned at {}", site_of("spawner"));
    assert!(output.contains(&chain), "expected `{chain}`:\n{output}");
}

// A task the test aborts: clean, even though it was pending forever.
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_task_is_clean() {
    let task = leak_check::spawn(std::future::pending::<()>());
    task.abort();
}

// A task that panics has ended: clean, and it does not disturb the bookkeeping of the others.
#[leak_check]
#[tokio::test]
async fn panicking_task_is_clean() {
    let task = leak_check::spawn(async { panic!("a task's own panic") });
    assert!(task.await.unwrap_err().is_panic());
    let fine = leak_check::spawn(async { 3 });
    assert_eq!(fine.await.unwrap(), 3);
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_panicking_task_does_not_hide_a_leak"]
async fn leak_beside_a_panicking_task() {
    let _ = leak_check::spawn(async { panic!("a task's own panic") }).await;
    // site(beside_panic): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
}

#[test]
fn a_panicking_task_does_not_hide_a_leak() {
    let output = expect_failure("leak_beside_a_panicking_task");
    assert!(output.contains("leaked 1 task "), "{output}");
    assert_reports(&output, 1, &site_of("beside_panic"));
}

// --- A busy machine does not turn a finishing task into a leak ---------------------------------

// A poll that began during the grace period and outlasts it is waited for: a thread the machine
// took away in the middle of a poll looks the same to the check.
#[leak_check(flavor = "multi_thread", worker_threads = 2, grace_ms = 50)]
async fn a_poll_that_began_during_the_grace_period_is_waited_for() {
    leak_check::spawn(async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        std::thread::sleep(Duration::from_millis(150));
    });
}

/// A task's output whose `Drop` takes a while: tokio drops it (the task's JoinHandle is gone)
/// after the task has ended for leak-check and before it leaves tokio's count of the runtime's
/// tasks, as a thread taken off its core there would.
struct SlowDrop;

impl Drop for SlowDrop {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(40));
    }
}

// It ends 30 ms into the grace period of 50 (woken by a thread, not a timer of the runtime), and
// tokio counts it until 70 ms: the plain count read within 50 ms of its end is not believed.
#[leak_check(flavor = "multi_thread", worker_threads = 2, grace_ms = 50)]
async fn a_task_that_ended_is_no_plain_task_while_tokio_still_counts_it() {
    let (wake, woken) = tokio::sync::oneshot::channel::<()>();
    leak_check::spawn(async move {
        let _ = woken.await;
        SlowDrop
    });
    // Polled once before the body ends, so it has its grace period from the body's end.
    tokio::task::yield_now().await;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        let _ = wake.send(());
    });
}

// Tasks that all wait for the one thread, and keep ending, are waited for past the hard deadline
// (a second for this grace period): 300 first polls of 5 ms each take 1.5 s.
#[leak_check(grace_ms = 10)]
#[tokio::test]
async fn tasks_that_keep_ending_are_waited_for_past_the_hard_deadline() {
    for _ in 0..300 {
        leak_check::spawn(async { std::thread::sleep(Duration::from_millis(5)) });
    }
}

#[leak_check(grace_ms = 10)]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_leak_beside_tasks_that_keep_ending_is_reported_alone"]
async fn leak_beside_tasks_that_keep_ending() {
    // site(beside_ending): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    for _ in 0..300 {
        leak_check::spawn(async { std::thread::sleep(Duration::from_millis(5)) });
    }
}

#[test]
fn a_leak_beside_tasks_that_keep_ending_is_reported_alone() {
    let output = expect_failure("leak_beside_tasks_that_keep_ending");
    assert!(output.contains("leaked 1 task "), "{output}");
    assert_reports(&output, 1, &site_of("beside_ending"));
}

// A worker that gets one message during the grace period is waiting, not looping: its first
// poll, during the grace period too, is it starting.
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by one_message_during_the_grace_period_is_no_loop"]
async fn leak_worker_woken_once_during_the_grace_period() {
    let (sender, mut inbox) = tokio::sync::mpsc::unbounded_channel::<u32>();
    // site(woken_once): leak_check::spawn
    leak_check::spawn(async move { while inbox.recv().await.is_some() {} });
    let late = sender.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let _ = late.send(1);
    });
    std::mem::forget(sender);
}

#[test]
fn one_message_during_the_grace_period_is_no_loop() {
    let output = expect_failure("leak_worker_woken_once_during_the_grace_period");
    assert_reports(&output, 1, &site_of("woken_once"));
    assert!(output.contains("waiting:"), "{output}");
    assert!(!output.contains("busy"), "{output}");
}

// A task whose runtime nothing drives any more: more grace would not help, and cleanup cannot
// have it dropped, so the report says so.
static NEVER_DRIVEN: Lazy<Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
});

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by a_task_nothing_runs_is_named_so"]
async fn leak_on_a_runtime_nothing_drives() {
    // site(never_driven): leak_check::spawn_on
    leak_check::spawn_on(async {}, NEVER_DRIVEN.handle());
}

#[test]
fn a_task_nothing_runs_is_named_so() {
    let output = expect_failure("leak_on_a_runtime_nothing_drives");
    assert_reports(&output, 1, &site_of("never_driven"));
    assert!(
        output.contains("nothing polled it after the body ended"),
        "{output}"
    );
    assert!(!output.contains("grace_ms = "), "{output}");
    assert!(
        output.contains(
            "leak-check aborted 1 task, but nothing runs it any more, so it is not dropped"
        ),
        "{output}"
    );
}

// A task inside `block_in_place` is one straggler: the blocking thread that takes its worker's
// place is no plain `spawn_blocking` closure (tokio_unstable counts busy blocking threads).
#[leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_task_in_block_in_place_is_one_straggler"]
async fn leak_inside_block_in_place() {
    let (started, in_place) = tokio::sync::oneshot::channel();
    // site(in_place): leak_check::spawn
    leak_check::spawn(async move {
        let _ = started.send(());
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(400)));
    });
    // Its poll began before the body ended: it is stuck, not merely descheduled.
    in_place.await.unwrap();
}

#[test]
fn a_task_in_block_in_place_is_one_straggler() {
    let output = expect_failure("leak_inside_block_in_place");
    assert!(output.contains("leaked 1 task "), "{output}");
    assert_reports(&output, 1, &site_of("in_place"));
    assert!(!output.contains("blocking closure"), "{output}");
}

// A straggler whose `Drop` outlasts cleanup's wait is being dropped: aborted, not "not run".
struct SlowToDrop;

impl Drop for SlowToDrop {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(1200));
    }
}

#[leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by a_straggler_slow_to_drop_was_aborted"]
async fn leak_slow_to_drop() {
    let guard = SlowToDrop;
    // site(slow_to_drop): leak_check::spawn
    leak_check::spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
}

#[test]
fn a_straggler_slow_to_drop_was_aborted() {
    let output = expect_failure("leak_slow_to_drop");
    assert_reports(&output, 1, &site_of("slow_to_drop"));
    assert!(output.contains("leak-check aborted 1 task."), "{output}");
}

// A body that panics and leaks: its panic message once, then the report, and the test fails with
// the body's own panic.
#[leak_check]
#[tokio::test]
#[ignore = "panics and leaks on purpose; run by a_panicking_body_that_leaks_says_each_once"]
async fn panics_and_leaks() {
    // site(panics_and_leaks): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    panic!("the body's own panic");
}

#[test]
fn a_panicking_body_that_leaks_says_each_once() {
    let output = expect_failure("panics_and_leaks");
    assert_eq!(
        output.matches("the body's own panic").count(),
        1,
        "the panic message once:\n{output}"
    );
    assert!(
        output.contains("leaked 1 task (still alive ")
            && output.contains("after the body panicked)"),
        "{output}"
    );
    assert_reports(&output, 1, &site_of("panics_and_leaks"));
    let panic_at = output.find("the body's own panic").unwrap();
    let report_at = output.find("leak-check: test").unwrap();
    assert!(
        panic_at < report_at,
        "the panic first, then the report:\n{output}"
    );
}

// A runtime dropped inside the test cancels its tasks: nothing is left to leak.
#[leak_check]
#[test]
fn runtime_dropped_inside_the_test_is_clean() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    leak_check::spawn_on(std::future::pending::<()>(), runtime.handle());
    drop(runtime);
}

// Tasks spawned by a Drop impl belong to the task (or body) being dropped.
struct SpawnsOnDrop {
    forever: bool,
}

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let forever = self.forever;
        // site(on_drop): leak_check::spawn
        leak_check::spawn(async move {
            if forever {
                std::future::pending::<()>().await;
            }
        });
    }
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by spawns_from_drop_belong_to_the_test"]
async fn leak_spawned_from_drop() {
    // site(dropped_task): leak_check::spawn
    let task = leak_check::spawn(async {
        let _guard = SpawnsOnDrop { forever: true };
        std::future::pending::<()>().await;
    });
    tokio::task::yield_now().await;
    task.abort();
}

#[test]
fn spawns_from_drop_belong_to_the_test() {
    let output = expect_failure("leak_spawned_from_drop");
    assert_reports(&output, 1, &site_of("on_drop"));
    let chain = format!("test body -> task spawned at {}", site_of("dropped_task"));
    assert!(output.contains(&chain), "expected `{chain}`:\n{output}");
}

#[leak_check]
#[tokio::test]
async fn spawns_from_drop_that_finish_are_clean() {
    let task = leak_check::spawn(async {
        let _guard = SpawnsOnDrop { forever: false };
        std::future::pending::<()>().await;
    });
    tokio::task::yield_now().await;
    task.abort();
    let _body_guard = SpawnsOnDrop { forever: false };
}

// A task spawned from another thread through a Handle has no owner there: in a runtime
// leak-check builds it is still counted, as a plain task.
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by spawns_from_other_threads_are_counted"]
async fn leak_from_another_thread() {
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        // site(other_thread): leak_check::spawn_on
        leak_check::spawn_on(std::future::pending::<()>(), &handle);
    })
    .join()
    .unwrap();
}

#[test]
fn spawns_from_other_threads_are_counted() {
    let output = expect_failure("leak_from_another_thread");
    if cfg!(tokio_unstable) {
        // With tokio's task hooks, the runtime's own tasks are the test's, with their sites.
        assert_reports(&output, 1, &site_of("other_thread"));
    } else {
        assert!(
            output.contains("1 task spawned with plain `tokio::spawn`"),
            "{output}"
        );
    }
}

// Paused time: the grace period is real time, and a leaked loop is still caught.
#[leak_check(start_paused = true)]
#[ignore = "leaks on purpose; run by paused_time_leaks_are_caught"]
async fn leak_with_paused_time() {
    // site(paused): leak_check::spawn
    leak_check::spawn(async {
        let mut interval = tokio::time::interval(Duration::from_secs(60));
        loop {
            interval.tick().await;
        }
    });
}

#[test]
fn paused_time_leaks_are_caught() {
    let output = expect_failure("leak_with_paused_time");
    assert_reports(&output, 1, &site_of("paused"));
    // Waited in real time: the grace period, not an instant jump of the paused clock.
    let waited: u64 = output
        .split("(still alive ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `still alive N ms`:\n{output}"));
    assert!((100..200).contains(&waited), "{output}");
}

// A body that returns early with `?` is still checked; its error stays visible.
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by early_returns_are_checked"]
async fn leak_then_fail_with_question_mark() -> Result<(), std::num::ParseIntError> {
    // site(early): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    let _: u32 = "not a number".parse()?;
    Ok(())
}

#[test]
fn early_returns_are_checked() {
    let output = expect_failure("leak_then_fail_with_question_mark");
    assert_reports(&output, 1, &site_of("early"));
    // The error the test returned is not hidden by the report.
    assert!(
        output.contains("the test returned an error: ParseIntError"),
        "{output}"
    );
}

// A checked helper inside a checked test is a check of its own.
#[leak_check]
fn helper_that_leaks() {
    // site(helper): leak_check::spawn_on
    leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
}

#[leak_check]
fn helper_that_joins() {
    let task = leak_check::spawn_on(async { 1 }, SHARED.handle());
    SHARED.block_on(task).unwrap();
}

#[leak_check]
#[test]
fn nested_clean_helper_passes() {
    helper_that_joins();
    helper_that_joins();
}

#[leak_check]
#[test]
#[ignore = "leaks on purpose; run by nested_helpers_report_their_own_leaks"]
fn leak_in_nested_helper() {
    helper_that_joins();
    helper_that_leaks();
}

/// The report names the test that called the helper (libtest's name for the thread), and the
/// helper; so does the JSON report, by the test's full path.
#[test]
fn nested_helpers_report_their_own_leaks() {
    let output = expect_failure("leak_in_nested_helper");
    assert!(
        output.contains(
            "checked helper `helper_that_leaks`, called by `leak_in_nested_helper`, leaked 1 task"
        ),
        "{output}"
    );
    assert_reports(&output, 1, &site_of("helper"));
    let file = std::env::temp_dir().join(format!("leak-check-helper-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let run = run_tests(
        &["--ignored", "--exact", "leak_in_nested_helper"],
        &[("LEAK_CHECK_REPORT", file.to_str().unwrap())],
    );
    assert!(!run.passed);
    let json = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        json.starts_with(r#"{"test":"corners::leak_in_nested_helper","#),
        "{json}"
    );
}

// Two tests leaking at once: each report is whole, and under its own test.
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by simultaneous_leaks_are_reported_apart"]
async fn twin_leak_a() {
    for _ in 0..3 {
        // site(twin_a): leak_check::spawn
        leak_check::spawn(std::future::pending::<()>());
    }
}

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by simultaneous_leaks_are_reported_apart"]
async fn twin_leak_b() {
    for _ in 0..2 {
        // site(twin_b): leak_check::spawn
        leak_check::spawn(std::future::pending::<()>());
    }
}

#[test]
fn simultaneous_leaks_are_reported_apart() {
    let run = support::run_captured(&["--ignored", "--test-threads", "2", "twin_leak_"], &[]);
    assert!(run.output.contains("0 passed; 2 failed"), "{}", run.output);
    let section = |name: &str| {
        let start = run
            .output
            .find(&format!("---- {name} stdout ----"))
            .expect(name);
        let rest = &run.output[start + 5..];
        rest[..rest
            .find("---- ")
            .or_else(|| rest.find("failures:"))
            .unwrap_or(rest.len())]
            .to_owned()
    };
    let (a, b) = (section("twin_leak_a"), section("twin_leak_b"));
    assert!(a.contains("test `twin_leak_a` leaked 3 tasks"), "{a}");
    assert_reports(&a, 3, &site_of("twin_a"));
    assert!(!a.contains(&site_of("twin_b")), "{a}");
    assert!(b.contains("test `twin_leak_b` leaked 2 tasks"), "{b}");
    assert_reports(&b, 2, &site_of("twin_b"));
    assert!(!b.contains(&site_of("twin_a")), "{b}");
}

// --- Found in review: each was a false report or a wrong word before it was fixed ------------

#[leak_check]
fn clean_checked_helper() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    leak_check::spawn(async move {
        let _ = rx.await;
    });
    drop(tx);
}

// A sync checked helper called on a current-thread runtime's thread cannot wait there: it must
// not report its (finishing) task.
#[tokio::test]
async fn checked_sync_helper_on_a_current_thread_runtime_is_not_a_false_report() {
    clean_checked_helper();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_sync_helper_on_a_multi_thread_runtime_checks_and_passes() {
    clean_checked_helper();
}

// Inside a checked test, the helper's tasks belong to the test's check.
#[leak_check]
#[tokio::test]
async fn checked_sync_helper_inside_a_checked_test_joins_its_check() {
    clean_checked_helper();
}

static CURRENT_THREAD: Lazy<Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

// A task that nobody owns, run by an innocent sync test's block_on on a shared current-thread
// runtime, must not hand its spawns to that test.
#[leak_check]
#[test]
fn block_on_a_shared_current_thread_runtime_does_not_adopt_other_tasks() {
    let _unowned = std::thread::spawn(|| {
        CURRENT_THREAD.spawn(async {
            leak_check::spawn(std::future::pending::<()>());
        })
    })
    .join()
    .unwrap();
    CURRENT_THREAD.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
}

static ONE_BLOCKING_THREAD: Lazy<Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap()
});

// A blocking closure queued behind a busy blocking thread is waiting, not stuck.
#[leak_check]
#[test]
fn a_queued_blocking_closure_is_not_a_false_report() {
    let handle = ONE_BLOCKING_THREAD.handle();
    let busy = handle.spawn_blocking(|| std::thread::sleep(Duration::from_millis(300)));
    std::thread::sleep(Duration::from_millis(20));
    leak_check::spawn_blocking_on(|| 1, handle);
    ONE_BLOCKING_THREAD.block_on(busy).unwrap();
}

// A task that blocks inside a poll it began during the grace period is "stuck in poll".
#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by blocking_inside_a_poll_is_named_so"]
async fn leak_stuck_in_poll() {
    leak_check::spawn(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::thread::sleep(Duration::from_secs(2));
    });
}

#[test]
fn blocking_inside_a_poll_is_named_so() {
    let output = expect_failure("leak_stuck_in_poll");
    assert!(output.contains("stuck in poll"), "{output}");
    assert!(!output.contains("idle for"), "{output}");
}

// Tasks spawned by Drop impls while leak-check stops the stragglers are reported too.
#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by spawns_while_stopping_stragglers_are_reported"]
async fn leak_that_spawns_when_stopped() {
    leak_check::spawn(async {
        let _guard = SpawnsOnDrop { forever: true };
        std::future::pending::<()>().await;
    });
}

#[test]
fn spawns_while_stopping_stragglers_are_reported() {
    let output = expect_failure("leak_that_spawns_when_stopped");
    assert!(output.contains("leaked 2 tasks"), "{output}");
    assert_reports(&output, 1, &site_of("on_drop"));
}
