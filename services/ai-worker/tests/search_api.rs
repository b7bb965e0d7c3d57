//! VectorSearch modes, filters, explain, pagination and validation against a real PostgreSQL
//! and the real worker on 127.0.0.1:0.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use prost_types::{Struct, Timestamp, Value, value::Kind};
use thinkbank_proto::v1::{self as pb, ai_worker_client::AiWorkerClient};
use thinkbank_testkit::{TestDatabase, WorkerHandle, spawn_worker};
use tonic::{Code, transport::Channel};

const MARSUPIALS: &str = "# Marsupials\n\nKangaroos, wallabies and koalas are marsupials native to Australia. Their young develop in a pouch after birth.\n";
const RUNBOOK: &str = "# Deployment runbook\n\nBefore a release, the on-call engineer from team koala drains the load balancer, applies the database migrations and watches the error rate for ten minutes; error E7731 means the migration lock is held.\n";
const PHOTOSYNTHESIS: &str = "# Photosynthesis\n\nPhotosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make glucose and release oxygen.\n";
const VOLCANOES: &str = "Volcanoes are openings in the crust of the Earth through which molten rock, ash and gases escape. Magma that reaches the surface is called lava.";

type Client = AiWorkerClient<Channel>;

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(prost_types::ListValue { values })),
    }
}

struct Corpus {
    _db: TestDatabase,
    worker: WorkerHandle,
    client: Client,
    /// marsupials.md, runbook.md, photosynthesis.md, volcanoes.txt, in upload order.
    ids: Vec<String>,
}

/// Uploads the four documents with metadata `{"team", "year"}` and waits until they are ready.
async fn corpus() -> Corpus {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let mut ids = Vec::new();
    for (name, text, team, year) in [
        ("marsupials.md", MARSUPIALS, "zoo", 2019.0),
        ("runbook.md", RUNBOOK, "ops", 2021.0),
        ("photosynthesis.md", PHOTOSYNTHESIS, "bio", 2023.0),
        ("volcanoes.txt", VOLCANOES, "geo", 2025.0),
    ] {
        let metadata = Struct {
            fields: [
                ("team".to_owned(), string(team)),
                ("year".to_owned(), number(year)),
            ]
            .into(),
        };
        let request = pb::ProcessAssetRequest {
            filename: name.into(),
            content: text.as_bytes().to_vec().into(),
            metadata: Some(metadata),
            ..Default::default()
        };
        let asset = thinkbank_testkit::ingest_ready(&mut client, request).await;
        ids.push(asset.id);
    }
    Corpus {
        _db: db,
        worker,
        client,
        ids,
    }
}

fn request(query: &str, mode: pb::SearchMode) -> pb::VectorSearchRequest {
    pb::VectorSearchRequest {
        query: query.into(),
        mode: mode as i32,
        top_k: 10,
        ..Default::default()
    }
}

async fn search(client: &mut Client, request: pb::VectorSearchRequest) -> pb::VectorSearchResponse {
    client.vector_search(request).await.unwrap().into_inner()
}

fn asset_ids(response: &pb::VectorSearchResponse) -> Vec<&str> {
    response.hits.iter().map(|h| h.asset_id.as_str()).collect()
}

