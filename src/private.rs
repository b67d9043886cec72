//! What `#[leak_check]` expands to calls into here. Not a stable API: only the macro of the same
//! version may use it.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub use tokio;

use crate::check::wait::{self, TimeLimited};
use crate::check::Check;
use crate::config::{Mode, PerTest, Settings};
use crate::report::export;
use crate::report::LeakReport;
use crate::tracking::owner::{self as ownership, Owner};

/// How long a runtime that leak-check built gets to shut down; a `spawn_blocking` closure that
/// never returns would otherwise hang the test forever.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// The settings of one checked test, filled in by the macro.
pub struct Options<T> {
    module_path: &'static str,
    name: &'static str,
    per_test: PerTest,
    /// Set for `#[should_panic]` tests, which cannot be failed by a panic: they fail by
    /// returning this instead.
    return_instead_of_panic: Option<fn() -> T>,
    /// Shows the error a test returned, if it returned one (see [`ResultOf`]), so that a leak
    /// report does not hide it. Unset where the return type cannot be named (`impl Trait`).
    describe_error: Option<fn(&T) -> Option<String>>,
    /// A checked sync function without a test attribute of its own: a helper a test calls.
    helper: bool,
}

impl<T> Options<T> {
    /// The test `name` in the module `module_path` (as `module_path!()` gives it).
    pub fn new(module_path: &'static str, name: &'static str) -> Self {
        Options {
            module_path,
            name,
            per_test: PerTest::default(),
            return_instead_of_panic: None,
            describe_error: None,
            helper: false,
        }
    }

    /// Marks a checked sync helper (no test attribute of its own): its report names the test
    /// that called it, as libtest names the thread it runs the test on.
    pub fn helper(mut self) -> Self {
        self.helper = true;
        self
    }

    /// The test's own grace period.
    pub fn grace_ms(mut self, ms: u64) -> Self {
        self.per_test.grace = Some(Duration::from_millis(ms));
        self
    }

