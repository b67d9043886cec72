//! What `#[leak_check]` expands to calls into here. Not a stable API: only the macro of the same
//! version may use it.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use tokio;

use crate::check::Check;
use crate::ownership::{self, Owner};
use crate::report::LeakReport;
use crate::{config, wait};

/// How long a runtime that leak-check built gets to shut down; a `spawn_blocking` closure that
/// never returns would otherwise hang the test forever.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// The settings of one checked test, filled in by the macro.
pub struct Options<T> {
    module_path: &'static str,
    name: &'static str,
    grace: Option<Duration>,
    /// Set for `#[should_panic]` tests, which cannot be failed by a panic: they fail by
    /// returning this instead.
    return_instead_of_panic: Option<fn() -> T>,
}

impl<T> Options<T> {
    /// The test `name` in the module `module_path` (as `module_path!()` gives it).
    pub fn new(module_path: &'static str, name: &'static str) -> Self {
        Options {
            module_path,
            name,
            grace: None,
            return_instead_of_panic: None,
        }
    }

    /// The test's own grace period.
    pub fn grace_ms(mut self, ms: u64) -> Self {
        self.grace = Some(Duration::from_millis(ms));
        self
    }

    /// The name libtest shows: the module path without the crate, then the function.
    fn test_name(&self) -> String {
        match self.module_path.split_once("::") {
            Some((_crate, path)) => format!("{path}::{}", self.name),
            None => self.name.to_owned(),
        }
    }

    fn begin(&self, own_runtime: Option<&tokio::runtime::Handle>) -> Check {
        Check::begin(self.test_name(), config::grace(self.grace), own_runtime)
    }
}

impl Options<()> {
    /// Marks a `#[should_panic]` test.
    pub fn expects_panic(mut self) -> Self {
        self.return_instead_of_panic = Some(|| ());
        self
    }
}

/// Runs an async test on a runtime built from `builder`, then checks it, then shuts the runtime
/// down with a timeout.
#[track_caller]
pub fn run_test<T>(
    mut builder: tokio::runtime::Builder,
    options: Options<T>,
    body: impl Future<Output = T>,
) -> T {
    let runtime = builder
        .build()
        .unwrap_or_else(|error| panic!("leak-check: cannot build the test's runtime: {error}"));
    let check = options.begin(Some(runtime.handle()));
    let (outcome, report) = runtime.block_on(async {
        let outcome = Guarded::new(check.owner(), body).await;
        (outcome, check.conclude().await)
    });
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    verdict(outcome, report, options)
}

/// Checks an async test whose runtime someone else runs (another test attribute).
pub async fn check_async<T>(options: Options<T>, body: impl Future<Output = T>) -> T {
    let check = options.begin(None);
    let outcome = Guarded::new(check.owner(), body).await;
    let report = check.conclude().await;
    verdict(outcome, report, options)
}

/// Checks a sync test, whose tasks run on runtimes that outlive it.
#[track_caller]
pub fn check_sync<T>(options: Options<T>, body: impl FnOnce() -> T) -> T {
    let check = options.begin(None);
    let outcome = {
        let _owner = ownership::enter(check.owner());
        catch_unwind(AssertUnwindSafe(body))
    };
    let report = wait::block_on(check.conclude());
    verdict(outcome, report, options)
}

/// Turns what the body did and what leaked into the test's result.
#[track_caller]
fn verdict<T>(
    outcome: std::thread::Result<T>,
    report: Option<LeakReport>,
    options: Options<T>,
) -> T {
    let Some(report) = report else {
        return outcome.unwrap_or_else(|payload| resume_unwind(payload));
    };
    if let Some(return_normally) = options.return_instead_of_panic {
        let panicked = if outcome.is_err() {
            " and panicked"
        } else {
            ""
        };
        eprintln!(
            "{report}\n\nleak-check: this test expects a panic{panicked}; leak-check fails it by returning normally instead."
        );
        return return_normally();
    }
    match outcome {
        Ok(_) => panic!("{report}"),
        Err(payload) => panic!("{}\n\n{report}", panic_message(&*payload)),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(the test body panicked with a value that is not a string)")
}

pin_project_lite::pin_project! {
    /// The test body: polled, and dropped, with the check as the current owner; its panic
    /// caught.
    struct Guarded<F> {
        #[pin]
        body: Option<F>,
        owner: Owner,
    }

    impl<F> PinnedDrop for Guarded<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _owner = ownership::enter(this.owner.clone());
            this.body.set(None);
        }
    }
}

impl<F> Guarded<F> {
    fn new(owner: Owner, body: F) -> Self {
        Guarded {
            body: Some(body),
            owner,
        }
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _owner = ownership::enter(this.owner.clone());
        let Some(body) = this.body.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let result = match catch_unwind(AssertUnwindSafe(|| body.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(payload),
        };
        // Whatever the body's locals spawn as they drop belongs to the test: drop them now,
        // before the check looks. A panic there counts as the body's, unless it already had one.
        let dropped = catch_unwind(AssertUnwindSafe(|| this.body.set(None)));
        Poll::Ready(match (result, dropped) {
            (Ok(_), Err(payload)) => Err(payload),
            (result, _) => result,
        })
    }
}
