//! The worker as operators and other-language clients see it: the real `grpcurl` (server
//! reflection only, no proto files) and a Python client generated from `proto/` with
//! grpcio-tools, each over a real socket to a worker on 127.0.0.1:0 with a fresh database.
//!
//! The grpcurl command lines below are the README's operator examples: each runs verbatim under
//! `sh` with `grpcurl` on `PATH` and the worker's address in `$ADDR`.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly with a message"
)]

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use serde_json::Value;
use thinkbank_testkit::{TestDatabase, required_env, spawn_worker};
use tokio::process::Command;

const LIST_SERVICES: &str = "grpcurl -plaintext $ADDR list";
const LIST_METHODS: &str = "grpcurl -plaintext $ADDR list thinkbank.v1.AiWorker";
const DESCRIBE_EMBEDDING_REQUEST: &str =
    "grpcurl -plaintext $ADDR describe thinkbank.v1.GetEmbeddingRequest";
const GET_EMBEDDING: &str = r#"grpcurl -plaintext -d '{"texts": ["hello world"]}' $ADDR thinkbank.v1.AiWorker/GetEmbedding"#;
const HEALTH_CHECK: &str = r#"grpcurl -plaintext -d '{"service": "thinkbank.v1.AiWorker"}' $ADDR grpc.health.v1.Health/Check"#;
/// A well-formed id no fresh database holds.
const GET_UNKNOWN_ASSET: &str = r#"grpcurl -plaintext -d '{"id": "0190b1c2-7d3e-7a4f-9b5c-6d7e8f901234"}' $ADDR thinkbank.v1.AiWorker/GetAsset"#;
/// `bytes` fields are base64 in grpcurl's JSON; `-d @` reads the request from stdin.
const PROCESS_ASSET: &str = r#"grpcurl -plaintext -d @ $ADDR thinkbank.v1.AiWorker/ProcessAsset <<EOF
{"filename": "tides.md", "content": "$(base64 < tides.md | tr -d '\n')", "wait": true}
EOF"#;
const VECTOR_SEARCH: &str = r#"grpcurl -plaintext -d '{"query": "what causes ocean tides?", "top_k": 3}' $ADDR thinkbank.v1.AiWorker/VectorSearch"#;
const CHAT_STREAM: &str = r#"grpcurl -plaintext -d '{"question": "What causes ocean tides?"}' $ADDR thinkbank.v1.AiWorker/ChatStream"#;

/// The document `PROCESS_ASSET` uploads from the working directory.
const TIDES_MD: &str = "# Tides\n\nOcean tides are caused mainly by the gravitational pull of the Moon on the Earth. Most coasts see two high tides a day.\n";

const AI_WORKER_METHODS: [&str; 23] = [
    "thinkbank.v1.AiWorker.CancelAsset",
    "thinkbank.v1.AiWorker.CancelMigration",
    "thinkbank.v1.AiWorker.ChatStream",
    "thinkbank.v1.AiWorker.CheckDependencies",
    "thinkbank.v1.AiWorker.CreateCollection",
    "thinkbank.v1.AiWorker.DeleteAsset",
    "thinkbank.v1.AiWorker.DeleteConversation",
    "thinkbank.v1.AiWorker.GetAsset",
    "thinkbank.v1.AiWorker.GetChatInfo",
    "thinkbank.v1.AiWorker.GetCollection",
    "thinkbank.v1.AiWorker.GetConversation",
    "thinkbank.v1.AiWorker.GetEmbedding",
    "thinkbank.v1.AiWorker.ListAssets",
    "thinkbank.v1.AiWorker.ListCollections",
    "thinkbank.v1.AiWorker.ListConversations",
    "thinkbank.v1.AiWorker.ListEmbeddingModels",
    "thinkbank.v1.AiWorker.MigrateCollection",
    "thinkbank.v1.AiWorker.ProcessAsset",
    "thinkbank.v1.AiWorker.RenameConversation",
    "thinkbank.v1.AiWorker.ReprocessAsset",
    "thinkbank.v1.AiWorker.UploadAsset",
    "thinkbank.v1.AiWorker.VectorSearch",
    "thinkbank.v1.AiWorker.WatchAsset",
];

