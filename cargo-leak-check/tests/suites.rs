//! The binary on a real, generated test suite that depends on leak-check by path: leaking,
//! clean and failing tests, a package without leak-check, a baseline round trip across moved
//! lines, a new leak beside the baseline, annotate's edit compiled and caught, nextest and the
//! summary of its shards, and the stable mode.
//!
//! One test function, one suite, built step by step: every step reuses the build of the one
//! before, and all builds share one target folder (under the system's temp folder), so tokio
//! and leak-check are compiled once for all the runs (once per rustflags: the default mode and
//! `--stable`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, git_init, line_of, run, write_files, Run};

/// Shared by every generated suite, across runs of these tests from one target folder (cargo's
/// scratch folder for tests): two checkouts tested at once on one machine do not share it.
fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("leak-check-cli-tests-target")
}

const LEAKY: &str = r#"use leak_check::leak_check;
use tokio::sync::mpsc;

fn start_worker() -> mpsc::Sender<u32> {
    let (tx, mut rx) = mpsc::channel::<u32>(4);
    leak_check::spawn(async move {
        while rx.recv().await.is_some() {}
    });
    tx
}

#[leak_check]
#[tokio::test]
async fn forgets_the_sender() {
    let tx = start_worker();
    tx.send(1).await.unwrap();
    std::mem::forget(tx);
}

#[leak_check]
#[tokio::test]
async fn forgets_it_too() {
    std::mem::forget(start_worker());
}

#[leak_check]
#[tokio::test]
async fn waits_forever() {
    leak_check::spawn(std::future::pending::<()>());
}

#[leak_check]
#[tokio::test]
async fn plain_spawn() {
    tokio::spawn(std::future::pending::<()>());
}

#[leak_check]
#[tokio::test]
async fn clean() {
    let tx = start_worker();
    tx.send(1).await.unwrap();
}
"#;

const OTHER: &str = r#"use leak_check::leak_check;

#[leak_check]
#[tokio::test]
async fn fails_plainly() {
    assert_eq!(1 + 1, 3, "arithmetic");
}

#[leak_check(timeout_ms = 300)]
#[tokio::test]
async fn hangs() {
    std::future::pending::<()>().await;
}

#[leak_check]
#[tokio::test]
async fn fails_and_leaks() {
    leak_check::spawn(std::future::pending::<()>());
    assert_eq!(2 * 2, 5, "its own failure");
}

#[leak_check]
#[tokio::test]
async fn passes() {}
"#;

const CLEAN: &str = r#"use leak_check::leak_check;

#[leak_check]
#[tokio::test]
async fn joins_its_task() {
    leak_check::spawn(async { 7 }).await.unwrap();
}

#[leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_its_worker() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
    let worker = leak_check::spawn(async move { while rx.recv().await.is_some() {} });
    tx.send(1).await.unwrap();
    drop(tx);
    worker.await.unwrap();
}
"#;

/// Whether tokio has task dumps here, so the run turns the feature on.
fn taskdumps_here() -> bool {
    cfg!(target_os = "linux")
        && cfg!(any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "s390x"
        ))
}

struct Suite {
    ws: PathBuf,
}

