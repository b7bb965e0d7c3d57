//! Gateway configuration: every option is a flag and a `THINKBANK_…` environment variable.

use std::{net::SocketAddr, time::Duration};

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

    /// PostgreSQL URL, checked by /readyz. Optional: without it readiness covers the worker only.
    #[arg(long, env = "THINKBANK_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Largest accepted upload in bytes.
    #[arg(long, env = "THINKBANK_MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Largest accepted JSON body in bytes.
    #[arg(long, env = "THINKBANK_MAX_JSON_BYTES", default_value_t = 1024 * 1024)]
    pub max_json_bytes: usize,

    /// Deadline of unary calls to the worker, in seconds.
    #[arg(long, env = "THINKBANK_WORKER_TIMEOUT_SECS", default_value_t = 30)]
    pub worker_timeout_secs: u64,

    /// Deadline of an upload that waits for ingestion (`wait=true`), in seconds.
    #[arg(
        long,
        env = "THINKBANK_INGEST_WAIT_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub ingest_wait_timeout_secs: u64,

    /// Deadline of one streamed chat answer, in seconds.
    #[arg(long, env = "THINKBANK_CHAT_TIMEOUT_SECS", default_value_t = 300)]
    pub chat_timeout_secs: u64,

    /// Interval of SSE heartbeat comments, in seconds.
    #[arg(long, env = "THINKBANK_SSE_HEARTBEAT_SECS", default_value_t = 15)]
    pub sse_heartbeat_secs: u64,

    /// Seconds a chat stream outlives its connection so a client can resume it with
    /// `Last-Event-ID` (`GET /api/v1/chat/{conversation_id}/events`). 0 (the default) cancels
    /// the answer the moment the connection closes.
    #[arg(long, env = "THINKBANK_SSE_RESUME_WINDOW_SECS", default_value_t = 0)]
    pub sse_resume_window_secs: u64,
}

impl Config {
    pub fn worker_timeout(&self) -> Duration {
        Duration::from_secs(self.worker_timeout_secs)
    }

    /// Defaults for a gateway talking to `worker_url`, used by tests and embedders.
    pub fn for_worker(worker_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            worker_url: worker_url.into(),
            database_url: None,
            max_upload_bytes: 100 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            worker_timeout_secs: 30,
            ingest_wait_timeout_secs: 300,
            chat_timeout_secs: 300,
            sse_heartbeat_secs: 15,
            sse_resume_window_secs: 0,
        }
    }
}
