//! The leak report: what leaked, grouped by spawn site, and what to do about it. This file holds
//! the model and its text; [`hint`] reads the evidence of a site's stragglers and says what
//! usually fixes them.

pub(crate) mod dump;
pub(crate) mod export;
mod hint;

use std::collections::HashMap;
use std::fmt::{self, Display, Formatter};
use std::panic::Location;
#[cfg(test)]
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tracking::record::{Parent, TaskKind, TaskState};
use crate::tracking::TaskRecord;

/// Sites beyond this many are summed up in one line, so a huge leak stays readable.
const MAX_SITES: usize = 20;
/// Lines of a backtrace shown at most.
const MAX_TRACE_LINES: usize = 40;

/// One task still alive after the grace period.
#[derive(Clone)]
pub(crate) struct Straggler {
    /// Its record's number: which task it is, for cleanup to say what became of it.
    pub(crate) id: u64,
    pub(crate) site: &'static Location<'static>,
    pub(crate) name: Option<String>,
    /// Spawn sites of the ancestors, the test body's child first. `None` marks a cut.
    pub(crate) chain: Vec<Option<&'static Location<'static>>>,
    pub(crate) age: Option<Duration>,
    pub(crate) polls: u32,
    pub(crate) idle_for: Option<Duration>,
    pub(crate) state: TaskState,
    pub(crate) task_id: Option<tokio::task::Id>,
    /// Where it is stuck: its async backtrace from a task dump, where dumps are available, or
    /// [`dump::NO_TRACE`] when the dump holds none for it.
    pub(crate) trace: Option<String>,
    /// What cleanup does with it.
    pub(crate) stop: StopOutcome,
    /// Spawned while leak-check stopped the other stragglers (from a `Drop`).
    pub(crate) late: bool,
    /// How many of its ancestors in a row were spawned at its own site: more than 0 for a task
    /// that re-spawns itself.
    pub(crate) respawns: u32,
    /// Not polled since the body ended (or since its spawn, if later).
    pub(crate) unpolled_since_body: bool,
}

/// What cleanup does with a straggler once it is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopOutcome {
    /// Aborted by leak-check: its future is dropped.
    Aborted,
    /// A plain task on a runtime leak-check built: dropped when that runtime shuts down.
    DroppedWithRuntime,
    /// Aborted, but not dropped by the end of cleanup: nothing has run it since (its runtime or
    /// `LocalSet` is blocked, or nobody drives it any more), and it is dropped if something
    /// does.
    AbortedNotRun,
    /// Nothing can stop it.
    CannotStop(Unstoppable),
}

/// Why a straggler cannot be stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Unstoppable {
    /// Inside a poll that does not return: a future is dropped only between polls.
    InPoll,
    /// A `spawn_blocking` closure that has started: tokio cannot abort it.
    BlockingClosure,
    /// A plain task on a runtime the test does not own: leak-check holds no handle to it, and
    /// does not shut that runtime down.
    NoHandle,
}

impl StopOutcome {
    /// What cleanup can do with a task of `kind` in `state`, as far as its record tells; the
    /// check, which knows more (whose runtime a plain task runs on), may say otherwise.
    pub(crate) fn likely(kind: TaskKind, state: TaskState) -> StopOutcome {
        match (kind, state) {
            (_, TaskState::StuckInPoll) => StopOutcome::CannotStop(Unstoppable::InPoll),
            (_, TaskState::Blocking) => StopOutcome::CannotStop(Unstoppable::BlockingClosure),
            (TaskKind::Plain, _) => StopOutcome::DroppedWithRuntime,
            _ => StopOutcome::Aborted,
        }
    }
}

/// A straggler's backtrace, as far as a task dump tells.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backtrace<'a> {
    Recorded(&'a str),
    /// The dump was taken, and tokio recorded nothing for the task.
    NoneRecorded,
}

impl Straggler {
    /// Describes a record held once by the caller (in a snapshot).
    pub(crate) fn describe(record: &Arc<TaskRecord>, now: Instant) -> Straggler {
        let activity = record.activity(now, 1);
        Straggler {
            id: record.id,
            site: record.origin.site,
            name: record.origin.name.as_deref().map(str::to_owned),
            chain: chain(&record.origin.parent),
            age: activity.age,
            polls: if record.kind == TaskKind::Blocking {
                0
            } else {
                activity.polls
            },
            idle_for: activity.idle_for,
            state: activity.state,
            task_id: record.task_id(),
            trace: None,
            stop: StopOutcome::likely(record.kind, activity.state),
            late: record.is_late(),
            respawns: record.origin.respawns,
            unpolled_since_body: activity.unpolled_since_mark,
        }
    }

    fn backtrace(&self) -> Option<Backtrace<'_>> {
        match self.trace.as_deref()? {
            dump::NO_TRACE => Some(Backtrace::NoneRecorded),
            trace => Some(Backtrace::Recorded(trace)),
        }
    }
}

/// Spawn sites of a task's ancestors, the test body's child first. `None` marks a cut.
fn chain(mut parent: &Parent) -> Vec<Option<&'static Location<'static>>> {
    let mut chain = Vec::new();
    loop {
        match parent {
            Parent::Body => break,
            Parent::Cut => {
                chain.push(None);
                break;
            }
            Parent::Task(origin) => {
                chain.push(Some(origin.site));
                parent = &origin.parent;
            }
        }
    }
    chain.reverse();
    chain
}

/// Why the report was made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportKind {
    /// Tasks were still alive when the grace period after the body ran out.
    Leak,
    /// The body itself did not finish within the test's timeout.
    Timeout(Duration),
}

/// Everything a leaking (or hanging) test reports.
pub(crate) struct LeakReport {
    pub(crate) kind: ReportKind,
    pub(crate) test: String,
    /// The checked helper (a sync `#[leak_check]` function without a test attribute) whose
    /// check this is, called by `test`.
    pub(crate) helper: Option<&'static str>,
    pub(crate) waited: Duration,
    pub(crate) stragglers: Vec<Straggler>,
    /// Alive tasks of the test's runtime that were not spawned through leak-check.
    pub(crate) untracked: usize,
    /// Of `untracked`: those spawned while cleanup stopped the check's tasks.
    pub(crate) untracked_late: usize,
    /// Stragglers left out because an allow-list names them (they are stopped all the same).
    pub(crate) allowed: usize,
    /// Plain `spawn_blocking` closures of the test's runtime still running after the body,
    /// counted from tokio's blocking-thread metrics (`tokio_unstable` only): no site is known.
    pub(crate) untracked_blocking: usize,
    /// Without `tokio_unstable`, the `untracked` tasks may have been spawned by the test's
    /// background work, which cannot be told apart from the test's own plain tasks.
    pub(crate) background_spawns_untracked: bool,
    /// The body panicked (its message was printed when it did), rather than returned.
    pub(crate) body_panicked: bool,
    /// The test's clock was paused, and the check resumed it to judge in real time.
    pub(crate) clock_resumed: bool,
}

