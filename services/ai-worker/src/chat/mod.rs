//! Answering questions from the knowledge base. The answerer produces a stream of
//! `ChatEvent`s — sources first, then text deltas, then one final summary — into a bounded
//! channel; a failed send means the caller went away, and the answerer stops at once.

pub mod citations;
pub mod conversations;
pub mod extractive;
pub mod generative;
mod prompt;
pub mod relevance;
pub mod retrieve;
mod rewrite;
mod sentences;

pub use extractive::{Request, answer_extractive};
pub use generative::answer_generative;
pub use relevance::AnswerConfig;
pub use retrieve::retrieve;

use crate::{
    embed::LocalEmbedder,
    error::{Result, WorkerError},
    search::Hit,
    stored::text_enum,
};

/// Embeds `texts` with the in-process model on a blocking thread, in order: the extractive
/// answerer's candidate sentences, keyword-only chat's sources.
async fn embed_locally(model: &LocalEmbedder, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
    let model = model.clone();
    let vectors = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        model.embed_blocking(&refs)
    })
    .await
    .map_err(|e| WorkerError::Internal(format!("embedding task failed: {e}")))?
    .map_err(WorkerError::Embedding)?;
    Ok(vectors.into_iter().map(|v| v.vector).collect())
}

/// Largest `top_k` for chat retrieval.
pub const MAX_SOURCES: usize = 20;
pub const DEFAULT_SOURCES: usize = 5;

text_enum! {
    /// Why an answer ended; stored with each assistant message.
    pub enum FinishReason("finish reason") {
        Stop = "stop", Length = "length", Cancelled = "cancelled", Error = "error",
    }
}

text_enum! {
    /// How an answer was made; stored with each assistant message.
    pub enum AnswerMode("answer mode") {
        Extractive = "extractive",
        Generative = "generative",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Citation {
    pub source_index: u32,
    pub verified: bool,
    /// The number names no source.
    pub fabricated: bool,
    /// Lowest share of content words found in the source over the citing sentences.
    pub support: f32,
    pub occurrences: u32,
    /// The cited text is the source's own words (extractive answers): nothing to verify.
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatSummary {
    pub finish_reason: FinishReason,
    pub mode: AnswerMode,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Usage was counted here because the provider reported none.
    pub usage_estimated: bool,
    pub retrieval_ms: f64,
    pub time_to_first_token_ms: f64,
    pub tokens_per_second: f64,
    pub total_ms: f64,
    pub citations: Vec<Citation>,
    /// 1-based indexes of the sources the answer never cited.
    pub uncited_sources: Vec<u32>,
    /// History turns left out of the prompt to fit its token budget.
    pub history_dropped: u32,
    /// The answer says nothing in the documents answers the question.
    pub abstained: bool,
    pub evidence: relevance::Evidence,
}

#[derive(Debug, Clone)]
pub enum ChatEvent {
    /// Numbered 1.. in order.
    Sources(Vec<Hit>),
    Delta(String),
    Final(ChatSummary),
}

/// One earlier turn of the conversation.
#[derive(Debug, Clone)]
pub struct Turn {
    pub from_user: bool,
    pub content: String,
}
