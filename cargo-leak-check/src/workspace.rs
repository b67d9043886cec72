//! What the tool needs to know about the user's workspace: its packages (from `cargo metadata`),
//! which of them a `cargo test` with the user's arguments selects, and how to add
//! `--cfg tokio_unstable` to the user's own rustflags without dropping any.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// The leak-check package's name.
pub const LEAK_CHECK: &str = "leak-check";

/// The parts of `cargo metadata --format-version 1` used here.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub packages: Vec<Package>,
    pub workspace_members: Vec<String>,
    #[serde(default)]
    pub workspace_default_members: Vec<String>,
    pub target_directory: PathBuf,
    pub workspace_root: PathBuf,
}

#[derive(Debug, Deserialize)]
pub struct Package {
    pub name: String,
    pub id: String,
    pub manifest_path: PathBuf,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub rename: Option<String>,
    #[serde(default)]
    pub optional: bool,
}

impl Package {
    pub fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(Path::new("."))
    }

    /// The names this package gives leak-check in its manifest (`leak-check`, or its rename),
    /// each with whether every declaration under that name is optional.
    pub fn leak_check_names(&self) -> Vec<(String, bool)> {
        let mut names: BTreeMap<String, bool> = BTreeMap::new();
        for dep in self.dependencies.iter().filter(|d| d.name == LEAK_CHECK) {
            let name = dep.rename.clone().unwrap_or_else(|| dep.name.clone());
            let optional = names.entry(name).or_insert(true);
            *optional &= dep.optional;
        }
        names.into_iter().collect()
    }
}

impl Metadata {
    /// Runs `cargo metadata` in `dir` (resolving dependencies unless `no_deps`).
    pub fn load(
        cargo: &OsString,
        dir: &Path,
        manifest_path: Option<&str>,
        no_deps: bool,
        extra: &[String],
    ) -> Result<Metadata, String> {
        let mut command = Command::new(cargo);
        command
            .current_dir(dir)
            .args(["metadata", "--format-version", "1"]);
        if no_deps {
            command.arg("--no-deps");
        }
        if let Some(path) = manifest_path {
            command.args(["--manifest-path", path]);
        }
        command.args(extra);
        let output = command
            .output()
            .map_err(|e| format!("cannot run `cargo metadata`: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`cargo metadata` failed:\n{}",
                String::from_utf8_lossy(&output.stderr).trim_end()
            ));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("cannot read `cargo metadata`'s output: {e}"))
    }

    pub fn members(&self) -> impl Iterator<Item = &Package> {
        self.packages
            .iter()
            .filter(|p| self.workspace_members.contains(&p.id))
    }

    /// The members a `cargo test` with these arguments selects, as cargo picks them: `-p`
    /// specs, `--workspace` less `--exclude`, or else the package whose manifest is nearest to
    /// `dir` (the workspace's default members when that is the workspace's root manifest).
    pub fn selected(&self, args: &CargoArgs, dir: &Path) -> Vec<&Package> {
        if !args.packages.is_empty() {
            return self
                .members()
                .filter(|p| args.packages.iter().any(|spec| spec_matches(spec, &p.name)))
                .collect();
        }
        if args.workspace {
            return self
                .members()
                .filter(|p| !args.exclude.iter().any(|spec| spec_matches(spec, &p.name)))
                .collect();
        }
        let manifest = match &args.manifest_path {
            Some(path) => Some(dir.join(path)),
            None => nearest_manifest(dir),
        };
        let root_manifest = self.workspace_root.join("Cargo.toml");
        let same = |a: &Path, b: &Path| {
            fs::canonicalize(a)
                .ok()
                .is_some_and(|a| fs::canonicalize(b).ok() == Some(a))
        };
        if let Some(manifest) = manifest.filter(|m| !same(m, &root_manifest)) {
            let own: Vec<&Package> = self
                .members()
                .filter(|p| same(&p.manifest_path, &manifest))
                .collect();
            if !own.is_empty() {
                return own;
            }
        }
        self.packages
            .iter()
            .filter(|p| self.workspace_default_members.contains(&p.id))
            .collect()
    }

    /// The package named `name` in the resolved graph, if any.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }
}

