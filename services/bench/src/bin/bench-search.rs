//! `make bench-search`: retrieval speed and HNSW quality on ≥ 100k real chunks (384-d).
//!
//! Corpus: passages of the documentation shipped with the Rust toolchain (see
//! `search_corpus`), queries from the Rust Book's headings. Vectors are loaded straight into
//! `worker.embeddings`, the HNSW index is built once, then in one run:
//! 1. HNSW recall@10 against exact search (index scans off) over an `ef_search` sweep, with
//!    latency: the recall/latency curve;
//! 2. `VectorSearch` through the HTTP gateway (auth, JSON, gRPC, RLS, query embedding,
//!    snippets) and through the worker's gRPC API, against the same work done directly: the
//!    query embedded in-process and the worker's SQL issued on a plain connection; p50/p99
//!    with the three taking turns on every query, QPS with 4 clients; then live latency with
//!    shadow retrieval at the default sample rate and on every search;
//! 3. a filter matching 1 % of the chunks: rows returned and recall against exact filtered
//!    search, through HTTP (iterative scans) and directly without iterative scans;
//! 4. hybrid latency against the slower of its two legs, each measured alone.
//!
//! Writes `bench/results/search.json` (the PNG plot is drawn by `deploy/local/bench_search.py`).
//! Usage: `bench-search [CHUNKS]` (default 100000).

