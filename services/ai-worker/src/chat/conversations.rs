//! SQL for stored conversations (`worker.conversations`, `worker.conversation_messages`).
//! Every query is scoped by tenant. An exchange (question and answer) is written in one
//! transaction, so a conversation never holds a question without its answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

use super::{AnswerMode, Citation, FinishReason, Turn};
use crate::{
    error::{Result, WorkerError},
    search::Hit,
    tenancy::Tenant,
};

/// Longest title, in characters (the first question, shortened).
const TITLE_CHARS: usize = 80;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: Uuid,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub message_count: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub role: String,
    pub content: String,
    pub sources: Json<Vec<StoredSource>>,
    pub citations: Json<Vec<StoredCitation>>,
    pub finish_reason: Option<String>,
    pub answer_mode: Option<String>,
    pub model: String,
    pub created_at: DateTime<Utc>,
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

pub fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
        FinishReason::Error => "error",
    }
}

pub fn answer_mode_name(mode: AnswerMode) -> &'static str {
    match mode {
        AnswerMode::Extractive => "extractive",
        AnswerMode::Generative => "generative",
    }
}

fn title(question: &str) -> String {
    let flat = question.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(TITLE_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Starts a conversation titled after its first question.
pub async fn create(pool: &PgPool, tenant: &Tenant, question: &str) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let mut tx = tenant.begin(pool).await?;
    sqlx::query("INSERT INTO worker.conversations (id, tenant_id, title) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(tenant.id)
        .bind(title(question))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn get(pool: &PgPool, tenant: &Tenant, id: Uuid) -> Result<ConversationRow> {
    let mut tx = tenant.begin(pool).await?;
    let row = sqlx::query_as(
        "SELECT c.id, c.title, c.created_at, c.updated_at, \
                (SELECT count(*) FROM worker.conversation_messages m \
                  WHERE m.conversation_id = c.id) AS message_count \
         FROM worker.conversations c WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind(tenant.id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.ok_or_else(|| WorkerError::NotFound(format!("conversation {id} not found")))
}

/// Most recently updated first, after the `(updated_at, id)` of the previous page.
pub async fn list(
    pool: &PgPool,
    tenant: &Tenant,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ConversationRow>> {
    let (after_time, after_id) = after.unzip();
    let mut tx = tenant.begin(pool).await?;
    let rows = sqlx::query_as(
        "SELECT c.id, c.title, c.created_at, c.updated_at, \
                (SELECT count(*) FROM worker.conversation_messages m \
                  WHERE m.conversation_id = c.id) AS message_count \
         FROM worker.conversations c \
         WHERE c.tenant_id = $1 \
           AND ($2::timestamptz IS NULL OR (c.updated_at, c.id) < ($2, $3)) \
         ORDER BY c.updated_at DESC, c.id DESC LIMIT $4",
    )
    .bind(tenant.id)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Oldest first; NOT_FOUND for an unknown conversation.
pub async fn messages(pool: &PgPool, tenant: &Tenant, id: Uuid) -> Result<Vec<MessageRow>> {
    get(pool, tenant, id).await?;
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
    Ok(rows)
}

/// The stored messages as answerer history.
pub async fn history(pool: &PgPool, tenant: &Tenant, id: Uuid) -> Result<Vec<Turn>> {
    Ok(messages(pool, tenant, id)
        .await?
        .into_iter()
        .map(|m| Turn {
            from_user: m.role == "user",
            content: m.content,
        })
        .collect())
}

pub async fn delete(pool: &PgPool, tenant: &Tenant, id: Uuid) -> Result<()> {
    let mut tx = tenant.begin(pool).await?;
    let deleted = sqlx::query("DELETE FROM worker.conversations WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.id)
        .bind(id)
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
pub async fn rename(pool: &PgPool, tenant: &Tenant, id: Uuid, title: &str) -> Result<()> {
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
    let mut tx = tenant.begin(pool).await?;
    let renamed =
        sqlx::query("UPDATE worker.conversations SET title = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.id)
            .bind(id)
            .bind(&title)
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
        .bind("user")
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
        .bind("assistant")
        .bind(&exchange.answer)
        .bind(Json(sources))
        .bind(Json(citations))
        .bind(Some(finish_reason_name(exchange.finish_reason)))
        .bind(exchange.answer_mode.map(answer_mode_name))
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
