//! The stop registry: chat streams running on this gateway, by conversation id, each with the
//! principal that started it, so `POST /api/v1/chat/{conversation_id}/stop` can cancel it (and
//! nobody else's). Per gateway instance: behind several replicas, stop must reach the one
//! holding the stream.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio_util::sync::CancellationToken;

use crate::auth::Principal;

/// Chat streams running on this gateway, by conversation id: the stop endpoint cancels them.
/// (Per gateway instance: behind several replicas, stop must reach the one holding the stream.)
#[derive(Debug, Clone, Default)]
pub struct ActiveChats(Arc<Mutex<ChatTable>>);

#[derive(Debug, Default)]
struct ChatTable {
    next: u64,
    streams: HashMap<String, (u64, CancellationToken, ChatOwner)>,
}

/// The principal that started a live chat (tenant and `Principal::owner_id`): only it may stop
/// or resume the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatOwner(String);

impl ChatOwner {
    pub fn of(principal: &Principal) -> Self {
        Self(format!("{}/{}", principal.tenant_id, principal.owner_id()))
    }
}

impl ActiveChats {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChatTable> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a stream; the registration ends when the guard is dropped.
    pub(super) fn register(
        &self,
        conversation_id: String,
        stop: CancellationToken,
        owner: ChatOwner,
    ) -> Registration {
        let mut table = self.lock();
        table.next += 1;
        let serial = table.next;
        table
            .streams
            .insert(conversation_id.clone(), (serial, stop, owner));
        Registration {
            chats: self.clone(),
            conversation_id,
            serial,
        }
    }

    /// Cancels the stream of `conversation_id` if `owner` started it; false if none of its
    /// runs here.
    pub fn stop(&self, conversation_id: &str, owner: &ChatOwner) -> bool {
        let mut table = self.lock();
        match table.streams.get(conversation_id) {
            Some((_, _, started_by)) if started_by == owner => {
                if let Some((_, token, _)) = table.streams.remove(conversation_id) {
                    token.cancel();
                }
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
pub(super) struct Registration {
    chats: ActiveChats,
    conversation_id: String,
    serial: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.chats.lock();
        // Only our own entry: a newer stream of the same conversation may have replaced it.
        if table
            .streams
            .get(&self.conversation_id)
            .is_some_and(|(serial, _, _)| *serial == self.serial)
        {
            table.streams.remove(&self.conversation_id);
        }
    }
}
