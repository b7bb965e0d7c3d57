//! W3C trace context (`traceparent`, `tracestate`) across process hops: extracted from
//! incoming HTTP headers or gRPC metadata (both are HTTP/2 headers), injected into outgoing
//! ones, so an HTTP request and the gRPC calls it causes form one trace.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator as _},
    trace::TraceContextExt as _,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderWriter<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote parent carried by `headers`, or an empty context when there is none.
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderReader(headers))
}

/// Writes `span`'s context into `headers` as `traceparent` (and `tracestate`).
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderWriter(headers));
}

/// Makes the remote parent in `headers` (if any) `span`'s parent and records the trace id in
/// the span's `trace_id` field, so every log line inside it names the trace. Call before the
/// span is first entered.
pub fn adopt(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = extract(headers);
    if parent.span().span_context().is_valid() {
        // Fails only for a span that has already started; ours have not.
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// Records `span`'s trace id in its `trace_id` field (declared `tracing::field::Empty`).
pub fn record_trace_id(span: &tracing::Span) {
    let id = span.context().span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_header_is_read_as_the_remote_parent() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let cx = extract(&headers);
        let remote = cx.span().span_context().clone();
        assert!(remote.is_remote());
        assert_eq!(
            remote.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(remote.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn headers_without_a_traceparent_give_no_parent() {
        let cx = extract(&http::HeaderMap::new());
        assert!(!cx.span().span_context().is_valid());
    }
}
