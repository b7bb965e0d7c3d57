//! Ownership inside a tenant (issue 22, items 2 and 4): a conversation and its live chat belong
//! to the principal that started it. Another user of the same tenant and a collection-scoped
//! key are told it does not exist (404 with `not_found`, as for an unknown id) on every route:
//! read, list, rename, delete, continue, stop and resume. Admins of the whole tenant may list,
//! read and delete (not continue, rename, stop or resume) other principals' conversations.
//! Stored answers that drew on collections the caller may not read are withheld.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use thinkbank_testkit::{
    FakeLlm, GatewayHandle, Script, TestDatabase, WorkerHandle, client_with_key, llm_config,
    read_sse, spawn_gateway_with, spawn_worker_with_llm,
};
use uuid::Uuid;

// The secret has a letter outside hex, so a request id or UUID in an error never contains it.
const VAULT: &str = "# Vault\n\nThe vault combination is Q7351, written on a zebra postcard kept \
    in the greenhouse.";
const ANSWER: &str = "The vault combination is Q7351 [1].";
const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";

struct Stack {
    db: TestDatabase,
    _worker: WorkerHandle,
    gateway: GatewayHandle,
    admin: reqwest::Client,
    /// A collection of the default tenant other than `default`, holding nothing.
    team: Uuid,
}

async fn stack(fake: &FakeLlm, resume_window_secs: u64) -> Stack {
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(fake)).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    config.sse_resume_window_secs = resume_window_secs;
    let gateway = spawn_gateway_with(config).await;
    let admin = gateway.client();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(VAULT.as_bytes().to_vec()).file_name("vault.md"),
        )
        .text("wait", "true");
    let uploaded = admin
        .post(gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(uploaded.status().is_success(), "{}", uploaded.status());
    let team = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO worker.collections (id, tenant_id, name, embedding_model) \
         SELECT $1, tenant_id, 'team', embedding_model FROM worker.collections \
         WHERE name = 'default' AND tenant_id = $2::uuid",
    )
    .bind(team)
    .bind(DEFAULT_TENANT)
    .execute(&mut db.connect().await)
    .await
    .unwrap();
    Stack {
        db,
        _worker: worker,
        gateway,
        admin,
        team,
    }
}

