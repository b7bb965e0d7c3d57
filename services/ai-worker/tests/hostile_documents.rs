//! One caller's document must not take the worker down or hold it hostage: a deeply nested
//! HTML file ends with an outcome while other calls are served, a job that has used all its
//! attempts (even ones that killed the process) fails with a reason instead of being claimed
//! again, and documents over a parsing cap fail with a reason naming the cap.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use thinkbank_ai_worker::ingest::parse::ParseSettings;
use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, spawn_worker, spawn_worker_with, worker_config};

type Client = pb::ai_worker_client::AiWorkerClient<tonic::transport::Channel>;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn ingest(client: &mut Client, name: &str, bytes: Vec<u8>) -> pb::Asset {
    client
        .process_asset(pb::ProcessAssetRequest {
            filename: name.into(),
            content: bytes.into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("{name}: {status:?}"))
        .into_inner()
        .asset
        .unwrap()
}

/// Ingests `bytes` with parsing settings changed by `tune` and returns the failed asset's
/// reason (panicking if it did not fail).
async fn failure_reason(
    name: &str,
    bytes: Vec<u8>,
    tune: impl FnOnce(&mut ParseSettings),
) -> String {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    tune(&mut config.parsing);
    let worker = spawn_worker_with(config).await;
    let mut client = worker.client().await;
    let asset = ingest(&mut client, name, bytes).await;
    assert_eq!(asset.status(), pb::AssetStatus::Failed, "{name}: {asset:?}");
    assert_eq!(asset.chunk_count, 0);
    worker.stop().await;
    asset.error
}

#[tokio::test]
async fn deeply_nested_html_ends_with_an_outcome_and_the_worker_keeps_serving() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let html = format!(
        "<html><body>{}The bottom of the well.{}</body></html>",
        "<div>".repeat(100_000),
        "</div>".repeat(100_000)
    );
    let asset = ingest(&mut client, "deep.html", html.into_bytes()).await;
    match asset.status() {
        pb::AssetStatus::Ready => assert_eq!(asset.chunk_count, 1),
        pb::AssetStatus::Failed => assert!(!asset.error.is_empty(), "failed without a reason"),
        other => panic!("the deep document ended {other:?}: {asset:?}"),
    }
    // The process survived: other calls, and other documents, are still served.
    let embedded = client
        .get_embedding(pb::GetEmbeddingRequest {
            texts: vec!["still here".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(embedded.embeddings.len(), 1);
    let plain = ingest(
        &mut client,
        "after.txt",
        b"Served after the deep one.".to_vec(),
    )
    .await;
    assert_eq!(plain.status(), pb::AssetStatus::Ready, "{}", plain.error);
    worker.stop().await;
}

#[tokio::test]
async fn a_job_whose_attempts_ran_out_is_failed_with_a_reason_not_processed_again() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    // An API-only worker queues the document without processing it.
    let mut config = worker_config(&db, &objects);
    config.ingest_concurrency = 0;
    let api_only = spawn_worker_with(config.clone()).await;
    let mut client = api_only.client().await;
    let queued = client
        .process_asset(pb::ProcessAssetRequest {
            filename: "crasher.txt".into(),
            content: b"A document whose every attempt killed the worker."
                .to_vec()
                .into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    api_only.stop().await;
    // What three crashed attempts leave behind: the attempts counted at claim time, and a
    // lease nobody renews any more.
    let mut conn = db.connect().await;
    let id: uuid::Uuid = queued.id.parse().unwrap();
    let updated = sqlx::query(
        "UPDATE worker.ingest_jobs SET attempts = 3, leased_by = 'crashed-worker', \
         leased_until = now() - interval '1 second' WHERE asset_id = $1",
    )
    .bind(id)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(updated.rows_affected(), 1);

    config.ingest_concurrency = 2;
    config.ingest_max_attempts = 3;
    let worker = spawn_worker_with(config).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (status, error, attempts, chunks) = loop {
        let row: (String, Option<String>, i32, i32) = sqlx::query_as(
            "SELECT status, error, attempts, chunk_count FROM worker.assets WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if row.0 == "failed" || row.0 == "ready" {
            break row;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, "failed", "processed a fourth time: {error:?}");
    let error = error.unwrap_or_default();
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert!(error.contains("never finished"), "{error}");
    assert_eq!(chunks, 0);
    assert!(attempts <= 3, "claimed again: {attempts} attempts");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM worker.ingest_jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "the exhausted job is still queued");
    worker.stop().await;
}

#[tokio::test]
async fn pdf_text_over_the_output_cap_fails_with_the_cap_named() {
    let error = failure_reason("spec.pdf", fixture("shared-mime-info-spec.pdf"), |p| {
        p.max_tool_output_bytes = 1000;
    })
    .await;
    assert!(error.contains("more than 1000 bytes"), "{error}");
    assert!(error.contains("THINKBANK_MAX_TOOL_OUTPUT_BYTES"), "{error}");
}

#[tokio::test]
async fn a_document_over_the_chunk_cap_fails_with_the_cap_named() {
    let text = (0..40)
        .map(|n| format!("Paragraph {n} says something different about station {n}."))
        .collect::<Vec<_>>()
        .join("\n\n")
        .repeat(20);
    let error = failure_reason("long.txt", text.into_bytes(), |p| p.max_chunks = 3).await;
    assert!(error.contains("more than 3 chunks"), "{error}");
    assert!(error.contains("THINKBANK_MAX_CHUNKS_PER_ASSET"), "{error}");
}

#[tokio::test]
async fn a_document_over_the_character_cap_fails_with_the_cap_named() {
    let html = format!(
        "<html><body><p>{}</p></body></html>",
        "many words ".repeat(100)
    );
    let error = failure_reason("long.html", html.into_bytes(), |p| {
        p.max_extracted_chars = 500;
    })
    .await;
    assert!(error.contains("more than 500 characters"), "{error}");
    assert!(error.contains("THINKBANK_MAX_EXTRACTED_CHARS"), "{error}");
}

#[tokio::test]
async fn an_image_over_the_pixel_cap_fails_before_ocr() {
    let error = failure_reason("spec-intro.png", fixture("spec-intro.png"), |p| {
        p.max_image_pixels = 1000;
    })
    .await;
    assert!(error.contains("over the limit of 1000 pixels"), "{error}");
    assert!(error.contains("THINKBANK_MAX_IMAGE_PIXELS"), "{error}");
}
