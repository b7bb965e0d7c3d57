//! Tenant provisioning and quota overrides through the application. These calls act on the
//! tenant their request names, not on the caller's: only the gateway (holding the internal
//! token) makes them, for operators and for open sign-up.

use uuid::Uuid;

use super::Worker;
use crate::{
    error::Result,
    tenants::{self, Quotas, TenantRow},
};

impl Worker {
    /// Creates the tenant and its `default` collection; `true` when it did not exist yet (the
    /// same id and name again is not an error).
    pub async fn create_tenant(&self, id: Uuid, name: &str) -> Result<(TenantRow, bool)> {
        tenants::create(&self.pool, id, name).await
    }

    pub async fn tenant_quotas(&self, id: Uuid) -> Result<Quotas> {
        tenants::quotas(&self.pool, id).await
    }

    pub async fn set_tenant_quotas(&self, id: Uuid, quotas: Quotas) -> Result<Quotas> {
        tenants::set_quotas(&self.pool, id, quotas).await
    }
}
