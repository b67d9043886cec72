//! Shared by the benchmarks: where criterion writes its estimates, and reading them back, so each
//! bench can print its cases as ratios of a floor measured in the same run.

use std::path::{Path, PathBuf};

/// `target/criterion` of the workspace, whichever package's bench runs.
pub fn output_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("BENCHMARKS.md").exists())
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")));
    root.join("target").join("criterion")
}

/// Forgets a group's earlier estimates, so that ratios come from this run only.
pub fn forget(dir: &Path, group: &str) {
    let _ = std::fs::remove_dir_all(dir.join(group));
}

/// The mean time of one case, in nanoseconds, from criterion's estimates.
pub fn mean_ns(dir: &Path, group: &str, name: &str) -> Option<f64> {
    let path = dir
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}
