//! The gateway's OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]`
//! annotations and the `ToSchema` derives on the JSON types; served at `GET /openapi.json` and
//! rendered as HTML at `GET /docs` (see [`page`]). The spec is the HTTP API's reference: a
//! route missing here is a bug, and CI fuzzes the live gateway against it (schemathesis).
//!
//! # Adding a route
//!
//! 1. Annotate the handler next to its code:
//!    ```text
//!    #[utoipa::path(post, path = "/api/v1/things", tag = "things",
//!        request_body = CreateThing,
//!        responses(
//!            (status = 201, description = "created", body = Thing,
//!             headers(("Location" = String, description = "the new thing"))),
//!            (status = 400, response = BadRequest),
//!            (status = 503, response = Unavailable),
//!        ))]
//!    pub async fn create(…) -> ApiResult<…> { … }
//!    ```
//!    List every status the handler itself can produce, using the shared error responses in
//!    [`responses`] (`BadRequest`, `NotFound`, `Conflict`, `PayloadTooLarge`,
//!    `UnsupportedMediaType`, `Internal`, `Unavailable`, `Timeout`) so the one error shape is
//!    referenced, never repeated. JSON types get `#[derive(ToSchema)]` on the type itself.
//! 2. Declare the route once in `routes::table` (access and rate class with it); its method
//!    and path come from this annotation, and the table feeds the router and [`document`].
//! 3. Security is applied globally (`bearer`): protected routes need nothing more; the
//!    [`responses::AuthResponses`] modifier adds 401 (`WWW-Authenticate`), 403 and 429
//!    (`Retry-After`, `X-RateLimit-*`) to them. A public route says `security(())` (an empty
//!    requirement) and gets none of those.
//! 4. Every response gets the `X-Request-Id` header from the [`responses::RequestIdHeader`]
//!    modifier.

pub mod markdown;
pub mod page;
pub mod responses;
pub mod schemas;

use std::sync::LazyLock;

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use utoipa::{Modify as _, OpenApi};

use crate::{chat_relay, error, routes, views};
use responses::{AuthResponses, BearerSecurity, RequestIdHeader};

/// How the event streams are framed (`docs/sse-events.md`, the one source), appended to the
/// API's description so `/openapi.json` and `/docs` carry it.
const STREAMS: &str = include_str!("../../../../docs/sse-events.md");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "thinkbank",
        description = "Upload documents, search them and chat with them; answers stream as \
                       Server-Sent Events with `[n]` citations.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(
        schemas(
            error::ErrorBody,
            views::AssetView,
            chat_relay::events::SourcesData,
            chat_relay::events::DeltaData<'static>,
            chat_relay::events::FinalData,
        ),
        responses(
            responses::BadRequest,
            responses::NotFound,
            responses::Conflict,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::Internal,
            responses::Unavailable,
            responses::Timeout,
            responses::Unauthorized,
            responses::Forbidden,
            responses::TooManyRequests,
        ),
    ),
    // The paths come from the route table (`document`), which then runs the modifiers that
    // decorate every operation.
    modifiers(&BearerSecurity),
    security(("bearer" = [])),
    tags(
        (name = "assets", description = "Upload documents and follow their ingestion."),
        (name = "search", description = "Vector, keyword and hybrid retrieval."),
        (name = "chat", description = "Streamed, cited answers and stored conversations."),
        (name = "openai", description = "OpenAI-compatible chat completions, models and embeddings."),
        (name = "health", description = "Liveness and readiness."),
        (name = "collections", description = "Collections, their embedding models and model migrations."),
        (name = "identity", description = "Sign-in, API keys, users, tenants and the audit log."),
        (name = "meta", description = "This description and its HTML rendering."),
    )
)]
pub struct ApiDoc;

/// The description: [`ApiDoc`]'s shared parts and the paths of the route table
/// (`routes::table`), each operation then given its auth responses and request-id header.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let (paths, schemas) = routes::table::openapi_paths();
    doc.paths = paths;
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    AuthResponses.modify(&mut doc);
    RequestIdHeader.modify(&mut doc);
    doc
}

/// The spec as JSON, built once: the generated description plus the hand-written schemas.
static SPEC: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = document();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let intro = doc.info.description.take().unwrap_or_default();
    doc.info.description = Some(format!("{intro}\n\n{STREAMS}"));
    let mut spec = serde_json::to_value(&doc).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialise the OpenAPI description");
        Value::Null
    });
    schemas::merge_into(&mut spec);
    spec
});

static SPEC_JSON: LazyLock<String> = LazyLock::new(|| SPEC.to_string());

/// The OpenAPI description, as served at `/openapi.json`.
pub fn spec() -> &'static Value {
    &SPEC
}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "this OpenAPI 3.1 description",
               content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Response {
    let mut response = SPEC_JSON.as_str().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