use std::{collections::HashSet, time::Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use thinkbank_ai_worker::{
    embed::LocalEmbedder,
    search::{Recall, vector::ef_search},
};
use thinkbank_bench::{
    load_search_corpus, machine, percentile, repo_root, search_corpus, toolchain_docs_dir,
    write_result,
};
use thinkbank_testkit::{
    GatewayHandle, TestDatabase, WorkerHandle, model_dir, parse_shadow_profile, spawn_gateway_with,
    spawn_worker, spawn_worker_with, worker_config,
};
use uuid::Uuid;

const DEFAULT_CHUNKS: usize = 100_000;
const K: usize = 10;
const EF_SWEEP: [u32; 8] = [10, 20, 40, 64, 100, 200, 400, 800];
const CLIENTS: usize = 4;
/// Passes over the queries when comparing HTTP, gRPC and direct latency.
const ROUNDS: usize = 3;
/// Sequential searches per block when comparing live latency with and without a shadow.
const SHADOW_BLOCK: usize = 49;
/// Passes over the queries when comparing live latency with and without a shadow.
const SHADOW_ROUNDS: usize = 2;
const FILTER_SHARD: i64 = 7;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let target: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().context("usage: bench-search [CHUNKS]")?,
        None => DEFAULT_CHUNKS,
    };
    let docs = toolchain_docs_dir()?;
    let started = Instant::now();
    let corpus = search_corpus::collect(&docs, target)?;
    println!(
        "{} passages from {} pages, {} queries ({:.0} s)",
        corpus.passages.len(),
        corpus.pages,
        corpus.queries.len(),
        started.elapsed().as_secs_f64()
    );
    let model = LocalEmbedder::load(&model_dir()).context("cannot load the model")?;
    let cache = repo_root().join(".data/bench-cache");
    let (vectors, embed_seconds) = {
        let (model, passages) = (model.clone(), corpus.passages.clone());
        tokio::task::spawn_blocking(move || search_corpus::vectors(&model, &passages, &cache))
            .await??
    };
    let query_texts: Vec<&str> = corpus.queries.iter().map(String::as_str).collect();
    let queries: Vec<Vec<f32>> = model
        .embed_blocking(&query_texts)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|e| e.vector)
        .collect();

    let db = TestDatabase::create().await;
    let pool = thinkbank_ai_worker::db::connect_and_migrate(&db.url, CLIENTS as u32 + 1).await?;
    let loaded = load_search_corpus(&pool, model.info(), &corpus.passages, &vectors).await?;
    println!(
        "loaded {} chunks in {:.0} s, HNSW index built in {:.0} s",
        corpus.passages.len(),
        loaded.load_seconds,
        loaded.index_seconds
    );
    let worker = spawn_worker(&db).await;
    let (gateway, http) = search_gateway(&db, &worker).await;
    let dims = model.info().dimensions;
    let sql = Sql {
        pool: pool.clone(),
        dims,
        model: model.info().name.clone(),
    };

    // 1. Exact search and the ef_search sweep.
    let plans = json!({
        "hnsw": sql.plan(&queries[0], Scan::Hnsw { ef: 40, iterative: false }).await?,
        "exact": sql.plan(&queries[0], Scan::Exact).await?,
    });
    println!("plans: {plans}");
    if !plans["hnsw"].as_str().unwrap_or("").contains("Index Scan") {
        println!("WARNING: the planner does not use the HNSW index at this size; recall is exact");
    }
    let mut exact = Vec::with_capacity(queries.len());
    let mut exact_ms = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        exact.push(sql.knn(q, Scan::Exact, None).await?);
        exact_ms.push(ms(t));
    }
    let exact_p50 = percentile(&exact_ms, 50.0);
    println!("exact search: p50 {exact_p50:.1} ms");
    let default_ef = ef_search(K + 1, Recall::Balanced, None);
    let default_scan = Scan::Hnsw {
        ef: default_ef,
        iterative: false,
    };
    let high_ef = ef_search(K + 1, Recall::High, None);
    let mut sweep_ef: Vec<u32> = EF_SWEEP.to_vec();
    sweep_ef.extend([default_ef, high_ef]);
    sweep_ef.sort_unstable();
    sweep_ef.dedup();
    let mut curve = Vec::new();
    for &ef in &sweep_ef {
        let mut recalls = Vec::new();
        let mut latencies = Vec::new();
        for (q, truth) in queries.iter().zip(&exact) {
            let t = Instant::now();
            let found = sql
                .knn(
                    q,
                    Scan::Hnsw {
                        ef,
                        iterative: false,
                    },
                    None,
                )
                .await?;
            latencies.push(ms(t));
            recalls.push(recall(&found, truth));
        }
        let point = json!({
            "ef_search": ef,
            "recall_at_10": mean(&recalls),
            "p50_ms": percentile(&latencies, 50.0),
            "p99_ms": percentile(&latencies, 99.0),
        });
        println!("ef_search {ef:>4}: {point}");
        curve.push(point);
    }
    let at = |ef: u32| {
        curve
            .iter()
            .find(|p| p["ef_search"] == ef)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let default_point = at(default_ef);
    let high_point = at(high_ef);

    // 2. HTTP against direct, with the worker's gRPC API in between (what the gateway adds).
    // The three paths take turns on every query, in a rotating order, so drift in the
    // machine's speed and warm caches favour none of them.
    let mut grpc = worker.client().await;
    for text in corpus.queries.iter().take(10) {
        http.search(&vector_body(text)).await?; // warm-up: connections, caches
        grpc.vector_search(grpc_vector_request(text)).await?;
    }
    let (mut http_ms, mut grpc_ms, mut direct_ms, mut sql_ms) = (vec![], vec![], vec![], vec![]);
    // Where the HTTP path's time goes, from the worker's own timings in each response.
    let mut server = StageTimings::default();
    for round in 0..ROUNDS {
        for (i, text) in corpus.queries.iter().enumerate() {
            for path in 0..3 {
                match (path + i + round) % 3 {
                    0 => {
                        let t = Instant::now();
                        let timings = http.timings(&vector_body(text)).await?;
                        http_ms.push(ms(t));
                        server.record(
                            &timings,
                            &["embed_ms", "vector_ms", "snippet_ms", "total_ms"],
                        );
                    }
                    1 => {
                        let t = Instant::now();
                        let response = grpc.vector_search(grpc_vector_request(text)).await?;
                        grpc_ms.push(ms(t));
                        anyhow::ensure!(!response.get_ref().hits.is_empty(), "no hits for {text}");
                    }
                    _ => {
                        let t = Instant::now();
                        let vector = embed_one(&model, text)?;
                        let t_sql = Instant::now();
                        sql.knn(&vector, default_scan, None).await?;
                        sql_ms.push(ms(t_sql));
                        direct_ms.push(ms(t));
                    }
                }
            }
        }
    }
    let server_p50 = server.p50();
    let http_qps = qps(&corpus.queries, |text| {
        let http = http.clone();
        let body = vector_body(&text);
        async move { http.search(&body).await.map(|_| ()) }
    })
    .await?;
    let direct_qps = qps(&corpus.queries, |text| {
        let (sql, model) = (sql.clone(), model.clone());
        async move {
            let vector = embed_one(&model, &text)?;
            sql.knn(&vector, default_scan, None).await.map(|_| ())
        }
    })
    .await?;
    println!(
        "HTTP p50 {:.1} ms, {http_qps:.1} QPS; direct p50 {:.1} ms, {direct_qps:.1} QPS",
        percentile(&http_ms, 50.0),
        percentile(&direct_ms, 50.0)
    );

    // 2b. The same live searches through workers that shadow them with hybrid retrieval.
    let shadow = shadow_impact(&db, &http, &corpus.queries).await?;

    // 3. A filter matching 1 % of the chunks.
    let shard_assets: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM worker.assets WHERE metadata->'shard' = to_jsonb($1::bigint)",
    )
    .bind(FILTER_SHARD)
    .fetch_all(&pool)
    .await?;
    let shard_chunks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM worker.chunks WHERE asset_id = ANY($1)")
            .bind(&shard_assets)
            .fetch_one(&pool)
            .await?;
    let selectivity = shard_chunks as f64 / corpus.passages.len() as f64;
    let mut filtered_rows = Vec::new();
    let mut filtered_recalls = Vec::new();
    let mut filtered_ms = Vec::new();
    let mut plain_rows = Vec::new();
    for (text, q) in corpus.queries.iter().zip(&queries) {
        let truth = sql.knn(q, Scan::Exact, Some(&shard_assets)).await?;
        let body = json!({
            "query": text, "mode": "vector", "top_k": K,
            "metadata": [{"key": "shard", "op": "eq", "value": FILTER_SHARD}],
        });
        let t = Instant::now();
        let found = http.search(&body).await?;
        filtered_ms.push(ms(t));
        filtered_rows.push(found.len() as f64);
        filtered_recalls.push(recall(&found, &truth));
        let without_iterative = sql.knn(q, default_scan, Some(&shard_assets)).await?;
        plain_rows.push(without_iterative.len() as f64);
    }
    println!(
        "1% filter ({shard_chunks} chunks): {:.2} rows, recall {:.3}; without iterative scan {:.2} rows",
        mean(&filtered_rows),
        mean(&filtered_recalls),
        mean(&plain_rows)
    );

    // 4. Hybrid against its legs, each alone.
    let mut hybrid_ms = Vec::new();
    let mut max_leg_ms = Vec::new();
    let mut vector_leg_ms = Vec::new();
    let mut keyword_leg_ms = Vec::new();
    let mut hybrid_server = StageTimings::default();
    for text in &corpus.queries {
        let leg = |mode: &str| json!({"query": text, "mode": mode, "top_k": K});
        let t = Instant::now();
        http.search(&leg("vector")).await?;
        let vector = ms(t);
        let t = Instant::now();
        http.search_allow_empty(&leg("keyword")).await?;
        let keyword = ms(t);
        let t = Instant::now();
        let timings = http.timings(&leg("hybrid")).await?;
        hybrid_ms.push(ms(t));
        hybrid_server.record(
            &timings,
            &[
                "embed_ms",
                "vector_ms",
                "keyword_ms",
                "fusion_ms",
                "snippet_ms",
                "total_ms",
            ],
        );
        vector_leg_ms.push(vector);
        keyword_leg_ms.push(keyword);
        max_leg_ms.push(vector.max(keyword));
    }

    let http_p50 = percentile(&http_ms, 50.0);
    let direct_p50 = percentile(&direct_ms, 50.0);
    let result = json!({
        "http_vs_sql_p50_ratio": round(http_p50 / direct_p50),
        "http_vs_sql_qps_ratio": round(http_qps / direct_qps),
        "recall_at_10_default": default_point["recall_at_10"],
        "recall_at_10_high": high_point["recall_at_10"],
        "hnsw_vs_exact_latency_ratio": round(default_point["p50_ms"].as_f64().unwrap_or(f64::NAN) / exact_p50),
        "filtered_rows_returned": round(mean(&filtered_rows)),
        "filtered_recall_at_10": round(mean(&filtered_recalls)),
        "hybrid_vs_max_leg_latency_ratio": round(percentile(&hybrid_ms, 50.0) / percentile(&max_leg_ms, 50.0)),
        "corpus": {
            "chunks": corpus.passages.len(),
            "dimensions": dims,
            "source": "Rust toolchain documentation (books, reference, std/core/alloc API docs), passages of 6-24 words ending at sentence ends where possible, 10 words of overlap",
            "pages_read": corpus.pages,
            "queries": corpus.queries.len(),
            "query_source": "Rust Book section headings",
            "embedding_seconds": round(embed_seconds),
            "load_seconds": round(loaded.load_seconds),
            "hnsw_build_seconds": round(loaded.index_seconds),
            "hnsw": {"m": 16, "ef_construction": 64},
        },
        "k": K,
        "ef_search_default": default_ef,
        "ef_search_high": high_ef,
        "exact": {"p50_ms": round(exact_p50), "p99_ms": round(percentile(&exact_ms, 99.0))},
        "recall_latency_curve": curve,
        "plans": plans,
        "http_vs_sql": {
            "http": {"p50_ms": round(http_p50), "p99_ms": round(percentile(&http_ms, 99.0)), "qps": round(http_qps)},
            "grpc": {"p50_ms": round(percentile(&grpc_ms, 50.0)), "p99_ms": round(percentile(&grpc_ms, 99.0))},
            "direct": {"p50_ms": round(direct_p50), "p99_ms": round(percentile(&direct_ms, 99.0)), "qps": round(direct_qps)},
            "sql_only": {"p50_ms": round(percentile(&sql_ms, 50.0)), "p99_ms": round(percentile(&sql_ms, 99.0))},
            "worker_timings_p50": server_p50,
            "http_vs_sql_p99_ratio": round(percentile(&http_ms, 99.0) / percentile(&direct_ms, 99.0)),
            "qps_clients": CLIENTS,
            "rounds": ROUNDS,
            "note": "direct = the query embedded in-process with the same model + the worker's vector SQL on a plain connection; grpc = the worker's VectorSearch called directly (adds the tenant's RLS transaction, the collection lookup and ts_headline snippets); HTTP adds the gateway: auth, rate limiting, JSON and the gRPC hop. The three take turns on every query.",
        },
        "filtered": {
            "selectivity": round(selectivity),
            "matching_chunks": shard_chunks,
            "rows_returned_mean": round(mean(&filtered_rows)),
            "rows_returned_min": filtered_rows.iter().copied().fold(f64::INFINITY, f64::min),
            "recall_at_10": round(mean(&filtered_recalls)),
            "p50_ms": round(percentile(&filtered_ms, 50.0)),
            "without_iterative_scan_rows_mean": round(mean(&plain_rows)),
        },
        "shadow": shadow,
        "hybrid": {
            "hybrid_p50_ms": round(percentile(&hybrid_ms, 50.0)),
            "vector_p50_ms": round(percentile(&vector_leg_ms, 50.0)),
            "keyword_p50_ms": round(percentile(&keyword_leg_ms, 50.0)),
            "max_leg_p50_ms": round(percentile(&max_leg_ms, 50.0)),
            "hybrid_p99_ms": round(percentile(&hybrid_ms, 99.0)),
            "max_leg_p99_ms": round(percentile(&max_leg_ms, 99.0)),
            "hybrid_worker_timings_p50": hybrid_server.p50(),
        },
        "machine": machine(),
    });
    let path = write_result("search", &result)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!("wrote {}", path.display());
    gateway.stop().await;
    worker.stop().await;
    Ok(())
}

