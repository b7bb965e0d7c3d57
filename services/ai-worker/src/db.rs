//! Connection pool, migrations, and the per-model vector indexes.

use std::time::Duration;

use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::embed::ModelInfo;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Connects and applies pending migrations (idempotent; safe with several replicas because
/// sqlx takes an advisory lock while migrating).
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context as _;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("cannot connect to PostgreSQL (check THINKBANK_DATABASE_URL)")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("cannot apply database migrations")?;
    Ok(pool)
}

/// Creates the partial HNSW index for one embedding model if it does not exist yet.
///
/// The index covers `embedding::vector(dims)` for rows of that model only; search queries use
/// the same expression and filter, so the planner can use it.
pub async fn ensure_vector_index(pool: &PgPool, model: &ModelInfo) -> sqlx::Result<()> {
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS {index} ON worker.embeddings \
         USING hnsw ((embedding::vector({dims})) vector_cosine_ops) \
         WHERE model = '{model}'",
        index = model.index_name(),
        dims = model.dimensions,
        model = model.name,
    );
    sqlx::query(&sql).execute(pool).await?;
    Ok(())
}
