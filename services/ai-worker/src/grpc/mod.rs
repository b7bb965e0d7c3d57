//! The tonic adapter over the application layer (`app::Worker`): each RPC authenticates,
//! converts the request, makes one call, and converts the result. No SQL and no business rule
//! lives here.

mod caller;
mod chat;
mod convert;
mod embeddings;
mod fields;
mod search_convert;
mod service;
mod tenants;
mod uploads;

pub use caller::{COLLECTIONS_HEADER, Callers, TENANT_HEADER};
pub use service::AiWorkerService;
pub use tenants::TenantsService;
