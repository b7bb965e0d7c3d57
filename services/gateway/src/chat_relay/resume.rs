//! The resume hubs: resuming a chat stream with `Last-Event-ID` (enabled by
//! `THINKBANK_SSE_RESUME_WINDOW_SECS`).
//!
//! With a resume window, the gRPC stream is read by a hub task instead of the response: every
//! event goes into a bounded buffer and out to whoever is subscribed. When the last subscriber
//! leaves, the hub keeps the answer running for the window; a client reconnecting in time with
//! `GET /api/v1/chat/{conversation_id}/events` and `Last-Event-ID: n` gets the events after n,
//! then the live ones. Nobody back within the window: the hub drops the gRPC call, which
//! cancels the answer on the worker. A finished stream stays replayable for the window.
//! Only the principal that started the chat may resume it; anyone else gets the same 404 as
//! for a conversation with no resumable stream.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt as _};
use tokio::sync::Notify;

use super::{events::SseItem, stops::ChatOwner};

/// Events kept per stream; older ones cannot be replayed.
const BUFFER_EVENTS: usize = 4096;

/// Resumable streams by conversation id.
#[derive(Debug, Clone, Default)]
pub struct Hubs(Arc<Mutex<HashMap<String, Arc<Hub>>>>);

impl Hubs {
    /// The hub of `conversation_id` if `owner` started it.
    pub fn find(&self, conversation_id: &str, owner: &ChatOwner) -> Option<Arc<Hub>> {
        self.lock()
            .get(conversation_id)
            .filter(|hub| hub.owner == *owner)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Hub>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct Buffer {
    events: VecDeque<SseItem>,
    ended: bool,
    subscribers: usize,
    /// When the subscriber count last dropped to zero.
    alone_since: Option<Instant>,
}

#[derive(Debug)]
pub struct Hub {
    buffer: Mutex<Buffer>,
    changed: Notify,
    /// Who started the chat: the only one who may resume it.
    owner: ChatOwner,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts reading `items` into a new hub; it registers itself under the conversation id
    /// from the `sources` event.
    pub fn start(
        items: impl Stream<Item = SseItem> + Send + 'static,
        window: Duration,
        hubs: Hubs,
        owner: ChatOwner,
    ) -> Arc<Self> {
        let hub = Arc::new(Self {
            buffer: Mutex::new(Buffer::default()),
            changed: Notify::new(),
            owner,
        });
        let task_hub = hub.clone();
        tokio::spawn(async move {
            let mut items = std::pin::pin!(items);
            let mut registered: Option<String> = None;
            let mut check = tokio::time::interval(window.min(Duration::from_millis(250)));
            loop {
                tokio::select! {
                    item = items.next() => {
                        let Some(item) = item else { break };
                        if item.name == "sources"
                            && let Ok(data) = serde_json::from_str::<serde_json::Value>(&item.data)
                            && let Some(id) = data["conversation_id"].as_str()
                        {
                            hubs.lock().insert(id.to_owned(), task_hub.clone());
                            registered = Some(id.to_owned());
                        }
                        task_hub.push(item);
                    }
                    _ = check.tick() => {
                        let alone = task_hub.lock().alone_since;
                        if alone.is_some_and(|since| since.elapsed() >= window) {
                            tracing::info!("no client came back within the resume window; cancelling the answer");
                            break;
                        }
                    }
                }
            }
            // Dropping `items` here drops the gRPC call if it was still running.
            task_hub.lock().ended = true;
            task_hub.changed.notify_waiters();
            if let Some(id) = registered {
                tokio::time::sleep(window).await;
                let mut hubs = hubs.lock();
                if hubs.get(&id).is_some_and(|h| Arc::ptr_eq(h, &task_hub)) {
                    hubs.remove(&id);
                }
            }
        });
        hub
    }

    fn push(&self, item: SseItem) {
        let mut buffer = self.lock();
        if buffer.events.len() == BUFFER_EVENTS {
            buffer.events.pop_front();
        }
        buffer.events.push_back(item);
        drop(buffer);
        self.changed.notify_waiters();
    }

    /// The events after id `after`, then the live ones, until the stream ends.
    pub fn subscribe(
        self: &Arc<Self>,
        after: u64,
    ) -> impl Stream<Item = SseItem> + Send + 'static + use<> {
        {
            let mut buffer = self.lock();
            buffer.subscribers += 1;
            buffer.alone_since = None;
        }
        let guard = Subscriber { hub: self.clone() };
        futures::stream::unfold((guard, after), |(guard, after)| async move {
            loop {
                let hub = guard.hub.clone();
                let notified = hub.changed.notified();
                let (found, ended) = {
                    let buffer = hub.lock();
                    (
                        buffer.events.iter().find(|e| e.id > after).cloned(),
                        buffer.ended,
                    )
                };
                if let Some(item) = found {
                    let next = item.id;
                    return Some((item, (guard, next)));
                }
                if ended {
                    return None;
                }
                notified.await;
            }
        })
    }
}

/// Counts a subscriber while its response lives.
struct Subscriber {
    hub: Arc<Hub>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut buffer = self.hub.lock();
        buffer.subscribers = buffer.subscribers.saturating_sub(1);
        if buffer.subscribers == 0 {
            buffer.alone_since = Some(Instant::now());
        }
    }
}
