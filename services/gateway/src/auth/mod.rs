//! Who is calling, and may they. Every route but the public ones (health, docs, the UI and
//! the sign-in endpoints) needs `Authorization: Bearer <token>`, where the token is an API key
//! (`tb_…`), a JWT this gateway issued at login, or a JWT of an external identity provider.
//!
//! Credentials are judged per client address too: refused ones count against
//! `THINKBANK_RATE_LIMIT_INVALID_CREDENTIALS_PER_MIN`, past which the address gets 429 before
//! any lookup (`resolve_from`).
//!
//! The resolved `Principal` goes into the request's extensions, where handlers take it
//! (`Extension<Principal>`) and hand it to every worker call they make (`worker_client::Caller`).

pub mod external;
pub mod key_cache;
pub mod keys;
pub mod login_throttle;
pub mod passwords;
pub mod policy;
pub mod tokens;
pub mod users;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use thinkbank_common::ErrorCode;
use uuid::Uuid;

use crate::{error::ApiError, limits::Class, state::AppState};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "reader" => Some(Self::Reader),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    ApiKey {
        id: Uuid,
        name: String,
    },
    User {
        id: Uuid,
        username: String,
    },
    External {
        subject: String,
    },
    /// The gateway itself, for calls no client made (the readiness page's worker info).
    Gateway,
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub role: Role,
    /// `None`: every collection of the tenant.
    pub collections: Option<Arc<[Uuid]>>,
    pub subject: Subject,
}

impl Principal {
    /// The gateway acting for itself: the default tenant, reading only.
    pub fn gateway() -> Self {
        Self {
            tenant_id: crate::DEFAULT_TENANT_ID,
            role: Role::Reader,
            collections: None,
            subject: Subject::Gateway,
        }
    }

    /// Whether this caller reaches every collection `scope` reaches (`None`: the whole
    /// tenant). A scoped caller may only grant, revoke or change what it covers, so it can
    /// never hand out or take away more than it holds.
    pub fn covers(&self, scope: Option<&[Uuid]>) -> bool {
        match (&self.collections, scope) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(own), Some(scope)) => scope.iter().all(|c| own.contains(c)),
        }
    }

    /// 403 unless the caller is an admin of its whole tenant (limited to no collection).
    /// Users and new collections reach the whole tenant, so only such an admin manages them.
    pub fn require_tenant_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin && self.collections.is_none() {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "only an admin of the whole tenant (limited to no collection) may do this",
            ))
        }
    }

    /// A short, loggable name of the caller, e.g. `key:3f0c…` or `user:alice`.
    pub fn actor(&self) -> String {
        match &self.subject {
            Subject::ApiKey { id, .. } => format!("key:{id}"),
            Subject::User { username, .. } => format!("user:{username}"),
            Subject::External { subject } => format!("external:{subject}"),
            Subject::Gateway => "gateway".into(),
        }
    }

    /// The stable id of this caller that owns what it starts (conversations, live chats),
    /// sent to the worker as `x-thinkbank-principal`: `user:<uuid>`, `key:<uuid>` or
    /// `external:<tenant>:<subject>`. Ids, not names, so a renamed or re-created user never
    /// inherits another's conversations. An external subject that is not plain printable ASCII
    /// (it travels in gRPC metadata) is named by its SHA-256 instead.
    pub fn owner_id(&self) -> String {
        match &self.subject {
            Subject::External { subject }
                if !subject.bytes().all(|b| b.is_ascii_graphic()) || subject.len() > 256 =>
            {
                use sha2::{Digest as _, Sha256};
                let digest = Sha256::digest(subject.as_bytes());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("external:{}:sha256-{hex}", self.tenant_id)
            }
            _ => self.limit_key(),
        }
    }

    /// The key the rate limiter counts this caller under.
    pub fn limit_key(&self) -> String {
        match &self.subject {
            Subject::ApiKey { id, .. } => format!("key:{id}"),
            Subject::User { id, .. } => format!("user:{id}"),
            Subject::External { subject } => format!("external:{}:{subject}", self.tenant_id),
            Subject::Gateway => "gateway".into(),
        }
    }
}