    /// The test's own hang guard.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.per_test.timeout = Some(Duration::from_millis(ms));
        self
    }

    /// Spawn sites whose stragglers are expected.
    pub fn allow_sites(mut self, sites: &'static [&'static str]) -> Self {
        self.per_test.allow_sites = sites;
        self
    }

    /// Task names whose stragglers are expected.
    pub fn allow_names(mut self, names: &'static [&'static str]) -> Self {
        self.per_test.allow_names = names;
        self
    }

    /// How to show the error the test returned: the macro passes
    /// `|output: &T| (&ResultOf(output)).error_text()` for every test whose return type it can
    /// name.
    pub fn describe_error(mut self, describe: fn(&T) -> Option<String>) -> Self {
        self.describe_error = Some(describe);
        self
    }

    /// Whether tasks spawned with plain `tokio::spawn` whose sites are unknown are not counted.
    pub fn allow_untracked(mut self, allow: bool) -> Self {
        self.per_test.allow_untracked = Some(allow);
        self
    }

    /// The name libtest shows: the module path without the crate, then the function. The
    /// human report uses it: it is what `cargo test` prints and filters by. libtest runs each
    /// test on a thread of that name, which says more where it differs: the case of an
    /// attribute that makes several tests of one function (`my_test::case_1`), or, for a
    /// helper, the test that called it.
    fn test_name(&self) -> String {
        let own = self.own_name();
        let thread = std::thread::current();
        match thread.name() {
            Some(case) if is_case_of(case, &own) => case.to_owned(),
            _ => self.caller().unwrap_or(own),
        }
    }

    /// The function's own name, as libtest would name it as a test.
    fn own_name(&self) -> String {
        match self.module_path.split_once("::") {
            Some((_crate, path)) => format!("{path}::{}", self.name),
            None => self.name.to_owned(),
        }
    }

    /// For a helper, the test that called it: the name of a thread that reads as a test's path
    /// (`tests::get_set`; not `main`, nor a thread a runtime or the user named `db-writer`), and
    /// that is not the function's own (a sync function under an attribute that makes tests of
    /// it, such as rstest's cases). A thread the user named `writer` reads as a path too: the
    /// report then says which thread called the helper rather than claim it is a test.
    fn caller(&self) -> Option<String> {
        if !self.helper {
            return None;
        }
        let thread = std::thread::current();
        let name = thread.name()?;
        let reads_as_a_path = name.split("::").all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        (reads_as_a_path && name != "main" && !is_case_of(name, &self.own_name()))
            .then(|| name.to_owned())
    }

    /// The full path, crate (test binary) first: `client::tests::get_set`. The JSON report uses
    /// it, where tests of several binaries with the same name must be told apart. A helper's
    /// caller is named with the crate of the test binary running, which need not be the
    /// helper's (a helper in a shared test-support crate).
    fn test_path(&self) -> String {
        let own_crate = || {
            self.module_path
                .split_once("::")
                .map_or(self.module_path, |(krate, _)| krate)
                .to_owned()
        };
        match self.caller() {
            Some(caller) => format!(
                "{}::{caller}",
                test_binary_crate().unwrap_or_else(own_crate)
            ),
            None => format!("{}::{}", own_crate(), self.test_name()),
        }
    }

    /// The test's settings; when the environment holds a value that means nothing, the test
    /// fails with a message saying so, before its body runs. A `#[should_panic]` test cannot
    /// be failed by a panic: it prints the message and returns normally instead, as a leak
    /// does.
    #[track_caller]
    fn settings(&self) -> Result<Settings, T> {
        match Settings::resolve(self.test_path(), &self.per_test) {
            Ok(settings) => Ok(settings),
            Err(message) => match self.return_instead_of_panic {
                Some(return_normally) => {
                    eprintln!(
                        "{message}\n\nleak-check: this test expects a panic; leak-check fails it by returning normally instead."
                    );
                    Err(return_normally())
                }
                None => panic!("{message}"),
            },
        }
    }

    fn begin(
        &self,
        settings: &Settings,
        own_runtime: Option<(&tokio::runtime::Handle, u64)>,
    ) -> Check {
        let test = self.test_name();
        // A helper called by a test names both; a helper called elsewhere is named alone.
        let helper = self.caller().map(|_| self.name);
        Check::begin(
            test,
            helper,
            settings.grace,
            settings.allow.clone(),
            own_runtime,
        )
    }
}

/// Whether the thread name `thread` is the test `own`, or a case of it (`own::case_1`).
fn is_case_of(thread: &str, own: &str) -> bool {
    thread
        .strip_prefix(own)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The crate of the test binary running, from its file name (`client-0123abcd`, as cargo names
/// test binaries), if it has one.
fn test_binary_crate() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let stem = exe.file_stem()?.to_str()?;
    let (krate, _hash) = stem.rsplit_once('-')?;
    Some(krate.to_owned())
}

impl Options<()> {
    /// Marks a `#[should_panic]` test.
    pub fn expects_panic(mut self) -> Self {
        self.return_instead_of_panic = Some(|| ());
        self
    }
}

/// A test's output, to show the error in it whatever its type is called (`io::Result<()>`, an
/// alias, `Result<(), Box<dyn Error>>`...), by autoref specialization: in the generated code,
/// where `T` is concrete, `(&ResultOf(&output)).error_text()` finds [`DescribeResult`] when `T`
/// is a `Result` whose error is `Debug`, and [`DescribeOther`] (one more `&` away) otherwise.
pub struct ResultOf<'a, T>(pub &'a T);

/// The error of a test that returned `Err`, as libtest would print it (`Debug`).
pub trait DescribeResult {
    /// `Some` with the error, for an `Err`.
    fn error_text(&self) -> Option<String>;
}