#[tokio::test]
async fn keyword_search_finds_an_exact_term_that_vector_search_ranks_low() {
    let mut c = corpus().await;
    let vector = search(&mut c.client, request("team koala", pb::SearchMode::Vector)).await;
    // The embedding ranks the marsupials first: "koala" means the animal to it.
    assert_eq!(vector.hits[0].asset_id, c.ids[0]);
    assert!(
        vector.hits[0].snippet.contains("<mark>koalas</mark>"),
        "{}",
        vector.hits[0].snippet
    );
    // A first vector page is highlighted by the vector statement itself, a hybrid page
    // afterwards: the snippets are the same either way.
    let hybrid = search(&mut c.client, request("team koala", pb::SearchMode::Hybrid)).await;
    assert_eq!(hybrid.hits.len(), vector.hits.len());
    for hit in &vector.hits {
        let same = hybrid.hits.iter().find(|h| h.chunk_id == hit.chunk_id);
        assert_eq!(same.map(|h| &h.snippet), Some(&hit.snippet));
    }

    let keyword = search(
        &mut c.client,
        request("team koala", pb::SearchMode::Keyword),
    )
    .await;
    assert_eq!(keyword.mode, pb::SearchMode::Keyword as i32);
    // A natural query matches any of its terms and BM25 ranks the chunk with both first; the
    // marsupials, with "koalas" alone, follow.
    assert_eq!(
        asset_ids(&keyword),
        vec![c.ids[1].as_str(), c.ids[0].as_str()]
    );
    assert!(keyword.hits[0].score > keyword.hits[1].score && keyword.hits[1].score > 0.0);
    assert!(
        keyword.hits[0].snippet.contains("<mark>koala</mark>"),
        "{}",
        keyword.hits[0].snippet
    );
    assert_eq!(keyword.hits[0].media_type, "text/markdown");
    assert!(keyword.model.is_empty(), "no embedding in keyword mode");
    let timings = keyword.timings.unwrap();
    assert!(timings.keyword_ms > 0.0);
    assert!(timings.vector_ms == 0.0 && timings.embed_ms == 0.0);

    // websearch syntax: quoted phrases and exclusion.
    let phrase = search(
        &mut c.client,
        request("\"load balancer\" -kangaroos", pb::SearchMode::Keyword),
    )
    .await;
    assert_eq!(asset_ids(&phrase), vec![c.ids[1].as_str()]);
    c.worker.stop().await;
}

