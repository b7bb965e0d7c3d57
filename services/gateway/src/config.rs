//! Gateway configuration: every option is a flag and a `THINKBANK_…` environment variable.
//! The `*_SECS` settings take a number of seconds or the worker's duration syntax (`5m`, `1h`).

use std::{net::SocketAddr, time::Duration};

use thinkbank_common::duration::parse_whole_seconds;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "thinkbank-gateway",
    version,
    about = "thinkbank's HTTP API gateway"
)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "THINKBANK_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// URL of the AiWorker gRPC service.
    #[arg(
        long,
        env = "THINKBANK_WORKER_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub worker_url: String,

    /// PostgreSQL URL: the identity store (tenants, keys, users, audit) and a readiness check.
    /// The gateway applies `migrations/gateway` at start (after the worker's schema exists).
    #[arg(long, env = "THINKBANK_DATABASE_URL")]
    pub database_url: String,

    /// Shared secret sent to the worker (`THINKBANK_INTERNAL_TOKEN` there too).
    #[arg(long, env = "THINKBANK_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,

    /// An API key (`tb_…`) made the default tenant's first admin key when no key or user
    /// exists yet; the dev launcher generates and prints it once.
    #[arg(long, env = "THINKBANK_BOOTSTRAP_ADMIN_KEY", hide_env_values = true)]
    pub bootstrap_admin_key: Option<String>,

    /// Secret signing the access tokens of signed-in users (≥ 32 bytes). Without it a random
    /// one is made at start, so tokens do not survive a restart or work across replicas.
    #[arg(long, env = "THINKBANK_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// HMAC key (≥ 32 bytes) linking the audit chain, kept outside the database so that its
    /// owner cannot rewrite the chain unnoticed. Required unless `THINKBANK_AUDIT_KEY_FILE`
    /// names a file holding it or `THINKBANK_INSECURE_NO_AUDIT_KEY` is set.
    #[arg(long, env = "THINKBANK_AUDIT_KEY", hide_env_values = true)]
    pub audit_key: Option<String>,

    /// A file holding the audit key (trailing whitespace ignored), e.g. a mounted secret.
    #[arg(long, env = "THINKBANK_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<std::path::PathBuf>,

    /// Serve without an audit key: the chain is then linked with plain SHA-256, which the
    /// database owner can recompute after an edit. Tests and developer machines only.
    #[arg(long, env = "THINKBANK_INSECURE_NO_AUDIT_KEY", default_value_t = false)]
    pub insecure_no_audit_key: bool,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "THINKBANK_ACCESS_TOKEN_TTL_SECS", value_parser = parse_whole_seconds, default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a refresh token, in seconds.
    #[arg(long, env = "THINKBANK_REFRESH_TOKEN_TTL_SECS", value_parser = parse_whole_seconds, default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// Let anyone register: each registration creates a new tenant with the user as its
    /// admin. Off: only admins add users (to their own tenant).
    #[arg(long, env = "THINKBANK_OPEN_SIGNUP", default_value_t = false)]
    pub open_signup: bool,

    /// JWKS URL of an external identity provider whose JWTs are accepted too.
    #[arg(long, env = "THINKBANK_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,

    /// Required `iss` of external JWTs.
    #[arg(long, env = "THINKBANK_OIDC_ISSUER", default_value = "")]
    pub oidc_issuer: String,

    /// Required `aud` of external JWTs.
    #[arg(long, env = "THINKBANK_OIDC_AUDIENCE", default_value = "thinkbank")]
    pub oidc_audience: String,

    /// Claim of external JWTs holding the tenant id.
    #[arg(
        long,
        env = "THINKBANK_OIDC_TENANT_CLAIM",
        default_value = "thinkbank_tenant"
    )]
    pub oidc_tenant_claim: String,

    /// Claim of external JWTs holding the role (admin, editor, reader; default reader).
    #[arg(
        long,
        env = "THINKBANK_OIDC_ROLE_CLAIM",
        default_value = "thinkbank_role"
    )]
    pub oidc_role_claim: String,

    /// Bearer token `GET /metrics` requires; unset, the metrics are public (keep the port
    /// private then, or scrape through a proxy).
    #[arg(long, env = "THINKBANK_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    #[command(flatten)]
    pub limits: crate::limits::LimitSettings,

    #[command(flatten)]
    pub login: crate::auth::login_throttle::LoginSettings,

    /// Reverse proxies whose `X-Forwarded-For` is believed (comma-separated addresses or CIDR
    /// blocks, e.g. `10.0.0.0/8,fd00::/8`). The client is the rightmost forwarded address that
    /// is not one of them. Empty: the TCP peer is the client (the header is ignored).
    #[arg(long, env = "THINKBANK_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: crate::client_addr::TrustedProxies,

    /// Seconds an anonymous `GET /readyz` reuses the last probe of the dependencies, so a
    /// flood of probes costs one round of checks per interval (operators always probe anew).
    #[arg(long, env = "THINKBANK_READY_CACHE_SECS", value_parser = parse_whole_seconds, default_value_t = 5)]
    pub ready_cache_secs: u64,

    /// Origins allowed to call the API from a browser (comma-separated, e.g.
    /// `https://app.example.com`); empty: same-origin only.
    #[arg(
        long,
        env = "THINKBANK_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// Send `Strict-Transport-Security` (set when the gateway is reached over HTTPS).
    #[arg(long, env = "THINKBANK_HSTS", default_value_t = false)]
    pub hsts: bool,

    /// Deadline of a whole non-streaming request, in seconds (SSE streams are exempt).
    #[arg(long, env = "THINKBANK_REQUEST_TIMEOUT_SECS", value_parser = parse_whole_seconds, default_value_t = 60)]
    pub request_timeout_secs: u64,

    /// Largest accepted upload in bytes.
    #[arg(long, env = "THINKBANK_MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Largest accepted JSON body in bytes.
    #[arg(long, env = "THINKBANK_MAX_JSON_BYTES", default_value_t = 1024 * 1024)]
    pub max_json_bytes: usize,

    /// Deadline of unary calls to the worker, in seconds.
    #[arg(long, env = "THINKBANK_WORKER_TIMEOUT_SECS", value_parser = parse_whole_seconds, default_value_t = 30)]
    pub worker_timeout_secs: u64,

    /// Deadline of an upload that waits for ingestion (`wait=true`), in seconds.
    #[arg(
        long,
        env = "THINKBANK_INGEST_WAIT_TIMEOUT_SECS",
        value_parser = parse_whole_seconds, default_value_t = 300
    )]
    pub ingest_wait_timeout_secs: u64,

    /// Deadline of one streamed chat answer, in seconds.
    #[arg(long, env = "THINKBANK_CHAT_TIMEOUT_SECS", value_parser = parse_whole_seconds, default_value_t = 300)]
    pub chat_timeout_secs: u64,

    /// Interval of SSE heartbeat comments, in seconds.
    #[arg(long, env = "THINKBANK_SSE_HEARTBEAT_SECS", value_parser = parse_whole_seconds, default_value_t = 15)]
    pub sse_heartbeat_secs: u64,

    /// Seconds a chat stream outlives its connection so a client can resume it with
    /// `Last-Event-ID` (`GET /api/v1/chat/{conversation_id}/events`). 0 (the default) cancels
    /// the answer the moment the connection closes.
    #[arg(long, env = "THINKBANK_SSE_RESUME_WINDOW_SECS", value_parser = parse_whole_seconds, default_value_t = 0)]
    pub sse_resume_window_secs: u64,

    /// Progress streams (`GET /api/v1/assets/{id}/events`) one principal may hold open on
    /// this gateway; the next one is refused with 429.
    #[arg(
        long,
        env = "THINKBANK_SSE_MAX_WATCHES_PER_PRINCIPAL",
        default_value_t = 16
    )]
    pub sse_max_watches_per_principal: usize,

    /// Progress streams one tenant may hold open on this gateway, all its principals together.
    #[arg(
        long,
        env = "THINKBANK_SSE_MAX_WATCHES_PER_TENANT",
        default_value_t = 128
    )]
    pub sse_max_watches_per_tenant: usize,

    /// Longest life of one progress stream, in seconds: it then ends with a `reconnect` event
    /// (browsers' EventSource reconnects by itself).
    #[arg(long, env = "THINKBANK_SSE_WATCH_MAX_SECS", value_parser = parse_whole_seconds, default_value_t = 600)]
    pub sse_watch_max_secs: u64,
}

