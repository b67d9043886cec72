//! What to do about a site's stragglers, read off the evidence: their state, what they await
//! (from a task dump), how their polls were spaced, where they were spawned and by whom. Each
//! hint says only what the evidence supports: a task that waits on a timer is told about its
//! loop, a task of a dependency how to allow it.

use std::time::Duration;

use super::{Group, Human, Straggler};
use crate::report::dump::{self, Await, Awaited, Channel};
use crate::tracking::record::TaskState;

/// The hint lines for a site, the one about the task's own behaviour first.
pub(super) fn hints(group: &Group<'_>, awaits: &[Await]) -> Vec<String> {
    let dependency = Dependency::of(group.site.file());
    let mut hints = vec![behaviour(group, awaits, dependency.is_some())];
    // Where a task dump would have told what the task awaits.
    let guessed = matches!(group.states()[0].0, TaskState::Waiting | TaskState::Pending)
        && group.respawns() == 0
        && awaits.is_empty();
    if guessed && !dump::ENABLED {
        hints.push(if cfg!(tokio_unstable) {
            "to see what it awaits, run the tests with --features leak-check/taskdump (on Linux)"
                .to_owned()
        } else {
            "to see what it awaits, run the tests with RUSTFLAGS=\"--cfg tokio_unstable\" and \
             --features leak-check/taskdump (on Linux)"
                .to_owned()
        });
    }
    if let Some(dependency) = dependency {
        hints.push(dependency.hint());
    }
    hints
}

/// What the tasks do, and what usually stops that.
fn behaviour(group: &Group<'_>, awaits: &[Await], in_dependency: bool) -> String {
    if group.respawns() > 0 {
        return "break the cycle: spawn the next generation only while a stop signal is not set \
                (check a CancellationToken before spawning, and cancel it when the test is done), \
                or make the chain one task with a loop that has a cancellation branch"
            .to_owned();
    }
    let state = group.states()[0].0;
    if state == TaskState::Runnable && group.members.iter().all(|s| s.unpolled_since_body) {
        return "nothing polled it after the body ended, though it was ready to run: the runtime \
                or LocalSet it was spawned onto is blocked, or nothing drives it any more (one \
                that was forgotten, or is never run again); more grace does not help: run it to \
                the end, or drop it, before the test ends"
            .to_owned();
    }
    if let Some(hint) = not_at_an_await(state) {
        return hint.to_owned();
    }
    if !awaits.is_empty() {
        return awaited(awaits);
    }
    match state {
        TaskState::Busy => busy(group),
        _ => unawaited_pending(group, state, in_dependency),
    }
}

/// What stops a task that is not parked at an await (a closure still running, a poll that does
/// not return, a task about to run): what it awaits, if a dump tells, does not change that.
fn not_at_an_await(state: TaskState) -> Option<&'static str> {
    match state {
        TaskState::Blocking => Some(
            "the closure never returns: pass it a stop signal (an AtomicBool or a channel it \
             checks) and set it before the test ends",
        ),
        TaskState::StuckInPoll => Some(
            "replace the blocking call (std::thread::sleep, a sync lock or I/O, a loop with no \
             .await) with its async version, or move it to spawn_blocking",
        ),
        TaskState::Runnable => Some(
            "it was about to run when the grace period ended; if it would finish on its own, give \
             it more time with #[leak_check(grace_ms = ...)] or LEAK_CHECK_GRACE_MS",
        ),
        _ => None,
    }
}

/// A busy task, told by how its polls were spaced: a ticker, or a spin.
fn busy(group: &Group<'_>) -> String {
    match pace(group) {
        Some(Pace::Every(period)) => format!(
            "polled about every {} during the grace period: a timer loop (a ticker, a retry \
             loop) that never ends; give it a cancellation branch, `tokio::select! {{ _ = \
             token.cancelled() => break, ... }}`, and cancel the token when the test is done; \
             a ticker meant to outlive the body belongs in leak_check::spawn_background",
            Human(period)
        ),
        Some(Pace::Spinning) => "polled again and again with no pause: a loop that never \
            waits for anything pending (yield_now, a future that is always ready, a retry \
            with no delay); give it an end, or a cancellation branch that it checks"
            .to_owned(),
        None => "a loop that never ends (an interval, retry or select! loop): add a \
            cancellation branch, `tokio::select! { _ = token.cancelled() => break, ... }`, \
            and cancel it when the test is done; a ticker meant to outlive the body belongs \
            in leak_check::spawn_background"
            .to_owned(),
    }
}