/// Characters of each output stream shown in a failure (an embedding alone is ~6 KB).
const REPORT_LIMIT: usize = 3000;
/// No tool call may hang the suite.
const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// A scratch directory: the working directory of the shell commands, with `bin/grpcurl`.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tb-operator-{}", uuid::Uuid::new_v4()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("cannot create the scratch directory");
        std::os::unix::fs::symlink(required_env("THINKBANK_GRPCURL"), bin.join("grpcurl"))
            .expect("cannot link THINKBANK_GRPCURL into the scratch directory");
        Self { dir }
    }

    /// Runs one README command line under `sh`, as an operator would paste it.
    async fn sh(&self, command: &str, addr: SocketAddr) -> Output {
        let path = match std::env::var_os("PATH") {
            Some(path) => {
                let mut dirs = vec![self.dir.join("bin")];
                dirs.extend(std::env::split_paths(&path));
                std::env::join_paths(dirs).expect("PATH entries are joinable")
            }
            None => self.dir.join("bin").into_os_string(),
        };
        let mut child = Command::new("sh");
        child
            .arg("-c")
            .arg(command)
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("ADDR", addr.to_string());
        run(child, &format!("ADDR={addr} {command}")).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a tool to completion (bounded by `TOOL_TIMEOUT`), capturing its output.
async fn run(mut command: Command, shown: &str) -> Output {
    command.kill_on_drop(true);
    match tokio::time::timeout(TOOL_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => panic!("cannot run `{shown}`: {error}"),
        Err(_) => panic!("`{shown}` did not finish within {TOOL_TIMEOUT:?}"),
    }
}

/// What a failing assertion shows: the command, its exit status and both streams (clipped).
fn report(shown: &str, output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut text = format!(
        "command: {shown}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        clip(&String::from_utf8_lossy(&output.stdout)),
        clip(&stderr),
    );
    if stderr.contains("server does not support the reflection API") {
        let _ = write!(
            text,
            "\nhint: grpcurl 1.8.6 (like grpcio-reflection and Postman) only speaks \
             grpc.reflection.v1alpha; the worker must serve it next to v1 \
             (tonic_reflection::server::Builder::build_v1alpha)"
        );
    }
    text
}

/// The first `REPORT_LIMIT` characters of a stream, saying how much was cut.
fn clip(text: &str) -> String {
    match text.char_indices().nth(REPORT_LIMIT) {
        Some((end, _)) => format!("{}\n[… {} more bytes]", &text[..end], text.len() - end),
        None => text.to_owned(),
    }
}

/// Asserts the command succeeded and returns its stdout.
fn success(shown: &str, output: &Output) -> String {
    assert!(output.status.success(), "{}", report(shown, output));
    String::from_utf8(output.stdout.clone())
        .unwrap_or_else(|_| panic!("stdout is not UTF-8\n{}", report(shown, output)))
}

/// Parses grpcurl's output: one pretty-printed JSON object per response message.
fn json_messages(shown: &str, output: &Output) -> Vec<Value> {
    let stdout = success(shown, output);
    serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("not JSON ({error})\n{}", report(shown, output)))
}

fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test]
async fn grpcurl_discovers_services_methods_and_messages_by_reflection_alone() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let scratch = Scratch::new();

    let output = scratch.sh(LIST_SERVICES, worker.addr).await;
    let services = success(LIST_SERVICES, &output);
    let services = lines(&services);
    for expected in ["thinkbank.v1.AiWorker", "grpc.health.v1.Health"] {
        assert!(
            services.contains(&expected),
            "{expected} is not listed\n{}",
            report(LIST_SERVICES, &output)
        );
    }
    assert!(
        services
            .iter()
            .any(|s| s.starts_with("grpc.reflection.") && s.ends_with(".ServerReflection")),
        "the reflection service is not listed\n{}",
        report(LIST_SERVICES, &output)
    );

    let output = scratch.sh(LIST_METHODS, worker.addr).await;
    let methods = success(LIST_METHODS, &output);
    let mut methods = lines(&methods);
    methods.sort_unstable();
    assert_eq!(
        methods,
        AI_WORKER_METHODS,
        "{}",
        report(LIST_METHODS, &output)
    );

    let output = scratch.sh(DESCRIBE_EMBEDDING_REQUEST, worker.addr).await;
    let description = success(DESCRIBE_EMBEDDING_REQUEST, &output);
    for field in [
        "message GetEmbeddingRequest {",
        "repeated string texts = 1;",
        "string model = 2;",
        "bool strict = 3;",
    ] {
        assert!(
            description.contains(field),
            "`{field}` is missing\n{}",
            report(DESCRIBE_EMBEDDING_REQUEST, &output)
        );
    }
    worker.stop().await;
}

