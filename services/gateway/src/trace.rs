//! Tracing at the gateway's two hops: an `http.request` span per request (its parent is the
//! caller's `traceparent`, if any) and a `grpc.client` span per worker call whose context
//! travels to the worker as `traceparent` metadata, so one request is one trace.

use std::task::{Context, Poll};

use axum::{
    extract::{MatchedPath, Request},
    response::Response,
};
use thinkbank_common::trace_context;
use tower_http::request_id::RequestId;
use tracing::Instrument as _;

/// The span of one HTTP request, named after its route template.
pub fn http_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default();
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
    );
    trace_context::adopt(&span, request.headers());
    span
}

/// Records the status on the request's span.
pub fn record_status(response: &Response, _latency: std::time::Duration, span: &tracing::Span) {
    span.record("http.response.status_code", response.status().as_u16());
}

/// The gRPC channel to the worker with a client span per call, injected as `traceparent`.
#[derive(Debug, Clone)]
pub struct TracedChannel {
    inner: tonic::transport::Channel,
}

impl TracedChannel {
    pub fn new(inner: tonic::transport::Channel) -> Self {
        Self { inner }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for TracedChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %method,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.method = %method,
        );
        trace_context::inject(&span, request.headers_mut());
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await }.instrument(span))
    }
}
