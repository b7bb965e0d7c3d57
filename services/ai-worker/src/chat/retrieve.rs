//! Retrieval for chat, behind one function so both answerers use the same search and
//! switching to hybrid search is a one-line change here.

use crate::{
    embed::Registry,
    error::{Result, WorkerError},
    search::{self, Filters, Hit},
    tenancy::Tenant,
};

/// The `top_k` chunks for `query`, best first, with the query's embedding by the local model
/// (the extractive answerer ranks sentences against it).
#[tracing::instrument(name = "chat.retrieve", skip_all, fields(top_k = top_k))]
pub async fn retrieve(
    pool: &sqlx::PgPool,
    models: &Registry,
    tenant: &Tenant,
    query: String,
    filters: &Filters,
    top_k: usize,
) -> Result<(Vec<Hit>, Vec<f32>)> {
    let (hits, vectors) = search::vector(pool, models, tenant, &query, filters, top_k).await?;
    let local = &models.local().info().name;
    let query_vector = match vectors.into_iter().find(|v| &v.model == local) {
        Some(found) => found.vector,
        None => models
            .get(local)?
            .embed_one(query)
            .await
            .map_err(WorkerError::from)?,
    };
    Ok((hits, query_vector))
}

/// The text retrieval runs on. A follow-up question is retrieved with the previous user turn
/// as context, concatenated honestly (no rewriting).
pub fn retrieval_query(question: &str, history: &[super::Turn]) -> String {
    match history.iter().rev().find(|t| t.from_user) {
        Some(previous) => format!("{}\n{}", previous.content, question),
        None => question.to_owned(),
    }
}
