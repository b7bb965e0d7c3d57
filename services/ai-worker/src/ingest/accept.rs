//! Accepting an upload: validate and sniff the bytes, store them content-addressed, then
//! record the asset and its queue job in one transaction. Nothing is written for bad input.
//!
//! Two ways in: `accept` for bytes already in memory (`ProcessAsset`), `accept_spooled` for
//! an upload streamed to a temporary file (`UploadAsset`); both end in `record`. Waking the
//! runner for a new job is the caller's (the application layer's) part.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    objects::Objects,
    sniff::{self, Format},
    spool::Spooled,
};
use crate::{
    assets::{AssetRow, Assets, NewAsset, quota},
    error::{Result, WorkerError},
    tenancy::Tenant,
};

/// What accepting an upload writes to and checks against.
#[derive(Debug, Clone, Copy)]
pub struct Intake<'a> {
    pub pool: &'a sqlx::PgPool,
    pub assets: &'a Assets,
    pub objects: &'a Objects,
    pub quotas: &'a quota::QuotaSettings,
    pub max_asset_bytes: usize,
}

/// Everything about an upload but its bytes.
#[derive(Debug)]
pub struct UploadMeta {
    pub tenant: Tenant,
    /// `None`: the tenant's default collection.
    pub collection_id: Option<Uuid>,
    pub filename: String,
    pub declared_media_type: String,
    pub external_id: Option<String>,
    pub metadata: serde_json::Value,
}

impl UploadMeta {
    fn validate(&self) -> Result<()> {
        if self.filename.len() > 1024 {
            return Err(WorkerError::InvalidArgument(
                "filename is longer than 1024 bytes".into(),
            ));
        }
        if !self.metadata.is_object() {
            return Err(WorkerError::InvalidArgument(
                "metadata must be a JSON object".into(),
            ));
        }
        Ok(())
    }
}

fn check_size(intake: &Intake<'_>, size: u64) -> Result<i64> {
    if size > intake.max_asset_bytes as u64 {
        return Err(WorkerError::InvalidArgument(format!(
            "content is {size} bytes; the limit is {} bytes",
            intake.max_asset_bytes
        )));
    }
    i64::try_from(size).map_err(|_| WorkerError::InvalidArgument("content is too large".into()))
}

fn sniff_error(error: sniff::SniffError) -> WorkerError {
    WorkerError::InvalidArgument(format!("content: {error}"))
}

/// Stores and queues bytes held in memory. Returns the asset and whether it was newly created
/// (false: the same bytes already existed in the collection).
pub async fn accept(
    intake: &Intake<'_>,
    meta: UploadMeta,
    content: Bytes,
) -> Result<(AssetRow, bool)> {
    meta.validate()?;
    let size = check_size(intake, content.len() as u64)?;
    let format =
        sniff::detect(&content, &meta.filename, &meta.declared_media_type).map_err(sniff_error)?;
    let (collection_id, model) = intake
        .assets
        .resolve_collection(&meta.tenant, meta.collection_id)
        .await?;
    let sha256 = hex(&Sha256::digest(&content));
    quota::precheck(
        intake.pool,
        &meta.tenant,
        intake.quotas,
        collection_id,
        &sha256,
        size,
    )
    .await?;
    let object_key = Objects::key(meta.tenant.id, collection_id, &sha256);
    // Written before the row: the key is content-addressed, so a duplicate write is harmless,
    // and the row never points at missing bytes.
    intake.objects.put(&object_key, content).await?;
    record(
        intake,
        meta,
        collection_id,
        format,
        sha256,
        size,
        object_key,
        &model,
    )
    .await
}

/// Stores and queues an upload spooled to local disk, streaming it into the object store.
pub async fn accept_spooled(
    intake: &Intake<'_>,
    meta: UploadMeta,
    spooled: Spooled,
) -> Result<(AssetRow, bool)> {
    meta.validate()?;
    let size = check_size(intake, spooled.size)?;
    let path = spooled.path.to_path_buf();
    let (filename, declared) = (meta.filename.clone(), meta.declared_media_type.clone());
    let format =
        tokio::task::spawn_blocking(move || sniff::detect_file(&path, &filename, &declared))
            .await
            .map_err(|e| WorkerError::Internal(format!("sniffing task failed: {e}")))?
            .map_err(sniff_error)?;
    let (collection_id, model) = intake
        .assets
        .resolve_collection(&meta.tenant, meta.collection_id)
        .await?;
    quota::precheck(
        intake.pool,
        &meta.tenant,
        intake.quotas,
        collection_id,
        &spooled.sha256,
        size,
    )
    .await?;
    let object_key = Objects::key(meta.tenant.id, collection_id, &spooled.sha256);
    intake.objects.put_file(&object_key, &spooled.path).await?;
    record(
        intake,
        meta,
        collection_id,
        format,
        spooled.sha256,
        size,
        object_key,
        &model,
    )
    .await
}

#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one accepted upload, gathered by two callers"
)]
async fn record(
    intake: &Intake<'_>,
    meta: UploadMeta,
    collection_id: Uuid,
    format: Format,
    sha256: String,
    size_bytes: i64,
    object_key: String,
    model: &str,
) -> Result<(AssetRow, bool)> {
    let filename = if meta.filename.trim().is_empty() {
        format!("{sha256:.12}")
    } else {
        meta.filename
    };
    let new = NewAsset {
        tenant_id: meta.tenant.id,
        collection_id,
        filename,
        declared_media_type: meta.declared_media_type,
        media_type: format.media_type().to_owned(),
        size_bytes,
        sha256,
        object_key,
        external_id: meta.external_id,
        metadata: meta.metadata,
    };
    let queued_by = crate::telemetry::job_trace::QueuedBy::current();
    let object_key = new.object_key.clone();
    match intake
        .assets
        .insert_queued(&meta.tenant, new, model, &queued_by, intake.quotas)
        .await
    {
        Ok(inserted) => Ok(inserted),
        // Over a quota after all (a concurrent upload took the room): the bytes just stored
        // belong to no asset, so they go too.
        Err(refused @ WorkerError::ResourceExhausted(_)) => {
            super::objects::release(intake.assets, intake.objects, &object_key).await;
            Err(refused)
        }
        Err(error) => Err(error),
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
