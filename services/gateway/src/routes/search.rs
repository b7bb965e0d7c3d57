//! `POST /api/v1/search`: the knowledge base's most relevant chunks for a query, in vector,
//! keyword or hybrid mode, with filters, explain and pagination. The worker validates and
//! ranks; this handler only translates JSON names into the VectorSearch message.

use axum::{Extension, Json, extract::State};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1 as pb;

use super::ApiJson;
use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Conflict, Internal, PayloadTooLarge, Timeout, Unavailable, UnsupportedMediaType,
    },
    state::AppState,
    views::{self, HitView},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query text.
    pub query: String,
    /// Hits to return, 1..=100 (default 10).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub top_k: Option<u32>,
    /// "hybrid" (default), "vector" or "keyword".
    #[serde(default)]
    #[schema(pattern = "^(hybrid|vector|keyword)?$")]
    pub mode: Option<String>,
    #[serde(default)]
    pub collection_ids: Vec<String>,
    #[serde(default)]
    pub asset_ids: Vec<String>,
    /// Drop hits scoring below this (in the mode's scale).
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Detected media types, e.g. "text/markdown".
    #[serde(default)]
    pub media_types: Vec<String>,
    /// RFC 3339; inclusive.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub created_after: Option<String>,
    /// RFC 3339; exclusive.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub created_before: Option<String>,
    /// Conditions on asset metadata; all must hold.
    #[serde(default)]
    pub metadata: Vec<MetadataConditionBody>,
    /// Hybrid fusion settings.
    #[serde(default)]
    pub fusion: Option<FusionBody>,
    /// "fast", "balanced" (default) or "high".
    #[serde(default)]
    #[schema(pattern = "^(fast|balanced|high)?$")]
    pub recall: Option<String>,
    /// Explicit `hnsw.ef_search`, 1..=1000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub ef_search: Option<u32>,
    /// Attach an `explain` object to every hit.
    #[serde(default)]
    pub explain: bool,
    /// `next_page_token` of the previous page.
    #[serde(default)]
    pub page_token: Option<String>,
    /// "chunk" (default): every matching chunk is a hit; "asset": the best chunk of each
    /// asset, and pages count assets.
    #[serde(default)]
    #[schema(pattern = "^(chunk|asset)?$")]
    pub group_by: Option<String>,
    /// Rerank with the configured reranker; unset follows the server default (on when one is
    /// configured), `true` without one is 409 (`failed_precondition`).
    #[serde(default)]
    pub rerank: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = MetadataCondition)]
pub struct MetadataConditionBody {
    pub key: String,
    /// "eq", "ne", "in", "gt" or "lt".
    #[schema(pattern = "^(eq|ne|in|gt|lt)$")]
    pub op: String,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SearchFusion)]
pub struct FusionBody {
    #[serde(default)]
    pub rrf_k: Option<u32>,
    #[serde(default)]
    pub vector_weight: Option<f32>,
    #[serde(default)]
    pub keyword_weight: Option<f32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<HitView>,
    /// The mode that ran.
    pub mode: &'static str,
    pub model: String,
    pub timings: Option<Timings>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SearchTimings)]
pub struct Timings {
    pub embed_ms: f64,
    pub vector_ms: f64,
    pub keyword_ms: f64,
    pub fusion_ms: f64,
    pub snippet_ms: f64,
    pub query_ms: f64,
    pub total_ms: f64,
}

fn group_by(name: Option<&str>) -> Result<pb::SearchGroupBy, ApiError> {
    match name {
        None | Some("") => Ok(pb::SearchGroupBy::Unspecified),
        Some("chunk") => Ok(pb::SearchGroupBy::Chunk),
        Some("asset") => Ok(pb::SearchGroupBy::Asset),
        Some(other) => Err(ApiError::invalid(format!(
            "unknown group_by '{other}': use chunk or asset"
        ))),
    }
}

/// A mode name as the REST API spells it; absent is UNSPECIFIED (the server's default).
pub fn mode(name: Option<&str>) -> Result<pb::SearchMode, ApiError> {
    match name {
        None | Some("") => Ok(pb::SearchMode::Unspecified),
        Some("vector") => Ok(pb::SearchMode::Vector),
        Some("keyword") => Ok(pb::SearchMode::Keyword),
        Some("hybrid") => Ok(pb::SearchMode::Hybrid),
        Some(other) => Err(ApiError::invalid(format!(
            "unknown mode '{other}': use hybrid, vector or keyword"
        ))),
    }
}

