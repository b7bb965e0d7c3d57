//! The real gateway on `127.0.0.1:0`, and a small Server-Sent Events reader for its streams.

use std::net::SocketAddr;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

/// A gateway running in this process.
#[derive(Debug)]
pub struct GatewayHandle {
    pub addr: SocketAddr,
    /// The default tenant's admin key (the bootstrap key), for `client()` and tools.
    pub api_key: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl GatewayHandle {
    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An HTTP client that sends `api_key` on every request.
    pub fn client(&self) -> reqwest::Client {
        client_with_key(&self.api_key)
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a gateway with `config` (see `thinkbank_gateway::Config::for_worker`).
pub async fn spawn_gateway_with(mut config: thinkbank_gateway::Config) -> GatewayHandle {
    let api_key = config
        .bootstrap_admin_key
        .get_or_insert_with(|| bootstrap_key_for(&config.database_url))
        .clone();
    // Gateways keep the audit chain keyed as in production; every gateway a test starts on
    // the same database derives the same key, so restarts verify what the last one wrote.
    if config.audit_key.is_none()
        && config.audit_key_file.is_none()
        && !config.insecure_no_audit_key
    {
        config.audit_key = Some(audit_key_for(&config.database_url));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("cannot bind the gateway port");
    let addr = listener.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = thinkbank_gateway::run(config, listener, token).await {
            panic!("gateway failed: {error:#}");
        }
    });
    GatewayHandle {
        addr,
        api_key,
        shutdown,
        task: Some(task),
    }
}

/// Starts a gateway in front of the worker at `worker_url`, with its identity store in
/// `database_url`.
pub async fn spawn_gateway(worker_url: &str, database_url: &str) -> GatewayHandle {
    spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker_url,
        database_url,
    ))
    .await
}

/// The bootstrap admin key of a test database: derived from its URL, so every gateway a test
/// starts on the same database agrees on it.
pub fn bootstrap_key_for(database_url: &str) -> String {
    use sha2::Digest as _;
    let digest: String = sha2::Sha256::digest(database_url.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("tb_{}_{}", &digest[..12], &digest[12..44])
}

/// The audit key of a test database's gateways, derived from its URL like the bootstrap key.
pub fn audit_key_for(database_url: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(format!("audit key of {database_url}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An HTTP client sending `Authorization: Bearer <key>` on every request.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}")
        .parse()
        .expect("API keys are valid header values");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("HTTP client")
}

pub use thinkbank_common::sse::SseEvent;

/// Parses an event's data as JSON.
pub trait SseJson {
    fn json(&self) -> serde_json::Value;
}

impl SseJson for SseEvent {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| {
            panic!(
                "event {:?} has non-JSON data {:?}: {e}",
                self.event, self.data
            )
        })
    }
}

/// Reads a `text/event-stream` response to its end, following the SSE parsing rules
/// (comments skipped, multi-line data joined with '\n', default event name "message").
/// Each event is also stamped with the time it arrived, to check incremental delivery.
pub async fn read_sse(response: reqwest::Response) -> Vec<(std::time::Instant, SseEvent)> {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "not an SSE response: {content_type}"
    );
    let mut body = response.bytes_stream();
    let mut parser = thinkbank_common::sse::SseParser::default();
    let mut events = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("SSE body failed");
        let text = std::str::from_utf8(&chunk).expect("SSE body is UTF-8");
        let now = std::time::Instant::now();
        events.extend(parser.feed(text).into_iter().map(|event| (now, event)));
    }
    events
}
