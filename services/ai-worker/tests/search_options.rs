//! VectorSearch's document-level results (`group_by`) and the optional reranking stage, over
//! the real worker, PostgreSQL and a `/rerank` server speaking the Cohere/Jina wire shape.

use thinkbank_proto::v1::{self as pb, ai_worker_client::AiWorkerClient};
use thinkbank_testkit::{
    FakeLlm, Script, TestDatabase, fake_rerank, fresh_objects_dir, ingest_ready, spawn_worker_with,
    worker_config,
};
use tonic::{Code, transport::Channel};

/// A long document about tides (several chunks), and two short ones.
fn documents() -> Vec<(&'static str, String)> {
    let long: String = (0..40)
        .map(|i| {
            format!(
                "Paragraph {i}: the tides rise and fall twice a day because the Moon pulls \
                 the oceans, and spring tides come when Sun and Moon align.\n\n"
            )
        })
        .collect();
    vec![
        ("tides-handbook.txt", long),
        (
            "harbour.txt",
            "Harbour pilots read the tide tables before every departure.".into(),
        ),
        (
            "bakery.txt",
            "The bakery sells rye bread and cinnamon rolls every morning.".into(),
        ),
    ]
}

async fn ingest(client: &mut AiWorkerClient<Channel>) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, text) in documents() {
        let request = pb::ProcessAssetRequest {
            filename: name.into(),
            content: text.into_bytes().into(),
            ..Default::default()
        };
        let asset = ingest_ready(client, request).await;
        ids.push(asset.id);
    }
    ids
}

fn request(query: &str) -> pb::VectorSearchRequest {
    pb::VectorSearchRequest {
        query: query.into(),
        top_k: 10,
        explain: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn grouping_by_asset_returns_each_document_once_with_its_best_chunk() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with(worker_config(&db, &fresh_objects_dir())).await;
    let mut client = worker.client().await;
    let ids = ingest(&mut client).await;

    let chunks = client
        .vector_search(request("why do tides rise and fall"))
        .await
        .unwrap()
        .into_inner();
    let from_handbook = chunks.hits.iter().filter(|h| h.asset_id == ids[0]).count();
    assert!(
        from_handbook >= 3,
        "the handbook has several matching chunks"
    );

    let grouped = client
        .vector_search(pb::VectorSearchRequest {
            group_by: pb::SearchGroupBy::Asset as i32,
            ..request("why do tides rise and fall")
        })
        .await
        .unwrap()
        .into_inner();
    let assets: Vec<&str> = grouped.hits.iter().map(|h| h.asset_id.as_str()).collect();
    let mut distinct = assets.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        assets.len(),
        distinct.len(),
        "one hit per asset: {assets:?}"
    );
    assert_eq!(assets.len(), 3, "every document once: {assets:?}");
    // The document's best chunk stands for it: the chunk-level winner.
    assert_eq!(grouped.hits[0].chunk_id, chunks.hits[0].chunk_id);

    // Pages count documents.
    let first = client
        .vector_search(pb::VectorSearchRequest {
            group_by: pb::SearchGroupBy::Asset as i32,
            top_k: 2,
            ..request("why do tides rise and fall")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.hits.len(), 2);
    let second = client
        .vector_search(pb::VectorSearchRequest {
            group_by: pb::SearchGroupBy::Asset as i32,
            top_k: 2,
            page_token: first.next_page_token.clone(),
            ..request("why do tides rise and fall")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.hits.len(), 1);
    assert!(
        !first
            .hits
            .iter()
            .any(|h| h.asset_id == second.hits[0].asset_id)
    );

    let unknown = client
        .vector_search(pb::VectorSearchRequest {
            group_by: 9,
            ..request("tides")
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("group_by"),
        "{}",
        unknown.message()
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_configured_reranker_reorders_the_fused_candidates_and_explains_its_scores() {
    let fake = FakeLlm::start(Script::default()).await;
    let db = TestDatabase::create().await;
    let mut config = worker_config(&db, &fresh_objects_dir());
    config.rerank.rerank_url = Some(fake.rerank_url());
    let worker = spawn_worker_with(config).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;

    let query = "harbour pilots tide tables departure";
    let reranked = client
        .vector_search(request(query))
        .await
        .unwrap()
        .into_inner();
    let requests = fake.rerank_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["query"], query);
    let sent = requests[0]["documents"].as_array().unwrap().len();
    assert!(
        sent >= reranked.hits.len().min(20),
        "the fused candidates were sent"
    );
    // The order is the reranker's: its scores, recomputed here, never increase down the page.
    let scores: Vec<f64> = reranked
        .hits
        .iter()
        .map(|h| fake_rerank::score(query, &h.text))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(reranked.hits[0].filename == "harbour.txt");
    let explain = reranked.hits[0].explain.as_ref().unwrap();
    assert_eq!(explain.rerank_score, Some(scores[0]));
    assert!((f64::from(reranked.hits[0].score) - scores[0]).abs() < 1e-6);
    assert!(reranked.timings.unwrap().rerank_ms > 0.0);

    // A request may opt out.
    let plain = client
        .vector_search(pb::VectorSearchRequest {
            rerank: Some(false),
            ..request(query)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fake.rerank_requests().len(), 1);
    assert!(
        plain.hits[0]
            .explain
            .as_ref()
            .unwrap()
            .rerank_score
            .is_none()
    );
    assert_eq!(plain.timings.unwrap().rerank_ms, 0.0);
    worker.stop().await;

    // Asking for reranking where none is configured is a clear error.
    let plain_worker = spawn_worker_with(worker_config(&db, &fresh_objects_dir())).await;
    let mut client = plain_worker.client().await;
    let refused = client
        .vector_search(pb::VectorSearchRequest {
            rerank: Some(true),
            ..request(query)
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("THINKBANK_RERANK_URL"),
        "{}",
        refused.message()
    );
    plain_worker.stop().await;
}
