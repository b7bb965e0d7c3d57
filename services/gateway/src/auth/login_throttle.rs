//! Failed sign-ins per account name. The per-address limit does not stop a password guesser
//! who spreads over many addresses (a botnet, or IPv6 prefixes), so every name also has its
//! own count: after `THINKBANK_LOGIN_MAX_FAILURES` consecutive failures the name is locked
//! for `THINKBANK_LOGIN_LOCKOUT_SECS`, doubling with each further lockout up to an hour.
//! While locked, every attempt (even with the right password) answers 429 with `Retry-After`
//! before any password is checked. Attempts still being checked count too, so a burst of
//! concurrent guesses cannot all pass the check before the first failure is recorded.
//!
//! Names are counted whether or not an account has them, so the answer never tells which
//! exist. The trade-off is the usual one: someone who knows a name can keep its owner locked
//! out; the lock is short and doubles only for as long as the failures go on. State lives in
//! this process (each replica counts its own).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Names tracked before idle ones are forgotten.
const MAX_ACCOUNTS: usize = 100_000;
/// Failures are forgotten this long after the last one (or the end of the last lock).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The longest lock.
const MAX_LOCK: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, clap::Args)]
pub struct LoginSettings {
    /// Consecutive failed sign-ins of one account name before it is locked (0: never).
    #[arg(long, env = "THINKBANK_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,
    /// First lock of an account name, in seconds; each further lock doubles it (up to 1 h).
    #[arg(long, env = "THINKBANK_LOGIN_LOCKOUT_SECS", default_value_t = 60)]
    pub login_lockout_secs: u64,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            login_max_failures: 5,
            login_lockout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Account {
    failures: u32,
    /// Attempts begun and not yet ended.
    pending: u32,
    lockouts: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

impl Account {
    /// When the name last gave reason for suspicion: its last failure or the end of its lock.
    fn quiet_since(&self) -> Instant {
        self.locked_until
            .map_or(self.last_failure, |t| t.max(self.last_failure))
    }
}

/// One sign-in attempt in progress; ending it (or dropping it, if the request is abandoned)
/// releases its place.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    name: String,
    ended: bool,
}

impl Attempt<'_> {
    /// The password was wrong (or the account unknown); `Some(seconds)` when that locked the
    /// name.
    pub fn failed(mut self) -> Option<u64> {
        self.ended = true;
        self.throttle.end(&self.name, false, Instant::now())
    }

    /// Signed in: the name's count is cleared.
    pub fn succeeded(mut self) {
        self.ended = true;
        self.throttle.end(&self.name, true, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let mut accounts = self.throttle.accounts();
            if let Some(account) = accounts.get_mut(&self.name) {
                account.pending = account.pending.saturating_sub(1);
            }
        }
    }
}

#[derive(Debug)]
pub struct LoginThrottle {
    settings: LoginSettings,
    accounts: Mutex<HashMap<String, Account>>,
}

impl LoginThrottle {
    pub fn new(settings: LoginSettings) -> Self {
        Self {
            settings,
            accounts: Mutex::default(),
        }
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts an attempt for `name`, or `Err(seconds to wait)` while the name is locked or
    /// as many attempts are being checked as failures remain before the lock.
    pub fn begin(&self, name: &str) -> Result<Attempt<'_>, u64> {
        self.begin_at(name, Instant::now()).map(|()| Attempt {
            throttle: self,
            name: name.to_owned(),
            ended: false,
        })
    }

    fn begin_at(&self, name: &str, now: Instant) -> Result<(), u64> {
        let max = self.settings.login_max_failures;
        let mut accounts = self.accounts();
        if accounts.len() >= MAX_ACCOUNTS {
            accounts.retain(|_, a| {
                a.pending > 0 || now.saturating_duration_since(a.quiet_since()) < FORGET_AFTER
            });
        }
        let account = accounts.entry(name.to_owned()).or_insert(Account {
            failures: 0,
            pending: 0,
            lockouts: 0,
            last_failure: now,
            locked_until: None,
        });
        if let Some(until) = account.locked_until.filter(|t| *t > now) {
            return Err(until.duration_since(now).as_secs().max(1));
        }
        if now.saturating_duration_since(account.quiet_since()) >= FORGET_AFTER {
            account.failures = 0;
            account.lockouts = 0;
        }
        if max > 0 && account.failures.saturating_add(account.pending) >= max {
            // The attempts in flight could each be the failure that locks the name.
            return Err(1);
        }
        account.pending += 1;
        Ok(())
    }

