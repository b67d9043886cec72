//! The spawn path against its floor: spawn and join batches of 100 trivial tasks from a task on
//! a 2-worker runtime, with plain `tokio::spawn`, `leak_check::spawn` outside and inside a check,
//! two peers (a tokio-metrics `TaskMonitor`, a tokio-util `TaskTracker`), the least that ownership
//! by lineage costs (`owner_scope_floor`), and with both workers spawning at once.
//!
//! `cargo bench --bench spawn` prints criterion's estimates, then each case as a ratio of its
//! floor measured in the same run. (Tracking off is measured by `benches/untracked`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;

mod common;
use leak_check::__private::{check_async, Options};
use tokio::runtime::Runtime;
use tokio_metrics::TaskMonitor;
use tokio_util::task::TaskTracker;

const GROUP: &str = "spawn_join_100";
const BATCH: usize = 100;

#[derive(Clone, Copy, PartialEq)]
enum Spawner {
    Tokio,
    LeakCheck,
    Monitor,
    Tracker,
    /// Not a checker: only what ownership by lineage needs, whatever the bookkeeping (see
    /// [`owner_scope_floor`]).
    OwnerScopeFloor,
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    spawner: Spawner,
    /// Each task yields once before it finishes (else it finishes in its first poll).
    yields: bool,
    inside_check: bool,
    /// Spawning tasks running at once (one per worker when 2).
    drivers: usize,
    /// The case this one is compared with.
    floor: &'static str,
}

const CASES: &[Case] = &[
    case("tokio_spawn", Spawner::Tokio, false, 1, "tokio_spawn"),
    case(
        "leak_check_outside_check",
        Spawner::LeakCheck,
        false,
        1,
        "tokio_spawn",
    ),
    case(
        "leak_check_inside_check",
        Spawner::LeakCheck,
        true,
        1,
        "tokio_spawn",
    ),
    case(
        "task_monitor_instrument",
        Spawner::Monitor,
        false,
        1,
        "tokio_spawn",
    ),
    case(
        "task_tracker_spawn",
        Spawner::Tracker,
        false,
        1,
        "tokio_spawn",
    ),
    case(
        "owner_scope_floor",
        Spawner::OwnerScopeFloor,
        false,
        1,
        "tokio_spawn",
    ),
    case(
        "tokio_spawn_2_spawners",
        Spawner::Tokio,
        false,
        2,
        "tokio_spawn_2_spawners",
    ),
    case(
        "leak_check_inside_check_2_spawners",
        Spawner::LeakCheck,
        true,
        2,
        "tokio_spawn_2_spawners",
    ),
    yielding(case(
        "tokio_spawn_yield_once",
        Spawner::Tokio,
        false,
        1,
        "tokio_spawn_yield_once",
    )),
    yielding(case(
        "leak_check_inside_check_yield_once",
        Spawner::LeakCheck,
        true,
        1,
        "tokio_spawn_yield_once",
    )),
];

/// The same case with tasks that yield once: a tracked task then gets a record of its own.
const fn yielding(case: Case) -> Case {
    Case {
        yields: true,
        ..case
    }
}

const fn case(
    name: &'static str,
    spawner: Spawner,
    inside_check: bool,
    drivers: usize,
    floor: &'static str,
) -> Case {
    Case {
        name,
        spawner,
        yields: false,
        inside_check,
        drivers,
        floor,
    }
}

struct Peers {
    monitor: TaskMonitor,
    tracker: TaskTracker,
}

async fn batches(iters: u64, case: Case, peers: Arc<Peers>) -> Duration {
    if case.yields {
        spawn_batches(iters, case.spawner, &peers, tokio::task::yield_now).await
    } else {
        spawn_batches(iters, case.spawner, &peers, || async {}).await
    }
}

