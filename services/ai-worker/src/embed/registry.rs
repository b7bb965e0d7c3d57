//! Every configured embedding model by name: the local MiniLM (always there) and any number of
//! OpenAI-compatible models from `THINKBANK_EMBEDDING_MODELS`. Requests, collections and
//! migrations name the model they use; an unknown name is an error listing the known ones.

use std::{collections::BTreeMap, time::Duration};

use tokenizers::Tokenizer;

use super::{
    BatchSettings, Batcher, EmbedError, EmbeddedText, LocalEmbedder, ModelInfo, OpenAiEmbedder,
    RemoteModelSpec,
};
use thinkbank_common::duration::parse_duration;

use crate::error::WorkerError;

/// Embedding options (`THINKBANK_EMBEDDING_*`, `THINKBANK_EMBED_*`).
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedConfig {
    /// Extra OpenAI-compatible models, as a JSON array of objects with `name`, `base_url`,
    /// `dimensions` and optionally `model`, `api_key_env`, `max_batch`, `max_tokens`,
    /// `send_dimensions`, `timeout_ms`, `max_retries`, `backoff_ms` (see README).
    #[arg(long, env = "THINKBANK_EMBEDDING_MODELS", default_value = "[]")]
    pub embedding_models: String,

    /// The model used when a request or a new collection names none.
    #[arg(
        long,
        env = "THINKBANK_DEFAULT_EMBEDDING_MODEL",
        default_value = super::local::MODEL_NAME
    )]
    pub default_embedding_model: String,

    /// How long a local embedding request waits for concurrent ones to share its forward pass.
    #[arg(long, env = "THINKBANK_EMBED_BATCH_WAIT", default_value = "2ms", value_parser = parse_duration)]
    pub embed_batch_wait: Duration,

    /// Most texts merged into one local forward call.
    #[arg(long, env = "THINKBANK_EMBED_MAX_BATCH", default_value_t = 64)]
    pub embed_max_batch: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            embedding_models: "[]".into(),
            default_embedding_model: super::local::MODEL_NAME.into(),
            embed_batch_wait: Duration::from_millis(2),
            embed_max_batch: 64,
        }
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Local(Batcher),
    // Boxed: the HTTP client makes this variant hundreds of bytes; embedders are cloned often.
    OpenAi(Box<OpenAiEmbedder>),
}

/// One configured model on its backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Embedder {
    info: ModelInfo,
    backend: Backend,
    /// The local tokenizer without truncation: estimates token counts for remote models.
    estimator: Tokenizer,
}

impl Embedder {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Embeds `texts` in order. Local texts longer than the model's limit are truncated by the
    /// tokenizer; remote ones are cut here at an estimate (the local WordPiece count, which
    /// is not lower than BPE counts for typical text) so the provider does not reject them.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<EmbeddedText>, EmbedError> {
        match &self.backend {
            Backend::Local(batcher) => batcher.embed(texts).await,
            Backend::OpenAi(remote) => {
                let prepared = texts
                    .into_iter()
                    .map(|text| self.cut(text))
                    .collect::<Result<Vec<_>, _>>()?;
                remote.embed(prepared).await
            }
        }
    }

    /// One text's vector.
    pub async fn embed_one(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        self.embed(vec![text])
            .await?
            .pop()
            .map(|e| e.vector)
            .ok_or_else(|| EmbedError::Internal("no vector returned".into()))
    }

    fn cut(&self, text: String) -> Result<(String, usize, bool), EmbedError> {
        let encoding = self
            .estimator
            .encode(text.as_str(), false)
            .map_err(|e| EmbedError::Internal(format!("tokenizer: {e}")))?;
        let max = self.info.max_tokens;
        if encoding.len() <= max {
            return Ok((text, encoding.len(), false));
        }
        let end = encoding
            .get_offsets()
            .get(max.saturating_sub(1))
            .map_or(text.len(), |&(_, end)| end);
        let mut end = end.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Ok((text[..end].to_owned(), max, true))
    }
}

/// Every configured model.
#[derive(Debug, Clone)]
pub struct Registry {
    models: BTreeMap<String, Embedder>,
    default: Embedder,
    local: LocalEmbedder,
}

impl Registry {
    /// The local model plus the remote ones in `config`; fails on a bad spec, a duplicate
    /// name or an unknown default.
    pub fn new(local: LocalEmbedder, config: &EmbedConfig) -> Result<Self, String> {
        let specs: Vec<RemoteModelSpec> = serde_json::from_str(&config.embedding_models)
            .map_err(|e| format!("THINKBANK_EMBEDDING_MODELS is not a valid model list: {e}"))?;
        let mut estimator = local.tokenizer().clone();
        estimator.with_padding(None);
        estimator
            .with_truncation(None)
            .map_err(|e| format!("cannot configure the tokenizer: {e}"))?;
        let batcher = Batcher::start(
            local.clone(),
            BatchSettings {
                max_batch: config.embed_max_batch.max(1),
                max_wait: config.embed_batch_wait,
            },
        )
        .map_err(|e| format!("cannot start the embedding thread: {e}"))?;
        let mut models = BTreeMap::new();
        models.insert(
            local.info().name.clone(),
            Embedder {
                info: local.info().clone(),
                backend: Backend::Local(batcher),
                estimator: estimator.clone(),
            },
        );
        for spec in specs {
            let name = spec.name.clone();
            let remote = OpenAiEmbedder::new(spec)?;
            let embedder = Embedder {
                info: remote.info().clone(),
                backend: Backend::OpenAi(Box::new(remote)),
                estimator: estimator.clone(),
            };
            if models.insert(name.clone(), embedder).is_some() {
                return Err(format!("embedding model '{name}' is configured twice"));
            }
        }
        let default = models
            .get(&config.default_embedding_model)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "THINKBANK_DEFAULT_EMBEDDING_MODEL '{}' is not configured; configured: {}",
                    config.default_embedding_model,
                    models.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
        Ok(Self {
            models,
            default,
            local,
        })
    }

    /// The model called `name`; empty means the default.
    pub fn get(&self, name: &str) -> Result<&Embedder, WorkerError> {
        if name.is_empty() {
            return Ok(&self.default);
        }
        self.models.get(name).ok_or_else(|| {
            WorkerError::InvalidArgument(format!(
                "unknown embedding model '{name}'; configured: {}",
                self.names().join(", ")
            ))
        })
    }

    pub fn default_model(&self) -> &Embedder {
        &self.default
    }

    pub fn names(&self) -> Vec<&str> {
        self.models.keys().map(String::as_str).collect()
    }

    pub fn models(&self) -> impl Iterator<Item = &ModelInfo> {
        self.models.values().map(Embedder::info)
    }

    /// The in-process model (tokenizer for chunking, sentence ranking in extractive answers).
    pub fn local(&self) -> &LocalEmbedder {
        &self.local
    }
}
