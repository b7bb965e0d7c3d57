//! The gateway's door: credentials (API keys, users with JWTs, an external identity provider),
//! roles, rate limits, edge headers and the audit chain, over real HTTP against a real stack.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use thinkbank_testkit::{
    GatewayHandle, TestDatabase, WorkerHandle, client_with_key, spawn_gateway_with, spawn_worker,
};

struct Stack {
    db: TestDatabase,
    _worker: WorkerHandle,
    gateway: GatewayHandle,
}

async fn stack_with(configure: impl FnOnce(&mut thinkbank_gateway::Config)) -> Stack {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    configure(&mut config);
    let gateway = spawn_gateway_with(config).await;
    Stack {
        db,
        _worker: worker,
        gateway,
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// Creates a key with `role` using the admin key and returns it.
async fn key_with_role(stack: &Stack, role: &str) -> (String, String) {
    let response = stack
        .gateway
        .client()
        .post(stack.gateway.url("/api/v1/keys"))
        .json(&json!({"name": format!("{role} key"), "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_of(response).await;
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn requests_without_valid_credentials_get_401_with_a_challenge_and_public_routes_stay_open() {
    let stack = stack_with(|_| {}).await;
    let anonymous = reqwest::Client::new();
    for credentials in [
        None,
        Some("tb_notarealkey0_abcdefghijklmnopqrstuvwxyz012345"),
        Some("garbage"),
    ] {
        let mut request = anonymous.get(stack.gateway.url("/api/v1/assets"));
        if let Some(token) = credentials {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{credentials:?}"
        );
        assert!(
            response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let body = json_of(response).await;
        assert_eq!(body["error"]["code"], "unauthenticated");
        assert!(
            body["error"]["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    for public in ["/healthz", "/readyz"] {
        let response = anonymous
            .get(stack.gateway.url(public))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::UNAUTHORIZED, "{public}");
    }
    // The OpenAI-compatible routes are protected too.
    let response = anonymous
        .post(stack.gateway.url("/v1/embeddings"))
        .json(&json!({"input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_decide_what_a_key_may_do_and_a_revoked_key_stops_working() {
    let stack = stack_with(|_| {}).await;
    let (reader_key, reader_id) = key_with_role(&stack, "reader").await;
    let reader = client_with_key(&reader_key);

    let response = reader
        .get(stack.gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"# Notes\n\nreader upload".to_vec()).file_name("n.md"),
    );
    let response = reader
        .post(stack.gateway.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json_of(response).await["error"]["code"],
        "permission_denied"
    );
    let response = reader
        .post(stack.gateway.url("/api/v1/keys"))
        .json(&json!({"name": "escalate", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // The key list shows metadata, never the key or its hash.
    let listed = json_of(
        stack
            .gateway
            .client()
            .get(stack.gateway.url("/api/v1/keys"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let text = listed.to_string();
    assert!(!text.contains(&reader_key));
    assert!(!text.contains("key_hash"));
    let me = json_of(
        reader
            .get(stack.gateway.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["role"], "reader");
    assert_eq!(me["kind"], "api_key");

    let response = stack
        .gateway
        .client()
        .delete(stack.gateway.url(&format!("/api/v1/keys/{reader_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = reader
        .get(stack.gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Last use is recorded.
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM gateway.api_keys WHERE id = $1::uuid")
            .bind(&reader_id)
            .fetch_one(&mut stack.db.connect().await)
            .await
            .unwrap();
    assert!(used.is_some());
}

#[tokio::test]
async fn users_sign_in_refresh_once_and_log_out() {
    let stack = stack_with(|_| {}).await;
    let admin = stack.gateway.client();
    let response = admin
        .post(stack.gateway.url("/api/v1/users"))
        .json(&json!({"username": "alice", "password": "correct horse battery", "role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let duplicate = admin
        .post(stack.gateway.url("/api/v1/users"))
        .json(&json!({"username": "alice", "password": "another long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);

    let anonymous = reqwest::Client::new();
    let login = |password: &'static str| {
        anonymous
            .post(stack.gateway.url("/api/v1/auth/login"))
            .json(&json!({"username": "alice", "password": password}))
            .send()
    };
    let wrong = login("wrong password!!").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let tokens = json_of(login("correct horse battery").await.unwrap()).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);

    let me = json_of(
        anonymous
            .get(stack.gateway.url("/api/v1/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["kind"], "user");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["role"], "editor");

    let refreshed = anonymous
        .post(stack.gateway.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed = json_of(refreshed).await;
    // A refresh token works once.
    let replay = anonymous
        .post(stack.gateway.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    let logout = anonymous
        .post(stack.gateway.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": refreshed["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after_logout = anonymous
        .post(stack.gateway.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refreshed["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(after_logout.status(), StatusCode::UNAUTHORIZED);

    // Closed sign-up: registering without credentials is refused.
    let register = anonymous
        .post(stack.gateway.url("/api/v1/auth/register"))
        .json(&json!({"username": "mallory", "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn open_sign_up_creates_a_tenant_of_ones_own() {
    let stack = stack_with(|c| c.open_signup = true).await;
    let response = reqwest::Client::new()
        .post(stack.gateway.url("/api/v1/auth/register"))
        .json(&json!({"username": "bob", "password": "bob's long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_of(response).await;
    assert_eq!(body["user"]["role"], "admin");
    let tenant = body["user"]["tenant_id"].as_str().unwrap();
    assert_ne!(tenant, "00000000-0000-0000-0000-000000000001");
    let access = body["tokens"]["access_token"].as_str().unwrap();
    // The new tenant has a default collection to upload into.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"# Bob\n\nBob keeps bees.".to_vec()).file_name("b.md"),
        )
        .text("wait", "true");
    let response = reqwest::Client::new()
        .post(stack.gateway.url("/api/v1/assets"))
        .bearer_auth(access)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let asset = json_of(response).await;
    assert_eq!(asset["asset"]["status"], "ready");
}

/// A test-only Ed25519 key pair of an "external identity provider" (PKCS#8 DER, base64).
const IDP_PRIVATE_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEIIkBBzl3XadW1tQqBDgJyMQFJHFWE3X6kPLxMGKII1/b";
const IDP_PUBLIC_X: &str = "QxXs6ZKahol_XAdSX65Z24jpdfa7mHqWlpDnQdTPLes";

fn idp_token(claims: &Value) -> String {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(IDP_PRIVATE_PKCS8)
        .unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("idp-1".into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn tokens_of_an_external_identity_provider_are_verified_against_its_jwks() {
    let jwks = axum::Router::new().route(
        "/jwks",
        axum::routing::get(|| async {
            axum::Json(json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "x": IDP_PUBLIC_X, "kid": "idp-1", "alg": "EdDSA"
            }]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, jwks).await });
    let stack = stack_with(|c| {
        c.oidc_jwks_url = Some(jwks_url);
        c.oidc_issuer = "https://idp.example".into();
        c.oidc_audience = "thinkbank".into();
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let good = json!({
        "sub": "carol", "iss": "https://idp.example", "aud": "thinkbank",
        "iat": now, "exp": now + 300,
        "thinkbank_tenant": "00000000-0000-0000-0000-000000000001", "thinkbank_role": "editor"
    });
    let http = reqwest::Client::new();
    let me = http
        .get(stack.gateway.url("/api/v1/auth/me"))
        .bearer_auth(idp_token(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me = json_of(me).await;
    assert_eq!(me["kind"], "external");
    assert_eq!(me["name"], "carol");
    assert_eq!(me["role"], "editor");

    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("someone-else");
    let mut expired = good.clone();
    expired["exp"] = json!(now - 600);
    let mut no_tenant = good.clone();
    no_tenant
        .as_object_mut()
        .unwrap()
        .remove("thinkbank_tenant");
    for claims in [wrong_audience, expired, no_tenant] {
        let response = http
            .get(stack.gateway.url("/api/v1/auth/me"))
            .bearer_auth(idp_token(&claims))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{claims}");
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_every_response_reports_the_budget() {
    let stack = stack_with(|c| c.limits.write_per_min = 2).await;
    let http = stack.gateway.client();
    let response = http
        .get(stack.gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-ratelimit-limit"], "600");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "599");
    assert!(response.headers().contains_key("x-ratelimit-reset"));
    let missing = "/api/v1/assets/00000000-0000-0000-0000-00000000abcd/cancel";
    for _ in 0..2 {
        let response = http.post(stack.gateway.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let limited = http.post(stack.gateway.url(missing)).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        json_of(limited).await["error"]["code"],
        "resource_exhausted"
    );
    // Reads have their own budget.
    let response = http
        .get(stack.gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn edge_headers_cors_and_documented_errors() {
    let stack = stack_with(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let http = stack.gateway.client();
    let response = http
        .get(stack.gateway.url("/api/v1/assets"))
        .header("x-request-id", "my-trace-42")
        .header(header::ORIGIN, "https://app.example")
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert_eq!(headers["x-request-id"], "my-trace-42");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    let foreign = http
        .get(stack.gateway.url("/api/v1/assets"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            stack.gateway.url("/api/v1/search"),
        )
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());

    let unknown = http
        .get(stack.gateway.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(unknown).await["error"]["code"], "not_found");
    let wrong_method = http
        .put(stack.gateway.url("/api/v1/search"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let not_json = http
        .post(stack.gateway.url("/api/v1/search"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body("query")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        json_of(not_json).await["error"]["code"],
        "unsupported_media_type"
    );
}

#[tokio::test]
async fn the_audit_chain_records_security_actions_and_exposes_tampering() {
    let stack = stack_with(|_| {}).await;
    let admin = stack.gateway.client();
    let (_, key_id) = key_with_role(&stack, "reader").await;
    admin
        .delete(stack.gateway.url(&format!("/api/v1/keys/{key_id}")))
        .send()
        .await
        .unwrap();
    let entries = json_of(
        admin
            .get(stack.gateway.url("/api/v1/audit?limit=10"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let actions: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first: revoke, create, then the bootstrap key's creation.
    assert_eq!(actions, ["key.revoke", "key.create", "key.create"]);
    let verify = || async {
        json_of(
            admin
                .get(stack.gateway.url("/api/v1/audit/verify"))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let intact = verify().await;
    assert_eq!(intact["ok"], true);
    assert_eq!(intact["entries_checked"], 3);

    // Normal SQL cannot change history…
    let mut conn = stack.db.connect().await;
    let refused = sqlx::query("UPDATE gateway.audit_log SET actor = 'nobody' WHERE seq = 2")
        .execute(&mut conn)
        .await;
    assert!(refused.is_err());
    // …and a superuser who switches the guard off is caught by the chain.
    sqlx::query("ALTER TABLE gateway.audit_log DISABLE TRIGGER audit_log_append_only")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE gateway.audit_log SET details = '{\"name\":\"innocent\"}' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    let broken = verify().await;
    assert_eq!(broken["ok"], false);
    assert_eq!(broken["first_broken_seq"], 2);
    assert_eq!(broken["entries_checked"], 1);
    assert!(broken["reason"].as_str().unwrap().contains("changed"));
}

#[tokio::test]
async fn a_megabyte_username_writes_a_bounded_audit_row_and_only_operators_verify_the_chain() {
    let stack = stack_with(|_| {}).await;
    let huge = "a".repeat(1_000_000);
    let response = reqwest::Client::new()
        .post(stack.gateway.url("/api/v1/auth/login"))
        .json(&json!({"username": huge, "password": "some long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let mut conn = stack.db.connect().await;
    let (target, largest): (String, i32) = sqlx::query_as(
        "SELECT target, octet_length(actor) + octet_length(action) + octet_length(target) \
                + octet_length(details) \
         FROM gateway.audit_log WHERE action = 'auth.login_failed'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(largest < 1024, "a failed login wrote {largest} bytes");
    assert_eq!(target, "username:(invalid, 1000000 bytes)");

    // Verifying the chain every tenant shares is for operators only.
    let operator = stack.gateway.client();
    let created = json_of(
        operator
            .post(stack.gateway.url("/api/v1/tenants"))
            .json(&json!({"name": "elsewhere"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other_admin = client_with_key(created["admin_key"].as_str().unwrap());
    let collections = json_of(
        operator
            .get(stack.gateway.url("/api/v1/collections"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let default_collection = collections["collections"][0]["id"].clone();
    let scoped = json_of(
        operator
            .post(stack.gateway.url("/api/v1/keys"))
            .json(&json!({"name": "scoped admin", "role": "admin",
                          "collection_ids": [default_collection]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let scoped_admin = client_with_key(scoped["key"].as_str().unwrap());
    for (who, client) in [
        ("another tenant's admin", &other_admin),
        (
            "a collection-scoped admin of the default tenant",
            &scoped_admin,
        ),
    ] {
        let refused = client
            .get(stack.gateway.url("/api/v1/audit/verify"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{who}");
    }
    let verified = operator
        .get(stack.gateway.url("/api/v1/audit/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), StatusCode::OK);
    assert_eq!(json_of(verified).await["ok"], true);
}
