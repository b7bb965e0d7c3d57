//! Retrieval over the chunk store in three modes: `Vector` (pgvector HNSW, cosine), `Keyword`
//! (PostgreSQL full text, per-collection configuration) and `Hybrid` (both legs concurrently on
//! separate connections, fused with weighted reciprocal-rank fusion). Both legs apply the same
//! filters, and every hit can explain its rank.

pub mod filters;
pub mod fusion;
pub mod keyword;
pub mod keyword_query;
pub mod rerank;
pub mod shadow;
mod validate;
pub mod vector;
pub mod vector_leg;

use std::time::Instant;

use sqlx::PgPool;
use tracing::Instrument as _;
use uuid::Uuid;

pub use filters::{FilterSet, MetadataCondition, MetadataOp};
pub use fusion::Fusion;
pub use keyword::Bm25;
pub use rerank::Reranker;
pub use vector_leg::{QueryVector, QueryVectors, VectorLeg, VectorLegOutcome, vector_by_model};

use crate::{
    embed::Registry,
    error::{Result, WorkerError},
    tenancy::Tenant,
};

/// Largest `top_k` a caller may ask for.
pub const MAX_TOP_K: usize = 100;
pub const DEFAULT_TOP_K: usize = 10;
/// Deepest hit reachable through pagination (offset + top_k).
pub const MAX_DEPTH: usize = 1000;
/// Candidates each leg contributes to hybrid fusion, at least: fusion needs more than the page
/// to find chunks that rank well in both legs.
pub const HYBRID_MIN_DEPTH: usize = 50;

/// The collection/asset scope used by chat; a subset of `FilterSet`.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub collection_ids: Vec<Uuid>,
    pub asset_ids: Vec<Uuid>,
}

impl From<&Filters> for FilterSet {
    fn from(filters: &Filters) -> Self {
        Self {
            collection_ids: filters.collection_ids.clone(),
            asset_ids: filters.asset_ids.clone(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    Vector,
    Keyword,
    #[default]
    Hybrid,
}

/// What one hit stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    #[default]
    Chunk,
    /// The best chunk of each asset; pages count assets.
    Asset,
}

/// How much deeper than the page the legs look when hits are grouped by asset, so that a page
/// of distinct assets is usually among the candidates.
const GROUP_DEPTH_FACTOR: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recall {
    Fast,
    #[default]
    Balanced,
    High,
}

/// Why a hit ranked where it did. Ranks are 1-based; `None` means the leg did not return it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explain {
    pub vector_rank: Option<usize>,
    pub vector_distance: Option<f64>,
    pub keyword_rank: Option<usize>,
    pub keyword_score: Option<f64>,
    pub vector_contribution: f64,
    pub keyword_contribution: f64,
    pub rerank_score: Option<f64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    pub chunk_id: Uuid,
    pub asset_id: Uuid,
    pub collection_id: Uuid,
    pub filename: String,
    pub media_type: String,
    pub text: String,
    /// Higher is better; its scale depends on the mode (see `Mode`).
    pub score: f64,
    pub chunk_index: i32,
    pub char_start: i64,
    pub char_end: i64,
    pub headings: Vec<String>,
    pub page: Option<i32>,
    /// The text with query terms highlighted; filled for returned pages only.
    #[sqlx(default)]
    pub snippet: Option<String>,
    /// Keyword leg only: the share of the query terms' IDF that the chunk holds (0..1), the
    /// keyword evidence chat's relevance floor weighs.
    #[sqlx(default)]
    pub keyword_coverage: Option<f64>,
    #[sqlx(skip)]
    pub explain: Option<Explain>,
}

/// One search request, validated.
#[derive(Debug, Clone)]
pub struct Query {
    pub text: String,
    pub mode: Mode,
    pub filters: FilterSet,
    pub top_k: usize,
    pub offset: usize,
    /// Hits scoring below this (in the mode's scale) are dropped.
    pub min_score: f64,
    pub fusion: Fusion,
    pub recall: Recall,
    pub ef_search: Option<u32>,
    pub explain: bool,
    /// Search every collection with this embedding model's vectors instead of each
    /// collection's own model; only shadow profiles set it (see `shadow`).
    pub model_override: Option<String>,
    pub group_by: GroupBy,
    /// Rerank with the configured reranker: `None` follows the server default (on when one is
    /// configured).
    pub rerank: Option<bool>,
}

/// Milliseconds per stage; zero for stages that did not run.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub embed_ms: f64,
    pub vector_ms: f64,
    pub keyword_ms: f64,
    pub fusion_ms: f64,
    pub snippet_ms: f64,
    pub rerank_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// The requested page, best first.
    pub hits: Vec<Hit>,
    /// Offset of the next page, when there is one within `MAX_DEPTH`.
    pub next_offset: Option<usize>,
    /// The embedding model of the vector leg; `None` when it did not run.
    pub model: Option<String>,
    /// The query's vectors the vector leg searched with.
    pub vectors: QueryVectors,
    pub timings: Timings,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The server's ranking settings: BM25's parameters and the optional reranker.
#[derive(Debug, Clone, Default)]
pub struct Ranking {
    pub bm25: Bm25,
    pub reranker: Option<Reranker>,
}

/// Runs `query` for `tenant`: ranks (see [`rank`]), highlights the page, and records the
/// stage timings in the search metrics.
pub async fn search(
    pool: &PgPool,
    models: &Registry,
    ranking: &Ranking,
    tenant: &Tenant,
    query: &Query,
) -> Result<Outcome> {
    let started = Instant::now();
    // A first vector-only page is highlighted by the vector statement itself (its rows are
    // the page plus one); otherwise the page is highlighted once it is known.
    let options = RankOptions {
        highlight: query.mode == Mode::Vector && query.offset == 0,
        reranker: rerank::wanted(ranking.reranker.as_ref(), query.rerank)?,
        bm25: ranking.bm25,
        ..RankOptions::default()
    };
    let mut outcome = rank(pool, models, tenant, query, options).await?;
    let t = Instant::now();
    keyword::snippets(pool, tenant, &query.text, &mut outcome.hits)
        .instrument(tracing::info_span!("search.snippet"))
        .await?;
    outcome.timings.snippet_ms = ms(t);
    outcome.timings.total_ms = ms(started);
    record_timings(query.mode, &outcome.timings);
    Ok(outcome)
}

/// What [`rank`] may reuse or fold in.
#[derive(Debug, Clone, Copy, Default)]
pub struct RankOptions<'a> {
    /// Query vectors of the same text computed earlier.
    pub known: &'a [QueryVector],
    /// Highlight the vector leg's rows in its own statement.
    pub highlight: bool,
    /// Run hybrid's legs one after the other, so the search occupies one database connection
    /// (and one core) at a time; `total_ms` is then what it would have taken with the legs
    /// running at once.
    pub one_leg_at_a_time: bool,
    /// Rerank the best fused candidates with this reranker.
    pub reranker: Option<&'a Reranker>,
    pub bm25: Bm25,
}

