//! Failed sign-ins per account name. The per-address limit does not stop a password guesser
//! who spreads over many addresses (a botnet, or IPv6 prefixes), so every name also has its
//! own count: after `THINKBANK_LOGIN_MAX_FAILURES` consecutive failures the name is locked
//! for `THINKBANK_LOGIN_LOCKOUT_SECS`, doubling with each further lockout up to an hour.
//! While locked, every attempt (even with the right password) answers 429 with `Retry-After`
//! before any password is checked.
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
/// Failures older than this (with no lock since) no longer count.
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
    lockouts: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
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

    /// `Err(seconds to wait)` while `name` is locked.
    pub fn check(&self, name: &str) -> Result<(), u64> {
        self.check_at(name, Instant::now())
    }

    fn check_at(&self, name: &str, now: Instant) -> Result<(), u64> {
        match self.accounts().get(name).and_then(|a| a.locked_until) {
            Some(until) if until > now => Err(until.duration_since(now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    /// Counts a failure; `Some(seconds)` when it locked the name.
    pub fn failed(&self, name: &str) -> Option<u64> {
        self.failed_at(name, Instant::now())
    }

    fn failed_at(&self, name: &str, now: Instant) -> Option<u64> {
        if self.settings.login_max_failures == 0 {
            return None;
        }
        let mut accounts = self.accounts();
        if accounts.len() >= MAX_ACCOUNTS {
            accounts.retain(|_, a| {
                a.locked_until.is_some_and(|t| t > now)
                    || now.duration_since(a.last_failure) < FORGET_AFTER
            });
        }
        let account = accounts.entry(name.to_owned()).or_insert(Account {
            failures: 0,
            lockouts: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.duration_since(account.last_failure) >= FORGET_AFTER {
            account.failures = 0;
            account.lockouts = 0;
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

    /// A successful sign-in clears the name's count.
    pub fn succeeded(&self, name: &str) {
        self.accounts().remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_locks_after_its_failures_and_each_lock_doubles() {
        let throttle = LoginThrottle::new(LoginSettings {
            login_max_failures: 3,
            login_lockout_secs: 10,
        });
        let start = Instant::now();
        assert_eq!(throttle.failed_at("alice", start), None);
        assert_eq!(throttle.failed_at("alice", start), None);
        assert_eq!(throttle.check_at("alice", start), Ok(()));
        assert_eq!(throttle.failed_at("alice", start), Some(10));
        assert_eq!(throttle.check_at("alice", start), Err(10));
        assert_eq!(
            throttle.check_at("bob", start),
            Ok(()),
            "other names are free"
        );
        let later = start + Duration::from_secs(11);
        assert_eq!(throttle.check_at("alice", later), Ok(()));
        for _ in 0..2 {
            assert_eq!(throttle.failed_at("alice", later), None);
        }
        assert_eq!(throttle.failed_at("alice", later), Some(20), "doubled");
        throttle.succeeded("alice");
        assert_eq!(throttle.check_at("alice", later), Ok(()));
    }

    #[test]
    fn locks_never_exceed_an_hour_and_zero_failures_disables_the_lock() {
        let throttle = LoginThrottle::new(LoginSettings {
            login_max_failures: 1,
            login_lockout_secs: 1000,
        });
        let now = Instant::now();
        let locks: Vec<_> = (0..40)
            .filter_map(|_| throttle.failed_at("x", now))
            .collect();
        assert_eq!(locks.first(), Some(&1000));
        assert!(locks.iter().all(|l| *l <= 3600), "{locks:?}");
        let off = LoginThrottle::new(LoginSettings {
            login_max_failures: 0,
            login_lockout_secs: 60,
        });
        for _ in 0..100 {
            assert_eq!(off.failed_at("x", now), None);
        }
        assert_eq!(off.check_at("x", now), Ok(()));
    }
}
