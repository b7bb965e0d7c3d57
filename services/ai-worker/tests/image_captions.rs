//! With a vision model configured, images are described by it and the description is indexed
//! with the OCR text; a failing vision model never fails the ingestion. The model is the
//! OpenAI-compatible test server speaking the real streaming wire format.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{
    FakeLlm, Script, TestDatabase, WorkerHandle, llm_config, spawn_worker_with, worker_config,
};

const VISION_MODEL: &str = "vision-test";

async fn worker_with_vision(db: &TestDatabase, fake: &FakeLlm) -> WorkerHandle {
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(db, &objects);
    config.llm = llm_config(fake);
    config.llm.vision_model = Some(VISION_MODEL.into());
    config.llm.llm_max_retries = 0;
    spawn_worker_with(config).await
}

async fn ingest_png(worker: &WorkerHandle) -> pb::Asset {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/formats/spec-intro.png"
    ))
    .unwrap();
    let mut client = worker.client().await;
    client
        .process_asset(pb::ProcessAssetRequest {
            filename: "spec-intro.png".into(),
            content: bytes.into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap()
}

fn document_field(asset: &pb::Asset, key: &str) -> Option<String> {
    let document = asset.metadata.as_ref()?.fields.get("document")?.clone();
    let Some(prost_types::value::Kind::StructValue(info)) = document.kind else {
        return None;
    };
    match info.fields.get(key)?.kind.clone()? {
        prost_types::value::Kind::StringValue(s) => Some(s),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test]
async fn images_are_described_by_the_vision_model_and_the_description_is_searchable() {
    let fake = FakeLlm::start(Script::words(
        "A title page of the freedesktop specification for a shared file-type registry",
    ))
    .await;
    let db = TestDatabase::create().await;
    let worker = worker_with_vision(&db, &fake).await;
    let asset = ingest_png(&worker).await;
    assert_eq!(asset.status(), pb::AssetStatus::Ready, "{}", asset.error);
    assert_eq!(
        document_field(&asset, "caption_model").as_deref(),
        Some(VISION_MODEL)
    );
    assert!(
        document_field(&asset, "caption")
            .unwrap()
            .contains("file-type registry")
    );

    // The model saw the image itself, as an OpenAI image_url part.
    let request = fake
        .requests()
        .into_iter()
        .find(|r| r.body["model"] == VISION_MODEL)
        .unwrap();
    let parts = request.body["messages"][0]["content"]
        .as_array()
        .unwrap()
        .clone();
    let url = parts.iter().find(|p| p["type"] == "image_url").unwrap()["image_url"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with("data:image/png;base64,iVBOR"),
        "{}",
        &url[..40]
    );

    // Words only the description has are now searchable, next to the OCR text.
    let mut client = worker.client().await;
    let hits = client
        .vector_search(pb::VectorSearchRequest {
            query: "registry of file types".into(),
            asset_ids: vec![asset.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(
        hits[0].text.contains("Image description: A title page"),
        "{}",
        hits[0].text
    );
    assert!(
        hits[0].text.contains("MIME"),
        "OCR text stays indexed: {}",
        hits[0].text
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_failing_vision_model_leaves_the_image_indexed_by_ocr() {
    let fake = FakeLlm::start(Script::failing(500)).await;
    let db = TestDatabase::create().await;
    let worker = worker_with_vision(&db, &fake).await;
    let asset = ingest_png(&worker).await;
    assert_eq!(asset.status(), pb::AssetStatus::Ready, "{}", asset.error);
    assert!(document_field(&asset, "caption").is_none());
    assert!(document_field(&asset, "caption_error").is_some());
    assert!(
        !fake.requests().is_empty(),
        "the vision model must have been asked"
    );
    worker.stop().await;
}
