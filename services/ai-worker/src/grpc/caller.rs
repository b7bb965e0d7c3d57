//! Who may call the worker, and for which tenant.
//!
//! The worker is internal: with an internal token configured (`THINKBANK_INTERNAL_TOKEN`),
//! only callers presenting it (`authorization: Bearer <token>`) are served — in practice the
//! gateway, which alone decides the tenant (`x-thinkbank-tenant`) and the collections a caller
//! may see (`x-thinkbank-collections`, comma-separated). Without a token (a trusted private
//! network or a developer machine) those headers are taken as given and a call without them
//! acts for the default tenant.

use std::sync::Arc;

use thinkbank_common::secret::constant_time_eq;
use tonic::{Status, metadata::MetadataMap};
use uuid::Uuid;

use crate::tenancy::{DEFAULT_TENANT_ID, Tenant};

pub const TENANT_HEADER: &str = "x-thinkbank-tenant";
pub const COLLECTIONS_HEADER: &str = "x-thinkbank-collections";

#[derive(Debug, Clone, Default)]
pub struct Callers {
    internal_token: Option<Arc<str>>,
}

impl Callers {
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
