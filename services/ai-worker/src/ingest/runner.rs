//! Drains the ingestion queue: N concurrent loops per worker, each claiming a job, turning the
//! stored bytes into chunks and vectors, and committing them atomically.

use std::{sync::Arc, time::Duration};

use pgvector::Vector;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{
    chunker::{self, Chunk, ChunkSettings},
    objects::Objects,
    parse::{self, ParseError, ParseSettings, ToolError},
    queue::{self, ClaimedJob},
    sniff::Format,
};
use crate::{
    assets::{Assets, Stage},
    collections::{self, migration::Migrator},
    embed::{LocalEmbedder, Registry, cache},
    error::WorkerError,
    tenancy::Tenant,
};

/// How long an idle loop sleeps before polling again (a local upload wakes it at once).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Chunks embedded between two progress updates.
const EMBED_STEP: usize = 64;

#[derive(Debug, Clone)]
pub struct Runner {
    pub pool: PgPool,
    pub assets: Assets,
    pub objects: Objects,
    /// The local model's tokenizer sizes chunks, whatever model embeds them.
    pub embedder: LocalEmbedder,
    pub registry: Registry,
    /// Re-embeds collections being moved to another model when no ingestion job waits.
    pub migrator: Migrator,
    pub chunking: ChunkSettings,
    pub parsing: ParseSettings,
    /// Describes images when a vision model is configured.
    pub vision: Option<Arc<crate::llm::Llm>>,
    pub worker_id: String,
    pub lease: Duration,
    pub max_attempts: i32,
    /// Default per-tenant quotas; the chunk quota is checked when a document's chunks commit.
    pub quotas: crate::assets::quota::QuotaSettings,
    /// Notified when this process queues work, so uploads do not wait for the next poll.
    pub wake: Arc<Notify>,
    pub job_traces: crate::telemetry::job_trace::JobTraces,
}

/// Wall time per ingestion stage, recorded with the asset (`metadata.document.timings_ms`)
/// so slow documents can be explained. Indexing is not included: it is the commit itself.
#[derive(Debug)]
struct StageTimer {
    last: std::time::Instant,
    laps: serde_json::Map<String, serde_json::Value>,
}

impl Default for StageTimer {
    fn default() -> Self {
        Self {
            last: std::time::Instant::now(),
            laps: serde_json::Map::new(),
        }
    }
}

impl StageTimer {
    fn lap(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        let seconds = (now - self.last).as_secs_f64();
        crate::telemetry::METRICS.ingest_stage(stage, seconds);
        let ms = seconds * 1000.0;
        self.laps
            .insert(stage.into(), ((ms * 10.0).round() / 10.0).into());
        self.last = now;
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.laps.clone())
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum JobError {
    /// Retrying cannot help (bad content); the asset fails now.
    Permanent(String),
    /// May succeed later (database or store hiccup); retried with backoff.
    Transient(String),
}

impl From<WorkerError> for JobError {
    fn from(error: WorkerError) -> Self {
        Self::Transient(error.to_string())
    }
}

impl Runner {
    /// Runs `concurrency` loops until `shutdown`; returns when all of them stopped. Zero loops
    /// make an API-only worker that queues work for other replicas.
    pub async fn run(self, concurrency: usize, shutdown: CancellationToken) {
        let mut loops = tokio::task::JoinSet::new();
        for slot in 0..concurrency {
            let runner = self.clone();
            let shutdown = shutdown.clone();
            loops.spawn(async move { runner.run_loop(slot, shutdown).await });
        }
        while loops.join_next().await.is_some() {}
    }

