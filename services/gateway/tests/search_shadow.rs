//! Shadow retrieval profiles against a real PostgreSQL: sampled live searches are re-run with
//! the shadow profile off the request path, the comparison (overlap@k, Kendall tau, latency
//! delta) reaches the worker's metrics with the values the real result lists imply, a failing
//! shadow is counted and never touches the response, and REST searches are shadowed too.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use serde_json::{Value, json};
use thinkbank_proto::v1::{self as pb, ai_worker_client::AiWorkerClient};
use thinkbank_testkit::{
    TestDatabase, WorkerHandle, ingest_ready, parse_shadow_profile,
    prometheus::{Scrape, scrape},
    spawn_gateway, spawn_worker, spawn_worker_with, worker_config,
};
use tonic::transport::Channel;

const DOCUMENTS: [(&str, &str); 4] = [
    (
        "marsupials.md",
        "# Marsupials\n\nKangaroos, wallabies and koalas are marsupials native to Australia. Their young develop in a pouch after birth.\n",
    ),
    (
        "runbook.md",
        "# Deployment runbook\n\nBefore a release, the on-call engineer from team koala drains the load balancer and applies the database migrations; error E7731 means the migration lock is held.\n",
    ),
    (
        "photosynthesis.md",
        "# Photosynthesis\n\nGreen plants use sunlight, water and carbon dioxide to make glucose and release oxygen.\n",
    ),
    (
        "volcanoes.txt",
        "Volcanoes are openings in the crust of the Earth through which molten rock, ash and gases escape. Magma that reaches the surface is called lava.",
    ),
];

type Client = AiWorkerClient<Channel>;

async fn shadow_worker(db: &TestDatabase, profile: &str) -> WorkerHandle {
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(db, &objects);
    config.ingest_concurrency = 0;
    config.search_shadow = Some(parse_shadow_profile(profile).unwrap());
    spawn_worker_with(config).await
}

fn request(query: &str, mode: pb::SearchMode) -> pb::VectorSearchRequest {
    pb::VectorSearchRequest {
        query: query.into(),
        mode: mode as i32,
        top_k: 3,
        ..Default::default()
    }
}

async fn ranked(client: &mut Client, request: pb::VectorSearchRequest) -> Vec<(String, f32)> {
    let response = client.vector_search(request).await.unwrap().into_inner();
    response
        .hits
        .into_iter()
        .map(|h| (h.chunk_id, h.score))
        .collect()
}

fn ids(hits: &[(String, f32)]) -> Vec<String> {
    hits.iter().map(|(id, _)| id.clone()).collect()
}

/// The test's own overlap@k: shared hits over the larger page.
fn overlap(primary: &[String], shadow: &[String]) -> f64 {
    let shared = primary.iter().filter(|id| shadow.contains(id)).count();
    shared as f64 / primary.len().max(shadow.len()).max(1) as f64
}

/// The test's own Kendall tau over shared hits (no ties): `None` below two.
fn tau(primary: &[String], shadow: &[String]) -> Option<f64> {
    let ranks: Vec<usize> = primary
        .iter()
        .filter_map(|id| shadow.iter().position(|s| s == id))
        .collect();
    if ranks.len() < 2 {
        return None;
    }
    let (mut agree, mut pairs) = (0.0, 0.0);
    for i in 0..ranks.len() {
        for j in i + 1..ranks.len() {
            agree += if ranks[i] < ranks[j] { 1.0 } else { -1.0 };
            pairs += 1.0;
        }
    }
    Some(agree / pairs)
}

fn series(scrape: &Scrape, name: &str, profile: &str) -> f64 {
    scrape.sum(name, &[("profile", profile)])
}

fn outcomes(scrape: &Scrape, profile: &str, outcome: &str) -> f64 {
    scrape.sum(
        "thinkbank_search_shadow_comparisons_total",
        &[("profile", profile), ("outcome", outcome)],
    )
}