async fn spawn_batches<F>(
    iters: u64,
    spawner: Spawner,
    peers: &Peers,
    task: impl Fn() -> F,
) -> Duration
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    for _ in 0..iters {
        let handles: Vec<_> = (0..BATCH)
            .map(|_| match spawner {
                Spawner::Tokio => tokio::spawn(task()),
                Spawner::LeakCheck => leak_check::spawn(task()),
                Spawner::Monitor => tokio::spawn(peers.monitor.instrument(task())),
                Spawner::Tracker => peers.tracker.spawn(task()),
                Spawner::OwnerScopeFloor => owner_scope_floor::spawn(task()),
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }
    started.elapsed()
}

/// Times `iters` batches per driver, spawned from tasks on the workers (as tasks spawn tasks in
/// real code, and so that only the runtime's two threads are busy on a two-core machine).
/// Inside a check, the drivers are tracked tasks of the check.
fn timed(runtime: &Runtime, peers: &Arc<Peers>, iters: u64, case: Case) -> Duration {
    let work = {
        let peers = peers.clone();
        async move {
            let drivers: Vec<_> = (0..case.drivers)
                .map(|_| {
                    let driver = batches(iters, case, peers.clone());
                    if case.inside_check {
                        leak_check::spawn(driver)
                    } else if case.spawner == Spawner::OwnerScopeFloor {
                        owner_scope_floor::spawn_owned(driver)
                    } else {
                        tokio::spawn(driver)
                    }
                })
                .collect();
            let mut slowest = Duration::ZERO;
            for driver in drivers {
                slowest = slowest.max(driver.await.unwrap());
            }
            slowest
        }
    };
    if case.inside_check {
        runtime.block_on(check_async(Options::new(module_path!(), "bench"), work))
    } else {
        runtime.block_on(work)
    }
}

/// The least that ownership by lineage costs per task, whatever a checker keeps besides: the spawn
/// reads the current owner from a thread-local and the task holds a reference to it, made the
/// current owner around each of its polls, so that what it spawns inherits it. No count, no
/// record, no report: the floor under any design that tells a test's tasks from another's by
/// who spawned them.
mod owner_scope_floor {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tokio::task::JoinHandle;

    /// Whoever owns what is spawned: stands for a check or a task of one.
    pub struct Owner;

    thread_local! {
        static CURRENT: RefCell<Option<Arc<Owner>>> = const { RefCell::new(None) };
    }

    pin_project_lite::pin_project! {
        struct Scoped<F> {
            #[pin]
            future: F,
            owner: Option<Arc<Owner>>,
        }
    }

    impl<F: Future> Future for Scoped<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.project();
            let previous = CURRENT.with(|current| current.replace(this.owner.clone()));
            let result = this.future.poll(cx);
            CURRENT.with(|current| *current.borrow_mut() = previous);
            result
        }
    }

    /// Spawns a task owned by whoever owns this place.
    pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let owner = CURRENT.with(|current| current.borrow().clone());
        tokio::spawn(Scoped { future, owner })
    }

    /// Spawns a task with an owner of its own, as a check's body would be.
    pub fn spawn_owned<F>(future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(Scoped {
            future,
            owner: Some(Arc::new(Owner)),
        })
    }
}

/// Rounds of the paired measurement, and batches per side in each round.
const ROUNDS: usize = 30;
const ROUND_ITERS: u64 = 200;

/// Ratios that survive a machine whose speed drifts: each round times the floor and the case back
/// to back, and the median of the rounds' ratios is printed. (On the 2-core VM this was measured
/// on, speed switches by 2x now and then, which skews ratios of criterion's separate estimates.)
fn paired_ratios(runtime: &Runtime, peers: &Arc<Peers>) {
    println!(
        "\n{GROUP}, paired: median of {ROUNDS} rounds, each the floor then the case, back to back"
    );
    for case in CASES.iter().filter(|case| case.name != case.floor) {
        let floor = CASES
            .iter()
            .find(|c| c.name == case.floor)
            .copied()
            .unwrap_or(*case);
        let mut ratios: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let base = timed(runtime, peers, ROUND_ITERS, floor).as_secs_f64();
                let with = timed(runtime, peers, ROUND_ITERS, *case).as_secs_f64();
                with / base
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "  {:<36} {:.3}x {} (rounds from {:.3}x to {:.3}x)",
            case.name,
            ratios[ROUNDS / 2],
            case.floor,
            ratios[0],
            ratios[ROUNDS - 1]
        );
    }
}

fn main() {
    let out_dir = common::output_dir();
    common::forget(&out_dir, GROUP);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let peers = Arc::new(Peers {
        monitor: TaskMonitor::new(),
        tracker: TaskTracker::new(),
    });
    let mut criterion = Criterion::default()
        .output_directory(&out_dir)
        .configure_from_args();
    let mut group = criterion.benchmark_group(GROUP);
    for &case in CASES {
        group.bench_function(case.name, |b| {
            b.iter_custom(|iters| timed(&runtime, &peers, iters, case))
        });
    }
    group.finish();
    criterion.final_summary();

    paired_ratios(&runtime, &peers);

    println!(
        "\n{GROUP}: spawn and join {BATCH} trivial tasks per batch, 2 workers; ratio to the floor"
    );
    for case in CASES {
        let (Some(mean), Some(floor)) = (
            common::mean_ns(&out_dir, GROUP, case.name),
            common::mean_ns(&out_dir, GROUP, case.floor),
        ) else {
            continue;
        };
        let per_task = mean / (BATCH * case.drivers) as f64;
        println!(
            "  {:<36} {per_task:>7.1} ns/task  {:.3}x {}",
            case.name,
            mean / floor,
            case.floor
        );
    }
}
