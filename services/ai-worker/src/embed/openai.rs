//! An OpenAI-compatible `/v1/embeddings` backend (OpenAI, vLLM, Ollama, TEI) on async-openai.
//!
//! Inputs are sent in batches of at most the provider's limit; every HTTP attempt goes through
//! [`Retrying`], which retries 429 and 5xx answers and connection failures with jittered
//! exponential backoff, honouring `Retry-After` (seconds) and `retry-after-ms`, and counts
//! each attempt towards a circuit breaker so a dead provider fails fast.

use std::{sync::Arc, time::Duration};

use async_openai::{
    Client, config::OpenAIConfig, error::OpenAIError, middleware::HttpRequestFactory,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{EmbedError, EmbeddedText, ModelInfo};
use crate::llm::Breaker;

/// One configured OpenAI-compatible model, as given in `THINKBANK_EMBEDDING_MODELS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteModelSpec {
    /// thinkbank's name for the model (stored with its vectors): a-z, 0-9, '-', '.', '_'.
    pub name: String,
    /// Base URL of the API, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The provider's model name; defaults to `name`.
    #[serde(default)]
    pub model: Option<String>,
    /// Vector size the provider returns (sent as `dimensions` when `send_dimensions`).
    pub dimensions: usize,
    /// Ask the provider for `dimensions` (text-embedding-3 models can shorten their vectors).
    #[serde(default)]
    pub send_dimensions: bool,
    /// Environment variable holding the API key (empty key for local servers).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Inputs per request (OpenAI accepts 2048; many self-hosted servers far fewer).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest input in tokens; longer input is cut (estimated with the local tokenizer).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Per-attempt deadline.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries of one request after a 429, a 5xx or a connection failure.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First retry delay in milliseconds; doubled per retry, with jitter.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

fn default_max_batch() -> usize {
    96
}
fn default_max_tokens() -> usize {
    8191
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_retries() -> u32 {
    4
}
fn default_backoff_ms() -> u64 {
    250
}

/// Longest `Retry-After` honoured; a provider asking for more is treated as unavailable.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Consecutive failed attempts that open the breaker, and how long it stays open.
const BREAKER_THRESHOLD: u32 = 8;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    spec: RemoteModelSpec,
    info: ModelInfo,
    breaker: Arc<Breaker>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<UsageField>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct UsageField {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

impl OpenAiEmbedder {
    pub fn new(spec: RemoteModelSpec) -> Result<Self, String> {
        let info = ModelInfo::new(&spec.name, spec.dimensions, spec.max_tokens)?;
        if spec.dimensions == 0 || spec.max_batch == 0 {
            return Err(format!(
                "model '{}': dimensions and max_batch must be positive",
                spec.name
            ));
        }
        let api_key = match &spec.api_key_env {
            Some(var) => std::env::var(var).map_err(|_| {
                format!(
                    "model '{}': environment variable {var} is not set",
                    spec.name
                )
            })?,
            None => String::new(),
        };
        // reqwest is built without a bundled crypto provider; an error only means one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest013::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(Duration::from_millis(spec.timeout_ms)))
            .timeout(Duration::from_millis(spec.timeout_ms))
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        let breaker = Arc::new(Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN));
        let service = Retrying {
            http,
            breaker: breaker.clone(),
            max_retries: spec.max_retries,
            backoff: Duration::from_millis(spec.backoff_ms),
        };
        let config = OpenAIConfig::new()
            .with_api_base(spec.base_url.trim_end_matches('/'))
            .with_api_key(api_key);
        let client = Client::with_config(config).with_http_service(service);
        Ok(Self {
            client,
            spec,
            info,
            breaker,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn max_batch(&self) -> usize {
        self.spec.max_batch
    }

    /// Embeds already-truncated `texts` (with their estimated token counts), batch by batch.
    pub async fn embed(
        &self,
        texts: Vec<(String, usize, bool)>,
    ) -> Result<Vec<EmbeddedText>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.spec.max_batch) {
            let inputs: Vec<&str> = batch.iter().map(|(t, _, _)| t.as_str()).collect();
            let vectors = self.request(&inputs).await?;
            for ((_, tokens, truncated), vector) in batch.iter().zip(vectors) {
                out.push(EmbeddedText {
                    vector,
                    token_count: *tokens,
                    truncated: *truncated,
                });
            }
        }
        Ok(out)
    }

    async fn request(&self, inputs: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.breaker.is_open() {
            return Err(EmbedError::Unavailable(format!(
                "embedding model '{}' is unavailable (circuit open); retry later",
                self.info.name
            )));
        }
        let mut request = json!({
            "model": self.spec.model.as_deref().unwrap_or(&self.spec.name),
            "input": inputs,
            "encoding_format": "float",
        });
        if self.spec.send_dimensions {
            request["dimensions"] = self.spec.dimensions.into();
        }
        let response: EmbeddingsResponse = self
            .client
            .embeddings()
            .create_byot(request)
            .await
            .map_err(|e| map_error(&self.info.name, e))?;
        if let Some(tokens) = response.usage.and_then(|u| u.prompt_tokens) {
            tracing::debug!(model = %self.info.name, inputs = inputs.len(), tokens, "embedded remotely");
        }
        let mut items = response.data;
        if items.len() != inputs.len() {
            return Err(EmbedError::Upstream(format!(
                "model '{}' returned {} embeddings for {} inputs",
                self.info.name,
                items.len(),
                inputs.len()
            )));
        }
        // The wire format carries an index per item; order by it, not by position.
        items.sort_by_key(|item| item.index.unwrap_or(usize::MAX));
        items
            .into_iter()
            .map(|item| {
                if item.embedding.len() != self.info.dimensions {
                    return Err(EmbedError::Upstream(format!(
                        "model '{}' returned {} dimensions; configured {}",
                        self.info.name,
                        item.embedding.len(),
                        self.info.dimensions
                    )));
                }
                Ok(normalised(item.embedding))
            })
            .collect()
    }
}

/// L2-normalises `v` (OpenAI's vectors already are; self-hosted servers may not be), so cosine
/// distance in pgvector and the dot products elsewhere agree.
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn map_error(model: &str, error: OpenAIError) -> EmbedError {
    match error {
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            let message = format!(
                "model '{model}' answered http {status}: {}",
                api.api_error.message
            );
            if status == 429 || status >= 500 {
                EmbedError::Unavailable(message)
            } else {
                EmbedError::Upstream(message)
            }
        }
        OpenAIError::Reqwest(e) => {
            EmbedError::Unavailable(format!("cannot reach model '{model}': {e}"))
        }
        other => EmbedError::Upstream(format!("model '{model}': {other}")),
    }
}

/// The HTTP transport under async-openai: one logical request, retried here.
#[derive(Debug, Clone)]
struct Retrying {
    http: reqwest013::Client,
    breaker: Arc<Breaker>,
    max_retries: u32,
    backoff: Duration,
}

impl tower::Service<HttpRequestFactory> for Retrying {
    type Response = reqwest013::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(factory).await })
    }
}

