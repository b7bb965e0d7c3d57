//! The audit log's hash chain, verifiable by anyone holding the database and the key: the
//! gateway (which writes the chain and serves `/api/v1/audit/verify`) and the CLI (`thinkbank
//! audit verify`, which checks it without trusting a gateway).
//!
//! `entry_hash = HMAC-SHA-256(key, prev_hash ‖ canonical(entry))`, so changing, removing or
//! reordering any stored entry breaks every link after it, and `verify` names the first broken
//! one. Entries written before the chain was keyed are unkeyed (`SHA-256(prev_hash ‖
//! canonical(entry))`, `keyed = false`) and accepted only before the first keyed entry.

use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// The chain's anchor: the `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// Shortest accepted audit key, in bytes (the SHA-256 block is 64; 32 bytes of randomness is
/// the usual floor for an HMAC-SHA-256 key).
pub const MIN_KEY_BYTES: usize = 32;

/// The HMAC key of the chain. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct AuditKey(Arc<[u8]>);

impl AuditKey {
    /// A key of at least `MIN_KEY_BYTES` bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the audit key must be at least {MIN_KEY_BYTES} bytes (it has {})",
                bytes.len()
            ));
        }
        Ok(Self(Arc::from(bytes)))
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// One stored entry of `gateway.audit_log`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AuditEntry))]
pub struct Entry {
    pub seq: i64,
    pub at_micros: i64,
    pub tenant_id: Uuid,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    #[serde(skip)]
    pub prev_hash: Vec<u8>,
    #[serde(skip)]
    pub entry_hash: Vec<u8>,
    /// Linked with the HMAC (true) or, before the chain was keyed, with plain SHA-256.
    #[serde(skip)]
    pub keyed: bool,
}

impl Entry {
    /// The bytes that are hashed: every column but the hashes, unambiguously separated.
    fn canonical(&self) -> String {
        serde_json::json!([
            self.seq,
            self.at_micros,
            self.tenant_id,
            self.actor,
            self.action,
            self.target,
            self.details
        ])
        .to_string()
    }

    fn unkeyed_hash(&self, prev_hash: &[u8]) -> Vec<u8> {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash);
        hasher.update(self.canonical().as_bytes());
        hasher.finalize().to_vec()
    }

    fn keyed_hash(&self, key: &AuditKey, prev_hash: &[u8]) -> Vec<u8> {
        // Any key length is valid for HMAC, so this cannot fail; an empty tag would only make
        // verification fail, never pass.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
            return Vec::new();
        };
        mac.update(prev_hash);
        mac.update(self.canonical().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The hash that links this entry to `prev_hash`: keyed when the entry says it is keyed
    /// and a key is given, else unkeyed (a keyed entry checked without its key then fails).
    pub fn link_hash(&self, key: Option<&AuditKey>, prev_hash: &[u8]) -> Vec<u8> {
        match (self.keyed, key) {
            (true, Some(key)) => self.keyed_hash(key, prev_hash),
            _ => self.unkeyed_hash(prev_hash),
        }
    }
}

/// The verdict on the whole chain.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AuditVerification))]
pub struct Verification {
    pub ok: bool,
    pub entries_checked: u64,
    /// The first entry whose link is broken, if any.
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
    /// The first entry linked with the key; entries before it were written before the chain
    /// was keyed and are protected by this entry's link to them.
    pub keyed_from_seq: Option<i64>,
}

