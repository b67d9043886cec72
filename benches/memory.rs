//! Memory: bytes per tracked task beyond tokio's own (before it yields, and once it has a record
//! after yielding), and the heap after 1,000,000 tasks have been spawned and finished through the
//! wrapper, against before, and after 1,000,000 more. Counted by dhat's allocator
//! (a well-kept heap profiler, so this crate needs no allocator code of its own).
//!
//! `cargo bench --bench memory` prints the numbers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use leak_check::__private::{check_async, Options};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const TASKS: usize = 100_000;
const FINISHED: usize = 1_000_000;

fn heap_bytes() -> i64 {
    dhat::HeapStats::get().curr_bytes as i64
}

/// Resident memory, from the kernel.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Heap bytes per task for `TASKS` pending tasks spawned by `spawn`, measured while they live.
/// Polls of `PendingTask`s so far.
static POLLS: AtomicUsize = AtomicUsize::new(0);

/// Pending for ever, and counts its polls.
struct PendingTask;

impl Future for PendingTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        POLLS.fetch_add(1, Ordering::Relaxed);
        Poll::Pending
    }
}

/// Heap bytes per task: spawned and not polled yet, and pending after its polls.
async fn bytes_per_task(spawn: fn() -> tokio::task::JoinHandle<()>) -> (f64, f64) {
    let before = heap_bytes();
    let handles: Vec<_> = (0..TASKS).map(|_| spawn()).collect();
    let handles_bytes = (handles.capacity() * std::mem::size_of_val(&handles[0])) as i64;
    let spawned = heap_bytes() - handles_bytes;
    // Let every task run until it is idle: a tracked task gets its record when it first yields,
    // and is then polled once more (with the record as its waker). The runtime runs a few dozen
    // tasks per yield of this one; a yield with no poll means the queue is empty.
    loop {
        let polls = POLLS.load(Ordering::Relaxed);
        tokio::task::yield_now().await;
        if polls >= TASKS && POLLS.load(Ordering::Relaxed) == polls {
            break;
        }
    }
    POLLS.store(0, Ordering::Relaxed);
    let pending = heap_bytes() - handles_bytes;
    for handle in &handles {
        handle.abort();
    }
    for handle in handles {
        let _ = handle.await;
    }
    let per_task = |bytes: i64| (bytes - before) as f64 / TASKS as f64;
    (per_task(spawned), per_task(pending))
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Once unmeasured: the runtime's run queue grows to hold 100,000 tasks the first time (10.5
    // bytes per task), and keeps that memory, which would count against whichever is first.
    runtime.block_on(bytes_per_task(|| tokio::spawn(PendingTask)));
    let (tokio_spawned, tokio_bytes) =
        runtime.block_on(bytes_per_task(|| tokio::spawn(PendingTask)));
    let (tracked_spawned, tracked_bytes) = runtime
        .block_on(check_async(Options::new("bench", "memory"), async {
            bytes_per_task(|| leak_check::spawn(PendingTask)).await
        }));

    // Warm up the runtime, the allocator and each worker's own state (the batch of cohort
    // references it lets go of together), then spawn and finish a million tasks in one check,
    // and a million more in another: the second million shows whether anything grows per task.
    spawn_and_finish(&runtime, "warm", 10_000);
    let (heap_before, rss_before) = (heap_bytes(), rss_kib());
    spawn_and_finish(&runtime, "million", FINISHED);
    let (heap_after, rss_after) = (heap_bytes(), rss_kib());
    spawn_and_finish(&runtime, "another million", FINISHED);
    let heap_after_more = heap_bytes();

    println!("memory:");
    println!("  heap per task not polled yet, tokio::spawn     {tokio_spawned:>8.1} bytes");
    println!(
        "  heap per task not polled yet, leak_check::spawn {tracked_spawned:>8.1} bytes (in a check)"
    );
    println!(
        "  beyond tokio's own                              {:>8.1} bytes per task that has not yielded",
        tracked_spawned - tokio_spawned
    );
    println!("  heap per pending task, tokio::spawn            {tokio_bytes:>8.1} bytes");
    println!(
        "  heap per pending task, leak_check::spawn        {tracked_bytes:>8.1} bytes (in a check)"
    );
    println!(
        "  beyond tokio's own                              {:>8.1} bytes per task with a record",
        tracked_bytes - tokio_bytes
    );
    println!(
        "  heap after {FINISHED} finished tasks vs before    {:>+8} bytes ({heap_before} -> {heap_after})",
        heap_after - heap_before
    );
    println!(
        "  resident memory, same                            {:>+8} KiB ({rss_before} -> {rss_after})",
        rss_after as i64 - rss_before as i64
    );
    println!(
        "  heap after {FINISHED} more, vs after the first      {:>+8} bytes ({heap_after} -> {heap_after_more})",
        heap_after_more - heap_after
    );
}

/// Spawns and finishes `tasks` tasks in batches of 1000, in one check.
fn spawn_and_finish(runtime: &tokio::runtime::Runtime, name: &'static str, tasks: usize) {
    runtime.block_on(check_async(Options::new("bench", name), async move {
        let mut left = tasks;
        while left > 0 {
            let batch = left.min(1000);
            let handles: Vec<_> = (0..batch).map(|_| leak_check::spawn(async {})).collect();
            for handle in handles {
                handle.await.unwrap();
            }
            left -= batch;
        }
    }));
}
