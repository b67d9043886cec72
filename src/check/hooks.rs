//! Every task, with its site, without code changes: built with `--cfg tokio_unstable`, the
//! runtimes leak-check builds install tokio's task hooks, so that tasks spawned with plain
//! `tokio::spawn` (by the test, or by a dependency) are tracked like the rest: owned by lineage,
//! reported with the site tokio records for them, their polls counted. Their wakers are tokio's,
//! so whether anything can wake them is not known.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::runtime::TaskMeta;
use tokio::task::Id;

use crate::tracking::owner::{self as ownership, Entered, Owner};
use crate::tracking::record::{Bound, TaskKind};
use crate::tracking::tracked::Registration;
use crate::tracking::{CheckCore, TaskRecord};

/// A plain task being polled on this thread, and the owner entered for it.
type Polling = Option<(Arc<TaskRecord>, Entered)>;

thread_local! {
    /// Set while leak-check's own spawn functions call tokio: those tasks are tracked already.
    static SPAWNING_TRACKED: Cell<bool> = const { Cell::new(false) };
    /// The owner entered for each plain task being polled on this thread, innermost last.
    static POLLING: RefCell<Vec<Polling>> = const { RefCell::new(Vec::new()) };
}

/// While alive, leak-check's own spawn functions are calling tokio: those tasks are tracked
/// already, and the hooks leave them alone.
pub(crate) struct SpawningTracked {
    /// What the flag was before, restored on drop.
    was: bool,
}

impl SpawningTracked {
    pub(crate) fn begin() -> Self {
        SpawningTracked {
            was: SPAWNING_TRACKED
                .try_with(|flag| flag.replace(true))
                .unwrap_or(false),
        }
    }
}

impl Drop for SpawningTracked {
    fn drop(&mut self) {
        let _ = SPAWNING_TRACKED.try_with(|flag| flag.set(self.was));
    }
}

/// The plain tasks of one test's runtime.
#[derive(Default)]
pub(crate) struct Hooks {
    check: OnceLock<Arc<CheckCore>>,
    /// The token of the runtime the hooks are installed on (see `owner::runtime_token`).
    runtime_token: u64,
    plain: Mutex<HashMap<Id, Registration>>,
    /// How many plain tasks are alive, so a poll of any other task skips the lock.
    plain_alive: AtomicUsize,
}

impl Hooks {
    /// Installs the hooks on `builder`, whose runtime's threads carry `runtime_token`; attach
    /// the test's check before its body runs.
    pub(crate) fn install(builder: &mut tokio::runtime::Builder, runtime_token: u64) -> Arc<Hooks> {
        let hooks = Arc::new(Hooks {
            runtime_token,
            ..Hooks::default()
        });
        let (spawned, before, after, ended) =
            (hooks.clone(), hooks.clone(), hooks.clone(), hooks.clone());
        builder
            .on_task_spawn(move |meta| spawned.spawned(meta))
            .on_before_task_poll(move |meta| before.before_poll(meta))
            .on_after_task_poll(move |meta| after.after_poll(meta))
            .on_task_terminate(move |meta| ended.terminated(meta));
        hooks
    }

    pub(crate) fn attach(&self, check: Arc<CheckCore>) {
        let _ = self.check.set(check);
    }

    fn spawned(&self, meta: &TaskMeta<'_>) {
        if SPAWNING_TRACKED.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        let Some(check) = self.check.get() else {
            return;
        };
        // By lineage where it is known; otherwise the test owns its runtime's tasks.
        let owner =
            ownership::with_current(Owner::clone).unwrap_or_else(|| Owner::Body(check.clone()));
        let record = TaskRecord::new(
            &owner,
            meta.spawned_at(),
            None,
            TaskKind::Plain,
            Bound::Token(self.runtime_token),
            false,
        );
        record.note_task_id(meta.id());
        // Counted before it is visible, so a hook that sees it never reads a count of 0.
        self.plain_alive.fetch_add(1, Ordering::SeqCst);
        self.plain
            .lock()
            .insert(meta.id(), Registration::new(owner.check(), record));
    }

    fn before_poll(&self, meta: &TaskMeta<'_>) {
        let record = if self.plain_alive.load(Ordering::SeqCst) == 0 {
            None
        } else {
            self.plain
                .lock()
                .get(&meta.id())
                .and_then(|registration| registration.record().cloned())
        };
        let entered = record.map(|record| {
            record.poll_started(true);
            let entered = ownership::enter_for(Owner::Task(record.clone()), Some(meta.id()));
            (record, entered)
        });
        let _ = POLLING.try_with(|stack| stack.borrow_mut().push(entered));
    }

    fn after_poll(&self, _meta: &TaskMeta<'_>) {
        let popped = POLLING
            .try_with(|stack| stack.borrow_mut().pop())
            .ok()
            .flatten()
            .flatten();
        if let Some((record, entered)) = popped {
            drop(entered);
            record.poll_returned(true);
        }
    }

    fn terminated(&self, meta: &TaskMeta<'_>) {
        if self.plain_alive.load(Ordering::SeqCst) == 0 {
            return;
        }
        let registration = self.plain.lock().remove(&meta.id());
        if registration.is_some() {
            self.plain_alive.fetch_sub(1, Ordering::SeqCst);
        }
        drop(registration);
    }
}
