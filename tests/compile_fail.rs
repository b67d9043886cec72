//! Misuses of `#[leak_check]` are compile errors that point at the token and say what to write.
//! Regenerate the expected messages with `TRYBUILD=overwrite cargo test --test compile_fail`.

#[test]
fn misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
