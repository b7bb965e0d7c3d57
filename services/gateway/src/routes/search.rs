//! `POST /api/v1/search`: the knowledge base's most relevant chunks for a query.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1 as pb;

use super::ApiJson;
use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
    views::{self, HitView},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query text.
    pub query: String,
    /// Hits to return, 1..=100 (default 10).
    #[serde(default)]
    pub top_k: Option<u32>,
    /// "vector" (default), "keyword" or "hybrid".
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub collection_ids: Vec<String>,
    #[serde(default)]
    pub asset_ids: Vec<String>,
    /// Drop hits scoring below this.
    #[serde(default)]
    pub min_score: Option<f32>,
}

#[derive(Debug, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<HitView>,
    pub model: String,
    pub timings: Option<Timings>,
}

#[derive(Debug, Serialize)]
pub struct Timings {
    pub embed_ms: f64,
    pub query_ms: f64,
    pub total_ms: f64,
}

fn mode(name: Option<&str>) -> Result<pb::SearchMode, ApiError> {
    match name {
        None | Some("") => Ok(pb::SearchMode::Unspecified),
        Some("vector") => Ok(pb::SearchMode::Vector),
        Some("keyword") => Ok(pb::SearchMode::Keyword),
        Some("hybrid") => Ok(pb::SearchMode::Hybrid),
        Some(other) => Err(ApiError::invalid(format!(
            "unknown mode '{other}': use vector, keyword or hybrid"
        ))),
    }
}

pub async fn search(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let message = pb::VectorSearchRequest {
        mode: mode(body.mode.as_deref())? as i32,
        query: body.query,
        top_k: body.top_k.unwrap_or(0),
        collection_ids: body.collection_ids,
        asset_ids: body.asset_ids,
        min_score: body.min_score.unwrap_or(0.0),
    };
    let response = state
        .worker
        .clone()
        .vector_search(state.request(message, state.config.worker_timeout()))
        .await?
        .into_inner();
    Ok(Json(SearchResponse {
        hits: response.hits.into_iter().map(views::hit).collect(),
        model: response.model,
        timings: response.timings.map(|t| Timings {
            embed_ms: t.embed_ms,
            query_ms: t.query_ms,
            total_ms: t.total_ms,
        }),
    }))
}
