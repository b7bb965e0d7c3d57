//! Authenticated API keys, remembered briefly so a request signed with a known key costs no
//! database round trip (access tokens never did: they are verified locally).
//!
//! Revocation stays immediate. A trigger on `gateway.api_keys` (migration
//! `…_api_key_changes.sql`) NOTIFYs every gateway on a change that matters to authentication
//! (revoked, deleted, role, scope, hash) and on TRUNCATE; each gateway LISTENs and drops the
//! entry. The gateway that revokes a key also drops it itself before answering. Nothing is
//! cached while the LISTEN connection is down (notifications sent meanwhile are lost), and a
//! lookup that raced with an invalidation does not cache its row. `TTL` bounds what any missed
//! notification could cost.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, postgres::PgListener};
use thinkbank_common::secret::constant_time_eq;
use tokio_util::sync::CancellationToken;

use super::Principal;

/// The NOTIFY channel of the trigger; a payload is a key prefix, or `*` for every key.
pub const CHANNEL: &str = "thinkbank_api_keys";
/// Longest time an entry is trusted without a fresh read.
const TTL: Duration = Duration::from_secs(30);
/// Keys remembered at most; the cache starts over when full.
const CAPACITY: usize = 10_000;
/// Wait before reconnecting a lost LISTEN connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every invalidation: a lookup that began before one does not cache its row.
    epoch: AtomicU64,
    /// Whether invalidations can arrive (the LISTEN connection is up).
    listening: AtomicBool,
}

#[derive(Debug, Clone)]
struct Entry {
    key_hash: Vec<u8>,
    principal: Principal,
    last_used_at: Option<DateTime<Utc>>,
    cached_at: Instant,
}

/// A cache hit: the principal, and whether the key's `last_used_at` is due to be written.
pub struct Hit {
    pub principal: Principal,
    pub touch: bool,
}

impl KeyCache {
    /// The principal of the key with `prefix` and SHA-256 `key_hash`, if known and fresh.
    /// `resolution` is how often `last_used_at` is written per key.
    pub fn get(&self, prefix: &str, key_hash: &[u8], resolution: chrono::TimeDelta) -> Option<Hit> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(prefix)?;
        if entry.cached_at.elapsed() > TTL || !constant_time_eq(&entry.key_hash, key_hash) {
            return None;
        }
        let touch = super::keys::use_is_due(entry.last_used_at, resolution);
        if touch {
            entry.last_used_at = Some(Utc::now());
        }
        Some(Hit {
            principal: entry.principal.clone(),
            touch,
        })
    }

    /// Taken before reading a key from the database; passed back to [`KeyCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Remembers a key read from the database, unless an invalidation happened since `epoch`.
    pub fn insert(
        &self,
        epoch: u64,
        prefix: &str,
        key_hash: Vec<u8>,
        principal: Principal,
        last_used_at: Option<DateTime<Utc>>,
    ) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // Checked under the lock: invalidations bump the epoch while holding it.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            prefix.to_owned(),
            Entry {
                key_hash,
                principal,
                last_used_at,
                cached_at: Instant::now(),
            },
        );
    }

    /// Forgets the key with `prefix` (`*`: every key).
    pub fn invalidate(&self, prefix: &str) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if prefix == "*" {
            entries.clear();
        } else {
            entries.remove(prefix);
        }
        crate::metrics::METRICS.api_key_cache("invalidated");
    }

    fn set_listening(&self, listening: bool) {
        let was = self.listening.swap(listening, Ordering::AcqRel);
        if was && !listening {
            self.invalidate("*");
        }
        crate::metrics::METRICS.api_key_cache_listening(listening);
    }

    /// Keeps a LISTEN connection on [`CHANNEL`] open until `shutdown`, reconnecting after a
    /// loss; entries are only trusted while it is up.
    pub async fn listen(&self, pool: PgPool, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.listen_once(&pool) => {}
            }
            self.set_listening(false);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(RECONNECT_DELAY) => {}
            }
        }
        self.set_listening(false);
    }

    /// One LISTEN connection, until it fails.
    async fn listen_once(&self, pool: &PgPool) {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "API key cache: cannot connect to listen");
                return;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::debug!(%error, "API key cache: LISTEN failed");
            return;
        }
        // A key read while nobody listened may have been revoked unheard: bump the epoch so
        // such reads, still in flight, are not cached.
        self.invalidate("*");
        self.set_listening(true);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => self.invalidate(notification.payload()),
                Ok(None) => {
                    tracing::warn!("API key cache: lost the LISTEN connection; reconnecting");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "API key cache: LISTEN connection failed; reconnecting");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> KeyCache {
        let cache = KeyCache::default();
        cache.listening.store(true, Ordering::Release);
        cache
    }

    fn hour() -> chrono::TimeDelta {
        chrono::TimeDelta::hours(1)
    }

    /// Caches key "abc" (hash `[1; 32]`) as read at `epoch`.
    fn cache_abc(cache: &KeyCache, epoch: u64) {
        cache.insert(epoch, "abc", vec![1; 32], Principal::gateway(), None);
    }

    fn abc_served(cache: &KeyCache) -> bool {
        cache.get("abc", &[1; 32], hour()).is_some()
    }

    #[test]
    fn a_key_is_served_only_with_its_own_hash_and_until_invalidated() {
        let cache = listening();
        cache_abc(&cache, cache.epoch());
        assert!(
            cache.get("abc", &[2; 32], hour()).is_none(),
            "another secret"
        );
        let hit = cache.get("abc", &[1; 32], hour()).map(|h| h.touch);
        assert_eq!(hit, Some(true), "never used: due to be recorded");
        let hit = cache.get("abc", &[1; 32], hour()).map(|h| h.touch);
        assert_eq!(hit, Some(false), "recorded a moment ago");
        cache.invalidate("abc");
        assert!(!abc_served(&cache));
    }

    #[test]
    fn a_read_that_raced_with_an_invalidation_is_not_cached() {
        let cache = listening();
        let epoch = cache.epoch();
        cache.invalidate("abc"); // the key changed while its row was being read
        cache_abc(&cache, epoch);
        assert!(!abc_served(&cache));
    }

    #[test]
    fn nothing_is_cached_or_served_without_a_listener() {
        let cache = listening();
        cache_abc(&cache, cache.epoch());
        cache.set_listening(false);
        assert!(!abc_served(&cache));
        cache_abc(&cache, cache.epoch());
        cache.listening.store(true, Ordering::Release);
        assert!(!abc_served(&cache));
    }
}
