// A checked sync function nothing calls (a test whose `#[test]` was forgotten) is still
// reported as never used: the function stays the user's for rustc's lints.
#![deny(dead_code)]

use leak_check::leak_check;

#[leak_check]
fn forgot_its_test_attribute() {}

fn main() {}
