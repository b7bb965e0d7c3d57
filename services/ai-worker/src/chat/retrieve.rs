//! Retrieval for chat, behind one function so both answerers use the same search and
//! switching to hybrid search is a one-line change here.

use tracing::Instrument as _;

use crate::{
    embed::LocalEmbedder,
    error::{Result, WorkerError},
    search::{self, Filters, Hit},
    tenancy::Tenant,
};

/// The `top_k` chunks for `query`, best first, with the query's embedding (the extractive
/// answerer ranks sentences against it).
#[tracing::instrument(name = "chat.retrieve", skip_all, fields(top_k = top_k))]
pub async fn retrieve(
    pool: &sqlx::PgPool,
    embedder: &LocalEmbedder,
    tenant: &Tenant,
    query: String,
    filters: &Filters,
    top_k: usize,
) -> Result<(Vec<Hit>, Vec<f32>)> {
    let query_vector = embed_one(embedder, query).await?;
    let hits = search::vector(
        pool,
        tenant,
        embedder.info(),
        &query_vector,
        filters,
        top_k,
        0.0,
    )
    .await?;
    Ok((hits, query_vector))
}

async fn embed_one(embedder: &LocalEmbedder, text: String) -> Result<Vec<f32>> {
    let model = embedder.clone();
    let mut out = tokio::task::spawn_blocking(move || model.embed_blocking(&[text.as_str()]))
        .instrument(tracing::info_span!("search.embed"))
        .await
        .map_err(|e| WorkerError::Internal(format!("embedding task failed: {e}")))?
        .map_err(WorkerError::Embedding)?;
    out.pop()
        .map(|e| e.vector)
        .ok_or_else(|| WorkerError::Embedding("no vector returned".into()))
}

/// The text retrieval runs on. A follow-up question is retrieved with the previous user turn
/// as context, concatenated honestly (no rewriting).
pub fn retrieval_query(question: &str, history: &[super::Turn]) -> String {
    match history.iter().rev().find(|t| t.from_user) {
        Some(previous) => format!("{}\n{}", previous.content, question),
        None => question.to_owned(),
    }
}
