//! The worker's error type and its mapping onto gRPC status codes (via the shared table).

use thinkbank_common::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unimplemented(String),
    /// A quota or cap of the caller was reached; the message names it and its limit.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("embedding failed: {0}")]
    Embedding(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    /// The LLM failed; it knows its own code and public message (`llm::LlmError::code`).
    Llm(#[from] crate::llm::LlmError),
}

pub type Result<T, E = WorkerError> = std::result::Result<T, E>;

impl WorkerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Self::Unimplemented(_) => ErrorCode::Unimplemented,
            Self::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Database(error) if is_connectivity_error(error) => ErrorCode::Unavailable,
            Self::Database(_) | Self::ObjectStore(_) | Self::Embedding(_) | Self::Internal(_) => {
                ErrorCode::Internal
            }
            Self::Llm(error) => error.code(),
        }
    }
}

fn is_connectivity_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

impl From<WorkerError> for tonic::Status {
    fn from(error: WorkerError) -> Self {
        let code = error.code();
        if let WorkerError::Llm(llm) = &error {
            // The caller may show this: it says what failed without the provider's internals.
            tracing::warn!(error = %llm, "llm request failed");
            return code.status(llm.public_message());
        }
        if code == ErrorCode::Internal || code == ErrorCode::Unavailable {
            // Logged once here, where it becomes a response; callers get no internals.
            tracing::error!(error = %error, "request failed");
            return code.status(match code {
                ErrorCode::Unavailable => "a dependency of the worker is unavailable; retry later",
                _ => "internal error; see the worker log",
            });
        }
        code.status(error.to_string())
    }
}

/// Parses a UUID field, naming the field in the error.
pub fn parse_uuid(field: &str, value: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(value.trim())
        .map_err(|_| WorkerError::InvalidArgument(format!("{field} must be a UUID, got '{value}'")))
}
