//! The queue never loses or duplicates work: the real worker binary is killed with SIGKILL in
//! the middle of a batch and restarted; every asset ends READY exactly once, with no
//! duplicate chunks, and none stays stuck.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::{process::Child, time::Duration};

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, model_dir, wait_until_serving};

const DOCUMENTS: usize = 10;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `thinkbank-ai-worker` as a separate process with a short lease, so a job held by a
/// killed worker becomes claimable again within seconds. A lease this short can also expire
/// under heavy load while a job is still running (another loop then takes it over, which is
/// exactly the recovery path under test), so the retry budget is generous: this test is about
/// losing and duplicating nothing, not about when to give up.
fn start_worker(db: &TestDatabase, objects: &std::path::Path, port: u16) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_thinkbank-ai-worker"))
        .env("THINKBANK_DATABASE_URL", &db.url)
        .env("THINKBANK_WORKER_LISTEN", format!("127.0.0.1:{port}"))
        .env("THINKBANK_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("THINKBANK_EMBED_MODEL_DIR", model_dir())
        .env("THINKBANK_OBJECT_STORE_DIR", objects)
        .env("THINKBANK_INGEST_LEASE", "5s")
        .env("THINKBANK_INGEST_MAX_ATTEMPTS", "50")
        .env("THINKBANK_INGEST_CONCURRENCY", "2")
        .env("RUST_LOG", "warn")
        // The test's client talks to the worker directly on loopback, without the token.
        .env("THINKBANK_INSECURE_NO_INTERNAL_TOKEN", "true")
        .spawn()
        .unwrap()
}

/// A document long enough that embedding it takes a noticeable moment.
fn document(n: usize) -> String {
    let mut text = format!("# Report {n}\n\n");
    for paragraph in 0..40 {
        text.push_str(&format!(
            "Paragraph {paragraph} of report {n} describes measurement series {} taken at station {} \
             under varying weather, with notes on calibration, drift and the operator's remarks.\n\n",
            n * 100 + paragraph,
            paragraph % 7
        ));
    }
    text
}

async fn statuses(db: &TestDatabase) -> Vec<(String, i32, i32)> {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT status, chunk_count, attempts FROM worker.assets ORDER BY created_at")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_and_duplicates_nothing() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let port = free_port();
    let mut worker = start_worker(&db, &objects, port);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until_serving(addr).await;

    let mut client = pb::ai_worker_client::AiWorkerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    for n in 0..DOCUMENTS {
        client
            .process_asset(pb::ProcessAssetRequest {
                filename: format!("report-{n}.md"),
                content: document(n).into_bytes().into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // Kill as soon as the first asset is done: the others are queued or mid-flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = statuses(&db).await;
        if now.iter().any(|(status, _, _)| status == "ready") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing became ready: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.kill().unwrap(); // SIGKILL: no shutdown path runs
    worker.wait().unwrap();
    let at_kill = statuses(&db).await;
    let ready_at_kill = at_kill.iter().filter(|(s, _, _)| s == "ready").count();
    assert!(
        ready_at_kill < DOCUMENTS,
        "the kill came too late to test anything: {at_kill:?}"
    );

    let mut restarted = start_worker(&db, &objects, port);
    wait_until_serving(addr).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let last = loop {
        let now = statuses(&db).await;
        if now.iter().all(|(status, _, _)| status == "ready") {
            break now;
        }
        assert!(
            now.iter().all(|(status, _, _)| status != "failed"),
            "an asset failed after the crash: {now:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "assets stuck after restart: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    restarted.kill().unwrap();
    restarted.wait().unwrap();

    assert_eq!(last.len(), DOCUMENTS, "an upload was lost");
    let mut conn = db.connect().await;
    // Exactly the chunks each asset reports, each stored once, each with one vector.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM worker.assets a \
         WHERE a.chunk_count <> (SELECT count(*) FROM worker.chunks c WHERE c.asset_id = a.id)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT asset_id, text FROM worker.chunks GROUP BY asset_id, chunk_index, text \
         HAVING count(*) > 1) d",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
    let (chunks, vectors): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM worker.chunks), (SELECT count(*) FROM worker.embeddings)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(chunks, vectors);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM worker.ingest_jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "finished jobs must leave the queue");
}
