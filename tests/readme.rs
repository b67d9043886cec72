//! What the README shows is what the code does: its 30-second example is this file's
//! `mailer` module, letter for letter, and really fails with the report the README shows; its
//! fix is the README's diff applied, and really passes; its other Rust blocks are modules here
//! too, compiled as tests and run; the demo really prints the report the README shows. The
//! crate docs' example is here as well, and, edited the way its comment invites, fails with a
//! report rather than hanging. (Every Rust block in the README also compiles as a doctest of the
//! library: `ReadmeDoctests` in src/lib.rs.)

mod support;

/// The README's 30-second example with one line added, `#[ignore]` above the test, since it leaks
/// on purpose (`the_example_is_the_readme_block` checks that nothing else differs). Only the
/// runner below runs it, in a child process.
#[path = "readme/mailer.rs"]
mod mailer;

/// The example's fixed twin: the README's block with the README's diff applied
/// (`the_fixed_twin_is_the_readme_diff_applied`). It runs with the rest of the suite, and fails
/// it if it leaks.
#[path = "readme/mailer_fixed.rs"]
mod mailer_fixed;

/// The README's three forms of the attribute, as the README shows them
/// (`every_rust_block_is_a_module_here`): compiled as tests, and run with the rest.
#[path = "readme/forms.rs"]
mod forms;

/// The README's checked module, likewise.
#[path = "readme/module.rs"]
mod module;

/// The example of the crate's docs (src/lib.rs), as they show it (`the_crate_docs_example_is_here`).
#[path = "readme/crate_doc.rs"]
mod crate_doc;

/// The same, edited as its comment invites: without the line that stops the flusher. It must
/// fail with a report, not hang.
#[path = "readme/crate_doc_edited.rs"]
#[allow(unused_variables)] // the flusher's handle, no longer used without that line
mod crate_doc_edited;

/// The demo, `cargo run --example push_notifications`, whose scenarios the last test runs here.
#[path = "../examples/push_notifications.rs"]
#[allow(dead_code)] // its `main` is the example's, not called here
mod demo;

use std::panic;

use support::{assert_reports, expect_failure, run_tests};

const README: &str = include_str!("../README.md");
const MAILER: &str = include_str!("readme/mailer.rs");
const MAILER_FIXED: &str = include_str!("readme/mailer_fixed.rs");
const FORMS: &str = include_str!("readme/forms.rs");
const MODULE: &str = include_str!("readme/module.rs");
const LIB: &str = include_str!("../src/lib.rs");
const CRATE_DOC: &str = include_str!("readme/crate_doc.rs");
const CRATE_DOC_EDITED: &str = include_str!("readme/crate_doc_edited.rs");
const CI: &str = include_str!("../.ci/run");

/// The one line `readme/mailer.rs` has that the README's block does not.
const IGNORE_LINE: &str =
    "#[ignore = \"leaks on purpose: tests/readme.rs runs it and reads its report\"]\n";

/// Whether reports carry task dumps (`--cfg tokio_unstable`, the `taskdump` feature, Linux): then
/// the hints speak to what the dump shows, not what the README's stable reports show.
const TASK_DUMPS: bool = cfg!(all(
    tokio_unstable,
    feature = "taskdump",
    target_os = "linux",
    any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "s390x"
    )
));

/// A report the README shows, less its hints where this build's reports carry task dumps.
fn without_hints(shown: &str) -> String {
    shown
        .lines()
        .filter(|line| !(TASK_DUMPS && line.trim_start().starts_with("hint: ")))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The path the README's report gives the example: where a reader would put it.
const README_PATH: &str = "tests/mailer.rs";

/// A fenced code block of the README.
struct Block {
    /// What follows the opening fence: `rust`, `text`...
    info: String,
    /// The lines between the fences, each ending in `\n`.
    text: String,
}

/// The fenced code blocks of `markdown`, in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    text: String::new(),
                })
            }
            (Some(_), Some(rest)) => {
                assert!(rest.trim().is_empty(), "a fence inside a block: {line}");
                blocks.push(open.take().unwrap());
            }
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "the README ends inside a code block");
    blocks
}

