//! The summary of a run: sites ranked by how many tests leak there, totals, baseline entries
//! that no longer leak, and the tests that failed for other reasons; as text for the terminal
//! and as Markdown for a CI job's summary page.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::baseline::{Baseline, Entry, Sources, Spawn, UNTRACKED, UNTRACKED_BLOCKING};
use crate::outcome::Outcome;
use crate::report::Report;

/// How many tests a site lists by name before it says how many more.
const TESTS_SHOWN: usize = 3;

/// One test leaking at one site.
#[derive(Debug, Clone)]
struct Leak {
    test: String,
    tasks: u64,
    states: BTreeMap<String, u64>,
    chains: Vec<Vec<String>>,
    names: Vec<String>,
    entry: Entry,
}

/// The leaks at one site, across tests.
#[derive(Debug)]
pub struct SiteRow {
    /// `file:line:column`, or a description of plain tasks without a site.
    pub site: String,
    /// The function and the spawn call's text, when they could be read.
    pub spawn: Option<Spawn>,
    pub tests: Vec<String>,
    pub tasks: u64,
    pub states: BTreeMap<String, u64>,
    pub chain: Option<Vec<String>>,
    /// The tasks' names, where they have any.
    pub names: BTreeSet<String>,
    pub new: usize,
    pub known: usize,
}

/// Everything the summary shows, and the verdict.
#[derive(Debug)]
pub struct Summary {
    pub sites: Vec<SiteRow>,
    /// Every leak of the run, as baseline entries.
    pub entries: BTreeSet<Entry>,
    pub leaking_tests: usize,
    pub tasks: u64,
    pub new: usize,
    pub known: usize,
    pub baseline: Option<String>,
    /// Baseline entries that no longer leak.
    pub fixed: Vec<Entry>,
    /// Baseline entries whose test did not run here (a partial run): neither fixed nor known.
    pub not_run: usize,
    /// Whether the run's outcome was known (a run, not a `summary` of report files).
    pub failures_known: bool,
    /// Tests that failed for other reasons than a leak (with a note where there is one).
    pub other_failures: Vec<String>,
}

impl Summary {
    /// Builds the summary from the reports of a run, the baseline if any, and, for a run of the
    /// suite (not for `summary`), which tests failed and which ran.
    pub fn build(
        reports: &[Report],
        baseline: Option<&Baseline>,
        outcome: Option<&Outcome>,
        sources: &mut Sources,
    ) -> Summary {
        let collected = Collected::from_reports(reports, sources);
        let ranked = Ranked::by_site(&collected, baseline);
        let (fixed, not_run) = baseline.map_or((Vec::new(), 0), |baseline| {
            no_longer_leaking(baseline, &ranked.entries, outcome)
        });
        let other_failures = collected.other_failures(outcome);
        Summary {
            sites: ranked.sites,
            entries: ranked.entries,
            leaking_tests: ranked.leaking_tests,
            tasks: ranked.tasks,
            new: ranked.new,
            known: ranked.known,
            baseline: baseline.map(|b| b.path.display().to_string()),
            fixed,
            not_run,
            failures_known: outcome.is_some(),
            other_failures,
        }
    }

    /// Whether the run fails: a test failed for another reason, or a leak is not known.
    /// `all_leaks_known` is for `--write-baseline`, which makes every leak of the run known.
    pub fn fails(&self, all_leaks_known: bool) -> bool {
        !self.other_failures.is_empty() || (self.new > 0 && !all_leaks_known)
    }

    fn headline(&self) -> String {
        if self.sites.is_empty() {
            return "no test leaked".to_owned();
        }
        let mut line = format!(
            "{} leaked {} at {}",
            plural(self.leaking_tests, "test"),
            plural_u64(self.tasks, "task"),
            plural(self.sites.len(), "site"),
        );
        if self.baseline.is_some() {
            let _ = write!(line, " ({} new, {} known)", self.new, self.known);
        }
        line
    }

