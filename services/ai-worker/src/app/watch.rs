//! Watching an asset: the asset as it is, then each change the watch hub (`assets::watch`)
//! hands over, until the asset is final, deleted, the caller leaves, or the watch's deadline
//! passes (the stream then ends without an error and the caller watches again).

use tokio::sync::mpsc;
use uuid::Uuid;

use super::Worker;
use crate::{
    assets::{
        AssetRow,
        watch::{Subscription, Update},
    },
    error::{Result, WorkerError},
    tenancy::Tenant,
};

/// What a watch stream carries: each new state of the asset, or the error that ends it.
pub type AssetUpdates = mpsc::Receiver<Result<AssetRow>>;

type Sender = mpsc::Sender<Result<AssetRow>>;

impl Worker {
    /// Starts watching asset `id` for `tenant`. Dropping the receiver stops the watch.
    pub async fn watch_asset(&self, tenant: &Tenant, id: Uuid) -> Result<AssetUpdates> {
        // Subscribed before the read, so no change between the two is missed; the read is the
        // tenant-scoped check that this caller may see the asset at all.
        let subscription = self.watches.subscribe(id);
        let first = self.assets.get(tenant, id).await?;
        let (tx, rx) = mpsc::channel(8);
        let deadline = tokio::time::Instant::now() + self.watch_max_duration;
        tokio::spawn(forward(subscription, first, tx, deadline));
        Ok(rx)
    }
}

/// Whether a watcher would see a difference between two states of an asset.
fn differs(a: &AssetRow, b: &AssetRow) -> bool {
    a.status != b.status
        || a.stage != b.stage
        || (a.progress - b.progress).abs() > f32::EPSILON
        || a.error != b.error
}

/// See the module documentation.
async fn forward(
    mut subscription: Subscription,
    first: AssetRow,
    tx: Sender,
    deadline: tokio::time::Instant,
) {
    let mut last = first.clone();
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    while !last.status.is_final() {
        let update = tokio::select! {
            update = subscription.next() => update,
            // The caller left while the asset was idle: stop now, not at the next change.
            () = tx.closed() => return,
            () = tokio::time::sleep_until(deadline) => return,
        };
        match update {
            Some(Update::Changed(current)) => {
                if differs(&current, &last) {
                    if tx.send(Ok((*current).clone())).await.is_err() {
                        return;
                    }
                    last = (*current).clone();
                }
            }
            Some(Update::Gone) => {
                let gone = WorkerError::NotFound(format!("asset {} not found", last.id));
                let _ = tx.send(Err(gone)).await;
                return;
            }
            None => {
                let stopping = WorkerError::Unavailable("the worker is shutting down".into());
                let _ = tx.send(Err(stopping)).await;
                return;
            }
        }
    }
}
