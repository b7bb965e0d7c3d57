//! Schemathesis (property-based API testing, from the test venv) against the live gateway and
//! worker on a fresh database with a few documents: generated valid and invalid input for
//! every documented operation must never give a 5xx, and every response must match the spec
//! (status, content type, headers, body; each SSE event of the streams too).
//!
//! Requests carry the default tenant's admin key, so every operation (admin ones too) is
//! reachable; rate limits are lifted for the run.

use std::path::PathBuf;

use reqwest::multipart;
use thinkbank_testkit::{TestDatabase, required_env, spawn_gateway_with, spawn_worker};

const DOCUMENTS: [(&str, &str); 2] = [
    (
        "tides.md",
        "# Tides\n\nTides are the rise and fall of sea levels caused by the Moon and the Sun.\n",
    ),
    (
        "coffee.txt",
        "Espresso is brewed by forcing hot water through finely ground coffee beans.",
    ),
];

/// Checks run on every response.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// Test cases per operation and phase. Measured on 2 cores: 25 gave 1,062 requests in 13 s,
/// 150 gave 3,135 in 35 s; 100 takes 40–50 s inside the full suite.
const MAX_EXAMPLES: &str = "100";

#[tokio::test]
async fn generated_requests_get_no_server_error_and_responses_match_the_spec() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    // Thousands of generated requests: rate limits would answer most of them 429.
    config.limits.read_per_min = 1_000_000;
    config.limits.write_per_min = 1_000_000;
    config.limits.upload_per_min = 1_000_000;
    config.limits.chat_per_min = 1_000_000;
    config.limits.auth_per_min = 1_000_000;
    let gateway = spawn_gateway_with(config).await;
    let http = reqwest::Client::new();
    // The admin key: every operation is reachable, admin ones included.
    let key = Some(gateway.api_key.clone());
    for (name, text) in DOCUMENTS {
        let form = multipart::Form::new()
            .part(
                "file",
                multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name),
            )
            .text("wait", "true");
        let mut request = http.post(gateway.url("/api/v1/assets")).multipart(form);
        if let Some(key) = &key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    let python = PathBuf::from(required_env("THINKBANK_TEST_PYTHON"));
    let schemathesis = python.with_file_name("schemathesis");
    let report = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(&schemathesis);
    command
        // Schemathesis keeps a `.schemathesis/` cache in its working directory.
        .current_dir(report.path())
        .arg("run")
        .arg(gateway.url("/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--phases", "examples,coverage,fuzzing"])
        // Streams end by themselves (answers are extractive, assets become final), but a stuck
        // one must fail the run, not hang it.
        .args(["--request-timeout", "30"])
        .args(["--workers", "1"])
        .args(["--seed", "7"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "too_slow,filter_too_much"])
        .arg("--no-color")
        .arg("--report-dir")
        .arg(report.path());
    if let Some(key) = &key {
        command.args(["--header", &format!("Authorization: Bearer {key}")]);
    }
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    gateway.stop().await;
    worker.stop().await;
}
