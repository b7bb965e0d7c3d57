//! Collections with their own embedding models, and moving a collection to another model while
//! it serves: the local MiniLM (384-d) and the fake server's model (64-d), end to end over
//! gRPC against a real PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use sqlx::Row as _;
use thinkbank_proto::v1::{self as pb, ai_worker_client::AiWorkerClient};
use thinkbank_testkit::{
    FakeLlm, Script, TestDatabase, WorkerHandle, spawn_worker_with, worker_config,
};
use tonic::{Code, transport::Channel};

type Client = AiWorkerClient<Channel>;

const LOCAL: &str = "all-minilm-l6-v2";
const REMOTE: &str = "fake-64";
const TIDES: &str = "# Tides\n\nOcean tides are caused mainly by the gravitational pull of the Moon on the Earth.\n";
const VOLCANOES: &str = "# Volcanoes\n\nVolcanoes are openings in the crust through which molten rock, ash and gases escape.\n";
const GLACIERS: &str =
    "# Glaciers\n\nGlaciers are slow rivers of ice that carve valleys and deposit moraines.\n";

struct Setup {
    db: TestDatabase,
    fake: FakeLlm,
    _worker: WorkerHandle,
    client: Client,
}

/// A worker with the local model and `fake-64` (on the fake server, retries kept short).
async fn setup() -> Setup {
    let db = TestDatabase::create().await;
    let fake = FakeLlm::start(Script::default()).await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.embed.embedding_models = format!(
        r#"[{{"name": "{REMOTE}", "base_url": "{}", "dimensions": 64, "max_batch": 8,
             "max_retries": 0, "backoff_ms": 10, "timeout_ms": 5000}}]"#,
        fake.base_url()
    );
    config.migration_batch = 2;
    let worker = spawn_worker_with(config).await;
    let client = worker.client().await;
    Setup {
        db,
        fake,
        _worker: worker,
        client,
    }
}

