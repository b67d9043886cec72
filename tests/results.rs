//! Whatever a test returns is its result: when a test that returned an error also leaked, the
//! error and the report both show, whatever the result type is called, in all three forms.

mod support;

use std::error::Error;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, site, SHARED};

const SOURCE: &str = include_str!("results.rs");

fn site_of(label: &str) -> String {
    site("tests/results.rs", SOURCE, label)
}

/// An error whose `Debug` text is easy to find in the output.
#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl Error for Refused {}

/// A result alias, as suites write them: its name is not `Result`.
type TestResult = Result<(), Refused>;

fn io_error(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, what.to_owned())
}

// --- Own runtime (leak-check builds it) ---------------------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
async fn own_alias() -> TestResult {
    // site(own_alias): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    Err(Refused("own_alias"))
}

#[leak_check]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
async fn own_io() -> std::io::Result<()> {
    // site(own_io): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    Err(io_error("own_io"))
}

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
async fn own_boxed() -> Result<(), Box<dyn Error>> {
    // site(own_boxed): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    Err(Box::new(Refused("own_boxed")))
}

// --- Foreign runtime (another test attribute runs it) -------------------------------------------

#[leak_check]
#[test_log::test(tokio::test)]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
async fn foreign_alias() -> TestResult {
    // site(foreign_alias): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    Err(Refused("foreign_alias"))
}

#[leak_check]
#[test_log::test(tokio::test)]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
async fn foreign_io() -> std::io::Result<()> {
    // site(foreign_io): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    Err(io_error("foreign_io"))
}

#[leak_check]
#[test_log::test(tokio::test)]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
async fn foreign_boxed() -> Result<(), Box<dyn Error>> {
    // site(foreign_boxed): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    Err(Box::new(Refused("foreign_boxed")))
}

// --- Sync, on a runtime that outlives the test -----------------------------------------------

#[leak_check]
#[test]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
fn sync_alias() -> TestResult {
    // site(sync_alias): leak_check::spawn_on
    leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
    Err(Refused("sync_alias"))
}

#[leak_check]
#[test]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
fn sync_io() -> std::io::Result<()> {
    // site(sync_io): leak_check::spawn_on
    leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
    Err(io_error("sync_io"))
}

#[leak_check]
#[test]
#[ignore = "leaks on purpose; run by errors_and_reports_both_show"]
fn sync_boxed() -> Result<(), Box<dyn Error>> {
    // site(sync_boxed): leak_check::spawn_on
    leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
    Err(Box::new(Refused("sync_boxed")))
}

// --- A leak with an `Ok` result: the report alone ---------------------------------------------

#[leak_check]
#[tokio::test]
#[ignore = "leaks on purpose; run by an_ok_result_shows_the_report_alone"]
async fn ok_alias() -> TestResult {
    // site(ok_alias): leak_check::spawn
    leak_check::spawn(std::future::pending::<()>());
    Ok(())
}

// --- Clean tests of each kind pass -------------------------------------------------------------

#[leak_check]
#[tokio::test]
async fn clean_alias() -> TestResult {
    leak_check::spawn(async {}).await.unwrap();
    Ok(())
}

#[leak_check]
#[test_log::test(tokio::test)]
async fn clean_io() -> std::io::Result<()> {
    leak_check::spawn(async {}).await.unwrap();
    Ok(())
}

#[leak_check]
#[test]
fn clean_boxed() -> Result<(), Box<dyn Error>> {
    SHARED.block_on(leak_check::spawn_on(async {}, SHARED.handle()))?;
    Ok(())
}

#[test]
fn errors_and_reports_both_show() {
    let cases = [
        ("own_alias", "Refused(\"own_alias\")"),
        (
            "own_io",
            "Custom { kind: ConnectionRefused, error: \"own_io\" }",
        ),
        ("own_boxed", "Refused(\"own_boxed\")"),
        ("foreign_alias", "Refused(\"foreign_alias\")"),
        (
            "foreign_io",
            "Custom { kind: ConnectionRefused, error: \"foreign_io\" }",
        ),
        ("foreign_boxed", "Refused(\"foreign_boxed\")"),
        ("sync_alias", "Refused(\"sync_alias\")"),
        (
            "sync_io",
            "Custom { kind: ConnectionRefused, error: \"sync_io\" }",
        ),
        ("sync_boxed", "Refused(\"sync_boxed\")"),
    ];
    for (name, error) in cases {
        let output = expect_failure(name);
        let shown = format!("the test returned an error: {error}");
        assert!(
            output.contains(&shown),
            "`{name}`: no `{shown}` in:\n{output}"
        );
        assert!(
            output.contains(&format!("leak-check: test `{name}` leaked 1 task")),
            "`{name}`: no report in:\n{output}"
        );
        assert_reports(&output, 1, &site_of(name));
    }
}

#[test]
fn an_ok_result_shows_the_report_alone() {
    let output = expect_failure("ok_alias");
    assert!(!output.contains("the test returned an error"), "{output}");
    assert_reports(&output, 1, &site_of("ok_alias"));
}
