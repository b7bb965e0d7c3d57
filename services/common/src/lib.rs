//! Pieces both thinkbank services share: the error-code table that keeps gRPC and HTTP
//! statuses consistent, logging and tracing set-up, metrics helpers, trace-context
//! propagation, the shutdown signal, and the duration syntax of settings.

pub mod db_spans;
pub mod duration;
pub mod error_code;
pub mod logging;
pub mod metrics;
pub mod secret;
pub mod shutdown;
pub mod sse;
pub mod trace_context;

pub use error_code::ErrorCode;
