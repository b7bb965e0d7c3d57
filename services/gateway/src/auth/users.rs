//! The user store: accounts that sign in with a password.
//!
//! A username is unique within its tenant, not across tenants, so that creating or
//! registering a user never reveals another tenant's users. Signing in therefore names the
//! tenant (`tenant`: its name or id) unless the account is one whose name is unique among
//! the accounts that sign in without a tenant: the default tenant's users, and accounts made
//! before usernames became per-tenant (`legacy_global_name`; they were unique then). A
//! partial unique index keeps that set unambiguous.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use thinkbank_common::ErrorCode;
use uuid::Uuid;

use super::{Role, passwords};
use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub username: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Reader)
    }
}

const COLUMNS: &str = "id, tenant_id, username, role, created_at, disabled_at";

/// 3–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_username(username: &str) -> Result<(), ApiError> {
    let ok = (3..=64).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username must be 3-64 characters of letters, digits, '.', '_', '-', '@'",
        ))
    }
}

pub async fn create(
    pool: &PgPool,
    tenant_id: Uuid,
    username: &str,
    password: String,
    role: Role,
) -> Result<UserRow, ApiError> {
    validate_username(username)?;
    passwords::validate(&password)?;
    let password_hash = passwords::hash(password).await?;
    let inserted: Option<UserRow> = sqlx::query_as(&format!(
        "INSERT INTO gateway.users (id, tenant_id, username, password_hash, role) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(username)
    .bind(password_hash)
    .bind(role.as_str())
    .fetch_optional(pool)
    .await
    .map_err(crate::error::database)?;
    inserted.ok_or_else(|| {
        ApiError::new(
            ErrorCode::AlreadyExists,
            format!("username '{username}' is taken"),
        )
    })
}

/// Longest tenant name or id a sign-in may name (tenant names have at most 100 characters).
const MAX_TENANT_CHARS: usize = 100;

/// Whether an account could have this name in this tenant: anything else is never looked up
/// (nor counted by the sign-in throttle, whose memory it would fill).
pub fn could_exist(tenant: Option<&str>, username: &str) -> bool {
    validate_username(username).is_ok() && tenant.is_none_or(tenant_could_exist)
}

/// Whether `tenant` could name a tenant (by name or id).
pub fn tenant_could_exist(tenant: &str) -> bool {
    tenant.chars().count() <= MAX_TENANT_CHARS
}

/// The active user with this name and password, in the tenant named by `tenant` (its name or
/// id) or, without one, among the accounts that sign in without a tenant (see the module
/// comment). The same error for every failure, so the answer reveals neither which usernames
/// nor which tenants exist.
pub async fn authenticate(
    pool: &PgPool,
    tenant: Option<&str>,
    username: &str,
    password: String,
) -> Result<UserRow, ApiError> {
    // A name no user can have is not looked up (a megabyte of it would cost the database a
    // round trip for nothing).
    let found: Option<(String, Uuid)> = match tenant {
        _ if !could_exist(tenant, username) => None,
        Some(tenant) => sqlx::query_as(
            "SELECT u.password_hash, u.id FROM gateway.users u \
             JOIN gateway.tenants t ON t.id = u.tenant_id \
             WHERE u.username = $1 AND u.disabled_at IS NULL \
               AND (t.id::text = lower($2) OR t.name = $2) \
             ORDER BY t.id::text = lower($2) DESC LIMIT 1",
        )
        .bind(username)
        .bind(tenant.trim())
        .fetch_optional(pool)
        .await
        .map_err(crate::error::database)?,
        None => sqlx::query_as(
            "SELECT password_hash, id FROM gateway.users \
             WHERE username = $1 AND disabled_at IS NULL \
               AND (legacy_global_name OR tenant_id = $2)",
        )
        .bind(username)
        .bind(crate::DEFAULT_TENANT_ID)
        .fetch_optional(pool)
        .await
        .map_err(crate::error::database)?,
    };
    // Hash even for an unknown user so both paths take as long.
    let (stored, id) = found.unwrap_or_else(|| (DUMMY_HASH.to_owned(), Uuid::nil()));
    if !passwords::verify(password, stored).await || id.is_nil() {
        return Err(super::unauthenticated("wrong username or password"));
    }
    get(pool, id).await
}

/// An argon2id hash of a random string, verified against when the username is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
    4b6tKlHVQs4m3K4yM0l6S0qMhQm1x1m6J2hQmZ0x9bA";

pub async fn get(pool: &PgPool, id: Uuid) -> Result<UserRow, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM gateway.users WHERE id = $1 AND disabled_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(crate::error::database)?
    .ok_or_else(|| super::unauthenticated("the account no longer exists or is disabled"))
}

pub async fn list(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<UserRow>, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM gateway.users WHERE tenant_id = $1 ORDER BY created_at"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
    .map_err(crate::error::database)
}

/// Changes the role of a user of the tenant; 404 for anyone else.
pub async fn set_role(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
    role: Role,
) -> Result<UserRow, ApiError> {
    sqlx::query_as(&format!(
        "UPDATE gateway.users SET role = $3 WHERE id = $1 AND tenant_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(tenant_id)
    .bind(role.as_str())
    .fetch_optional(pool)
    .await
    .map_err(crate::error::database)?
    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("user {id} not found")))
}
