//! The instrumented spawn family. With the `tracking` feature off, or outside a check, each of
//! these is the tokio function it stands for; inside a check, the task is recorded with its spawn
//! site and owner.

use std::borrow::Cow;
use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

#[cfg(feature = "tracking")]
use crate::tracking::{
    owner,
    record::{Bound, TaskKind, TaskRecord},
    tracked::{self, Registration, Tracked},
};
#[cfg(feature = "tracking")]
use std::sync::Arc;

/// Spawns a task, like [`tokio::spawn`], recording where it was spawned.
///
/// Inside a [`leak_check`](crate::leak_check) test the task belongs to that test, and so does
/// every task it spawns in turn.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = leak_check::spawn(async { 1 + 1 });
/// assert_eq!(handle.await.unwrap(), 2);
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Builder::new().spawn(future)
}

/// Spawns a task onto the runtime behind `handle`, like [`Handle::spawn`].
///
/// ```
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let handle = leak_check::spawn_on(async { "done" }, runtime.handle());
/// assert_eq!(runtime.block_on(handle).unwrap(), "done");
/// ```
#[track_caller]
pub fn spawn_on<F>(future: F, handle: &Handle) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Builder::new().spawn_on(future, handle)
}

/// Runs a blocking closure on tokio's blocking pool, like [`tokio::task::spawn_blocking`].
///
/// Tasks spawned from inside the closure belong to the same test.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = leak_check::spawn_blocking(|| (1..=10).sum::<u32>()).await.unwrap();
/// assert_eq!(sum, 55);
/// # }
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Builder::new().spawn_blocking(f)
}

/// Runs a blocking closure on the blocking pool of the runtime behind `handle`, like
/// [`Handle::spawn_blocking`].
///
/// ```
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let task = leak_check::spawn_blocking_on(|| 6 * 7, runtime.handle());
/// assert_eq!(runtime.block_on(task).unwrap(), 42);
/// ```
#[track_caller]
pub fn spawn_blocking_on<F, R>(f: F, handle: &Handle) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Builder::new().spawn_blocking_on(f, handle)
}

/// Spawns a `!Send` task on the current [`tokio::task::LocalSet`], like
/// [`tokio::task::spawn_local`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let local = tokio::task::LocalSet::new();
/// let value = local
///     .run_until(async { leak_check::spawn_local(async { std::rc::Rc::new(5) }).await.unwrap() })
///     .await;
/// assert_eq!(*value, 5);
/// # }
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Builder::new().spawn_local(future)
}

/// Spawns a task into a [`JoinSet`], like [`JoinSet::spawn`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut set = tokio::task::JoinSet::new();
/// leak_check::spawn_in(&mut set, async { 7 });
/// assert_eq!(set.join_next().await.unwrap().unwrap(), 7);
/// # }
/// ```
#[track_caller]
pub fn spawn_in<T, F>(set: &mut JoinSet<T>, future: F) -> AbortHandle
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn_in(set, future)
}

/// Spawns background work that is meant to run for the whole test and beyond its body: a
/// server, a ticker. It is never reported as a leak, and it is aborted and dropped when the test
/// ends, after the check. Tasks it spawns are background work too.
///
/// ```
/// use leak_check::leak_check;
///
/// #[leak_check]
/// async fn talks_to_a_server() {
///     let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
///     leak_check::spawn_background(async move { while rx.recv().await.is_some() {} });
///     tx.send(1).await.unwrap();
///     // `tx` lives on in the test's fixtures; the server is stopped when the test ends.
///     std::mem::forget(tx);
/// }
/// ```
#[track_caller]
pub fn spawn_background<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Builder::new().background().spawn(future)
}

/// Spawns tasks with options, such as a name that the leak report shows.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = leak_check::Builder::new().name("flusher").spawn(async { 3 });
/// assert_eq!(handle.await.unwrap(), 3);
/// # }
/// ```
#[derive(Debug, Default, Clone)]
#[must_use = "a Builder does nothing until one of its spawn methods is called"]
pub struct Builder {
    #[cfg_attr(not(feature = "tracking"), allow(dead_code))]
    name: Option<Cow<'static, str>>,
    #[cfg_attr(not(feature = "tracking"), allow(dead_code))]
    background: bool,
}

impl Builder {
    /// A builder with no options set.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Names the task; the leak report shows the name beside the spawn site.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Marks the task as background work meant to outlive the test's body, like
    /// [`spawn_background`]: never reported, always aborted when the test ends.
    pub fn background(mut self) -> Self {
        self.background = true;
        self
    }

