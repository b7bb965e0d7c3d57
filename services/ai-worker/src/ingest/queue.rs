//! The durable ingestion queue in `worker.ingest_jobs`.
//!
//! Invariants: a job is claimed with `FOR UPDATE SKIP LOCKED` and leased until a deadline; an
//! expired lease makes it claimable again (that is the reaper). A job's results are committed
//! in the same transaction that deletes the job *only while the lease is still ours*, so a
//! worker that lost its lease can never write a second copy of the chunks.

use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{error::Result, telemetry::job_trace::QueuedBy};

type JobRow = (Uuid, Uuid, i32, f64, Option<String>, Option<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedJob {
    pub asset_id: Uuid,
    pub tenant_id: Uuid,
    /// Attempts including this one.
    pub attempt: i32,
    /// How long the job waited between becoming due and this claim.
    pub waited: Duration,
}

/// A job that may be claimed now (`$3`: the attempt cap); `j` is `worker.ingest_jobs`.
macro_rules! due {
    () => {
        "j.run_after <= now() AND (j.leased_until IS NULL OR j.leased_until < now()) \
         AND j.attempts < $3"
    };
}

/// The job to claim next, fairly across tenants: among tenants with a due job, the one with
/// the fewest jobs running, then the one served longest ago (`ingest_turns`), then the one
/// whose oldest due job is oldest; then that tenant's oldest due job. A tenant whose due jobs
/// are all locked by concurrent claims is passed over for the next (`SKIP LOCKED` inside the
/// lateral join; the outer `LIMIT 1` stops at the first tenant that yields a job, so only one
/// job is ever locked). Tenants are enumerated with a skip scan of the `(tenant_id, run_after)`
/// index, so a tenant with a million queued jobs costs one index probe, not a million rows.
const FAIR_PICK: &str = concat!(
    "WITH RECURSIVE queued(tenant_id) AS ( \
         (SELECT tenant_id FROM worker.ingest_jobs ORDER BY tenant_id LIMIT 1) \
         UNION ALL \
         SELECT (SELECT n.tenant_id FROM worker.ingest_jobs n WHERE n.tenant_id > q.tenant_id \
                 ORDER BY n.tenant_id LIMIT 1) \
         FROM queued q WHERE q.tenant_id IS NOT NULL), \
     candidates AS ( \
         SELECT q.tenant_id, \
             (SELECT count(*) FROM worker.ingest_jobs r WHERE r.tenant_id = q.tenant_id \
                 AND r.leased_by IS NOT NULL AND r.leased_until >= now()) AS running, \
             coalesce((SELECT t.last_served_at FROM worker.ingest_turns t \
                 WHERE t.tenant_id = q.tenant_id), '-infinity') AS served, \
             (SELECT min(j.run_after) FROM worker.ingest_jobs j \
                 WHERE j.tenant_id = q.tenant_id AND ",
    due!(),
    ") AS oldest \
         FROM queued q WHERE q.tenant_id IS NOT NULL) \
     SELECT picked.asset_id \
     FROM (SELECT * FROM candidates WHERE oldest IS NOT NULL \
           ORDER BY running, served, oldest) c \
     CROSS JOIN LATERAL ( \
         SELECT j.asset_id FROM worker.ingest_jobs j WHERE j.tenant_id = c.tenant_id AND ",
    due!(),
    " ORDER BY j.run_after LIMIT 1 FOR UPDATE SKIP LOCKED) picked \
     LIMIT 1"
);

/// Exhausted jobs ended per claim, so a backlog of them cannot make one claim slow.
const EXHAUSTED_PER_CLAIM: i64 = 100;

/// Claims a due job that has attempts left, fairly across tenants (see [`FAIR_PICK`]),
/// leasing it to `worker_id` for `lease`; with it, who queued it.
///
/// An attempt is counted when the job is claimed, not when it ends, so an attempt that killed
/// the process (a parser crash, the OOM killer) counts too. A due job that has used
/// `max_attempts` is never handed out again: it ends FAILED with a reason, so a document that
/// crashes the worker cannot crash it forever.
pub async fn claim(
    pool: &PgPool,
    worker_id: &str,
    lease: Duration,
    max_attempts: i32,
) -> Result<Option<(ClaimedJob, QueuedBy)>> {
    let mut tx = pool.begin().await?;
    let exhausted: Vec<(Uuid, i32)> = sqlx::query_as(
        "WITH exhausted AS ( \
             DELETE FROM worker.ingest_jobs WHERE asset_id IN ( \
                 SELECT asset_id FROM worker.ingest_jobs \
                 WHERE attempts >= $1 AND run_after <= now() \
                     AND (leased_until IS NULL OR leased_until < now()) \
                 ORDER BY run_after LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING asset_id, attempts) \
         UPDATE worker.assets a SET status = 'failed', stage = 'failed', updated_at = now(), \
             error = format('gave up after %s attempts: the last one never finished (the \
                 worker crashed, was killed or lost its lease while processing this document)', \
                 e.attempts) \
         FROM exhausted e WHERE a.id = e.asset_id \
         RETURNING a.id, e.attempts",
    )
    .bind(max_attempts)
    .bind(EXHAUSTED_PER_CLAIM)
    .fetch_all(&mut *tx)
    .await?;
    for (asset_id, attempts) in exhausted {
        crate::telemetry::METRICS.ingest_job("failed");
        tracing::warn!(%asset_id, attempts, "asset failed: its attempts ran out without an outcome");
    }
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "UPDATE worker.ingest_jobs SET leased_by = $1, \
             leased_until = now() + make_interval(secs => $2), attempts = attempts + 1 \
         WHERE asset_id = ({FAIR_PICK}) \
         RETURNING asset_id, tenant_id, attempts, \
             extract(epoch FROM now() - run_after)::float8, traceparent, request_id"
    ))
    .bind(worker_id)
    .bind(lease.as_secs_f64())
    .bind(max_attempts)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((asset_id, tenant_id, attempt, waited, traceparent, request_id)) = row else {
        // Commit, not roll back: the exhausted jobs ended above stay ended.
        tx.commit().await?;
        return Ok(None);
    };
    // clock_timestamp, not now(): claims in one instant still order their tenants' turns.
    sqlx::query(
        "INSERT INTO worker.ingest_turns (tenant_id, last_served_at) \
         VALUES ($1, clock_timestamp()) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_served_at = excluded.last_served_at",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE worker.assets SET status = 'processing', stage = 'reading', progress = 0, \
         attempts = $2, updated_at = now() WHERE id = $1",
    )
    .bind(asset_id)
    .bind(attempt)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let job = ClaimedJob {
        asset_id,
        tenant_id,
        attempt,
        waited: Duration::try_from_secs_f64(waited).unwrap_or_default(),
    };
    Ok(Some((
        job,
        QueuedBy {
            traceparent,
            request_id,
        },
    )))
}