impl<T, E: std::fmt::Debug> DescribeResult for ResultOf<'_, Result<T, E>> {
    fn error_text(&self) -> Option<String> {
        self.0.as_ref().err().map(|error| format!("{error:?}"))
    }
}

/// Any output that is not a `Result`: there is no error to show.
pub trait DescribeOther {
    /// Always `None`.
    fn error_text(&self) -> Option<String>;
}

impl<T> DescribeOther for &ResultOf<'_, T> {
    fn error_text(&self) -> Option<String> {
        None
    }
}

/// How a checked body ended.
enum Finished<T> {
    /// It returned or panicked; the report, if anything leaked.
    Body(std::thread::Result<T>, Option<LeakReport>),
    /// It ran past its timeout.
    TimedOut(LeakReport),
}

/// Runs an async test on a runtime built from `builder`, then checks it, then shuts the runtime
/// down with a timeout.
#[track_caller]
pub fn run_test<T>(
    mut builder: tokio::runtime::Builder,
    options: Options<T>,
    body: impl Future<Output = T>,
) -> T {
    let settings = match options.settings() {
        Ok(settings) => settings,
        Err(output) => return output,
    };
    // Marks the runtime's threads, so that the check knows which tracked tasks run on it.
    let token = ownership::new_runtime_token();
    #[cfg(tokio_unstable)]
    let hooks = crate::check::hooks::Hooks::install(&mut builder, token);
    builder.on_thread_start(move || {
        ownership::set_runtime_token(token);
    });
    let runtime = builder
        .build()
        .unwrap_or_else(|error| panic!("leak-check: cannot build the test's runtime: {error}"));
    if settings.mode == Mode::Off {
        let output = runtime.block_on(body);
        runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
        return output;
    }
    let check = options.begin(&settings, Some((runtime.handle(), token)));
    #[cfg(tokio_unstable)]
    hooks.attach(check.core());
    // The test's thread runs a current-thread runtime's tasks inside `block_on`.
    let previous = ownership::set_runtime_token(token);
    let finished = runtime.block_on(run_checked(check, body, settings.timeout));
    ownership::set_runtime_token(previous);
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    verdict(finished, &settings, options)
}

/// Checks an async test whose runtime someone else runs (another test attribute).
pub async fn check_async<T>(options: Options<T>, body: impl Future<Output = T>) -> T {
    let settings = match options.settings() {
        Ok(settings) => settings,
        Err(output) => return output,
    };
    if settings.mode == Mode::Off {
        return body.await;
    }
    let check = options.begin(&settings, None);
    let finished = run_checked(check, body, settings.timeout).await;
    verdict(finished, &settings, options)
}