/// Resolves a bearer token to its principal.
pub async fn resolve(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if token.starts_with(keys::KEY_PREFIX) {
        return keys::authenticate(state, token).await;
    }
    match tokens::algorithm(token)? {
        jsonwebtoken::Algorithm::HS256 => state.tokens.verify_access(token),
        _ => match &state.external_idp {
            Some(idp) => idp.verify(token).await,
            None => Err(unauthenticated(
                "the token is not signed by this gateway and no external identity provider is \
                 configured",
            )),
        },
    }
}

/// The client's address (see `client_addr`): the peer, or the forwarded client behind a
/// trusted proxy.
pub fn client_ip(state: &AppState, request: &Request) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    crate::client_addr::client_ip(peer, request.headers(), &state.config.trusted_proxies)
}

/// Resolves `token` presented from `client`, counting refused credentials per address: once
/// an address has used up `THINKBANK_RATE_LIMIT_INVALID_CREDENTIALS_PER_MIN`, its requests get
/// 429 before their credentials are looked up (a guessed key costs the database nothing more).
/// The error is the response to send (401 with its challenge, or 429).
pub async fn resolve_from(
    state: &AppState,
    client: IpAddr,
    token: &str,
) -> Result<Principal, Response> {
    let key = format!("ip:{client}");
    let budget = state.limiter.peek(&key, Class::InvalidCredentials);
    if !budget.allowed {
        return Err(refused_credentials(budget));
    }
    match resolve(state, token).await {
        Ok(principal) => Ok(principal),
        Err(error) if error.code == ErrorCode::Unauthenticated => {
            let decision = state.limiter.check(&key, Class::InvalidCredentials);
            if decision.allowed {
                Err(with_challenge(error))
            } else {
                Err(refused_credentials(decision))
            }
        }
        Err(error) => Err(error.into_response()),
    }
}

fn refused_credentials(decision: crate::limits::Decision) -> Response {
    crate::metrics::METRICS.rate_limited(Class::InvalidCredentials);
    let mut response = ApiError::new(
        ErrorCode::ResourceExhausted,
        format!(
            "too many invalid credentials from this address; retry in {} s",
            decision.retry_after_secs.max(1)
        ),
    )
    .into_response();
    decision.write_headers(response.headers_mut());
    response
}

pub fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

/// A route's guard: its declared access and rate class (see `routes::table`).
#[derive(Debug, Clone)]
pub struct Guard {
    pub state: AppState,
    pub access: policy::Access,
    pub class: Option<Class>,
}

/// Authenticates, authorises and rate-limits a request for the route it matched, then serves
/// it with its principal. Public routes with a class are counted per client address.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let Guard {
        state,
        access,
        class,
    } = guard;
    let Some(required) = access.role() else {
        let key = format!("ip:{}", client_ip(&state, &request));
        return limited(&state, &key, class, next.run(request)).await;
    };
    let principal = match bearer(request.headers()) {
        None => Err(with_challenge(unauthenticated(
            "this endpoint needs Authorization: Bearer <API key or access token>",
        ))),
        Some(token) => resolve_from(&state, client_ip(&state, &request), token).await,
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    if principal.role < required {
        return ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "this endpoint needs the {} role; the caller has {}",
                required.as_str(),
                principal.role.as_str()
            ),
        )
        .into_response();
    }
    let key = principal.limit_key();
    let mut request = request;
    request.extensions_mut().insert(principal);
    limited(&state, &key, class, next.run(request)).await
}

/// Serves `serve` if `key` has budget left in `class`, with the rate-limit headers either way
/// (no class: served uncounted).
async fn limited(
    state: &AppState,
    key: &str,
    class: Option<Class>,
    serve: impl std::future::Future<Output = Response>,
) -> Response {
    let Some(class) = class else {
        return serve.await;
    };
    let decision = state.limiter.check(key, class);
    let mut response = if decision.allowed {
        serve.await
    } else {
        crate::metrics::METRICS.rate_limited(class);
        ApiError::new(
            ErrorCode::ResourceExhausted,
            format!(
                "rate limit of {} requests per minute reached; retry in {} s",
                decision.limit,
                decision.retry_after_secs.max(1)
            ),
        )
        .into_response()
    };
    decision.write_headers(response.headers_mut());
    response
}

/// The token of an `Authorization: Bearer <token>` header, if there is a non-empty one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A 401 with the `WWW-Authenticate` challenge RFC 6750 asks for.
pub fn with_challenge(error: ApiError) -> Response {
    let code = error.code;
    let mut response = error.into_response();
    if code == ErrorCode::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"thinkbank\""),
        );
    }
    response
}
