//! thinkbank's AiWorker: the internal gRPC service that owns knowledge — assets, chunks,
//! embeddings, search and answers — on PostgreSQL with pgvector.
//!
//! `run` serves health and reflection at once and reports NOT_SERVING until the database,
//! migrations and embedding model are ready; only then does it report SERVING.

pub mod app;
pub mod assets;
pub mod chat;
pub mod collections;
pub mod config;
pub mod db;
pub mod embed;
pub mod error;
pub mod grpc;
pub mod ingest;
#[cfg(test)]
mod layers;
pub mod llm;
pub mod retry;
pub mod search;
pub mod stored;
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
use tokio::net::TcpListener;
use tokio_stream::{StreamExt as _, wrappers::TcpListenerStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::Config;

use crate::{
    app::Worker,
    collections::migration::Migrator,
    grpc::AiWorkerService,
    ingest::{chunker::ChunkSettings, runner::Runner},
};

pub use tenancy::DEFAULT_TENANT_ID;
/// How often the database is probed for the health status.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How often a worker that reported NOT_SERVING checks whether the database is back.
const HEALTH_RETRY_INTERVAL: Duration = Duration::from_millis(250);

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

    let cell: Arc<OnceLock<Arc<Worker>>> = Arc::new(OnceLock::new());
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
        state = Worker::start(&config) => state?,
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
