//! Rate limits: a token bucket per caller and route class, refilled continuously. Chat and
//! upload are stricter than reads; sign-in attempts are limited per client address.
//!
//! Buckets live in this process. With several gateway replicas behind a load balancer set
//! `THINKBANK_RATE_LIMIT_REPLICAS` to their number: each replica then allows its share, so
//! the whole deployment allows about the configured rate (exactly so with an even spread).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::http::{HeaderMap, HeaderValue};

/// Buckets kept before idle (full) ones are dropped.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, clap::Args)]
pub struct LimitSettings {
    /// Reads (GET, search, embeddings) per caller per minute.
    #[arg(long, env = "THINKBANK_RATE_LIMIT_READ_PER_MIN", default_value_t = 600)]
    pub read_per_min: u32,
    /// Changes (delete, cancel, reprocess, admin) per caller per minute.
    #[arg(
        long,
        env = "THINKBANK_RATE_LIMIT_WRITE_PER_MIN",
        default_value_t = 120
    )]
    pub write_per_min: u32,
    /// Uploads per caller per minute.
    #[arg(
        long,
        env = "THINKBANK_RATE_LIMIT_UPLOAD_PER_MIN",
        default_value_t = 60
    )]
    pub upload_per_min: u32,
    /// Chat answers per caller per minute.
    #[arg(long, env = "THINKBANK_RATE_LIMIT_CHAT_PER_MIN", default_value_t = 30)]
    pub chat_per_min: u32,
    /// Sign-in, refresh and registration attempts per client address per minute.
    #[arg(long, env = "THINKBANK_RATE_LIMIT_AUTH_PER_MIN", default_value_t = 20)]
    pub auth_per_min: u32,
    /// Invalid credentials (unknown, revoked or malformed API keys and tokens) per client
    /// address per minute; past it the address gets 429 before its credentials are looked up.
    #[arg(
        long,
        env = "THINKBANK_RATE_LIMIT_INVALID_CREDENTIALS_PER_MIN",
        default_value_t = 60
    )]
    pub invalid_credentials_per_min: u32,
    /// Gateway replicas sharing the limits (each enforces its 1/N share).
    #[arg(long, env = "THINKBANK_RATE_LIMIT_REPLICAS", default_value_t = 1)]
    pub replicas: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            read_per_min: 600,
            write_per_min: 120,
            upload_per_min: 60,
            chat_per_min: 30,
            auth_per_min: 20,
            invalid_credentials_per_min: 60,
            replicas: 1,
        }
    }
}

/// A bucket of requests. Each route declares the class it is counted in (`routes::table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Read,
    Write,
    Upload,
    Chat,
    Auth,
    /// Requests whose credentials were refused, per client address.
    InvalidCredentials,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The outcome of one request against its bucket.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until the next request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
}

impl Decision {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let pairs = [
            ("x-ratelimit-limit", u64::from(self.limit)),
            ("x-ratelimit-remaining", u64::from(self.remaining)),
            ("x-ratelimit-reset", self.reset_secs),
        ];
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from(value));
        }
        if !self.allowed {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_secs.max(1)),
            );
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limiter {
    settings: LimitSettings,
    buckets: Arc<Mutex<HashMap<(String, Class), Bucket>>>,
}

impl Limiter {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            buckets: Arc::default(),
        }
    }

    /// Per-minute allowance of this replica for `class`.
    pub fn limit(&self, class: Class) -> u32 {
        let per_min = match class {
            Class::Read => self.settings.read_per_min,
            Class::Write => self.settings.write_per_min,
            Class::Upload => self.settings.upload_per_min,
            Class::Chat => self.settings.chat_per_min,
            Class::Auth => self.settings.auth_per_min,
            Class::InvalidCredentials => self.settings.invalid_credentials_per_min,
        };
        (per_min / self.settings.replicas.max(1)).max(1)
    }

    /// Takes one token from `key`'s bucket for `class` if there is one.
    pub fn check(&self, key: &str, class: Class) -> Decision {
        self.check_at(key, class, Instant::now(), true)
    }

    /// Whether `key` has a token left in `class`, without taking it.
    pub fn peek(&self, key: &str, class: Class) -> Decision {
        self.check_at(key, class, Instant::now(), false)
    }

    fn check_at(&self, key: &str, class: Class, now: Instant, take: bool) -> Decision {
        let limit = self.limit(class);
        let capacity = f64::from(limit);
        let per_sec = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_sec < capacity
            });
        }
        let bucket = buckets.entry((key.to_owned(), class)).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * per_sec;
        bucket.tokens = (bucket.tokens + refilled).min(capacity);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed && take {
            bucket.tokens -= 1.0;
        }
        let missing = capacity - bucket.tokens;
        let to_next = if allowed {
            0.0
        } else {
            (1.0 - bucket.tokens) / per_sec
        };
        Decision {
            allowed,
            limit,
            remaining: bucket.tokens.floor() as u32,
            reset_secs: (missing / per_sec).ceil() as u64,
            retry_after_secs: to_next.ceil() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(chat: u32, replicas: u32) -> Limiter {
        Limiter::new(LimitSettings {
            chat_per_min: chat,
            replicas,
            ..LimitSettings::default()
        })
    }

    #[test]
    fn a_bucket_allows_its_limit_then_refuses_until_it_refills() {
        let limiter = limiter(3, 1);
        let start = Instant::now();
        for expected_remaining in [2, 1, 0] {
            let d = limiter.check_at("k", Class::Chat, start, true);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
        }
        let refused = limiter.check_at("k", Class::Chat, start, true);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 20);
        // Another caller and another class have their own buckets.
        assert!(limiter.check_at("other", Class::Chat, start, true).allowed);
        assert!(limiter.check_at("k", Class::Read, start, true).allowed);
        let later = start + Duration::from_secs(20);
        assert!(limiter.check_at("k", Class::Chat, later, true).allowed);
    }

    #[test]
    fn replicas_share_the_budget() {
        assert_eq!(limiter(30, 3).limit(Class::Chat), 10);
        assert_eq!(limiter(1, 5).limit(Class::Chat), 1);
    }
}
