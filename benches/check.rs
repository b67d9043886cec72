//! The check itself: what a clean test pays, whether that grows with tasks owned by other
//! checks, how long a leaking test's verdict takes, and how long a leaking check with 10,000
//! stragglers over 100 sites takes (grace 0: its report, then stopping them all).
//!
//! `cargo bench --bench check` prints criterion's estimates, then the headline numbers.

use std::panic::Location;
use std::time::Duration;

use criterion::Criterion;

mod common;
use leak_check::__private::{check_async, Options};

const GROUP: &str = "check";
const FOREIGN_TASKS: usize = 100_000;

/// Spawns a task that never ends, at the caller's site.
#[track_caller]
fn here() -> &'static Location<'static> {
    leak_check::spawn(std::future::pending::<()>());
    Location::caller()
}

/// Spawns one straggler at each of 100 distinct spawn sites: each call below is a site of its
/// own.
#[rustfmt::skip]
fn hundred_sites() -> Vec<&'static Location<'static>> {
    vec![
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
        here(), here(), here(), here(), here(), here(), here(), here(), here(), here(),
    ]
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Keeps `FOREIGN_TASKS` tasks alive, owned by another check on another thread, until the
/// returned sender is dropped.
fn other_check_with_live_tasks() -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (ready, is_ready) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        current_thread().block_on(check_async(
            Options::new("bench::other", "other"),
            async move {
                for _ in 0..FOREIGN_TASKS {
                    // Background, so that the other check stops them quietly at its end.
                    leak_check::spawn_background(std::future::pending::<()>());
                }
                tokio::task::yield_now().await;
                ready.send(()).unwrap();
                tokio::task::spawn_blocking(move || stopped.recv())
                    .await
                    .unwrap()
                    .ok();
            },
        ))
    });
    is_ready.recv().unwrap();
    (stop, thread)
}

fn main() {
    let out_dir = common::output_dir();
    common::forget(&out_dir, GROUP);
    let mut criterion = Criterion::default()
        .output_directory(&out_dir)
        .configure_from_args();
    let runtime = current_thread();
    let mut group = criterion.benchmark_group(GROUP);

    group.bench_function("no_check", |b| b.iter(|| runtime.block_on(async {})));
    group.bench_function("clean_check", |b| {
        b.iter(|| runtime.block_on(check_async(Options::new("bench", "clean"), async {})))
    });

    let (stop, other) = other_check_with_live_tasks();
    group.bench_function("clean_check_100k_foreign_tasks", |b| {
        b.iter(|| runtime.block_on(check_async(Options::new("bench", "clean"), async {})))
    });
    drop(stop);
    other.join().unwrap();

    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    group.bench_function("leaking_check_10k_stragglers_100_sites", |b| {
        b.iter(|| {
            let leaking = check_async(Options::new("bench", "leak").grace_ms(0), async {
                for _ in 0..100 {
                    hundred_sites();
                }
            });
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(leaking)
            }));
        })
    });
    group.bench_function("leaking_verdict_grace_100ms", |b| {
        b.iter(|| {
            let leaking = check_async(Options::new("bench", "leak"), async {
                leak_check::spawn(std::future::pending::<()>());
            });
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(leaking)
            }));
        })
    });
    std::panic::set_hook(quiet);
    group.finish();
    criterion.final_summary();

    let get = |name| common::mean_ns(&out_dir, GROUP, name);
    println!("\ncheck: headline numbers from this run");
    if let (Some(plain), Some(clean), Some(foreign)) = (
        get("no_check"),
        get("clean_check"),
        get("clean_check_100k_foreign_tasks"),
    ) {
        println!(
            "  a clean check adds                         {:>9.2} µs",
            (clean - plain) / 1e3
        );
        println!(
            "  ... with {FOREIGN_TASKS} tasks of other checks alive {:>9.2} µs ({:.2}x the clean check)",
            (foreign - plain) / 1e3,
            foreign / clean
        );
    }
    if let Some(report) = get("leaking_check_10k_stragglers_100_sites") {
        println!(
            "  leaking check, 10,000 stragglers, 100 sites {:>7.2} ms (grace 0: report and stop)",
            report / 1e6
        );
    }
    if let Some(verdict) = get("leaking_verdict_grace_100ms") {
        println!(
            "  a leaking test's verdict (grace 100 ms)   {:>9.2} ms",
            verdict / 1e6
        );
    }
}