    fn verdict(&self, written: Option<&str>) -> String {
        let mut reasons = Vec::new();
        if self.new > 0 && written.is_none() {
            reasons.push(plural(self.new, "new leak"));
        }
        if !self.other_failures.is_empty() {
            reasons.push(plural(self.other_failures.len(), "other failure"));
        }
        let mut verdict = if reasons.is_empty() {
            "ok".to_owned()
        } else {
            format!("FAILED: {}", reasons.join(", "))
        };
        if let Some(path) = written {
            let _ = write!(
                verdict,
                " (wrote {} to {path})",
                plural(self.entries.len(), "baseline entry")
            );
        }
        verdict
    }

    /// The summary for the terminal. `written` is the baseline file just written, if any.
    pub fn to_text(&self, written: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "leak-check: {}", self.headline());
        for (rank, row) in self.sites.iter().enumerate() {
            let label = if self.baseline.is_some() || row.new > 0 {
                format!("  [{}]", row.label())
            } else {
                String::new()
            };
            let _ = writeln!(out, "\n  {}. {}{label}", rank + 1, row.site);
            if let Some(spawn) = &row.spawn {
                let _ = writeln!(out, "     in {}: {}", spawn.function, spawn.call);
            }
            let states = row.states_text();
            let _ = writeln!(
                out,
                "     {} in {}{}{}",
                plural_u64(row.tasks, "task"),
                plural(row.tests.len(), "test"),
                if states.is_empty() {
                    String::new()
                } else {
                    format!(": {states}")
                },
                if row.names.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (named {})",
                        row.names.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            );
            if let Some(chain) = &row.chain {
                let _ = writeln!(out, "     spawned by: {}", chain_text(chain));
            }
            let _ = writeln!(
                out,
                "     tests: {}",
                tests_text(&row.tests, |t| t.to_owned())
            );
        }
        let _ = writeln!(out, "\ntotals: {}", self.totals());
        if !self.fixed.is_empty() {
            let _ = writeln!(
                out,
                "\nfixed: {} no longer leak{}; delete {} from {}:",
                plural(self.fixed.len(), "baseline entry"),
                if self.fixed.len() == 1 { "s" } else { "" },
                if self.fixed.len() == 1 { "it" } else { "them" },
                self.baseline.as_deref().unwrap_or("the baseline")
            );
            for entry in &self.fixed {
                let _ = writeln!(out, "    {}", entry.to_line());
            }
        }
        if self.failures_known {
            if !self.other_failures.is_empty() {
                let _ = writeln!(
                    out,
                    "\nfailed for other reasons than a leak ({}):",
                    self.other_failures.len()
                );
                for failure in &self.other_failures {
                    let _ = writeln!(out, "    {failure}");
                }
            }
        } else {
            let _ = writeln!(
                out,
                "\nother failures: not known from reports alone (they list leaks and hangs only){}",
                if self.other_failures.is_empty() {
                    ""
                } else {
                    "; these tests hung:"
                }
            );
            for failure in &self.other_failures {
                let _ = writeln!(out, "    {failure}");
            }
        }
        let _ = writeln!(out, "\nleak-check: {}", self.verdict(written));
        out
    }

    fn totals(&self) -> String {
        // A leak is one test leaking at one site; with none, there is nothing to count.
        let mut parts = vec![if self.entries.is_empty() {
            "no leaks".to_owned()
        } else {
            format!(
                "{} (one test at one site) in {}, {} at {}",
                plural(self.entries.len(), "leak"),
                plural(self.leaking_tests, "test"),
                plural_u64(self.tasks, "task"),
                plural(self.sites.len(), "site"),
            )
        }];
        if self.baseline.is_some() {
            parts.push(format!("{} new, {} known", self.new, self.known));
            parts.push(format!("{} fixed", self.fixed.len()));
            if self.not_run > 0 {
                parts.push(format!(
                    "{} for tests that did not run",
                    plural(self.not_run, "baseline entry")
                ));
            }
        }
        if self.failures_known {
            parts.push(format!(
                "{} failed for {}",
                plural(self.other_failures.len(), "test"),
                if self.other_failures.len() == 1 {
                    "another reason"
                } else {
                    "other reasons"
                }
            ));
        }
        parts.join("; ")
    }

    /// The summary as Markdown, for `GITHUB_STEP_SUMMARY`.
    pub fn to_markdown(&self, written: Option<&str>) -> String {
        let mut out = String::from("### leak-check\n\n");
        let _ = writeln!(out, "**{}**: {}.\n", self.verdict(written), self.headline());
        if !self.sites.is_empty() {
            out.push_str("| site | tests | tasks | states | baseline |\n");
            out.push_str("| --- | --- | ---: | --- | --- |\n");
            for row in &self.sites {
                let site = match &row.spawn {
                    Some(spawn) => format!(
                        "{}<br>in {}: {}",
                        code(&row.site),
                        code(&spawn.function),
                        code(&spawn.call)
                    ),
                    None => code(&row.site),
                };
                let _ = writeln!(
                    out,
                    "| {} | {}: {} | {} | {} | {} |",
                    site,
                    row.tests.len(),
                    tests_text(&row.tests, code),
                    row.tasks,
                    cell(&row.states_text()),
                    row.label()
                );
            }
            out.push('\n');
        }
        let _ = writeln!(out, "Totals: {}.\n", cell(&self.totals()));
        if !self.fixed.is_empty() {
            let _ = writeln!(
                out,
                "Fixed (in the baseline {}, no longer leaking; delete them from it):\n",
                span(self.baseline.as_deref().unwrap_or(""))
            );
            for entry in &self.fixed {
                let _ = writeln!(out, "- {}", span(&entry.to_line()));
            }
            out.push('\n');
        }
        if self.failures_known {
            if !self.other_failures.is_empty() {
                out.push_str("Failed for other reasons than a leak:\n\n");
                for failure in &self.other_failures {
                    let _ = writeln!(out, "- {}", span(failure));
                }
                out.push('\n');
            }
        } else {
            out.push_str(
                "Other failures are not known from reports alone (they list leaks and hangs only).\n\n",
            );
            for failure in &self.other_failures {
                let _ = writeln!(out, "- {} hung", span(failure));
            }
        }
        out
    }
}

