//! The clock of task records. A record reads it on every poll that returns `Pending`, so it must
//! be cheap.
//!
//! On Linux it is the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`, read from the
//! vDSO in about 2 ns, against about 20 for `Instant::now`). Its resolution is one kernel tick,
//! 1 to 10 ms: the report shows ages and idle times in milliseconds to seconds, and the patience
//! given to starved tasks (10 ms) is measured against it with that in mind. Elsewhere it is
//! `Instant`.

use std::sync::OnceLock;
use std::time::Duration;

/// Nanoseconds on this clock; never 0, which records use for "never".
pub(crate) fn now() -> u64 {
    read().max(1)
}

/// How long ago `then` (a reading of [`now`]) was, at `now`.
pub(crate) fn since(now: u64, then: u64) -> Duration {
    Duration::from_nanos(now.saturating_sub(then))
}

/// How far [`since`] may fall short of the real time between two readings.
pub(crate) fn resolution() -> Duration {
    static RESOLUTION: OnceLock<Duration> = OnceLock::new();
    *RESOLUTION.get_or_init(read_resolution)
}

#[cfg(all(target_os = "linux", feature = "tracking"))]
fn read() -> u64 {
    use rustix::time::{clock_gettime, ClockId};
    let at = clock_gettime(ClockId::MonotonicCoarse);
    let secs = u64::try_from(at.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(at.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(all(target_os = "linux", feature = "tracking"))]
fn read_resolution() -> Duration {
    let tick = rustix::time::clock_getres(rustix::time::ClockId::MonotonicCoarse);
    let nanos = u64::try_from(tick.tv_nsec).unwrap_or(0);
    // A kernel tick is at most 10 ms (HZ=100); assume the worst if the answer is odd.
    if nanos == 0 || tick.tv_sec != 0 {
        return Duration::from_millis(10);
    }
    Duration::from_nanos(nanos)
}

#[cfg(not(all(target_os = "linux", feature = "tracking")))]
fn read_resolution() -> Duration {
    Duration::ZERO
}

#[cfg(not(all(target_os = "linux", feature = "tracking")))]
fn read() -> u64 {
    use once_cell::sync::Lazy;
    use std::time::Instant;

    static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_clock_moves_on_and_never_reads_zero() {
        let first = super::now();
        assert_ne!(first, 0);
        std::thread::sleep(Duration::from_millis(30));
        let later = super::now();
        // Coarse by up to a kernel tick (at most 10 ms) at each end.
        let elapsed = super::since(later, first);
        assert!(elapsed >= Duration::from_millis(10), "{elapsed:?}");
        assert_eq!(super::since(first, later), Duration::ZERO);
    }
}
