//! The LLM backend: any OpenAI-compatible chat endpoint, streamed.
//!
//! [`Llm::start`] opens a completion and returns it only once its first content token has
//! arrived: failures before that point are retried with exponential backoff (never after, so a
//! caller never sees a token twice), and every attempt is counted by a circuit breaker that
//! makes a dead provider fail fast. Dropping the returned stream drops the upstream HTTP
//! request at once.

mod breaker;
pub mod openai;

use std::{collections::VecDeque, pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt as _, future::BoxFuture};

pub use breaker::Breaker;

use thinkbank_common::{ErrorCode, duration::parse_duration};

/// Half of `delay` plus a random part of the other half ("equal jitter"), so many workers
/// retrying a provider that failed them all at once do not retry in lockstep.
fn jittered(delay: Duration) -> Duration {
    delay / 2 + delay.mul_f64(rand::random::<f64>() / 2.0)
}

/// LLM options; without `--llm-base-url` the extractive answerer is used.
#[derive(Debug, Clone, clap::Args)]
pub struct LlmConfig {
    /// Base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1 or
    /// http://127.0.0.1:11434/v1 (Ollama). Unset: answers are extractive.
    #[arg(long, env = "THINKBANK_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    /// API key sent as a bearer token (empty for local servers).
    #[arg(
        long,
        env = "THINKBANK_LLM_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub llm_api_key: String,

    /// Model name passed to the provider.
    #[arg(long, env = "THINKBANK_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,

    /// A vision-capable model on the same endpoint; when set, images are also described by it
    /// and the description is indexed with their OCR text.
    #[arg(long, env = "THINKBANK_VISION_MODEL")]
    pub vision_model: Option<String>,

    /// Sampling temperature.
    #[arg(long, env = "THINKBANK_LLM_TEMPERATURE", default_value_t = 0.1)]
    pub llm_temperature: f32,

    /// Largest answer, in tokens (`max_tokens`).
    #[arg(long, env = "THINKBANK_LLM_MAX_TOKENS", default_value_t = 1024)]
    pub llm_max_tokens: u32,

    /// Deadline to connect to the provider.
    #[arg(long, env = "THINKBANK_LLM_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub llm_connect_timeout: Duration,

    /// Deadline from sending a request to its first token (per attempt).
    #[arg(long, env = "THINKBANK_LLM_FIRST_TOKEN_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub llm_first_token_timeout: Duration,

    /// Longest silence allowed between two streamed tokens.
    #[arg(long, env = "THINKBANK_LLM_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub llm_idle_timeout: Duration,

    /// Retries of a failed request before its first token (429, 5xx, network errors).
    #[arg(long, env = "THINKBANK_LLM_MAX_RETRIES", default_value_t = 2)]
    pub llm_max_retries: u32,

    /// First retry delay; doubled for each further retry.
    #[arg(long, env = "THINKBANK_LLM_RETRY_BACKOFF", default_value = "200ms", value_parser = parse_duration)]
    pub llm_retry_backoff: Duration,

    /// Token budget of the conversation history in the prompt; older turns are dropped first.
    #[arg(long, env = "THINKBANK_LLM_HISTORY_TOKENS", default_value_t = 2000)]
    pub llm_history_tokens: usize,

    /// Let the model rewrite follow-up questions into standalone ones before retrieval.
    #[arg(long, env = "THINKBANK_LLM_REWRITE_QUESTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub llm_rewrite_questions: bool,

    /// Consecutive failed attempts that open the circuit breaker.
    #[arg(long, env = "THINKBANK_LLM_BREAKER_THRESHOLD", default_value_t = 5)]
    pub llm_breaker_threshold: u32,

    /// How long an open breaker fails calls fast before letting one trial through.
    #[arg(long, env = "THINKBANK_LLM_BREAKER_COOLDOWN", default_value = "30s", value_parser = parse_duration)]
    pub llm_breaker_cooldown: Duration,
}

