//! `POST /api/v1/chat`: a streamed, cited answer as Server-Sent Events.
//!
//! Each ChatStream message becomes exactly one SSE event, sent as it arrives: `sources`, then
//! `delta`s, then `final`; an upstream failure becomes `error`; the stream always ends with
//! `done`. Ids increase from 1. Dropping the connection drops the gRPC call, which cancels
//! the answer on the worker; so does `POST /api/v1/chat/{conversation_id}/stop`, after which
//! the stream ends with an `error` event (code `cancelled`) and `done`. A live chat belongs
//! to the principal that started it: anyone else is told no answer is in progress (404), so a
//! leaked conversation id neither stops another's answer nor reveals that it runs.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Extension,
    extract::{Path, State},
    http::StatusCode,
    response::{
        IntoResponse,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1::{self as pb, chat_stream_response::Event as ChatEvent};
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use super::ApiJson;
use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Internal, NotFound, PayloadTooLarge, Timeout, Unavailable, UnsupportedMediaType,
    },
    state::AppState,
    views::{self, HitView},
};

/// Reconnection delay suggested to EventSource clients.
const RETRY_HINT: Duration = Duration::from_secs(3);

/// Chat streams running on this gateway, by conversation id: the stop endpoint cancels them.
/// (Per gateway instance: behind several replicas, stop must reach the one holding the stream.)
#[derive(Debug, Clone, Default)]
pub struct ActiveChats(Arc<Mutex<ChatTable>>);

#[derive(Debug, Default)]
struct ChatTable {
    next: u64,
    streams: HashMap<String, (u64, CancellationToken, ChatOwner)>,
}

/// The principal that started a live chat (tenant and `Principal::owner_id`): only it may stop
/// or resume the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatOwner(String);

impl ChatOwner {
    pub fn of(principal: &Principal) -> Self {
        Self(format!("{}/{}", principal.tenant_id, principal.owner_id()))
    }
}

impl ActiveChats {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChatTable> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a stream; the registration ends when the guard is dropped.
    fn register(
        &self,
        conversation_id: String,
        stop: CancellationToken,
        owner: ChatOwner,
    ) -> Registration {
        let mut table = self.lock();
        table.next += 1;
        let serial = table.next;
        table
            .streams
            .insert(conversation_id.clone(), (serial, stop, owner));
        Registration {
            chats: self.clone(),
            conversation_id,
            serial,
        }
    }

    /// Cancels the stream of `conversation_id` if `owner` started it; false if none of its
    /// runs here.
    fn stop(&self, conversation_id: &str, owner: &ChatOwner) -> bool {
        let mut table = self.lock();
        match table.streams.get(conversation_id) {
            Some((_, _, started_by)) if started_by == owner => {
                if let Some((_, token, _)) = table.streams.remove(conversation_id) {
                    token.cancel();
                }
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Registration {
    chats: ActiveChats,
    conversation_id: String,
    serial: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.chats.lock();
        // Only our own entry: a newer stream of the same conversation may have replaced it.
        if table
            .streams
            .get(&self.conversation_id)
            .is_some_and(|(serial, _, _)| *serial == self.serial)
        {
            table.streams.remove(&self.conversation_id);
        }
    }
}

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
    if state
        .active_chats
        .stop(&conversation_id, &ChatOwner::of(&principal))
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            thinkbank_common::ErrorCode::NotFound,
            format!("no answer in progress for conversation {conversation_id}"),
        ))
    }
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

/// A retrieved source; the answer cites it as `[index]`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Source)]
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

/// Data of the `sources` event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ChatSources)]
pub struct SourcesData {
    sources: Vec<SourceView>,
    /// The stored conversation this exchange belongs to (for `stop`, resume and follow-ups).
    conversation_id: String,
}

/// Data of a `delta` event: the answer's next piece; concatenated, the deltas are the answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ChatDelta)]
pub struct DeltaData<'a> {
    text: &'a str,
}

/// Data of the `final` event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ChatFinal)]
pub struct FinalData {
    /// `stop`, `length`, `cancelled` or `error`.
    finish_reason: &'static str,
    answer_mode: &'static str,
    model: String,
    usage: Option<UsageData>,
    timings: Option<TimingsData>,
    citations: Vec<CitationData>,
    uncited_sources: Vec<u32>,
    history_messages_dropped: u32,
    /// The answer says nothing in the documents answers the question (no source passed the
    /// relevance floor, or no sentence was close enough to quote); no model was asked.
    abstained: bool,
    /// How strongly the sources bear on the question, as the relevance floor weighed it.
    evidence: Option<EvidenceData>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RetrievalEvidence)]
struct EvidenceData {
    /// Highest cosine similarity between the question and a source (0 without a vector leg).
    best_similarity: f32,
    /// Highest share of the question's keyword (IDF) weight one source holds, 0..1.
    best_keyword_coverage: f32,
    /// `best_similarity + coverage_weight × best_keyword_coverage`, compared with the floor.
    relevance: f32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ChatUsage)]
struct UsageData {
    prompt_tokens: u32,
    completion_tokens: u32,
    /// The provider reported no usage; these are thinkbank's counts.
    estimated: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ChatTimings)]
struct TimingsData {
    retrieval_ms: f64,
    time_to_first_token_ms: f64,
    tokens_per_second: f64,
    total_ms: f64,
}