impl Suite {
    fn new(root: &Path) -> Suite {
        // A workspace in a subfolder of a git repository, its package in a subfolder of it. Its
        // dev-dependency names no feature, as a newcomer's does: the default is the full check.
        git_init(&root.join("repo"));
        let ws = root.join("repo/sub/ws");
        let leak_check = common::leak_check_dir();
        let app = format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dev-dependencies]\n\
             leak-check = {{ path = {:?} }}\n\
             tokio = {{ version = \"1\", features = [\"macros\", \"rt\", \"rt-multi-thread\", \"sync\", \"time\"] }}\n",
            leak_check.display().to_string()
        );
        write_files(
            &ws,
            &[
                (
                    "Cargo.toml",
                    "[workspace]\nmembers = [\"crates/app\", \"crates/plain\"]\nresolver = \"2\"\n",
                ),
                ("crates/app/Cargo.toml", &app),
                ("crates/app/src/lib.rs", ""),
                ("crates/app/tests/leaky.rs", LEAKY),
                ("crates/app/tests/other.rs", OTHER),
                ("crates/app/tests/clean.rs", CLEAN),
                (
                    "crates/plain/Cargo.toml",
                    "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
                ),
                ("crates/plain/src/lib.rs", ""),
                ("crates/plain/tests/t.rs", "#[test]\nfn works() {}\n"),
            ],
        );
        // leak-check's own lock file: the same versions as its tests use, nothing to resolve.
        fs::copy(leak_check.join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
        Suite { ws }
    }

    fn leaky(&self) -> PathBuf {
        self.ws.join("crates/app/tests/leaky.rs")
    }

    /// `cargo leak-check ARGS` in `dir` (relative to the workspace).
    fn run_in(&self, dir: &str, args: &[&str]) -> Run {
        let mut command = bin(&self.ws.join(dir));
        command
            .arg("leak-check")
            .args(args)
            .env("CARGO_TARGET_DIR", shared_target());
        run(&mut command)
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_in(".", args)
    }

    fn report(&self) -> PathBuf {
        shared_target().join("leak-check/report.jsonl")
    }
}

/// The baseline's entries, with the test binary's crate taken off the test's name (leak-check
/// names tests with or without it, depending on its version).
fn entries(baseline: &Path) -> Vec<String> {
    fs::read_to_string(baseline)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.strip_prefix("leaky::").unwrap_or(l).to_owned())
        .collect()
}