/// Checks a sync test (or a checked sync helper), whose tasks run on runtimes that outlive it.
///
/// On a runtime's thread (a helper called from an async test), waiting here would keep that
/// thread from running the very tasks waited for: the helper's tasks then belong to the
/// enclosing check if there is one; otherwise a multi-thread worker hands its other work away
/// while it waits, and a current-thread runtime cannot be waited on at all.
#[track_caller]
pub fn check_sync<T>(options: Options<T>, body: impl FnOnce() -> T) -> T {
    let settings = match options.settings() {
        Ok(settings) => settings,
        Err(output) => return output,
    };
    if settings.mode == Mode::Off {
        return body();
    }
    let on_runtime = tokio::runtime::Handle::try_current().ok();
    if on_runtime.is_some() && ownership::is_owned() {
        return body();
    }
    let multi_thread = on_runtime
        .as_ref()
        .map(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread == Some(false) {
        print_uncaptured(&format!(
            "leak-check: `{}` is not checked: it runs on a thread of a current-thread runtime, \
             which cannot run its tasks while a check waits for them. Check the enclosing test \
             instead, or call it outside the runtime.\n",
            options.own_name()
        ));
        return body();
    }
    let check = options.begin(&settings, None);
    let outcome = {
        let _owner = ownership::enter(check.owner());
        catch_unwind(AssertUnwindSafe(body))
    };
    let report = if multi_thread == Some(true) {
        tokio::task::block_in_place(|| wait::block_on(check.conclude()))
    } else {
        wait::block_on(check.conclude())
    };
    verdict(Finished::Body(outcome, report), &settings, options)
}

async fn run_checked<T>(
    check: Check,
    body: impl Future<Output = T>,
    timeout: Option<Duration>,
) -> Finished<T> {
    let started = Instant::now();
    let guarded = Guarded::new(check.owner(), body);
    let Some(limit) = timeout else {
        let outcome = guarded.await;
        return Finished::Body(outcome, check.conclude().await);
    };
    // The body is dropped at the end of this statement, before its tasks are looked at.
    let outcome = TimeLimited::new(guarded, started + limit).await;
    match outcome {
        Some(outcome) => Finished::Body(outcome, check.conclude().await),
        None => Finished::TimedOut(check.timed_out(limit, started).await),
    }
}

/// Turns what the body did and what leaked into the test's result.
#[track_caller]
fn verdict<T>(finished: Finished<T>, settings: &Settings, options: Options<T>) -> T {
    let (outcome, mut report) = match finished {
        Finished::Body(outcome, None) => return outcome.unwrap_or_else(|p| resume_unwind(p)),
        Finished::Body(outcome, Some(report)) => (Some(outcome), report),
        // A body that never finished has no result to return, whatever the mode.
        Finished::TimedOut(report) => (None, report),
    };
    report.body_panicked = matches!(outcome, Some(Err(_)));
    publish(&report, settings, options.return_instead_of_panic.is_some());
    match (outcome, settings.mode, options.return_instead_of_panic) {
        (Some(outcome), Mode::Warn, _) => {
            print_uncaptured(&format!(
                "{}\n\nleak-check: {}=warn, so the test is not failed for this.\n",
                paint(&report.to_string()),
                crate::config::MODE_ENV
            ));
            outcome.unwrap_or_else(|p| resume_unwind(p))
        }
        // A test that expects a panic cannot be failed by one, whether it leaked, panicked and
        // leaked, or hung.
        (outcome, _, Some(return_normally)) => {
            let what = match outcome {
                Some(Ok(_)) => "",
                Some(Err(_)) => " and panicked",
                None => " and did not finish",
            };
            eprintln!(
                "{report}\n\nleak-check: this test expects a panic{what}; leak-check fails it by returning normally instead."
            );
            return_normally()
        }
        // The body's panic was printed when it happened: the report follows it, and the test
        // fails with that panic, as it would have without the check.
        (Some(Err(payload)), _, None) => {
            eprintln!("\n{report}");
            resume_unwind(payload)
        }
        (Some(Ok(output)), _, None) => match options
            .describe_error
            .and_then(|describe| describe(&output))
        {
            Some(error) => panic!("the test returned an error: {error}\n\n{report}"),
            None => panic!("{report}"),
        },
        (None, _, None) => panic!("{report}"),
    }
}

/// The report for machines and CI, where the environment asks for it.
fn publish(report: &LeakReport, settings: &Settings, expects_panic: bool) {
    if let Some(path) = &settings.report_file {
        let json = export::to_json(report, settings, expects_panic);
        if let Err(error) = export::append_line(path, &json) {
            eprintln!("leak-check: cannot append to {}: {error}", path.display());
        }
    }
    if let Some(workspace) = &settings.github {
        let lines = export::annotations(report, settings.mode, workspace.as_deref());
        print_uncaptured_stdout(&lines.join("\n"));
    }
}

/// Writes to the process's stderr itself, past the test harness's capture, so a warning shows
/// for a test that passes.
fn print_uncaptured(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Workflow commands must reach the job's log even for tests that pass (warn mode).
fn print_uncaptured_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    // libtest may have written `test name ... ` without its line end yet: a workflow command
    // counts only at the start of a line.
    let _ = out.write_all(b"\n");
    let _ = out.write_all(text.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Colours a report printed straight to stderr when it is a terminal, or with `CLICOLOR_FORCE`
/// (CI logs that show colour); never with `NO_COLOR` (see [`crate::config::wants_color`]).
/// Panic messages are never coloured: harnesses capture them and `should_panic` matches them.
fn paint(report: &str) -> String {
    let wants_color = crate::config::wants_color(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("CLICOLOR_FORCE").as_deref(),
    );
    if !wants_color {
        return report.to_owned();
    }
    report
        .lines()
        .map(|line| {
            if line.starts_with("leak-check:") {
                format!("\x1b[1;33m{line}\x1b[0m")
            } else if line.trim_start().starts_with("hint:") {
                format!("\x1b[36m{line}\x1b[0m")
            } else if line.starts_with("  ") && line.contains(" spawned at ") {
                format!("\x1b[1m{line}\x1b[0m")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pin_project_lite::pin_project! {
    /// The test body: polled, and dropped, with the check as the current owner; its panic
    /// caught.
    struct Guarded<F> {
        #[pin]
        body: Option<F>,
        owner: Owner,
    }

    impl<F> PinnedDrop for Guarded<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _owner = ownership::enter(this.owner.clone());
            this.body.set(None);
        }
    }
}

impl<F> Guarded<F> {
    fn new(owner: Owner, body: F) -> Self {
        Guarded {
            body: Some(body),
            owner,
        }
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _owner = ownership::enter(this.owner.clone());
        let Some(body) = this.body.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let result = match catch_unwind(AssertUnwindSafe(|| body.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(payload),
        };
        // Whatever the body's locals spawn as they drop belongs to the test: drop them now,
        // before the check looks. A panic there counts as the body's, unless it already had one.
        let dropped = catch_unwind(AssertUnwindSafe(|| this.body.set(None)));
        Poll::Ready(match (result, dropped) {
            (Ok(_), Err(payload)) => Err(payload),
            (result, _) => result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name `options` gives, from a thread named `thread` (libtest names a test's thread
    /// after the test).
    fn named_on(thread: Option<&str>, options: Options<()>) -> (String, String) {
        let mut builder = std::thread::Builder::new();
        if let Some(thread) = thread {
            builder = builder.name(thread.to_owned());
        }
        builder
            .spawn(move || (options.test_name(), options.test_path()))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_case_is_named_after_its_thread_and_a_helper_after_its_caller() {
        let test = || Options::<()>::new("app::m", "t");
        let helper = || Options::<()>::new("support::db", "seeded").helper();
        assert_eq!(named_on(Some("m::t"), test()).0, "m::t");
        assert_eq!(named_on(Some("m::t::case_2"), test()).0, "m::t::case_2");
        // Another test's thread (or none) does not rename a test.
        assert_eq!(named_on(Some("m::other"), test()).0, "m::t");
        assert_eq!(named_on(None, test()), ("m::t".into(), "app::m::t".into()));
        // A helper takes its caller's name, and the crate of the test binary running.
        let (name, path) = named_on(Some("client::get_set"), helper());
        assert_eq!(name, "client::get_set");
        let binary = test_binary_crate().unwrap();
        assert_eq!(path, format!("{binary}::client::get_set"));
        // A case of its own (rstest's, above a sync function) is no caller.
        let case = named_on(Some("m::t::case_1"), test().helper());
        assert_eq!(case, ("m::t::case_1".into(), "app::m::t::case_1".into()));
        // But not from a thread that does not read as a test's path.
        for thread in [
            Some("db-writer"),
            Some("main"),
            Some("tokio-runtime-worker"),
            None,
        ] {
            assert_eq!(named_on(thread, helper()).0, "db::seeded", "{thread:?}");
        }
    }
}
