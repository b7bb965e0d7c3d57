//! `make bench-chat`: streaming-chat figures with the fake LLM emitting tokens at a fixed
//! cadence, the real worker and gateway in this process and a real PostgreSQL.
//!
//! - time to first token as the client sees it minus the time to first token the worker
//!   reports for the same answer, straight over gRPC and through the gateway's SSE; the
//!   difference of their p50/p99 is what the gateway adds (`ttft_added_*`);
//! - SSE `delta` events per model token (must be 1) and relayed tokens/s against the source;
//! - many concurrent SSE streams held at once, with the resident memory each one costs.
//!
//! Writes `bench/results/chat.json`. Not a test: it prints figures and never fails on them.
#![expect(
    clippy::expect_used,
    reason = "a benchmark fails loudly at the broken step"
)]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;
use thinkbank_proto::v1::{self as pb, chat_stream_response::Event};
use thinkbank_testkit::{
    FakeLlm, Script, TestDatabase, llm_config, spawn_gateway_with, spawn_worker_with_llm,
};

const DOC: &str = "# Tides\n\nTides are the rise and fall of sea levels caused by the gravitational forces exerted by the Moon and the Sun on the oceans of the Earth.\n";
const QUESTION: &str = "What causes ocean tides?";
const TTFT_RUNS: usize = 40;
const TOKENS: usize = 50;
const CADENCE: Duration = Duration::from_millis(10);
const CONCURRENT: usize = 100;
const LONG_TOKENS: usize = 100;
const LONG_CADENCE: Duration = Duration::from_millis(50);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "small sample indexes"
    )]
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index.min(values.len() - 1)]
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Client-observed TTFT minus the TTFT the worker reports for the same answer (request
/// arrival to first delta sent): what the path between client and worker adds.
/// Straight from the worker over gRPC.
async fn worker_overhead(
    client: &mut pb::ai_worker_client::AiWorkerClient<tonic::transport::Channel>,
) -> f64 {
    let started = Instant::now();
    let mut stream = client
        .chat_stream(pb::ChatStreamRequest {
            question: QUESTION.into(),
            ..Default::default()
        })
        .await
        .expect("chat")
        .into_inner();
    let (mut first, mut reported) = (None, None);
    while let Some(message) = stream.next().await {
        match message.expect("message").event {
            Some(Event::Delta(_)) => {
                first.get_or_insert_with(|| ms(started.elapsed()));
            }
            Some(Event::Final(f)) => reported = f.timings.map(|t| t.time_to_first_token_ms),
            _ => {}
        }
    }
    first.expect("a delta") - reported.expect("timings")
}

/// One SSE answer through the gateway.
struct Relayed {
    /// Client-observed TTFT minus the worker-reported TTFT.
    overhead_ms: f64,
    deltas: usize,
    /// First to last delta, seconds.
    span: f64,
}

async fn gateway_answer(http: &reqwest::Client, url: &str) -> Relayed {
    let started = Instant::now();
    let response = http
        .post(url)
        .json(&json!({"question": QUESTION}))
        .send()
        .await
        .expect("chat over http");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let (mut first, mut last, mut deltas, mut reported) = (None, None, 0usize, 0.0);
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("body")));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if frame.lines().any(|l| l == "event: delta") {
                let now = started.elapsed();
                first.get_or_insert(now);
                last = Some(now);
                deltas += 1;
            }
            if frame.lines().any(|l| l == "event: final")
                && let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: "))
            {
                let value: serde_json::Value = serde_json::from_str(data).expect("final json");
                reported = value["timings"]["time_to_first_token_ms"]
                    .as_f64()
                    .unwrap_or(0.0);
            }
        }
    }
    let first = first.expect("a delta event");
    Relayed {
        overhead_ms: ms(first) - reported,
        deltas,
        span: last.map_or(0.0, |l| (l - first).as_secs_f64()),
    }
}