/// The pseudo-site of tasks spawned with plain `tokio::spawn`, whose site is unknown.
const UNTRACKED_SITE: &str =
    "plain tokio::spawn, site unknown (build with --cfg tokio_unstable to see it)";

/// The pseudo-site of closures started with plain `spawn_blocking`, whose site is never known.
const UNTRACKED_BLOCKING_SITE: &str =
    "plain spawn_blocking, site unknown (spawn it with leak_check::spawn_blocking to see it)";

/// What the reports of a run say, test by test, before it is grouped by site.
struct Collected {
    /// One leak per test and site; a test reported twice (a retry) counts once.
    leaks: BTreeMap<(String, String), Leak>,
    /// Tests that hit their timeout (they report no leaks), with the timeout if known.
    timed_out: BTreeMap<String, Option<u64>>,
    /// Each site's function and spawn call, read from its source once.
    spawns: BTreeMap<String, Option<Spawn>>,
    /// `#[should_panic]` tests, whose own panic is expected: a leak alone fails them.
    expect_panics: BTreeSet<String>,
}

impl Collected {
    fn from_reports(reports: &[Report], sources: &mut Sources) -> Collected {
        let mut collected = Collected {
            leaks: BTreeMap::new(),
            timed_out: BTreeMap::new(),
            spawns: BTreeMap::new(),
            expect_panics: BTreeSet::new(),
        };
        for report in reports {
            // In warn mode the test's own outcome stands, so a should_panic test that failed
            // failed for its own reason.
            if report.expects_panic && report.mode != "warn" {
                collected.expect_panics.insert(report.test.clone());
            }
            if report.timed_out() {
                collected
                    .timed_out
                    .insert(report.test.clone(), report.timeout_ms);
                continue;
            }
            for site in &report.sites {
                let read = sources.spawn(&site.file, site.line, site.column);
                collected
                    .spawns
                    .entry(site.site.clone())
                    .or_insert_with(|| read.clone());
                let spawn = read.unwrap_or_else(|| Spawn::at(site.line, site.column));
                let leak = Leak {
                    test: report.test.clone(),
                    tasks: site.count,
                    states: site.states.clone(),
                    chains: site.chains.clone(),
                    names: site.names.clone(),
                    entry: Entry {
                        test: report.test.clone(),
                        file: site.file.clone(),
                        function: spawn.function,
                        call: spawn.call,
                    },
                };
                merge(&mut collected.leaks, site.site.clone(), leak);
            }
            for (tasks, site, file) in [
                (report.untracked, UNTRACKED_SITE, UNTRACKED),
                (
                    report.untracked_blocking,
                    UNTRACKED_BLOCKING_SITE,
                    UNTRACKED_BLOCKING,
                ),
            ] {
                if tasks > 0 {
                    let leak = Leak {
                        test: report.test.clone(),
                        tasks,
                        states: BTreeMap::new(),
                        chains: Vec::new(),
                        names: Vec::new(),
                        entry: Entry::untracked(&report.test, file),
                    };
                    merge(&mut collected.leaks, site.to_owned(), leak);
                }
            }
        }
        collected
    }

