//! `POST /v1/embeddings`: OpenAI-compatible, so existing OpenAI SDKs work unchanged.
//! Supports `encoding_format` "float" and "base64" (the official Python SDK asks for base64).
//! Extensions: each item says whether its input was `truncated` to the model's token limit,
//! and `"strict": true` rejects such input with 400 instead.

use axum::{Extension, Json, extract::State};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1 as pb;

use super::ApiJson;
use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Internal, NotFound, PayloadTooLarge, Timeout, Unavailable, UnsupportedMediaType,
    },
    state::AppState,
};

/// One text or a list of texts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = EmbeddingInput)]
pub enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmbeddingsRequest {
    pub input: Input,
    /// The embedding model (default: the worker's).
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32).
    #[serde(default)]
    #[schema(pattern = "^(float|base64)$")]
    pub encoding_format: Option<String>,
    /// Only the model's native size is supported.
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// Accepted for compatibility and ignored.
    #[serde(default)]
    pub user: Option<String>,
    /// Reject input over the model's token limit instead of truncating it.
    #[serde(default)]
    pub strict: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingItem>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmbeddingItem {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    /// The vector: numbers, or base64 of little-endian f32 with `encoding_format: base64`.
    #[schema(schema_with = embedding_schema)]
    pub embedding: serde_json::Value,
    /// The input was longer than the model's limit and only its start was embedded.
    pub truncated: bool,
}

/// An embedding is dynamic JSON: a list of numbers or a base64 string.
fn embedding_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Number)))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .build()
        .into()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EmbeddingUsage)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}

/// `POST /v1/embeddings`
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsRequest,
    responses(
        (status = 200, description = "one embedding per input, in order", body = EmbeddingsResponse),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<EmbeddingsRequest>,
) -> ApiResult<Json<EmbeddingsResponse>> {
    let texts = match body.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
    };
    if texts.is_empty() {
        return Err(ApiError::invalid("input must not be an empty list"));
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "encoding_format must be 'float' or 'base64', got '{other}'"
            )));
        }
    };
    let message = pb::GetEmbeddingRequest {
        texts,
        model: body.model.unwrap_or_default(),
        strict: body.strict,
    };
    let response = state
        .worker
        .clone()
        .get_embedding(state.request(&principal, message, state.config.worker_timeout())?)
        .await?
        .into_inner();
    if let Some(dimensions) = body.dimensions
        && dimensions != response.dimensions
    {
        return Err(ApiError::invalid(format!(
            "dimensions {dimensions} is not supported by {}; it produces {} dimensions",
            response.model, response.dimensions
        )));
    }
    let data = response
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, e)| EmbeddingItem {
            object: "embedding",
            index,
            truncated: e.truncated,
            embedding: if base64 {
                let bytes: Vec<u8> = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .into()
            } else {
                e.values.into()
            },
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: response.model,
        usage: Usage {
            prompt_tokens: response.total_tokens,
            total_tokens: response.total_tokens,
        },
    }))
}
