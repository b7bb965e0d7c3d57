//! SQL for stored conversations (`worker.conversations`, `worker.conversation_messages`).
//! Every query is scoped by tenant and by owner: a conversation belongs to the principal that
//! started it, and anyone else is told it does not exist (see `Access`). An exchange (question
//! and answer) is written in one transaction, so a conversation never holds a question without
//! its answer. Stored sources outside the caller's collections are never handed back, neither
//! to read nor as history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

use super::{AnswerMode, Citation, FinishReason, Turn};
use crate::{
    error::{Result, WorkerError},
    search::Hit,
    stored::text_enum,
    tenancy::Tenant,
};

/// Longest title, in characters (the first question, shortened).
const TITLE_CHARS: usize = 80;

/// Who asks for conversations, as far as ownership goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The calling principal (`user:<uuid>`, `key:<uuid>`…). `None`: a trusted internal caller
    /// that named nobody (grpcurl with the internal token), acting for the tenant as a whole.
    pub principal: Option<String>,
    /// An admin of the whole tenant (no collection limit): may list, read and delete every
    /// conversation of the tenant, legacy ones without an owner included, but continues and
    /// renames only its own, so it never speaks in someone else's name.
    pub tenant_admin: bool,
}

/// What the caller wants to do with a conversation; decides whose it may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Read or delete one conversation: an admin of the whole tenant may.
    Inspect,
    /// List: the caller's own, plus (for an admin of the whole tenant) legacy ones, or
    /// everyone's with `all_owners`.
    List { all_owners: bool },
    /// Continue or rename: the owner only.
    Act,
}

impl Access {
    /// The predicate's parameters: (principal, sees other owners, sees legacy rows).
    fn filter(&self, purpose: Purpose) -> (Option<&str>, bool, bool) {
        let admin = self.tenant_admin;
        let (others, legacy) = match purpose {
            Purpose::Inspect => (admin, admin),
            Purpose::List { all_owners } => (admin && all_owners, admin),
            Purpose::Act => (false, false),
        };
        (self.principal.as_deref(), others, legacy)
    }
}

/// Rows of `worker.conversations c` the caller may see, with its parameters at `$n`..`$n+2`
/// bound from `Access::filter`. A caller without a principal sees every row of the tenant.
fn visible(n: usize) -> String {
    format!(
        "(${p}::text IS NULL OR c.owner = ${p} OR ${o} OR (${l} AND c.owner IS NULL))",
        p = n,
        o = n + 1,
        l = n + 2,
    )
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: Uuid,
    pub title: String,
    pub owner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub message_count: i64,
}

text_enum! {
    /// Who wrote a stored message.
    pub enum MessageRole("message role") {
        User = "user",
        Assistant = "assistant",
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub role: MessageRole,
    pub content: String,
    pub sources: Json<Vec<StoredSource>>,
    pub citations: Json<Vec<StoredCitation>>,
    pub finish_reason: Option<FinishReason>,
    pub answer_mode: Option<AnswerMode>,
    pub model: String,
    pub created_at: DateTime<Utc>,
    /// Set by `withhold_outside`: the content, sources and citations were left out.
    #[sqlx(skip)]
    pub withheld: bool,
}

impl MessageRow {
    /// Leaves out an answer that drew on any collection `tenant` may not read: its sources,
    /// and its text too, because an answer quotes (or paraphrases) its sources, so dropping
    /// only the out-of-scope sources would still hand their passages over.
    fn withhold_outside(&mut self, tenant: &Tenant) {
        if self
            .sources
            .0
            .iter()
            .all(|s| tenant.allows(s.collection_id))
        {
            return;
        }
        self.withheld = true;
        self.content.clear();
        self.sources.0.clear();
        self.citations.0.clear();
    }
}

/// A source as stored with an answer: the search hit it was, frozen at answer time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSource {
    pub chunk_id: Uuid,
    pub asset_id: Uuid,
    pub collection_id: Uuid,
    pub filename: String,
    /// Absent in sources stored before search reported media types.
    #[serde(default)]
    pub media_type: String,
    pub text: String,
    pub score: f64,
    pub chunk_index: i32,
    pub char_start: i64,
    pub char_end: i64,
    pub headings: Vec<String>,
    pub page: Option<i32>,
}

impl From<&Hit> for StoredSource {
    fn from(hit: &Hit) -> Self {
        Self {
            chunk_id: hit.chunk_id,
            asset_id: hit.asset_id,
            collection_id: hit.collection_id,
            filename: hit.filename.clone(),
            media_type: hit.media_type.clone(),
            text: hit.text.clone(),
            score: hit.score,
            chunk_index: hit.chunk_index,
            char_start: hit.char_start,
            char_end: hit.char_end,
            headings: hit.headings.clone(),
            page: hit.page,
        }
    }
}

