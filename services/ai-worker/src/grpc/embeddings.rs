//! Conversions of the embedding and collection RPCs: requests into the application's types,
//! models, embeddings and collections into messages.

use thinkbank_proto::v1 as pb;

use super::convert::timestamp;
use crate::{
    app::{EmbedRequest, Embeddings, ModelList, NewCollection},
    collections::{CollectionView, MigrationStatus},
};

pub fn embed_request(message: pb::GetEmbeddingRequest) -> EmbedRequest {
    EmbedRequest {
        texts: message.texts,
        model: message.model,
        strict: message.strict,
    }
}

pub fn embeddings(embeddings: Embeddings) -> pb::GetEmbeddingResponse {
    let total_tokens = embeddings
        .embeddings
        .iter()
        .map(|e| e.token_count)
        .sum::<usize>();
    pb::GetEmbeddingResponse {
        embeddings: embeddings
            .embeddings
            .into_iter()
            .map(|e| pb::Embedding {
                values: e.vector,
                token_count: u32::try_from(e.token_count).unwrap_or(u32::MAX),
                truncated: e.truncated,
            })
            .collect(),
        model: embeddings.model.name,
        dimensions: u32::try_from(embeddings.model.dimensions).unwrap_or(0),
        total_tokens: u32::try_from(total_tokens).unwrap_or(u32::MAX),
    }
}

pub fn models(list: &ModelList) -> pb::ListEmbeddingModelsResponse {
    pb::ListEmbeddingModelsResponse {
        models: list
            .models
            .iter()
            .map(|m| pb::EmbeddingModel {
                name: m.name.clone(),
                dimensions: u32::try_from(m.dimensions).unwrap_or(0),
                max_tokens: u32::try_from(m.max_tokens).unwrap_or(u32::MAX),
                is_default: m.name == list.default_model,
            })
            .collect(),
    }
}

pub fn new_collection(message: pb::CreateCollectionRequest) -> NewCollection {
    NewCollection {
        name: message.name,
        embedding_model: message.embedding_model,
        text_search_config: message.text_search_config,
    }
}

pub fn collection(view: CollectionView) -> pb::Collection {
    let migration = view.migration.map(|(m, progress)| pb::ModelMigration {
        id: m.id.to_string(),
        source_model: m.source_model,
        target_model: m.target_model,
        status: migration_status(m.status) as i32,
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

fn migration_status(status: MigrationStatus) -> pb::MigrationStatus {
    match status {
        MigrationStatus::Running => pb::MigrationStatus::Running,
        MigrationStatus::Completed => pb::MigrationStatus::Completed,
        MigrationStatus::Cancelled => pb::MigrationStatus::Cancelled,
        MigrationStatus::Failed => pb::MigrationStatus::Failed,
    }
}
