//! The real gateway on `127.0.0.1:0`, and a small Server-Sent Events reader for its streams.

use std::net::SocketAddr;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

/// A gateway running in this process.
#[derive(Debug)]
pub struct GatewayHandle {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl GatewayHandle {
    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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
pub async fn spawn_gateway_with(config: thinkbank_gateway::Config) -> GatewayHandle {
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
        shutdown,
        task: Some(task),
    }
}

/// Starts a gateway in front of the worker at `worker_url`, checking `database_url` for readiness.
pub async fn spawn_gateway(worker_url: &str, database_url: Option<&str>) -> GatewayHandle {
    let mut config = thinkbank_gateway::Config::for_worker(worker_url);
    config.database_url = database_url.map(str::to_owned);
    spawn_gateway_with(config).await
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
