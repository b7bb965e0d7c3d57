//! Shared pieces of the quality evaluations: the corpora, the BM25 reference and the scores.

pub mod bm25;
pub mod book;
pub mod manpages;

use std::collections::HashMap;

use serde_json::{Value, json};

/// One document of a corpus and its known-item query.
#[derive(Debug, Clone)]
pub struct Document {
    /// How the answer suite names it: a section heading, or `name(section)`.
    pub id: String,
    pub query: String,
    pub body: String,
}

/// Drops documents whose query (case-insensitive) another document shares: a known-item
/// query must have one right answer.
pub fn unique_queries(docs: Vec<Document>) -> Vec<Document> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for d in &docs {
        *counts.entry(d.query.to_lowercase()).or_default() += 1;
    }
    docs.into_iter()
        .filter(|d| counts[&d.query.to_lowercase()] == 1)
        .collect()
}

/// `n` documents spread evenly over `docs` (all of them when `n` is at least their number).
pub fn sample(docs: Vec<Document>, n: usize) -> Vec<Document> {
    if n >= docs.len() {
        return docs;
    }
    (0..n).map(|i| docs[i * docs.len() / n].clone()).collect()
}

pub const CUTOFF: usize = 10;

#[derive(Debug, Default, Clone, Copy)]
pub struct Scores {
    pub mrr: f64,
    pub ndcg: f64,
    pub recall_1: f64,
    pub recall_10: f64,
}

impl Scores {
    /// Adds one query whose relevant document came at `rank` (1-based) or not at all.
    pub fn add(&mut self, rank: Option<usize>) {
        if let Some(rank) = rank.filter(|&r| r <= CUTOFF) {
            self.mrr += 1.0 / rank as f64;
            self.ndcg += 1.0 / (rank as f64 + 1.0).log2();
            self.recall_10 += 1.0;
            if rank == 1 {
                self.recall_1 += 1.0;
            }
        }
    }

    pub fn mean(self, n: usize) -> Self {
        let n = n.max(1) as f64;
        Self {
            mrr: self.mrr / n,
            ndcg: self.ndcg / n,
            recall_1: self.recall_1 / n,
            recall_10: self.recall_10 / n,
        }
    }

    pub fn json(self) -> Value {
        json!({"mrr@10": round(self.mrr), "ndcg@10": round(self.ndcg),
               "recall@1": round(self.recall_1), "recall@10": round(self.recall_10)})
    }
}

pub fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Cuts `text` to its first `max_chars` characters.
pub fn truncate(text: &mut String, max_chars: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
    }
}

/// A gateway in front of `worker_url` whose rate limits do not throttle an evaluation's
/// thousands of requests from one key.
pub async fn spawn_gateway(
    worker_url: &str,
    database_url: &str,
) -> thinkbank_testkit::GatewayHandle {
    let mut config = thinkbank_gateway::Config::for_worker(worker_url, database_url);
    config.limits.read_per_min = 1_000_000;
    config.limits.write_per_min = 1_000_000;
    config.limits.upload_per_min = 1_000_000;
    config.limits.chat_per_min = 1_000_000;
    thinkbank_testkit::spawn_gateway_with(config).await
}

/// Uploads `body` as `name` (into `collection_id`, or the default collection) through the
/// gateway and returns the asset id.
pub async fn upload(
    http: &reqwest::Client,
    gateway: &thinkbank_testkit::GatewayHandle,
    collection_id: Option<&str>,
    name: &str,
    body: &str,
) -> String {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(body.as_bytes().to_vec()).file_name(name.to_owned()),
    );
    if let Some(collection_id) = collection_id {
        form = form.text("collection_id", collection_id.to_owned());
    }
    let response = http
        .post(gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("uploading {name}: {e}"));
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("uploading {name}: {e}"));
    body["asset"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("uploading {name}: {body}"))
        .to_owned()
}

/// Waits until every asset of `ids` is READY (any other end fails the test); returns their
/// chunks in all.
pub async fn wait_ready(
    http: &reqwest::Client,
    gateway: &thinkbank_testkit::GatewayHandle,
    ids: &[String],
) -> u64 {
    let mut chunks = 0;
    for id in ids {
        loop {
            let asset: Value = http
                .get(gateway.url(&format!("/api/v1/assets/{id}")))
                .send()
                .await
                .unwrap_or_else(|e| panic!("asset {id}: {e}"))
                .json()
                .await
                .unwrap_or_else(|e| panic!("asset {id}: {e}"));
            match asset["status"].as_str() {
                Some("ready") => {
                    chunks += asset["chunk_count"].as_u64().unwrap_or(0);
                    break;
                }
                Some("queued" | "processing") => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => panic!("asset {id} ended {other:?}: {asset}"),
            }
        }
    }
    chunks
}

/// A number from the environment, or `usize::MAX` for "all", or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name).as_deref() {
        Ok("all") => usize::MAX,
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number or 'all'")),
        Err(_) => default,
    }
}

/// Merges `section` into the JSON report at `THINKBANK_EVAL_OUT` (when set) under `key`.
pub fn report(key: &str, section: Value) {
    let Ok(path) = std::env::var("THINKBANK_EVAL_OUT") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let mut root: serde_json::Map<String, Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    // The report of earlier versions had the modes at the top level.
    root.retain(|k, _| matches!(k.as_str(), "corpora" | "answers" | "previous"));
    root.insert(key.to_owned(), section);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    let text = serde_json::to_string_pretty(&Value::Object(root)).unwrap_or_default();
    std::fs::write(&path, text + "\n").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("eval: wrote {key} to {}", path.display());
}
