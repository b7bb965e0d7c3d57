//! Answering questions from the knowledge base. The answerer produces a stream of
//! `ChatEvent`s — sources first, then text deltas, then one final summary — into a bounded
//! channel; a failed send means the caller went away, and the answerer stops at once.

pub mod extractive;
mod sentences;

pub use extractive::answer_extractive;

use crate::search::Hit;

/// Largest `top_k` for chat retrieval.
pub const MAX_SOURCES: usize = 20;
pub const DEFAULT_SOURCES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerMode {
    Extractive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Citation {
    pub source_index: u32,
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatSummary {
    pub finish_reason: FinishReason,
    pub mode: AnswerMode,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub retrieval_ms: f64,
    pub time_to_first_token_ms: f64,
    pub tokens_per_second: f64,
    pub total_ms: f64,
    pub citations: Vec<Citation>,
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
