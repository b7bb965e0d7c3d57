//! The keyword leg: PostgreSQL full-text search over `chunks.tsv` (GIN index). The query is
//! parsed with `websearch_to_tsquery` once per collection, in that collection's own
//! `text_search_config` (the same configuration that built the chunk's `tsv`), and ranked with
//! `ts_rank_cd` (cover density: terms that occur close together rank higher).

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{FilterSet, Hit};
use crate::{error::Result, tenancy::Tenant};

/// `ts_headline` options: highlighted fragments around the matches.
const HEADLINE_OPTIONS: &str = "StartSel=<mark>, StopSel=</mark>, MaxWords=35, MinWords=12, MaxFragments=2, \
     FragmentDelimiter=\" … \"";

/// Pushes the highlighted `text` column for `query` under the collection's `config` column:
/// the snippet expression shared by [`snippets`] and the vector statement that highlights its
/// own rows.
pub(super) fn push_headline(
    qb: &mut QueryBuilder<'_, Postgres>,
    config: &str,
    text: &str,
    query: &str,
) {
    qb.push(format_args!(
        "ts_headline({config}, {text}, websearch_to_tsquery({config}, "
    ));
    qb.push_bind(query.to_owned());
    qb.push("), ").push_bind(HEADLINE_OPTIONS).push(")");
}

/// Whether `query` has any searchable term in the configuration of at least one collection in
/// scope (false for blank, punctuation-only or stop-word-only queries); `None` when no
/// collection is in scope, so there is nothing to search.
async fn has_terms(
    conn: &mut PgConnection,
    tenant: &Tenant,
    query: &str,
    collection_ids: &[Uuid],
) -> Result<Option<bool>> {
    let any: Option<bool> = sqlx::query_scalar(
        "SELECT bool_or(numnode(websearch_to_tsquery(text_search_config, $1)) > 0) \
         FROM worker.collections \
         WHERE tenant_id = $2 AND (cardinality($3::uuid[]) = 0 OR id = ANY($3))",
    )
    .bind(query)
    .bind(tenant.id)
    .bind(collection_ids)
    .fetch_one(conn)
    .await?;
    Ok(any)
}

/// The keyword leg in one transaction: `None` when `query` has no searchable term in any
/// collection in scope (see [`has_terms`]), otherwise the `depth` best hits (none when no
/// collection is in scope).
pub async fn search(
    pool: &PgPool,
    tenant: &Tenant,
    query: &str,
    filters: &FilterSet,
    depth: usize,
) -> Result<Option<Vec<Hit>>> {
    let mut tx = tenant.begin(pool).await?;
    let hits = match has_terms(&mut tx, tenant, query, &filters.collection_ids).await? {
        None => Some(Vec::new()),
        Some(false) => None,
        Some(true) => Some(run(&mut tx, tenant, query, filters, depth).await?),
    };
    crate::tenancy::finish_read(tx);
    Ok(hits)
}

/// The `depth` best chunks matching `query`, best first; `score` is `ts_rank_cd`.
async fn run(
    conn: &mut PgConnection,
    tenant: &Tenant,
    query: &str,
    filters: &FilterSet,
    depth: usize,
) -> Result<Vec<Hit>> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "WITH q AS ( \
             SELECT id AS collection_id, websearch_to_tsquery(text_search_config, ",
    );
    qb.push_bind(query.to_owned());
    qb.push(") AS tsq FROM worker.collections WHERE tenant_id = ")
        .push_bind(tenant.id);
    // Per collection, its matching chunks. `OFFSET 0` keeps the lateral query from being
    // merged into the outer one: planned alone, the collection's tsquery is a parameter and
    // the GIN index answers `@@` (merged, PostgreSQL filtered every chunk of the tenant,
    // re-parsing the query per row: 0.3-1 s at 100k chunks instead of 4-60 ms).
    qb.push(
        ") \
         SELECT c.id AS chunk_id, c.asset_id, c.collection_id, a.filename, a.media_type, \
             c.text, c.score, c.chunk_index, c.char_start, c.char_end, c.headings, c.page \
         FROM q CROSS JOIN LATERAL ( \
             SELECT c.id, c.asset_id, c.collection_id, c.text, \
                 ts_rank_cd(c.tsv, q.tsq)::float8 AS score, c.chunk_index, c.char_start, \
                 c.char_end, c.headings, c.page \
             FROM worker.chunks c \
             WHERE c.collection_id = q.collection_id AND c.tsv @@ q.tsq AND c.tenant_id = ",
    );
    qb.push_bind(tenant.id);
    qb.push(
        " OFFSET 0) c \
         JOIN worker.assets a ON a.id = c.asset_id \
         WHERE true",
    );
    filters.push(&mut qb, "c");
    qb.push(" ORDER BY c.score DESC, c.id LIMIT ")
        .push_bind(i64::try_from(depth).unwrap_or(i64::MAX));
    Ok(qb.build_query_as::<Hit>().fetch_all(conn).await?)
}

/// Fills `snippet` for the `hits` that have none yet: the chunk text with the query's terms
/// highlighted, in each chunk's collection configuration. Without matches ts_headline returns
/// the text's start.
pub async fn snippets(pool: &PgPool, tenant: &Tenant, query: &str, hits: &mut [Hit]) -> Result<()> {
    let ids: Vec<Uuid> = hits
        .iter()
        .filter(|h| h.snippet.is_none())
        .map(|h| h.chunk_id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = tenant.begin(pool).await?;
    let mut qb = QueryBuilder::<Postgres>::new("SELECT c.id, ");
    push_headline(&mut qb, "col.text_search_config", "c.text", query);
    qb.push(
        " FROM worker.chunks c JOIN worker.collections col ON col.id = c.collection_id \
         WHERE c.id = ANY(",
    );
    qb.push_bind(ids).push(")");
    let rows: Vec<(Uuid, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
    crate::tenancy::finish_read(tx);
    let mut by_id: HashMap<Uuid, String> = rows.into_iter().collect();
    for hit in hits.iter_mut().filter(|h| h.snippet.is_none()) {
        hit.snippet = by_id.remove(&hit.chunk_id);
    }
    Ok(())
}
