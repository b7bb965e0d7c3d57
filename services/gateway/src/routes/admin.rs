//! Tenant administration: API keys, users and the audit log, always within the admin's own
//! tenant (another tenant's ids answer 404).
//!
//! A collection-scoped admin (an admin key limited to some collections) administers only
//! within its scope: it sees, mints and revokes keys whose collections are a subset of its own,
//! and it manages no users (they reach the whole tenant) and reads no audit log.

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    audit,
    auth::{Principal, Role, keys, users},
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Conflict, Forbidden, NotFound, Unavailable, UnsupportedMediaType,
    },
    routes::{ApiJson, identity::audit_user_created, parse_id},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    pub name: String,
    pub role: Role,
    /// Limit the key to these collections (default: all of the tenant's).
    #[serde(default)]
    pub collection_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The key itself. Shown once: only its hash is stored.
    pub key: String,
    #[serde(flatten)]
    pub row: keys::KeyRow,
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "identity", request_body = CreateKeyBody,
    responses(
        (status = 201, description = "the new key, shown this once", body = CreatedKey),
        (status = 403, response = Forbidden),
        (status = 415, response = UnsupportedMediaType),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> ApiResult<impl IntoResponse> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name must be 1-100 characters"));
    }
    if body.collection_ids.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::invalid(
            "collection_ids must name at least one collection (omit it for all)",
        ));
    }
    // A scoped admin cannot mint a key that sees more than it does.
    let collection_ids = match (&principal.collections, body.collection_ids) {
        (None, requested) => requested,
        (Some(own), None) => Some(own.to_vec()),
        (Some(own), Some(requested)) => {
            if let Some(outside) = requested.iter().find(|c| !own.contains(c)) {
                return Err(ApiError::new(
                    thinkbank_common::ErrorCode::PermissionDenied,
                    format!("collection {outside} is outside this key's collections"),
                ));
            }
            Some(requested)
        }
    };
    let actor = principal.actor();
    let (key, row) = keys::create(
        &state.database,
        keys::CreateKey {
            tenant_id: principal.tenant_id,
            name,
            role: body.role,
            collection_ids,
            created_by: &actor,
        },
    )
    .await?;
    audit::record(
        &state.audit,
        audit::Event {
            tenant_id: principal.tenant_id,
            actor: &actor,
            action: "key.create",
            target: &format!("key:{}", row.id),
            details: serde_json::json!({
                "name": row.name, "role": row.role, "collection_ids": row.collection_ids
            }),
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, row })))
}

/// `created_by` of a key, as a collection-limited admin sees it when the creator lies beyond
/// its scope.
const OUTSIDE_SCOPE: &str = "(outside your collections)";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<keys::KeyRow>,
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "identity",
    responses(
        (status = 200, description = "the tenant's keys within the caller's collections, newest \
         first (never the keys themselves)",
         body = KeyList),
        (status = 503, response = Unavailable),
    ))]
pub async fn list_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<KeyList>> {
    let mut keys: Vec<keys::KeyRow> = keys::list(&state.database, principal.tenant_id)
        .await?
        .into_iter()
        .filter(|k| principal.covers(k.collection_ids.as_deref()))
        .collect();
    // A collection-limited admin learns nothing of the principals beyond its scope, not even
    // the id of the wider key or the user that minted a key it may see.
    if !principal.covers(None) {
        let visible: Vec<String> = keys.iter().map(|k| format!("key:{}", k.id)).collect();
        for key in &mut keys {
            if !visible.contains(&key.created_by) {
                key.created_by = OUTSIDE_SCOPE.to_owned();
            }
        }
    }
    Ok(Json(KeyList { keys }))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "identity",
    params(("id" = String, Path, format = Uuid, description = "the id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, response = NotFound),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let row = keys::revoke(
        &state.database,
        principal.tenant_id,
        principal.collections.as_deref(),
        id,
    )
    .await?;
    // The trigger tells every gateway; this one must not answer before it forgets the key.
    state.key_cache.invalidate(&row.prefix);
    audit::record(
        &state.audit,
        audit::Event {
            tenant_id: principal.tenant_id,
            actor: &principal.actor(),
            action: "key.revoke",
            target: &format!("key:{}", row.id),
            details: serde_json::json!({"name": row.name}),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub username: String,
    pub password: String,
    #[serde(default = "reader")]
    pub role: Role,
}

fn reader() -> Role {
    Role::Reader
}

#[utoipa::path(post, path = "/api/v1/users", tag = "identity", request_body = CreateUserBody,
    responses(
        (status = 201, description = "the new user of the admin's tenant", body = users::UserRow),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> ApiResult<impl IntoResponse> {
    principal.require_tenant_admin()?;
    let user = users::create(
        &state.database,
        principal.tenant_id,
        &body.username,
        body.password,
        body.role,
    )
    .await?;
    audit_user_created(&state, &principal.actor(), &user).await;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<users::UserRow>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "identity",
    responses(
        (status = 200, description = "the tenant's users", body = UserList),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<UserList>> {
    principal.require_tenant_admin()?;
    let users = users::list(&state.database, principal.tenant_id).await?;
    Ok(Json(UserList { users }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    pub role: Role,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "identity", request_body = UpdateUserBody,
    params(("id" = String, Path, format = Uuid, description = "the id")),
    responses(
        (status = 200, description = "the user with its new role", body = users::UserRow),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedMediaType),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn update_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> ApiResult<Json<users::UserRow>> {
    principal.require_tenant_admin()?;
    let id = parse_id(&id)?;
    let user = users::set_role(&state.database, principal.tenant_id, id, body.role).await?;
    audit::record(
        &state.audit,
        audit::Event {
            tenant_id: principal.tenant_id,
            actor: &principal.actor(),
            action: "user.role_change",
            target: &format!("user:{}", user.id),
            details: serde_json::json!({"username": user.username, "role": user.role}),
        },
    )
    .await;
    Ok(Json(user))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub entries: Vec<audit::Entry>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "identity", params(AuditQuery),
    responses(
        (status = 200, description = "the tenant's audit entries, newest first", body = AuditList),
        (status = 403, response = Forbidden),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn list_audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditList>> {
    principal.require_tenant_admin()?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let entries = audit::list(&state.database, principal.tenant_id, limit).await?;
    Ok(Json(AuditList { entries }))
}

/// Verifies the whole chain (all tenants share it): `{ok, entries_checked, first_broken_seq,
/// reason}`. Operators only: the walk reads every tenant's entries and costs a full scan, so a
/// tenant's admin may neither learn about other tenants from it nor make the server repeat it.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "identity",
    responses(
        (status = 200, description = "the verdict on the whole chain (operators only)",
         body = audit::Verification),
        (status = 503, response = Unavailable),
    ))]
pub async fn verify_audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<audit::Verification>> {
    super::tenants::require_operator(&principal)?;
    Ok(Json(
        audit::verify(&state.database, state.audit.key.as_ref())
            .await
            .map_err(crate::error::database)?,
    ))
}
