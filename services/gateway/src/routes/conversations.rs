//! Stored conversations: `GET /api/v1/conversations`, `GET`, `PATCH` (rename) and `DELETE
//! /api/v1/conversations/{id}`. Chat continues one with `conversation_id`.
//!
//! A conversation belongs to the principal (user, API key, external subject) that started it;
//! for anyone else it does not exist (404). Admins of the whole tenant may also list
//! (`all=true`), read and delete every conversation of their tenant, but not rename or continue
//! them. The worker enforces this from the principal the gateway names in call metadata.

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1 as pb;

use super::ApiJson;
use crate::{
    auth::Principal,
    chat_relay::events::{
        CitationData, SourceView, answer_mode_name, citation_data, finish_reason_name, source_view,
    },
    error::ApiResult,
    openapi::responses::{
        BadRequest, Internal, NotFound, Timeout, Unavailable, UnsupportedMediaType,
    },
    state::AppState,
    views::rfc3339,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most 200 (default 50).
    #[param(maximum = 200)]
    pub page_size: Option<u32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Every principal's conversations of the tenant, not only the caller's (403 unless the
    /// caller is an admin of the whole tenant).
    pub all: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Conversation)]
pub struct ConversationView {
    id: String,
    title: String,
    created_at: String,
    updated_at: String,
    message_count: u32,
    /// Who started it (`user:<uuid>`, `key:<uuid>`, `external:<tenant>:<subject>`); absent
    /// for a conversation stored before conversations had owners.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ConversationMessage)]
pub struct MessageView {
    id: String,
    /// `user` or `assistant`.
    role: &'static str,
    content: String,
    sources: Vec<SourceView>,
    citations: Vec<CitationData>,
    /// Assistant messages only: `stop`, `length`, `cancelled` or `error`.
    finish_reason: Option<&'static str>,
    answer_mode: Option<&'static str>,
    model: Option<String>,
    created_at: String,
    /// True when this answer drew on collections the caller may not read: its content,
    /// sources and citations are left out.
    withheld: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ConversationList)]
pub struct ListResponse {
    conversations: Vec<ConversationView>,
    next_page_token: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ConversationWithMessages)]
pub struct GetResponse {
    conversation: Option<ConversationView>,
    messages: Vec<MessageView>,
}

fn conversation(c: pb::Conversation) -> ConversationView {
    ConversationView {
        id: c.id,
        title: c.title,
        created_at: c.created_at.map(rfc3339).unwrap_or_default(),
        updated_at: c.updated_at.map(rfc3339).unwrap_or_default(),
        message_count: c.message_count,
        owner: Some(c.owner).filter(|o| !o.is_empty()),
    }
}

fn message(m: pb::ConversationMessage) -> MessageView {
    let assistant = m.role == pb::ChatRole::Assistant as i32;
    MessageView {
        role: if assistant { "assistant" } else { "user" },
        finish_reason: assistant.then(|| finish_reason_name(m.finish_reason())),
        answer_mode: assistant.then(|| answer_mode_name(m.answer_mode())),
        model: assistant.then(|| m.model.clone()),
        id: m.id,
        content: m.content,
        sources: m.sources.into_iter().map(source_view).collect(),
        citations: m.citations.into_iter().map(citation_data).collect(),
        created_at: m.created_at.map(rfc3339).unwrap_or_default(),
        withheld: m.withheld,
    }
}

/// `GET /api/v1/conversations`
#[utoipa::path(get, path = "/api/v1/conversations", tag = "chat", params(ListParams),
    responses(
        (status = 200, description = "stored conversations, most recently updated first",
         body = ListResponse),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ListResponse>> {
    let Query(params) = query?;
    let request = pb::ListConversationsRequest {
        page_size: params.page_size.unwrap_or(0),
        page_token: params.page_token.unwrap_or_default(),
        all_owners: params.all.unwrap_or(false),
    };
    let response = state
        .read(&principal, request, |mut worker, request| async move {
            worker.list_conversations(request).await
        })
        .await?
        .into_inner();
    Ok(Json(ListResponse {
        conversations: response
            .conversations
            .into_iter()
            .map(conversation)
            .collect(),
        next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
    }))
}

/// `GET /api/v1/conversations/{id}`
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "chat",
    params(("id" = String, Path, format = Uuid, description = "the conversation id")),
    responses(
        (status = 200, description = "the conversation with its messages, oldest first",
         body = GetResponse),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<GetResponse>> {
    let response = state
        .read(
            &principal,
            pb::GetConversationRequest { id },
            |mut worker, request| async move { worker.get_conversation(request).await },
        )
        .await?
        .into_inner();
    Ok(Json(GetResponse {
        conversation: response.conversation.map(conversation),
        messages: response.messages.into_iter().map(message).collect(),
    }))
}

/// `DELETE /api/v1/conversations/{id}`
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "chat",
    params(("id" = String, Path, format = Uuid, description = "the conversation id")),
    responses(
        (status = 204, description = "deleted with its messages"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .worker
        .clone()
        .delete_conversation(state.request(
            &principal,
            pb::DeleteConversationRequest { id },
            state.config.worker_timeout(),
        )?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    pub title: String,
}

/// `PATCH /api/v1/conversations/{id}` with `{"title"}`: the renamed conversation.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "chat", request_body = RenameBody,
    params(("id" = String, Path, format = Uuid, description = "the conversation id")),
    responses(
        (status = 200, description = "the renamed conversation", body = ConversationView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn rename(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameBody>,
) -> ApiResult<Json<ConversationView>> {
    let renamed = state
        .worker
        .clone()
        .rename_conversation(state.request(
            &principal,
            pb::RenameConversationRequest {
                id,
                title: body.title,
            },
            state.config.worker_timeout(),
        )?)
        .await?
        .into_inner();
    Ok(Json(conversation(renamed)))
}
