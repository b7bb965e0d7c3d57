//! Tenant isolation end to end: tenant A's credentials against tenant B's ids and data on every
//! endpoint (0 leaks, and 404 rather than 403 so existence is not revealed), then the same
//! isolation enforced by PostgreSQL's row-level security beneath the application, and the
//! worker refusing callers without the internal token.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use reqwest::StatusCode;
use serde_json::{Value, json};
use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{
    TestDatabase, client_with_key, read_sse, spawn_gateway_with, spawn_worker_with, worker_config,
};

const SECRET_DOC: &str = "# Vault\n\nThe vault combination of tenant B is 7351, written on a zebra \
    postcard kept in the greenhouse.";
const OWN_DOC: &str = "# Garden\n\nTenant A waters the tomatoes every morning before work.";

async fn upload(http: &reqwest::Client, url: &str, name: &str, text: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_owned()),
        )
        .text("wait", "true");
    let response = http.post(url).multipart(form).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// Every chunk id, asset id and filename mentioned anywhere in `body`.
fn mentions_b(body: &str, b_asset: &str) -> bool {
    body.contains(b_asset) || body.contains("vault.md") || body.contains("7351")
}

#[tokio::test]
async fn tenant_a_cannot_see_touch_or_find_anything_of_tenant_b() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.internal_token = Some("tenancy-internal-token".into());
    let worker = spawn_worker_with(config).await;
    let mut gateway_config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    gateway_config.internal_token = Some("tenancy-internal-token".into());
    let gateway = spawn_gateway_with(gateway_config).await;
    let operator = gateway.client();

    // Tenant B, created by the operator, with its own admin key.
    let created: Value = operator
        .post(gateway.url("/api/v1/tenants"))
        .json(&json!({"name": "tenant-b"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b = client_with_key(created["admin_key"].as_str().unwrap());
    // Tenant A: another new tenant (not the operators' own).
    let created: Value = operator
        .post(gateway.url("/api/v1/tenants"))
        .json(&json!({"name": "tenant-a"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = client_with_key(created["admin_key"].as_str().unwrap());

    let b_asset = upload(&b, &gateway.url("/api/v1/assets"), "vault.md", SECRET_DOC).await;
    let b_asset_id = b_asset["asset"]["id"].as_str().unwrap().to_owned();
    let b_collection = b_asset["asset"]["collection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_asset = upload(&a, &gateway.url("/api/v1/assets"), "garden.md", OWN_DOC).await;
    assert_ne!(
        a_asset["asset"]["collection_id"],
        b_asset["asset"]["collection_id"]
    );
    let b_chat = b
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": "What is the vault combination?"}))
        .send()
        .await
        .unwrap();
    let events = read_sse(b_chat).await;
    let b_conversation = events
        .iter()
        .find(|(_, e)| e.event == "sources")
        .map(|(_, e)| serde_json::from_str::<Value>(&e.data).unwrap()["conversation_id"].clone())
        .unwrap();
    let b_conversation = b_conversation.as_str().unwrap().to_owned();
    assert!(
        events.iter().any(|(_, e)| e.data.contains("7351")),
        "tenant B finds its own secret"
    );

    // Direct access to B's ids: 404, never 403, and nothing changes.
    let by_id = [
        (reqwest::Method::GET, format!("/api/v1/assets/{b_asset_id}")),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/assets/{b_asset_id}"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/assets/{b_asset_id}/cancel"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/assets/{b_asset_id}/reprocess"),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/assets/{b_asset_id}/events"),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/conversations/{b_conversation}"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/conversations/{b_conversation}"),
        ),
    ];
    for (method, path) in by_id {
        let response = a
            .request(method.clone(), gateway.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("not_found"), "{method} {path}: {body}");
    }
    // Uploading into B's collection is refused as if it did not exist.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"# Intruder\n\nplanted text".to_vec())
                .file_name("planted.md"),
        )
        .text("collection_id", b_collection.clone());
    let response = a
        .post(gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Lists, searches and answers never surface B's data, even when asked for it by id.
    let listings = [
        a.get(gateway.url("/api/v1/assets")),
        a.get(gateway.url("/api/v1/conversations")),
        a.get(gateway.url(&format!("/api/v1/assets?collection_id={b_collection}"))),
    ];
    for request in listings {
        let body = request.send().await.unwrap().text().await.unwrap();
        assert!(!mentions_b(&body, &b_asset_id), "{body}");
        assert!(!body.contains(&b_conversation), "{body}");
    }
    for mode in ["hybrid", "vector", "keyword"] {
        for filter in [
            json!({}),
            json!({"asset_ids": [b_asset_id]}),
            json!({"collection_ids": [b_collection]}),
        ] {
            let mut query = json!({"query": "vault combination zebra postcard", "mode": mode});
            query
                .as_object_mut()
                .unwrap()
                .extend(filter.as_object().unwrap().clone());
            let response = a
                .post(gateway.url("/api/v1/search"))
                .json(&query)
                .send()
                .await
                .unwrap();
            let body = response.text().await.unwrap();
            assert!(!mentions_b(&body, &b_asset_id), "{query}: {body}");
        }
    }
    let chat = a
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": "What is the vault combination?", "collection_ids": [b_collection]}))
        .send()
        .await
        .unwrap();
    for (_, event) in read_sse(chat).await {
        assert!(!mentions_b(&event.data, &b_asset_id), "{}", event.data);
    }
    let completion = a
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({"model": "thinkbank", "messages": [{"role": "user", "content": "vault combination?"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!mentions_b(&completion, &b_asset_id), "{completion}");
    let continue_b = a
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": "and again?", "conversation_id": b_conversation}))
        .send()
        .await
        .unwrap();
    assert_eq!(continue_b.status(), StatusCode::NOT_FOUND);
    // Admin endpoints are scoped too: B's keys are invisible and unrevocable.
    let keys = a
        .get(gateway.url("/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let b_keys: Value = b
        .get(gateway.url("/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b_key_id = b_keys["keys"][0]["id"].as_str().unwrap();
    assert!(!keys.contains(b_key_id));
    let revoke = a
        .delete(gateway.url(&format!("/api/v1/keys/{b_key_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND);
    // Only operators manage tenants.
    let response = a
        .post(gateway.url("/api/v1/tenants"))
        .json(&json!({"name": "tenant-c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // B's data is intact after all of that.
    let still_there = b
        .get(gateway.url(&format!("/api/v1/assets/{b_asset_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(still_there.status(), StatusCode::OK);
    let conversation = b
        .get(gateway.url(&format!("/api/v1/conversations/{b_conversation}")))
        .send()
        .await
        .unwrap();
    assert_eq!(conversation.status(), StatusCode::OK);

    // Beneath the application: in a tenant-A transaction PostgreSQL itself hides B's rows, even
    // from a query that asks for them by tenant id, and refuses writes into B.
    let mut conn = db.connect().await;
    let a_tenant: uuid::Uuid =
        sqlx::query_scalar("SELECT tenant_id FROM worker.assets WHERE id = $1::uuid")
            .bind(a_asset["asset"]["id"].as_str().unwrap())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let b_tenant: uuid::Uuid =
        sqlx::query_scalar("SELECT tenant_id FROM worker.assets WHERE id = $1::uuid")
            .bind(&b_asset_id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query(
        "SELECT set_config('role', 'thinkbank_tenant', true), \
                set_config('thinkbank.tenant_id', $1, true)",
    )
    .bind(a_tenant.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    for table in [
        "assets",
        "chunks",
        "embeddings",
        "conversations",
        "conversation_messages",
    ] {
        let visible: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM worker.{table} WHERE tenant_id = $1"
        ))
        .bind(b_tenant)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            visible, 0,
            "worker.{table} shows tenant B's rows to tenant A"
        );
    }
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM worker.chunks")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(own > 0, "tenant A sees its own chunks");
    let write = sqlx::query("UPDATE worker.assets SET filename = 'pwned' WHERE tenant_id = $1")
        .bind(b_tenant)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(write.rows_affected(), 0);
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();

    // And the worker serves only the gateway: no internal token, no service.
    let mut direct = worker.client().await;
    let refused = direct
        .get_asset(pb::GetAssetRequest {
            id: b_asset_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn a_key_limited_to_a_collection_sees_and_writes_only_that_collection() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let worker = spawn_worker_with(worker_config(&db, &objects)).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let admin = gateway.client();
    let team = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO worker.collections (id, tenant_id, name, embedding_model) \
         SELECT $1, tenant_id, 'team', embedding_model FROM worker.collections \
         WHERE name = 'default' AND tenant_id = '00000000-0000-0000-0000-000000000001'",
    )
    .bind(team)
    .execute(&mut db.connect().await)
    .await
    .unwrap();
    let elsewhere = upload(
        &admin,
        &gateway.url("/api/v1/assets"),
        "vault.md",
        SECRET_DOC,
    )
    .await;
    let elsewhere_id = elsewhere["asset"]["id"].as_str().unwrap().to_owned();

    let created: Value = admin
        .post(gateway.url("/api/v1/keys"))
        .json(&json!({"name": "team bot", "role": "editor", "collection_ids": [team]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["collection_ids"], json!([team]));
    let scoped = client_with_key(created["key"].as_str().unwrap());

    // Writing: into its collection yes, anywhere else (the default included) as if absent.
    let form = |collection: Option<&str>| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(OWN_DOC.as_bytes().to_vec()).file_name("garden.md"),
            )
            .text("wait", "true");
        match collection {
            Some(id) => form.text("collection_id", id.to_owned()),
            None => form,
        }
    };
    let refused = scoped
        .post(gateway.url("/api/v1/assets"))
        .multipart(form(None))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let accepted = scoped
        .post(gateway.url("/api/v1/assets"))
        .multipart(form(Some(&team.to_string())))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);

    // Reading: the other collection's asset does not exist for this key.
    let response = scoped
        .get(gateway.url(&format!("/api/v1/assets/{elsewhere_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let listed = scoped
        .get(gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("garden.md") && !mentions_b(&listed, &elsewhere_id),
        "{listed}"
    );
    for mode in ["hybrid", "keyword", "vector"] {
        let found = scoped
            .post(gateway.url("/api/v1/search"))
            .json(&json!({"query": "vault combination zebra postcard", "mode": mode}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!mentions_b(&found, &elsewhere_id), "{mode}: {found}");
    }
    // The unrestricted admin still finds it.
    let found = admin
        .post(gateway.url("/api/v1/search"))
        .json(&json!({"query": "vault combination zebra postcard", "mode": "keyword"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains("vault.md"), "{found}");
    // A scoped key cannot mint a wider one.
    let wider = scoped
        .post(gateway.url("/api/v1/keys"))
        .json(&json!({"name": "wider", "role": "reader"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wider.status(), StatusCode::FORBIDDEN);
}
