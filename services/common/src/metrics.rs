//! Prometheus metrics shared by both services: the exposition format, histogram buckets, the
//! database pool gauges, and a response-body guard that ends a measurement when a stream ends.
//!
//! Each service keeps its own `Registry` (see their `metrics` modules), so a gateway and a
//! worker running in one process (as in the tests) still export only their own metrics.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http_body::{Body, Frame, SizeHint};
use prometheus_client::{
    encoding::text::encode,
    metrics::{MetricType, TypedMetric, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Metric, Registry},
};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds buckets from 1 ms to ~65 s: request latencies, stage durations, time to first token.
pub fn latency_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

/// Seconds buckets from 0.1 s to ~7 min for slow work: queue waits, whole ingestion stages.
pub fn slow_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.1, 2.0, 13,
    ))
}

/// Count buckets 1, 2, 4, … 512: batch sizes.
pub fn size_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 10,
    ))
}

/// A histogram family with one label set per `L`.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A registry that also remembers what it holds: an empty labelled family prints nothing, yet
/// dashboards and alert rules are checked against every family a service can export.
#[derive(Debug, Default)]
pub struct MetricSet {
    registry: Registry,
    families: Vec<(String, &'static str)>,
}

impl MetricSet {
    /// Registers `metric` as `name` (counters get `_total` appended when rendered).
    pub fn register<M: Metric + TypedMetric>(&mut self, name: &str, help: &str, metric: M) {
        let kind = match M::TYPE {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Info => "info",
            MetricType::Unknown => "unknown",
        };
        self.families.push((name.to_owned(), kind));
        self.registry.register(name, help, metric);
    }

    /// Every registered family as `(name, type)`.
    pub fn families(&self) -> &[(String, &'static str)] {
        &self.families
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = encode(&mut out, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }
}

/// `thinkbank_db_pool_connections{state}` and `thinkbank_db_pool_max_connections`, refreshed
/// from the pool right before each scrape.
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    connections: Family<[(&'static str, &'static str); 1], Gauge>,
    max_connections: Gauge,
}

impl PoolMetrics {
    pub fn register(registry: &mut MetricSet) -> Self {
        let metrics = Self::default();
        registry.register(
            "thinkbank_db_pool_connections",
            "Database connections held by this process, by state (idle or in_use)",
            metrics.connections.clone(),
        );
        registry.register(
            "thinkbank_db_pool_max_connections",
            "Largest number of database connections this process may hold",
            metrics.max_connections.clone(),
        );
        metrics
    }

    /// Records a pool of `size` open connections, `idle` of them idle, at most `max`.
    pub fn observe(&self, size: u32, idle: usize, max: u32) {
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        let size = i64::from(size);
        self.connections
            .get_or_create(&[("state", "idle")])
            .set(idle);
        self.connections
            .get_or_create(&[("state", "in_use")])
            .set((size - idle).max(0));
        self.max_connections.set(i64::from(max));
    }
}

/// Wraps a response body and calls `on_end` once, with the gRPC status found in the trailers
/// (if any), when the body ends or is dropped (the client went away).
pub struct ObservedBody<B> {
    inner: B,
    grpc_status: Option<i32>,
    on_end: Option<Box<dyn FnOnce(Option<i32>) + Send>>,
}

impl<B> ObservedBody<B> {
    pub fn new(inner: B, on_end: impl FnOnce(Option<i32>) + Send + 'static) -> Self {
        Self {
            inner,
            grpc_status: None,
            on_end: Some(Box::new(on_end)),
        }
    }

    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.grpc_status);
        }
    }
}

impl<B> std::fmt::Debug for ObservedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody").finish_non_exhaustive()
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame
                    .trailers_ref()
                    .and_then(|t| t.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                {
                    self.grpc_status = Some(status);
                }
            }
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_gauges_split_idle_and_in_use() {
        let mut registry = MetricSet::default();
        let pool = PoolMetrics::register(&mut registry);
        pool.observe(5, 2, 8);
        let text = registry.render();
        assert_eq!(registry.families().len(), 2);
        assert!(text.contains("thinkbank_db_pool_connections{state=\"idle\"} 2"));
        assert!(text.contains("thinkbank_db_pool_connections{state=\"in_use\"} 3"));
        assert!(text.contains("thinkbank_db_pool_max_connections 8"));
    }
}
