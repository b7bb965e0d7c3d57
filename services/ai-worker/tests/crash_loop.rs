//! A document that kills the worker every time it is read must not keep killing it: each
//! crashed attempt counts, and once the attempts are used up the document fails with a reason
//! instead of being claimed again after every restart.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Child, time::Duration};

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, model_dir, wait_until_serving};

const MAX_ATTEMPTS: u32 = 2;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary, whose `pdftotext` is `killer`: reading a PDF kills the worker with
/// SIGKILL, as a parser crash or the OOM killer would.
fn start_worker(db: &TestDatabase, objects: &Path, killer: &Path, port: u16) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_thinkbank-ai-worker"))
        .env("THINKBANK_DATABASE_URL", &db.url)
        .env("THINKBANK_WORKER_LISTEN", format!("127.0.0.1:{port}"))
        .env("THINKBANK_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("THINKBANK_EMBED_MODEL_DIR", model_dir())
        .env("THINKBANK_OBJECT_STORE_DIR", objects)
        .env("THINKBANK_PDFTOTEXT", killer)
        .env("THINKBANK_INGEST_LEASE", "2s")
        .env("THINKBANK_INGEST_MAX_ATTEMPTS", MAX_ATTEMPTS.to_string())
        .env("THINKBANK_INSECURE_NO_INTERNAL_TOKEN", "true")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_document_that_kills_the_worker_fails_after_its_attempts_instead_of_looping() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let tools = tempfile::tempdir().unwrap();
    let killer = tools.path().join("pdftotext");
    // The tool's parent is the worker (the limits wrapper execs into the tool).
    std::fs::write(&killer, "#!/bin/sh\nkill -9 $PPID\nsleep 5\n").unwrap();
    std::fs::set_permissions(&killer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut worker = start_worker(&db, &objects, &killer, port);
    wait_until_serving(addr).await;

    let pdf = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/formats/shared-mime-info-spec.pdf"),
    )
    .unwrap();
    let mut client = pb::ai_worker_client::AiWorkerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let asset = client
        .process_asset(pb::ProcessAssetRequest {
            filename: "crasher.pdf".into(),
            content: pdf.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    let id: uuid::Uuid = asset.id.parse().unwrap();

    // Restart the worker whenever it dies, as a supervisor would, until the asset settles.
    let mut conn = db.connect().await;
    let mut crashes = 0u32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (status, error) = loop {
        let row: (String, Option<String>) =
            sqlx::query_as("SELECT status, error FROM worker.assets WHERE id = $1")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if row.0 == "failed" || row.0 == "ready" {
            break row;
        }
        if worker.try_wait().unwrap().is_some() {
            crashes += 1;
            worker = start_worker(&db, &objects, &killer, port);
            wait_until_serving(addr).await;
        }
        if tokio::time::Instant::now() > deadline {
            worker.kill().unwrap();
            worker.wait().unwrap();
            panic!("crash loop: still {row:?} after {crashes} crashes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let alive = worker.try_wait().unwrap().is_none();
    worker.kill().unwrap();
    worker.wait().unwrap();

    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    assert!(
        error.contains(&format!("gave up after {MAX_ATTEMPTS} attempts")),
        "{error}"
    );
    assert_eq!(crashes, MAX_ATTEMPTS, "every attempt but no more killed it");
    assert!(alive, "the worker that gave up is still serving");
}