impl From<StoredSource> for Hit {
    fn from(s: StoredSource) -> Self {
        Self {
            chunk_id: s.chunk_id,
            asset_id: s.asset_id,
            collection_id: s.collection_id,
            filename: s.filename,
            media_type: s.media_type,
            text: s.text,
            score: s.score,
            chunk_index: s.chunk_index,
            char_start: s.char_start,
            char_end: s.char_end,
            headings: s.headings,
            page: s.page,
            // A replayed source is the stored passage, not a fresh search result.
            snippet: None,
            keyword_coverage: None,
            explain: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCitation {
    pub source_index: u32,
    pub verified: bool,
    pub fabricated: bool,
    pub support: f32,
    pub occurrences: u32,
    /// Absent in citations stored before quoted marks existed.
    #[serde(default)]
    pub quoted: bool,
}

impl From<&Citation> for StoredCitation {
    fn from(c: &Citation) -> Self {
        Self {
            source_index: c.source_index,
            verified: c.verified,
            fabricated: c.fabricated,
            support: c.support,
            occurrences: c.occurrences,
            quoted: c.quoted,
        }
    }
}

impl From<StoredCitation> for Citation {
    fn from(c: StoredCitation) -> Self {
        Self {
            source_index: c.source_index,
            verified: c.verified,
            fabricated: c.fabricated,
            support: c.support,
            occurrences: c.occurrences,
            quoted: c.quoted,
        }
    }
}

/// One question and the answer it got (possibly cut short).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub question: String,
    pub answer: String,
    pub sources: Vec<Hit>,
    pub citations: Vec<Citation>,
    pub finish_reason: FinishReason,
    pub answer_mode: Option<AnswerMode>,
    pub model: String,
}

fn title(question: &str) -> String {
    let flat = question.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(TITLE_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Starts a conversation titled after its first question.
pub async fn create(
    pool: &PgPool,
    tenant: &Tenant,
    access: &Access,
    question: &str,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let mut tx = tenant.begin(pool).await?;
    sqlx::query(
        "INSERT INTO worker.conversations (id, tenant_id, title, owner) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(tenant.id)
    .bind(title(question))
    .bind(access.principal.as_deref())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// NOT_FOUND, alike, for an unknown conversation and for one `access` may not use for
/// `purpose`, so ids of other principals' conversations reveal nothing.
pub async fn get(
    pool: &PgPool,
    tenant: &Tenant,
    access: &Access,
    purpose: Purpose,
    id: Uuid,
) -> Result<ConversationRow> {
    let (principal, others, legacy) = access.filter(purpose);
    let mut tx = tenant.begin(pool).await?;
    let row = sqlx::query_as(&format!(
        "SELECT c.id, c.title, c.owner, c.created_at, c.updated_at, \
                (SELECT count(*) FROM worker.conversation_messages m \
                  WHERE m.conversation_id = c.id) AS message_count \
         FROM worker.conversations c WHERE c.tenant_id = $1 AND c.id = $2 AND {}",
        visible(3)
    ))
    .bind(tenant.id)
    .bind(id)
    .bind(principal)
    .bind(others)
    .bind(legacy)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.ok_or_else(|| WorkerError::NotFound(format!("conversation {id} not found")))
}

/// Most recently updated first, after the `(updated_at, id)` of the previous page.
pub async fn list(
    pool: &PgPool,
    tenant: &Tenant,
    access: &Access,
    all_owners: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ConversationRow>> {
    if all_owners && !access.tenant_admin && access.principal.is_some() {
        return Err(WorkerError::PermissionDenied(
            "only an admin of the whole tenant may list every principal's conversations".into(),
        ));
    }
    let (principal, others, legacy) = access.filter(Purpose::List { all_owners });
    let (after_time, after_id) = after.unzip();
    let mut tx = tenant.begin(pool).await?;
    let rows = sqlx::query_as(&format!(
        "SELECT c.id, c.title, c.owner, c.created_at, c.updated_at, \
                (SELECT count(*) FROM worker.conversation_messages m \
                  WHERE m.conversation_id = c.id) AS message_count \
         FROM worker.conversations c \
         WHERE c.tenant_id = $1 \
           AND ($2::timestamptz IS NULL OR (c.updated_at, c.id) < ($2, $3)) \
           AND {} \
         ORDER BY c.updated_at DESC, c.id DESC LIMIT $4",
        visible(5)
    ))
    .bind(tenant.id)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .bind(principal)
    .bind(others)
    .bind(legacy)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Oldest first; NOT_FOUND for an unknown conversation or one `access` may not use for
/// `purpose`. Assistant messages that drew on collections outside the caller's are withheld
/// (see `MessageRow::withhold_outside`).
pub async fn messages(
    pool: &PgPool,
    tenant: &Tenant,
    access: &Access,
    purpose: Purpose,
    id: Uuid,
) -> Result<Vec<MessageRow>> {
    get(pool, tenant, access, purpose, id).await?;
    let mut tx = tenant.begin(pool).await?;
    let rows = sqlx::query_as(
        "SELECT id, role, content, sources, citations, finish_reason, answer_mode, model, \
                created_at \
         FROM worker.conversation_messages \
         WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY id",
    )
    .bind(tenant.id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut rows: Vec<MessageRow> = rows;
    for row in &mut rows {
        row.withhold_outside(tenant);
    }
    Ok(rows)
}

/// The stored messages as answerer history: the owner's only, and without the answers that
/// drew on collections the caller may no longer read (their text quotes those passages).
pub async fn history(
    pool: &PgPool,
    tenant: &Tenant,
    access: &Access,
    id: Uuid,
) -> Result<Vec<Turn>> {
    let mut turns: Vec<Turn> = Vec::new();
    for m in messages(pool, tenant, access, Purpose::Act, id).await? {
        if m.withheld {
            // The question goes with its answer: alone it would leave two user turns in a
            // row, and it is only there to make sense of the withheld answer.
            if turns.last().is_some_and(|t| t.from_user) {
                turns.pop();
            }
            continue;
        }
        turns.push(Turn {
            from_user: m.role == MessageRole::User,
            content: m.content,
        });
    }
    Ok(turns)
}

pub async fn delete(pool: &PgPool, tenant: &Tenant, access: &Access, id: Uuid) -> Result<()> {
    let (principal, others, legacy) = access.filter(Purpose::Inspect);
    let mut tx = tenant.begin(pool).await?;
    let deleted = sqlx::query(&format!(
        "DELETE FROM worker.conversations c WHERE c.tenant_id = $1 AND c.id = $2 AND {}",
        visible(3)
    ))
    .bind(tenant.id)
    .bind(id)
    .bind(principal)
    .bind(others)
    .bind(legacy)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if deleted == 0 {
        return Err(WorkerError::NotFound(format!(
            "conversation {id} not found"
        )));
    }
    Ok(())
}

/// Longest title a caller may set, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Sets the title; the conversation's `updated_at` stays the time of its last message.
pub async fn rename(
    pool: &PgPool,
    tenant: &Tenant,
    access: &Access,
    id: Uuid,
    title: &str,
) -> Result<()> {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err(WorkerError::InvalidArgument(
            "title must not be blank".into(),
        ));
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(WorkerError::InvalidArgument(format!(
            "title must be at most {MAX_TITLE_CHARS} characters, got {chars}"
        )));
    }
    let (principal, others, legacy) = access.filter(Purpose::Act);
    let mut tx = tenant.begin(pool).await?;
    let renamed = sqlx::query(&format!(
        "UPDATE worker.conversations c SET title = $3 \
         WHERE c.tenant_id = $1 AND c.id = $2 AND {}",
        visible(4)
    ))
    .bind(tenant.id)
    .bind(id)
    .bind(&title)
    .bind(principal)
    .bind(others)
    .bind(legacy)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if renamed == 0 {
        return Err(WorkerError::NotFound(format!(
            "conversation {id} not found"
        )));
    }
    Ok(())
}

/// Stores a question and its answer together.
pub async fn record(
    pool: &PgPool,
    tenant: &Tenant,
    conversation_id: Uuid,
    exchange: &Exchange,
) -> Result<()> {
    let tenant_id = tenant.id;
    let mut tx = tenant.begin(pool).await?;
    let insert = "INSERT INTO worker.conversation_messages \
        (id, conversation_id, tenant_id, role, content, sources, citations, finish_reason, \
         answer_mode, model) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    sqlx::query(insert)
        .bind(Uuid::now_v7())
        .bind(conversation_id)
        .bind(tenant_id)
        .bind(MessageRole::User.as_str())
        .bind(&exchange.question)
        .bind(Json(Vec::<StoredSource>::new()))
        .bind(Json(Vec::<StoredCitation>::new()))
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind("")
        .execute(&mut *tx)
        .await?;
    let sources: Vec<StoredSource> = exchange.sources.iter().map(StoredSource::from).collect();
    let citations: Vec<StoredCitation> = exchange
        .citations
        .iter()
        .map(StoredCitation::from)
        .collect();
    sqlx::query(insert)
        .bind(Uuid::now_v7())
        .bind(conversation_id)
        .bind(tenant_id)
        .bind(MessageRole::Assistant.as_str())
        .bind(&exchange.answer)
        .bind(Json(sources))
        .bind(Json(citations))
        .bind(Some(exchange.finish_reason.as_str()))
        .bind(exchange.answer_mode.map(AnswerMode::as_str))
        .bind(&exchange.model)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE worker.conversations SET updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(conversation_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::title;

    #[test]
    fn titles_are_the_question_flattened_and_shortened() {
        assert_eq!(title("  What is\n lava? "), "What is lava?");
        let long = "word ".repeat(40);
        assert_eq!(title(&long).chars().count(), 81);
        assert!(title(&long).ends_with('…'));
    }
}
