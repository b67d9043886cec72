// A stand-in for a crate from the registry, for tests that need a spawn site in a dependency.
// Included with `include!` by its absolute path, so rustc names its locations with that path,
// as it names a registry crate's (`.../registry/src/<index>/<crate>-<version>/src/...`).

/// A location in this file.
pub(crate) fn here() -> &'static std::panic::Location<'static> {
    std::panic::Location::caller()
}