/// Tokens/s of the fake itself, read straight from it the same way (first→last token).
async fn source_rate(http: &reqwest::Client, base_url: &str) -> f64 {
    let response = http
        .post(format!("{base_url}/chat/completions"))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .expect("fake llm");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let started = Instant::now();
    let (mut first, mut last, mut tokens) = (None, None, 0usize);
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("body")));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if frame.contains(r#""content":" t"#) {
                let now = started.elapsed();
                first.get_or_insert(now);
                last = Some(now);
                tokens += 1;
            }
        }
    }
    let span = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let rate = tokens.saturating_sub(1) as f64 / span.max(1e-9);
    rate
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let ttft_runs = env_usize("BENCH_TTFT_RUNS", TTFT_RUNS);
    let concurrent = env_usize("BENCH_CONCURRENT_STREAMS", CONCURRENT);
    let tokens: Vec<String> = (0..TOKENS).map(|i| format!(" t{i}")).collect();
    let fake = FakeLlm::start(Script::tokens(tokens).with_delay(CADENCE)).await;
    let db = TestDatabase::create().await;
    let mut llm = llm_config(&fake);
    llm.llm_breaker_threshold = 1000;
    let worker = spawn_worker_with_llm(&db, llm).await;
    // The relay is measured, not the rate limiter: one key opens all the streams.
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    config.limits.chat_per_min = 1_000_000;
    config.limits.read_per_min = 1_000_000;
    let gateway = spawn_gateway_with(config).await;
    let mut client = worker.client().await;
    client
        .process_asset(pb::ProcessAssetRequest {
            filename: "tides.md".into(),
            content: DOC.as_bytes().to_vec().into(),
            wait: true,
            ..Default::default()
        })
        .await
        .expect("ingest");
    let http = gateway.client();
    let chat_url = gateway.url("/api/v1/chat");

    // Warm-up, then alternate the two paths so drift hits both alike.
    let _ = worker_overhead(&mut client).await;
    let _ = gateway_answer(&http, &chat_url).await;
    let (mut direct, mut through, mut ratios, mut events_per_token) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sources = Vec::new();
    for _ in 0..ttft_runs {
        let source = source_rate(&http, &fake.base_url()).await;
        sources.push(source);
        direct.push(worker_overhead(&mut client).await);
        let relayed = gateway_answer(&http, &chat_url).await;
        through.push(relayed.overhead_ms);
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        {
            events_per_token.push(relayed.deltas as f64 / TOKENS as f64);
            let relayed = (relayed.deltas.saturating_sub(1)) as f64 / relayed.span.max(1e-9);
            ratios.push(relayed / source);
        }
    }
    let (d50, d99) = (percentile(&mut direct, 0.5), percentile(&mut direct, 0.99));
    let (g50, g99) = (
        percentile(&mut through, 0.5),
        percentile(&mut through, 0.99),
    );
    let ratio = percentile(&mut ratios, 0.5);
    let per_token = percentile(&mut events_per_token, 0.5);
    let source_p50 = percentile(&mut sources, 0.5);

    // Many long streams at once.
    let long: Vec<String> = (0..LONG_TOKENS).map(|i| format!(" l{i}")).collect();
    fake.set_default(Script::tokens(long).with_delay(LONG_CADENCE));
    let rss_before = rss_mb();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrent)
        .map(|_| {
            let http = http.clone();
            let url = chat_url.clone();
            tokio::spawn(async move { gateway_answer(&http, &url).await })
        })
        .collect();
    // Sample memory half-way through the streams.
    let half = LONG_CADENCE * u32::try_from(LONG_TOKENS / 2).unwrap_or(1);
    tokio::time::sleep(half).await;
    let rss_during = rss_mb();
    let mut complete = 0;
    for task in tasks {
        if let Ok(relayed) = task.await
            && relayed.deltas == LONG_TOKENS
        {
            complete += 1;
        }
    }
    let concurrent_secs = started.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let rss_per_stream = (rss_during - rss_before).max(0.0) / concurrent as f64;

    let results = json!({
        "ttft_overhead_grpc_p50_ms": d50, "ttft_overhead_grpc_p99_ms": d99,
        "ttft_overhead_gateway_sse_p50_ms": g50, "ttft_overhead_gateway_sse_p99_ms": g99,
        "ttft_added_p50_ms": g50 - d50, "ttft_added_p99_ms": g99 - d99,
        "sse_events_per_token": per_token,
        "relay_tokens_per_s_ratio": ratio,
        "source_tokens_per_s_p50": source_p50,
        "concurrent_streams": complete,
        "concurrent_streams_attempted": concurrent,
        "concurrent_wall_s": concurrent_secs,
        "rss_mb_per_stream": rss_per_stream,
        "rss_mb_before": rss_before, "rss_mb_during": rss_during,
        "setup": {
            "ttft_runs": ttft_runs, "tokens": TOKENS, "cadence_ms": ms(CADENCE),
            "long_tokens": LONG_TOKENS, "long_cadence_ms": ms(LONG_CADENCE),
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "note": "worker, gateway and fake LLM share this process; rss is the whole process",
        },
    });
    let text = serde_json::to_string_pretty(&results).expect("json");
    println!("{text}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
    std::fs::create_dir_all(&dir).expect("bench/results");
    std::fs::write(dir.join("chat.json"), format!("{text}\n")).expect("write chat.json");
    println!("wrote bench/results/chat.json");
    worker.stop().await;
    gateway.stop().await;
}
