//! thinkbank's side of `make bench-embed`: embeds the texts of a JSON file (an array of strings
//! written by `deploy/local/bench_embed.py`) with the local MiniLM and prints one JSON object
//! with sentences/s and tokens/s. The thread count is the environment's `RAYON_NUM_THREADS`
//! (the script runs this once per count).
//!
//! Two paths are measured on the same texts, after a warm-up that is not counted:
//! - `direct`: `LocalEmbedder::embed_blocking` over the whole list, as sentence-transformers'
//!   `encode` gets it (the encoder runs it as unpadded groups of at most
//!   `thinkbank_bert::MAX_GROUP_TOKENS` tokens, spread over the threads);
//! - `service`: the worker's path, `Registry` → dynamic batcher, with 8 concurrent callers
//!   sending 8 texts each, as concurrent queries and ingestion jobs do.

use std::time::Instant;

use anyhow::Context as _;
use thinkbank_ai_worker::embed::{LocalEmbedder, Registry, registry::EmbedConfig};

const WARMUP_TEXTS: usize = 64;
const CALLERS: usize = 8;
const TEXTS_PER_CALL: usize = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: bench-embed <texts.json>")?;
    let texts: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?,
    )
    .context("texts file must be a JSON array of strings")?;
    let dir = std::env::var("THINKBANK_EMBED_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| thinkbank_testkit::model_dir());
    let model = LocalEmbedder::load(&dir).context("cannot load the model")?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    // Warm-up: first-touch allocations, page faults of the weights.
    model
        .embed_blocking(&refs[..WARMUP_TEXTS.min(refs.len())])
        .map_err(anyhow::Error::msg)?;

    let started = Instant::now();
    let embedded = model.embed_blocking(&refs).map_err(anyhow::Error::msg)?;
    let direct_secs = started.elapsed().as_secs_f64();
    let tokens: usize = embedded.iter().map(|e| e.token_count).sum();

    let registry =
        Registry::new(model.clone(), &EmbedConfig::default()).map_err(anyhow::Error::msg)?;
    let embedder = registry.default_model().clone();
    embedder
        .embed(texts[..WARMUP_TEXTS.min(texts.len())].to_vec())
        .await?;
    let started = Instant::now();
    let calls: Vec<Vec<String>> = texts
        .chunks(TEXTS_PER_CALL)
        .map(<[String]>::to_vec)
        .collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(calls));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let queue = queue.clone();
        let embedder = embedder.clone();
        callers.spawn(async move {
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                let Some(call) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                embedder.embed(call).await?;
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done??;
    }
    let service_secs = started.elapsed().as_secs_f64();

    let n = texts.len() as f64;
    let result = serde_json::json!({
        "texts": texts.len(),
        "tokens": tokens,
        "threads": std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse::<u32>().ok()),
        "group_tokens": thinkbank_bert::MAX_GROUP_TOKENS,
        "isa": thinkbank_bert::Isa::detect().name(),
        "direct_seconds": direct_secs,
        "direct_sentences_per_s": n / direct_secs,
        "direct_tokens_per_s": tokens as f64 / direct_secs,
        "service_seconds": service_secs,
        "service_sentences_per_s": n / service_secs,
        "service_tokens_per_s": tokens as f64 / service_secs,
        "peak_rss_mb": thinkbank_bench::peak_rss_mb(),
        "vectors_head": embedded.iter().take(8).map(|e| e.vector.clone()).collect::<Vec<_>>(),
    });
    println!("{result}");
    Ok(())
}
