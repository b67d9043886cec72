//! `leak_check::spawn` with the tracking feature off, against `tokio::spawn` in the same run:
//! spawn and join batches of 100 trivial tasks from a task on a 2-worker runtime.
//!
//! `cargo bench -p leak-check-bench-untracked` prints the ratio.

use std::time::{Duration, Instant};

use criterion::Criterion;

#[path = "../../common/mod.rs"]
mod common;

const GROUP: &str = "spawn_join_100_untracked";
const BATCH: usize = 100;

async fn batches(iters: u64, through_leak_check: bool) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        let handles: Vec<_> = (0..BATCH)
            .map(|_| {
                if through_leak_check {
                    leak_check::spawn(async {})
                } else {
                    tokio::spawn(async {})
                }
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }
    started.elapsed()
}

fn main() {
    let out_dir = common::output_dir();
    common::forget(&out_dir, GROUP);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut criterion = Criterion::default()
        .output_directory(&out_dir)
        .configure_from_args();
    let mut group = criterion.benchmark_group(GROUP);
    for (name, through_leak_check) in [("tokio_spawn", false), ("leak_check_tracking_off", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async move {
                    tokio::spawn(batches(iters, through_leak_check))
                        .await
                        .unwrap()
                })
            })
        });
    }
    group.finish();
    criterion.final_summary();

    let mean = |name: &str| common::mean_ns(&out_dir, GROUP, name);
    if let (Some(floor), Some(off)) = (mean("tokio_spawn"), mean("leak_check_tracking_off")) {
        println!("\n{GROUP}: ratio to tokio_spawn");
        println!(
            "  tokio_spawn              {:>7.1} ns/task  1.000x",
            floor / BATCH as f64
        );
        println!(
            "  leak_check_tracking_off  {:>7.1} ns/task  {:.3}x",
            off / BATCH as f64,
            off / floor
        );
    }
}