/// The README's section under `## {heading}`, up to the next `## `.
fn section(heading: &str) -> &'static str {
    let start = README
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section `## {heading}` in the README"));
    let rest = &README[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |at| at + 4);
    &rest[..end]
}

/// The only block of `section` whose info string is `info`.
fn only_block(section: &str, info: &str) -> String {
    let mut found: Vec<Block> = blocks(section)
        .into_iter()
        .filter(|b| b.info == info)
        .collect();
    assert_eq!(found.len(), 1, "expected one `{info}` block in:\n{section}");
    found.remove(0).text
}

/// The 30-second example as the README shows it.
fn example() -> String {
    only_block(section("In 30 seconds"), "rust")
}

/// `base` with a unified-style diff applied: lines starting with ` ` are context, `-` removed,
/// `+` added. The diff is one hunk, whose old text must occur exactly once in `base`.
fn apply(diff: &str, base: &str) -> String {
    let (mut old, mut new) = (String::new(), String::new());
    for line in diff.lines() {
        let (marker, text) = line.split_at(1);
        match marker {
            " " => {
                old.push_str(text);
                old.push('\n');
                new.push_str(text);
                new.push('\n');
            }
            "-" => {
                old.push_str(text);
                old.push('\n');
            }
            "+" => {
                new.push_str(text);
                new.push('\n');
            }
            _ => panic!("not a diff line: {line}"),
        }
    }
    assert_eq!(
        base.matches(&old).count(),
        1,
        "the diff's old lines are not found once in the example:\n{old}"
    );
    base.replacen(&old, &new, 1)
}

/// The `file:line:col` of the example's spawn in `file`, found in its text: the column is where
/// `leak_check::spawn` starts, which is where `#[track_caller]` locations point.
fn spawn_site(file: &str, source: &str) -> String {
    let call = "leak_check::spawn(";
    let matches: Vec<(usize, usize)> = source
        .lines()
        .enumerate()
        .filter_map(|(at, line)| line.find(call).map(|column| (at + 1, column + 1)))
        .collect();
    assert_eq!(matches.len(), 1, "expected one `{call}` in {file}");
    format!("{file}:{}:{}", matches[0].0, matches[0].1)
}

/// A report line with what changes from run to run made the same: durations (`100 ms`) become
/// `N ms`, the line of ages and poll counts becomes `age ...`, the test's path in the headline
/// becomes its name (the README's example is not in a module; here it is), and a backtrace frame
/// in a dependency keeps its name only.
fn normalize(line: &str) -> String {
    let line = line.trim_end();
    // A frame in a dependency (its path shortened to `.../`): its name, not where it is, which
    // moves with the dependency's version.
    let line = line.split_once(" at .../").map_or(line, |(frame, _)| frame);
    if line.trim_start().starts_with("age ") {
        return format!("{}age ...", &line[..line.len() - line.trim_start().len()]);
    }
    let mut line = line.to_owned();
    if let (Some(start), Some(end)) = (line.find("test `"), line.find("` ")) {
        let path = &line[start + "test `".len()..end];
        let name = path.rsplit("::").next().unwrap().to_owned();
        line.replace_range(start + "test `".len()..end, &name);
    }
    let words: Vec<&str> = line.split(' ').collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for (at, word) in words.iter().enumerate() {
        let is_number = !word.is_empty() && word.chars().all(|c| c.is_ascii_digit() || c == '.');
        let unit = words
            .get(at + 1)
            .map(|next| next.trim_end_matches([',', ')']));
        if is_number && matches!(unit, Some("ms" | "µs" | "s")) {
            out.push("N");
        } else {
            out.push(word);
        }
    }
    out.join(" ")
}

