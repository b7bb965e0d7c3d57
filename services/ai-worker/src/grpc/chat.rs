//! The chat RPCs: ChatStream (producer task, relay, persistence of the exchange) and the
//! stored-conversation RPCs. `service.rs` delegates here.
//!
//! ChatStream spawns the answerer, which sends `ChatEvent`s into a bounded channel; a relay
//! forwards them to the client as they come and records what the client was sent. When the
//! client leaves, the relay stops at once and drops its receiver, so the answerer (watching
//! `Sender::closed`) returns and drops any upstream LLM request. The exchange is then stored
//! with its finish reason — `cancelled` and the part the client saw, if it left. The final
//! message is held back until the exchange is stored, so a client that saw `final` can read
//! the conversation back at once.

use std::sync::Arc;

use thinkbank_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use uuid::Uuid;

use super::convert;
use crate::{
    State, chat,
    chat::{ChatEvent, ChatSummary, FinishReason, conversations},
    error::{Result, WorkerError},
    search::{Filters, Hit, Mode},
    tenancy::Tenant,
};

pub type ChatResponses = ReceiverStream<Result<pb::ChatStreamResponse, Status>>;

/// A validated ChatStream request.
pub struct Ask {
    pub tenant: Tenant,
    /// Who asks: a new conversation belongs to it, and it may continue only its own.
    pub access: conversations::Access,
    pub question: String,
    pub history: Vec<chat::Turn>,
    pub conversation_id: Option<Uuid>,
    pub filters: Filters,
    pub top_k: usize,
    /// How sources are retrieved; `None` is the configured default.
    pub mode: Option<Mode>,
}

/// What the client was sent.
#[derive(Debug, Default)]
struct Record {
    sources: Vec<Hit>,
    answer: String,
    summary: Option<ChatSummary>,
    client_left: bool,
}

pub async fn chat_stream(state: Arc<State>, ask: Ask) -> Result<ChatResponses> {
    // A dead provider fails fast, before the stream opens (HTTP 503 at the gateway).
    if let Some(llm) = &state.llm
        && llm.is_unavailable()
    {
        crate::telemetry::METRICS.llm_request("circuit_open");
        crate::telemetry::METRICS.llm_circuit(true);
        return Err(WorkerError::Llm(crate::llm::LlmError::CircuitOpen));
    }
    let Ask {
        tenant,
        access,
        question,
        mut history,
        conversation_id,
        filters,
        top_k,
        mode,
    } = ask;
    let scope = Scope {
        filters,
        top_k,
        mode: mode.unwrap_or(state.answers.chat_retrieval_mode),
    };
    let conversation_id = match conversation_id {
        Some(id) => {
            if !history.is_empty() {
                return Err(WorkerError::InvalidArgument(
                    "history must be empty when conversation_id is set (the stored messages are the history)".into(),
                ));
            }
            history = conversations::history(&state.pool, &tenant, &access, id).await?;
            id
        }
        None => conversations::create(&state.pool, &tenant, &access, &question).await?,
    };

    let (events_tx, mut events_rx) = mpsc::channel::<ChatEvent>(16);
    let (out_tx, out_rx) = mpsc::channel::<Result<pb::ChatStreamResponse, Status>>(16);
    tokio::spawn(tracing::Instrument::in_current_span(async move {
        let relay_tx = out_tx.clone();
        let relay = async move {
            let mut record = Record::default();
            loop {
                let event = tokio::select! {
                    biased;
                    () = relay_tx.closed() => {
                        record.client_left = true;
                        break;
                    }
                    event = events_rx.recv() => event,
                };
                let Some(event) = event else { break };
                match &event {
                    ChatEvent::Sources(hits) => record.sources.clone_from(hits),
                    ChatEvent::Delta(text) => record.answer.push_str(text),
                    // Held back until the exchange is stored.
                    ChatEvent::Final(summary) => {
                        record.summary = Some(summary.clone());
                        continue;
                    }
                }
                let message = convert::chat_event(event, conversation_id);
                if relay_tx.send(Ok(message)).await.is_err() {
                    record.client_left = true;
                    break;
                }
            }
            record
        };
        let answer = tracing::Instrument::instrument(
            answer(&state, &tenant, &question, &history, scope, events_tx),
            tracing::info_span!("chat.answer", %conversation_id),
        );
        let (result, record) = tokio::join!(answer, relay);
        let exchange = exchange(question, &record, result.is_err());
        if let Err(error) =
            conversations::record(&state.pool, &tenant, conversation_id, &exchange).await
        {
            tracing::warn!(%conversation_id, %error, "cannot store the chat exchange");
        }
        let last = match (result, record.summary) {
            (Err(error), _) => Some(Err(error.into())),
            (Ok(()), Some(summary)) => Some(Ok(convert::chat_event(
                ChatEvent::Final(summary),
                conversation_id,
            ))),
            (Ok(()), None) => None,
        };
        if let Some(last) = last {
            let _ = out_tx.send(last).await;
        }
    }));
    Ok(ReceiverStream::new(out_rx))
}

