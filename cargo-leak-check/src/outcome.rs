//! Which tests ran and which failed, read from the output of `cargo test` (libtest's lines) or
//! `cargo nextest run` (its status lines), line by line as the run goes.

use std::collections::{BTreeMap, HashSet};

/// A test: the crate of its test binary (as `module_path!()` names it) and its libtest name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TestId {
    pub krate: String,
    pub name: String,
}

impl TestId {
    /// `crate::path::to::test`, the name leak-check gives the test.
    pub fn full(&self) -> String {
        format!("{}::{}", self.krate, self.name)
    }
}

/// What the run's output said.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Tests that failed, in the order they failed.
    pub failed: Vec<TestId>,
    /// Failures that name no test: a test binary that crashed, cargo failing without a reason
    /// found in its output.
    pub unexplained: Vec<String>,
    ran_full: HashSet<String>,
    ran_short: HashSet<String>,
    /// Crates whose test binary ran with no test filtered out: a test of theirs that the output
    /// does not name no longer exists.
    whole_binaries: HashSet<String>,
    /// Tests (`crate::name`) whose panic message is not leak-check's report alone: they failed
    /// for another reason, whether or not they leaked too.
    panicked: HashSet<String>,
    pub passed: usize,
    /// Test binaries started.
    pub binaries: usize,
}

impl Outcome {
    /// Whether the output named the test `name` (as leak-check gives it: with or without its
    /// crate) as run.
    pub fn ran(&self, name: &str) -> bool {
        self.ran_full.contains(name) || self.ran_short.contains(name)
    }

    /// Whether the test `id` panicked with a message of its own (its body panicked, or it
    /// returned an error), not only with leak-check's report.
    pub fn panicked_otherwise(&self, id: &TestId) -> bool {
        self.panicked.contains(&id.full())
    }

    /// Whether the test `name`, named with its crate (`crate::path::test`), is gone: its crate's
    /// test binary ran every test it has, and this was not one of them.
    pub fn gone(&self, name: &str) -> bool {
        name.split_once("::")
            .is_some_and(|(krate, _)| self.whole_binaries.contains(krate))
            && !self.ran(name)
    }

    /// Whether the output named no test that ran (libtest's terse format, `-q`): then which
    /// tests ran is not known.
    pub fn ran_is_unknown(&self) -> bool {
        self.ran_full.is_empty()
    }

    fn record_ran(&mut self, id: &TestId) {
        self.ran_full.insert(id.full());
        self.ran_short.insert(id.name.clone());
    }
}

/// Which runner printed the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Cargo,
    Nextest,
}

/// What a line meant, for the progress line.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// cargo started compiling a crate.
    Compiling(String),
    /// A test binary started (its source file, or the doc tests of a crate).
    Binary(String),
    /// A test finished.
    Test { failed: bool },
}

/// Reads the output line by line.
pub struct OutputParser {
    runner: Runner,
    outcome: Outcome,
    // cargo test: the test binary running now.
    binary: Option<Binary>,
    // nextest: each test's latest status (whether it failed), in the order first seen.
    statuses: BTreeMap<TestId, (usize, bool)>,
    /// nextest: the crate of the test on the last status line, whose output follows it.
    nextest_crate: Option<String>,
    /// The test whose thread panicked on the line before: the next line is its message.
    panicking: Option<String>,
    build_failed: bool,
}

#[derive(Default)]
struct Binary {
    krate: String,
    display: String,
    /// Tests named on `test NAME ... FAILED` lines.
    failed_lines: Vec<String>,
    /// The list under the last `failures:` heading.
    failures_list: Vec<String>,
    in_failures_list: bool,
    /// Whether libtest's closing `test result:` line was seen.
    finished: bool,
}

impl OutputParser {
    pub fn new(runner: Runner) -> OutputParser {
        OutputParser {
            runner,
            outcome: Outcome::default(),
            binary: None,
            statuses: BTreeMap::new(),
            nextest_crate: None,
            panicking: None,
            build_failed: false,
        }
    }

    /// Whether any test binary started.
    pub fn tests_started(&self) -> bool {
        self.outcome.binaries > 0
    }

    /// Whether cargo said the build failed.
    pub fn build_failed(&self) -> bool {
        self.build_failed
    }