impl Config {
    /// The audit key from `audit_key` or `audit_key_file`; `None` only with the insecure
    /// opt-out. Fails closed: no key and no opt-out is a start-up error naming both.
    pub fn audit_key(&self) -> anyhow::Result<Option<crate::audit::AuditKey>> {
        use anyhow::Context as _;
        let text = match (&self.audit_key, &self.audit_key_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!("set THINKBANK_AUDIT_KEY or THINKBANK_AUDIT_KEY_FILE, not both")
            }
            (Some(key), None) => key.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| {
                    format!("cannot read THINKBANK_AUDIT_KEY_FILE {}", path.display())
                })?
                .trim_end()
                .to_owned(),
            (None, None) if self.insecure_no_audit_key => {
                tracing::warn!(
                    "THINKBANK_INSECURE_NO_AUDIT_KEY: the audit chain is not keyed, so whoever \
                     owns the database can rewrite it unnoticed; do not run like this in \
                     production"
                );
                return Ok(None);
            }
            (None, None) => anyhow::bail!(
                "THINKBANK_AUDIT_KEY (or THINKBANK_AUDIT_KEY_FILE) is not set: the audit chain \
                 needs a key kept outside the database (e.g. `openssl rand -hex 32`); set \
                 THINKBANK_INSECURE_NO_AUDIT_KEY=true to run without one (tests only)"
            ),
        };
        crate::audit::AuditKey::new(text.as_bytes())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("THINKBANK_AUDIT_KEY: {e}"))
    }

    pub fn worker_timeout(&self) -> Duration {
        Duration::from_secs(self.worker_timeout_secs)
    }

    /// Defaults for a gateway talking to `worker_url`, used by tests and embedders.
    pub fn for_worker(worker_url: impl Into<String>, database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            worker_url: worker_url.into(),
            database_url: database_url.into(),
            internal_token: None,
            bootstrap_admin_key: None,
            jwt_secret: None,
            audit_key: None,
            audit_key_file: None,
            insecure_no_audit_key: false,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            open_signup: false,
            oidc_jwks_url: None,
            oidc_issuer: String::new(),
            oidc_audience: "thinkbank".into(),
            oidc_tenant_claim: "thinkbank_tenant".into(),
            oidc_role_claim: "thinkbank_role".into(),
            metrics_token: None,
            limits: crate::limits::LimitSettings::default(),
            login: crate::auth::login_throttle::LoginSettings::default(),
            trusted_proxies: crate::client_addr::TrustedProxies::default(),
            ready_cache_secs: 5,
            cors_origins: Vec::new(),
            hsts: false,
            request_timeout_secs: 60,
            max_upload_bytes: 100 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            worker_timeout_secs: 30,
            ingest_wait_timeout_secs: 300,
            chat_timeout_secs: 300,
            sse_heartbeat_secs: 15,
            sse_resume_window_secs: 0,
            sse_max_watches_per_principal: 16,
            sse_max_watches_per_tenant: 128,
            sse_watch_max_secs: 600,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::Config;

    fn parse(extra: &[&str]) -> Result<Config, clap::Error> {
        let base = ["thinkbank-gateway", "--database-url", "postgres://x"];
        Config::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn seconds_settings_take_plain_seconds_and_the_worker_duration_syntax() {
        let plain = parse(&["--chat-timeout-secs", "120"]).unwrap();
        assert_eq!(plain.chat_timeout_secs, 120);
        let units = parse(&["--chat-timeout-secs", "2m", "--access-token-ttl-secs", "1h"]).unwrap();
        assert_eq!(units.chat_timeout_secs, 120);
        assert_eq!(units.access_token_ttl_secs, 3600);
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.worker_timeout_secs, 30);
        assert_eq!(defaults.refresh_token_ttl_secs, 30 * 24 * 3600);
    }

    #[test]
    fn a_bad_duration_is_refused_with_an_error_naming_the_setting() {
        for bad in ["5 parsecs", "1500ms", "-3", ""] {
            let flag = format!("--worker-timeout-secs={bad}");
            let error = parse(&[&flag]).unwrap_err().to_string();
            assert!(error.contains("worker-timeout-secs"), "{bad}: {error}");
        }
    }
}
