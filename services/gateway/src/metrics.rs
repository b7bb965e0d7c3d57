//! The gateway's Prometheus metrics and `GET /metrics`.
//!
//! Requests are labelled with the matched route template (`/api/v1/assets/{id}`), never the
//! raw path, so label cardinality stays bounded; unmatched paths share the route `unmatched`.

use std::{sync::LazyLock, time::Instant};

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use thinkbank_common::metrics::{
    CONTENT_TYPE, HistogramFamily, MetricSet, ObservedBody, PoolMetrics, latency_buckets,
};

use thinkbank_common::secret::constant_time_eq;

use crate::{limits::Class, state::AppState};

type RouteLabels = [(&'static str, String); 2];

/// Every metric the gateway exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: MetricSet,
    requests: Family<[(&'static str, String); 3], Counter>,
    duration: HistogramFamily<RouteLabels>,
    active_streams: Family<[(&'static str, String); 1], Gauge>,
    rate_limited: Family<[(&'static str, &'static str); 1], Counter>,
    api_key_cache: Family<[(&'static str, &'static str); 1], Counter>,
    api_key_cache_listening: Gauge,
    pool: PoolMetrics,
}

/// The gateway's metrics (one set per process).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let mut registry = MetricSet::default();
        let requests = Family::default();
        registry.register(
            "thinkbank_http_requests",
            "HTTP requests answered, by method, route template and status code",
            requests.clone(),
        );
        let duration = HistogramFamily::new_with_constructor(latency_buckets as fn() -> _);
        registry.register(
            "thinkbank_http_request_duration_seconds",
            "Time from receiving an HTTP request to sending its response headers (for SSE \
             routes: until the stream starts), by method and route template",
            duration.clone(),
        );
        let active_streams = Family::default();
        registry.register(
            "thinkbank_sse_active_streams",
            "Server-sent-event streams currently open, by route template",
            active_streams.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "thinkbank_rate_limit_rejections",
            "Requests refused with 429 by the rate limiter, by limit class",
            rate_limited.clone(),
        );
        let api_key_cache = Family::default();
        registry.register(
            "thinkbank_api_key_cache_events",
            "API key authentications answered from the cache (hit) or the database (miss), and \
             cache invalidations (a key changed, or the LISTEN connection was lost)",
            api_key_cache.clone(),
        );
        let api_key_cache_listening = Gauge::default();
        registry.register(
            "thinkbank_api_key_cache_listening",
            "1 while the gateway listens for API key changes (only then are keys cached)",
            api_key_cache_listening.clone(),
        );
        let pool = PoolMetrics::register(&mut registry);
        Self {
            registry,
            requests,
            duration,
            active_streams,
            rate_limited,
            api_key_cache,
            api_key_cache_listening,
            pool,
        }
    }

    /// The exposition text (without refreshing the pool gauges).
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// Every metric family the gateway exports, as `(name, type)`.
    pub fn families(&self) -> &[(String, &'static str)] {
        self.registry.families()
    }

    /// Counts one rate-limit rejection in `class`.
    pub fn rate_limited(&self, class: Class) {
        let class = match class {
            Class::Read => "read",
            Class::Write => "write",
            Class::Upload => "upload",
            Class::Chat => "chat",
            Class::Auth => "auth",
            Class::InvalidCredentials => "invalid_credentials",
        };
        self.rate_limited.get_or_create(&[("class", class)]).inc();
    }
}

impl Metrics {
    /// Counts one API key cache `event`: `hit`, `miss` or `invalidated`.
    pub fn api_key_cache(&self, event: &'static str) {
        self.api_key_cache.get_or_create(&[("event", event)]).inc();
    }

    pub fn api_key_cache_listening(&self, listening: bool) {
        self.api_key_cache_listening.set(i64::from(listening));
    }
}

/// Records method, route, status and latency of every request, and counts open SSE streams
/// for as long as their body lives. Added with `Router::layer`, so it runs after routing and
/// sees the matched route.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let metrics = &*METRICS;
    metrics
        .duration
        .get_or_create(&[("method", method.clone()), ("route", route.clone())])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&[
            ("method", method),
            ("route", route.clone()),
            ("status", response.status().as_u16().to_string()),
        ])
        .inc();
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        return response;
    }
    let gauge = metrics
        .active_streams
        .get_or_create(&[("route", route)])
        .clone();
    gauge.inc();
    let (parts, body) = response.into_parts();
    let body = ObservedBody::new(body, move |_| {
        gauge.dec();
    });
    Response::from_parts(parts, Body::new(body))
}

/// `GET /metrics`: the Prometheus text exposition. With `THINKBANK_METRICS_TOKEN` set it
/// needs `Authorization: Bearer <that token>`.
pub async fn scrape(State(state): State<AppState>, request: Request) -> Response {
    if let Some(expected) = state
        .config
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        let presented = crate::auth::bearer(request.headers());
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) {
            let mut response = crate::error::ApiError::new(
                thinkbank_common::ErrorCode::Unauthenticated,
                "metrics need Authorization: Bearer <THINKBANK_METRICS_TOKEN>",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"thinkbank-metrics\""),
            );
            return response;
        }
    }
    let metrics = &*METRICS;
    let pool = &state.database;
    metrics.pool.observe(
        pool.size(),
        pool.num_idle(),
        pool.options().get_max_connections(),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}
