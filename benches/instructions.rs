//! Instructions per task, which do not drift with the machine's speed: the same workload as the
//! spawn bench (batches of 100 tasks, spawned and then joined one by one, from a tracked task
//! inside a check), on a current-thread runtime, counted by valgrind's callgrind. Each case runs
//! twice, with 10,000 and 30,000 tasks, and the difference divided by 20,000 is the cost of one
//! task, without the runtime's and the check's setup.
//!
//! `cargo bench --bench instructions` prints each case against plain `tokio::spawn`; without
//! valgrind on the machine it says so and measures nothing. (Counts, not time: atomics and cache
//! misses cost more than their instruction count, which is why `benches/spawn.rs` is the budget's
//! measure and this one the diagnosis.)

use std::process::Command;

use leak_check::__private::{check_async, Options};

/// Set in the environment of the runs under valgrind: `<case> <tasks>`.
const PROBE: &str = "INSTRUCTIONS_BENCH_PROBE";

const CASES: &[(&str, &str)] = &[
    ("tokio_spawn", "tokio_spawn"),
    ("leak_check_inside_check", "tokio_spawn"),
    ("tokio_spawn_yield_once", "tokio_spawn_yield_once"),
    (
        "leak_check_inside_check_yield_once",
        "tokio_spawn_yield_once",
    ),
];

const SMALL: u64 = 10_000;
const LARGE: u64 = 30_000;

/// Spawns and joins `tasks` tasks of `case` in batches of 100.
async fn batches(case: &str, tasks: u64) {
    for _ in 0..tasks / 100 {
        let handles: Vec<_> = (0..100)
            .map(|_| match case {
                "tokio_spawn" => tokio::spawn(async {}),
                "leak_check_inside_check" => leak_check::spawn(async {}),
                "tokio_spawn_yield_once" => tokio::spawn(tokio::task::yield_now()),
                "leak_check_inside_check_yield_once" => leak_check::spawn(tokio::task::yield_now()),
                other => panic!("no case {other}"),
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }
}

/// The workload itself, run under valgrind: the driver is a tracked task of a check, as in the
/// spawn bench, whichever spawn the case uses.
fn probe(case: String, tasks: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let work = async move {
        leak_check::spawn(async move { batches(&case, tasks).await })
            .await
            .unwrap()
    };
    runtime.block_on(check_async(
        Options::new(module_path!(), "instructions"),
        work,
    ));
}

/// Instructions callgrind counts for one run of the probe, or `None` without valgrind.
fn instructions(case: &str, tasks: u64) -> Option<u64> {
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(std::env::current_exe().ok()?)
        .env(PROBE, format!("{case} {tasks}"))
        .output()
        .ok()?;
    let log = String::from_utf8_lossy(&output.stderr);
    let collected = log
        .lines()
        .find_map(|line| line.split_once("Collected :"))?
        .1;
    collected.split_whitespace().next()?.parse().ok()
}

fn per_task(case: &str) -> Option<f64> {
    let small = instructions(case, SMALL)?;
    let large = instructions(case, LARGE)?;
    Some(large.saturating_sub(small) as f64 / (LARGE - SMALL) as f64)
}

fn main() {
    if let Ok(probe_args) = std::env::var(PROBE) {
        let (case, tasks) = probe_args
            .split_once(' ')
            .expect("INSTRUCTIONS_BENCH_PROBE is `<case> <tasks>`");
        probe(case.to_owned(), tasks.parse().expect("a number of tasks"));
        return;
    }
    println!("instructions per task (callgrind, current-thread runtime; ratio to the floor)");
    let mut floors = std::collections::HashMap::new();
    for &(case, floor) in CASES {
        let Some(count) = per_task(case) else {
            println!("  valgrind did not run (is it installed?): nothing measured");
            return;
        };
        if case == floor {
            floors.insert(case, count);
        }
        let ratio = floors.get(floor).map_or(f64::NAN, |floor| count / floor);
        println!("  {case:<36} {count:>7.0} instructions  {ratio:.3}x {floor}");
    }
}
