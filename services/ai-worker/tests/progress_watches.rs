//! `WatchAsset` costs no database query per watcher (issue 22, item 9): changes arrive by
//! LISTEN/NOTIFY through one listener, watches hold no call permit, and a watch ends at its
//! deadline.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, spawn_worker_with, worker_config};
use tokio_stream::StreamExt as _;
use tracing_subscriber::{Layer, layer::SubscriberExt as _};

/// Counts every SQL statement this process runs (sqlx reports each as a `sqlx::query` event).
struct CountStatements(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The statements counter, installed once per process.
fn statements() -> Arc<AtomicUsize> {
    static COUNTER: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    COUNTER
        .get_or_init(|| {
            let counter = Arc::new(AtomicUsize::new(0));
            let layer = CountStatements(counter.clone()).with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("sqlx::query", tracing::Level::DEBUG),
            );
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .unwrap();
            counter
        })
        .clone()
}

/// Statements run in `window`.
async fn statements_during(window: Duration) -> usize {
    let counter = statements();
    let before = counter.load(Ordering::Relaxed);
    tokio::time::sleep(window).await;
    counter.load(Ordering::Relaxed) - before
}

fn upload(name: &str) -> pb::ProcessAssetRequest {
    pb::ProcessAssetRequest {
        filename: name.into(),
        content: format!("{name}: the lighthouse keeper logs every passing ship.")
            .into_bytes()
            .into(),
        ..Default::default()
    }
}

type Watch = tonic::Streaming<pb::WatchAssetResponse>;

async fn open_watch(worker: &thinkbank_testkit::WorkerHandle, id: &str) -> Watch {
    let mut watch = worker
        .client()
        .await
        .watch_asset(pb::WatchAssetRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap().asset.unwrap();
    assert_eq!(first.status(), pb::AssetStatus::Queued);
    watch
}

#[tokio::test]
async fn watchers_cost_no_queries_while_waiting_and_hear_a_change_without_polling() {
    let counter = statements();
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    // Nothing processes the queue, and the safety-net poll never runs during the test: a
    // change can only reach the watchers through the notification.
    config.ingest_concurrency = 0;
    config.watch_fallback_poll = Duration::from_secs(3600);
    // Fewer call permits than watches: watches must not take them.
    config.max_concurrent_calls = 4;
    let worker = spawn_worker_with(config).await;
    let mut client = worker.client().await;
    let asset = client
        .process_asset(upload("queued.txt"))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();

    let window = Duration::from_secs(3);
    let mut watches = vec![open_watch(&worker, &asset.id).await];
    let with_one = statements_during(window).await;
    for _ in 0..40 {
        watches.push(open_watch(&worker, &asset.id).await);
    }
    let with_many = statements_during(window).await;
    // Polling every 200 ms, 41 watchers run about 600 statements in 3 s; listening, none.
    assert!(
        with_many <= with_one + 10,
        "41 idle watchers ran {with_many} statements in {window:?}, one ran {with_one}"
    );
    assert!(
        counter.load(Ordering::Relaxed) > 0,
        "statements are counted"
    );

    // 41 open watches and 4 call permits: other calls are still served.
    let listed = client
        .list_assets(pb::ListAssetsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.assets.len(), 1);

    // A change reaches every watcher (the fallback poll is an hour away).
    client
        .cancel_asset(pb::CancelAssetRequest {
            id: asset.id.clone(),
        })
        .await
        .unwrap();
    for watch in &mut watches {
        let update = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("the change did not arrive within 30 s")
            .unwrap()
            .unwrap();
        assert_eq!(update.asset.unwrap().status(), pb::AssetStatus::Cancelled);
        assert!(watch.next().await.is_none(), "a final asset ends the watch");
    }
    worker.stop().await;
}

#[tokio::test]
async fn a_watch_ends_at_its_deadline_and_a_deleted_asset_ends_its_watch() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.ingest_concurrency = 0;
    config.watch_max_duration = Duration::from_secs(2);
    config.watch_fallback_poll = Duration::from_secs(3600);
    let worker = spawn_worker_with(config).await;
    let mut client = worker.client().await;
    let asset = client
        .process_asset(upload("waits.txt"))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    let mut watch = open_watch(&worker, &asset.id).await;
    let ended = tokio::time::timeout(Duration::from_secs(60), watch.next())
        .await
        .expect("the watch outlived its deadline by a minute");
    assert!(ended.is_none(), "the watch ends (OK) at its deadline");

    let mut watch = open_watch(&worker, &asset.id).await;
    client
        .delete_asset(pb::DeleteAssetRequest {
            id: asset.id.clone(),
        })
        .await
        .unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("the deletion did not arrive within 30 s")
        .unwrap()
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    worker.stop().await;
}
