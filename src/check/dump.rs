//! Where each straggler is stuck: its async backtrace from tokio's task dump. Needs
//! `--cfg tokio_unstable`, the `taskdump` feature and Linux (x86, x86_64, aarch64 or s390x);
//! elsewhere this compiles to nothing and reports carry no backtraces.

use std::collections::HashMap;

use tokio::runtime::Handle;
use tokio::task::Id;

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

where_taskdump! {
    /// Whether this build can take task dumps.
    pub(crate) const ENABLED: bool = true;
    /// Whether this build can take task dumps.
    pub(crate) const ENABLED: bool = false;
}

where_taskdump! {
    /// The backtrace of each task of `handle`'s runtime, by task id. Taken only when something
    /// leaked; bounded in real time, since a dump waits for every worker and one may be blocked.
    pub(crate) async fn traces(handle: &Handle) -> HashMap<Id, String> {
        use std::time::{Duration, Instant};
        const DUMP_TIMEOUT: Duration = Duration::from_secs(2);
        let dump = crate::check::wait::TimeLimited::new(handle.dump(), Instant::now() + DUMP_TIMEOUT).await;
        dump.map(|dump| {
            dump.tasks()
                .iter()
                .map(|task| (task.id(), task.trace().to_string()))
                .collect()
        })
        .unwrap_or_default()
    }
    /// Without task dumps, no backtraces.
    pub(crate) async fn traces(_handle: &Handle) -> HashMap<Id, String> {
        HashMap::new()
    }
}