impl Retrying {
    async fn send(self, factory: HttpRequestFactory) -> Result<reqwest013::Response, OpenAIError> {
        let mut retry = 0u32;
        loop {
            let request = factory.build().await?;
            let result = self.http.execute(request).await;
            let delay = match &result {
                Ok(response) if response.status().is_success() => {
                    self.breaker.record_success();
                    return result.map_err(OpenAIError::Reqwest);
                }
                Ok(response) if is_retryable(response.status().as_u16()) => {
                    retry_after(response.headers())
                }
                // Other 4xx: the request itself is wrong; retrying cannot help, and the
                // provider is healthy.
                Ok(_) => return result.map_err(OpenAIError::Reqwest),
                Err(error) if error.is_connect() || error.is_timeout() => None,
                Err(_) => return result.map_err(OpenAIError::Reqwest),
            };
            self.breaker.record_failure();
            if retry >= self.max_retries || self.breaker.is_open() {
                return result.map_err(OpenAIError::Reqwest);
            }
            let delay = match delay {
                Some(wait) if wait > MAX_RETRY_AFTER => {
                    return result.map_err(OpenAIError::Reqwest);
                }
                Some(wait) => wait,
                None => jittered(self.backoff, retry),
            };
            tracing::debug!(
                retry,
                delay_ms = delay.as_millis(),
                "embedding request failed; retrying"
            );
            retry += 1;
            tokio::time::sleep(delay).await;
        }
    }
}

fn is_retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

/// `base × 2^retry`, scaled by a random factor in [0.5, 1.0) so clients that failed together
/// do not retry together.
fn jittered(base: Duration, retry: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(retry.min(10)));
    exponential.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// The delay a 429/503 asks for: `retry-after-ms` (OpenAI) or `Retry-After` in seconds.
fn retry_after(headers: &reqwest013::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full_backoff() {
        for retry in 0..4 {
            let full = Duration::from_millis(100) * 2u32.pow(retry);
            let d = jittered(Duration::from_millis(100), retry);
            assert!(
                d >= full / 2 && d <= full,
                "{d:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut headers = reqwest013::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
    }

    #[test]
    fn specs_take_defaults_and_reject_unknown_fields() {
        let spec: RemoteModelSpec =
            serde_json::from_str(r#"{"name":"small","base_url":"http://x/v1","dimensions":64}"#)
                .unwrap();
        assert_eq!(spec.max_batch, 96);
        assert!(
            serde_json::from_str::<RemoteModelSpec>(
                r#"{"name":"small","base_url":"x","dimensions":64,"dims":3}"#
            )
            .is_err()
        );
    }
}
