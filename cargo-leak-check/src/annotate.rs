//! `cargo leak-check annotate`: puts `#[leak_check::leak_check]` above every `#[tokio::test]`
//! that nothing checks yet, changing nothing else in the file.
//!
//! syn finds the test functions (so `#[tokio::test]` in a string or a comment is not one) and
//! their lines; the file is then edited as text, one inserted line per test, so every other byte
//! stays as it was.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::LineColumn;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Attribute, ItemFn, ItemMod, Meta, Token};

use crate::workspace::{Metadata, LEAK_CHECK};

/// A `#[tokio::test]` that nothing checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    /// The line of its `#[tokio::test]` attribute (1-based), where the new line goes.
    pub line: usize,
    /// The function's path inside its file: inline modules, then its name.
    pub name: String,
    /// The attribute to insert (without indentation or line ending).
    pub attribute: String,
}

/// The unchecked tests in one file's source, and apart from them those that use tokio's
/// `flavor = "local"`, which `#[leak_check]` refuses (it builds no `LocalRuntime`). `path` is
/// how the package names leak-check (`leak_check`, or its rename). An error when the source
/// does not parse.
fn scan_file(source: &str, path: &str) -> Result<(Vec<Unchecked>, Vec<Unchecked>), syn::Error> {
    let file = syn::parse_file(source)?;
    let mut finder = Finder {
        source,
        line_starts: line_starts(source),
        path,
        modules: Vec::new(),
        found: Vec::new(),
        local_flavor: Vec::new(),
    };
    finder.visit_file(&file);
    Ok((finder.found, finder.local_flavor))
}

/// `source` with one line inserted before each test's attribute line, indented like it.
pub fn insert(source: &str, tests: &[Unchecked]) -> String {
    let lines: BTreeSet<usize> = tests.iter().map(|t| t.line).collect();
    let mut out = String::with_capacity(source.len() + 40 * tests.len());
    let mut rest = source;
    let mut number = 0;
    for line in source.split_inclusive('\n') {
        number += 1;
        rest = &rest[line.len()..];
        if lines.contains(&number) {
            let (bom, body) = match line.strip_prefix('\u{feff}') {
                Some(body) => ("\u{feff}", body),
                None => ("", line),
            };
            let indent: String = body
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect();
            let ending = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
            let test = tests
                .iter()
                .find(|t| t.line == number)
                .expect("a test here");
            out.push_str(bom);
            out.push_str(&indent);
            out.push_str(&test.attribute);
            out.push_str(ending);
            out.push_str(body);
        } else {
            out.push_str(line);
        }
    }
    debug_assert!(rest.is_empty());
    out
}

struct Finder<'a> {
    source: &'a str,
    line_starts: Vec<usize>,
    path: &'a str,
    /// The inline modules around the current item, each with whether an attribute checks it.
    modules: Vec<(String, bool)>,
    found: Vec<Unchecked>,
    /// Unchecked tests on tokio's `LocalRuntime` (`flavor = "local"`), left as they are.
    local_flavor: Vec<Unchecked>,
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_item_mod(&mut self, module: &'ast ItemMod) {
        let checked = module.attrs.iter().any(|a| self.is_leak_check(a));
        self.modules.push((module.ident.to_string(), checked));
        visit::visit_item_mod(self, module);
        self.modules.pop();
    }

    fn visit_item_fn(&mut self, function: &'ast ItemFn) {
        self.check(function);
        visit::visit_item_fn(self, function);
    }
}

