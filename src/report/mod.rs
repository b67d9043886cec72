//! The leak report: what leaked, grouped by spawn site, and what to do about it.

pub(crate) mod export;

use std::collections::HashMap;
use std::fmt::{self, Display, Formatter};
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tracking::record::{Parent, TaskKind, TaskState};
use crate::tracking::TaskRecord;

/// Sites beyond this many are summed up in one line, so a huge leak stays readable.
const MAX_SITES: usize = 20;

/// One task still alive after the grace period.
#[derive(Clone)]
pub(crate) struct Straggler {
    pub(crate) site: &'static Location<'static>,
    pub(crate) name: Option<String>,
    /// Spawn sites of the ancestors, the test body's child first. `None` marks a cut.
    pub(crate) chain: Vec<Option<&'static Location<'static>>>,
    pub(crate) age: Option<Duration>,
    pub(crate) polls: u32,
    pub(crate) idle_for: Option<Duration>,
    pub(crate) state: TaskState,
    pub(crate) task_id: Option<tokio::task::Id>,
    /// Where it is stuck: its async backtrace, where task dumps are available.
    pub(crate) trace: Option<String>,
}

impl Straggler {
    /// Describes a record held once by the caller (in a snapshot).
    pub(crate) fn describe(record: &Arc<TaskRecord>, now: Instant) -> Straggler {
        let activity = record.activity(now, 1);
        Straggler {
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
    pub(crate) waited: Duration,
    pub(crate) stragglers: Vec<Straggler>,
    /// Alive tasks of the test's runtime that were not spawned through leak-check.
    pub(crate) untracked: usize,
    /// Stragglers left out because an allow-list names them (they are aborted all the same).
    pub(crate) allowed: usize,
}

impl LeakReport {
    pub(crate) fn is_empty(&self) -> bool {
        self.stragglers.is_empty() && self.untracked == 0
    }

    pub(crate) fn total(&self) -> usize {
        self.stragglers.len() + self.untracked
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
}

impl Display for LeakReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.kind {
            ReportKind::Leak => writeln!(
                f,
                "leak-check: test `{}` leaked {} (still alive {} after the body returned)",
                self.test,
                plural(self.total(), "task"),
                Human(self.waited)
            )?,
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
            writeln!(
                f,
                "  {} spawned with plain `tokio::spawn` (or `Handle::spawn`, `JoinSet::spawn`), so {} unknown",
                plural(self.untracked, "task"),
                if self.untracked == 1 { "its spawn site is" } else { "their spawn sites are" },
            )?;
            writeln!(
                f,
                "      hint: spawn with `leak_check::spawn` (a drop-in for `tokio::spawn`), or build the tests with RUSTFLAGS=\"--cfg tokio_unstable\", to see where each was spawned"
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
        let running_closures = self
            .stragglers
            .iter()
            .filter(|s| s.state == TaskState::Blocking)
            .count();
        let plain = self
            .stragglers
            .iter()
            .filter(|s| s.state == TaskState::Pending)
            .count();
        let mut exceptions = Vec::new();
        if running_closures > 0 {
            exceptions.push(format!(
                "{} (a running closure cannot be aborted)",
                plural(running_closures, "spawn_blocking task")
            ));
        }
        if plain > 0 {
            exceptions.push(format!(
                "{} (dropped when its runtime shuts down, right after this)",
                plural(plain, "plain task")
            ));
        }
        if exceptions.is_empty() {
            write!(f, "leak-check aborted these tasks.")
        } else {
            write!(
                f,
                "leak-check aborted these tasks, except {}.",
                exceptions.join(" and ")
            )
        }
    }
}

impl Display for Group<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let count = self.members.len();
        write!(f, "  {} spawned at {}", plural(count, "task"), self.site)?;
        let names = self.names();
        for name in names.iter().take(3) {
            write!(f, " {name:?}")?;
        }
        if names.len() > 3 {
            write!(f, " and {} more names", names.len() - 3)?;
        }
        writeln!(f)?;

        let first = self.members[0];
        write!(f, "      spawned by: test body")?;
        for link in &first.chain {
            match link {
                Some(site) => write!(f, " -> task spawned at {site}")?,
                None => write!(f, " -> ... (older ancestors not kept)")?,
            }
        }
        let other_chains = self
            .members
            .iter()
            .filter(|s| s.chain != first.chain)
            .count();
        if other_chains > 0 {
            write!(f, " (and {} by other chains)", plural(other_chains, "task"))?;
        }
        writeln!(f)?;

        let polls = Range::of(self.members.iter().map(|s| s.polls));
        let age = Range::of(self.members.iter().filter_map(|s| s.age));
        {
            match (age, polls) {
                (Some(age), _) => write!(f, "      age {}", age.map(Human))?,
                (None, Some(Range { max: 0, .. })) => write!(f, "      not started yet")?,
                // Polled, but no poll has returned yet: the first one is still running.
                (None, _) => write!(f, "      still in its first poll")?,
            }
            if first.state != TaskState::Blocking {
                match polls {
                    Some(Range { max: 0, .. }) | None => {}
                    Some(Range { min: 1, max: 1 }) => write!(f, ", polled once")?,
                    Some(polls) => write!(f, ", polled {polls} times")?,
                }
                if let Some(idle) = Range::of(self.members.iter().filter_map(|s| s.idle_for)) {
                    write!(f, ", idle for {}", idle.map(Human))?;
                }
            }
            writeln!(f)?;
        }

        let states = self.states();
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
        if let Some(trace) = self.members.iter().find_map(|s| s.trace.as_deref()) {
            writeln!(
                f,
                "      where it is stuck (async backtrace of one of them):"
            )?;
            const MAX_LINES: usize = 40;
            for line in trace.lines().take(MAX_LINES) {
                writeln!(f, "        {line}")?;
            }
            if trace.lines().count() > MAX_LINES {
                writeln!(f, "        ...")?;
            }
        }
        writeln!(f, "      hint: {}", hint(states[0].0))
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
            "inside one poll for the whole grace period: a blocking call in async code"
        }
        TaskState::Blocking => "a spawn_blocking closure that has not returned",
        TaskState::Pending => {
            "pending; spawned with plain tokio::spawn, so who holds its waker is not known"
        }
    }
}

