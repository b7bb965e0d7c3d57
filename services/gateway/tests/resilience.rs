//! Failures are contained (loopback only, bounded waits): a dead worker makes the gateway
//! not-ready and its requests 503 with `Retry-After` until the worker is back; a worker at its
//! concurrency limit answers 429 instead of queueing; a hanging LLM opens the circuit, after
//! which chat fails at once with a clear error.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};
use thinkbank_testkit::{
    FakeLlm, Script, TestDatabase, llm_config, prometheus::scrape, read_sse, spawn_gateway_with,
    spawn_worker_with, worker_config,
};

const TIDES: &str = "Tides are the rise and fall of sea levels caused by the gravitational forces exerted by the Moon and the Sun on the oceans of the Earth.";

async fn upload(http: &reqwest::Client, url: String) {
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(TIDES.as_bytes().to_vec()).file_name("tides.txt"),
        )
        .text("wait", "true");
    let response = http.post(url).multipart(form).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn search(http: &reqwest::Client, url: String) -> reqwest::Response {
    http.post(url)
        .json(&json!({"query": "what causes tides"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_worker_fails_readiness_and_requests_with_503_until_it_restarts() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let worker = spawn_worker_with(worker_config(&db, &objects)).await;
    let addr = worker.addr;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();
    upload(&http, gateway.url("/api/v1/assets")).await;
    assert_eq!(
        search(&http, gateway.url("/api/v1/search")).await.status(),
        StatusCode::OK
    );

    worker.stop().await;
    let ready = http.get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_ne!(body["checks"]["worker"]["status"], "ok");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    let refused = search(&http, gateway.url("/api/v1/search")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(!body["error"]["request_id"].as_str().unwrap().is_empty());
    // The gateway itself stays alive.
    let live = http.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    // The same worker address comes back; the gateway reconnects by itself.
    let mut config = worker_config(&db, &objects);
    config.listen = addr;
    let _restarted = spawn_worker_with(config).await;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = http
            .get(gateway.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
    let found = search(&http, gateway.url("/api/v1/search")).await;
    assert_eq!(found.status(), StatusCode::OK);
    let body: Value = found.json().await.unwrap();
    assert_eq!(body["hits"][0]["filename"], "tides.txt");
}

#[tokio::test]
async fn a_worker_at_its_concurrency_limit_sheds_calls_as_429_with_retry_after() {
    // Slow tokens keep one chat stream (the one permitted call) open for a while.
    let fake = FakeLlm::start(
        Script::tokens((0..40).map(|i| format!(" w{i}"))).with_delay(Duration::from_millis(100)),
    )
    .await;
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.llm = llm_config(&fake);
    let worker = spawn_worker_with(config.clone()).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();
    upload(&http, gateway.url("/api/v1/assets")).await;
    worker.stop().await;
    // The same store, now limited to one call at a time.
    config.max_concurrent_calls = 1;
    let worker = spawn_worker_with(config).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();

    let chat = http
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": "What causes ocean tides?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), StatusCode::OK);
    let shed = search(&http, gateway.url("/api/v1/search")).await;
    assert_eq!(shed.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(shed.headers().contains_key("retry-after"));
    let body: Value = shed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_exhausted");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("concurrency limit")
    );
    // The stream that held the permit was not disturbed; once it ends, calls pass again.
    let events = read_sse(chat).await;
    assert_eq!(events.last().unwrap().1.event, "done");
    assert!(events.iter().any(|(_, e)| e.event == "final"));
    // The worker frees the permit when the stream's body is dropped, a moment after the
    // client saw its end: allow that moment (bounded).
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..50 {
        status = search(&http, gateway.url("/api/v1/search")).await.status();
        if status != StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::OK);
    let metrics = scrape(&worker.metrics_url()).await;
    assert!(
        metrics
            .value(
                "thinkbank_grpc_server_shed_requests_total",
                &[("method", "/thinkbank.v1.AiWorker/VectorSearch")]
            )
            .unwrap()
            >= 1.0
    );
}

#[tokio::test]
async fn a_hanging_llm_opens_the_circuit_and_chat_then_fails_fast_with_a_clear_error() {
    // The model accepts the request and never sends a token.
    let fake = FakeLlm::start(Script::words("never").with_delay(Duration::from_secs(3600))).await;
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.llm = llm_config(&fake);
    config.llm.llm_first_token_timeout = Duration::from_millis(300);
    config.llm.llm_max_retries = 0;
    config.llm.llm_breaker_threshold = 2;
    config.llm.llm_breaker_cooldown = Duration::from_secs(600);
    let worker = spawn_worker_with(config).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();
    upload(&http, gateway.url("/api/v1/assets")).await;
    let ask = || async {
        http.post(gateway.url("/api/v1/chat"))
            .json(&json!({"question": "What causes ocean tides?"}))
            .send()
            .await
            .unwrap()
    };

    // Two attempts time out waiting for the first token, inside their streams.
    for _ in 0..2 {
        let events = read_sse(ask().await).await;
        let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
        assert_eq!(names, ["sources", "error", "done"]);
        let error = &events[1].1.data;
        assert!(error.contains("did not answer in time"), "{error}");
    }
    assert_eq!(fake.requests().len(), 2);

    // The circuit is open: refused before any stream, without calling the model, saying why.
    let refused = ask().await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("circuit open"), "{message}");
    assert_eq!(fake.requests().len(), 2);
    // Readiness does not depend on the LLM (a soft dependency), but reports it.
    let ready = http.get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["llm"]["unavailable"], true);
    let metrics = scrape(&worker.metrics_url()).await;
    assert_eq!(metrics.value("thinkbank_llm_circuit_open", &[]), Some(1.0));
    assert!(
        metrics
            .value(
                "thinkbank_llm_requests_total",
                &[("outcome", "circuit_open")]
            )
            .unwrap()
            >= 1.0
    );
}

#[tokio::test]
async fn stopping_the_gateway_ends_open_chat_streams_with_a_final_event() {
    let fake = FakeLlm::start(
        Script::tokens((0..100).map(|i| format!(" w{i}"))).with_delay(Duration::from_millis(100)),
    )
    .await;
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.llm = llm_config(&fake);
    let worker = spawn_worker_with(config).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();
    upload(&http, gateway.url("/api/v1/assets")).await;
    let chat = http
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": "What causes ocean tides?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), StatusCode::OK);
    let completion = http
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({"model": "thinkbank", "stream": true,
                      "messages": [{"role": "user", "content": "What causes ocean tides?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(completion.status(), StatusCode::OK);
    // Once the model is answering both, the gateway is told to stop.
    for _ in 0..100 {
        if fake.requests().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.requests().len(), 2);
    let stopping = tokio::spawn(gateway.stop());
    let (events, chunks) = tokio::join!(read_sse(chat), read_sse(completion));
    stopping.await.unwrap();
    // The OpenAI-compatible stream ends as OpenAI reports a failure inside a stream: a last
    // data line with an `error` (and no `[DONE]`, which means a complete answer).
    let data: Vec<&str> = chunks.iter().map(|(_, e)| e.data.as_str()).collect();
    assert!(
        data.iter().any(|d| d.contains("chat.completion.chunk")),
        "{data:?}"
    );
    assert!(!data.contains(&"[DONE]"), "{data:?}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "unavailable", "{last}");
    assert_eq!(last["error"]["type"], "server_error");
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"sources"));
    assert!(!names.contains(&"final"), "{names:?}");
    assert_eq!(&names[names.len() - 2..], ["error", "done"]);
    let error: Value = serde_json::from_str(&events[names.len() - 2].1.data).unwrap();
    assert_eq!(error["error"]["code"], "unavailable");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
}

#[tokio::test]
async fn stopping_the_gateway_ends_open_asset_watches_with_a_final_event() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    // An API-only worker: the upload stays queued, so its watch stays open.
    config.ingest_concurrency = 0;
    let worker = spawn_worker_with(config).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"# Queued\n\nThis waits for a worker.".to_vec())
            .file_name("queued.md"),
    );
    let uploaded: Value = http
        .post(gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = uploaded["asset"]["id"].as_str().unwrap().to_owned();
    let watch = http
        .get(gateway.url(&format!("/api/v1/assets/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);
    let stopping = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        gateway.stop().await;
    });
    let events = read_sse(watch).await;
    stopping.await.unwrap();
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(names, ["asset", "error", "done"]);
    let error: Value = serde_json::from_str(&events[1].1.data).unwrap();
    assert_eq!(error["error"]["code"], "unavailable");
}
