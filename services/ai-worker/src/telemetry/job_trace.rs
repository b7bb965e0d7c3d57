//! Carries an upload's trace from the call that queued a job to the loop that processes it, so
//! one upload is one trace: `grpc.server` → `ingest.queue_wait` and `ingest.job` (→ parse,
//! chunk, embed batches, commit).
//!
//! The queuing call's W3C `traceparent` and request id are stored with the job
//! (`worker.ingest_jobs`), so whichever replica claims it, now or after a restart, parents its
//! `ingest.job` span there. The `ingest.queue_wait` span can only be measured by the process
//! that queued the job: each worker keeps its own open queue-wait spans in a [`JobTraces`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

/// Queue-wait spans remembered at most; beyond this (a flood of uploads nobody processes
/// here) the oldest are simply forgotten (the job still joins its trace through the queue).
const MAX_PENDING: usize = 10_000;

/// Who queued a job, as stored in the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuedBy {
    pub traceparent: Option<String>,
    pub request_id: Option<String>,
}

impl QueuedBy {
    /// The current span's trace context and request id (call inside the queuing RPC).
    pub fn current() -> Self {
        let span = tracing::Span::current();
        let traceparent = span
            .context()
            .span()
            .span_context()
            .is_valid()
            .then(|| {
                let mut headers = http::HeaderMap::new();
                thinkbank_common::trace_context::inject(&span, &mut headers);
                headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .flatten();
        let request_id = Some(super::rpc::current_request_id()).filter(|id| !id.is_empty());
        Self {
            traceparent,
            request_id,
        }
    }
}

/// This worker's open `ingest.queue_wait` spans, by asset. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct JobTraces {
    pending: Arc<Mutex<HashMap<Uuid, tracing::Span>>>,
}

impl JobTraces {
    /// Opens `asset_id`'s `ingest.queue_wait` span under the current span. Call inside the
    /// RPC that queued the job.
    pub fn queued(&self, asset_id: Uuid) {
        let parent = tracing::Span::current().context();
        // No `tracing` parent: holding this span must not keep the RPC's span open.
        let queued = tracing::info_span!(parent: None, "ingest.queue_wait", %asset_id);
        let _ = queued.set_parent(parent);
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(asset_id, queued);
    }

    /// Closes the job's `ingest.queue_wait` span (if this worker queued it) and returns the
    /// span its processing runs in: a child of the queuing call, or a new trace when the
    /// caller was not traced.
    pub fn claimed(&self, asset_id: Uuid, attempt: i32, queued_by: &QueuedBy) -> tracing::Span {
        // Removing this worker's queue-wait span of the job (if it queued it) ends it.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&asset_id);
        let span = tracing::info_span!(
            parent: None,
            "ingest.job",
            %asset_id,
            attempt,
            request_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        if let Some(traceparent) = &queued_by.traceparent
            && let Ok(value) = http::HeaderValue::from_str(traceparent)
        {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", value);
            let parent = thinkbank_common::trace_context::extract(&headers);
            if parent.span().span_context().is_valid() {
                let _ = span.set_parent(parent);
            }
        }
        if let Some(request_id) = &queued_by.request_id {
            span.record("request_id", request_id.as_str());
        }
        thinkbank_common::trace_context::record_trace_id(&span);
        span
    }
}
