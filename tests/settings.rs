//! The run-wide settings as a test binary sees them: a value that means nothing fails the test
//! with a message naming it, every accepted form works, and the reports for machines (JSON, CI
//! annotations) and people (colour) follow the environment.
//!
//! Each test here runs this binary again on an `#[ignore]`d target, with an environment of its
//! own: leak-check's variables, GitHub's and the colour conventions' are all cleared first, so
//! the machine's own environment (a CI that sets `GITHUB_ACTIONS` or `NO_COLOR`) changes
//! nothing.

use std::path::Path;
use std::process::Command;

use leak_check::leak_check;

// --- Targets --------------------------------------------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "run by the settings tests"]
async fn clean_async() {
    println!("the body ran");
}

#[leak_check]
#[test]
#[ignore = "run by the settings tests"]
fn clean_sync() {
    println!("the body ran");
}

#[leak_check]
#[tokio::test]
#[should_panic(expected = "expected failure")]
#[ignore = "run by the settings tests"]
async fn clean_should_panic() {
    panic!("expected failure");
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by the settings tests"]
async fn leaks() {
    // site(leaks): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by the settings tests"]
async fn leaks_untracked() {
    tokio::spawn(std::future::pending::<()>());
}

mod inner {
    use leak_check::leak_check;

    /// The same name as the test at the crate's root: the JSON report tells them apart.
    #[leak_check]
    #[tokio::test]
    #[ignore = "leaks on purpose; run by the settings tests"]
    async fn leaks() {
        leak_check::spawn(std::future::pending::<()>());
    }
}

// --- Running them ---------------------------------------------------------------------------

struct Run {
    passed: bool,
    stdout: String,
    output: String,
}

/// Runs the ignored targets that `filter` matches exactly, with only `envs` set of the
/// variables that matter here.
fn run(filter: &str, envs: &[(&str, &str)]) -> Run {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--ignored", "--exact", filter, "--test-threads", "1"]);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("LEAK_CHECK")
            || key.starts_with("GITHUB_")
            || ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR"].contains(&&*key)
        {
            command.env_remove(&*key);
        }
    }
    command
        .env("RUST_BACKTRACE", "0")
        .envs(envs.iter().copied());
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let output = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(output.contains("running 1 test"), "{filter}:\n{output}");
    Run {
        passed: out.status.success(),
        stdout,
        output,
    }
}

/// This file's `leak_check::spawn` below the marker `// site(label)`, as `file:line:col`.
fn site_of(label: &str) -> (String, u32, u32) {
    let source = include_str!("settings.rs");
    let marker = format!("// site({label}): ");
    let lines: Vec<&str> = source.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.trim_start().starts_with(&marker))
        .unwrap();
    let column = lines[at + 1].find("leak_check::spawn").unwrap();
    ("tests/settings.rs".into(), at as u32 + 2, column as u32 + 1)
}

// --- A value that means nothing fails the test ----------------------------------------------

#[test]
fn a_bad_value_fails_each_form_of_test_with_the_variable_its_value_and_an_example() {
    for (key, value, example) in [
        ("LEAK_CHECK", "loud", "such as LEAK_CHECK=warn"),
        (
            "LEAK_CHECK_GRACE_MS",
            "1x",
            "such as LEAK_CHECK_GRACE_MS=250ms",
        ),
        (
            "LEAK_CHECK_TIMEOUT_MS",
            "soon",
            "such as LEAK_CHECK_TIMEOUT_MS=30s",
        ),
        (
            "LEAK_CHECK_ALLOW_UNTRACKED",
            "enabled",
            "such as LEAK_CHECK_ALLOW_UNTRACKED=1",
        ),
    ] {
        let message = format!("leak-check: {key}=\"{value}\" is not a valid value");
        for target in ["clean_async", "clean_sync"] {
            let run = run(target, &[(key, value)]);
            assert!(!run.passed, "{target} with {key}={value}:\n{}", run.output);
            assert!(run.output.contains(&message), "{}", run.output);
            assert!(run.output.contains(example), "{}", run.output);
            assert!(
                !run.output.contains("the body ran"),
                "the body must not run with settings that mean nothing:\n{}",
                run.output
            );
        }
        // Without the bad value, the same targets pass: it was the value that failed them.
        assert!(run("clean_async", &[]).passed);
    }
}

