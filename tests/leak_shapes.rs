//! Each leak shape twice: an `#[ignore]`d test that leaks, which a runner test runs in a child
//! process and expects to fail with the right spawn site, and a clean twin that must pass.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, site};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

const SOURCE: &str = include_str!("leak_shapes.rs");

fn site_of(label: &str) -> String {
    site("tests/leak_shapes.rs", SOURCE, label)
}

// --- A worker on a channel that is never closed -------------------------------------------

fn start_worker(mut rx: mpsc::Receiver<u32>) -> tokio::task::JoinHandle<u32> {
    // site(channel_worker): leak_check::spawn
    leak_check::spawn(async move {
        let mut sum = 0;
        while let Some(n) = rx.recv().await {
            sum += n;
        }
        sum
    })
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by channel_worker_is_reported"]
async fn leak_channel_worker() {
    let (tx, rx) = mpsc::channel(8);
    let _worker = start_worker(rx);
    tx.send(1).await.unwrap();
    // `tx` lives on in a field nobody drops, as senders held by long-lived structs do.
    std::mem::forget(tx);
}

#[leak_check]
#[tokio::test]
async fn clean_channel_worker() {
    let (tx, rx) = mpsc::channel(8);
    let worker = start_worker(rx);
    tx.send(1).await.unwrap();
    drop(tx);
    assert_eq!(worker.await.unwrap(), 1);
}

#[test]
fn channel_worker_is_reported() {
    let output = expect_failure("leak_channel_worker");
    assert_reports(&output, 1, &site_of("channel_worker"));
    assert!(output.contains("waiting"), "{output}");
    assert!(output.contains("drop the last sender"), "{output}");
    if cfg!(all(
        tokio_unstable,
        feature = "taskdump",
        target_os = "linux"
    )) {
        // The task dump says where: in start_worker, awaiting the channel.
        assert!(output.contains("where it is stuck"), "{output}");
        assert!(output.contains("leak_shapes::start_worker at"), "{output}");
        assert!(output.contains("Receiver<T>::recv"), "{output}");
    }
}

// --- A select! loop without a cancellation branch ------------------------------------------

fn start_poller(stop: Option<CancellationToken>) -> tokio::task::JoinHandle<()> {
    // site(select_loop): leak_check::spawn
    leak_check::spawn(async move {
        let stop = stop.unwrap_or_default();
        let (_keep, mut events) = mpsc::channel::<u32>(1);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(_) = events.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by select_loop_is_reported"]
async fn leak_select_loop() {
    // Nobody keeps a token that could cancel the loop.
    start_poller(None);
}

#[leak_check]
#[tokio::test]
async fn clean_select_loop() {
    let stop = CancellationToken::new();
    let poller = start_poller(Some(stop.clone()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.cancel();
    poller.await.unwrap();
}

#[test]
fn select_loop_is_reported() {
    let output = expect_failure("leak_select_loop");
    assert_reports(&output, 1, &site_of("select_loop"));
    assert!(output.contains("busy"), "{output}");
}

// --- An interval loop ----------------------------------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by interval_loop_is_reported"]
async fn leak_interval_loop() {
    // site(interval): spawn
    leak_check::Builder::new().name("ticker").spawn(async {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
        }
    });
}

#[leak_check]
#[tokio::test]
async fn clean_interval_loop() {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let ticker = leak_check::Builder::new().name("ticker").spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = interval.tick() => {}
            }
        }
    });
    stop.cancel();
    ticker.await.unwrap();
}

#[test]
fn interval_loop_is_reported() {
    let output = expect_failure("leak_interval_loop");
    assert_reports(&output, 1, &site_of("interval"));
    assert!(
        output.contains("\"ticker\""),
        "the name is missing:\n{output}"
    );
}

// --- A child that outlives its parent ------------------------------------------------------

fn spawn_parent(child_stops: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    // site(parent): leak_check::spawn
    leak_check::spawn(async move {
        // site(child): leak_check::spawn
        leak_check::spawn(async move {
            child_stops.notified().await;
        });
    })
}

#[leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by orphaned_child_is_reported"]
async fn leak_orphaned_child() {
    spawn_parent(Arc::new(Notify::new())).await.unwrap();
}

#[leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_orphaned_child() {
    let stop = Arc::new(Notify::new());
    spawn_parent(stop.clone()).await.unwrap();
    // notify_one stores a permit, so the child stops even if it has not started waiting yet.
    stop.notify_one();
}

