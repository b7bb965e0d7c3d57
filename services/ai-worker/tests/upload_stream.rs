//! `UploadAsset`, the client-streaming upload: any chunking gives the same asset as the unary
//! call, and malformed streams are refused with nothing stored.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use thinkbank_proto::v1::{self as pb, upload_asset_request::Part};
use thinkbank_testkit::{TestDatabase, spawn_worker, spawn_worker_with, worker_config};
use tonic::Code;

fn header(filename: &str, size: usize) -> pb::UploadAssetRequest {
    pb::UploadAssetRequest {
        part: Some(Part::Header(pb::UploadAssetHeader {
            filename: filename.into(),
            wait: true,
            size_bytes: i64::try_from(size).unwrap(),
            ..Default::default()
        })),
    }
}

fn chunks(bytes: &[u8], size: usize) -> Vec<pb::UploadAssetRequest> {
    bytes
        .chunks(size)
        .map(|c| pb::UploadAssetRequest {
            part: Some(Part::Chunk(c.to_vec().into())),
        })
        .collect()
}

fn stream(
    messages: Vec<pb::UploadAssetRequest>,
) -> impl futures::Stream<Item = pb::UploadAssetRequest> {
    futures::stream::iter(messages)
}

#[tokio::test]
async fn chunked_uploads_match_the_unary_call_whatever_the_chunk_boundaries() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut client = worker.client().await;
    // 7-byte chunks split the two-byte and four-byte characters between messages.
    let text =
        "# Café notes\n\nCrème brûlée needs a blowtorch 🔥 and patience; déjà vu is optional.\n"
            .repeat(20);
    let mut messages = vec![header("cafe.md", text.len())];
    messages.extend(chunks(text.as_bytes(), 7));
    let streamed = client
        .upload_asset(stream(messages))
        .await
        .unwrap()
        .into_inner();
    let asset = streamed.asset.unwrap();
    assert_eq!(asset.status(), pb::AssetStatus::Ready, "{}", asset.error);
    assert_eq!(asset.media_type, "text/markdown");
    assert_eq!(asset.size_bytes, i64::try_from(text.len()).unwrap());
    assert!(!streamed.deduplicated);

    // The same bytes through ProcessAsset are recognised as the same asset (same SHA-256).
    let unary = client
        .process_asset(pb::ProcessAssetRequest {
            filename: "again.md".into(),
            content: text.into_bytes().into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unary.deduplicated);
    assert_eq!(unary.asset.unwrap().id, asset.id);

    let docx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/formats/field-handbook.docx"
    ))
    .unwrap();
    let mut messages = vec![header("handbook.docx", docx.len())];
    messages.extend(chunks(&docx, 1000));
    let asset = client
        .upload_asset(stream(messages))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    assert_eq!(asset.status(), pb::AssetStatus::Ready, "{}", asset.error);
    assert!(asset.media_type.contains("wordprocessingml"));
    worker.stop().await;
}

#[tokio::test]
async fn malformed_streams_are_refused_and_nothing_is_stored() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.max_asset_bytes = 1000;
    let worker = spawn_worker_with(config).await;
    let mut client = worker.client().await;
    let body = b"plain text that is long enough to matter".to_vec();

    let no_header = chunks(&body, 10);
    let mut twice = vec![header("a.txt", body.len()), header("a.txt", body.len())];
    twice.extend(chunks(&body, 10));
    let mut short = vec![header("a.txt", body.len() + 5)];
    short.extend(chunks(&body, 10));
    let big = vec![b'x'; 1500];
    let mut too_big = vec![header("big.txt", 0)];
    too_big.extend(chunks(&big, 100));
    let mut bad_utf8 = vec![header("a.txt", 0)];
    bad_utf8.extend(chunks(b"fine so far \xff\xfe then broken", 5));

    for (case, messages, expected) in [
        ("no header", no_header, "must carry the header"),
        ("two headers", twice, "only the first"),
        ("truncated", short, "cut short"),
        ("over the limit", too_big, "exceeds the limit of 1000 bytes"),
        ("invalid UTF-8", bad_utf8, "offset 12"),
    ] {
        let status = client.upload_asset(stream(messages)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert!(
            status.message().contains(expected),
            "{case}: {}",
            status.message()
        );
    }
    let mut conn = db.connect().await;
    let assets: i64 = sqlx::query_scalar("SELECT count(*) FROM worker.assets")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(assets, 0);
    let stored = std::fs::read_dir(&objects).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "no object may be written for a refused upload");
    worker.stop().await;
}
