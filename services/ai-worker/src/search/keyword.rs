//! The keyword leg: Okapi BM25 over `chunks.tsv`, with PostgreSQL's full-text machinery doing
//! the candidate work. Per collection (each in its own `text_search_config`, the one that built
//! its chunks' `tsv`):
//! - candidates come from the GIN index: chunks holding any of a natural query's words, or
//!   matching an operator query as written (see `keyword_query`);
//! - each candidate is scored with BM25 (k1 = 1.2, b = 0.75): IDF from the collection's term
//!   statistics (`keyword_terms`, kept exact by triggers on every insert and delete), term
//!   frequency with saturation, length normalised by the collection's average chunk length; a
//!   term in the title (file name or heading path, weight A in `tsv`) counts `TITLE_WEIGHT`
//!   times;
//! - the chunk's BM25 is blended with its document's: the same sum with term frequencies added
//!   up over the document's matching chunks and length normalised by the document's length
//!   against the collection's average (`keyword_documents`, kept by the same triggers). A
//!   section that covers the question across its passages then outranks a passage elsewhere
//!   that mentions each word once (`Bm25::document_weight`).
//!
//! Row-level security applies to the chunks and to the statistics alike.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    FilterSet, Hit,
    keyword_query::{KeywordQuery, Matching},
};
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
    bm25: Bm25,
) -> Result<Option<Vec<Hit>>> {
    let mut tx = tenant.begin(pool).await?;
    let hits = match has_terms(&mut tx, tenant, query, &filters.collection_ids).await? {
        None => Some(Vec::new()),
        Some(false) => None,
        Some(true) => Some(run(&mut tx, tenant, query, filters, depth, bm25).await?),
    };
    crate::tenancy::finish_read(tx);
    Ok(hits)
}

/// BM25's parameters (`THINKBANK_BM25_*`); `Default` gives the documented defaults, chosen
/// with `make eval` (README, "Search and ranking").
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct Bm25 {
    /// Term-frequency saturation: how much a repeated term still adds.
    #[arg(long = "bm25-k1", env = "THINKBANK_BM25_K1", default_value_t = DEFAULT_K1)]
    pub k1: f64,
    /// Length normalisation, 0 (none) to 1 (full).
    #[arg(long = "bm25-b", env = "THINKBANK_BM25_B", default_value_t = DEFAULT_B)]
    pub b: f64,
    /// How many body occurrences one title occurrence (file name, heading) of a term is worth.
    #[arg(long = "bm25-title-weight", env = "THINKBANK_BM25_TITLE_WEIGHT",
          default_value_t = DEFAULT_TITLE_WEIGHT)]
    pub title_weight: f64,
    /// Share of a chunk's score that comes from its document's BM25 (0: the chunk alone; 1:
    /// the document alone); the rest is the chunk's own BM25.
    #[arg(long = "bm25-document-weight", env = "THINKBANK_BM25_DOCUMENT_WEIGHT",
          default_value_t = DEFAULT_DOCUMENT_WEIGHT)]
    pub document_weight: f64,
}

pub const DEFAULT_K1: f64 = 1.2;
pub const DEFAULT_B: f64 = 0.75;
pub const DEFAULT_TITLE_WEIGHT: f64 = 2.0;
pub const DEFAULT_DOCUMENT_WEIGHT: f64 = 0.6;

impl Default for Bm25 {
    fn default() -> Self {
        Self {
            k1: DEFAULT_K1,
            b: DEFAULT_B,
            title_weight: DEFAULT_TITLE_WEIGHT,
            document_weight: DEFAULT_DOCUMENT_WEIGHT,
        }
    }
}

/// Candidate postings a natural query may open per collection: its words are taken rarest
/// first while their document frequencies add up to at most this (the rarest word with any
/// match is always taken). A word left out still scores in the chunks the others found; it
/// only cannot bring in chunks by itself, which with its low IDF would rank low anyway.
const CANDIDATE_POSTINGS: i64 = 20_000;

