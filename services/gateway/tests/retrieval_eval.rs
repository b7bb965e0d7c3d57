//! Retrieval evaluation on two corpora nobody on the project wrote, each a known-item task:
//! - `rust-book`: the Rust Book's sections, queried by their headings (see `eval::book`);
//! - `manpages`: the Linux man-pages, queried by their one-line NAME descriptions, as users
//!   describe what they want (see `eval::manpages`).
//!
//! Each corpus goes into its own collection through the public HTTP API of a live stack
//! (gateway + worker + PostgreSQL, in process); each mode is scored with MRR@10, nDCG@10,
//! recall@1 and recall@10 over documents (a document's best chunk counts), beside a textbook
//! Okapi BM25 computed by the harness over the same documents (`eval::bm25`).
//!
//! In CI a sample of `THINKBANK_EVAL_SECTIONS` (default 60) documents per corpus, each cut to
//! its first `THINKBANK_EVAL_MAX_CHARS` (default 1200) characters, runs as a regression guard.
//! `make eval` runs every document (Rust Book sections whole, man pages cut to their first
//! `manpages::MAX_CHARS` characters) and writes `corpora` into `bench/results/eval.json`
//! (`THINKBANK_EVAL_OUT`); with `THINKBANK_EVAL_SWEEP=1` it prints hybrid MRR@10 over a grid of
//! fusion settings and keyword MRR@10 over BM25 parameters (how the defaults were chosen).
//! `THINKBANK_EVAL_RERANK_URL` evaluates with a real reranker behind that `/rerank` URL.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]
#![expect(clippy::expect_used, reason = "set-up failures say what is missing")]

#[expect(
    dead_code,
    reason = "shared with the other eval binary, which uses other parts"
)]
mod eval;

use std::{collections::BTreeMap, time::Instant};

use eval::{Document, Scores, bm25, book, manpages};
use serde_json::{Value, json};
use thinkbank_testkit::TestDatabase;

const DEFAULT_DOCS: usize = 60;
const DEFAULT_MAX_CHARS: usize = 1200;
/// Bodies shorter than this carry too little to be a fair target.
const MIN_BODY_CHARS: usize = 300;
/// Chunks fetched per query, so that ten distinct documents are usually among them.
const FETCH: u32 = 50;
const MODES: [&str; 3] = ["vector", "keyword", "hybrid"];

/// Creates a collection named `name` and returns its id.
async fn create_collection(http: &reqwest::Client, url: &str, name: &str) -> String {
    let body: Value = http
        .post(url)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["id"].as_str().expect("collection id").to_owned()
}

/// Uploads every document into `collection_id` as `doc-NNNN.<ext>` (a name that gives
/// nothing away) and waits until all are READY; returns the asset ids and the chunk count.
async fn ingest(
    http: &reqwest::Client,
    gateway: &thinkbank_testkit::GatewayHandle,
    collection_id: &str,
    docs: &[Document],
    extension: &str,
) -> (Vec<String>, u64) {
    let mut ids = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        let name = format!("doc-{i:04}.{extension}");
        ids.push(eval::upload(http, gateway, Some(collection_id), &name, &doc.body).await);
    }
    let chunks = eval::wait_ready(http, gateway, &ids).await;
    (ids, chunks)
}

/// The harness's own BM25 over the same documents: the rank of each query's document.
fn bm25_reference(docs: &[Document]) -> Scores {
    let index = bm25::Index::new(docs.iter().map(|d| d.body.as_str()));
    let mut scores = Scores::default();
    for (i, doc) in docs.iter().enumerate() {
        let ranked = index.search(&doc.query, eval::CUTOFF);
        scores.add(ranked.iter().position(|&d| d == i).map(|p| p + 1));
    }
    scores.mean(docs.len())
}

fn print_scores(corpus: &str, mode: &str, s: &Scores, secs: f64) {
    eprintln!(
        "eval: {corpus:<9} {mode:<14} mrr@10 {:.4}  ndcg@10 {:.4}  recall@1 {:.4}  recall@10 {:.4}  ({secs:.1}s)",
        s.mrr, s.ndcg, s.recall_1, s.recall_10
    );
}