impl Default for LlmConfig {
    /// No LLM; the other values are the flags' defaults.
    fn default() -> Self {
        Self {
            llm_base_url: None,
            llm_api_key: String::new(),
            llm_model: "gpt-4o-mini".into(),
            vision_model: None,
            llm_temperature: 0.1,
            llm_max_tokens: 1024,
            llm_connect_timeout: Duration::from_secs(5),
            llm_first_token_timeout: Duration::from_secs(60),
            llm_idle_timeout: Duration::from_secs(30),
            llm_max_retries: 2,
            llm_retry_backoff: Duration::from_millis(200),
            llm_history_tokens: 2000,
            llm_rewrite_questions: true,
            llm_breaker_threshold: 5,
            llm_breaker_cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the language model is unavailable (circuit open); retry later")]
    CircuitOpen,
    #[error("the language model answered http {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot reach the language model: {0}")]
    Transport(String),
    #[error("the language model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the language model sent an unreadable stream: {0}")]
    Protocol(String),
    #[error("the language model stream broke off: {0}")]
    Broken(String),
    #[error("invalid llm configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// The code a caller gets: the provider being down, slow or overloaded is UNAVAILABLE
    /// (retry later); an answer we cannot use or a bad configuration is INTERNAL.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Http { status, .. } if *status == 429 || *status >= 500 => ErrorCode::Unavailable,
            Self::Http { .. } | Self::Config(_) | Self::Protocol(_) => ErrorCode::Internal,
            Self::CircuitOpen | Self::Transport(_) | Self::Timeout(_) | Self::Broken(_) => {
                ErrorCode::Unavailable
            }
        }
    }

    /// What a caller may be shown: what failed, without the provider's internals.
    pub fn public_message(&self) -> String {
        match self {
            Self::CircuitOpen => self.to_string(),
            Self::Http { status, .. } => format!("the language model failed (http {status})"),
            Self::Timeout(_) => "the language model did not answer in time".into(),
            Self::Broken(_) => "the language model stream broke off".into(),
            Self::Transport(_) => "cannot reach the language model".into(),
            Self::Protocol(_) => "the language model sent an unreadable answer".into(),
            Self::Config(_) => "the language model is misconfigured".into(),
        }
    }

    /// Worth another attempt (before the first token only).
    fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            Self::Transport(_) | Self::Timeout(_) | Self::Broken(_) => true,
            Self::CircuitOpen | Self::Protocol(_) | Self::Config(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// An image sent with the text (a `data:` URL), for vision models.
    pub image: Option<String>,
}

/// What the provider streams, normalised.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    Delta(String),
    /// The provider's finish reason, if it sent a non-empty one.
    Finish(String),
    Usage {
        prompt: u32,
        completion: u32,
    },
}

pub type LlmStream = Pin<Box<dyn Stream<Item = Result<LlmEvent, LlmError>> + Send>>;

/// The seam to a chat model: one streamed completion per call.
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    fn stream(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<LlmStream, LlmError>>;
    fn model(&self) -> &str;
    /// A cheap request that shows the provider answers (readiness), without generating.
    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>>;
}

/// A started completion: what arrived up to and including the first token, then the rest.
pub struct Started {
    pub buffered: VecDeque<LlmEvent>,
    pub rest: LlmStream,
    /// Attempts it took (1 = no retry).
    pub attempts: u32,
}

/// The configured model behind retries and a circuit breaker.
#[derive(Debug)]
pub struct Llm {
    model: Arc<dyn ChatModel>,
    breaker: Breaker,
    max_retries: u32,
    backoff: Duration,
    first_token_timeout: Duration,
    pub idle_timeout: Duration,
    pub history_tokens: usize,
    pub rewrite_questions: bool,
}

impl Llm {
    /// `None` when no base URL is configured.
    pub fn from_config(config: &LlmConfig) -> Result<Option<Self>, LlmError> {
        let Some(base_url) = config
            .llm_base_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        else {
            return Ok(None);
        };
        let model = openai::OpenAiCompatible::new(base_url, config)?;
        Ok(Some(Self {
            model: Arc::new(model),
            breaker: Breaker::new(config.llm_breaker_threshold, config.llm_breaker_cooldown),
            max_retries: config.llm_max_retries,
            backoff: config.llm_retry_backoff,
            first_token_timeout: config.llm_first_token_timeout,
            idle_timeout: config.llm_idle_timeout,
            history_tokens: config.llm_history_tokens,
            rewrite_questions: config.llm_rewrite_questions,
        }))
    }

    pub fn model(&self) -> &str {
        self.model.model()
    }

