//! `cargo leak-check`: runs a tokio test suite under [leak-check] in its richest mode, ranks the
//! leaks it finds by spawn site, keeps a baseline of known ones, and adds `#[leak_check]` to
//! every `#[tokio::test]` that lacks it. See the README beside this crate's manifest.
//!
//! [leak-check]: https://docs.rs/leak-check

mod annotate;
mod baseline;
mod outcome;
mod progress;
mod report;
mod run;
mod summary;
mod workspace;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::prelude::*;

use crate::baseline::{Baseline, Sources};
use crate::report::Reports;
use crate::run::RunOptions;
use crate::summary::Summary;
use crate::workspace::Metadata;

/// Every test passed, or leaked only as the baseline says.
pub(crate) const OK: u8 = 0;
/// A test failed for another reason, or leaked where the baseline does not say.
pub(crate) const FAILED: u8 = 1;
/// The command line is wrong.
pub(crate) const USAGE: u8 = 2;

/// Why the tool stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A usage error: exit 2.
    Usage(String),
    /// Something else went wrong: exit 1.
    Run(String),
}

impl From<lexopt::Error> for Failure {
    fn from(error: lexopt::Error) -> Failure {
        Failure::Usage(error.to_string())
    }
}

const HELP: &str = "\
cargo leak-check: run a tokio test suite under leak-check, and summarise its leaks

Usage:
  cargo leak-check [OPTIONS] [CARGO-ARGS...] [-- TEST-ARGS...]
  cargo leak-check summary [--baseline FILE] [--write-baseline FILE] REPORT...
  cargo leak-check annotate [--check] [--manifest-path PATH]

Runs `cargo test` (or `cargo nextest run`) with --cfg tokio_unstable added to your rustflags
and leak-check's `taskdump` feature where it works, in target/leak-check, collects every
leaking test's JSON report, and prints the leaks ranked by spawn site. Arguments it does not
know go to cargo as they are (-p, --test, --features, ...); those after `--` go to the tests.

Options:
      --nextest              run `cargo nextest run` instead of `cargo test`
      --stable               without --cfg tokio_unstable (and so without task dumps)
      --baseline FILE        leaks listed in FILE are known: shown, but not failing the run
      --write-baseline FILE  write every leak of the run to FILE; exit 0 if nothing else failed
      --show-output          print cargo's output as it comes (to stderr), not a progress line;
                             it is always kept in target/leak-check/output.log
  -h, --help                 print this help
  -V, --version              print the version

Subcommands:
  summary REPORT...  the same summary from JSON report files (LEAK_CHECK_REPORT) of any runs,
                     such as the shards of a partitioned CI job; takes --baseline and
                     --write-baseline. Reports name leaks and hangs only: other failures are
                     not known there
  annotate           add #[leak_check::leak_check] above every #[tokio::test] that nothing
                     checks yet, in each workspace member's src/ and tests/; with --check,
                     change nothing, list them as `file:line name`, and exit 1 if there is any

Exit status: 0 when every test passed, or leaked only where the baseline says; 1 when a test
failed for another reason or leaked where the baseline does not say; 2 for a usage error.
With GITHUB_STEP_SUMMARY set, the summary is also appended to that file as Markdown.
";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // cargo runs `cargo-leak-check leak-check ARGS...`.
    if args.first().is_some_and(|a| a == "leak-check") {
        args.remove(0);
    }
    match dispatch(args) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Usage(message)) => {
            eprintln!(
                "error: {message}\n\nUsage: cargo leak-check [OPTIONS] [CARGO-ARGS...] [-- TEST-ARGS...]\nFor more, try `cargo leak-check --help`."
            );
            ExitCode::from(USAGE)
        }
        Err(Failure::Run(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(FAILED)
        }
    }
}

fn dispatch(args: Vec<OsString>) -> Result<u8, Failure> {
    match args.first().and_then(|a| a.to_str()) {
        Some("summary") => summary_command(args[1..].to_vec()),
        Some("annotate") => annotate_command(args[1..].to_vec()),
        Some("help") => {
            print!("{HELP}");
            Ok(OK)
        }
        _ => run_command(args),
    }
}

fn text(value: OsString) -> Result<String, Failure> {
    value
        .into_string()
        .map_err(|v| Failure::Usage(format!("not UTF-8: {}", v.to_string_lossy())))
}

