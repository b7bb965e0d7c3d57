//! How long a failed job waits before its next attempt, shared by the ingestion queue and
//! collections' model migrations. A leaf: it imports nothing from the worker.

use std::time::Duration;

/// Exponential backoff with a cap: 2 s, 4 s, 8 s, … up to 5 min.
pub fn backoff(attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.clamp(1, 8)).unwrap_or(8);
    Duration::from_secs((1u64 << exponent).min(300))
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert!(backoff(50) <= Duration::from_secs(300));
    }
}
