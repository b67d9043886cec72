//! The settings of one checked test: its own arguments, then the environment, then defaults.

pub(crate) mod allow;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::allow::AllowList;

/// The grace period when neither the test nor the environment sets one.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(100);

/// The grace period for a whole run: milliseconds (`250`) or a duration with its unit (`250ms`,
/// `1.5s`, `2m`).
pub const GRACE_ENV: &str = "LEAK_CHECK_GRACE_MS";
/// `fail` (the default), `warn` (print the report, pass the test) or `off`, in any case.
pub const MODE_ENV: &str = "LEAK_CHECK";
/// The hang guard for a whole run, as [`GRACE_ENV`] takes it: an async test whose body runs
/// longer fails with its live tasks.
pub const TIMEOUT_ENV: &str = "LEAK_CHECK_TIMEOUT_MS";
/// Spawn sites never reported, comma-separated: path prefixes or globs.
pub const ALLOW_SITES_ENV: &str = "LEAK_CHECK_ALLOW_SITES";
/// Task names never reported, comma-separated: names or globs.
pub const ALLOW_NAMES_ENV: &str = "LEAK_CHECK_ALLOW_NAMES";
/// `1`, `true`, `yes` or `on` (or `0`, `false`, `no`, `off`), in any case: whether tasks spawned
/// with plain `tokio::spawn` whose sites are unknown (a dependency's own background tasks,
/// without `--cfg tokio_unstable`) are left out of the check.
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
#[derive(Debug)]
pub(crate) struct Settings {
    /// The test's full path, crate (test binary) first: `client::tests::get_set`. Reports for
    /// machines use it, where tests of several binaries meet.
    pub(crate) test_path: String,
    pub(crate) mode: Mode,
    pub(crate) grace: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) allow: AllowList,
    pub(crate) report_file: Option<PathBuf>,
    /// Print GitHub Actions annotations, with paths relative to this repository when known.
    pub(crate) github: Option<Option<PathBuf>>,
}

// Reading durations takes humantime, a dependency of the `tracking` feature alone.
#[cfg(feature = "tracking")]
impl Settings {
    /// The settings of the test `test_path`, from its attribute and the environment; `Err` with
    /// a message for the test's failure when a variable has a value that means nothing.
    pub(crate) fn resolve(test_path: String, per_test: &PerTest) -> Result<Settings, String> {
        static UNKNOWN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let unknown = UNKNOWN.get_or_init(|| {
            unknown_variables(std::env::vars_os().map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            }))
        });
        let resolved = Settings::resolve_with(test_path, per_test, |key| std::env::var(key).ok());
        match (unknown, resolved) {
            (None, resolved) => resolved,
            (Some(unknown), Ok(_)) => Err(unknown.clone()),
            (Some(unknown), Err(errors)) => Err(format!("{unknown}\n{errors}")),
        }
    }

    /// The test's own arguments win over the environment; allow-lists add up. Every variable is
    /// read and checked even where the test's own argument wins: a mistyped value would
    /// otherwise go unnoticed until the day it is used. An empty value counts as unset.
    pub(crate) fn resolve_with(
        test_path: String,
        per_test: &PerTest,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let mut errors: Vec<String> = Vec::new();
        let errs = &mut errors;
        let mode = read(&env, errs, MODE_ENV, parse_mode, MODE_EXPECTED, "warn");
        let grace = read(
            &env,
            errs,
            GRACE_ENV,
            parse_duration,
            DURATION_EXPECTED,
            "250ms",
        );
        let timeout = read(&env, errs, TIMEOUT_ENV, parse_limit, LIMIT_EXPECTED, "30s");
        let untracked = read(
            &env,
            errs,
            ALLOW_UNTRACKED_ENV,
            parse_switch,
            SWITCH_EXPECTED,
            "1",
        );
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
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
        Ok(Settings {
            test_path,
            mode: mode.unwrap_or(Mode::Fail),
            grace: per_test.grace.or(grace).unwrap_or(DEFAULT_GRACE),
            timeout: per_test.timeout.or(timeout),
            allow: AllowList {
                sites,
                names,
                untracked: per_test.allow_untracked.or(untracked).unwrap_or(false),
            },
            report_file: env(REPORT_ENV)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            github: (env("GITHUB_ACTIONS").as_deref() == Some("true"))
                .then(|| env("GITHUB_WORKSPACE").map(PathBuf::from)),
        })
    }
}

