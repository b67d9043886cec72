//! `leak_check::spawn` with the tracking feature off, against `tokio::spawn` in the same run:
//! spawn and join batches of 100 trivial tasks from a task on a 2-worker runtime.
//!
//! `cargo bench -p leak-check-bench-untracked` prints the ratio.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;

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
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("target/criterion"));
    let _ = std::fs::remove_dir_all(out_dir.join(GROUP));
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

    let mean = |name: &str| -> Option<f64> {
        let path = out_dir.join(GROUP).join(name).join("new/estimates.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        json["mean"]["point_estimate"].as_f64()
    };
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