/// Asserts that every line of `shown` (a report in the README) is, once normalized, a line of
/// `output`, in the same order.
fn assert_shows(shown: &str, output: &str) {
    let actual: Vec<String> = output.lines().map(normalize).collect();
    let mut from = 0;
    for line in shown.lines().map(normalize) {
        match actual[from..].iter().position(|a| *a == line) {
            Some(at) => from += at + 1,
            None => panic!(
                "the README shows this line, which the report does not have (in this order):\n\
                 {line}\n\nthe report, to update the README from:\n{output}"
            ),
        }
    }
}

#[test]
fn the_example_is_the_readme_block() {
    let shown = example();
    let test_attrs = "#[leak_check]\n#[tokio::test]\n";
    assert_eq!(shown.matches(test_attrs).count(), 1, "{shown}");
    let expected = shown.replacen(test_attrs, &format!("{IGNORE_LINE}{test_attrs}"), 1);
    assert_eq!(
        MAILER, expected,
        "tests/readme/mailer.rs must be the README's 30-second block with only the #[ignore] line added"
    );
}

#[test]
fn the_fixed_twin_is_the_readme_diff_applied() {
    let diff = only_block(section("In 30 seconds"), "diff");
    assert_eq!(
        MAILER_FIXED,
        apply(&diff, &example()),
        "tests/readme/mailer_fixed.rs must be the README's 30-second block with the README's diff applied"
    );
}

#[test]
fn the_example_fails_with_the_report_the_readme_shows() {
    let output = expect_failure("mailer::sends_a_welcome_mail");
    let site = spawn_site("tests/readme/mailer.rs", MAILER);
    assert_reports(&output, 1, &site);
    assert!(
        output.contains("      waiting: "),
        "the worker waits on its inbox:\n{output}"
    );
    // The README gives the example's report as a reader would see it with the example in
    // tests/mailer.rs; the line numbers are the same, since the `#[ignore]` line comes after the
    // spawn.
    let shown = only_block(section("In 30 seconds"), "text");
    let readme_site = spawn_site(README_PATH, &example());
    assert!(
        shown.contains(&format!("spawned at {readme_site}")),
        "the README's report must name the spawn site {readme_site}:\n{shown}"
    );
    assert_shows(&without_hints(&shown.replace(&readme_site, &site)), &output);
    // Built with task dumps (CI's second run of the suite), the report says more, and its hints
    // speak to what the dump shows: the README gives that part in its `tokio_unstable` section.
    if TASK_DUMPS {
        let shown = only_block(
            section("Every task, and where it is stuck (`tokio_unstable`)"),
            "text",
        );
        assert_shows(
            &shown.replace(README_PATH, "tests/readme/mailer.rs"),
            &output.replace("readme::mailer::", "mailer::"),
        );
    }
}

#[test]
fn the_fixed_twin_passes() {
    let run = run_tests(&["--exact", "mailer_fixed::sends_a_welcome_mail"], &[]);
    assert!(
        run.passed && run.output.contains("1 passed"),
        "the fixed example must pass:\n{}",
        run.output
    );
    assert!(!run.output.contains("leak-check"), "{}", run.output);
}

#[test]
fn the_demo_prints_the_report_the_readme_shows() {
    // The demo's report, as `main` prints it: the panic message of its leaky scenario. Called
    // from a thread of no test (a test's thread would name the test as the caller of the demo's
    // checked functions).
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let (leaky, fixed) = std::thread::spawn(|| {
        (
            panic::catch_unwind(demo::leaky_service_sends_a_burst),
            panic::catch_unwind(demo::fixed_service_sends_a_burst),
        )
    })
    .join()
    .unwrap();
    panic::set_hook(hook);
    assert!(fixed.is_ok(), "the fixed service must not leak");
    let payload = leaky.expect_err("the leaky service must leak");
    let report = payload
        .downcast_ref::<String>()
        .expect("the report is the panic message");
    // Here the example is a module of this test, so its file is reached through tests/.
    let report = report.replace("tests/../examples/", "examples/");
    let shown = only_block(section("The report, as it really looks"), "text");
    assert_shows(&without_hints(&shown), &report);
}