impl Stack {
    /// A reader user of the default tenant, signed in: (its client, its id).
    async fn user(&self, name: &str) -> (reqwest::Client, String) {
        let created: Value = self
            .admin
            .post(self.gateway.url("/api/v1/users"))
            .json(&json!({"username": name, "password": "correct horse battery", "role": "reader"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tokens: Value = reqwest::Client::new()
            .post(self.gateway.url("/api/v1/auth/login"))
            .json(&json!({"username": name, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            client_with_key(tokens["access_token"].as_str().unwrap()),
            created["id"].as_str().unwrap().to_owned(),
        )
    }

    /// A key of the default tenant: (its client, its id).
    async fn key(&self, role: &str, collections: Option<Vec<Uuid>>) -> (reqwest::Client, String) {
        let mut body = json!({"name": format!("{role} key"), "role": role});
        if let Some(ids) = collections {
            body["collection_ids"] = json!(ids);
        }
        let created: Value = self
            .admin
            .post(self.gateway.url("/api/v1/keys"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            client_with_key(created["key"].as_str().unwrap()),
            created["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn send(&self, who: &reqwest::Client, method: Method, path: &str, body: Value) -> Sent {
        let mut request = who.request(method, self.gateway.url(path));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        Sent {
            status,
            body: response.text().await.unwrap(),
        }
    }

    /// Asks a question (continuing `conversation` if given) and reads the answer to its end;
    /// returns the conversation id.
    async fn chat(&self, who: &reqwest::Client, conversation: Option<&str>) -> String {
        let mut body = json!({"question": "What is the vault combination?"});
        if let Some(id) = conversation {
            body["conversation_id"] = json!(id);
        }
        let response = who
            .post(self.gateway.url("/api/v1/chat"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let events = read_sse(response).await;
        let sources = events
            .iter()
            .find(|(_, e)| e.event == "sources")
            .unwrap_or_else(|| panic!("no sources event: {events:?}"));
        let data: Value = serde_json::from_str(&sources.1.data).unwrap();
        data["conversation_id"].as_str().unwrap().to_owned()
    }

    async fn listed(&self, who: &reqwest::Client, query: &str) -> Vec<String> {
        let sent = self
            .send(
                who,
                Method::GET,
                &format!("/api/v1/conversations{query}"),
                Value::Null,
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        let listed: Value = serde_json::from_str(&sent.body).unwrap();
        listed["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct Sent {
    status: StatusCode,
    body: String,
}

impl Sent {
    fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND && self.body.contains("not_found")
    }
}

/// Every conversation route that names an id, with a body where it takes one.
fn by_id(id: &str) -> Vec<(Method, String, Value)> {
    vec![
        (
            Method::GET,
            format!("/api/v1/conversations/{id}"),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{id}"),
            json!({"title": "taken over"}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/conversations/{id}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/api/v1/chat".to_owned(),
            json!({"question": "And the postcard?", "conversation_id": id}),
        ),
    ]
}

#[tokio::test]
async fn a_conversation_is_not_found_for_anyone_but_the_principal_that_started_it() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let stack = stack(&fake, 0).await;
    let (alice, alice_id) = stack.user("alice").await;
    let (bob, _) = stack.user("bob").await;
    let (scoped, _) = stack.key("reader", Some(vec![stack.team])).await;
    let (scoped_admin, _) = stack.key("admin", Some(vec![stack.team])).await;

    let id = stack.chat(&alice, None).await;
    let mut tried = 0;
    for (who, intruder) in [
        ("another user", &bob),
        ("a collection-scoped key", &scoped),
        ("a collection-scoped admin", &scoped_admin),
    ] {
        for (method, path, body) in by_id(&id) {
            let sent = stack.send(intruder, method.clone(), &path, body).await;
            assert!(
                sent.is_not_found(),
                "{who}: {method} {path}: {} {}",
                sent.status,
                sent.body
            );
            assert!(
                !sent.body.contains("Q7351"),
                "{who}: {method} {path}: {}",
                sent.body
            );
            tried += 1;
        }
        assert!(
            !stack.listed(intruder, "").await.contains(&id),
            "{who} lists alice's conversation"
        );
    }
    assert_eq!(tried, 12);
    // Only an admin of the whole tenant may ask for everyone's.
    let refused = stack
        .send(
            &bob,
            Method::GET,
            "/api/v1/conversations?all=true",
            Value::Null,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let refused = stack
        .send(
            &scoped_admin,
            Method::GET,
            "/api/v1/conversations?all=true",
            Value::Null,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    // The tenant's admin reads and lists it (on request) but cannot speak in alice's name.
    let read = stack
        .send(
            &stack.admin,
            Method::GET,
            &format!("/api/v1/conversations/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let read: Value = serde_json::from_str(&read.body).unwrap();
    assert_eq!(read["conversation"]["owner"], format!("user:{alice_id}"));
    assert!(!stack.listed(&stack.admin, "").await.contains(&id));
    assert!(stack.listed(&stack.admin, "?all=true").await.contains(&id));
    for (method, path, body) in by_id(&id) {
        if matches!(method, Method::PATCH | Method::POST) {
            let sent = stack.send(&stack.admin, method.clone(), &path, body).await;
            assert!(
                sent.is_not_found(),
                "admin: {method} {path}: {}",
                sent.status
            );
        }
    }

    // Alice herself: everything works, and nobody changed anything above.
    assert_eq!(stack.listed(&alice, "").await, vec![id.clone()]);
    assert_eq!(stack.chat(&alice, Some(&id)).await, id);
    let stored: Value = serde_json::from_str(
        &stack
            .send(
                &alice,
                Method::GET,
                &format!("/api/v1/conversations/{id}"),
                Value::Null,
            )
            .await
            .body,
    )
    .unwrap();
    assert_eq!(stored["conversation"]["message_count"], 4);
    assert_ne!(stored["conversation"]["title"], "taken over");
    let renamed = stack
        .send(
            &alice,
            Method::PATCH,
            &format!("/api/v1/conversations/{id}"),
            json!({"title": "vault"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let deleted = stack
        .send(
            &alice,
            Method::DELETE,
            &format!("/api/v1/conversations/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    // A conversation stored before owners existed: only the tenant's admin sees it.
    let legacy = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO worker.conversations (id, tenant_id, title) VALUES ($1, $2::uuid, 'old')",
    )
    .bind(legacy)
    .bind(DEFAULT_TENANT)
    .execute(&mut stack.db.connect().await)
    .await
    .unwrap();
    let path = format!("/api/v1/conversations/{legacy}");
    assert!(
        stack
            .send(&alice, Method::GET, &path, Value::Null)
            .await
            .is_not_found()
    );
    assert!(
        stack
            .send(&scoped_admin, Method::GET, &path, Value::Null)
            .await
            .is_not_found()
    );
    let read = stack
        .send(&stack.admin, Method::GET, &path, Value::Null)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert!(
        stack
            .listed(&stack.admin, "")
            .await
            .contains(&legacy.to_string())
    );
}

#[tokio::test]
async fn stored_answers_from_collections_a_key_may_no_longer_read_are_withheld() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let stack = stack(&fake, 0).await;
    let (key, key_id) = stack.key("reader", None).await;
    let id = stack.chat(&key, None).await;
    let path = format!("/api/v1/conversations/{id}");
    let before = stack.send(&key, Method::GET, &path, Value::Null).await;
    assert!(before.body.contains("Q7351"), "{}", before.body);

    // The operator narrows the key to a collection without the vault (by SQL: the gateways
    // hear of it through NOTIFY at once).
    sqlx::query("UPDATE gateway.api_keys SET collection_ids = ARRAY[$1] WHERE id = $2::uuid")
        .bind(stack.team)
        .bind(&key_id)
        .execute(&mut stack.db.connect().await)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = stack.send(&key, Method::GET, &path, Value::Null).await;
        assert_eq!(after.status, StatusCode::OK, "{}", after.body);
        if !after.body.contains("Q7351") || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!after.body.contains("Q7351"), "{}", after.body);
    assert!(!after.body.contains("vault.md"), "{}", after.body);
    let stored: Value = serde_json::from_str(&after.body).unwrap();
    let answer = &stored["messages"][1];
    assert_eq!(answer["withheld"], true, "{answer}");
    assert_eq!(answer["content"], "");
    assert_eq!(answer["sources"], json!([]));
    // The question is the key's own words and stays.
    assert_eq!(
        stored["messages"][0]["content"],
        "What is the vault combination?"
    );
}

#[tokio::test]
async fn only_the_principal_that_started_a_live_chat_may_stop_or_resume_it() {
    let tokens: Vec<String> = (0..200).map(|i| format!(" w{i}")).collect();
    let fake = FakeLlm::start(Script::tokens(tokens).with_delay(Duration::from_millis(50))).await;
    let stack = stack(&fake, 5).await;
    let (alice, _) = stack.user("alice").await;
    let (bob, _) = stack.user("bob").await;
    let (scoped, _) = stack.key("reader", Some(vec![stack.team])).await;
    let other_tenant: Value = stack
        .admin
        .post(stack.gateway.url("/api/v1/tenants"))
        .json(&json!({"name": "elsewhere"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_tenant = client_with_key(other_tenant["admin_key"].as_str().unwrap());

    let response = alice
        .post(stack.gateway.url("/api/v1/chat"))
        .json(&json!({"question": "What is the vault combination?"}))
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_sse(response));
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.requests().is_empty() {
        assert!(Instant::now() < deadline, "the model was never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = stack.listed(&alice, "").await.remove(0);
    let stop = format!("/api/v1/chat/{id}/stop");
    let events = format!("/api/v1/chat/{id}/events");

    for (who, intruder) in [
        ("another user", &bob),
        ("a collection-scoped key", &scoped),
        ("the tenant's admin", &stack.admin),
        ("another tenant's admin", &other_tenant),
    ] {
        let sent = stack.send(intruder, Method::POST, &stop, Value::Null).await;
        assert!(
            sent.is_not_found(),
            "{who}: stop: {} {}",
            sent.status,
            sent.body
        );
        let sent = stack
            .send(intruder, Method::GET, &events, Value::Null)
            .await;
        assert!(
            sent.is_not_found(),
            "{who}: resume: {} {}",
            sent.status,
            sent.body
        );
    }
    assert!(
        fake.requests()[0].disconnected_at.is_none(),
        "an intruder's stop cancelled alice's answer"
    );

    // Alice can resume and stop her own.
    let resumed = alice
        .get(stack.gateway.url(&events))
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    drop(resumed);
    let sent = stack.send(&alice, Method::POST, &stop, Value::Null).await;
    assert_eq!(sent.status, StatusCode::NO_CONTENT, "{}", sent.body);
    let events = reader.await.unwrap();
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(&names[names.len() - 2..], ["error", "done"], "{names:?}");
}
