//! The tamper-evident audit log of security-relevant actions. Entries form one hash chain:
//! `entry_hash = SHA-256(prev_hash ‖ canonical(entry))`, so changing, removing or reordering
//! any stored entry breaks every link after it, and `verify` names the first broken one.
//!
//! Every entry is bounded (`MAX_FIELD_CHARS` per text field, `MAX_DETAILS_BYTES` of details)
//! whatever its caller passed: some fields come from anonymous requests (a failed login's
//! username), and one request must not be able to write a megabyte into a table that can
//! never be cleaned up (it refuses DELETE).

use chrono::Utc;
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

    fn expected_hash(&self, prev_hash: &[u8]) -> Vec<u8> {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash);
        hasher.update(self.canonical().as_bytes());
        hasher.finalize().to_vec()
    }
}

/// Appends `event`. Appends are serialised by a transaction-scoped advisory lock, so the chain
/// never forks under concurrent writers (or gateway replicas).
pub async fn append(pool: &PgPool, event: Event<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('thinkbank.audit_log'))")
        .execute(&mut *tx)
        .await?;
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, entry_hash FROM gateway.audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS.to_vec()));
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
    };
    entry.entry_hash = entry.expected_hash(&prev_hash);
    sqlx::query(
        "INSERT INTO gateway.audit_log \
             (seq, at_micros, tenant_id, actor, action, target, details, prev_hash, entry_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Records `event`, logging (not failing the action) when the log cannot be written: the
/// action already happened, and refusing to report it would hide it.
pub async fn record(pool: &PgPool, event: Event<'_>) {
    let action = event.action.to_owned();
    if let Err(error) = append(pool, event).await {
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
}

/// Walks the whole chain in order and reports the first broken link.
pub async fn verify(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    use futures::TryStreamExt as _;
    let mut rows = sqlx::query_as::<_, Entry>(
        "SELECT seq, at_micros, tenant_id, actor, action, target, details, prev_hash, \
                entry_hash \
         FROM gateway.audit_log ORDER BY seq",
    )
    .fetch(pool);
    let mut checked = 0u64;
    let mut prev_seq = 0i64;
    let mut prev_hash = GENESIS.to_vec();
    while let Some(entry) = rows.try_next().await? {
        let broken = if entry.seq != prev_seq + 1 {
            Some(format!(
                "entry {} follows entry {prev_seq}: entries are missing",
                entry.seq
            ))
        } else if entry.prev_hash != prev_hash {
            Some(format!(
                "entry {} does not link to the hash of entry {prev_seq}",
                entry.seq
            ))
        } else if entry.entry_hash != entry.expected_hash(&prev_hash) {
            Some(format!(
                "entry {} was changed after it was written",
                entry.seq
            ))
        } else {
            None
        };
        if let Some(reason) = broken {
            return Ok(Verification {
                ok: false,
                entries_checked: checked,
                first_broken_seq: Some(entry.seq),
                reason: Some(reason),
            });
        }
        checked += 1;
        prev_seq = entry.seq;
        prev_hash = entry.entry_hash;
    }
    Ok(Verification {
        ok: true,
        entries_checked: checked,
        first_broken_seq: None,
        reason: None,
    })
}

/// The newest entries of a tenant, newest first.
pub async fn list(pool: &PgPool, tenant_id: Uuid, limit: i64) -> Result<Vec<Entry>, ApiError> {
    sqlx::query_as(
        "SELECT seq, at_micros, tenant_id, actor, action, target, details, prev_hash, \
                entry_hash \
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