/// A pending task with no task dump to tell what it awaits: read from its state (whether
/// anything holds its waker) and from where it was spawned.
fn unawaited_pending(group: &Group<'_>, state: TaskState, in_dependency: bool) -> String {
    // Spawned by the test body itself, in the test's own files: a server or a ticker the test
    // starts and uses until its end looks like this.
    let the_tests_own = !in_dependency && group.members.iter().all(|s| s.chain.is_empty());
    match state {
        TaskState::Stranded => "it awaits something that can never complete \
            (std::future::pending, a future that dropped or never registered its waker): give it \
            a way to finish, or keep its JoinHandle and abort it"
            .to_owned(),
        TaskState::Pending if in_dependency => "a task the dependency runs in the background (a \
            client's or pool's worker, a connection's driver): it usually ends when the object \
            that started it is dropped or shut down; do that before the test ends"
            .to_owned(),
        TaskState::Pending if the_tests_own => "a task the test body left running: if it is a \
            server or a ticker that the test uses until its end, spawn it with \
            leak_check::spawn_background, which stops it after the body without reporting it; \
            otherwise stop it when the test is done (a shutdown signal, or keep its JoinHandle \
            and abort it)"
            .to_owned(),
        TaskState::Pending => {
            "it waits for something that has not happened (a channel that is never closed, a \
             select! loop with no cancellation branch, a JoinHandle nobody awaits); it was \
             spawned with plain tokio::spawn, so whether anything can still wake it is not known: \
             leak_check::spawn would tell"
                .to_owned()
        }
        // Waiting: a tracked task whose waker is held by something that never fired.
        _ => "it waits for something that has not happened: a message (drop the last sender or \
             close the channel when the work is done), a Notify or CancellationToken (notify or \
             cancel it), a timer in a loop (give the loop a cancellation branch), or another task \
             (keep its JoinHandle and await or abort it); a worker that holds the Arc whose Drop \
             would stop it should hold a Weak instead; a server or ticker meant to outlive the \
             body belongs in leak_check::spawn_background"
            .to_owned(),
    }
}

/// What usually releases what the task awaits.
fn awaited(awaits: &[Await]) -> String {
    let whats: Vec<Awaited> = awaits.iter().map(|a| a.what).collect();
    if whats.contains(&Awaited::Accept) {
        return "a server loop: it awaits `accept`, so it runs until it is told to stop; give it \
                a shutdown signal (a select! branch on a CancellationToken or a oneshot) and fire \
                it when the test is done, or spawn it with leak_check::spawn_background, which \
                stops it after the body without reporting it"
            .to_owned();
    }
    if let [what] = whats.as_slice() {
        return releases(*what).to_owned();
    }
    if whats.contains(&Awaited::Cancelled) {
        return "its select! has a cancellation branch (`token.cancelled()`), but nothing cancels \
                the token: cancel it when the work is done (keep a clone, or a drop_guard, in the \
                test)"
            .to_owned();
    }
    let timer = if whats.iter().any(|what| what.is_timer()) {
        " (its timer fires again and again, so only that branch ends the loop)"
    } else {
        ""
    };
    format!(
        "its select! (or join) awaits {} at once, and none of them ended it: give the select! a \
         cancellation branch, `_ = token.cancelled() => break`, and cancel the token when the \
         test is done{timer}",
        whats.len()
    )
}

