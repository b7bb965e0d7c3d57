//! Test support for thinkbank's integration tests: a fresh PostgreSQL database per test (the
//! cluster comes from `THINKBANK_TEST_DATABASE_URL`, started by `make test`) and the real
//! worker on `127.0.0.1:0`.
#![expect(
    clippy::expect_used,
    reason = "test set-up fails loudly with a message"
)]

pub mod db_proxy;
pub mod fake_embeddings;
mod fake_llm;
pub mod fake_rerank;
mod gateway;
pub mod otlp;
pub mod prometheus;

pub use fake_embeddings::{FakeEmbeddings, fake_vector};
pub use fake_llm::{FAKE_MODEL, FakeLlm, FinishQuirk, RecordedRequest, Script};
pub use gateway::{
    GatewayHandle, SseEvent, SseJson, audit_key_for, bootstrap_key_for, client_with_key, read_sse,
    spawn_gateway, spawn_gateway_with,
};
pub use thinkbank_ai_worker::llm::LlmConfig;
pub use thinkbank_ai_worker::search::Bm25;
pub use thinkbank_ai_worker::search::shadow::{
    ShadowProfile, parse_profile as parse_shadow_profile,
};

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

/// Reads a variable `make test` exports, with a message saying how to get it.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with `make test`, or \
             `eval \"$(python3 deploy/local/thinkbank_dev.py env --purpose test)\"` first"
        )
    })
}

/// The local embedding model directory.
pub fn model_dir() -> PathBuf {
    PathBuf::from(required_env("THINKBANK_EMBED_MODEL_DIR"))
}

/// A database created for one test and dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = required_env("THINKBANK_TEST_DATABASE_URL");
        let name = format!("tb_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("cannot connect to the test PostgreSQL cluster");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("cannot create the test database");
        let url = with_database(&admin_url, &name);
        Self {
            url,
            admin_url,
            name,
        }
    }

    /// A connection to this test's database, for assertions on what was stored.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("cannot connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a separate thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Replaces the database name in a PostgreSQL URL, keeping host/socket parameters.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // postgresql://user:pass@host:port/dbname — the path starts at the first '/' after '//'.
    let after_scheme = base.find("//").map_or(0, |i| i + 2);
    let path_start = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A worker running in this process on `127.0.0.1:<random>`.
#[derive(Debug)]
pub struct WorkerHandle {
    pub addr: SocketAddr,
    /// The admin HTTP port (`GET /metrics`, `GET /healthz`).
    pub admin_addr: SocketAddr,
    pub objects_dir: PathBuf,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl WorkerHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Prometheus scrape URL of the admin port.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.admin_addr)
    }

    pub async fn client(
        &self,
    ) -> thinkbank_proto::v1::ai_worker_client::AiWorkerClient<tonic::transport::Channel> {
        thinkbank_proto::v1::ai_worker_client::AiWorkerClient::connect(self.url())
            .await
            .expect("cannot connect to the worker")
            .max_decoding_message_size(256 * 1024 * 1024)
            .max_encoding_message_size(256 * 1024 * 1024)
    }

    /// Stops the worker and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A new, unused directory for a test worker's object store.
pub fn fresh_objects_dir() -> PathBuf {
    std::env::temp_dir().join(format!("tb-objects-{}", uuid::Uuid::new_v4()))
}

/// Worker configuration for tests: everything local, small timeouts.
pub fn worker_config(
    db: &TestDatabase,
    objects_dir: &std::path::Path,
) -> thinkbank_ai_worker::Config {
    thinkbank_ai_worker::Config {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        admin_listen: "127.0.0.1:0".parse().expect("valid address"),
        max_concurrent_calls: 256,
        max_watches: 4096,
        watch_max_duration: Duration::from_secs(3600),
        watch_fallback_poll: Duration::from_secs(5),
        internal_token: None,
        // Tests talk to the worker directly on loopback; those that check the token set one.
        insecure_no_internal_token: true,
        database_url: db.url.clone(),
        database_max_connections: 8,
        embed_model_dir: model_dir(),
        object_store_dir: objects_dir.to_path_buf(),
        ingest_concurrency: 2,
        ingest_max_attempts: 3,
        ingest_lease: Duration::from_secs(60),
        max_asset_bytes: 10 * 1024 * 1024,
        chunk_tokens: 200,
        chunk_overlap_tokens: 32,
        migration_batch: 64,
        embed: thinkbank_ai_worker::embed::registry::EmbedConfig::default(),
        parsing: thinkbank_ai_worker::ingest::parse::ParseSettings::default(),
        quotas: thinkbank_ai_worker::assets::quota::QuotaSettings::default(),
        llm: thinkbank_ai_worker::llm::LlmConfig::default(),
        rerank: thinkbank_ai_worker::search::rerank::RerankArgs::default(),
        bm25: thinkbank_ai_worker::search::Bm25::default(),
        answers: thinkbank_ai_worker::chat::AnswerConfig::default(),
        search_shadow: None,
    }
}

