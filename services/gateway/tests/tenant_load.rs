//! One tenant's load must not hurt the others (issue 22, items 8 and 9), over HTTP: progress
//! streams are capped per principal and tenant and hold no worker call permit, a stream ends
//! at its deadline with `reconnect`, and operators set per-tenant quotas that uploads over
//! them meet as 429 naming the quota.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use thinkbank_testkit::{
    GatewayHandle, SseJson as _, TestDatabase, client_with_key, read_sse, spawn_gateway_with,
    spawn_worker_with, worker_config,
};

async fn upload(http: &reqwest::Client, gateway: &GatewayHandle, name: &str) -> reqwest::Response {
    let text = format!("# {name}\n\nThe ferry to {name} leaves at dawn and returns at dusk.");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(text.into_bytes()).file_name(name.to_owned()),
    );
    http.post(gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn uploaded_id(http: &reqwest::Client, gateway: &GatewayHandle, name: &str) -> String {
    let response = upload(http, gateway, name).await;
    assert_eq!(response.status(), StatusCode::CREATED, "uploading {name}");
    let body: Value = response.json().await.unwrap();
    body["asset"]["id"].as_str().unwrap().to_owned()
}

async fn new_tenant(gateway: &GatewayHandle, name: &str) -> (String, reqwest::Client) {
    let created: Value = gateway
        .client()
        .post(gateway.url("/api/v1/tenants"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        created["tenant"]["id"].as_str().unwrap().to_owned(),
        client_with_key(created["admin_key"].as_str().unwrap()),
    )
}

async fn new_key(admin: &reqwest::Client, gateway: &GatewayHandle, name: &str) -> reqwest::Client {
    let created: Value = admin
        .post(gateway.url("/api/v1/keys"))
        .json(&json!({ "name": name, "role": "reader" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    client_with_key(created["key"].as_str().unwrap())
}

async fn error_message(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn progress_streams_are_capped_per_principal_and_tenant_and_hold_no_worker_permit() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    // Assets stay queued, so every stream stays open; and the worker has fewer call permits
    // than there are streams.
    config.ingest_concurrency = 0;
    config.max_concurrent_calls = 3;
    let worker = spawn_worker_with(config).await;
    let mut gateway_config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    gateway_config.sse_max_watches_per_principal = 2;
    gateway_config.sse_max_watches_per_tenant = 4;
    let gateway = spawn_gateway_with(gateway_config).await;

    let (_, tenant_a) = new_tenant(&gateway, "streams-a").await;
    let (_, tenant_b) = new_tenant(&gateway, "streams-b").await;
    let asset = uploaded_id(&tenant_a, &gateway, "queued.md").await;
    let events = gateway.url(&format!("/api/v1/assets/{asset}/events"));
    let keys = [
        tenant_a.clone(),
        new_key(&tenant_a, &gateway, "second").await,
        new_key(&tenant_a, &gateway, "third").await,
    ];

    let mut open = Vec::new();
    for _ in 0..2 {
        let stream = keys[0].get(&events).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        open.push(stream);
    }
    let refused = keys[0].get(&events).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let message = error_message(refused).await;
    assert!(
        message.contains("at most 2 per caller")
            && message.contains("THINKBANK_SSE_MAX_WATCHES_PER_PRINCIPAL"),
        "{message}"
    );
    for _ in 0..2 {
        let stream = keys[1].get(&events).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        open.push(stream);
    }
    // The tenant's four places are taken: a third principal of A is refused too.
    let refused = keys[2].get(&events).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let message = error_message(refused).await;
    assert!(
        message.contains("at most 4 per tenant")
            && message.contains("THINKBANK_SSE_MAX_WATCHES_PER_TENANT"),
        "{message}"
    );

    // Four streams are open against three worker call permits, and tenant B is served:
    // listing, uploading and a progress stream of its own.
    for _ in 0..3 {
        let listed = tenant_b
            .get(gateway.url("/api/v1/assets"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::OK);
    }
    let b_asset = uploaded_id(&tenant_b, &gateway, "other.md").await;
    let b_stream = tenant_b
        .get(gateway.url(&format!("/api/v1/assets/{b_asset}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(b_stream.status(), StatusCode::OK);

    // A closed stream gives its place back.
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let again = keys[2].get(&events).send().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's place did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(open);
    drop(b_stream);
    gateway.stop().await;
    worker.stop().await;
}

#[tokio::test]
async fn a_progress_stream_ends_at_its_deadline_telling_the_client_to_reconnect() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.ingest_concurrency = 0;
    let worker = spawn_worker_with(config).await;
    let mut gateway_config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    gateway_config.sse_watch_max_secs = 2;
    let gateway = spawn_gateway_with(gateway_config).await;
    let http = gateway.client();
    let asset = uploaded_id(&http, &gateway, "waiting.md").await;

    let stream = http
        .get(gateway.url(&format!("/api/v1/assets/{asset}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let events = tokio::time::timeout(Duration::from_secs(60), read_sse(stream))
        .await
        .expect("the stream outlived its deadline by a minute");
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(names, ["asset", "reconnect"]);
    let (_, reconnect) = &events[1];
    assert!(
        reconnect.json()["reason"]
            .as_str()
            .unwrap()
            .contains("maximum duration")
    );
    assert_eq!(reconnect.id.as_deref(), Some("2"));
    gateway.stop().await;
    worker.stop().await;
}

#[tokio::test]
async fn operators_set_tenant_quotas_and_uploads_over_them_get_429_naming_the_quota() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.ingest_concurrency = 0;
    let worker = spawn_worker_with(config).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let operator = gateway.client();
    let (tenant_id, tenant) = new_tenant(&gateway, "metered").await;
    let quotas = gateway.url(&format!("/api/v1/tenants/{tenant_id}/quotas"));

    // Only operators read or set quotas; a tenant's own admin cannot raise its own.
    let forbidden = tenant
        .put(&quotas)
        .json(&json!({ "max_assets": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let unset: Value = operator
        .get(&quotas)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        unset,
        json!({"max_assets": null, "max_bytes": null, "max_chunks": null})
    );
    let negative = operator
        .put(&quotas)
        .json(&json!({ "max_assets": -1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(negative.status(), StatusCode::BAD_REQUEST);
    let set = operator
        .put(&quotas)
        .json(&json!({ "max_assets": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let read: Value = operator
        .get(&quotas)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["max_assets"], 1);

    uploaded_id(&tenant, &gateway, "first.md").await;
    let refused = upload(&tenant, &gateway, "second.md").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let message = error_message(refused).await;
    assert!(
        message.contains("quota max_assets exceeded") && message.contains("at most 1 assets"),
        "{message}"
    );
    let listed: Value = tenant
        .get(gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["assets"].as_array().unwrap().len(), 1);
    // Other tenants keep the defaults (no limit).
    let operator_upload = upload(&operator, &gateway, "operator.md").await;
    assert_eq!(operator_upload.status(), StatusCode::CREATED);
    let missing = operator
        .get(gateway.url(&format!("/api/v1/tenants/{}/quotas", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    gateway.stop().await;
    worker.stop().await;
}
