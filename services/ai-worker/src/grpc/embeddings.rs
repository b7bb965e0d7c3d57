//! The embedding and collection RPCs: validation and conversion around `embed` and
//! `collections`.

use thinkbank_proto::v1 as pb;
use uuid::Uuid;

use super::convert::timestamp;
use crate::{
    State,
    collections::{self, CollectionView, migration},
    error::{Result, WorkerError},
    tenancy::Tenant,
};

/// Texts per GetEmbedding call.
const MAX_EMBED_TEXTS: usize = 256;

pub async fn get_embedding(
    state: &State,
    message: pb::GetEmbeddingRequest,
) -> Result<pb::GetEmbeddingResponse> {
    let embedder = state.models.get(&message.model)?.clone();
    let info = embedder.info().clone();
    if message.texts.is_empty() {
        return Err(WorkerError::InvalidArgument(
            "texts must contain at least one text".into(),
        ));
    }
    if message.texts.len() > MAX_EMBED_TEXTS {
        return Err(WorkerError::InvalidArgument(format!(
            "texts holds {} texts; at most {MAX_EMBED_TEXTS} per call",
            message.texts.len()
        )));
    }
    if let Some(i) = message.texts.iter().position(|t| t.trim().is_empty()) {
        return Err(WorkerError::InvalidArgument(format!("texts[{i}] is empty")));
    }
    let embedded = embedder.embed(message.texts).await?;
    if message.strict
        && let Some(i) = embedded.iter().position(|e| e.truncated)
    {
        return Err(WorkerError::InvalidArgument(format!(
            "texts[{i}] is longer than the model's {} token limit (strict mode)",
            info.max_tokens
        )));
    }
    let total_tokens = embedded.iter().map(|e| e.token_count).sum::<usize>();
    Ok(pb::GetEmbeddingResponse {
        embeddings: embedded
            .into_iter()
            .map(|e| pb::Embedding {
                values: e.vector,
                token_count: u32::try_from(e.token_count).unwrap_or(u32::MAX),
                truncated: e.truncated,
            })
            .collect(),
        model: info.name,
        dimensions: u32::try_from(info.dimensions).unwrap_or(0),
        total_tokens: u32::try_from(total_tokens).unwrap_or(u32::MAX),
    })
}

pub fn list_models(state: &State) -> pb::ListEmbeddingModelsResponse {
    let default = &state.models.default_model().info().name;
    pb::ListEmbeddingModelsResponse {
        models: state
            .models
            .models()
            .map(|m| pb::EmbeddingModel {
                name: m.name.clone(),
                dimensions: u32::try_from(m.dimensions).unwrap_or(0),
                max_tokens: u32::try_from(m.max_tokens).unwrap_or(u32::MAX),
                is_default: &m.name == default,
            })
            .collect(),
    }
}

pub async fn create_collection(
    state: &State,
    tenant: &Tenant,
    message: pb::CreateCollectionRequest,
) -> Result<pb::Collection> {
    let model = state
        .models
        .get(&message.embedding_model)?
        .info()
        .name
        .clone();
    let config = match message.text_search_config.trim() {
        "" => "english",
        other => other,
    };
    let row = collections::create(&state.pool, tenant, &message.name, &model, config).await?;
    Ok(collection(CollectionView {
        row,
        chunk_count: 0,
        migration: None,
    }))
}

pub async fn migrate(
    state: &State,
    tenant: &Tenant,
    id: Uuid,
    target_model: &str,
) -> Result<pb::Collection> {
    if target_model.trim().is_empty() {
        return Err(WorkerError::InvalidArgument(
            "target_model must name a configured model".into(),
        ));
    }
    let target = state.models.get(target_model)?.info().name.clone();
    migration::start(&state.pool, tenant, id, &target).await?;
    state.wake.notify_one();
    Ok(collection(collections::get(&state.pool, tenant, id).await?))
}

pub fn collection(view: CollectionView) -> pb::Collection {
    let migration = view.migration.map(|(m, progress)| pb::ModelMigration {
        id: m.id.to_string(),
        source_model: m.source_model,
        target_model: m.target_model,
        status: migration_status(&m.status) as i32,
        done: u64::try_from(progress.done).unwrap_or(0),
        total: u64::try_from(progress.total).unwrap_or(0),
        error: m.error.unwrap_or_default(),
        created_at: Some(timestamp(m.created_at)),
        finished_at: m.finished_at.map(timestamp),
    });
    pb::Collection {
        id: view.row.id.to_string(),
        name: view.row.name,
        embedding_model: view.row.embedding_model,
        text_search_config: view.row.text_search_config,
        chunk_count: u64::try_from(view.chunk_count).unwrap_or(0),
        created_at: Some(timestamp(view.row.created_at)),
        migration,
    }
}

fn migration_status(status: &str) -> pb::MigrationStatus {
    match status {
        "running" => pb::MigrationStatus::Running,
        "completed" => pb::MigrationStatus::Completed,
        "cancelled" => pb::MigrationStatus::Cancelled,
        "failed" => pb::MigrationStatus::Failed,
        _ => pb::MigrationStatus::Unspecified,
    }
}
