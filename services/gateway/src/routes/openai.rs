//! The OpenAI-compatible chat façade: `POST /v1/chat/completions` (streamed and not) and
//! `GET /v1/models`, so OpenAI SDKs and chat UIs can use thinkbank as the model `thinkbank`.
//!
//! The last user message is the question, earlier user/assistant messages are the history
//! (system messages are ignored: the worker writes its own grounded prompt). Answers cite
//! `[n]` in the content, end with a "Sources" footer naming the cited documents, and carry the
//! sources and verified citations in extra fields (`thinkbank_sources`, `thinkbank_citations`)
//! that SDKs keep as extra attributes. Optional extra body fields: `collection_ids`, `top_k`.

use std::{convert::Infallible, time::Duration};

use axum::{
    Extension, Json,
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use thinkbank_proto::v1::{self as pb, chat_stream_response::Event as ChatEvent};
use tonic::Streaming;

use super::ApiJson;
use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Internal, NotFound, PayloadTooLarge, Timeout, Unavailable, UnsupportedMediaType,
    },
    state::AppState,
};

/// The one model this façade serves.
pub const MODEL: &str = "thinkbank";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CompletionRequest {
    /// `thinkbank` (or empty); any other model is a 404.
    #[serde(default)]
    pub model: Option<String>,
    /// The last must be a user message: the question; earlier user/assistant turns are the
    /// history; `system`, `developer` and `tool` messages are ignored.
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub collection_ids: Vec<String>,
    #[serde(default)]
    pub top_k: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InputMessage {
    /// `user`, `assistant`, `system`, `developer` or `tool`.
    #[schema(pattern = "^(user|assistant|system|developer|tool)$")]
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content: a string, or a list of parts of which the text parts count.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = MessageContent)]
pub enum Content {
    Text(String),
    /// Content parts; the `text` of each counts.
    Parts(Vec<Value>),
}

impl Content {
    fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// `GET /v1/models`
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "the one model, `thinkbank`",
               body = ref("#/components/schemas/ModelList"))))]
pub async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "thinkbank"}],
    }))
}

/// Turns the OpenAI request into a ChatStream request.
fn chat_request(body: CompletionRequest) -> Result<pb::ChatStreamRequest, ApiError> {
    if let Some(model) = body
        .model
        .as_deref()
        .filter(|m| !m.is_empty() && *m != MODEL)
    {
        return Err(ApiError::new(
            thinkbank_common::ErrorCode::NotFound,
            format!("model '{model}' not found; available: {MODEL}"),
        ));
    }
    let mut turns: Vec<pb::ChatMessage> = Vec::new();
    for message in body.messages {
        let role = match message.role.as_str() {
            "user" => pb::ChatRole::User,
            "assistant" => pb::ChatRole::Assistant,
            "system" | "developer" | "tool" => continue,
            other => return Err(ApiError::invalid(format!("unknown message role '{other}'"))),
        };
        turns.push(pb::ChatMessage {
            role: role as i32,
            content: message.content.map(|c| c.text()).unwrap_or_default(),
        });
    }
    let question = match turns.pop() {
        Some(last) if last.role == pb::ChatRole::User as i32 => last.content,
        _ => {
            return Err(ApiError::invalid(
                "messages must end with a user message (the question)",
            ));
        }
    };
    Ok(pb::ChatStreamRequest {
        question,
        history: turns,
        collection_ids: body.collection_ids,
        top_k: body.top_k.unwrap_or(0),
        // OpenAI clients send the whole history each time: nothing to continue.
        conversation_id: String::new(),
        retrieval_mode: pb::SearchMode::Unspecified as i32,
    })
}

/// `POST /v1/chat/completions`
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "the answer: one `chat.completion`, or with `stream: true` \
                                      Server-Sent Events of `chat.completion.chunk`s ending in \
                                      `[DONE]`",
         content(
             (ref("#/components/schemas/ChatCompletion") = "application/json"),
             (ref("#/components/schemas/ChatCompletionStreamEvent") = "text/event-stream"),
         )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn completions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CompletionRequest>,
) -> ApiResult<Response> {
    let stream_mode = body.stream.unwrap_or(false);
    let include_usage = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let message = chat_request(body)?;
    let timeout = Duration::from_secs(state.config.chat_timeout_secs);
    let stream = state
        .worker
        .clone()
        .chat_stream(state.request(&principal, message, timeout)?)
        .await?
        .into_inner();
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    if stream_mode {
        let heartbeat = Duration::from_secs(state.config.sse_heartbeat_secs);
        // A shutdown ends the stream the way OpenAI reports a failure inside one.
        let farewell = data(&json!({"error": {
            "message": "the gateway is shutting down; retry the request",
            "type": "server_error",
            "code": thinkbank_common::ErrorCode::Unavailable.as_str(),
            "param": null,
        }}));
        let events = crate::edge::end_on_shutdown(
            chunks(stream, id, include_usage),
            state.shutdown.clone(),
            vec![farewell],
        );
        Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(heartbeat))
            .into_response())
    } else {
        Ok(Json(complete(stream, id).await?).into_response())
    }
}

/// What the stream told us, for the footer and the extra fields.
#[derive(Debug, Default)]
struct Answer {
    sources: Vec<pb::Source>,
    content: String,
    summary: Option<pb::ChatFinal>,
}

fn finish_reason(summary: Option<&pb::ChatFinal>) -> &'static str {
    match summary.map(pb::ChatFinal::finish_reason) {
        Some(pb::FinishReason::Length) => "length",
        _ => "stop",
    }
}

