//! Retrieval over the chunk store. Vector search runs inside a transaction so the HNSW
//! settings it needs (`SET LOCAL`) apply to that query alone.

use pgvector::Vector;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{embed::ModelInfo, error::Result};

/// Largest `top_k` a caller may ask for.
pub const MAX_TOP_K: usize = 100;
pub const DEFAULT_TOP_K: usize = 10;

#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub collection_ids: Vec<Uuid>,
    pub asset_ids: Vec<Uuid>,
}

impl Filters {
    fn is_empty(&self) -> bool {
        self.collection_ids.is_empty() && self.asset_ids.is_empty()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    pub chunk_id: Uuid,
    pub asset_id: Uuid,
    pub collection_id: Uuid,
    pub filename: String,
    pub text: String,
    pub score: f64,
    pub chunk_index: i32,
    pub char_start: i64,
    pub char_end: i64,
    pub headings: Vec<String>,
    pub page: Option<i32>,
}

/// Nearest chunks to `query` (an embedding of `model`) by cosine similarity, best first.
pub async fn vector(
    pool: &PgPool,
    tenant_id: Uuid,
    model: &ModelInfo,
    query: &[f32],
    filters: &Filters,
    top_k: usize,
    min_score: f32,
) -> Result<Vec<Hit>> {
    let mut tx = pool.begin().await?;
    // The HNSW candidate list must be at least k; 4*k (min 40) keeps recall high.
    let ef_search = (top_k * 4).clamp(40, 1000);
    sqlx::query(&format!("SET LOCAL hnsw.ef_search = {ef_search}"))
        .execute(&mut *tx)
        .await?;
    if !filters.is_empty() {
        // Without iterative scans a selective filter can leave far fewer than k rows.
        sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
            .execute(&mut *tx)
            .await?;
    }
    let dims = model.dimensions;
    let sql = format!(
        "SELECT c.id AS chunk_id, c.asset_id, c.collection_id, a.filename, c.text, \
             1 - (e.embedding::vector({dims}) <=> $1) AS score, c.chunk_index, c.char_start, \
             c.char_end, c.headings, c.page \
         FROM worker.embeddings e \
         JOIN worker.chunks c ON c.id = e.chunk_id \
         JOIN worker.assets a ON a.id = e.asset_id \
         WHERE e.model = $2 AND e.tenant_id = $3 \
           AND (cardinality($4::uuid[]) = 0 OR e.collection_id = ANY($4)) \
           AND (cardinality($5::uuid[]) = 0 OR e.asset_id = ANY($5)) \
         ORDER BY e.embedding::vector({dims}) <=> $1 \
         LIMIT $6"
    );
    let limit = i64::try_from(top_k).unwrap_or(100);
    let mut hits: Vec<Hit> = sqlx::query_as(&sql)
        .bind(Vector::from(query.to_vec()))
        .bind(&model.name)
        .bind(tenant_id)
        .bind(&filters.collection_ids)
        .bind(&filters.asset_ids)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    if min_score > 0.0 {
        hits.retain(|h| h.score >= f64::from(min_score));
    }
    Ok(hits)
}
