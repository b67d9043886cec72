//! Where each straggler is stuck, read off its async backtrace from tokio's task dump: what the
//! innermost await is. Taking a dump (the check does it, `check::dump`) needs `--cfg
//! tokio_unstable`, the `taskdump` feature and Linux (x86, x86_64, aarch64 or s390x); elsewhere
//! reports carry no backtraces. Reading a backtrace's text is plain string work, compiled (and
//! tested) everywhere.

/// Emits `$enabled` where task dumps are available and `$disabled` elsewhere; the one place
/// that spells out where that is.
macro_rules! where_taskdump {
    ($enabled:item $disabled:item) => {
        #[cfg(all(
            tokio_unstable,
            feature = "taskdump",
            target_os = "linux",
            any(
                target_arch = "aarch64",
                target_arch = "x86",
                target_arch = "x86_64",
                target_arch = "s390x"
            )
        ))]
        $enabled
        #[cfg(not(all(
            tokio_unstable,
            feature = "taskdump",
            target_os = "linux",
            any(
                target_arch = "aarch64",
                target_arch = "x86",
                target_arch = "x86_64",
                target_arch = "s390x"
            )
        )))]
        $disabled
    };
}
pub(crate) use where_taskdump;

where_taskdump! {
    /// Whether this build can take task dumps.
    pub(crate) const ENABLED: bool = true;
    /// Whether this build can take task dumps.
    pub(crate) const ENABLED: bool = false;
}

/// What [`traces`] gives for a task that the dump holds no backtrace for: tokio records none
/// when the task's innermost future is not one of its instrumented leaves (a socket's `accept`,
/// `std::future::pending()`, a future of another crate). The report prints it as it is.
pub(crate) const NO_TRACE: &str = "no async backtrace: tokio recorded none for this task (it \
    happens for some leaf futures, e.g. accept or pending())";

/// What a task awaits, read off the innermost tokio future of one branch of its backtrace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Awaited {
    /// A channel's receive: mpsc or broadcast `recv`, watch `changed`, a oneshot receiver.
    Receive(Channel),
    /// An mpsc `send` (or `reserve`) on a full channel.
    Send,
    /// `Notify::notified`.
    Notified,
    /// tokio-util's `CancellationToken::cancelled`.
    Cancelled,
    /// An interval's `tick`.
    Tick,
    /// A `sleep` (or the deadline of a `timeout`).
    Sleep,
    /// A listener's `accept`.
    Accept,
    /// A read or write on a socket (or other I/O resource).
    Io,
    /// Another task's `JoinHandle` (or a `JoinSet`).
    Join,
    /// A tokio `Mutex`, `RwLock` or `Semaphore`.
    Lock,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Channel {
    Mpsc,
    Broadcast,
    Watch,
    Oneshot,
}

impl Awaited {
    /// A timer: the task runs again by itself when it fires.
    pub(crate) fn is_timer(self) -> bool {
        matches!(self, Awaited::Tick | Awaited::Sleep)
    }

    /// What it is, as the report names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Awaited::Receive(Channel::Mpsc) => "a channel receive (mpsc `recv`)",
            Awaited::Receive(Channel::Broadcast) => "a channel receive (broadcast `recv`)",
            Awaited::Receive(Channel::Watch) => "a channel receive (watch `changed`)",
            Awaited::Receive(Channel::Oneshot) => "a channel receive (a oneshot receiver)",
            Awaited::Send => "room in a full channel (mpsc `send`)",
            Awaited::Notified => "`Notify::notified`",
            Awaited::Cancelled => "`CancellationToken::cancelled`",
            Awaited::Tick => "an interval's `tick`",
            Awaited::Sleep => "a `sleep`",
            Awaited::Accept => "a listener's `accept`",
            Awaited::Io => "socket I/O (a read or write)",
            Awaited::Join => "another task's `JoinHandle`",
            Awaited::Lock => "a lock or semaphore (`Mutex`, `RwLock`, `Semaphore`)",
        }
    }
}

