//! The keyword leg as BM25 over the real worker and PostgreSQL: natural questions match on any
//! term, rare terms outweigh common ones, titles outweigh bodies, operators keep their meaning,
//! a document that answers across its sections counts, and the term and document statistics
//! stay exact through ingestion, re-processing and deletion.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use sqlx::Row as _;
use thinkbank_proto::v1::{self as pb, ai_worker_client::AiWorkerClient};
use thinkbank_testkit::{
    Bm25, TestDatabase, WorkerHandle, fresh_objects_dir, ingest_ready, spawn_worker,
    spawn_worker_with, worker_config,
};
use tonic::transport::Channel;

const WENDELINE: &str = "The okapi named Wendeline prefers willow leaves and bananas. In spring \
    Wendeline had her hooves trimmed by Dr. Ferreira, who also checked her teeth.";
const GROCERIES: &str = "Remember to buy oat milk and coffee beans on Friday. The bakery \
    closes early, so go before noon.";
const SAMPLING: &str = "The BERNOULLI method scans the whole table and selects each row \
    independently. The SYSTEM method samples whole pages and is faster but less random.";
const SHELLS: &str = "Use chsh to change your login shell. The new shell must be listed in \
    /etc/shells, otherwise chsh refuses it.";

struct Library {
    db: TestDatabase,
    worker: WorkerHandle,
    client: AiWorkerClient<Channel>,
    ids: Vec<String>,
}

async fn library(docs: &[(&str, &str)]) -> Library {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    let mut ids = Vec::new();
    for (name, text) in docs {
        let request = pb::ProcessAssetRequest {
            filename: (*name).into(),
            content: text.as_bytes().to_vec().into(),
            ..Default::default()
        };
        ids.push(ingest_ready(&mut client, request).await.id);
    }
    Library {
        db,
        worker,
        client,
        ids,
    }
}