/// The part of the summary under its heading `heading`, to its next blank line.
fn section<'a>(out: &'a Run, heading: &str) -> &'a str {
    let start = out
        .stdout
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in\n{}", out.stdout));
    let rest = &out.stdout[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

#[test]
fn a_generated_suite_from_first_run_to_baseline_shards_and_stable_mode() {
    let dir = tempfile::tempdir().unwrap();
    let suite = Suite::new(dir.path());
    let worker = line_of(&suite.leaky(), "leak_check::spawn(async move {");
    let markdown = dir.path().join("step-summary.md");

    // 1. The whole workspace, in the richest mode.
    let mut command = bin(&suite.ws);
    command
        .arg("leak-check")
        .env("CARGO_TARGET_DIR", shared_target())
        .env("GITHUB_STEP_SUMMARY", &markdown);
    let out = run(&mut command);
    out.expect_code(1, "leaks and failures")
        .expect_stdout(
            &format!(
                "  1. crates/app/tests/leaky.rs:{worker}:5  [new]\n     in start_worker: leak_check::spawn(async move {{\n     2 tasks in 2 tests: 2 waiting\n"
            ),
            "the site two tests leak at comes first",
        )
        .expect_stdout(
            "in plain_spawn: tokio::spawn(std::future::pending::<()>());",
            "with tokio_unstable, plain tokio::spawn tasks have their site",
        )
        .expect_stdout("5 tests leaked 5 tasks at 4 sites", "the headline")
        .expect_stderr("cargo test with --cfg tokio_unstable", "the mode")
        .expect_stderr("leak-check: running tests/leaky.rs (", "plain progress lines")
        .expect_stderr("leak-check: done in ", "the progress's last line");
    let failures = section(&out, "failed for other reasons than a leak (3):");
    assert!(
        failures.contains("\n    other::fails_and_leaks (and it leaked)"),
        "a test whose own assertion failed is a failure, though it leaked too: {failures}"
    );
    assert!(
        failures.contains("\n    other::fails_plainly\n"),
        "{failures}"
    );
    assert!(
        failures.contains("\n    other::hangs (timed out after 300 ms"),
        "{failures}"
    );
    assert!(
        !failures.contains("forgets"),
        "leaking tests are not other failures: {failures}"
    );
    if taskdumps_here() {
        out.expect_stderr(
            "task dumps (--features leak-check/taskdump)",
            "the taskdump feature is on",
        );
        let log = fs::read_to_string(shared_target().join("leak-check/output.log")).unwrap();
        assert!(
            log.contains("where it is stuck"),
            "the reports have async backtraces"
        );
    }
    let reports = fs::read_to_string(suite.report()).unwrap();
    assert_eq!(
        reports.lines().count(),
        6,
        "five leaks and a hang: {reports}"
    );
    let markdown = fs::read_to_string(&markdown).unwrap();
    assert!(
        markdown.contains(&format!(
            "| `crates/app/tests/leaky.rs:{worker}:5`<br>in `start_worker`: `leak_check::spawn(async move {{` | 2: "
        )) && markdown.contains(" | 2 | 2 waiting | new |\n"),
        "{markdown}"
    );

    // 2. A package that does not depend on leak-check: no feature for it, and nothing leaks.
    let out = suite.run(&["-p", "plain"]);
    out.expect_code(0, "-p plain")
        .expect_stdout("leak-check: no test leaked", "the headline")
        .expect_stdout("leak-check: ok", "the verdict");
    if taskdumps_here() {
        out.expect_stderr(
            "no task dumps (the packages tested do not depend on leak-check)",
            "no feature asked of a package without leak-check",
        );
    }

    // 3. Clean tests pass clean.
    suite
        .run(&["-p", "app", "--test", "clean"])
        .expect_code(0, "the clean tests")
        .expect_stdout("leak-check: no test leaked", "nothing leaked");

    // 4. The leaks, written as the baseline: nothing but leaks failed, so it exits 0. Under
    // GitHub Actions, leak-check's annotations reach stdout through the captured output.
    let baseline = suite.ws.join("leaks.txt");
    let mut command = bin(&suite.ws);
    command
        .args(["leak-check", "-p", "app", "--test", "leaky"])
        .args(["--write-baseline", "leaks.txt"])
        .env("CARGO_TARGET_DIR", shared_target())
        .env("GITHUB_ACTIONS", "true");
    run(&mut command)
        .expect_code(0, "--write-baseline")
        .expect_stdout("(wrote 4 baseline entries to leaks.txt)", "the verdict")
        .expect_stdout(
            &format!("\n::error file=crates/app/tests/leaky.rs,line={worker},col=5,title="),
            "the annotation of the worker's site",
        );
    assert_eq!(
        entries(&baseline),
        [
            "forgets_it_too | crates/app/tests/leaky.rs | start_worker | leak_check::spawn(async move {",
            "forgets_the_sender | crates/app/tests/leaky.rs | start_worker | leak_check::spawn(async move {",
            "plain_spawn | crates/app/tests/leaky.rs | plain_spawn | tokio::spawn(std::future::pending::<()>());",
            "waits_forever | crates/app/tests/leaky.rs | waits_forever | leak_check::spawn(std::future::pending::<()>());",
        ]
    );

    // 5. Lines above the spawns move; run from the package's folder: still known.
    let source = fs::read_to_string(suite.leaky()).unwrap();
    fs::write(suite.leaky(), format!("// one\n// two\n\n{source}")).unwrap();
    let out = suite.run_in(
        "crates/app",
        &["--test", "leaky", "--baseline", "../../leaks.txt"],
    );
    out.expect_code(0, "every leak is known")
        .expect_stdout(
            &format!("1. crates/app/tests/leaky.rs:{}:5  [known]", worker + 3),
            "the site moved, the entry still matches",
        )
        .expect_stdout("0 new, 4 known; 0 fixed", "the totals");

    // 6. waits_forever is fixed, and a new leaking test comes without the attribute:
    // annotate adds it, and the run catches the leak beside the baseline.
    let source = fs::read_to_string(suite.leaky()).unwrap().replace(
        "    leak_check::spawn(std::future::pending::<()>());\n",
        "    leak_check::spawn(std::future::pending::<()>()).abort();\n",
    );
    let source = format!(
        "{source}\n#[tokio::test]\nasync fn new_leak() {{\n    let _never = leak_check::Builder::new().name(\"never\").spawn(std::future::pending::<()>());\n}}\n"
    );
    fs::write(suite.leaky(), source).unwrap();
    let new_test = line_of(&suite.leaky(), "async fn new_leak");
    let out = suite.run(&["annotate"]);
    out.expect_code(0, "annotate");
    assert_eq!(
        out.stdout,
        format!("crates/app/tests/leaky.rs:{} new_leak\n", new_test - 1)
    );
    let out = suite.run(&["--test", "leaky", "-p", "app", "--baseline", "leaks.txt"]);
    out.expect_code(1, "a new leak beside the baseline")
        .expect_stdout(
            "in new_leak: spawn(std::future::pending::<()>());",
            "the new site",
        )
        .expect_stdout("1 task in 1 test: 1 stranded (named never)", "its name")
        .expect_stdout(
            "waits_forever | crates/app/tests/leaky.rs | waits_forever | leak_check::spawn(std::future::pending::<()>());",
            "the fixed entry",
        )
        .expect_stdout("1 new, 3 known; 1 fixed", "the totals")
        .expect_stdout("leak-check: FAILED: 1 new leak\n", "the verdict");
    assert!(
        section(&out, "fixed: 1 baseline entry no longer leaks").contains("waits_forever"),
        "{}",
        out.stdout
    );

    // 7. nextest: the same failures from its output, and the shards of a partitioned run give
    // the same leaks as the whole run.
    let nextest = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nextest {
        let out = suite.run(&["--nextest", "-p", "app", "--write-baseline", "whole.txt"]);
        out.expect_code(1, "nextest: other failures")
            .expect_stderr("cargo nextest run with --cfg tokio_unstable", "the mode");
        let failures = section(&out, "failed for other reasons than a leak (3):");
        assert!(
            failures.contains("\n    other::fails_and_leaks (and it leaked)"),
            "{failures}"
        );
        assert!(
            failures.contains("\n    other::fails_plainly\n"),
            "{failures}"
        );
        assert!(
            failures.contains("\n    other::hangs (timed out"),
            "{failures}"
        );
        let mut shards = Vec::new();
        for shard in ["1", "2"] {
            suite.run(&[
                "--nextest",
                "-p",
                "app",
                "--partition",
                &format!("count:{shard}/2"),
            ]);
            let copy = dir.path().join(format!("shard{shard}.jsonl"));
            fs::copy(suite.report(), &copy).unwrap();
            shards.push(copy.display().to_string());
        }
        let mut args = vec![
            "summary",
            "--write-baseline",
            "shards.txt",
            "--baseline",
            "leaks.txt",
        ];
        args.extend(shards.iter().map(String::as_str));
        let out = suite.run(&args);
        out.expect_code(1, "the shards' summary: a new leak and a hang")
            .expect_stdout("other failures: not known from reports alone", "says so")
            .expect_stdout("hangs (timed out after 300 ms", "the hang is known")
            .expect_stdout("2 new, 3 known; 1 fixed", "as the whole run");
        assert_eq!(
            entries(&suite.ws.join("shards.txt")),
            entries(&suite.ws.join("whole.txt")),
            "the shards hold every leak of the whole run"
        );
        assert_eq!(entries(&suite.ws.join("shards.txt")).len(), 5);
    } else {
        eprintln!("cargo-nextest is not installed: the nextest steps did not run");
    }

    // 8. Stable mode: plain tokio::spawn tasks are counted, without a site.
    let out = suite.run(&["--stable", "-p", "app", "--test", "leaky"]);
    out.expect_code(1, "--stable")
        .expect_stderr("stable mode", "the mode")
        .expect_stdout(
            "plain tokio::spawn, site unknown (build with --cfg tokio_unstable to see it)",
            "the untracked leak",
        )
        .expect_no_stdout("in plain_spawn: tokio::spawn(", "no site for it");
}
