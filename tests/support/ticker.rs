//! A helper in a file of its own, so an allow-list can name its spawn site by path.

use std::time::Duration;

/// Prints `message` to stderr when dropped, so a test can see that a task was stopped.
pub struct SaysWhenDropped(pub &'static str);

impl Drop for SaysWhenDropped {
    fn drop(&mut self) {
        eprintln!("{}", self.0);
    }
}

/// A ticker that never stops by itself.
pub fn start_ticker() {
    leak_check::spawn(async {
        let _guard = SaysWhenDropped("ticker dropped");
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
        }
    });
}
