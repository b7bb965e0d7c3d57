//! The tamper-evident audit log of security-relevant actions. Entries form one hash chain:
//! `entry_hash = SHA-256(prev_hash ‖ canonical(entry))`, so changing, removing or reordering
//! any stored entry breaks every link after it, and `verify` names the first broken one.

use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

/// The chain's anchor: the `prev_hash` of the first entry.
const GENESIS: [u8; 32] = [0; 32];

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
        actor: event.actor.to_owned(),
        action: event.action.to_owned(),
        target: event.target.to_owned(),
        details: event.details.to_string(),
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
