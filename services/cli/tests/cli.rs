//! The `thinkbank` binary against a live stack: bulk ingest of a directory with duplicates and
//! a bad file, then status and search, as a user would run them.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::process::Output;

use thinkbank_testkit::{GatewayHandle, TestDatabase, spawn_gateway, spawn_worker};

async fn thinkbank(gateway: &GatewayHandle, args: &[&str]) -> Output {
    thinkbank_at(&gateway.url(""), &gateway.api_key, args).await
}

async fn thinkbank_at(url: &str, api_key: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_thinkbank"));
    command
        .arg("--url")
        .arg(url)
        .env("THINKBANK_API_KEY", api_key)
        // Tests pass the audit key explicitly when they mean to.
        .env_remove("THINKBANK_AUDIT_KEY")
        .args(args);
    command.output().await.unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn ingest_a_directory_then_check_status_and_search() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("guides")).unwrap();
    std::fs::write(
        dir.path().join("guides/kayak.md"),
        "# Kayaking\n\nAlways wear a buoyancy aid and check the tide tables before paddling out.",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bread.txt"),
        "Knead the dough for ten minutes until it is smooth and elastic.",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bread-copy.txt"),
        "Knead the dough for ten minutes until it is smooth and elastic.",
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    std::fs::write(dir.path().join(".hidden.txt"), "never uploaded").unwrap();

    let output = thinkbank(
        &gateway,
        &["ingest", "--quiet", dir.path().to_str().unwrap()],
    )
    .await;
    let shown = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "one file fails, so exit 1\n{shown}"
    );
    assert!(
        shown.contains("ingested 4 files: 2 ready, 1 duplicates skipped, 1 failed"),
        "{shown}"
    );
    assert!(
        shown.contains("empty.txt: 400 invalid_argument: the uploaded file is empty"),
        "{shown}"
    );
    assert!(
        shown.contains("ready      ") && shown.contains("kayak.md"),
        "{shown}"
    );

    let output = thinkbank(&gateway, &["status"]).await;
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains(": ready"), "{shown}");
    assert!(shown.contains("ready      2"), "{shown}");

    let output = thinkbank(
        &gateway,
        &[
            "search",
            "what should I check before kayaking?",
            "--top-k",
            "1",
        ],
    )
    .await;
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("kayak.md › Kayaking"), "{shown}");

    let output = thinkbank_at("http://127.0.0.1:9", "", &["status"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("cannot reach the gateway"),
        "{}",
        text(&output)
    );
    worker.stop().await;
}

#[tokio::test]
async fn every_supported_format_ingests_through_the_gateway_with_the_cli() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ai-worker/tests/fixtures/formats"
    );
    // PDF (text layer and scan), HTML, DOCX, PNG, JPEG, GIF, WebP, and the Markdown README.
    let files = std::fs::read_dir(fixtures).unwrap().count();
    assert_eq!(files, 9);
    let output = thinkbank(
        &gateway,
        &["ingest", "--quiet", "--concurrency", "3", fixtures],
    )
    .await;
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains("ingested 9 files: 9 ready, 0 duplicates skipped, 0 failed"),
        "{shown}"
    );

    let list: serde_json::Value = gateway
        .client()
        .get(gateway.url("/api/v1/assets?page_size=50"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut media_types: Vec<&str> = list["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["media_type"].as_str().unwrap())
        .collect();
    media_types.sort_unstable();
    media_types.dedup();
    assert_eq!(
        media_types,
        [
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "image/gif",
            "image/jpeg",
            "image/png",
            "image/webp",
            "text/html",
            "text/markdown",
        ]
    );
    worker.stop().await;
}

#[tokio::test]
async fn audit_verify_reports_an_intact_chain_and_names_the_first_tampered_entry() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    for name in ["ci", "backup"] {
        let response = gateway
            .client()
            .post(gateway.url("/api/v1/keys"))
            .json(&serde_json::json!({"name": name, "role": "reader"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    }
    // Through the gateway's admin endpoint, and straight from the database (with the
    // gateway's audit key: the chain is keyed).
    let key = thinkbank_testkit::audit_key_for(&db.url);
    let direct = [
        "audit",
        "verify",
        "--database-url",
        &db.url,
        "--audit-key",
        &key,
    ];
    for args in [vec!["audit", "verify"], direct.to_vec()] {
        let output = thinkbank(&gateway, &args).await;
        let shown = text(&output);
        assert!(output.status.success(), "{shown}");
        assert!(
            shown.contains("audit log intact: 3 entries verified"),
            "{shown}"
        );
    }

    // Without the key, keyed entries cannot be vouched for.
    let output = thinkbank(&gateway, &["audit", "verify", "--database-url", &db.url]).await;
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("no audit key"), "{shown}");

    let mut conn = db.connect().await;
    sqlx::query("ALTER TABLE gateway.audit_log DISABLE TRIGGER audit_log_append_only")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE gateway.audit_log SET actor = 'someone else' WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    let output = thinkbank(&gateway, &direct).await;
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("BROKEN at entry 3"), "{shown}");
    worker.stop().await;
}
