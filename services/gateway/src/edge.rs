//! Edge hygiene applied to every response: security headers, CORS from an allow-list, a
//! deadline on ordinary requests (streams and uploads carry their own deadlines), and the end
//! of SSE streams when the gateway shuts down.

use std::{convert::Infallible, time::Duration};

use axum::response::sse::Event;
use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::{Stream, StreamExt as _};
use thinkbank_common::ErrorCode;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{config::Config, error::ApiError, state::AppState};

/// Adds the security headers a response does not set itself (the UI sets its own CSP).
pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if state.config.hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    response
}

/// CORS for the configured origins only; none configured means same-origin only (no CORS
/// headers at all, so browsers refuse cross-origin reads).
pub fn cors(config: &Config) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .filter_map(|o| match HeaderValue::from_str(o) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring an invalid CORS origin");
                None
            }
        })
        .collect();
    if origins.is_empty() {
        return None;
    }
    let exposed = [
        "x-request-id",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "retry-after",
        "location",
    ]
    .map(HeaderName::from_static);
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers(exposed)
            .max_age(Duration::from_secs(600)),
    )
}

/// Requests that stream or wait for long work; their own deadlines apply
/// (`THINKBANK_CHAT_TIMEOUT_SECS`, `THINKBANK_INGEST_WAIT_TIMEOUT_SECS`).
fn is_long_running(method: &Method, path: &str) -> bool {
    (*method == Method::GET && path.ends_with("/events"))
        || (*method == Method::POST
            && matches!(
                path,
                "/api/v1/chat" | "/api/v1/assets" | "/v1/chat/completions"
            ))
}

/// Answers 504 when an ordinary request takes longer than `THINKBANK_REQUEST_TIMEOUT_SECS`.
pub async fn request_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if is_long_running(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let limit = Duration::from_secs(state.config.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::DeadlineExceeded,
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Ends an event stream (chat, asset progress) when the gateway shuts down, with a last `error` event
/// (`unavailable`: reconnect, another replica or the restarted gateway answers) and `done`,
/// so clients can tell a shutdown from a dropped connection.
pub fn until_shutdown(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let request_id = crate::error::current_request_id();
    let error = serde_json::json!({"error": {
        "code": ErrorCode::Unavailable.as_str(),
        "message": "the gateway is shutting down; reconnect to continue",
        "request_id": request_id,
    }});
    let farewell = vec![
        Event::default().event("error").data(error.to_string()),
        Event::default().event("done").data("{}"),
    ];
    end_on_shutdown(events, shutdown, farewell)
}

/// `events` until `shutdown`, then `farewell` — only when the shutdown cut the stream short,
/// not after its own last event.
pub fn end_on_shutdown(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    shutdown: CancellationToken,
    farewell: Vec<Event>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let farewell_due = shutdown.clone();
    let farewell = futures::stream::iter(farewell)
        .filter(move |_| std::future::ready(farewell_due.is_cancelled()))
        .map(Ok);
    events
        .take_until(shutdown.cancelled_owned())
        .chain(farewell)
}
