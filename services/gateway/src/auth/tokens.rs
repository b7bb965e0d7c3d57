//! Tokens this gateway issues to signed-in users: short-lived HS256 access JWTs, verified
//! without a database round trip, and opaque refresh tokens, stored hashed and rotated on use
//! (a refresh token works once; logout revokes it).

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::{Rng as _, distr::Alphanumeric};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Principal, Role, Subject, keys, unauthenticated, users::UserRow};
use crate::error::ApiError;

const ISSUER: &str = "thinkbank";
const REFRESH_PREFIX: &str = "tbr_";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    /// Tenant id.
    tid: Uuid,
    role: Role,
    name: String,
    iss: String,
    iat: i64,
    exp: i64,
}

#[derive(Clone)]
pub struct Tokens {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

/// What a successful sign-in or refresh returns.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedTokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
}

impl Tokens {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        Self {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue_access(&self, user: &UserRow) -> Result<String, ApiError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user.id,
            tid: user.tenant_id,
            role: user.role(),
            name: user.username.clone(),
            iss: ISSUER.into(),
            iat: now,
            exp: now + i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            ApiError::new(
                thinkbank_common::ErrorCode::Internal,
                format!("cannot sign token: {e}"),
            )
        })
    }

    /// The principal of a valid, unexpired access token this gateway signed.
    pub fn verify_access(&self, token: &str) -> Result<Principal, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    unauthenticated("the access token has expired; refresh it or sign in again")
                }
                _ => unauthenticated("the access token is not valid"),
            },
        )?;
        let claims = data.claims;
        Ok(Principal {
            tenant_id: claims.tid,
            role: claims.role,
            collections: None,
            subject: Subject::User {
                id: claims.sub,
                username: claims.name,
            },
        })
    }

    /// Signs in `user`: a new access token and a new refresh token.
    pub async fn issue(&self, pool: &PgPool, user: &UserRow) -> Result<IssuedTokens, ApiError> {
        let access_token = self.issue_access(user)?;
        let refresh_token: String = format!(
            "{REFRESH_PREFIX}{}",
            rand::rng()
                .sample_iter(Alphanumeric)
                .map(char::from)
                .take(43)
                .collect::<String>()
        );
        let expires_at = Utc::now()
            + chrono::TimeDelta::from_std(self.refresh_ttl).unwrap_or(chrono::TimeDelta::days(30));
        sqlx::query(
            "INSERT INTO gateway.refresh_tokens (id, user_id, token_hash, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::now_v7())
        .bind(user.id)
        .bind(keys::hash(&refresh_token))
        .bind(expires_at)
        .execute(pool)
        .await
        .map_err(crate::error::database)?;
        Ok(IssuedTokens {
            access_token,
            token_type: "Bearer",
            expires_in: self.access_ttl.as_secs(),
            refresh_token,
        })
    }
}

/// Revokes a refresh token and returns the id of the user it belonged to, if it was live.
/// The update is the check: two concurrent uses cannot both succeed.
pub async fn consume_refresh(pool: &PgPool, token: &str) -> Result<Option<Uuid>, ApiError> {
    sqlx::query_scalar(
        "UPDATE gateway.refresh_tokens SET revoked_at = now() \
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() \
         RETURNING user_id",
    )
    .bind(keys::hash(token))
    .fetch_optional(pool)
    .await
    .map_err(crate::error::database)
}

/// The algorithm a JWT claims in its header (400-free: a malformed token is just invalid).
pub fn algorithm(token: &str) -> Result<Algorithm, ApiError> {
    jsonwebtoken::decode_header(token)
        .map(|h| h.alg)
        .map_err(|_| unauthenticated("the bearer token is neither an API key nor a valid JWT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserRow {
        UserRow {
            id: Uuid::now_v7(),
            tenant_id: Uuid::from_u128(1),
            username: "alice".into(),
            role: "editor".into(),
            created_at: Utc::now(),
            disabled_at: None,
        }
    }

    #[test]
    fn an_access_token_verifies_with_its_secret_only() {
        let tokens = Tokens::new(
            b"secret-one",
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let other = Tokens::new(
            b"secret-two",
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let token = tokens.issue_access(&user()).unwrap();
        let principal = tokens.verify_access(&token).unwrap();
        assert_eq!(principal.role, Role::Editor);
        assert_eq!(principal.tenant_id, Uuid::from_u128(1));
        assert!(other.verify_access(&token).is_err());
        assert!(tokens.verify_access("garbage").is_err());
    }

    #[test]
    fn an_expired_access_token_is_refused() {
        let tokens = Tokens::new(b"s", Duration::from_secs(0), Duration::from_secs(60));
        let mut claims_user = user();
        claims_user.role = "reader".into();
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: claims_user.id,
            tid: claims_user.tenant_id,
            role: Role::Reader,
            name: "alice".into(),
            iss: ISSUER.into(),
            iat: now - 600,
            exp: now - 300,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.encoding)
            .unwrap();
        let error = tokens.verify_access(&token).unwrap_err();
        assert!(error.message.contains("expired"), "{}", error.message);
    }
}
