//! Cancelling, re-processing and replacing assets, against the real worker and PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, spawn_worker, spawn_worker_with, worker_config};
use tokio_stream::StreamExt as _;
use tonic::Code;

fn upload(name: &str, text: &str, external_id: &str, wait: bool) -> pb::ProcessAssetRequest {
    pb::ProcessAssetRequest {
        filename: name.into(),
        content: text.as_bytes().to_vec().into(),
        external_id: external_id.into(),
        wait,
        ..Default::default()
    }
}

async fn chunk_count(db: &TestDatabase, asset_id: &str) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT count(*) FROM worker.chunks WHERE asset_id = $1::uuid")
        .bind(asset_id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_queued_asset_can_be_cancelled_and_later_reprocessed() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    // An API-only worker queues work but never processes it.
    let mut config = worker_config(&db, &objects);
    config.ingest_concurrency = 0;
    let api_only = spawn_worker_with(config.clone()).await;
    let mut client = api_only.client().await;
    let queued = client
        .process_asset(upload(
            "plan.txt",
            "The launch plan covers fuel, weather and the countdown.",
            "",
            false,
        ))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    assert_eq!(queued.status(), pb::AssetStatus::Queued);

    let cancelled = client
        .cancel_asset(pb::CancelAssetRequest {
            id: queued.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status(), pb::AssetStatus::Cancelled);
    assert_eq!(cancelled.error, "cancelled by request");
    let again = client
        .cancel_asset(pb::CancelAssetRequest {
            id: queued.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("cancelled"), "{}", again.message());

    // A processing replica joins; the cancelled asset stays cancelled with nothing indexed.
    config.ingest_concurrency = 2;
    config.listen = "127.0.0.1:0".parse().unwrap();
    let processor = spawn_worker_with(config).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let still = client
        .get_asset(pb::GetAssetRequest {
            id: queued.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.status(), pb::AssetStatus::Cancelled);
    assert_eq!(chunk_count(&db, &queued.id).await, 0);

    // Re-processing queues it again and the processing replica indexes it.
    let requeued = client
        .reprocess_asset(pb::ReprocessAssetRequest {
            id: queued.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(requeued.status(), pb::AssetStatus::Queued);
    let mut watch = client
        .watch_asset(pb::WatchAssetRequest {
            id: queued.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(update) = watch.next().await {
        last = update.unwrap().asset;
    }
    let last = last.unwrap();
    assert_eq!(last.status(), pb::AssetStatus::Ready, "{}", last.error);
    assert_eq!(
        chunk_count(&db, &queued.id).await,
        i64::from(last.chunk_count)
    );

    let busy = client
        .reprocess_asset(pb::ReprocessAssetRequest {
            id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::NotFound);
    processor.stop().await;
    api_only.stop().await;
}

#[tokio::test]
async fn a_ready_asset_cannot_be_cancelled_but_can_be_reprocessed_without_duplicates() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let ready = client
        .process_asset(upload(
            "notes.md",
            "# Notes\n\nBring a headlamp and spare batteries.",
            "",
            true,
        ))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    let refused = client
        .cancel_asset(pb::CancelAssetRequest {
            id: ready.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let before = chunk_count(&db, &ready.id).await;
    client
        .reprocess_asset(pb::ReprocessAssetRequest {
            id: ready.id.clone(),
        })
        .await
        .unwrap();
    let mut watch = client
        .watch_asset(pb::WatchAssetRequest {
            id: ready.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(update) = watch.next().await {
        last = update.unwrap().asset;
    }
    assert_eq!(last.unwrap().status(), pb::AssetStatus::Ready);
    assert_eq!(
        chunk_count(&db, &ready.id).await,
        before,
        "re-processing replaces chunks, never adds"
    );
    worker.stop().await;
}

#[tokio::test]
async fn new_content_under_the_same_external_id_replaces_the_old_version() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let v1 = client
        .process_asset(upload(
            "policy.md",
            "# Travel policy\n\nEconomy class for flights under six hours.",
            "wiki/travel",
            true,
        ))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    let v2 = client
        .process_asset(upload(
            "policy.md",
            "# Travel policy\n\nBusiness class is allowed for flights over four hours.",
            "wiki/travel",
            true,
        ))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    assert_ne!(v1.id, v2.id);
    assert_eq!(v2.status(), pb::AssetStatus::Ready);
    let gone = client
        .get_asset(pb::GetAssetRequest { id: v1.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let listed = client
        .list_assets(pb::ListAssetsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.assets.len(), 1);
    assert_eq!(listed.assets[0].external_id, "wiki/travel");
    let hits = client
        .vector_search(pb::VectorSearchRequest {
            query: "which class may I fly?".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(
        hits.iter().all(|h| h.asset_id == v2.id),
        "search must only see the new version"
    );
    assert!(hits[0].text.contains("Business class"));
    worker.stop().await;
}