impl LeakReport {
    pub(crate) fn is_empty(&self) -> bool {
        self.total() == 0
    }

    pub(crate) fn total(&self) -> usize {
        self.stragglers.len() + self.untracked + self.untracked_blocking
    }

    /// How the body ended, for "after the body ...".
    pub(crate) fn body_ended(&self) -> &'static str {
        if self.body_panicked {
            "panicked"
        } else {
            "returned"
        }
    }

    /// The stragglers by spawn site, the site with most tasks first.
    pub(crate) fn groups(&self) -> Vec<Group<'_>> {
        let mut by_site: HashMap<(&str, u32, u32), Group<'_>> = HashMap::new();
        for straggler in &self.stragglers {
            let key = (
                straggler.site.file(),
                straggler.site.line(),
                straggler.site.column(),
            );
            by_site
                .entry(key)
                .or_insert_with(|| Group {
                    site: straggler.site,
                    members: Vec::new(),
                })
                .members
                .push(straggler);
        }
        let mut groups: Vec<Group<'_>> = by_site.into_values().collect();
        groups.sort_by(|a, b| {
            b.members
                .len()
                .cmp(&a.members.len())
                .then_with(|| a.site.to_string().cmp(&b.site.to_string()))
        });
        groups
    }

    /// The last line: what cleanup did with each straggler, by outcome.
    fn footer(&self) -> String {
        let count =
            |outcome: StopOutcome| self.stragglers.iter().filter(|s| s.stop == outcome).count();
        let aborted = count(StopOutcome::Aborted);
        let not_run = count(StopOutcome::AbortedNotRun);
        let dropped = count(StopOutcome::DroppedWithRuntime) + self.untracked;
        let mut unstoppable: Vec<(Unstoppable, usize)> = [
            Unstoppable::InPoll,
            Unstoppable::BlockingClosure,
            Unstoppable::NoHandle,
        ]
        .into_iter()
        .map(|why| (why, count(StopOutcome::CannotStop(why))))
        .collect();
        unstoppable[1].1 += self.untracked_blocking;
        unstoppable.retain(|(_, n)| *n > 0);

        let mut parts = Vec::new();
        if aborted > 0 {
            parts.push(format!("leak-check aborted {}", plural(aborted, "task")));
        } else if not_run == 0 {
            parts.push("leak-check aborted none of them".to_owned());
        }
        if not_run > 0 {
            let (them, they_are) = if not_run == 1 {
                ("it", "it is")
            } else {
                ("them", "they are")
            };
            let aborted_them = if aborted > 0 {
                format!(
                    "{not_run} more {}",
                    if not_run == 1 {
                        "was aborted"
                    } else {
                        "were aborted"
                    }
                )
            } else {
                format!("leak-check aborted {}", plural(not_run, "task"))
            };
            parts.push(format!(
                "{aborted_them}, but nothing runs {them} any more, so {they_are} not dropped (a \
                 runtime or LocalSet that is blocked, or no longer driven)"
            ));
        }
        if dropped > 0 {
            parts.push(if dropped == 1 {
                "1 is dropped when its runtime shuts down".to_owned()
            } else {
                format!("{dropped} are dropped when their runtime shuts down")
            });
        }
        let cannot: usize = unstoppable.iter().map(|(_, n)| n).sum();
        if cannot > 0 {
            let why = match unstoppable.as_slice() {
                [(why, n)] => why.all(*n).to_owned(),
                several => several
                    .iter()
                    .map(|(why, n)| why.some(*n))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            parts.push(format!("{cannot} cannot be stopped: {why}"));
        }
        let closures = unstoppable
            .iter()
            .any(|(why, _)| *why == Unstoppable::BlockingClosure);
        format!(
            "{}{}.",
            parts.join("; "),
            if closures {
                " (a running closure cannot be aborted)"
            } else {
                ""
            }
        )
    }
}

impl Unstoppable {
    /// Why, said of all `n` tasks that cannot be stopped.
    fn all(self, n: usize) -> &'static str {
        match (self, n) {
            (Unstoppable::InPoll, 1) => {
                "it is stuck inside a poll (a future is dropped only once its poll returns)"
            }
            (Unstoppable::InPoll, _) => {
                "they are stuck inside a poll (a future is dropped only once its poll returns)"
            }
            (Unstoppable::BlockingClosure, 1) => "its spawn_blocking closure has not returned",
            (Unstoppable::BlockingClosure, _) => "their spawn_blocking closures have not returned",
            (Unstoppable::NoHandle, 1) => {
                "it is a plain task on a runtime the test does not own (leak-check has no handle \
                 to abort it)"
            }
            (Unstoppable::NoHandle, _) => {
                "they are plain tasks on a runtime the test does not own (leak-check has no handle \
                 to abort them)"
            }
        }
    }

    /// Why, said of `n` of the tasks that cannot be stopped, beside others.
    fn some(self, n: usize) -> String {
        match (self, n) {
            (Unstoppable::InPoll, 1) => "1 is stuck inside a poll".to_owned(),
            (Unstoppable::InPoll, n) => format!("{n} are stuck inside a poll"),
            (Unstoppable::BlockingClosure, 1) => {
                "1 is a spawn_blocking closure that has not returned".to_owned()
            }
            (Unstoppable::BlockingClosure, n) => {
                format!("{n} are spawn_blocking closures that have not returned")
            }
            (Unstoppable::NoHandle, 1) => {
                "1 is a plain task on a runtime the test does not own".to_owned()
            }
            (Unstoppable::NoHandle, n) => {
                format!("{n} are plain tasks on a runtime the test does not own")
            }
        }
    }
}

pub(crate) struct Group<'a> {
    pub(crate) site: &'static Location<'static>,
    pub(crate) members: Vec<&'a Straggler>,
}

