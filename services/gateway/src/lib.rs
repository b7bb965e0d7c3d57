//! thinkbank's HTTP gateway: the only public door. It owns the edge (request ids, limits,
//! JSON errors, SSE) and translates HTTP into calls on the internal AiWorker gRPC service; it
//! holds no retrieval or LLM logic.

pub mod config;
pub mod error;
pub mod routes;
pub mod state;
pub mod views;

use anyhow::Context as _;
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::HeaderName,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use config::Config;
pub use state::AppState;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the router for `state`.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.config.max_upload_bytes;
    let json_limit = state.config.max_json_bytes;
    let api = Router::new()
        .route(
            "/api/v1/assets",
            post(routes::assets::upload)
                .layer(DefaultBodyLimit::max(upload_limit))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    routes::assets::reject_oversized,
                ))
                .get(routes::assets::list),
        )
        .route("/api/v1/assets/{id}/cancel", post(routes::assets::cancel))
        .route(
            "/api/v1/assets/{id}/reprocess",
            post(routes::assets::reprocess),
        )
        .route(
            "/api/v1/assets/{id}",
            get(routes::assets::get).delete(routes::assets::delete),
        )
        .route("/api/v1/assets/{id}/events", get(routes::assets::events))
        .route("/api/v1/search", post(routes::search::search))
        .route("/api/v1/chat", post(routes::chat::chat))
        .route(
            "/api/v1/chat/{conversation_id}/stop",
            post(routes::chat::stop),
        )
        .route(
            "/api/v1/chat/{conversation_id}/events",
            get(routes::chat_resume::resume),
        )
        .route("/api/v1/conversations", get(routes::conversations::list))
        .route(
            "/api/v1/conversations/{id}",
            get(routes::conversations::get).delete(routes::conversations::delete),
        )
        .route(
            "/api/v1/collections",
            post(routes::collections::create).get(routes::collections::list),
        )
        .route("/api/v1/collections/{id}", get(routes::collections::get))
        .route(
            "/api/v1/collections/{id}/migration",
            post(routes::collections::migrate).delete(routes::collections::cancel_migration),
        )
        .route("/api/v1/embedding-models", get(routes::collections::models))
        .route("/v1/embeddings", post(routes::embeddings::create))
        .route("/v1/chat/completions", post(routes::openai::completions))
        .route("/v1/models", get(routes::openai::models))
        .layer(DefaultBodyLimit::max(json_limit));
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .merge(api)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn(scope_request_id))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .with_state(state)
}

/// Makes the request id available to handlers and error bodies (see `error::REQUEST_ID`).
async fn scope_request_id(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    error::REQUEST_ID.scope(id, next.run(request)).await
}

async fn index() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "name": "thinkbank",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "upload": "POST /api/v1/assets",
            "assets": "GET /api/v1/assets",
            "search": "POST /api/v1/search",
            "chat": "POST /api/v1/chat (text/event-stream)",
            "embeddings": "POST /v1/embeddings (OpenAI-compatible)",
            "health": "GET /healthz, GET /readyz"
        }
    }))
}

/// Serves the gateway on `listener` until `shutdown` is cancelled; open SSE streams end then.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = AppState::new(config, shutdown.clone())?;
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    tracing::info!(%addr, worker = %state.config.worker_url, "gateway listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("HTTP server failed")?;
    tracing::info!("gateway stopped");
    Ok(())
}
