//! Conversions between domain types and `thinkbank.v1` messages.

use prost_types::Timestamp;
use thinkbank_proto::v1 as pb;

use crate::{
    app::{Accepted, readiness::Check},
    assets::{AssetRow, Stage, Status},
    chat::{AnswerMode, ChatEvent, ChatSummary, Citation, FinishReason, conversations},
    search::{Explain, Hit},
};

pub fn asset(row: &AssetRow) -> pb::Asset {
    pb::Asset {
        id: row.id.to_string(),
        collection_id: row.collection_id.to_string(),
        filename: row.filename.clone(),
        media_type: row.media_type.clone(),
        size_bytes: row.size_bytes,
        sha256: row.sha256.clone(),
        status: status(row.status) as i32,
        stage: stage(row.stage) as i32,
        progress: row.progress,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        error: row.error.clone().unwrap_or_default(),
        chunk_count: u32::try_from(row.chunk_count).unwrap_or(0),
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
        external_id: row.external_id.clone().unwrap_or_default(),
        metadata: row
            .metadata
            .as_object()
            .map(thinkbank_proto::json::struct_from_json),
        embedding_model: row.embedding_model.clone(),
    }
}

pub fn accepted(accepted: &Accepted) -> pb::ProcessAssetResponse {
    pb::ProcessAssetResponse {
        asset: Some(asset(&accepted.asset)),
        deduplicated: accepted.deduplicated,
    }
}

pub fn dependency_check(check: Check) -> pb::DependencyCheck {
    pb::DependencyCheck {
        name: check.name.to_owned(),
        ok: check.error.is_none(),
        latency_ms: check.latency_ms,
        error: check.error.unwrap_or_default(),
        required: check.required,
    }
}

pub fn status(status: Status) -> pb::AssetStatus {
    match status {
        Status::Queued => pb::AssetStatus::Queued,
        Status::Processing => pb::AssetStatus::Processing,
        Status::Ready => pb::AssetStatus::Ready,
        Status::Failed => pb::AssetStatus::Failed,
        Status::Cancelled => pb::AssetStatus::Cancelled,
    }
}

pub fn status_from_pb(status: pb::AssetStatus) -> Option<Status> {
    match status {
        pb::AssetStatus::Unspecified => None,
        pb::AssetStatus::Queued => Some(Status::Queued),
        pb::AssetStatus::Processing => Some(Status::Processing),
        pb::AssetStatus::Ready => Some(Status::Ready),
        pb::AssetStatus::Failed => Some(Status::Failed),
        pb::AssetStatus::Cancelled => Some(Status::Cancelled),
    }
}

fn stage(stage: Stage) -> pb::IngestStage {
    match stage {
        Stage::Queued => pb::IngestStage::Queued,
        Stage::Reading => pb::IngestStage::Reading,
        Stage::Parsing => pb::IngestStage::Parsing,
        Stage::Chunking => pb::IngestStage::Chunking,
        Stage::Embedding => pb::IngestStage::Embedding,
        Stage::Indexing => pb::IngestStage::Indexing,
        Stage::Ready => pb::IngestStage::Ready,
        Stage::Failed => pb::IngestStage::Failed,
        Stage::Cancelled => pb::IngestStage::Cancelled,
    }
}

pub fn hit(hit: &Hit) -> pb::SearchHit {
    pb::SearchHit {
        chunk_id: hit.chunk_id.to_string(),
        asset_id: hit.asset_id.to_string(),
        collection_id: hit.collection_id.to_string(),
        filename: hit.filename.clone(),
        text: hit.text.clone(),
        // Scores are computed in f64 by PostgreSQL; f32 keeps the wire small.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "scores are small and need no f64"
        )]
        score: hit.score as f32,
        position: Some(pb::ChunkPosition {
            chunk_index: u32::try_from(hit.chunk_index).unwrap_or(0),
            char_start: u64::try_from(hit.char_start).unwrap_or(0),
            char_end: u64::try_from(hit.char_end).unwrap_or(0),
            headings: hit.headings.clone(),
            page: hit.page.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
        }),
        snippet: hit.snippet.clone().unwrap_or_default(),
        explain: hit.explain.as_ref().map(explain),
        media_type: hit.media_type.clone(),
    }
}

