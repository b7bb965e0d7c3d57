//! The first admin key. A fresh installation has no credentials, so nobody could create any:
//! when `THINKBANK_BOOTSTRAP_ADMIN_KEY` is set and the default tenant has no keys and no users
//! yet, that key becomes its admin key. Later starts change nothing (a revoked bootstrap key
//! stays revoked).
//!
//! Also at start: with an audit key, the audit chain's end is keyed (see
//! `audit::seal_unkeyed`), as soon as the database answers.

use crate::{
    DEFAULT_TENANT_ID, audit,
    auth::{Role, keys},
    state::AppState,
};

const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Keys the end of the audit chain now if the database is ready, else keeps trying in the
/// background (the worker may still be applying migrations).
pub async fn audit_chain(state: &AppState) {
    if state.audit.key.is_none() {
        return;
    }
    if audit::seal_unkeyed(&state.audit).await.is_ok() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY_EVERY) => {}
            }
            match audit::seal_unkeyed(&state.audit).await {
                Ok(()) => return,
                Err(error) => tracing::debug!(%error, "cannot key the audit chain yet"),
            }
        }
    });
}

/// Installs the bootstrap key now if the database is ready, else keeps trying in the
/// background (the worker may still be applying migrations).
pub async fn admin_key(state: &AppState) {
    let Some(key) = state.config.bootstrap_admin_key.clone() else {
        return;
    };
    let Some(prefix) = keys::prefix_of(&key).map(str::to_owned) else {
        tracing::error!("THINKBANK_BOOTSTRAP_ADMIN_KEY is not a well-formed key (tb_<12>_<32>)");
        return;
    };
    if try_install(state, &key, &prefix).await.is_ok() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY_EVERY) => {}
            }
            if try_install(&state, &key, &prefix).await.is_ok() {
                return;
            }
        }
    });
}

async fn try_install(state: &AppState, key: &str, prefix: &str) -> Result<(), ()> {
    let pool = &state.database;
    let fresh: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM gateway.api_keys WHERE tenant_id = $1) \
            AND NOT EXISTS (SELECT 1 FROM gateway.users WHERE tenant_id = $1)",
    )
    .bind(DEFAULT_TENANT_ID)
    .fetch_one(pool)
    .await;
    match fresh {
        Err(error) => {
            tracing::debug!(%error, "identity store not ready for the bootstrap key yet");
            Err(())
        }
        Ok(false) => Ok(()),
        Ok(true) => {
            let new = keys::CreateKey {
                tenant_id: DEFAULT_TENANT_ID,
                name: "bootstrap admin",
                role: Role::Admin,
                collection_ids: None,
                created_by: "bootstrap",
            };
            // Two replicas starting together: the prefix is unique, so one insert wins.
            match keys::insert(pool, &new, key, prefix).await {
                Ok(row) => {
                    tracing::info!(key_id = %row.id, "installed the bootstrap admin key");
                    audit::record(
                        &state.audit,
                        audit::Event {
                            tenant_id: DEFAULT_TENANT_ID,
                            actor: "bootstrap",
                            action: "key.create",
                            target: &format!("key:{}", row.id),
                            details: serde_json::json!({"name": row.name, "role": row.role}),
                        },
                    )
                    .await;
                    Ok(())
                }
                Err(_) => Err(()),
            }
        }
    }
}
