//! The check itself: what a clean test pays, whether that grows with tasks owned by other
//! checks, how long a leaking test's verdict takes, how long the report for 10,000 stragglers
//! over 100 sites takes to build, and what the clock that task records read on every `Pending`
//! costs against `Instant::now`.
//!
//! `cargo bench --bench check` prints criterion's estimates, then the headline numbers.

use std::panic::Location;
use std::time::Duration;

use criterion::Criterion;

mod common;
use leak_check::__private::bench::{self, Stragglers};
use leak_check::__private::{check_async, Options};

const GROUP: &str = "check";
const FOREIGN_TASKS: usize = 100_000;

#[track_caller]
fn here() -> &'static Location<'static> {
    Location::caller()
}

/// 100 distinct spawn sites: each call below is a site of its own.
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

    let sites = hundred_sites();
    let stragglers = Stragglers::new(10_000, &sites);
    group.bench_function("report_10k_stragglers_100_sites", |b| {
        b.iter(|| stragglers.report())
    });
    drop(stragglers);

    group.bench_function("clock_instant_now", |b| b.iter(std::time::Instant::now));
    group.bench_function("clock_of_task_records", |b| b.iter(bench::record_clock));

    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
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
    if let Some(report) = get("report_10k_stragglers_100_sites") {
        println!(
            "  report for 10,000 stragglers, 100 sites   {:>9.2} ms",
            report / 1e6
        );
    }
    if let (Some(std_clock), Some(record_clock)) =
        (get("clock_instant_now"), get("clock_of_task_records"))
    {
        println!(
            "  a task record's clock read, per Pending    {record_clock:>9.1} ns (Instant::now: {std_clock:.1} ns)"
        );
    }
    if let Some(verdict) = get("leaking_verdict_grace_100ms") {
        println!(
            "  a leaking test's verdict (grace 100 ms)   {:>9.2} ms",
            verdict / 1e6
        );
    }
}
