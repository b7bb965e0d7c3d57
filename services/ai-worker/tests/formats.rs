//! Every supported format ingests end to end through the real worker and PostgreSQL, with
//! real files (see `fixtures/formats/README.md`), and bad files fail clearly without breaking
//! the worker. Needs poppler-utils and tesseract (installed by `make setup`).
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::io::Write as _;

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{
    TestDatabase, WorkerHandle, spawn_worker, spawn_worker_with, worker_config,
};
use tonic::Code;

type Client = pb::ai_worker_client::AiWorkerClient<tonic::transport::Channel>;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn ingest(client: &mut Client, name: &str, bytes: Vec<u8>) -> pb::Asset {
    client
        .process_asset(pb::ProcessAssetRequest {
            filename: name.into(),
            content: bytes.into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("{name}: {status:?}"))
        .into_inner()
        .asset
        .unwrap()
}

async fn ingest_ready(client: &mut Client, name: &str) -> pb::Asset {
    let asset = ingest(client, name, fixture(name)).await;
    assert_eq!(
        asset.status(),
        pb::AssetStatus::Ready,
        "{name}: {}",
        asset.error
    );
    assert!(asset.chunk_count >= 1, "{name}");
    asset
}

async fn search_in(client: &mut Client, asset: &pb::Asset, query: &str) -> Vec<pb::SearchHit> {
    client
        .vector_search(pb::VectorSearchRequest {
            query: query.into(),
            top_k: 3,
            asset_ids: vec![asset.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits
}

fn document_info(asset: &pb::Asset) -> serde_json::Value {
    let metadata = asset.metadata.clone().unwrap_or_default();
    let document = metadata.fields.get("document").cloned().unwrap();
    let Some(prost_types::value::Kind::StructValue(info)) = document.kind else {
        panic!("metadata.document is not an object")
    };
    info.fields
        .into_iter()
        .map(|(k, v)| {
            let value = match v.kind {
                Some(prost_types::value::Kind::NumberValue(n)) => serde_json::json!(n),
                Some(prost_types::value::Kind::BoolValue(b)) => serde_json::json!(b),
                other => serde_json::json!(format!("{other:?}")),
            };
            (k, value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn worker() -> (TestDatabase, WorkerHandle, Client) {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let client = worker.client().await;
    (db, worker, client)
}

#[tokio::test]
async fn real_pdf_is_indexed_with_page_numbers() {
    let (_db, worker, mut client) = worker().await;
    let asset = ingest_ready(&mut client, "shared-mime-info-spec.pdf").await;
    assert_eq!(asset.media_type, "application/pdf");
    let info = document_info(&asset);
    assert_eq!(info["pages"], 17.0);
    assert_eq!(info["ocr_pages"], 0.0);
    let hits = search_in(
        &mut client,
        &asset,
        "why should programs share one MIME database?",
    )
    .await;
    let first = &hits[0];
    assert!(first.text.contains("MIME database"), "{}", first.text);
    assert_eq!(first.position.as_ref().unwrap().page, 1);
    let later = search_in(
        &mut client,
        &asset,
        "glob patterns in the globs2 file with weights",
    )
    .await;
    assert!(later[0].position.as_ref().unwrap().page > 1, "{later:?}");
    worker.stop().await;
}

#[tokio::test]
async fn scanned_pdf_without_a_text_layer_is_read_by_ocr() {
    let (_db, worker, mut client) = worker().await;
    let asset = ingest_ready(&mut client, "scanned-spec-page.pdf").await;
    assert_eq!(document_info(&asset)["ocr_pages"], 1.0);
    let hits = search_in(
        &mut client,
        &asset,
        "Shared MIME-info Database specification version",
    )
    .await;
    assert!(hits[0].text.contains("MIME"), "{}", hits[0].text);
    assert_eq!(hits[0].position.as_ref().unwrap().page, 1);
    worker.stop().await;
}

#[tokio::test]
async fn html_keeps_headings_and_drops_page_chrome() {
    let (_db, worker, mut client) = worker().await;
    let asset = ingest_ready(&mut client, "rust-book-ownership.html").await;
    assert_eq!(asset.media_type, "text/html");
    let hits = search_in(
        &mut client,
        &asset,
        "the rules of ownership: each value has an owner",
    )
    .await;
    let first = &hits[0];
    let headings = &first.position.as_ref().unwrap().headings;
    assert!(
        headings.iter().any(|h| h.contains("Ownership")),
        "{headings:?}"
    );
    assert!(
        !first.text.contains("<script") && !first.text.contains("</"),
        "{}",
        first.text
    );
    assert!(
        !first.text.contains("window.") && !first.text.contains("function("),
        "{}",
        first.text
    );
    worker.stop().await;
}

#[tokio::test]
async fn docx_from_a_real_converter_keeps_its_structure() {
    let (_db, worker, mut client) = worker().await;
    let asset = ingest_ready(&mut client, "field-handbook.docx").await;
    assert_eq!(
        asset.media_type,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    let hits = search_in(
        &mut client,
        &asset,
        "how long should I boil water before drinking?",
    )
    .await;
    assert!(hits[0].text.contains("one minute"), "{}", hits[0].text);
    let headings = &hits[0].position.as_ref().unwrap().headings;
    assert_eq!(
        headings.first().map(String::as_str),
        Some("Field Handbook"),
        "{headings:?}"
    );
    worker.stop().await;
}

#[tokio::test]
async fn images_in_every_supported_format_are_read_by_ocr() {
    let (_db, worker, mut client) = worker().await;
    for (name, media_type) in [
        ("spec-intro.png", "image/png"),
        ("spec-intro.jpg", "image/jpeg"),
        ("spec-intro.gif", "image/gif"),
        ("spec-intro.webp", "image/webp"),
    ] {
        // The same picture in four encodings: different bytes, so no deduplication.
        let asset = ingest_ready(&mut client, name).await;
        assert_eq!(asset.media_type, media_type);
        let info = document_info(&asset);
        assert!(info["width"].as_f64().unwrap() > 500.0, "{name}: {info}");
        assert_eq!(info["ocr"], true);
        let hits = search_in(&mut client, &asset, "Shared MIME-info Database").await;
        assert!(hits[0].text.contains("MIME"), "{name}: {}", hits[0].text);
    }
    worker.stop().await;
}

#[tokio::test]
async fn the_bytes_decide_the_format_not_the_file_name() {
    let (_db, worker, mut client) = worker().await;
    let asset = ingest(&mut client, "notes.txt", fixture("spec-intro.png")).await;
    assert_eq!(asset.media_type, "image/png");
    assert_eq!(asset.status(), pb::AssetStatus::Ready);
    worker.stop().await;
}

/// A DOCX whose document part inflates far beyond the configured limit.
fn docx_bomb(inflated_bytes: usize) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("word/document.xml", options).unwrap();
    let block = vec![b' '; 1 << 20];
    for _ in 0..inflated_bytes >> 20 {
        zip.write_all(&block).unwrap();
    }
    zip.finish().unwrap();
    buffer.into_inner()
}

#[tokio::test]
async fn corrupt_and_hostile_files_fail_clearly_and_the_worker_keeps_serving() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.parsing.max_docx_xml_bytes = 1024 * 1024;
    let worker = spawn_worker_with(config).await;
    let mut client = worker.client().await;

    let real = fixture("shared-mime-info-spec.pdf");
    let truncated = real[..real.len() / 3].to_vec();
    let failed = ingest(&mut client, "truncated.pdf", truncated).await;
    assert_eq!(failed.status(), pb::AssetStatus::Failed);
    assert!(failed.error.contains("PDF"), "{}", failed.error);

    let bomb = docx_bomb(16 << 20);
    assert!(
        bomb.len() < 100 * 1024,
        "the bomb must be small on the wire"
    );
    let failed = ingest(&mut client, "bomb.docx", bomb).await;
    assert_eq!(failed.status(), pb::AssetStatus::Failed);
    assert!(failed.error.contains("limit"), "{}", failed.error);

    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let status = client
        .process_asset(pb::ProcessAssetRequest {
            filename: "data.bin".into(),
            content: garbage.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Nothing half-written: failed assets have no chunks or vectors.
    let mut conn = db.connect().await;
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM worker.chunks")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(chunks, 0);

    // And the worker still ingests good files.
    ingest_ready(&mut client, "field-handbook.docx").await;
    worker.stop().await;
}
