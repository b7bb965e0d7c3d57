//! `make bench-ingest`: ingests the Rust Book (HTML from the toolchain docs) end to end
//! through the gateway's HTTP API, and compares the pipeline's chunks/s with the bare
//! embedder's on the very same chunks, in the same run. Writes `bench/results/ingest.json`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde_json::{Value, json};
use thinkbank_ai_worker::embed::LocalEmbedder;
use thinkbank_bench::{book_chapters, machine, peak_rss_mb, rust_book_dir, write_result};
use thinkbank_testkit::{TestDatabase, model_dir, spawn_gateway_with, spawn_worker};

const CONCURRENCY: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let limit: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(usize::MAX);
    let pages: Vec<_> = book_chapters(&rust_book_dir()?)?
        .into_iter()
        .take(limit)
        .collect();
    anyhow::ensure!(!pages.is_empty(), "no chapters found");
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    // The pipeline is measured, not the rate limiter (uploads and progress reads).
    config.limits.upload_per_min = 1_000_000;
    config.limits.read_per_min = 1_000_000;
    let gateway = spawn_gateway_with(config).await;
    let http = gateway.client();
    let upload_url = gateway.url("/api/v1/assets");
    let bytes_total: u64 = pages
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "ingesting {} Rust Book pages ({:.1} MiB of HTML) through the gateway ...",
        pages.len(),
        bytes_total as f64 / 1048576.0
    );

    let started = Instant::now();
    let uploads: Vec<anyhow::Result<String>> = futures::stream::iter(pages.iter().cloned())
        .map(|page| {
            let http = http.clone();
            let url = upload_url.clone();
            async move {
                let bytes = tokio::fs::read(&page).await?;
                let name = page
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bytes).file_name(name),
                );
                let body: Value = http
                    .post(&url)
                    .multipart(form)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                body["asset"]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no asset id")
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let ids: Vec<String> = uploads.into_iter().collect::<anyhow::Result<_>>()?;
    // Byte-identical pages are deduplicated into one asset: wait for the distinct ones.
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    let assets = wait_until_final(&http, &gateway.url("/api/v1/assets"), distinct.len()).await?;
    let elapsed = started.elapsed().as_secs_f64();

    let ready: Vec<&Value> = assets.iter().filter(|a| a["status"] == "ready").collect();
    let failed = assets.len() - ready.len();
    let chunks: u64 = ready
        .iter()
        .map(|a| a["chunk_count"].as_u64().unwrap_or(0))
        .sum();
    let mut stages = serde_json::Map::new();
    for asset in &ready {
        if let Some(timings) = asset["metadata"]["document"]["timings_ms"].as_object() {
            for (stage, ms) in timings {
                let sum = stages.get(stage).and_then(Value::as_f64).unwrap_or(0.0)
                    + ms.as_f64().unwrap_or(0.0);
                stages.insert(stage.clone(), json!((sum * 10.0).round() / 10.0));
            }
        }
    }

    // The bare embedder on exactly the chunks the pipeline produced.
    let mut conn = db.connect().await;
    let texts: Vec<String> =
        sqlx::query_scalar("SELECT text FROM worker.chunks ORDER BY asset_id, chunk_index")
            .fetch_all(&mut conn)
            .await?;
    let embedder = LocalEmbedder::load(&model_dir())?;
    let bare_started = Instant::now();
    let bare_texts = texts.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for batch in bare_texts.chunks(64) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            embedder.embed_blocking(&refs).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    })
    .await??;
    let bare_secs = bare_started.elapsed().as_secs_f64();

    let docs_per_s = ready.len() as f64 / elapsed;
    let chunks_per_s = chunks as f64 / elapsed;
    let bare_chunks_per_s = texts.len() as f64 / bare_secs;
    let result = json!({
        "pages_uploaded": pages.len(),
        "duplicates_skipped": pages.len() - distinct.len(),
        "docs": ready.len(),
        "failed": failed,
        "chunks": chunks,
        "html_mib": bytes_total as f64 / 1048576.0,
        "elapsed_s": elapsed,
        "docs_per_s": docs_per_s,
        "chunks_per_s": chunks_per_s,
        "bare_embedder_chunks_per_s": bare_chunks_per_s,
        "ratio_vs_bare_embedder": chunks_per_s / bare_chunks_per_s,
        "peak_rss_mb": peak_rss_mb(),
        "stage_ms_total": stages,
        "ingest_concurrency": 2,
        "upload_concurrency": CONCURRENCY,
        "note": "worker, gateway and client share one process, so peak_rss_mb covers all three",
        "machine": machine(),
    });
    let path = write_result("ingest", &result)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!("wrote {}", path.display());
    worker.stop().await;
    Ok(())
}

/// Lists assets until `expected` are ready, failed or cancelled (30 min at most).
async fn wait_until_final(
    http: &reqwest::Client,
    url: &str,
    expected: usize,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = http.get(url).query(&[("page_size", "200")]);
            if let Some(t) = &token {
                request = request.query(&[("page_token", t.as_str())]);
            }
            let page: Value = request.send().await?.json().await?;
            all.extend(page["assets"].as_array().cloned().unwrap_or_default());
            match page["next_page_token"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        let done = all
            .iter()
            .filter(|a| matches!(a["status"].as_str(), Some("ready" | "failed" | "cancelled")))
            .count();
        if done >= expected {
            return Ok(all);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingestion did not finish: {done}/{expected}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
