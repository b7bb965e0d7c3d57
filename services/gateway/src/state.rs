//! Shared handler state: the worker clients and the optional database pool for readiness.

use std::time::Duration;

use sqlx::PgPool;
use thinkbank_proto::v1::ai_worker_client::AiWorkerClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

use crate::{config::Config, error::current_request_id};

#[derive(Debug, Clone)]
pub struct AppState {
    pub worker: AiWorkerClient<Channel>,
    pub health: HealthClient<Channel>,
    pub database: Option<PgPool>,
    pub config: std::sync::Arc<Config>,
    /// Cancelled when the gateway shuts down; long SSE streams end with it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Chat streams in progress on this gateway, by conversation id, for the stop endpoint.
    pub active_chats: crate::routes::chat::ActiveChats,
    /// Resumable chat streams, by conversation id (only with a resume window).
    pub chat_hubs: crate::routes::chat_resume::Hubs,
}

impl AppState {
    /// Builds clients without connecting: the gateway starts (and reports not-ready) even while
    /// the worker is down, and reconnects when it comes back.
    pub fn new(
        config: Config,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let endpoint = Endpoint::from_shared(config.worker_url.clone())
            .with_context(|| format!("invalid THINKBANK_WORKER_URL '{}'", config.worker_url))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        // Uploads travel inside ProcessAsset; allow the configured maximum plus envelope.
        let max_message = config.max_upload_bytes + 1024 * 1024;
        let worker = AiWorkerClient::new(channel.clone())
            .max_encoding_message_size(max_message)
            .max_decoding_message_size(max_message);
        let database = match &config.database_url {
            Some(url) => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(2))
                    .connect_lazy(url)
                    .context("invalid THINKBANK_DATABASE_URL")?,
            ),
            None => None,
        };
        Ok(Self {
            worker,
            health: HealthClient::new(channel),
            database,
            config: std::sync::Arc::new(config),
            shutdown,
            active_chats: crate::routes::chat::ActiveChats::default(),
            chat_hubs: crate::routes::chat_resume::Hubs::default(),
        })
    }

    /// Wraps a message for the worker with a deadline (sent as `grpc-timeout`) and the
    /// request id.
    pub fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = Self::request_without_deadline(message);
        request.set_timeout(timeout);
        request
    }

    /// A worker request carrying the request id but no deadline, for streams that end by
    /// themselves (progress watches).
    pub fn request_without_deadline<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = current_request_id().parse() {
            request.metadata_mut().insert("x-request-id", value);
        }
        request
    }
}
