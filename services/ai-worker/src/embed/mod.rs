//! Text embeddings. Every vector is tagged with the `ModelInfo` that produced it, so vectors of
//! different models are never compared with each other.
//!
//! An [`Embedder`] is one configured model on one backend (the in-process model, `thinkbank-bert`,
//! behind the dynamic [`Batcher`], or an OpenAI-compatible API); the [`Registry`] holds every
//! configured model by name.

mod batcher;
pub mod cache;
mod local;
pub mod openai;
pub mod registry;

pub use batcher::{BatchSettings, Batcher};
pub use local::LocalEmbedder;
pub use openai::{OpenAiEmbedder, RemoteModelSpec};
pub use registry::{Embedder, Registry};

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The provider is overloaded, down or unreachable (after retries, or circuit open).
    #[error("{0}")]
    Unavailable(String),
    /// The provider answered something unusable (a 4xx, a wrong number of vectors).
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Internal(String),
}

impl From<EmbedError> for crate::error::WorkerError {
    fn from(error: EmbedError) -> Self {
        match error {
            EmbedError::Unavailable(message) => Self::Unavailable(message),
            EmbedError::Upstream(message) | EmbedError::Internal(message) => {
                Self::Embedding(message)
            }
        }
    }
}

/// Identity of an embedding model as stored next to its vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Stable lower-case name, e.g. `all-minilm-l6-v2`.
    pub name: String,
    pub dimensions: usize,
    /// Longest input, in tokens including special tokens; longer input is truncated.
    pub max_tokens: usize,
}

impl ModelInfo {
    /// Validates the name: it is embedded in index names and partial-index predicates.
    pub fn new(name: &str, dimensions: usize, max_tokens: usize) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= 48
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_')
            });
        if !valid {
            return Err(format!(
                "model name '{name}' must be 1-48 characters of a-z, 0-9, '-', '.', '_'"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            dimensions,
            max_tokens,
        })
    }

    /// Name of this model's partial HNSW index.
    pub fn index_name(&self) -> String {
        let slug: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("embeddings_hnsw_{slug}_{}", self.dimensions)
    }
}

/// One embedded text.
#[derive(Debug, Clone)]
pub struct EmbeddedText {
    pub vector: Vec<f32>,
    /// Tokens the model saw, special tokens included.
    pub token_count: usize,
    /// The text was longer than `ModelInfo::max_tokens` and was cut.
    pub truncated: bool,
}

/// Cosine similarity of two L2-normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::ModelInfo;

    #[test]
    fn model_names_that_could_break_sql_are_rejected() {
        assert!(ModelInfo::new("all-minilm-l6-v2", 384, 256).is_ok());
        assert!(ModelInfo::new("x'; DROP TABLE t; --", 384, 256).is_err());
        assert!(ModelInfo::new("", 384, 256).is_err());
        assert!(ModelInfo::new("Upper", 384, 256).is_err());
    }

    #[test]
    fn index_names_are_identifiers() {
        let model = ModelInfo::new("text-embedding-3.small", 1536, 8191).unwrap();
        assert_eq!(
            model.index_name(),
            "embeddings_hnsw_text_embedding_3_small_1536"
        );
    }
}
