//! A circuit breaker for the LLM provider: after `threshold` consecutive failed attempts it
//! opens and every call fails fast (UNAVAILABLE) for `cooldown`; then one trial call is let
//! through (half-open) — its success closes the breaker, its failure opens it again.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while calls must fail fast. Does not claim the half-open trial.
    pub fn is_open(&self) -> bool {
        let state = self.lock();
        match state.open_until {
            Some(until) => Instant::now() < until,
            None => false,
        }
    }

    /// Asks to make a call: false means fail fast. After the cooldown the first caller gets
    /// the half-open trial and the others keep failing fast for another cooldown (so a trial
    /// whose caller vanished without reporting cannot hold the breaker open forever).
    pub fn try_acquire(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        match state.open_until {
            None => true,
            Some(until) if now >= until => {
                state.open_until = Some(now + self.cooldown);
                true
            }
            Some(_) => false,
        }
    }

    pub fn record_success(&self) {
        *self.lock() = State::default();
    }

    pub fn record_failure(&self) {
        let mut state = self.lock();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        if state.open_until.is_some() || state.consecutive_failures >= self.threshold {
            state.open_until = Some(Instant::now() + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_failures_and_half_opens_after_cooldown() {
        let breaker = Breaker::new(2, Duration::from_millis(30));
        assert!(breaker.try_acquire());
        breaker.record_failure();
        assert!(!breaker.is_open());
        breaker.record_failure();
        assert!(breaker.is_open());
        assert!(!breaker.try_acquire());
        std::thread::sleep(Duration::from_millis(40));
        // One trial goes through, the next caller still fails fast.
        assert!(breaker.try_acquire());
        assert!(!breaker.try_acquire());
        breaker.record_failure();
        assert!(breaker.is_open());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.try_acquire());
        breaker.record_success();
        assert!(!breaker.is_open());
        assert!(breaker.try_acquire());
    }
}
