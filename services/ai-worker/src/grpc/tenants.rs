//! `Tenants` over tonic, a pure adapter: authenticate with the internal token, convert, one
//! call on the application (`app/tenants.rs`), convert. Until start-up finishes every RPC answers UNAVAILABLE.

use std::sync::{Arc, OnceLock};

use thinkbank_proto::v1::{self as pb, tenants_server::Tenants};
use tonic::{Request, Response, Status};

use super::{caller::Callers, convert::timestamp};
use crate::{app::Worker, error::parse_uuid, tenants};

#[derive(Debug, Clone)]
pub struct TenantsService {
    app: Arc<OnceLock<Arc<Worker>>>,
    callers: Callers,
}

impl TenantsService {
    pub fn new(app: Arc<OnceLock<Arc<Worker>>>, callers: Callers) -> Self {
        Self { app, callers }
    }

    /// Authenticates the caller (the tenant named in its metadata is not used: these calls
    /// name their tenant in the message) and returns the application.
    fn authorise<T>(&self, request: &Request<T>) -> Result<Arc<Worker>, Status> {
        self.callers.tenant(request.metadata())?;
        self.app
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("the worker is starting; retry shortly"))
    }
}

fn quotas_to_pb(quotas: tenants::Quotas) -> pb::TenantQuotas {
    pb::TenantQuotas {
        max_assets: quotas.max_assets,
        max_bytes: quotas.max_bytes,
        max_chunks: quotas.max_chunks,
    }
}

fn quotas_from_pb(quotas: pb::TenantQuotas) -> tenants::Quotas {
    tenants::Quotas {
        max_assets: quotas.max_assets,
        max_bytes: quotas.max_bytes,
        max_chunks: quotas.max_chunks,
    }
}

#[tonic::async_trait]
impl Tenants for TenantsService {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let app = self.authorise(&request)?;
        let pb::CreateTenantRequest { tenant_id, name } = request.into_inner();
        let (tenant, created) = app
            .create_tenant(parse_uuid("tenant_id", &tenant_id)?, &name)
            .await?;
        let tenant = pb::Tenant {
            id: tenant.id.to_string(),
            name: tenant.name,
            created_at: Some(timestamp(tenant.created_at)),
        };
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant),
            created,
        }))
    }

    async fn get_tenant_quotas(
        &self,
        request: Request<pb::GetTenantQuotasRequest>,
    ) -> Result<Response<pb::TenantQuotas>, Status> {
        let app = self.authorise(&request)?;
        let id = parse_uuid("tenant_id", &request.get_ref().tenant_id)?;
        Ok(Response::new(quotas_to_pb(app.tenant_quotas(id).await?)))
    }

    async fn set_tenant_quotas(
        &self,
        request: Request<pb::SetTenantQuotasRequest>,
    ) -> Result<Response<pb::TenantQuotas>, Status> {
        let app = self.authorise(&request)?;
        let pb::SetTenantQuotasRequest { tenant_id, quotas } = request.into_inner();
        let id = parse_uuid("tenant_id", &tenant_id)?;
        let quotas = quotas_from_pb(quotas.unwrap_or_default());
        Ok(Response::new(quotas_to_pb(
            app.set_tenant_quotas(id, quotas).await?,
        )))
    }
}
