//! Caps on open progress streams (`GET /api/v1/assets/{id}/events`) per principal and per
//! tenant, so one caller cannot hold an unbounded number of long-lived streams.
//!
//! Counts live in this process (like the rate limits): with several gateway replicas each
//! enforces the caps for the streams it serves. A permit is released when the stream ends,
//! however it ends (asset final, deadline, client gone, shutdown).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use thinkbank_common::ErrorCode;

use crate::error::ApiError;

#[derive(Debug, Default)]
struct Counts {
    by_principal: HashMap<String, usize>,
    by_tenant: HashMap<uuid::Uuid, usize>,
}

#[derive(Debug, Clone)]
pub struct WatchCaps {
    per_principal: usize,
    per_tenant: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One open stream; dropping it gives its place back.
#[derive(Debug)]
pub struct WatchPermit {
    principal: String,
    tenant: uuid::Uuid,
    counts: Arc<Mutex<Counts>>,
}

fn refused(message: String) -> ApiError {
    ApiError::new(ErrorCode::ResourceExhausted, message)
}

impl WatchCaps {
    pub fn new(per_principal: usize, per_tenant: usize) -> Self {
        Self {
            per_principal,
            per_tenant,
            counts: Arc::default(),
        }
    }

    /// Takes a place for one stream of `principal` (its stable id) in `tenant`, or 429 naming
    /// the cap that is full.
    pub fn open(&self, principal: &str, tenant: uuid::Uuid) -> Result<WatchPermit, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.by_principal.get(principal).copied().unwrap_or(0);
        if mine >= self.per_principal {
            return Err(refused(format!(
                "too many open progress streams: at most {} per caller \
                 (THINKBANK_SSE_MAX_WATCHES_PER_PRINCIPAL); close one first",
                self.per_principal
            )));
        }
        let tenants = counts.by_tenant.get(&tenant).copied().unwrap_or(0);
        if tenants >= self.per_tenant {
            return Err(refused(format!(
                "too many open progress streams: at most {} per tenant \
                 (THINKBANK_SSE_MAX_WATCHES_PER_TENANT); close one first",
                self.per_tenant
            )));
        }
        counts.by_principal.insert(principal.to_owned(), mine + 1);
        counts.by_tenant.insert(tenant, tenants + 1);
        Ok(WatchPermit {
            principal: principal.to_owned(),
            tenant,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        // Entries at zero are removed, so the maps only hold callers with open streams.
        if let Some(n) = counts.by_principal.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_principal.remove(&self.principal);
            }
        }
        if let Some(n) = counts.by_tenant.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_tenant.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_principal_and_per_tenant_and_places_come_back() {
        let caps = WatchCaps::new(2, 3);
        let (t1, t2) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let a1 = caps.open("a", t1).unwrap();
        let _a2 = caps.open("a", t1).unwrap();
        let refused = caps.open("a", t1).unwrap_err();
        assert!(refused.body().error.message.contains("per caller"));
        let _b1 = caps.open("b", t1).unwrap();
        let refused = caps.open("b", t1).unwrap_err();
        assert!(refused.body().error.message.contains("per tenant"));
        // Another tenant is not affected.
        let _c1 = caps.open("c", t2).unwrap();
        drop(a1);
        assert!(caps.open("b", t1).is_ok());
    }
}
