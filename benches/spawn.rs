//! The spawn path against its floor: spawn and join batches of trivial tasks on a 2-worker
//! runtime, with plain `tokio::spawn` and with `leak_check::spawn` outside and inside a check.
//!
//! `cargo bench --bench spawn` prints criterion's estimates, then each case as a ratio of
//! `tokio_spawn` measured in the same run.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use leak_check::__private::{check_async, Options};
use tokio::runtime::Runtime;

const GROUP: &str = "spawn_join_100";
const BATCH: usize = 100;
const FLOOR: &str = "tokio_spawn";

async fn batch_tokio() {
    let handles: Vec<_> = (0..BATCH).map(|_| tokio::spawn(async {})).collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

async fn batch_leak_check() {
    let handles: Vec<_> = (0..BATCH).map(|_| leak_check::spawn(async {})).collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

/// Runs `iters` batches and times them.
async fn run<F: Future<Output = ()>>(iters: u64, batch: fn() -> F) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        batch().await;
    }
    started.elapsed()
}

#[derive(Clone, Copy)]
enum Case {
    Floor,
    OutsideCheck,
    InsideCheck,
}

/// Times `iters` batches spawned from a task on a worker, as tasks spawn tasks in real code and
/// so that only the runtime's two threads are busy on a two-core machine. Inside a check, that
/// task is itself tracked.
fn timed(runtime: &Runtime, iters: u64, case: Case) -> Duration {
    match case {
        Case::Floor => {
            runtime.block_on(async { tokio::spawn(run(iters, batch_tokio)).await.unwrap() })
        }
        Case::OutsideCheck => {
            runtime.block_on(async { tokio::spawn(run(iters, batch_leak_check)).await.unwrap() })
        }
        Case::InsideCheck => {
            runtime.block_on(check_async(Options::new(module_path!(), "bench"), async {
                leak_check::spawn(run(iters, batch_leak_check))
                    .await
                    .unwrap()
            }))
        }
    }
}

fn spawn_join(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group(GROUP);
    for (name, case) in [
        (FLOOR, Case::Floor),
        ("leak_check_outside_check", Case::OutsideCheck),
        ("leak_check_inside_check", Case::InsideCheck),
    ] {
        group.bench_function(name, |b| b.iter_custom(|iters| timed(runtime, iters, case)));
    }
    group.finish();
}

fn mean_ns(dir: &Path, name: &str) -> Option<f64> {
    let path = dir
        .join(GROUP)
        .join(name)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn main() {
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("criterion");
    // Ratios must come from this run: forget earlier estimates.
    let _ = std::fs::remove_dir_all(out_dir.join(GROUP));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default()
        .output_directory(&out_dir)
        .configure_from_args();
    spawn_join(&mut criterion, &runtime);
    criterion.final_summary();

    let Some(floor) = mean_ns(&out_dir, FLOOR) else {
        return;
    };
    println!("\n{GROUP}: spawn and join {BATCH} trivial tasks, 2 workers; ratio to {FLOOR}");
    for name in [FLOOR, "leak_check_outside_check", "leak_check_inside_check"] {
        if let Some(mean) = mean_ns(&out_dir, name) {
            let per_task = mean / BATCH as f64;
            println!("  {name:<28} {per_task:>8.1} ns/task  {:.3}x", mean / floor);
        }
    }
}
