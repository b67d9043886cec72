//! The report for machines and CI: one line of JSON per leaking test, appended to a file, and
//! GitHub Actions annotations that land on the spawn line in a pull request's diff.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::config::{Mode, Settings};
use crate::report::{state_name, Group, LeakReport, ReportKind};

/// One leaking test, as one JSON object. The fields are in the order the README documents, and
/// serialized in that order (a `json!` object would sort them).
#[derive(serde::Serialize)]
pub(crate) struct JsonReport<'a> {
    /// The full path: test binary (crate), modules, function.
    test: &'a str,
    outcome: &'static str,
    mode: &'static str,
    /// A `#[should_panic]` test, which a leak fails by returning normally: its own panic is no
    /// other failure.
    expects_panic: bool,
    timeout_ms: Option<u64>,
    waited_ms: u64,
    tasks: usize,
    untracked: usize,
    untracked_blocking: usize,
    allowed: usize,
    sites: Vec<JsonSite>,
}

/// One spawn site's stragglers.
#[derive(serde::Serialize)]
struct JsonSite {
    site: String,
    file: &'static str,
    line: u32,
    column: u32,
    count: usize,
    names: Vec<String>,
    states: JsonStates,
    /// The distinct spawn chains from the test body; `"..."` marks a cut.
    chains: Vec<Vec<String>>,
    /// One per task; `None` for a task that never yielded.
    ages_ms: Vec<Option<u64>>,
}

/// Tasks per state (`stuck_in_poll`...), in the order the README lists the states.
struct JsonStates(Vec<(String, usize)>);

impl Serialize for JsonStates {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (state, n) in &self.0 {
            map.serialize_entry(state, n)?;
        }
        map.end()
    }
}

/// The report as one JSON object (the README documents the schema).
pub(crate) fn to_json<'a>(
    report: &'a LeakReport,
    settings: &'a Settings,
    expects_panic: bool,
) -> JsonReport<'a> {
    let (outcome, timeout_ms) = match report.kind {
        ReportKind::Leak => ("leaked", None),
        ReportKind::Timeout(limit) => ("timed_out", Some(millis(limit))),
    };
    JsonReport {
        test: &settings.test_path,
        outcome,
        mode: settings.mode.as_str(),
        expects_panic,
        timeout_ms,
        waited_ms: millis(report.waited),
        tasks: report.total(),
        untracked: report.untracked,
        untracked_blocking: report.untracked_blocking,
        allowed: report.allowed,
        sites: report.groups().iter().map(json_site).collect(),
    }
}