impl Group<'_> {
    /// How many members are in each state, most first.
    pub(crate) fn states(&self) -> Vec<(TaskState, usize)> {
        let mut states: Vec<(TaskState, usize)> = Vec::new();
        for straggler in &self.members {
            match states
                .iter_mut()
                .find(|(state, _)| *state == straggler.state)
            {
                Some((_, n)) => *n += 1,
                None => states.push((straggler.state, 1)),
            }
        }
        states.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        states
    }

    /// The distinct task names, sorted.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .members
            .iter()
            .filter_map(|s| s.name.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The most ancestors in a row spawned at this site, over the members: more than 0 when
    /// its tasks re-spawn themselves.
    fn respawns(&self) -> u32 {
        self.members.iter().map(|s| s.respawns).max().unwrap_or(0)
    }

    /// The backtrace to show: a recorded one if any member has one.
    fn backtrace(&self) -> Option<Backtrace<'_>> {
        let backtraces = self.members.iter().filter_map(|s| s.backtrace());
        backtraces
            .clone()
            .find(|b| matches!(b, Backtrace::Recorded(_)))
            .or_else(|| backtraces.clone().next())
    }
}

impl Display for LeakReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.kind {
            ReportKind::Leak => {
                // A helper's caller is known by its thread's name, which libtest gives a test's
                // thread.
                let who = match self.helper {
                    None => format!("test `{}`", self.test),
                    Some(helper) => format!("checked helper `{helper}`, called by `{}`,", self.test),
                };
                writeln!(
                    f,
                    "leak-check: {who} leaked {} (still alive {} after the body {})",
                    plural(self.total(), "task"),
                    Human(self.waited),
                    self.body_ended()
                )?
            }
            ReportKind::Timeout(limit) => writeln!(
                f,
                "leak-check: test `{}` did not finish within {}; {} still alive when it was stopped",
                self.test,
                Human(limit),
                plural(self.total(), "task"),
            )?,
        }
        let groups = self.groups();
        for group in groups.iter().take(MAX_SITES) {
            writeln!(f)?;
            write!(f, "{group}")?;
        }
        if groups.len() > MAX_SITES {
            let rest = &groups[MAX_SITES..];
            let tasks: usize = rest.iter().map(|g| g.members.len()).sum();
            writeln!(f)?;
            writeln!(
                f,
                "  and {} more sites with {}",
                rest.len(),
                plural(tasks, "task")
            )?;
        }
        if self.untracked > 0 {
            writeln!(f)?;
            self.write_untracked(f)?;
        }
        if self.untracked_blocking > 0 {
            writeln!(f)?;
            let n = self.untracked_blocking;
            writeln!(
                f,
                "  {} started with plain `spawn_blocking` still {} after the body (counted from \
                 tokio's blocking threads, so {} unknown)",
                plural(n, "blocking closure"),
                if n == 1 { "runs" } else { "run" },
                if n == 1 {
                    "its spawn site is"
                } else {
                    "their spawn sites are"
                },
            )?;
            writeln!(
                f,
                "      hint: spawn it with leak_check::spawn_blocking to see its site; make the \
                 closure return before the test ends (pass it a stop flag, an AtomicBool or a \
                 channel, that it checks, and set it)"
            )?;
        }
        if self.clock_resumed {
            writeln!(f)?;
            writeln!(
                f,
                "  (the test's clock was paused: leak-check resumed it to judge in real time, so \
                 a timer due later in paused time had only the grace period, in real time, to \
                 fire)"
            )?;
        }
        if self.allowed > 0 {
            writeln!(f)?;
            writeln!(
                f,
                "  ({} left out by an allow-list, and stopped all the same)",
                plural(self.allowed, "straggler")
            )?;
        }
        writeln!(f)?;
        write!(f, "{}", self.footer())
    }
}

impl LeakReport {
    /// The line for tasks counted by tokio but not tracked, and what to do about them.
    fn write_untracked(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let n = self.untracked;
        writeln!(
            f,
            "  {} spawned with plain `tokio::spawn` (or `Handle::spawn`, `JoinSet::spawn`), by the \
             test or by a dependency, still alive; {} unknown",
            plural(n, "task"),
            if n == 1 {
                "its spawn site is"
            } else {
                "their spawn sites are"
            },
        )?;
        write_spawned_during_cleanup(f, self.untracked_late, n)?;
        if self.background_spawns_untracked {
            let (them, not_leaks) = if n == 1 {
                ("it", "it may not be a leak")
            } else {
                ("them", "they may not be leaks")
            };
            writeln!(
                f,
                "      the test's background work (leak_check::spawn_background) may have spawned \
                 {them}: without --cfg tokio_unstable, plain tasks it spawns cannot be told apart \
                 from the test's own, so {not_leaks} of the test"
            )?;
            writeln!(
                f,
                "      hint: spawn {them} with leak_check::spawn (what background work spawns that \
                 way is background work too), or build the tests with RUSTFLAGS=\"--cfg \
                 tokio_unstable\", where tokio's hooks tell the plain tasks of background work \
                 apart"
            )
        } else {
            let see_sites = if cfg!(tokio_unstable) {
                ""
            } else {
                "; build the tests with RUSTFLAGS=\"--cfg tokio_unstable\" to see where each was \
                 spawned"
            };
            writeln!(
                f,
                "      hint: spawn your own with leak_check::spawn (a drop-in for tokio::spawn) to \
                 have them checked by site{see_sites}; if a dependency spawns them and they are \
                 expected, allow them with #[leak_check(allow_untracked = true)] on the test, or \
                 LEAK_CHECK_ALLOW_UNTRACKED=1 for the run"
            )
        }
    }
}

/// Says how many of `of` tasks were spawned while cleanup stopped the check's tasks: by a
/// stopped task's `Drop`, or by a task not stopped yet (one stuck in a poll, one that re-spawns
/// itself).
fn write_spawned_during_cleanup(f: &mut Formatter<'_>, late: usize, of: usize) -> fmt::Result {
    const SPAWNED: &str =
        "spawned while the stragglers were being stopped (from a Drop, or by a task still running)";
    if late == 0 {
        Ok(())
    } else if late == of {
        writeln!(f, "      {SPAWNED}")
    } else {
        writeln!(f, "      {late} of them {SPAWNED}")
    }
}

impl Display for Group<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.write_heading(f)?;
        self.write_ancestry(f)?;
        self.write_late(f)?;
        self.write_activity(f)?;
        self.write_states(f)?;
        let trace = match self.backtrace() {
            Some(Backtrace::Recorded(trace)) => Some(dump::tidy(trace, self.site.file())),
            _ => None,
        };
        let awaits = trace
            .as_deref()
            .map(dump::innermost_awaits)
            .unwrap_or_default();
        write_awaits(f, &awaits)?;
        self.write_trace(f, trace.as_deref())?;
        for hint in hint::hints(self, &awaits) {
            writeln!(f, "      hint: {hint}")?;
        }
        Ok(())
    }
}

