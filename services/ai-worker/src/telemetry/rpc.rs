//! A tower layer around every gRPC call the worker serves: a `grpc.server` span whose parent
//! is the caller's `traceparent`, rate/errors/duration metrics per method (measured until a
//! stream's last message), and load shedding — past the concurrency limit a call is refused at
//! once with `RESOURCE_EXHAUSTED` instead of queueing until its deadline.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use thinkbank_common::{metrics::ObservedBody, trace_context};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::metrics::METRICS;

tokio::task_local! {
    /// The caller's `x-request-id`, for the call being handled.
    static REQUEST_ID: String;
}

/// The request id of the gRPC call being handled ("" outside one).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The gRPC status code names, indexed by code.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn code_name(code: Option<i32>) -> &'static str {
    // A body that ended without trailers was dropped: the client went away.
    let code = code.unwrap_or(1);
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// Bounded label values: our own and the standard services' methods, else `unknown`.
fn method_label(path: &str) -> String {
    let known = ["/thinkbank.v1.", "/grpc.health.v1.", "/grpc.reflection."];
    if known.iter().any(|prefix| path.starts_with(prefix)) && path.len() < 128 {
        path.to_owned()
    } else {
        "unknown".to_owned()
    }
}

/// The one method whose streams mostly wait: it has its own cap instead of a call permit, so
/// open progress watches can never take the permits every other call needs.
const WATCH_METHOD: &str = "/thinkbank.v1.AiWorker/WatchAsset";

/// See the module documentation. A limit of 0 disables that shedding.
#[derive(Debug, Clone)]
pub struct RpcLayer {
    permits: Option<Arc<Semaphore>>,
    watch_permits: Option<Arc<Semaphore>>,
}

impl RpcLayer {
    pub fn new(max_concurrent_calls: usize, max_watches: usize) -> Self {
        let semaphore = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Self {
            permits: semaphore(max_concurrent_calls),
            watch_permits: semaphore(max_watches),
        }
    }
}

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            permits: self.permits.clone(),
            watch_permits: self.watch_permits.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    permits: Option<Arc<Semaphore>>,
    watch_permits: Option<Arc<Semaphore>>,
}

type ResponseBody = tonic::body::Body;

impl<S, B> tower::Service<http::Request<B>> for RpcService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResponseBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone is the one that was made ready (tower's documented swap pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = method_label(request.uri().path());
        let is_health = method.starts_with("/grpc.");
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            request_id = %request_id.as_str(),
            trace_id = tracing::field::Empty,
        );
        trace_context::adopt(&span, request.headers());
        let (permits, refusal) = if method == WATCH_METHOD {
            (
                &self.watch_permits,
                "the worker has as many progress watches open as it allows \
                 (THINKBANK_WORKER_MAX_WATCHES); retry shortly",
            )
        } else {
            (
                &self.permits,
                "the worker is at its concurrency limit; retry shortly",
            )
        };
        let permit = match permits {
            Some(permits) if !is_health => match permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    METRICS.rpc_shed(&method);
                    METRICS.rpc_finished(&method, "RESOURCE_EXHAUSTED", 0.0);
                    span.in_scope(|| {
                        tracing::warn!("at the concurrency limit; refusing the call");
                    });
                    let status = tonic::Status::resource_exhausted(refusal);
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            },
            _ => None,
        };
        let started = Instant::now();
        let in_flight = METRICS.rpc_started(&method);
        let body_span = span.clone();
        Box::pin(
            REQUEST_ID
                .scope(request_id, async move {
                    let response = inner.call(request).await?;
                    // A status in the headers is a trailers-only (error) response.
                    let early_status = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok());
                    let (parts, body) = response.into_parts();
                    let body = ObservedBody::new(body, move |trailer_status| {
                        let code = code_name(early_status.or(trailer_status));
                        METRICS.rpc_finished(&method, code, started.elapsed().as_secs_f64());
                        body_span.record("rpc.grpc.status_code", code);
                        in_flight.dec();
                        drop(permit);
                        drop(body_span);
                    });
                    Ok(http::Response::from_parts(parts, ResponseBody::new(body)))
                })
                .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{code_name, method_label};

    #[test]
    fn status_codes_have_their_canonical_names() {
        assert_eq!(code_name(Some(0)), "OK");
        assert_eq!(code_name(Some(8)), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(None), "CANCELLED");
        assert_eq!(code_name(Some(99)), "UNKNOWN");
    }

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(
            method_label("/thinkbank.v1.AiWorker/ChatStream"),
            "/thinkbank.v1.AiWorker/ChatStream"
        );
        assert_eq!(method_label("/random/junk"), "unknown");
    }
}