fn nearest_manifest(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|m| m.is_file())
}

/// Whether a `-p` spec (`name`, `name@1.2`, a glob such as `app-*`, or a package id URL
/// `path+file:///x/app#0.1.0`) names the package `name`.
fn spec_matches(spec: &str, name: &str) -> bool {
    let spec = match spec.rsplit_once('#') {
        Some((url, fragment)) => {
            let fragment = fragment.split('@').next().unwrap_or(fragment);
            if fragment.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                // `...#0.1.0`: the name is the URL's last path segment.
                url.rsplit('/').next().unwrap_or(url)
            } else {
                fragment
            }
        }
        None => spec.split('@').next().unwrap_or(spec),
    };
    glob(spec, name)
}

/// `*` and `?` globs, as cargo takes in `-p`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The cargo arguments this tool looks at (all of them are passed on as they are).
#[derive(Debug, Default)]
pub struct CargoArgs {
    pub packages: Vec<String>,
    pub workspace: bool,
    pub exclude: Vec<String>,
    pub manifest_path: Option<String>,
    pub target: Option<String>,
    pub target_dir: Option<String>,
    /// `--fail-fast` or `--no-fail-fast` given.
    pub fail_fast_given: bool,
    /// The arguments that `cargo metadata` needs too: `--locked`, `--offline`, `--frozen`,
    /// `--config`.
    pub for_metadata: Vec<String>,
}

impl CargoArgs {
    pub fn scan(args: &[String]) -> CargoArgs {
        let mut found = CargoArgs::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, attached) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let short_package = arg
                .strip_prefix("-p")
                .filter(|rest| !rest.is_empty() && !arg.starts_with("--"));
            let mut value = || attached.clone().or_else(|| iter.next().cloned());
            match flag {
                "-p" | "--package" => found.packages.extend(value()),
                "--workspace" | "--all" => found.workspace = true,
                "--exclude" => found.exclude.extend(value()),
                "--manifest-path" => found.manifest_path = value(),
                "--target" => found.target = value(),
                "--target-dir" => found.target_dir = value(),
                "--fail-fast" | "--no-fail-fast" => found.fail_fast_given = true,
                "--locked" | "--offline" | "--frozen" => found.for_metadata.push(arg.clone()),
                "--config" => {
                    if let Some(value) = value() {
                        found.for_metadata.push(format!("--config={value}"));
                    }
                }
                _ => {
                    if let Some(spec) = short_package {
                        found.packages.push(spec.trim_start_matches('=').to_owned());
                    }
                }
            }
        }
        found
    }
}

/// Whether leak-check's `taskdump` feature does anything on `target` (or this host): tokio's
/// task dumps exist on Linux, on x86, x86_64, aarch64 and s390x.
pub fn taskdump_supported(target: Option<&str>) -> bool {
    match target {
        Some(triple) => {
            let arch = triple.split('-').next().unwrap_or("");
            triple.contains("-linux")
                && matches!(arch, "x86_64" | "i686" | "i586" | "aarch64" | "s390x")
        }
        None => {
            cfg!(target_os = "linux")
                && cfg!(any(
                    target_arch = "x86",
                    target_arch = "x86_64",
                    target_arch = "aarch64",
                    target_arch = "s390x"
                ))
        }
    }
}

