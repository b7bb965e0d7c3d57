//! Conversions of ChatStream: the request into an [`Ask`], the application's events into
//! stream messages, and the chat info. The answering itself lives in `app::chat`.

use futures::StreamExt as _;
use thinkbank_proto::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{
    convert,
    fields::{optional_uuid, uuids},
    search_convert,
};
use crate::{
    app::{Ask, AskStream, ChatInfo},
    chat,
    error::Result,
    search,
};

/// The request as the application takes it; only wire shape is checked here.
pub fn ask(message: pb::ChatStreamRequest) -> Result<Ask> {
    let filters = search::Filters {
        collection_ids: uuids("collection_ids", &message.collection_ids)?,
        asset_ids: Vec::new(),
    };
    let history = message
        .history
        .into_iter()
        .map(|m| chat::Turn {
            from_user: m.role != pb::ChatRole::Assistant as i32,
            content: m.content,
        })
        .collect();
    Ok(Ask {
        question: message.question,
        history,
        conversation_id: optional_uuid("conversation_id", &message.conversation_id)?,
        filters,
        top_k: message.top_k,
        mode: search_convert::optional_mode("retrieval_mode", message.retrieval_mode)?,
    })
}

/// The answer's events as ChatStream messages, each sent as it comes.
pub fn responses(answer: AskStream) -> super::service::EventStream<pb::ChatStreamResponse> {
    let AskStream {
        conversation_id,
        events,
    } = answer;
    Box::pin(ReceiverStream::new(events).map(move |event| {
        event
            .map(|event| convert::chat_event(event, conversation_id))
            .map_err(Status::from)
    }))
}

pub fn info(info: &ChatInfo) -> pb::ChatInfo {
    pb::ChatInfo {
        answer_mode: convert::answer_mode(info.answer_mode) as i32,
        model: info.model.clone(),
        llm_unavailable: info.llm_unavailable,
    }
}
