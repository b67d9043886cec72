//! The binary on inputs that need no build: usage errors, `summary` over report files such as
//! CI shards write (with a baseline round trip across moved lines), and `annotate` on a
//! workspace in a subfolder of a git repository.

mod common;

use std::fs;
use std::path::Path;

use common::{bin, git_init, run, write_files};

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["leak-check", "summary"],
        &["leak-check", "summary", "--bogus", "r.jsonl"],
        &["leak-check", "summary", "--baseline"],
        &["leak-check", "--baseline"],
        &["leak-check", "annotate", "--bogus"],
        &["leak-check", "annotate", "stray"],
    ];
    for args in cases {
        let out = run(bin(dir.path()).args(*args));
        out.expect_code(2, &format!("{args:?}"))
            .expect_stderr("error: ", "a usage error says so");
    }
    // A baseline that is not one is refused before anything runs.
    fs::write(dir.path().join("bad.txt"), "# comment\nnot an entry\n").unwrap();
    fs::write(dir.path().join("r.jsonl"), "").unwrap();
    let out =
        run(bin(dir.path()).args(["leak-check", "summary", "--baseline", "bad.txt", "r.jsonl"]));
    out.expect_code(2, "a bad baseline")
        .expect_stderr("bad.txt:2: not a baseline entry", "which line");
    // A report file that does not exist.
    run(bin(dir.path()).args(["leak-check", "summary", "missing.jsonl"]))
        .expect_code(2, "a missing report");
}

#[test]
fn help_and_version_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    // Called by cargo (the subcommand's name first) or directly.
    for args in [
        &["leak-check", "--help"][..],
        &["--help"],
        &["leak-check", "help"],
    ] {
        run(bin(dir.path()).args(args))
            .expect_code(0, "help")
            .expect_stdout("cargo leak-check summary", "the usage")
            .expect_stdout("Exit status:", "the exit rule");
    }
    run(bin(dir.path()).args(["leak-check", "-V"]))
        .expect_code(0, "version")
        .expect_stdout("cargo-leak-check 0.", "the version");
}

/// A package whose source the reports point into: summary reads the spawn calls from it.
const SOURCE: &str = "\
use leak_check::leak_check;

fn start() {
    leak_check::spawn(async move { loop {} });
}
fn other() {
    let _h = tokio::spawn(std::future::pending::<()>());
}
fn third() {
    let _h = leak_check::spawn(std::future::ready(()));
}
";

fn report(test: &str, sites: &[(&str, u64, &str, &str)], extra: &str) -> String {
    let sites: Vec<String> = sites
        .iter()
        .map(|(site, count, states, chains)| {
            let (rest, column) = site.rsplit_once(':').unwrap();
            let (file, line) = rest.rsplit_once(':').unwrap();
            format!(
                r#"{{"site":"{site}","file":"{file}","line":{line},"column":{column},"count":{count},"names":[],"states":{states},"chains":{chains},"ages_ms":[],"a_key_from_later":[1]}}"#
            )
        })
        .collect();
    let tasks: u64 = sites.len() as u64;
    format!(
        r#"{{"test":"{test}","outcome":"leaked","mode":"fail","timeout_ms":null,"waited_ms":100,"tasks":{tasks},"untracked":0,"allowed":0,"sites":[{}]{extra}}}"#,
        sites.join(",")
    )
}

