//! One tenant cannot monopolise ingestion or storage (issue 22, item 8): the queue is claimed
//! fairly across tenants, and per-tenant quotas refuse what does not fit, naming the quota.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, as_tenant, spawn_worker_with, worker_config};
use tonic::Code;
use uuid::Uuid;

/// Creates a tenant with its `default` collection, as the gateway's tenant admin does.
async fn create_tenant(db: &TestDatabase, name: &str) -> Uuid {
    let mut conn = db.connect().await;
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO worker.tenants (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO worker.collections (id, tenant_id, name, embedding_model) \
         VALUES ($1, $2, 'default', 'all-minilm-l6-v2')",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .execute(&mut conn)
    .await
    .unwrap();
    id
}

/// A short document, different for every `(who, n)`.
fn document(who: &str, n: usize) -> pb::ProcessAssetRequest {
    pb::ProcessAssetRequest {
        filename: format!("{who}-{n}.txt"),
        content: format!(
            "Report {n} of {who}. The harbour crane number {n} lifted containers all night, \
             and the night shift of {who} logged every move in ledger {n}."
        )
        .into_bytes()
        .into(),
        ..Default::default()
    }
}

async fn upload(
    client: &mut pb::ai_worker_client::AiWorkerClient<tonic::transport::Channel>,
    tenant: Uuid,
    request: pb::ProcessAssetRequest,
) -> Result<pb::Asset, tonic::Status> {
    Ok(client
        .process_asset(as_tenant(tenant, request))
        .await?
        .into_inner()
        .asset
        .unwrap())
}

/// Statuses of every asset, by id.
/// Logs every claim (an asset turning from queued to processing) in claim order, in a table
/// of the test's own.
async fn record_claims(db: &TestDatabase) {
    let mut conn = db.connect().await;
    for statement in [
        "CREATE TABLE public.test_claims (seq bigserial PRIMARY KEY, asset_id uuid, tenant_id uuid)",
        "CREATE FUNCTION public.test_log_claim() RETURNS trigger LANGUAGE plpgsql \
         SECURITY DEFINER AS $$ BEGIN \
             INSERT INTO public.test_claims (asset_id, tenant_id) VALUES (NEW.id, NEW.tenant_id); \
             RETURN NEW; END $$",
        "CREATE TRIGGER test_log_claim AFTER UPDATE OF status ON worker.assets FOR EACH ROW \
         WHEN (OLD.status = 'queued' AND NEW.status = 'processing') \
         EXECUTE FUNCTION public.test_log_claim()",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
}

async fn statuses(db: &TestDatabase) -> Vec<(Uuid, Uuid, String)> {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT id, tenant_id, status FROM worker.assets")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tenant_with_a_long_queue_does_not_delay_another_tenants_job() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    // An API-only worker takes the uploads: A queues many jobs, then B one.
    let mut config = worker_config(&db, &objects);
    config.ingest_concurrency = 0;
    let api_only = spawn_worker_with(config.clone()).await;
    let tenant_a = create_tenant(&db, "busy").await;
    let tenant_b = create_tenant(&db, "quiet").await;
    let mut client = api_only.client().await;
    const A_JOBS: usize = 12;
    for n in 0..A_JOBS {
        upload(&mut client, tenant_a, document("busy", n))
            .await
            .unwrap();
    }
    let b_asset = upload(&mut client, tenant_b, document("quiet", 0))
        .await
        .unwrap();
    let b_id: Uuid = b_asset.id.parse().unwrap();

    // Fairness is about who is claimed next, so the test records the claims themselves (when
    // each job turns from queued to processing, in the claiming transaction), not completion
    // times, which depend on how the machine schedules the two processes.
    record_claims(&db).await;

    // Two worker processes' worth of real runners drain the queue, one job at a time each.
    let mut processors = Vec::new();
    for _ in 0..2 {
        let mut config = config.clone();
        config.ingest_concurrency = 1;
        processors.push(spawn_worker_with(config).await);
    }

    // Every job still ends exactly once, with its chunks, across both processes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let rows = statuses(&db).await;
        if rows.iter().all(|(.., status)| status == "ready") {
            break;
        }
        assert!(
            rows.iter().all(|(.., status)| status != "failed"),
            "{rows:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue not drained in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut conn = db.connect().await;
    let (jobs, chunkless): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM worker.ingest_jobs), \
                (SELECT count(*) FROM worker.assets a WHERE NOT EXISTS \
                    (SELECT 1 FROM worker.chunks c WHERE c.asset_id = a.id))",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((jobs, chunkless), (0, 0));
    // With one FIFO, B's job waits behind all of A's. Fairly, each processor's first claim may
    // be one of A's (both start with nothing served), and the next claim is B's.
    let claims: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT asset_id, tenant_id FROM public.test_claims ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(claims.len(), A_JOBS + 1, "one claim per job: {claims:?}");
    let a_claimed_before_b = claims
        .iter()
        .position(|(asset, _)| *asset == b_id)
        .unwrap_or_else(|| panic!("B's job was never claimed: {claims:?}"));
    assert!(
        a_claimed_before_b <= 2,
        "{a_claimed_before_b} of A's {A_JOBS} jobs were claimed before B's single job: {claims:?}"
    );
    for processor in processors {
        processor.stop().await;
    }
    api_only.stop().await;
}

async fn counts(db: &TestDatabase, tenant: Uuid) -> (i64, i64) {
    let mut conn = db.connect().await;
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM worker.assets WHERE tenant_id = $1), \
                (SELECT count(*) FROM worker.ingest_jobs WHERE tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Files in the worker's object store for `tenant`.
fn stored_objects(objects: &std::path::Path, tenant: Uuid) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() { walk(&path) } else { 1 }
                })
                .sum()
        })
    }
    walk(&objects.join(tenant.to_string()))
}

