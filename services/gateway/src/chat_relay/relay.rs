//! The relay: reads a ChatStream call and yields its SSE events as they arrive, one per worker
//! message, ids increasing from 1, always ending with `done`. A stop (see [`super::stops`])
//! drops the gRPC call, which cancels the answer on the worker; the stream then ends with an
//! `error` event (code `cancelled`).

use futures::Stream;
use thinkbank_proto::v1::{self as pb, chat_stream_response::Event as ChatEvent};
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use super::{
    events::{SseItem, message_event},
    stops::{ActiveChats, ChatOwner, Registration},
};
use crate::error::ApiError;

/// Where the SSE stream is: relaying messages, owing the closing `done`, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Relaying,
    Closing,
    Over,
}

/// The relay's state between two events.
struct Relay {
    /// Dropped on stop, which cancels the gRPC call.
    stream: Option<Streaming<pb::ChatStreamResponse>>,
    last_id: u64,
    phase: Phase,
    stop: CancellationToken,
    chats: ActiveChats,
    /// Held while the stream runs, so the stop endpoint can find it.
    registration: Option<Registration>,
    owner: ChatOwner,
}

fn error_event(error: &ApiError, request_id: &str) -> (&'static str, String) {
    let mut body = serde_json::to_value(error.body()).unwrap_or_default();
    // The body is built outside the request task, so set the id here.
    body["error"]["request_id"] = request_id.into();
    ("error", body.to_string())
}

/// Maps the gRPC stream to SSE events, one for one, then `done`.
pub fn sse_items(
    stream: Streaming<pb::ChatStreamResponse>,
    chats: ActiveChats,
    owner: ChatOwner,
) -> impl Stream<Item = SseItem> + Send + 'static {
    let request_id = crate::error::current_request_id();
    let relay = Relay {
        stream: Some(stream),
        last_id: 0,
        phase: Phase::Relaying,
        stop: CancellationToken::new(),
        chats,
        registration: None,
        owner,
    };
    futures::stream::unfold(relay, move |mut relay| {
        let request_id = request_id.clone();
        async move {
            let done = || ("done", "{}".to_owned());
            let (event, next_phase) = match (relay.phase, relay.stream.as_mut()) {
                (Phase::Over, _) => return None,
                (Phase::Closing, _) | (Phase::Relaying, None) => (done(), Phase::Over),
                (Phase::Relaying, Some(stream)) => {
                    let next = tokio::select! {
                        biased;
                        () = relay.stop.cancelled() => None,
                        next = stream.message() => Some(next),
                    };
                    match next {
                        None => {
                            relay.stream = None;
                            let error = ApiError::new(
                                thinkbank_common::ErrorCode::Cancelled,
                                "the answer was stopped",
                            );
                            (error_event(&error, &request_id), Phase::Closing)
                        }
                        Some(Ok(Some(message))) => {
                            if let Some(ChatEvent::Sources(sources)) = &message.event
                                && !sources.conversation_id.is_empty()
                            {
                                relay.registration = Some(relay.chats.register(
                                    sources.conversation_id.clone(),
                                    relay.stop.clone(),
                                    relay.owner.clone(),
                                ));
                            }
                            (message_event(message), Phase::Relaying)
                        }
                        Some(Ok(None)) => (done(), Phase::Over),
                        Some(Err(status)) => (
                            error_event(&ApiError::from(status), &request_id),
                            Phase::Closing,
                        ),
                    }
                }
            };
            if next_phase != Phase::Relaying {
                relay.registration = None;
            }
            let id = relay.last_id + 1;
            relay.last_id = id;
            relay.phase = next_phase;
            let (name, data) = event;
            Some((SseItem { id, name, data }, relay))
        }
    })
}
