//! Nothing here: see `benches/untracked.rs`.
