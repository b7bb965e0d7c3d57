//! The `thinkbank.v1` gRPC contract, generated from `proto/thinkbank/v1/*.proto`.
//!
//! Both services and every Rust client depend on this crate; clients in other languages
//! generate their own code from the same `.proto` files.

pub mod json;

/// Generated messages, the `AiWorker` and `Tenants` server traits and their clients.
pub mod v1 {
    tonic::include_proto!("thinkbank.v1");
}

/// What both services agree on besides the messages: the call metadata the gateway sets and
/// the tenant every installation has. Defined once here so the two sides cannot drift apart.
pub mod contract {
    /// The tenant that exists on every installation (created by the worker's first migration,
    /// mirrored in `gateway.tenants`); its admins are the operators. Calls that name no tenant
    /// act for it.
    pub const DEFAULT_TENANT_ID: uuid::Uuid = uuid::Uuid::from_u128(1);

    /// gRPC metadata the gateway sets on every worker call, naming who the call is for. The
    /// worker trusts them only from callers presenting its internal token.
    pub mod metadata {
        /// The tenant the call acts for, a UUID. Absent: the default tenant
        /// (`super::DEFAULT_TENANT_ID`).
        pub const TENANT: &str = "x-thinkbank-tenant";
        /// The collections the caller may use, comma-separated UUIDs. Absent: every collection
        /// of the tenant.
        pub const COLLECTIONS: &str = "x-thinkbank-collections";
        /// The principal that makes the call, an opaque stable id such as `user:<uuid>`,
        /// `key:<uuid>` or `external:<tenant>:<subject>`. Conversations belong to it. Absent: a
        /// trusted internal caller acting for the tenant as a whole (grpcurl with the token).
        pub const PRINCIPAL: &str = "x-thinkbank-principal";
        /// The principal's role in its tenant: `reader`, `editor` or `admin`. Only an admin of
        /// the whole tenant (no collection limit) may read other principals' conversations.
        pub const ROLE: &str = "x-thinkbank-role";
    }
}

pub use contract::metadata;

/// The encoded `FileDescriptorSet` of every thinkbank proto (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("thinkbank_descriptor");
