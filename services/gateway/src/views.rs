//! JSON views of `thinkbank.v1` messages, as the REST API and SSE events present them.
//! Enum values are lower-case words ("ready", "vector"), timestamps RFC 3339.

use serde::Serialize;
use thinkbank_proto::v1 as pb;
use utoipa::ToSchema;

/// An uploaded document and where its ingestion stands.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Asset)]
pub struct AssetView {
    pub id: String,
    pub collection_id: String,
    pub filename: String,
    /// Detected from the bytes, e.g. `text/markdown`, `application/pdf`.
    pub media_type: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the bytes; the same bytes are stored once.
    pub sha256: String,
    /// `queued`, `processing`, `ready`, `failed` or `cancelled`.
    pub status: &'static str,
    /// The pipeline step: `queued`, `reading`, `parsing`, `chunking`, `embedding`, `indexing`,
    /// `ready`, `failed` or `cancelled`.
    pub stage: &'static str,
    /// 0.0 to 1.0 within the current ingestion.
    pub progress: f32,
    pub attempts: u32,
    /// Why the asset failed.
    pub error: Option<String>,
    pub chunk_count: u32,
    pub external_id: Option<String>,
    /// The metadata given at upload, plus what parsing learnt under `"document"`.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub embedding_model: String,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

pub fn asset(asset: pb::Asset) -> AssetView {
    AssetView {
        status: status_name(asset.status()),
        stage: stage_name(asset.stage()),
        id: asset.id,
        collection_id: asset.collection_id,
        filename: asset.filename,
        media_type: asset.media_type,
        size_bytes: asset.size_bytes,
        sha256: asset.sha256,
        progress: asset.progress,
        attempts: asset.attempts,
        error: Some(asset.error).filter(|e| !e.is_empty()),
        chunk_count: asset.chunk_count,
        external_id: Some(asset.external_id).filter(|e| !e.is_empty()),
        metadata: thinkbank_proto::json::struct_to_json(asset.metadata),
        embedding_model: asset.embedding_model,
        created_at: asset.created_at.map(rfc3339),
        updated_at: asset.updated_at.map(rfc3339),
    }
}

pub fn status_name(status: pb::AssetStatus) -> &'static str {
    match status {
        pb::AssetStatus::Unspecified => "unspecified",
        pb::AssetStatus::Queued => "queued",
        pb::AssetStatus::Processing => "processing",
        pb::AssetStatus::Ready => "ready",
        pb::AssetStatus::Failed => "failed",
        pb::AssetStatus::Cancelled => "cancelled",
    }
}

pub fn status_from_name(name: &str) -> Option<pb::AssetStatus> {
    [
        pb::AssetStatus::Queued,
        pb::AssetStatus::Processing,
        pb::AssetStatus::Ready,
        pb::AssetStatus::Failed,
        pb::AssetStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| status_name(*s) == name)
}

fn stage_name(stage: pb::IngestStage) -> &'static str {
    match stage {
        pb::IngestStage::Unspecified => "unspecified",
        pb::IngestStage::Queued => "queued",
        pb::IngestStage::Reading => "reading",
        pb::IngestStage::Parsing => "parsing",
        pb::IngestStage::Chunking => "chunking",
        pb::IngestStage::Embedding => "embedding",
        pb::IngestStage::Indexing => "indexing",
        pb::IngestStage::Ready => "ready",
        pb::IngestStage::Failed => "failed",
        pb::IngestStage::Cancelled => "cancelled",
    }
}

/// Where a chunk sits in its document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Position)]
pub struct PositionView {
    pub chunk_index: u32,
    pub char_start: u64,
    pub char_end: u64,
    /// The heading path above the chunk, outermost first.
    pub headings: Vec<String>,
    /// 1-based PDF page, when the format has pages.
    pub page: Option<u32>,
}

/// One retrieved chunk.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Hit)]
pub struct HitView {
    pub chunk_id: String,
    pub asset_id: String,
    pub collection_id: String,
    pub filename: String,
    pub text: String,
    /// In the mode's scale: cosine similarity, `ts_rank_cd` or the fused RRF score.
    pub score: f32,
    pub position: Option<PositionView>,
    /// Detected media type of the asset.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The text with query terms wrapped in `<mark>…</mark>`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub snippet: String,
    /// Present when the request asked for `explain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<ExplainView>,
}

/// Why a hit ranked where it did; ranks are 1-based and `null` when a leg did not return it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Explain)]
pub struct ExplainView {
    pub vector_rank: Option<u32>,
    pub vector_distance: Option<f64>,
    pub keyword_rank: Option<u32>,
    pub keyword_score: Option<f64>,
    pub vector_contribution: f64,
    pub keyword_contribution: f64,
}

pub fn hit(hit: pb::SearchHit) -> HitView {
    HitView {
        chunk_id: hit.chunk_id,
        asset_id: hit.asset_id,
        collection_id: hit.collection_id,
        filename: hit.filename,
        text: hit.text,
        score: hit.score,
        position: hit.position.map(|p| PositionView {
            chunk_index: p.chunk_index,
            char_start: p.char_start,
            char_end: p.char_end,
            headings: p.headings,
            page: Some(p.page).filter(|&n| n > 0),
        }),
        media_type: hit.media_type,
        snippet: hit.snippet,
        explain: hit.explain.map(|e| ExplainView {
            vector_rank: Some(e.vector_rank).filter(|&r| r > 0),
            vector_distance: e.vector_distance,
            keyword_rank: Some(e.keyword_rank).filter(|&r| r > 0),
            keyword_score: e.keyword_score,
            vector_contribution: e.vector_contribution,
            keyword_contribution: e.keyword_contribution,
        }),
    }
}

pub fn rfc3339(ts: prost_types::Timestamp) -> String {
    let nanos = u32::try_from(ts.nanos).unwrap_or(0);
    chrono::DateTime::from_timestamp(ts.seconds, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