async fn keyword(client: &mut AiWorkerClient<Channel>, query: &str) -> Vec<(String, f32)> {
    let response = client
        .vector_search(pb::VectorSearchRequest {
            query: query.into(),
            mode: pb::SearchMode::Keyword as i32,
            top_k: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    response
        .hits
        .into_iter()
        .map(|h| (h.asset_id, h.score))
        .collect()
}

fn ids(hits: &[(String, f32)]) -> Vec<&str> {
    hits.iter().map(|(id, _)| id.as_str()).collect()
}

#[tokio::test]
async fn a_question_with_a_word_the_text_lacks_still_finds_the_note() {
    let mut lib = library(&[
        ("note.txt", WENDELINE),
        ("groceries.txt", GROCERIES),
        ("sampling.txt", SAMPLING),
        ("shells.txt", SHELLS),
    ])
    .await;
    // "eat" and "prefer to" are not all in the note: every term used to be required.
    let hits = keyword(&mut lib.client, "What does Wendeline prefer to eat?").await;
    assert_eq!(ids(&hits), [lib.ids[0].as_str()]);
    let hits = keyword(&mut lib.client, "Who trimmed Wendeline's hooves?").await;
    assert_eq!(ids(&hits).first(), Some(&lib.ids[0].as_str()));
    // Operators keep their meaning: a phrase must occur as written, an excluded word excludes.
    assert_eq!(
        ids(&keyword(&mut lib.client, "\"hooves trimmed\"").await),
        [lib.ids[0].as_str()]
    );
    assert!(
        keyword(&mut lib.client, "\"trimmed hooves\"")
            .await
            .is_empty()
    );
    assert!(
        keyword(&mut lib.client, "\"willow leaves\" -okapi")
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&keyword(&mut lib.client, "shell or bakery").await).len(),
        2,
        "`or` between alternatives"
    );
    lib.worker.stop().await;
}

#[tokio::test]
async fn a_rare_term_outweighs_a_common_one_and_titles_outweigh_bodies() {
    // "table" is in every document but one; "sampling" only in one.
    let common = "A table of contents lists every table in the report. Each table has a name.";
    let mut lib = library(&[
        ("one.txt", common),
        ("two.txt", common.replace("report", "book").as_str()),
        (
            "three.txt",
            "Sampling picks rows at random. The table is large.",
        ),
        ("four.txt", "The kitchen table seats six people around it."),
        ("five.txt", "An unrelated note about gardening and compost."),
    ])
    .await;
    let hits = keyword(&mut lib.client, "table sampling").await;
    assert_eq!(
        hits.first().map(|h| h.0.as_str()),
        Some(lib.ids[2].as_str()),
        "{hits:?}"
    );

    // The term once in the body of each; the longer one (which length normalisation puts
    // second) also has it in its file name, a title, and comes first.
    let mut lib2 = library(&[
        (
            "compost-guide.md",
            "# Garden notes\n\nLeaves, grass clippings and kitchen scraps turn into compost.\n\nKeep it moist and turn it weekly.",
        ),
        (
            "garden-notes.md",
            "# Garden notes\n\nLeaves, grass clippings and kitchen scraps turn into compost.",
        ),
    ])
    .await;
    let hits = keyword(&mut lib2.client, "compost").await;
    assert_eq!(ids(&hits), [lib2.ids[0].as_str(), lib2.ids[1].as_str()]);
    assert!(hits[0].1 > hits[1].1, "{hits:?}");
    lib.worker.stop().await;
    lib2.worker.stop().await;
}

/// About 60 words that share no term with the queries below: pads a section past one chunk.
fn filler(topic: &str) -> String {
    format!(
        "The keepers write down {topic} in the logbook every morning, together with the \
         weather, the temperature of the stable and the names of the visitors who came by. \
         Nothing in this paragraph is about anything in particular; it only makes the section \
         long enough to be a passage of its own, as real documents are. The logbook is kept \
         in a drawer next to the door, and anyone on duty may read it. "
    )
    .repeat(4)
}

#[tokio::test]
async fn a_document_that_answers_across_its_sections_outranks_a_passing_mention() {
    // The care guide covers both words of the question, each in its own section (its own
    // chunk); the errands list, as long, mentions each once in one sentence, so at the chunk
    // level alone its passage is the best match.
    let guide = format!(
        "# Okapi care\n\n## Diet\n\n{}Willow is what she eats most: fresh willow, dried \
         willow, willow bark.\n\n## Grooming\n\n{}Hooves need care: her hooves are \
         checked weekly and the hooves trimmed twice a year.\n",
        filler("the feeding"),
        filler("the grooming")
    );
    let errands = format!(
        "{}Shopping: a willow basket, and a brush for cleaning hooves.\n\n{}",
        filler("the errands"),
        filler("the errands")
    );
    let mut lib = library(&[
        ("care-guide.md", guide.as_str()),
        ("errands.txt", errands.as_str()),
    ])
    .await;
    let query = "willow hooves";
    let hits = keyword(&mut lib.client, query).await;
    assert_eq!(
        hits.first().map(|h| h.0.as_str()),
        Some(lib.ids[0].as_str()),
        "{hits:?}"
    );

    // The same library ranked on chunks alone puts the note first: the document's share of
    // the score is what lifts the guide.
    let mut config = worker_config(&lib.db, &fresh_objects_dir());
    config.bm25 = Bm25 {
        document_weight: 0.0,
        ..Bm25::default()
    };
    let chunks_only = spawn_worker_with(config).await;
    let hits = keyword(&mut chunks_only.client().await, query).await;
    assert_eq!(
        hits.first().map(|h| h.0.as_str()),
        Some(lib.ids[1].as_str()),
        "{hits:?}"
    );
    chunks_only.stop().await;
    lib.worker.stop().await;
}

async fn wait_ready(client: &mut AiWorkerClient<Channel>, id: &str) {
    for _ in 0..300 {
        let asset = client
            .get_asset(pb::GetAssetRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner();
        if asset.status == pb::AssetStatus::Ready as i32 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("asset {id} did not become ready again");
}

/// The statistics next to what they summarise, recomputed from the chunks themselves.
async fn statistics_match_the_chunks(db: &TestDatabase) -> (i64, i64, i64) {
    let mut conn = db.connect().await;
    let row = sqlx::query(
        "SELECT \
           (SELECT count(*) FROM ( \
              SELECT collection_id, chunks, total_length FROM worker.keyword_stats WHERE chunks > 0 \
              EXCEPT SELECT collection_id, count(*), sum(keyword_length) FROM worker.chunks GROUP BY 1) d) \
         + (SELECT count(*) FROM ( \
              SELECT collection_id, count(*), sum(keyword_length) FROM worker.chunks GROUP BY 1 \
              EXCEPT SELECT collection_id, chunks, total_length FROM worker.keyword_stats) d) AS stats_diff, \
           (SELECT count(*) FROM ( \
              (SELECT collection_id, lexeme, chunks FROM worker.keyword_terms \
               EXCEPT SELECT c.collection_id, l, count(*) FROM worker.chunks c, \
                   unnest(tsvector_to_array(c.tsv)) l GROUP BY 1, 2) \
              UNION ALL \
              (SELECT c.collection_id, l, count(*) FROM worker.chunks c, \
                   unnest(tsvector_to_array(c.tsv)) l GROUP BY 1, 2 \
               EXCEPT SELECT collection_id, lexeme, chunks FROM worker.keyword_terms)) d) AS terms_diff, \
           (SELECT count(*) FROM ( \
              (SELECT asset_id, collection_id, chunks, length FROM worker.keyword_documents \
               EXCEPT SELECT asset_id, collection_id, count(*), sum(keyword_length) \
                   FROM worker.chunks GROUP BY 1, 2) \
              UNION ALL \
              (SELECT asset_id, collection_id, count(*), sum(keyword_length) \
                   FROM worker.chunks GROUP BY 1, 2 \
               EXCEPT SELECT asset_id, collection_id, chunks, length FROM worker.keyword_documents) \
              UNION ALL \
              (SELECT collection_id, NULL::uuid, documents, NULL::bigint FROM worker.keyword_stats WHERE chunks > 0 \
               EXCEPT SELECT collection_id, NULL::uuid, count(DISTINCT asset_id), NULL::bigint \
                   FROM worker.chunks GROUP BY 1)) d) AS documents_diff",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (
        row.get("stats_diff"),
        row.get("terms_diff"),
        row.get("documents_diff"),
    )
}

#[tokio::test]
async fn term_statistics_stay_exact_through_ingestion_reprocessing_and_deletion() {
    let mut lib = library(&[
        ("note.txt", WENDELINE),
        ("groceries.txt", GROCERIES),
        ("sampling.txt", SAMPLING),
    ])
    .await;
    assert_eq!(statistics_match_the_chunks(&lib.db).await, (0, 0, 0));
    let mut conn = lib.db.connect().await;
    let okapi: i64 =
        sqlx::query_scalar("SELECT chunks FROM worker.keyword_terms WHERE lexeme = 'okapi'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(okapi, 1);

    lib.client
        .delete_asset(pb::DeleteAssetRequest {
            id: lib.ids[0].clone(),
        })
        .await
        .unwrap();
    assert_eq!(statistics_match_the_chunks(&lib.db).await, (0, 0, 0));
    let gone: i64 =
        sqlx::query_scalar("SELECT count(*) FROM worker.keyword_terms WHERE lexeme = 'okapi'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(gone, 0, "a term no chunk holds is removed");

    // Re-processing replaces the chunks: counted once, not twice.
    lib.client
        .reprocess_asset(pb::ReprocessAssetRequest {
            id: lib.ids[1].clone(),
        })
        .await
        .unwrap();
    wait_ready(&mut lib.client, &lib.ids[1]).await;
    assert_eq!(statistics_match_the_chunks(&lib.db).await, (0, 0, 0));
    lib.worker.stop().await;
}
