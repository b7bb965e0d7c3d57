//! End to end over HTTP: the real gateway in front of the real worker (both on port 0) and a
//! real PostgreSQL. What a curl user or the browser UI observes.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use reqwest::{StatusCode, multipart};
use serde_json::Value;
use thinkbank_testkit::{
    GatewayHandle, SseJson as _, TestDatabase, WorkerHandle, read_sse, spawn_gateway, spawn_worker,
};

const RUST_OWNERSHIP: &str = "# Ownership\n\nOwnership is a set of rules that govern how a Rust program manages memory. Each value in Rust has an owner, and there can only be one owner at a time. When the owner goes out of scope, the value will be dropped.\n\n## Borrowing\n\nA reference lets you use a value without taking ownership of it; this is called borrowing.\n";
const TIDES: &str = "Tides are the rise and fall of sea levels caused by the gravitational forces exerted by the Moon and the Sun on the oceans of the Earth.";
const COFFEE: &str = "Espresso is brewed by forcing hot water through finely ground coffee beans under high pressure.";

struct Stack {
    _db: TestDatabase,
    worker: WorkerHandle,
    gateway: GatewayHandle,
    http: reqwest::Client,
}

async fn stack() -> Stack {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();
    Stack {
        _db: db,
        worker,
        gateway,
        http,
    }
}

fn file_form(name: &str, bytes: Vec<u8>) -> multipart::Form {
    multipart::Form::new().part(
        "file",
        multipart::Part::bytes(bytes).file_name(name.to_owned()),
    )
}