    /// Ends an attempt; `Some(seconds)` when its failure locked the name.
    fn end(&self, name: &str, succeeded: bool, now: Instant) -> Option<u64> {
        let mut accounts = self.accounts();
        let account = accounts.get_mut(name)?;
        account.pending = account.pending.saturating_sub(1);
        if succeeded {
            if account.pending == 0 {
                accounts.remove(name);
            } else {
                account.failures = 0;
                account.lockouts = 0;
            }
            return None;
        }
        if self.settings.login_max_failures == 0 {
            return None;
        }
        account.last_failure = now;
        account.failures += 1;
        if account.failures < self.settings.login_max_failures {
            return None;
        }
        let first = Duration::from_secs(self.settings.login_lockout_secs.max(1));
        let lock = first
            .saturating_mul(1u32.checked_shl(account.lockouts).unwrap_or(u32::MAX))
            .min(MAX_LOCK);
        account.failures = 0;
        account.lockouts = account.lockouts.saturating_add(1);
        account.locked_until = Some(now + lock);
        Some(lock.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(max: u32, lockout: u64) -> LoginThrottle {
        LoginThrottle::new(LoginSettings {
            login_max_failures: max,
            login_lockout_secs: lockout,
        })
    }

    /// One failed attempt at `now`.
    fn fail(t: &LoginThrottle, name: &str, now: Instant) -> Result<Option<u64>, u64> {
        t.begin_at(name, now)?;
        Ok(t.end(name, false, now))
    }

    #[test]
    fn a_name_locks_after_its_failures_and_each_lock_doubles() {
        let throttle = with(3, 10);
        let start = Instant::now();
        assert_eq!(fail(&throttle, "alice", start), Ok(None));
        assert_eq!(fail(&throttle, "alice", start), Ok(None));
        assert_eq!(fail(&throttle, "alice", start), Ok(Some(10)));
        assert_eq!(throttle.begin_at("alice", start), Err(10));
        assert_eq!(
            throttle.begin_at("bob", start),
            Ok(()),
            "other names are free"
        );
        let later = start + Duration::from_secs(11);
        assert_eq!(fail(&throttle, "alice", later), Ok(None));
        assert_eq!(fail(&throttle, "alice", later), Ok(None));
        assert_eq!(fail(&throttle, "alice", later), Ok(Some(20)), "doubled");
        let much_later = later + Duration::from_secs(21);
        assert_eq!(throttle.begin_at("alice", much_later), Ok(()));
        assert_eq!(throttle.end("alice", true, much_later), None);
        for _ in 0..2 {
            assert_eq!(
                fail(&throttle, "alice", much_later),
                Ok(None),
                "count cleared"
            );
        }
    }

    #[test]
    fn attempts_in_flight_count_so_a_burst_cannot_outrun_the_lock() {
        let throttle = with(3, 10);
        let burst: Vec<_> = (0..10)
            .filter_map(|_| throttle.begin("carol").ok())
            .collect();
        assert_eq!(burst.len(), 3, "only as many as failures remain");
        let mut outcomes: Vec<_> = burst.into_iter().map(Attempt::failed).collect();
        assert_eq!(outcomes.pop(), Some(Some(10)), "the third failure locks");
        assert!(throttle.begin("carol").is_err());
        // An abandoned attempt gives its place back.
        let abandoned = with(3, 10);
        drop(abandoned.begin("dave"));
        for _ in 0..3 {
            assert!(abandoned.begin("dave").map(Attempt::failed).is_ok());
        }
    }

    #[test]
    fn locks_never_exceed_an_hour_and_zero_failures_disables_the_lock() {
        let throttle = with(1, 1000);
        let mut now = Instant::now();
        let mut locks = Vec::new();
        for _ in 0..40 {
            if let Ok(Some(lock)) = fail(&throttle, "x", now) {
                locks.push(lock);
                now += Duration::from_secs(lock + 1);
            }
        }
        assert_eq!(locks.first(), Some(&1000));
        assert_eq!(locks.last(), Some(&3600));
        assert!(locks.iter().all(|l| *l <= 3600), "{locks:?}");
        let off = throttle_off();
        for _ in 0..100 {
            assert_eq!(fail(&off, "x", now), Ok(None));
        }
    }

    fn throttle_off() -> LoginThrottle {
        with(0, 60)
    }
}