    pub fn line(&mut self, line: &str) -> Option<Event> {
        let trimmed = line.trim_start();
        // `thread 'name' panicked at file:line:col:`, then the message's first line: leak-check's
        // report starts with `leak-check: `; anything else is the test's own failure.
        if let Some(name) = self.panicking.take() {
            if !trimmed.starts_with("leak-check: ") {
                let krate = match self.runner {
                    Runner::Cargo => self.binary.as_ref().map(|b| b.krate.clone()),
                    Runner::Nextest => self.nextest_crate.clone(),
                };
                if let Some(krate) = krate {
                    self.outcome.panicked.insert(format!("{krate}::{name}"));
                }
            }
        }
        if let Some(name) = panicking_thread(trimmed) {
            self.panicking = Some(name.to_owned());
            return None;
        }
        if let Some(rest) = trimmed.strip_prefix("Compiling ") {
            return Some(Event::Compiling(
                rest.split_whitespace().next().unwrap_or("").to_owned(),
            ));
        }
        if trimmed.starts_with("error: could not compile") {
            self.build_failed = true;
            return None;
        }
        match self.runner {
            Runner::Cargo => self.cargo_line(line),
            Runner::Nextest => self.nextest_line(trimmed),
        }
    }

    fn cargo_line(&mut self, line: &str) -> Option<Event> {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("Running ") {
            // `Running tests/leaky.rs (target/debug/deps/leaky-0123abcd)`
            if let Some((display, path)) = rest.rsplit_once(" (") {
                let file = path.trim_end_matches(')');
                let stem = file
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or(file)
                    .trim_end_matches(".exe");
                let krate = stem.rsplit_once('-').map_or(stem, |(k, _)| k);
                return Some(self.start_binary(krate, display.trim()));
            }
            return None;
        }
        if let Some(krate) = trimmed.strip_prefix("Doc-tests ") {
            let krate = krate.trim();
            return Some(self.start_binary(krate, &format!("doc tests of {krate}")));
        }
        if let Some(rest) = trimmed.strip_prefix("error: test failed, to rerun pass ") {
            let rerun = rest.trim().trim_matches('`').to_owned();
            if let Some(binary) = self.binary.take() {
                let named = self.end_binary(binary);
                if !named {
                    self.outcome.unexplained.push(format!(
                        "the test binary of `{rerun}` failed without naming a failed test (did it crash?)"
                    ));
                }
            }
            return None;
        }
        let binary = self.binary.as_mut()?;
        // libtest's own lines start at the line's first column.
        if line == "failures:" {
            binary.in_failures_list = true;
            binary.failures_list.clear();
            return None;
        }
        if line.starts_with("---- ") {
            binary.in_failures_list = false;
            return None;
        }
        if binary.in_failures_list {
            if let Some(name) = line.strip_prefix("    ") {
                if !name.trim().is_empty() {
                    binary.failures_list.push(name.trim().to_owned());
                }
                return None;
            }
        }
        if line.starts_with("test result: ") {
            binary.finished = true;
            if line.contains(" 0 filtered out") {
                self.outcome.whole_binaries.insert(binary.krate.clone());
            }
            binary.in_failures_list = false;
            let binary = self.binary.take()?;
            self.end_binary(binary);
            return None;
        }
        let rest = line.strip_prefix("test ")?;
        let (name, result) = rest.split_once(" ... ")?;
        let id = TestId {
            krate: binary.krate.clone(),
            name: name.to_owned(),
        };
        let result = result.trim();
        if result.starts_with("ok") {
            self.outcome.passed += 1;
            self.outcome.record_ran(&id);
            Some(Event::Test { failed: false })
        } else if result.starts_with("FAILED") {
            binary.failed_lines.push(id.name.clone());
            self.outcome.record_ran(&id);
            Some(Event::Test { failed: true })
        } else {
            None
        }
    }

    fn start_binary(&mut self, krate: &str, display: &str) -> Event {
        if let Some(previous) = self.binary.take() {
            self.end_binary(previous);
        }
        self.outcome.binaries += 1;
        self.binary = Some(Binary {
            krate: krate.replace('-', "_"),
            display: display.to_owned(),
            ..Binary::default()
        });
        Event::Binary(display.to_owned())
    }

    /// Records a binary's failed tests; returns whether it named any.
    fn end_binary(&mut self, binary: Binary) -> bool {
        let names = if binary.finished && !binary.failures_list.is_empty() {
            binary.failures_list
        } else {
            binary.failed_lines
        };
        let named = !names.is_empty();
        for name in names {
            let id = TestId {
                krate: binary.krate.clone(),
                name,
            };
            self.outcome.record_ran(&id);
            if !self.outcome.failed.contains(&id) {
                self.outcome.failed.push(id);
            }
        }
        let _ = binary.display;
        named
    }