#[tokio::test]
async fn grpcurl_embeds_text_and_sees_the_worker_serving() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let scratch = Scratch::new();

    let output = scratch.sh(GET_EMBEDDING, worker.addr).await;
    let [response] = json_messages(GET_EMBEDDING, &output)
        .try_into()
        .unwrap_or_else(|_| panic!("expected one message\n{}", report(GET_EMBEDDING, &output)));
    let shown = report(GET_EMBEDDING, &output);
    assert_eq!(response["model"], "all-minilm-l6-v2", "{shown}");
    assert_eq!(response["dimensions"], 384, "{shown}");
    let embeddings = response["embeddings"].as_array().expect(&shown);
    assert_eq!(embeddings.len(), 1, "{shown}");
    let values: Vec<f64> = embeddings[0]["values"]
        .as_array()
        .expect(&shown)
        .iter()
        .map(|v| v.as_f64().expect("values are numbers"))
        .collect();
    assert_eq!(values.len(), 384, "{shown}");
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "norm {norm}\n{shown}");
    // Field names come back in lowerCamelCase, and false/zero fields are left out.
    assert!(
        embeddings[0]["tokenCount"].as_u64().unwrap_or(0) > 0,
        "{shown}"
    );

    let output = scratch.sh(HEALTH_CHECK, worker.addr).await;
    let health = json_messages(HEALTH_CHECK, &output);
    assert_eq!(
        health,
        [serde_json::json!({"status": "SERVING"})],
        "{}",
        report(HEALTH_CHECK, &output)
    );
    worker.stop().await;
}

#[tokio::test]
async fn grpcurl_exits_non_zero_with_not_found_for_an_unknown_asset() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let scratch = Scratch::new();

    let output = scratch.sh(GET_UNKNOWN_ASSET, worker.addr).await;
    let shown = report(GET_UNKNOWN_ASSET, &output);
    // grpcurl exits with 64 + the gRPC status code: NOT_FOUND (5) gives 69.
    assert_eq!(output.status.code(), Some(64 + 5), "{shown}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Code: NotFound"), "{shown}");
    assert!(
        stderr.contains("0190b1c2-7d3e-7a4f-9b5c-6d7e8f901234"),
        "the message should name the id\n{shown}"
    );
    worker.stop().await;
}

#[tokio::test]
async fn grpcurl_uploads_a_document_then_finds_it_and_chats_about_it() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let scratch = Scratch::new();
    std::fs::write(scratch.dir.join("tides.md"), TIDES_MD).unwrap();

    let output = scratch.sh(PROCESS_ASSET, worker.addr).await;
    let [processed] = json_messages(PROCESS_ASSET, &output)
        .try_into()
        .unwrap_or_else(|_| panic!("expected one message\n{}", report(PROCESS_ASSET, &output)));
    let shown = report(PROCESS_ASSET, &output);
    let asset = &processed["asset"];
    // Enums print as their names; 64-bit integers print as JSON strings.
    assert_eq!(asset["status"], "ASSET_STATUS_READY", "{shown}");
    assert_eq!(asset["filename"], "tides.md", "{shown}");
    assert_eq!(asset["mediaType"], "text/markdown", "{shown}");
    assert_eq!(asset["sizeBytes"], TIDES_MD.len().to_string(), "{shown}");
    let asset_id = asset["id"].as_str().expect(&shown);

    let output = scratch.sh(VECTOR_SEARCH, worker.addr).await;
    let [found] = json_messages(VECTOR_SEARCH, &output)
        .try_into()
        .unwrap_or_else(|_| panic!("expected one message\n{}", report(VECTOR_SEARCH, &output)));
    let shown = report(VECTOR_SEARCH, &output);
    let first = &found["hits"][0];
    assert_eq!(first["assetId"], asset_id, "{shown}");
    assert_eq!(first["filename"], "tides.md", "{shown}");
    // The default mode is hybrid: the score is a reciprocal-rank-fusion score, not a cosine.
    assert_eq!(found["mode"], "SEARCH_MODE_HYBRID", "{shown}");
    assert!(first["score"].as_f64().expect(&shown) > 0.0, "{shown}");

    let output = scratch.sh(CHAT_STREAM, worker.addr).await;
    let messages = json_messages(CHAT_STREAM, &output);
    let shown = report(CHAT_STREAM, &output);
    let (Some(sources), Some(last)) = (messages.first(), messages.last()) else {
        panic!("no messages\n{shown}")
    };
    assert_eq!(
        sources["sources"]["sources"][0]["hit"]["assetId"], asset_id,
        "the first message must list the uploaded document as source [1]\n{shown}"
    );
    let deltas: Vec<&str> = messages[1..messages.len() - 1]
        .iter()
        .map(|m| {
            m["delta"]["text"]
                .as_str()
                .unwrap_or_else(|| panic!("expected only deltas between sources and final: {m}"))
        })
        .collect();
    assert!(deltas.len() >= 2, "{shown}");
    let answer = deltas.concat();
    assert!(
        answer.contains("Moon") && answer.contains("[1]"),
        "{answer}\n{shown}"
    );
    let last = &last["final"];
    assert_eq!(last["answerMode"], "ANSWER_MODE_EXTRACTIVE", "{shown}");
    assert_eq!(last["finishReason"], "FINISH_REASON_STOP", "{shown}");
    let citation = &last["citations"][0];
    assert_eq!(citation["sourceIndex"], 1, "{shown}");
    // Extractive answers quote: marked quoted, never verified (proto3 JSON omits false).
    assert_eq!(citation["quoted"], true, "{shown}");
    assert!(!citation["verified"].as_bool().unwrap_or(false), "{shown}");
    assert_eq!(citation["support"], 1.0, "{shown}");
    worker.stop().await;
}