    /// Tests that failed for another reason than a leak, with a note where there is one. From
    /// reports alone (no `outcome`), only the hangs are known failures.
    fn other_failures(&self, outcome: Option<&Outcome>) -> Vec<String> {
        let Some(outcome) = outcome else {
            return self
                .timed_out
                .iter()
                .map(|(test, ms)| format!("{test} ({})", timed_out_note(*ms)))
                .collect();
        };
        let leaked = |test: &str| self.leaks.keys().any(|(t, _)| t == test);
        let mut failures = Vec::new();
        for id in &outcome.failed {
            let full = id.full();
            let leaked = leaked(&full) || leaked(&id.name);
            let expects_panic =
                self.expect_panics.contains(&full) || self.expect_panics.contains(&id.name);
            // A test that leaked fails for that alone, unless its own panic came first (a
            // `#[should_panic]` test's own panic is expected: only the leak fails it).
            if leaked && (expects_panic || !outcome.panicked_otherwise(id)) {
                continue;
            }
            let timeout = self
                .timed_out
                .get(&full)
                .or_else(|| self.timed_out.get(&id.name));
            match (timeout, leaked) {
                (Some(ms), _) => failures.push(format!("{full} ({})", timed_out_note(*ms))),
                (None, true) => failures.push(format!("{full} (and it leaked)")),
                (None, false) => failures.push(full),
            }
        }
        failures.extend(outcome.unexplained.iter().cloned());
        failures
    }
}

/// The leaks grouped by site, ranked, with the run's totals.
struct Ranked {
    /// Most tests first, then most tasks, then by site.
    sites: Vec<SiteRow>,
    entries: BTreeSet<Entry>,
    leaking_tests: usize,
    tasks: u64,
    new: usize,
    known: usize,
}