fn releases(what: Awaited) -> &'static str {
    match what {
        Awaited::Receive(Channel::Mpsc | Channel::Broadcast) => {
            "it waits for a message: drop the last sender (or close the channel) when the work is \
             done; a sender kept in a struct that lives on, or in a task that is itself leaking, \
             keeps it waiting"
        }
        Awaited::Receive(Channel::Watch) => {
            "it waits for the watched value to change: drop the watch::Sender when the work is \
             done (`changed` then returns an error), or give it a cancellation branch"
        }
        Awaited::Receive(Channel::Oneshot) => {
            "it waits for a oneshot value: send it, or drop the oneshot::Sender when the work is \
             done"
        }
        Awaited::Send => {
            "it waits for room in a full channel whose receiver no longer reads: drop the \
             receiver when it is done (the send then fails), or keep reading until the sender ends"
        }
        Awaited::Notified => {
            "it waits for a notification: call notify_one or notify_waiters when the work is done, \
             or give it a cancellation branch; a worker that holds the Arc whose Drop would notify \
             it should hold a Weak instead"
        }
        Awaited::Cancelled => {
            "it waits for its CancellationToken: cancel the token when the work is done (keep a \
             clone, or a drop_guard, in the test)"
        }
        Awaited::Tick => {
            "a loop on an interval never ends by itself: give it a cancellation branch, \
             `tokio::select! { _ = token.cancelled() => break, _ = interval.tick() => ... }`, and \
             cancel the token when the test is done; a ticker meant to outlive the body belongs \
             in leak_check::spawn_background"
        }
        Awaited::Sleep => {
            "it sleeps (a long sleep, or the pause of a retry or polling loop): give it a \
             cancellation branch, `tokio::select! { _ = token.cancelled() => break, _ = \
             sleep(...) => ... }`, and cancel the token when the test is done, or keep its \
             JoinHandle and abort it"
        }
        Awaited::Accept => {
            "a server loop: give it a shutdown signal and fire it when the test is done, or spawn \
             it with leak_check::spawn_background"
        }
        Awaited::Io => {
            "it waits on socket I/O: close the other end (drop the client or the connection) when \
             the test is done, or give its loop a shutdown signal"
        }
        Awaited::Join => {
            "it awaits another task, which is itself leaking or never ends (see its own entry in \
             this report): stop that one and this one ends with it"
        }
        Awaited::Lock => {
            "it waits for a lock or permit that is never released: whoever holds it is itself \
             stuck (see the other entries of this report) or leaked its guard"
        }
    }
}

/// How a busy task's polls were spaced over its life.
#[derive(Debug, PartialEq, Eq)]
enum Pace {
    /// At a regular interval: a ticker. Its age, less its idle time, spread over its polls after
    /// the first; its idle time since the last poll is not much longer than that.
    Every(Duration),
    /// Polled again as soon as it yields.
    Spinning,
}

fn pace(group: &Group<'_>) -> Option<Pace> {
    let busy = group.members.iter().find(|s| s.state == TaskState::Busy)?;
    pace_of(busy)
}

fn pace_of(s: &Straggler) -> Option<Pace> {
    let (age, idle) = (s.age?, s.idle_for?);
    // Two gaps at least, for a pace to be regular.
    if s.polls < 3 {
        return None;
    }
    let gap = age.saturating_sub(idle) / (s.polls - 1);
    // Idle for much longer than its polls were apart: a burst, then a wait. No pace.
    if idle > (gap * 2).max(Duration::from_millis(1)) {
        None
    } else if gap < Duration::from_millis(1) {
        Some(Pace::Spinning)
    } else {
        Some(Pace::Every(gap))
    }
}

/// A spawn site outside the user's own packages: in a dependency (a registry crate, a git
/// checkout, a path dependency outside the workspace) or the standard library. rustc gives the
/// workspace's own files as relative paths, and every other file as an absolute one.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dependency {
    /// The package, as its folder is named (`hyper-util-0.1.10`).
    name: String,
    /// The `allow_sites` entry that matches every site of the package.
    entry: String,
}

impl Dependency {
    pub(super) fn of(file: &str) -> Option<Dependency> {
        let windows = file.contains('\\') && !file.contains('/');
        let sep = if windows { '\\' } else { '/' };
        let absolute = file.starts_with(sep) || file.get(1..3).is_some_and(|s| s == ":\\");
        let parts: Vec<&str> = file.split(sep).collect();
        if !absolute && !parts.contains(&".cargo") {
            return None;
        }
        let at = |name: &str| parts.iter().position(|part| *part == name);
        // A registry crate: `.../registry/src/<index>/<crate-version>/...`; the glob matches
        // wherever the registry is, so the entry holds on every machine.
        if let Some(i) = at("registry").filter(|i| parts.get(i + 1) == Some(&"src")) {
            if let Some(krate) = parts.get(i + 3).filter(|_| parts.len() > i + 4) {
                return Some(Dependency {
                    name: (*krate).to_owned(),
                    entry: format!("*{sep}{krate}{sep}*"),
                });
            }
        }
        // A git dependency: `.../git/checkouts/<repository-hash>/<revision>/...`.
        if let Some(i) = at("checkouts").filter(|i| *i > 0 && parts[i - 1] == "git") {
            if let Some(repository) = parts.get(i + 1).filter(|_| parts.len() > i + 3) {
                return Some(Dependency {
                    name: (*repository).to_owned(),
                    entry: format!("*{sep}checkouts{sep}{repository}{sep}*"),
                });
            }
        }
        // The standard library, as rustc remaps it: `/rustc/<commit>/library/...`.
        if file.starts_with("/rustc/") {
            return Some(Dependency {
                name: "the standard library".to_owned(),
                entry: "/rustc/".to_owned(),
            });
        }
        // Any other package: its folder, the one above its last `src`, or the file's folder.
        let folder = match parts.iter().rposition(|part| *part == "src") {
            Some(src) if src > 1 => src,
            _ => parts.len() - 1,
        };
        let name = parts[folder - 1];
        let prefix = parts[..folder].join(&sep.to_string());
        Some(Dependency {
            name: name.to_owned(),
            entry: if windows {
                format!("{prefix}{sep}*")
            } else {
                format!("{prefix}{sep}")
            },
        })
    }