#[tokio::test]
async fn hybrid_search_is_the_default_and_explains_its_fusion() {
    let mut c = corpus().await;
    let response = search(
        &mut c.client,
        pb::VectorSearchRequest {
            query: "koala release engineer".into(),
            explain: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(response.mode, pb::SearchMode::Hybrid as i32);
    assert_eq!(response.model, "all-minilm-l6-v2");
    let first = &response.hits[0];
    assert_eq!(first.asset_id, c.ids[1]);
    let explain = first.explain.as_ref().unwrap();
    assert!(
        explain.vector_rank >= 1 && explain.keyword_rank == 1,
        "{explain:?}"
    );
    assert!(explain.vector_distance.is_some() && explain.keyword_score.unwrap() > 0.0);
    let fused = explain.vector_contribution + explain.keyword_contribution;
    assert!((f64::from(first.score) - fused).abs() < 1e-6, "{explain:?}");
    assert!((explain.keyword_contribution - 1.0 / 61.0).abs() < 1e-9);
    // Vector-only hits carry no keyword rank.
    let vector_only = response
        .hits
        .iter()
        .find(|h| h.explain.as_ref().unwrap().keyword_rank == 0)
        .unwrap();
    assert!(
        vector_only
            .explain
            .as_ref()
            .unwrap()
            .keyword_score
            .is_none()
    );
    let timings = response.timings.unwrap();
    assert!(timings.embed_ms > 0.0 && timings.vector_ms > 0.0 && timings.keyword_ms > 0.0);
    assert!(timings.total_ms >= timings.embed_ms + timings.vector_ms);

    // Weights decide between the legs: keyword-only fusion puts the term match first,
    // and without `explain` no explain is attached.
    let weighted = search(
        &mut c.client,
        pb::VectorSearchRequest {
            query: "team koala".into(),
            fusion: Some(pb::FusionOptions {
                rrf_k: 10,
                vector_weight: Some(0.0),
                keyword_weight: Some(1.0),
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(weighted.hits[0].asset_id, c.ids[1]);
    assert!((weighted.hits[0].score - 1.0 / 11.0).abs() < 1e-6);
    assert!(weighted.hits.iter().all(|h| h.explain.is_none()));

    // A stop-word-only query still works in hybrid mode (vector leg alone) …
    let stop_words = search(&mut c.client, request("the of and", pb::SearchMode::Hybrid)).await;
    assert!(!stop_words.hits.is_empty());
    // … but not in keyword mode.
    let status = c
        .client
        .vector_search(request("the of and", pb::SearchMode::Keyword))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("stop words"),
        "{}",
        status.message()
    );
    c.worker.stop().await;
}

#[tokio::test]
async fn every_search_filter_restricts_both_legs_and_they_combine() {
    let mut c = corpus().await;
    let base = |mode| pb::VectorSearchRequest {
        query: "plants or volcano or kangaroos or release".into(),
        mode: mode as i32,
        ..Default::default()
    };
    for mode in [
        pb::SearchMode::Vector,
        pb::SearchMode::Keyword,
        pb::SearchMode::Hybrid,
    ] {
        let all = search(&mut c.client, base(mode)).await;
        let mut seen: Vec<&str> = asset_ids(&all);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4, "{mode:?} sees every asset unfiltered");

        let cases: Vec<(pb::VectorSearchRequest, Vec<&str>)> = vec![
            (
                pb::VectorSearchRequest {
                    asset_ids: vec![c.ids[2].clone()],
                    ..base(mode)
                },
                vec![&c.ids[2]],
            ),
            (
                pb::VectorSearchRequest {
                    media_types: vec!["text/plain".into()],
                    ..base(mode)
                },
                vec![&c.ids[3]],
            ),
            (
                pb::VectorSearchRequest {
                    collection_ids: vec![uuid::Uuid::new_v4().to_string()],
                    ..base(mode)
                },
                vec![],
            ),
            (
                pb::VectorSearchRequest {
                    created_after: Some(Timestamp {
                        seconds: chrono::Utc::now().timestamp() + 3600,
                        nanos: 0,
                    }),
                    ..base(mode)
                },
                vec![],
            ),
            (
                pb::VectorSearchRequest {
                    metadata: vec![pb::MetadataCondition {
                        key: "team".into(),
                        op: pb::MetadataOperator::Eq as i32,
                        value: Some(string("ops")),
                    }],
                    ..base(mode)
                },
                vec![&c.ids[1]],
            ),
            (
                pb::VectorSearchRequest {
                    metadata: vec![pb::MetadataCondition {
                        key: "team".into(),
                        op: pb::MetadataOperator::In as i32,
                        value: Some(list(vec![string("zoo"), string("geo")])),
                    }],
                    ..base(mode)
                },
                vec![&c.ids[0], &c.ids[3]],
            ),
            (
                // Combined: year > 2020 AND year < 2025 AND team != ops.
                pb::VectorSearchRequest {
                    metadata: vec![
                        pb::MetadataCondition {
                            key: "year".into(),
                            op: pb::MetadataOperator::Gt as i32,
                            value: Some(number(2020.0)),
                        },
                        pb::MetadataCondition {
                            key: "year".into(),
                            op: pb::MetadataOperator::Lt as i32,
                            value: Some(number(2025.0)),
                        },
                        pb::MetadataCondition {
                            key: "team".into(),
                            op: pb::MetadataOperator::Ne as i32,
                            value: Some(string("ops")),
                        },
                    ],
                    created_before: Some(Timestamp {
                        seconds: chrono::Utc::now().timestamp() + 3600,
                        nanos: 0,
                    }),
                    ..base(mode)
                },
                vec![&c.ids[2]],
            ),
        ];
        for (i, (request, expected)) in cases.into_iter().enumerate() {
            let response = search(&mut c.client, request).await;
            let mut got = asset_ids(&response);
            got.sort_unstable();
            got.dedup();
            let mut expected = expected;
            expected.sort_unstable();
            assert_eq!(got, expected, "{mode:?} case {i}");
        }
    }
    c.worker.stop().await;
}

#[tokio::test]
async fn search_pages_do_not_overlap_and_min_score_drops_weak_hits() {
    let mut c = corpus().await;
    let page = |token: &str| pb::VectorSearchRequest {
        query: "nature".into(),
        mode: pb::SearchMode::Vector as i32,
        top_k: 2,
        page_token: token.into(),
        ..Default::default()
    };
    let first = search(&mut c.client, page("")).await;
    assert_eq!(first.hits.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = search(&mut c.client, page(&first.next_page_token)).await;
    assert_eq!(second.hits.len(), 2);
    assert!(
        second.next_page_token.is_empty(),
        "four assets, four chunks"
    );
    assert!(first.hits[1].score >= second.hits[0].score);
    // The first page is highlighted in the vector statement, later ones separately.
    assert!(
        first
            .hits
            .iter()
            .chain(&second.hits)
            .all(|h| !h.snippet.is_empty())
    );
    let mut ids: Vec<&str> = first
        .hits
        .iter()
        .chain(&second.hits)
        .map(|h| h.chunk_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    let threshold = first.hits[1].score;
    let strong = search(
        &mut c.client,
        pb::VectorSearchRequest {
            min_score: threshold,
            top_k: 10,
            ..page("")
        },
    )
    .await;
    assert_eq!(strong.hits.len(), 2);
    assert!(strong.hits.iter().all(|h| h.score >= threshold));
    c.worker.stop().await;
}

#[tokio::test]
async fn keyword_search_uses_the_collection_text_search_configuration() {
    let db = TestDatabase::create().await;
    // 'simple' keeps stop words and does not stem: "the" becomes a searchable term.
    let mut conn = db.connect().await;
    let worker = spawn_worker(&db).await;
    sqlx::query("UPDATE worker.collections SET text_search_config = 'simple'")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut client = worker.client().await;
    client
        .process_asset(pb::ProcessAssetRequest {
            filename: "runbook.md".into(),
            content: RUNBOOK.as_bytes().to_vec().into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let the = search(&mut client, request("the", pb::SearchMode::Keyword)).await;
    assert_eq!(the.hits.len(), 1);
    // Without stemming "drain" does not match "drains".
    let drain = search(&mut client, request("drain", pb::SearchMode::Keyword)).await;
    assert!(drain.hits.is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn malformed_search_requests_are_rejected_naming_the_problem() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let ok = || request("volcano", pb::SearchMode::Hybrid);
    let condition = |key: &str, op: i32, value: Option<Value>| pb::MetadataCondition {
        key: key.into(),
        op,
        value,
    };
    let cases: Vec<(pb::VectorSearchRequest, &str)> = vec![
        (pb::VectorSearchRequest { top_k: 101, ..ok() }, "top_k"),
        (pb::VectorSearchRequest { mode: 42, ..ok() }, "mode"),
        (
            pb::VectorSearchRequest {
                ef_search: 5000,
                ..ok()
            },
            "ef_search",
        ),
        (
            pb::VectorSearchRequest {
                page_token: "nonsense".into(),
                ..ok()
            },
            "page_token",
        ),
        (
            pb::VectorSearchRequest {
                metadata: vec![condition("", 1, Some(string("x")))],
                ..ok()
            },
            "metadata[0]: key must not be empty",
        ),
        (
            pb::VectorSearchRequest {
                metadata: vec![
                    condition("a", 1, Some(string("x"))),
                    condition("b", 99, Some(string("x"))),
                ],
                ..ok()
            },
            "metadata[1]: unknown operator 99",
        ),
        (
            pb::VectorSearchRequest {
                metadata: vec![condition(
                    "a",
                    pb::MetadataOperator::In as i32,
                    Some(string("x")),
                )],
                ..ok()
            },
            "list",
        ),
        (
            pb::VectorSearchRequest {
                metadata: vec![condition("a", pb::MetadataOperator::Eq as i32, None)],
                ..ok()
            },
            "value is required",
        ),
        (
            pb::VectorSearchRequest {
                fusion: Some(pb::FusionOptions {
                    vector_weight: Some(-1.0),
                    ..Default::default()
                }),
                ..ok()
            },
            "fusion.vector_weight",
        ),
        (
            pb::VectorSearchRequest {
                asset_ids: vec!["not-a-uuid".into()],
                ..ok()
            },
            "asset_ids",
        ),
        (
            request("!!! ???", pb::SearchMode::Keyword),
            "no searchable terms",
        ),
    ];
    for (request, needle) in cases {
        let status = client.vector_search(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{needle}");
        assert!(
            status.message().contains(needle),
            "expected '{needle}' in '{}'",
            status.message()
        );
    }
    worker.stop().await;
}

#[tokio::test]
async fn a_shadow_profile_naming_an_unknown_model_stops_start_up_with_a_clear_error() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = thinkbank_testkit::worker_config(&db, &objects);
    config.search_shadow = Some(
        thinkbank_ai_worker::search::shadow::parse_profile(
            r#"{"name": "next-model", "model": "e5-large"}"#,
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = thinkbank_ai_worker::run_with_admin(
        config,
        listener,
        admin,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("THINKBANK_SEARCH_SHADOW") && message.contains("e5-large"),
        "{message}"
    );
}

/// Row-level security must not shrink the planner's idea of how many rows a tenant has: with
/// the policies' collection check estimated at 0.5 %, vector search at 100k chunks sorted every
/// row instead of walking its HNSW index (found by `make bench-search`).
#[tokio::test]
async fn row_level_security_keeps_the_planners_row_estimates() {
    let db = TestDatabase::create().await;
    let pool = thinkbank_ai_worker::db::connect_and_migrate(&db.url, 2)
        .await
        .unwrap();
    let rows = 2000;
    for statement in [
        "INSERT INTO worker.assets (id, tenant_id, collection_id, filename, media_type, size_bytes, \
         sha256, object_key, status, stage, embedding_model) VALUES ('00000000-0000-0000-0000-0000000000aa', \
         '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000001', 'a.txt', \
         'text/plain', 1, 'x', 'k', 'ready', 'ready', 'all-minilm-l6-v2')",
        "INSERT INTO worker.chunks (id, tenant_id, collection_id, asset_id, chunk_index, text, \
         char_start, char_end, token_count, tsv) SELECT gen_random_uuid(), \
         '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000001', \
         '00000000-0000-0000-0000-0000000000aa', i, 'text ' || i, 0, 1, 1, to_tsvector('text') \
         FROM generate_series(1, 2000) AS i",
        "INSERT INTO worker.embeddings (chunk_id, model, tenant_id, collection_id, asset_id, embedding) \
         SELECT id, 'all-minilm-l6-v2', tenant_id, collection_id, asset_id, \
         array_fill(chunk_index::real, ARRAY[384])::vector FROM worker.chunks",
        "ANALYZE",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let tenant = thinkbank_ai_worker::tenancy::Tenant::default_tenant();
    for (table, limited) in [
        ("embeddings", false),
        ("chunks", false),
        ("embeddings", true),
    ] {
        let tenant = if limited {
            tenant.clone().limited_to(vec![uuid::Uuid::from_u128(1)])
        } else {
            tenant.clone()
        };
        let mut tx = tenant.begin(&pool).await.unwrap();
        let plan: (serde_json::Value,) = sqlx::query_as(&format!(
            "EXPLAIN (FORMAT JSON) SELECT * FROM worker.{table} WHERE tenant_id = $1"
        ))
        .bind(tenant.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        let estimate = plan.0[0]["Plan"]["Plan Rows"].as_f64().unwrap();
        assert!(
            estimate >= f64::from(rows) / 4.0,
            "{table} (limited: {limited}): the planner expects {estimate} of {rows} rows"
        );
    }
}