impl Ranked {
    fn by_site(collected: &Collected, baseline: Option<&Baseline>) -> Ranked {
        let is_known = |entry: &Entry| baseline.is_some_and(|b| b.entries.contains(entry));
        let mut by_site: BTreeMap<String, SiteRow> = BTreeMap::new();
        let mut leaking_tests = BTreeSet::new();
        let mut ranked = Ranked {
            sites: Vec::new(),
            entries: BTreeSet::new(),
            leaking_tests: 0,
            tasks: 0,
            new: 0,
            known: 0,
        };
        for ((_, site), leak) in &collected.leaks {
            let row = by_site.entry(site.clone()).or_insert_with(|| SiteRow {
                site: site.clone(),
                spawn: collected.spawns.get(site).cloned().flatten(),
                tests: Vec::new(),
                tasks: 0,
                states: BTreeMap::new(),
                chain: None,
                names: BTreeSet::new(),
                new: 0,
                known: 0,
            });
            row.add(leak);
            if is_known(&leak.entry) {
                row.known += 1;
                ranked.known += 1;
            } else {
                row.new += 1;
                ranked.new += 1;
            }
            ranked.tasks += leak.tasks;
            leaking_tests.insert(leak.test.clone());
            ranked.entries.insert(leak.entry.clone());
        }
        ranked.leaking_tests = leaking_tests.len();
        ranked.sites = by_site.into_values().collect();
        for row in &mut ranked.sites {
            row.tests.sort();
            row.tests.dedup();
        }
        ranked.sites.sort_by(|a, b| {
            (b.tests.len(), b.tasks)
                .cmp(&(a.tests.len(), a.tasks))
                .then_with(|| a.site.cmp(&b.site))
        });
        ranked
    }
}

/// Baseline entries that did not leak in this run: fixed if their test ran (or if which tests
/// ran is not known), otherwise not run here (counted).
fn no_longer_leaking(
    baseline: &Baseline,
    entries: &BTreeSet<Entry>,
    outcome: Option<&Outcome>,
) -> (Vec<Entry>, usize) {
    let mut fixed = Vec::new();
    let mut not_run = 0;
    for entry in baseline.entries.difference(entries) {
        let ran =
            outcome.is_none_or(|o| o.ran_is_unknown() || o.ran(&entry.test) || o.gone(&entry.test));
        if ran {
            fixed.push(entry.clone());
        } else {
            not_run += 1;
        }
    }
    (fixed, not_run)
}

fn merge(leaks: &mut BTreeMap<(String, String), Leak>, site: String, leak: Leak) {
    let key = (leak.test.clone(), site);
    match leaks.get_mut(&key) {
        Some(old) if old.tasks >= leak.tasks => {}
        Some(old) => *old = leak,
        None => {
            leaks.insert(key, leak);
        }
    }
}

impl SiteRow {
    /// Adds one test's leak at this site.
    fn add(&mut self, leak: &Leak) {
        self.tests.push(leak.test.clone());
        self.tasks += leak.tasks;
        self.names.extend(leak.names.iter().cloned());
        for (state, n) in &leak.states {
            *self.states.entry(state.clone()).or_default() += n;
        }
        // The shortest chain seen, as the example.
        for chain in &leak.chains {
            if self.chain.as_ref().is_none_or(|c| chain.len() < c.len()) {
                self.chain = Some(chain.clone());
            }
        }
    }

    fn label(&self) -> String {
        match (self.new, self.known) {
            (_, 0) => "new".to_owned(),
            (0, _) => "known".to_owned(),
            (new, known) => format!("{new} new, {known} known"),
        }
    }