/// LLM settings pointing at `fake`, with test-sized backoff and breaker.
pub fn llm_config(fake: &FakeLlm) -> thinkbank_ai_worker::llm::LlmConfig {
    thinkbank_ai_worker::llm::LlmConfig {
        llm_base_url: Some(fake.base_url()),
        llm_api_key: "test-key".into(),
        llm_model: FAKE_MODEL.into(),
        llm_first_token_timeout: Duration::from_secs(20),
        llm_idle_timeout: Duration::from_secs(20),
        llm_retry_backoff: Duration::from_millis(20),
        ..thinkbank_ai_worker::llm::LlmConfig::default()
    }
}

/// Starts a worker whose answers come from `llm` (see [`llm_config`]).
pub async fn spawn_worker_with_llm(
    db: &TestDatabase,
    llm: thinkbank_ai_worker::llm::LlmConfig,
) -> WorkerHandle {
    let objects_dir = fresh_objects_dir();
    let mut config = worker_config(db, &objects_dir);
    config.llm = llm;
    spawn_worker_with(config).await
}

/// Starts a worker on port 0 against `db` and waits until its health check says SERVING.
pub async fn spawn_worker(db: &TestDatabase) -> WorkerHandle {
    let objects_dir = fresh_objects_dir();
    spawn_worker_with(worker_config(db, &objects_dir)).await
}

pub async fn spawn_worker_with(config: thinkbank_ai_worker::Config) -> WorkerHandle {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("cannot bind the worker port");
    let addr = listener.local_addr().expect("bound address");
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .expect("cannot bind the worker admin port");
    let admin_addr = admin.local_addr().expect("bound admin address");
    let objects_dir = config.object_store_dir.clone();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        if let Err(error) =
            thinkbank_ai_worker::run_with_admin(config, listener, admin, token).await
        {
            panic!("worker failed: {error:#}");
        }
    });
    let handle = WorkerHandle {
        addr,
        admin_addr,
        objects_dir,
        shutdown,
        task: Some(task),
    };
    wait_until_serving(addr).await;
    handle
}

/// Sends `request` with `wait` set and returns the asset, which must have become READY.
pub async fn ingest_ready(
    client: &mut thinkbank_proto::v1::ai_worker_client::AiWorkerClient<tonic::transport::Channel>,
    request: thinkbank_proto::v1::ProcessAssetRequest,
) -> thinkbank_proto::v1::Asset {
    let name = request.filename.clone();
    let asset = client
        .process_asset(thinkbank_proto::v1::ProcessAssetRequest {
            wait: true,
            ..request
        })
        .await
        .unwrap_or_else(|status| panic!("uploading {name}: {status}"))
        .into_inner()
        .asset
        .unwrap_or_else(|| panic!("uploading {name}: no asset in the response"));
    assert_eq!(
        asset.status,
        thinkbank_proto::v1::AssetStatus::Ready as i32,
        "{name}: {}",
        asset.error
    );
    asset
}

/// Names the tenant a worker call acts for, as the gateway does (`metadata::TENANT`).
pub fn set_tenant<T>(request: &mut tonic::Request<T>, tenant: uuid::Uuid) {
    let value = tenant
        .to_string()
        .parse()
        .expect("a UUID is valid ASCII metadata");
    request
        .metadata_mut()
        .insert(thinkbank_proto::metadata::TENANT, value);
}

/// A worker request acting for `tenant`.
pub fn as_tenant<T>(tenant: uuid::Uuid, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    set_tenant(&mut request, tenant);
    request
}

/// Polls grpc.health.v1 until the AiWorker service reports SERVING (60 s at most).
pub async fn wait_until_serving(addr: SocketAddr) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("valid endpoint");
        if let Ok(channel) = endpoint.connect().await {
            let mut client = HealthClient::new(channel);
            let request = HealthCheckRequest {
                service: "thinkbank.v1.AiWorker".into(),
            };
            if let Ok(response) = client.check(request).await
                && response.get_ref().status == ServingStatus::Serving as i32
            {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker did not become SERVING within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced_and_socket_parameters_kept() {
        assert_eq!(
            with_database("postgresql://postgres:@/postgres?host=/tmp/pg", "t1"),
            "postgresql://postgres:@/t1?host=/tmp/pg"
        );
        assert_eq!(
            with_database("postgres://u:p@localhost:5432/app", "t2"),
            "postgres://u:p@localhost:5432/t2"
        );
        assert_eq!(with_database("postgres://u@h", "t3"), "postgres://u@h/t3");
    }
}