/// A `[n]` of the answer: generated text checked against source n (`verified`), or the
/// source's own words quoted (`quoted`, extractive answers; nothing to verify).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Citation)]
pub struct CitationData {
    source_index: u32,
    verified: bool,
    fabricated: bool,
    support: f32,
    occurrences: u32,
    quoted: bool,
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
    let timeout = Duration::from_secs(state.config.chat_timeout_secs);
    // Validation errors arrive here, before any event, and become a plain JSON error.
    let stream = state
        .worker
        .clone()
        .chat_stream(state.request(&principal, message, timeout)?)
        .await?
        .into_inner();
    let heartbeat = Duration::from_secs(state.config.sse_heartbeat_secs);
    let owner = ChatOwner::of(&principal);
    let items = sse_items(stream, state.active_chats.clone(), owner.clone());
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        if state.config.sse_resume_window_secs == 0 {
            Box::pin(items.map(|item| Ok(item.event())))
        } else {
            let window = Duration::from_secs(state.config.sse_resume_window_secs);
            let hubs = state.chat_hubs.clone();
            let hub = super::chat_resume::Hub::start(items, window, hubs, owner);
            Box::pin(hub.subscribe(0).map(|item| Ok(item.event())))
        };
    let events = crate::edge::until_shutdown(events, state.shutdown.clone());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)))
}

/// Where the SSE stream is: relaying messages, owing the closing `done`, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Relaying,
    Closing,
    Over,
}

/// The relay's state between two events.
struct Relay {
    /// Dropped on stop, which cancels the gRPC call.
    stream: Option<Streaming<pb::ChatStreamResponse>>,
    last_id: u64,
    phase: Phase,
    stop: CancellationToken,
    chats: ActiveChats,
    /// Held while the stream runs, so the stop endpoint can find it.
    registration: Option<Registration>,
    owner: ChatOwner,
}

fn error_event(error: &ApiError, request_id: &str) -> (&'static str, String) {
    let mut body = serde_json::to_value(error.body()).unwrap_or_default();
    // The body is built outside the request task, so set the id here.
    body["error"]["request_id"] = request_id.into();
    ("error", body.to_string())
}

/// One SSE event before encoding: kept as text so a resume buffer can replay it.
#[derive(Debug, Clone)]
pub struct SseItem {
    pub id: u64,
    pub name: &'static str,
    pub data: String,
}

impl SseItem {
    /// The wire event; the first carries the reconnection hint.
    pub fn event(&self) -> Event {
        let event = Event::default()
            .event(self.name)
            .data(&self.data)
            .id(self.id.to_string());
        if self.id == 1 {
            event.retry(RETRY_HINT)
        } else {
            event
        }
    }
}

/// Maps the gRPC stream to SSE events, one for one, then `done`.
pub fn sse_items(
    stream: Streaming<pb::ChatStreamResponse>,
    chats: ActiveChats,
    owner: ChatOwner,
) -> impl Stream<Item = SseItem> + Send + 'static {
    let request_id = crate::error::current_request_id();
    let relay = Relay {
        stream: Some(stream),
        last_id: 0,
        phase: Phase::Relaying,
        stop: CancellationToken::new(),
        chats,
        registration: None,
        owner,
    };
    futures::stream::unfold(relay, move |mut relay| {
        let request_id = request_id.clone();
        async move {
            let done = || ("done", "{}".to_owned());
            let (event, next_phase) = match (relay.phase, relay.stream.as_mut()) {
                (Phase::Over, _) => return None,
                (Phase::Closing, _) | (Phase::Relaying, None) => (done(), Phase::Over),
                (Phase::Relaying, Some(stream)) => {
                    let next = tokio::select! {
                        biased;
                        () = relay.stop.cancelled() => None,
                        next = stream.message() => Some(next),
                    };
                    match next {
                        None => {
                            relay.stream = None;
                            let error = ApiError::new(
                                thinkbank_common::ErrorCode::Cancelled,
                                "the answer was stopped",
                            );
                            (error_event(&error, &request_id), Phase::Closing)
                        }
                        Some(Ok(Some(message))) => {
                            if let Some(ChatEvent::Sources(sources)) = &message.event
                                && !sources.conversation_id.is_empty()
                            {
                                relay.registration = Some(relay.chats.register(
                                    sources.conversation_id.clone(),
                                    relay.stop.clone(),
                                    relay.owner.clone(),
                                ));
                            }
                            (message_event(message), Phase::Relaying)
                        }
                        Some(Ok(None)) => (done(), Phase::Over),
                        Some(Err(status)) => (
                            error_event(&ApiError::from(status), &request_id),
                            Phase::Closing,
                        ),
                    }
                }
            };
            if next_phase != Phase::Relaying {
                relay.registration = None;
            }
            let id = relay.last_id + 1;
            relay.last_id = id;
            relay.phase = next_phase;
            let (name, data) = event;
            Some((SseItem { id, name, data }, relay))
        }
    })
}

fn message_event(message: pb::ChatStreamResponse) -> (&'static str, String) {
    let encoded = match message.event {
        Some(ChatEvent::Sources(sources)) => serde_json::to_string(&SourcesData {
            sources: sources.sources.into_iter().map(source_view).collect(),
            conversation_id: sources.conversation_id,
        })
        .map(|d| ("sources", d)),
        Some(ChatEvent::Delta(delta)) => {
            serde_json::to_string(&DeltaData { text: &delta.text }).map(|d| ("delta", d))
        }
        Some(ChatEvent::Final(summary)) => {
            serde_json::to_string(&final_data(summary)).map(|d| ("final", d))
        }
        None => Ok(("unknown", "{}".to_owned())),
    };
    encoded.unwrap_or_else(|_| {
        (
            "error",
            r#"{"error":{"code":"internal","message":"cannot encode event"}}"#.to_owned(),
        )
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
        quoted: c.quoted,
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
        history_messages_dropped: summary.history_messages_dropped,
        abstained: summary.abstained,
        evidence: summary.evidence.map(|e| EvidenceData {
            best_similarity: e.best_similarity,
            best_keyword_coverage: e.best_keyword_coverage,
            relevance: e.relevance,
        }),
    }
}
