//! Sign-in for people: register, log in (access + refresh token), refresh, log out, and
//! `me` (who the presented credentials belong to, for any kind of credential).

use std::net::SocketAddr;

use axum::{
    Extension, Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use thinkbank_common::ErrorCode;
use uuid::Uuid;

use crate::{
    audit,
    auth::{self, Principal, Role, Subject, login_throttle, tokens::IssuedTokens, users},
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Conflict, Forbidden, TooManyRequests, Unauthorized, Unavailable,
        UnsupportedMediaType,
    },
    routes::{ApiJson, tenants},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
    /// The account's tenant, by name or id. Usernames are unique per tenant; without a
    /// tenant the name is looked up among the default tenant's users and accounts made before
    /// usernames were per-tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Public, limited per client address (`THINKBANK_RATE_LIMIT_AUTH_PER_MIN`) and per account
/// name: after `THINKBANK_LOGIN_MAX_FAILURES` failures in a row the name is locked (429 with
/// `Retry-After`) whether or not an account has it.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "identity", security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "signed in", body = IssuedTokens),
        (status = 400, response = BadRequest),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<IssuedTokens>, Response> {
    let tenant = body
        .tenant
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    // Names no account can have are not counted (they are never looked up, and a megabyte of
    // one must not become a megabyte of throttle state); the per-address limit covers them.
    let attempt = match users::could_exist(tenant, &body.username).then(|| {
        state
            .login_throttle
            .begin(&throttle_key(tenant, &body.username))
    }) {
        None => None,
        Some(Ok(attempt)) => Some(attempt),
        Some(Err(retry_after)) => {
            return Err(crate::error::too_many_requests(
                format!("too many failed sign-ins for this account name; retry in {retry_after} s"),
                retry_after,
            ));
        }
    };
    match users::authenticate(&state.database, tenant, &body.username, body.password).await {
        Ok(user) => {
            if let Some(attempt) = attempt {
                attempt.succeeded();
            }
            let issued = state.tokens.issue(&state.database, &user).await?;
            audit::record(
                &state.audit,
                audit::Event {
                    tenant_id: user.tenant_id,
                    actor: &format!("user:{}", user.username),
                    action: "auth.login",
                    target: &format!("user:{}", user.id),
                    details: serde_json::json!({}),
                },
            )
            .await;
            Ok(Json(issued))
        }
        Err(error) => {
            if error.code == ErrorCode::Unauthenticated {
                if let Some(locked) = attempt.and_then(login_throttle::Attempt::failed) {
                    tracing::warn!(locked_secs = locked, "sign-in locked for an account name");
                }
                audit::record(
                    &state.audit,
                    audit::Event {
                        tenant_id: crate::DEFAULT_TENANT_ID,
                        actor: "anonymous",
                        action: "auth.login_failed",
                        // A name no user can have is anyone's text: record its size only.
                        target: &match users::validate_username(&body.username) {
                            Ok(()) => format!("username:{}", body.username),
                            Err(_) => format!("username:(invalid, {} bytes)", body.username.len()),
                        },
                        // Like the name, a tenant no sign-in could name is recorded by size.
                        details: match tenant {
                            Some(t) if users::tenant_could_exist(t) => {
                                serde_json::json!({"tenant": t})
                            }
                            Some(t) => serde_json::json!({"tenant_bytes": t.len()}),
                            None => serde_json::json!({}),
                        },
                    },
                )
                .await;
            }
            Err(error.into())
        }
    }
}

/// The throttle counts names as submitted, per named tenant (whether or not either exists).
fn throttle_key(tenant: Option<&str>, username: &str) -> String {
    format!("{}/{username}", tenant.unwrap_or("").to_lowercase())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// Exchanges a refresh token (once) for new tokens.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "identity", security(()),
    request_body = RefreshBody,
    responses(
        (status = 200, description = "new tokens; the presented refresh token is spent",
         body = IssuedTokens),
        (status = 400, response = BadRequest),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Json<IssuedTokens>> {
    let user_id = auth::tokens::consume_refresh(&state.database, &body.refresh_token)
        .await?
        .ok_or_else(|| {
            auth::unauthenticated("the refresh token is unknown, expired or already used")
        })?;
    let user = users::get(&state.database, user_id).await?;
    Ok(Json(state.tokens.issue(&state.database, &user).await?))
}

/// Revokes a refresh token. The access token expires on its own (within its short lifetime).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "identity", security(()),
    request_body = RefreshBody,
    responses(
        (status = 204, description = "the refresh token is revoked (or was not live)"),
        (status = 400, response = BadRequest),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
        (status = 429, response = TooManyRequests),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<StatusCode> {
    auth::tokens::consume_refresh(&state.database, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub username: String,
    pub password: String,
    /// Only an admin adding a user to its tenant chooses the role (default reader).
    #[serde(default)]
    pub role: Option<Role>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Registered {
    pub user: users::UserRow,
    /// Open sign-up: the new tenant, whose name or id signs in with the username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<tenants::TenantRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<IssuedTokens>,
}

/// With an admin's credentials: adds a user to the admin's tenant. Without credentials and
/// with open sign-up: creates a new tenant whose first user (its admin) this is.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "identity",
    security((), ("bearer" = [])),
    request_body = RegisterBody,
    responses(
        (status = 201, description = "the user (and, for open sign-up, its tokens)",
         body = Registered),
        (status = 400, response = BadRequest),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<impl IntoResponse, Response> {
    let (user, tenant, tokens) = match auth::bearer(&headers) {
        Some(token) => {
            let client =
                crate::client_addr::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
            let admin = auth::resolve_from(&state, client, token).await?;
            if admin.role < Role::Admin {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "only admins add users to a tenant",
                )
                .into());
            }
            // A user reaches the whole tenant: a collection-scoped admin may not make one.
            admin.require_tenant_admin()?;
            let role = body.role.unwrap_or(Role::Reader);
            let user = users::create(
                &state.database,
                admin.tenant_id,
                &body.username,
                body.password,
                role,
            )
            .await?;
            audit_user_created(&state, &admin.actor(), &user).await;
            (user, None, None)
        }
        None if state.config.open_signup => {
            if body.role.is_some() {
                return Err(ApiError::invalid(
                    "role cannot be chosen at sign-up: the first user of a new tenant is its admin",
                )
                .into());
            }
            users::validate_username(&body.username)?;
            auth::passwords::validate(&body.password)?;
            // The tenant's name must not be derived from the username alone: a clash would
            // answer 409 and so tell that someone else registered that name.
            let suffix: String = rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric)
                .take(8)
                .map(|c| char::from(c).to_ascii_lowercase())
                .collect();
            let tenant =
                tenants::create(&state, &format!("user-{}-{suffix}", body.username)).await?;
            let user = users::create(
                &state.database,
                tenant.id,
                &body.username,
                body.password,
                Role::Admin,
            )
            .await?;
            audit_user_created(&state, "anonymous", &user).await;
            let tokens = state.tokens.issue(&state.database, &user).await?;
            (user, Some(tenant), Some(tokens))
        }
        None => {
            return Err(auth::unauthenticated(
                "sign-up is closed: an admin adds users (THINKBANK_OPEN_SIGNUP is off)",
            )
            .into());
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user,
            tenant,
            tokens,
        }),
    ))
}

pub async fn audit_user_created(state: &AppState, actor: &str, user: &users::UserRow) {
    audit::record(
        &state.audit,
        audit::Event {
            tenant_id: user.tenant_id,
            actor,
            action: "user.create",
            target: &format!("user:{}", user.id),
            details: serde_json::json!({"username": user.username, "role": user.role}),
        },
    )
    .await;
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub tenant_id: Uuid,
    pub role: Role,
    pub kind: &'static str,
    pub name: String,
    pub collection_ids: Option<Vec<Uuid>>,
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "identity",
    responses((status = 200, description = "who the credential belongs to", body = Me)))]
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Me> {
    let (kind, name) = match &principal.subject {
        Subject::ApiKey { name, .. } => ("api_key", name.clone()),
        Subject::User { username, .. } => ("user", username.clone()),
        Subject::External { subject } => ("external", subject.clone()),
        Subject::Gateway => ("gateway", "gateway".to_owned()),
    };
    Json(Me {
        tenant_id: principal.tenant_id,
        role: principal.role,
        kind,
        name,
        collection_ids: principal.collections.as_deref().map(<[Uuid]>::to_vec),
    })
}
