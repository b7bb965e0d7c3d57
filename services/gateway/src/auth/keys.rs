//! API keys: `tb_<prefix>_<secret>`. The prefix finds the row; only a SHA-256 of the whole
//! key is stored, so a database leak reveals no usable key. A key is shown once, at creation.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use rand::{Rng as _, distr::Alphanumeric};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use thinkbank_common::{ErrorCode, secret::constant_time_eq};
use uuid::Uuid;

use super::{Principal, Role, Subject, unauthenticated};
use crate::{error::ApiError, state::AppState};

pub const KEY_PREFIX: &str = "tb_";
const PREFIX_CHARS: usize = 12;
const SECRET_CHARS: usize = 32;
/// `last_used_at` is written at most this often per key, not on every request.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// A freshly generated key: the only moment the secret exists outside the caller.
#[derive(Debug)]
pub struct NewKey {
    pub key: String,
    pub prefix: String,
}

pub fn generate() -> NewKey {
    let mut rng = rand::rng();
    let prefix: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .map(|c| char::from(c).to_ascii_lowercase())
        .take(PREFIX_CHARS)
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .map(char::from)
        .take(SECRET_CHARS)
        .collect();
    NewKey {
        key: format!("{KEY_PREFIX}{prefix}_{secret}"),
        prefix,
    }
}

/// The lookup prefix of a well-formed key.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    let well_formed = prefix.len() == PREFIX_CHARS
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && secret.len() == SECRET_CHARS
        && secret.chars().all(|c| c.is_ascii_alphanumeric());
    well_formed.then_some(prefix)
}

pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub collection_ids: Option<Vec<Uuid>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct StoredKey {
    #[sqlx(flatten)]
    row: KeyRow,
    key_hash: Vec<u8>,
}

const COLUMNS: &str = "id, tenant_id, name, prefix, role, collection_ids, created_by, created_at, \
     last_used_at, revoked_at";

/// The principal of a presented key, or 401 for anything unknown, revoked or malformed.
/// Known keys come from the cache (see `key_cache`); others are read and then cached.
pub async fn authenticate(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let invalid = || unauthenticated("the API key is not valid (unknown, malformed or revoked)");
    let prefix = prefix_of(key).ok_or_else(invalid)?;
    let presented = hash(key);
    let resolution = chrono::TimeDelta::from_std(LAST_USED_RESOLUTION).unwrap_or_default();
    let metrics = &crate::metrics::METRICS;
    if let Some(hit) = state.key_cache.get(prefix, &presented, resolution) {
        metrics.api_key_cache("hit");
        if let (true, Subject::ApiKey { id, .. }) = (hit.touch, &hit.principal.subject) {
            touch(state.database.clone(), *id);
        }
        return Ok(hit.principal);
    }
    metrics.api_key_cache("miss");
    let epoch = state.key_cache.epoch();
    let stored: Option<StoredKey> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, key_hash FROM gateway.api_keys \
         WHERE prefix = $1 AND revoked_at IS NULL"
    ))
    .bind(prefix)
    .fetch_optional(&state.database)
    .await
    .map_err(crate::error::database)?;
    let Some(StoredKey { row, key_hash }) = stored else {
        return Err(invalid());
    };
    if !constant_time_eq(&key_hash, &presented) {
        return Err(invalid());
    }
    let stale = use_is_due(row.last_used_at, resolution);
    if stale {
        touch(state.database.clone(), row.id);
    }
    let role = Role::parse(&row.role).ok_or_else(invalid)?;
    let principal = Principal {
        tenant_id: row.tenant_id,
        role,
        collections: row.collection_ids.map(Arc::from),
        subject: Subject::ApiKey {
            id: row.id,
            name: row.name,
        },
    };
    let last_used_at = if stale {
        Some(Utc::now())
    } else {
        row.last_used_at
    };
    state
        .key_cache
        .insert(epoch, prefix, key_hash, principal.clone(), last_used_at);
    Ok(principal)
}

/// Whether a key last used at `last_used_at` is due to have its use recorded again.
pub(super) fn use_is_due(
    last_used_at: Option<DateTime<Utc>>,
    resolution: chrono::TimeDelta,
) -> bool {
    last_used_at.is_none_or(|t| Utc::now() - t > resolution)
}

/// Records use in the background: a slow write must not delay the request.
fn touch(pool: PgPool, id: Uuid) {
    tokio::spawn(async move {
        let result = sqlx::query("UPDATE gateway.api_keys SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await;
        if let Err(error) = result {
            tracing::debug!(%id, %error, "cannot record API key use");
        }
    });
}

pub struct CreateKey<'a> {
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub role: Role,
    pub collection_ids: Option<Vec<Uuid>>,
    pub created_by: &'a str,
}

/// Stores a new key and returns it with its row; the key itself is never stored.
pub async fn create(pool: &PgPool, new: CreateKey<'_>) -> Result<(String, KeyRow), ApiError> {
    let NewKey { key, prefix } = generate();
    let row = insert(pool, &new, &key, &prefix).await?;
    Ok((key, row))
}

/// Stores `key` (generated elsewhere, e.g. the bootstrap key the launcher made).
pub async fn insert(
    pool: &PgPool,
    new: &CreateKey<'_>,
    key: &str,
    prefix: &str,
) -> Result<KeyRow, ApiError> {
    sqlx::query_as(&format!(
        "INSERT INTO gateway.api_keys (id, tenant_id, name, prefix, key_hash, role, \
             collection_ids, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.tenant_id)
    .bind(new.name)
    .bind(prefix)
    .bind(hash(key))
    .bind(new.role.as_str())
    .bind(&new.collection_ids)
    .bind(new.created_by)
    .fetch_one(pool)
    .await
    .map_err(crate::error::database)
}

pub async fn list(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<KeyRow>, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM gateway.api_keys WHERE tenant_id = $1 ORDER BY created_at DESC"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
    .map_err(crate::error::database)
}

/// Revokes a key of the tenant whose collections are within `within` (`None`: any key of
/// the tenant); 404 for another tenant's key, a key reaching further, or an unknown id (a
/// scoped admin does not see wider keys in its list either).
pub async fn revoke(
    pool: &PgPool,
    tenant_id: Uuid,
    within: Option<&[Uuid]>,
    id: Uuid,
) -> Result<KeyRow, ApiError> {
    sqlx::query_as(&format!(
        "UPDATE gateway.api_keys SET revoked_at = coalesce(revoked_at, now()) \
         WHERE id = $1 AND tenant_id = $2 \
           AND ($3::uuid[] IS NULL OR (collection_ids IS NOT NULL AND collection_ids <@ $3)) \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(tenant_id)
    .bind(within)
    .fetch_optional(pool)
    .await
    .map_err(crate::error::database)?
    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("API key {id} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a.key, b.key);
        assert_eq!(prefix_of(&a.key), Some(a.prefix.as_str()));
        assert_eq!(prefix_of("tb_short_x"), None);
        assert_eq!(prefix_of("sk-not-ours"), None);
    }
}
