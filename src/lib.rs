//! The `thinkbank.v1` gRPC contract, generated from `proto/thinkbank/v1/*.proto`.
//!
//! Both services and every Rust client depend on this crate; clients in other languages
//! generate their own code from the same `.proto` files.

pub mod json;

/// Generated messages, the `AiWorker` server trait and the `AiWorkerClient`.
pub mod v1 {
    tonic::include_proto!("thinkbank.v1");
}

/// The encoded `FileDescriptorSet` of every thinkbank proto (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("thinkbank_descriptor");
