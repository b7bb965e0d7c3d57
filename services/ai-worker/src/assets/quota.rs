//! Per-tenant quotas on what a tenant stores: assets (of any status), bytes of those assets,
//! and indexed chunks. Defaults come from `THINKBANK_QUOTA_MAX_*`; the operator overrides them
//! per tenant in `worker.tenant_quotas` (the gateway's `PUT /api/v1/tenants/{id}/quotas`).
//!
//! Invariant: every decision that adds to a tenant's usage runs under the tenant's quota lock
//! (a transaction-scoped advisory lock) in the transaction that adds it, so concurrent uploads
//! or commits cannot both pass a check that only one of them fits. A refusal rolls back that
//! transaction: nothing is stored in part.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::error::{Result, WorkerError};

/// The first key of the advisory lock taken per tenant (the second is the tenant's hash).
const QUOTA_LOCK_CLASS: i32 = 0x7162_0001;

/// The worker's default quotas, for tenants without an override. 0 is no limit. (Argument
/// ids are prefixed: `max_chunks` alone is the parsing cap's.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::Args)]
pub struct QuotaSettings {
    /// Assets a tenant may hold (any status) unless its quota row says otherwise; 0: no limit.
    #[arg(
        id = "quota_max_assets",
        long = "quota-max-assets",
        env = "THINKBANK_QUOTA_MAX_ASSETS",
        default_value_t = 0
    )]
    pub max_assets: u64,
    /// Bytes of stored assets a tenant may hold (the uploads' sizes); 0: no limit.
    #[arg(
        id = "quota_max_bytes",
        long = "quota-max-bytes",
        env = "THINKBANK_QUOTA_MAX_BYTES",
        default_value_t = 0
    )]
    pub max_bytes: u64,
    /// Indexed chunks a tenant may hold over all its assets; 0: no limit.
    #[arg(
        id = "quota_max_chunks",
        long = "quota-max-chunks",
        env = "THINKBANK_QUOTA_MAX_CHUNKS",
        default_value_t = 0
    )]
    pub max_chunks: u64,
}

/// One tenant's effective limits (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_assets: i64,
    pub max_bytes: i64,
    pub max_chunks: i64,
}

/// What one tenant holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Usage {
    pub assets: i64,
    pub bytes: i64,
    pub chunks: i64,
}

