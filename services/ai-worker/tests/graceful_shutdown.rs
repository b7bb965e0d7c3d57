//! Graceful shutdown hands unfinished ingestion jobs back to the queue at once: a worker
//! stopped mid-job releases its lease (without counting the attempt), and another worker
//! finishes the job right away instead of after the lease expires.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, spawn_worker_with, worker_config};

const PDF: &[u8] = include_bytes!("fixtures/formats/shared-mime-info-spec.pdf");

async fn asset_row(db: &TestDatabase, id: &str) -> (String, i32) {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT status, attempts FROM worker.assets WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn job_row(db: &TestDatabase, id: &str) -> Option<(Option<String>, i32)> {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT leased_by, attempts FROM worker.ingest_jobs WHERE asset_id = $1::uuid")
        .bind(id)
        .fetch_optional(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stopping_worker_releases_its_job_and_another_worker_finishes_it() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    // A PDF reader that hangs: the first worker's job is still parsing when it stops.
    let hanging = std::env::temp_dir().join(format!("hanging-pdftotext-{}", uuid::Uuid::new_v4()));
    std::fs::write(&hanging, "#!/bin/sh\nsleep 120\n").unwrap();
    std::fs::set_permissions(&hanging, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = worker_config(&db, &objects);
    config.ingest_lease = Duration::from_secs(600);
    config.parsing.pdftotext = hanging.clone();
    config.parsing.tool_timeout = Duration::from_secs(300);
    let first = spawn_worker_with(config).await;

    let mut client = first.client().await;
    let asset = client
        .process_asset(pb::ProcessAssetRequest {
            filename: "spec.pdf".into(),
            content: PDF.to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    // Wait (bounded) until the first worker holds the job.
    let mut leased = false;
    for _ in 0..100 {
        if let Some((Some(_), 1)) = job_row(&db, &asset.id).await {
            leased = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(leased, "the first worker never claimed the job");
    assert_eq!(asset_row(&db, &asset.id).await.0, "processing");

    first.stop().await;
    // Released at once: no lease holder, the attempt not counted, the asset queued again.
    assert_eq!(job_row(&db, &asset.id).await, Some((None, 0)));
    assert_eq!(asset_row(&db, &asset.id).await, ("queued".to_owned(), 1));

    // A healthy worker takes it over well before the 10-minute lease would have expired. Its
    // PDF reader answers at once (the document itself does not matter here).
    let quick = std::env::temp_dir().join(format!("quick-pdftotext-{}", uuid::Uuid::new_v4()));
    std::fs::write(
        &quick,
        "#!/bin/sh\nprintf 'The shared MIME-info database specification describes how applications \
         register the file types they handle and how file managers find the type of a file \
         from its name and its first bytes.\\f'\n",
    )
    .unwrap();
    std::fs::set_permissions(&quick, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = worker_config(&db, &objects);
    config.parsing.pdftotext = quick.clone();
    let second = spawn_worker_with(config).await;
    let mut status = String::new();
    for _ in 0..600 {
        status = asset_row(&db, &asset.id).await.0;
        if status == "ready" || status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "ready");
    assert_eq!(job_row(&db, &asset.id).await, None);
    second.stop().await;
    let _ = std::fs::remove_file(hanging);
    let _ = std::fs::remove_file(quick);
}