    /// Spawns like [`spawn`].
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        #[cfg(feature = "tracking")]
        let future = match self.track(future, TaskKind::Async, None) {
            Ok((task, record)) => {
                let join = {
                    let _tracked = SpawningTracked::begin();
                    tokio::spawn(task)
                };
                record.set_abort_handle(join.abort_handle());
                return join;
            }
            Err(future) => future,
        };
        tokio::spawn(future)
    }

    /// Spawns like [`spawn_on`].
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        #[cfg(feature = "tracking")]
        let future = match self.track(future, TaskKind::Async, Some(handle)) {
            Ok((task, record)) => {
                let join = {
                    let _tracked = SpawningTracked::begin();
                    handle.spawn(task)
                };
                record.set_abort_handle(join.abort_handle());
                return join;
            }
            Err(future) => future,
        };
        handle.spawn(future)
    }

    /// Spawns like [`spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        #[cfg(feature = "tracking")]
        if let Some((registration, record)) = self.register(TaskKind::Blocking, None) {
            let task = tracked::Blocking::new(registration, f);
            let join = {
                let _tracked = SpawningTracked::begin();
                tokio::task::spawn_blocking(move || task.run())
            };
            record.set_abort_handle(join.abort_handle());
            return join;
        }
        tokio::task::spawn_blocking(f)
    }

    /// Spawns a blocking closure onto the runtime behind `handle`, like
    /// [`Handle::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking_on<F, R>(self, f: F, handle: &Handle) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        #[cfg(feature = "tracking")]
        if let Some((registration, record)) = self.register(TaskKind::Blocking, Some(handle)) {
            let task = tracked::Blocking::new(registration, f);
            let join = {
                let _tracked = SpawningTracked::begin();
                handle.spawn_blocking(move || task.run())
            };
            record.set_abort_handle(join.abort_handle());
            return join;
        }
        handle.spawn_blocking(f)
    }

    /// Spawns like [`spawn_local`].
    #[track_caller]
    pub fn spawn_local<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        #[cfg(feature = "tracking")]
        let future = match self.track(future, TaskKind::Local, None) {
            Ok((task, record)) => {
                let join = {
                    let _tracked = SpawningTracked::begin();
                    tokio::task::spawn_local(task)
                };
                record.set_abort_handle(join.abort_handle());
                return join;
            }
            Err(future) => future,
        };
        tokio::task::spawn_local(future)
    }

    /// Spawns like [`spawn_in`].
    #[track_caller]
    pub fn spawn_in<T, F>(self, set: &mut JoinSet<T>, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        #[cfg(feature = "tracking")]
        let future = match self.track(future, TaskKind::Async, None) {
            Ok((task, record)) => {
                let abort = {
                    let _tracked = SpawningTracked::begin();
                    set.spawn(task)
                };
                record.set_abort_handle(abort.clone());
                return abort;
            }
            Err(future) => future,
        };
        set.spawn(future)
    }

    /// Wraps an async task about to be spawned here, with its record (to keep tokio's abort
    /// handle in, once the spawn gives it), if a check owns this place; gives the future back
    /// if not.
    #[cfg(feature = "tracking")]
    #[track_caller]
    fn track<F>(
        self,
        future: F,
        kind: TaskKind,
        onto: Option<&Handle>,
    ) -> Result<(Tracked<F>, Arc<TaskRecord>), F> {
        match self.register(kind, onto) {
            Some((registration, record)) => Ok((Tracked::new(future, registration), record)),
            None => Err(future),
        }
    }

    /// Records a task about to be spawned here onto `onto` (`None`: the current runtime), if a
    /// check owns this place; gives its registration and its record (to keep tokio's abort
    /// handle in once the spawn gives it).
    #[cfg(feature = "tracking")]
    #[track_caller]
    fn register(
        self,
        kind: TaskKind,
        onto: Option<&Handle>,
    ) -> Option<(Registration, Arc<TaskRecord>)> {
        let site = std::panic::Location::caller();
        owner::with_current(|owner| {
            let bound = Bound::of(onto);
            let record = TaskRecord::new(owner, site, self.name, kind, bound, self.background);
            let registration = Registration::new(owner.check(), record);
            let record = registration
                .record()
                .expect("a task just registered has not ended")
                .clone();
            (registration, record)
        })
    }
}

/// While alive, leak-check is calling into tokio for a task it tracks already, so tokio's task
/// hooks (with `--cfg tokio_unstable`) do not count it a second time. A guard around the call,
/// not a closure that makes it, so that a panic inside tokio (no runtime here) points at the
/// user's line: tokio's spawn functions are `#[track_caller]`, and closures cannot be.
#[cfg(feature = "tracking")]
struct SpawningTracked {
    #[cfg(tokio_unstable)]
    _hooks: crate::check::hooks::SpawningTracked,
}

#[cfg(feature = "tracking")]
impl SpawningTracked {
    fn begin() -> Self {
        SpawningTracked {
            #[cfg(tokio_unstable)]
            _hooks: crate::check::hooks::SpawningTracked::begin(),
        }
    }
}
