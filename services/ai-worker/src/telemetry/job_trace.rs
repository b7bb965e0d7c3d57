//! Carries an upload's trace from the call that queued a job to the loop that processes it, so
//! one upload is one trace: `grpc.server` → `ingest.queue_wait` and `ingest.job` (→ parse,
//! chunk, embed batches, commit).
//!
//! The context lives in this process only (the queue table has no column for it): a job that
//! another replica claims, or that survives a restart, starts a new trace, and the job span
//! records the asset id so the two can still be joined.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

/// Jobs remembered at most; beyond this (a flood of uploads nobody processes here) the oldest
/// contexts are simply forgotten.
const MAX_PENDING: usize = 10_000;

struct Pending {
    queued: tracing::Span,
    parent: opentelemetry::Context,
    request_id: String,
}

static PENDING: LazyLock<Mutex<HashMap<Uuid, Pending>>> = LazyLock::new(Mutex::default);

/// Remembers the current span as the parent of `asset_id`'s processing and opens its
/// `ingest.queue_wait` span. Call inside the RPC that queued the job.
pub fn queued(asset_id: Uuid) {
    let request_id = super::rpc::current_request_id();
    let parent = tracing::Span::current().context();
    // No `tracing` parent: holding this span must not keep the RPC's span open.
    let queued = tracing::info_span!(parent: None, "ingest.queue_wait", %asset_id);
    let _ = queued.set_parent(parent.clone());
    let mut pending = PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pending.len() >= MAX_PENDING {
        pending.clear();
    }
    pending.insert(
        asset_id,
        Pending {
            queued,
            parent,
            request_id,
        },
    );
}

/// Closes the job's `ingest.queue_wait` span (if this process queued it) and returns the span
/// its processing runs in: a child of the queuing call, or a new trace.
pub fn claimed(asset_id: Uuid, attempt: i32) -> tracing::Span {
    let pending = PENDING
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
    if let Some(pending) = pending {
        drop(pending.queued);
        let _ = span.set_parent(pending.parent);
        span.record("request_id", pending.request_id.as_str());
    }
    thinkbank_common::trace_context::record_trace_id(&span);
    span
}
