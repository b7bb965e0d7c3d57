//! Stored conversations through the application: listing, reading, renaming and deleting,
//! each limited to the conversations the caller may touch (`chat::conversations::Access`).

use uuid::Uuid;

use super::{Caller, Page, PageRequest, Worker};
use crate::{
    chat::conversations::{self, ConversationRow, MessageRow, Purpose},
    error::Result,
};

#[derive(Debug)]
pub struct ConversationDetail {
    pub conversation: ConversationRow,
    pub messages: Vec<MessageRow>,
}

impl Worker {
    /// Most recently updated first, keyset-paginated. `all_owners`: every owner's
    /// conversations (a tenant admin's view), not only the caller's.
    pub async fn list_conversations(
        &self,
        caller: &Caller,
        all_owners: bool,
        page: PageRequest,
    ) -> Result<Page<ConversationRow>> {
        let size = super::page_size(page.size)?;
        let limit = i64::from(size) + 1;
        let (tenant, access) = (&caller.tenant, &caller.access);
        let rows =
            conversations::list(&self.pool, tenant, access, all_owners, page.after, limit).await?;
        Ok(Page::cut(rows, size, |c| (c.updated_at, c.id)))
    }

    pub async fn get_conversation(&self, caller: &Caller, id: Uuid) -> Result<ConversationDetail> {
        let (tenant, access) = (&caller.tenant, &caller.access);
        let purpose = Purpose::Inspect;
        let conversation = conversations::get(&self.pool, tenant, access, purpose, id).await?;
        let messages = conversations::messages(&self.pool, tenant, access, purpose, id).await?;
        Ok(ConversationDetail {
            conversation,
            messages,
        })
    }

    pub async fn delete_conversation(&self, caller: &Caller, id: Uuid) -> Result<()> {
        conversations::delete(&self.pool, &caller.tenant, &caller.access, id).await
    }

    /// Renames a conversation the caller owns and returns it.
    pub async fn rename_conversation(
        &self,
        caller: &Caller,
        id: Uuid,
        title: &str,
    ) -> Result<ConversationRow> {
        let (tenant, access) = (&caller.tenant, &caller.access);
        conversations::rename(&self.pool, tenant, access, id, title).await?;
        conversations::get(&self.pool, tenant, access, Purpose::Act, id).await
    }
}