/// Generates the Python modules for every `proto/thinkbank/v1/*.proto` into `out`.
async fn generate_python_client(repo_root: &Path, out: &Path) {
    let python = required_env("THINKBANK_TEST_PYTHON");
    let mut protos: Vec<String> = std::fs::read_dir(repo_root.join("proto/thinkbank/v1"))
        .expect("cannot read proto/thinkbank/v1 under THINKBANK_REPO_ROOT")
        .map(|entry| {
            let entry = entry.expect("cannot read proto/thinkbank/v1");
            entry.file_name().to_string_lossy().into_owned()
        })
        .filter(|name| name.ends_with(".proto"))
        .map(|name| format!("proto/thinkbank/v1/{name}"))
        .collect();
    protos.sort();
    assert!(
        !protos.is_empty(),
        "no .proto files under proto/thinkbank/v1"
    );
    let out_arg = out.display().to_string();
    let mut args = vec![
        "-m".to_owned(),
        "grpc_tools.protoc".to_owned(),
        "-I".to_owned(),
        "proto".to_owned(),
        format!("--python_out={out_arg}"),
        format!("--grpc_python_out={out_arg}"),
    ];
    args.extend(protos);
    let shown = format!("(cd {}; {python} {})", repo_root.display(), args.join(" "));
    let mut command = Command::new(&python);
    command.args(&args).current_dir(repo_root);
    let output = run(command, &shown).await;
    success(&shown, &output);
    assert!(
        out.join("thinkbank/v1/ai_worker_pb2_grpc.py").is_file(),
        "protoc wrote no ai_worker_pb2_grpc.py\n{}",
        report(&shown, &output)
    );
}

/// Runs `tests/python/client_smoke.py` against the worker and returns its summary line.
async fn client_smoke(repo_root: &Path, addr: SocketAddr, extra: &[&str]) -> String {
    let python = required_env("THINKBANK_TEST_PYTHON");
    let script = repo_root.join("services/ai-worker/tests/python/client_smoke.py");
    let addr = addr.to_string();
    let mut args = vec![script.display().to_string(), "--addr".into(), addr];
    args.extend(extra.iter().map(|&a| a.to_owned()));
    let shown = format!("{python} {}", args.join(" "));
    let mut command = Command::new(&python);
    command
        .args(&args)
        .current_dir(repo_root)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = run(command, &shown).await;
    success(&shown, &output)
}

#[tokio::test]
async fn python_client_generated_from_the_protos_embeds_ingests_searches_and_chats() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let scratch = Scratch::new();
    let repo_root = PathBuf::from(required_env("THINKBANK_REPO_ROOT"));
    let generated = scratch.dir.join("generated");
    std::fs::create_dir_all(&generated).unwrap();

    generate_python_client(&repo_root, &generated).await;
    let summary = client_smoke(
        &repo_root,
        worker.addr,
        &["--generated", &generated.display().to_string()],
    )
    .await;
    assert!(summary.starts_with("client_smoke: ok"), "{summary}");
    worker.stop().await;
}

#[tokio::test]
async fn python_reflection_client_lists_the_worker_services() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let repo_root = PathBuf::from(required_env("THINKBANK_REPO_ROOT"));

    let summary = client_smoke(&repo_root, worker.addr, &["--reflection"]).await;
    assert!(summary.contains("thinkbank.v1.AiWorker"), "{summary}");
    worker.stop().await;
}