fn explain(explain: &Explain) -> pb::SearchExplain {
    let rank = |r: Option<usize>| r.and_then(|r| u32::try_from(r).ok()).unwrap_or(0);
    pb::SearchExplain {
        vector_rank: rank(explain.vector_rank),
        vector_distance: explain.vector_distance,
        keyword_rank: rank(explain.keyword_rank),
        keyword_score: explain.keyword_score,
        vector_contribution: explain.vector_contribution,
        keyword_contribution: explain.keyword_contribution,
        rerank_score: explain.rerank_score,
    }
}

fn sources(hits: &[Hit]) -> Vec<pb::Source> {
    hits.iter()
        .enumerate()
        .map(|(i, h)| pb::Source {
            index: u32::try_from(i + 1).unwrap_or(u32::MAX),
            hit: Some(hit(h)),
        })
        .collect()
}

pub fn chat_event(event: ChatEvent, conversation_id: uuid::Uuid) -> pb::ChatStreamResponse {
    use pb::chat_stream_response::Event;
    let event = match event {
        ChatEvent::Sources(hits) => Event::Sources(pb::ChatSources {
            sources: sources(&hits),
            conversation_id: conversation_id.to_string(),
        }),
        ChatEvent::Delta(text) => Event::Delta(pb::ChatDelta { text }),
        ChatEvent::Final(summary) => Event::Final(chat_final(summary)),
    };
    pb::ChatStreamResponse { event: Some(event) }
}

fn finish_reason(reason: FinishReason) -> pb::FinishReason {
    match reason {
        FinishReason::Stop => pb::FinishReason::Stop,
        FinishReason::Length => pb::FinishReason::Length,
        FinishReason::Cancelled => pb::FinishReason::Cancelled,
        FinishReason::Error => pb::FinishReason::Error,
    }
}

pub fn answer_mode(mode: AnswerMode) -> pb::AnswerMode {
    match mode {
        AnswerMode::Extractive => pb::AnswerMode::Extractive,
        AnswerMode::Generative => pb::AnswerMode::Generative,
    }
}

fn citation(c: &Citation) -> pb::Citation {
    pb::Citation {
        source_index: c.source_index,
        verified: c.verified,
        fabricated: c.fabricated,
        support: c.support,
        occurrences: c.occurrences,
        quoted: c.quoted,
    }
}

pub fn conversation(row: &conversations::ConversationRow) -> pb::Conversation {
    pb::Conversation {
        id: row.id.to_string(),
        title: row.title.clone(),
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
        message_count: u32::try_from(row.message_count).unwrap_or(0),
        owner: row.owner.clone().unwrap_or_default(),
    }
}

pub fn conversation_message(row: conversations::MessageRow) -> pb::ConversationMessage {
    let hits: Vec<Hit> = row.sources.0.into_iter().map(Hit::from).collect();
    pb::ConversationMessage {
        id: row.id.to_string(),
        role: match row.role {
            conversations::MessageRole::User => pb::ChatRole::User,
            conversations::MessageRole::Assistant => pb::ChatRole::Assistant,
        } as i32,
        content: row.content,
        sources: sources(&hits),
        citations: row
            .citations
            .0
            .into_iter()
            .map(|c| citation(&c.into()))
            .collect(),
        finish_reason: row
            .finish_reason
            .map_or(pb::FinishReason::Unspecified, finish_reason) as i32,
        answer_mode: row
            .answer_mode
            .map_or(pb::AnswerMode::Unspecified, answer_mode) as i32,
        model: row.model,
        created_at: Some(timestamp(row.created_at)),
        withheld: row.withheld,
    }
}

fn chat_final(summary: ChatSummary) -> pb::ChatFinal {
    pb::ChatFinal {
        finish_reason: finish_reason(summary.finish_reason) as i32,
        answer_mode: answer_mode(summary.mode) as i32,
        model: summary.model,
        usage: Some(pb::ChatUsage {
            prompt_tokens: summary.prompt_tokens,
            completion_tokens: summary.completion_tokens,
            estimated: summary.usage_estimated,
        }),
        timings: Some(pb::ChatTimings {
            retrieval_ms: summary.retrieval_ms,
            time_to_first_token_ms: summary.time_to_first_token_ms,
            tokens_per_second: summary.tokens_per_second,
            total_ms: summary.total_ms,
        }),
        citations: summary.citations.iter().map(citation).collect(),
        uncited_sources: summary.uncited_sources,
        history_messages_dropped: summary.history_dropped,
        abstained: summary.abstained,
        evidence: Some(pb::RetrievalEvidence {
            best_similarity: summary.evidence.best_similarity,
            best_keyword_coverage: summary.evidence.best_keyword_coverage,
            relevance: summary.evidence.relevance,
        }),
    }
}

pub fn timestamp(time: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
