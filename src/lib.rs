//! The `thinkbank.v1` gRPC contract, generated from `proto/thinkbank/v1/*.proto`.
//!
//! Both services and every Rust client depend on this crate; clients in other languages
//! generate their own code from the same `.proto` files.

pub mod json;

/// Generated messages, the `AiWorker` server trait and the `AiWorkerClient`.
pub mod v1 {
    tonic::include_proto!("thinkbank.v1");
}

/// gRPC metadata the gateway sets on every worker call, naming who the call is for. The worker
/// trusts them only from callers presenting its internal token.
pub mod metadata {
    /// The principal that makes the call, an opaque stable id such as `user:<uuid>`,
    /// `key:<uuid>` or `external:<tenant>:<subject>`. Conversations belong to it. Absent: a
    /// trusted internal caller acting for the tenant as a whole (grpcurl with the token).
    pub const PRINCIPAL: &str = "x-thinkbank-principal";
    /// The principal's role in its tenant: `reader`, `editor` or `admin`. Only an admin of the
    /// whole tenant (no collection limit) may read other principals' conversations.
    pub const ROLE: &str = "x-thinkbank-role";
}

/// The encoded `FileDescriptorSet` of every thinkbank proto (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("thinkbank_descriptor");
