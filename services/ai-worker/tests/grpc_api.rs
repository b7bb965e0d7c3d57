//! The AiWorker gRPC API against a real PostgreSQL (a fresh database per test) and the real
//! server on 127.0.0.1:0.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use thinkbank_proto::v1::{self as pb, chat_stream_response::Event};
use thinkbank_testkit::{TestDatabase, spawn_worker};
use tokio_stream::StreamExt as _;
use tonic::Code;

const PHOTOSYNTHESIS: &str = "# Photosynthesis\n\nPhotosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make glucose and release oxygen.\n\n## Chlorophyll\n\nChlorophyll is the green pigment in chloroplasts that absorbs red and blue light for photosynthesis.\n";
const VOLCANOES: &str = "# Volcanoes\n\nA volcano is an opening in the crust of the Earth through which molten rock, ash and gases escape. Magma that reaches the surface is called lava.\n";
const BAKING: &str = "Sourdough bread is leavened by a culture of wild yeast and lactic acid bacteria. Bakers feed the starter with flour and water every day.";

fn upload(name: &str, text: &str, wait: bool) -> pb::ProcessAssetRequest {
    pb::ProcessAssetRequest {
        filename: name.into(),
        content: text.as_bytes().to_vec().into(),
        wait,
        ..Default::default()
    }
}