fn hint(state: TaskState) -> &'static str {
    match state {
        TaskState::Stranded => {
            "it awaits something that can never complete (std::future::pending, a future that \
             dropped or never registered its waker): give it a way to finish, or keep its \
             JoinHandle and abort it"
        }
        TaskState::Waiting => {
            "it waits for a message or signal that never comes: drop the last sender or close the \
             channel when the work is done, give its loop a cancellation branch (CancellationToken) \
             in its select!, or keep its JoinHandle and await or abort it; a worker that holds the \
             Arc whose Drop would stop it should hold a Weak instead; a server meant to outlive \
             the body belongs in leak_check::spawn_background"
        }
        TaskState::Busy => {
            "a loop that never ends (an interval or retry loop): add a cancellation branch, \
             `tokio::select! { _ = token.cancelled() => break, ... }`, and cancel it when the test is \
             done; a ticker meant to outlive the body belongs in leak_check::spawn_background"
        }
        TaskState::Runnable => {
            "it was about to run when the grace period ended; if it would finish on its own, give it \
             more time with #[leak_check(grace_ms = ...)] or LEAK_CHECK_GRACE_MS"
        }
        TaskState::StuckInPoll => {
            "replace the blocking call (std::thread::sleep, a sync lock or I/O) with its async \
             version, or move it to spawn_blocking"
        }
        TaskState::Blocking => {
            "the closure never returns: pass it a stop signal (an AtomicBool or a channel it checks) \
             and set it before the test ends"
        }
        TaskState::Pending => {
            "it waits for something that never comes (a channel that is never closed, a select! \
             loop with no cancellation branch, a JoinHandle nobody awaits); spawn it with \
             leak_check::spawn to see whether anything can still wake it"
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
