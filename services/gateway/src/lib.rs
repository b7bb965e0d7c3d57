//! thinkbank's HTTP gateway: the only public door. It owns the edge (request ids, limits,
//! JSON errors, SSE) and translates HTTP into calls on the internal AiWorker gRPC service; it
//! holds no retrieval or LLM logic.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod client_addr;
pub mod config;
pub mod edge;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod retry;
pub mod routes;
pub mod state;
pub mod trace;
pub mod views;
pub mod watch_caps;
pub mod worker_client;

use anyhow::Context as _;
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::HeaderName,
    middleware::{self, Next},
    response::Response,
    routing::{delete, get, patch, post},
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

/// The tenant every installation has; its admins are the operators (defined by the contract).
pub use thinkbank_proto::contract::DEFAULT_TENANT_ID;

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
            get(routes::conversations::get)
                .patch(routes::conversations::rename)
                .delete(routes::conversations::delete),
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
        .route("/api/v1/auth/login", post(routes::identity::login))
        .route("/api/v1/auth/refresh", post(routes::identity::refresh))
        .route("/api/v1/auth/logout", post(routes::identity::logout))
        .route("/api/v1/auth/register", post(routes::identity::register))
        .route("/api/v1/auth/me", get(routes::identity::me))
        .route(
            "/api/v1/keys",
            post(routes::admin::create_key).get(routes::admin::list_keys),
        )
        .route("/api/v1/keys/{id}", delete(routes::admin::revoke_key))
        .route(
            "/api/v1/users",
            post(routes::admin::create_user).get(routes::admin::list_users),
        )
        .route("/api/v1/users/{id}", patch(routes::admin::update_user))
        .route(
            "/api/v1/tenants",
            post(routes::tenants::create_route).get(routes::tenants::list_route),
        )
        .route(
            "/api/v1/tenants/{id}/quotas",
            get(routes::tenant_quotas::get_route).put(routes::tenant_quotas::put_route),
        )
        .route("/api/v1/audit", get(routes::admin::list_audit))
        .route("/api/v1/audit/verify", get(routes::admin::verify_audit))
        .layer(DefaultBodyLimit::max(json_limit));
    Router::new()
        .route("/", get(routes::ui::index))
        .route("/api", get(routes::ui::api_index))
        .route("/ui/{*path}", get(routes::ui::file))
        .route("/healthz", get(routes::health::healthz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::page::docs))
        .route("/docs/docs.css", get(openapi::page::stylesheet))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(metrics::scrape))
        .merge(api)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            edge::request_timeout,
        ))
        .layer(middleware::from_fn(scope_request_id))
        .layer(tower::util::option_layer(edge::cors(&state.config)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            edge::security_headers,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(trace::http_span)
                .on_response(trace::record_status),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .layer(middleware::from_fn(metrics::record))
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
    state::schema::migrate_at_start(&state.database, &shutdown).await?;
    bootstrap::audit_chain(&state).await;
    bootstrap::admin_key(&state).await;
    let key_cache = state.key_cache.clone();
    let (database, stop_listening) = (state.database.clone(), shutdown.clone());
    tokio::spawn(async move { key_cache.listen(database, stop_listening).await });
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Small writes go out at once: without TCP_NODELAY a streamed token that follows another
    // small write can wait for a delayed ACK (up to 40 ms on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("HTTP server failed")?;
    tracing::info!("gateway stopped");
    Ok(())
}