/// A doctest compiles a block inside `fn main`, where a `#[test]` function is removed before it is
/// type-checked: the README's tests would go unchecked. So every Rust block of the README is also
/// a module of this file, compiled as tests and run with the rest.
#[test]
fn every_rust_block_is_a_module_here() {
    let shown: Vec<String> = blocks(README)
        .into_iter()
        .filter(|b| b.info == "rust")
        .map(|b| b.text)
        .collect();
    let with_ignore = MAILER.replacen(IGNORE_LINE, "", 1);
    let modules = [
        (
            "tests/readme/mailer.rs (without its #[ignore] line)",
            with_ignore.as_str(),
        ),
        ("tests/readme/forms.rs", FORMS),
        ("tests/readme/module.rs", MODULE),
    ];
    assert_eq!(
        shown.len(),
        modules.len(),
        "each Rust block of the README needs a module in tests/readme/, in order"
    );
    for (block, (file, module)) in shown.iter().zip(modules) {
        assert_eq!(
            block, module,
            "{file} must be the README's block, letter for letter"
        );
    }
}

#[test]
fn every_code_block_says_what_it_is_and_the_rust_ones_are_doctests() {
    for block in blocks(README) {
        assert!(
            ["rust", "text", "toml", "sh", "json", "diff"].contains(&block.info.as_str()),
            "a README block marked `{}` (Rust blocks are plain `rust`: no `ignore` or `no_run`; \
             others say what they are, or rustdoc compiles them as Rust):\n{}",
            block.info,
            block.text
        );
    }
    assert!(
        LIB.contains("#[cfg(doctest)]\n#[doc = include_str!(\"../README.md\")]"),
        "src/lib.rs must include the README as doctests"
    );
}

#[test]
fn the_commands_at_the_top_are_what_ci_runs() {
    let top = &blocks(README)[0];
    assert_eq!(top.info, "sh");
    for line in top.text.lines() {
        let command = line.split('#').next().unwrap().trim();
        assert!(
            CI.lines().any(|l| l.trim() == command),
            "`{command}` is not what .ci/run runs"
        );
    }
}

/// The first code block of the crate's docs (the `//!` lines at the top of src/lib.rs).
fn crate_doc_example() -> String {
    let mut block = String::new();
    let mut inside = false;
    for line in LIB.lines().take_while(|line| line.starts_with("//!")) {
        let text = line.strip_prefix("//! ").unwrap_or(&line[3..]);
        if text.starts_with("```") {
            if inside {
                return block;
            }
            inside = true;
        } else if inside {
            block.push_str(text);
            block.push('\n');
        }
    }
    panic!("no code block in the crate's docs");
}

#[test]
fn the_crate_docs_example_is_here() {
    let shown = crate_doc_example();
    assert_eq!(
        CRATE_DOC, shown,
        "tests/readme/crate_doc.rs must be the crate docs' example"
    );
    let stop = "    flusher.abort();\n";
    assert_eq!(shown.matches(stop).count(), 1, "{shown}");
    let test_attrs = "#[leak_check]\n#[tokio::test]\n";
    let edited =
        shown
            .replacen(stop, "", 1)
            .replacen(test_attrs, &format!("{IGNORE_LINE}{test_attrs}"), 1);
    assert_eq!(
        CRATE_DOC_EDITED, edited,
        "tests/readme/crate_doc_edited.rs must be the crate docs' example without the line its comment points at"
    );
}

#[test]
fn the_crate_docs_example_edited_as_it_invites_fails_with_a_report() {
    let output = expect_failure("crate_doc_edited::the_flusher_is_stopped");
    let site = spawn_site("tests/readme/crate_doc_edited.rs", CRATE_DOC_EDITED);
    assert_reports(&output, 1, &site);
    assert!(
        output.contains("      busy: "),
        "a flusher looping on a timer:\n{output}"
    );
}