/// How `--cfg tokio_unstable` is added to the user's own rustflags.
#[derive(Debug, PartialEq, Eq)]
pub enum Rustflags {
    /// Set this environment variable to this value (the user's, with the cfg appended).
    Env(&'static str, String),
    /// Pass `--config` with this value: the user's rustflags live in cargo's configuration,
    /// which `RUSTFLAGS` would override.
    Config(String),
}

const CFG: &str = "tokio_unstable";

/// Works out how to add the cfg: after the user's `CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS` when
/// set (they override cargo's configuration); else, when cargo's configuration (its files, read
/// from `dir` upwards and from `CARGO_HOME`, or its `CARGO_*` variables) sets rustflags, as a
/// `--config` that cargo joins with them; else in `RUSTFLAGS`.
pub fn rustflags(env: impl Fn(&str) -> Option<String>, dir: &Path) -> Rustflags {
    if let Some(encoded) = env("CARGO_ENCODED_RUSTFLAGS") {
        if encoded.split('\x1f').any(|f| f.ends_with(CFG)) {
            return Rustflags::Env("CARGO_ENCODED_RUSTFLAGS", encoded);
        }
        let sep = if encoded.is_empty() { "" } else { "\x1f" };
        return Rustflags::Env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("{encoded}{sep}--cfg\x1f{CFG}"),
        );
    }
    if let Some(flags) = env("RUSTFLAGS") {
        if flags.split_whitespace().any(|f| f == CFG) {
            return Rustflags::Env("RUSTFLAGS", flags);
        }
        return Rustflags::Env(
            "RUSTFLAGS",
            format!("{flags} --cfg {CFG}").trim().to_owned(),
        );
    }
    let config = ConfigRustflags::find(&env, dir);
    let array = || toml::Value::Array(vec!["--cfg".into(), CFG.into()]);
    if config.target {
        // Target rustflags (by triple or cfg) win over build.rustflags, and all that match are
        // joined: one more that matches every target joins them.
        return Rustflags::Config(format!("target.'cfg(all())'.rustflags={}", array()));
    }
    match config.build {
        // Arrays from every source are joined; a string is replaced by the last one given.
        Some(BuildFlags::Array) => Rustflags::Config(format!("build.rustflags={}", array())),
        Some(BuildFlags::String(flags)) => Rustflags::Config(format!(
            "build.rustflags={}",
            toml::Value::String(format!("{flags} --cfg {CFG}"))
        )),
        None => Rustflags::Env("RUSTFLAGS", format!("--cfg {CFG}")),
    }
}

#[derive(Debug, Default)]
struct ConfigRustflags {
    target: bool,
    build: Option<BuildFlags>,
}

#[derive(Debug)]
enum BuildFlags {
    Array,
    /// The string of the configuration that wins.
    String(String),
}

