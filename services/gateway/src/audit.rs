//! The tamper-evident audit log of security-relevant actions. Entries form one chain:
//! `entry_hash = HMAC-SHA-256(key, prev_hash ‖ canonical(entry))`, so changing, removing or
//! reordering any stored entry breaks every link after it, and `verify` names the first broken
//! one. The key (`THINKBANK_AUDIT_KEY`) lives outside the database, so whoever owns only the
//! database cannot recompute the links after an edit.
//!
//! Entries written before the chain was keyed (or by a gateway started with
//! `THINKBANK_INSECURE_NO_AUDIT_KEY`) are unkeyed: `SHA-256(prev_hash ‖ canonical(entry))`,
//! marked `keyed = false`. They are accepted only before the first keyed entry, which links to
//! them, so they cannot be edited either without breaking that keyed link. A gateway with a
//! key appends a keyed `audit.keyed` entry at start when the chain ends unkeyed, and `verify`
//! with a key refuses a non-empty chain with no keyed entry: rewriting the keyed part as
//! unkeyed (a downgrade) is detected too.
//!
//! Every entry is bounded (`MAX_FIELD_CHARS` per text field, `MAX_DETAILS_BYTES` of details)
//! whatever its caller passed: some fields come from anonymous requests (a failed login's
//! username), and one request must not be able to write a megabyte into a table that can
//! never be cleaned up (it refuses DELETE).

use std::sync::Arc;

use chrono::Utc;
use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

/// The chain's anchor: the `prev_hash` of the first entry.
const GENESIS: [u8; 32] = [0; 32];

/// Longest actor, action or target kept, in characters; longer ones are cut and marked.
pub const MAX_FIELD_CHARS: usize = 256;
/// Largest details kept, as JSON bytes; larger details are replaced by a marked prefix.
pub const MAX_DETAILS_BYTES: usize = 4096;

/// `text` cut to `max` characters, with a marker saying how much was left out.
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…[+{} bytes]", &text[..cut], text.len() - cut),
    }
}

/// `details` as stored: the JSON text, or, over `MAX_DETAILS_BYTES`, an object holding its
/// beginning and its size (still valid JSON, so readers need no special case).
fn bounded_details(details: &serde_json::Value) -> String {
    let text = details.to_string();
    if text.len() <= MAX_DETAILS_BYTES {
        return text;
    }
    serde_json::json!({
        "truncated": bounded(&text, MAX_DETAILS_BYTES / 4),
        "bytes": text.len(),
    })
    .to_string()
}

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

/// Where entries go and how they are linked: the pool and, unless the gateway runs with
/// `THINKBANK_INSECURE_NO_AUDIT_KEY`, the key.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub pool: PgPool,
    pub key: Option<AuditKey>,
}

/// One action to record.
#[derive(Debug)]
pub struct Event<'a> {
    pub tenant_id: Uuid,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
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
}

/// Appends `event`. Appends are serialised by a transaction-scoped advisory lock, so the chain
/// never forks under concurrent writers (or gateway replicas).
pub async fn append(log: &AuditLog, event: Event<'_>) -> Result<(), sqlx::Error> {
    let mut tx = log.pool.begin().await?;
    let last = lock_and_read_last(&mut tx).await?;
    insert(&mut tx, log.key.as_ref(), last, event).await?;
    tx.commit().await
}

/// With a key, makes sure the chain ends with a keyed entry, appending `audit.keyed` when it
/// ends unkeyed (entries from before the chain was keyed). From then on `verify` refuses
/// unkeyed entries, so they can be neither edited nor appended by the database owner.
pub async fn seal_unkeyed(log: &AuditLog) -> Result<(), sqlx::Error> {
    let Some(key) = &log.key else {
        return Ok(());
    };
    let mut tx = log.pool.begin().await?;
    let last = lock_and_read_last(&mut tx).await?;
    let Some((seq, _, false)) = last else {
        return Ok(());
    };
    tracing::info!(
        unkeyed_entries = seq,
        "keying the audit chain: entries up to {seq} were linked without a key"
    );
    let event = Event {
        tenant_id: crate::DEFAULT_TENANT_ID,
        actor: "gateway",
        action: "audit.keyed",
        target: "audit_log",
        details: serde_json::json!({"unkeyed_up_to_seq": seq}),
    };
    insert(&mut tx, Some(key), last, event).await?;
    tx.commit().await
}

