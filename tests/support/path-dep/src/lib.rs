// A stand-in for a path dependency outside the workspace: included with `include!` by its
// absolute path, so rustc names its locations with that path.

/// A location in this file.
pub(crate) fn here() -> &'static std::panic::Location<'static> {
    std::panic::Location::caller()
}
