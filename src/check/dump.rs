//! Taking a task dump of the test's runtime when something leaked: each straggler's async
//! backtrace, which the report reads (`report::dump`).

use std::collections::HashMap;

use tokio::runtime::Handle;
use tokio::task::Id;

use crate::report::dump::where_taskdump;

where_taskdump! {
    /// The backtrace of each task of `handle`'s runtime, by task id ([`crate::report::dump::NO_TRACE`] for a task
    /// the dump holds none for). Taken only when something leaked; bounded in real time, since a
    /// dump waits for every worker and one may be blocked: if it times out, there are none.
    pub(crate) async fn traces(handle: &Handle) -> HashMap<Id, String> {
        use std::time::{Duration, Instant};
        const DUMP_TIMEOUT: Duration = Duration::from_secs(2);
        let dump = super::wait::TimeLimited::new(handle.dump(), Instant::now() + DUMP_TIMEOUT).await;
        dump.map(|dump| {
            dump.tasks()
                .iter()
                .map(|task| {
                    let trace = task.trace().to_string();
                    let trace = if trace.trim().is_empty() { crate::report::dump::NO_TRACE.to_owned() } else { trace };
                    (task.id(), trace)
                })
                .collect()
        })
        .unwrap_or_default()
    }
    /// Without task dumps, no backtraces.
    pub(crate) async fn traces(_handle: &Handle) -> HashMap<Id, String> {
        HashMap::new()
    }
}