impl ConfigRustflags {
    fn find(env: &impl Fn(&str) -> Option<String>, dir: &Path) -> ConfigRustflags {
        let mut found = ConfigRustflags::default();
        if let Some(flags) = env("CARGO_BUILD_RUSTFLAGS") {
            found.build = Some(BuildFlags::String(flags));
        }
        // Files, the one that wins first: from `dir` upwards, then CARGO_HOME's.
        let mut dirs: Vec<PathBuf> = dir.ancestors().map(|d| d.join(".cargo")).collect();
        let home = env("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".cargo")));
        if let Some(home) = home {
            if !dirs.contains(&home) {
                dirs.push(home);
            }
        }
        for dir in dirs {
            for name in ["config.toml", "config"] {
                let Ok(text) = fs::read_to_string(dir.join(name)) else {
                    continue;
                };
                let Ok(table) = text.parse::<toml::Table>() else {
                    continue;
                };
                if let Some(targets) = table.get("target").and_then(|t| t.as_table()) {
                    if targets
                        .values()
                        .any(|t| t.as_table().is_some_and(|t| t.contains_key("rustflags")))
                    {
                        found.target = true;
                    }
                }
                let build = table
                    .get("build")
                    .and_then(|b| b.as_table())
                    .and_then(|b| b.get("rustflags"));
                match (build, &found.build) {
                    (Some(toml::Value::Array(_)), None) => found.build = Some(BuildFlags::Array),
                    (Some(toml::Value::String(s)), None) => {
                        found.build = Some(BuildFlags::String(s.clone()))
                    }
                    _ => {}
                }
            }
        }
        if !found.target {
            found.target = std::env::vars_os().any(|(key, _)| {
                key.to_str().is_some_and(|k| {
                    k.starts_with("CARGO_TARGET_") && k.ends_with("_RUSTFLAGS") && env(k).is_some()
                })
            });
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> CargoArgs {
        CargoArgs::scan(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn cargo_arguments_are_found_in_their_forms() {
        let found = args(&[
            "-p",
            "a",
            "--package=b",
            "-pc",
            "--features",
            "x",
            "--target",
            "aarch64-unknown-linux-gnu",
            "--target-dir=/t",
            "--no-fail-fast",
            "--locked",
            "--config",
            "net.offline=true",
        ]);
        assert_eq!(found.packages, ["a", "b", "c"]);
        assert_eq!(found.target.as_deref(), Some("aarch64-unknown-linux-gnu"));
        assert_eq!(found.target_dir.as_deref(), Some("/t"));
        assert!(found.fail_fast_given && !found.workspace);
        assert_eq!(
            found.for_metadata,
            ["--locked", "--config=net.offline=true"]
        );
        let all = args(&["--workspace", "--exclude", "z", "--test", "leaky"]);
        assert!(all.workspace && all.exclude == ["z"] && all.packages.is_empty());
    }

    #[test]
    fn package_specs_match_like_cargo() {
        assert!(spec_matches("app", "app"));
        assert!(spec_matches("app@0.1.0", "app"));
        assert!(spec_matches("app-*", "app-core"));
        assert!(!spec_matches("app-*", "app"));
        assert!(spec_matches("path+file:///w/app#0.1.0", "app"));
        assert!(spec_matches("path+file:///w/x#app@0.1.0", "app"));
        assert!(glob("a?c*", "abcdef") && !glob("a?c", "ac"));
    }

    #[test]
    fn taskdump_targets() {
        assert!(taskdump_supported(Some("x86_64-unknown-linux-gnu")));
        assert!(taskdump_supported(Some("aarch64-unknown-linux-musl")));
        assert!(!taskdump_supported(Some("x86_64-apple-darwin")));
        assert!(!taskdump_supported(Some("riscv64gc-unknown-linux-gnu")));
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_cfg_joins_the_users_own_rustflags() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home").display().to_string();
        let none = [("CARGO_HOME", home.as_str())];
        assert_eq!(
            rustflags(env_of(&[("RUSTFLAGS", "-C opt-level=1")]), dir.path()),
            Rustflags::Env("RUSTFLAGS", "-C opt-level=1 --cfg tokio_unstable".into())
        );
        assert_eq!(
            rustflags(env_of(&[("RUSTFLAGS", "--cfg tokio_unstable")]), dir.path()),
            Rustflags::Env("RUSTFLAGS", "--cfg tokio_unstable".into())
        );
        assert_eq!(
            rustflags(env_of(&[("CARGO_ENCODED_RUSTFLAGS", "-Cx")]), dir.path()),
            Rustflags::Env(
                "CARGO_ENCODED_RUSTFLAGS",
                "-Cx\x1f--cfg\x1ftokio_unstable".into()
            )
        );
        assert_eq!(
            rustflags(env_of(&none), dir.path()),
            Rustflags::Env("RUSTFLAGS", "--cfg tokio_unstable".into())
        );

        let project = dir.path().join("project");
        let cargo_dir = project.join(".cargo");
        fs::create_dir_all(&cargo_dir).unwrap();
        let config = |text: &str| fs::write(cargo_dir.join("config.toml"), text).unwrap();
        config("[build]\nrustflags = \"-C debuginfo=1\"\n");
        assert_eq!(
            rustflags(env_of(&none), &project),
            Rustflags::Config("build.rustflags=\"-C debuginfo=1 --cfg tokio_unstable\"".into())
        );
        config("[build]\nrustflags = [\"-C\", \"debuginfo=1\"]\n");
        assert_eq!(
            rustflags(env_of(&none), &project),
            Rustflags::Config("build.rustflags=[\"--cfg\", \"tokio_unstable\"]".into())
        );
        config("[target.x86_64-unknown-linux-gnu]\nrustflags = [\"-C\", \"debuginfo=1\"]\n");
        assert_eq!(
            rustflags(env_of(&none), &project.join("sub")),
            Rustflags::Config(
                "target.'cfg(all())'.rustflags=[\"--cfg\", \"tokio_unstable\"]".into()
            )
        );
    }
}
