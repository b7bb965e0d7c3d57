//! The optional reranking stage: the best fused candidates are re-scored by a cross-encoder
//! behind a standard `/rerank` HTTP API and re-ordered by its scores; the rest keep their order
//! below them. Off unless `THINKBANK_RERANK_URL` is set.
//!
//! One request shape serves the common servers: `{"model", "query", "documents", "texts",
//! "top_n", "return_documents": false}` (Cohere and Jina read `documents`, Hugging Face TEI
//! reads `texts`); both response shapes are read: `{"results": [{"index",
//! "relevance_score"}]}` (Cohere, Jina) and `[{"index", "score"}]` (TEI).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::Hit;
use crate::error::{Result, WorkerError};

/// Candidates reranked by default: cross-encoders cost one forward pass per candidate.
pub const DEFAULT_CANDIDATES: usize = 20;
/// Characters of a chunk sent to the reranker.
const MAX_DOCUMENT_CHARS: usize = 2000;

#[derive(Debug, Clone)]
pub struct RerankConfig {
    /// The full endpoint, e.g. `http://tei:8080/rerank` or `https://api.cohere.com/v2/rerank`.
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub candidates: usize,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Reranker {
    config: RerankConfig,
    http: reqwest013::Client,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Response {
    Results { results: Vec<Scored> },
    List(Vec<Scored>),
}

#[derive(Debug, Deserialize)]
struct Scored {
    index: usize,
    #[serde(alias = "relevance_score")]
    score: f64,
}

/// Which reranker a request uses: the configured one unless the request says no; asking for
/// one when none is configured is an error.
pub fn wanted(configured: Option<&Reranker>, requested: Option<bool>) -> Result<Option<&Reranker>> {
    match (configured, requested) {
        (None, Some(true)) => Err(WorkerError::FailedPrecondition(
            "rerank: no reranker is configured (THINKBANK_RERANK_URL)".into(),
        )),
        (Some(reranker), None | Some(true)) => Ok(Some(reranker)),
        (_, Some(false)) | (None, None) => Ok(None),
    }
}

impl Reranker {
    pub fn new(config: RerankConfig) -> Result<Self> {
        // reqwest is built without a bundled crypto provider (see llm/openai.rs); an error
        // only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest013::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| WorkerError::Internal(format!("reranker client: {e}")))?;
        Ok(Self { config, http })
    }

    /// Re-scores the first `candidates` hits of `hits` (best first) and sorts them by the
    /// reranker's score; `score` becomes that score, and `explain` (when `explain`) records it.
    pub async fn rerank(&self, query: &str, hits: &mut [Hit], explain: bool) -> Result<()> {
        let n = hits.len().min(self.config.candidates);
        if n == 0 {
            return Ok(());
        }
        let documents: Vec<&str> = hits[..n]
            .iter()
            .map(|h| match h.text.char_indices().nth(MAX_DOCUMENT_CHARS) {
                Some((cut, _)) => &h.text[..cut],
                None => h.text.as_str(),
            })
            .collect();
        let body = json!({
            "model": self.config.model, "query": query, "documents": documents,
            "texts": documents, "top_n": n, "return_documents": false,
        });
        let mut request = self
            .http
            .post(&self.config.url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let unavailable = |e: String| WorkerError::Unavailable(format!("reranker: {e}"));
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(unavailable(format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        let scored = match serde_json::from_slice::<Response>(&bytes)
            .map_err(|e| unavailable(format!("unreadable response: {e}")))?
        {
            Response::Results { results } => results,
            Response::List(list) => list,
        };
        let mut scores: Vec<Option<f64>> = vec![None; n];
        for s in scored {
            if let Some(slot) = scores.get_mut(s.index) {
                *slot = Some(s.score);
            }
        }
        let head = &mut hits[..n];
        for (hit, score) in head.iter_mut().zip(&scores) {
            // A candidate the reranker left out ranks below every scored one.
            hit.score = score.unwrap_or(f64::NEG_INFINITY);
            if explain {
                hit.explain
                    .get_or_insert_with(Default::default)
                    .rerank_score = *score;
            }
        }
        // Stable: ties keep the fused order.
        head.sort_by(|a, b| b.score.total_cmp(&a.score));
        for hit in head.iter_mut().filter(|h| h.score == f64::NEG_INFINITY) {
            hit.score = 0.0;
        }
        Ok(())
    }
}

/// Reranker options (`THINKBANK_RERANK_*`); without a URL nothing is reranked.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct RerankArgs {
    /// Full URL of a `/rerank` endpoint (Hugging Face TEI, Cohere, Jina, or anything with
    /// their request and response shapes). Unset: no reranking.
    #[arg(long, env = "THINKBANK_RERANK_URL")]
    pub rerank_url: Option<String>,
    /// Model name sent with each request (ignored by single-model servers such as TEI).
    #[arg(long, env = "THINKBANK_RERANK_MODEL", default_value = "")]
    pub rerank_model: String,
    /// API key sent as a bearer token.
    #[arg(long, env = "THINKBANK_RERANK_API_KEY", hide_env_values = true)]
    pub rerank_api_key: Option<String>,
    /// Best fused candidates re-scored per search, 1..=100.
    #[arg(long, env = "THINKBANK_RERANK_CANDIDATES", default_value_t = DEFAULT_CANDIDATES,
          value_parser = parse_candidates)]
    pub rerank_candidates: usize,
    /// Deadline of one reranker call.
    #[arg(long, env = "THINKBANK_RERANK_TIMEOUT", default_value = "5s",
          value_parser = thinkbank_common::duration::parse_duration)]
    pub rerank_timeout: Duration,
}

fn parse_candidates(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a number from 1 to 100")),
    }
}

impl Default for RerankArgs {
    /// No reranker; the other values are the flags' defaults.
    fn default() -> Self {
        Self {
            rerank_url: None,
            rerank_model: String::new(),
            rerank_api_key: None,
            rerank_candidates: DEFAULT_CANDIDATES,
            rerank_timeout: Duration::from_secs(5),
        }
    }
}

impl RerankArgs {
    /// The configured reranker, if any.
    pub fn reranker(&self) -> Result<Option<Reranker>> {
        let Some(url) = self.rerank_url.clone().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        Reranker::new(RerankConfig {
            url,
            model: self.rerank_model.clone(),
            api_key: self.rerank_api_key.clone().filter(|k| !k.is_empty()),
            candidates: self.rerank_candidates,
            timeout: self.rerank_timeout,
        })
        .map(Some)
    }
}
