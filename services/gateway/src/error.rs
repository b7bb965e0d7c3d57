//! The one JSON error shape of the HTTP API:
//! `{"error": {"code": "invalid_argument", "message": "…", "request_id": "…"}}`,
//! with the HTTP status from the shared error-code table.

use axum::{
    Json,
    extract::{
        multipart::MultipartRejection,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use thinkbank_common::ErrorCode;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the handler's duration.
    pub static REQUEST_ID: String;
}

/// The current request id, or empty outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

/// The one error shape of the HTTP API (also the data of `error` stream events).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case class: `invalid_argument`, `not_found`, `already_exists`,
    /// `failed_precondition`, `unauthenticated`, `permission_denied`, `payload_too_large`,
    /// `unsupported_media_type`, `resource_exhausted`, `internal`, `unimplemented`,
    /// `unavailable`, `deadline_exceeded` or `cancelled`.
    pub code: &'static str,
    /// Lowercase, human-readable; names the offending field where there is one.
    pub message: String,
    /// The `X-Request-Id` of the request (empty outside one).
    pub request_id: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: self.message.clone(),
                request_id: current_request_id(),
            },
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        // A status the transport made from a broken connection (the worker restarting under a
        // call) comes as UNKNOWN with the I/O error as its source: the worker is unavailable,
        // not failing; a status the worker sent has no source.
        let transport_failure =
            status.code() == tonic::Code::Unknown && std::error::Error::source(&status).is_some();
        let code = if transport_failure {
            ErrorCode::Unavailable
        } else {
            ErrorCode::from_grpc(status.code())
        };
        let message = match status.code() {
            _ if transport_failure => "the AI worker is unavailable; retry shortly".to_owned(),
            // A status the worker sent says which dependency failed (e.g. the LLM's open
            // circuit); one made by the transport (worker down) has a source and says nothing.
            tonic::Code::Unavailable
                if std::error::Error::source(&status).is_none() && !status.message().is_empty() =>
            {
                status.message().to_owned()
            }
            tonic::Code::Unavailable => "the AI worker is unavailable; retry shortly".to_owned(),
            tonic::Code::DeadlineExceeded => "the AI worker did not answer in time".to_owned(),
            _ => status.message().to_owned(),
        };
        if code == ErrorCode::Internal || code == ErrorCode::Unavailable {
            tracing::warn!(grpc_code = ?status.code(), message = status.message(), "worker call failed");
        }
        Self { code, message }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::InvalidArgument,
        };
        Self::new(code, rejection.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        let code = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::InvalidArgument,
        };
        Self::new(code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body())).into_response();
        if matches!(
            self.code,
            ErrorCode::Unavailable | ErrorCode::ResourceExhausted
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// For handlers whose errors are responses with headers of their own (429s with a computed
/// `Retry-After`), so `?` still works on an `ApiResult`.
impl From<ApiError> for Response {
    fn from(error: ApiError) -> Self {
        error.into_response()
    }
}

/// 429 with `Retry-After: retry_after_secs` (at least 1).
pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Response {
    let mut response = ApiError::new(ErrorCode::ResourceExhausted, message).into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    response
}

/// Maps a failed identity-store query: an unreachable database is 503 (retry), anything else
/// is logged here and answered 500 without internals.
pub fn database(error: sqlx::Error) -> ApiError {
    match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(%error, "identity store unavailable");
            ApiError::new(
                ErrorCode::Unavailable,
                "the database is unavailable; retry shortly",
            )
        }
        _ => {
            tracing::error!(%error, "identity store query failed");
            ApiError::new(ErrorCode::Internal, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_is_unavailable_and_a_worker_status_keeps_its_code() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        let transport = tonic::Status::from_error(Box::new(reset));
        assert_eq!(transport.code(), tonic::Code::Unknown);
        let error = ApiError::from(transport);
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(error.message, "the AI worker is unavailable; retry shortly");

        let sent = ApiError::from(tonic::Status::unknown("the worker said so"));
        assert_eq!(sent.code, ErrorCode::from_grpc(tonic::Code::Unknown));
        assert_eq!(sent.message, "the worker said so");
    }
}