#[test]
fn summary_of_shards_and_a_baseline_across_moved_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write_files(
        ws,
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
            ),
            ("src/lib.rs", ""),
            ("tests/a.rs", SOURCE),
        ],
    );
    let one = "tests/a.rs:4:5";
    let two = "tests/a.rs:7:14";
    let shard1 = [
        report(
            "a::t1",
            &[(one, 2, r#"{"waiting":2}"#, "[[]]")],
            r#","new_key":{"x":true}"#,
        ),
        report(
            "a::t2",
            &[
                (one, 1, r#"{"busy":1}"#, "[[]]"),
                (two, 1, r#"{"pending":1}"#, r#"[["tests/a.rs:4:5"]]"#),
            ],
            "",
        ),
        String::new(),
        "this line is not JSON".to_owned(),
    ]
    .join("\n");
    let shard2 = [
        // Keys missing: file, line and column come from the site.
        r#"{"test":"a::t3","outcome":"leaked","sites":[{"site":"tests/a.rs:4:5","count":1,"names":["worker"],"states":{"waiting":1}}]}"#.to_owned(),
        report("a::t4", &[(one, 1, r#"{"stranded":1}"#, "[[]]")], ""),
        r#"{"test":"a::t5","outcome":"leaked","tasks":2,"untracked":2,"sites":[]}"#.to_owned(),
        r#"{"test":"a::hangs","outcome":"timed_out","timeout_ms":500,"tasks":1,"sites":[{"site":"tests/a.rs:7:14","count":1}]}"#.to_owned(),
    ]
    .join("\n")
        + "\n";
    fs::write(ws.join("shard1.jsonl"), shard1).unwrap();
    fs::write(ws.join("shard2.jsonl"), shard2).unwrap();
    let markdown = ws.join("step-summary.md");

    let out = run(bin(ws)
        .args(["leak-check", "summary", "shard1.jsonl", "shard2.jsonl"])
        .env("GITHUB_STEP_SUMMARY", &markdown));
    out.expect_code(1, "a hang fails the run")
        .expect_stderr("shard1.jsonl:4:", "the line that is not JSON is named");
    let expected = "\
leak-check: 5 tests leaked 8 tasks at 3 sites

  1. tests/a.rs:4:5  [new]
     in start: leak_check::spawn(async move { loop {} });
     5 tasks in 4 tests: 3 waiting, 1 busy, 1 stranded (named worker)
     spawned by: test body
     tests: a::t1, a::t2, a::t3 and 1 more

  2. plain tokio::spawn, site unknown (build with --cfg tokio_unstable to see it)  [new]
     2 tasks in 1 test
     tests: a::t5

  3. tests/a.rs:7:14  [new]
     in other: tokio::spawn(std::future::pending::<()>());
     1 task in 1 test: 1 pending
     spawned by: test body -> task spawned at tests/a.rs:4:5
     tests: a::t2

totals: 6 leaks (one test at one site) in 5 tests, 8 tasks at 3 sites

other failures: not known from reports alone (they list leaks and hangs only); these tests hung:
    a::hangs (timed out after 500 ms: leak-check's hang guard)

leak-check: FAILED: 6 new leaks, 1 other failure
";
    assert_eq!(out.stdout, expected);
    let markdown = fs::read_to_string(&markdown).unwrap();
    assert!(
        markdown.contains(
            "| site | tests | tasks | states | baseline |\n| --- | --- | ---: | --- | --- |\n\
             | `tests/a.rs:4:5`<br>in `start`: `leak_check::spawn(async move { loop {} });` | 4: `a::t1`, `a::t2`, `a::t3` and 1 more | 5 | 3 waiting, 1 busy, 1 stranded | new |\n"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("- `a::hangs (timed out after 500 ms: leak-check's hang guard)` hung")
    );

    // The baseline of these leaks: the hang still fails the run.
    let out = run(bin(ws).args([
        "leak-check",
        "summary",
        "--write-baseline",
        "leaks.txt",
        "shard1.jsonl",
        "shard2.jsonl",
    ]));
    out.expect_code(
        1,
        "only leaks are written to the baseline; the hang still fails",
    )
    .expect_stdout(
        "(wrote 6 baseline entries to leaks.txt)",
        "the verdict says so",
    );
    let baseline = fs::read_to_string(ws.join("leaks.txt")).unwrap();
    let entries: Vec<&str> = baseline.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        entries,
        [
            "a::t1 | tests/a.rs | start | leak_check::spawn(async move { loop {} });",
            "a::t2 | tests/a.rs | other | tokio::spawn(std::future::pending::<()>());",
            "a::t2 | tests/a.rs | start | leak_check::spawn(async move { loop {} });",
            "a::t3 | tests/a.rs | start | leak_check::spawn(async move { loop {} });",
            "a::t4 | tests/a.rs | start | leak_check::spawn(async move { loop {} });",
            "a::t5 | (untracked tasks)",
        ]
    );
    assert!(baseline.starts_with("# leak-check baseline"));

    // Lines move: two lines above every spawn, and the sites' lines with them. t4 no longer
    // leaks, and t6 leaks at a new site.
    fs::write(
        ws.join("tests/a.rs"),
        format!("// moved\n// down\n{SOURCE}"),
    )
    .unwrap();
    let (one, two, three) = ("tests/a.rs:6:5", "tests/a.rs:9:14", "tests/a.rs:12:14");
    let moved = [
        report("a::t1", &[(one, 2, r#"{"waiting":2}"#, "[[]]")], ""),
        report(
            "a::t2",
            &[
                (one, 1, r#"{"busy":1}"#, "[[]]"),
                (two, 1, r#"{"pending":1}"#, "[]"),
            ],
            "",
        ),
        report("a::t3", &[(one, 1, r#"{"waiting":1}"#, "[[]]")], ""),
        r#"{"test":"a::t5","outcome":"leaked","tasks":2,"untracked":2,"sites":[]}"#.to_owned(),
    ]
    .join("\n");
    fs::write(ws.join("moved.jsonl"), &moved).unwrap();
    let moved_markdown = ws.join("moved.md");
    let out = run(bin(ws)
        .args([
            "leak-check",
            "summary",
            "--baseline",
            "leaks.txt",
            "moved.jsonl",
        ])
        .env("GITHUB_STEP_SUMMARY", &moved_markdown));
    out.expect_code(0, "every leak is in the baseline, though its line moved")
        .expect_stdout("1. tests/a.rs:6:5  [known]", "the moved site is known")
        .expect_stdout("3. tests/a.rs:9:14  [known]", "so is the other")
        .expect_stdout(
            "fixed: 1 baseline entry no longer leaks; delete it from leaks.txt:\n    a::t4 | tests/a.rs | start | leak_check::spawn(async move { loop {} });\n",
            "the fixed entry",
        )
        .expect_stdout("0 new, 5 known; 1 fixed", "the totals")
        .expect_stdout("leak-check: ok", "the verdict");
    let moved_markdown = fs::read_to_string(moved_markdown).unwrap();
    assert!(
        moved_markdown.contains(
            "\n- `a::t4 | tests/a.rs | start | leak_check::spawn(async move { loop {} });`\n"
        ),
        "outside a table, a | stays as it is: {moved_markdown}"
    );
    assert!(
        moved_markdown.contains("| 4 | 3 waiting, 1 busy | known |\n"),
        "{moved_markdown}"
    );

    let with_new = format!(
        "{moved}\n{}\n",
        report("a::t6", &[(three, 1, r#"{"waiting":1}"#, "[[]]")], "")
    );
    fs::write(ws.join("new.jsonl"), with_new).unwrap();
    let out = run(bin(ws).args([
        "leak-check",
        "summary",
        "--baseline",
        "leaks.txt",
        "new.jsonl",
    ]));
    out.expect_code(1, "a leak beside the baseline fails")
        .expect_stdout(
            "tests/a.rs:12:14  [new]\n     in third: leak_check::spawn(std::future::ready(()));",
            "the new one",
        )
        .expect_stdout("tests/a.rs:6:5  [known]", "the known one beside it")
        .expect_stdout("1 new, 5 known; 1 fixed", "the totals")
        .expect_stdout("leak-check: FAILED: 1 new leak\n", "the verdict");
}

/// A test file with every case annotate must tell apart.
const CASES: &str = r##"use leak_check::leak_check;

#[tokio::test]
async fn plain() {}

/// Documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic]
async fn with_args() {}

#[leak_check]
#[tokio::test]
async fn checked() {}

#[tokio::test]
#[leak_check::leak_check(grace_ms = 5)]
async fn checked_below() {}

#[leak_check(off)]
#[tokio::test]
async fn opted_out() {}

#[cfg_attr(not(miri), tokio::test)]
async fn in_cfg_attr() {}

#[leak_check::leak_check]
mod covered {
    mod deeper {
        #[tokio::test]
        async fn by_the_module() {}
    }
}

mod inner {
	#[tokio::test]
	async fn deep() {
		let _ = "#[tokio::test] async fn in_a_string() {}";
	}
	// #[tokio::test]
	// async fn in_a_comment() {}
}

#[test]
fn sync_test() {}
"##;

const CASES_ANNOTATED: &str = r##"use leak_check::leak_check;

#[leak_check::leak_check]
#[tokio::test]
async fn plain() {}

/// Documented.
#[leak_check::leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic]
async fn with_args() {}

#[leak_check]
#[tokio::test]
async fn checked() {}

#[tokio::test]
#[leak_check::leak_check(grace_ms = 5)]
async fn checked_below() {}

#[leak_check(off)]
#[tokio::test]
async fn opted_out() {}

#[cfg_attr(not(miri), leak_check::leak_check)]
#[cfg_attr(not(miri), tokio::test)]
async fn in_cfg_attr() {}

#[leak_check::leak_check]
mod covered {
    mod deeper {
        #[tokio::test]
        async fn by_the_module() {}
    }
}

mod inner {
	#[leak_check::leak_check]
	#[tokio::test]
	async fn deep() {
		let _ = "#[tokio::test] async fn in_a_string() {}";
	}
	// #[tokio::test]
	// async fn in_a_comment() {}
}

#[test]
fn sync_test() {}
"##;

#[test]
fn annotate_adds_the_attribute_once_and_changes_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    git_init(dir.path());
    // The workspace is a subfolder of the repository.
    let ws = dir.path().join("rust");
    let leak_check = common::leak_check_dir();
    let dev_dependency = format!(
        "[dev-dependencies]\nleak-check = {{ path = {:?} }}\n",
        leak_check.display().to_string()
    );
    let renamed = format!(
        "[dev-dependencies]\nlc = {{ package = \"leak-check\", path = {:?} }}\n",
        leak_check.display().to_string()
    );
    let manifest = |name: &str, deps: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{deps}")
    };
    let unit = "pub fn f() {}\n\n#[cfg(test)]\nmod tests {\n    #[tokio::test]\n    async fn unit() {}\n}\n";
    let crlf = "#[tokio::test]\r\nasync fn windows() {}\r\n";
    write_files(
        &ws,
        &[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"app\", \"renamed\", \"nodep\"]\nresolver = \"2\"\n",
            ),
            ("app/Cargo.toml", &manifest("app", &dev_dependency)),
            ("app/src/lib.rs", unit),
            ("app/tests/cases.rs", CASES),
            ("app/tests/nested/crlf.rs", crlf),
            ("renamed/Cargo.toml", &manifest("renamed", &renamed)),
            ("renamed/src/lib.rs", ""),
            (
                "renamed/tests/r.rs",
                "#[lc::leak_check]\n#[tokio::test]\nasync fn done() {}\n\n#[tokio::test]\nasync fn r() {}\n",
            ),
            ("nodep/Cargo.toml", &manifest("nodep", "")),
            ("nodep/src/lib.rs", ""),
            ("nodep/tests/n.rs", "#[tokio::test]\nasync fn n() {}\n"),
            // Not a member: left alone.
            ("outside/tests/o.rs", "#[tokio::test]\nasync fn o() {}\n"),
            // Does not parse: skipped with a word.
            ("app/tests/broken.rs", "#[tokio::test]\nasync fn broken( {}\n"),
        ],
    );

    let listed = "\
app/src/lib.rs:5 tests::unit
app/tests/cases.rs:3 plain
app/tests/cases.rs:7 with_args
app/tests/cases.rs:23 in_cfg_attr
app/tests/cases.rs:35 inner::deep
app/tests/nested/crlf.rs:1 windows
nodep/tests/n.rs:1 n
renamed/tests/r.rs:5 r
";
    // From a member's folder, the whole workspace is checked.
    let out = run(bin(&ws.join("app")).args(["leak-check", "annotate", "--check"]));
    out.expect_code(1, "--check with unchecked tests")
        .expect_stderr("8 #[tokio::test] functions are not checked", "the count")
        .expect_stderr(
            "skipped app/tests/broken.rs:2:",
            "the file that does not parse",
        );
    assert_eq!(out.stdout, listed);
    assert_eq!(
        fs::read_to_string(ws.join("app/tests/cases.rs")).unwrap(),
        CASES,
        "--check changes nothing"
    );

    let out = run(bin(&ws).args(["leak-check", "annotate"]));
    out.expect_code(0, "annotate")
        .expect_stderr("added the attribute to 8 tests in 5 files", "the count")
        .expect_stderr(
            "package `nodep` does not depend on leak-check",
            "the warning",
        );
    assert_eq!(out.stdout, listed);
    let read = |path: &str| fs::read_to_string(ws.join(path)).unwrap();
    assert_eq!(read("app/tests/cases.rs"), CASES_ANNOTATED);
    assert_eq!(
        read("app/src/lib.rs"),
        "pub fn f() {}\n\n#[cfg(test)]\nmod tests {\n    #[leak_check::leak_check]\n    #[tokio::test]\n    async fn unit() {}\n}\n"
    );
    assert_eq!(
        read("app/tests/nested/crlf.rs"),
        "#[leak_check::leak_check]\r\n#[tokio::test]\r\nasync fn windows() {}\r\n"
    );
    assert_eq!(
        read("renamed/tests/r.rs"),
        "#[lc::leak_check]\n#[tokio::test]\nasync fn done() {}\n\n#[lc::leak_check]\n#[tokio::test]\nasync fn r() {}\n"
    );
    assert_eq!(
        read("outside/tests/o.rs"),
        "#[tokio::test]\nasync fn o() {}\n"
    );
    assert_eq!(
        read("app/tests/broken.rs"),
        "#[tokio::test]\nasync fn broken( {}\n"
    );

    // Twice changes nothing.
    let before = snapshot(&ws);
    let out = run(bin(&ws).args(["leak-check", "annotate"]));
    out.expect_code(0, "a second annotate").expect_stderr(
        "added the attribute to 0 tests in 0 files",
        "nothing to add",
    );
    assert_eq!(out.stdout, "");
    assert_eq!(snapshot(&ws), before, "the second run changed a file");
    run(bin(&ws).args(["leak-check", "annotate", "--check"]))
        .expect_code(0, "--check after annotate")
        .expect_stderr("every #[tokio::test] is checked", "says so");
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.display().to_string(), fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}
