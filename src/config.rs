//! Settings that come from the environment, for a whole run.

use std::time::Duration;

/// The grace period when neither the test nor the environment sets one.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(100);

/// The environment variable that sets the grace period, in milliseconds, for a whole run.
pub const GRACE_ENV: &str = "LEAK_CHECK_GRACE_MS";

/// The grace period for a test: its own setting wins over the environment, which wins over
/// [`DEFAULT_GRACE`].
pub(crate) fn grace(per_test: Option<Duration>) -> Duration {
    per_test
        .or_else(|| grace_from_env(std::env::var(GRACE_ENV).ok().as_deref()))
        .unwrap_or(DEFAULT_GRACE)
}

fn grace_from_env(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    match value.parse::<u64>() {
        Ok(ms) => Some(Duration::from_millis(ms)),
        Err(_) => {
            eprintln!("leak-check: ignoring {GRACE_ENV}={value:?}: expected whole milliseconds, such as 250");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_test_grace_wins_then_env_then_default() {
        assert_eq!(
            grace_from_env(Some("250")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(grace_from_env(Some(" 7 ")), Some(Duration::from_millis(7)));
        assert_eq!(grace_from_env(Some("1s")), None);
        assert_eq!(grace_from_env(None), None);
        assert_eq!(
            grace(Some(Duration::from_millis(3))),
            Duration::from_millis(3)
        );
    }
}
