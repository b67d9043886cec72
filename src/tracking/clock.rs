//! The clock of task records. A record reads it on every poll that returns `Pending`, so it must
//! be cheap.
//!
//! On Linux it is the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`, read from the
//! vDSO in about 2 ns, against about 20 for `Instant::now`). Its resolution is one kernel tick,
//! 1 to 10 ms: the report shows ages and idle times in milliseconds to seconds, and the patience
//! given to starved tasks (10 ms) is measured against it with that in mind. Elsewhere it is
//! `Instant`.

use std::time::Duration;

/// Nanoseconds on this clock; never 0, which records use for "never".
pub(crate) fn now() -> u64 {
    read().max(1)
}

/// How long ago `then` (a reading of [`now`]) was, at `now`.
pub(crate) fn since(now: u64, then: u64) -> Duration {
    Duration::from_nanos(now.saturating_sub(then))
}

/// A precise reading on the same clock, for the check's own rare readings: a coarse reading is
/// never later than a precise one taken after it, so [`since`] between a record's stamp and this
/// never falls short of the real time. (The coarse clock may lag by more than a tick when the
/// machine is loaded: starved tasks must not look fresher than they are.)
pub(crate) fn precise_now() -> u64 {
    read_precise().max(1)
}

#[cfg(all(target_os = "linux", feature = "tracking"))]
fn read() -> u64 {
    nanos(rustix::time::ClockId::MonotonicCoarse)
}

#[cfg(all(target_os = "linux", feature = "tracking"))]
fn read_precise() -> u64 {
    nanos(rustix::time::ClockId::Monotonic)
}

#[cfg(all(target_os = "linux", feature = "tracking"))]
fn nanos(clock: rustix::time::ClockId) -> u64 {
    let at = rustix::time::clock_gettime(clock);
    let secs = u64::try_from(at.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(at.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(not(all(target_os = "linux", feature = "tracking")))]
fn read_precise() -> u64 {
    read()
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
        // A precise reading after a coarse one is never behind it.
        let elapsed = super::since(super::precise_now(), first);
        assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
        let later = super::now();
        assert!(later >= first);
        assert_eq!(super::since(first, later), Duration::ZERO);
    }
}
