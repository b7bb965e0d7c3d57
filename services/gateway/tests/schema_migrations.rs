//! Each service applies its own migrations folder to the shared database: on a fresh database
//! in either start-up order, and on a database migrated the old way (one migrator over both
//! folders' files) where the new code applies only the new files and moves the gateway's
//! foreign keys to its own `gateway.tenants`.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::{path::Path, time::Duration};

use serde_json::Value;
use sqlx::{PgPool, Row as _};
use thinkbank_gateway::state::schema;
use thinkbank_testkit::{TestDatabase, spawn_gateway, spawn_worker};

/// The first migration of this split; the old build had every file before it.
const SPLIT_VERSION: i64 = 20261208003000;

fn migrations(folder: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(folder)
}

async fn applied_versions(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Every version of both folders, in order.
fn all_versions() -> Vec<i64> {
    let mut versions: Vec<i64> = ["worker", "gateway"]
        .iter()
        .flat_map(|folder| std::fs::read_dir(migrations(folder)).unwrap())
        .map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.split('_').next().unwrap().parse().unwrap()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// Where the foreign key of `gateway.<table>.tenant_id` points.
async fn tenant_fk_target(pool: &PgPool, table: &str) -> String {
    sqlx::query_scalar(
        "SELECT confrelid::regclass::text FROM pg_constraint \
         WHERE conrelid = $1::regclass AND contype = 'f' AND conname = $2",
    )
    .bind(format!("gateway.{table}"))
    .bind(format!("{table}_tenant_id_fkey"))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn tenant_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM gateway.tenants ORDER BY name")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_gateway_started_before_the_worker_waits_for_its_schema_then_serves() {
    let db = TestDatabase::create().await;
    // Nothing listens on the worker's port yet: the gateway only needs the worker's tables.
    let gateway = spawn_gateway("http://127.0.0.1:9", &db.url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    let gateway_tables: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('gateway.api_keys')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        gateway_tables, None,
        "the gateway migrated before the worker"
    );

    let worker = spawn_worker(&db).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let tenants: Value = loop {
        let response = gateway
            .client()
            .get(gateway.url("/api/v1/tenants"))
            .send()
            .await
            .unwrap();
        if response.status().is_success() {
            break response.json().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(tenants["tenants"][0]["name"], "default", "{tenants}");
    assert_eq!(applied_versions(&pool).await, all_versions());
    assert_eq!(tenant_fk_target(&pool, "users").await, "gateway.tenants");
    gateway.stop().await;
    worker.stop().await;
}

#[tokio::test]
async fn a_gateway_started_after_the_worker_migrates_at_once_and_again_changes_nothing() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    schema::migrate(&pool, Duration::ZERO).await.unwrap();
    assert_eq!(applied_versions(&pool).await, all_versions());
    assert_eq!(tenant_names(&pool).await, ["default"]);
    assert_eq!(tenant_fk_target(&pool, "api_keys").await, "gateway.tenants");
    schema::migrate(&pool, Duration::ZERO).await.unwrap();
    assert_eq!(applied_versions(&pool).await, all_versions());
    worker.stop().await;
}

#[tokio::test]
async fn without_the_worker_the_gateway_gives_up_naming_what_it_waited_for() {
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    let error = schema::migrate(&pool, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(error, schema::SchemaError::WorkerSchemaMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("worker.tenants"), "{error}");
    assert!(applied_versions_or_none(&pool).await.is_empty());
}

async fn applied_versions_or_none(pool: &PgPool) -> Vec<i64> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap();
    if exists {
        applied_versions(pool).await
    } else {
        Vec::new()
    }
}

/// Migrates `pool` as the build before the split did: one migrator over every file of both
/// folders older than the split, copied byte for byte (so the checksums are the old ones).
async fn migrate_the_old_way(pool: &PgPool) {
    let old = tempfile::tempdir().unwrap();
    for folder in ["worker", "gateway"] {
        for entry in std::fs::read_dir(migrations(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let version: i64 = name.split('_').next().unwrap().parse().unwrap();
            if version < SPLIT_VERSION {
                std::fs::copy(&path, old.path().join(name)).unwrap();
            }
        }
    }
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_migrated_the_old_way_gets_only_the_new_files_and_keeps_its_tenants() {
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    migrate_the_old_way(&pool).await;
    let before = applied_versions(&pool).await;
    // A tenant and a user made by the old gateway, straight into worker.tenants.
    let tenant = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO worker.tenants (id, name) VALUES ($1, 'acme')")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO gateway.users (id, tenant_id, username, password_hash, role) \
         VALUES ($1, $2, 'ada', 'x', 'admin')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant)
    .execute(&pool)
    .await
    .unwrap();

    // Both new migrators accept the other's versions and the old checksums.
    let worker = spawn_worker(&db).await;
    schema::migrate(&pool, Duration::ZERO).await.unwrap();
    let after = applied_versions(&pool).await;
    let new: Vec<i64> = after
        .iter()
        .copied()
        .filter(|v| !before.contains(v))
        .collect();
    assert!(new.iter().all(|v| *v >= SPLIT_VERSION), "{new:?}");
    assert_eq!(new.len(), all_versions().len() - before.len());
    assert_eq!(after, all_versions());

    assert_eq!(tenant_names(&pool).await, ["acme", "default"]);
    let row = sqlx::query(
        "SELECT t.name FROM gateway.users u JOIN gateway.tenants t ON t.id = u.tenant_id \
         WHERE u.username = 'ada'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("name"), "acme");
    assert_eq!(tenant_fk_target(&pool, "users").await, "gateway.tenants");
    assert_eq!(tenant_fk_target(&pool, "api_keys").await, "gateway.tenants");
    worker.stop().await;
}
