//! A generated suite of 600 clean checked tests, with deliberate leaks mixed in, run in parallel
//! and repeated: no clean test may ever be reported, every leak must be.
//!
//! CI runs it twice (`stress_runner`). The full run is one command:
//!
//! ```sh
//! STRESS_RUNS=20 cargo test --release --test stress -- --exact stress_runner --nocapture
//! ```

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leak_check::leak_check;
use support::SHARED;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A small deterministic generator, seeded by the test's name.
struct Dice(u64);

impl Dice {
    fn new(name: &str) -> Dice {
        Dice(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }))
    }

    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.roll(max + 1))
    }
}

/// One clean scenario, chosen by the dice: every task either is joined, or is told to stop as
/// the body ends and finishes a moment later.
async fn clean_scenario(dice: &mut Dice) {
    let stop = CancellationToken::new();
    for _ in 0..=dice.roll(3) {
        match dice.roll(7) {
            0 => {
                let handles: Vec<_> = (0..=dice.roll(20))
                    .map(|_| leak_check::spawn(tokio::time::sleep(dice.millis(5))))
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            }
            1 => {
                for _ in 0..=dice.roll(10) {
                    let token = stop.clone();
                    let wind_down = dice.millis(10);
                    leak_check::spawn(async move {
                        token.cancelled().await;
                        tokio::time::sleep(wind_down).await;
                    });
                }
            }
            2 => {
                let mut set = JoinSet::new();
                for _ in 0..=dice.roll(10) {
                    leak_check::spawn_in(&mut set, tokio::time::sleep(dice.millis(5)));
                }
                if dice.roll(2) == 0 {
                    while set.join_next().await.is_some() {}
                } // else: dropping the set aborts what is left
            }
            3 => {
                let pause = dice.millis(5);
                leak_check::spawn_blocking(move || std::thread::sleep(pause));
            }
            4 => {
                let token = stop.clone();
                leak_check::spawn(async move {
                    for _ in 0..3 {
                        let token = token.clone();
                        leak_check::spawn(async move {
                            leak_check::spawn(async {});
                            token.cancelled().await;
                        });
                    }
                });
            }
            5 => {
                let token = stop.clone();
                tokio::spawn(async move { token.cancelled().await });
                tokio::spawn(async {}).await.unwrap();
            }
            _ => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(4);
                leak_check::spawn(async move { while rx.recv().await.is_some() {} });
                for i in 0..=dice.roll(3) {
                    tx.send(i as u32).await.unwrap();
                }
            }
        }
    }
    stop.cancel();
}

/// The sync form's clean scenario, on the shared runtime.
fn clean_sync_scenario(dice: &mut Dice) {
    let stop = Arc::new(AtomicBool::new(false));
    let joined: Vec<_> = (0..=dice.roll(10))
        .map(|_| {
            let pause = dice.millis(5);
            leak_check::spawn_on(
                async move { tokio::time::sleep(pause).await },
                SHARED.handle(),
            )
        })
        .collect();
    support::spawn_until_stopped(&stop);
    for handle in joined {
        SHARED.block_on(handle).unwrap();
    }
    stop.store(true, Ordering::Release);
}

macro_rules! stress_test {
    (current_thread $name:ident) => {
        #[leak_check]
        async fn $name() {
            clean_scenario(&mut Dice::new(concat!(module_path!(), stringify!($name)))).await;
        }
    };
    (multi_thread $name:ident) => {
        #[leak_check(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            clean_scenario(&mut Dice::new(concat!(module_path!(), stringify!($name)))).await;
        }
    };
    (sync $name:ident) => {
        #[leak_check]
        #[test]
        fn $name() {
            clean_sync_scenario(&mut Dice::new(concat!(module_path!(), stringify!($name))));
        }
    };
}

macro_rules! stress_module {
    ($kind:ident; [$($name:ident)*]) => {
        $(stress_test!($kind $name);)*
    };
}

macro_rules! stress_suite {
    ($kind:ident; [$($module:ident)*]; $names:tt) => {
        $(mod $module {
            use super::*;
            stress_module!($kind; $names);
        })*
    };
}

/// 3 forms x 10 modules x 20 tests.
mod generated {
    use super::*;

