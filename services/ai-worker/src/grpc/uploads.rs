//! The two ways an asset comes in over gRPC: `ProcessAsset` (bytes in one message) and
//! `UploadAsset` (a header, then the bytes in chunks, spooled to disk as they arrive).

use std::sync::Arc;

use thinkbank_proto::v1::{self as pb, upload_asset_request::Part};
use tonic::{Status, Streaming};

use super::convert;
use crate::{
    State,
    assets::AssetRow,
    error::{WorkerError, parse_uuid},
    ingest::{
        accept::{self, UploadMeta},
        spool::Spool,
    },
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
    let collection_id = if collection_id.trim().is_empty() {
        None
    } else {
        Some(parse_uuid("collection_id", collection_id)?)
    };
    Ok(UploadMeta {
        tenant: tenant.clone(),
        collection_id,
        filename,
        declared_media_type,
        external_id: Some(external_id).filter(|s| !s.trim().is_empty()),
        metadata: thinkbank_proto::json::struct_to_json(metadata),
    })
}

async fn respond(
    state: &State,
    tenant: &Tenant,
    (mut asset, created): (AssetRow, bool),
    wait: bool,
) -> Result<pb::ProcessAssetResponse, Status> {
    if wait && !asset.status().is_final() {
        asset = accept::wait_until_final(state, tenant, asset.id).await?;
    }
    Ok(pb::ProcessAssetResponse {
        asset: Some(convert::asset(&asset)),
        deduplicated: !created,
    })
}

pub async fn process_asset(
    state: Arc<State>,
    tenant: Tenant,
    message: pb::ProcessAssetRequest,
) -> Result<pb::ProcessAssetResponse, Status> {
    let meta = meta(
        &tenant,
        &message.collection_id,
        message.filename,
        message.declared_media_type,
        message.external_id,
        message.metadata,
    )?;
    let accepted = accept::accept(&state, meta, message.content).await?;
    respond(&state, &tenant, accepted, message.wait).await
}

pub async fn upload_asset(
    state: Arc<State>,
    tenant: Tenant,
    mut stream: Streaming<pb::UploadAssetRequest>,
) -> Result<pb::ProcessAssetResponse, Status> {
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
    let mut spool = Spool::create(state.max_asset_bytes as u64)?;
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
        &tenant,
        &header.collection_id,
        header.filename,
        header.declared_media_type,
        header.external_id,
        header.metadata,
    )?;
    let accepted = accept::accept_spooled(&state, meta, spooled).await?;
    respond(&state, &tenant, accepted, header.wait).await
}
