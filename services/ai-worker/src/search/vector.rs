//! The vector leg: nearest chunks by cosine distance over the model's partial HNSW index.
//! It runs in its own transaction so `hnsw.ef_search` and `hnsw.iterative_scan` (set with
//! `set_config(…, true)`, i.e. `SET LOCAL`) apply to this query alone.

use pgvector::Vector;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::{FilterSet, Hit, Recall};
use crate::{embed::ModelInfo, error::Result, tenancy::Tenant};

/// Largest `hnsw.ef_search` the worker sets (pgvector's own maximum).
pub const MAX_EF_SEARCH: u32 = 1000;

/// The candidate-list size for `depth` results: fast 2×, balanced 4×, high 20×, with a floor
/// so small k still explores the graph; an explicit override wins. Measured on 100k real
/// chunks (`make bench-search`), k = 10: balanced (44) reaches recall@10 0.97-0.98, high
/// (220) 0.99+.
pub fn ef_search(depth: usize, recall: Recall, override_ef: Option<u32>) -> u32 {
    if let Some(ef) = override_ef {
        return ef.clamp(1, MAX_EF_SEARCH);
    }
    let (factor, floor) = match recall {
        Recall::Fast => (2, 20),
        Recall::Balanced => (4, 40),
        Recall::High => (20, 200),
    };
    let ef = depth.saturating_mul(factor).max(floor);
    u32::try_from(ef)
        .unwrap_or(MAX_EF_SEARCH)
        .min(MAX_EF_SEARCH)
}

/// The `depth` nearest chunks to `query`, best first; `score` is cosine similarity. With
/// `highlight` (the query's text), each row also carries its snippet, computed in the same
/// statement instead of a transaction of its own.
#[expect(
    clippy::too_many_arguments,
    reason = "one search leg's full parameter set"
)]
pub async fn run(
    pool: &PgPool,
    tenant: &Tenant,
    model: &ModelInfo,
    query: &[f32],
    filters: &FilterSet,
    depth: usize,
    ef_search: u32,
    highlight: Option<&str>,
) -> Result<Vec<Hit>> {
    // Without iterative scans a selective filter can leave far fewer than k rows.
    let iterative = if filters.is_empty() {
        "off"
    } else {
        "relaxed_order"
    };
    let ef_search = ef_search.to_string();
    let mut tx = tenant
        .begin_with_settings(
            pool,
            &[
                ("hnsw.ef_search", &ef_search),
                ("hnsw.iterative_scan", iterative),
            ],
        )
        .await?;
    // The dimension is part of the index expression, so it must be literal SQL; it comes from
    // the loaded model, never from a request.
    let dims = model.dimensions;
    let vector = Vector::from(query.to_vec());
    let mut qb = QueryBuilder::<Postgres>::new("");
    if let Some(text) = highlight {
        // Highlighting wraps the nearest-neighbour query, so it runs on the `depth` rows the
        // index scan returned and leaves that scan's plan alone.
        qb.push("SELECT n.*, ");
        super::keyword::push_headline(&mut qb, "col.text_search_config", "n.text", text);
        qb.push(" AS snippet FROM (");
    }
    qb.push(format_args!(
        "SELECT c.id AS chunk_id, c.asset_id, c.collection_id, a.filename, a.media_type, \
             c.text, 1 - (e.embedding::vector({dims}) <=> "
    ));
    qb.push_bind(vector.clone());
    qb.push(
        ") AS score, c.chunk_index, c.char_start, c.char_end, c.headings, c.page \
         FROM worker.embeddings e \
         JOIN worker.chunks c ON c.id = e.chunk_id \
         JOIN worker.assets a ON a.id = e.asset_id \
         WHERE e.model = ",
    );
    qb.push_bind(model.name.clone());
    qb.push(" AND e.tenant_id = ").push_bind(tenant.id);
    filters.push(&mut qb, "e");
    qb.push(format_args!(" ORDER BY e.embedding::vector({dims}) <=> "));
    qb.push_bind(vector);
    qb.push(" LIMIT ")
        .push_bind(i64::try_from(depth).unwrap_or(i64::MAX));
    if highlight.is_some() {
        qb.push(") n JOIN worker.collections col ON col.id = n.collection_id");
    }
    let hits = qb.build_query_as::<Hit>().fetch_all(&mut *tx).await?;
    crate::tenancy::finish_read(tx);
    // With relaxed ordering an iterative scan may return slightly out-of-order rows.
    let mut hits = hits;
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ef_search_grows_with_depth_and_recall_and_is_bounded() {
        assert_eq!(ef_search(10, Recall::Balanced, None), 40);
        assert_eq!(ef_search(50, Recall::Balanced, None), 200);
        assert_eq!(ef_search(10, Recall::Fast, None), 20);
        assert_eq!(ef_search(10, Recall::High, None), 200);
        assert_eq!(ef_search(11, Recall::High, None), 220);
        assert_eq!(ef_search(40, Recall::High, None), 800);
        assert_eq!(ef_search(500, Recall::High, None), MAX_EF_SEARCH);
        assert_eq!(ef_search(10, Recall::Fast, Some(333)), 333);
    }
}
