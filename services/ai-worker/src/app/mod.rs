//! The worker's application layer: one [`Worker`] owning the pool, the embedding models, the
//! LLM, the object store and the queue wake-ups, with one method per capability (accept,
//! watch, search, ask, collections, conversations…).
//!
//! Every caller — the gRPC adapter today, an MCP server or a scheduler tomorrow — calls
//! `worker.<capability>(&caller, typed request)` and gets a typed result or a [`WorkerError`].
//! What must happen around a capability call (a queue wake-up after any enqueue, the shadow
//! comparison after a search, releasing stored bytes after a delete, chat's session rules and
//! persistence) happens here, so no caller can forget it. Limits that are business rules
//! (query length, page and batch sizes) are checked here too; adapters only check wire shape.

mod assets;
mod chat;
mod collections;
mod conversations;
pub mod readiness;
mod search;
mod tenants;
mod watch;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

pub use assets::{Accepted, AssetQuery, Upload};
pub use chat::{Ask, AskStream, ChatInfo};
pub use collections::NewCollection;
pub use conversations::ConversationDetail;
pub use search::{EmbedRequest, Embeddings, ModelList};

use crate::{
    Config, assets::Assets, chat::conversations::Access, db, embed::LocalEmbedder, embed::Registry,
    error::WorkerError, ingest::objects::Objects, llm, tenancy::Tenant,
};

/// Bytes of one query or question.
const MAX_QUERY_BYTES: usize = 8 * 1024;
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

/// Who calls, for the capabilities that care beyond the tenant (conversations have owners).
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Tenant,
    /// Whose conversations the caller may touch.
    pub access: Access,
}

/// The application: everything a request needs, built once at start-up (see [`Worker::start`]).
#[derive(Debug)]
pub struct Worker {
    pub(crate) pool: PgPool,
    pub(crate) assets: Assets,
    pub(crate) objects: Objects,
    /// The in-process model: tokenizer for chunking and prompts, sentence ranking.
    pub(crate) embedder: LocalEmbedder,
    /// Every configured embedding model by name.
    pub(crate) models: Registry,
    /// The LLM for generative answers; `None` means extractive answers.
    pub(crate) llm: Option<llm::Llm>,
    pub(crate) max_asset_bytes: usize,
    /// Default per-tenant quotas (overridden per tenant in `worker.tenant_quotas`).
    pub(crate) quotas: crate::assets::quota::QuotaSettings,
    /// Wakes the ingestion loops when this process queues work; only [`Worker::enqueued`]
    /// notifies it.
    pub(crate) wake: Arc<Notify>,
    /// Asset changes fanned out to watch streams (see `assets::watch`).
    pub(crate) watches: crate::assets::watch::Watches,
    /// Longest life of one watch stream.
    pub(crate) watch_max_duration: Duration,
    /// Open queue-wait spans of the jobs this worker queued.
    pub(crate) job_traces: crate::telemetry::job_trace::JobTraces,
    /// The shadow retrieval profile compared with live searches, when configured.
    pub(crate) shadow: Option<crate::search::shadow::Shadow>,
    /// BM25's parameters and the reranking stage, when configured.
    pub(crate) ranking: crate::search::Ranking,
    /// How chat retrieves and when it abstains.
    pub(crate) answers: crate::chat::AnswerConfig,
}

/// Work this process just queued.
enum Enqueued {
    /// An asset's ingestion job (upload or reprocess): its queue-wait span starts now.
    Asset(Uuid),
    /// A collection's model migration.
    Migration,
}