/// The `depth` best chunks for `query`, best first; `score` is the BM25 score and
/// `keyword_coverage` the share of the query terms' IDF the chunk holds.
async fn run(
    conn: &mut PgConnection,
    tenant: &Tenant,
    query: &str,
    filters: &FilterSet,
    depth: usize,
    bm25: Bm25,
) -> Result<Vec<Hit>> {
    let parsed = KeywordQuery::parse(query);
    let mut qb = QueryBuilder::<Postgres>::new(
        "WITH q AS MATERIALIZED ( \
             SELECT col.id AS collection_id, col.text_search_config AS cfg, \
                 coalesce(s.chunks, 0)::float8 AS n, \
                 greatest(coalesce(s.total_length::float8 / nullif(s.chunks, 0), 1), 1) AS avgdl, \
                 greatest(coalesce(s.total_length::float8 / nullif(s.documents, 0), 1), 1) \
                     AS avgdoc \
             FROM worker.collections col \
             LEFT JOIN worker.keyword_stats s ON s.collection_id = col.id \
             WHERE col.tenant_id = ",
    );
    qb.push_bind(tenant.id);
    if !filters.collection_ids.is_empty() {
        qb.push(" AND col.id = ANY(")
            .push_bind(filters.collection_ids.clone())
            .push(")");
    }
    qb.push(
        "), terms AS MATERIALIZED ( \
             SELECT q.collection_id, l.lexeme, \
                 ln(1 + (q.n - coalesce(t.chunks, 0) + 0.5) / (coalesce(t.chunks, 0) + 0.5)) AS idf \
             FROM q CROSS JOIN LATERAL \
                 unnest(tsvector_to_array(to_tsvector(q.cfg, ",
    );
    qb.push_bind(parsed.scored_text.clone());
    qb.push(
        "))) AS l(lexeme) \
             LEFT JOIN worker.keyword_terms t \
                 ON t.collection_id = q.collection_id AND t.lexeme = l.lexeme \
         ), ",
    );
    match &parsed.matching {
        Matching::AnyWord(words) => {
            // Each word's own query and rarity; words are then taken rarest first within the
            // posting budget and OR-ed.
            qb.push(
                "words AS ( \
                     SELECT q.collection_id, w.word, plainto_tsquery(q.cfg, w.word) AS wq, \
                         (SELECT coalesce(min(t.chunks), 0) \
                          FROM unnest(tsvector_to_array(to_tsvector(q.cfg, w.word))) AS l(lexeme) \
                          JOIN worker.keyword_terms t \
                              ON t.collection_id = q.collection_id AND t.lexeme = l.lexeme) AS df \
                     FROM q CROSS JOIN unnest(",
            );
            qb.push_bind(words.clone());
            qb.push(
                "::text[]) AS w(word) \
                 ), ranked AS ( \
                     SELECT collection_id, wq, df, sum(df) OVER ( \
                         PARTITION BY collection_id ORDER BY df, word ROWS UNBOUNDED PRECEDING \
                     ) AS running \
                     FROM words WHERE numnode(wq) > 0 \
                 ), cand AS ( \
                     SELECT collection_id, worker.tsquery_any(wq) AS tsq FROM ranked \
                     WHERE running <= ",
            );
            qb.push_bind(CANDIDATE_POSTINGS);
            qb.push(" OR running - df = 0 GROUP BY collection_id ), ");
        }
        Matching::Boolean => {
            qb.push("cand AS ( SELECT q.collection_id, websearch_to_tsquery(q.cfg, ");
            qb.push_bind(query.to_owned());
            qb.push(") AS tsq FROM q ), ");
        }
    }
    qb.push(
        "scope AS ( \
             SELECT cand.collection_id, cand.tsq, q.avgdl, q.avgdoc, \
                 coalesce((SELECT array_agg(t.lexeme) FROM terms t \
                           WHERE t.collection_id = cand.collection_id), '{}') AS lexemes, \
                 (SELECT sum(t.idf) FROM terms t \
                  WHERE t.collection_id = cand.collection_id) AS idf_total \
             FROM cand JOIN q ON q.collection_id = cand.collection_id \
             WHERE numnode(cand.tsq) > 0 \
         ), matches AS MATERIALIZED ( \
             SELECT c.id, c.asset_id, c.collection_id, c.keyword_length, f.lexeme, f.tf \
             FROM scope CROSS JOIN LATERAL ( \
                 SELECT c.id, c.asset_id, c.collection_id, c.tsv, c.keyword_length \
                 FROM worker.chunks c JOIN worker.assets a ON a.id = c.asset_id \
                 WHERE c.collection_id = scope.collection_id AND c.tsv @@ scope.tsq \
                     AND c.tenant_id = ",
    );
    qb.push_bind(tenant.id);
    filters.push(&mut qb, "c");
    // `OFFSET 0` keeps the lateral query from being merged into the outer one: planned
    // alone, the collection's tsquery is a parameter and the GIN index answers `@@`.
    // Term frequencies read only the query's lexemes out of each candidate's tsvector:
    // `setweight` marks them B (no stored position has B) and `ts_filter` keeps the marked
    // ones, once over the whole vector and once over its title part (weight A).
    qb.push(" OFFSET 0) c CROSS JOIN LATERAL ( SELECT m.lexeme, array_length(m.positions, 1) + ")
        .push_bind(bm25.title_weight - 1.0)
        .push(
            " * coalesce(array_length(h.positions, 1), 0) AS tf \
                 FROM unnest(ts_filter(setweight(c.tsv, 'B', scope.lexemes), '{b}')) m \
                 LEFT JOIN unnest(ts_filter( \
                     setweight(ts_filter(c.tsv, '{a}'), 'B', scope.lexemes), '{b}')) h \
                     USING (lexeme) \
             ) f \
         ), chunk_scores AS ( \
             SELECT m.id, m.asset_id, ",
        );
    push_saturation(&mut qb, bm25, "m.tf", "m.keyword_length / scope.avgdl");
    qb.push(
        " AS score, (sum(t.idf) / nullif(min(scope.idf_total), 0))::float8 AS coverage \
             FROM matches m \
             JOIN terms t ON t.collection_id = m.collection_id AND t.lexeme = m.lexeme \
             JOIN scope ON scope.collection_id = m.collection_id \
             GROUP BY m.id, m.asset_id \
         ), document_scores AS ( ",
    );
    if bm25.document_weight == 0.0 {
        // Chunks alone (chat's default): no document aggregation to pay for.
        qb.push("SELECT NULL::uuid AS asset_id, 0::float8 AS score WHERE false");
    } else {
        qb.push("SELECT d.asset_id, ");
        push_saturation(&mut qb, bm25, "d.tf", "kd.length / scope.avgdoc");
        qb.push(
            " AS score \
             FROM (SELECT asset_id, collection_id, lexeme, sum(tf) AS tf FROM matches \
                   GROUP BY asset_id, collection_id, lexeme) d \
             JOIN terms t ON t.collection_id = d.collection_id AND t.lexeme = d.lexeme \
             JOIN scope ON scope.collection_id = d.collection_id \
             JOIN worker.keyword_documents kd ON kd.asset_id = d.asset_id \
             GROUP BY d.asset_id",
        );
    }
    qb.push(
        " ), blended AS ( \
             SELECT id, coverage, chunk, sum(document) OVER (PARTITION BY asset_id) AS document \
             FROM (SELECT id, asset_id, coverage, score AS chunk, 0::float8 AS document \
                   FROM chunk_scores \
                   UNION ALL SELECT NULL, asset_id, NULL, 0, score FROM document_scores) u \
         ), best AS ( \
             SELECT id, coverage, (1 - ",
    );
    // Each chunk's row carries its document's score through a window over the union rather
    // than a join: the planner, blind to the CTEs' sizes, chose a nested loop for the join
    // (3.5x the whole query's time at 100k chunks).
    // Both parts are BM25 over the same terms and IDFs, so they share a scale: the blend stays
    // a BM25 score (what `min_score` and `explain` speak of).
    qb.push_bind(bm25.document_weight)
        .push(") * chunk + ")
        .push_bind(bm25.document_weight)
        .push(
            " * document AS score \
             FROM blended WHERE id IS NOT NULL \
             ORDER BY score DESC, id LIMIT ",
        )
        .push_bind(i64::try_from(depth).unwrap_or(i64::MAX));
    qb.push(
        " ) \
         SELECT c.id AS chunk_id, c.asset_id, c.collection_id, a.filename, a.media_type, \
             c.text, coalesce(best.score, 0)::float8 AS score, c.chunk_index, c.char_start, \
             c.char_end, c.headings, c.page, best.coverage AS keyword_coverage \
         FROM best JOIN worker.chunks c ON c.id = best.id \
         JOIN worker.assets a ON a.id = c.asset_id \
         ORDER BY best.score DESC, c.id",
    );
    Ok(qb.build_query_as::<Hit>().fetch_all(conn).await?)
}

/// Pushes BM25's sum over the query terms `t` (with `idf`) of the saturated term frequency
/// `tf` at relative length `relative_length` (the text's length over the average).
fn push_saturation(
    qb: &mut QueryBuilder<'_, Postgres>,
    bm25: Bm25,
    tf: &str,
    relative_length: &str,
) {
    qb.push(format_args!("coalesce(sum(t.idf * {tf} * "))
        .push_bind(bm25.k1 + 1.0)
        .push(format_args!(" / ({tf} + "))
        .push_bind(bm25.k1)
        .push(" * (1 - ")
        .push_bind(bm25.b)
        .push(" + ")
        .push_bind(bm25.b)
        .push(format_args!(" * {relative_length}))), 0)::float8"));
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
