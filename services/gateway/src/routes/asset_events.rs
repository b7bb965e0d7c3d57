//! The SSE events of one asset progress stream: the worker's `WatchAsset` messages as `asset`
//! events, until the asset is final (`done`), watching fails (`error`, `done`), or the stream
//! reaches its maximum duration (`reconnect`). The stream owns its cap permit, so the place
//! is given back when the stream is dropped, however it ends.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::response::sse::Event;
use futures::Stream;
use thinkbank_proto::v1 as pb;

use crate::{error::ApiError, views, watch_caps::WatchPermit};

/// What an `EventSource` waits before reconnecting after `reconnect`.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

struct Watch {
    upstream: tonic::Streaming<pb::WatchAssetResponse>,
    deadline: tokio::time::Instant,
    next_id: u64,
    final_seen: bool,
    /// Events still to send before the stream ends.
    tail: VecDeque<Event>,
    ended: bool,
    _permit: WatchPermit,
}

impl Watch {
    fn numbered(&mut self, event: Event) -> Event {
        self.next_id += 1;
        event.id(self.next_id.to_string())
    }

    fn reconnect(&mut self, reason: &str) -> Event {
        let event = Event::default()
            .event("reconnect")
            .retry(RECONNECT_AFTER)
            .json_data(serde_json::json!({ "reason": reason }))
            .unwrap_or_default();
        self.numbered(event)
    }

    async fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.tail.pop_front() {
            return Some(event);
        }
        if self.ended {
            return None;
        }
        let message = tokio::select! {
            biased;
            message = self.upstream.message() => message,
            () = tokio::time::sleep_until(self.deadline) => {
                self.ended = true;
                return Some(self.reconnect(
                    "the progress stream reached its maximum duration; watch again",
                ));
            }
        };
        match message {
            Ok(Some(update)) => {
                let status = update.asset.as_ref().map(pb::Asset::status);
                self.final_seen |= matches!(
                    status,
                    Some(
                        pb::AssetStatus::Ready
                            | pb::AssetStatus::Failed
                            | pb::AssetStatus::Cancelled
                    )
                );
                let event = Event::default()
                    .event("asset")
                    .json_data(update.asset.map(views::asset))
                    .unwrap_or_default();
                Some(self.numbered(event))
            }
            Err(status) => {
                self.ended = true;
                self.tail.push_back(done());
                let event = Event::default()
                    .event("error")
                    .json_data(ApiError::from(status).body())
                    .unwrap_or_default();
                Some(self.numbered(event))
            }
            Ok(None) if self.final_seen => {
                self.ended = true;
                Some(done())
            }
            // The worker ended the watch before the asset was final (its own deadline).
            Ok(None) => {
                self.ended = true;
                Some(self.reconnect("the worker ended the progress stream; watch again"))
            }
        }
    }
}

fn done() -> Event {
    Event::default().event("done").data("{}")
}

/// See the module documentation.
pub fn events(
    upstream: tonic::Streaming<pb::WatchAssetResponse>,
    max: Duration,
    permit: WatchPermit,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let watch = Watch {
        upstream,
        deadline: tokio::time::Instant::now() + max,
        next_id: 0,
        final_seen: false,
        tail: VecDeque::new(),
        ended: false,
        _permit: permit,
    };
    futures::stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((Ok(event), watch))
    })
}
