//! The chat routes: `POST /api/v1/chat` (a streamed, cited answer as Server-Sent Events),
//! its stop and its resume. Each takes the request apart and makes one call on the chat relay
//! (`crate::chat_relay`, which owns the stream, the stop registry and the resume hubs).

use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use serde::Deserialize;
use thinkbank_proto::v1 as pb;

use super::ApiJson;
use crate::{
    auth::Principal,
    chat_relay,
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Internal, NotFound, PayloadTooLarge, Timeout, Unavailable, UnsupportedMediaType,
    },
    state::AppState,
};

/// `POST /api/v1/chat/{conversation_id}/stop`: 204 when a running answer was stopped (the
/// worker stores it with finish reason `cancelled`), 404 when none of the caller's runs on this
/// gateway (also when another principal's does).
#[utoipa::path(post, path = "/api/v1/chat/{conversation_id}/stop", tag = "chat",
    params(("conversation_id" = String, Path, format = Uuid, description = "from the `sources` event")),
    responses(
        (status = 204, description = "stopped: the stream ends with an `error` event \
                                      (code `cancelled`), then `done`"),
        (status = 404, response = NotFound),
    ))]
pub async fn stop(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(conversation_id): Path<String>,
) -> ApiResult<StatusCode> {
    chat_relay::stop(&state, &principal, &conversation_id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub question: String,
    /// Earlier turns, oldest first (not with `conversation_id`).
    #[serde(default)]
    pub history: Vec<HistoryMessage>,
    #[serde(default)]
    pub collection_ids: Vec<String>,
    /// Sources to retrieve, 1..=20 (default 5).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<u32>,
    /// Continue this stored conversation (then `history` must be empty).
    #[serde(default)]
    #[schema(format = Uuid)]
    pub conversation_id: Option<String>,
    /// How sources are retrieved: "hybrid", "vector" or "keyword"; unset is the server's
    /// default (hybrid unless THINKBANK_CHAT_RETRIEVAL_MODE says otherwise).
    #[serde(default)]
    #[schema(pattern = "^(hybrid|vector|keyword)?$")]
    pub retrieval_mode: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryMessage {
    /// "user" or "assistant".
    #[schema(pattern = "^(user|assistant)$")]
    pub role: String,
    pub content: String,
}

fn role(name: &str) -> Result<pb::ChatRole, ApiError> {
    match name {
        "user" => Ok(pb::ChatRole::User),
        "assistant" => Ok(pb::ChatRole::Assistant),
        other => Err(ApiError::invalid(format!(
            "history role must be 'user' or 'assistant', got '{other}'"
        ))),
    }
}

/// `POST /api/v1/chat`
#[utoipa::path(post, path = "/api/v1/chat", tag = "chat", request_body = ChatRequest,
    responses(
        (status = 200, description = "the answer as Server-Sent Events (see `ChatStreamEvent` \
                                      and the stream framing above)",
         content_type = "text/event-stream", body = ref("#/components/schemas/ChatStreamEvent")),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn chat(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<ChatRequest>,
) -> ApiResult<impl IntoResponse> {
    let history = body
        .history
        .into_iter()
        .map(|m| {
            Ok(pb::ChatMessage {
                role: role(&m.role)? as i32,
                content: m.content,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let message = pb::ChatStreamRequest {
        question: body.question,
        history,
        collection_ids: body.collection_ids,
        top_k: body.top_k.unwrap_or(0),
        conversation_id: body.conversation_id.unwrap_or_default(),
        retrieval_mode: super::search::mode(body.retrieval_mode.as_deref()).map_err(|_| {
            ApiError::invalid(format!(
                "unknown retrieval_mode '{}': use hybrid, vector or keyword",
                body.retrieval_mode.as_deref().unwrap_or_default()
            ))
        })? as i32,
    };
    chat_relay::answer(&state, &principal, message).await
}

/// `GET /api/v1/chat/{conversation_id}/events` with `Last-Event-ID`: the rest of a stream.
#[utoipa::path(get, path = "/api/v1/chat/{conversation_id}/events", tag = "chat",
    params(
        ("conversation_id" = String, Path, format = Uuid, description = "from the `sources` event"),
        ("Last-Event-ID" = Option<u64>, Header,
         description = "the last event id received; the stream continues after it (default 0)"),
    ),
    responses(
        (status = 200, description = "the answer's events after `Last-Event-ID`, then the live \
                                      ones (see `ChatStreamEvent`)",
         content_type = "text/event-stream", body = ref("#/components/schemas/ChatStreamEvent")),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event id (a number)"))?,
    };
    chat_relay::resume(&state, &principal, &conversation_id, after)
}