#[test]
fn orphaned_child_is_reported() {
    let output = expect_failure("leak_orphaned_child");
    assert_reports(&output, 1, &site_of("child"));
    let chain = format!(
        "spawned by: test body -> task spawned at {}",
        site_of("parent")
    );
    assert!(output.contains(&chain), "expected `{chain}`:\n{output}");
}

// --- The detached loser of a select! over two join handles ----------------------------------

async fn first_of_two(abort_loser: bool) {
    let fast = leak_check::spawn(async { 1 });
    // site(loser): leak_check::spawn
    let slow = leak_check::spawn(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        2
    });
    let slow_abort = slow.abort_handle();
    tokio::select! {
        _ = fast => {}
        _ = slow => {}
    }
    if abort_loser {
        slow_abort.abort();
    }
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by select_loser_is_reported"]
async fn leak_select_loser() {
    first_of_two(false).await;
}

#[leak_check]
#[tokio::test]
async fn clean_select_loser() {
    first_of_two(true).await;
}

#[test]
fn select_loser_is_reported() {
    let output = expect_failure("leak_select_loser");
    assert_reports(&output, 1, &site_of("loser"));
}

// --- A worker that holds the Arc whose Drop would stop it ----------------------------------

struct Shared {
    stop: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// A service whose worker stops when the last `Shared` goes away.
struct Service {
    _shared: Arc<Shared>,
}

impl Service {
    fn start(worker_holds_weak: bool) -> Service {
        let stop = Arc::new(Notify::new());
        let shared = Arc::new(Shared { stop: stop.clone() });
        let strong = (!worker_holds_weak).then(|| shared.clone());
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        // site(arc_cycle): leak_check::spawn
        leak_check::spawn(async move {
            let _keeps_alive = strong;
            let _observes = weak;
            stop.notified().await;
        });
        Service { _shared: shared }
    }
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by arc_held_by_worker_is_reported"]
async fn leak_arc_held_by_worker() {
    drop(Service::start(false));
}

#[leak_check]
#[tokio::test]
async fn clean_arc_held_by_worker() {
    drop(Service::start(true));
}

#[test]
fn arc_held_by_worker_is_reported() {
    let output = expect_failure("leak_arc_held_by_worker");
    assert_reports(&output, 1, &site_of("arc_cycle"));
    assert!(
        output.contains("Weak"),
        "the hint should name Weak:\n{output}"
    );
}

// --- A stuck spawn_blocking ----------------------------------------------------------------

fn start_blocking(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    // site(blocking): leak_check::spawn_blocking
    leak_check::spawn_blocking(move || {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by stuck_blocking_is_reported"]
async fn leak_stuck_blocking() {
    start_blocking(Arc::new(AtomicBool::new(false)));
}

#[leak_check]
#[tokio::test]
async fn clean_stuck_blocking() {
    let stop = Arc::new(AtomicBool::new(false));
    let task = start_blocking(stop.clone());
    stop.store(true, Ordering::Release);
    task.await.unwrap();
}

#[test]
fn stuck_blocking_is_reported() {
    // The runtime's shutdown would wait for the closure forever; the test must fail instead.
    let output = expect_failure("leak_stuck_blocking");
    assert_reports(&output, 1, &site_of("blocking"));
    assert!(output.contains("cannot be aborted"), "{output}");
}

// --- Plain tokio::spawn --------------------------------------------------------------------

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by plain_tokio_spawn_is_counted"]
async fn leak_plain_tokio_spawn() {
    for _ in 0..3 {
        // site(plain): tokio::spawn
        tokio::spawn(std::future::pending::<()>());
    }
}

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
async fn clean_plain_tokio_spawn() {
    let handles: Vec<_> = (0..50).map(|i| tokio::spawn(async move { i })).collect();
    for handle in handles {
        handle.await.unwrap();
    }
    // Told to stop as the body ends: finishes a moment later.
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move { token.cancelled().await });
    stop.cancel();
}

#[test]
fn plain_tokio_spawn_is_counted() {
    let output = expect_failure("leak_plain_tokio_spawn");
    if cfg!(tokio_unstable) {
        // tokio's task hooks give every task's site.
        assert_reports(&output, 3, &site_of("plain"));
        assert!(output.contains("3 pending"), "{output}");
    } else {
        assert!(
            output.contains("3 tasks spawned with plain `tokio::spawn`"),
            "{output}"
        );
        assert!(
            output.contains("leak_check::spawn"),
            "the hint is missing:\n{output}"
        );
        assert!(output.contains("--cfg tokio_unstable"), "{output}");
    }
}

// --- A body that panics and leaks ----------------------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by panicking_body_keeps_its_message"]
async fn leak_and_panic() {
    // site(panic): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    panic!("the body's own message");
}

#[leak_check]
#[tokio::test]
#[should_panic(expected = "the body's own message")]
async fn clean_panic_keeps_its_message() {
    let task = leak_check::spawn(async {});
    task.await.unwrap();
    panic!("the body's own message");
}

#[test]
fn panicking_body_keeps_its_message() {
    let output = expect_failure("leak_and_panic");
    let panic_at = output
        .find("the body's own message")
        .expect("the body's message");
    let report_at = output.find("leak-check: test").expect("the leak report");
    assert!(panic_at < report_at, "{output}");
    assert_reports(&output, 1, &site_of("panic"));
}

// --- Lineage through plain tokio::spawn (with --cfg tokio_unstable) ---------------------------

#[leak_check(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "leaks on purpose; run by plain_tasks_have_parents"]
async fn leak_through_plain_tasks() {
    // site(tracked_parent): leak_check::spawn
    leak_check::spawn(async {
        // site(plain_child): tokio::spawn
        tokio::spawn(async {
            // site(tracked_grandchild): leak_check::spawn
            leak_check::spawn(std::future::pending::<()>());
            std::future::pending::<()>().await;
        });
    })
    .await
    .unwrap();
}

#[test]
fn plain_tasks_have_parents() {
    let output = expect_failure("leak_through_plain_tasks");
    if cfg!(tokio_unstable) {
        // tokio's hooks see the plain task, so ownership flows through it to its children.
        assert_reports(&output, 1, &site_of("tracked_grandchild"));
        assert_reports(&output, 1, &site_of("plain_child"));
        let chain = format!(
            "test body -> task spawned at {} -> task spawned at {}",
            site_of("tracked_parent"),
            site_of("plain_child")
        );
        assert!(output.contains(&chain), "expected `{chain}`:\n{output}");
    } else {
        // Without them, a plain task owns nothing: both are only counted.
        assert!(
            output.contains("2 tasks spawned with plain `tokio::spawn`"),
            "{output}"
        );
    }
}

#[test]
fn each_class_is_named() {
    let stranded = expect_failure("leak_and_panic");
    assert!(stranded.contains("stranded: pending, and no waker"));
    // std::future::pending has no tokio leaf to trace: no empty "where it is stuck" either.
    assert!(!stranded.contains("where it is stuck"), "{stranded}");
    assert!(expect_failure("leak_channel_worker").contains("waiting: pending; a waker is held"));
    assert!(expect_failure("leak_select_loop").contains("busy: polled again and again"));
    assert!(expect_failure("leak_stuck_blocking").contains("blocking: a spawn_blocking closure"));
}
