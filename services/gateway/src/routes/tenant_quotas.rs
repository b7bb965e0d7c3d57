//! `/api/v1/tenants/{id}/quotas`: the operator's per-tenant overrides of the worker's default
//! quotas (`THINKBANK_QUOTA_MAX_*`). The worker enforces them (`worker.tenant_quotas`); this
//! route only records them, beside the tenant rows the tenant admin already manages.

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use thinkbank_common::ErrorCode;

use crate::{
    audit,
    auth::Principal,
    error::{ApiError, ApiResult},
    openapi::responses::{BadRequest, NotFound, Unavailable, UnsupportedMediaType},
    routes::{ApiJson, parse_id, tenants::require_operator},
    state::AppState,
};

/// A tenant's quota overrides. `null` (or absent): the worker's default applies; 0: no limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantQuotas {
    /// Assets the tenant may hold, whatever their status.
    #[serde(default)]
    pub max_assets: Option<i64>,
    /// Bytes of stored assets the tenant may hold.
    #[serde(default)]
    pub max_bytes: Option<i64>,
    /// Indexed chunks the tenant may hold.
    #[serde(default)]
    pub max_chunks: Option<i64>,
}

impl TenantQuotas {
    fn validate(&self) -> Result<(), ApiError> {
        for (name, value) in [
            ("max_assets", self.max_assets),
            ("max_bytes", self.max_bytes),
            ("max_chunks", self.max_chunks),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(ApiError::invalid(format!(
                    "{name} must be 0 (no limit) or more, or null (the default)"
                )));
            }
        }
        Ok(())
    }
}

async fn tenant_exists(state: &AppState, id: uuid::Uuid) -> Result<(), ApiError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM worker.tenants WHERE id = $1)")
            .bind(id)
            .fetch_one(&state.database)
            .await
            .map_err(crate::error::database)?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("tenant {id} not found"),
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/quotas", tag = "identity",
    params(("id" = String, Path, format = Uuid, description = "the tenant id")),
    responses(
        (status = 200, description = "the tenant's overrides (null: the worker's default; \
                                      operators only)", body = TenantQuotas),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ))]
pub async fn get_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantQuotas>> {
    require_operator(&principal)?;
    let id = parse_id(&id)?;
    tenant_exists(&state, id).await?;
    let quotas: Option<TenantQuotas> = sqlx::query_as(
        "SELECT max_assets, max_bytes, max_chunks FROM worker.tenant_quotas WHERE tenant_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.database)
    .await
    .map_err(crate::error::database)?;
    Ok(Json(quotas.unwrap_or_default()))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/quotas", tag = "identity",
    params(("id" = String, Path, format = Uuid, description = "the tenant id")),
    request_body = TenantQuotas,
    responses(
        (status = 200, description = "the overrides now in force (operators only)",
         body = TenantQuotas),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ))]
pub async fn put_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TenantQuotas>,
) -> ApiResult<Json<TenantQuotas>> {
    require_operator(&principal)?;
    let id = parse_id(&id)?;
    body.validate()?;
    tenant_exists(&state, id).await?;
    sqlx::query(
        "INSERT INTO worker.tenant_quotas (tenant_id, max_assets, max_bytes, max_chunks) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id) DO UPDATE SET max_assets = excluded.max_assets, \
             max_bytes = excluded.max_bytes, max_chunks = excluded.max_chunks, \
             updated_at = now()",
    )
    .bind(id)
    .bind(body.max_assets)
    .bind(body.max_bytes)
    .bind(body.max_chunks)
    .execute(&state.database)
    .await
    .map_err(crate::error::database)?;
    audit::record(
        &state.audit,
        audit::Event {
            tenant_id: id,
            actor: &principal.actor(),
            action: "tenant.quotas",
            target: &format!("tenant:{id}"),
            details: serde_json::json!({
                "max_assets": body.max_assets,
                "max_bytes": body.max_bytes,
                "max_chunks": body.max_chunks,
            }),
        },
    )
    .await;
    Ok(Json(body))
}