fn run_command(args: Vec<OsString>) -> Result<u8, Failure> {
    let mut options = RunOptions::default();
    let (ours, test_args) = match args.iter().position(|a| a == "--") {
        Some(at) => (args[..at].to_vec(), Some(args[at + 1..].to_vec())),
        None => (args, None),
    };
    options.test_args = test_args;
    let mut parser = lexopt::Parser::from_args(ours);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("nextest") => options.nextest = true,
            Long("stable") => options.stable = true,
            Long("show-output") => options.show_output = true,
            Long("baseline") => options.baseline = Some(PathBuf::from(parser.value()?)),
            Long("write-baseline") => {
                options.write_baseline = Some(PathBuf::from(parser.value()?));
            }
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(OK);
            }
            Long("version") | Short('V') => {
                println!("cargo-leak-check {}", env!("CARGO_PKG_VERSION"));
                return Ok(OK);
            }
            // Everything else is cargo's, passed on in the form it was given.
            Long(name) => {
                let flag = format!("--{name}");
                match parser.optional_value() {
                    Some(value) => options.cargo_args.push(format!("{flag}={}", text(value)?)),
                    None => options.cargo_args.push(flag),
                }
            }
            Short(c) => match parser.optional_value() {
                Some(value) => options.cargo_args.push(format!("-{c}{}", text(value)?)),
                None => options.cargo_args.push(format!("-{c}")),
            },
            Value(value) => options.cargo_args.push(text(value)?),
        }
    }
    run::run(options)
}

fn summary_command(args: Vec<OsString>) -> Result<u8, Failure> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut baseline = None;
    let mut write_baseline: Option<PathBuf> = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("baseline") => baseline = Some(PathBuf::from(parser.value()?)),
            Long("write-baseline") => write_baseline = Some(PathBuf::from(parser.value()?)),
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(OK);
            }
            Value(file) => files.push(file.into()),
            other => return Err(other.unexpected().into()),
        }
    }
    if files.is_empty() {
        return Err(Failure::Usage(
            "`summary` needs the JSON report files to read".to_owned(),
        ));
    }
    let baseline = baseline
        .as_deref()
        .map(Baseline::read)
        .transpose()
        .map_err(Failure::Usage)?;
    let mut reports = Reports::default();
    for file in &files {
        reports
            .read_file(file)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    }
    for note in &reports.unreadable {
        eprintln!("leak-check: skipped a report line: {note}");
    }
    let mut sources = Sources::new(workspace_root());
    let summary = Summary::build(&reports.reports, baseline.as_ref(), None, &mut sources);
    run::finish(&summary, write_baseline.as_deref())
}

/// The workspace root around the current directory (site paths are relative to it), or the
/// current directory outside any workspace.
fn workspace_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let located = std::process::Command::new(run::cargo())
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .stderr(std::process::Stdio::null())
        .output();
    match located {
        Ok(output) if output.status.success() => {
            let manifest = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            manifest.parent().map_or(cwd, |p| p.to_owned())
        }
        _ => cwd,
    }
}

fn annotate_command(args: Vec<OsString>) -> Result<u8, Failure> {
    let mut check = false;
    let mut manifest_path: Option<String> = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("check") => check = true,
            Long("manifest-path") => manifest_path = Some(text(parser.value()?)?),
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(OK);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let cwd = std::env::current_dir().map_err(|e| Failure::Run(e.to_string()))?;
    let metadata = Metadata::load(&run::cargo(), &cwd, manifest_path.as_deref(), true, &[])
        .map_err(Failure::Run)?;
    let found = annotate::scan(&metadata);
    for skipped in &found.skipped {
        eprintln!("leak-check: skipped {skipped}");
    }
    let count: usize = found.files.iter().map(|f| f.tests.len()).sum();
    if check {
        for file in &found.files {
            for test in &file.tests {
                println!("{}:{} {}", file.shown, test.line, test.name);
            }
        }
        if count == 0 {
            eprintln!("leak-check: every #[tokio::test] is checked");
            return Ok(OK);
        }
        eprintln!(
            "leak-check: {count} #[tokio::test] function{} not checked; `cargo leak-check annotate` adds the attribute",
            if count == 1 { " is" } else { "s are" }
        );
        return Ok(FAILED);
    }
    for file in &found.files {
        let edited = annotate::insert(&file.source, &file.tests);
        std::fs::write(&file.path, edited)
            .map_err(|e| Failure::Run(format!("cannot write {}: {e}", file.path.display())))?;
        for test in &file.tests {
            println!("{}:{} {}", file.shown, test.line, test.name);
        }
    }
    eprintln!(
        "leak-check: added the attribute to {count} test{} in {} file{}",
        if count == 1 { "" } else { "s" },
        found.files.len(),
        if found.files.len() == 1 { "" } else { "s" }
    );
    for package in &found.without_dependency {
        eprintln!(
            "leak-check: warning: package `{package}` does not depend on leak-check; add it to its [dev-dependencies]: leak-check = {{ version = \"0.1\", features = [\"tracking\"] }}"
        );
    }
    Ok(OK)
}
