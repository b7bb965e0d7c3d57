//! Accepting an upload: validate and sniff the bytes, store them content-addressed, then
//! record the asset and its queue job in one transaction. Nothing is written for bad input.

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{objects::Objects, sniff};
use crate::{
    State,
    assets::{AssetRow, NewAsset},
    error::{Result, WorkerError},
};

#[derive(Debug)]
pub struct Upload {
    pub tenant_id: Uuid,
    pub collection_id: Uuid,
    pub filename: String,
    pub declared_media_type: String,
    pub content: Bytes,
    pub external_id: Option<String>,
    pub metadata: serde_json::Value,
}

/// Stores and queues `upload`. Returns the asset and whether it was newly created (false:
/// the same bytes already existed in the collection).
pub async fn accept(state: &State, upload: Upload) -> Result<(AssetRow, bool)> {
    if upload.content.len() > state.max_asset_bytes {
        return Err(WorkerError::InvalidArgument(format!(
            "content is {} bytes; the limit is {} bytes",
            upload.content.len(),
            state.max_asset_bytes
        )));
    }
    if upload.filename.len() > 1024 {
        return Err(WorkerError::InvalidArgument(
            "filename is longer than 1024 bytes".into(),
        ));
    }
    if !upload.metadata.is_object() {
        return Err(WorkerError::InvalidArgument(
            "metadata must be a JSON object".into(),
        ));
    }
    let format = sniff::detect(
        &upload.content,
        &upload.filename,
        &upload.declared_media_type,
    )
    .map_err(|e| WorkerError::InvalidArgument(format!("content: {e}")))?;
    let model = state
        .assets
        .collection_model(upload.tenant_id, upload.collection_id)
        .await?;
    let sha256 = hex(&Sha256::digest(&upload.content));
    let object_key = Objects::key(upload.tenant_id, upload.collection_id, &sha256);
    let size_bytes = i64::try_from(upload.content.len())
        .map_err(|_| WorkerError::InvalidArgument("content is too large".into()))?;
    // Written before the row: the key is content-addressed, so a duplicate write is harmless,
    // and the row never points at missing bytes.
    state.objects.put(&object_key, upload.content).await?;
    let filename = if upload.filename.trim().is_empty() {
        format!("{sha256:.12}.txt")
    } else {
        upload.filename
    };
    let new = NewAsset {
        tenant_id: upload.tenant_id,
        collection_id: upload.collection_id,
        filename,
        declared_media_type: upload.declared_media_type,
        media_type: format.media_type().to_owned(),
        size_bytes,
        sha256,
        object_key,
        external_id: upload.external_id,
        metadata: upload.metadata,
    };
    let (asset, created) = state.assets.insert_queued(new, &model).await?;
    if created {
        state.wake.notify_one();
    }
    Ok((asset, created))
}

/// Polls until the asset reaches a final status. The caller's deadline bounds the wait
/// (tonic drops this future when the client gives up).
pub async fn wait_until_final(state: &State, tenant_id: Uuid, id: Uuid) -> Result<AssetRow> {
    loop {
        let asset = state.assets.get(tenant_id, id).await?;
        if asset.status().is_final() {
            return Ok(asset);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
