//! Log and trace set-up for both services: human-readable lines by default, JSON lines when
//! `THINKBANK_LOG_FORMAT=json`; the level comes from `RUST_LOG` (default `info`).
//!
//! Every `tracing` span also becomes an OpenTelemetry span, so trace ids exist (and reach the
//! logs through the request spans' `trace_id` field) even when nothing is exported. Export
//! over OTLP/gRPC is on only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; `OTEL_SERVICE_NAME` names the service.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::{EnvFilter, filter::Targets, fmt, prelude::*};

/// The installed tracer provider; flush or shut it down before the process exits so buffered
/// spans reach the collector.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// Where spans are exported, if anywhere.
    pub endpoint: Option<String>,
}

impl Telemetry {
    /// Exports every finished span now (blocking work, so on a blocking thread).
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "cannot flush spans");
        }
    }

    /// Flushes and stops the exporter.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(%error, "cannot shut the span exporter down cleanly");
        }
    }
}

/// The OTLP endpoint from the standard variables, if export is on.
pub fn endpoint_from_env() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok())
    .map(|value| value.trim().to_owned())
    .find(|value| !value.is_empty())
}

/// Installs the global subscriber for `default_service` (overridden by `OTEL_SERVICE_NAME`).
/// Call once, from `main`, inside the Tokio runtime (the exporter's channel lives on it).
pub fn init(default_service: &str) -> Telemetry {
    match install(default_service, endpoint_from_env()) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            // Tracing is not up yet: this is the one place that prints directly.
            eprintln!("cannot set up telemetry: {error}");
            std::process::exit(2);
        }
    }
}

/// Installs the global subscriber with spans exported to `endpoint` (none: not exported).
/// Fails if the exporter cannot be built or a global subscriber is already installed.
pub fn install(default_service: &str, endpoint: Option<String>) -> Result<Telemetry, String> {
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default_service.to_owned());
    let resource = Resource::builder().with_service_name(service).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("thinkbank");

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("THINKBANK_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // The span list carries request_id and trace_id of the enclosing request onto every line.
    let fmt_layer = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed()
    } else {
        fmt::layer().compact().boxed()
    };
    // Spans of our own crates are traced whatever `RUST_LOG` says about log lines.
    let traced = Targets::new()
        .with_default(Level::WARN)
        .with_target("thinkbank_gateway", Level::INFO)
        .with_target("thinkbank_ai_worker", Level::INFO)
        .with_target("thinkbank_common", Level::INFO);
    // Statement spans only matter when spans are exported; sqlx formats its statement event
    // only when some layer wants it. (Installed either way, with an empty filter when off:
    // `Option<Layer>` would not pass the dispatch on to it.)
    let db_filter = if endpoint.is_some() {
        traced
            .clone()
            .with_target(crate::db_spans::SQLX_TARGET, Level::DEBUG)
    } else {
        Targets::new()
    };
    let db_spans = crate::db_spans::DbSpans::new(tracer.clone()).with_filter(db_filter);
    tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(traced),
        )
        .with(db_spans)
        .try_init()
        .map_err(|e| format!("a global subscriber is already installed: {e}"))?;
    Ok(Telemetry { provider, endpoint })
}