/// Names of tokio (and tokio-util) futures, as a backtrace spells them, and what awaiting each
/// means. The first frame of a branch, from the task's root down, that names one of them says
/// what the branch awaits: `watch::Receiver::changed` is a channel receive although a `Notified`
/// sits under it.
const KNOWN: &[(&str, Awaited)] = &[
    ("tokio_util::sync::cancellation_token", Awaited::Cancelled),
    ("tokio::sync::mpsc::bounded::Sender", Awaited::Send),
    ("tokio::sync::mpsc::bounded::Permit", Awaited::Send),
    ("tokio::sync::mpsc::", Awaited::Receive(Channel::Mpsc)),
    (
        "tokio::sync::broadcast::",
        Awaited::Receive(Channel::Broadcast),
    ),
    ("tokio::sync::watch::", Awaited::Receive(Channel::Watch)),
    ("tokio::sync::oneshot::", Awaited::Receive(Channel::Oneshot)),
    ("tokio::sync::notify::", Awaited::Notified),
    ("tokio::time::interval::", Awaited::Tick),
    ("tokio::time::sleep::", Awaited::Sleep),
    ("tokio::net::tcp::listener::", Awaited::Accept),
    ("tokio::net::unix::listener::", Awaited::Accept),
    ("::poll_accept", Awaited::Accept),
    ("tokio::net::", Awaited::Io),
    ("tokio::io::", Awaited::Io),
    ("tokio::runtime::io::", Awaited::Io),
    ("tokio::runtime::task::join::JoinHandle", Awaited::Join),
    ("tokio::task::join_set::", Awaited::Join),
    ("tokio::sync::mutex::", Awaited::Lock),
    ("tokio::sync::rwlock", Awaited::Lock),
    ("tokio::sync::semaphore::", Awaited::Lock),
    ("tokio::sync::batch_semaphore::", Awaited::Lock),
];

/// One innermost await of a backtrace: what it is, and where the task's own code awaits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Await {
    pub(crate) what: Awaited,
    /// `file:line:col` of the nearest frame above it in the task's own code (a relative path),
    /// if the backtrace has one.
    pub(crate) at: Option<String>,
}

/// What each branch of `trace` (as [`tidy`] leaves it) awaits, in the order the branches
/// appear, each kind once. Branches whose futures are not known are left out.
pub(crate) fn innermost_awaits(trace: &str) -> Vec<Await> {
    let frames = frames(trace);
    let mut awaits: Vec<Await> = Vec::new();
    for path in leaf_paths(&frames) {
        let Some((index, what)) = path.iter().enumerate().find_map(|(i, frame)| {
            KNOWN
                .iter()
                .find(|(name, _)| frame.name.contains(name))
                .map(|(_, what)| (i, *what))
        }) else {
            continue;
        };
        let at = path[..index]
            .iter()
            .rev()
            .filter_map(|frame| frame.at)
            .find(|at| is_own(at))
            .map(str::to_owned);
        if !awaits.iter().any(|a| a.what == what) {
            awaits.push(Await { what, at });
        }
    }
    awaits
}

/// A location in the user's own packages: a relative path.
fn is_own(at: &str) -> bool {
    !(at.starts_with('/') || at.starts_with('\\') || at.starts_with("...") || at.contains(":\\"))
}

/// One frame of a backtrace's tree.
struct Frame<'a> {
    depth: usize,
    name: &'a str,
    /// `file:line:col`, where the backtrace gives it.
    at: Option<&'a str>,
}

/// The frames of a backtrace, as tokio prints it: one per line, `╼ name at file:line:col`, each
/// level of the tree indented by three more characters (`  └╼`, `     ├╼`, `  │  └╼`...).
fn frames(trace: &str) -> Vec<Frame<'_>> {
    trace
        .lines()
        .filter_map(|line| {
            let (prefix, rest) = line.split_once('╼')?;
            let rest = rest.trim();
            let (name, at) = match rest.rsplit_once(" at ") {
                Some((name, at)) => (name, Some(at)),
                None => (rest, None),
            };
            Some(Frame {
                depth: prefix.chars().count() / 3,
                name,
                at,
            })
        })
        .collect()
}