/// Takes the chain's lock for this transaction and reads its last link.
async fn lock_and_read_last(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<Option<(i64, Vec<u8>, bool)>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('thinkbank.audit_log'))")
        .execute(&mut **tx)
        .await?;
    sqlx::query_as("SELECT seq, entry_hash, keyed FROM gateway.audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    key: Option<&AuditKey>,
    last: Option<(i64, Vec<u8>, bool)>,
    event: Event<'_>,
) -> Result<(), sqlx::Error> {
    let (prev_seq, prev_hash) = last.map_or((0, GENESIS.to_vec()), |(seq, hash, _)| (seq, hash));
    let mut entry = Entry {
        seq: prev_seq + 1,
        at_micros: Utc::now().timestamp_micros(),
        tenant_id: event.tenant_id,
        actor: bounded(event.actor, MAX_FIELD_CHARS),
        action: bounded(event.action, MAX_FIELD_CHARS),
        target: bounded(event.target, MAX_FIELD_CHARS),
        details: bounded_details(&event.details),
        prev_hash: prev_hash.clone(),
        entry_hash: Vec::new(),
        keyed: key.is_some(),
    };
    entry.entry_hash = match key {
        Some(key) => entry.keyed_hash(key, &prev_hash),
        None => entry.unkeyed_hash(&prev_hash),
    };
    sqlx::query(
        "INSERT INTO gateway.audit_log (seq, at_micros, tenant_id, actor, action, target, \
             details, prev_hash, entry_hash, keyed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(entry.seq)
    .bind(entry.at_micros)
    .bind(entry.tenant_id)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.details)
    .bind(&entry.prev_hash)
    .bind(&entry.entry_hash)
    .bind(entry.keyed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records `event`, logging (not failing the action) when the log cannot be written: the
/// action already happened, and refusing to report it would hide it.
pub async fn record(log: &AuditLog, event: Event<'_>) {
    let action = event.action.to_owned();
    if let Err(error) = append(log, event).await {
        tracing::error!(%action, %error, "cannot write the audit log");
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditVerification)]
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
        } else if entry.entry_hash != expected(&entry, key, &prev_hash) {
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
    // A gateway with a key always leaves the chain ending keyed (`seal_unkeyed`), so a
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

fn expected(entry: &Entry, key: Option<&AuditKey>, prev_hash: &[u8]) -> Vec<u8> {
    match (entry.keyed, key) {
        (true, Some(key)) => entry.keyed_hash(key, prev_hash),
        _ => entry.unkeyed_hash(prev_hash),
    }
}

/// The newest entries of a tenant, newest first.
pub async fn list(pool: &PgPool, tenant_id: Uuid, limit: i64) -> Result<Vec<Entry>, ApiError> {
    sqlx::query_as(
        "SELECT seq, at_micros, tenant_id, actor, action, target, details, prev_hash, \
                entry_hash, keyed \
         FROM gateway.audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(crate::error::database)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_details_are_bounded_and_say_what_was_cut() {
        assert_eq!(bounded("short", 10), "short");
        let long = "é".repeat(1000);
        let cut = bounded(&long, MAX_FIELD_CHARS);
        assert!(cut.starts_with(&"é".repeat(MAX_FIELD_CHARS)));
        assert!(cut.ends_with(&format!("…[+{} bytes]", (1000 - MAX_FIELD_CHARS) * 2)));
        let small = serde_json::json!({"name": "x"});
        assert_eq!(bounded_details(&small), small.to_string());
        let huge = serde_json::json!({"name": "x".repeat(1_000_000)});
        let stored = bounded_details(&huge);
        assert!(stored.len() < MAX_DETAILS_BYTES, "{}", stored.len());
        let parsed: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(parsed["bytes"], huge.to_string().len());
    }
}
