//! Collections: named sets of assets, each searched with one embedding model, and the moves
//! of a collection to another model (see [`migration`]).
//!
//! Invariant: every change of a collection's model state (starting, cancelling, switching a
//! migration) locks the collection row `FOR UPDATE`, and every writer of vectors for it
//! (ingestion commits, migration batches) locks it `FOR SHARE` and re-reads the state in the
//! same transaction, so no vector is written for a model the collection no longer wants.

pub mod migration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    error::{Result, WorkerError},
    stored::text_enum,
    tenancy::Tenant,
};

const COLUMNS: &str = "c.id, c.tenant_id, c.name, c.embedding_model, \
    c.text_search_config::text AS text_search_config, c.created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CollectionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub embedding_model: String,
    pub text_search_config: String,
    pub created_at: DateTime<Utc>,
}

text_enum! {
    /// Where a model migration stands, stored as text.
    pub enum MigrationStatus("migration status") {
        Running = "running", Completed = "completed", Cancelled = "cancelled",
        Failed = "failed",
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MigrationRow {
    pub id: Uuid,
    pub collection_id: Uuid,
    pub source_model: String,
    pub target_model: String,
    pub status: MigrationStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A collection as shown to callers: the row, its size and its latest migration.
#[derive(Debug, Clone)]
pub struct CollectionView {
    pub row: CollectionRow,
    pub chunk_count: i64,
    pub migration: Option<(MigrationRow, Progress)>,
}

/// Chunks of the collection that have a target vector, of all its chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
}

/// Where a collection's vectors go right now: its model, and the target of a running migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorTargets {
    pub current: String,
    pub migrating_to: Option<String>,
}

impl VectorTargets {
    pub fn models(&self) -> Vec<String> {
        let mut models = vec![self.current.clone()];
        models.extend(self.migrating_to.clone());
        models
    }
}

/// Creates a collection. `model` must be a configured model (checked by the caller).
pub async fn create(
    pool: &PgPool,
    tenant: &Tenant,
    name: &str,
    model: &str,
    text_search_config: &str,
) -> Result<CollectionRow> {
    // A caller limited to some collections could never see a collection it created (the row
    // policy refuses the insert): making one is beyond its scope.
    if tenant.collections.is_some() {
        return Err(WorkerError::PermissionDenied(
            "a caller limited to some collections cannot create collections".into(),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(WorkerError::InvalidArgument(
            "name must be 1-200 characters".into(),
        ));
    }
    let known: Option<String> =
        sqlx::query_scalar("SELECT cfgname::text FROM pg_ts_config WHERE cfgname = $1")
            .bind(text_search_config)
            .fetch_optional(pool)
            .await?;
    if known.is_none() {
        return Err(WorkerError::InvalidArgument(format!(
            "text_search_config '{text_search_config}' is not a PostgreSQL text search \
             configuration (e.g. english, simple)"
        )));
    }
    let mut tx = tenant.begin(pool).await?;
    let inserted: Option<CollectionRow> = sqlx::query_as(
        "INSERT INTO worker.collections AS c (id, tenant_id, name, embedding_model, text_search_config) \
         VALUES ($1, $2, $3, $4, $5::regconfig) ON CONFLICT (tenant_id, name) DO NOTHING \
         RETURNING c.id, c.tenant_id, c.name, c.embedding_model, \
             c.text_search_config::text AS text_search_config, c.created_at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id)
    .bind(name)
    .bind(model)
    .bind(text_search_config)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    inserted.ok_or_else(|| {
        WorkerError::AlreadyExists(format!("a collection named '{name}' already exists"))
    })
}

/// Views read from one snapshot (`Tenant::begin_snapshot`), so a view never shows a switched
/// migration next to the collection's old model.
pub async fn list(pool: &PgPool, tenant: &Tenant) -> Result<Vec<CollectionView>> {
    let tenant_id = tenant.id;
    let mut tx = tenant.begin_snapshot(pool).await?;
    let rows: Vec<CollectionRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM worker.collections c WHERE c.tenant_id = $1 \
         ORDER BY c.created_at, c.id"
    ))
    .bind(tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(view(&mut tx, row).await?);
    }
    tx.commit().await?;
    Ok(out)
}

pub async fn get(pool: &PgPool, tenant: &Tenant, id: Uuid) -> Result<CollectionView> {
    let tenant_id = tenant.id;
    let mut tx = tenant.begin_snapshot(pool).await?;
    let row: CollectionRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM worker.collections c WHERE c.id = $1 AND c.tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| WorkerError::NotFound(format!("collection {id} not found")))?;
    let view = view(&mut tx, row).await?;
    tx.commit().await?;
    Ok(view)
}

async fn view(tx: &mut Transaction<'_, Postgres>, row: CollectionRow) -> Result<CollectionView> {
    let chunk_count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM worker.chunks WHERE tenant_id = $1 AND collection_id = $2",
    )
    .bind(row.tenant_id)
    .bind(row.id)
    .fetch_one(&mut **tx)
    .await?;
    let latest: Option<MigrationRow> = sqlx::query_as(
        "SELECT id, collection_id, source_model, target_model, status, error, created_at, \
             finished_at \
         FROM worker.collection_migrations WHERE tenant_id = $1 AND collection_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(row.tenant_id)
    .bind(row.id)
    .fetch_optional(&mut **tx)
    .await?;
    let migration = match latest {
        Some(m) => {
            let progress = match m.status {
                MigrationStatus::Running => {
                    migration::progress(tx, row.tenant_id, row.id, &m.target_model).await?
                }
                // A finished migration's figures are final: all or nothing was moved.
                MigrationStatus::Completed => Progress {
                    done: chunk_count,
                    total: chunk_count,
                },
                MigrationStatus::Cancelled | MigrationStatus::Failed => Progress {
                    done: 0,
                    total: chunk_count,
                },
            };
            Some((m, progress))
        }
        None => None,
    };
    Ok(CollectionView {
        row,
        chunk_count,
        migration,
    })
}

/// Locks the collection row (`FOR SHARE`) in `tx` and returns the models its vectors must be
/// written for; NOT_FOUND when it is gone.
pub async fn vector_targets(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    collection_id: Uuid,
) -> Result<VectorTargets> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT embedding_model FROM worker.collections WHERE id = $1 AND tenant_id = $2 \
         FOR SHARE",
    )
    .bind(collection_id)
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    let current = current
        .ok_or_else(|| WorkerError::NotFound(format!("collection {collection_id} not found")))?;
    let migrating_to: Option<String> = sqlx::query_scalar(
        "SELECT target_model FROM worker.collection_migrations \
         WHERE tenant_id = $1 AND collection_id = $2 AND status = 'running'",
    )
    .bind(tenant_id)
    .bind(collection_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(VectorTargets {
        current,
        migrating_to,
    })
}

/// The same, outside a transaction and without a lock (to decide what to embed).
pub async fn current_targets(
    pool: &PgPool,
    tenant_id: Uuid,
    collection_id: Uuid,
) -> Result<VectorTargets> {
    let mut tx = pool.begin().await?;
    let targets = vector_targets(&mut tx, tenant_id, collection_id).await?;
    tx.rollback().await?;
    Ok(targets)
}

/// Groups the tenant's collections by embedding model: all of them, or those in `only`.
pub async fn by_model(
    pool: &PgPool,
    tenant: &Tenant,
    only: &[Uuid],
) -> Result<Vec<(String, Vec<Uuid>)>> {
    let mut tx = tenant.begin(pool).await?;
    let groups: Vec<(String, Vec<Uuid>)> = sqlx::query_as(
        "SELECT embedding_model, array_agg(id ORDER BY id) FROM worker.collections \
         WHERE tenant_id = $1 AND (cardinality($2::uuid[]) = 0 OR id = ANY($2)) \
         GROUP BY embedding_model ORDER BY embedding_model",
    )
    .bind(tenant.id)
    .bind(only)
    .fetch_all(&mut *tx)
    .await?;
    crate::tenancy::finish_read(tx);
    Ok(groups)
}
