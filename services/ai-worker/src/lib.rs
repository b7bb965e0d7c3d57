//! thinkbank's AiWorker: the internal gRPC service that owns knowledge — assets, chunks,
//! embeddings, search and answers — on PostgreSQL with pgvector.
//!
//! `run` serves health and reflection at once and reports NOT_SERVING until the database,
//! migrations and embedding model are ready; only then does it report SERVING.

pub mod assets;
pub mod chat;
pub mod collections;
pub mod config;
pub mod db;
pub mod embed;
pub mod error;
pub mod grpc;
pub mod ingest;
pub mod llm;
pub mod readiness;
pub mod search;
pub mod telemetry;
pub mod tenancy;
pub mod tenants;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context as _;
use sqlx::PgPool;
use thinkbank_proto::v1::{ai_worker_server::AiWorkerServer, tenants_server::TenantsServer};
use tokio::{net::TcpListener, sync::Notify};
use tokio_stream::{StreamExt as _, wrappers::TcpListenerStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::Config;

use crate::{
    assets::Assets,
    collections::migration::Migrator,
    embed::{LocalEmbedder, Registry},
    grpc::AiWorkerService,
    ingest::{chunker::ChunkSettings, objects::Objects, runner::Runner},
};

pub use tenancy::DEFAULT_TENANT_ID;
/// How often the database is probed for the health status.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How often a worker that reported NOT_SERVING checks whether the database is back.
const HEALTH_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// Everything a request handler needs, built once at start-up.
#[derive(Debug)]
pub struct State {
    pub pool: PgPool,
    pub assets: Assets,
    pub objects: Objects,
    /// The in-process model: tokenizer for chunking and prompts, sentence ranking.
    pub embedder: LocalEmbedder,
    /// Every configured embedding model by name.
    pub models: Registry,
    /// The LLM for generative answers; `None` means extractive answers.
    pub llm: Option<llm::Llm>,
    pub max_asset_bytes: usize,
    /// Default per-tenant quotas (overridden per tenant in `worker.tenant_quotas`).
    pub quotas: ingest::quota::QuotaSettings,
    /// Wakes the ingestion loops when this process queues work.
    pub wake: Arc<Notify>,
    /// Asset changes fanned out to `WatchAsset` streams (see `assets::watch`).
    pub watches: assets::watch::Watches,
    /// Longest life of one `WatchAsset` stream.
    pub watch_max_duration: Duration,
    /// Open queue-wait spans of the jobs this worker queued.
    pub job_traces: telemetry::job_trace::JobTraces,
    /// The shadow retrieval profile compared with live searches, when configured.
    pub shadow: Option<search::shadow::Shadow>,
    /// BM25's parameters and the reranking stage, when configured.
    pub ranking: search::Ranking,
    /// How chat retrieves and when it abstains.
    pub answers: chat::AnswerConfig,
}

/// Serves the worker on `listener` (and its admin port on `config.admin_listen`) until
/// `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin port)", config.admin_listen))?;
    run_with_admin(config, listener, admin, shutdown).await
}