#[tokio::test]
async fn retrieval_eval_per_corpus_against_a_bm25_reference() {
    let n = eval::env_count("THINKBANK_EVAL_SECTIONS", DEFAULT_DOCS);
    let max_chars = eval::env_count("THINKBANK_EVAL_MAX_CHARS", DEFAULT_MAX_CHARS);
    // (name, file extension, documents, most characters kept of each)
    let corpora: Vec<(&str, &str, Vec<Document>, usize)> = vec![
        (
            "rust-book",
            "txt",
            book::documents(MIN_BODY_CHARS),
            max_chars,
        ),
        (
            "manpages",
            "md",
            manpages::documents(MIN_BODY_CHARS),
            max_chars.min(manpages::MAX_CHARS),
        ),
    ];

    let db = TestDatabase::create().await;
    // `THINKBANK_EVAL_RERANK_URL`: evaluate with a real reranker (a `/rerank` endpoint).
    let mut config = thinkbank_testkit::worker_config(&db, &thinkbank_testkit::fresh_objects_dir());
    config.rerank.rerank_url = std::env::var("THINKBANK_EVAL_RERANK_URL").ok();
    let worker = thinkbank_testkit::spawn_worker_with(config).await;
    let gateway = eval::spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();
    let search_url = gateway.url("/api/v1/search");

    let mut report = serde_json::Map::new();
    let mut results: BTreeMap<(&str, &str), Scores> = BTreeMap::new();
    // (corpus, documents, asset ids, search scope) for the BM25 sweep.
    let mut ingested: Vec<(&str, Vec<Document>, Vec<String>, Value)> = Vec::new();
    for (name, extension, docs, max_chars) in corpora {
        let mut docs = eval::sample(docs, n);
        for doc in &mut docs {
            eval::truncate(&mut doc.body, max_chars);
        }
        assert!(docs.len() >= 20, "too few documents in {name}");
        let collection = create_collection(&http, &gateway.url("/api/v1/collections"), name).await;
        let started = Instant::now();
        let (ids, chunks) = ingest(&http, &gateway, &collection, &docs, extension).await;
        eprintln!(
            "eval: {name}: {} documents, {chunks} chunks ingested in {:.1}s",
            docs.len(),
            started.elapsed().as_secs_f64()
        );
        let scope = json!({"collection_ids": [collection]});
        let mut table = serde_json::Map::new();
        for mode in MODES {
            let started = Instant::now();
            let mut extra = scope.clone();
            extra["mode"] = json!(mode);
            let scores = evaluate(&http, &search_url, &docs, &ids, extra).await;
            print_scores(name, mode, &scores, started.elapsed().as_secs_f64());
            table.insert(mode.to_owned(), scores.json());
            results.insert((name, mode), scores);
        }
        let reference = bm25_reference(&docs);
        print_scores(name, "bm25_reference", &reference, 0.0);
        table.insert("bm25_reference".into(), reference.json());
        table.insert("documents".into(), json!(docs.len()));
        table.insert("chunks".into(), json!(chunks));
        results.insert((name, "bm25_reference"), reference);
        report.insert(name.to_owned(), Value::Object(table));
        ingested.push((name, docs.clone(), ids.clone(), scope.clone()));

        if sweep() {
            // Around the defaults (rrf_k 60, equal weights); the full 4×4 grid of earlier runs
            // was flat (README).
            for (rrf_k, keyword_weight) in [(10, 1.0), (30, 1.0), (100, 1.0), (60, 0.5), (60, 1.5)]
            {
                let mut extra = scope.clone();
                extra["mode"] = json!("hybrid");
                extra["fusion"] = json!({"rrf_k": rrf_k, "keyword_weight": keyword_weight});
                let s = evaluate(&http, &search_url, &docs, &ids, extra).await;
                eprintln!(
                    "eval: {name} sweep rrf_k {rrf_k:>3} keyword_weight {keyword_weight:.1}: mrr@10 {:.4} ndcg@10 {:.4}",
                    s.mrr, s.ndcg
                );
            }
        }
    }
    if sweep() {
        bm25_sweep(&db, &ingested).await;
    }
    eval::report("corpora", Value::Object(report));

    for corpus in ["rust-book", "manpages"] {
        let mrr = |mode: &str| results[&(corpus, mode)].mrr;
        assert!(
            mrr("hybrid") >= mrr("vector").max(mrr("keyword")),
            "{corpus}: hybrid MRR@10 {:.4} fell below the best single mode",
            mrr("hybrid")
        );
        // Keyword mode is deterministic (no embedding), so this holds exactly or not at all.
        assert!(
            mrr("keyword") >= mrr("bm25_reference"),
            "{corpus}: keyword MRR@10 {:.4} fell below the textbook BM25 reference {:.4}",
            mrr("keyword"),
            mrr("bm25_reference")
        );
    }
}