    /// States by count, most first: `2 waiting, 1 busy`.
    fn states_text(&self) -> String {
        let mut states: Vec<(&String, &u64)> = self.states.iter().collect();
        states.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        states
            .iter()
            .map(|(state, n)| format!("{n} {}", state.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn chain_text(chain: &[String]) -> String {
    let mut links = vec!["test body".to_owned()];
    links.extend(chain.iter().map(|site| {
        if site == "..." {
            "...".to_owned()
        } else {
            format!("task spawned at {site}")
        }
    }));
    links.join(" -> ")
}

fn tests_text(tests: &[String], show: impl Fn(&str) -> String) -> String {
    let shown: Vec<String> = tests.iter().take(TESTS_SHOWN).map(|t| show(t)).collect();
    let mut text = shown.join(", ");
    if tests.len() > TESTS_SHOWN {
        let _ = write!(text, " and {} more", tests.len() - TESTS_SHOWN);
    }
    text
}

fn timed_out_note(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("timed out after {ms} ms: leak-check's hang guard"),
        None => "timed out: leak-check's hang guard".to_owned(),
    }
}

fn plural(n: usize, word: &str) -> String {
    plural_u64(n as u64, word)
}

fn plural_u64(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else if let Some(stem) = word.strip_suffix("entry") {
        format!("{n} {stem}entries")
    } else {
        format!("{n} {word}s")
    }
}

/// Text as a Markdown code span inside a table cell, where a `|` would end the cell.
fn code(text: &str) -> String {
    span(text).replace('|', "\\|")
}

/// Text as a Markdown code span.
fn span(text: &str) -> String {
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

/// Plain text inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{OutputParser, Runner};

    /// A run of `tests/t.rs` where `expects_panic` (a `#[should_panic]` test) panicked, as it
    /// should, and leaked, and `closures` left a plain `spawn_blocking` closure running.
    const OUTPUT: &str = "\
     Running tests/t.rs (/w/target/debug/deps/t-bc18e88424c06f22)

running 4 tests
test expects_panic - should panic ... FAILED
test closures ... FAILED
test panics ... FAILED
test warned - should panic ... FAILED

failures:

---- expects_panic stdout ----
thread 'expects_panic' panicked at tests/t.rs:4:5:
as expected
leak-check: test `expects_panic` leaked 1 task (still alive 100 ms after the body returned)
note: test did not panic as expected
---- closures stdout ----
thread 'closures' panicked at tests/t.rs:9:1:
leak-check: test `closures` leaked 1 task (still alive 100 ms after the body returned)
---- panics stdout ----
thread 'panics' panicked at tests/t.rs:14:5:
its own failure
---- warned stdout ----
thread 'warned' panicked at tests/t.rs:19:5:
not the message it expects
note: panic did not contain expected string

failures:
    expects_panic
    closures
    panics
    warned

test result: FAILED. 0 passed; 4 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s
";

    fn report(json: &str) -> Report {
        serde_json::from_str(json).unwrap()
    }

    /// A `#[should_panic]` test's own panic is no other failure: the leak alone failed it
    /// (unless in warn mode, where its own outcome stands). A plain `spawn_blocking` closure is
    /// a leak, at a site of its own.
    #[test]
    fn should_panic_tests_and_plain_closures_are_leaks() {
        let mut parser = OutputParser::new(Runner::Cargo);
        for line in OUTPUT.lines() {
            parser.line(line);
        }
        let outcome = parser.finish(Some("exit status: 101".into()));
        let reports = [
            report(
                r#"{"test":"t::expects_panic","outcome":"leaked","expects_panic":true,"tasks":1,
                    "sites":[{"site":"tests/t.rs:3:5","count":1}]}"#,
            ),
            report(
                r#"{"test":"t::closures","outcome":"leaked","tasks":1,"untracked_blocking":1,
                    "sites":[]}"#,
            ),
            report(
                r#"{"test":"t::warned","outcome":"leaked","mode":"warn","expects_panic":true,
                    "tasks":1,"sites":[{"site":"tests/t.rs:18:5","count":1}]}"#,
            ),
        ];
        let mut sources = Sources::new(std::path::PathBuf::from("/nowhere"));
        let summary = Summary::build(&reports, None, Some(&outcome), &mut sources);
        assert_eq!(
            summary.other_failures,
            ["t::panics", "t::warned (and it leaked)"]
        );
        assert_eq!(summary.leaking_tests, 3);
        assert!(summary
            .sites
            .iter()
            .any(|row| row.site == UNTRACKED_BLOCKING_SITE && row.tests == ["t::closures"]));
        assert!(summary
            .entries
            .contains(&Entry::untracked("t::closures", UNTRACKED_BLOCKING)));
    }

    /// With no leak, the totals count none, without the leak unit's definition.
    #[test]
    fn totals_of_a_clean_run_say_no_leaks() {
        let mut sources = Sources::new(std::path::PathBuf::from("/nowhere"));
        let summary = Summary::build(&[], None, None, &mut sources);
        assert!(
            summary.totals().starts_with("no leaks"),
            "{}",
            summary.totals()
        );
    }
}
