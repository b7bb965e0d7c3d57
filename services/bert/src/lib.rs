//! A CPU forward pass of BERT sentence encoders such as all-MiniLM-L6-v2, matching
//! sentence-transformers (mean pooling, L2 normalisation) to float rounding.
//!
//! Why not a general tensor library: a batch is run without padding (all tokens of all
//! sequences stacked into one matrix), each dense layer is a single GEMM on weights
//! transposed and fused (Q, K, V) at load, bias/GELU and bias/residual/LayerNorm are fused
//! passes vectorised for the CPU at hand, and activation buffers are reused. Batches are
//! split across the rayon pool (`RAYON_NUM_THREADS`), one group of sequences per thread.
//!
//! Tokenisation is the caller's: [`Encoder::embed`] takes token ids with special tokens.

mod attention;
mod config;
mod forward;
mod math;
mod matmul;
mod ops;
mod plan;
mod simd;
mod weights;

use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

pub use config::Config;
pub use plan::MAX_GROUP_TOKENS;
pub use simd::Isa;

use crate::{attention::Heads, forward::Scratch, weights::Weights};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("invalid weights: {0}")]
    Weights(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    UnknownToken { id: u32, vocab: usize },
    #[error("a sequence of {len} tokens is longer than the model's {max} positions")]
    TooLong { len: usize, max: usize },
}

/// A loaded encoder. Shareable across threads; [`Encoder::embed`] uses the rayon pool.
pub struct Encoder {
    config: Config,
    weights: Weights,
    isa: Isa,
    /// Idle activation buffers, one per concurrently running group at most.
    scratch: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .field("isa", &self.isa)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// From the text of `config.json` and the bytes of `model.safetensors` (f32).
    pub fn load(config_json: &str, safetensors: &[u8]) -> Result<Self, LoadError> {
        let config = Config::from_json(config_json).map_err(LoadError::Config)?;
        let weights = Weights::load(&config, safetensors).map_err(LoadError::Weights)?;
        Ok(Self {
            config,
            weights,
            isa: Isa::detect(),
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// The same model on another instruction set (tests compare them).
    pub fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The instruction set the kernels run on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The L2-normalised mean-pooled embedding of each sequence of token ids (special tokens
    /// included), in order. A sequence's vector does not depend on the others in the call.
    pub fn embed(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, EncodeError> {
        self.check(sequences)?;
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let groups = plan::groups(&lengths, rayon::current_num_threads());
        let model = forward::Model {
            weights: &self.weights,
            heads: Heads {
                count: self.config.num_attention_heads,
                size: self.config.head_size(),
            },
            isa: self.isa,
        };
        let run = |group: &std::ops::Range<usize>| {
            let mut scratch = self.take_scratch();
            let out = forward::embed(&model, &sequences[group.clone()], &mut scratch);
            self.return_scratch(scratch);
            out
        };
        let vectors: Vec<Vec<Vec<f32>>> = if groups.len() == 1 {
            // One group: stay on the calling thread (a query's latency, no pool hop).
            groups.iter().map(run).collect()
        } else {
            groups.par_iter().map(run).collect()
        };
        Ok(vectors.into_iter().flatten().collect())
    }

    fn check(&self, sequences: &[&[u32]]) -> Result<(), EncodeError> {
        let vocab = self.config.vocab_size;
        let max = self.config.max_position_embeddings;
        for sequence in sequences {
            if sequence.len() > max {
                return Err(EncodeError::TooLong {
                    len: sequence.len(),
                    max,
                });
            }
            if let Some(&id) = sequence.iter().find(|&&id| id as usize >= vocab) {
                return Err(EncodeError::UnknownToken { id, vocab });
            }
        }
        Ok(())
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn return_scratch(&self, scratch: Scratch) {
        self.scratch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(scratch);
    }
}