/// Walks the whole chain in order and reports the first broken link. Keyed entries are
/// checked with `key`; without one they cannot be checked, which is reported as broken.
pub async fn verify(pool: &PgPool, key: Option<&AuditKey>) -> Result<Verification, sqlx::Error> {
    use futures::TryStreamExt as _;
    let mut rows = sqlx::query_as::<_, Entry>(
        "SELECT seq, at_micros, tenant_id, actor, action, target, details, prev_hash, \
                entry_hash, keyed \
         FROM gateway.audit_log ORDER BY seq",
    )
    .fetch(pool);
    let mut checked = 0u64;
    let mut prev_seq = 0i64;
    let mut prev_hash = GENESIS.to_vec();
    let mut keyed_from_seq = None;
    let broken = |checked, seq, reason, keyed_from_seq| Verification {
        ok: false,
        entries_checked: checked,
        first_broken_seq: Some(seq),
        reason: Some(reason),
        keyed_from_seq,
    };
    while let Some(entry) = rows.try_next().await? {
        let broken_here = if entry.seq != prev_seq + 1 {
            Some(format!(
                "entry {} follows entry {prev_seq}: entries are missing",
                entry.seq
            ))
        } else if entry.prev_hash != prev_hash {
            Some(format!(
                "entry {} does not link to the hash of entry {prev_seq}",
                entry.seq
            ))
        } else if !entry.keyed && keyed_from_seq.is_some() {
            Some(format!(
                "entry {} is not keyed but follows keyed entries: the chain was rewritten",
                entry.seq
            ))
        } else if entry.keyed && key.is_none() {
            Some(format!(
                "entry {} is keyed and no audit key is configured to check it",
                entry.seq
            ))
        } else if entry.entry_hash != entry.link_hash(key, &prev_hash) {
            Some(format!(
                "entry {} was changed after it was written",
                entry.seq
            ))
        } else {
            None
        };
        if let Some(reason) = broken_here {
            return Ok(broken(checked, entry.seq, reason, keyed_from_seq));
        }
        if entry.keyed && keyed_from_seq.is_none() {
            keyed_from_seq = Some(entry.seq);
        }
        checked += 1;
        prev_seq = entry.seq;
        prev_hash = entry.entry_hash;
    }
    // A gateway with a key always leaves the chain ending keyed (its `seal_unkeyed`), so a
    // non-empty chain without a keyed entry had its keyed part rewritten without the key.
    if key.is_some() && checked > 0 && keyed_from_seq.is_none() {
        return Ok(broken(
            checked,
            prev_seq,
            format!("no entry up to {prev_seq} is keyed: the chain was rewritten without the key"),
            None,
        ));
    }
    Ok(Verification {
        ok: true,
        entries_checked: checked,
        first_broken_seq: None,
        reason: None,
        keyed_from_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(keyed: bool) -> Entry {
        Entry {
            seq: 1,
            at_micros: 1_700_000_000_000_000,
            tenant_id: Uuid::from_u128(1),
            actor: "admin".into(),
            action: "key.create".into(),
            target: "key:1".into(),
            details: "{}".into(),
            prev_hash: GENESIS.to_vec(),
            entry_hash: Vec::new(),
            keyed,
        }
    }

    #[test]
    fn a_short_key_is_refused_and_debug_never_shows_the_key() {
        assert!(AuditKey::new(&[7; MIN_KEY_BYTES - 1]).is_err());
        let key = AuditKey::new(&[7; MIN_KEY_BYTES]).unwrap();
        assert_eq!(format!("{key:?}"), "AuditKey(..)");
    }

    #[test]
    fn keyed_links_depend_on_the_key_and_unkeyed_links_do_not() {
        let (a, b) = (
            AuditKey::new(&[1; 32]).unwrap(),
            AuditKey::new(&[2; 32]).unwrap(),
        );
        let keyed = entry(true);
        assert_ne!(
            keyed.link_hash(Some(&a), &GENESIS),
            keyed.link_hash(Some(&b), &GENESIS)
        );
        // Without the key a keyed entry is hashed unkeyed, which never matches its keyed link.
        assert_ne!(
            keyed.link_hash(None, &GENESIS),
            keyed.link_hash(Some(&a), &GENESIS)
        );
        let unkeyed = entry(false);
        assert_eq!(
            unkeyed.link_hash(Some(&a), &GENESIS),
            unkeyed.link_hash(None, &GENESIS)
        );
        assert_eq!(unkeyed.link_hash(None, &GENESIS).len(), 32);
    }
}