    fn nextest_line(&mut self, trimmed: &str) -> Option<Event> {
        if let Some(what) = trimmed.strip_prefix("Starting ") {
            if what.contains(" across ") {
                // `Starting 5 tests across 2 binaries`: nextest runs them all at once.
                self.outcome.binaries += 1;
                return Some(Event::Binary(what.to_owned()));
            }
        }
        let (status, id) = parse_nextest_status(trimmed)?;
        let failed = match status {
            "PASS" | "LEAK" | "FLAKY" => false,
            "FAIL" | "LEAK-FAIL" | "TIMEOUT" | "ABORT" | "EXEC-FAIL" | "EXECFAIL" => true,
            s if s.starts_with("SIG") => true,
            _ => return None,
        };
        self.outcome.record_ran(&id);
        self.nextest_crate = Some(id.krate.clone());
        let order = self.statuses.len();
        let entry = self.statuses.entry(id).or_insert((order, failed));
        let first = entry.1 != failed || entry.0 == order;
        entry.1 = failed;
        // nextest lists the failed tests again after its summary: count each test once.
        first.then_some(Event::Test { failed })
    }

    /// The outcome, once cargo has exited with `exit` (`None` when it succeeded).
    pub fn finish(mut self, exit: Option<String>) -> Outcome {
        if let Some(binary) = self.binary.take() {
            self.end_binary(binary);
        }
        let mut failed: Vec<(usize, TestId)> = self
            .statuses
            .into_iter()
            .filter(|(_, (_, failed))| *failed)
            .map(|(id, (order, _))| (order, id))
            .collect();
        failed.sort();
        for (_, id) in failed {
            if !self.outcome.failed.contains(&id) {
                self.outcome.failed.push(id);
            }
        }
        if let Some(exit) = exit {
            if self.outcome.failed.is_empty() && self.outcome.unexplained.is_empty() {
                self.outcome.unexplained.push(format!(
                    "the run failed ({exit}) without naming a failed test"
                ));
            }
        }
        self.outcome
    }
}

/// `FAIL [   0.105s] (2/3) suite::leaky leaks_one` (the counter appears in newer versions,
/// `TRY 2 FAIL` on retries) as its status and test.
fn parse_nextest_status(line: &str) -> Option<(&str, TestId)> {
    let mut rest = line;
    let mut word = next_word(&mut rest)?;
    if word == "TRY" {
        next_word(&mut rest)?;
        word = next_word(&mut rest)?;
    }
    if !word.chars().all(|c| c.is_ascii_uppercase() || c == '-') {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('[')?;
    let (_, rest) = rest.split_once(']')?;
    let mut rest = rest.trim_start();
    if rest.starts_with('(') {
        rest = rest.split_once(')')?.1.trim_start();
    }
    let (binary_id, name) = rest.split_once(' ')?;
    let name = name.trim();
    if binary_id.is_empty() || name.is_empty() || name.contains(' ') {
        return None;
    }
    Some((
        word,
        TestId {
            krate: crate_of_binary_id(binary_id),
            name: name.to_owned(),
        },
    ))
}

/// The test (thread) name of `thread 'name' (1234) panicked at file:line:col:`.
fn panicking_thread(line: &str) -> Option<&str> {
    let (name, rest) = line.strip_prefix("thread '")?.split_once('\'')?;
    rest.contains("panicked at ").then_some(name)
}

fn next_word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let text = rest.trim_start();
    let end = text.find(' ').unwrap_or(text.len());
    let (word, tail) = text.split_at(end);
    *rest = tail;
    (!word.is_empty()).then_some(word)
}

