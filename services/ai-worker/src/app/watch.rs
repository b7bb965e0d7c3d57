//! The producer of one `WatchAsset` stream: the asset as it is, then each change the watch hub
//! (`assets::watch`) hands over, until the asset is final, deleted, the caller leaves, or the
//! watch's deadline passes (the stream then ends OK and the caller watches again).

use thinkbank_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::Status;

use super::convert;
use crate::{
    assets::{
        AssetRow,
        watch::{Subscription, Update},
    },
    error::WorkerError,
};

type Sender = mpsc::Sender<Result<pb::WatchAssetResponse, Status>>;

fn message(asset: &AssetRow) -> Result<pb::WatchAssetResponse, Status> {
    Ok(pb::WatchAssetResponse {
        asset: Some(convert::asset(asset)),
    })
}

/// Whether a watcher would see a difference between two states of an asset.
fn differs(a: &AssetRow, b: &AssetRow) -> bool {
    a.status != b.status
        || a.stage != b.stage
        || (a.progress - b.progress).abs() > f32::EPSILON
        || a.error != b.error
}

/// See the module documentation.
pub async fn forward(
    mut subscription: Subscription,
    first: AssetRow,
    tx: Sender,
    deadline: tokio::time::Instant,
) {
    if tx.send(message(&first)).await.is_err() {
        return;
    }
    let mut last = first;
    while !last.status().is_final() {
        let update = tokio::select! {
            update = subscription.next() => update,
            // The caller left while the asset was idle: stop now, not at the next change.
            () = tx.closed() => return,
            () = tokio::time::sleep_until(deadline) => return,
        };
        match update {
            Some(Update::Changed(current)) => {
                if differs(&current, &last) {
                    if tx.send(message(&current)).await.is_err() {
                        return;
                    }
                    last = (*current).clone();
                }
            }
            Some(Update::Gone) => {
                let gone = WorkerError::NotFound(format!("asset {} not found", last.id));
                let _ = tx.send(Err(gone.into())).await;
                return;
            }
            None => {
                let stopping = WorkerError::Unavailable("the worker is shutting down".into());
                let _ = tx.send(Err(stopping.into())).await;
                return;
            }
        }
    }
}
