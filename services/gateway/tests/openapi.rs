//! The OpenAPI description against the running gateway: every documented operation is routed,
//! the security and error responses follow one pattern, `/docs` renders it without scripts,
//! and the SSE event names and payloads a real chat and a real upload produce are exactly the
//! documented ones.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode, multipart};
use serde_json::{Value, json};
use thinkbank_testkit::{
    FakeLlm, Script, SseEvent, TestDatabase, llm_config, read_sse, spawn_gateway,
    spawn_gateway_with, spawn_worker_with_llm,
};

/// The routes that need no token (the authentication design all routes follow).
const PUBLIC: [&str; 8] = [
    "/",
    "/api",
    "/healthz",
    "/openapi.json",
    "/docs",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
];
/// Public, or authenticated when credentials are sent (an admin adding a user; an operator
/// reading the readiness details).
const OPTIONAL_AUTH: [&str; 2] = ["/api/v1/auth/register", "/readyz"];

async fn fetch_spec(http: &reqwest::Client, url: String) -> Value {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_follows_the_security_and_error_pattern() {
    // A real stack (the identity store needs the worker's migrations); requests carry the
    // admin key so that they reach routing.
    let db = TestDatabase::create().await;
    let worker = thinkbank_testkit::spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();
    let spec = fetch_spec(&http, gateway.url("/openapi.json")).await;
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["security"], json!([{"bearer": []}]));
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let operations = operations(&spec);
    assert!(operations.len() >= 20, "{} operations", operations.len());
    for (method, path, operation) in &operations {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{conversation_id}", "00000000-0000-0000-0000-000000000000");
        let response = http
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                gateway.url(&concrete),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not routed"
        );
        assert!(
            !body.contains("no such route"),
            "{method} {path} is not routed"
        );

        let public = PUBLIC.contains(&path.as_str());
        let responses = operation["responses"].as_object().unwrap();
        if OPTIONAL_AUTH.contains(&path.as_str()) {
            assert_eq!(
                operation["security"],
                json!([{}, {"bearer": []}]),
                "{method} {path} takes credentials optionally"
            );
        } else if public {
            assert_eq!(
                operation["security"],
                json!([{}]),
                "{method} {path} must be public"
            );
            // Only the sign-in endpoints judge credentials (a password, a refresh token).
            let judges_credentials = path.starts_with("/api/v1/auth/");
            assert!(
                judges_credentials || !responses.contains_key("401"),
                "{method} {path}"
            );
        } else {
            assert!(
                operation.get("security").is_none(),
                "{method} {path} must use the global bearer requirement"
            );
            for status in ["401", "403", "429"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') && path != "/readyz" {
                let name = response["$ref"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path} {status} must reference a shared error response")
                });
                let name = name.rsplit('/').next().unwrap();
                let shared = &spec["components"]["responses"][name];
                assert_eq!(
                    shared["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{name}"
                );
                assert!(shared["headers"]["X-Request-Id"].is_object(), "{name}");
            } else if let Some(headers) = response.get("headers") {
                assert!(
                    headers["X-Request-Id"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }
    let shared = &spec["components"]["responses"];
    assert!(shared["Unauthorized"]["headers"]["WWW-Authenticate"].is_object());
    for header in [
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    ] {
        assert!(
            shared["TooManyRequests"]["headers"][header].is_object(),
            "{header}"
        );
    }
    assert!(shared["Unavailable"]["headers"]["Retry-After"].is_object());
    gateway.stop().await;
}

#[tokio::test]
async fn the_docs_page_renders_every_operation_and_schema_with_no_script_or_remote_asset() {
    // Public pages: nothing behind the gateway is needed.
    let gateway = spawn_gateway("http://127.0.0.1:9", "postgres://nobody@127.0.0.1:9/none").await;
    let http = reqwest::Client::new();
    let spec = fetch_spec(&http, gateway.url("/openapi.json")).await;
    let response = http.get(gateway.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    let page = response.text().await.unwrap();

    assert!(
        !page.contains("<script"),
        "the page must work without scripts"
    );
    assert!(
        !page.contains("style=") && !page.contains("<style"),
        "no inline style"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no remote asset"
    );
    for (method, path, _) in operations(&spec) {
        let anchor: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        assert!(
            page.contains(&format!("id=\"op-{method}{anchor}\"")),
            "{method} {path}"
        );
    }
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for name in schemas.keys() {
        assert!(page.contains(&format!("id=\"schema-{name}\"")), "{name}");
    }
    // Every link to a schema lands on one.
    for link in page.split("href=\"#schema-").skip(1) {
        let name = link.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling link to {name}");
    }
    // The stream framing is part of the page, from docs/sse-events.md.
    assert!(page.contains("Last-Event-ID") && page.contains("keep-alive"));

    let css = http
        .get(gateway.url("/docs/docs.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    gateway.stop().await;
}

/// `(event name → payload schema name)` of a stream schema in the spec.
fn documented_events(spec: &Value, stream: &str) -> BTreeMap<String, String> {
    spec["components"]["schemas"][stream]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|branch| {
            let name = branch["properties"]["event"]["const"]
                .as_str()
                .unwrap()
                .to_owned();
            let payload = branch["properties"]["data"]["contentSchema"]["$ref"]
                .as_str()
                .unwrap();
            (name, payload.rsplit('/').next().unwrap().to_owned())
        })
        .collect()
}

/// Checks `data` against the top level of schema `name`: required fields present, no
/// undocumented field.
fn assert_fits(spec: &Value, name: &str, data: &Value, event: &str) {
    let schema = &spec["components"]["schemas"][name];
    let data = data
        .as_object()
        .unwrap_or_else(|| panic!("{event}: data is not an object"));
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for required in schema["required"].as_array().into_iter().flatten() {
        assert!(
            data.contains_key(required.as_str().unwrap()),
            "{event}: {required} missing in {data:?}"
        );
    }
    for key in data.keys() {
        assert!(
            properties.contains_key(key),
            "{event}: field {key} is not documented in {name}"
        );
    }
}

fn check_stream(spec: &Value, stream: &str, events: &[SseEvent], seen: &mut BTreeSet<String>) {
    let documented = documented_events(spec, stream);
    for event in events {
        let payload = documented
            .get(&event.event)
            .unwrap_or_else(|| panic!("{stream}: event '{}' is not documented", event.event));
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_fits(spec, payload, &data, &event.event);
        seen.insert(event.event.clone());
    }
}

#[tokio::test]
async fn the_events_a_real_chat_and_upload_emit_are_exactly_the_documented_ones() {
    const ANSWER: &str = "Tides follow the Moon [1].";
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();
    let spec = fetch_spec(&http, gateway.url("/openapi.json")).await;

    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(b"Tides are caused by the gravity of the Moon.".to_vec())
            .file_name("tides.txt"),
    );
    let upload: Value = http
        .post(gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = upload["asset"]["id"].as_str().unwrap();
    let response = http
        .get(gateway.url(&format!("/api/v1/assets/{id}/events")))
        .send()
        .await
        .unwrap();
    let asset_events: Vec<SseEvent> = read_sse(response)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let mut seen = BTreeSet::new();
    check_stream(&spec, "AssetStreamEvent", &asset_events, &mut seen);
    assert_eq!(
        seen,
        BTreeSet::from(["asset".to_owned(), "done".to_owned()])
    );

    // A whole answer, then one whose model breaks off mid-answer.
    fake.push_script(Script::words(ANSWER));
    fake.push_script(Script::words(ANSWER).breaking_after(2));
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        let response = http
            .post(gateway.url("/api/v1/chat"))
            .json(&json!({"question": "What causes tides?"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let events: Vec<SseEvent> = read_sse(response)
            .await
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let ids: Vec<String> = events
            .iter()
            .map(|e| e.id.clone().unwrap_or_default())
            .collect();
        let expected: Vec<String> = (1..=events.len()).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected, "ids increase by one from 1");
        assert_eq!(events.last().unwrap().event, "done");
        check_stream(&spec, "ChatStreamEvent", &events, &mut seen);
    }
    let documented: BTreeSet<String> = documented_events(&spec, "ChatStreamEvent")
        .into_keys()
        .collect();
    assert_eq!(seen, documented);
    gateway.stop().await;
    worker.stop().await;
}

/// Found by schemathesis: a body that is not multipart used to get axum's plain-text 400.
#[tokio::test]
async fn an_upload_that_is_not_multipart_gets_the_json_error_shape() {
    let db = TestDatabase::create().await;
    let worker = thinkbank_testkit::spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let response = gateway
        .client()
        .post(gateway.url("/api/v1/assets"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multipart"),
        "{body}"
    );
    gateway.stop().await;
}

/// Found by schemathesis: a question containing U+0000 reached PostgreSQL (which cannot store
/// it) and came back as a 500.
#[tokio::test]
async fn a_question_or_query_with_a_nul_character_is_a_400() {
    let db = TestDatabase::create().await;
    let worker = thinkbank_testkit::spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();
    for (path, body) in [
        ("/api/v1/chat", json!({"question": "tides\u{0}?"})),
        ("/api/v1/search", json!({"query": "tides\u{0}"})),
    ] {
        let response = http
            .post(gateway.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains("NUL"),
            "{body}"
        );
    }
    gateway.stop().await;
    worker.stop().await;
}
