//! The first principal's world: a tenant with two collections, two assets, two users, keys, a
//! finished conversation and a live chat of alice's; and the three intruders with the secrets
//! each must not read.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use thinkbank_gateway::auth::Role;
use thinkbank_testkit::{
    FakeLlm, GatewayHandle, Script, TestDatabase, WorkerHandle, client_with_key, llm_config,
    read_sse, spawn_gateway_with, spawn_worker_with_llm,
};

use super::{Intruder, Kind};

// Secrets contain a letter outside hex, so a request id or UUID never contains one by chance.
const VAULT: &str = "# Vault\n\nThe vault combination is Q7351, written on a zebra postcard kept \
    in the greenhouse.";
const ANNEX: &str = "# Annex\n\nThe spare vault key hangs behind the zebra painting in the \
    greenhouse annex, marked Q7351.";
const ANSWER: &str = "The vault combination is Q7351 [1].";
/// Words only alice typed: nobody else may ever read them.
pub const ALICE_QUESTION: &str = "What is the vault combination on the zebra postcard, periwinkle?";
pub const ALICE_LIVE_QUESTION: &str =
    "What is the vault combination written on the zebra postcard in the greenhouse, marigold?";
const PASSWORD: &str = "correct horse battery";

/// What the owner holds; ids as strings, as they appear in bodies.
pub struct Owner {
    pub db: TestDatabase,
    pub fake: FakeLlm,
    _worker: WorkerHandle,
    pub gateway: GatewayHandle,
    pub operator: reqwest::Client,
    /// The owner tenant's first admin key.
    pub admin: reqwest::Client,
    pub alice: reqwest::Client,
    pub alice_id: String,
    pub bob: reqwest::Client,
    pub bob_id: String,
    pub vault: String,
    pub team: String,
    pub assets: Vec<String>,
    pub conversation: String,
    pub live: String,
    /// A key of the owner tenant nobody uses (the revoke target).
    pub spare_key: String,
    pub scoped_key: (reqwest::Client, String),
    /// An admin key limited to `team`: may manage what lies inside it, nothing beyond.
    pub scoped_admin: (reqwest::Client, String),
    /// A search continuation the owner's admin got.
    pub page_token: String,
    pub tenant_id: String,
    pub secrets: Vec<String>,
    live_request: usize,
    live_reader: tokio::task::JoinHandle<Vec<(Instant, thinkbank_testkit::SseEvent)>>,
}

