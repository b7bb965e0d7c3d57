//! `/api/v1/tenants/{id}/quotas`: the operator's per-tenant overrides of the worker's default
//! quotas (`THINKBANK_QUOTA_MAX_*`). The worker keeps and enforces them; these routes read and
//! set them through its `GetTenantQuotas`/`SetTenantQuotas` RPCs.

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use thinkbank_proto::v1 as pb;

use crate::{
    audit,
    auth::Principal,
    error::ApiResult,
    openapi::responses::{BadRequest, NotFound, Unavailable, UnsupportedMediaType},
    routes::{ApiJson, parse_id, tenants::require_operator},
    state::AppState,
};

/// A tenant's quota overrides. `null` (or absent): the worker's default applies; 0: no limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
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

impl From<pb::TenantQuotas> for TenantQuotas {
    fn from(quotas: pb::TenantQuotas) -> Self {
        Self {
            max_assets: quotas.max_assets,
            max_bytes: quotas.max_bytes,
            max_chunks: quotas.max_chunks,
        }
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
    let request = AppState::internal_request(
        pb::GetTenantQuotasRequest {
            tenant_id: id.to_string(),
        },
        state.config.worker_timeout(),
    );
    let quotas = state.tenants.clone().get_tenant_quotas(request).await?;
    Ok(Json(quotas.into_inner().into()))
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
    // The worker validates (a negative limit is 400 naming its field) and answers 404 for an
    // unknown tenant.
    let request = pb::SetTenantQuotasRequest {
        tenant_id: id.to_string(),
        quotas: Some(pb::TenantQuotas {
            max_assets: body.max_assets,
            max_bytes: body.max_bytes,
            max_chunks: body.max_chunks,
        }),
    };
    let body: TenantQuotas = state
        .tenants
        .clone()
        .set_tenant_quotas(AppState::internal_request(
            request,
            state.config.worker_timeout(),
        ))
        .await?
        .into_inner()
        .into();
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
