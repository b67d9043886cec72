//! The progress line on stderr while the suite builds and runs: redrawn in place on a terminal,
//! and on a pipe or file (a CI log) a plain line per step.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::outcome::Event;

pub struct Progress {
    shown: bool,
    terminal: bool,
    width: usize,
    start: Instant,
    report: PathBuf,
    report_len: u64,
    leaked: usize,
    passed: usize,
    failed: usize,
    compiled: usize,
    step: String,
    drawn: bool,
}

impl Progress {
    /// `report` is the JSON report file, whose lines count the leaking tests so far. Without
    /// `shown`, only the last line is printed (cargo's output is shown instead).
    pub fn new(report: PathBuf, shown: bool) -> Progress {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100usize);
        Progress {
            shown,
            terminal: io::stderr().is_terminal(),
            width: width.max(20),
            start: Instant::now(),
            report,
            report_len: 0,
            leaked: 0,
            passed: 0,
            failed: 0,
            compiled: 0,
            step: "starting".to_owned(),
            drawn: false,
        }
    }

    pub fn event(&mut self, event: &Event) {
        match event {
            Event::Compiling(krate) => {
                if self.compiled == 0 && !self.terminal && self.shown {
                    self.plain("compiling");
                }
                self.compiled += 1;
                self.step = format!(
                    "compiling {krate} ({} crate{})",
                    self.compiled,
                    if self.compiled == 1 { "" } else { "s" }
                );
            }
            Event::Binary(name) => {
                self.count_leaks();
                self.step = format!("running {name}");
                if !self.terminal && self.shown {
                    let line = format!("running {name} ({})", self.counts());
                    self.plain(&line);
                }
            }
            Event::Test { failed } => {
                if *failed {
                    self.failed += 1;
                } else {
                    self.passed += 1;
                }
            }
        }
        self.draw();
    }

    /// Redraws the line (the clock moves on); nothing on a pipe.
    pub fn tick(&mut self) {
        self.count_leaks();
        self.draw();
    }

    /// Clears the line so that something else can be printed; the next event draws it again.
    pub fn interrupt(&mut self) {
        if self.terminal && self.drawn {
            eprint!("\r\x1b[2K");
            let _ = io::stderr().flush();
            self.drawn = false;
        }
    }

    /// Clears the line, and says how the run went.
    pub fn finish(&mut self) {
        self.count_leaks();
        if self.terminal && self.drawn {
            eprint!("\r\x1b[2K");
        }
        let line = format!(
            "done in {:.1} s: {}",
            self.start.elapsed().as_secs_f64(),
            self.counts()
        );
        self.plain(&line);
    }

    fn counts(&self) -> String {
        format!(
            "{} passed, {} failed, {} leak reports",
            self.passed, self.failed, self.leaked
        )
    }

    fn count_leaks(&mut self) {
        let len = fs::metadata(&self.report).map_or(0, |m| m.len());
        if len != self.report_len {
            self.report_len = len;
            self.leaked = fs::read(&self.report)
                .map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count());
        }
    }

    fn draw(&mut self) {
        if !self.terminal || !self.shown {
            return;
        }
        let line = format!(
            "leak-check [{}] {}: {}",
            format_elapsed(self.start.elapsed()),
            self.step,
            self.counts()
        );
        let line: String = line.chars().take(self.width - 1).collect();
        eprint!("\r\x1b[2K{line}");
        let _ = io::stderr().flush();
        self.drawn = true;
    }

    fn plain(&self, text: &str) {
        eprintln!("leak-check: {text}");
    }
}

fn format_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}
