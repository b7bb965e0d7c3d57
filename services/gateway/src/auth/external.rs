//! Tokens of an external identity provider (Keycloak, Auth0, Entra ID, …), verified against
//! its JWKS with the configured issuer and audience. The tenant and role come from claims
//! (`thinkbank_tenant`, `thinkbank_role` by default), so the provider decides who belongs where.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use tokio::sync::RwLock;
use uuid::Uuid;

use super::{Principal, Role, Subject, unauthenticated};
use crate::error::ApiError;

/// Keys are re-read this often, and at once (at most every `MIN_REFRESH`) when a token names
/// a key id the cached set lacks (the provider rotated its keys).
const CACHE_FOR: Duration = Duration::from_secs(300);
const MIN_REFRESH: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct IdpSettings {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    pub tenant_claim: String,
    pub role_claim: String,
}

#[derive(Debug)]
pub struct ExternalIdp {
    settings: IdpSettings,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, Arc<JwkSet>)>>,
}

impl ExternalIdp {
    pub fn new(settings: IdpSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            settings,
            http,
            keys: RwLock::new(None),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("the bearer token is not a valid JWT"))?;
        // Only asymmetric signatures: a provider's public key must never verify an HMAC.
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(unauthenticated("the token's algorithm is not accepted"));
        }
        let jwk = self.key_for(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| unauthenticated("the identity provider's key cannot be used"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    unauthenticated("the token has expired")
                }
                _ => unauthenticated(format!("the token was rejected: {e}")),
            },
        )?;
        let claims = data.claims;
        let tenant_id = claims
            .get(&self.settings.tenant_claim)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or_else(|| {
                unauthenticated(format!(
                    "the token has no '{}' claim with a tenant id",
                    self.settings.tenant_claim
                ))
            })?;
        let role = claims
            .get(&self.settings.role_claim)
            .and_then(|v| v.as_str())
            .and_then(Role::parse)
            .unwrap_or(Role::Reader);
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        Ok(Principal {
            tenant_id,
            role,
            collections: None,
            subject: Subject::External { subject },
        })
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, ApiError> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let cached = self.keys.read().await.clone();
        if let Some((fetched, set)) = &cached {
            let fresh = fetched.elapsed() < CACHE_FOR;
            if let Some(key) = find(set).filter(|_| fresh) {
                return Ok(key);
            }
            if fetched.elapsed() < MIN_REFRESH {
                return Err(unauthenticated("the token's signing key is unknown"));
            }
        }
        let set = Arc::new(self.fetch().await?);
        *self.keys.write().await = Some((Instant::now(), set.clone()));
        find(&set).ok_or_else(|| unauthenticated("the token's signing key is unknown"))
    }

    async fn fetch(&self) -> Result<JwkSet, ApiError> {
        let unavailable = |what: String| {
            tracing::warn!(url = %self.settings.jwks_url, "{what}");
            ApiError::new(
                thinkbank_common::ErrorCode::Unavailable,
                "the identity provider's keys cannot be fetched; retry shortly",
            )
        };
        let response = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unavailable(format!("cannot fetch JWKS: {e}")))?;
        response
            .json::<JwkSet>()
            .await
            .map_err(|e| unavailable(format!("JWKS is not valid: {e}")))
    }
}
