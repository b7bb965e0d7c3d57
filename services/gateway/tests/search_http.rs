//! `POST /api/v1/search` end to end: modes, filters, explain, paging and 400s, through the real
//! gateway in front of the real worker and a real PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};
use thinkbank_testkit::{GatewayHandle, TestDatabase, WorkerHandle, spawn_gateway, spawn_worker};

const BORROWING: &str = "# Borrowing\n\nA reference lets you use a value without taking ownership of it. The borrow checker enforces that references never outlive the data they point to.\n";
const TIDES: &str = "Tides are the rise and fall of sea levels caused by the gravitational pull of the Moon and the Sun.";

struct Stack {
    _db: TestDatabase,
    _worker: WorkerHandle,
    gateway: GatewayHandle,
    http: reqwest::Client,
}

async fn upload(stack: &Stack, name: &str, text: &str, metadata: Value) -> String {
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_owned()),
        )
        .text("metadata", metadata.to_string())
        .text("wait", "true");
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
    assert_eq!(body["asset"]["status"], "ready", "{body}");
    body["asset"]["id"].as_str().unwrap().to_owned()
}

async fn post(stack: &Stack, body: Value) -> (StatusCode, Value) {
    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/search"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn rest_search_supports_modes_filters_explain_and_paging() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();
    let stack = Stack {
        _db: db,
        _worker: worker,
        gateway,
        http,
    };
    let borrowing = upload(
        &stack,
        "borrowing.md",
        BORROWING,
        json!({"lang": "rust", "year": 2024}),
    )
    .await;
    let tides = upload(
        &stack,
        "tides.txt",
        TIDES,
        json!({"lang": "en", "year": 2020}),
    )
    .await;

    // Hybrid is the default; explain shows both legs.
    let (status, body) = post(
        &stack,
        json!({"query": "borrow checker references", "explain": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mode"], "hybrid");
    let first = &body["hits"][0];
    assert_eq!(first["asset_id"], borrowing.as_str());
    assert_eq!(first["media_type"], "text/markdown");
    assert!(
        first["snippet"].as_str().unwrap().contains("<mark>"),
        "{first}"
    );
    assert_eq!(first["explain"]["keyword_rank"], 1);
    assert_eq!(first["explain"]["vector_rank"], 1);
    for stage in [
        "embed_ms",
        "vector_ms",
        "keyword_ms",
        "fusion_ms",
        "total_ms",
    ] {
        assert!(body["timings"][stage].as_f64().unwrap() > 0.0, "{stage}");
    }

    // Keyword mode with a metadata condition and a media type.
    let (status, body) = post(
        &stack,
        json!({"query": "moon or borrow", "mode": "keyword",
               "metadata": [{"key": "year", "op": "lt", "value": 2022}],
               "media_types": ["text/plain"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hits = body["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{body}");
    assert_eq!(hits[0]["asset_id"], tides.as_str());
    assert!(hits[0].get("explain").is_none());

    // Created-at range and `in`, paged one hit at a time.
    let (status, body) = post(
        &stack,
        json!({"query": "anything at all", "mode": "vector", "top_k": 1,
               "created_after": "2000-01-01T00:00:00Z",
               "metadata": [{"key": "lang", "op": "in", "value": ["rust", "en"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["next_page_token"].as_str().unwrap().to_owned();
    let (_, second) = post(
        &stack,
        json!({"query": "anything at all", "mode": "vector", "top_k": 1, "page_token": token,
               "created_after": "2000-01-01T00:00:00Z",
               "metadata": [{"key": "lang", "op": "in", "value": ["rust", "en"]}]}),
    )
    .await;
    assert_ne!(second["hits"][0]["asset_id"], body["hits"][0]["asset_id"]);
    assert!(second["next_page_token"].is_null(), "{second}");

    // Every malformed request is a 400 naming the problem.
    for (request, fragment) in [
        (
            json!({"query": "x", "metadata": [{"key": "a", "op": "like", "value": 1}]}),
            "metadata[0]: unknown operator 'like'",
        ),
        (
            json!({"query": "x", "metadata": [{"key": "", "op": "eq", "value": 1}]}),
            "key must not be empty",
        ),
        (
            json!({"query": "x", "created_before": "yesterday"}),
            "created_before",
        ),
        (json!({"query": "x", "recall": "perfect"}), "recall"),
        (json!({"query": "x", "top_k": 1000}), "top_k"),
        (
            json!({"query": "x", "fusion": {"k": 3}}),
            "unknown field `k`",
        ),
        (json!({"query": "the of", "mode": "keyword"}), "stop words"),
    ] {
        let (status, body) = post(&stack, request.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert_eq!(body["error"]["code"], "invalid_argument");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(fragment),
            "{message:?} should mention {fragment:?}"
        );
    }
}

/// `depth` nested single-element arrays around a string.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("bottom"), |inner, _| json!([inner]))
}

#[tokio::test]
async fn metadata_nested_past_the_limit_is_a_400_naming_it_not_a_500() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();
    let stack = Stack {
        _db: db,
        _worker: worker,
        gateway,
        http,
    };
    // Within the limit: an ordinary (empty) answer.
    let (status, body) = post(
        &stack,
        json!({"query": "borrow", "mode": "keyword",
               "metadata": [{"key": "k", "op": "eq", "value": nested(16)}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Past it (and deeper than gRPC decodes, which used to surface as an internal error).
    for depth in [17, 60, 120] {
        let (status, body) = post(
            &stack,
            json!({"query": "borrow", "mode": "keyword",
                   "metadata": [{"key": "k", "op": "eq", "value": "x"},
                                {"key": "k", "op": "eq", "value": nested(depth)}]}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{depth}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("metadata[1]") && message.contains("16 levels"),
            "{message}"
        );
    }
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(BORROWING.as_bytes().to_vec()).file_name("deep.md"),
        )
        .text("metadata", json!({"deep": nested(60)}).to_string());
    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("16 levels"),
        "{body}"
    );
}
