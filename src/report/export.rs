//! The report for machines and CI: one line of JSON per leaking test, appended to a file, and
//! GitHub Actions annotations that land on the spawn line in a pull request's diff.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::config::Mode;
use crate::report::{state_name, LeakReport, ReportKind};

/// The report as one JSON object (the README documents the schema).
pub(crate) fn to_json(report: &LeakReport, mode: Mode) -> Value {
    let sites: Vec<Value> = report
        .groups()
        .iter()
        .map(|group| {
            let states: serde_json::Map<String, Value> = group
                .states()
                .into_iter()
                .map(|(state, n)| (state_name(state).replace(' ', "_"), json!(n)))
                .collect();
            let mut chains: Vec<Vec<String>> = group
                .members
                .iter()
                .map(|s| {
                    s.chain
                        .iter()
                        .map(|link| link.map_or_else(|| "...".to_owned(), |site| site.to_string()))
                        .collect()
                })
                .collect();
            chains.sort();
            chains.dedup();
            json!({
                "site": group.site.to_string(),
                "file": group.site.file(),
                "line": group.site.line(),
                "column": group.site.column(),
                "count": group.members.len(),
                "names": group.names(),
                "states": states,
                "chains": chains,
                "ages_ms": group.members.iter().map(|s| s.age.map(|a| a.as_millis() as u64)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (outcome, timeout_ms) = match report.kind {
        ReportKind::Leak => ("leaked", None),
        ReportKind::Timeout(limit) => ("timed_out", Some(limit.as_millis() as u64)),
    };
    json!({
        "test": report.test,
        "outcome": outcome,
        "mode": mode.as_str(),
        "timeout_ms": timeout_ms,
        "waited_ms": report.waited.as_millis() as u64,
        "tasks": report.total(),
        "untracked": report.untracked,
        "allowed": report.allowed,
        "sites": sites,
    })
}

/// Appends `value` as one line. The line is written with a single `write` on a file opened for
/// appending, so lines from many tests and processes do not interleave.
pub(crate) fn append_line(path: &Path, value: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// One workflow command per leaking site (and one for the plain-spawn count), for GitHub
/// Actions. Paths are made relative to `workspace` where they are under it.
pub(crate) fn annotations(
    report: &LeakReport,
    mode: Mode,
    workspace: Option<&Path>,
) -> Vec<String> {
    let level = if mode == Mode::Warn {
        "warning"
    } else {
        "error"
    };
    let what = match report.kind {
        ReportKind::Leak => "leaked",
        ReportKind::Timeout(_) => "timed out with",
    };
    let title = format!(
        "leak-check: {} {what} {} task{}",
        report.test,
        report.total(),
        if report.total() == 1 { "" } else { "s" }
    );
    let mut lines: Vec<String> = report
        .groups()
        .iter()
        .map(|group| {
            let file = relative(group.site.file(), workspace);
            let count = group.members.len();
            let states: Vec<String> = group
                .states()
                .iter()
                .map(|(state, n)| format!("{n} {}", state_name(*state)))
                .collect();
            let names = group.names();
            let named = if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            };
            let when = match report.kind {
                ReportKind::Leak => format!("after the body of `{}` returned", report.test),
                ReportKind::Timeout(_) => format!("when the timeout stopped `{}`", report.test),
            };
            let message = format!(
                "{count} task{} spawned here{named} still alive {when}: {}",
                if count == 1 { "" } else { "s" },
                states.join(", ")
            );
            format!(
                "::{level} file={},line={},col={},title={}::{}",
                escape_property(&file),
                group.site.line(),
                group.site.column(),
                escape_property(&title),
                escape_data(&message)
            )
        })
        .collect();
    if report.untracked > 0 {
        let message = format!(
            "{} task(s) spawned with plain tokio::spawn still alive at the end of `{}`; spawn them with leak_check::spawn to see where",
            report.untracked, report.test
        );
        lines.push(format!(
            "::{level} title={}::{}",
            escape_property(&title),
            escape_data(&message)
        ));
    }
    lines
}

fn relative(file: &str, workspace: Option<&Path>) -> String {
    let path = Path::new(file);
    match workspace {
        Some(root) if path.is_absolute() => path
            .strip_prefix(root)
            .map_or_else(|_| file.to_owned(), |rest| rest.display().to_string()),
        _ => file.to_owned(),
    }
}

/// The runner unescapes `%25`, `%0D` and `%0A` in a command's data.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// ... and also `%3A` and `%2C` in its properties.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_the_runner_unescapes() {
        assert_eq!(escape_data("50% a\nb"), "50%25 a%0Ab");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn paths_are_made_relative_to_the_workspace() {
        let root = Path::new("/work/repo");
        assert_eq!(relative("/work/repo/src/a.rs", Some(root)), "src/a.rs");
        assert_eq!(relative("src/a.rs", Some(root)), "src/a.rs");
        assert_eq!(relative("/elsewhere/a.rs", Some(root)), "/elsewhere/a.rs");
        assert_eq!(relative("/work/repo/src/a.rs", None), "/work/repo/src/a.rs");
    }
}