impl Finder<'_> {
    fn check(&mut self, function: &ItemFn) {
        let Some((attr, condition)) = function.attrs.iter().find_map(|a| self.tokio_test(a)) else {
            return;
        };
        let checked = self.modules.iter().any(|(_, checked)| *checked)
            || function.attrs.iter().any(|a| self.is_leak_check(a));
        if checked {
            return;
        }
        let attribute = match condition {
            // `#[cfg_attr(pred, tokio::test)]`: a test only when `pred` holds, and so checked
            // only then (leak-check on a plain async fn would make it a test).
            Some(pred) => format!("#[cfg_attr({pred}, {}::leak_check)]", self.path),
            None => format!("#[{}::leak_check]", self.path),
        };
        let mut name: Vec<String> = self.modules.iter().map(|(m, _)| m.clone()).collect();
        name.push(function.sig.ident.to_string());
        let test = Unchecked {
            line: attr.pound_token.span.start().line,
            name: name.join("::"),
            attribute,
        };
        let tokens = quote::ToTokens::to_token_stream(attr).to_string();
        if tokens.replace(' ', "").contains("flavor=\"local\"") {
            self.local_flavor.push(test);
        } else {
            self.found.push(test);
        }
    }

    /// `#[tokio::test]` (with any arguments) as `(attr, None)`, or `#[cfg_attr(pred, ...,
    /// tokio::test, ...)]` as `(attr, Some(pred))`.
    fn tokio_test<'a>(&self, attr: &'a Attribute) -> Option<(&'a Attribute, Option<String>)> {
        if is_path(attr.path(), &["tokio", "test"]) {
            return Some((attr, None));
        }
        let (pred, metas) = cfg_attr(attr)?;
        metas
            .iter()
            .any(|m| is_path(m.path(), &["tokio", "test"]))
            .then(|| (attr, Some(self.text(&pred))))
    }

    /// `#[leak_check]`, `#[leak_check::leak_check]`, `#[<rename>::leak_check]`, with any
    /// arguments (`off` included), directly or inside `cfg_attr`.
    fn is_leak_check(&self, attr: &Attribute) -> bool {
        let direct = |path: &syn::Path| {
            is_path(path, &["leak_check"])
                || is_path(path, &["leak_check", "leak_check"])
                || is_path(path, &[self.path, "leak_check"])
        };
        direct(attr.path())
            || cfg_attr(attr).is_some_and(|(_, metas)| metas.iter().any(|m| direct(m.path())))
    }

    /// The source text of a piece of syntax, as written.
    fn text(&self, node: &Meta) -> String {
        let span = node.span();
        let (start, end) = (self.offset(span.start()), self.offset(span.end()));
        match (start, end) {
            (Some(start), Some(end)) if start < end => self.source[start..end].to_owned(),
            _ => quote::ToTokens::to_token_stream(node).to_string(),
        }
    }

    /// The byte offset of a line and column (in characters).
    fn offset(&self, at: LineColumn) -> Option<usize> {
        let start = *self.line_starts.get(at.line.checked_sub(1)?)?;
        let line = &self.source[start..];
        let within = line
            .char_indices()
            .nth(at.column)
            .map_or(line.len(), |(i, _)| i);
        Some(start + within)
    }
}

fn line_starts(source: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
    starts
}

/// `cfg_attr(pred, a, b)` as `(pred, [a, b])`.
fn cfg_attr(attr: &Attribute) -> Option<(Meta, Vec<Meta>)> {
    if !attr.path().is_ident("cfg_attr") {
        return None;
    }
    let metas = attr
        .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
        .ok()?;
    let mut metas = metas.into_iter();
    let pred = metas.next()?;
    Some((pred, metas.collect()))
}

/// Whether `path` is exactly `segments` (a leading `::` allowed).
fn is_path(path: &syn::Path, segments: &[&str]) -> bool {
    path.segments.len() == segments.len()
        && path
            .segments
            .iter()
            .zip(segments)
            .all(|(s, want)| s.ident == want && s.arguments.is_none())
}

/// What `annotate` found in the workspace.
pub struct Found {
    pub files: Vec<FileTests>,
    /// Files that do not parse, with why.
    pub skipped: Vec<String>,
    /// Packages with unchecked tests that do not depend on leak-check.
    pub without_dependency: Vec<String>,
}

pub struct FileTests {
    pub path: PathBuf,
    /// The path shown: relative to the workspace root.
    pub shown: String,
    pub source: String,
    pub tests: Vec<Unchecked>,
}

