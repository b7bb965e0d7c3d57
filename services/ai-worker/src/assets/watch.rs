//! Asset changes for `WatchAsset` without a query per watcher: one `LISTEN` connection per
//! worker hears `thinkbank_asset_changed` (sent by a trigger on `worker.assets` when status,
//! stage, progress or error change, or the row is deleted), reads the changed row once, and
//! fans it out to that asset's watchers through a `tokio::sync::broadcast` channel.
//!
//! Invariants: a row is only ever sent to the watchers of its own id, and a watch subscribes
//! only after its tenant-scoped read found the asset, so the unscoped read here cannot reach
//! anyone else's data. Notifications can be lost (the connection dropped, a replica restarted):
//! a slow fallback poll re-reads every watched asset in one query, and so does every
//! reconnection. A channel exists only while its asset has watchers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use sqlx::{
    PgPool,
    postgres::{PgListener, PgPoolOptions},
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{AssetRow, Assets};

/// The channel the trigger notifies, with the asset id as payload.
pub const CHANNEL: &str = "thinkbank_asset_changed";
/// Updates buffered per asset; a watcher further behind skips to newer rows (each row is
/// the whole state, so nothing is lost by skipping).
const BUFFER: usize = 16;

/// What a watcher hears about its asset.
#[derive(Debug, Clone)]
pub enum Update {
    /// The asset as it is now (it may equal what the watcher saw last).
    Changed(Arc<AssetRow>),
    /// The asset was deleted.
    Gone,
}

#[derive(Debug, Default)]
struct Inner {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<Update>>>,
}

/// The hub: cheap to clone; `run` serves it, `subscribe` joins it.
#[derive(Debug, Clone, Default)]
pub struct Watches {
    inner: Arc<Inner>,
}

/// One watcher of one asset; leaving (drop) removes the asset's channel with its last watcher.
#[derive(Debug)]
pub struct Subscription {
    id: Uuid,
    receiver: Option<broadcast::Receiver<Update>>,
    inner: Arc<Inner>,
}

impl Subscription {
    /// The next update of the asset; `None` only if the hub is gone.
    pub async fn next(&mut self) -> Option<Update> {
        let receiver = self.receiver.as_mut()?;
        loop {
            match receiver.recv().await {
                Ok(update) => return Some(update),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if channels
            .get(&self.id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.id);
        }
    }
}

impl Watches {
    /// Joins the watchers of `id`. Subscribe before reading the asset's current state, so a
    /// change between the read and the subscription is not missed.
    pub fn subscribe(&self, id: Uuid) -> Subscription {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let receiver = channels
            .entry(id)
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe();
        Subscription {
            id,
            receiver: Some(receiver),
            inner: self.inner.clone(),
        }
    }

    fn watched(&self) -> Vec<Uuid> {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    fn is_watched(&self, id: Uuid) -> bool {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&id)
    }

    /// Reads `ids` in one query and sends each watched one's row (or `Gone`) to its watchers.
    async fn refresh(&self, assets: &Assets, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        let rows = match assets.get_many_unscoped(ids).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot read watched assets; the next poll retries");
                return;
            }
        };
        let mut rows: HashMap<Uuid, Arc<AssetRow>> =
            rows.into_iter().map(|r| (r.id, Arc::new(r))).collect();
        let channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            if let Some(sender) = channels.get(id) {
                let update = rows.remove(id).map_or(Update::Gone, Update::Changed);
                // No receiver left: the channel is being removed; nothing to do.
                let _ = sender.send(update);
            }
        }
    }

    /// Listens until `shutdown`, re-reading every watched asset each `fallback` and after each
    /// reconnection. Listens on a connection of its own (with `pool`'s settings), so the
    /// request pool keeps all its connections. At shutdown every watch ends (its channel
    /// closes), so open streams do not hold the server's drain.
    pub async fn run(
        self,
        pool: &PgPool,
        assets: Assets,
        fallback: Duration,
        shutdown: CancellationToken,
    ) {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*pool.connect_options()).clone());
        self.serve(own.clone(), assets, fallback, shutdown).await;
        own.close().await;
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    async fn serve(
        &self,
        pool: PgPool,
        assets: Assets,
        fallback: Duration,
        shutdown: CancellationToken,
    ) {
        let mut poll = tokio::time::interval(fallback);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !shutdown.is_cancelled() {
            let mut listener = match listen(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for asset changes; watches poll until it can");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        _ = poll.tick() => self.refresh(&assets, &self.watched()).await,
                    }
                    continue;
                }
            };
            // Whatever changed while nobody listened.
            self.refresh(&assets, &self.watched()).await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = poll.tick() => self.refresh(&assets, &self.watched()).await,
                    notification = listener.try_recv() => match notification {
                        Ok(Some(notification)) => {
                            if let Ok(id) = notification.payload().parse::<Uuid>()
                                && self.is_watched(id)
                            {
                                self.refresh(&assets, &[id]).await;
                            }
                        }
                        // The connection dropped: notifications may have been lost.
                        Ok(None) => {
                            tracing::info!("asset change listener reconnecting");
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "asset change listener failed; reconnecting");
                            break;
                        }
                    },
                }
            }
            // Do not spin against a database that keeps refusing.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