fn sources_json(sources: &[pb::Source]) -> Value {
    Value::Array(
        sources
            .iter()
            .map(|s| {
                let hit = s.hit.clone().unwrap_or_default();
                json!({"index": s.index, "filename": hit.filename, "asset_id": hit.asset_id,
                       "chunk_id": hit.chunk_id, "score": hit.score, "text": hit.text})
            })
            .collect(),
    )
}

fn citations_json(summary: Option<&pb::ChatFinal>) -> Value {
    Value::Array(
        summary
            .map(|s| s.citations.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                json!({"source_index": c.source_index, "verified": c.verified,
                       "fabricated": c.fabricated, "support": c.support, "quoted": c.quoted})
            })
            .collect(),
    )
}

/// "Sources" footer naming each cited, existing source (quoted and unverified ones marked).
fn footer(sources: &[pb::Source], summary: Option<&pb::ChatFinal>) -> String {
    let Some(summary) = summary else {
        return String::new();
    };
    let lines: Vec<String> = summary
        .citations
        .iter()
        .filter(|c| !c.fabricated)
        .filter_map(|c| {
            let source = sources.iter().find(|s| s.index == c.source_index)?;
            let filename = source.hit.as_ref().map_or("", |h| h.filename.as_str());
            let mark = match (c.verified, c.quoted) {
                (true, _) => "",
                (false, true) => " (quoted)",
                (false, false) => " (not verified)",
            };
            Some(format!("[{}] {filename}{mark}", c.source_index))
        })
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n\nSources:\n{}", lines.join("\n"))
    }
}

fn usage_json(summary: Option<&pb::ChatFinal>) -> Value {
    let usage = summary.and_then(|s| s.usage).unwrap_or_default();
    json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "total_tokens": usage.prompt_tokens + usage.completion_tokens})
}

/// Non-streamed: the whole answer as one `chat.completion`.
async fn complete(mut stream: Streaming<pb::ChatStreamResponse>, id: String) -> ApiResult<Value> {
    let mut answer = Answer::default();
    while let Some(message) = stream.message().await? {
        match message.event {
            Some(ChatEvent::Sources(s)) => answer.sources = s.sources,
            Some(ChatEvent::Delta(d)) => answer.content.push_str(&d.text),
            Some(ChatEvent::Final(f)) => answer.summary = Some(f),
            None => {}
        }
    }
    let summary = answer.summary.as_ref();
    let content = format!("{}{}", answer.content, footer(&answer.sources, summary));
    Ok(json!({
        "id": id, "object": "chat.completion", "created": now(), "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason(summary), "logprobs": null}],
        "usage": usage_json(summary),
        "thinkbank_sources": sources_json(&answer.sources),
        "thinkbank_citations": citations_json(summary),
    }))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn chunk(id: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": now(), "model": MODEL,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

struct Relay {
    stream: Streaming<pb::ChatStreamResponse>,
    id: String,
    include_usage: bool,
    sources: Vec<pb::Source>,
    pending: std::collections::VecDeque<Event>,
    over: bool,
}

/// Streamed: one `chat.completion.chunk` per worker message, as it arrives, then `[DONE]`.
fn chunks(
    stream: Streaming<pb::ChatStreamResponse>,
    id: String,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let relay = Relay {
        stream,
        id,
        include_usage,
        sources: Vec::new(),
        pending: std::collections::VecDeque::new(),
        over: false,
    };
    futures::stream::unfold(relay, |mut relay| async move {
        loop {
            if let Some(event) = relay.pending.pop_front() {
                return Some((Ok(event), relay));
            }
            if relay.over {
                return None;
            }
            relay.next_events().await;
        }
    })
}

impl Relay {
    async fn next_events(&mut self) {
        let id = self.id.clone();
        match self.stream.message().await {
            Ok(Some(message)) => match message.event {
                Some(ChatEvent::Sources(s)) => {
                    let mut first = chunk(&id, json!({"role": "assistant", "content": ""}), None);
                    first["thinkbank_sources"] = sources_json(&s.sources);
                    self.sources = s.sources;
                    self.pending.push_back(data(&first));
                }
                Some(ChatEvent::Delta(d)) => {
                    self.pending
                        .push_back(data(&chunk(&id, json!({"content": d.text}), None)));
                }
                Some(ChatEvent::Final(f)) => {
                    let footer = footer(&self.sources, Some(&f));
                    if !footer.is_empty() {
                        self.pending
                            .push_back(data(&chunk(&id, json!({"content": footer}), None)));
                    }
                    let mut last = chunk(&id, json!({}), Some(finish_reason(Some(&f))));
                    last["thinkbank_citations"] = citations_json(Some(&f));
                    self.pending.push_back(data(&last));
                    if self.include_usage {
                        let mut usage = chunk(&id, json!({}), None);
                        usage["choices"] = json!([]);
                        usage["usage"] = usage_json(Some(&f));
                        self.pending.push_back(data(&usage));
                    }
                }
                None => {}
            },
            Ok(None) => {
                self.pending.push_back(Event::default().data("[DONE]"));
                self.over = true;
            }
            Err(status) => {
                // OpenAI reports a failure inside a stream as a data line with an `error`.
                let error = ApiError::from(status);
                let body = serde_json::to_value(error.body()).unwrap_or_default();
                let message = body["error"]["message"].clone();
                let code = body["error"]["code"].clone();
                self.pending.push_back(data(&json!({"error": {
                    "message": message, "type": "server_error", "code": code, "param": null,
                }})));
                self.over = true;
            }
        }
    }
}
