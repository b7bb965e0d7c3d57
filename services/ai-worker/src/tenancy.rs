//! The tenant a call acts for, and the row-level-security scope its queries run in.
//!
//! Every query made for a caller runs inside `Tenant::begin`: a transaction that switches to
//! the `thinkbank_tenant` role and names the tenant (and the collections the caller may see),
//! so PostgreSQL's policies (migrations/…_row_level_security.sql) hide every other tenant's
//! rows even if a query forgot its own filter. The explicit `tenant_id` filters stay as well:
//! they are what the indexes are built for.

use std::sync::Arc;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The fixed id of the tenant that exists on every installation (defined by the contract).
pub use thinkbank_proto::contract::DEFAULT_TENANT_ID;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: Uuid,
    /// `None`: every collection of the tenant; otherwise only these.
    pub collections: Option<Arc<[Uuid]>>,
}

impl Tenant {
    /// A tenant with access to all its collections.
    pub fn new(id: Uuid) -> Self {
        Self {
            id,
            collections: None,
        }
    }

    pub fn default_tenant() -> Self {
        Self::new(DEFAULT_TENANT_ID)
    }

    /// Restricts the caller to `collections`.
    pub fn limited_to(mut self, collections: Vec<Uuid>) -> Self {
        self.collections = Some(collections.into());
        self
    }

    /// Whether the caller may use `collection_id` (before asking the database).
    pub fn allows(&self, collection_id: Uuid) -> bool {
        self.collections
            .as_deref()
            .is_none_or(|allowed| allowed.contains(&collection_id))
    }

    /// Begins a transaction in which only this tenant's rows exist.
    pub async fn begin(&self, pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.begin_with_settings(pool, &[]).await
    }

    /// The same, with transaction-local `settings` (name, value) set in the same round trip,
    /// e.g. the HNSW scan parameters of one search.
    pub async fn begin_with_settings(
        &self,
        pool: &PgPool,
        settings: &[(&'static str, &str)],
    ) -> sqlx::Result<Transaction<'static, Postgres>> {
        pool.begin_with(self.begin_statement("BEGIN", settings))
            .await
    }

    /// The same, reading from one snapshot (REPEATABLE READ, READ ONLY), for views that must
    /// be consistent across several queries.
    pub async fn begin_snapshot(
        &self,
        pool: &PgPool,
    ) -> sqlx::Result<Transaction<'static, Postgres>> {
        pool.begin_with(
            self.begin_statement("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", &[]),
        )
        .await
    }

    /// `begin` and the tenant's settings in one round trip (a simple-protocol query of two
    /// statements). `role` as a transaction-local setting is `SET LOCAL ROLE`; the settings end
    /// with the transaction, so a pooled connection never carries a tenant into the next use.
    /// Only UUIDs and the `settings` are spliced into the SQL; setting names are the code's
    /// own constants and values are quoted as string literals, so it cannot be injected into.
    fn begin_statement(&self, begin: &str, settings: &[(&'static str, &str)]) -> String {
        let collections = self
            .collections
            .as_deref()
            .map(|ids| {
                ids.iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let extra: String = settings
            .iter()
            .map(|(name, value)| {
                format!(
                    ", set_config('{name}', '{value}', true)",
                    value = value.replace('\'', "''")
                )
            })
            .collect();
        format!(
            "{begin}; SELECT set_config('role', 'thinkbank_tenant', true), \
             set_config('thinkbank.tenant_id', '{tenant}', true), \
             set_config('thinkbank.collection_ids', '{collections}', true){extra}",
            tenant = self.id,
        )
    }
}

/// Ends a read-only transaction off the caller's path: its results are final once read,
/// so the caller answers without waiting a round trip for COMMIT. The connection returns
/// to the pool when the commit completes.
pub fn finish_read(tx: Transaction<'static, Postgres>) {
    tokio::spawn(async move {
        if let Err(error) = tx.commit().await {
            tracing::debug!(%error, "cannot end a read-only transaction");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlimited_tenant_allows_every_collection_and_a_limited_one_only_its_own() {
        let a = Uuid::from_u128(7);
        let b = Uuid::from_u128(8);
        assert!(Tenant::new(a).allows(b));
        let limited = Tenant::new(a).limited_to(vec![a]);
        assert!(limited.allows(a));
        assert!(!limited.allows(b));
    }

    #[test]
    fn extra_settings_join_the_begin_statement_as_quoted_literals() {
        let statement = Tenant::new(Uuid::from_u128(7))
            .begin_statement("BEGIN", &[("hnsw.ef_search", "40"), ("x.y", "it's")]);
        assert!(statement.starts_with("BEGIN; SELECT set_config('role'"));
        assert!(statement.ends_with(
            ", set_config('hnsw.ef_search', '40', true), set_config('x.y', 'it''s', true)"
        ));
    }
}