async fn post(who: &reqwest::Client, gateway: &GatewayHandle, path: &str, body: Value) -> Value {
    let response = who
        .post(gateway.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn get(who: &reqwest::Client, gateway: &GatewayHandle, path: &str) -> Value {
    let response = who.get(gateway.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

impl Owner {
    pub async fn set_up() -> Self {
        let fake = FakeLlm::start(Script::words(ANSWER)).await;
        let db = TestDatabase::create().await;
        let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
        let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
        config.sse_resume_window_secs = 60;
        // Every probe must reach its handler: no 429 from the matrix's own volume.
        config.limits = thinkbank_gateway::limits::LimitSettings {
            read_per_min: 100_000,
            write_per_min: 100_000,
            upload_per_min: 100_000,
            chat_per_min: 100_000,
            auth_per_min: 100_000,
            ..Default::default()
        };
        let gateway = spawn_gateway_with(config).await;
        let operator = gateway.client();
        let created = post(
            &operator,
            &gateway,
            "/api/v1/tenants",
            json!({"name": "matrix-owner"}),
        )
        .await;
        let tenant_id = id(&created["tenant"]);
        let admin = client_with_key(created["admin_key"].as_str().unwrap());

        let vault = id(&post(
            &admin,
            &gateway,
            "/api/v1/collections",
            json!({"name": "vault-room-mx"}),
        )
        .await);
        let team = id(&post(
            &admin,
            &gateway,
            "/api/v1/collections",
            json!({"name": "team-room-mx"}),
        )
        .await);
        let mut assets = Vec::new();
        for (name, text) in [("vault-mx.md", VAULT), ("annex-mx.md", ANNEX)] {
            let form = reqwest::multipart::Form::new()
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name),
                )
                .text("collection_id", vault.clone())
                .text("wait", "true");
            let response = admin
                .post(gateway.url("/api/v1/assets"))
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["asset"]["status"], "ready", "{body}");
            assets.push(id(&body["asset"]));
        }

        let mut users = Vec::new();
        for name in ["alice-mx", "bob-mx"] {
            let user = post(
                &admin,
                &gateway,
                "/api/v1/users",
                json!({"username": name, "password": PASSWORD, "role": "reader"}),
            )
            .await;
            let tokens = post(
                &reqwest::Client::new(),
                &gateway,
                "/api/v1/auth/login",
                json!({"username": name, "password": PASSWORD, "tenant": tenant_id}),
            )
            .await;
            users.push((
                client_with_key(tokens["access_token"].as_str().unwrap()),
                id(&user),
            ));
        }
        let (bob, bob_id) = users.pop().unwrap();
        let (alice, alice_id) = users.pop().unwrap();
        let spare_key = id(&post(
            &admin,
            &gateway,
            "/api/v1/keys",
            json!({"name": "spare-mx", "role": "reader"}),
        )
        .await);
        // A key limited to `team`, as a client and its id.
        let team_key = |name: &'static str, role: &'static str| {
            let (admin, gateway, team) = (&admin, &gateway, &team);
            async move {
                let key = post(
                    admin,
                    gateway,
                    "/api/v1/keys",
                    json!({"name": name, "role": role, "collection_ids": [team]}),
                )
                .await;
                (client_with_key(key["key"].as_str().unwrap()), id(&key))
            }
        };
        let scoped_key = team_key("scoped-mx", "editor").await;
        let scoped_admin = team_key("scoped-admin-mx", "admin").await;

        let conversation = chat_to_the_end(&alice, &gateway, ALICE_QUESTION).await;
        assert_eq!(fake.requests().len(), 1, "the model answered alice");
        let page = post(
            &admin,
            &gateway,
            "/api/v1/search",
            json!({"query": "vault zebra greenhouse", "mode": "keyword", "top_k": 1}),
        )
        .await;
        let page_token = page["next_page_token"].as_str().unwrap().to_owned();

        // A live chat of alice's that outlasts the matrix (10 minutes of tokens, however slow the
        // machine): only she may stop or resume it.
        let tokens: Vec<String> = (0..12_000).map(|i| format!(" w{i}")).collect();
        fake.push_script(Script::tokens(tokens).with_delay(Duration::from_millis(50)));
        let live_request = fake.requests().len();
        let response = alice
            .post(gateway.url("/api/v1/chat"))
            .json(&json!({"question": ALICE_LIVE_QUESTION}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let live_reader = tokio::spawn(read_sse(response));
        let deadline = Instant::now() + Duration::from_secs(30);
        while fake.requests().len() <= live_request {
            assert!(Instant::now() < deadline, "the model was never called");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let listed = get(&alice, &gateway, "/api/v1/conversations").await;
        let live = listed["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .find(|c| *c != conversation)
            .unwrap();

        let admin_keys = get(&admin, &gateway, "/api/v1/keys").await;
        let mut secrets: Vec<String> = vec![
            tenant_id.clone(),
            "matrix-owner".into(),
            vault.clone(),
            "vault-room-mx".into(),
            team.clone(),
            "team-room-mx".into(),
            "vault-mx.md".into(),
            "annex-mx.md".into(),
            "Q7351".into(),
            alice_id.clone(),
            "alice-mx".into(),
            bob_id.clone(),
            "bob-mx".into(),
            conversation.clone(),
            live.clone(),
            "periwinkle".into(),
            "marigold".into(),
        ];
        secrets.extend(assets.iter().cloned());
        secrets.extend(admin_keys["keys"].as_array().unwrap().iter().map(id));
        Self {
            db,
            fake,
            _worker: worker,
            gateway,
            operator,
            admin,
            alice,
            alice_id,
            bob,
            bob_id,
            vault,
            team,
            assets,
            conversation,
            live,
            spare_key,
            scoped_key,
            scoped_admin,
            page_token,
            tenant_id,
            secrets,
            live_request,
            live_reader,
        }
    }

    /// The other tenant's admin, bob, and the key limited to `team`; each with the owner's
    /// strings it must not read (everything, for the other tenant).
    pub async fn intruders(&self) -> Vec<Intruder> {
        let other = post(
            &self.operator,
            &self.gateway,
            "/api/v1/tenants",
            json!({"name": "matrix-intruder"}),
        )
        .await;
        let tenant_wide = |s: &String| {
            // The tenant's shared library: every unscoped member of the tenant reads it.
            [&self.vault, &self.team]
                .into_iter()
                .chain(&self.assets)
                .any(|x| x == s)
                || [
                    "vault-room-mx",
                    "team-room-mx",
                    "vault-mx.md",
                    "annex-mx.md",
                    "Q7351",
                    "matrix-owner",
                ]
                .contains(&s.as_str())
                || *s == self.tenant_id
                || *s == self.bob_id
                || *s == "bob-mx"
        };
        let in_team = |s: &String| {
            [
                &self.team,
                &self.tenant_id,
                &self.scoped_key.1,
                &self.scoped_admin.1,
            ]
            .contains(&s)
                || ["team-room-mx", "matrix-owner"].contains(&s.as_str())
        };
        vec![
            Intruder {
                name: "another tenant's admin",
                kind: Kind::OtherTenant,
                role: Role::Admin,
                client: client_with_key(other["admin_key"].as_str().unwrap()),
                secrets: self.secrets.clone(),
            },
            Intruder {
                name: "another user of the tenant",
                kind: Kind::SameTenantUser,
                role: Role::Reader,
                client: self.bob.clone(),
                secrets: self
                    .secrets
                    .iter()
                    .filter(|s| !tenant_wide(s))
                    .cloned()
                    .collect(),
            },
            Intruder {
                name: "a key limited to another collection",
                kind: Kind::ScopedKey,
                role: Role::Editor,
                client: self.scoped_key.0.clone(),
                secrets: self
                    .secrets
                    .iter()
                    .filter(|s| !in_team(s))
                    .cloned()
                    .collect(),
            },
            Intruder {
                name: "an admin key limited to another collection",
                kind: Kind::ScopedKey,
                role: Role::Admin,
                client: self.scoped_admin.0.clone(),
                secrets: self
                    .secrets
                    .iter()
                    .filter(|s| !in_team(s))
                    .cloned()
                    .collect(),
            },
        ]
    }

    /// After the matrix: nothing of the owner's changed, and alice's live chat is still hers.
    pub async fn assert_untouched(self) {
        let listed = get(
            &self.admin,
            &self.gateway,
            &format!("/api/v1/assets?collection_id={}", self.vault),
        )
        .await;
        let names: Vec<&str> = listed["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["filename"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        for asset in &self.assets {
            let asset = get(
                &self.admin,
                &self.gateway,
                &format!("/api/v1/assets/{asset}"),
            )
            .await;
            assert_eq!(asset["status"], "ready", "{asset}");
        }
        let collection = get(
            &self.admin,
            &self.gateway,
            &format!("/api/v1/collections/{}", self.vault),
        )
        .await;
        assert!(collection["migration"].is_null(), "{collection}");
        let stored = get(
            &self.alice,
            &self.gateway,
            &format!("/api/v1/conversations/{}", self.conversation),
        )
        .await;
        assert_eq!(stored["conversation"]["message_count"], 2, "{stored}");
        assert_ne!(stored["conversation"]["title"], "taken over", "{stored}");
        let keys = get(&self.admin, &self.gateway, "/api/v1/keys")
            .await
            .to_string();
        assert!(keys.contains(&self.spare_key), "{keys}");
        let users = get(&self.admin, &self.gateway, "/api/v1/users").await;
        for user in users["users"].as_array().unwrap() {
            assert_eq!(user["role"], "reader", "{user}");
        }
        let quotas = get(
            &self.operator,
            &self.gateway,
            &format!("/api/v1/tenants/{}/quotas", self.tenant_id),
        )
        .await;
        assert!(
            ["max_assets", "max_bytes", "max_chunks"]
                .iter()
                .all(|k| quotas.get(*k).is_none_or(Value::is_null)),
            "an intruder set the owner's quotas: {quotas}"
        );
        let tenants = get(&self.operator, &self.gateway, "/api/v1/tenants")
            .await
            .to_string();
        assert!(!tenants.contains("planted"), "{tenants}");

        assert!(
            self.fake.requests()[self.live_request]
                .disconnected_at
                .is_none(),
            "an intruder stopped alice's live chat"
        );
        let resumed = self
            .alice
            .get(
                self.gateway
                    .url(&format!("/api/v1/chat/{}/events", self.live)),
            )
            .header("Last-Event-ID", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(resumed.status(), StatusCode::OK);
        drop(resumed);
        let stopped = self
            .alice
            .post(
                self.gateway
                    .url(&format!("/api/v1/chat/{}/stop", self.live)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(stopped.status(), StatusCode::NO_CONTENT);
        let events = self.live_reader.await.unwrap();
        let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
        assert_eq!(&names[names.len() - 2..], ["error", "done"], "{names:?}");
        drop(self.db);
    }
}

/// Asks `question` and reads the answer to its end; the conversation id.
async fn chat_to_the_end(who: &reqwest::Client, gateway: &GatewayHandle, question: &str) -> String {
    let response = who
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": question}))
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
