//! Collections, embedding models and `/v1/embeddings` over HTTP: the real gateway in front of
//! the real worker, configured with the local model and the fake server's `fake-64`.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use thinkbank_testkit::{
    FakeLlm, GatewayHandle, Script, TestDatabase, WorkerHandle, spawn_gateway, spawn_worker_with,
    worker_config,
};

const REMOTE: &str = "fake-64";

struct Stack {
    _db: TestDatabase,
    _fake: FakeLlm,
    _worker: WorkerHandle,
    gateway: GatewayHandle,
    http: reqwest::Client,
}

async fn stack() -> Stack {
    let db = TestDatabase::create().await;
    let fake = FakeLlm::start(Script::default()).await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.embed.embedding_models = format!(
        r#"[{{"name": "{REMOTE}", "base_url": "{}", "dimensions": 64, "max_retries": 0}}]"#,
        fake.base_url()
    );
    let worker = spawn_worker_with(config).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();
    Stack {
        _db: db,
        _fake: fake,
        _worker: worker,
        gateway,
        http,
    }
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn collections_are_created_listed_and_moved_to_another_model_over_http() {
    let stack = stack().await;
    let (status, models) = send(
        stack
            .http
            .get(stack.gateway.url("/api/v1/embedding-models")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        models["models"][1],
        json!({"name": REMOTE, "dimensions": 64, "max_tokens": 8191, "is_default": false})
    );

    let collections = stack.gateway.url("/api/v1/collections");
    let (status, created) = send(
        stack
            .http
            .post(&collections)
            .json(&json!({"name": "notes"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["embedding_model"], "all-minilm-l6-v2");
    assert_eq!(created["text_search_config"], "english");
    let id = created["id"].as_str().unwrap().to_owned();

    let form = reqwest::multipart::Form::new()
        .text("collection_id", id.clone())
        .text("wait", "true")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"Tides follow the Moon.".to_vec())
                .file_name("tides.txt"),
        );
    let (status, uploaded) = send(
        stack
            .http
            .post(stack.gateway.url("/api/v1/assets"))
            .multipart(form),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");

    let (status, duplicate) = send(
        stack
            .http
            .post(&collections)
            .json(&json!({"name": "notes"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(duplicate["error"]["code"], "already_exists");
    let (status, unknown) = send(
        stack
            .http
            .post(&collections)
            .json(&json!({"name": "other", "embedding_model": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(REMOTE) && message.contains("all-minilm-l6-v2"),
        "{message}"
    );

    let (status, listed) = send(stack.http.get(&collections)).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default", "notes"]);

    let migration = stack
        .gateway
        .url(&format!("/api/v1/collections/{id}/migration"));
    let (status, started) = send(
        stack
            .http
            .post(&migration)
            .json(&json!({"target_model": REMOTE})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["migration"]["target_model"], REMOTE);
    let one = stack.gateway.url(&format!("/api/v1/collections/{id}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (_, current) = send(stack.http.get(&one)).await;
        if current["migration"]["status"] == "completed" {
            break current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "migration did not finish: {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["embedding_model"], REMOTE);
    assert_eq!(done["migration"]["done"], done["migration"]["total"]);
    assert_eq!(done["migration"]["total"], done["chunk_count"]);

    let (status, none) = send(stack.http.delete(&migration)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(none["error"]["code"], "failed_precondition");
    let (status, _) = send(
        stack.http.get(
            stack
                .gateway
                .url(&format!("/api/v1/collections/{}", uuid::Uuid::new_v4())),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, found) = send(
        stack
            .http
            .post(stack.gateway.url("/api/v1/search"))
            .json(&json!({"query": "moon tides", "mode": "vector", "collection_ids": [id]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["model"], REMOTE);
    assert_eq!(found["hits"][0]["filename"], "tides.txt");
}

/// The official `openai` Python package against `/v1/embeddings`: both models, base64 and
/// float, the truncation flag, strict mode, an unknown model and an empty input list.
#[tokio::test]
async fn the_openai_python_sdk_embeds_with_every_configured_model() {
    let stack = stack().await;
    let python = thinkbank_testkit::required_env("THINKBANK_TEST_PYTHON");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_embeddings.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(stack.gateway.url("/v1"))
        .env("OPENAI_API_KEY", &stack.gateway.api_key)
        .arg(REMOTE)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let seen: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        seen["local"],
        json!({"model": "all-minilm-l6-v2", "count": 2, "dims": 384, "prompt_tokens": seen["local"]["prompt_tokens"]})
    );
    assert!(seen["local"]["prompt_tokens"].as_u64().unwrap() >= 4);
    assert_eq!(seen["remote"]["model"], REMOTE);
    assert_eq!(seen["remote"]["dims"], 64);
    let first: Vec<f32> = serde_json::from_value(seen["remote"]["first"].clone()).unwrap();
    let expected = thinkbank_testkit::fake_vector("ocean tides", 64);
    for (got, want) in first.iter().zip(&expected) {
        assert!(
            (got - want).abs() < 1e-6,
            "{first:?} vs {:?}",
            &expected[..4]
        );
    }
    assert_eq!(seen["truncated"], json!([true, false]));
    assert_eq!(seen["strict_status"], 400);
    assert_eq!(seen["unknown_status"], 400);
    assert!(seen["unknown_message"].as_str().unwrap().contains(REMOTE));
    assert_eq!(seen["empty_status"], 400);
}