async fn create(client: &mut Client, name: &str, model: &str) -> pb::Collection {
    client
        .create_collection(pb::CreateCollectionRequest {
            name: name.into(),
            embedding_model: model.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn upload(client: &mut Client, collection_id: &str, name: &str, text: &str) -> String {
    let request = pb::ProcessAssetRequest {
        collection_id: collection_id.into(),
        filename: name.into(),
        content: text.as_bytes().to_vec().into(),
        ..Default::default()
    };
    thinkbank_testkit::ingest_ready(client, request).await.id
}

async fn search(client: &mut Client, collection_id: &str, query: &str) -> pb::VectorSearchResponse {
    client
        .vector_search(pb::VectorSearchRequest {
            query: query.into(),
            top_k: 3,
            collection_ids: vec![collection_id.into()],
            mode: pb::SearchMode::Vector as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn get(client: &mut Client, id: &str) -> pb::Collection {
    client
        .get_collection(pb::GetCollectionRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Polls until `done` holds for the collection (60 s at most).
async fn wait_for(
    client: &mut Client,
    id: &str,
    what: &str,
    done: impl Fn(&pb::Collection) -> bool,
) -> pb::Collection {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let collection = get(client, id).await;
        if done(&collection) {
            return collection;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {collection:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status(collection: &pb::Collection) -> pb::MigrationStatus {
    collection
        .migration
        .as_ref()
        .map_or(pb::MigrationStatus::Unspecified, pb::ModelMigration::status)
}

async fn vectors_of(db: &TestDatabase, collection_id: &str, model: &str) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query(
        "SELECT count(*) AS n FROM worker.embeddings WHERE collection_id = $1::uuid AND model = $2",
    )
    .bind(collection_id)
    .bind(model)
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get("n")
}

#[tokio::test]
async fn a_collection_moves_to_another_model_while_it_serves() {
    let Setup {
        db,
        fake,
        _worker,
        mut client,
    } = setup().await;
    let docs = create(&mut client, "docs", "").await;
    assert_eq!(docs.embedding_model, LOCAL);
    let tides = upload(&mut client, &docs.id, "tides.md", TIDES).await;
    upload(&mut client, &docs.id, "volcanoes.md", VOLCANOES).await;

    // The provider is down when the migration starts: it stays RUNNING and searches keep
    // using the local model.
    fake.embeddings.fail_next(1000, 503, None);
    let started = client
        .migrate_collection(pb::MigrateCollectionRequest {
            id: docs.id.clone(),
            target_model: REMOTE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&started), pb::MigrationStatus::Running);
    let again = client
        .migrate_collection(pb::MigrateCollectionRequest {
            id: docs.id.clone(),
            target_model: REMOTE.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.embeddings.requests().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the migration never called the model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = get(&mut client, &docs.id).await;
    assert_eq!(during.embedding_model, LOCAL);
    let progress = during.migration.clone().unwrap();
    assert_eq!(progress.status(), pb::MigrationStatus::Running);
    assert!(progress.done < progress.total, "{progress:?}");
    let hits = search(&mut client, &docs.id, "what causes ocean tides?").await;
    assert_eq!(hits.model, LOCAL);
    assert_eq!(hits.hits[0].asset_id, tides);

    // The provider recovers; a document uploaded now is written for both models.
    fake.embeddings.clear_failures();
    let glaciers = upload(&mut client, &docs.id, "glaciers.md", GLACIERS).await;
    let done = wait_for(&mut client, &docs.id, "the switch", |c| {
        status(c) == pb::MigrationStatus::Completed
    })
    .await;
    assert_eq!(done.embedding_model, REMOTE);
    let migration = done.migration.unwrap();
    assert_eq!(migration.done, migration.total);
    assert_eq!(migration.total, done.chunk_count);
    assert!(done.chunk_count >= 3);

    // Searches now use the 64-d model, and find the right documents.
    let hits = search(&mut client, &docs.id, "slow rivers of ice carve valleys").await;
    assert_eq!(hits.model, REMOTE);
    assert_eq!(hits.hits[0].asset_id, glaciers);
    let hits = search(&mut client, &docs.id, "ocean tides moon pull").await;
    assert_eq!(hits.hits[0].asset_id, tides);
    // Every chunk has a 64-d vector and the 384-d ones are gone: the models never mix.
    assert_eq!(
        vectors_of(&db, &docs.id, REMOTE).await,
        i64::try_from(done.chunk_count).unwrap()
    );
    assert_eq!(vectors_of(&db, &docs.id, LOCAL).await, 0);

    // A search over every collection embeds the query once per model and merges the hits.
    let other = create(&mut client, "other", LOCAL).await;
    let volcanoes = upload(&mut client, &other.id, "volcanoes.md", VOLCANOES).await;
    let all = client
        .vector_search(pb::VectorSearchRequest {
            query: "molten rock and ash escape through the crust".into(),
            top_k: 10,
            mode: pb::SearchMode::Vector as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        all.model.contains(LOCAL) && all.model.contains(REMOTE),
        "{}",
        all.model
    );
    assert!(all.hits.iter().any(|h| h.asset_id == volcanoes));
}

#[tokio::test]
async fn a_cancelled_migration_leaves_the_collection_on_its_model() {
    let Setup {
        db,
        fake,
        _worker,
        mut client,
    } = setup().await;
    let docs = create(&mut client, "docs", LOCAL).await;
    let tides = upload(&mut client, &docs.id, "tides.md", TIDES).await;
    upload(&mut client, &docs.id, "volcanoes.md", VOLCANOES).await;
    fake.embeddings.fail_next(1000, 500, None);
    client
        .migrate_collection(pb::MigrateCollectionRequest {
            id: docs.id.clone(),
            target_model: REMOTE.into(),
        })
        .await
        .unwrap();
    let cancelled = client
        .cancel_migration(pb::CancelMigrationRequest {
            id: docs.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&cancelled), pb::MigrationStatus::Cancelled);
    assert_eq!(cancelled.embedding_model, LOCAL);
    let none = client
        .cancel_migration(pb::CancelMigrationRequest {
            id: docs.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::FailedPrecondition);
    fake.embeddings.clear_failures();
    // Nothing of the target model is left, and nothing is written for it later.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(vectors_of(&db, &docs.id, REMOTE).await, 0);
    let hits = search(&mut client, &docs.id, "what causes ocean tides?").await;
    assert_eq!(hits.model, LOCAL);
    assert_eq!(hits.hits[0].asset_id, tides);
}

#[tokio::test]
async fn identical_chunks_are_embedded_once() {
    let Setup {
        db: _db,
        fake,
        _worker,
        mut client,
    } = setup().await;
    let first = create(&mut client, "first", REMOTE).await;
    let second = create(&mut client, "second", REMOTE).await;
    upload(&mut client, &first.id, "tides.md", TIDES).await;
    let sent = fake
        .embeddings
        .requests()
        .iter()
        .map(|r| r.inputs.len())
        .sum::<usize>();
    assert!(sent >= 1);
    // The same text in another collection (and under another name) is not sent again.
    let again = upload(&mut client, &second.id, "copy-of-tides.md", TIDES).await;
    let sent_after = fake
        .embeddings
        .requests()
        .iter()
        .map(|r| r.inputs.len())
        .sum::<usize>();
    assert_eq!(sent_after, sent, "identical chunks were embedded again");
    let hits = search(&mut client, &second.id, "ocean tides moon").await;
    assert_eq!(hits.hits[0].asset_id, again);
}

#[tokio::test]
async fn collection_requests_are_validated() {
    let Setup {
        db: _db,
        fake: _fake,
        _worker,
        mut client,
    } = setup().await;
    let unknown = client
        .create_collection(pb::CreateCollectionRequest {
            name: "x".into(),
            embedding_model: "text-embedding-3-large".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains(REMOTE) && unknown.message().contains(LOCAL),
        "{}",
        unknown.message()
    );
    create(&mut client, "docs", "").await;
    let taken = client
        .create_collection(pb::CreateCollectionRequest {
            name: "docs".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    let config = client
        .create_collection(pb::CreateCollectionRequest {
            name: "y".into(),
            text_search_config: "klingon".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(config.code(), Code::InvalidArgument);
    let listed = client
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["default", "docs"]);
    let missing = client
        .get_collection(pb::GetCollectionRequest {
            id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let models = client
        .list_embedding_models(pb::ListEmbeddingModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let described: Vec<(String, u32, bool)> = models
        .into_iter()
        .map(|m| (m.name, m.dimensions, m.is_default))
        .collect();
    assert_eq!(
        described,
        vec![
            (LOCAL.to_owned(), 384, true),
            (REMOTE.to_owned(), 64, false)
        ]
    );
    let embedded = client
        .get_embedding(pb::GetEmbeddingRequest {
            texts: vec!["hello".into()],
            model: REMOTE.into(),
            strict: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((embedded.model.as_str(), embedded.dimensions), (REMOTE, 64));
    assert_eq!(embedded.embeddings[0].values.len(), 64);
}

#[tokio::test]
async fn a_caller_limited_to_collections_cannot_create_one() {
    let mut setup = setup().await;
    let own = create(&mut setup.client, "own", LOCAL).await;
    let mut request = tonic::Request::new(pb::CreateCollectionRequest {
        name: "beyond".into(),
        embedding_model: LOCAL.into(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        thinkbank_proto::metadata::COLLECTIONS,
        own.id.parse().unwrap(),
    );
    // Before: the row policy refused the insert and the caller saw an internal error.
    let refused = setup.client.create_collection(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("limited"), "{refused:?}");
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM worker.collections")
        .fetch_all(&mut setup.db.connect().await)
        .await
        .unwrap();
    assert!(!names.contains(&"beyond".to_owned()), "{names:?}");
}
