//! The README's examples are run verbatim against a live stack: every fenced `sh` block that
//! follows a `<!-- readme-test -->` line, in order, in one bash session (so variables carry
//! over), with the documented addresses replaced by the test servers' addresses.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::{path::PathBuf, process::Command};

use thinkbank_testkit::{
    TestDatabase, required_env, spawn_gateway_with, spawn_worker_with, worker_config,
};

const MARKER: &str = "<!-- readme-test -->";
const DOCUMENTED_GATEWAY: &str = "http://127.0.0.1:8080";
const DOCUMENTED_WORKER: &str = "127.0.0.1:50051";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tagged `sh` blocks of README.md, in order.
fn tagged_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence.trim(),
            "```sh",
            "a {MARKER} line must be followed by a ```sh block"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(body.join("\n"));
    }
    blocks
}

#[test]
fn tagged_blocks_are_found_in_order() {
    let readme =
        format!("x\n{MARKER}\n```sh\necho one\n```\ntext\n{MARKER}\n```sh\na \\\n b\n```\n");
    assert_eq!(tagged_blocks(&readme), vec!["echo one", "a \\\n b"]);
}

#[tokio::test]
async fn readme_examples_run_against_a_live_stack() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = tagged_blocks(&readme);
    assert!(
        blocks.len() >= 6,
        "expected the README's tested examples, found {}",
        blocks.len()
    );

    // The worker demands its internal token, as under `make run`.
    let internal_token = "readme-internal-token";
    let db = TestDatabase::create().await;
    let objects = tempdir();
    let mut worker_config = worker_config(&db, &objects);
    worker_config.internal_token = Some(internal_token.into());
    let worker = spawn_worker_with(worker_config).await;
    let mut gateway_config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    gateway_config.internal_token = Some(internal_token.into());
    let gateway = spawn_gateway_with(gateway_config).await;

    // grpcurl as the README calls it: first on PATH.
    let bin = tempdir();
    std::os::unix::fs::symlink(required_env("THINKBANK_GRPCURL"), bin.join("grpcurl")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let gateway_url = gateway.url("");
    let worker_addr = worker.addr.to_string();
    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        let block = block
            .replace(DOCUMENTED_GATEWAY, &gateway_url)
            .replace(DOCUMENTED_WORKER, &worker_addr);
        script.push_str(&format!("printf '\\n### example {}\\n'\n{block}\n", i + 1));
    }
    let run_dir = repo_root();
    let api_key = gateway.api_key.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(run_dir)
            .env("PATH", path)
            .env("THINKBANK_API_KEY", api_key)
            .env("THINKBANK_INTERNAL_TOKEN", internal_token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "README examples failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    // What a reader is told they will see.
    for expected in [
        "\"status\": \"ready\"",
        "README.md",
        "event: sources",
        "event: delta",
        "event: final",
        "event: done",
        "\"answer_mode\":\"extractive\"",
        "\"dims\": 384",
        "thinkbank.v1.AiWorker",
        "grpc.health.v1.Health",
        "thinkbank.v1.AiWorker.ChatStream",
        "SERVING",
        "\"dimensions\": 384",
        "204",
        "\"code\":\"not_found\"",
        "\"ASSET_STATUS_READY\"",
    ] {
        assert!(
            stdout.contains(expected),
            "README output lacks {expected:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    worker.stop().await;
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tb-readme-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