fn as_limit(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn exceeded(quota: &str, message: String) -> WorkerError {
    WorkerError::ResourceExhausted(format!("quota {quota} exceeded: {message}"))
}

/// Serialises quota decisions for `tenant_id` until the transaction ends.
pub async fn lock(tx: &mut Transaction<'_, Postgres>, tenant_id: Uuid) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(QUOTA_LOCK_CLASS)
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The tenant's limits: its override row where a column is set, the defaults elsewhere.
pub async fn limits(
    tx: &mut Transaction<'_, Postgres>,
    defaults: &QuotaSettings,
    tenant_id: Uuid,
) -> Result<Limits> {
    let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT max_assets, max_bytes, max_chunks FROM worker.tenant_quotas WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (assets, bytes, chunks) = row.unwrap_or_default();
    Ok(Limits {
        max_assets: assets.unwrap_or(as_limit(defaults.max_assets)),
        max_bytes: bytes.unwrap_or(as_limit(defaults.max_bytes)),
        max_chunks: chunks.unwrap_or(as_limit(defaults.max_chunks)),
    })
}

/// Usage of the tenant of a [`crate::tenancy::Tenant`] transaction, over all its collections
/// (even when the caller is limited to some).
pub async fn usage_of_current_tenant(tx: &mut Transaction<'_, Postgres>) -> Result<Usage> {
    Ok(
        sqlx::query_as("SELECT assets, bytes, chunks FROM worker.tenant_usage()")
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Whether the tenant may hold what it holds now, `usage` counting an asset being added. The
/// chunk quota refuses new uploads once it is reached: they could never be indexed.
pub fn check_upload(limits: &Limits, usage: &Usage, size_bytes: i64) -> Result<()> {
    if limits.max_assets > 0 && usage.assets > limits.max_assets {
        return Err(exceeded(
            "max_assets",
            format!(
                "the tenant may hold at most {} assets and already holds {}; delete some or ask \
                 the operator to raise the quota",
                limits.max_assets,
                usage.assets - 1
            ),
        ));
    }
    if limits.max_bytes > 0 && usage.bytes > limits.max_bytes {
        return Err(exceeded(
            "max_bytes",
            format!(
                "the tenant may store at most {} bytes; it holds {} and this upload is {}",
                limits.max_bytes,
                usage.bytes - size_bytes,
                size_bytes
            ),
        ));
    }
    if limits.max_chunks > 0 && usage.chunks >= limits.max_chunks {
        return Err(exceeded(
            "max_chunks",
            format!(
                "the tenant may hold at most {} indexed chunks and holds {}; delete assets \
                 before uploading more",
                limits.max_chunks, usage.chunks
            ),
        ));
    }
    Ok(())
}

/// Refuses an upload the tenant has no room for before its bytes are stored, unless the same
/// bytes already exist in the collection (that upload is answered with the existing asset).
/// Advisory: the check that decides is `check_upload` in the inserting transaction.
pub async fn precheck(
    pool: &sqlx::PgPool,
    tenant: &crate::tenancy::Tenant,
    defaults: &QuotaSettings,
    collection_id: Uuid,
    sha256: &str,
    size_bytes: i64,
) -> Result<()> {
    let mut tx = tenant.begin(pool).await?;
    let duplicate: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM worker.assets WHERE collection_id = $1 AND sha256 = $2)",
    )
    .bind(collection_id)
    .bind(sha256)
    .fetch_one(&mut *tx)
    .await?;
    let result = if duplicate {
        Ok(())
    } else {
        let limits = limits(&mut tx, defaults, tenant.id).await?;
        let usage = usage_of_current_tenant(&mut tx).await?;
        let with_upload = Usage {
            assets: usage.assets.saturating_add(1),
            bytes: usage.bytes.saturating_add(size_bytes),
            chunks: usage.chunks,
        };
        check_upload(&limits, &with_upload, size_bytes)
    };
    crate::tenancy::finish_read(tx);
    result
}

/// Whether `adding` chunks of `asset_id` fit the tenant's chunk quota. Runs in the ingestion
/// commit (the owner's connection, outside row-level security), after older versions the
/// asset replaces were deleted in the same transaction, so they do not count.
pub async fn check_commit(
    tx: &mut Transaction<'_, Postgres>,
    defaults: &QuotaSettings,
    tenant_id: Uuid,
    asset_id: Uuid,
    adding: usize,
) -> Result<()> {
    lock(tx, tenant_id).await?;
    let limits = limits(tx, defaults, tenant_id).await?;
    if limits.max_chunks == 0 {
        return Ok(());
    }
    let held: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(chunk_count), 0)::bigint FROM worker.assets \
         WHERE tenant_id = $1 AND id <> $2",
    )
    .bind(tenant_id)
    .bind(asset_id)
    .fetch_one(&mut **tx)
    .await?;
    let adding = i64::try_from(adding).unwrap_or(i64::MAX);
    if held.saturating_add(adding) > limits.max_chunks {
        return Err(exceeded(
            "max_chunks",
            format!(
                "indexing this document's {adding} chunks would bring the tenant to {} chunks; \
                 its limit is {}",
                held.saturating_add(adding),
                limits.max_chunks
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_assets: 2,
        max_bytes: 100,
        max_chunks: 10,
    };

    fn usage(assets: i64, bytes: i64, chunks: i64) -> Usage {
        Usage {
            assets,
            bytes,
            chunks,
        }
    }

    #[test]
    fn each_quota_refuses_with_its_name_and_limit() {
        assert!(check_upload(&LIMITS, &usage(2, 100, 9), 10).is_ok());
        let assets = check_upload(&LIMITS, &usage(3, 10, 0), 5).unwrap_err();
        assert!(assets.to_string().contains("quota max_assets exceeded"));
        assert!(assets.to_string().contains("at most 2 assets"));
        let bytes = check_upload(&LIMITS, &usage(1, 101, 0), 101).unwrap_err();
        assert!(bytes.to_string().contains("quota max_bytes exceeded"));
        assert!(bytes.to_string().contains("at most 100 bytes"));
        let chunks = check_upload(&LIMITS, &usage(1, 1, 10), 1).unwrap_err();
        assert!(chunks.to_string().contains("quota max_chunks exceeded"));
    }

    #[test]
    fn zero_is_no_limit() {
        let none = Limits {
            max_assets: 0,
            max_bytes: 0,
            max_chunks: 0,
        };
        assert!(check_upload(&none, &usage(i64::MAX, i64::MAX, i64::MAX), 1).is_ok());
    }
}