/// Deletes the job inside the caller's transaction if `worker_id` still holds its lease.
/// Returns false when the lease was lost: the caller must roll back.
pub async fn complete(
    tx: &mut Transaction<'_, Postgres>,
    asset_id: Uuid,
    worker_id: &str,
) -> Result<bool> {
    let deleted = sqlx::query(
        "DELETE FROM worker.ingest_jobs WHERE asset_id = $1 AND leased_by = $2 \
         AND leased_until >= now()",
    )
    .bind(asset_id)
    .bind(worker_id)
    .execute(&mut **tx)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Extends the lease of a job `worker_id` still holds. Returns false when the lease was lost
/// (expired and taken over, or the asset was deleted).
pub async fn extend_lease(
    pool: &PgPool,
    asset_id: Uuid,
    worker_id: &str,
    lease: Duration,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE worker.ingest_jobs SET leased_until = now() + make_interval(secs => $3) \
         WHERE asset_id = $1 AND leased_by = $2 AND leased_until >= now()",
    )
    .bind(asset_id)
    .bind(worker_id)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Gives the job back for another attempt after `delay`, recording the error on the asset.
pub async fn retry_later(
    pool: &PgPool,
    asset_id: Uuid,
    worker_id: &str,
    delay: Duration,
    error: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let released = sqlx::query(
        "UPDATE worker.ingest_jobs SET leased_by = NULL, leased_until = NULL, \
             run_after = now() + make_interval(secs => $3) \
         WHERE asset_id = $1 AND leased_by = $2",
    )
    .bind(asset_id)
    .bind(worker_id)
    .bind(delay.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    if released.rows_affected() == 1 {
        sqlx::query(
            "UPDATE worker.assets SET status = 'queued', stage = 'queued', progress = 0, \
             error = $2, updated_at = now() WHERE id = $1",
        )
        .bind(asset_id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Gives a job back at once without counting the attempt (this worker is shutting down), so
/// another worker claims it now instead of after the lease expires.
pub async fn release(pool: &PgPool, asset_id: Uuid, worker_id: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let released = sqlx::query(
        "UPDATE worker.ingest_jobs SET leased_by = NULL, leased_until = NULL, \
             attempts = greatest(attempts - 1, 0) \
         WHERE asset_id = $1 AND leased_by = $2",
    )
    .bind(asset_id)
    .bind(worker_id)
    .execute(&mut *tx)
    .await?;
    let released = released.rows_affected() == 1;
    if released {
        sqlx::query(
            "UPDATE worker.assets SET status = 'queued', stage = 'queued', progress = 0, \
             updated_at = now() WHERE id = $1",
        )
        .bind(asset_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(released)
}

/// Ends the job for good: the asset becomes FAILED with `error`.
pub async fn fail(pool: &PgPool, asset_id: Uuid, worker_id: &str, error: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let deleted =
        sqlx::query("DELETE FROM worker.ingest_jobs WHERE asset_id = $1 AND leased_by = $2")
            .bind(asset_id)
            .bind(worker_id)
            .execute(&mut *tx)
            .await?;
    if deleted.rows_affected() == 1 {
        sqlx::query(
            "UPDATE worker.assets SET status = 'failed', stage = 'failed', error = $2, \
             updated_at = now() WHERE id = $1",
        )
        .bind(asset_id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
