//! The answerer used when no LLM is configured: it quotes the sentences of the retrieved
//! sources that are most similar to the question, each followed by its `[n]` citation, and
//! says plainly that it found nothing when the sources fall below the relevance floor or no
//! sentence is close enough to the question. Quoted sentences are verbatim, so their
//! citations are marked `quoted`, not `verified`: nothing was generated to check.

use std::time::Instant;

use tokio::sync::mpsc;

use super::{
    AnswerMode, ChatEvent, ChatSummary, FinishReason, Turn, citations, retrieve, sentences,
};
use crate::{
    embed::{LocalEmbedder, Registry, cosine},
    error::Result,
    search::{self, Filters},
    tenancy::Tenant,
};

/// Sentences quoted in an answer.
const MAX_QUOTES: usize = 3;
/// Candidate sentences considered (embedding them is the main cost).
const MAX_CANDIDATES: usize = 64;
pub const MODEL_NAME: &str = "extractive";
pub const NOTHING_FOUND: &str =
    "I could not find anything about this in your documents, so I cannot answer it.";

/// What either answerer needs: where to retrieve from, for whom, and the question in its
/// conversation. The generative answerer takes the LLM beside it.
pub struct Request<'a> {
    pub pool: &'a sqlx::PgPool,
    pub embedder: &'a LocalEmbedder,
    pub models: &'a Registry,
    pub tenant: &'a Tenant,
    pub question: &'a str,
    pub history: &'a [Turn],
    pub filters: Filters,
    pub top_k: usize,
    pub retrieval: retrieve::Settings<'a>,
}

/// Streams an extractive answer into `events`. Returns early (without error) when the
/// receiver is gone. Errors before the first event are returned to the caller.
pub async fn answer_extractive(
    request: Request<'_>,
    events: mpsc::Sender<ChatEvent>,
) -> Result<()> {
    let started = Instant::now();
    let embedder = request.embedder.clone();
    let retrieved = super::retrieve(
        request.pool,
        request.models,
        request.tenant,
        retrieve::retrieval_query(request.question, request.history),
        &request.filters,
        request.top_k,
        request.retrieval,
    )
    .await?;
    let retrieval_ms = ms(started);
    let hits = retrieved.hits;

    if events.send(ChatEvent::Sources(hits.clone())).await.is_err() {
        return Ok(());
    }

    let config = request.retrieval.config;
    let quotes = if hits.is_empty() || !retrieved.evidence.passes(config) {
        Vec::new()
    } else {
        let floor = config.chat_min_sentence_similarity;
        pick_quotes(&embedder, &retrieved.query_vector, &hits, floor).await?
    };

    let mut pieces: Vec<String> = Vec::new();
    if quotes.is_empty() {
        pieces.extend(words(NOTHING_FOUND));
    }
    for (i, quote) in quotes.iter().enumerate() {
        let number = u32::try_from(quote.source + 1).unwrap_or(u32::MAX);
        if i > 0 {
            pieces.push(" ".into());
        }
        pieces.extend(words(&quote.text));
        pieces.push(format!(" [{number}]"));
    }
    // Quotes are verbatim: their citations say so instead of claiming a check. Running the
    // same parser keeps both modes reporting citations (numbers, uncited sources) alike.
    let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    let mut verification = citations::verify(&pieces.concat(), &texts);
    for citation in &mut verification.citations {
        citation.quoted = !citation.fabricated;
        citation.verified = false;
    }

    let mut first_token_ms = None;
    let generation_started = Instant::now();
    let mut sent = 0u32;
    for piece in pieces {
        if events.send(ChatEvent::Delta(piece)).await.is_err() {
            tracing::info!(sent, "chat caller went away; stopping");
            return Ok(());
        }
        first_token_ms.get_or_insert_with(|| ms(started));
        sent += 1;
    }
    let generation_secs = generation_started.elapsed().as_secs_f64().max(1e-6);
    let summary = ChatSummary {
        finish_reason: FinishReason::Stop,
        mode: AnswerMode::Extractive,
        model: MODEL_NAME.into(),
        prompt_tokens: u32::try_from(embedder.count_tokens(request.question)).unwrap_or(u32::MAX),
        completion_tokens: sent,
        usage_estimated: true,
        retrieval_ms,
        time_to_first_token_ms: first_token_ms.unwrap_or(0.0),
        tokens_per_second: f64::from(sent) / generation_secs,
        total_ms: ms(started),
        citations: verification.citations,
        uncited_sources: verification.uncited,
        // Only the previous user turn is used, as retrieval context.
        history_dropped: 0,
        abstained: quotes.is_empty(),
        evidence: retrieved.evidence,
    };
    let _ = events.send(ChatEvent::Final(summary)).await;
    Ok(())
}

/// The sentences most similar to the question, at least `floor` (cosine) each, in reading
/// order (by source, then position); none when no sentence reaches the floor. A sentence that
/// several sources share is considered once.
async fn pick_quotes(
    embedder: &LocalEmbedder,
    query: &[f32],
    hits: &[search::Hit],
    floor: f32,
) -> Result<Vec<sentences::Sentence>> {
    let mut seen = std::collections::HashSet::new();
    let candidates: Vec<sentences::Sentence> = hits
        .iter()
        .enumerate()
        .flat_map(|(i, hit)| sentences::split(i, &hit.text))
        .filter(|s| seen.insert(s.text.to_lowercase()))
        .take(MAX_CANDIDATES)
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<String> = candidates.iter().map(|s| s.text.clone()).collect();
    let vectors = super::embed_locally(embedder, texts).await?;
    let mut scored: Vec<(f32, sentences::Sentence)> = vectors
        .iter()
        .map(|v| cosine(query, v))
        .zip(candidates)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut chosen: Vec<sentences::Sentence> = scored
        .iter()
        .filter(|(score, _)| *score >= floor)
        .take(MAX_QUOTES)
        .map(|(_, s)| s.clone())
        .collect();
    chosen.sort_by_key(|s| (s.source, s.position));
    Ok(chosen)
}

/// Splits text into word deltas that concatenate back to the words joined by single spaces.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn word_deltas_concatenate_to_the_text() {
        assert_eq!(words("a  b\nc").concat(), "a b c");
        assert_eq!(words("one").len(), 1);
    }
}