    mod current_thread {
        use super::*;
        stress_suite!(current_thread; [m0 m1 m2 m3 m4 m5 m6 m7 m8 m9];
            [t00 t01 t02 t03 t04 t05 t06 t07 t08 t09 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19]);
    }
    mod multi_thread {
        use super::*;
        stress_suite!(multi_thread; [m0 m1 m2 m3 m4 m5 m6 m7 m8 m9];
            [t00 t01 t02 t03 t04 t05 t06 t07 t08 t09 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19]);
    }
    mod sync {
        use super::*;
        stress_suite!(sync; [m0 m1 m2 m3 m4 m5 m6 m7 m8 m9];
            [t00 t01 t02 t03 t04 t05 t06 t07 t08 t09 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19]);
    }

    // Deliberate leaks, mixed into the same run.
    #[leak_check]
    #[ignore = "leaks on purpose; run by stress_runner"]
    async fn leaky_pending() {
        leak_check::spawn(std::future::pending::<()>());
    }

    #[leak_check(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "leaks on purpose; run by stress_runner"]
    async fn leaky_interval() {
        leak_check::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tick.tick().await;
            }
        });
    }

    #[leak_check]
    #[ignore = "leaks on purpose; run by stress_runner"]
    async fn leaky_channel_worker() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        leak_check::spawn(async move { while rx.recv().await.is_some() {} });
        std::mem::forget(tx);
    }

    #[leak_check(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "leaks on purpose; run by stress_runner"]
    async fn leaky_plain_tokio_spawn() {
        tokio::spawn(std::future::pending::<()>());
    }

    #[leak_check(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "leaks on purpose; run by stress_runner"]
    async fn leaky_grandchild() {
        leak_check::spawn(async {
            leak_check::spawn(async {
                leak_check::spawn(std::future::pending::<()>());
            });
        });
    }

    #[leak_check]
    #[ignore = "leaks on purpose; run by stress_runner"]
    async fn leaky_join_set() {
        let mut set = JoinSet::new();
        leak_check::spawn_in(&mut set, std::future::pending::<()>());
        std::mem::forget(set);
    }

    #[leak_check]
    #[test]
    #[ignore = "leaks on purpose; run by stress_runner"]
    fn leaky_sync() {
        leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
    }

    #[leak_check]
    #[ignore = "leaks on purpose; run by stress_runner"]
    async fn leaky_among_clean_work() {
        clean_scenario(&mut Dice::new("leaky_among_clean_work")).await;
        leak_check::spawn(std::future::pending::<()>());
    }
}

/// Runs every generated test, leaks included, in parallel on more threads than cores, `STRESS_RUNS`
/// times (default 2), and checks that exactly the leaky ones fail.
#[test]
fn stress_runner() {
    let runs: usize = env_number("STRESS_RUNS", 2);
    let threads: usize = env_number("STRESS_THREADS", 16);
    let (mut clean_runs, mut false_reports, mut missed_leaks, mut leaks_caught) = (0, 0, 0, 0);
    for run in 1..=runs {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--include-ignored",
                "--test-threads",
                &threads.to_string(),
                "generated::",
            ])
            .env("RUST_BACKTRACE", "0")
            .env_remove("LEAK_CHECK_GRACE_MS")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut passed = BTreeSet::new();
        let mut failed = BTreeSet::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("test ") else {
                continue;
            };
            if let Some(name) = rest.strip_suffix(" ... ok") {
                passed.insert(name.to_owned());
            } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
                failed.insert(name.to_owned());
            }
        }
        let is_leaky = |name: &String| name.contains("leaky_");
        let wrongly_failed: Vec<_> = failed.iter().filter(|n| !is_leaky(n)).collect();
        let missed: Vec<_> = passed.iter().filter(|n| is_leaky(n)).collect();
        clean_runs += passed.iter().filter(|n| !is_leaky(n)).count();
        leaks_caught += failed.iter().filter(|n| is_leaky(n)).count();
        false_reports += wrongly_failed.len();
        missed_leaks += missed.len();
        assert!(
            passed.len() + failed.len() >= 608,
            "run {run}: only {} tests ran:\n{text}",
            passed.len() + failed.len()
        );
        assert!(
            wrongly_failed.is_empty() && missed.is_empty(),
            "run {run}: clean tests reported: {wrongly_failed:?}; leaks missed: {missed:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "stress: {runs} runs on {threads} test threads: {clean_runs} clean test runs, \
         {false_reports} false reports; {leaks_caught} leaks caught, {missed_leaks} missed"
    );
}

fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
