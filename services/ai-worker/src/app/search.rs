//! Search and embeddings through the application: the query's text and limits, the shadow
//! comparison after every live search, and the limits of one embedding call.

use super::Worker;
use crate::{
    embed::{EmbeddedText, ModelInfo},
    error::{Result, WorkerError},
    search::{self, Outcome, Query},
    tenancy::Tenant,
};

/// Texts per embedding call.
const MAX_EMBED_TEXTS: usize = 256;

/// Texts to embed with one model.
#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub texts: Vec<String>,
    /// Empty: the default model.
    pub model: String,
    /// Refuse texts longer than the model's token limit instead of truncating them.
    pub strict: bool,
}

#[derive(Debug, Clone)]
pub struct Embeddings {
    pub embeddings: Vec<EmbeddedText>,
    pub model: ModelInfo,
}

/// The configured embedding models and which one new collections get.
#[derive(Debug, Clone)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
    pub default_model: String,
}

impl Worker {
    /// Runs `query` for `tenant`; a sampled share is compared off the request path with the
    /// shadow profile, when one is configured.
    pub async fn search(&self, tenant: &Tenant, query: &Query) -> Result<Outcome> {
        super::require_text("query", &query.text)?;
        query.validate()?;
        let outcome =
            search::search(&self.pool, &self.models, &self.ranking, tenant, query).await?;
        if let Some(shadow) = &self.shadow {
            shadow.observe(tenant, query, &outcome);
        }
        Ok(outcome)
    }

    pub async fn embed(&self, request: EmbedRequest) -> Result<Embeddings> {
        let embedder = self.models.get(&request.model)?.clone();
        let info = embedder.info().clone();
        if request.texts.is_empty() {
            return Err(WorkerError::InvalidArgument(
                "texts must contain at least one text".into(),
            ));
        }
        if request.texts.len() > MAX_EMBED_TEXTS {
            return Err(WorkerError::InvalidArgument(format!(
                "texts holds {} texts; at most {MAX_EMBED_TEXTS} per call",
                request.texts.len()
            )));
        }
        if let Some(i) = request.texts.iter().position(|t| t.trim().is_empty()) {
            return Err(WorkerError::InvalidArgument(format!("texts[{i}] is empty")));
        }
        let embeddings = embedder.embed(request.texts).await?;
        if request.strict
            && let Some(i) = embeddings.iter().position(|e| e.truncated)
        {
            return Err(WorkerError::InvalidArgument(format!(
                "texts[{i}] is longer than the model's {} token limit (strict mode)",
                info.max_tokens
            )));
        }
        Ok(Embeddings {
            embeddings,
            model: info,
        })
    }

    pub fn embedding_models(&self) -> ModelList {
        ModelList {
            models: self.models.models().cloned().collect(),
            default_model: self.models.default_model().info().name.clone(),
        }
    }
}
