//! Shared handler state: the worker clients and the optional database pool for readiness;
//! `schema` migrates the gateway's own tables at start-up.

pub mod schema;

use std::time::Duration;

use std::sync::Arc;

use sqlx::PgPool;
use thinkbank_proto::v1::ai_worker_client::AiWorkerClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

use crate::{
    auth::{
        Principal,
        external::{ExternalIdp, IdpSettings},
        key_cache::KeyCache,
        tokens::Tokens,
    },
    config::Config,
    error::current_request_id,
    limits::Limiter,
    trace::TracedChannel,
    worker_client::{Caller, TenantsClient, WorkerAuth, WorkerClient},
};

#[derive(Debug, Clone)]
pub struct AppState {
    pub worker: WorkerClient,
    /// The worker's `Tenants` service, over the same channel.
    pub tenants: TenantsClient,
    pub health: HealthClient<Channel>,
    /// The identity store; also checked by /readyz.
    pub database: PgPool,
    /// The audit chain: the same pool and the key that links the entries.
    pub audit: crate::audit::AuditLog,
    pub tokens: Tokens,
    pub external_idp: Option<Arc<ExternalIdp>>,
    pub limiter: Limiter,
    /// Failed sign-ins per account name (see `auth::login_throttle`).
    pub login_throttle: Arc<crate::auth::login_throttle::LoginThrottle>,
    /// The last probe of `/readyz`'s dependencies (see `routes::health`).
    pub readiness: Arc<crate::routes::health::ReadinessCache>,
    /// Authenticated API keys (see `auth::key_cache`).
    pub key_cache: Arc<KeyCache>,
    pub config: std::sync::Arc<Config>,
    /// Cancelled when the gateway shuts down; long SSE streams end with it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Chat streams in progress on this gateway, by conversation id, for the stop endpoint.
    pub active_chats: crate::chat_relay::stops::ActiveChats,
    /// Resumable chat streams, by conversation id (only with a resume window).
    pub chat_hubs: crate::chat_relay::resume::Hubs,
    /// Open progress streams per principal and tenant (see `watch_caps`).
    pub watch_caps: crate::watch_caps::WatchCaps,
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
        let auth = WorkerAuth::new(config.internal_token.as_deref())?;
        let tenants = thinkbank_proto::v1::tenants_client::TenantsClient::with_interceptor(
            TracedChannel::new(channel.clone()),
            auth.clone(),
        );
        let worker = AiWorkerClient::with_interceptor(TracedChannel::new(channel.clone()), auth)
            .max_encoding_message_size(max_message)
            .max_decoding_message_size(max_message);
        let database = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(&config.database_url)
            .context("invalid THINKBANK_DATABASE_URL")?;
        let audit = crate::audit::AuditLog {
            pool: database.clone(),
            key: config.audit_key()?,
        };
        let secret = match &config.jwt_secret {
            Some(secret) if secret.len() >= 32 => secret.as_bytes().to_vec(),
            Some(_) => anyhow::bail!("THINKBANK_JWT_SECRET must be at least 32 bytes"),
            None => {
                tracing::warn!(
                    "THINKBANK_JWT_SECRET is not set: signed-in sessions end when the gateway \
                     restarts and do not work across replicas"
                );
                let mut secret = vec![0u8; 32];
                rand::Rng::fill(&mut rand::rng(), secret.as_mut_slice());
                secret
            }
        };
        let tokens = Tokens::new(
            &secret,
            Duration::from_secs(config.access_token_ttl_secs),
            Duration::from_secs(config.refresh_token_ttl_secs),
        );
        let external_idp = config.oidc_jwks_url.as_ref().map(|url| {
            Arc::new(ExternalIdp::new(IdpSettings {
                jwks_url: url.clone(),
                issuer: config.oidc_issuer.clone(),
                audience: config.oidc_audience.clone(),
                tenant_claim: config.oidc_tenant_claim.clone(),
                role_claim: config.oidc_role_claim.clone(),
            }))
        });
        let limiter = Limiter::new(config.limits.clone());
        let watch_caps = crate::watch_caps::WatchCaps::new(
            config.sse_max_watches_per_principal,
            config.sse_max_watches_per_tenant,
        );
        Ok(Self {
            worker,
            tenants,
            health: HealthClient::new(channel),
            database,
            audit,
            tokens,
            external_idp,
            limiter,
            login_throttle: Arc::new(crate::auth::login_throttle::LoginThrottle::new(
                config.login.clone(),
            )),
            readiness: Arc::default(),
            key_cache: Arc::default(),
            config: std::sync::Arc::new(config),
            shutdown,
            active_chats: crate::chat_relay::stops::ActiveChats::default(),
            chat_hubs: crate::chat_relay::resume::Hubs::default(),
            watch_caps,
        })
    }

    /// Wraps a message for the worker, acting for `principal`, with a deadline (sent as
    /// `grpc-timeout`) and the request id.
    pub fn request<T>(
        &self,
        principal: &Principal,
        message: T,
        timeout: Duration,
    ) -> Result<tonic::Request<T>, tonic::Status> {
        Ok(Self::request_as(&Caller::of(principal)?, message, timeout))
    }

    /// Wraps a message for a worker call that acts for no principal (the `Tenants` service: its
    /// messages name their tenant), with a deadline and the request id.
    pub fn internal_request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Ok(value) = current_request_id().parse() {
            request.metadata_mut().insert("x-request-id", value);
        }
        request
    }

    fn request_as<T>(caller: &Caller, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = Self::internal_request(message, timeout);
        caller.apply(&mut request);
        request
    }

    /// An idempotent (read-only) worker call for `principal`, retried on UNAVAILABLE with
    /// jittered backoff (`crate::retry`); each attempt is a fresh request with its own deadline.
    pub async fn read<M, T, F, Fut>(
        &self,
        principal: &Principal,
        message: M,
        call: F,
    ) -> Result<tonic::Response<T>, tonic::Status>
    where
        M: Clone,
        F: Fn(WorkerClient, tonic::Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let caller = Caller::of(principal)?;
        crate::retry::idempotent(|| {
            call(
                self.worker.clone(),
                Self::request_as(&caller, message.clone(), self.config.worker_timeout()),
            )
        })
        .await
    }
}