/// The lines of a site's entry, in the order [`Group`]'s `Display` writes them.
impl Group<'_> {
    /// How many tasks, where they were spawned, and their first names.
    fn write_heading(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let count = self.members.len();
        write!(f, "  {} spawned at {}", plural(count, "task"), self.site)?;
        let names = self.names();
        for name in names.iter().take(3) {
            write!(f, " {name:?}")?;
        }
        if names.len() > 3 {
            write!(f, " and {} more names", names.len() - 3)?;
        }
        writeln!(f)
    }

    /// The first member's spawn chain, and how many members came by another one.
    fn write_ancestry(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let first = self.members[0];
        write!(f, "      spawned by: test body")?;
        write_chain(f, &first.chain)?;
        let other_chains = self
            .members
            .iter()
            .filter(|s| s.chain != first.chain)
            .count();
        if other_chains > 0 {
            write!(f, " (and {} by other chains)", plural(other_chains, "task"))?;
        }
        writeln!(f)
    }

    /// Which members were spawned during cleanup, if any.
    fn write_late(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let late = self.members.iter().filter(|s| s.late).count();
        write_spawned_during_cleanup(f, late, self.members.len())
    }

    /// Age, polls and idle time, as ranges over the members.
    fn write_activity(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let polls = Range::of(self.members.iter().map(|s| s.polls));
        let age = Range::of(self.members.iter().filter_map(|s| s.age));
        match (age, polls) {
            (Some(age), _) => write!(f, "      age {}", age.map(Human))?,
            (None, Some(Range { max: 0, .. })) => write!(f, "      not started yet")?,
            // Polled, but no poll has returned yet: the first one is still running.
            (None, _) => write!(f, "      still in its first poll")?,
        }
        // A blocking closure is never polled: it has no polls or idle time to tell.
        if self.members[0].state != TaskState::Blocking {
            match polls {
                Some(Range { max: 0, .. }) | None => {}
                Some(Range { min: 1, max: 1 }) => write!(f, ", polled once")?,
                Some(polls) => write!(f, ", polled {polls} times")?,
            }
            if let Some(idle) = Range::of(self.members.iter().filter_map(|s| s.idle_for)) {
                write!(f, ", idle for {}", idle.map(Human))?;
            }
        }
        writeln!(f)
    }

    /// The members' states and what each means, or, for a task that re-spawns itself, that.
    fn write_states(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let states = self.states();
        let respawns = self.respawns();
        if respawns > 0 {
            // Each generation is alive because the one before spawned it: what the newest is
            // waiting for says nothing about whether the chain goes on.
            return writeln!(
                f,
                "      it re-spawns itself: each generation spawns the next at this site ({} before \
                 this one); the newest is {}",
                plural(respawns as usize, "generation"),
                newest(states[0].0)
            );
        }
        let count = self.members.len();
        for (state, n) in &states {
            let who = if count == 1 {
                String::new()
            } else {
                format!("{n} ")
            };
            writeln!(
                f,
                "      {who}{}: {}",
                state_name(*state),
                state_meaning(*state)
            )?;
        }
        Ok(())
    }

    /// The tidied backtrace, at most [`MAX_TRACE_LINES`] of it, or that the dump recorded none.
    fn write_trace(&self, f: &mut Formatter<'_>, trace: Option<&str>) -> fmt::Result {
        match (trace, self.backtrace()) {
            (Some(trace), _) => {
                writeln!(
                    f,
                    "      where it is stuck (async backtrace of one of them):"
                )?;
                for line in trace.lines().take(MAX_TRACE_LINES) {
                    writeln!(f, "        {line}")?;
                }
                if trace.lines().count() > MAX_TRACE_LINES {
                    writeln!(f, "        ...")?;
                }
            }
            (None, Some(Backtrace::NoneRecorded)) => writeln!(f, "      {}", dump::NO_TRACE)?,
            (None, _) => {}
        }
        Ok(())
    }
}

/// What the backtrace's innermost frames await, with where in the task's code.
fn write_awaits(f: &mut Formatter<'_>, awaits: &[dump::Await]) -> fmt::Result {
    match awaits {
        [] => {}
        [one] => match &one.at {
            Some(at) => writeln!(f, "      innermost await: {} at {at}", one.what.describe())?,
            None => writeln!(f, "      innermost await: {}", one.what.describe())?,
        },
        several => {
            // Branches of one select! share their place in the task's code: said once.
            let shared = several[0]
                .at
                .as_ref()
                .filter(|at| several.iter().all(|a| a.at.as_ref() == Some(*at)));
            let whats: Vec<String> = several
                .iter()
                .map(|a| match (&a.at, shared) {
                    (Some(at), None) => format!("{} at {at}", a.what.describe()),
                    _ => a.what.describe().to_owned(),
                })
                .collect();
            write!(f, "      innermost awaits: {}", whats.join("; "))?;
            match shared {
                Some(at) => writeln!(f, " (all at {at})")?,
                None => writeln!(f)?,
            }
        }
    }
    Ok(())
}

/// The links of a spawn chain after "test body", a run of ancestors spawned at one site (a task
/// that re-spawns itself) written once with its length.
fn write_chain(f: &mut Formatter<'_>, chain: &[Option<&'static Location<'static>>]) -> fmt::Result {
    let mut links = chain.iter().peekable();
    while let Some(link) = links.next() {
        match link {
            None => write!(f, " -> ... (older ancestors not kept)")?,
            Some(site) => {
                let mut run = 1;
                while links.next_if(|next| **next == Some(*site)).is_some() {
                    run += 1;
                }
                if run == 1 {
                    write!(f, " -> task spawned at {site}")?;
                } else {
                    write!(f, " -> {run} generations spawned at {site}")?;
                }
            }
        }
    }
    Ok(())
}

/// The newest generation of a task that re-spawns itself, by its state.
fn newest(state: TaskState) -> &'static str {
    match state {
        TaskState::Stranded | TaskState::Waiting | TaskState::Pending => "pending",
        TaskState::Busy => "busy, polled again and again",
        TaskState::Runnable => "runnable, waiting for a worker",
        TaskState::StuckInPoll => "inside a poll",
        TaskState::Blocking => "a blocking closure still running",
    }
}

