//! One OpenTelemetry span per database statement, without touching a single call site.
//!
//! sqlx emits a `sqlx::query` event when a statement finishes, with its summary, text, rows and
//! elapsed time, inside whatever span issued it. This layer turns each such event into a
//! `db.query` client span that started `elapsed` ago and ends now, parented to that span, so a
//! trace shows every query where it ran (search legs, the chunk commit, the queue, auth).

use std::time::{Duration, SystemTime};

use opentelemetry::{
    KeyValue,
    trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _},
};
use opentelemetry_sdk::trace::SdkTracer;
use tracing::{
    Dispatch, Event, Subscriber,
    dispatcher::WeakDispatch,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

/// The target sqlx logs finished statements under.
pub const SQLX_TARGET: &str = "sqlx::query";

pub struct DbSpans {
    tracer: SdkTracer,
    dispatch: std::sync::OnceLock<WeakDispatch>,
}

impl DbSpans {
    pub fn new(tracer: SdkTracer) -> Self {
        Self {
            tracer,
            dispatch: std::sync::OnceLock::new(),
        }
    }
}

#[derive(Default)]
struct Statement {
    summary: String,
    text: String,
    rows_returned: i64,
    rows_affected: i64,
    elapsed_secs: Option<f64>,
}

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.trim().clone_into(&mut self.text),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        match field.name() {
            "rows_returned" => self.rows_returned = value,
            "rows_affected" => self.rows_affected = value,
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S> Layer<S> for DbSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != SQLX_TARGET {
            return;
        }
        let mut statement = Statement::default();
        event.record(&mut statement);
        let Some(elapsed) = statement.elapsed_secs else {
            return;
        };
        // A statement outside any span (pool maintenance, migrations) belongs to no trace.
        let Some(parent) = ctx.event_span(event).map(|span| span.id()) else {
            return;
        };
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(parent_cx) = tracing_opentelemetry::get_otel_context(&parent, &dispatch)
            .filter(|cx| cx.span().span_context().is_valid())
        else {
            return;
        };
        let end = SystemTime::now();
        let start = end
            .checked_sub(Duration::try_from_secs_f64(elapsed).unwrap_or_default())
            .unwrap_or(end);
        // Short statements are logged whole as the summary, with no separate text.
        let text = if statement.text.is_empty() {
            statement.summary.clone()
        } else {
            statement.text
        };
        let mut span = self
            .tracer
            .span_builder("db.query")
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.query.summary", statement.summary),
                KeyValue::new("db.query.text", text),
                KeyValue::new("db.response.returned_rows", statement.rows_returned),
                KeyValue::new("db.response.affected_rows", statement.rows_affected),
            ])
            .start_with_context(&self.tracer, &parent_cx);
        span.end_with_timestamp(end);
    }
}