async fn answer(
    state: &State,
    tenant: &Tenant,
    question: &str,
    history: &[chat::Turn],
    scope: Scope,
    events: mpsc::Sender<ChatEvent>,
) -> Result<()> {
    let Scope {
        filters,
        top_k,
        mode,
    } = scope;
    let retrieval = chat::retrieve::Settings {
        mode,
        config: &state.answers,
        ranking: &state.ranking,
    };
    match &state.llm {
        Some(llm) => {
            let request = chat::generative::Request {
                pool: &state.pool,
                embedder: &state.embedder,
                models: &state.models,
                llm,
                tenant,
                question,
                history,
                filters,
                top_k,
                retrieval,
            };
            chat::answer_generative(request, events).await
        }
        None => {
            let request = chat::extractive::Request {
                pool: &state.pool,
                embedder: &state.embedder,
                models: &state.models,
                tenant,
                question,
                history,
                filters,
                top_k,
                retrieval,
            };
            chat::answer_extractive(request, events).await
        }
    }
}

/// Where a chat's sources come from.
struct Scope {
    filters: Filters,
    top_k: usize,
    mode: Mode,
}

fn exchange(question: String, record: &Record, failed: bool) -> conversations::Exchange {
    let (finish_reason, citations, answer_mode, model) = match &record.summary {
        Some(s) => (
            s.finish_reason,
            s.citations.clone(),
            Some(s.mode),
            s.model.clone(),
        ),
        None => (
            if failed {
                FinishReason::Error
            } else if record.client_left {
                FinishReason::Cancelled
            } else {
                FinishReason::Error
            },
            Vec::new(),
            None,
            String::new(),
        ),
    };
    conversations::Exchange {
        question,
        answer: record.answer.clone(),
        sources: record.sources.clone(),
        citations,
        finish_reason,
        answer_mode,
        model,
    }
}

pub async fn list(
    state: &State,
    tenant: &Tenant,
    access: &conversations::Access,
    all_owners: bool,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    page_size: u32,
) -> Result<pb::ListConversationsResponse> {
    let limit = i64::from(page_size) + 1;
    let mut rows =
        conversations::list(&state.pool, tenant, access, all_owners, after, limit).await?;
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    let next_page_token = match rows.last() {
        Some(last) if more => super::service::page_token(last.updated_at, last.id),
        _ => String::new(),
    };
    Ok(pb::ListConversationsResponse {
        conversations: rows.iter().map(convert::conversation).collect(),
        next_page_token,
    })
}

pub async fn get(
    state: &State,
    tenant: &Tenant,
    access: &conversations::Access,
    id: Uuid,
) -> Result<pb::GetConversationResponse> {
    let purpose = conversations::Purpose::Inspect;
    let row = conversations::get(&state.pool, tenant, access, purpose, id).await?;
    let messages = conversations::messages(&state.pool, tenant, access, purpose, id).await?;
    Ok(pb::GetConversationResponse {
        conversation: Some(convert::conversation(&row)),
        messages: messages
            .into_iter()
            .map(convert::conversation_message)
            .collect(),
    })
}
