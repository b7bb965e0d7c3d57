//! What operators see of the worker: Prometheus metrics on the admin port, and the per-call
//! layer that traces, measures and sheds gRPC calls.

pub mod admin;
pub mod job_trace;
pub mod metrics;
pub mod rpc;

pub use metrics::METRICS;
