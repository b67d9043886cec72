//! The baseline: known leaks, one per line in a small text file meant to be committed.
//!
//! An entry is `test | file | function | spawn call`: the function that holds the spawn (its
//! path in the file: modules, the impl's type, the function), and the text of the spawning
//! expression's first line, read from the source at the site's line and column (to the end of
//! that line, whitespace collapsed). Line numbers are not part of it, so an entry still matches
//! after lines above the spawn are added or removed. The same spawn text twice in one function
//! is told apart by its place among them (`#2`).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::{self, Visit};

/// The file field of the entry that stands for tasks spawned with plain `tokio::spawn`, whose
/// site is unknown.
pub const UNTRACKED: &str = "(untracked tasks)";

/// The file field of the entry that stands for closures started with plain `spawn_blocking`,
/// whose site is unknown.
pub const UNTRACKED_BLOCKING: &str = "(untracked blocking closures)";

/// The function field of a spawn outside any function (a static's initialiser, say).
pub const TOP_LEVEL: &str = "(top level)";

const SEPARATOR: &str = " | ";

const HEADER: &str = "\
# leak-check baseline: known leaks. `cargo leak-check --baseline <this file>` reports them as
# known instead of failing the run, and lists entries that no longer leak as fixed.
# Written by `cargo leak-check --write-baseline <this file>`; delete a line once its leak is fixed.
#
# One leak per line, sorted: `test | file | function | spawn call`. The function holds the
# spawn; the spawn call is the spawn expression's first line as the source has it (from the
# spawn site's column to the end of that line, whitespace collapsed; `#2` marks the second
# such text in the function). No line numbers: an entry still matches after lines above it
# move; changing the spawn line itself, or renaming its function, makes the leak new.
# `test | (untracked tasks)` stands for tasks spawned with plain tokio::spawn, whose site is
# unknown without --cfg tokio_unstable; `test | (untracked blocking closures)` for closures
# started with plain spawn_blocking, still running, whose site is never known.
";

/// One known leak: a test, and where its straggler was spawned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub test: String,
    /// The spawn site's file as leak-check reports it, or [`UNTRACKED`] or
    /// [`UNTRACKED_BLOCKING`].
    pub file: String,
    /// The function that holds the spawn (empty for the untracked ones).
    pub function: String,
    /// The spawn call's text (empty for the untracked ones).
    pub call: String,
}

impl Entry {
    /// The entry for the test's tasks or closures (`file`: [`UNTRACKED`] or
    /// [`UNTRACKED_BLOCKING`]) whose site is unknown.
    pub fn untracked(test: &str, file: &str) -> Entry {
        Entry {
            test: test.to_owned(),
            file: file.to_owned(),
            function: String::new(),
            call: String::new(),
        }
    }

    fn is_untracked(&self) -> bool {
        self.file == UNTRACKED || self.file == UNTRACKED_BLOCKING
    }

