//! Prometheus metrics of both services, scraped after real traffic through the real stack
//! (gateway and worker on port 0, real PostgreSQL, the OpenAI-compatible test server as LLM).
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use futures::StreamExt as _;
use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};
use thinkbank_testkit::{
    FakeLlm, Script, TestDatabase, llm_config,
    prometheus::{Scrape, scrape},
    spawn_gateway_with, spawn_worker_with,
};

const TIDES: &str = "Tides are the rise and fall of sea levels caused by the gravitational forces exerted by the Moon and the Sun on the oceans of the Earth.";

async fn upload(http: &reqwest::Client, url: &str, name: &str, text: &str, wait: bool) -> Value {
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_owned()),
        )
        .text("wait", wait.to_string());
    let response = http.post(url).multipart(form).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// Reads SSE bytes until `marker` has arrived; returns the rest of the stream.
async fn read_until(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    marker: &str,
) {
    let mut seen = String::new();
    while !seen.contains(marker) {
        let chunk = stream.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn an_upload_a_search_and_a_chat_move_the_metrics_of_both_services() {
    let fake = FakeLlm::start(
        Script::words("Tides come from the Moon [1].").with_delay(Duration::from_millis(150)),
    )
    .await;
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut worker_config = thinkbank_testkit::worker_config(&db, &objects);
    worker_config.llm = llm_config(&fake);
    let worker = spawn_worker_with(worker_config).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    config.limits.upload_per_min = 1;
    let gateway = spawn_gateway_with(config).await;
    let http = gateway.client();

    let asset = upload(
        &http,
        &gateway.url("/api/v1/assets"),
        "tides.txt",
        TIDES,
        true,
    )
    .await;
    let asset_id = asset["asset"]["id"].as_str().unwrap().to_owned();
    // The upload budget is one per minute: the second is refused and counted.
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(b"more".to_vec()).file_name("more.txt"),
    );
    let refused = http
        .post(gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let response = http
        .get(gateway.url(&format!("/api/v1/assets/{asset_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = http
        .post(gateway.url("/api/v1/search"))
        .json(&json!({"query": "what causes tides", "mode": "hybrid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // While an answer streams, the gateway counts one open SSE stream.
    let response = http
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": "What causes ocean tides?", "top_k": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    read_until(&mut body, "event: delta").await;
    let during = scrape(&gateway.url("/metrics")).await;
    assert_eq!(
        during.value("thinkbank_sse_active_streams", &[("route", "/api/v1/chat")]),
        Some(1.0)
    );
    read_until(&mut body, "event: done").await;
    while body.next().await.is_some() {}

    let gw = scrape(&gateway.url("/metrics")).await;
    let requests = "thinkbank_http_requests_total";
    assert_eq!(
        gw.sum(
            requests,
            &[
                ("method", "POST"),
                ("route", "/api/v1/assets"),
                ("status", "429")
            ]
        ),
        1.0
    );
    assert!(gw.sum(requests, &[("method", "POST"), ("route", "/api/v1/assets")]) >= 2.0);
    assert_eq!(
        gw.sum(
            requests,
            &[
                ("method", "GET"),
                ("route", "/api/v1/assets/{id}"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        gw.sum(requests, &[("route", "/api/v1/search"), ("status", "200")]),
        1.0
    );
    assert_eq!(
        gw.sum(requests, &[("route", "/api/v1/chat"), ("status", "200")]),
        1.0
    );
    // Route templates, never raw paths: the asset id appears in no label.
    assert!(
        gw.samples
            .iter()
            .all(|s| s.labels.iter().all(|(_, v)| !v.contains(&asset_id)))
    );
    let search_latency = gw
        .value(
            "thinkbank_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/api/v1/search")],
        )
        .unwrap();
    assert_eq!(search_latency, 1.0);
    assert!(
        gw.value(
            "thinkbank_http_request_duration_seconds_sum",
            &[("route", "/api/v1/search")]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        gw.value("thinkbank_sse_active_streams", &[("route", "/api/v1/chat")]),
        Some(0.0)
    );
    assert_eq!(
        gw.value(
            "thinkbank_rate_limit_rejections_total",
            &[("class", "upload")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gw.value("thinkbank_db_pool_max_connections", &[]),
        Some(8.0)
    );
    assert!(gw.sum("thinkbank_db_pool_connections", &[]) >= 1.0);

    let wk = scrape(&worker.metrics_url()).await;
    let rpc = "thinkbank_grpc_server_requests_total";
    assert_eq!(
        wk.sum(
            rpc,
            &[
                ("method", "/thinkbank.v1.AiWorker/ChatStream"),
                ("code", "OK")
            ]
        ),
        1.0
    );
    assert!(
        wk.sum(rpc, &[("code", "OK")]) >= 4.0,
        "upload, get, search, chat"
    );
    assert_eq!(
        wk.sum(
            "thinkbank_grpc_server_in_flight_requests",
            &[("method", "/thinkbank.v1.AiWorker/ChatStream")]
        ),
        0.0
    );
    // The stream's duration spans its tokens (several delays of 150 ms).
    assert!(
        wk.value(
            "thinkbank_grpc_server_request_duration_seconds_sum",
            &[("method", "/thinkbank.v1.AiWorker/ChatStream")]
        )
        .unwrap()
            > 0.0
    );
    for stage in ["read", "parse", "chunk", "embed", "commit"] {
        assert_eq!(
            wk.value(
                "thinkbank_ingest_stage_duration_seconds_count",
                &[("stage", stage)]
            ),
            Some(1.0),
            "stage {stage}"
        );
    }
    assert_eq!(
        wk.value("thinkbank_ingest_jobs_total", &[("outcome", "ready")]),
        Some(1.0)
    );
    assert_eq!(
        wk.value("thinkbank_ingest_queue_wait_seconds_count", &[]),
        Some(1.0)
    );
    // Chunks of the upload plus the search query plus the chat question were embedded.
    let texts = wk.value("thinkbank_embed_texts_total", &[]).unwrap();
    assert!(texts >= 3.0, "{texts}");
    assert_eq!(
        wk.value("thinkbank_embed_batch_size_sum", &[]).unwrap(),
        texts
    );
    for leg in ["embed", "vector", "keyword", "fusion", "snippet", "total"] {
        assert_eq!(
            wk.value(
                "thinkbank_search_leg_duration_seconds_count",
                &[("leg", leg)]
            ),
            Some(1.0),
            "leg {leg}"
        );
    }
    assert_eq!(
        wk.value("thinkbank_llm_time_to_first_token_seconds_count", &[]),
        Some(1.0)
    );
    assert!(
        wk.value("thinkbank_llm_time_to_first_token_seconds_sum", &[])
            .unwrap()
            >= 0.15
    );
    assert_eq!(
        wk.value("thinkbank_llm_requests_total", &[("outcome", "ok")]),
        Some(1.0)
    );
    assert!(
        wk.value("thinkbank_llm_tokens_total", &[("kind", "completion")])
            .unwrap()
            > 0.0
    );
    assert_eq!(wk.value("thinkbank_llm_circuit_open", &[]), Some(0.0));
    assert!(wk.value("thinkbank_db_pool_max_connections", &[]) == Some(8.0));
    // The worker's own registry holds no gateway metric, and vice versa.
    assert!(wk.value("thinkbank_http_requests_total", &[]).is_none());
    assert!(gw.value(rpc, &[]).is_none());
}

#[tokio::test]
async fn the_queue_gauges_report_waiting_jobs_of_an_api_only_worker() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut worker_config = thinkbank_testkit::worker_config(&db, &objects);
    worker_config.ingest_concurrency = 0;
    let worker = spawn_worker_with(worker_config).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    upload(
        &gateway.client(),
        &gateway.url("/api/v1/assets"),
        "tides.txt",
        TIDES,
        false,
    )
    .await;
    // Refreshed every few seconds: poll (bounded) until the job shows.
    let mut last = Scrape::default();
    for _ in 0..40 {
        last = scrape(&worker.metrics_url()).await;
        if last.value("thinkbank_ingest_queue_depth", &[]) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last.value("thinkbank_ingest_queue_depth", &[]), Some(1.0));
    assert!(
        last.value("thinkbank_ingest_queue_oldest_job_age_seconds", &[])
            .unwrap()
            > 0.0
    );
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_configured() {
    let db = TestDatabase::create().await;
    let worker = thinkbank_testkit::spawn_worker(&db).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    config.metrics_token = Some("scrape-secret".into());
    let gateway = spawn_gateway_with(config).await;
    let anonymous = reqwest::get(gateway.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    let wrong = reqwest::Client::new()
        .get(gateway.url("/metrics"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let scraped = reqwest::Client::new()
        .get(gateway.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(
        scraped
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = scraped.text().await.unwrap();
    assert!(text.contains("# TYPE thinkbank_http_requests counter"));
}
