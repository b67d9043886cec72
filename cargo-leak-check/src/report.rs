//! Reading leak-check's JSON report: one object per line, appended by every leaking test when
//! `LEAK_CHECK_REPORT` names a file. Read tolerantly: keys this version does not know are
//! ignored, missing ones take their defaults, and a line that is not JSON is skipped with a word.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Deserialize;

/// One test's report.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Report {
    /// The test's name (its path, as leak-check gives it).
    pub test: String,
    /// `leaked` or `timed_out`.
    pub outcome: String,
    /// `fail` or `warn`.
    pub mode: String,
    /// A `#[should_panic]` test: a leak fails it by returning normally, so its own panic is no
    /// other failure.
    pub expects_panic: bool,
    /// The hang guard that stopped the test, for `timed_out`.
    pub timeout_ms: Option<u64>,
    /// Tasks still alive, in all.
    pub tasks: u64,
    /// Of which spawned with plain `tokio::spawn`, whose sites are unknown.
    pub untracked: u64,
    /// Of which closures started with plain `spawn_blocking`, still running, sites unknown.
    pub untracked_blocking: u64,
    /// The spawn sites of the stragglers.
    pub sites: Vec<Site>,
}

/// The stragglers of one spawn site.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Site {
    /// `file:line:column`.
    pub site: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// How many tasks spawned here are still alive.
    pub count: u64,
    /// The names given to them (`leak_check::Builder::name`).
    pub names: Vec<String>,
    /// Tasks per state (`waiting`, `busy`, ...).
    pub states: BTreeMap<String, u64>,
    /// The distinct chains of spawn sites from the test body to this site.
    pub chains: Vec<Vec<String>>,
}

impl Report {
    /// Whether the test timed out (leak-check's hang guard) rather than leaked.
    pub fn timed_out(&self) -> bool {
        self.outcome == "timed_out"
    }
}

impl Site {
    /// Fills `file`, `line` and `column` from `site` where they are missing, and the other way.
    fn complete(&mut self) {
        if self.file.is_empty() {
            let mut parts = self.site.rsplitn(3, ':');
            let (column, line, file) = (parts.next(), parts.next(), parts.next());
            if let (Some(column), Some(line), Some(file)) = (column, line, file) {
                if let (Ok(line), Ok(column)) = (line.parse(), column.parse()) {
                    self.file = file.to_owned();
                    self.line = line;
                    self.column = column;
                }
            }
        }
        if self.site.is_empty() {
            self.site = format!("{}:{}:{}", self.file, self.line, self.column);
        }
    }
}

/// What reading report files gave.
#[derive(Debug, Default)]
pub struct Reports {
    pub reports: Vec<Report>,
    /// Lines that could not be read, as `file:line: why`.
    pub unreadable: Vec<String>,
}

impl Reports {
    /// Reads one file's lines into this collection. A missing file is an error for the caller
    /// to report; a bad line is kept as a note.
    pub fn read_file(&mut self, path: &Path) -> std::io::Result<()> {
        let text = fs::read(path)?;
        self.read_text(&String::from_utf8_lossy(&text), &path.display().to_string());
        Ok(())
    }

    pub fn read_text(&mut self, text: &str, name: &str) {
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match serde_json::from_str::<Report>(line) {
                Ok(mut report) if !report.test.is_empty() => {
                    for site in &mut report.sites {
                        site.complete();
                    }
                    self.reports.push(report);
                }
                Ok(_) => self
                    .unreadable
                    .push(format!("{name}:{}: no `test` in the report", index + 1)),
                Err(error) => self
                    .unreadable
                    .push(format!("{name}:{}: {error}", index + 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_ignored_and_missing_ones_default() {
        let mut reports = Reports::default();
        reports.read_text(
            concat!(
                r#"{"test":"a::b","outcome":"leaked","new_key":{"x":1},"sites":[{"site":"src/a.rs:3:9","count":2,"extra":true}]}"#,
                "\n\n",
                r#"{"test":"c","outcome":"timed_out","timeout_ms":50}"#,
                "\nnot json\n",
                r#"{"outcome":"leaked"}"#,
                "\n"
            ),
            "r.jsonl",
        );
        assert_eq!(reports.reports.len(), 2);
        let site = &reports.reports[0].sites[0];
        assert_eq!(
            (site.file.as_str(), site.line, site.column, site.count),
            ("src/a.rs", 3, 9, 2)
        );
        assert!(reports.reports[1].timed_out());
        assert_eq!(reports.unreadable.len(), 2, "{:?}", reports.unreadable);
        assert!(reports.unreadable[0].starts_with("r.jsonl:4:"));
    }

    #[test]
    fn the_site_is_rebuilt_from_its_parts() {
        let mut site = Site {
            file: "tests/x.rs".into(),
            line: 4,
            column: 5,
            ..Site::default()
        };
        site.complete();
        assert_eq!(site.site, "tests/x.rs:4:5");
    }
}
