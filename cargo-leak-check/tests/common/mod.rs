//! Helpers shared by the integration tests: the binary with a clean environment, and small
//! workspaces written to temporary folders.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The leak-check crate (this workspace's root), which generated suites depend on by path.
pub fn leak_check_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cargo-leak-check sits in the leak-check workspace")
        .canonicalize()
        .unwrap()
}

/// The binary, with none of the variables of the cargo (or nextest) running these tests, nor
/// any that would change what the suites under test do.
pub fn bin(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-leak-check"));
    command.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let drop = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("__CARGO")
            || key.starts_with("NEXTEST")
            || key.starts_with("LEAK_CHECK")
            || key.starts_with("GITHUB_")
            || matches!(
                key,
                "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUST_TEST_THREADS" | "COLUMNS"
            );
        if drop {
            command.env_remove(key);
        }
    }
    command
}

/// What a run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics, showing both streams, unless the exit code is `code`.
    pub fn expect_code(&self, code: i32, what: &str) -> &Run {
        assert_eq!(
            self.code, code,
            "{what}: exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn expect_stdout(&self, needle: &str, what: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "{what}: stdout lacks {needle:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn expect_no_stdout(&self, needle: &str, what: &str) -> &Run {
        assert!(
            !self.stdout.contains(needle),
            "{what}: stdout has {needle:?}\n--- stdout:\n{}",
            self.stdout
        );
        self
    }

    pub fn expect_stderr(&self, needle: &str, what: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "{what}: stderr lacks {needle:?}\n--- stderr:\n{}",
            self.stderr
        );
        self
    }
}

pub fn run(command: &mut Command) -> Run {
    Run::of(command.output().expect("the binary runs"))
}

/// Writes `files` (path, text) under `root`.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

/// The 1-based line of the first line of `file` that contains `needle`.
pub fn line_of(file: &Path, needle: &str) -> usize {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in {}", file.display()))
        + 1
}

/// Makes `dir` a git repository (a workspace in a subfolder of one is what users have).
pub fn git_init(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        // No git here: a bare .git folder is what cargo would see of one anyway.
        fs::create_dir_all(dir.join(".git")).unwrap();
    }
}
