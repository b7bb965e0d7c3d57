//! Tenants as the worker keeps them: provisioning a tenant's rows (the tenant and its
//! `default` collection) and its quota overrides (`worker.tenant_quotas`, enforced by
//! `assets::quota`). The gateway reaches this through the `Tenants` RPCs; it never writes these
//! tables itself.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    error::{Result, WorkerError},
    tenancy::DEFAULT_TENANT_ID,
};

/// Longest tenant name, in bytes (as the gateway has always accepted).
pub const MAX_NAME_BYTES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A tenant's quota overrides: `None` takes the worker's default, 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Quotas {
    pub max_assets: Option<i64>,
    pub max_bytes: Option<i64>,
    pub max_chunks: Option<i64>,
}

impl Quotas {
    /// Refuses a negative limit, naming its field.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("max_assets", self.max_assets),
            ("max_bytes", self.max_bytes),
            ("max_chunks", self.max_chunks),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(WorkerError::InvalidArgument(format!(
                    "{name} must be 0 (no limit) or more, or unset (the default)"
                )));
            }
        }
        Ok(())
    }
}

/// The name as stored (trimmed), or INVALID_ARGUMENT naming the field.
pub fn valid_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(WorkerError::InvalidArgument(format!(
            "name must be 1-{MAX_NAME_BYTES} characters"
        )));
    }
    Ok(name)
}

/// Creates tenant `id` named `name` and its `default` collection (the default tenant's model
/// and text-search configuration), in one transaction. Returns the tenant and whether it was
/// created: the same id and name again is the existing tenant (a retried call), while an id or
/// a name that belongs to another tenant is ALREADY_EXISTS.
pub async fn create(pool: &PgPool, id: Uuid, name: &str) -> Result<(TenantRow, bool)> {
    let name = valid_name(name)?;
    let mut tx = pool.begin().await?;
    let inserted: Option<TenantRow> = sqlx::query_as(
        "INSERT INTO worker.tenants (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING \
         RETURNING id, name, created_at",
    )
    .bind(id)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(tenant) = inserted else {
        drop(tx);
        return existing(pool, id, name).await.map(|tenant| (tenant, false));
    };
    sqlx::query(
        "INSERT INTO worker.collections (id, tenant_id, name, embedding_model, text_search_config) \
         SELECT $1, $2, 'default', embedding_model, text_search_config \
         FROM worker.collections WHERE tenant_id = $3 AND name = 'default'",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id)
    .bind(DEFAULT_TENANT_ID)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((tenant, true))
}

/// After a conflict: the tenant when both its id and name match, else which one is taken.
async fn existing(pool: &PgPool, id: Uuid, name: &str) -> Result<TenantRow> {
    let found: Option<TenantRow> = sqlx::query_as(
        "SELECT id, name, created_at FROM worker.tenants WHERE id = $1 OR name = $2",
    )
    .bind(id)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    match found {
        Some(tenant) if tenant.id == id && tenant.name == name => Ok(tenant),
        Some(tenant) if tenant.id == id => Err(WorkerError::AlreadyExists(format!(
            "tenant {id} exists with another name"
        ))),
        _ => Err(WorkerError::AlreadyExists(format!(
            "a tenant named '{name}' exists"
        ))),
    }
}

/// NOT_FOUND unless tenant `id` exists.
async fn require_tenant(pool: &PgPool, id: Uuid) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM worker.tenants WHERE id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?;
    if exists {
        Ok(())
    } else {
        Err(WorkerError::NotFound(format!("tenant {id} not found")))
    }
}

/// The overrides of tenant `id` (all `None` when it has none).
pub async fn quotas(pool: &PgPool, id: Uuid) -> Result<Quotas> {
    require_tenant(pool, id).await?;
    let quotas: Option<Quotas> = sqlx::query_as(
        "SELECT max_assets, max_bytes, max_chunks FROM worker.tenant_quotas WHERE tenant_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(quotas.unwrap_or_default())
}

/// Replaces the overrides of tenant `id` and returns them.
pub async fn set_quotas(pool: &PgPool, id: Uuid, quotas: Quotas) -> Result<Quotas> {
    quotas.validate()?;
    require_tenant(pool, id).await?;
    sqlx::query(
        "INSERT INTO worker.tenant_quotas (tenant_id, max_assets, max_bytes, max_chunks) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id) DO UPDATE SET max_assets = excluded.max_assets, \
             max_bytes = excluded.max_bytes, max_chunks = excluded.max_chunks, \
             updated_at = now()",
    )
    .bind(id)
    .bind(quotas.max_assets)
    .bind(quotas.max_bytes)
    .bind(quotas.max_chunks)
    .execute(pool)
    .await?;
    Ok(quotas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_and_negative_quotas_name_their_field() {
        assert_eq!(valid_name("  acme ").unwrap(), "acme");
        assert!(valid_name("   ").is_err());
        assert!(valid_name(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        let error = Quotas {
            max_bytes: Some(-1),
            ..Quotas::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            error.to_string().starts_with("max_bytes must be"),
            "{error}"
        );
        assert!(
            Quotas {
                max_assets: Some(0),
                ..Quotas::default()
            }
            .validate()
            .is_ok()
        );
    }
}
