//! Gateways cache authenticated API keys, and revocation still takes effect at once on every
//! replica: through the API, through an operator's SQL, and after the connection that listens
//! for changes was cut. Two real gateways share one real database.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgConnection;
use thinkbank_testkit::{
    GatewayHandle, TestDatabase, client_with_key, prometheus::scrape, spawn_gateway_with,
    spawn_worker,
};

/// How long a change may take to reach another gateway (a NOTIFY is delivered in
/// milliseconds; this is generous for a loaded CI machine).
const PROPAGATION: Duration = Duration::from_secs(10);

const REVOKE: &str = "UPDATE gateway.api_keys SET revoked_at = now() WHERE id = $1::uuid";
const DELETE: &str = "DELETE FROM gateway.api_keys WHERE id = $1::uuid";

/// Runs `statement` for the key `id`, as an operator would.
async fn on_key(conn: &mut PgConnection, statement: &str, id: &str) {
    sqlx::query(statement).bind(id).execute(conn).await.unwrap();
}

async fn gateway(db: &TestDatabase, worker_url: String) -> GatewayHandle {
    spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker_url,
        db.url.clone(),
    ))
    .await
}

/// Waits until `n` connections to this test's database LISTEN for API key changes (other
/// tests share the cluster).
async fn listeners(conn: &mut PgConnection, n: i64) {
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%thinkbank_api_keys%'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if listening == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{listening} listeners, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(key: &str, gateway: &GatewayHandle) -> StatusCode {
    client_with_key(key)
        .get(gateway.url("/api/v1/assets"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls until `key` is refused by `gateway`; fails after `PROPAGATION`.
async fn refused_soon(key: &str, gateway: &GatewayHandle) {
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    while status(key, gateway).await != StatusCode::UNAUTHORIZED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key still works after {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn hits(gateway: &GatewayHandle) -> f64 {
    scrape(&gateway.url("/metrics"))
        .await
        .sum("thinkbank_api_key_cache_events_total", &[("event", "hit")])
}

async fn new_key(gateway: &GatewayHandle, name: &str) -> (String, String) {
    let response = gateway
        .client()
        .post(gateway.url("/api/v1/keys"))
        .json(&json!({"name": name, "role": "reader"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

/// Uses `key` on `gateway` until a request is answered from the cache.
async fn cached(key: &str, gateway: &GatewayHandle) {
    let before = hits(gateway).await;
    for _ in 0..3 {
        assert_eq!(status(key, gateway).await, StatusCode::OK);
    }
    assert!(
        hits(gateway).await >= before + 2.0,
        "repeated use of a key is answered from the cache"
    );
}

#[tokio::test]
async fn a_cached_key_stops_working_everywhere_when_revoked_by_api_sql_or_after_a_lost_listener() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let a = gateway(&db, worker.url()).await;
    let b = gateway(&db, worker.url()).await;
    let mut conn = db.connect().await;
    listeners(&mut conn, 2).await;

    // Through the API of one replica: that one refuses at once, the other within moments.
    let (key, id) = new_key(&a, "revoked through the API").await;
    cached(&key, &a).await;
    cached(&key, &b).await;
    let response = a
        .client()
        .delete(a.url(&format!("/api/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(&key, &a).await, StatusCode::UNAUTHORIZED);
    refused_soon(&key, &b).await;

    // By an operator's SQL, which no gateway sees coming; or deleted outright.
    for (name, statement) in [("revoked in SQL", REVOKE), ("deleted", DELETE)] {
        let (key, id) = new_key(&a, name).await;
        cached(&key, &b).await;
        on_key(&mut conn, statement, &id).await;
        refused_soon(&key, &b).await;
    }

    // The listening connections are cut: keys keep working (read from the database), the
    // gateways listen again, and a revocation after that is heard.
    let (key, id) = new_key(&a, "outlives the listener").await;
    cached(&key, &b).await;
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%thinkbank_api_keys%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(cut, [true, true]);
    assert_eq!(status(&key, &b).await, StatusCode::OK);
    listeners(&mut conn, 2).await;
    cached(&key, &b).await;
    on_key(&mut conn, REVOKE, &id).await;
    refused_soon(&key, &b).await;

    // A key that is only used (last_used_at changes) stays cached.
    let (key, _) = new_key(&a, "just used").await;
    cached(&key, &b).await;
    sqlx::query("UPDATE gateway.api_keys SET last_used_at = now() - interval '1 day'")
        .execute(&mut conn)
        .await
        .unwrap();
    cached(&key, &b).await;
}