    async fn run_loop(&self, slot: usize, shutdown: CancellationToken) {
        tracing::debug!(slot, "ingestion loop started");
        while !shutdown.is_cancelled() {
            let claimed = tokio::select! {
                () = shutdown.cancelled() => break,
                claimed = queue::claim(&self.pool, &self.worker_id, self.lease, self.max_attempts) => claimed,
            };
            match claimed {
                Ok(Some((job, queued_by))) => {
                    let span = self
                        .job_traces
                        .claimed(job.asset_id, job.attempt, &queued_by);
                    self.handle(job, &shutdown).instrument(span).await;
                }
                Ok(None) => {
                    match self.migrator.step().await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(error) => tracing::warn!(%error, "cannot advance model migrations"),
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot claim ingestion job; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn handle(&self, job: ClaimedJob, shutdown: &CancellationToken) {
        let started = std::time::Instant::now();
        crate::telemetry::METRICS.queue_wait(job.waited.as_secs_f64());
        // Long jobs (OCR of a large scan) outlive one lease: renew it while working, and stop
        // early if it was lost, since the commit would be refused anyway.
        let outcome = tokio::select! {
            outcome = self.process(job) => outcome,
            () = self.hold_lease(job.asset_id) => {
                tracing::warn!(asset_id = %job.asset_id, "lease lost; abandoning this attempt");
                return;
            }
            // Shutting down: hand the job to another worker now rather than when the lease
            // runs out (the transaction of this attempt never committed).
            () = shutdown.cancelled() => {
                match queue::release(&self.pool, job.asset_id, &self.worker_id).await {
                    Ok(_) => tracing::info!(asset_id = %job.asset_id, "shutting down; job released to the queue"),
                    Err(error) => tracing::warn!(asset_id = %job.asset_id, %error, "cannot release the job; it is taken over when its lease expires"),
                }
                return;
            }
        };
        let metrics = &crate::telemetry::METRICS;
        let result = match outcome {
            Ok(chunks) => {
                metrics.ingest_job("ready");
                tracing::info!(asset_id = %job.asset_id, chunks, elapsed_ms = started.elapsed().as_millis(), "asset ready");
                Ok(())
            }
            Err(JobError::Permanent(reason)) => {
                metrics.ingest_job("failed");
                tracing::warn!(asset_id = %job.asset_id, %reason, "asset failed");
                queue::fail(&self.pool, job.asset_id, &self.worker_id, &reason).await
            }
            Err(JobError::Transient(reason)) if job.attempt >= self.max_attempts => {
                metrics.ingest_job("failed");
                tracing::warn!(asset_id = %job.asset_id, attempt = job.attempt, %reason, "asset failed after retries");
                let reason = format!("gave up after {} attempts: {reason}", job.attempt);
                queue::fail(&self.pool, job.asset_id, &self.worker_id, &reason).await
            }
            Err(JobError::Transient(reason)) => {
                metrics.ingest_job("retry");
                tracing::warn!(asset_id = %job.asset_id, attempt = job.attempt, %reason, "ingestion attempt failed; will retry");
                let delay = crate::retry::backoff(job.attempt);
                queue::retry_later(&self.pool, job.asset_id, &self.worker_id, delay, &reason).await
            }
        };
        if let Err(error) = result {
            // The lease expires and another attempt picks the job up.
            tracing::error!(asset_id = %job.asset_id, %error, "cannot record job outcome");
        }
    }

    /// Renews the job's lease every third of its length (at most every 2 s, so a cancellation,
    /// which removes the job, stops the attempt promptly); returns only when it was lost.
    async fn hold_lease(&self, asset_id: Uuid) {
        let period = (self.lease / 3).min(Duration::from_secs(2));
        loop {
            tokio::time::sleep(period).await;
            match queue::extend_lease(&self.pool, asset_id, &self.worker_id, self.lease).await {
                Ok(true) => {}
                Ok(false) => return,
                // The database is briefly unreachable: keep working; the commit checks the lease.
                Err(error) => tracing::warn!(%asset_id, %error, "cannot renew lease"),
            }
        }
    }

    /// One attempt; returns the number of chunks indexed.
    async fn process(&self, job: ClaimedJob) -> Result<usize, JobError> {
        let asset = match self
            .assets
            .get(&Tenant::new(job.tenant_id), job.asset_id)
            .await
        {
            Ok(asset) => asset,
            // Deleted while queued: its job row went with it.
            Err(WorkerError::NotFound(_)) => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        let mut timings = StageTimer::default();
        let bytes = self
            .objects
            .get(&asset.object_key)
            .await
            .map_err(|e| JobError::Transient(format!("cannot read stored object: {e}")))?;
        timings.lap("read");

        self.progress(job.asset_id, Stage::Parsing, 0.1).await;
        let format = Format::from_media_type(&asset.media_type).ok_or_else(|| {
            JobError::Permanent(format!("unsupported media type '{}'", asset.media_type))
        })?;
        let parsed = parse::parse(format, bytes, &self.parsing, self.vision.as_deref())
            .instrument(tracing::info_span!("ingest.parse", media_type = %asset.media_type))
            .await
            .map_err(|error| match error {
                ParseError::Invalid(reason) => JobError::Permanent(reason),
                // Retrying cannot install a missing program; say what is missing.
                ParseError::Tool(missing @ ToolError::Missing { .. }) => {
                    JobError::Permanent(missing.to_string())
                }
                // The same document produces the same output: retrying cannot fit it.
                ParseError::Tool(large @ ToolError::OutputTooLarge { .. }) => {
                    JobError::Permanent(format!("the document is too large to read: {large}"))
                }
                ParseError::Tool(other) => JobError::Transient(other.to_string()),
            })?;
        timings.lap("parse");

        self.progress(job.asset_id, Stage::Chunking, 0.2).await;
        let embedder = self.embedder.clone();
        let settings = self.chunking;
        let (parsed, chunks) = tokio::task::spawn_blocking(move || {
            chunker::split(&parsed, embedder.tokenizer(), settings).map(|chunks| (parsed, chunks))
        })
        .instrument(tracing::info_span!("ingest.chunk"))
        .await
        .map_err(|e| JobError::Transient(format!("chunking task failed: {e}")))?
        .map_err(JobError::Permanent)?;
        if chunks.is_empty() {
            return Err(JobError::Permanent(
                "the document contains no text to index".into(),
            ));
        }
        timings.lap("chunk");

        let vectors = self.embed_chunks(&asset, &chunks).await?;
        timings.lap("embed");

        self.progress(job.asset_id, Stage::Indexing, 0.95).await;
        let mut info = parsed.info;
        info.insert("timings_ms".into(), timings.to_json());
        let committing = std::time::Instant::now();
        self.commit(job, &asset, &chunks, vectors, info)
            .instrument(tracing::info_span!(
                "db.commit_chunks",
                chunks = chunks.len()
            ))
            .await?;
        crate::telemetry::METRICS.ingest_stage("commit", committing.elapsed().as_secs_f64());
        Ok(chunks.len())
    }

    /// Vectors of every chunk for each model the collection wants now: its own, and the
    /// target of a running migration (dual-write), read through the content-hash cache.
    async fn embed_chunks(
        &self,
        asset: &crate::assets::AssetRow,
        chunks: &[Chunk],
    ) -> Result<Vec<(String, Vec<Vector>)>, JobError> {
        let targets =
            collections::current_targets(&self.pool, asset.tenant_id, asset.collection_id).await?;
        let models = targets.models();
        let steps = models.len() * chunks.len().div_ceil(EMBED_STEP);
        let mut out = Vec::with_capacity(models.len());
        let mut step = 0;
        for model in models {
            let embedder = self
                .registry
                .get(&model)
                .map_err(|e| JobError::Permanent(e.to_string()))?;
            let mut vectors = Vec::with_capacity(chunks.len());
            for batch in chunks.chunks(EMBED_STEP) {
                let fraction = 0.3 + 0.6 * (step as f32 / steps.max(1) as f32);
                self.progress(asset.id, Stage::Embedding, fraction).await;
                step += 1;
                let texts: Vec<String> = batch.iter().map(|c| c.text.clone()).collect();
                let (embedded, stats) =
                    cache::embed_cached(&self.pool, asset.tenant_id, embedder, &texts)
                        .instrument(
                            tracing::info_span!("embed.batch", size = batch.len(), model = %model),
                        )
                        .await?;
                if stats.reused > 0 {
                    tracing::debug!(asset_id = %asset.id, %model, reused = stats.reused, "embedding cache hits");
                }
                vectors.extend(embedded.into_iter().map(|e| Vector::from(e.vector)));
            }
            out.push((model, vectors));
        }
        Ok(out)
    }

    /// Writes chunks and vectors, marks the asset READY and removes the job, atomically.
    ///
    /// `asset` is the row read when the attempt started; nothing `commit` uses changes while
    /// it runs, and a concurrent delete is caught in the transaction (foreign keys, lease).
    async fn commit(
        &self,
        job: ClaimedJob,
        asset: &crate::assets::AssetRow,
        chunks: &[Chunk],
        vectors: Vec<(String, Vec<Vector>)>,
        document_info: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), JobError> {
        let mut tx = self.pool.begin().await.map_err(WorkerError::from)?;
        // Serialises with model switches: the collection's models cannot change until commit.
        let targets =
            collections::vector_targets(&mut tx, asset.tenant_id, asset.collection_id).await?;
        if !vectors.iter().any(|(model, _)| *model == targets.current) {
            tx.rollback().await.map_err(WorkerError::from)?;
            return Err(JobError::Transient(format!(
                "the collection switched to model '{}' during ingestion; embedding again",
                targets.current
            )));
        }
        let wanted = targets.models();
        // A previous attempt that lost its lease rolled back, but be explicit: the asset's
        // chunks are replaced, never appended to.
        sqlx::query("DELETE FROM worker.chunks WHERE asset_id = $1")
            .bind(job.asset_id)
            .execute(&mut *tx)
            .await
            .map_err(WorkerError::from)?;
        let ids: Vec<Uuid> = chunks.iter().map(|_| Uuid::now_v7()).collect();
        insert_chunks(&mut tx, asset, &ids, chunks).await?;
        for (model, vectors) in vectors {
            // A migration cancelled since embedding: its vectors are not wanted any more.
            if !wanted.contains(&model) {
                continue;
            }
            sqlx::query(
                "INSERT INTO worker.embeddings (chunk_id, model, tenant_id, collection_id, asset_id, embedding) \
                 SELECT u.id, $1, $2, $3, $4, u.embedding \
                 FROM UNNEST($5::uuid[], $6::vector[]) AS u(id, embedding)",
            )
            .bind(&model)
            .bind(asset.tenant_id)
            .bind(asset.collection_id)
            .bind(asset.id)
            .bind(&ids)
            .bind(vectors)
            .execute(&mut *tx)
            .await
            .map_err(WorkerError::from)?;
        }
        if !document_info.is_empty() {
            sqlx::query(
                "UPDATE worker.assets SET metadata = metadata || jsonb_build_object('document', $2::jsonb) \
                 WHERE id = $1",
            )
            .bind(job.asset_id)
            .bind(serde_json::Value::Object(document_info))
            .execute(&mut *tx)
            .await
            .map_err(WorkerError::from)?;
        }
        let replaced = replace_older_versions(&mut tx, asset).await?;
        // Over the tenant's chunk quota: nothing of this attempt is kept (not even the
        // replacement of older versions), and retrying cannot fit it.
        if let Err(refused) = crate::assets::quota::check_commit(
            &mut tx,
            &self.quotas,
            asset.tenant_id,
            asset.id,
            chunks.len(),
        )
        .await
        {
            tx.rollback().await.map_err(WorkerError::from)?;
            return Err(match refused {
                WorkerError::ResourceExhausted(reason) => JobError::Permanent(reason),
                other => other.into(),
            });
        }
        Assets::mark_ready(&mut tx, job.asset_id, chunks.len()).await?;
        if !queue::complete(&mut tx, job.asset_id, &self.worker_id).await? {
            tx.rollback().await.map_err(WorkerError::from)?;
            return Err(JobError::Transient(
                "lease expired before the results were committed".into(),
            ));
        }
        tx.commit().await.map_err(WorkerError::from)?;
        for object_key in replaced {
            super::objects::release(&self.assets, &self.objects, &object_key).await;
        }
        Ok(())
    }

    async fn progress(&self, asset_id: Uuid, stage: Stage, fraction: f32) {
        if let Err(error) = self.assets.set_stage(asset_id, stage, fraction).await {
            tracing::debug!(%asset_id, %error, "cannot record progress");
        }
    }
}

/// Deletes older assets of the same collection with the same `external_id`, inside the
/// transaction that makes the new version READY: search sees the old version until this
/// commits and the new one after, never both. Returns the replaced assets' object keys.
async fn replace_older_versions(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    asset: &crate::assets::AssetRow,
) -> Result<Vec<String>, JobError> {
    let Some(external_id) = &asset.external_id else {
        return Ok(Vec::new());
    };
    let keys: Vec<String> = sqlx::query_scalar(
        "DELETE FROM worker.assets WHERE tenant_id = $1 AND collection_id = $2 AND external_id = $3 \
         AND id <> $4 AND created_at <= $5 RETURNING object_key",
    )
    .bind(asset.tenant_id)
    .bind(asset.collection_id)
    .bind(external_id)
    .bind(asset.id)
    .bind(asset.created_at)
    .fetch_all(&mut **tx)
    .await
    .map_err(WorkerError::from)?;
    if !keys.is_empty() {
        tracing::info!(asset_id = %asset.id, %external_id, replaced = keys.len(), "replaced older versions");
    }
    Ok(keys)
}

async fn insert_chunks(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    asset: &crate::assets::AssetRow,
    ids: &[Uuid],
    chunks: &[Chunk],
) -> Result<(), JobError> {
    let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let indexes: Vec<i32> = chunks.iter().map(|c| to_i32(c.index)).collect();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let starts: Vec<i64> = chunks.iter().map(|c| to_i64(c.char_start)).collect();
    let ends: Vec<i64> = chunks.iter().map(|c| to_i64(c.char_end)).collect();
    // Heading paths differ in length per chunk, and PostgreSQL arrays must be rectangular,
    // so each path travels as a JSON array.
    let headings: Vec<String> = chunks
        .iter()
        .map(|c| serde_json::Value::from(c.headings.clone()).to_string())
        .collect();
    let pages: Vec<Option<i32>> = chunks
        .iter()
        .map(|c| c.page.and_then(|p| i32::try_from(p).ok()))
        .collect();
    let tokens: Vec<i32> = chunks.iter().map(|c| to_i32(c.token_count)).collect();
    sqlx::query(
        "INSERT INTO worker.chunks (id, tenant_id, collection_id, asset_id, chunk_index, text, \
             char_start, char_end, headings, page, token_count, tsv) \
         SELECT u.id, $1, $2, $3, u.idx, u.text, u.cs, u.ce, \
             u.heading_path, u.page, u.tokens, \
             worker.chunk_tsv(c.text_search_config, $12, u.heading_path, u.text) \
         FROM (SELECT *, ARRAY(SELECT jsonb_array_elements_text(headings::jsonb)) AS heading_path \
               FROM UNNEST($4::uuid[], $5::int[], $6::text[], $7::bigint[], $8::bigint[], \
                   $9::text[], $10::int[], $11::int[]) \
                   AS u(id, idx, text, cs, ce, headings, page, tokens)) AS u \
         CROSS JOIN (SELECT text_search_config FROM worker.collections WHERE id = $2) AS c",
    )
    .bind(asset.tenant_id)
    .bind(asset.collection_id)
    .bind(asset.id)
    .bind(ids)
    .bind(&indexes)
    .bind(&texts)
    .bind(&starts)
    .bind(&ends)
    .bind(&headings)
    .bind(&pages)
    .bind(&tokens)
    .bind(&asset.filename)
    .execute(&mut **tx)
    .await
    .map_err(WorkerError::from)?;
    Ok(())
}
