//! The gateway's client of the AiWorker. Every call carries the internal token and the tenant
//! (and collections) of the request's principal, and who that principal is and its role (the
//! worker keeps each conversation to the principal that started it); a call made outside an
//! authenticated request is refused here rather than sent without a tenant.

use thinkbank_proto::v1::ai_worker_client::AiWorkerClient;
use tonic::{
    Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
};

use crate::{auth::current_principal, trace::TracedChannel};

pub type WorkerClient = AiWorkerClient<InterceptedService<TracedChannel, WorkerAuth>>;

/// The client of the worker's `Tenants` service (provisioning and quotas). Its calls name their
/// tenant in the message, so they carry only the internal token: open sign-up, which has no
/// principal yet, uses it as the operators' routes do.
pub type TenantsClient = thinkbank_proto::v1::tenants_client::TenantsClient<
    InterceptedService<TracedChannel, InternalAuth>,
>;

/// Adds the internal token and nothing else (see `TenantsClient`).
#[derive(Debug, Clone)]
pub struct InternalAuth {
    authorization: Option<MetadataValue<Ascii>>,
}

impl Interceptor for InternalAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

#[derive(Debug, Clone)]
pub struct WorkerAuth {
    authorization: Option<MetadataValue<Ascii>>,
}

impl WorkerAuth {
    pub fn new(internal_token: Option<&str>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let authorization = internal_token
            .filter(|t| !t.is_empty())
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .context("THINKBANK_INTERNAL_TOKEN must be printable ASCII")?;
        Ok(Self { authorization })
    }

    /// The same token, for calls that carry no principal (`TenantsClient`).
    pub fn internal(&self) -> InternalAuth {
        InternalAuth {
            authorization: self.authorization.clone(),
        }
    }
}

impl Interceptor for WorkerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let principal = current_principal().ok_or_else(|| {
            Status::internal("a worker call was made outside an authenticated request")
        })?;
        let metadata = request.metadata_mut();
        if let Some(authorization) = &self.authorization {
            metadata.insert("authorization", authorization.clone());
        }
        let tenant = principal
            .tenant_id
            .to_string()
            .parse()
            .map_err(|_| Status::internal("tenant id is not ASCII"))?;
        metadata.insert(thinkbank_proto::metadata::TENANT, tenant);
        if let Some(collections) = &principal.collections {
            let list = collections
                .iter()
                .map(uuid::Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let value = list
                .parse()
                .map_err(|_| Status::internal("collection ids are not ASCII"))?;
            metadata.insert(thinkbank_proto::metadata::COLLECTIONS, value);
        }
        let owner = principal
            .owner_id()
            .parse()
            .map_err(|_| Status::internal("principal id is not ASCII"))?;
        metadata.insert(thinkbank_proto::metadata::PRINCIPAL, owner);
        metadata.insert(
            thinkbank_proto::metadata::ROLE,
            tonic::metadata::MetadataValue::from_static(principal.role.as_str()),
        );
        Ok(request)
    }
}
