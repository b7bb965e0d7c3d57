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

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

// The chain itself (key, links, verification) lives in `thinkbank-audit`, so the CLI can
// verify it without linking the gateway; writing entries stays here.
pub use thinkbank_audit::{AuditKey, Entry, GENESIS, MIN_KEY_BYTES, Verification, verify};

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
    entry.entry_hash = entry.link_hash(key, &prev_hash);
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
