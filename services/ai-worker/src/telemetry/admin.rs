//! The worker's admin HTTP port (`THINKBANK_WORKER_ADMIN_LISTEN`): `GET /metrics` for
//! Prometheus and `GET /healthz`. It is separate from the gRPC port so scraping needs no
//! gRPC and the gRPC port needs no HTTP routes; keep it private like the worker itself.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::metrics::METRICS;

/// How often the queue gauges are refreshed from the database.
pub const QUEUE_REFRESH: Duration = Duration::from_secs(5);

/// The database pool once the worker is initialised (the port serves before that).
pub type PoolCell = Arc<OnceLock<PgPool>>;

/// Serves the admin routes on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, pool: PoolCell, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(pool);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(%error, "admin HTTP server failed");
    }
}

async fn metrics(State(pool): State<PoolCell>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            thinkbank_common::metrics::CONTENT_TYPE,
        )],
        METRICS.render(pool.get()),
    )
}

/// Keeps `thinkbank_ingest_queue_depth` and `…_oldest_job_age_seconds` current. The queue is
/// shared by all replicas, so every replica reports the same values: aggregate with `max`.
pub async fn refresh_queue_gauges(pool: PgPool, shutdown: CancellationToken) {
    loop {
        let row: Result<(i64, f64), sqlx::Error> = sqlx::query_as(
            "SELECT count(*), \
                 coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 \
             FROM worker.ingest_jobs",
        )
        .fetch_one(&pool)
        .await;
        match row {
            Ok((depth, oldest)) => METRICS.queue_state(depth, oldest),
            Err(error) => tracing::debug!(%error, "cannot read the queue gauges"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(QUEUE_REFRESH) => {}
        }
    }
}