/// Every variable leak-check reads.
const VARIABLES: [&str; 7] = [
    MODE_ENV,
    GRACE_ENV,
    TIMEOUT_ENV,
    ALLOW_SITES_ENV,
    ALLOW_NAMES_ENV,
    ALLOW_UNTRACKED_ENV,
    REPORT_ENV,
];

/// The error for variables among `variables` (names and values) that look like leak-check's
/// (`LEAK_CHECK`, or `LEAK_CHECK_` then anything, in any case) but are none of them: a misspelt
/// name would otherwise change nothing without a word. Empty ones count as unset, as for the
/// real ones.
fn unknown_variables(variables: impl Iterator<Item = (String, String)>) -> Option<String> {
    let mut lines: Vec<String> = variables
        .filter(|(name, value)| {
            let upper = name.to_ascii_uppercase();
            (upper == MODE_ENV || upper.starts_with("LEAK_CHECK_"))
                && !VARIABLES.contains(&name.as_str())
                && !value.trim().is_empty()
        })
        .map(|(name, _)| {
            format!(
                "leak-check: {name} is set, but leak-check reads no such variable: did you mean \
                 {}? (it reads {})",
                closest_variable(&name),
                VARIABLES.join(", ")
            )
        })
        .collect();
    lines.sort();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The variable `name` most likely means: the one with the longest common start and end (a
/// word left out in the middle, `LEAK_CHECK_UNTRACKED`), `LEAK_CHECK` for a mode.
fn closest_variable(name: &str) -> &'static str {
    let upper = name.to_ascii_uppercase();
    if upper.ends_with("MODE") {
        return MODE_ENV;
    }
    let common = |a: &mut dyn Iterator<Item = u8>, b: &mut dyn Iterator<Item = u8>| {
        a.zip(b).take_while(|(x, y)| x == y).count()
    };
    VARIABLES
        .iter()
        .max_by_key(|known| {
            let start = common(&mut known.bytes(), &mut upper.bytes());
            let end = common(&mut known.bytes().rev(), &mut upper.bytes().rev());
            (
                start + end,
                std::cmp::Reverse(known.len().abs_diff(upper.len())),
            )
        })
        .expect("VARIABLES is not empty")
}

/// Reads `key`: `None` when unset or empty, or when its value means nothing, which is then
/// said in `errors`: the variable, its value, what is expected and an example.
fn read<T>(
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
    key: &str,
    parse: fn(&str) -> Option<T>,
    expected: &str,
    example: &str,
) -> Option<T> {
    let value = env(key)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return None;
    }
    let parsed = parse(trimmed);
    if parsed.is_none() {
        errors.push(format!(
            "leak-check: {key}={value:?} is not a valid value: expected {expected}, such as \
             {key}={example}"
        ));
    }
    parsed
}

const MODE_EXPECTED: &str = "fail, warn or off";
const DURATION_EXPECTED: &str = "milliseconds or a duration with its unit (250, 250ms, 1.5s, 2m)";
const LIMIT_EXPECTED: &str = "milliseconds or a duration with its unit (250, 250ms, 1.5s, 2m), \
                              of 1 ms or more (unset it for no limit)";
const SWITCH_EXPECTED: &str = "1, 0, true, false, yes, no, on or off";

/// `fail`, `warn` or `off`, in any case.
fn parse_mode(text: &str) -> Option<Mode> {
    [Mode::Fail, Mode::Warn, Mode::Off]
        .into_iter()
        .find(|mode| text.eq_ignore_ascii_case(mode.as_str()))
}

/// A bare number is milliseconds (`250`); otherwise a number with its unit, as humantime reads
/// it: `250ms`, `1s`, `1.5s`, `2m`, `1m 30s`.
#[cfg(feature = "tracking")]
fn parse_duration(text: &str) -> Option<Duration> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Duration::from_millis);
    }
    humantime::parse_duration(text).ok()
}

