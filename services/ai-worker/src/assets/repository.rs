//! SQL for `worker.assets`. Every query is scoped by tenant.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::quota::{self, QuotaSettings};
use crate::telemetry::job_trace::QueuedBy;

use crate::{
    error::{Result, WorkerError},
    stored::text_enum,
    tenancy::Tenant,
};

text_enum! {
    /// Coarse status, stored as text.
    pub enum Status("asset status") {
        Queued = "queued", Processing = "processing", Ready = "ready", Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl Status {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Failed | Self::Cancelled)
    }
}

text_enum! {
    /// Fine-grained stage, stored as text.
    pub enum Stage("asset stage") {
        Queued = "queued", Reading = "reading", Parsing = "parsing", Chunking = "chunking",
        Embedding = "embedding", Indexing = "indexing", Ready = "ready", Failed = "failed",
        Cancelled = "cancelled",
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssetRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub collection_id: Uuid,
    pub filename: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
    pub external_id: Option<String>,
    pub metadata: serde_json::Value,
    pub status: Status,
    pub stage: Stage,
    pub progress: f32,
    pub attempts: i32,
    pub error: Option<String>,
    pub chunk_count: i32,
    pub embedding_model: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, tenant_id, collection_id, filename, media_type, size_bytes, sha256, \
    object_key, external_id, metadata, status, stage, progress, attempts, error, chunk_count, \
    embedding_model, created_at, updated_at";

#[derive(Debug)]
pub struct NewAsset {
    pub tenant_id: Uuid,
    pub collection_id: Uuid,
    pub filename: String,
    pub declared_media_type: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
    pub external_id: Option<String>,
    pub metadata: serde_json::Value,
}

#[derive(Debug, Default)]
pub struct ListFilter {
    pub collection_id: Option<Uuid>,
    pub status: Option<Status>,
    /// Keyset cursor: (created_at, id) of the last asset already returned.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Locks the asset row for the rest of the transaction and returns its status.
async fn lock_status(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Status> {
    let status: Option<Status> = sqlx::query_scalar(
        "SELECT status FROM worker.assets WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    status.ok_or_else(|| WorkerError::NotFound(format!("asset {id} not found")))
}

#[derive(Debug, Clone)]
pub struct Assets {
    pool: PgPool,
}

impl Assets {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The collection an upload goes to (the tenant's `default` one when none is named) and
    /// its embedding model, or NOT_FOUND.
    pub async fn resolve_collection(
        &self,
        tenant: &Tenant,
        collection_id: Option<Uuid>,
    ) -> Result<(Uuid, String)> {
        let mut tx = tenant.begin(&self.pool).await?;
        let found: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT id, embedding_model FROM worker.collections \
             WHERE tenant_id = $1 AND CASE WHEN $2::uuid IS NULL THEN name = 'default' \
                                           ELSE id = $2 END",
        )
        .bind(tenant.id)
        .bind(collection_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        found.ok_or_else(|| match collection_id {
            Some(id) => WorkerError::NotFound(format!("collection {id} not found")),
            None => WorkerError::NotFound(
                "no collection named; this caller has no default collection it may use".into(),
            ),
        })
    }

    /// Inserts the asset and its queue job in one transaction. When the same bytes already
    /// exist in the collection, nothing is written and the existing asset is returned with
    /// `false`. A new asset that would take the tenant over a quota is refused
    /// (RESOURCE_EXHAUSTED naming the quota) and nothing is written.
    pub async fn insert_queued(
        &self,
        tenant: &Tenant,
        new: NewAsset,
        model: &str,
        queued_by: &QueuedBy,
        quotas: &QuotaSettings,
    ) -> Result<(AssetRow, bool)> {
        let mut tx = tenant.begin(&self.pool).await?;
        quota::lock(&mut tx, tenant.id).await?;
        let inserted: Option<AssetRow> = sqlx::query_as(&format!(
            "INSERT INTO worker.assets (id, tenant_id, collection_id, filename, \
                 declared_media_type, media_type, size_bytes, sha256, object_key, external_id, \
                 metadata, status, stage, embedding_model) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'queued', 'queued', $12) \
             ON CONFLICT (collection_id, sha256) DO NOTHING \
             RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(new.tenant_id)
        .bind(new.collection_id)
        .bind(&new.filename)
        .bind(&new.declared_media_type)
        .bind(&new.media_type)
        .bind(new.size_bytes)
        .bind(&new.sha256)
        .bind(&new.object_key)
        .bind(&new.external_id)
        .bind(&new.metadata)
        .bind(model)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(asset) = inserted else {
            tx.rollback().await?;
            let mut tx = tenant.begin(&self.pool).await?;
            let existing: AssetRow = sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM worker.assets WHERE collection_id = $1 AND sha256 = $2 \
                 AND tenant_id = $3"
            ))
            .bind(new.collection_id)
            .bind(&new.sha256)
            .bind(new.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok((existing, false));
        };
        let limits = quota::limits(&mut tx, quotas, tenant.id).await?;
        let usage = quota::usage_of_current_tenant(&mut tx).await?;
        if let Err(refused) = quota::check_upload(&limits, &usage, asset.size_bytes) {
            tx.rollback().await?;
            return Err(refused);
        }
        sqlx::query(
            "INSERT INTO worker.ingest_jobs (asset_id, tenant_id, traceparent, request_id) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(asset.id)
        .bind(asset.tenant_id)
        .bind(&queued_by.traceparent)
        .bind(&queued_by.request_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((asset, true))
    }

    pub async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<AssetRow> {
        let mut tx = tenant.begin(&self.pool).await?;
        let row = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM worker.assets WHERE id = $1 AND tenant_id = $2"
        ))
        .bind(id)
        .bind(tenant.id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or_else(|| WorkerError::NotFound(format!("asset {id} not found")))
    }

    /// The rows of `ids` that exist, read outside any tenant's scope: only for the watch hub
    /// (`assets::watch`), which hands a row only to watches already authorised for it.
    pub async fn get_many_unscoped(&self, ids: &[Uuid]) -> Result<Vec<AssetRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM worker.assets WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Newest first, keyset-paginated.
    pub async fn list(&self, tenant: &Tenant, filter: &ListFilter) -> Result<Vec<AssetRow>> {
        let (after_time, after_id) = filter.after.unzip();
        let mut tx = tenant.begin(&self.pool).await?;
        let rows = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM worker.assets \
             WHERE tenant_id = $1 \
               AND ($2::uuid IS NULL OR collection_id = $2) \
               AND ($3::text IS NULL OR status = $3) \
               AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        ))
        .bind(tenant.id)
        .bind(filter.collection_id)
        .bind(filter.status.map(Status::as_str))
        .bind(after_time)
        .bind(after_id)
        .bind(filter.limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Deletes the asset row (chunks, vectors and its job cascade) and returns its object key.
    pub async fn delete(&self, tenant: &Tenant, id: Uuid) -> Result<String> {
        let mut tx = tenant.begin(&self.pool).await?;
        let key: Option<String> = sqlx::query_scalar(
            "DELETE FROM worker.assets WHERE id = $1 AND tenant_id = $2 RETURNING object_key",
        )
        .bind(id)
        .bind(tenant.id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        key.ok_or_else(|| WorkerError::NotFound(format!("asset {id} not found")))
    }

    /// True when another asset still references the same stored object.
    pub async fn object_in_use(&self, object_key: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM worker.assets WHERE object_key = $1)")
                .bind(object_key)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Cancels a queued or processing asset: its job is removed (an attempt in flight loses
    /// its lease and commits nothing) and it ends CANCELLED.
    pub async fn cancel(&self, tenant: &Tenant, id: Uuid) -> Result<AssetRow> {
        let mut tx = tenant.begin(&self.pool).await?;
        let status = lock_status(&mut tx, tenant.id, id).await?;
        if status.is_final() {
            return Err(WorkerError::FailedPrecondition(format!(
                "asset {id} is {}; only queued or processing assets can be cancelled",
                status.as_str()
            )));
        }
        sqlx::query("DELETE FROM worker.ingest_jobs WHERE asset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query_as(&format!(
            "UPDATE worker.assets SET status = 'cancelled', stage = 'cancelled', \
             error = 'cancelled by request', updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Queues a finished asset again. Its current chunks stay searchable until the new ones
    /// replace them.
    pub async fn reprocess(
        &self,
        tenant: &Tenant,
        id: Uuid,
        queued_by: &QueuedBy,
    ) -> Result<AssetRow> {
        let mut tx = tenant.begin(&self.pool).await?;
        let status = lock_status(&mut tx, tenant.id, id).await?;
        if !status.is_final() {
            return Err(WorkerError::FailedPrecondition(format!(
                "asset {id} is {}; wait until it is ready, failed or cancelled",
                status.as_str()
            )));
        }
        sqlx::query(
            "INSERT INTO worker.ingest_jobs (asset_id, tenant_id, traceparent, request_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (asset_id) DO NOTHING",
        )
        .bind(id)
        .bind(tenant.id)
        .bind(&queued_by.traceparent)
        .bind(&queued_by.request_id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as(&format!(
            "UPDATE worker.assets SET status = 'queued', stage = 'queued', progress = 0, \
             attempts = 0, error = NULL, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Records progress of a processing attempt (best effort; progress is informational).
    pub async fn set_stage(&self, id: Uuid, stage: Stage, progress: f32) -> Result<()> {
        sqlx::query(
            "UPDATE worker.assets SET status = 'processing', stage = $2, progress = $3, \
             updated_at = now() WHERE id = $1 AND status IN ('queued', 'processing')",
        )
        .bind(id)
        .bind(stage.as_str())
        .bind(progress.clamp(0.0, 1.0))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the asset READY inside the transaction that wrote its chunks.
    pub async fn mark_ready(
        tx: &mut Transaction<'_, Postgres>,
        id: Uuid,
        chunk_count: usize,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE worker.assets SET status = 'ready', stage = 'ready', progress = 1, \
             error = NULL, chunk_count = $2, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(i32::try_from(chunk_count).unwrap_or(i32::MAX))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