#[test]
fn a_bad_value_fails_a_should_panic_test_too() {
    let run = run("clean_should_panic", &[("LEAK_CHECK_GRACE_MS", "1x")]);
    assert!(!run.passed, "{}", run.output);
    assert!(
        run.output.contains("did not panic as expected"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains("leak-check: LEAK_CHECK_GRACE_MS=\"1x\" is not a valid value"),
        "{}",
        run.output
    );
    assert!(self::run("clean_should_panic", &[]).passed);
}

// --- Every accepted form works ----------------------------------------------------------------

#[test]
fn accepted_forms_take_effect() {
    // Mode, in any case.
    let warned = run("leaks", &[("LEAK_CHECK", "WARN")]);
    assert!(warned.passed, "{}", warned.output);
    assert!(warned.output.contains("leaked 1 task"), "{}", warned.output);
    assert!(run("leaks", &[("LEAK_CHECK", "Off")]).passed);
    assert!(!run("leaks", &[("LEAK_CHECK", "FAIL")]).passed);

    // Switches, in any of their words.
    for yes in ["1", "true", "Yes", "ON"] {
        let run = run("leaks_untracked", &[("LEAK_CHECK_ALLOW_UNTRACKED", yes)]);
        assert!(run.passed, "{yes}:\n{}", run.output);
    }
    for no in ["0", "False", "no", "off"] {
        let run = run("leaks_untracked", &[("LEAK_CHECK_ALLOW_UNTRACKED", no)]);
        assert!(!run.passed, "{no}:\n{}", run.output);
    }

    // Durations, bare or with a unit: the check waits at least that long (the default, 100 ms,
    // is shorter than each).
    for (grace, ms) in [("250", 250), ("0.3s", 300), ("350ms", 350)] {
        let report = report_of("leaks", &[("LEAK_CHECK_GRACE_MS", grace)]);
        let waited = report[0]["waited_ms"].as_u64().unwrap();
        assert!(waited >= ms, "{grace}: waited {waited} ms");
    }
}

/// The JSON lines that the run of `target` with `envs` appends to a file of its own.
fn report_of(target: &str, envs: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let file = scratch_file(target);
    let mut envs = envs.to_vec();
    envs.push(("LEAK_CHECK_REPORT", file.to_str().unwrap()));
    run(target, &envs);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A path for a report file, in a folder of this process's own; no file is there yet.
fn scratch_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("leak-check-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.jsonl", name.replace("::", "-")));
    let _ = std::fs::remove_file(&file);
    file
}

// --- JSON: the full test path, keys in the documented order -----------------------------------

#[test]
fn json_names_the_test_by_its_full_path_with_keys_in_order() {
    let file = scratch_file("json");
    let report = ("LEAK_CHECK_REPORT", file.to_str().unwrap());
    assert!(!run("leaks", &[report]).passed);
    assert!(!run("inner::leaks", &[report]).passed);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (file_name, line, column) = site_of("leaks");
    // The crate (test binary) first, so that tests of the same name in tests/a.rs and
    // tests/b.rs, or in two modules, are told apart; the keys as the README lists them.
    let expected_start = r#"{"test":"settings::leaks","outcome":"leaked","mode":"fail","expects_panic":false,"timeout_ms":null,"waited_ms":"#;
    assert!(lines[0].starts_with(expected_start), "{}", lines[0]);
    let site_start = format!(
        r#","sites":[{{"site":"{file_name}:{line}:{column}","file":"{file_name}","line":{line},"column":{column},"count":1,"names":[],"states":{{"#
    );
    assert!(lines[0].contains(&site_start), "{}", lines[0]);
    let order = [
        "\"test\"",
        "\"waited_ms\"",
        "\"tasks\"",
        "\"untracked\"",
        "\"untracked_blocking\"",
        "\"allowed\"",
        "\"sites\"",
        "\"states\"",
        "\"chains\"",
        "\"ages_ms\"",
    ];
    let at: Vec<usize> = order.iter().map(|k| lines[0].find(k).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{}", lines[0]);
    assert!(
        lines[1].starts_with(r#"{"test":"settings::inner::leaks","#),
        "{}",
        lines[1]
    );
    let _ = std::fs::remove_file(&file);
}

// --- Annotations: paths from the repository's root ----------------------------------------------

#[test]
fn annotation_paths_start_at_the_repository_even_above_the_cargo_workspace() {
    // As if this cargo workspace were a folder of a larger repository: the repository is its
    // parent folder.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = workspace.parent().unwrap();
    let folder = workspace.file_name().unwrap().to_str().unwrap();
    let (file, line, column) = site_of("leaks");
    let expected = format!("::error file={folder}/{file},line={line},col={column},");
    let run = run(
        "leaks",
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_WORKSPACE", repo.to_str().unwrap()),
        ],
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with(&expected)),
        "expected `{expected}...`:\n{}",
        run.output
    );

    // And when the repository is the cargo workspace, as usual.
    let expected = format!("::error file={file},line={line},col={column},");
    let run = self::run(
        "leaks",
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_WORKSPACE", workspace.to_str().unwrap()),
        ],
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with(&expected)),
        "expected `{expected}...`:\n{}",
        run.output
    );
}

// --- Colour ---------------------------------------------------------------------------------

#[test]
fn clicolor_force_colours_a_pipe_and_no_color_wins() {
    let warn = ("LEAK_CHECK", "warn");
    let plain = run("leaks", &[warn]);
    assert!(plain.passed && plain.output.contains("leaked 1 task"));
    assert!(!plain.output.contains('\x1b'), "{}", plain.output);

    let forced = run("leaks", &[warn, ("CLICOLOR_FORCE", "1")]);
    assert!(forced
        .output
        .contains("\x1b[1;33mleak-check: test `leaks` leaked 1 task"));

    let zero = run("leaks", &[warn, ("CLICOLOR_FORCE", "0")]);
    assert!(!zero.output.contains('\x1b'), "{}", zero.output);

    let both = run("leaks", &[warn, ("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(both.output.contains("leaked 1 task"));
    assert!(!both.output.contains('\x1b'), "{}", both.output);
}