/// Every `.rs` file under `src/` and `tests/` of each workspace member, with its unchecked
/// tests.
pub fn scan(metadata: &Metadata) -> Found {
    let mut found = Found {
        files: Vec::new(),
        skipped: Vec::new(),
        without_dependency: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let mut members: Vec<_> = metadata.members().collect();
    members.sort_by(|a, b| a.manifest_path.cmp(&b.manifest_path));
    for package in members {
        let names = package.leak_check_names();
        let path = names
            .first()
            .map_or_else(|| "leak_check".to_owned(), |(n, _)| n.replace('-', "_"));
        // Inside leak-check itself, `leak_check::` names nothing in its own src/.
        let folders: &[&str] = if package.name == LEAK_CHECK {
            &["tests"]
        } else {
            &["src", "tests"]
        };
        let mut package_has_tests = false;
        for folder in folders {
            let mut files = Vec::new();
            rust_files(&package.dir().join(folder), &mut files);
            files.sort();
            for file in files {
                if !seen.insert(file.clone()) {
                    continue;
                }
                let shown = file
                    .strip_prefix(&metadata.workspace_root)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                let Ok(bytes) = fs::read(&file) else {
                    found.skipped.push(format!("{shown}: cannot be read"));
                    continue;
                };
                let Ok(source) = String::from_utf8(bytes) else {
                    found.skipped.push(format!("{shown}: not UTF-8"));
                    continue;
                };
                match scan_file(&source, &path) {
                    Ok((tests, local_flavor)) => {
                        found.skipped.extend(local_flavor.iter().map(|test| {
                            format!(
                                "{shown}:{}: `{}` runs on tokio's `flavor = \"local\"`, which \
                                 leak-check does not support (left unchecked)",
                                test.line, test.name
                            )
                        }));
                        if tests.is_empty() {
                            continue;
                        }
                        package_has_tests = true;
                        found.files.push(FileTests {
                            path: file,
                            shown,
                            source,
                            tests,
                        });
                    }
                    Err(error) => {
                        let at = error.span().start();
                        found.skipped.push(format!(
                            "{shown}:{}:{}: does not parse ({error})",
                            at.line,
                            at.column + 1
                        ));
                    }
                }
            }
        }
        if package_has_tests && names.is_empty() {
            found.without_dependency.push(package.name.clone());
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            rust_files(&path, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests of `source` to annotate.
    fn unchecked(source: &str, path: &str) -> Result<Vec<Unchecked>, syn::Error> {
        scan_file(source, path).map(|(tests, _)| tests)
    }

    fn annotate(source: &str) -> String {
        insert(source, &unchecked(source, "leak_check").unwrap())
    }

    /// `#[leak_check]` refuses tokio's `LocalRuntime`: such a test is left as it is, and named.
    #[test]
    fn a_test_on_the_local_flavor_is_left_alone() {
        let source = "\
#[tokio::test(flavor = \"local\")]
async fn local() {}

#[cfg_attr(not(miri), tokio::test(flavor = \"local\"))]
async fn local_unless_miri() {}

#[tokio::test]
async fn current() {}
";
        let (tests, local) = scan_file(source, "leak_check").unwrap();
        let names = |tests: &[Unchecked]| tests.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&tests), ["current"]);
        assert_eq!(names(&local), ["local", "local_unless_miri"]);
        assert!(!annotate(source).contains("leak_check]\n#[tokio::test(flavor"));
    }

    #[test]
    fn inserts_above_the_tokio_test_line_with_its_indentation() {
        let source = "\
use x;

#[tokio::test]
async fn a() {}

mod m {
    /// Doc.
    #[tokio::test(flavor = \"multi_thread\", worker_threads = 2)]
    #[should_panic]
    async fn b() {}
}
";
        let found = unchecked(source, "leak_check").unwrap();
        let names: Vec<_> = found.iter().map(|t| (t.line, t.name.as_str())).collect();
        assert_eq!(names, [(3, "a"), (8, "m::b")]);
        assert_eq!(
            annotate(source),
            "\
use x;

#[leak_check::leak_check]
#[tokio::test]
async fn a() {}

mod m {
    /// Doc.
    #[leak_check::leak_check]
    #[tokio::test(flavor = \"multi_thread\", worker_threads = 2)]
    #[should_panic]
    async fn b() {}
}
"
        );
    }

    #[test]
    fn checked_tests_are_left_alone() {
        let source = r##"
#[leak_check]
#[tokio::test]
async fn own() {}

#[tokio::test]
#[leak_check::leak_check(grace_ms = 5)]
async fn below() {}

#[leak_check(off)]
#[tokio::test]
async fn opted_out() {}

#[cfg_attr(test, lc::leak_check)]
#[tokio::test]
async fn renamed_in_cfg_attr() {}

#[leak_check(grace_ms = 9)]
mod checked {
    mod inner {
        #[tokio::test]
        async fn covered() {}
    }
}

#[test]
fn sync() { let _ = "#[tokio::test] async fn in_a_string() {}"; }

// #[tokio::test]
// async fn in_a_comment() {}

macro_rules! m { () => { #[tokio::test] async fn in_a_macro() {} } }
"##;
        assert_eq!(unchecked(source, "lc").unwrap(), []);
    }

    #[test]
    fn cfg_attr_tests_get_a_cfg_attr() {
        let source =
            "#[cfg_attr(not(miri), tokio::test(flavor = \"multi_thread\"))]\r\nasync fn a() {}\r\n";
        assert_eq!(
            annotate(source),
            "#[cfg_attr(not(miri), leak_check::leak_check)]\r\n#[cfg_attr(not(miri), tokio::test(flavor = \"multi_thread\"))]\r\nasync fn a() {}\r\n"
        );
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let source = "\u{feff}#[tokio::test]\n\tasync fn a() {}\n\t#[tokio::test] async fn b() {}";
        let once = annotate(source);
        assert_eq!(
            once,
            "\u{feff}#[leak_check::leak_check]\n#[tokio::test]\n\tasync fn a() {}\n\t#[leak_check::leak_check]\n\t#[tokio::test] async fn b() {}"
        );
        assert_eq!(annotate(&once), once);
    }
}
