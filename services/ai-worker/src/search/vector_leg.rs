//! The vector leg over every collection in scope, whatever their embedding models: the
//! collections are grouped by model, the query is embedded once per model, and each group is
//! searched with its own model's index (`vector::run`).

use std::time::Instant;

use sqlx::PgPool;
use tracing::Instrument as _;

use super::{FilterSet, Hit, ms, vector};
use crate::{
    embed::Registry,
    error::{Result, WorkerError},
    tenancy::Tenant,
};

/// The query's embedding by one model, and how long computing it took.
#[derive(Debug, Clone)]
pub struct QueryVector {
    pub model: String,
    pub vector: Vec<f32>,
    pub embed_ms: f64,
}

/// The query's embedding by each model that was searched.
pub type QueryVectors = Vec<QueryVector>;

/// One run of the vector leg.
#[derive(Debug, Clone, Copy)]
pub struct VectorLeg<'a> {
    pub text: &'a str,
    pub filters: &'a FilterSet,
    pub depth: usize,
    pub ef: u32,
    /// Search every collection with this model's vectors instead of each collection's own.
    pub model_override: Option<&'a str>,
    /// Vectors of the same text computed earlier (a shadow reuses its primary's).
    pub known: &'a [QueryVector],
    /// Highlight the rows in the search statement itself.
    pub highlight: bool,
}

/// What the vector leg found.
#[derive(Debug, Default)]
pub struct VectorLegOutcome {
    pub hits: Vec<Hit>,
    pub vectors: QueryVectors,
    /// Time spent embedding by this run (reused vectors cost nothing).
    pub embed_ms: f64,
    pub search_ms: f64,
}

/// The vector leg over collections of several models: the tenant's collections (or those the
/// filters name) are grouped by embedding model, the query is embedded once per model, each
/// group is searched with its own model's index, and the hits are merged by score.
///
/// Embedding is most of the leg's time and needs only the model, so the query is embedded
/// with the likely model (the override, else the default model new collections get) while the
/// collection lookup runs; another model a group turns out to use is embedded after it.
pub async fn vector_by_model(
    pool: &PgPool,
    models: &Registry,
    tenant: &Tenant,
    leg: VectorLeg<'_>,
) -> Result<VectorLegOutcome> {
    let likely = leg
        .model_override
        .unwrap_or_else(|| models.default_model().info().name.as_str());
    let lookup = crate::collections::by_model(pool, tenant, &leg.filters.collection_ids);
    let early = async {
        if leg.known.iter().any(|v| v.model == likely) {
            return None;
        }
        Some(embed_query(models, likely, leg.text).await)
    };
    let (groups, mut early) = tokio::join!(lookup, early);
    let mut groups = groups?;
    if let Some(model) = leg.model_override {
        let all = groups.into_iter().flat_map(|(_, ids)| ids).collect();
        groups = vec![(model.to_owned(), all)];
    }
    let mut outcome = VectorLegOutcome::default();
    for (model, collection_ids) in groups {
        let query_vector = match leg.known.iter().find(|v| v.model == model) {
            Some(known) => known.clone(),
            None => {
                let embedded = match early.take_if(|_| model == likely) {
                    Some(embedded) => embedded?,
                    None => embed_query(models, &model, leg.text).await?,
                };
                outcome.embed_ms += embedded.embed_ms;
                embedded
            }
        };
        let t = Instant::now();
        let scoped = FilterSet {
            collection_ids,
            ..leg.filters.clone()
        };
        let found = vector::run(
            pool,
            tenant,
            models.get(&model)?.info(),
            &query_vector.vector,
            &scoped,
            leg.depth,
            leg.ef,
            leg.highlight.then_some(leg.text),
        )
        .await?;
        outcome.search_ms += ms(t);
        outcome.hits.extend(found);
        outcome.vectors.push(query_vector);
    }
    outcome.hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    outcome.hits.truncate(leg.depth);
    Ok(outcome)
}

/// `text` embedded by `model`, which the collections being searched use.
async fn embed_query(models: &Registry, model: &str, text: &str) -> Result<QueryVector> {
    let embedder = models.get(model).map_err(|_| {
        WorkerError::FailedPrecondition(format!(
            "collections are searched with embedding model '{model}', which this worker does \
             not have configured (THINKBANK_EMBEDDING_MODELS)"
        ))
    })?;
    let t = Instant::now();
    let vector = embedder
        .embed_one(text.to_owned())
        .instrument(tracing::info_span!("search.embed", model = %model))
        .await?;
    Ok(QueryVector {
        model: model.to_owned(),
        vector,
        embed_ms: ms(t),
    })
}