async fn ingest_corpus(
    client: &mut pb::ai_worker_client::AiWorkerClient<tonic::transport::Channel>,
) -> Vec<pb::Asset> {
    let mut assets = Vec::new();
    for (name, text) in [
        ("photosynthesis.md", PHOTOSYNTHESIS),
        ("volcanoes.md", VOLCANOES),
        ("baking.txt", BAKING),
    ] {
        let response = client
            .process_asset(upload(name, text, true))
            .await
            .unwrap()
            .into_inner();
        let asset = response.asset.unwrap();
        assert_eq!(
            asset.status,
            pb::AssetStatus::Ready as i32,
            "{name}: {}",
            asset.error
        );
        assert!(asset.chunk_count >= 1);
        assets.push(asset);
    }
    assets
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

#[tokio::test]
async fn processed_document_is_found_first_by_vector_search() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let assets = ingest_corpus(&mut client).await;

    let response = client
        .vector_search(pb::VectorSearchRequest {
            query: "how do plants turn sunlight into sugar?".into(),
            top_k: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.model, "all-minilm-l6-v2");
    let first = &response.hits[0];
    assert_eq!(first.asset_id, assets[0].id);
    assert_eq!(first.filename, "photosynthesis.md");
    assert!(first.text.contains("Photosynthesis"));
    assert!(first.score > response.hits.last().unwrap().score);
    let position = first.position.as_ref().unwrap();
    assert_eq!(
        position.headings.first().map(String::as_str),
        Some("Photosynthesis")
    );

    // Filters restrict to the named assets.
    let filtered = client
        .vector_search(pb::VectorSearchRequest {
            query: "how do plants turn sunlight into sugar?".into(),
            asset_ids: vec![assets[1].id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!filtered.hits.is_empty());
    assert!(filtered.hits.iter().all(|h| h.asset_id == assets[1].id));
    worker.stop().await;
}

#[tokio::test]
async fn uploading_the_same_bytes_twice_returns_the_existing_asset() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let first = client
        .process_asset(upload("a.md", VOLCANOES, true))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .process_asset(upload("copy.md", VOLCANOES, true))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.deduplicated);
    assert!(second.deduplicated);
    assert_eq!(first.asset.unwrap().id, second.asset.unwrap().id);
    assert_eq!(count(&db, "SELECT count(*) FROM worker.assets").await, 1);
    let chunks = count(&db, "SELECT count(*) FROM worker.chunks").await;
    let vectors = count(&db, "SELECT count(*) FROM worker.embeddings").await;
    assert_eq!(chunks, vectors);
    assert!(chunks >= 1);
    worker.stop().await;
}

#[tokio::test]
async fn bad_uploads_are_rejected_and_nothing_is_stored() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("empty.txt", Vec::new(), "empty"),
        ("latin1.txt", b"caf\xe9 au lait".to_vec(), "not valid UTF-8"),
        (
            "report.txt",
            b"\x1f\x8b\x08\x00binary".to_vec(),
            "application/gzip",
        ),
        ("blob.txt", b"abc\0\0\0def".to_vec(), "binary"),
    ];
    for (name, bytes, expected) in cases {
        let status = client
            .process_asset(pb::ProcessAssetRequest {
                filename: name.into(),
                content: bytes.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
        assert!(
            status.message().contains(expected),
            "{name}: {}",
            status.message()
        );
    }
    let bad_collection = client
        .process_asset(pb::ProcessAssetRequest {
            collection_id: "not-a-uuid".into(),
            content: b"hello world".to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_collection.code(), Code::InvalidArgument);
    assert!(bad_collection.message().contains("collection_id"));
    assert_eq!(count(&db, "SELECT count(*) FROM worker.assets").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM worker.ingest_jobs").await,
        0
    );
    let stored = std::fs::read_dir(&worker.objects_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(stored, 0, "no object may be written for rejected input");
    worker.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_distinguished() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let missing = uuid::Uuid::new_v4().to_string();
    let status = client
        .get_asset(pb::GetAssetRequest {
            id: missing.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&missing));
    let status = client
        .delete_asset(pb::DeleteAssetRequest { id: missing })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .get_asset(pb::GetAssetRequest { id: "42".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    worker.stop().await;
}

#[tokio::test]
async fn search_and_chat_reject_blank_queries_and_out_of_range_k() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    for query in ["", "   \n\t"] {
        let status = client
            .vector_search(pb::VectorSearchRequest {
                query: query.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("query"));
        let status = client
            .chat_stream(pb::ChatStreamRequest {
                question: query.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    let status = client
        .vector_search(pb::VectorSearchRequest {
            query: "ok".into(),
            top_k: 1000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("top_k"));
    worker.stop().await;
}

#[tokio::test]
async fn chat_streams_sources_then_deltas_then_a_cited_final_message() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let assets = ingest_corpus(&mut client).await;
    let mut stream = client
        .chat_stream(pb::ChatStreamRequest {
            question: "What is magma called when it reaches the surface?".into(),
            top_k: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(message) = stream.next().await {
        events.push(message.unwrap().event.unwrap());
    }
    let Event::Sources(sources) = &events[0] else {
        panic!("first event must be sources: {:?}", events[0])
    };
    assert_eq!(sources.sources[0].index, 1);
    assert_eq!(
        sources.sources[0].hit.as_ref().unwrap().asset_id,
        assets[1].id
    );
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| {
            if let Event::Delta(d) = e {
                Some(d.text.as_str())
            } else {
                None
            }
        })
        .collect();
    assert!(deltas.len() >= 2, "expected several deltas, got {deltas:?}");
    let answer = deltas.concat();
    assert!(answer.contains("lava"), "{answer}");
    assert!(answer.contains("[1]"), "{answer}");
    let Some(Event::Final(last)) = events.last() else {
        panic!("last event must be final")
    };
    assert_eq!(last.answer_mode, pb::AnswerMode::Extractive as i32);
    assert_eq!(last.finish_reason, pb::FinishReason::Stop as i32);
    // Extractive answers quote their sources: marked quoted, never claimed verified.
    assert!(
        last.citations
            .iter()
            .any(|c| c.source_index == 1 && c.quoted && !c.verified)
    );
    assert!(!last.abstained);
    assert_eq!(last.usage.unwrap().completion_tokens as usize, deltas.len());
    assert!(
        events[1..events.len() - 1]
            .iter()
            .all(|e| matches!(e, Event::Delta(_)))
    );
    worker.stop().await;
}

#[tokio::test]
async fn chat_over_an_empty_knowledge_base_says_it_found_nothing() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let mut stream = client
        .chat_stream(pb::ChatStreamRequest {
            question: "What is the capital of Peru?".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut answer = String::new();
    let mut final_message = None;
    while let Some(message) = stream.next().await {
        match message.unwrap().event.unwrap() {
            Event::Sources(s) => assert!(s.sources.is_empty()),
            Event::Delta(d) => answer.push_str(&d.text),
            Event::Final(f) => final_message = Some(f),
        }
    }
    assert!(answer.contains("could not find"), "{answer}");
    assert!(final_message.unwrap().citations.is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn watch_streams_progress_until_the_asset_is_ready() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let queued = client
        .process_asset(upload("p.md", PHOTOSYNTHESIS, false))
        .await
        .unwrap()
        .into_inner();
    let id = queued.asset.unwrap().id;
    let mut stream = client
        .watch_asset(pb::WatchAssetRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let mut states = Vec::new();
    while let Some(message) = stream.next().await {
        states.push(message.unwrap().asset.unwrap());
    }
    let last = states.last().unwrap();
    assert_eq!(last.status, pb::AssetStatus::Ready as i32);
    assert_eq!(last.id, id);
    assert!((last.progress - 1.0).abs() < f32::EPSILON);
    worker.stop().await;
}

#[tokio::test]
async fn deleting_an_asset_removes_its_chunks_vectors_and_bytes() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let assets = ingest_corpus(&mut client).await;
    let victim = &assets[0];
    client
        .delete_asset(pb::DeleteAssetRequest {
            id: victim.id.clone(),
        })
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let remaining: i64 =
        sqlx::query_scalar("SELECT count(*) FROM worker.chunks WHERE asset_id = $1::uuid")
            .bind(&victim.id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(remaining, 0);
    let vectors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM worker.embeddings WHERE asset_id = $1::uuid")
            .bind(&victim.id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(vectors, 0);
    let status = client
        .get_asset(pb::GetAssetRequest {
            id: victim.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let search = client
        .vector_search(pb::VectorSearchRequest {
            query: "photosynthesis chlorophyll".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(search.hits.iter().all(|h| h.asset_id != victim.id));
    let object = worker
        .objects_dir
        .join(thinkbank_ai_worker::DEFAULT_TENANT_ID.to_string())
        .join(victim.collection_id.clone())
        .join(&victim.sha256);
    assert!(
        !object.exists(),
        "stored bytes must be deleted: {}",
        object.display()
    );
    worker.stop().await;
}

#[tokio::test]
async fn list_pages_newest_first_and_filters_by_status() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let assets = ingest_corpus(&mut client).await;
    let first = client
        .list_assets(pb::ListAssetsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.assets.len(), 2);
    assert_eq!(first.assets[0].id, assets[2].id);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_assets(pb::ListAssetsRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.assets.len(), 1);
    assert_eq!(second.assets[0].id, assets[0].id);
    assert!(second.next_page_token.is_empty());
    let failed = client
        .list_assets(pb::ListAssetsRequest {
            status: pb::AssetStatus::Failed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(failed.assets.is_empty());
    let status = client
        .list_assets(pb::ListAssetsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    worker.stop().await;
}

#[tokio::test]
async fn get_embedding_returns_model_dimensions_and_validates_input() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let response = client
        .get_embedding(pb::GetEmbeddingRequest {
            texts: vec!["hello".into(), "world".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.model, "all-minilm-l6-v2");
    assert_eq!(response.dimensions, 384);
    assert_eq!(response.embeddings.len(), 2);
    assert!(
        response
            .embeddings
            .iter()
            .all(|e| e.values.len() == 384 && !e.truncated)
    );
    let empty = client
        .get_embedding(pb::GetEmbeddingRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let long = "word ".repeat(600);
    let strict = client
        .get_embedding(pb::GetEmbeddingRequest {
            texts: vec![long.clone()],
            strict: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(strict.code(), Code::InvalidArgument);
    assert!(strict.message().contains("token limit"));
    let lenient = client
        .get_embedding(pb::GetEmbeddingRequest {
            texts: vec![long],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(lenient.embeddings[0].truncated);
    let unknown = client
        .get_embedding(pb::GetEmbeddingRequest {
            texts: vec!["x".into()],
            model: "gpt-9".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    worker.stop().await;
}