fn json_site(group: &Group<'_>) -> JsonSite {
    let mut states = group.states();
    states.sort_by_key(|(state, _)| *state);
    let states = states
        .into_iter()
        .map(|(state, n)| (state_name(state).replace(' ', "_"), n))
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
    JsonSite {
        site: group.site.to_string(),
        file: group.site.file(),
        line: group.site.line(),
        column: group.site.column(),
        count: group.members.len(),
        names: group.names().into_iter().map(str::to_owned).collect(),
        states: JsonStates(states),
        chains,
        ages_ms: group.members.iter().map(|s| s.age.map(millis)).collect(),
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Appends `value` as one line. The line is written with a single `write` on a file opened for
/// appending, so lines from many tests and processes do not interleave.
pub(crate) fn append_line(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// One workflow command per leaking site (and one for the plain-spawn count), for GitHub
/// Actions. Paths are made relative to `workspace`, the repository's root (`GITHUB_WORKSPACE`),
/// where GitHub places annotations, even when the cargo workspace is a folder inside it.
pub(crate) fn annotations(
    report: &LeakReport,
    mode: Mode,
    workspace: Option<&Path>,
) -> Vec<String> {
    let cargo_root = workspace.and_then(|_| cargo_workspace_of_this_test());
    let level = if mode == Mode::Warn {
        "warning"
    } else {
        "error"
    };
    let what = match report.kind {
        ReportKind::Leak => "leaked",
        ReportKind::Timeout(_) => "timed out with",
    };
    // A helper's check is named by the helper, called by the test (or thread) `report.test`.
    let (who, body) = match report.helper {
        Some(helper) => (
            format!("checked helper {helper}, called by {},", report.test),
            helper,
        ),
        None => (report.test.clone(), report.test.as_str()),
    };
    let title = format!(
        "leak-check: {who} {what} {} task{}",
        report.total(),
        if report.total() == 1 { "" } else { "s" }
    );
    let mut lines: Vec<String> = report
        .groups()
        .iter()
        .map(|group| {
            let file = repo_path(group.site.file(), workspace, cargo_root.as_deref());
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
                ReportKind::Leak => {
                    format!("after the body of `{body}` {}", report.body_ended())
                }
                ReportKind::Timeout(_) => format!("when the timeout stopped `{body}`"),
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
            "{} task(s) spawned with plain tokio::spawn still alive at the end of `{body}`; spawn them with leak_check::spawn to see where",
            report.untracked
        );
        lines.push(format!(
            "::{level} title={}::{}",
            escape_property(&title),
            escape_data(&message)
        ));
    }
    lines
}

/// The cargo workspace of the running test binary: the spawn sites of its own crates are
/// relative to it. Cargo runs a test binary in its package's folder and says which that is in
/// `CARGO_MANIFEST_DIR` (cargo test and nextest both do).
fn cargo_workspace_of_this_test() -> Option<PathBuf> {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())?;
    workspace_root(&package)
}

/// The root of the cargo workspace that holds the package in `package` (or in a folder of it),
/// as cargo finds it: the nearest folder, from there up, whose Cargo.toml has a `[workspace]`
/// table; a package in no workspace is its own root, the first folder with a Cargo.toml.
fn workspace_root(package: &Path) -> Option<PathBuf> {
    let mut first_manifest = None;
    for dir in package.ancestors() {
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if declares_workspace(&manifest) {
            return Some(dir.to_owned());
        }
        first_manifest.get_or_insert_with(|| dir.to_owned());
    }
    first_manifest
}

/// Whether a Cargo.toml has a `[workspace]` table (`[workspace.package]` and the like imply
/// one).
fn declares_workspace(manifest: &str) -> bool {
    manifest.lines().any(|line| {
        let table = line.split('#').next().unwrap_or_default().trim();
        table == "[workspace]" || table.starts_with("[workspace.")
    })
}

/// A spawn site's file as GitHub wants it: relative to the repository root `repo`. `file` is
/// relative to the cargo workspace root `cargo_root` for the workspace's own crates, and
/// absolute for the others (path dependencies outside it, registry crates). A file outside the
/// repository, or one whose place is not known, is left as it is.
fn repo_path(file: &str, repo: Option<&Path>, cargo_root: Option<&Path>) -> String {
    let path = Path::new(file);
    let Some(repo) = repo else {
        return file.to_owned();
    };
    let full = match cargo_root {
        _ if path.is_absolute() => path.to_owned(),
        Some(root) => root.join(path),
        None => return file.to_owned(),
    };
    let inside = full
        .strip_prefix(repo)
        .map(Path::to_owned)
        .ok()
        .or_else(|| {
            // The same folders under other names (a symbolic link in either path).
            let repo = repo.canonicalize().ok()?;
            let full = full.canonicalize().ok()?;
            full.strip_prefix(repo).map(Path::to_owned).ok()
        });
    match inside {
        Some(inside) => with_slashes(&inside),
        None => file.to_owned(),
    }
}

/// `a/b/c.rs`, whatever the platform's separator.
fn with_slashes(path: &Path) -> String {
    path.components()
        .filter_map(|part| match part {
            Component::Normal(name) => Some(name.to_string_lossy()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
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
    fn json_keys_come_in_the_documented_order() {
        let report = JsonReport {
            test: "client::tests::get_set",
            outcome: "leaked",
            mode: "fail",
            expects_panic: false,
            timeout_ms: None,
            waited_ms: 100,
            tasks: 3,
            untracked: 1,
            untracked_blocking: 0,
            allowed: 0,
            sites: vec![JsonSite {
                site: "src/push.rs:42:13".into(),
                file: "src/push.rs",
                line: 42,
                column: 13,
                count: 2,
                names: vec!["push-worker".into()],
                states: JsonStates(vec![("stranded".into(), 1), ("waiting".into(), 1)]),
                chains: vec![vec!["src/push.rs:30:9".into()], vec!["...".into()]],
                ages_ms: vec![Some(1200), None],
            }],
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            concat!(
                r#"{"test":"client::tests::get_set","outcome":"leaked","mode":"fail","#,
                r#""expects_panic":false,"timeout_ms":null,"waited_ms":100,"tasks":3,"#,
                r#""untracked":1,"untracked_blocking":0,"allowed":0,"#,
                r#""sites":[{"site":"src/push.rs:42:13","file":"src/push.rs","line":42,"#,
                r#""column":13,"count":2,"names":["push-worker"],"#,
                r#""states":{"stranded":1,"waiting":1},"#,
                r#""chains":[["src/push.rs:30:9"],["..."]],"ages_ms":[1200,null]}]}"#,
            )
        );
    }

    #[test]
    fn a_line_is_appended_whole() {
        let file = scratch("append").join("r.jsonl");
        append_line(&file, &serde_json::json!({"a": "x\ny"})).unwrap();
        append_line(&file, &serde_json::json!({"b": 1})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "{\"a\":\"x\\ny\"}\n{\"b\":1}\n"
        );
    }

    #[test]
    fn paths_are_made_relative_to_the_repository() {
        let repo = Some(Path::new("/work/repo"));
        let at_root = Some(Path::new("/work/repo"));
        let in_folder = Some(Path::new("/work/repo/rust"));
        // The cargo workspace is the repository.
        assert_eq!(repo_path("src/a.rs", repo, at_root), "src/a.rs");
        // ... or a folder inside it: its crates' files are relative to that folder.
        assert_eq!(repo_path("src/a.rs", repo, in_folder), "rust/src/a.rs");
        assert_eq!(
            repo_path("crates/b/src/b.rs", repo, in_folder),
            "rust/crates/b/src/b.rs"
        );
        // Absolute paths: a path dependency outside the cargo workspace but in the repository,
        // and a file outside the repository.
        assert_eq!(
            repo_path("/work/repo/vendor/c/src/c.rs", repo, in_folder),
            "vendor/c/src/c.rs"
        );
        assert_eq!(
            repo_path("/home/u/.cargo/registry/x.rs", repo, in_folder),
            "/home/u/.cargo/registry/x.rs"
        );
        // Not known: left as they are.
        assert_eq!(repo_path("src/a.rs", repo, None), "src/a.rs");
        assert_eq!(repo_path("src/a.rs", None, in_folder), "src/a.rs");
        assert_eq!(
            repo_path("/work/repo/src/a.rs", None, at_root),
            "/work/repo/src/a.rs"
        );
        // A cargo workspace outside the repository.
        assert_eq!(
            repo_path("src/a.rs", repo, Some(Path::new("/elsewhere"))),
            "src/a.rs"
        );
    }

    /// A fresh folder under the system's temporary folder.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("leak-check-export-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_cargo_workspace_is_found_from_the_package_up() {
        let repo = scratch("workspace");
        // repo/rust is a cargo workspace with a member crate, in a repository that also has a
        // package of its own, in no workspace, and a folder with no Cargo.toml at all.
        write(
            &repo.join("rust/Cargo.toml"),
            "[workspace] # the cargo workspace\nmembers = [\"crates/app\"]\n",
        );
        write(
            &repo.join("rust/crates/app/Cargo.toml"),
            "[package]\nname = \"app\"\n# [workspace]\n",
        );
        write(
            &repo.join("tools/Cargo.toml"),
            "[package]\nname = \"tool\"\n[dependencies.workspace-hack]\n",
        );
        write(
            &repo.join("split/Cargo.toml"),
            "[workspace.package]\nversion = \"1.0.0\"\n",
        );
        std::fs::create_dir_all(repo.join("empty")).unwrap();

        let app = repo.join("rust/crates/app");
        assert_eq!(workspace_root(&app), Some(repo.join("rust")));
        assert_eq!(workspace_root(&app.join("src")), Some(repo.join("rust")));
        assert_eq!(workspace_root(&repo.join("rust")), Some(repo.join("rust")));
        assert_eq!(
            workspace_root(&repo.join("tools")),
            Some(repo.join("tools"))
        );
        assert_eq!(
            workspace_root(&repo.join("split")),
            Some(repo.join("split"))
        );
        assert_eq!(workspace_root(&repo.join("empty")), None);

        // And the annotation path of a file in the member crate, as rustc gives it (relative
        // to the cargo workspace), is relative to the repository.
        let cargo_root = workspace_root(&app).unwrap();
        assert_eq!(
            repo_path("crates/app/src/lib.rs", Some(&repo), Some(&cargo_root)),
            "rust/crates/app/src/lib.rs"
        );
        let _ = std::fs::remove_dir_all(&repo);
    }

    #[cfg(unix)]
    #[test]
    fn a_repository_named_through_a_link_is_the_same_repository() {
        let dir = scratch("link");
        write(&dir.join("real/rust/Cargo.toml"), "[workspace]\n");
        write(&dir.join("real/rust/src/a.rs"), "");
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        assert_eq!(
            repo_path(
                "src/a.rs",
                Some(&dir.join("link")),
                Some(&dir.join("real/rust"))
            ),
            "rust/src/a.rs"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn this_crate_is_found_in_its_own_workspace() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(workspace_root(here).as_deref(), Some(here));
        assert_eq!(cargo_workspace_of_this_test().as_deref(), Some(here));
    }
}
