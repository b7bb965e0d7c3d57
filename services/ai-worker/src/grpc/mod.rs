//! The tonic adapter: takes requests apart, calls the domain, converts results.

mod caller;
mod chat;
mod convert;
mod embeddings;
mod search_convert;
mod service;
mod tenants;
mod uploads;
mod watch;

pub use caller::{COLLECTIONS_HEADER, Callers, TENANT_HEADER};
pub use service::AiWorkerService;
pub use tenants::TenantsService;