async fn upload(stack: &Stack, name: &str, text: &str) -> Value {
    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/assets"))
        .multipart(file_form(name, text.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/assets/{}", body["asset"]["id"].as_str().unwrap())
    );
    body
}

/// Polls GET /api/v1/assets/{id} until the asset is ready (60 s at most).
async fn wait_until_ready(stack: &Stack, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let asset: Value = stack
            .http
            .get(stack.gateway.url(&format!("/api/v1/assets/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match asset["status"].as_str().unwrap() {
            "ready" => return asset,
            "failed" | "cancelled" => panic!("asset did not become ready: {asset}"),
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "asset not ready after 60 s: {asset}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str, fragment: &str) {
    assert_eq!(response.status(), status);
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(fragment),
        "{message:?} should mention {fragment:?}"
    );
    assert_eq!(body["error"]["request_id"].as_str(), request_id.as_deref());
}

#[tokio::test]
async fn uploaded_document_is_searchable_and_cited_in_a_streamed_answer() {
    let stack = stack().await;
    let uploaded = upload(&stack, "ownership.md", RUST_OWNERSHIP).await;
    assert_eq!(uploaded["deduplicated"], false);
    let id = uploaded["asset"]["id"].as_str().unwrap().to_owned();
    for (name, text) in [("tides.txt", TIDES), ("coffee.txt", COFFEE)] {
        let other = upload(&stack, name, text).await;
        wait_until_ready(&stack, other["asset"]["id"].as_str().unwrap()).await;
    }
    let ready = wait_until_ready(&stack, &id).await;
    assert_eq!(ready["media_type"], "text/markdown");
    assert!(ready["chunk_count"].as_u64().unwrap() >= 1);

    let search: Value = stack
        .http
        .post(stack.gateway.url("/api/v1/search"))
        .json(&serde_json::json!({"query": "who owns a value in rust and when is it dropped?", "top_k": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(search["hits"][0]["asset_id"], id.as_str(), "{search}");
    assert_eq!(search["hits"][0]["filename"], "ownership.md");
    assert_eq!(search["model"], "all-minilm-l6-v2");

    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/chat"))
        .json(&serde_json::json!({"question": "When is a value dropped in Rust?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_sse(response).await;
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"sources"), "{names:?}");
    assert_eq!(&names[names.len() - 2..], ["final", "done"], "{names:?}");
    let deltas = names.iter().filter(|n| **n == "delta").count();
    assert!(
        deltas >= 2,
        "expected at least 2 delta events, got {names:?}"
    );
    // Ids increase by one from 1; the first event carries the reconnection hint.
    for (i, (_, event)) in events.iter().enumerate() {
        assert_eq!(event.id.as_deref(), Some((i + 1).to_string().as_str()));
    }
    assert!(events[0].1.retry.is_some());

    let sources = events[0].1.json();
    let cited_source = &sources["sources"][0];
    assert_eq!(cited_source["index"], 1);
    assert_eq!(cited_source["hit"]["asset_id"], id.as_str());
    let answer: String = events
        .iter()
        .filter(|(_, e)| e.event == "delta")
        .map(|(_, e)| e.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        answer.contains("[1]"),
        "answer must cite the uploaded document: {answer}"
    );
    assert!(answer.contains("dropped"), "{answer}");
    let final_event = events
        .iter()
        .find(|(_, e)| e.event == "final")
        .unwrap()
        .1
        .json();
    assert_eq!(final_event["answer_mode"], "extractive");
    assert_eq!(final_event["finish_reason"], "stop");
    assert_eq!(final_event["citations"][0]["source_index"], 1);
    // Quoted sentences are the source's own words: marked quoted, never claimed verified.
    assert_eq!(final_event["citations"][0]["quoted"], true);
    assert_eq!(final_event["citations"][0]["verified"], false);
    assert_eq!(final_event["abstained"], false);
    assert!(final_event["evidence"]["relevance"].as_f64().unwrap() >= 0.55);
    assert_eq!(
        final_event["usage"]["completion_tokens"].as_u64().unwrap() as usize,
        deltas
    );
}

#[tokio::test]
async fn bad_input_gets_a_documented_4xx_and_nothing_is_stored() {
    let stack = stack().await;
    let url = stack.gateway.url("/api/v1/assets");
    let response = stack
        .http
        .post(&url)
        .multipart(file_form("empty.txt", Vec::new()))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "empty",
    )
    .await;
    let response = stack
        .http
        .post(&url)
        .multipart(file_form("latin1.txt", b"d\xe9j\xe0 vu".to_vec()))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "UTF-8",
    )
    .await;
    let no_file = multipart::Form::new().text("collection_id", "");
    let response = stack
        .http
        .post(&url)
        .multipart(no_file)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "'file'",
    )
    .await;
    let bad_metadata = file_form("a.txt", b"hello there world".to_vec()).text("metadata", "[1,2]");
    let response = stack
        .http
        .post(&url)
        .multipart(bad_metadata)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "metadata",
    )
    .await;

    let missing = uuid::Uuid::new_v4();
    let response = stack
        .http
        .get(stack.gateway.url(&format!("/api/v1/assets/{missing}")))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::NOT_FOUND,
        "not_found",
        &missing.to_string(),
    )
    .await;
    let response = stack
        .http
        .delete(stack.gateway.url(&format!("/api/v1/assets/{missing}")))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", "not found").await;
    let response = stack
        .http
        .get(stack.gateway.url("/api/v1/assets/not-a-uuid"))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "UUID",
    )
    .await;

    let search = stack.gateway.url("/api/v1/search");
    let response = stack
        .http
        .post(&search)
        .json(&serde_json::json!({"query": "  "}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "query",
    )
    .await;
    let response = stack
        .http
        .post(&search)
        .json(&serde_json::json!({"query": "x", "mode": "magic"}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "mode",
    )
    .await;
    let response = stack
        .http
        .post(&search)
        .json(&serde_json::json!({"qeury": "typo"}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "qeury",
    )
    .await;
    let response = stack
        .http
        .post(&search)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_argument", "").await;
    let response = stack
        .http
        .post(&search)
        .body("query=x")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Content-Type",
    )
    .await;

    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/chat"))
        .json(&serde_json::json!({"question": "\n\t "}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "question",
    )
    .await;

    let list: Value = stack
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["assets"],
        serde_json::json!([]),
        "rejected uploads must store nothing"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_json_error_shape() {
    let stack = stack().await;
    let response = stack
        .http
        .get(stack.gateway.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", "route").await;
    let response = stack
        .http
        .put(stack.gateway.url("/api/v1/search"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("method")
    );
}

#[tokio::test]
async fn request_ids_are_generated_or_echoed() {
    let stack = stack().await;
    let response = stack
        .http
        .get(stack.gateway.url("/healthz"))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let response = stack
        .http
        .get(stack.gateway.url("/api/v1/assets/not-a-uuid"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "trace-me-123");
}

async fn readyz(http: &reqwest::Client, gateway: &GatewayHandle) -> (StatusCode, Value) {
    let response = http.get(gateway.url("/readyz")).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn readiness_follows_the_worker() {
    let stack = stack().await;
    let (status, body) = readyz(&stack.http, &stack.gateway).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["worker"]["status"], "ok");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    // No LLM configured: the worker answers extractively, and says so.
    assert_eq!(body["llm"]["mode"], "extractive");
    assert_eq!(body["llm"]["model"], "extractive");
    assert_eq!(body["llm"]["unavailable"], false);
    assert!(
        body["llm"].get("probe").is_none(),
        "no LLM to probe: {body}"
    );
    // The worker probes its own required dependencies.
    for name in ["object_store", "worker_database"] {
        assert_eq!(body["checks"][name]["status"], "ok", "{name}: {body}");
        assert!(body["checks"][name]["latency_ms"].as_f64().unwrap() > 0.0);
    }

    // An object store that refuses writes makes the platform unready (uploads would fail),
    // and readiness returns with it.
    let objects = stack.worker.objects_dir.clone();
    let aside = objects.with_extension("aside");
    std::fs::rename(&objects, &aside).unwrap();
    std::fs::write(&objects, b"not a directory").unwrap();
    let (status, body) = readyz(&stack.http, &stack.gateway).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(
        body["checks"]["object_store"]["status"], "failing",
        "{body}"
    );
    assert!(
        body["checks"]["object_store"]["error"]
            .as_str()
            .unwrap()
            .len()
            > 5
    );
    assert_eq!(body["checks"]["worker"]["status"], "ok");
    std::fs::remove_file(&objects).unwrap();
    std::fs::rename(&aside, &objects).unwrap();
    let (status, _) = readyz(&stack.http, &stack.gateway).await;
    assert_eq!(status, StatusCode::OK);

    let Stack {
        worker,
        gateway,
        http,
        _db,
    } = stack;
    worker.stop().await;
    let (status, body) = readyz(&http, &gateway).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["worker"]["status"], "failing");
    assert_eq!(body["checks"]["object_store"]["status"], "failing");
    assert!(
        body.get("llm").is_none(),
        "no answer mode without a worker: {body}"
    );
    let response = http.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "liveness does not depend on the worker"
    );
    let response = http
        .post(gateway.url("/api/v1/search"))
        .json(&serde_json::json!({"query": "anything"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn same_bytes_uploaded_twice_return_the_existing_asset() {
    let stack = stack().await;
    let first = upload(&stack, "tides.txt", TIDES).await;
    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/assets"))
        .multipart(file_form("tides-copy.txt", TIDES.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_eq!(second["deduplicated"], true);
    assert_eq!(second["asset"]["id"], first["asset"]["id"]);
}

#[tokio::test]
async fn upload_with_wait_returns_a_ready_asset_and_events_replay_the_final_state() {
    let stack = stack().await;
    let form = file_form("coffee.txt", COFFEE.as_bytes().to_vec())
        .text("wait", "true")
        .text("metadata", r#"{"team":"kitchen"}"#)
        .text("external_id", "kb/coffee");
    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["asset"]["status"], "ready");
    assert_eq!(body["asset"]["metadata"]["team"], "kitchen");
    assert_eq!(body["asset"]["external_id"], "kb/coffee");
    let id = body["asset"]["id"].as_str().unwrap();
    let response = stack
        .http
        .get(stack.gateway.url(&format!("/api/v1/assets/{id}/events")))
        .send()
        .await
        .unwrap();
    let events = read_sse(response).await;
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(names, ["asset", "done"]);
    assert_eq!(events[0].1.json()["status"], "ready");

    let deleted = stack
        .http
        .delete(stack.gateway.url(&format!("/api/v1/assets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = stack
        .http
        .get(stack.gateway.url(&format!("/api/v1/assets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn openai_compatible_embeddings_answer_in_float_and_base64() {
    let stack = stack().await;
    let url = stack.gateway.url("/v1/embeddings");
    let body: Value = stack
        .http
        .post(&url)
        .json(&serde_json::json!({"input": ["first text", "second text"], "model": "all-minilm-l6-v2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][1]["index"], 1);
    let floats: Vec<f32> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(floats.len(), 384);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let encoded: Value = stack
        .http
        .post(&url)
        .json(&serde_json::json!({"input": "first text", "encoding_format": "base64"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded, floats);

    let response = stack
        .http
        .post(&url)
        .json(&serde_json::json!({"input": []}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "empty",
    )
    .await;
    let response = stack
        .http
        .post(&url)
        .json(&serde_json::json!({"input": "x", "dimensions": 3}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "dimensions",
    )
    .await;
}

#[tokio::test]
async fn uploads_over_the_limit_get_413_and_nothing_is_stored() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    config.max_upload_bytes = 4 * 1024;
    let gateway = thinkbank_testkit::spawn_gateway_with(config).await;
    let http = gateway.client();
    let big = "all work and no play makes jack a dull boy\n"
        .repeat(500)
        .into_bytes();
    let response = http
        .post(gateway.url("/api/v1/assets"))
        .multipart(file_form("big.txt", big))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "limit",
    )
    .await;
    let list: Value = http
        .get(gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["assets"], serde_json::json!([]));
}

#[tokio::test]
async fn a_1_gib_upload_is_refused_with_413_before_its_body_is_sent() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stack = stack().await;
    // A raw client that announces 1 GiB and sends none of it: the answer can only come from
    // the headers.
    let mut socket = tokio::net::TcpStream::connect(stack.gateway.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/assets HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=x\r\n\
         Authorization: Bearer {}\r\nContent-Length: 1073741824\r\n\r\n",
        stack.gateway.addr, stack.gateway.api_key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut response))
        .await
        .expect("the gateway must answer without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&response[..read]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    let list: Value = stack
        .http
        .get(stack.gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["assets"], serde_json::json!([]));
}

#[tokio::test]
async fn cancel_and_reprocess_follow_the_asset_lifecycle() {
    let stack = stack().await;
    let form = file_form("tides.txt", TIDES.as_bytes().to_vec()).text("wait", "true");
    let body: Value = stack
        .http
        .post(stack.gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = body["asset"]["id"].as_str().unwrap();
    let response = stack
        .http
        .post(stack.gateway.url(&format!("/api/v1/assets/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::CONFLICT,
        "failed_precondition",
        "only queued or processing",
    )
    .await;
    let response = stack
        .http
        .post(stack.gateway.url(&format!("/api/v1/assets/{id}/reprocess")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let asset: Value = response.json().await.unwrap();
    assert_eq!(asset["status"], "queued");
    let ready = wait_until_ready(&stack, id).await;
    assert_eq!(ready["chunk_count"], body["asset"]["chunk_count"]);
}
