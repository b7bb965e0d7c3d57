//! Collections and their embedding models: `POST`/`GET /api/v1/collections`,
//! `GET /api/v1/collections/{id}`, `POST`/`DELETE /api/v1/collections/{id}/migration` (start or
//! cancel a move to another model), and `GET /api/v1/embedding-models`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1 as pb;

use super::ApiJson;
use crate::{error::ApiResult, state::AppState, views::rfc3339};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub name: String,
    /// A configured model; omitted selects the default.
    #[serde(default)]
    pub embedding_model: Option<String>,
    /// PostgreSQL text-search configuration; omitted selects `english`.
    #[serde(default)]
    pub text_search_config: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateBody {
    pub target_model: String,
}

#[derive(Debug, Serialize)]
pub struct MigrationView {
    id: String,
    source_model: String,
    target_model: String,
    /// `running`, `completed`, `cancelled` or `failed`.
    status: &'static str,
    done: u64,
    total: u64,
    error: Option<String>,
    created_at: String,
    finished_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CollectionView {
    id: String,
    name: String,
    embedding_model: String,
    text_search_config: String,
    chunk_count: u64,
    created_at: String,
    migration: Option<MigrationView>,
}

#[derive(Debug, Serialize)]
pub struct ListResponse {
    collections: Vec<CollectionView>,
}

#[derive(Debug, Serialize)]
pub struct ModelView {
    name: String,
    dimensions: u32,
    max_tokens: u32,
    is_default: bool,
}

#[derive(Debug, Serialize)]
pub struct ModelsResponse {
    models: Vec<ModelView>,
}

fn status_name(status: pb::MigrationStatus) -> &'static str {
    match status {
        pb::MigrationStatus::Running => "running",
        pb::MigrationStatus::Completed => "completed",
        pb::MigrationStatus::Cancelled => "cancelled",
        pb::MigrationStatus::Failed => "failed",
        pb::MigrationStatus::Unspecified => "unspecified",
    }
}

fn view(c: pb::Collection) -> CollectionView {
    CollectionView {
        migration: c.migration.map(|m| MigrationView {
            status: status_name(m.status()),
            id: m.id,
            source_model: m.source_model,
            target_model: m.target_model,
            done: m.done,
            total: m.total,
            error: Some(m.error).filter(|e| !e.is_empty()),
            created_at: m.created_at.map(rfc3339).unwrap_or_default(),
            finished_at: m.finished_at.map(rfc3339),
        }),
        id: c.id,
        name: c.name,
        embedding_model: c.embedding_model,
        text_search_config: c.text_search_config,
        chunk_count: c.chunk_count,
        created_at: c.created_at.map(rfc3339).unwrap_or_default(),
    }
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<CollectionView>)> {
    let request = pb::CreateCollectionRequest {
        name: body.name,
        embedding_model: body.embedding_model.unwrap_or_default(),
        text_search_config: body.text_search_config.unwrap_or_default(),
    };
    let created = state
        .worker
        .clone()
        .create_collection(state.request(request, state.config.worker_timeout()))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(view(created))))
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ListResponse>> {
    let response = state
        .worker
        .clone()
        .list_collections(
            state.request(pb::ListCollectionsRequest {}, state.config.worker_timeout()),
        )
        .await?
        .into_inner();
    Ok(Json(ListResponse {
        collections: response.collections.into_iter().map(view).collect(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CollectionView>> {
    let collection = state
        .worker
        .clone()
        .get_collection(state.request(
            pb::GetCollectionRequest { id },
            state.config.worker_timeout(),
        ))
        .await?
        .into_inner();
    Ok(Json(view(collection)))
}

pub async fn migrate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MigrateBody>,
) -> ApiResult<(StatusCode, Json<CollectionView>)> {
    let request = pb::MigrateCollectionRequest {
        id,
        target_model: body.target_model,
    };
    let collection = state
        .worker
        .clone()
        .migrate_collection(state.request(request, state.config.worker_timeout()))
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(view(collection))))
}

pub async fn cancel_migration(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CollectionView>> {
    let collection = state
        .worker
        .clone()
        .cancel_migration(state.request(
            pb::CancelMigrationRequest { id },
            state.config.worker_timeout(),
        ))
        .await?
        .into_inner();
    Ok(Json(view(collection)))
}

pub async fn models(State(state): State<AppState>) -> ApiResult<Json<ModelsResponse>> {
    let response = state
        .worker
        .clone()
        .list_embedding_models(state.request(
            pb::ListEmbeddingModelsRequest {},
            state.config.worker_timeout(),
        ))
        .await?
        .into_inner();
    Ok(Json(ModelsResponse {
        models: response
            .models
            .into_iter()
            .map(|m| ModelView {
                name: m.name,
                dimensions: m.dimensions,
                max_tokens: m.max_tokens,
                is_default: m.is_default,
            })
            .collect(),
    }))
}
