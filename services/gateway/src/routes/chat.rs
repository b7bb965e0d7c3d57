//! `POST /api/v1/chat`: a streamed, cited answer as Server-Sent Events.
//!
//! Each ChatStream message becomes exactly one SSE event, sent as it arrives: `sources`, then
//! `delta`s, then `final`; an upstream failure becomes `error`; the stream always ends with
//! `done`. Ids increase from 1. Dropping the connection drops the gRPC call, which cancels
//! the answer on the worker.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::{
        IntoResponse,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1::{self as pb, chat_stream_response::Event as ChatEvent};
use tonic::Streaming;

use super::ApiJson;
use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
    views::{self, HitView},
};

/// Reconnection delay suggested to EventSource clients.
const RETRY_HINT: Duration = Duration::from_secs(3);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub question: String,
    #[serde(default)]
    pub history: Vec<HistoryMessage>,
    #[serde(default)]
    pub collection_ids: Vec<String>,
    /// Sources to retrieve, 1..=20 (default 5).
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Continue this stored conversation (then `history` must be empty).
    #[serde(default)]
    pub conversation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryMessage {
    /// "user" or "assistant".
    pub role: String,
    pub content: String,
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    index: u32,
    hit: Option<HitView>,
}

pub fn source_view(source: pb::Source) -> SourceView {
    SourceView {
        index: source.index,
        hit: source.hit.map(views::hit),
    }
}

#[derive(Debug, Serialize)]
struct SourcesData {
    sources: Vec<SourceView>,
    conversation_id: String,
}

#[derive(Debug, Serialize)]
struct DeltaData<'a> {
    text: &'a str,
}

#[derive(Debug, Serialize)]
struct FinalData {
    finish_reason: &'static str,
    answer_mode: &'static str,
    model: String,
    usage: Option<UsageData>,
    timings: Option<TimingsData>,
    citations: Vec<CitationData>,
    uncited_sources: Vec<u32>,
}

#[derive(Debug, Serialize)]
struct UsageData {
    prompt_tokens: u32,
    completion_tokens: u32,
    /// The provider reported no usage; these are thinkbank's counts.
    estimated: bool,
}

#[derive(Debug, Serialize)]
struct TimingsData {
    retrieval_ms: f64,
    time_to_first_token_ms: f64,
    tokens_per_second: f64,
    total_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct CitationData {
    source_index: u32,
    verified: bool,
    fabricated: bool,
    support: f32,
    occurrences: u32,
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

pub async fn chat(
    State(state): State<AppState>,
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
    };
    let timeout = Duration::from_secs(state.config.chat_timeout_secs);
    // Validation errors arrive here, before any event, and become a plain JSON error.
    let stream = state
        .worker
        .clone()
        .chat_stream(state.request(message, timeout))
        .await?
        .into_inner();
    let heartbeat = Duration::from_secs(state.config.sse_heartbeat_secs);
    let events = sse_events(stream).take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)))
}

/// Where the SSE stream is: relaying messages, owing the closing `done`, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Relaying,
    Closing,
    Over,
}

/// Maps the gRPC stream to SSE events, one for one, then `done`.
fn sse_events(
    stream: Streaming<pb::ChatStreamResponse>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let request_id = crate::error::current_request_id();
    futures::stream::unfold(
        (stream, 0u64, Phase::Relaying),
        move |(mut stream, last_id, phase)| {
            let request_id = request_id.clone();
            async move {
                let done = || Event::default().event("done").data("{}");
                let (event, next_phase) = match phase {
                    Phase::Over => return None,
                    Phase::Closing => (done(), Phase::Over),
                    Phase::Relaying => match stream.message().await {
                        Ok(Some(message)) => (message_event(message), Phase::Relaying),
                        Ok(None) => (done(), Phase::Over),
                        Err(status) => {
                            let error = ApiError::from(status);
                            let mut body = serde_json::to_value(error.body()).unwrap_or_default();
                            // The body is built outside the request task, so set the id here.
                            body["error"]["request_id"] = request_id.into();
                            (
                                Event::default().event("error").data(body.to_string()),
                                Phase::Closing,
                            )
                        }
                    },
                };
                let id = last_id + 1;
                let mut event = event.id(id.to_string());
                if id == 1 {
                    event = event.retry(RETRY_HINT);
                }
                Some((Ok(event), (stream, id, next_phase)))
            }
        },
    )
}

fn message_event(message: pb::ChatStreamResponse) -> Event {
    let event = match message.event {
        Some(ChatEvent::Sources(sources)) => {
            Event::default().event("sources").json_data(SourcesData {
                sources: sources.sources.into_iter().map(source_view).collect(),
                conversation_id: sources.conversation_id,
            })
        }
        Some(ChatEvent::Delta(delta)) => Event::default()
            .event("delta")
            .json_data(DeltaData { text: &delta.text }),
        Some(ChatEvent::Final(summary)) => Event::default()
            .event("final")
            .json_data(final_data(summary)),
        None => Ok(Event::default().event("unknown").data("{}")),
    };
    event.unwrap_or_else(|_| {
        Event::default()
            .event("error")
            .data(r#"{"error":{"code":"internal","message":"cannot encode event"}}"#)
    })
}

pub fn finish_reason_name(reason: pb::FinishReason) -> &'static str {
    match reason {
        pb::FinishReason::Unspecified => "unspecified",
        pb::FinishReason::Stop => "stop",
        pb::FinishReason::Length => "length",
        pb::FinishReason::Cancelled => "cancelled",
        pb::FinishReason::Error => "error",
    }
}

pub fn answer_mode_name(mode: pb::AnswerMode) -> &'static str {
    match mode {
        pb::AnswerMode::Unspecified => "unspecified",
        pb::AnswerMode::Extractive => "extractive",
        pb::AnswerMode::Generative => "generative",
    }
}

pub fn citation_data(c: pb::Citation) -> CitationData {
    CitationData {
        source_index: c.source_index,
        verified: c.verified,
        fabricated: c.fabricated,
        support: c.support,
        occurrences: c.occurrences,
    }
}

fn final_data(summary: pb::ChatFinal) -> FinalData {
    FinalData {
        finish_reason: finish_reason_name(summary.finish_reason()),
        answer_mode: answer_mode_name(summary.answer_mode()),
        model: summary.model,
        usage: summary.usage.map(|u| UsageData {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            estimated: u.estimated,
        }),
        timings: summary.timings.map(|t| TimingsData {
            retrieval_ms: t.retrieval_ms,
            time_to_first_token_ms: t.time_to_first_token_ms,
            tokens_per_second: t.tokens_per_second,
            total_ms: t.total_ms,
        }),
        citations: summary.citations.into_iter().map(citation_data).collect(),
        uncited_sources: summary.uncited_sources,
    }
}
