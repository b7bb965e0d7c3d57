//! The two ways an asset comes in over gRPC: `ProcessAsset` (bytes in one message) and
//! `UploadAsset` (a header, then the bytes in chunks, spooled to disk as they arrive). Both
//! become an [`Upload`] for the application.

use bytes::Bytes;
use thinkbank_proto::v1::{self as pb, upload_asset_request::Part};
use tonic::{Status, Streaming};

use super::fields::optional_uuid;
use crate::{
    app::{Upload, Worker},
    error::WorkerError,
    ingest::{accept::UploadMeta, spool::Spooled},
    tenancy::Tenant,
};

fn meta(
    tenant: &Tenant,
    collection_id: &str,
    filename: String,
    declared_media_type: String,
    external_id: String,
    metadata: Option<prost_types::Struct>,
) -> Result<UploadMeta, WorkerError> {
    Ok(UploadMeta {
        tenant: tenant.clone(),
        collection_id: optional_uuid("collection_id", collection_id)?,
        filename,
        declared_media_type,
        external_id: Some(external_id).filter(|s| !s.trim().is_empty()),
        metadata: thinkbank_proto::json::struct_to_json(metadata),
    })
}

/// A `ProcessAsset` request as an upload.
pub fn upload(
    tenant: &Tenant,
    message: pb::ProcessAssetRequest,
) -> Result<Upload<Bytes>, WorkerError> {
    let meta = meta(
        tenant,
        &message.collection_id,
        message.filename,
        message.declared_media_type,
        message.external_id,
        message.metadata,
    )?;
    Ok(Upload {
        meta,
        content: message.content,
        wait: message.wait,
    })
}

/// Receives an `UploadAsset` stream into the application's spool (which refuses more than
/// the largest asset) and returns it as an upload.
pub async fn spooled(
    app: &Worker,
    tenant: &Tenant,
    mut stream: Streaming<pb::UploadAssetRequest>,
) -> Result<Upload<Spooled>, Status> {
    let header = match stream.message().await? {
        Some(pb::UploadAssetRequest {
            part: Some(Part::Header(header)),
        }) => header,
        _ => {
            return Err(WorkerError::InvalidArgument(
                "the first UploadAssetRequest must carry the header".into(),
            )
            .into());
        }
    };
    let mut spool = app.upload_spool()?;
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(Part::Chunk(bytes)) => spool.write(&bytes).await?,
            Some(Part::Header(_)) => {
                return Err(WorkerError::InvalidArgument(
                    "only the first UploadAssetRequest may carry a header".into(),
                )
                .into());
            }
            None => {}
        }
    }
    let spooled = spool.finish().await?;
    let declared = u64::try_from(header.size_bytes).unwrap_or(0);
    if declared > 0 && declared != spooled.size {
        return Err(WorkerError::InvalidArgument(format!(
            "the upload was cut short: received {} of the {declared} bytes announced in size_bytes",
            spooled.size
        ))
        .into());
    }
    let meta = meta(
        tenant,
        &header.collection_id,
        header.filename,
        header.declared_media_type,
        header.external_id,
        header.metadata,
    )?;
    Ok(Upload {
        meta,
        content: spooled,
        wait: header.wait,
    })
}
