//! The shared parts of every operation: the error responses (all in the one error shape,
//! `#/components/schemas/Error`), the `bearer` security scheme, the auth-related responses of
//! protected routes and the `X-Request-Id` header on every response.

use utoipa::{
    Modify, ToResponse,
    openapi::{
        OpenApi, Ref, RefOr,
        content::Content,
        header::{Header, HeaderBuilder},
        path::{Operation, PathItem},
        response::{Response, ResponseBuilder},
        schema::{ObjectBuilder, Schema, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

/// Name of the security scheme every protected route requires.
pub const BEARER: &str = "bearer";

fn typed(kind: Type) -> Schema {
    Schema::Object(ObjectBuilder::new().schema_type(kind).build())
}

fn header(kind: Type, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(typed(kind))
        .description(Some(description))
        .build()
}

fn retry_after() -> (&'static str, Header) {
    (
        "Retry-After",
        header(Type::Integer, "seconds to wait before retrying"),
    )
}

/// A response carrying the error shape, with `headers`.
fn error_response(description: &str, headers: Vec<(&'static str, Header)>) -> Response {
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("Error"))),
    );
    for (name, header) in headers {
        builder = builder.header(name, header);
    }
    builder.build()
}

/// Declares a reusable error response (`#/components/responses/<Name>`).
macro_rules! error_responses {
    ($($name:ident => $description:literal $(, $header:expr)*;)+) => {$(
        #[doc = $description]
        #[derive(Debug)]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description, vec![$($header),*]).into())
            }
        }
    )+};
}

error_responses! {
    BadRequest => "invalid_argument: the request is malformed or a value is out of range; \
                   the message names the field";
    NotFound => "not_found: no such resource";
    Conflict => "failed_precondition or already_exists: the resource's state does not allow this";
    PayloadTooLarge => "payload_too_large: the body exceeds the configured limit";
    UnsupportedMediaType => "unsupported_media_type: the body is not of the content type this \
                             operation reads";
    Internal => "internal: an unexpected failure (logged with the request id)";
    Unavailable => "unavailable: the AI worker or the LLM provider cannot answer now", retry_after();
    Timeout => "deadline_exceeded or cancelled: the AI worker did not answer in time";
    Unauthorized => "unauthenticated: no, malformed, unknown, revoked or expired bearer token",
        ("WWW-Authenticate", header(Type::String, "`Bearer` with the reason, as RFC 6750 describes"));
    Forbidden => "permission_denied: the token is valid but may not do this";
    TooManyRequests => "resource_exhausted: the key's rate limit or quota is used up",
        retry_after(),
        ("X-RateLimit-Limit", header(Type::Integer, "requests allowed per window")),
        ("X-RateLimit-Remaining", header(Type::Integer, "requests left in the window")),
        ("X-RateLimit-Reset", header(Type::Integer, "seconds until the window resets"));
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// Declares the `bearer` scheme: an API key (`tb_…`) or a JWT in `Authorization: Bearer`.
#[derive(Debug)]
pub struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("API key (tb_…) or JWT")
            .description(Some(
                "`Authorization: Bearer <token>` with an API key (`tb_…`) or a JWT. Every route \
                 requires it except those whose security lists an empty requirement.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// True when the operation overrides the global requirement with an empty one (`security(())`).
pub fn is_public(operation: &Operation) -> bool {
    operation
        .security
        .as_ref()
        .is_some_and(|requirements| requirements.iter().all(|r| *r == Default::default()))
}

/// Adds 401, 403 and 429 to every protected operation.
#[derive(Debug)]
pub struct AuthResponses;

impl Modify for AuthResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item).filter(|o| !is_public(o)) {
                for (status, name) in [
                    ("401", "Unauthorized"),
                    ("403", "Forbidden"),
                    ("429", "TooManyRequests"),
                ] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| Ref::from_response_name(name).into());
                }
            }
        }
    }
}

/// Documents `X-Request-Id` on every response (the client's own id when it sent one).
#[derive(Debug)]
pub struct RequestIdHeader;

impl Modify for RequestIdHeader {
    fn modify(&self, openapi: &mut OpenApi) {
        let request_id = || {
            header(
                Type::String,
                "the request's id: the one the client sent in `X-Request-Id`, else a new UUID; \
                 error bodies repeat it",
            )
        };
        let mut responses: Vec<&mut Response> = Vec::new();
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                responses.extend(operation.responses.responses.values_mut().filter_map(
                    |r| match r {
                        RefOr::T(response) => Some(response),
                        RefOr::Ref(_) => None,
                    },
                ));
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            responses.extend(components.responses.values_mut().filter_map(|r| match r {
                RefOr::T(response) => Some(response),
                RefOr::Ref(_) => None,
            }));
        }
        for response in responses {
            response
                .headers
                .insert("X-Request-Id".to_owned(), request_id());
        }
    }
}
