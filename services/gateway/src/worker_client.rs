//! The gateway's client of the AiWorker. Every call carries the internal token (added by the
//! channel's interceptor) and, set per request from the principal the call is made for
//! ([`Caller`]), the tenant and collections it acts in, who that principal is and its role (the
//! worker keeps each conversation to the principal that started it). The principal is a
//! parameter of every call, never ambient state, so a call from a spawned task acts for exactly
//! whom it was given.

use thinkbank_proto::v1::ai_worker_client::AiWorkerClient;
use tonic::{
    Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
};

use crate::{auth::Principal, trace::TracedChannel};

pub type WorkerClient = AiWorkerClient<InterceptedService<TracedChannel, WorkerAuth>>;

/// The client of the worker's `Tenants` service (provisioning and quotas). Its calls name their
/// tenant in the message, so they carry only the internal token: open sign-up, which has no
/// principal yet, uses it as the operators' routes do.
pub type TenantsClient = thinkbank_proto::v1::tenants_client::TenantsClient<
    InterceptedService<TracedChannel, WorkerAuth>,
>;

/// Adds the internal token to every call.
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
}

impl Interceptor for WorkerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

/// Whom a worker call acts for, as the metadata the worker reads.
#[derive(Debug, Clone)]
pub struct Caller {
    tenant: MetadataValue<Ascii>,
    collections: Option<MetadataValue<Ascii>>,
    owner: MetadataValue<Ascii>,
    role: &'static str,
}

impl Caller {
    /// The metadata of `principal`; INTERNAL if a value cannot travel as ASCII metadata.
    pub fn of(principal: &Principal) -> Result<Self, Status> {
        let tenant = principal
            .tenant_id
            .to_string()
            .parse()
            .map_err(|_| Status::internal("tenant id is not ASCII"))?;
        let collections = principal
            .collections
            .as_ref()
            .map(|collections| {
                collections
                    .iter()
                    .map(uuid::Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
                    .parse()
                    .map_err(|_| Status::internal("collection ids are not ASCII"))
            })
            .transpose()?;
        let owner = principal
            .owner_id()
            .parse()
            .map_err(|_| Status::internal("principal id is not ASCII"))?;
        Ok(Self {
            tenant,
            collections,
            owner,
            role: principal.role.as_str(),
        })
    }

    /// Sets this caller's metadata on `request`.
    pub fn apply<T>(&self, request: &mut tonic::Request<T>) {
        let metadata = request.metadata_mut();
        metadata.insert(thinkbank_proto::metadata::TENANT, self.tenant.clone());
        if let Some(collections) = &self.collections {
            metadata.insert(thinkbank_proto::metadata::COLLECTIONS, collections.clone());
        }
        metadata.insert(thinkbank_proto::metadata::PRINCIPAL, self.owner.clone());
        metadata.insert(
            thinkbank_proto::metadata::ROLE,
            MetadataValue::from_static(self.role),
        );
    }
}