/// A duration as [`parse_duration`] reads it, of a millisecond or more: a hang guard shorter
/// would fail every test that waits for anything.
#[cfg(feature = "tracking")]
fn parse_limit(text: &str) -> Option<Duration> {
    parse_duration(text).filter(|limit| *limit >= Duration::from_millis(1))
}

/// `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`, in any case.
fn parse_switch(text: &str) -> Option<bool> {
    const ON: [&str; 4] = ["1", "true", "yes", "on"];
    const OFF: [&str; 4] = ["0", "false", "no", "off"];
    if ON.iter().any(|word| text.eq_ignore_ascii_case(word)) {
        Some(true)
    } else if OFF.iter().any(|word| text.eq_ignore_ascii_case(word)) {
        Some(false)
    } else {
        None
    }
}

/// Whether a report printed straight to a stream is coloured: never with `NO_COLOR` set to
/// anything (it wins), always with `CLICOLOR_FORCE` set to anything but `0`, and otherwise only
/// when the stream is a terminal. Empty values count as unset, as both conventions say.
pub(crate) fn wants_color(
    is_terminal: bool,
    no_color: Option<&OsStr>,
    clicolor_force: Option<&OsStr>,
) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if clicolor_force.is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    is_terminal
}

#[cfg(all(test, feature = "tracking"))]
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

    fn resolve(
        per_test: &PerTest,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        Settings::resolve_with("tests::a_test".into(), per_test, env)
    }

    #[test]
    fn the_test_wins_over_the_environment_which_wins_over_defaults() {
        let none = resolve(&PerTest::default(), env_of(&[])).unwrap();
        assert_eq!(none.test_path, "tests::a_test");
        assert_eq!(none.grace, DEFAULT_GRACE);
        assert_eq!(none.mode, Mode::Fail);
        assert_eq!(none.timeout, None);
        assert!(!none.allow.untracked);
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
        let from_env = resolve(&PerTest::default(), &env).unwrap();
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
        let both = resolve(&per_test, &env).unwrap();
        assert_eq!(both.grace, Duration::from_millis(7));
        assert_eq!(both.timeout, Some(Duration::from_millis(8)));
        assert_eq!(both.allow.sites, ["tests/x.rs", "src/a.rs", "vendor/*"]);
        assert_eq!(both.allow.names, ["flusher"]);
        assert!(!both.allow.untracked, "the test's own setting wins");
    }

    #[test]
    fn durations_are_milliseconds_or_carry_their_unit() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("250", ms(250)),
            ("0", ms(0)),
            ("250ms", ms(250)),
            ("1s", ms(1000)),
            ("1.5s", ms(1500)),
            ("2m", ms(120_000)),
            ("1m 30s", ms(90_000)),
            ("1 s", ms(1000)),
        ] {
            assert_eq!(parse_duration(text), Some(expected), "{text:?}");
            // Through the environment, for both variables, with blanks around it (a timeout of
            // zero is refused: see `a_timeout_of_zero_is_an_error`).
            let padded = format!(" {text}\t");
            let zero = expected.is_zero();
            let env = move |key: &str| {
                (key == GRACE_ENV || (key == TIMEOUT_ENV && !zero)).then(|| padded.clone())
            };
            let settings = resolve(&PerTest::default(), env).unwrap();
            assert_eq!(settings.grace, expected, "{GRACE_ENV}={text:?}");
            assert_eq!(
                settings.timeout,
                (!zero).then_some(expected),
                "{TIMEOUT_ENV}={text:?}"
            );
        }
        for text in [
            "1x",
            "abc",
            "-5",
            "1.5",
            "ms",
            "250 parsecs",
            "1e3",
            "0x10",
            "99999999999999999999",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }

    #[test]
    fn switches_take_the_usual_words_in_any_case() {
        for (words, expected) in [
            (["1", "true", "yes", "on"], true),
            (["0", "false", "no", "off"], false),
        ] {
            for word in words {
                for text in [word.to_owned(), word.to_uppercase(), capitalized(word)] {
                    assert_eq!(parse_switch(&text), Some(expected), "{text:?}");
                    let env = move |key: &str| (key == ALLOW_UNTRACKED_ENV).then(|| text.clone());
                    let settings = resolve(&PerTest::default(), env).unwrap();
                    assert_eq!(settings.allow.untracked, expected);
                }
            }
        }
        for text in ["2", "y", "n", "tru", "enabled", "-1", "true!"] {
            assert_eq!(parse_switch(text), None, "{text:?}");
        }
    }

    #[test]
    fn modes_in_any_case() {
        for (word, mode) in [
            ("fail", Mode::Fail),
            ("warn", Mode::Warn),
            ("off", Mode::Off),
        ] {
            for text in [word.to_owned(), word.to_uppercase(), capitalized(word)] {
                assert_eq!(parse_mode(&text), Some(mode), "{text:?}");
                let env = move |key: &str| (key == MODE_ENV).then(|| text.clone());
                assert_eq!(resolve(&PerTest::default(), env).unwrap().mode, mode);
            }
        }
        for text in ["loud", "warning", "fails", "0", "no"] {
            assert_eq!(parse_mode(text), None, "{text:?}");
        }
    }

    fn capitalized(word: &str) -> String {
        let mut chars = word.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_timeout_of_zero_is_an_error() {
        for text in ["0", "0ms", "0s", "1ns", "0.0001ms"] {
            let env = move |key: &str| (key == TIMEOUT_ENV).then(|| text.to_owned());
            let error = resolve(&PerTest::default(), env).unwrap_err();
            assert!(
                error.contains("of 1 ms or more (unset it for no limit)"),
                "{error}"
            );
        }
        let env = |key: &str| (key == GRACE_ENV).then(|| "0".to_owned());
        assert_eq!(
            resolve(&PerTest::default(), env).unwrap().grace,
            Duration::ZERO
        );
    }

    #[test]
    fn a_variable_that_only_looks_like_ours_is_an_error_naming_the_closest() {
        let set = |names: &[&str]| {
            names
                .iter()
                .map(|name| (name.to_string(), "1".to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            unknown_variables(
                set(&[
                    "PATH",
                    "LEAK_CHECK",
                    "LEAK_CHECK_GRACE_MS",
                    "LEAK_CHECKER_HOME"
                ])
                .into_iter()
            ),
            None
        );
        // Empty, it counts as unset.
        assert_eq!(
            unknown_variables([("LEAK_CHECK_GRACE".to_string(), " ".to_string())].into_iter()),
            None
        );
        assert_eq!(closest_variable("LEAK_CHECK_MODE"), MODE_ENV);
        assert_eq!(
            closest_variable("LEAK_CHECK_UNTRACKED"),
            ALLOW_UNTRACKED_ENV
        );
        assert_eq!(closest_variable("LEAK_CHECK_TIMEOUT"), TIMEOUT_ENV);
        let error = unknown_variables(
            set(&["LEAK_CHECK_GRACE", "leak_check", "LEAK_CHECK_ALLOW_SITE"]).into_iter(),
        )
        .unwrap();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 3, "{error}");
        assert!(lines[0].starts_with(
            "leak-check: LEAK_CHECK_ALLOW_SITE is set, but leak-check reads no such variable: \
             did you mean LEAK_CHECK_ALLOW_SITES?"
        ));
        assert!(
            lines[1].contains("LEAK_CHECK_GRACE is set")
                && lines[1].contains("LEAK_CHECK_GRACE_MS?")
        );
        assert!(lines[2].contains("leak_check is set") && lines[2].contains("mean LEAK_CHECK?"));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = env_of(&[
            (MODE_ENV, ""),
            (GRACE_ENV, " "),
            (TIMEOUT_ENV, ""),
            (ALLOW_UNTRACKED_ENV, ""),
            (REPORT_ENV, ""),
        ]);
        let settings = resolve(&PerTest::default(), env).unwrap();
        assert_eq!(settings.mode, Mode::Fail);
        assert_eq!(settings.grace, DEFAULT_GRACE);
        assert_eq!(settings.timeout, None);
        assert!(!settings.allow.untracked);
        assert_eq!(settings.report_file, None);
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_variable_the_value_and_a_valid_one() {
        let cases: [(&str, &str, &str); 4] = [
            (
                MODE_ENV,
                "loud",
                r#"leak-check: LEAK_CHECK="loud" is not a valid value: expected fail, warn or off, such as LEAK_CHECK=warn"#,
            ),
            (
                GRACE_ENV,
                "1x",
                r#"leak-check: LEAK_CHECK_GRACE_MS="1x" is not a valid value: expected milliseconds or a duration with its unit (250, 250ms, 1.5s, 2m), such as LEAK_CHECK_GRACE_MS=250ms"#,
            ),
            (
                TIMEOUT_ENV,
                "soon",
                r#"leak-check: LEAK_CHECK_TIMEOUT_MS="soon" is not a valid value: expected milliseconds or a duration with its unit (250, 250ms, 1.5s, 2m), of 1 ms or more (unset it for no limit), such as LEAK_CHECK_TIMEOUT_MS=30s"#,
            ),
            (
                ALLOW_UNTRACKED_ENV,
                "enabled",
                r#"leak-check: LEAK_CHECK_ALLOW_UNTRACKED="enabled" is not a valid value: expected 1, 0, true, false, yes, no, on or off, such as LEAK_CHECK_ALLOW_UNTRACKED=1"#,
            ),
        ];
        for (key, value, message) in cases {
            let env = move |k: &str| (k == key).then(|| value.to_owned());
            let error = resolve(&PerTest::default(), env).err();
            assert_eq!(error.as_deref(), Some(message));
            // The value as given, blanks and all, so that what is wrong can be seen.
            let env = move |k: &str| (k == key).then(|| format!(" {value}"));
            let error = resolve(&PerTest::default(), env).unwrap_err();
            assert!(error.contains(&format!("{key}=\" {value}\"")), "{error}");
        }
    }

    #[test]
    fn every_bad_value_is_named_even_where_the_test_sets_its_own() {
        let per_test = PerTest {
            grace: Some(Duration::from_millis(7)),
            timeout: Some(Duration::from_millis(8)),
            allow_untracked: Some(true),
            ..PerTest::default()
        };
        let env = env_of(&[
            (GRACE_ENV, "1 sec later"),
            (TIMEOUT_ENV, "-1"),
            (ALLOW_UNTRACKED_ENV, "maybe"),
            (MODE_ENV, "fail"),
        ]);
        let error = resolve(&per_test, env).unwrap_err();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 3, "{error}");
        assert!(lines[0].starts_with(r#"leak-check: LEAK_CHECK_GRACE_MS="1 sec later""#));
        assert!(lines[1].starts_with(r#"leak-check: LEAK_CHECK_TIMEOUT_MS="-1""#));
        assert!(lines[2].starts_with(r#"leak-check: LEAK_CHECK_ALLOW_UNTRACKED="maybe""#));
    }

    #[test]
    fn colour_follows_no_color_then_clicolor_force_then_the_terminal() {
        let os = |s: &'static str| Some(OsStr::new(s));
        // Nothing set: a terminal gets colour, a pipe does not.
        assert!(wants_color(true, None, None));
        assert!(!wants_color(false, None, None));
        // NO_COLOR, set to anything, wins over a terminal and over CLICOLOR_FORCE.
        assert!(!wants_color(true, os("1"), None));
        assert!(!wants_color(true, os("0"), None));
        assert!(!wants_color(false, os("1"), os("1")));
        assert!(!wants_color(true, os("yes"), os("1")));
        // ... but empty, it counts as unset.
        assert!(wants_color(true, os(""), None));
        assert!(wants_color(false, os(""), os("1")));
        // CLICOLOR_FORCE colours a pipe, unless it is empty or 0.
        assert!(wants_color(false, None, os("1")));
        assert!(wants_color(false, None, os("true")));
        assert!(!wants_color(false, None, os("0")));
        assert!(!wants_color(false, None, os("")));
        assert!(
            wants_color(true, None, os("0")),
            "0 does not take colour away"
        );
    }
}
