//! The synchronization the protocol is built from: std's atomics and parking_lot's `Mutex` in
//! normal builds, loom's mocked types in the lib's tests under `--cfg leak_check_loom`, so that the models in
//! `tracking::loom` explore every interleaving of the very code that runs in tests.
//!
//! Only what the protocol (see the module doc of `tracking`) relies on goes through here; `Arc`
//! stays std's. Reference counts decide nothing the invariants rest on: whether an ended task's
//! record can be kept as a spare is `Arc::get_mut`'s call, whose exclusivity std guarantees, and
//! the report reads a record's count only to tell a task nothing can wake from one waiting.

#[cfg(not(all(test, leak_check_loom)))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(all(test, leak_check_loom))]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// A mutex without poisoning: a panic while it is held cannot leave the bookkeeping half
/// written (no code that holds it calls user code).
pub(crate) struct Mutex<T>(
    #[cfg(not(all(test, leak_check_loom)))] parking_lot::Mutex<T>,
    #[cfg(all(test, leak_check_loom))] loom::sync::Mutex<T>,
);

#[cfg(not(all(test, leak_check_loom)))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

#[cfg(all(test, leak_check_loom))]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(all(test, leak_check_loom)))]
        return Mutex(parking_lot::Mutex::new(value));
        #[cfg(all(test, leak_check_loom))]
        return Mutex(loom::sync::Mutex::new(value));
    }

    /// The value, through an exclusive reference: no lock needed.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(not(all(test, leak_check_loom)))]
        return self.0.get_mut();
        #[cfg(all(test, leak_check_loom))]
        return self
            .0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(all(test, leak_check_loom)))]
        return self.0.lock();
        #[cfg(all(test, leak_check_loom))]
        return self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}
