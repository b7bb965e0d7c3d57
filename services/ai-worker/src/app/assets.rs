//! Assets through the application: accepting uploads (and waking the runner for them),
//! reading, listing, cancelling, reprocessing and deleting (and releasing the stored bytes).

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::{Enqueued, Page, PageRequest, Worker};
use crate::{
    assets::{AssetRow, ListFilter, Status},
    error::Result,
    ingest::{
        accept::{self, Intake, UploadMeta},
        objects,
        spool::{Spool, Spooled},
    },
    tenancy::Tenant,
};

/// How often `wait` re-reads an asset that is not final yet.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// An upload: its description and whether the caller waits until the asset is final.
#[derive(Debug)]
pub struct Upload<B> {
    pub meta: UploadMeta,
    /// The bytes: in memory ([`Bytes`]) or spooled to local disk ([`Spooled`]).
    pub content: B,
    pub wait: bool,
}

/// An accepted upload.
#[derive(Debug)]
pub struct Accepted {
    pub asset: AssetRow,
    /// The same bytes already existed in the collection: no new asset was made.
    pub deduplicated: bool,
}

/// Which assets [`Worker::list_assets`] returns.
#[derive(Debug, Default)]
pub struct AssetQuery {
    pub collection_id: Option<Uuid>,
    /// `None`: every status.
    pub status: Option<Status>,
    pub page: PageRequest,
}

impl Worker {
    fn intake(&self) -> Intake<'_> {
        Intake {
            pool: &self.pool,
            assets: &self.assets,
            objects: &self.objects,
            quotas: &self.quotas,
            max_asset_bytes: self.max_asset_bytes,
        }
    }

    /// A spool for an upload arriving in pieces, refusing more than the largest asset.
    pub fn upload_spool(&self) -> Result<Spool> {
        Spool::create(self.max_asset_bytes as u64)
    }

    /// Stores and queues bytes held in memory.
    pub async fn accept(&self, tenant: &Tenant, upload: Upload<Bytes>) -> Result<Accepted> {
        let accepted = accept::accept(&self.intake(), upload.meta, upload.content).await?;
        self.accepted(tenant, accepted, upload.wait).await
    }

    /// Stores and queues an upload spooled to local disk.
    pub async fn accept_spooled(
        &self,
        tenant: &Tenant,
        upload: Upload<Spooled>,
    ) -> Result<Accepted> {
        let accepted = accept::accept_spooled(&self.intake(), upload.meta, upload.content).await?;
        self.accepted(tenant, accepted, upload.wait).await
    }

    async fn accepted(
        &self,
        tenant: &Tenant,
        (mut asset, created): (AssetRow, bool),
        wait: bool,
    ) -> Result<Accepted> {
        if created {
            self.enqueued(Enqueued::Asset(asset.id));
        }
        if wait && !asset.status.is_final() {
            asset = self.wait_until_final(tenant, asset.id).await?;
        }
        Ok(Accepted {
            asset,
            deduplicated: !created,
        })
    }

    /// Polls until the asset reaches a final status. The caller's deadline bounds the wait
    /// (tonic drops this future when the client gives up).
    async fn wait_until_final(&self, tenant: &Tenant, id: Uuid) -> Result<AssetRow> {
        loop {
            let asset = self.assets.get(tenant, id).await?;
            if asset.status.is_final() {
                return Ok(asset);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    pub async fn get_asset(&self, tenant: &Tenant, id: Uuid) -> Result<AssetRow> {
        self.assets.get(tenant, id).await
    }

    /// Newest first, keyset-paginated.
    pub async fn list_assets(&self, tenant: &Tenant, query: AssetQuery) -> Result<Page<AssetRow>> {
        let size = super::page_size(query.page.size)?;
        let filter = ListFilter {
            collection_id: query.collection_id,
            status: query.status,
            after: query.page.after,
            limit: i64::from(size) + 1,
        };
        let rows = self.assets.list(tenant, &filter).await?;
        Ok(Page::cut(rows, size, |a| (a.created_at, a.id)))
    }

    /// Deletes the asset (its chunks and vectors go with it), then its stored bytes unless
    /// another asset shares them.
    pub async fn delete_asset(&self, tenant: &Tenant, id: Uuid) -> Result<()> {
        let object_key = self.assets.delete(tenant, id).await?;
        objects::release(&self.assets, &self.objects, &object_key).await;
        Ok(())
    }

    pub async fn cancel_asset(&self, tenant: &Tenant, id: Uuid) -> Result<AssetRow> {
        self.assets.cancel(tenant, id).await
    }

    /// Queues a finished asset again and wakes the runner for it.
    pub async fn reprocess_asset(&self, tenant: &Tenant, id: Uuid) -> Result<AssetRow> {
        let queued_by = crate::telemetry::job_trace::QueuedBy::current();
        let asset = self.assets.reprocess(tenant, id, &queued_by).await?;
        self.enqueued(Enqueued::Asset(id));
        Ok(asset)
    }
}
