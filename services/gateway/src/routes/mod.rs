//! HTTP routes. Each handler validates, calls the worker, and converts the answer; errors use
//! the one JSON shape in `crate::error`.

pub mod admin;
pub mod asset_events;
pub mod assets;
pub mod chat;
pub mod collections;
pub mod conversations;
pub mod embeddings;
pub mod health;
pub mod identity;
pub mod openai;
pub mod search;
pub mod table;
pub mod tenant_quotas;
pub mod tenants;
pub mod ui;

use axum::{
    extract::{FromRequest, Request},
    response::IntoResponse,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` whose rejections (bad JSON, wrong content type, too large) use the API's error
/// shape instead of axum's plain-text bodies.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// JSON 404 for unknown routes.
pub async fn not_found() -> impl IntoResponse {
    ApiError::new(thinkbank_common::ErrorCode::NotFound, "no such route")
}

/// JSON 405 for known routes called with the wrong method.
pub async fn method_not_allowed() -> impl IntoResponse {
    let error = ApiError::new(
        thinkbank_common::ErrorCode::InvalidArgument,
        "method not allowed on this route",
    );
    let mut response = error.into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// A path id: 400 when it is not a UUID (which no resource has).
pub fn parse_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::invalid(format!("'{id}' is not a valid id")))
}