impl Worker {
    /// Connects, migrates and loads the models: the worker is ready to serve afterwards.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let pool =
            db::connect_and_migrate(&config.database_url, config.database_max_connections).await?;
        let dir = config.embed_model_dir.clone();
        let embedder = tokio::task::spawn_blocking(move || LocalEmbedder::load(&dir))
            .await
            .context("model loading task panicked")?
            .with_context(|| {
                format!(
                    "cannot load the embedding model from {} (set THINKBANK_EMBED_MODEL_DIR)",
                    config.embed_model_dir.display()
                )
            })?;
        let models = Registry::new(embedder.clone(), &config.embed)
            .map_err(anyhow::Error::msg)
            .context("cannot set up the embedding models")?;
        for model in models.models() {
            db::ensure_vector_index(&pool, model)
                .await
                .with_context(|| format!("cannot create the vector index of {}", model.name))?;
        }
        let objects = Objects::local(&config.object_store_dir).with_context(|| {
            format!(
                "cannot open the object store at {}",
                config.object_store_dir.display()
            )
        })?;
        let llm = llm::Llm::from_config(&config.llm).context("cannot set up the llm client")?;
        match &llm {
            Some(llm) => tracing::info!(model = llm.model(), "answers are generative"),
            None => {
                tracing::info!("no llm configured (THINKBANK_LLM_BASE_URL); answers are extractive")
            }
        }
        let shadow = match config.search_shadow.clone() {
            Some(profile) => {
                let shadow = crate::search::shadow::Shadow::new(
                    profile,
                    pool.clone(),
                    models.clone(),
                    config.bm25,
                )
                .map_err(anyhow::Error::msg)
                .context("cannot set up the shadow retrieval profile (THINKBANK_SEARCH_SHADOW)")?;
                tracing::info!(profile = ?shadow.profile(), "shadow retrieval profile active");
                Some(shadow)
            }
            None => None,
        };
        let reranker = config
            .rerank
            .reranker()
            .map_err(anyhow::Error::msg)
            .context("cannot set up the reranker (THINKBANK_RERANK_URL)")?;
        if let Some(url) = &config.rerank.rerank_url {
            tracing::info!(%url, candidates = config.rerank.rerank_candidates, "reranking enabled");
        }
        Ok(Self {
            llm,
            shadow,
            ranking: crate::search::Ranking {
                bm25: config.bm25,
                reranker,
            },
            answers: config.answers.clone(),
            job_traces: crate::telemetry::job_trace::JobTraces::default(),
            assets: Assets::new(pool.clone()),
            pool,
            objects,
            embedder,
            models,
            max_asset_bytes: config.max_asset_bytes,
            quotas: config.quotas,
            wake: Arc::new(Notify::new()),
            watches: crate::assets::watch::Watches::default(),
            watch_max_duration: config.watch_max_duration,
        })
    }

    /// The one place that wakes the ingestion loops after this process queued work, so an
    /// upload, a reprocess and a migration are all picked up at once (not at the next poll).
    fn enqueued(&self, work: Enqueued) {
        if let Enqueued::Asset(id) = work {
            self.job_traces.queued(id);
        }
        self.wake.notify_one();
    }
}

/// Checks a query or question: not blank, not longer than [`MAX_QUERY_BYTES`], no NUL.
fn require_text(field: &str, value: &str) -> Result<(), WorkerError> {
    if value.trim().is_empty() {
        return Err(WorkerError::InvalidArgument(format!(
            "{field} must not be empty"
        )));
    }
    if value.len() > MAX_QUERY_BYTES {
        return Err(WorkerError::InvalidArgument(format!(
            "{field} is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    // PostgreSQL text cannot hold NUL: storing a question with one failed as an internal error.
    if value.contains('\0') {
        return Err(WorkerError::InvalidArgument(format!(
            "{field} must not contain NUL characters (U+0000)"
        )));
    }
    Ok(())
}

/// A count a caller asked for: 0 is `default`, above `max` is refused naming the field.
pub fn bounded(field: &str, value: u32, default: usize, max: usize) -> Result<usize, WorkerError> {
    match usize::try_from(value).unwrap_or(usize::MAX) {
        0 => Ok(default),
        n if n <= max => Ok(n),
        n => Err(WorkerError::InvalidArgument(format!(
            "{field} must be between 1 and {max}, got {n}"
        ))),
    }
}

/// A listing's page size: 0 is the default, above [`MAX_PAGE_SIZE`] is refused.
fn page_size(value: u32) -> Result<u32, WorkerError> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n <= MAX_PAGE_SIZE => Ok(n),
        n => Err(WorkerError::InvalidArgument(format!(
            "page_size must be between 1 and {MAX_PAGE_SIZE}, got {n}"
        ))),
    }
}

/// Keyset cursor of a listing: the sort time and id of the last row returned.
pub type Cursor = (chrono::DateTime<chrono::Utc>, Uuid);

/// Which page of a listing a caller wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest {
    /// Rows after this cursor; `None`: the first page.
    pub after: Option<Cursor>,
    /// 0: the default page size.
    pub size: u32,
}

/// One page of a listing and the cursor of the next, when there is one.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Cuts the one extra row a listing fetched (`size + 1`) and keeps the cursor of the next
    /// page when there is one.
    fn cut(mut rows: Vec<T>, size: u32, cursor: impl Fn(&T) -> Cursor) -> Self {
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next = if more { rows.last().map(cursor) } else { None };
        Self { items: rows, next }
    }
}
