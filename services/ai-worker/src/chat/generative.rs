//! The answerer used when an LLM is configured: retrieve, prompt the model with numbered
//! sources, relay its deltas as they arrive, then verify every `[n]` it wrote.
//!
//! Cancellation: while waiting for the model the answerer also waits for the caller to leave
//! (`Sender::closed`); when it does, the completion stream is dropped, which drops the
//! upstream HTTP request at once.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::{
    AnswerMode, ChatEvent, ChatSummary, FinishReason, citations,
    extractive::{NOTHING_FOUND, Request},
    prompt, retrieve, rewrite,
};
use crate::{
    error::{Result, WorkerError},
    llm::{Llm, LlmError, LlmEvent, Started},
};

/// What the model produced.
#[derive(Debug, Default)]
struct Output {
    answer: String,
    deltas: u32,
    finish: Option<String>,
    usage: Option<(u32, u32)>,
    first_token_at: Option<Instant>,
    last_token_at: Option<Instant>,
}

/// Streams a generative answer into `events`. Returns early (without error) when the
/// receiver is gone; a model failure is returned (before or after the first delta).
pub async fn answer_generative(
    request: Request<'_>,
    llm: &Llm,
    events: mpsc::Sender<ChatEvent>,
) -> Result<()> {
    let started = Instant::now();
    let Some(query) =
        rewrite::retrieval_text(llm, request.question, request.history, &events).await
    else {
        return Ok(());
    };
    let retrieved = retrieve::retrieve(
        request.pool,
        request.models,
        request.tenant,
        query,
        &request.filters,
        request.top_k,
        request.retrieval,
    )
    .await?;
    let evidence = retrieved.evidence;
    let abstained = retrieved.hits.is_empty() || !evidence.passes(request.retrieval.config);
    let hits = retrieved.hits;
    let retrieval_ms = ms(started.elapsed());
    if events.send(ChatEvent::Sources(hits.clone())).await.is_err() {
        return Ok(());
    }

    let count_tokens = |text: &str| request.embedder.count_tokens(text);
    let (messages, history_dropped) = prompt::messages(
        request.question,
        request.history,
        &hits,
        llm.history_tokens,
        &count_tokens,
    );
    let prompt_text: String = messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let output = if abstained {
        // Nothing to ground an answer on: say so rather than let the model invent one from
        // sources that do not bear on the question.
        let mut output = Output::default();
        for word in NOTHING_FOUND.split_inclusive(' ') {
            if events
                .send(ChatEvent::Delta(word.to_owned()))
                .await
                .is_err()
            {
                return Ok(());
            }
            let now = Instant::now();
            output.first_token_at.get_or_insert(now);
            output.last_token_at = Some(now);
            output.answer.push_str(word);
            output.deltas += 1;
        }
        output.usage = Some((0, 0));
        output
    } else {
        // One span for the whole completion; its "llm first token" event marks the TTFT.
        let llm_span = tracing::info_span!("llm.call", model = llm.model());
        let started_llm = tokio::select! {
            biased;
            () = events.closed() => return Ok(()),
            result = llm.start(messages).instrument(llm_span.clone()) => result?,
        };
        match relay(started_llm, llm.idle_timeout, &events)
            .instrument(llm_span)
            .await?
        {
            Some(output) => output,
            None => return Ok(()),
        }
    };

    let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    let verification = citations::verify(&output.answer, &texts);
    let (prompt_tokens, completion_tokens, usage_estimated) = match output.usage {
        Some((prompt, completion)) => (prompt, completion, false),
        None => (
            u32::try_from(request.embedder.count_tokens(&prompt_text)).unwrap_or(u32::MAX),
            output.deltas,
            true,
        ),
    };
    let generation_secs = match (output.first_token_at, output.last_token_at) {
        (Some(first), Some(last)) => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let summary = ChatSummary {
        finish_reason: match output.finish.as_deref() {
            Some("length") => FinishReason::Length,
            _ => FinishReason::Stop,
        },
        mode: AnswerMode::Generative,
        model: llm.model().to_owned(),
        prompt_tokens,
        completion_tokens,
        usage_estimated,
        retrieval_ms,
        time_to_first_token_ms: output
            .first_token_at
            .map_or(0.0, |t| ms(t.duration_since(started))),
        // With a single token (or none) there is no rate to measure.
        tokens_per_second: if generation_secs > 0.0 {
            f64::from(completion_tokens.saturating_sub(1)) / generation_secs
        } else {
            0.0
        },
        total_ms: ms(started.elapsed()),
        citations: verification.citations,
        uncited_sources: verification.uncited,
        history_dropped: u32::try_from(history_dropped).unwrap_or(u32::MAX),
        abstained,
        evidence,
    };
    let _ = events.send(ChatEvent::Final(summary)).await;
    Ok(())
}

/// Relays the model's deltas; `None` when the caller went away (the model stream is dropped
/// on return, cancelling the upstream request).
async fn relay(
    started: Started,
    idle_timeout: Duration,
    events: &mpsc::Sender<ChatEvent>,
) -> Result<Option<Output>> {
    let Started {
        mut buffered,
        mut rest,
        attempts,
    } = started;
    if attempts > 1 {
        tracing::info!(attempts, "llm answered after retries");
    }
    let mut output = Output::default();
    loop {
        let next = match buffered.pop_front() {
            Some(event) => Some(Ok(event)),
            None => tokio::select! {
                biased;
                () = events.closed() => {
                    tracing::info!(deltas = output.deltas, "chat caller went away; dropping the llm request");
                    return Ok(None);
                }
                next = tokio::time::timeout(idle_timeout, rest.next()) => {
                    next.unwrap_or(Some(Err(LlmError::Timeout(idle_timeout))))
                }
            },
        };
        match next {
            None => return Ok(Some(output)),
            Some(Ok(LlmEvent::Delta(text))) => {
                let now = Instant::now();
                output.first_token_at.get_or_insert(now);
                output.last_token_at = Some(now);
                output.answer.push_str(&text);
                output.deltas += 1;
                if events.send(ChatEvent::Delta(text)).await.is_err() {
                    return Ok(None);
                }
            }
            Some(Ok(LlmEvent::Finish(reason))) => output.finish = Some(reason),
            Some(Ok(LlmEvent::Usage { prompt, completion })) => {
                crate::telemetry::METRICS.llm_tokens(prompt, completion);
                output.usage = Some((prompt, completion));
            }
            Some(Err(error)) => {
                tracing::warn!(deltas = output.deltas, %error, "llm stream failed after the first token");
                return Err(WorkerError::Llm(error));
            }
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