fn mode_name(mode: pb::SearchMode) -> &'static str {
    match mode {
        pb::SearchMode::Unspecified => "unspecified",
        pb::SearchMode::Vector => "vector",
        pb::SearchMode::Keyword => "keyword",
        pb::SearchMode::Hybrid => "hybrid",
    }
}

fn recall(name: Option<&str>) -> Result<pb::Recall, ApiError> {
    match name {
        None | Some("") => Ok(pb::Recall::Unspecified),
        Some("fast") => Ok(pb::Recall::Fast),
        Some("balanced") => Ok(pb::Recall::Balanced),
        Some("high") => Ok(pb::Recall::High),
        Some(other) => Err(ApiError::invalid(format!(
            "unknown recall '{other}': use fast, balanced or high"
        ))),
    }
}

fn operator(index: usize, name: &str) -> Result<pb::MetadataOperator, ApiError> {
    match name {
        "eq" => Ok(pb::MetadataOperator::Eq),
        "ne" => Ok(pb::MetadataOperator::Ne),
        "in" => Ok(pb::MetadataOperator::In),
        "gt" => Ok(pb::MetadataOperator::Gt),
        "lt" => Ok(pb::MetadataOperator::Lt),
        other => Err(ApiError::invalid(format!(
            "metadata[{index}]: unknown operator '{other}': use eq, ne, in, gt or lt"
        ))),
    }
}

fn timestamp(field: &str, value: Option<&str>) -> Result<Option<prost_types::Timestamp>, ApiError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| prost_types::Timestamp {
                    seconds: t.timestamp(),
                    nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
                })
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "{field} must be an RFC 3339 timestamp, got '{text}'"
                    ))
                })
        })
        .transpose()
}

fn message(body: SearchRequest) -> Result<pb::VectorSearchRequest, ApiError> {
    let metadata = body
        .metadata
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let max = thinkbank_proto::json::MAX_DEPTH;
            if c.value
                .as_ref()
                .is_some_and(|v| thinkbank_proto::json::depth(v) > max)
            {
                return Err(ApiError::invalid(format!(
                    "metadata[{i}]: value is nested deeper than {max} levels"
                )));
            }
            Ok(pb::MetadataCondition {
                op: operator(i, &c.op)? as i32,
                key: c.key,
                value: c.value.as_ref().map(thinkbank_proto::json::value_from_json),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(pb::VectorSearchRequest {
        mode: mode(body.mode.as_deref())? as i32,
        recall: recall(body.recall.as_deref())? as i32,
        created_after: timestamp("created_after", body.created_after.as_deref())?,
        created_before: timestamp("created_before", body.created_before.as_deref())?,
        query: body.query,
        top_k: body.top_k.unwrap_or(0),
        collection_ids: body.collection_ids,
        asset_ids: body.asset_ids,
        min_score: body.min_score.unwrap_or(0.0),
        media_types: body.media_types,
        metadata,
        fusion: body.fusion.map(|f| pb::FusionOptions {
            rrf_k: f.rrf_k.unwrap_or(0),
            vector_weight: f.vector_weight,
            keyword_weight: f.keyword_weight,
        }),
        ef_search: body.ef_search.unwrap_or(0),
        explain: body.explain,
        page_token: body.page_token.unwrap_or_default(),
        group_by: group_by(body.group_by.as_deref())? as i32,
        rerank: body.rerank,
    })
}

/// `POST /api/v1/search`
#[utoipa::path(post, path = "/api/v1/search", tag = "search", request_body = SearchRequest,
    responses(
        (status = 200, description = "the best hits, best first", body = SearchResponse),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let message = message(body)?;
    let response = state
        .read(&principal, message, |mut worker, request| async move {
            worker.vector_search(request).await
        })
        .await?
        .into_inner();
    Ok(Json(SearchResponse {
        mode: mode_name(response.mode()),
        hits: response.hits.into_iter().map(views::hit).collect(),
        model: response.model,
        timings: response.timings.map(|t| Timings {
            embed_ms: t.embed_ms,
            vector_ms: t.vector_ms,
            keyword_ms: t.keyword_ms,
            fusion_ms: t.fusion_ms,
            snippet_ms: t.snippet_ms,
            query_ms: t.query_ms,
            total_ms: t.total_ms,
        }),
        next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
    }))
}
