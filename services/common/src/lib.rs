//! Pieces both thinkbank services share: the error-code table that keeps gRPC and HTTP
//! statuses consistent, logging set-up, and the shutdown signal.

pub mod error_code;
pub mod logging;
pub mod shutdown;
pub mod sse;

pub use error_code::ErrorCode;