/// Live latency through workers shadowing a share of searches with hybrid retrieval: none,
/// the default sample rate, and every search (the worst case). The stacks take turns in
/// blocks of sequential searches, so drift in the machine's speed favours none of them; a
/// shadow may spill into the next block's first search.
async fn shadow_impact(db: &TestDatabase, plain: &Http, texts: &[String]) -> anyhow::Result<Value> {
    let default_rate = parse_shadow_profile(r#"{"name": "default"}"#)
        .map_err(anyhow::Error::msg)?
        .sample_rate;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut stacks = Vec::new();
    for rate in [default_rate, 1.0] {
        let mut config = worker_config(db, &objects);
        config.ingest_concurrency = 0;
        // One name per rate: both workers share this process's metrics registry.
        let profile =
            json!({"name": format!("hybrid-{rate}"), "mode": "hybrid", "sample_rate": rate});
        config.search_shadow =
            Some(parse_shadow_profile(&profile.to_string()).map_err(anyhow::Error::msg)?);
        let worker = spawn_worker_with(config).await;
        let (gateway, http) = search_gateway(db, &worker).await;
        for text in texts.iter().take(10) {
            http.search(&vector_body(text)).await?;
        }
        stacks.push((rate, worker, gateway, http));
    }
    let targets: Vec<&Http> = std::iter::once(plain)
        .chain(stacks.iter().map(|(_, _, _, http)| http))
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 0..SHADOW_ROUNDS {
        for (block, chunk) in texts.chunks(SHADOW_BLOCK).enumerate() {
            for turn in 0..targets.len() {
                let stack = (turn + block + round) % targets.len();
                for text in chunk {
                    let t = Instant::now();
                    targets[stack].search(&vector_body(text)).await?;
                    times[stack].push(ms(t));
                }
            }
        }
    }
    let without = &times[0];
    let mut rates = Vec::new();
    for ((rate, worker, gateway, _), with) in stacks.into_iter().zip(&times[1..]) {
        let metrics = thinkbank_testkit::prometheus::scrape(&worker.metrics_url()).await;
        let name = format!("hybrid-{rate}");
        let outcomes = "thinkbank_search_shadow_comparisons_total";
        let point = json!({
            "sample_rate": rate,
            "live_p50_ms": round(percentile(with, 50.0)),
            "live_p99_ms": round(percentile(with, 99.0)),
            "p50_change": round(percentile(with, 50.0) / percentile(without, 50.0) - 1.0),
            // `+ 0.0`: an empty sum is -0.0.
            "shadows_compared": metrics.sum(outcomes, &[("profile", &name), ("outcome", "compared")]) + 0.0,
            "shadows_skipped_busy": metrics.sum(outcomes, &[("profile", &name), ("outcome", "skipped_busy")]) + 0.0,
            "searches": with.len(),
        });
        println!("shadow at sample rate {rate}: {point}");
        rates.push(point);
        gateway.stop().await;
        worker.stop().await;
    }
    Ok(json!({
        "profile": {"mode": "hybrid"},
        "live_p50_ms_without": round(percentile(without, 50.0)),
        "live_p99_ms_without": round(percentile(without, 99.0)),
        "with": rates,
        "note": "sequential vector searches over HTTP through a worker without a shadow and workers shadowing the given share of them, in alternating blocks; a shadow reuses the primary's query vector (same model), runs its legs one at a time and starts after the primary result exists",
    }))
}

/// A gateway in front of `worker`, and a client of its search endpoint.
async fn search_gateway(db: &TestDatabase, worker: &WorkerHandle) -> (GatewayHandle, Http) {
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    // The search path is measured, not the rate limiter.
    config.limits.read_per_min = 100_000_000;
    let gateway = spawn_gateway_with(config).await;
    let http = Http {
        client: gateway.client(),
        url: gateway.url("/api/v1/search"),
    };
    (gateway, http)
}

/// The worker's own stage timings of many searches, read from their responses.
#[derive(Default)]
struct StageTimings(std::collections::BTreeMap<&'static str, Vec<f64>>);

impl StageTimings {
    fn record(&mut self, timings: &Value, stages: &[&'static str]) {
        for &stage in stages {
            let value = timings[stage].as_f64().unwrap_or(f64::NAN);
            self.0.entry(stage).or_default().push(value);
        }
    }

    /// The median of each stage.
    fn p50(&self) -> Value {
        self.0
            .iter()
            .map(|(stage, values)| ((*stage).to_owned(), json!(round(percentile(values, 50.0)))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

fn vector_body(text: &str) -> Value {
    json!({"query": text, "mode": "vector", "top_k": K})
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Share of the exact top k that `found` contains.
fn recall(found: &[Uuid], truth: &[Uuid]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let found: HashSet<&Uuid> = found.iter().take(K).collect();
    truth.iter().take(K).filter(|id| found.contains(id)).count() as f64 / truth.len().min(K) as f64
}

fn grpc_vector_request(text: &str) -> thinkbank_proto::v1::VectorSearchRequest {
    thinkbank_proto::v1::VectorSearchRequest {
        query: text.to_owned(),
        mode: thinkbank_proto::v1::SearchMode::Vector as i32,
        top_k: K as u32,
        ..Default::default()
    }
}

fn embed_one(model: &LocalEmbedder, text: &str) -> anyhow::Result<Vec<f32>> {
    model
        .embed_blocking(&[text])
        .map_err(anyhow::Error::msg)?
        .pop()
        .map(|e| e.vector)
        .context("no vector")
}

/// Queries per second with `CLIENTS` concurrent clients over every query text.
async fn qps<F, Fut>(texts: &[String], run: F) -> anyhow::Result<f64>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(texts.iter().cloned())
        .map(run)
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(texts.len() as f64 / started.elapsed().as_secs_f64())
}

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    url: String,
}

impl Http {
    /// The hit ids of one search, which must find something.
    async fn search(&self, body: &Value) -> anyhow::Result<Vec<Uuid>> {
        let hits = self.search_allow_empty(body).await?;
        anyhow::ensure!(!hits.is_empty(), "no hits for {body}");
        Ok(hits)
    }

    /// The worker's stage timings of one search.
    async fn timings(&self, body: &Value) -> anyhow::Result<Value> {
        let value = self.post(body).await?;
        anyhow::ensure!(
            value["hits"].as_array().is_some_and(|h| !h.is_empty()),
            "no hits for {body}"
        );
        Ok(value["timings"].clone())
    }

    async fn post(&self, body: &Value) -> anyhow::Result<Value> {
        let response = self.client.post(&self.url).json(body).send().await?;
        let status = response.status();
        let value: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "search failed: {status} {value}");
        Ok(value)
    }

    async fn search_allow_empty(&self, body: &Value) -> anyhow::Result<Vec<Uuid>> {
        let value = self.post(body).await?;
        value["hits"]
            .as_array()
            .context("no hits array")?
            .iter()
            .map(|h| {
                h["chunk_id"]
                    .as_str()
                    .context("hit without chunk_id")
                    .and_then(|s| Uuid::parse_str(s).context("bad chunk_id"))
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Scan {
    /// Index scans off: the exact nearest neighbours.
    Exact,
    Hnsw {
        ef: u32,
        iterative: bool,
    },
}

/// The worker's vector-leg SQL on a plain connection (no RLS role, no tenant setup).
#[derive(Clone)]
struct Sql {
    pool: PgPool,
    dims: usize,
    model: String,
}

impl Sql {
    async fn knn(
        &self,
        query: &[f32],
        scan: Scan,
        assets: Option<&[Uuid]>,
    ) -> anyhow::Result<Vec<Uuid>> {
        // The scan settings travel with BEGIN, in one round trip, as the worker sends them.
        let settings = match scan {
            Scan::Exact => "SELECT set_config('enable_indexscan', 'off', true)".to_owned(),
            Scan::Hnsw { ef, iterative } => format!(
                "SELECT set_config('hnsw.ef_search', '{ef}', true), \
                 set_config('hnsw.iterative_scan', '{}', true)",
                if iterative { "relaxed_order" } else { "off" }
            ),
        };
        let mut tx = self.pool.begin_with(format!("BEGIN; {settings}")).await?;
        let sql = self.statement(assets.is_some(), false, matches!(scan, Scan::Exact));
        let vector = pgvector::Vector::from(query.to_vec());
        let mut q = sqlx::query_as::<_, (Uuid,)>(&sql)
            .bind(vector)
            .bind(&self.model);
        if let Some(assets) = assets {
            q = q.bind(assets);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The plan's top scan node for `scan` (proof that HNSW runs use the index and exact
    /// runs do not).
    async fn plan(&self, query: &[f32], scan: Scan) -> anyhow::Result<String> {
        let mut tx = self.pool.begin().await?;
        let setting = match scan {
            Scan::Exact => "SELECT set_config('enable_indexscan', 'off', true)",
            Scan::Hnsw { .. } => "SELECT set_config('hnsw.ef_search', '40', true)",
        };
        sqlx::query(setting).execute(&mut *tx).await?;
        let lines: Vec<(String,)> =
            sqlx::query_as(&self.statement(false, true, matches!(scan, Scan::Exact)))
                .bind(pgvector::Vector::from(query.to_vec()))
                .bind(&self.model)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(lines
            .into_iter()
            .map(|(line,)| line)
            .find(|line| line.contains(" Scan "))
            .map(|line| line.trim().trim_start_matches("->").trim().to_owned())
            .unwrap_or_default())
    }

    /// The vector leg's statement. Exact runs get a statement of their own: a prepared
    /// statement's cached generic plan, made while index scans were off, would otherwise be
    /// reused by the HNSW runs (settings do not invalidate cached plans).
    fn statement(&self, filtered: bool, explain: bool, exact: bool) -> String {
        let dims = self.dims;
        let tag = if exact { "/* exact */ " } else { "" };
        let filter = if filtered {
            " AND e.asset_id = ANY($3)"
        } else {
            ""
        };
        format!(
            "{explain}{tag}SELECT c.id, c.asset_id, c.collection_id, a.filename, a.media_type, c.text, \
             1 - (e.embedding::vector({dims}) <=> $1) AS score, c.chunk_index, c.char_start, \
             c.char_end, c.headings, c.page \
             FROM worker.embeddings e \
             JOIN worker.chunks c ON c.id = e.chunk_id \
             JOIN worker.assets a ON a.id = e.asset_id \
             WHERE e.model = $2 AND e.tenant_id = '{tenant}'{filter} \
             ORDER BY e.embedding::vector({dims}) <=> $1 LIMIT {limit}",
            limit = K,
            tenant = thinkbank_proto::contract::DEFAULT_TENANT_ID,
            explain = if explain { "EXPLAIN " } else { "" },
        )
    }
}