    /// The entry as its line in the file.
    pub fn to_line(&self) -> String {
        if self.is_untracked() {
            format!("{}{SEPARATOR}{}", self.test, self.file)
        } else {
            [self.test.as_str(), &self.file, &self.function, &self.call].join(SEPARATOR)
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let mut fields = line.splitn(4, SEPARATOR).map(str::trim);
        let test = fields.next().filter(|t| !t.is_empty())?;
        let file = fields.next().filter(|f| !f.is_empty())?;
        if file == UNTRACKED || file == UNTRACKED_BLOCKING {
            return fields
                .next()
                .is_none()
                .then(|| Entry::untracked(test, file));
        }
        let function = fields.next().filter(|f| !f.is_empty())?;
        let call = fields.next().filter(|c| !c.is_empty())?;
        Some(Entry {
            test: test.to_owned(),
            file: file.to_owned(),
            function: function.to_owned(),
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
                    "{}:{}: not a baseline entry (expected `test | file | function | spawn call`): {trimmed}",
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

/// Where a task was spawned, as a baseline entry names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spawn {
    /// The function that holds the spawn, or [`TOP_LEVEL`].
    pub function: String,
    /// The spawn call's text, with `#2` and on for a repeat in its function.
    pub call: String,
}

impl Spawn {
    /// What stands for a spawn whose source cannot be read: its position, so such an entry
    /// matches only while the spawn stays on its line.
    pub fn at(line: u32, column: u32) -> Spawn {
        Spawn {
            function: "?".to_owned(),
            call: format!("<line {line}, column {column}>"),
        }
    }
}

/// Reads spawns from the workspace's sources, each file once.
pub struct Sources {
    root: PathBuf,
    files: HashMap<String, Option<SourceFile>>,
}

struct SourceFile {
    text: String,
    functions: Vec<Function>,
}

/// A function's path in its file and its lines (1-based, inclusive).
struct Function {
    path: String,
    first: usize,
    last: usize,
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

    /// The spawn at `file:line:column`; `None` when the file or the line cannot be read (a
    /// remapped path, a file gone since the run).
    pub fn spawn(&mut self, file: &str, line: u32, column: u32) -> Option<Spawn> {
        let root = &self.root;
        let source = self.files.entry(file.to_owned()).or_insert_with(|| {
            let path = Path::new(file);
            let path = if path.is_absolute() {
                path.to_owned()
            } else {
                root.join(path)
            };
            let text = String::from_utf8_lossy(&fs::read(path).ok()?).into_owned();
            let functions = functions(&text);
            Some(SourceFile { text, functions })
        });
        let source = source.as_ref()?;
        let call = call_at(&source.text, line, column)?;
        let line = line as usize;
        let function = source
            .functions
            .iter()
            .filter(|f| f.first <= line && line <= f.last)
            .min_by_key(|f| f.last - f.first);
        // The same text earlier in the function (or the file, outside any) makes this a repeat.
        let first = function.map_or(1, |f| f.first);
        let repeats = source
            .text
            .lines()
            .enumerate()
            .skip(first - 1)
            .take(line - first)
            .filter(|(_, text)| normalise(text).ends_with(&call))
            .count();
        Some(Spawn {
            function: function.map_or_else(|| TOP_LEVEL.to_owned(), |f| f.path.clone()),
            call: if repeats == 0 {
                call
            } else {
                format!("{call} #{}", repeats + 1)
            },
        })
    }
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

/// Every function in `source`, with its path (`module::Type::function`) and its lines; none
/// when it does not parse.
fn functions(source: &str) -> Vec<Function> {
    let Ok(file) = syn::parse_file(source) else {
        return Vec::new();
    };
    let mut finder = Functions::default();
    finder.visit_file(&file);
    finder.found
}

#[derive(Default)]
struct Functions {
    path: Vec<String>,
    found: Vec<Function>,
}

impl Functions {
    fn function(&mut self, name: String, node: &impl Spanned, visit: impl FnOnce(&mut Self)) {
        let span = node.span();
        self.path.push(name);
        self.found.push(Function {
            path: self.path.join("::"),
            first: span.start().line,
            last: span.end().line,
        });
        visit(self);
        self.path.pop();
    }

    fn scope(&mut self, name: String, visit: impl FnOnce(&mut Self)) {
        self.path.push(name);
        visit(self);
        self.path.pop();
    }
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item_mod(&mut self, node: &'ast syn::ItemMod) {
        self.scope(node.ident.to_string(), |v| visit::visit_item_mod(v, node));
    }

    fn visit_item_impl(&mut self, node: &'ast syn::ItemImpl) {
        let name = match &*node.self_ty {
            syn::Type::Path(path) => path
                .path
                .segments
                .last()
                .map_or_else(|| "_".to_owned(), |s| s.ident.to_string()),
            _ => "_".to_owned(),
        };
        self.scope(name, |v| visit::visit_item_impl(v, node));
    }

    fn visit_item_trait(&mut self, node: &'ast syn::ItemTrait) {
        self.scope(node.ident.to_string(), |v| visit::visit_item_trait(v, node));
    }

    fn visit_item_fn(&mut self, node: &'ast syn::ItemFn) {
        self.function(node.sig.ident.to_string(), node, |v| {
            visit::visit_item_fn(v, node)
        });
    }

    fn visit_impl_item_fn(&mut self, node: &'ast syn::ImplItemFn) {
        self.function(node.sig.ident.to_string(), node, |v| {
            visit::visit_impl_item_fn(v, node)
        });
    }

    fn visit_trait_item_fn(&mut self, node: &'ast syn::TraitItemFn) {
        self.function(node.sig.ident.to_string(), node, |v| {
            visit::visit_trait_item_fn(v, node)
        });
    }
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
    fn a_spawn_is_named_by_its_function_and_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let source = "\
mod net {
    pub struct Client;
    impl Client {
        pub fn connect() {
            leak_check::spawn(async move {
            });
            leak_check::spawn(async move {
            });
        }
    }
}
fn helper() {
    fn inner() {
        tokio::spawn(async move {
        });
    }
    leak_check::spawn(async move {
    });
}
";
        fs::write(dir.path().join("a.rs"), source).unwrap();
        let mut sources = Sources::new(dir.path().to_owned());
        let mut at = |line, column| sources.spawn("a.rs", line, column).unwrap();
        let spawn = |function: &str, call: &str| Spawn {
            function: function.to_owned(),
            call: call.to_owned(),
        };
        assert_eq!(
            at(5, 13),
            spawn("net::Client::connect", "leak_check::spawn(async move {")
        );
        assert_eq!(
            at(7, 13),
            spawn("net::Client::connect", "leak_check::spawn(async move { #2")
        );
        assert_eq!(
            at(14, 9),
            spawn("helper::inner", "tokio::spawn(async move {")
        );
        // The same text in another function is not a repeat.
        assert_eq!(at(17, 5), spawn("helper", "leak_check::spawn(async move {"));
        assert_eq!(sources.spawn("missing.rs", 1, 1), None);
    }

    #[test]
    fn entries_round_trip_through_their_lines() {
        let entries = [
            Entry {
                test: "client::get".into(),
                file: "tests/client.rs".into(),
                function: "net::Client::connect".into(),
                call: "tokio::spawn(async move { a | b })".into(),
            },
            Entry::untracked("client::plain", UNTRACKED),
            Entry::untracked("client::closures", UNTRACKED_BLOCKING),
        ];
        for entry in entries {
            assert_eq!(Entry::parse(&entry.to_line()), Some(entry.clone()));
        }
        assert_eq!(Entry::parse("just a test"), None);
        assert_eq!(Entry::parse("t | file.rs | f |  "), None);
        assert_eq!(Entry::parse("t | file.rs | spawn(x)"), None);
        assert_eq!(Entry::parse("t | (untracked tasks) | x"), None);
        assert_eq!(
            Entry::parse("t | f.rs | g |   spawn(  x )").map(|e| e.call),
            Some("spawn( x )".to_owned())
        );
    }
}
