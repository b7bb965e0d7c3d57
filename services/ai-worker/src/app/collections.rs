//! Collections through the application: the model a new collection gets, and model
//! migrations (queued work, so the runner is woken for them).

use uuid::Uuid;

use super::{Enqueued, Worker};
use crate::{
    collections::{self, CollectionView, migration},
    error::{Result, WorkerError},
    tenancy::Tenant,
};

/// The text search configuration a collection gets when none is named.
const DEFAULT_TEXT_SEARCH_CONFIG: &str = "english";

#[derive(Debug, Clone)]
pub struct NewCollection {
    pub name: String,
    /// Empty: the default model.
    pub embedding_model: String,
    /// PostgreSQL text search configuration; empty: English.
    pub text_search_config: String,
}

impl Worker {
    pub async fn create_collection(
        &self,
        tenant: &Tenant,
        new: NewCollection,
    ) -> Result<CollectionView> {
        let model = self.models.get(&new.embedding_model)?.info().name.clone();
        let config = match new.text_search_config.trim() {
            "" => DEFAULT_TEXT_SEARCH_CONFIG,
            other => other,
        };
        let row = collections::create(&self.pool, tenant, &new.name, &model, config).await?;
        Ok(CollectionView {
            row,
            chunk_count: 0,
            migration: None,
        })
    }

    pub async fn list_collections(&self, tenant: &Tenant) -> Result<Vec<CollectionView>> {
        collections::list(&self.pool, tenant).await
    }

    pub async fn get_collection(&self, tenant: &Tenant, id: Uuid) -> Result<CollectionView> {
        collections::get(&self.pool, tenant, id).await
    }

    /// Starts moving collection `id` to `target_model` and wakes the runner for it.
    pub async fn migrate_collection(
        &self,
        tenant: &Tenant,
        id: Uuid,
        target_model: &str,
    ) -> Result<CollectionView> {
        if target_model.trim().is_empty() {
            return Err(WorkerError::InvalidArgument(
                "target_model must name a configured model".into(),
            ));
        }
        let target = self.models.get(target_model)?.info().name.clone();
        migration::start(&self.pool, tenant, id, &target).await?;
        self.enqueued(Enqueued::Migration);
        collections::get(&self.pool, tenant, id).await
    }

    pub async fn cancel_migration(&self, tenant: &Tenant, id: Uuid) -> Result<CollectionView> {
        migration::cancel(&self.pool, tenant, id).await?;
        collections::get(&self.pool, tenant, id).await
    }
}
