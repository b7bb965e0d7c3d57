//! Collections and their embedding models: `POST`/`GET /api/v1/collections`,
//! `GET /api/v1/collections/{id}`, `POST`/`DELETE /api/v1/collections/{id}/migration` (start or
//! cancel a move to another model), and `GET /api/v1/embedding-models`.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1 as pb;

use super::ApiJson;
use crate::{
    audit,
    auth::Principal,
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Conflict, Forbidden, Internal, NotFound, Timeout, Unavailable,
        UnsupportedMediaType,
    },
    state::AppState,
    views::rfc3339,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateBody {
    pub target_model: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CollectionMigration)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Collection)]
pub struct CollectionView {
    id: String,
    name: String,
    embedding_model: String,
    text_search_config: String,
    chunk_count: u64,
    created_at: String,
    migration: Option<MigrationView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CollectionList)]
pub struct ListResponse {
    collections: Vec<CollectionView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EmbeddingModel)]
pub struct ModelView {
    name: String,
    dimensions: u32,
    max_tokens: u32,
    is_default: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EmbeddingModelList)]
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

#[utoipa::path(post, path = "/api/v1/collections", tag = "collections", request_body = CreateBody,
    responses(
        (status = 201, description = "the new collection", body = CollectionView),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<CollectionView>)> {
    // A new collection is outside every collection-limited scope: only callers of the whole
    // tenant create one (a scoped key could otherwise widen what its tenant shares with it).
    if principal.collections.is_some() {
        return Err(ApiError::new(
            thinkbank_common::ErrorCode::PermissionDenied,
            "a key limited to some collections cannot create collections",
        ));
    }
    let request = pb::CreateCollectionRequest {
        name: body.name,
        embedding_model: body.embedding_model.unwrap_or_default(),
        text_search_config: body.text_search_config.unwrap_or_default(),
    };
    let created = state
        .worker
        .clone()
        .create_collection(state.request(&principal, request, state.config.worker_timeout())?)
        .await?
        .into_inner();
    record(&state, &principal, "collection.create", &created).await;
    Ok((StatusCode::CREATED, Json(view(created))))
}

#[utoipa::path(get, path = "/api/v1/collections", tag = "collections",
    responses(
        (status = 200, description = "the caller's collections, oldest first", body = ListResponse),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<ListResponse>> {
    let response = state
        .read(
            &principal,
            pb::ListCollectionsRequest {},
            |mut worker, request| async move { worker.list_collections(request).await },
        )
        .await?
        .into_inner();
    Ok(Json(ListResponse {
        collections: response.collections.into_iter().map(view).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/collections/{id}", tag = "collections",
    params(("id" = String, Path, format = Uuid, description = "the collection id")),
    responses(
        (status = 200, description = "the collection with its latest model migration",
         body = CollectionView),
        (status = 404, response = NotFound),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<CollectionView>> {
    let collection = state
        .read(
            &principal,
            pb::GetCollectionRequest { id },
            |mut worker, request| async move { worker.get_collection(request).await },
        )
        .await?
        .into_inner();
    Ok(Json(view(collection)))
}

#[utoipa::path(post, path = "/api/v1/collections/{id}/migration", tag = "collections",
    request_body = MigrateBody,
    params(("id" = String, Path, format = Uuid, description = "the collection id")),
    responses(
        (status = 202, description = "the migration started; progress in `migration`",
         body = CollectionView),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn migrate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MigrateBody>,
) -> ApiResult<(StatusCode, Json<CollectionView>)> {
    within_scope(&principal, &id)?;
    let request = pb::MigrateCollectionRequest {
        id,
        target_model: body.target_model,
    };
    let collection = state
        .worker
        .clone()
        .migrate_collection(state.request(&principal, request, state.config.worker_timeout())?)
        .await?
        .into_inner();
    record(&state, &principal, "collection.migrate", &collection).await;
    Ok((StatusCode::ACCEPTED, Json(view(collection))))
}

#[utoipa::path(delete, path = "/api/v1/collections/{id}/migration", tag = "collections",
    params(("id" = String, Path, format = Uuid, description = "the collection id")),
    responses(
        (status = 200, description = "cancelled; the collection stays on its model",
         body = CollectionView),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn cancel_migration(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<CollectionView>> {
    within_scope(&principal, &id)?;
    let collection = state
        .worker
        .clone()
        .cancel_migration(state.request(
            &principal,
            pb::CancelMigrationRequest { id },
            state.config.worker_timeout(),
        )?)
        .await?
        .into_inner();
    record(
        &state,
        &principal,
        "collection.migration_cancel",
        &collection,
    )
    .await;
    Ok(Json(view(collection)))
}

/// 404 for a collection outside a scoped caller's collections, as for an unknown one. The
/// worker limits the call to the caller's collections too; this keeps the rule at the door.
fn within_scope(principal: &Principal, id: &str) -> ApiResult<()> {
    let Some(own) = &principal.collections else {
        return Ok(());
    };
    let id = crate::routes::parse_id(id)?;
    if own.contains(&id) {
        Ok(())
    } else {
        Err(ApiError::new(
            thinkbank_common::ErrorCode::NotFound,
            format!("collection {id} not found"),
        ))
    }
}

/// Collection changes belong in the audit log.
async fn record(state: &AppState, principal: &Principal, action: &str, c: &pb::Collection) {
    let target = format!("collection:{}", c.id);
    let details = serde_json::json!({
        "name": c.name,
        "embedding_model": c.embedding_model,
        "target_model": c.migration.as_ref().map(|m| m.target_model.clone()),
    });
    audit::record(
        &state.audit,
        audit::Event {
            tenant_id: principal.tenant_id,
            actor: &principal.actor(),
            action,
            target: &target,
            details,
        },
    )
    .await;
}

#[utoipa::path(get, path = "/api/v1/embedding-models", tag = "collections",
    responses(
        (status = 200, description = "the configured embedding models", body = ModelsResponse),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn models(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<ModelsResponse>> {
    let response = state
        .read(
            &principal,
            pb::ListEmbeddingModelsRequest {},
            |mut worker, request| async move { worker.list_embedding_models(request).await },
        )
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