/// The ranking part of a search: embeds the query when the vector leg runs, runs the legs
/// (both at once in hybrid mode), fuses, filters by score and pages. No metrics: shadow
/// profiles reuse it off the request path.
pub async fn rank(
    pool: &PgPool,
    models: &Registry,
    tenant: &Tenant,
    query: &Query,
    options: RankOptions<'_>,
) -> Result<Outcome> {
    let started = Instant::now();
    query.filters.validate()?;
    let wanted = query.offset + query.top_k;
    if wanted > MAX_DEPTH {
        return Err(WorkerError::InvalidArgument(format!(
            "pagination reaches at most {MAX_DEPTH} hits deep"
        )));
    }
    // One more than the page tells whether a next page exists.
    let page_depth = match query.group_by {
        GroupBy::Chunk => wanted + 1,
        GroupBy::Asset => (wanted + 1) * GROUP_DEPTH_FACTOR,
    };
    let depth = match query.mode {
        Mode::Hybrid => page_depth.max(HYBRID_MIN_DEPTH),
        Mode::Vector | Mode::Keyword => page_depth,
    }
    .min(MAX_DEPTH);
    let mut timings = Timings::default();
    let mut vectors: QueryVectors = Vec::new();
    // Time the legs would have shared had they run at once (see `RankOptions`).
    let mut overlap_ms = 0.0;

    let vector_leg = async {
        // The recall target is for the requested page; the deeper candidates hybrid fusion
        // also looks at only need to come back (pgvector returns at most ef_search rows).
        let depth_floor = u32::try_from(depth).unwrap_or(vector::MAX_EF_SEARCH);
        let ef = vector::ef_search(wanted + 1, query.recall, query.ef_search)
            .max(depth_floor)
            .min(vector::MAX_EF_SEARCH);
        let leg = VectorLeg {
            text: &query.text,
            filters: &query.filters,
            depth,
            ef,
            model_override: query.model_override.as_deref(),
            known: options.known,
            highlight: options.highlight,
        };
        let found = vector_by_model(pool, models, tenant, leg)
            .instrument(tracing::info_span!("search.vector", depth, ef))
            .await?;
        Ok::<_, WorkerError>(found)
    };
    let keyword_leg = async {
        let t = Instant::now();
        let hits = keyword::search(
            pool,
            tenant,
            &query.text,
            &query.filters,
            depth,
            options.bm25,
        )
        .await?;
        Ok::<_, WorkerError>((hits, ms(t)))
    }
    .instrument(tracing::info_span!("search.keyword", depth));

    let mut ranked = match query.mode {
        Mode::Vector => {
            let found = vector_leg.await?;
            (timings.embed_ms, timings.vector_ms) = (found.embed_ms, found.search_ms);
            vectors = found.vectors;
            let mut hits = found.hits;
            let t = Instant::now();
            if query.explain {
                fusion::explain_single(&mut hits, true);
            }
            timings.fusion_ms = ms(t);
            hits
        }
        Mode::Keyword => {
            let (hits, keyword_ms) = keyword_leg.await?;
            timings.keyword_ms = keyword_ms;
            let mut hits = hits.ok_or_else(no_terms)?;
            let t = Instant::now();
            if query.explain {
                fusion::explain_single(&mut hits, false);
            }
            timings.fusion_ms = ms(t);
            hits
        }
        Mode::Hybrid => {
            let (found, (keyword_hits, keyword_ms)) = if options.one_leg_at_a_time {
                let t = Instant::now();
                let found = vector_leg.await?;
                let vector_leg_ms = ms(t);
                let t = Instant::now();
                let keyword = keyword_leg.await?;
                overlap_ms = vector_leg_ms.min(ms(t));
                (found, keyword)
            } else {
                tokio::try_join!(vector_leg, keyword_leg)?
            };
            (timings.embed_ms, timings.vector_ms, timings.keyword_ms) =
                (found.embed_ms, found.search_ms, keyword_ms);
            vectors = found.vectors;
            let vector_hits = found.hits;
            let t = Instant::now();
            // A stop-word-only query still has a meaning for the vector leg: fuse it alone.
            let mut hits =
                fusion::fuse(vector_hits, keyword_hits.unwrap_or_default(), &query.fusion);
            if !query.explain {
                hits.iter_mut().for_each(|h| h.explain = None);
            }
            timings.fusion_ms = ms(t);
            hits
        }
    };

    if let Some(reranker) = options.reranker {
        let t = Instant::now();
        reranker
            .rerank(&query.text, &mut ranked, query.explain)
            .instrument(tracing::info_span!("search.rerank"))
            .await?;
        timings.rerank_ms = ms(t);
    }
    let t = Instant::now();
    if query.min_score > 0.0 {
        ranked.retain(|h| h.score >= query.min_score);
    }
    if query.group_by == GroupBy::Asset {
        let mut seen = std::collections::HashSet::new();
        ranked.retain(|h| seen.insert(h.asset_id));
    }
    let more = ranked.len() > wanted && wanted < MAX_DEPTH;
    let page: Vec<Hit> = ranked
        .into_iter()
        .skip(query.offset)
        .take(query.top_k)
        .collect();
    timings.fusion_ms += ms(t);
    timings.total_ms = ms(started) - overlap_ms;
    Ok(Outcome {
        hits: page,
        next_offset: more.then_some(wanted),
        model: (query.mode != Mode::Keyword).then(|| {
            let names: Vec<&str> = vectors.iter().map(|v| v.model.as_str()).collect();
            names.join(",")
        }),
        vectors,
        timings,
    })
}

/// Feeds `thinkbank_search_leg_duration_seconds` with the legs that ran.
fn record_timings(mode: Mode, timings: &Timings) {
    let metrics = &crate::telemetry::METRICS;
    if mode != Mode::Keyword {
        metrics.search_leg("embed", timings.embed_ms);
        metrics.search_leg("vector", timings.vector_ms);
    }
    if mode != Mode::Vector {
        metrics.search_leg("keyword", timings.keyword_ms);
    }
    metrics.search_leg("fusion", timings.fusion_ms);
    metrics.search_leg("snippet", timings.snippet_ms);
    if timings.rerank_ms > 0.0 {
        metrics.search_leg("rerank", timings.rerank_ms);
    }
    metrics.search_leg("total", timings.total_ms);
}

fn no_terms() -> WorkerError {
    WorkerError::InvalidArgument(
        "query has no searchable terms for keyword search (only stop words or punctuation)".into(),
    )
}
