//! thinkbank's HTTP gateway: the only public door. It owns the edge (request ids, limits,
//! JSON errors, SSE) and translates HTTP into calls on the internal AiWorker gRPC service; it
//! holds no retrieval or LLM logic.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod chat_relay;
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
    extract::Request,
    http::HeaderName,
    middleware::{self, Next},
    response::Response,
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

/// Builds the router for `state`: the route table (`routes::table`, where each route carries
/// its own guard), the JSON 404/405 fallbacks, then the edge layers (outermost last).
pub fn router(state: AppState) -> Router {
    routes::table::router(&state)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
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