/// Waits until `profile` has finished `done` comparisons (compared or error) in total.
async fn settled(worker: &WorkerHandle, profile: &str, done: f64) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = scrape(&worker.metrics_url()).await;
        let finished = outcomes(&scrape, profile, "compared") + outcomes(&scrape, profile, "error");
        if finished >= done || tokio::time::Instant::now() > deadline {
            assert_eq!(finished, done, "shadow comparisons of {profile}");
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn shadow_profiles_compare_real_results_and_never_change_the_response() {
    let db = TestDatabase::create().await;
    let plain = spawn_worker(&db).await;
    let mut reference = plain.client().await;
    for (name, text) in DOCUMENTS {
        let request = pb::ProcessAssetRequest {
            filename: name.into(),
            content: text.as_bytes().to_vec().into(),
            ..Default::default()
        };
        ingest_ready(&mut reference, request).await;
    }

    // Every live search is shadowed by vector-only retrieval.
    let vector_only = shadow_worker(
        &db,
        r#"{"name": "vector-only", "mode": "vector", "sample_rate": 1.0}"#,
    )
    .await;
    let mut shadowed = vector_only.client().await;
    let (mut expected_overlap, mut expected_tau, mut tau_count) = (0.0, 0.0, 0.0);
    let primaries = [
        request("kangaroo pouch", pb::SearchMode::Vector),
        request("team koala release", pb::SearchMode::Hybrid),
        request("migration lock E7731", pb::SearchMode::Keyword),
    ];
    for (n, primary) in primaries.iter().enumerate() {
        let with_shadow = ranked(&mut shadowed, primary.clone()).await;
        let without = ranked(&mut reference, primary.clone()).await;
        assert_eq!(
            with_shadow, without,
            "a shadow must not change the response"
        );
        // What the shadow profile returns for this query, asked of the plain worker.
        let shadow_hits = ranked(
            &mut reference,
            pb::VectorSearchRequest {
                mode: pb::SearchMode::Vector as i32,
                ..primary.clone()
            },
        )
        .await;
        expected_overlap += overlap(&ids(&without), &ids(&shadow_hits));
        if let Some(t) = tau(&ids(&without), &ids(&shadow_hits)) {
            expected_tau += t;
            tau_count += 1.0;
        }
        settled(&vector_only, "vector-only", (n + 1) as f64).await;
    }
    let scrape = settled(&vector_only, "vector-only", 3.0).await;
    assert_eq!(outcomes(&scrape, "vector-only", "compared"), 3.0);
    assert_eq!(outcomes(&scrape, "vector-only", "skipped_busy"), 0.0);
    let overlap_sum = series(
        &scrape,
        "thinkbank_search_shadow_overlap_ratio_sum",
        "vector-only",
    );
    assert!(
        (overlap_sum - expected_overlap).abs() < 1e-9,
        "overlap sum {overlap_sum}, expected {expected_overlap}"
    );
    // The keyword primary found one runbook chunk of the three vector hits.
    assert!(expected_overlap < 3.0, "the modes must disagree somewhere");
    let tau_sum = series(
        &scrape,
        "thinkbank_search_shadow_rank_correlation_sum",
        "vector-only",
    );
    let tau_seen = series(
        &scrape,
        "thinkbank_search_shadow_rank_correlation_count",
        "vector-only",
    );
    assert_eq!(tau_seen, tau_count);
    assert!(
        (tau_sum - expected_tau).abs() < 1e-9,
        "tau sum {tau_sum}, expected {expected_tau}"
    );
    let deltas = series(
        &scrape,
        "thinkbank_search_shadow_latency_delta_seconds_count",
        "vector-only",
    );
    assert_eq!(deltas, 3.0);

    // REST searches go through VectorSearch and are shadowed the same way.
    let gateway = spawn_gateway(&vector_only.url(), &db.url).await;
    let response = gateway
        .client()
        .post(gateway.url("/api/v1/search"))
        .json(&json!({"query": "volcano lava", "top_k": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["hits"][0]["filename"], "volcanoes.txt", "{body}");
    settled(&vector_only, "vector-only", 4.0).await;

    // Half the searches are shadowed by keyword-only retrieval: the 2nd and the 4th. The 2nd
    // has only stop words, so the keyword shadow fails, which the vector primary never sees.
    let keyword_half = shadow_worker(
        &db,
        r#"{"name": "keyword-half", "mode": "keyword", "sample_rate": 0.5}"#,
    )
    .await;
    let mut half = keyword_half.client().await;
    let queries = [
        "kangaroo",
        "the and of",
        "volcano",
        "photosynthesis sunlight",
    ];
    for (n, text) in queries.into_iter().enumerate() {
        let primary = request(text, pb::SearchMode::Vector);
        let with_shadow = ranked(&mut half, primary.clone()).await;
        assert_eq!(with_shadow, ranked(&mut reference, primary).await);
        assert_eq!(with_shadow.len(), 3, "{text}");
        let searched = n + 1;
        settled(&keyword_half, "keyword-half", (searched / 2) as f64).await;
    }
    let scrape = settled(&keyword_half, "keyword-half", 2.0).await;
    assert_eq!(outcomes(&scrape, "keyword-half", "error"), 1.0);
    assert_eq!(outcomes(&scrape, "keyword-half", "compared"), 1.0);
    // "photosynthesis sunlight": the keyword shadow finds one of the three vector hits.
    let overlap_sum = series(
        &scrape,
        "thinkbank_search_shadow_overlap_ratio_sum",
        "keyword-half",
    );
    assert!((overlap_sum - 1.0 / 3.0).abs() < 1e-9, "{overlap_sum}");

    gateway.stop().await;
    keyword_half.stop().await;
    vector_only.stop().await;
    plain.stop().await;
}
