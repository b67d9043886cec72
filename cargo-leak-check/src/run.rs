//! `cargo leak-check`: runs the suite in leak-check's richest mode, collects every test's JSON
//! report, and prints the summary.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::baseline::{self, Baseline, Sources};
use crate::outcome::{Outcome, OutputParser, Runner};
use crate::progress::Progress;
use crate::report::Reports;
use crate::summary::Summary;
use crate::workspace::{self, CargoArgs, Metadata, Rustflags};
use crate::{Failure, FAILED, OK};

/// What `cargo leak-check` was asked to run.
#[derive(Debug, Default)]
pub struct RunOptions {
    pub nextest: bool,
    pub stable: bool,
    pub baseline: Option<PathBuf>,
    pub write_baseline: Option<PathBuf>,
    /// Passed to `cargo test` / `cargo nextest run` as they are.
    pub cargo_args: Vec<String>,
    /// After `--`: for the test binaries.
    pub test_args: Option<Vec<OsString>>,
    /// Print cargo's output as it comes, instead of the progress line.
    pub show_output: bool,
}

/// The cargo to run: the one that ran this subcommand, else `cargo` on the PATH.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

pub fn run(options: RunOptions) -> Result<u8, Failure> {
    let cargo = cargo();
    let cwd = std::env::current_dir().map_err(|e| Failure::Run(e.to_string()))?;
    let baseline = options
        .baseline
        .as_deref()
        .map(Baseline::read)
        .transpose()
        .map_err(Failure::Usage)?;
    let args = CargoArgs::scan(&options.cargo_args);
    let metadata = Metadata::load(
        &cargo,
        &cwd,
        args.manifest_path.as_deref(),
        false,
        &args.for_metadata,
    )
    .map_err(Failure::Run)?;
    let files = Files::fresh(&metadata)?;
    let suite = Suite {
        cargo: &cargo,
        options: &options,
        args: &args,
        metadata: &metadata,
        cwd: &cwd,
    };
    let outcome = suite.run(&files)?;
    eprintln!(
        "leak-check: cargo's output is in {}, the JSON report in {}",
        files.log.display(),
        files.report.display()
    );

    let reports = files.reports()?;
    for note in &reports.unreadable {
        eprintln!("leak-check: skipped a report line: {note}");
    }
    let mut sources = Sources::new(metadata.workspace_root.clone());
    let summary = Summary::build(
        &reports.reports,
        baseline.as_ref(),
        Some(&outcome),
        &mut sources,
    );
    finish(&summary, options.write_baseline.as_deref())
}

/// Where a run keeps what it makes: its own target folder (so the user's own build cache stays
/// as it is), the tests' JSON report and cargo's output.
struct Files {
    folder: PathBuf,
    report: PathBuf,
    log: PathBuf,
}

impl Files {
    /// The folder, made if needed, without the last run's report.
    fn fresh(metadata: &Metadata) -> Result<Files, Failure> {
        let folder = metadata.target_directory.join("leak-check");
        fs::create_dir_all(&folder)
            .map_err(|e| Failure::Run(format!("cannot create {}: {e}", folder.display())))?;
        let files = Files {
            report: folder.join("report.jsonl"),
            log: folder.join("output.log"),
            folder,
        };
        match fs::remove_file(&files.report) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::Run(format!(
                    "cannot remove the last report {}: {e}",
                    files.report.display()
                )))
            }
        }
        Ok(files)
    }

    /// The reports the tests wrote (none if no test leaked or hung).
    fn reports(&self) -> Result<Reports, Failure> {
        let mut reports = Reports::default();
        if self.report.exists() {
            reports
                .read_file(&self.report)
                .map_err(|e| Failure::Run(format!("cannot read {}: {e}", self.report.display())))?;
        }
        Ok(reports)
    }
}

/// The suite to run, and how.
struct Suite<'a> {
    cargo: &'a OsString,
    options: &'a RunOptions,
    args: &'a CargoArgs,
    metadata: &'a Metadata,
    cwd: &'a Path,
}

