//! The gateway's schema: it applies `migrations/gateway` at start-up, before serving.
//!
//! Both services migrate the same database and share sqlx's one `_sqlx_migrations` table and
//! its advisory lock (so replicas of either never migrate at once); each ignores the other's
//! versions. The gateway's first migration (`…_identity.sql`) references `worker.tenants`, as
//! it did when one migrator applied both folders, so on a fresh database the gateway waits
//! (bounded) for the worker's schema; from `…_gateway_tenants.sql` on it reads only its own.

use std::time::{Duration, Instant};

use sqlx::PgPool;

/// How long start-up waits for the worker to create its schema on a fresh database.
pub const WORKER_SCHEMA_WAIT: Duration = Duration::from_secs(120);

const POLL_EVERY: Duration = Duration::from_millis(250);

/// What a fresh database needs before the gateway's first migration can run.
const WAITED_FOR: &str = "the AI worker's schema (table worker.tenants)";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "gave up after {waited:?} waiting for {WAITED_FOR}: start the AI worker on this database"
    )]
    WorkerSchemaMissing { waited: Duration },
    #[error("cannot read the database while waiting for {WAITED_FOR}")]
    Database(#[source] sqlx::Error),
    #[error("cannot apply the gateway's migrations (migrations/gateway)")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// The gateway's migrations (`migrations/gateway`); versions the worker applied to the same
/// `_sqlx_migrations` table are not "missing".
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("../../migrations/gateway");
    migrator.set_ignore_missing(true);
    migrator
}

/// Waits up to `wait` for the worker's schema (only on a database the gateway has not
/// migrated yet), then applies the gateway's pending migrations.
pub async fn migrate(pool: &PgPool, wait: Duration) -> Result<(), SchemaError> {
    wait_for_worker_schema(pool, wait).await?;
    migrator().run(pool).await.map_err(SchemaError::Migrate)
}

async fn wait_for_worker_schema(pool: &PgPool, wait: Duration) -> Result<(), SchemaError> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        // gateway.tenants exists once the gateway no longer needs the worker's tables.
        let ready: bool = sqlx::query_scalar(
            "SELECT to_regclass('worker.tenants') IS NOT NULL \
                 OR to_regclass('gateway.tenants') IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .map_err(SchemaError::Database)?;
        if ready {
            return Ok(());
        }
        let waited = started.elapsed();
        if waited >= wait {
            return Err(SchemaError::WorkerSchemaMissing { waited });
        }
        if !logged {
            tracing::info!(
                timeout = ?wait,
                "waiting for {WAITED_FOR} before applying the gateway's migrations"
            );
            logged = true;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// At start: migrates now when the database answers (an error is fatal: serving on a schema
/// that cannot be migrated would fail every request); when it does not answer yet, the
/// gateway serves what needs no database and migrates in the background as soon as it does,
/// as it always started while its database was down.
pub async fn migrate_at_start(
    pool: &PgPool,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), SchemaError> {
    match pool.acquire().await {
        Ok(connection) => {
            drop(connection);
            migrate(pool, WORKER_SCHEMA_WAIT).await
        }
        Err(error) => {
            tracing::warn!(
                %error,
                "the database does not answer: the gateway's migrations run when it does"
            );
            let (pool, shutdown) = (pool.clone(), shutdown.clone());
            tokio::spawn(async move { migrate_in_background(pool, shutdown).await });
            Ok(())
        }
    }
}

async fn migrate_in_background(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if pool.acquire().await.is_err() {
            continue;
        }
        match migrate(&pool, WORKER_SCHEMA_WAIT).await {
            Ok(()) => {
                tracing::info!("applied the gateway's migrations");
                return;
            }
            Err(SchemaError::Database(error)) => {
                tracing::debug!(%error, "cannot migrate the gateway's schema yet");
            }
            // Keep waiting: the worker may come later; the log line says what is missing.
            Err(error @ SchemaError::WorkerSchemaMissing { .. }) => {
                tracing::warn!(error = %error, "cannot migrate the gateway's schema yet");
            }
            Err(error) => {
                let error = anyhow::Error::new(error);
                tracing::error!(
                    error = format!("{error:#}"),
                    "cannot migrate the gateway's schema"
                );
                return;
            }
        }
    }
}
