//! Moving a collection to another embedding model while it serves.
//!
//! A migration is a row in `worker.collection_migrations`, drained by the ingestion loops when
//! they have no ingestion job: a loop claims it (`FOR UPDATE SKIP LOCKED`, under a lease),
//! embeds one batch of chunks that still lack a target vector, upserts those vectors
//! (idempotent: `ON CONFLICT DO NOTHING`), and releases it. Meanwhile ingestion writes new
//! chunks for both models. When no chunk lacks a target vector, one transaction re-checks that
//! under the collection's row lock and switches the collection's model, so searches move from
//! the old vectors to the new ones at once. A crash loses at most one batch; any replica
//! resumes from what is stored.

use std::time::Duration;

use pgvector::Vector;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Progress, vector_targets};
use crate::{
    embed::{Registry, cache},
    error::{Result, WorkerError},
    tenancy::Tenant,
};

/// Consecutive failed batches after which a migration is marked FAILED.
const MAX_FAILED_BATCHES: i32 = 5;

/// Starts moving `collection_id` to `target` (a configured model).
pub async fn start(
    pool: &PgPool,
    tenant: &Tenant,
    collection_id: Uuid,
    target: &str,
) -> Result<()> {
    let tenant_id = tenant.id;
    let mut tx = tenant.begin(pool).await?;
    let current: Option<String> = sqlx::query_scalar(
        "SELECT embedding_model FROM worker.collections WHERE id = $1 AND tenant_id = $2 \
         FOR UPDATE",
    )
    .bind(collection_id)
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let current = current
        .ok_or_else(|| WorkerError::NotFound(format!("collection {collection_id} not found")))?;
    if current == target {
        return Err(WorkerError::InvalidArgument(format!(
            "the collection already uses '{target}'"
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO worker.collection_migrations \
             (id, tenant_id, collection_id, source_model, target_model, status) \
         SELECT $1, $2, $3, $4, $5, 'running' \
         WHERE NOT EXISTS (SELECT 1 FROM worker.collection_migrations \
             WHERE collection_id = $3 AND status = 'running')",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(collection_id)
    .bind(&current)
    .bind(target)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(WorkerError::FailedPrecondition(
            "a model migration of this collection is already running; cancel it first".into(),
        ));
    }
    tx.commit().await?;
    tracing::info!(%collection_id, from = %current, to = %target, "model migration started");
    Ok(())
}

/// Stops the running migration and drops its partial vectors; the collection stays on its
/// model.
pub async fn cancel(pool: &PgPool, tenant: &Tenant, collection_id: Uuid) -> Result<()> {
    let tenant_id = tenant.id;
    let mut tx = tenant.begin(pool).await?;
    lock_collection(&mut tx, tenant_id, collection_id).await?;
    let target: Option<String> = sqlx::query_scalar(
        "UPDATE worker.collection_migrations SET status = 'cancelled', finished_at = now(), \
             updated_at = now(), leased_by = NULL, leased_until = NULL \
         WHERE tenant_id = $1 AND collection_id = $2 AND status = 'running' \
         RETURNING target_model",
    )
    .bind(tenant_id)
    .bind(collection_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(target) = target else {
        return Err(WorkerError::FailedPrecondition(
            "no model migration of this collection is running".into(),
        ));
    };
    drop_vectors(&mut tx, tenant_id, collection_id, &target).await?;
    tx.commit().await?;
    tracing::info!(%collection_id, %target, "model migration cancelled");
    Ok(())
}

/// Chunks of the collection with a `target` vector, of all its chunks.
pub async fn progress(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant_id: Uuid,
    collection_id: Uuid,
    target: &str,
) -> Result<Progress> {
    let (total, done): (i64, i64) = sqlx::query_as(
        "SELECT \
             (SELECT count(*) FROM worker.chunks WHERE tenant_id = $1 AND collection_id = $2), \
             (SELECT count(*) FROM worker.embeddings \
                 WHERE tenant_id = $1 AND collection_id = $2 AND model = $3)",
    )
    .bind(tenant_id)
    .bind(collection_id)
    .bind(target)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Progress {
        done: done.min(total),
        total,
    })
}

#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    tenant_id: Uuid,
    collection_id: Uuid,
    target_model: String,
    attempts: i32,
}

/// Who drains migrations, and how.
#[derive(Debug, Clone)]
pub struct Migrator {
    pub pool: PgPool,
    pub registry: Registry,
    pub worker_id: String,
    pub lease: Duration,
    /// Chunks re-embedded per claim.
    pub batch: usize,
}

impl Migrator {
    /// Advances one running migration by one batch, or switches it when it is complete.
    /// Returns false when there was nothing to do.
    pub async fn step(&self) -> Result<bool> {
        let Some(job) = self.claim().await? else {
            return Ok(false);
        };
        match self.advance(&job).await {
            Ok(()) => {}
            Err(error) if job.attempts >= MAX_FAILED_BATCHES => {
                tracing::warn!(migration_id = %job.id, %error, "model migration failed");
                self.fail(&job, &error.to_string()).await?;
            }
            Err(error) => {
                tracing::warn!(migration_id = %job.id, attempt = job.attempts, %error, "migration batch failed; will retry");
                let delay = crate::retry::backoff(job.attempts);
                sqlx::query(
                    "UPDATE worker.collection_migrations SET leased_by = NULL, leased_until = NULL, \
                         run_after = now() + make_interval(secs => $3), updated_at = now() \
                     WHERE id = $1 AND leased_by = $2",
                )
                .bind(job.id)
                .bind(&self.worker_id)
                .bind(delay.as_secs_f64())
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(true)
    }

    async fn claim(&self) -> Result<Option<Claimed>> {
        let claimed: Option<Claimed> = sqlx::query_as(
            "UPDATE worker.collection_migrations SET leased_by = $1, \
                 leased_until = now() + make_interval(secs => $2), attempts = attempts + 1 \
             WHERE id = ( \
                 SELECT id FROM worker.collection_migrations \
                 WHERE status = 'running' AND run_after <= now() \
                   AND (leased_until IS NULL OR leased_until < now()) \
                 ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, tenant_id, collection_id, target_model, attempts",
        )
        .bind(&self.worker_id)
        .bind(self.lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed)
    }

    async fn advance(&self, job: &Claimed) -> Result<()> {
        let embedder = self.registry.get(&job.target_model)?;
        let missing: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT c.id, c.text FROM worker.chunks c \
             WHERE c.tenant_id = $1 AND c.collection_id = $2 AND NOT EXISTS ( \
                 SELECT 1 FROM worker.embeddings e WHERE e.chunk_id = c.id AND e.model = $3) \
             ORDER BY c.id LIMIT $4",
        )
        .bind(job.tenant_id)
        .bind(job.collection_id)
        .bind(&job.target_model)
        .bind(i64::try_from(self.batch).unwrap_or(64))
        .fetch_all(&self.pool)
        .await?;
        if missing.is_empty() {
            return self.switch(job).await;
        }
        let texts: Vec<String> = missing.iter().map(|(_, text)| text.clone()).collect();
        let (embedded, _) =
            cache::embed_cached(&self.pool, job.tenant_id, embedder, &texts).await?;
        let ids: Vec<Uuid> = missing.iter().map(|(id, _)| *id).collect();
        let vectors: Vec<Vector> = embedded
            .into_iter()
            .map(|e| Vector::from(e.vector))
            .collect();

        let mut tx = self.pool.begin().await?;
        let targets = vector_targets(&mut tx, job.tenant_id, job.collection_id).await?;
        if targets.migrating_to.as_deref() != Some(job.target_model.as_str()) {
            // Cancelled (or finished elsewhere) while this batch was embedded: write nothing.
            tx.rollback().await?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO worker.embeddings (chunk_id, model, tenant_id, collection_id, asset_id, embedding) \
             SELECT c.id, $1, c.tenant_id, c.collection_id, c.asset_id, u.embedding \
             FROM UNNEST($2::uuid[], $3::vector[]) AS u(id, embedding) \
             JOIN worker.chunks c ON c.id = u.id AND c.tenant_id = $4 \
             ON CONFLICT (chunk_id, model) DO NOTHING",
        )
        .bind(&job.target_model)
        .bind(&ids)
        .bind(vectors)
        .bind(job.tenant_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE worker.collection_migrations SET leased_by = NULL, leased_until = NULL, \
                 attempts = 0, error = NULL, updated_at = now() \
             WHERE id = $1 AND leased_by = $2",
        )
        .bind(job.id)
        .bind(&self.worker_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Switches the collection to the target model if, under its row lock, every chunk has a
    /// target vector; otherwise just releases the claim (the next step embeds the rest).
    async fn switch(&self, job: &Claimed) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let source = lock_collection(&mut tx, job.tenant_id, job.collection_id).await?;
        let still_running: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM worker.collection_migrations WHERE id = $1 AND status = 'running'",
        )
        .bind(job.id)
        .fetch_optional(&mut *tx)
        .await?;
        let incomplete: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM worker.chunks c \
             WHERE c.tenant_id = $1 AND c.collection_id = $2 AND NOT EXISTS ( \
                 SELECT 1 FROM worker.embeddings e WHERE e.chunk_id = c.id AND e.model = $3))",
        )
        .bind(job.tenant_id)
        .bind(job.collection_id)
        .bind(&job.target_model)
        .fetch_one(&mut *tx)
        .await?;
        if still_running.is_none() || incomplete {
            sqlx::query(
                "UPDATE worker.collection_migrations SET leased_by = NULL, leased_until = NULL \
                 WHERE id = $1 AND leased_by = $2",
            )
            .bind(job.id)
            .bind(&self.worker_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        sqlx::query(
            "UPDATE worker.collections SET embedding_model = $3 WHERE id = $1 AND tenant_id = $2",
        )
        .bind(job.collection_id)
        .bind(job.tenant_id)
        .bind(&job.target_model)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE worker.assets SET embedding_model = $3 WHERE collection_id = $1 AND tenant_id = $2",
        )
        .bind(job.collection_id)
        .bind(job.tenant_id)
        .bind(&job.target_model)
        .execute(&mut *tx)
        .await?;
        // The old vectors are no longer searched; the cache still holds them for a move back.
        drop_vectors(&mut tx, job.tenant_id, job.collection_id, &source).await?;
        sqlx::query(
            "UPDATE worker.collection_migrations SET status = 'completed', finished_at = now(), \
                 updated_at = now(), leased_by = NULL, leased_until = NULL WHERE id = $1",
        )
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(collection_id = %job.collection_id, from = %source, to = %job.target_model, "collection switched embedding model");
        Ok(())
    }

    async fn fail(&self, job: &Claimed, error: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_collection(&mut tx, job.tenant_id, job.collection_id).await?;
        let failed = sqlx::query(
            "UPDATE worker.collection_migrations SET status = 'failed', error = $2, \
                 finished_at = now(), updated_at = now(), leased_by = NULL, leased_until = NULL \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(job.id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        if failed.rows_affected() == 1 {
            drop_vectors(&mut tx, job.tenant_id, job.collection_id, &job.target_model).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Locks the collection row `FOR UPDATE` and returns its current model.
async fn lock_collection(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant_id: Uuid,
    collection_id: Uuid,
) -> Result<String> {
    let model: Option<String> = sqlx::query_scalar(
        "SELECT embedding_model FROM worker.collections WHERE id = $1 AND tenant_id = $2 \
         FOR UPDATE",
    )
    .bind(collection_id)
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    model.ok_or_else(|| WorkerError::NotFound(format!("collection {collection_id} not found")))
}

async fn drop_vectors(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant_id: Uuid,
    collection_id: Uuid,
    model: &str,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM worker.embeddings WHERE tenant_id = $1 AND collection_id = $2 AND model = $3",
    )
    .bind(tenant_id)
    .bind(collection_id)
    .bind(model)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