    /// The vision model of `config` behind its own retries and breaker; `None` unless both an
    /// endpoint and `THINKBANK_VISION_MODEL` are configured.
    pub fn vision_from_config(config: &LlmConfig) -> Result<Option<Self>, LlmError> {
        let Some(vision_model) = config
            .vision_model
            .as_deref()
            .filter(|m| !m.trim().is_empty())
        else {
            return Ok(None);
        };
        let vision = LlmConfig {
            llm_model: vision_model.to_owned(),
            ..config.clone()
        };
        Self::from_config(&vision)
    }

    /// One whole completion as text (for short internal calls such as image captions).
    pub async fn complete(&self, messages: Vec<Message>) -> Result<String, LlmError> {
        let Started {
            buffered, mut rest, ..
        } = self.start(messages).await?;
        let mut text = String::new();
        for event in buffered {
            if let LlmEvent::Delta(delta) = event {
                text.push_str(&delta);
            }
        }
        loop {
            match tokio::time::timeout(self.idle_timeout, rest.next()).await {
                Ok(Some(Ok(LlmEvent::Delta(delta)))) => text.push_str(&delta),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(error))) => return Err(error),
                Ok(None) => return Ok(text),
                Err(_) => return Err(LlmError::Timeout(self.idle_timeout)),
            }
        }
    }

    /// Whether the provider answers now: its model list, within `timeout`. Does not touch the
    /// breaker (readiness probes must not open or close it).
    pub async fn probe(&self, timeout: Duration) -> Result<(), LlmError> {
        tokio::time::timeout(timeout, self.model.probe())
            .await
            .unwrap_or(Err(LlmError::Timeout(timeout)))
    }

    /// True while the breaker fails calls fast.
    pub fn is_unavailable(&self) -> bool {
        self.breaker.is_open()
    }

    /// Opens a completion and waits for its first token, retrying before it.
    pub async fn start(&self, messages: Vec<Message>) -> Result<Started, LlmError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let metrics = &crate::telemetry::METRICS;
            if !self.breaker.try_acquire() {
                metrics.llm_request("circuit_open");
                metrics.llm_circuit(true);
                return Err(LlmError::CircuitOpen);
            }
            let sent = std::time::Instant::now();
            let result =
                tokio::time::timeout(self.first_token_timeout, self.first_token(messages.clone()))
                    .await
                    .unwrap_or(Err(LlmError::Timeout(self.first_token_timeout)));
            match result {
                Ok((buffered, rest)) => {
                    let ttft = sent.elapsed();
                    metrics.llm_first_token(ttft.as_secs_f64());
                    metrics.llm_request("ok");
                    metrics.llm_circuit(false);
                    tracing::info!(ttft_ms = ttft.as_millis(), attempt, "llm first token");
                    self.breaker.record_success();
                    return Ok(Started {
                        buffered,
                        rest,
                        attempts: attempt,
                    });
                }
                Err(error) => {
                    metrics.llm_request("error");
                    self.breaker.record_failure();
                    metrics.llm_circuit(self.breaker.is_open());
                    if !error.is_retryable() || attempt > self.max_retries {
                        return Err(error);
                    }
                    let delay = jittered(self.backoff * 2u32.saturating_pow(attempt - 1));
                    tracing::warn!(attempt, %error, ?delay, "llm attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt: opens the stream and reads until the first content token (or the end).
    async fn first_token(
        &self,
        messages: Vec<Message>,
    ) -> Result<(VecDeque<LlmEvent>, LlmStream), LlmError> {
        let mut stream = self.model.stream(messages).await?;
        let mut buffered = VecDeque::new();
        while let Some(event) = stream.next().await {
            let event = event?;
            let is_token = matches!(&event, LlmEvent::Delta(text) if !text.is_empty());
            buffered.push_back(event);
            if is_token {
                break;
            }
        }
        Ok((buffered, stream))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::jittered;

    #[test]
    fn retry_delays_stay_between_half_and_all_of_the_backoff_and_vary() {
        let delay = Duration::from_millis(400);
        let samples: Vec<Duration> = (0..200).map(|_| jittered(delay)).collect();
        assert!(samples.iter().all(|d| *d >= delay / 2 && *d <= delay));
        assert!(samples.iter().any(|d| *d != samples[0]));
    }
}
