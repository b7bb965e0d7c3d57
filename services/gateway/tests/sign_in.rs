//! Signing in cannot be used to enumerate or brute-force accounts, nor the public readiness
//! page to make the platform work: usernames are per tenant (issue 22, item 5); sign-in
//! attempts are limited per forwarded client behind trusted proxies and per account name
//! (also against concurrent bursts);
//! invalid credentials are limited per address before any lookup; anonymous `/readyz` shares
//! one cached probe and shows no details (item 10). Real gateway, worker and PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use thinkbank_testkit::{
    GatewayHandle, TestDatabase, WorkerHandle, client_with_key, prometheus::scrape,
    spawn_gateway_with, spawn_worker,
};

async fn stack(
    configure: impl FnOnce(&mut thinkbank_gateway::Config),
) -> (TestDatabase, WorkerHandle, GatewayHandle) {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    configure(&mut config);
    let gateway = spawn_gateway_with(config).await;
    (db, worker, gateway)
}

async fn login(gateway: &GatewayHandle, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gateway.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn login_from(gateway: &GatewayHandle, forwarded_for: &str, body: Value) -> StatusCode {
    reqwest::Client::new()
        .post(gateway.url("/api/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

/// The tenant the access token of a successful sign-in acts for.
async fn signed_in_tenant(gateway: &GatewayHandle, response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let me: Value = reqwest::Client::new()
        .get(gateway.url("/api/v1/auth/me"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["tenant_id"].as_str().unwrap().to_owned()
}

const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";

#[tokio::test]
async fn usernames_are_per_tenant_so_registration_reveals_nothing_of_other_tenants() {
    let (db, _worker, gateway) = stack(|c| c.open_signup = true).await;
    let operator = gateway.client();
    let created = operator
        .post(gateway.url("/api/v1/users"))
        .json(&json!({"username": "alice", "password": "the operator's alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Anyone may register "alice" again, twice: each gets a tenant of its own.
    let mut registered = Vec::new();
    for password in ["first stranger alice", "second stranger alice"] {
        let response = reqwest::Client::new()
            .post(gateway.url("/api/v1/auth/register"))
            .json(&json!({"username": "alice", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{password}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["tenant"]["id"], body["user"]["tenant_id"]);
        registered.push(body);
    }
    let first_name = registered[0]["tenant"]["name"].as_str().unwrap();
    let second_id = registered[1]["tenant"]["id"].as_str().unwrap();
    assert_ne!(
        first_name,
        registered[1]["tenant"]["name"].as_str().unwrap()
    );

    // Without a tenant, the name is the default tenant's account (as before the change).
    let unqualified = login(
        &gateway,
        json!({"username": "alice", "password": "the operator's alice"}),
    )
    .await;
    assert_eq!(
        signed_in_tenant(&gateway, unqualified).await,
        DEFAULT_TENANT
    );
    // Each stranger signs in by naming the tenant, by name or id.
    let by_name = login(
        &gateway,
        json!({"username": "alice", "password": "first stranger alice", "tenant": first_name}),
    )
    .await;
    assert_eq!(
        signed_in_tenant(&gateway, by_name).await,
        registered[0]["user"]["tenant_id"].as_str().unwrap()
    );
    let by_id = login(
        &gateway,
        json!({"username": "alice", "password": "second stranger alice", "tenant": second_id}),
    )
    .await;
    assert_eq!(signed_in_tenant(&gateway, by_id).await, second_id);
    // A password never opens another tenant's account of the same name.
    for body in [
        json!({"username": "alice", "password": "first stranger alice"}),
        json!({"username": "alice", "password": "first stranger alice", "tenant": second_id}),
        json!({"username": "alice", "password": "the operator's alice", "tenant": first_name}),
        json!({"username": "alice", "password": "first stranger alice", "tenant": "no-such"}),
    ] {
        let refused = login(&gateway, body.clone()).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{body}");
    }

    // Within one tenant a name is still taken once; another tenant's admin learns nothing.
    let twice = operator
        .post(gateway.url("/api/v1/users"))
        .json(&json!({"username": "alice", "password": "yet another alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    let stranger_admin = reqwest::Client::new();
    let access = registered[0]["tokens"]["access_token"].as_str().unwrap();
    let added = stranger_admin
        .post(gateway.url("/api/v1/users"))
        .bearer_auth(access)
        .json(&json!({"username": "bob", "password": "bob in a stranger's tenant"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);

    // An account made before usernames were per tenant (the migration marks every existing
    // one) still signs in without naming its tenant.
    let mut conn = db.connect().await;
    sqlx::query("UPDATE gateway.users SET legacy_global_name = true WHERE username = 'bob'")
        .execute(&mut conn)
        .await
        .unwrap();
    let legacy = login(
        &gateway,
        json!({"username": "bob", "password": "bob in a stranger's tenant"}),
    )
    .await;
    assert_eq!(
        signed_in_tenant(&gateway, legacy).await,
        registered[0]["user"]["tenant_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn failed_sign_ins_lock_an_account_name_whether_or_not_it_exists() {
    let (_db, _worker, gateway) = stack(|c| {
        c.login.login_max_failures = 3;
        c.login.login_lockout_secs = 60;
        c.limits.auth_per_min = 1000;
    })
    .await;
    for name in ["erin", "frank"] {
        let created = gateway
            .client()
            .post(gateway.url("/api/v1/users"))
            .json(&json!({"username": name, "password": "a good long password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let mut refusals = Vec::new();
    for name in ["erin", "nobody-has-this-name"] {
        for _ in 0..3 {
            let wrong = login(
                &gateway,
                json!({"username": name, "password": "a wrong guess!!"}),
            )
            .await;
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{name}");
        }
        // Locked: even the right password is refused, before it is checked.
        let locked = login(
            &gateway,
            json!({"username": name, "password": "a good long password"}),
        )
        .await;
        assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        let retry_after: u64 = locked.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body: Value = locked.json().await.unwrap();
        assert_eq!(body["error"]["code"], "resource_exhausted");
        refusals.push(body["error"]["message"].as_str().unwrap().to_owned());
    }
    // An existing and an unknown name are refused alike.
    assert_eq!(
        refusals[0].replace(char::is_numeric, ""),
        refusals[1].replace(char::is_numeric, "")
    );
    // A burst of concurrent guesses cannot outrun the lock: attempts still being checked
    // count, so at most the allowed failures are ever tried.
    let burst = (0..10).map(|_| {
        login(
            &gateway,
            json!({"username": "burst-target", "password": "a wrong guess!!"}),
        )
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(burst)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();
    let tried = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!((1..=3).contains(&tried), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The lock is the name's alone.
    let other = login(
        &gateway,
        json!({"username": "frank", "password": "a good long password"}),
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn behind_a_trusted_proxy_sign_in_attempts_count_per_forwarded_client() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway_with = |trusted: &str| {
        let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
        config.limits.auth_per_min = 3;
        config.trusted_proxies = trusted.parse().unwrap();
        spawn_gateway_with(config)
    };
    let attempt = |n: usize| json!({"username": format!("user{n}"), "password": "a wrong guess!!"});
    let proxied = gateway_with("127.0.0.0/8").await;
    for n in 0..3 {
        assert_eq!(
            login_from(&proxied, "198.51.100.1", attempt(n)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&proxied, "198.51.100.1", attempt(3)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A client prepending an address of its choice is still the address the proxy saw.
    assert_eq!(
        login_from(&proxied, "203.0.113.77, 198.51.100.1", attempt(4)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy has its own budget.
    assert_eq!(
        login_from(&proxied, "198.51.100.2", attempt(5)).await,
        StatusCode::UNAUTHORIZED
    );

    // A gateway that trusts no proxy ignores the header: one peer, one budget.
    let direct = gateway_with("").await;
    for n in 0..3 {
        assert_eq!(
            login_from(&direct, &format!("198.51.100.{n}"), attempt(n)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&direct, "198.51.100.99", attempt(9)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn invalid_credentials_are_limited_per_address_before_any_lookup() {
    let (_db, _worker, gateway) = stack(|c| {
        c.limits.invalid_credentials_per_min = 5;
        c.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let from = |address: &str, key: &str| {
        client_with_key(key)
            .get(gateway.url("/api/v1/assets"))
            .header("x-forwarded-for", address)
            .send()
    };
    let misses = || async {
        scrape(&gateway.url("/metrics"))
            .await
            .sum("thinkbank_api_key_cache_events_total", &[("event", "miss")])
    };
    let before = misses().await;
    // A malformed key is refused without a lookup.
    let malformed = from("198.51.100.1", "tb_garbage").await.unwrap();
    assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(misses().await, before);
    for n in 0..4 {
        let unknown = format!("tb_unknownkey{n:02}_abcdefghijklmnopqrstuvwxyz012345");
        let refused = from("198.51.100.1", &unknown).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let looked_up = misses().await;
    assert_eq!(looked_up, before + 4.0);
    // The budget is spent: further keys from that address, even the right one, get 429
    // without reaching the database.
    for key in [
        "tb_unknownkey99_abcdefghijklmnopqrstuvwxyz012345",
        gateway.api_key.as_str(),
    ] {
        let limited = from("198.51.100.1", key).await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.headers().contains_key(header::RETRY_AFTER));
    }
    assert_eq!(misses().await, looked_up);
    // Other clients are unaffected.
    let fine = from("198.51.100.2", &gateway.api_key).await.unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
}

#[tokio::test]
async fn anonymous_readiness_shares_a_cached_probe_and_shows_no_details() {
    let (_db, worker, gateway) = stack(|c| c.ready_cache_secs = 30).await;
    let probes = || async {
        scrape(&worker.metrics_url()).await.sum(
            "thinkbank_grpc_server_requests_total",
            &[("method", "/thinkbank.v1.AiWorker/CheckDependencies")],
        )
    };
    let anonymous = reqwest::Client::new();
    let flood = (0..20).map(|_| anonymous.get(gateway.url("/readyz")).send());
    for response in futures::future::join_all(flood).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ready");
        assert!(body.get("llm").is_none(), "{body}");
        for (name, check) in body["checks"].as_object().unwrap() {
            assert_eq!(
                check.as_object().unwrap().keys().collect::<Vec<_>>(),
                ["status"],
                "{name}: {check}"
            );
        }
    }
    assert_eq!(probes().await, 1.0, "twenty anonymous calls, one probe");

    // Operators see the details, from a fresh probe.
    let detailed: Value = gateway
        .client()
        .get(gateway.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(detailed["checks"]["object_store"]["latency_ms"].is_number());
    assert!(detailed["llm"]["mode"].is_string());
    assert_eq!(probes().await, 2.0);

    // An ordinary key is no operator: it gets the status only.
    let reader: Value = gateway
        .client()
        .post(gateway.url("/api/v1/keys"))
        .json(&json!({"name": "reader", "role": "reader"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Value = client_with_key(reader["key"].as_str().unwrap())
        .get(gateway.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen.get("llm").is_none(), "{seen}");
    assert!(
        seen["checks"]["worker"].get("latency_ms").is_none(),
        "{seen}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(probes().await, 2.0);
}
