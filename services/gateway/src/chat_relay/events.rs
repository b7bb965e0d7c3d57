//! The chat stream's SSE events: their data types (the documented `ChatStreamEvent` schemas)
//! and the conversion of each worker message into exactly one event.

use std::time::Duration;

use axum::response::sse::Event;
use serde::Serialize;
use thinkbank_proto::v1::{self as pb, chat_stream_response::Event as ChatEvent};

use crate::views::{self, HitView};

/// Reconnection delay suggested to EventSource clients.
const RETRY_HINT: Duration = Duration::from_secs(3);
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

pub(super) fn message_event(message: pb::ChatStreamResponse) -> (&'static str, String) {
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
