//! Who may call the worker, and for which tenant.
//!
//! The worker is internal: only callers presenting its internal token
//! (`authorization: Bearer <THINKBANK_INTERNAL_TOKEN>`) are served — in practice the gateway,
//! which alone decides the tenant (`x-thinkbank-tenant`) and the collections a caller may see
//! (`x-thinkbank-collections`, comma-separated). The worker fails closed: it does not start
//! without a token unless the operator opts out explicitly (tests, a developer machine), and
//! then those headers are taken as given and a call without them acts for the default tenant.
//! The gateway also names the principal (`x-thinkbank-principal`) and its role
//! (`x-thinkbank-role`), which decide whose conversations a call may touch.

use std::sync::Arc;

use thinkbank_common::secret::constant_time_eq;
use tonic::{Status, metadata::MetadataMap};
use uuid::Uuid;

use crate::{
    chat::conversations::Access,
    tenancy::{DEFAULT_TENANT_ID, Tenant},
};

pub use thinkbank_proto::metadata::{
    COLLECTIONS as COLLECTIONS_HEADER, PRINCIPAL as PRINCIPAL_HEADER, ROLE as ROLE_HEADER,
    TENANT as TENANT_HEADER,
};

#[derive(Debug, Clone, Default)]
pub struct Callers {
    internal_token: Option<Arc<str>>,
}

/// Why the worker refuses to start: serving without a token would let anyone who reaches the
/// port act for any tenant.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to start without an internal token: set THINKBANK_INTERNAL_TOKEN (the gateway \
     sends the same value), or, only for tests and a developer machine, pass \
     --insecure-no-internal-token (THINKBANK_INSECURE_NO_INTERNAL_TOKEN=true) to let anyone who \
     reaches the gRPC port act for any tenant"
)]
pub struct MissingInternalToken;

impl Callers {
    /// The callers the worker serves: those presenting `internal_token`. Without a token it
    /// fails closed unless `insecure` says otherwise, which is logged as a warning.
    pub fn from_config(
        internal_token: Option<String>,
        insecure: bool,
    ) -> Result<Self, MissingInternalToken> {
        let callers = Self::new(internal_token);
        match (&callers.internal_token, insecure) {
            (Some(_), _) => Ok(callers),
            (None, true) => {
                tracing::warn!(
                    "INSECURE: no internal token (--insecure-no-internal-token); every caller \
                     that reaches the gRPC port is trusted and may act for any tenant"
                );
                Ok(callers)
            }
            (None, false) => Err(MissingInternalToken),
        }
    }

    pub fn new(internal_token: Option<String>) -> Self {
        Self {
            internal_token: internal_token.filter(|t| !t.is_empty()).map(Arc::from),
        }
    }

    /// Authenticates the call and reads the tenant it acts for.
    pub fn tenant(&self, metadata: &MetadataMap) -> Result<Tenant, Status> {
        if let Some(expected) = &self.internal_token {
            let presented = metadata
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
                return Err(Status::unauthenticated(
                    "the worker only serves callers with its internal token \
                     (authorization: Bearer <THINKBANK_INTERNAL_TOKEN>)",
                ));
            }
        }
        let id = match header(metadata, TENANT_HEADER)? {
            Some(value) => Uuid::parse_str(value)
                .map_err(|_| Status::invalid_argument(format!("{TENANT_HEADER} must be a UUID")))?,
            None => DEFAULT_TENANT_ID,
        };
        let tenant = Tenant::new(id);
        match header(metadata, COLLECTIONS_HEADER)? {
            None => Ok(tenant),
            Some(list) => {
                let ids = list
                    .split(',')
                    .map(|id| Uuid::parse_str(id.trim()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        Status::invalid_argument(format!(
                            "{COLLECTIONS_HEADER} must be comma-separated UUIDs"
                        ))
                    })?;
                Ok(tenant.limited_to(ids))
            }
        }
    }
}

/// Whose conversations the call may touch. Call after `Callers::tenant`, which authenticated
/// it: the principal and role are taken from the gateway as given. Only an admin limited to no
/// collections counts as an admin of the tenant, so a collection-scoped admin never reads
/// other principals' conversations.
pub fn access(metadata: &MetadataMap, tenant: &Tenant) -> Result<Access, Status> {
    let principal = header(metadata, PRINCIPAL_HEADER)?
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let role = header(metadata, ROLE_HEADER)?;
    Ok(Access {
        principal,
        tenant_admin: role == Some("admin") && tenant.collections.is_none(),
    })
}

fn header<'a>(metadata: &'a MetadataMap, name: &str) -> Result<Option<&'a str>, Status> {
    match metadata.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| Status::invalid_argument(format!("{name} is not ASCII"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn with_a_token_configured_only_callers_presenting_it_are_served() {
        let callers = Callers::new(Some("s3cret".into()));
        assert!(callers.tenant(&metadata(&[])).is_err());
        assert!(
            callers
                .tenant(&metadata(&[("authorization", "Bearer wrong")]))
                .is_err()
        );
        let tenant = callers
            .tenant(&metadata(&[("authorization", "Bearer s3cret")]))
            .unwrap();
        assert_eq!(tenant.id, DEFAULT_TENANT_ID);
    }

    #[test]
    fn without_a_token_the_worker_fails_closed_unless_told_otherwise() {
        let refused = Callers::from_config(None, false).unwrap_err().to_string();
        assert!(refused.contains("THINKBANK_INTERNAL_TOKEN"), "{refused}");
        assert!(
            refused.contains("--insecure-no-internal-token"),
            "{refused}"
        );
        // An empty token is no token.
        assert!(Callers::from_config(Some(String::new()), false).is_err());
        assert!(Callers::from_config(None, true).is_ok());
        let callers = Callers::from_config(Some("s3cret".into()), false).unwrap();
        assert!(callers.tenant(&metadata(&[])).is_err());
    }

    #[test]
    fn only_an_unscoped_admin_is_an_admin_of_the_tenant() {
        let callers = Callers::default();
        let pairs = [(PRINCIPAL_HEADER, "user:u1"), (ROLE_HEADER, "admin")];
        let unscoped = callers.tenant(&metadata(&pairs)).unwrap();
        let access = super::access(&metadata(&pairs), &unscoped).unwrap();
        assert_eq!(access.principal.as_deref(), Some("user:u1"));
        assert!(access.tenant_admin);
        let scoped = unscoped.clone().limited_to(vec![Uuid::from_u128(5)]);
        assert!(
            !super::access(&metadata(&pairs), &scoped)
                .unwrap()
                .tenant_admin
        );
        let reader = [(PRINCIPAL_HEADER, "key:k"), (ROLE_HEADER, "reader")];
        assert!(
            !super::access(&metadata(&reader), &unscoped)
                .unwrap()
                .tenant_admin
        );
        // Naming nobody is the trusted internal caller, acting for the tenant as a whole.
        assert_eq!(
            super::access(&metadata(&[]), &unscoped).unwrap().principal,
            None
        );
    }

    #[test]
    fn tenant_and_collections_come_from_metadata() {
        let callers = Callers::default();
        let a = Uuid::from_u128(42);
        let c = Uuid::from_u128(43);
        let tenant = callers
            .tenant(&metadata(&[
                (TENANT_HEADER, &a.to_string()),
                (COLLECTIONS_HEADER, &c.to_string()),
            ]))
            .unwrap();
        assert_eq!(tenant.id, a);
        assert!(tenant.allows(c));
        assert!(!tenant.allows(a));
        assert!(
            callers
                .tenant(&metadata(&[(TENANT_HEADER, "nope")]))
                .is_err()
        );
    }
}
