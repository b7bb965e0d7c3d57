//! The chat relay: turns a ChatStream call into the Server-Sent Events of `POST /api/v1/chat`,
//! keeps the stop registry and, with a resume window, the hubs clients reconnect to. Handlers
//! call [`answer`], [`stop`] and [`resume`]; the rest is the relay's own.
//!
//! Each ChatStream message becomes exactly one SSE event, sent as it arrives: `sources`, then
//! `delta`s, then `final`; an upstream failure becomes `error`; the stream always ends with
//! `done`. Ids increase from 1. Dropping the connection drops the gRPC call, which cancels the
//! answer on the worker; so does a stop, after which the stream ends with an `error` event
//! (code `cancelled`) and `done`. A live chat belongs to the principal that started it: anyone
//! else is told no answer is in progress (404), so a leaked conversation id neither stops
//! another's answer nor reveals that it runs.

pub mod events;
pub mod relay;
pub mod resume;
pub mod stops;

use std::{convert::Infallible, pin::Pin, time::Duration};

use axum::response::{
    IntoResponse,
    sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt as _};
use thinkbank_common::ErrorCode;
use thinkbank_proto::v1 as pb;

use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    state::AppState,
};
use stops::ChatOwner;

type Events = Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

/// Asks the worker `message` for `principal` and streams the answer as SSE. Validation errors
/// arrive here, before any event, and become a plain JSON error.
pub async fn answer(
    state: &AppState,
    principal: &Principal,
    message: pb::ChatStreamRequest,
) -> ApiResult<impl IntoResponse + use<>> {
    let timeout = Duration::from_secs(state.config.chat_timeout_secs);
    let stream = state
        .worker
        .clone()
        .chat_stream(state.request(principal, message, timeout)?)
        .await?
        .into_inner();
    let owner = ChatOwner::of(principal);
    let items = relay::sse_items(stream, state.active_chats.clone(), owner.clone());
    let events: Events = if state.config.sse_resume_window_secs == 0 {
        Box::pin(items.map(|item| Ok(item.event())))
    } else {
        let window = Duration::from_secs(state.config.sse_resume_window_secs);
        let hub = resume::Hub::start(items, window, state.chat_hubs.clone(), owner);
        Box::pin(hub.subscribe(0).map(|item| Ok(item.event())))
    };
    Ok(sse(state, events))
}

/// Stops `principal`'s answer running in `conversation_id` on this gateway; 404 when none
/// does (also when another principal's does).
pub fn stop(state: &AppState, principal: &Principal, conversation_id: &str) -> ApiResult<()> {
    if state
        .active_chats
        .stop(conversation_id, &ChatOwner::of(principal))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no answer in progress for conversation {conversation_id}"),
        ))
    }
}

/// The events of `principal`'s stream in `conversation_id` after id `after`, then the live
/// ones; 404 when there is no resumable stream of its own.
pub fn resume(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    after: u64,
) -> ApiResult<impl IntoResponse + use<>> {
    let Some(hub) = state
        .chat_hubs
        .find(conversation_id, &ChatOwner::of(principal))
    else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no resumable stream for conversation {conversation_id}"),
        ));
    };
    let events: Events = Box::pin(hub.subscribe(after).map(|item| Ok(item.event())));
    Ok(sse(state, events))
}

/// The SSE response: heartbeats, and an end at shutdown.
fn sse(state: &AppState, events: Events) -> impl IntoResponse + use<> {
    let heartbeat = Duration::from_secs(state.config.sse_heartbeat_secs);
    let events = crate::edge::until_shutdown(events, state.shutdown.clone());
    Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat))
}
