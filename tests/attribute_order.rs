//! Where `#[leak_check]` may stand among other test attributes. Below `#[tokio::test]` it is a
//! compile error (macros/tests/ui/below_tokio_test.rs), told apart by the shape of tokio's
//! expansion, not by its text; below another crate's sync test attribute, which also writes
//! `#[::core::prelude::v1::test]`, it is fine and checks the test.

mod support;

use leak_check::leak_check;
use support::{assert_reports, expect_failure, site, SHARED};

const SOURCE: &str = include_str!("attribute_order.rs");

#[test_log::test]
#[leak_check]
fn below_test_log() {
    let task = leak_check::spawn_on(async { 2 }, SHARED.handle());
    assert_eq!(SHARED.block_on(task).unwrap(), 2);
}

#[test_log::test]
#[leak_check]
#[ignore = "leaks on purpose; run by below_test_log_is_checked"]
fn leak_below_test_log() {
    // site(below): leak_check::spawn_on
    leak_check::spawn_on(std::future::pending::<()>(), SHARED.handle());
}

#[test]
fn below_test_log_is_checked() {
    let output = expect_failure("leak_below_test_log");
    assert_reports(
        &output,
        1,
        &site("tests/attribute_order.rs", SOURCE, "below"),
    );
}