pub(crate) fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Stranded => "stranded",
        TaskState::Waiting => "waiting",
        TaskState::Busy => "busy",
        TaskState::Runnable => "runnable",
        TaskState::StuckInPoll => "stuck in poll",
        TaskState::Blocking => "blocking",
        TaskState::Pending => "pending",
    }
}

fn state_meaning(state: TaskState) -> &'static str {
    match state {
        TaskState::Stranded => {
            "pending, and no waker for it is held anywhere, so nothing can ever wake it"
        }
        TaskState::Waiting => {
            "pending; a waker is held (by a channel, timer, socket, Notify...) but nothing woke it"
        }
        TaskState::Busy => "polled again and again during the grace period: it keeps running",
        TaskState::Runnable => "woken, and waiting for a worker to poll it",
        TaskState::StuckInPoll => {
            "inside a poll that has not returned: a blocking call in async code"
        }
        TaskState::Blocking => "a spawn_blocking closure that has not returned",
        TaskState::Pending => {
            "not woken since its last poll; spawned with plain tokio::spawn, so whether anything \
             holds its waker is not known"
        }
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration as a person reads it in a log.
struct Human(Duration);

impl Display for Human {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_millis(1) {
            write!(f, "{} µs", d.as_micros())
        } else if d < Duration::from_secs(1) {
            write!(f, "{} ms", d.as_millis())
        } else {
            write!(f, "{:.2} s", d.as_secs_f64())
        }
    }
}

/// The smallest and largest of some values, shown as one value when they agree.
#[derive(Clone, Copy)]
struct Range<T> {
    min: T,
    max: T,
}

impl<T: Copy + Ord> Range<T> {
    fn of(values: impl Iterator<Item = T>) -> Option<Range<T>> {
        values.fold(None, |range, v| match range {
            None => Some(Range { min: v, max: v }),
            Some(r) => Some(Range {
                min: r.min.min(v),
                max: r.max.max(v),
            }),
        })
    }
}

impl<T: Copy> Range<T> {
    fn map<U>(self, f: impl Fn(T) -> U) -> Range<U> {
        Range {
            min: f(self.min),
            max: f(self.max),
        }
    }
}