/// nextest's binary id is the package for a library's unit tests (`my-app`), and
/// `package::target` for the others (`my-app::client`, `my-app::bin/tool`): the test binary's
/// crate is the last part.
fn crate_of_binary_id(id: &str) -> String {
    let last = id.rsplit("::").next().unwrap_or(id);
    let last = last.rsplit('/').next().unwrap_or(last);
    last.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(runner: Runner, output: &str, exit: Option<&str>) -> Outcome {
        let mut parser = OutputParser::new(runner);
        for line in output.lines() {
            parser.line(line);
        }
        parser.finish(exit.map(str::to_owned))
    }

    fn failed(outcome: &Outcome) -> Vec<String> {
        outcome.failed.iter().map(TestId::full).collect()
    }

    const CARGO_OUTPUT: &str = "\
   Compiling app v0.1.0 (/w/app)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.04s
     Running unittests src/lib.rs (/w/target/debug/deps/my_app-d0fbe9710ef0629a)

running 1 test
test tests::inner ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/t.rs (/w/target/debug/deps/t-bc18e88424c06f22)

running 3 tests
test ok1 ... ok
test bad ... FAILED
test mod_a::bad_too ... FAILED

failures:

---- bad stdout ----
thread 'bad' panicked at tests/t.rs:2:20:
leak-check: test `t::bad` leaked 1 task (still alive 100 ms after the body returned)
failures:
    not_a_test_name

---- mod_a::bad_too stdout ----
thread 'mod_a::bad_too' (1234) panicked at tests/t.rs:9:5:
boom

leak-check: test `t::mod_a::bad_too` leaked 1 task (still alive 100 ms after the body returned)

failures:
    bad
    mod_a::bad_too

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s

error: test failed, to rerun pass `-p a --test t`
     Running tests/crash.rs (/w/target/debug/deps/crash-0123)

running 2 tests
test fine ... ok
error: test failed, to rerun pass `-p a --test crash`

Caused by:
  process didn't exit successfully: `/w/target/debug/deps/crash-0123` (signal: 6, SIGABRT: process abort signal)
   Doc-tests my_app

running 1 test
test src/lib.rs - f (line 3) ... FAILED

failures:
    src/lib.rs - f (line 3)

test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s

error: 2 targets failed:
";

    #[test]
    fn cargo_test_failures_are_named_with_their_crate() {
        let outcome = parse(Runner::Cargo, CARGO_OUTPUT, Some("exit status: 101"));
        assert_eq!(
            failed(&outcome),
            [
                "t::bad",
                "t::mod_a::bad_too",
                "my_app::src/lib.rs - f (line 3)"
            ]
        );
        assert_eq!(outcome.unexplained.len(), 1, "{:?}", outcome.unexplained);
        assert!(outcome.unexplained[0].contains("-p a --test crash"));
        assert!(outcome.ran("my_app::tests::inner") && outcome.ran("ok1"));
        assert!(outcome.ran("t::bad") && !outcome.ran("t::other"));
        assert!(outcome.gone("t::other") && !outcome.gone("t::bad"));
        assert!(
            !outcome.gone("crash::other"),
            "the crashed binary did not finish"
        );
        assert!(
            !outcome.gone("other"),
            "without its crate, a test is not known to be gone"
        );
        assert_eq!(outcome.binaries, 4);
        let id = |krate: &str, name: &str| TestId {
            krate: krate.into(),
            name: name.into(),
        };
        assert!(
            !outcome.panicked_otherwise(&id("t", "bad")),
            "leak-check's report alone"
        );
        assert!(
            outcome.panicked_otherwise(&id("t", "mod_a::bad_too")),
            "its own panic first"
        );
        assert_eq!(outcome.passed, 3);
    }

    #[test]
    fn a_failed_run_names_something() {
        let outcome = parse(Runner::Cargo, "running 0 tests\n", Some("exit status: 101"));
        assert!(outcome.failed.is_empty());
        assert_eq!(outcome.unexplained.len(), 1);
        let fine = parse(Runner::Cargo, "", None);
        assert!(fine.unexplained.is_empty() && fine.ran_is_unknown());
    }

    #[test]
    fn nextest_statuses_give_the_failures_once() {
        let output = "\
    Starting 5 tests across 2 binaries
        PASS [   0.008s] (1/5) my-app::t ok1
        FAIL [   0.177s] (2/5) my-app::t bad
  stdout ───
    thread 'bad' (19254) panicked at a/tests/t.rs:2:20:
    boom
        FAIL not a status line
    TRY 2 FAIL [   0.1s] my-app a::flaky
    TRY 3 PASS [   0.1s] my-app a::flaky
     SIGSEGV [   0.2s] (4/5) my-app::bin/tool crashes
     TIMEOUT [  60.0s] my-app::t hangs
────────────
     Summary [   0.224s] 5 tests run: 2 passed, 3 failed, 0 skipped
        FAIL [   0.177s] (2/5) my-app::t bad
     SIGSEGV [   0.2s] (4/5) my-app::bin/tool crashes
error: test run failed
";
        let outcome = parse(Runner::Nextest, output, Some("exit status: 100"));
        assert_eq!(
            failed(&outcome),
            ["t::bad", "tool::crashes", "t::hangs"],
            "a test that passed on a retry did not fail"
        );
        assert!(outcome.unexplained.is_empty());
        assert!(outcome.ran("my_app::a::flaky") && outcome.ran("t::ok1"));
        let bad = TestId {
            krate: "t".into(),
            name: "bad".into(),
        };
        assert!(outcome.panicked_otherwise(&bad));
    }

    #[test]
    fn nextest_lines_parse() {
        let (status, id) = parse_nextest_status("PASS [   0.008s] my-app::t ok1").unwrap();
        assert_eq!((status, id.full().as_str()), ("PASS", "t::ok1"));
        assert!(parse_nextest_status("Summary [ 0.2s] 5 tests run: 2 passed").is_none());
        assert!(parse_nextest_status("PASS").is_none());
    }
}
