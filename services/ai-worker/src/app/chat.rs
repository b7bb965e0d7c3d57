//! Asking through the application: the circuit check, the session rules, the answerer and
//! the persistence of the exchange.
//!
//! `ask` spawns the answerer, which sends `ChatEvent`s into a bounded channel; a relay
//! forwards them to the caller as they come and records what the caller was sent. When the
//! caller drops its receiver, the relay stops at once and drops the answerer's receiver, so
//! the answerer (watching `Sender::closed`) returns and drops any upstream LLM request. The
//! exchange is then stored with its finish reason — `cancelled` and the part the caller saw,
//! if it left. The final event is held back until the exchange is stored, so a caller that saw
//! `Final` can read the conversation back at once.

use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Caller, Worker};
use crate::{
    chat::{self, ChatEvent, ChatSummary, FinishReason, conversations},
    error::{Result, WorkerError},
    search::{Filters, Hit, Mode},
    tenancy::Tenant,
};

/// A question to answer.
#[derive(Debug, Clone)]
pub struct Ask {
    pub question: String,
    /// Earlier turns sent by the caller; must be empty when `conversation_id` is set.
    pub history: Vec<chat::Turn>,
    /// Continue this stored conversation; `None` starts a new one owned by the caller.
    pub conversation_id: Option<Uuid>,
    pub filters: Filters,
    /// Sources to retrieve; 0: the default.
    pub top_k: u32,
    /// How sources are retrieved; `None` is the configured default.
    pub mode: Option<Mode>,
}

/// An answer on its way: the conversation it is stored in, and its events as they come (an
/// error ends the stream). Dropping `events` cancels the answer.
#[derive(Debug)]
pub struct AskStream {
    pub conversation_id: Uuid,
    pub events: mpsc::Receiver<Result<ChatEvent>>,
}

/// How answers are made here.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatInfo {
    pub answer_mode: chat::AnswerMode,
    /// The LLM's model, or the extractive answerer's name.
    pub model: String,
    /// The LLM's circuit is open: answers fail fast until it closes.
    pub llm_unavailable: bool,
}

/// What the caller was sent.
#[derive(Debug, Default)]
struct Record {
    sources: Vec<Hit>,
    answer: String,
    summary: Option<ChatSummary>,
    client_left: bool,
}

/// Where a chat's sources come from.
struct Scope {
    filters: Filters,
    top_k: usize,
    mode: Mode,
}

impl Worker {
    pub fn chat_info(&self) -> ChatInfo {
        match &self.llm {
            Some(llm) => ChatInfo {
                answer_mode: chat::AnswerMode::Generative,
                model: llm.model().to_owned(),
                llm_unavailable: llm.is_unavailable(),
            },
            None => ChatInfo {
                answer_mode: chat::AnswerMode::Extractive,
                model: chat::extractive::MODEL_NAME.into(),
                llm_unavailable: false,
            },
        }
    }

    /// Answers `ask` for `caller`, storing the exchange in its conversation.
    pub async fn ask(self: &Arc<Self>, caller: &Caller, ask: Ask) -> Result<AskStream> {
        super::require_text("question", &ask.question)?;
        let top_k = super::bounded("top_k", ask.top_k, chat::DEFAULT_SOURCES, chat::MAX_SOURCES)?;
        // A dead provider fails fast, before the stream opens (HTTP 503 at the gateway).
        if let Some(llm) = &self.llm
            && llm.is_unavailable()
        {
            crate::telemetry::METRICS.llm_request("circuit_open");
            crate::telemetry::METRICS.llm_circuit(true);
            return Err(WorkerError::Llm(crate::llm::LlmError::CircuitOpen));
        }
        let Caller { tenant, access } = caller.clone();
        let Ask {
            question,
            mut history,
            conversation_id,
            filters,
            top_k: _,
            mode,
        } = ask;
        let scope = Scope {
            filters,
            top_k,
            mode: mode.unwrap_or(self.answers.chat_retrieval_mode),
        };
        let conversation_id = match conversation_id {
            Some(id) => {
                if !history.is_empty() {
                    return Err(WorkerError::InvalidArgument(
                        "history must be empty when conversation_id is set (the stored messages are the history)".into(),
                    ));
                }
                history = conversations::history(&self.pool, &tenant, &access, id).await?;
                id
            }
            None => conversations::create(&self.pool, &tenant, &access, &question).await?,
        };

        let (events_tx, mut events_rx) = mpsc::channel::<ChatEvent>(16);
        let (out_tx, out_rx) = mpsc::channel::<Result<ChatEvent>>(16);
        let worker = Arc::clone(self);
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
                    if relay_tx.send(Ok(event)).await.is_err() {
                        record.client_left = true;
                        break;
                    }
                }
                record
            };
            let answer = tracing::Instrument::instrument(
                worker.answer(&tenant, &question, &history, scope, events_tx),
                tracing::info_span!("chat.answer", %conversation_id),
            );
            let (result, record) = tokio::join!(answer, relay);
            let exchange = exchange(question, &record, result.is_err());
            if let Err(error) =
                conversations::record(&worker.pool, &tenant, conversation_id, &exchange).await
            {
                tracing::warn!(%conversation_id, %error, "cannot store the chat exchange");
            }
            let last = match (result, record.summary) {
                (Err(error), _) => Some(Err(error)),
                (Ok(()), Some(summary)) => Some(Ok(ChatEvent::Final(summary))),
                (Ok(()), None) => None,
            };
            if let Some(last) = last {
                let _ = out_tx.send(last).await;
            }
        }));
        Ok(AskStream {
            conversation_id,
            events: out_rx,
        })
    }

    async fn answer(
        &self,
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
            config: &self.answers,
            ranking: &self.ranking,
        };
        let request = chat::Request {
            pool: &self.pool,
            embedder: &self.embedder,
            models: &self.models,
            tenant,
            question,
            history,
            filters,
            top_k,
            retrieval,
        };
        match &self.llm {
            Some(llm) => chat::answer_generative(request, llm, events).await,
            None => chat::answer_extractive(request, events).await,
        }
    }
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