fn sweep() -> bool {
    std::env::var("THINKBANK_EVAL_SWEEP").is_ok_and(|v| v == "1")
}

/// Keyword MRR@10 per corpus for BM25 parameters around the defaults, each served
/// by a worker of its own on the same database (nothing is ingested again): how the
/// defaults were chosen.
async fn bm25_sweep(db: &TestDatabase, ingested: &[(&str, Vec<Document>, Vec<String>, Value)]) {
    use thinkbank_testkit::Bm25;
    let base = Bm25::default();
    let variants = [
        Bm25 { k1: 0.9, ..base },
        Bm25 { k1: 1.6, ..base },
        Bm25 { k1: 2.0, ..base },
        Bm25 { b: 0.5, ..base },
        Bm25 { b: 0.9, ..base },
        Bm25 {
            title_weight: 1.0,
            ..base
        },
        Bm25 {
            title_weight: 3.0,
            ..base
        },
        Bm25 {
            document_weight: 0.0,
            ..base
        },
        Bm25 {
            document_weight: 0.4,
            ..base
        },
        Bm25 {
            document_weight: 0.8,
            ..base
        },
    ];
    for bm25 in variants {
        let mut config =
            thinkbank_testkit::worker_config(db, &thinkbank_testkit::fresh_objects_dir());
        config.bm25 = bm25;
        let worker = thinkbank_testkit::spawn_worker_with(config).await;
        let gateway = eval::spawn_gateway(&worker.url(), &db.url).await;
        let http = gateway.client();
        let url = gateway.url("/api/v1/search");
        let mut line = format!(
            "eval: bm25 sweep k1 {:.1} b {:.2} title {:.1} document {:.1}:",
            bm25.k1, bm25.b, bm25.title_weight, bm25.document_weight
        );
        for (name, docs, ids, scope) in ingested {
            let mut extra = scope.clone();
            extra["mode"] = json!("keyword");
            let s = evaluate(&http, &url, docs, ids, extra).await;
            line.push_str(&format!(" {name} keyword {:.4}", s.mrr));
        }
        eprintln!("{line}");
        worker.stop().await;
    }
}

/// Scores one search configuration (`extra` is merged into every request) over all documents.
async fn evaluate(
    http: &reqwest::Client,
    url: &str,
    docs: &[Document],
    ids: &[String],
    extra: Value,
) -> Scores {
    let mut scores = Scores::default();
    for (doc, relevant) in docs.iter().zip(ids) {
        let mut request = json!({"query": doc.query, "top_k": FETCH});
        if let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
            request.extend(extra.clone());
        }
        let response = http.post(url).json(&request).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        // A heading of stop words only has no keyword query: it finds nothing.
        assert!(status.is_success() || status == 400, "{request}: {body}");
        let mut ranked: Vec<&str> = Vec::new();
        for hit in body["hits"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let asset = hit["asset_id"].as_str().unwrap_or_default();
            if !ranked.contains(&asset) {
                ranked.push(asset);
            }
        }
        scores.add(ranked.iter().position(|a| a == relevant).map(|p| p + 1));
    }
    scores.mean(docs.len())
}
