//! Tenants: created by the operators (admins of the default tenant) or by open sign-up. A new
//! tenant starts with a `default` collection using the same embedding model and text-search
//! configuration as the default tenant's, and, when an operator creates it, a first admin key.
//! The gateway keeps its tenants in `gateway.tenants`; the worker provisions its side through
//! the `Tenants` RPCs.

use axum::{Extension, Json, extract::State, http::StatusCode, response::IntoResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thinkbank_common::ErrorCode;
use thinkbank_proto::v1 as pb;
use uuid::Uuid;

use crate::{
    DEFAULT_TENANT_ID, audit,
    auth::{Principal, Role, keys},
    error::{ApiError, ApiResult},
    openapi::responses::{BadRequest, Conflict, Unavailable, UnsupportedMediaType},
    routes::ApiJson,
    state::AppState,
};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Tenant)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Creates a tenant: the gateway's row (its name is unique) and, through the worker's
/// `CreateTenant` RPC, the worker's side (the tenant and its default collection). The gateway's
/// row commits only once the worker has answered, so a failed call leaves nothing here, and the
/// RPC is idempotent for the same id and name.
pub async fn create(state: &AppState, name: &str) -> Result<TenantRow, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name must be 1-100 characters"));
    }
    let mut tx = state
        .database
        .begin()
        .await
        .map_err(crate::error::database)?;
    let tenant: Option<TenantRow> = sqlx::query_as(
        "INSERT INTO gateway.tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING \
         RETURNING id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(crate::error::database)?;
    let tenant = tenant.ok_or_else(|| {
        ApiError::new(
            ErrorCode::AlreadyExists,
            format!("a tenant named '{name}' exists"),
        )
    })?;
    let request = pb::CreateTenantRequest {
        tenant_id: tenant.id.to_string(),
        name: tenant.name.clone(),
    };
    state
        .tenants
        .clone()
        .create_tenant(AppState::internal_request(
            request,
            state.config.worker_timeout(),
        ))
        .await?;
    tx.commit().await.map_err(crate::error::database)?;
    Ok(tenant)
}

/// Operators are the admins of the default tenant, limited to no collection: they may manage
/// other tenants and verify the audit chain all tenants share.
pub(crate) fn require_operator(principal: &Principal) -> Result<(), ApiError> {
    if principal.tenant_id == DEFAULT_TENANT_ID
        && principal.role == Role::Admin
        && principal.collections.is_none()
    {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only operators (admins of the whole default tenant) may do this",
        ))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantBody {
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTenant {
    pub tenant: TenantRow,
    /// The new tenant's first admin key. Shown once.
    pub admin_key: String,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "identity", request_body = CreateTenantBody,
    responses(
        (status = 201, description = "the tenant and its first admin key (shown once)",
         body = CreatedTenant),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ))]
pub async fn create_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateTenantBody>,
) -> ApiResult<impl IntoResponse> {
    require_operator(&principal)?;
    let tenant = create(&state, &body.name).await?;
    let actor = principal.actor();
    let (admin_key, _) = keys::create(
        &state.database,
        keys::CreateKey {
            tenant_id: tenant.id,
            name: "first admin key",
            role: Role::Admin,
            collection_ids: None,
            created_by: &actor,
        },
    )
    .await?;
    audit::record(
        &state.audit,
        audit::Event {
            tenant_id: tenant.id,
            actor: &actor,
            action: "tenant.create",
            target: &format!("tenant:{}", tenant.id),
            details: serde_json::json!({"name": tenant.name}),
        },
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant { tenant, admin_key }),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantRow>,
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "identity",
    responses(
        (status = 200, description = "every tenant (operators only)", body = TenantList),
        (status = 503, response = Unavailable),
    ))]
pub async fn list_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<TenantList>> {
    require_operator(&principal)?;
    let tenants: Vec<TenantRow> =
        sqlx::query_as("SELECT id, name, created_at FROM gateway.tenants ORDER BY created_at")
            .fetch_all(&state.database)
            .await
            .map_err(crate::error::database)?;
    Ok(Json(TenantList { tenants }))
}
