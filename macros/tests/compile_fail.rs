//! Misuses of `#[leak_check]` are compile errors that point at the token and say what to write.
//! Regenerate the expected messages with
//! `TRYBUILD=overwrite cargo test -p leak-check-macros --test compile_fail`, then read each one.
//!
//! The suite lives in the macros crate so that trybuild builds its test crate with this
//! package's few dev-dependencies, not with every dev-dependency of leak-check.

#[test]
fn misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