/// [`run`] with the admin port's listener bound by the caller (tests bind port 0).
pub async fn run_with_admin(
    config: Config,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Before anything listens: an unauthenticated worker must not serve even for a moment.
    let callers = grpc::Callers::from_config(
        config.internal_token.clone(),
        config.insecure_no_internal_token,
    )?;
    let admin_pool = telemetry::admin::PoolCell::default();
    let admin_addr = admin_listener
        .local_addr()
        .context("admin listener has no local address")?;
    let admin = tokio::spawn(telemetry::admin::serve(
        admin_listener,
        admin_pool.clone(),
        shutdown.clone(),
    ));
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<AiWorkerServer<AiWorkerService>>()
        .await;
    health
        .set_not_serving::<TenantsServer<grpc::TenantsService>>()
        .await;
    // Both reflection versions: grpcurl ≤ 1.8 and many generated tools still speak v1alpha.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(thinkbank_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the reflection service")?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(thinkbank_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("cannot build the reflection service")?;

    let cell: Arc<OnceLock<Arc<State>>> = Arc::new(OnceLock::new());
    // Room for the largest asset plus the message envelope.
    let max_message = config.max_asset_bytes + 1024 * 1024;
    let tenants = TenantsServer::new(grpc::TenantsService::new(cell.clone(), callers.clone()));
    let ai_worker = AiWorkerServer::new(AiWorkerService::new(cell.clone(), callers))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);

    let local_addr = listener
        .local_addr()
        .context("listener has no local address")?;
    // Streamed tokens must leave at once, not wait for Nagle.
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        stream.inspect(|s| {
            if let Err(error) = s.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        })
    });
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(telemetry::rpc::RpcLayer::new(
                config.max_concurrent_calls,
                config.max_watches,
            ))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(ai_worker)
            .add_service(tenants)
            .serve_with_incoming_shutdown(incoming, server_shutdown.cancelled_owned()),
    );
    tracing::info!(%local_addr, %admin_addr, "worker listening (NOT_SERVING until ready)");

    let state = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        state = initialise(&config) => state?,
    };
    let state = Arc::new(state);
    let _ = cell.set(state.clone());
    let _ = admin_pool.set(state.pool.clone());
    let queue_gauges = tokio::spawn(telemetry::admin::refresh_queue_gauges(
        state.pool.clone(),
        shutdown.clone(),
    ));
    let watch_hub = {
        let (watches, pool, assets) = (
            state.watches.clone(),
            state.pool.clone(),
            state.assets.clone(),
        );
        let fallback = config.watch_fallback_poll.max(Duration::from_millis(100));
        let shutdown = shutdown.clone();
        tokio::spawn(async move { watches.run(&pool, assets, fallback, shutdown).await })
    };

    let worker_id = format!("{}-{}", local_addr, Uuid::new_v4());
    let runner = Runner {
        pool: state.pool.clone(),
        assets: state.assets.clone(),
        objects: state.objects.clone(),
        embedder: state.embedder.clone(),
        registry: state.models.clone(),
        migrator: Migrator {
            pool: state.pool.clone(),
            registry: state.models.clone(),
            worker_id: worker_id.clone(),
            lease: config.ingest_lease,
            batch: config.migration_batch.max(1),
        },
        chunking: ChunkSettings {
            max_tokens: config
                .chunk_tokens
                .min(state.embedder.info().max_tokens - 2),
            overlap_tokens: config.chunk_overlap_tokens,
            max_chunks: config.parsing.max_chunks,
        },
        parsing: config.parsing.clone(),
        vision: llm::Llm::vision_from_config(&config.llm)
            .context("cannot set up the vision model client")?
            .map(Arc::new),
        worker_id,
        lease: config.ingest_lease,
        max_attempts: config.ingest_max_attempts.max(1),
        quotas: config.quotas,
        wake: state.wake.clone(),
        job_traces: state.job_traces.clone(),
    };
    let runner_task = tokio::spawn(runner.run(config.ingest_concurrency, shutdown.clone()));
    health
        .set_serving::<AiWorkerServer<AiWorkerService>>()
        .await;
    health
        .set_serving::<TenantsServer<grpc::TenantsService>>()
        .await;
    tracing::info!(%local_addr, models = ?state.models.names(), default_model = %state.models.default_model().info().name, "worker ready (SERVING)");

    let probe = tokio::spawn(probe_database(
        state.pool.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    shutdown.cancelled().await;
    // Drain: tell load balancers first, then stop taking jobs and let in-flight calls finish.
    health
        .set_not_serving::<AiWorkerServer<AiWorkerService>>()
        .await;
    health
        .set_not_serving::<TenantsServer<grpc::TenantsService>>()
        .await;
    let _ = probe.await;
    let _ = runner_task.await;
    let _ = queue_gauges.await;
    let _ = watch_hub.await;
    let _ = admin.await;
    server
        .await
        .context("server task panicked")?
        .context("gRPC server failed")?;
    state.pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}

async fn initialise(config: &Config) -> anyhow::Result<State> {
    let pool =
        db::connect_and_migrate(&config.database_url, config.database_max_connections).await?;
    let dir = config.embed_model_dir.clone();
    let embedder = tokio::task::spawn_blocking(move || LocalEmbedder::load(&dir))
        .await
        .context("model loading task panicked")?
        .with_context(|| {
            format!(
                "cannot load the embedding model from {} (set THINKBANK_EMBED_MODEL_DIR)",
                config.embed_model_dir.display()
            )
        })?;
    let models = Registry::new(embedder.clone(), &config.embed)
        .map_err(anyhow::Error::msg)
        .context("cannot set up the embedding models")?;
    for model in models.models() {
        db::ensure_vector_index(&pool, model)
            .await
            .with_context(|| format!("cannot create the vector index of {}", model.name))?;
    }
    let objects = Objects::local(&config.object_store_dir).with_context(|| {
        format!(
            "cannot open the object store at {}",
            config.object_store_dir.display()
        )
    })?;
    let llm = llm::Llm::from_config(&config.llm).context("cannot set up the llm client")?;
    match &llm {
        Some(llm) => tracing::info!(model = llm.model(), "answers are generative"),
        None => {
            tracing::info!("no llm configured (THINKBANK_LLM_BASE_URL); answers are extractive")
        }
    }
    let shadow = match config.search_shadow.clone() {
        Some(profile) => {
            let shadow =
                search::shadow::Shadow::new(profile, pool.clone(), models.clone(), config.bm25)
                    .map_err(anyhow::Error::msg)
                    .context(
                        "cannot set up the shadow retrieval profile (THINKBANK_SEARCH_SHADOW)",
                    )?;
            tracing::info!(profile = ?shadow.profile(), "shadow retrieval profile active");
            Some(shadow)
        }
        None => None,
    };
    let reranker = config
        .rerank
        .reranker()
        .map_err(anyhow::Error::msg)
        .context("cannot set up the reranker (THINKBANK_RERANK_URL)")?;
    if let Some(url) = &config.rerank.rerank_url {
        tracing::info!(%url, candidates = config.rerank.rerank_candidates, "reranking enabled");
    }
    Ok(State {
        llm,
        shadow,
        ranking: search::Ranking {
            bm25: config.bm25,
            reranker,
        },
        answers: config.answers.clone(),
        job_traces: telemetry::job_trace::JobTraces::default(),
        assets: Assets::new(pool.clone()),
        pool,
        objects,
        embedder,
        models,
        max_asset_bytes: config.max_asset_bytes,
        quotas: config.quotas,
        wake: Arc::new(Notify::new()),
        watches: assets::watch::Watches::default(),
        watch_max_duration: config.watch_max_duration,
    })
}

/// Keeps the health status in step with the database: NOT_SERVING while it is unreachable.
async fn probe_database(
    pool: PgPool,
    health: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
) {
    let mut serving = true;
    loop {
        // While the database is away, look often: readiness should return with it.
        let interval = if serving {
            HEALTH_PROBE_INTERVAL
        } else {
            HEALTH_RETRY_INTERVAL
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let ok = sqlx::query("SELECT 1").execute(&pool).await.is_ok();
        if ok != serving {
            serving = ok;
            if ok {
                tracing::info!("database reachable again; SERVING");
                health
                    .set_serving::<AiWorkerServer<AiWorkerService>>()
                    .await;
                health
                    .set_serving::<TenantsServer<grpc::TenantsService>>()
                    .await;
            } else {
                tracing::warn!("database unreachable; NOT_SERVING");
                health
                    .set_not_serving::<AiWorkerServer<AiWorkerService>>()
                    .await;
                health
                    .set_not_serving::<TenantsServer<grpc::TenantsService>>()
                    .await;
            }
        }
    }
}
