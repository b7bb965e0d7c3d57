//! Retrieval for chat, behind one function so both answerers search the same way: the same
//! ranking as VectorSearch (hybrid by default, any mode per request, reranked when a reranker
//! is configured), with the evidence the relevance floor weighs.

use super::relevance::{AnswerConfig, Evidence};
use crate::{
    embed::{Registry, cosine},
    error::{Result, WorkerError},
    search::{self, FilterSet, Filters, Fusion, GroupBy, Hit, Mode, Query, RankOptions, Recall},
    tenancy::Tenant,
};

/// How one chat retrieves and judges its sources.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub mode: Mode,
    pub config: &'a AnswerConfig,
    pub ranking: &'a search::Ranking,
}

/// What retrieval found for a question.
#[derive(Debug, Clone)]
pub struct Retrieved {
    /// Best first.
    pub hits: Vec<Hit>,
    /// The question's embedding by the local model (the extractive answerer ranks sentences
    /// against it).
    pub query_vector: Vec<f32>,
    pub evidence: Evidence,
}

/// The `top_k` chunks for `query`, best first.
#[tracing::instrument(name = "chat.retrieve", skip_all, fields(top_k = top_k, mode = ?settings.mode))]
pub async fn retrieve(
    pool: &sqlx::PgPool,
    models: &Registry,
    tenant: &Tenant,
    query: String,
    filters: &Filters,
    top_k: usize,
    settings: Settings<'_>,
) -> Result<Retrieved> {
    let search = Query {
        text: query.clone(),
        mode: settings.mode,
        filters: FilterSet::from(filters),
        top_k,
        offset: 0,
        min_score: 0.0,
        fusion: Fusion::default(),
        recall: Recall::Balanced,
        ef_search: None,
        // The evidence reads the legs' raw scores from `explain`.
        explain: true,
        model_override: None,
        group_by: GroupBy::Chunk,
        rerank: None,
    };
    let options = RankOptions {
        reranker: settings.ranking.reranker.as_ref(),
        bm25: search::Bm25 {
            document_weight: settings.config.chat_document_weight,
            ..settings.ranking.bm25
        },
        ..RankOptions::default()
    };
    let outcome = match search::rank(pool, models, tenant, &search, options).await {
        // A question of stop words only has no keyword terms: nothing found, not an error.
        Err(WorkerError::InvalidArgument(_)) if settings.mode == Mode::Keyword => search::Outcome {
            hits: Vec::new(),
            next_offset: None,
            model: None,
            vectors: Vec::new(),
            timings: search::Timings::default(),
        },
        other => other?,
    };
    let local = &models.local().info().name;
    let query_vector = match outcome.vectors.into_iter().find(|v| &v.model == local) {
        Some(found) => found.vector,
        None => models
            .get(local)?
            .embed_one(query)
            .await
            .map_err(WorkerError::from)?,
    };
    let mut hits = outcome.hits;
    if settings.mode == Mode::Keyword {
        similarity_by_text(models, &query_vector, &mut hits).await?;
    }
    let evidence = Evidence::of(&hits, settings.config);
    Ok(Retrieved {
        hits,
        query_vector,
        evidence,
    })
}

/// Keyword-only retrieval has no vector distances: the floor still needs them, so the few
/// sources are embedded here.
async fn similarity_by_text(models: &Registry, query: &[f32], hits: &mut [Hit]) -> Result<()> {
    if hits.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = hits.iter().map(|h| h.text.clone()).collect();
    let vectors = super::embed_locally(models.local(), texts).await?;
    for (hit, vector) in hits.iter_mut().zip(vectors) {
        let distance = 1.0 - f64::from(cosine(query, &vector));
        hit.explain
            .get_or_insert_with(Default::default)
            .vector_distance = Some(distance);
    }
    Ok(())
}

/// The text retrieval runs on. A follow-up question is retrieved with the previous user turn
/// as context, concatenated honestly (no rewriting).
pub fn retrieval_query(question: &str, history: &[super::Turn]) -> String {
    match history.iter().rev().find(|t| t.from_user) {
        Some(previous) => format!("{}\n{}", previous.content, question),
        None => question.to_owned(),
    }
}
