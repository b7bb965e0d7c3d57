//! The one error-code table: every failure maps to exactly one gRPC code and one HTTP status,
//! so the worker's status codes and the gateway's responses never disagree.

use serde::Serialize;

/// A failure class, shared by both services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    /// The resource is in a state that does not allow the operation (e.g. cancelling a READY
    /// asset).
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    PayloadTooLarge,
    UnsupportedMediaType,
    ResourceExhausted,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
    Cancelled,
    Internal,
}

impl ErrorCode {
    /// The gRPC status code the worker answers with.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::AlreadyExists => tonic::Code::AlreadyExists,
            Self::FailedPrecondition => tonic::Code::FailedPrecondition,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            // gRPC has no "too large" or "unsupported type"; both are bad arguments there.
            Self::PayloadTooLarge | Self::UnsupportedMediaType => tonic::Code::InvalidArgument,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Unimplemented => tonic::Code::Unimplemented,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Self::Cancelled => tonic::Code::Cancelled,
            Self::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status the gateway answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::FailedPrecondition => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ResourceExhausted => 429,
            Self::Internal => 500,
            Self::Unimplemented => 501,
            Self::Unavailable => 503,
            Self::DeadlineExceeded | Self::Cancelled => 504,
        }
    }

    /// Classifies a gRPC status received from the worker.
    pub fn from_grpc(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::FailedPrecondition => Self::FailedPrecondition,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists => Self::AlreadyExists,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::Unimplemented => Self::Unimplemented,
            Code::Unavailable => Self::Unavailable,
            Code::DeadlineExceeded => Self::DeadlineExceeded,
            Code::Cancelled | Code::Aborted => Self::Cancelled,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => Self::Internal,
        }
    }

    /// Stable snake_case name used in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unimplemented => "unimplemented",
            Self::Unavailable => "unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
        }
    }

    /// Builds a gRPC status of this class.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::FailedPrecondition,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ResourceExhausted,
        ErrorCode::Unimplemented,
        ErrorCode::Unavailable,
        ErrorCode::DeadlineExceeded,
        ErrorCode::Cancelled,
        ErrorCode::Internal,
    ];

    #[test]
    fn grpc_round_trip_keeps_the_http_status_for_codes_grpc_can_express() {
        for code in ALL {
            let back = ErrorCode::from_grpc(code.grpc_code());
            if matches!(
                code,
                ErrorCode::PayloadTooLarge | ErrorCode::UnsupportedMediaType
            ) {
                assert_eq!(back, ErrorCode::InvalidArgument);
            } else {
                assert_eq!(back, code, "{code:?}");
            }
        }
    }

    #[test]
    fn statuses_follow_the_style_guide_table() {
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::InvalidArgument).http_status(),
            400
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::NotFound).http_status(),
            404
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::AlreadyExists).http_status(),
            409
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::Unauthenticated).http_status(),
            401
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::PermissionDenied).http_status(),
            403
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::ResourceExhausted).http_status(),
            429
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::Unavailable).http_status(),
            503
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::DeadlineExceeded).http_status(),
            504
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::Cancelled).http_status(),
            504
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::Internal).http_status(),
            500
        );
    }

    #[test]
    fn json_names_match_as_str() {
        for code in ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }
}
