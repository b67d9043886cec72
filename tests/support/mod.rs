//! Runs this test binary again on one `#[ignore]`d target test, to prove that a leaking test
//! really fails, and says where the report should point.
#![allow(dead_code)] // each test crate uses part of this

pub mod ticker;

use std::process::Command;

use once_cell::sync::Lazy;
use tokio::runtime::Runtime;

/// A multi-thread runtime shared by the sync tests of one test binary, as a suite's fixtures
/// would share one.
pub static SHARED: Lazy<Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
});

/// Spawns, on [`SHARED`], a task that checks `stop` every millisecond and ends once it is set:
/// a task told to stop as the body ends, which finishes a moment later.
pub fn spawn_until_stopped(stop: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let stop = stop.clone();
    leak_check::spawn_on(
        async move {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        },
        SHARED.handle(),
    );
}

/// What one run of an ignored target printed, and whether it passed.
pub struct Run {
    pub passed: bool,
    pub output: String,
}

/// Runs this test binary with `args` (a filter and libtest flags) and `envs`, output uncaptured.
pub fn run_tests(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut with_nocapture = vec!["--nocapture"];
    with_nocapture.extend_from_slice(args);
    run_captured(&with_nocapture, envs)
}

/// Runs this test binary with `args` and `envs`; libtest prints each failure's captured output
/// under its own `---- name stdout ----` heading.
pub fn run_captured(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command.args(args);
    command
        .env("RUST_BACKTRACE", "0")
        .env_remove("LEAK_CHECK_GRACE_MS");
    for (key, value) in envs {
        command.env(key, value);
    }
    let out = command.output().expect("the test binary runs");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !output.contains("running 0 tests"),
        "`{args:?}` matched no test:\n{output}"
    );
    Run {
        passed: out.status.success(),
        output,
    }
}

/// Runs the one ignored test `name` and asserts that it failed.
pub fn expect_failure(name: &str) -> String {
    let run = run_tests(&["--ignored", "--exact", name], &[]);
    assert!(!run.passed, "`{name}` should have failed:\n{}", run.output);
    assert!(
        run.output.contains("1 failed"),
        "`{name}` did not run:\n{}",
        run.output
    );
    run.output
}

/// The `file:line:col` of a spawn in `source` (a test file under `tests/`), found by the marker
/// comment `// site(label): callee` on the line just above it; the column is where `callee`
/// starts, which is where Rust's `#[track_caller]` locations point.
pub fn site(file: &str, source: &str, label: &str) -> String {
    let marker = format!("// site({label}): ");
    let lines: Vec<&str> = source.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.trim_start().starts_with(&marker))
        .unwrap_or_else(|| panic!("no marker `{marker}` in {file}"));
    let callee = lines[at].trim_start()[marker.len()..].trim();
    let line = lines.get(at + 1).copied().unwrap_or_default();
    let column = line
        .find(callee)
        .unwrap_or_else(|| panic!("`{callee}` is not on the line below `{marker}`"));
    format!("{file}:{}:{}", at + 2, column + 1)
}

/// Asserts that the report in `output` lists `count` tasks spawned at `site`.
pub fn assert_reports(output: &str, count: usize, site: &str) {
    let noun = if count == 1 { "task" } else { "tasks" };
    let expected = format!("{count} {noun} spawned at {site}");
    assert!(
        output.contains(&expected),
        "expected `{expected}` in the report:\n{output}"
    );
}