#[tokio::test]
async fn uploads_over_the_asset_or_byte_quota_are_refused_naming_it_and_store_nothing() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.ingest_concurrency = 0;
    config.quotas.max_assets = 2;
    let worker = spawn_worker_with(config).await;
    let tenant = create_tenant(&db, "metered").await;
    let mut client = worker.client().await;

    let first = upload(&mut client, tenant, document("m", 1)).await.unwrap();
    upload(&mut client, tenant, document("m", 2)).await.unwrap();
    let refused = upload(&mut client, tenant, document("m", 3))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("quota max_assets exceeded")
            && refused.message().contains("at most 2 assets"),
        "{}",
        refused.message()
    );
    assert_eq!(counts(&db, tenant).await, (2, 2));
    assert_eq!(stored_objects(&worker.objects_dir, tenant), 2);
    // The same bytes again are the existing asset, not a new one: no quota is needed.
    let again = upload(&mut client, tenant, document("m", 1)).await.unwrap();
    assert_eq!(again.id, first.id);

    // The operator's override for this tenant wins over the default: room for more assets,
    // but only 600 bytes in all.
    let mut conn = db.connect().await;
    sqlx::query(
        "INSERT INTO worker.tenant_quotas (tenant_id, max_assets, max_bytes) VALUES ($1, 0, 600)",
    )
    .bind(tenant)
    .execute(&mut conn)
    .await
    .unwrap();
    let big = pb::ProcessAssetRequest {
        filename: "big.txt".into(),
        content: "a sentence that repeats. ".repeat(20).into_bytes().into(),
        ..Default::default()
    };
    let refused = upload(&mut client, tenant, big).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("quota max_bytes exceeded")
            && refused.message().contains("at most 600 bytes"),
        "{}",
        refused.message()
    );
    assert_eq!(counts(&db, tenant).await, (2, 2));
    assert_eq!(stored_objects(&worker.objects_dir, tenant), 2);
    // A small one still fits (the asset quota is lifted by the override's 0).
    upload(&mut client, tenant, document("m", 3)).await.unwrap();
    assert_eq!(counts(&db, tenant).await, (3, 3));
    worker.stop().await;
}

#[tokio::test]
async fn a_document_over_the_chunk_quota_fails_naming_it_and_indexes_nothing() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.quotas.max_chunks = 3;
    config.chunk_tokens = 40;
    config.chunk_overlap_tokens = 0;
    let worker = spawn_worker_with(config).await;
    let tenant = create_tenant(&db, "chunky").await;
    let mut client = worker.client().await;

    let small = upload(
        &mut client,
        tenant,
        pb::ProcessAssetRequest {
            wait: true,
            ..document("c", 1)
        },
    )
    .await
    .unwrap();
    assert_eq!(small.status(), pb::AssetStatus::Ready, "{}", small.error);
    let long_text: String = (0..40)
        .map(|n| format!("Paragraph {n} describes the cargo manifest of ship number {n}.\n\n"))
        .collect();
    let long = upload(
        &mut client,
        tenant,
        pb::ProcessAssetRequest {
            filename: "long.txt".into(),
            content: long_text.into_bytes().into(),
            wait: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(long.status(), pb::AssetStatus::Failed);
    assert!(
        long.error.contains("quota max_chunks exceeded") && long.error.contains("limit is 3"),
        "{}",
        long.error
    );
    let mut conn = db.connect().await;
    let (long_chunks, small_chunks): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM worker.chunks WHERE asset_id = $1::uuid), \
                (SELECT count(*) FROM worker.chunks WHERE asset_id = $2::uuid)",
    )
    .bind(&long.id)
    .bind(&small.id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(long_chunks, 0, "nothing of the refused document is indexed");
    assert_eq!(i64::from(small.chunk_count), small_chunks);
    assert!(small_chunks >= 1);

    // Once the tenant is at its chunk quota, uploads are refused at once, naming it.
    sqlx::query("INSERT INTO worker.tenant_quotas (tenant_id, max_chunks) VALUES ($1, $2)")
        .bind(tenant)
        .bind(small_chunks)
        .execute(&mut conn)
        .await
        .unwrap();
    let refused = upload(&mut client, tenant, document("c", 2))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("quota max_chunks exceeded"),
        "{}",
        refused.message()
    );
    assert_eq!(counts(&db, tenant).await, (2, 0));
    worker.stop().await;
}