    fn hint(&self) -> String {
        format!(
            "spawned inside a dependency ({}); if it is expected, allow it: \
             #[leak_check(allow_sites = [{:?}])] on the test, or LEAK_CHECK_ALLOW_SITES='{}' for \
             the run",
            self.name, self.entry, self.entry
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dependency(file: &str) -> Option<(String, String)> {
        Dependency::of(file).map(|d| (d.name, d.entry))
    }

    #[test]
    fn the_users_files_are_not_a_dependency() {
        assert_eq!(dependency("tests/hints.rs"), None);
        assert_eq!(dependency("src/lib.rs"), None);
        assert_eq!(dependency("crates/app/src/main.rs"), None);
        assert_eq!(dependency("vendor/x/src/lib.rs"), None);
    }

    #[test]
    fn each_kind_of_dependency_gets_its_entry() {
        assert_eq!(
            dependency(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hyper-util-0.1.10/\
                 src/client/legacy/pool.rs"
            ),
            Some(("hyper-util-0.1.10".into(), "*/hyper-util-0.1.10/*".into()))
        );
        assert_eq!(
            dependency(
                "/home/u/.cargo/git/checkouts/tower-2b1e3c4d5e6f7a8b/9f8e7d6/tower/src/a.rs"
            ),
            Some((
                "tower-2b1e3c4d5e6f7a8b".into(),
                "*/checkouts/tower-2b1e3c4d5e6f7a8b/*".into()
            ))
        );
        assert_eq!(
            dependency("/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/a.rs"),
            Some(("the standard library".into(), "/rustc/".into()))
        );
        assert_eq!(
            dependency("/home/u/libs/pool/src/worker/mod.rs"),
            Some(("pool".into(), "/home/u/libs/pool/".into()))
        );
        assert_eq!(
            dependency("/opt/gen/bindings.rs"),
            Some(("gen".into(), "/opt/gen/".into()))
        );
        assert_eq!(
            dependency(
                "C:\\Users\\u\\.cargo\\registry\\src\\index.crates.io-1949cf8c6b5b557f\\\
                 bb8-0.9.0\\src\\inner.rs"
            ),
            Some(("bb8-0.9.0".into(), "*\\bb8-0.9.0\\*".into()))
        );
        assert_eq!(
            dependency("C:\\src\\pool\\src\\lib.rs"),
            Some(("pool".into(), "C:\\src\\pool\\*".into()))
        );
    }

    fn straggler(polls: u32, age_ms: u64, idle_ms: u64) -> Straggler {
        let mut s = crate::report::tests::straggler(TaskState::Busy);
        s.polls = polls;
        s.age = Some(Duration::from_millis(age_ms));
        s.idle_for = Some(Duration::from_millis(idle_ms));
        s
    }

    #[test]
    fn a_ticker_is_told_by_its_pace() {
        // An interval of 10 ms, seen for 102 ms: 11 polls, the last 10 ms ago.
        assert_eq!(
            pace_of(&straggler(11, 102, 10)),
            Some(Pace::Every(Duration::from_micros(9200)))
        );
        // Polled in a burst, then quiet for long: neither a ticker nor a spin.
        assert_eq!(pace_of(&straggler(6, 100, 90)), None);
        assert_eq!(pace_of(&straggler(3, 99, 98)), None);
        // Two polls are no pace (an interval's immediate first tick, say).
        assert_eq!(pace_of(&straggler(2, 100, 98)), None);
        // Thousands of polls in 100 ms: a spin.
        assert_eq!(pace_of(&straggler(5000, 100, 0)), Some(Pace::Spinning));
    }
}
