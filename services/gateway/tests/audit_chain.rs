//! The audit chain is keyed with `THINKBANK_AUDIT_KEY`, held outside the database: whoever
//! owns only the database can edit entries and recompute every SHA-256 link, and
//! `GET /api/v1/audit/verify` still names the edit. Issue 22, item 11; real gateway, real
//! PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use thinkbank_testkit::{
    GatewayHandle, TestDatabase, spawn_gateway_with, spawn_worker, with_database,
};
use uuid::Uuid;

type Row = (i64, i64, Uuid, String, String, String, String);

/// Rewrites the chain from `from_seq` on as the database owner would: edit, then recompute
/// every later link with plain SHA-256 (all one can do without the key), marking the rewritten
/// entries unkeyed or keeping their flag.
async fn rewrite(conn: &mut PgConnection, from_seq: i64, edit: &str, mark_unkeyed: bool) {
    sqlx::query("ALTER TABLE gateway.audit_log DISABLE TRIGGER audit_log_append_only")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(edit).execute(&mut *conn).await.unwrap();
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, at_micros, tenant_id, actor, action, target, details \
         FROM gateway.audit_log ORDER BY seq",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut prev: Vec<u8> = vec![0; 32];
    for (seq, at, tenant, actor, action, target, details) in rows {
        if seq >= from_seq {
            let canonical = json!([seq, at, tenant, actor, action, target, details]).to_string();
            let mut hasher = Sha256::new();
            hasher.update(&prev);
            hasher.update(canonical.as_bytes());
            let hash = hasher.finalize().to_vec();
            sqlx::query(
                "UPDATE gateway.audit_log SET prev_hash = $2, entry_hash = $3, \
                     keyed = keyed AND NOT $4 WHERE seq = $1",
            )
            .bind(seq)
            .bind(&prev)
            .bind(&hash)
            .bind(mark_unkeyed)
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        prev = sqlx::query_scalar("SELECT entry_hash FROM gateway.audit_log WHERE seq = $1")
            .bind(seq)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::query("ALTER TABLE gateway.audit_log ENABLE TRIGGER audit_log_append_only")
        .execute(&mut *conn)
        .await
        .unwrap();
}

async fn verify(gateway: &GatewayHandle) -> Value {
    let response = gateway
        .client()
        .get(gateway.url("/api/v1/audit/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn make_key(gateway: &GatewayHandle, name: &str) {
    let response = gateway
        .client()
        .post(gateway.url("/api/v1/keys"))
        .json(&json!({"name": name, "role": "reader"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_edit_made_with_database_access_only_is_detected_even_with_every_hash_recomputed() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    let gateway = spawn_gateway_with(config).await;
    for name in ["one", "two", "three"] {
        make_key(&gateway, name).await;
    }
    let intact = verify(&gateway).await;
    assert_eq!(intact["ok"], true, "{intact}");
    assert_eq!(intact["entries_checked"], 4);
    assert_eq!(intact["keyed_from_seq"], 1);

    // Edit entry 2 and re-link everything after it, keeping the entries marked keyed.
    let mut conn = db.connect().await;
    rewrite(
        &mut conn,
        2,
        "UPDATE gateway.audit_log SET details = '{\"name\":\"innocent\"}' WHERE seq = 2",
        false,
    )
    .await;
    let broken = verify(&gateway).await;
    assert_eq!(broken["ok"], false, "{broken}");
    assert_eq!(broken["first_broken_seq"], 2);
    assert!(broken["reason"].as_str().unwrap().contains("changed"));

    // Or downgrade the whole chain to unkeyed links: a chain with no keyed entry is refused.
    rewrite(&mut conn, 1, "SELECT 1", true).await;
    let downgraded = verify(&gateway).await;
    assert_eq!(downgraded["ok"], false, "{downgraded}");
    assert!(
        downgraded["reason"].as_str().unwrap().contains("no entry"),
        "{downgraded}"
    );
}

#[tokio::test]
async fn entries_from_before_the_key_are_sealed_by_the_first_keyed_entry() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    // A gateway of the old kind (no key) writes two entries: the bootstrap key and one more.
    let mut unkeyed = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    unkeyed.insecure_no_audit_key = true;
    let old = spawn_gateway_with(unkeyed).await;
    make_key(&old, "legacy").await;
    let legacy = verify(&old).await;
    assert_eq!(legacy["ok"], true, "{legacy}");
    assert_eq!(legacy["keyed_from_seq"], Value::Null);
    old.stop().await;

    // The keyed gateway seals them at start: its first entry is keyed and links to them.
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let mut sealed = verify(&gateway).await;
    for _ in 0..50 {
        if sealed["keyed_from_seq"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sealed = verify(&gateway).await;
    }
    assert_eq!(sealed["ok"], true, "{sealed}");
    assert_eq!(sealed["keyed_from_seq"], 3, "{sealed}");
    let mut conn = db.connect().await;
    let action: String = sqlx::query_scalar("SELECT action FROM gateway.audit_log WHERE seq = 3")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(action, "audit.keyed");

    // Rewriting an old unkeyed entry (re-linking the unkeyed part) breaks the keyed link.
    rewrite(
        &mut conn,
        2,
        "UPDATE gateway.audit_log SET target = 'key:nothing-happened' WHERE seq = 2",
        false,
    )
    .await;
    let broken = verify(&gateway).await;
    assert_eq!(broken["ok"], false, "{broken}");
    assert_eq!(broken["first_broken_seq"], 3, "{broken}");
}

#[tokio::test]
async fn without_an_audit_key_or_the_insecure_flag_the_gateway_refuses_to_start() {
    let url = with_database(
        &thinkbank_testkit::required_env("THINKBANK_TEST_DATABASE_URL"),
        "x",
    );
    let mut config = thinkbank_gateway::Config::for_worker("http://127.0.0.1:1", url);
    config.bootstrap_admin_key = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        thinkbank_gateway::run(
            config.clone(),
            listener,
            tokio_util::sync::CancellationToken::new(),
        ),
    )
    .await
    .expect("the gateway served without an audit key");
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(error.contains("THINKBANK_AUDIT_KEY"), "{error}");
    assert!(error.contains("THINKBANK_INSECURE_NO_AUDIT_KEY"), "{error}");

    // A key too short to be a secret is refused as well.
    config.audit_key = Some("short".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome =
        thinkbank_gateway::run(config, listener, tokio_util::sync::CancellationToken::new()).await;
    assert!(format!("{:#}", outcome.unwrap_err()).contains("at least 32 bytes"));
}