/// For each leaf of the tree, the frames from the root down to it.
fn leaf_paths<'f, 'a>(frames: &'f [Frame<'a>]) -> Vec<Vec<&'f Frame<'a>>> {
    let mut stack: Vec<&Frame<'_>> = Vec::new();
    let mut paths = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        while stack.last().is_some_and(|top| top.depth >= frame.depth) {
            stack.pop();
        }
        stack.push(frame);
        if frames
            .get(i + 1)
            .is_none_or(|next| next.depth <= frame.depth)
        {
            paths.push(stack.clone());
        }
    }
    paths
}

/// The backtrace as the report shows it: leak-check's own wrapper frames at the root left out,
/// and paths shortened: the user's files relative to the workspace (found from `site_file`, the
/// task's spawn site, when a frame's path ends with it), a registry crate's as
/// `.../crate-1.0.0/src/...`, the standard library's as `.../library/...`.
pub(crate) fn tidy(trace: &str, site_file: &str) -> String {
    let mut lines: Vec<String> = trace.lines().map(str::to_owned).collect();
    // The root frames that are leak-check's wrapper, while each has one child only.
    while lines.len() > 1
        && lines[0].contains("leak_check::")
        && lines
            .iter()
            .filter(|line| depth_of(line) == Some(1))
            .count()
            == 1
    {
        lines.remove(0);
        for line in &mut lines {
            *line = line.chars().skip(3).collect();
        }
    }
    let root = workspace_root(&lines, site_file);
    lines
        .iter()
        .map(|line| match line.rsplit_once(" at ") {
            Some((frame, at)) => format!("{frame} at {}", short_path(at, root.as_deref())),
            None => line.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn depth_of(line: &str) -> Option<usize> {
    line.split_once('╼')
        .map(|(prefix, _)| prefix.chars().count() / 3)
}

/// The absolute folder the user's relative paths hang from: the part of a frame's path before
/// `site_file`, when `site_file` is relative and some frame's file is it.
fn workspace_root(lines: &[String], site_file: &str) -> Option<String> {
    if !is_own(site_file) {
        return None;
    }
    let suffix = format!("/{site_file}:");
    lines.iter().find_map(|line| {
        let (_, at) = line.rsplit_once(" at ")?;
        let end = at.find(&suffix)?;
        Some(at[..=end].to_owned())
    })
}

fn short_path(at: &str, root: Option<&str>) -> String {
    if let Some(rest) = root.and_then(|root| at.strip_prefix(root)) {
        return rest.to_owned();
    }
    if let Some(at_registry) = at.find("/registry/src/") {
        // `.../registry/src/<index>/<crate-version>/src/...`: keep from the crate on.
        let after = &at[at_registry + "/registry/src/".len()..];
        if let Some((_index, from_crate)) = after.split_once('/') {
            return format!(".../{from_crate}");
        }
    }
    if let Some(rest) = at.strip_prefix("/rustc/") {
        if let Some((_hash, from_library)) = rest.split_once('/') {
            return format!(".../{from_library}");
        }
    }
    at.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backtrace as tokio 1.54 prints it, for a task spawned in `tests/traces.rs` that awaits
    /// an mpsc receive.
    const MPSC: &str = "\
╼ <leak_check::tracking::tracked::Tracked<F> as core::future::future::Future> at /w/src/tracking/tracked.rs:88:21
  └╼ traces::t_mpsc::{{closure}} at /w/tests/traces.rs:7:106
     └╼ tokio::sync::mpsc::bounded::Receiver<T>::recv at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/mpsc/bounded.rs:245:42
        └╼ <core::future::poll_fn::PollFn<F> as core::future::future::Future> at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/future/poll_fn.rs:151:9
           └╼ tokio::sync::mpsc::bounded::Receiver<T>::recv::{{closure}} at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/mpsc/bounded.rs:245:32
              └╼ tokio::sync::mpsc::chan::Rx<T,S> at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/mpsc/chan.rs:308:16";

    /// A `select!` loop over a sleep and an mpsc receive, spawned with plain `tokio::spawn` (no
    /// wrapper frame).
    const SELECT: &str = "\
╼ traces::t_select::{{closure}} at /w/tests/traces.rs:37:105
  └╼ <core::future::poll_fn::PollFn<F> as core::future::future::Future> at /rustc/5980/library/core/src/future/poll_fn.rs:151:9
     ├╼ traces::t_select::{{closure}}::{{closure}} at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/macros/select.rs:710:49
     │  └╼ <tokio::time::sleep::Sleep as core::future::future::Future> at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/time/sleep.rs:457:27
     │     └╼ tokio::time::sleep::Sleep at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/time/sleep.rs:384:16
     └╼ traces::t_select::{{closure}}::{{closure}} at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/macros/select.rs:710:49
        └╼ tokio::sync::mpsc::bounded::Receiver<T>::recv at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/mpsc/bounded.rs:245:42
           └╼ tokio::sync::mpsc::chan::Rx<T,S> at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/mpsc/chan.rs:308:16";

    fn whats(trace: &str) -> Vec<Awaited> {
        innermost_awaits(trace)
            .into_iter()
            .map(|a| a.what)
            .collect()
    }

    #[test]
    fn the_wrapper_goes_and_paths_shorten() {
        let tidied = tidy(MPSC, "tests/traces.rs");
        let lines: Vec<&str> = tidied.lines().collect();
        assert_eq!(
            lines[0],
            "╼ traces::t_mpsc::{{closure}} at tests/traces.rs:7:106"
        );
        assert_eq!(
            lines[1],
            "  └╼ tokio::sync::mpsc::bounded::Receiver<T>::recv at \
             .../tokio-1.54.1/src/sync/mpsc/bounded.rs:245:42"
        );
        assert_eq!(
            lines[2],
            "     └╼ <core::future::poll_fn::PollFn<F> as core::future::future::Future> at \
             .../library/core/src/future/poll_fn.rs:151:9"
        );
        assert_eq!(lines.len(), 5);
        // Without a frame in the spawn site's file, the user's paths stay absolute.
        assert!(tidy(MPSC, "tests/elsewhere.rs")
            .starts_with("╼ traces::t_mpsc::{{closure}} at /w/tests/traces.rs:7:106"));
    }

    #[test]
    fn a_wrapper_with_two_children_stays() {
        // Two branches under the wrapper: removing it would make two roots.
        let trace = "\
╼ <leak_check::Tracked<F> as core::future::future::Future> at /w/src/t.rs:1:1
  ├╼ a::f at /w/src/a.rs:1:1
  └╼ a::g at /w/src/a.rs:2:1";
        assert!(tidy(trace, "src/a.rs").starts_with("╼ <leak_check::Tracked<F>"));
    }

    #[test]
    fn the_innermost_await_is_named() {
        assert_eq!(whats(MPSC), [Awaited::Receive(Channel::Mpsc)]);
        // Where the task's own code awaits it, once paths are relative.
        let awaits = innermost_awaits(&tidy(MPSC, "tests/traces.rs"));
        assert_eq!(awaits[0].at.as_deref(), Some("tests/traces.rs:7:106"));
        // Each branch of a select!, in order; the await site skips tokio's macro frames.
        let awaits = innermost_awaits(&tidy(SELECT, "tests/traces.rs"));
        let found: Vec<(Awaited, Option<&str>)> =
            awaits.iter().map(|a| (a.what, a.at.as_deref())).collect();
        assert_eq!(
            found,
            [
                (Awaited::Sleep, Some("tests/traces.rs:37:105")),
                (
                    Awaited::Receive(Channel::Mpsc),
                    Some("tests/traces.rs:37:105")
                )
            ]
        );
    }

    /// One branch whose frames are `names`, root first, as tokio prints them.
    fn branch(names: &[&str]) -> String {
        names
            .iter()
            .enumerate()
            .map(|(depth, name)| {
                let prefix = if depth == 0 {
                    String::new()
                } else {
                    format!("{}└", " ".repeat(3 * depth - 1))
                };
                format!("{prefix}╼ {name} at /x/y.rs:1:1")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn each_known_future_is_told_apart() {
        let cases: &[(&[&str], Awaited)] = &[
            (
                &["tokio::sync::mpsc::unbounded::UnboundedReceiver<T>::recv"],
                Awaited::Receive(Channel::Mpsc),
            ),
            (
                &[
                    "tokio::sync::mpsc::bounded::Sender<T>::send",
                    "tokio::sync::mpsc::bounded::Sender<T>::reserve_inner",
                    "<tokio::sync::batch_semaphore::Acquire as core::future::future::Future>",
                ],
                Awaited::Send,
            ),
            (
                &[
                    "tokio::sync::broadcast::Receiver<T>::recv",
                    "<tokio::sync::broadcast::Recv<T> as core::future::future::Future>",
                ],
                Awaited::Receive(Channel::Broadcast),
            ),
            (
                // watch's `changed` waits on a Notify inside: it is still a channel receive.
                &[
                    "tokio::sync::watch::Receiver<T>::changed",
                    "tokio::sync::watch::changed_impl",
                    "<tokio::sync::notify::Notified as core::future::future::Future>",
                ],
                Awaited::Receive(Channel::Watch),
            ),
            (
                &["<tokio::sync::oneshot::Receiver<T> as core::future::future::Future>"],
                Awaited::Receive(Channel::Oneshot),
            ),
            (
                &["<tokio::sync::notify::Notified as core::future::future::Future>"],
                Awaited::Notified,
            ),
            (
                &[
                    "<tokio_util::sync::cancellation_token::WaitForCancellationFuture as core::future::future::Future>",
                    "<tokio::sync::notify::Notified as core::future::future::Future>",
                ],
                Awaited::Cancelled,
            ),
            (
                &[
                    "tokio::time::interval::Interval::tick",
                    "<tokio::time::sleep::Sleep as core::future::future::Future>",
                ],
                Awaited::Tick,
            ),
            (
                &["<tokio::time::sleep::Sleep as core::future::future::Future>"],
                Awaited::Sleep,
            ),
            (
                &[
                    "tokio::net::tcp::listener::TcpListener::poll_accept",
                    "tokio::runtime::io::registration::Registration::poll_ready",
                ],
                Awaited::Accept,
            ),
            (
                &[
                    "<tokio::net::tcp::stream::TcpStream as tokio::io::async_read::AsyncRead>::poll_read",
                    "tokio::runtime::io::registration::Registration::poll_ready",
                ],
                Awaited::Io,
            ),
            (
                &["<tokio::runtime::task::join::JoinHandle<T> as core::future::future::Future>"],
                Awaited::Join,
            ),
            (
                &[
                    "tokio::sync::mutex::Mutex<T>::lock",
                    "<tokio::sync::batch_semaphore::Acquire as core::future::future::Future>",
                ],
                Awaited::Lock,
            ),
        ];
        for (names, expected) in cases {
            let mut frames = vec!["app::worker::{{closure}}"];
            frames.extend_from_slice(names);
            assert_eq!(whats(&branch(&frames)), [*expected], "{names:?}");
        }
        // A future tokio does not know about, and an empty trace: nothing to name.
        assert!(whats(&branch(&["app::worker::{{closure}}", "my::Future"])).is_empty());
        assert!(whats(NO_TRACE).is_empty());
    }
}