impl<T: Display> Display for Range<T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (min, max) = (self.min.to_string(), self.max.to_string());
        if min == max {
            write!(f, "{min}")
        } else {
            write!(f, "{min} to {max}")
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::allow::AllowList;

    /// A straggler spawned by the test body at the caller's line, in `state`, as the check
    /// describes a tracked async task.
    #[track_caller]
    pub(in crate::report) fn straggler(state: TaskState) -> Straggler {
        Straggler {
            id: 0,
            site: Location::caller(),
            name: None,
            chain: Vec::new(),
            age: Some(Duration::from_millis(100)),
            polls: 1,
            idle_for: Some(Duration::from_millis(100)),
            state,
            task_id: None,
            trace: None,
            stop: StopOutcome::likely(TaskKind::Async, state),
            late: false,
            respawns: 0,
            unpolled_since_body: false,
        }
    }

    /// A task spawned with plain `tokio::spawn`, seen through tokio's hooks.
    #[track_caller]
    fn plain() -> Straggler {
        Straggler {
            stop: StopOutcome::likely(TaskKind::Plain, TaskState::Pending),
            ..straggler(TaskState::Pending)
        }
    }

    fn report(stragglers: Vec<Straggler>) -> LeakReport {
        LeakReport {
            kind: ReportKind::Leak,
            test: "t".into(),
            helper: None,
            waited: Duration::from_millis(100),
            stragglers,
            untracked: 0,
            untracked_late: 0,
            allowed: 0,
            untracked_blocking: 0,
            background_spawns_untracked: false,
            body_panicked: false,
            clock_resumed: false,
        }
    }

    /// The report's text, checked for a word said twice in a row ("pending: pending").
    fn render(report: &LeakReport) -> String {
        let text = report.to_string();
        let words: Vec<String> = text
            .split_whitespace()
            .map(|word| {
                word.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|word| word.chars().any(char::is_alphabetic))
            .collect();
        for pair in words.windows(2) {
            assert_ne!(pair[0], pair[1], "a doubled word in:\n{text}");
        }
        text
    }

    /// The hint lines of a report.
    fn hints(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|line| line.trim_start().strip_prefix("hint: "))
            .collect()
    }

    /// A backtrace as tokio prints it: the task's closure, in this file under the absolute
    /// folder `/ws`, awaiting the futures `names` (root first), each a level deeper.
    fn trace(line: u32, names: &[&str]) -> String {
        let mut lines = vec![format!(
            "╼ app::worker::{{{{closure}}}} at /ws/{}:{line}:9",
            file!()
        )];
        for (i, name) in names.iter().enumerate() {
            let depth = i + 1;
            lines.push(format!(
                "{}└╼ {name} at /root/.cargo/registry/src/index.crates.io-1/tokio-1.54.1/src/x.rs:1:1",
                " ".repeat(3 * depth - 1)
            ));
        }
        lines.join("\n")
    }

    #[track_caller]
    fn traced(state: TaskState, line: u32, names: &[&str]) -> Straggler {
        Straggler {
            trace: Some(trace(line, names)),
            ..straggler(state)
        }
    }

    #[test]
    fn no_state_is_said_with_a_word_twice() {
        let states = [
            TaskState::Stranded,
            TaskState::Waiting,
            TaskState::Busy,
            TaskState::Runnable,
            TaskState::StuckInPoll,
            TaskState::Blocking,
            TaskState::Pending,
        ];
        for state in states {
            let one = render(&report(vec![straggler(state)]));
            assert!(one.contains(&format!("{}: ", state_name(state))), "{one}");
            let site = straggler(state).site;
            let two = render(&report(vec![
                Straggler {
                    site,
                    ..straggler(state)
                },
                Straggler {
                    site,
                    ..straggler(state)
                },
            ]));
            assert!(two.contains(&format!("2 {}: ", state_name(state))), "{two}");
        }
        let text = render(&report(vec![plain()]));
        assert!(!text.contains("pending: pending"), "{text}");
        assert!(
            text.contains("pending: not woken since its last poll"),
            "{text}"
        );
    }

    #[test]
    fn the_spawn_site_leads_each_entry() {
        let s = straggler(TaskState::Waiting);
        let text = render(&report(vec![s.clone()]));
        let entry = text.lines().nth(2).unwrap();
        assert_eq!(entry, format!("  1 task spawned at {}", s.site));
    }

    #[test]
    fn a_ticker_is_told_about_its_loop_not_a_message() {
        // Without a backtrace: busy, polled every ~10 ms.
        let ticker = Straggler {
            polls: 11,
            age: Some(Duration::from_millis(102)),
            idle_for: Some(Duration::from_millis(10)),
            ..straggler(TaskState::Busy)
        };
        let text = render(&report(vec![ticker]));
        let hint = hints(&text).join("\n");
        assert!(hint.contains("polled about every 9 ms"), "{text}");
        assert!(
            hint.contains("a timer loop (a ticker, a retry loop) that never ends"),
            "{text}"
        );
        assert!(hint.contains("token.cancelled()"), "{text}");
        assert!(!text.contains("message"), "{text}");

        // With one: an interval's tick, whatever the state says (a slow interval looks
        // waiting during a short grace period).
        for state in [TaskState::Waiting, TaskState::Busy] {
            let s = traced(
                state,
                7,
                &[
                    "tokio::time::interval::Interval::tick",
                    "<tokio::time::sleep::Sleep as core::future::future::Future>",
                ],
            );
            let text = render(&report(vec![s]));
            assert!(
                text.contains(&format!(
                    "innermost await: an interval's `tick` at {}:7:9",
                    file!()
                )),
                "{text}"
            );
            assert!(
                hints(&text)[0].starts_with("a loop on an interval never ends by itself"),
                "{text}"
            );
            assert!(!text.contains("message"), "{text}");
        }
    }

    #[test]
    fn each_innermost_await_gets_what_releases_it() {
        let cases: &[(&[&str], &str, &str)] = &[
            (
                &["tokio::sync::mpsc::bounded::Receiver<T>::recv"],
                "a channel receive (mpsc `recv`)",
                "drop the last sender (or close the channel)",
            ),
            (
                &["tokio::sync::broadcast::Receiver<T>::recv"],
                "a channel receive (broadcast `recv`)",
                "drop the last sender (or close the channel)",
            ),
            (
                &["tokio::sync::watch::Receiver<T>::changed"],
                "a channel receive (watch `changed`)",
                "drop the watch::Sender",
            ),
            (
                &["<tokio::sync::oneshot::Receiver<T> as core::future::future::Future>"],
                "a channel receive (a oneshot receiver)",
                "drop the oneshot::Sender",
            ),
            (
                &["<tokio::sync::notify::Notified as core::future::future::Future>"],
                "`Notify::notified`",
                "call notify_one or notify_waiters",
            ),
            (
                &["<tokio::time::sleep::Sleep as core::future::future::Future>"],
                "a `sleep`",
                "it sleeps (a long sleep, or the pause of a retry or polling loop)",
            ),
            (
                &["tokio::net::tcp::listener::TcpListener::poll_accept"],
                "a listener's `accept`",
                "leak_check::spawn_background",
            ),
            (
                &["<tokio::runtime::task::join::JoinHandle<T> as core::future::future::Future>"],
                "another task's `JoinHandle`",
                "it awaits another task, which is itself leaking or never ends",
            ),
        ];
        for (names, what, release) in cases {
            let text = render(&report(vec![traced(TaskState::Waiting, 3, names)]));
            assert!(
                text.contains(&format!("innermost await: {what} at {}:3:9", file!())),
                "{text}"
            );
            assert!(text.contains("where it is stuck"), "{text}");
            assert!(hints(&text)[0].contains(release), "{text}");
            // The evidence replaces the guesswork.
            assert!(!text.contains("a message (drop"), "{text}");
        }
        // A select! over a channel and a timer: both named, one cancellation branch asked for.
        let select = format!(
            "{}\n     ├╼ <tokio::time::sleep::Sleep as core::future::future::Future> at x.rs:1:1\n     └╼ tokio::sync::mpsc::bounded::Receiver<T>::recv at x.rs:1:1",
            trace(5, &["<core::future::poll_fn::PollFn<F> as core::future::future::Future>"])
        );
        let s = Straggler {
            trace: Some(select),
            ..straggler(TaskState::Waiting)
        };
        let text = render(&report(vec![s]));
        assert!(
            text.contains(&format!(
                "innermost awaits: a `sleep`; a channel receive (mpsc `recv`) (all at {0}:5:9)",
                file!()
            )),
            "{text}"
        );
        assert!(
            hints(&text)[0].starts_with("its select! (or join) awaits 2 at once"),
            "{text}"
        );
    }

    #[test]
    fn a_select_whose_token_is_never_cancelled_is_told_to_cancel_it() {
        let select = format!(
            "{}\n     ├╼ <tokio_util::sync::cancellation_token::WaitForCancellationFuture as \
             core::future::future::Future> at x.rs:1:1\n     └╼ <tokio::time::sleep::Sleep as \
             core::future::future::Future> at x.rs:1:1",
            trace(
                6,
                &["<core::future::poll_fn::PollFn<F> as core::future::future::Future>"]
            )
        );
        let s = Straggler {
            trace: Some(select),
            ..straggler(TaskState::Busy)
        };
        let text = render(&report(vec![s]));
        assert!(
            hints(&text)[0].starts_with(
                "its select! has a cancellation branch (`token.cancelled()`), but nothing cancels \
                 the token"
            ),
            "{text}"
        );
        // Awaits in different places of the task's code are each given theirs.
        let join = format!(
            "╼ app::f::{{{{closure}}}} at /ws/{0}:1:1\n  ├╼ app::a at /ws/{0}:2:1\n  │  └╼ \
             tokio::sync::notify::Notified at x.rs:1:1\n  └╼ app::b at /ws/{0}:3:1\n     └╼ \
             tokio::sync::oneshot::Receiver<T> at x.rs:1:1",
            file!()
        );
        let s = Straggler {
            trace: Some(join),
            ..straggler(TaskState::Waiting)
        };
        let text = render(&report(vec![s]));
        assert!(
            text.contains(&format!(
                "innermost awaits: `Notify::notified` at {0}:2:1; a channel receive (a oneshot \
                 receiver) at {0}:3:1\n",
                file!()
            )),
            "{text}"
        );
    }

    #[test]
    fn how_to_see_the_await_is_said_where_it_is_guessed() {
        let how = |text: &str| {
            hints(text)
                .iter()
                .any(|hint| hint.starts_with("to see what it awaits, run the tests with"))
        };
        let guessed = render(&report(vec![straggler(TaskState::Waiting)]));
        assert_eq!(how(&guessed), !dump::ENABLED, "{guessed}");
        let deeper_plain = Straggler {
            chain: vec![Some(Location::caller())],
            ..plain()
        };
        let guessed = render(&report(vec![deeper_plain]));
        assert_eq!(how(&guessed), !dump::ENABLED, "{guessed}");
        // Not where the evidence is there, or a trace would not help.
        for known in [
            traced(TaskState::Waiting, 1, &["tokio::sync::notify::Notified"]),
            straggler(TaskState::Blocking),
            straggler(TaskState::Busy),
        ] {
            let text = render(&report(vec![known]));
            assert!(!how(&text), "{text}");
        }
    }

    #[test]
    fn a_timed_out_body_is_said_so() {
        let mut timed_out = report(vec![straggler(TaskState::Waiting)]);
        timed_out.kind = ReportKind::Timeout(Duration::from_secs(30));
        let text = render(&timed_out);
        assert!(
            text.starts_with(
                "leak-check: test `t` did not finish within 30.00 s; 1 task still alive when it \
                 was stopped\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("leak-check aborted 1 task."), "{text}");
    }

    #[test]
    fn a_dump_without_a_trace_for_the_task_says_so() {
        let s = Straggler {
            trace: Some(dump::NO_TRACE.to_owned()),
            ..straggler(TaskState::Waiting)
        };
        let text = render(&report(vec![s]));
        assert!(
            text.contains(
                "      no async backtrace: tokio recorded none for this task (it happens for some \
                 leaf futures, e.g. accept or pending())"
            ),
            "{text}"
        );
        assert!(!text.contains("where it is stuck"), "{text}");
        // No dump taken (none is taken without taskdump, or it timed out): nothing said.
        let text = render(&report(vec![straggler(TaskState::Waiting)]));
        assert!(!text.contains("async backtrace"), "{text}");
        // A member with a trace is shown before one without.
        let site = straggler(TaskState::Waiting).site;
        let with = traced(TaskState::Waiting, 2, &["tokio::sync::notify::Notified"]);
        let without = Straggler {
            trace: Some(dump::NO_TRACE.to_owned()),
            ..straggler(TaskState::Waiting)
        };
        let text = render(&report(vec![
            Straggler { site, ..without },
            Straggler { site, ..with },
        ]));
        assert!(text.contains("where it is stuck"), "{text}");
        assert!(!text.contains("no async backtrace"), "{text}");
    }

    #[test]
    fn without_a_trace_waiting_is_not_guessed_to_be_a_message() {
        let text = render(&report(vec![straggler(TaskState::Waiting)]));
        let hint = hints(&text)[0];
        assert!(
            hint.starts_with(
                "it waits for something that has not happened: a message (drop the last sender"
            ),
            "{text}"
        );
        assert!(
            hint.contains("a timer in a loop (give the loop a cancellation branch)"),
            "{text}"
        );
        assert!(hint.contains("Weak"), "{text}");
    }

    /// Each use of `leak_check::spawn` in `text` is `leak_check::spawn_background`.
    fn only_spawn_background(text: &str) -> bool {
        text.match_indices("leak_check::spawn")
            .all(|(at, _)| text[at..].starts_with("leak_check::spawn_background"))
    }

    #[test]
    fn a_plain_task_the_body_left_running_is_pointed_at_spawn_background() {
        let text = render(&report(vec![plain()]));
        assert!(
            hints(&text)[0]
                .starts_with("a task the test body left running: if it is a server or a ticker"),
            "{text}"
        );
        assert!(text.contains("leak_check::spawn_background"), "{text}");
        assert!(only_spawn_background(&text), "{text}");
        // Awaiting accept, at any depth: a server.
        let server = Straggler {
            chain: vec![Some(Location::caller())],
            trace: Some(trace(
                4,
                &["tokio::net::unix::listener::UnixListener::poll_accept"],
            )),
            ..plain()
        };
        let text = render(&report(vec![server]));
        assert!(
            hints(&text)[0].starts_with("a server loop: it awaits `accept`"),
            "{text}"
        );
        assert!(only_spawn_background(&text), "{text}");
        // Spawned deeper, with nothing to tell what it is: leak_check::spawn would say more.
        let deeper = Straggler {
            chain: vec![Some(Location::caller())],
            ..plain()
        };
        let text = render(&report(vec![deeper]));
        assert!(
            hints(&text)[0].contains("leak_check::spawn would tell"),
            "{text}"
        );
    }

    #[test]
    fn the_footer_says_what_became_of_each_straggler() {
        let aborted = || straggler(TaskState::Waiting);
        let dropped = plain;
        let in_poll = || straggler(TaskState::StuckInPoll);
        let closure = || straggler(TaskState::Blocking);
        let footer = |report: &LeakReport| render(report).lines().last().unwrap().to_owned();

        assert_eq!(
            footer(&report(vec![aborted()])),
            "leak-check aborted 1 task."
        );
        assert_eq!(
            footer(&report(vec![
                aborted(),
                aborted(),
                aborted(),
                dropped(),
                closure()
            ])),
            "leak-check aborted 3 tasks; 1 is dropped when its runtime shuts down; 1 cannot be \
             stopped: its spawn_blocking closure has not returned (a running closure cannot be \
             aborted)."
        );
        assert_eq!(
            footer(&report(vec![dropped(), dropped()])),
            "leak-check aborted none of them; 2 are dropped when their runtime shuts down."
        );
        assert_eq!(
            footer(&report(vec![in_poll(), in_poll()])),
            "leak-check aborted none of them; 2 cannot be stopped: they are stuck inside a poll \
             (a future is dropped only once its poll returns)."
        );
        let no_handle = Straggler {
            stop: StopOutcome::CannotStop(Unstoppable::NoHandle),
            ..plain()
        };
        assert_eq!(
            footer(&report(vec![aborted(), in_poll(), closure(), no_handle])),
            "leak-check aborted 1 task; 3 cannot be stopped: 1 is stuck inside a poll, 1 is a \
             spawn_blocking closure that has not returned, 1 is a plain task on a runtime the \
             test does not own (a running closure cannot be aborted)."
        );
        // Tasks only counted: plain ones go with their runtime, plain closures cannot be stopped.
        let mut counted = report(vec![]);
        counted.untracked = 2;
        counted.untracked_blocking = 1;
        assert_eq!(
            footer(&counted),
            "leak-check aborted none of them; 2 are dropped when their runtime shuts down; 1 \
             cannot be stopped: its spawn_blocking closure has not returned (a running closure \
             cannot be aborted)."
        );
    }

    #[test]
    fn a_task_that_re_spawns_itself_is_said_to() {
        let site = Location::caller();
        for state in [TaskState::Stranded, TaskState::Waiting, TaskState::Runnable] {
            let s = Straggler {
                site,
                chain: vec![None, Some(site), Some(site), Some(site)],
                respawns: 40,
                ..straggler(state)
            };
            let text = render(&report(vec![s]));
            assert!(
                text.contains(&format!(
                    "spawned by: test body -> ... (older ancestors not kept) -> 3 generations \
                     spawned at {site}\n"
                )),
                "{text}"
            );
            assert!(
                text.contains(
                    "it re-spawns itself: each generation spawns the next at this site (40 \
                     generations before this one)"
                ),
                "{text}"
            );
            assert!(hints(&text)[0].starts_with("break the cycle"), "{text}");
            assert!(!text.contains("nothing woke it"), "{text}");
            assert!(!text.contains("stranded"), "{text}");
            assert!(!text.contains("nothing can ever wake it"), "{text}");
        }
    }

    #[test]
    fn a_task_spawned_during_cleanup_is_labelled() {
        let site = Location::caller();
        let late = Straggler {
            site,
            late: true,
            ..straggler(TaskState::Waiting)
        };
        let text = render(&report(vec![late.clone()]));
        assert!(
            text.contains(
                "\n      spawned while the stragglers were being stopped (from a Drop, or by a task still running)\n"
            ),
            "{text}"
        );
        let on_time = Straggler {
            site,
            ..straggler(TaskState::Waiting)
        };
        let text = render(&report(vec![late, on_time]));
        assert!(
            text.contains(
                "\n      1 of them spawned while the stragglers were being stopped (from a Drop, or by a task still running)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn tasks_only_counted_are_told_apart_from_leak_check_spawn() {
        let mut counted = report(vec![]);
        counted.untracked = 3;
        let text = render(&counted);
        assert!(
            text.contains(
                "  3 tasks spawned with plain `tokio::spawn` (or `Handle::spawn`, \
                 `JoinSet::spawn`), by the test or by a dependency, still alive; their spawn \
                 sites are unknown"
            ),
            "{text}"
        );
        let hint = hints(&text)[0];
        assert!(
            hint.contains("spawn your own with leak_check::spawn"),
            "{text}"
        );
        assert!(
            hint.contains("allow them with #[leak_check(allow_untracked = true)] on the test, or LEAK_CHECK_ALLOW_UNTRACKED=1"),
            "{text}"
        );
        assert_eq!(
            hint.contains("--cfg tokio_unstable"),
            !cfg!(tokio_unstable),
            "{text}"
        );

        counted.background_spawns_untracked = true;
        let text = render(&counted);
        assert!(
            text.contains(
                "the test's background work (leak_check::spawn_background) may have spawned \
                 them: without --cfg tokio_unstable, plain tasks it spawns cannot be told apart \
                 from the test's own, so they may not be leaks of the test"
            ),
            "{text}"
        );
        assert!(
            hints(&text)[0].starts_with(
                "spawn them with leak_check::spawn (what background work spawns that way is \
                 background work too), or build the tests with RUSTFLAGS=\"--cfg tokio_unstable\""
            ),
            "{text}"
        );

        let mut closures = report(vec![]);
        closures.untracked_blocking = 1;
        let text = render(&closures);
        assert!(
            text.contains(
                "  1 blocking closure started with plain `spawn_blocking` still runs after the \
                 body (counted from tokio's blocking threads, so its spawn site is unknown)"
            ),
            "{text}"
        );
        assert!(
            hints(&text)[0].starts_with(
                "spawn it with leak_check::spawn_blocking to see its site; make the closure return"
            ),
            "{text}"
        );
        assert!(
            text.starts_with("leak-check: test `t` leaked 1 task "),
            "{text}"
        );
    }

    mod registry_crate {
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/registry/src/index.crates.io-0000000000000000/fake-dep-1.0.0/src/lib.rs"
        ));
    }

    mod path_dependency {
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/path-dep/src/lib.rs"
        ));
    }

    /// The `allow_sites` entry a report tells to paste, from its attribute and its variable.
    fn pasted_entry(text: &str) -> String {
        let hint = hints(text)
            .into_iter()
            .find(|hint| hint.starts_with("spawned inside a dependency"))
            .unwrap_or_else(|| panic!("no dependency hint in:\n{text}"));
        let quoted = hint
            .split_once("allow_sites = [")
            .and_then(|(_, rest)| rest.split_once("])]"))
            .unwrap()
            .0;
        let variable = hint
            .split_once("LEAK_CHECK_ALLOW_SITES='")
            .and_then(|(_, rest)| rest.split_once('\''))
            .unwrap()
            .0;
        // A Rust string literal with nothing to escape on Unix paths.
        let entry = quoted.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
        assert_eq!(entry, variable);
        entry.to_owned()
    }

    #[test]
    fn a_dependency_is_told_the_allow_sites_entry_that_matches_it() {
        for site in [registry_crate::here(), path_dependency::here()] {
            assert!(Path::new(site.file()).is_absolute(), "{site}");
            let text = render(&report(vec![Straggler { site, ..plain() }]));
            let hints = hints(&text);
            assert!(
                hints[0].starts_with("a task the dependency runs in the background"),
                "{text}"
            );
            let entry = pasted_entry(&text);
            let allow = AllowList {
                sites: vec![entry.clone()],
                ..AllowList::default()
            };
            assert!(allow.allows(site, None), "`{entry}` does not match {site}");
            // ... and only that package.
            assert!(
                !allow.allows(Location::caller(), None),
                "`{entry}` matches this file"
            );
            let other = if site.file().contains("fake-dep") {
                path_dependency::here()
            } else {
                registry_crate::here()
            };
            assert!(!allow.allows(other, None), "`{entry}` matches {other}");
        }
        let registry = render(&report(vec![Straggler {
            site: registry_crate::here(),
            ..plain()
        }]));
        assert_eq!(pasted_entry(&registry), "*/fake-dep-1.0.0/*");
        assert!(registry.contains("spawned inside a dependency (fake-dep-1.0.0); if it is expected, allow it: #[leak_check(allow_sites = [\"*/fake-dep-1.0.0/*\"])] on the test, or LEAK_CHECK_ALLOW_SITES='*/fake-dep-1.0.0/*' for the run"), "{registry}");
        // The user's own files get no such hint.
        let own = render(&report(vec![plain()]));
        assert!(!own.contains("inside a dependency"), "{own}");
    }
}