impl Suite<'_> {
    /// The cargo command, and a line saying in which mode it runs.
    fn command(&self, folder: &Path, taskdump_wanted: bool) -> (Command, String) {
        let Suite {
            cargo,
            options,
            args,
            metadata,
            cwd,
        } = *self;
        let mut command = Command::new(cargo);
        if options.nextest {
            command.args(["nextest", "run"]);
        } else {
            command.arg("test");
        }
        // Every test binary runs, so every leak is reported, however many fail.
        if !args.fail_fast_given {
            command.arg("--no-fail-fast");
        }
        if args.target_dir.is_none() {
            command.arg("--target-dir").arg(folder);
        }
        let mut mode = Vec::new();
        if options.stable {
            mode.push("stable mode (no --cfg tokio_unstable: plain tokio::spawn tasks are counted without their sites)".to_owned());
        } else {
            match workspace::rustflags(|k| std::env::var(k).ok(), cwd) {
                Rustflags::Env(key, value) => {
                    command.env(key, value);
                }
                Rustflags::Config(value) => {
                    command.arg("--config").arg(value);
                }
            }
            mode.push("--cfg tokio_unstable".to_owned());
            if taskdump_wanted {
                mode.push(taskdump(&mut command, args, metadata, cwd));
            } else {
                mode.push("no task dumps".to_owned());
            }
        }
        command.args(&options.cargo_args);
        if let Some(test_args) = &options.test_args {
            command.arg("--").args(test_args);
        }
        let runner = if options.nextest {
            "cargo nextest run"
        } else {
            "cargo test"
        };
        (command, format!("{runner} with {}", mode.join(", ")))
    }

    /// Runs the tests, once more without task dumps if cargo refused the feature; fails if no
    /// test ran (a build error, or cargo refusing its arguments), after showing what cargo said.
    fn run(&self, files: &Files) -> Result<Box<Outcome>, Failure> {
        let runner = if self.options.nextest {
            Runner::Nextest
        } else {
            Runner::Cargo
        };
        let mut taskdump = true;
        loop {
            let (mut command, mode) = self.command(&files.folder, taskdump);
            eprintln!("leak-check: {mode}");
            command
                .current_dir(self.cwd)
                .env("LEAK_CHECK_REPORT", &files.report)
                .stdin(Stdio::null());
            let (outcome, exit) = execute(
                command,
                runner,
                &files.report,
                &files.log,
                self.options.show_output,
            )?;
            if let Execution::Ran(outcome) = outcome {
                return Ok(outcome);
            }
            let log = fs::read_to_string(&files.log).unwrap_or_default();
            // The packages chosen for the feature were not the ones cargo tested (an unusual
            // package selection): run again without task dumps.
            if taskdump && mode.contains("/taskdump") && refused_feature(&log) {
                eprintln!(
                    "leak-check: cargo refused the taskdump feature; running without task dumps"
                );
                taskdump = false;
                continue;
            }
            if !self.options.show_output {
                eprint!("{log}");
            }
            return Err(Failure::Run(format!(
                "cargo failed before any test ran ({})",
                exit.unwrap_or_else(|| "no test binary".to_owned())
            )));
        }
    }
}

/// Prints the summary (and its Markdown to `GITHUB_STEP_SUMMARY`), writes the baseline if
/// asked, and gives the exit status.
pub fn finish(summary: &Summary, write_baseline: Option<&Path>) -> Result<u8, Failure> {
    if let Some(path) = write_baseline {
        baseline::write(path, &summary.entries)
            .map_err(|e| Failure::Run(format!("cannot write {}: {e}", path.display())))?;
    }
    let written = write_baseline.map(|p| p.display().to_string());
    print!("{}", summary.to_text(written.as_deref()));
    let _ = io::stdout().flush();
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let markdown = summary.to_markdown(written.as_deref());
        let appended = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(markdown.as_bytes()));
        if let Err(e) = appended {
            eprintln!(
                "leak-check: cannot append to GITHUB_STEP_SUMMARY ({}): {e}",
                Path::new(&path).display()
            );
        }
    }
    Ok(if summary.fails(write_baseline.is_some()) {
        FAILED
    } else {
        OK
    })
}

/// Whether cargo's output says it refused a `--features` value for the packages it selected.
fn refused_feature(log: &str) -> bool {
    log.contains("does not contain this feature")
        || log.contains("none of the selected packages contains")
        || log.contains("does not have a dependency named")
}

