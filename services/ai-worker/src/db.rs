//! Connection pool, migrations, and the per-model vector indexes.

use std::time::Duration;

use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::embed::ModelInfo;

/// The worker's migrations (`migrations/worker`). The gateway applies its own folder to the same
/// database and the same `_sqlx_migrations` table (sqlx has one per database), so versions
/// applied by the other service are not "missing": they are ignored.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("../../migrations/worker");
    migrator.set_ignore_missing(true);
    migrator
}

/// Connects and applies pending migrations (idempotent; safe with several replicas, and
/// beside the gateway's migrator, because sqlx takes the database's advisory lock while
/// migrating).
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context as _;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("cannot connect to PostgreSQL (check THINKBANK_DATABASE_URL)")?;
    migrator()
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
