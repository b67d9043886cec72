//! The baseline: known leaks, one per line in a small text file meant to be committed.
//!
//! An entry is `test | file | spawn call`, where the spawn call is the text of the spawning
//! expression's first line, read from the source at the site's line and column (to the end of
//! that line, whitespace collapsed). Line numbers are not part of it, so an entry still matches
//! after lines above the spawn are added or removed.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The file field of the entry that stands for tasks spawned with plain `tokio::spawn`, whose
/// site is unknown.
pub const UNTRACKED: &str = "(untracked tasks)";

const SEPARATOR: &str = " | ";

const HEADER: &str = "\
# leak-check baseline: known leaks. `cargo leak-check --baseline <this file>` reports them as
# known instead of failing the run, and lists entries that no longer leak as fixed.
# Written by `cargo leak-check --write-baseline <this file>`; delete a line once its leak is fixed.
#
# One leak per line, sorted: `test | file | spawn call`. The spawn call is the spawn expression's
# first line as the source has it (from the spawn site's column to the end of that line,
# whitespace collapsed), so an entry still matches after lines above it move; changing that
# line itself makes the leak new. `test | (untracked tasks)` stands for tasks spawned with plain
# tokio::spawn, whose site is unknown without --cfg tokio_unstable.
";

/// One known leak: a test, and where its straggler was spawned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub test: String,
    /// The spawn site's file as leak-check reports it, or [`UNTRACKED`].
    pub file: String,
    /// The spawn call's text (empty for [`UNTRACKED`]).
    pub call: String,
}

impl Entry {
    pub fn untracked(test: &str) -> Entry {
        Entry {
            test: test.to_owned(),
            file: UNTRACKED.to_owned(),
            call: String::new(),
        }
    }

    /// The entry as its line in the file.
    pub fn to_line(&self) -> String {
        if self.file == UNTRACKED {
            format!("{}{SEPARATOR}{UNTRACKED}", self.test)
        } else {
            format!(
                "{}{SEPARATOR}{}{SEPARATOR}{}",
                self.test, self.file, self.call
            )
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let mut fields = line.splitn(3, SEPARATOR).map(str::trim);
        let test = fields.next().filter(|t| !t.is_empty())?;
        let file = fields.next().filter(|f| !f.is_empty())?;
        let call = fields.next().unwrap_or("");
        if file == UNTRACKED {
            return call.is_empty().then(|| Entry::untracked(test));
        }
        if call.is_empty() {
            return None;
        }
        Some(Entry {
            test: test.to_owned(),
            file: file.to_owned(),
            call: normalise(call),
        })
    }
}

/// A baseline file's entries.
#[derive(Debug)]
pub struct Baseline {
    pub path: PathBuf,
    pub entries: BTreeSet<Entry>,
}

impl Baseline {
    pub fn read(path: &Path) -> Result<Baseline, String> {
        let text = fs::read_to_string(path)
            .map_err(|e| format!("cannot read the baseline {}: {e}", path.display()))?;
        let mut entries = BTreeSet::new();
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let entry = Entry::parse(trimmed).ok_or_else(|| {
                format!(
                    "{}:{}: not a baseline entry (expected `test | file | spawn call`): {trimmed}",
                    path.display(),
                    index + 1
                )
            })?;
            entries.insert(entry);
        }
        Ok(Baseline {
            path: path.to_owned(),
            entries,
        })
    }
}

/// Writes `entries` as a baseline file: the header, then one sorted line per entry.
pub fn write(path: &Path, entries: &BTreeSet<Entry>) -> io::Result<()> {
    let mut text = String::from(HEADER);
    for entry in entries {
        text.push_str(&entry.to_line());
        text.push('\n');
    }
    fs::write(path, text)
}

/// Collapses runs of whitespace to one space, and trims.
pub fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads spawn calls from the workspace's sources, each file once.
pub struct Sources {
    root: PathBuf,
    files: HashMap<String, Option<String>>,
}

impl Sources {
    /// Relative site files are read from `root`, the workspace root (where cargo runs rustc,
    /// and so what `std::panic::Location` paths are relative to).
    pub fn new(root: PathBuf) -> Sources {
        Sources {
            root,
            files: HashMap::new(),
        }
    }

    /// The spawn call at `file:line:column`: the rest of that line from the column,
    /// whitespace collapsed; `None` when the file or the line cannot be read (a remapped path,
    /// a file gone since the run).
    pub fn call(&mut self, file: &str, line: u32, column: u32) -> Option<String> {
        let root = &self.root;
        let source = self.files.entry(file.to_owned()).or_insert_with(|| {
            let path = Path::new(file);
            let path = if path.is_absolute() {
                path.to_owned()
            } else {
                root.join(path)
            };
            fs::read(path)
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        });
        source
            .as_deref()
            .and_then(|source| call_at(source, line, column))
    }
}

/// What stands for the spawn call in an entry when the source cannot be read: the position,
/// so such an entry matches only while the spawn stays on its line.
pub fn position(line: u32, column: u32) -> String {
    format!("<line {line}, column {column}>")
}

/// The text from `column` (1-based, in characters, as `std::panic::Location` counts) to the end
/// of line `line` (1-based), whitespace collapsed; `None` when there is nothing there.
pub fn call_at(source: &str, line: u32, column: u32) -> Option<String> {
    let text = source.lines().nth((line as usize).checked_sub(1)?)?;
    let rest: String = text
        .chars()
        .skip((column as usize).saturating_sub(1))
        .collect();
    let call = normalise(&rest);
    (!call.is_empty()).then_some(call)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_is_the_rest_of_the_line_from_the_column() {
        let source = "fn a() {\n    let _w =   leak_check::spawn(async move {\n}\n";
        assert_eq!(
            call_at(source, 2, 16).as_deref(),
            Some("leak_check::spawn(async move {")
        );
        assert_eq!(call_at(source, 9, 1), None);
        assert_eq!(call_at(source, 0, 1), None);
        // Columns count characters, not bytes.
        assert_eq!(
            call_at("let é = spawn(x);", 1, 9).as_deref(),
            Some("spawn(x);")
        );
    }

    #[test]
    fn entries_round_trip_through_their_lines() {
        let entries = [
            Entry {
                test: "client::get".into(),
                file: "tests/client.rs".into(),
                call: "tokio::spawn(async move { a | b })".into(),
            },
            Entry::untracked("client::plain"),
        ];
        for entry in entries {
            assert_eq!(Entry::parse(&entry.to_line()), Some(entry.clone()));
        }
        assert_eq!(Entry::parse("just a test"), None);
        assert_eq!(Entry::parse("t | file.rs |  "), None);
        assert_eq!(
            Entry::parse("t | f.rs |   spawn(  x )").map(|e| e.call),
            Some("spawn( x )".to_owned())
        );
    }
}