/// Turns on leak-check's `taskdump` feature where it works and the tested packages depend on
/// leak-check; says which.
fn taskdump(command: &mut Command, args: &CargoArgs, metadata: &Metadata, cwd: &Path) -> String {
    if !workspace::taskdump_supported(args.target.as_deref()) {
        return "no task dumps (tokio has them on Linux only, on x86, x86_64, aarch64 and s390x)"
            .to_owned();
    }
    let has_feature = metadata
        .package(workspace::LEAK_CHECK)
        .is_some_and(|p| p.features.contains_key("taskdump"));
    if !has_feature {
        return "no task dumps (no leak-check with a `taskdump` feature among the dependencies)"
            .to_owned();
    }
    let mut names: Vec<String> = Vec::new();
    for package in metadata.selected(args, cwd) {
        for (name, optional) in package.leak_check_names() {
            let feature = format!("{name}{}/taskdump", if optional { "?" } else { "" });
            if !names.contains(&feature) {
                names.push(feature);
            }
        }
    }
    if names.is_empty() {
        return "no task dumps (the packages tested do not depend on leak-check)".to_owned();
    }
    command.arg("--features").arg(names.join(","));
    format!("task dumps (--features {})", names.join(","))
}

/// `::error file=...::message` and its kin, as leak-check prints them under GitHub Actions.
fn is_workflow_command(line: &str) -> bool {
    ["::error", "::warning", "::notice"]
        .iter()
        .any(|c| line.starts_with(c))
}

enum Execution {
    Ran(Box<Outcome>),
    /// No test binary started: the build failed, or cargo stopped before running anything.
    NothingRan,
}

/// Runs cargo with its stdout and stderr in one pipe (so their lines stay in order), saving
/// every line to the log, reading them as they come, and drawing the progress line.
fn execute(
    mut command: Command,
    runner: Runner,
    report: &Path,
    log_path: &Path,
    show_output: bool,
) -> Result<(Execution, Option<String>), Failure> {
    let (reader, writer) =
        io::pipe().map_err(|e| Failure::Run(format!("cannot make a pipe: {e}")))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| Failure::Run(format!("cannot make a pipe: {e}")))?;
    command.stdout(writer).stderr(writer2);
    let mut child = command
        .spawn()
        .map_err(|e| Failure::Run(format!("cannot run cargo: {e}")))?;
    // Close this process's copies of the pipe's writing end, so reading ends with cargo.
    drop(command);
    let mut log = File::create(log_path)
        .map_err(|e| Failure::Run(format!("cannot create {}: {e}", log_path.display())))?;

    let (lines, received) = mpsc::channel::<String>();
    let reading = thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer).into_owned();
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut parser = OutputParser::new(runner);
    let mut progress = Progress::new(report.to_owned(), !show_output);
    loop {
        match received.recv_timeout(Duration::from_millis(250)) {
            Ok(line) => {
                let _ = log.write_all(line.as_bytes());
                let text = line.trim_end_matches(['\n', '\r']);
                if show_output {
                    eprint!("{line}");
                } else if is_workflow_command(text) {
                    // leak-check's GitHub Actions annotations reach the job's log, where the
                    // runner turns them into annotations on the diff.
                    progress.interrupt();
                    println!("{text}");
                }
                if let Some(event) = parser.line(text) {
                    progress.event(&event);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => progress.tick(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = reading.join();
    let status = child
        .wait()
        .map_err(|e| Failure::Run(format!("cannot wait for cargo: {e}")))?;
    progress.finish();
    let exit = (!status.success()).then(|| status.to_string());
    if exit.is_some() && (!parser.tests_started() || parser.build_failed()) {
        return Ok((Execution::NothingRan, exit));
    }
    Ok((Execution::Ran(Box::new(parser.finish(exit.clone()))), exit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_refusing_the_feature_is_recognised() {
        // What cargo 1.95 says when no selected package has the dependency.
        assert!(refused_feature(
            "error: the package 'b' does not contain this feature: leak-check/taskdump\n"
        ));
        assert!(!refused_feature("error: could not compile `app`\n"));
    }

    #[test]
    fn workflow_commands_are_told_from_output() {
        assert!(is_workflow_command(
            "::error file=tests/a.rs,line=3,col=5,title=x::1 task"
        ));
        assert!(!is_workflow_command("test a ... ok"));
    }
}
