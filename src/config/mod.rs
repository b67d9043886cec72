//! The settings of one checked test: its own arguments, then the environment, then defaults.

pub(crate) mod allow;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::allow::AllowList;

/// The grace period when neither the test nor the environment sets one.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(100);

/// The environment variable that sets the grace period, in milliseconds, for a whole run.
pub const GRACE_ENV: &str = "LEAK_CHECK_GRACE_MS";
/// `fail` (the default), `warn` (print the report, pass the test) or `off`.
pub const MODE_ENV: &str = "LEAK_CHECK";
/// The hang guard for a whole run, in milliseconds: an async test whose body runs longer fails
/// with its live tasks.
pub const TIMEOUT_ENV: &str = "LEAK_CHECK_TIMEOUT_MS";
/// Spawn sites never reported, comma-separated: path prefixes or globs.
pub const ALLOW_SITES_ENV: &str = "LEAK_CHECK_ALLOW_SITES";
/// Task names never reported, comma-separated: names or globs.
pub const ALLOW_NAMES_ENV: &str = "LEAK_CHECK_ALLOW_NAMES";
/// `1` or `true`: do not count tasks spawned with plain `tokio::spawn` whose sites are unknown
/// (a dependency's own background tasks, without `--cfg tokio_unstable`).
pub const ALLOW_UNTRACKED_ENV: &str = "LEAK_CHECK_ALLOW_UNTRACKED";
/// A file to which every leaking test appends its report as one line of JSON.
pub const REPORT_ENV: &str = "LEAK_CHECK_REPORT";

/// What a check does with a leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Fail the test with the report.
    Fail,
    /// Print the report and let the test pass.
    Warn,
    /// Do not check at all.
    Off,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Fail => "fail",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

/// What the test itself says, from its attribute.
#[derive(Default)]
pub(crate) struct PerTest {
    pub(crate) grace: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) allow_sites: &'static [&'static str],
    pub(crate) allow_names: &'static [&'static str],
    pub(crate) allow_untracked: Option<bool>,
}

/// Everything that decides how one test is checked and reported.
pub(crate) struct Settings {
    pub(crate) mode: Mode,
    pub(crate) grace: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) allow: AllowList,
    pub(crate) report_file: Option<PathBuf>,
    /// Print GitHub Actions annotations, with paths relative to this workspace when known.
    pub(crate) github: Option<Option<PathBuf>>,
}

impl Settings {
    pub(crate) fn resolve(per_test: &PerTest) -> Settings {
        Settings::resolve_with(per_test, |key| std::env::var(key).ok())
    }

    /// The test's own arguments win over the environment; allow-lists add up.
    pub(crate) fn resolve_with(
        per_test: &PerTest,
        env: impl Fn(&str) -> Option<String>,
    ) -> Settings {
        let millis = |key: &str| {
            let value = env(key)?;
            match value.trim().parse::<u64>() {
                Ok(ms) => Some(Duration::from_millis(ms)),
                Err(_) => {
                    warn(&format!(
                        "ignoring {key}={value:?}: expected whole milliseconds, such as 250"
                    ));
                    None
                }
            }
        };
        let mode = match env(MODE_ENV).as_deref().map(str::trim) {
            None | Some("" | "fail") => Mode::Fail,
            Some("warn") => Mode::Warn,
            Some("off") => Mode::Off,
            Some(other) => {
                warn(&format!(
                    "ignoring {MODE_ENV}={other:?}: expected fail, warn or off"
                ));
                Mode::Fail
            }
        };
        let list = |key: &str| -> Vec<String> {
            env(key)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut sites: Vec<String> = per_test.allow_sites.iter().map(|s| s.to_string()).collect();
        sites.extend(list(ALLOW_SITES_ENV));
        let mut names: Vec<String> = per_test.allow_names.iter().map(|s| s.to_string()).collect();
        names.extend(list(ALLOW_NAMES_ENV));
        Settings {
            mode,
            grace: per_test
                .grace
                .or_else(|| millis(GRACE_ENV))
                .unwrap_or(DEFAULT_GRACE),
            timeout: per_test.timeout.or_else(|| millis(TIMEOUT_ENV)),
            allow: AllowList {
                sites,
                names,
                untracked: per_test.allow_untracked.unwrap_or_else(|| {
                    env(ALLOW_UNTRACKED_ENV).is_some_and(|v| matches!(v.trim(), "1" | "true"))
                }),
            },
            report_file: env(REPORT_ENV)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            github: (env("GITHUB_ACTIONS").as_deref() == Some("true"))
                .then(|| env("GITHUB_WORKSPACE").map(PathBuf::from)),
        }
    }
}

fn warn(message: &str) {
    eprintln!("leak-check: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_test_wins_over_the_environment_which_wins_over_defaults() {
        let none = Settings::resolve_with(&PerTest::default(), env_of(&[]));
        assert_eq!(none.grace, DEFAULT_GRACE);
        assert_eq!(none.mode, Mode::Fail);
        assert_eq!(none.timeout, None);
        assert!(none.github.is_none() && none.report_file.is_none());

        let env = env_of(&[
            (GRACE_ENV, "250"),
            (TIMEOUT_ENV, " 9000 "),
            (MODE_ENV, "warn"),
            (ALLOW_SITES_ENV, "src/a.rs, vendor/*"),
            (REPORT_ENV, "/tmp/r.jsonl"),
            ("GITHUB_ACTIONS", "true"),
            (ALLOW_UNTRACKED_ENV, "1"),
        ]);
        let from_env = Settings::resolve_with(&PerTest::default(), &env);
        assert_eq!(from_env.grace, Duration::from_millis(250));
        assert_eq!(from_env.timeout, Some(Duration::from_millis(9000)));
        assert_eq!(from_env.mode, Mode::Warn);
        assert_eq!(from_env.allow.sites, ["src/a.rs", "vendor/*"]);
        assert_eq!(from_env.report_file, Some(PathBuf::from("/tmp/r.jsonl")));
        assert_eq!(from_env.github, Some(None));
        assert!(from_env.allow.untracked);

        let per_test = PerTest {
            grace: Some(Duration::from_millis(7)),
            timeout: Some(Duration::from_millis(8)),
            allow_sites: &["tests/x.rs"],
            allow_names: &["flusher"],
            allow_untracked: Some(false),
        };
        let both = Settings::resolve_with(&per_test, &env);
        assert_eq!(both.grace, Duration::from_millis(7));
        assert_eq!(both.timeout, Some(Duration::from_millis(8)));
        assert_eq!(both.allow.sites, ["tests/x.rs", "src/a.rs", "vendor/*"]);
        assert_eq!(both.allow.names, ["flusher"]);
        assert!(!both.allow.untracked, "the test's own setting wins");
    }

    #[test]
    fn bad_values_are_ignored_with_a_word() {
        let env = env_of(&[(GRACE_ENV, "1s"), (MODE_ENV, "loud")]);
        let settings = Settings::resolve_with(&PerTest::default(), env);
        assert_eq!(settings.grace, DEFAULT_GRACE);
        assert_eq!(settings.mode, Mode::Fail);
    }
}
