//! The bookkeeping: which check owns a task, and which of its tasks are alive.

pub(crate) mod clock;
pub(crate) mod cohort;
pub(crate) mod ownership;
pub(crate) mod registry;
pub(crate) mod task;
