//! One request is one trace: spans of the gateway (HTTP route, gRPC client) and the worker
//! (gRPC server, queue wait, parsing, embedding, search, LLM call) exported over OTLP/gRPC to
//! an in-process collector, linked through the `traceparent` that crosses the gRPC hop.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{StatusCode, multipart};
use serde_json::json;
use thinkbank_testkit::{
    FakeLlm, GatewayHandle, Script, TestDatabase, llm_config,
    otlp::{CollectedSpan, OtlpCollector},
    read_sse, spawn_gateway_with, spawn_worker_with, spawn_worker_with_llm, worker_config,
};

const TIDES: &str = "Tides are the rise and fall of sea levels caused by the gravitational forces exerted by the Moon and the Sun on the oceans of the Earth.";
/// What a browser or curl with tracing would send: the caller's own span is the parent.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

struct Trace<'a> {
    spans: Vec<&'a CollectedSpan>,
}

impl<'a> Trace<'a> {
    fn of(all: &'a [CollectedSpan], trace_id: &str) -> Self {
        Self {
            spans: all.iter().filter(|s| s.trace_id == trace_id).collect(),
        }
    }

    /// The one span named `name` (of `kind`, if given); fails when there is none or several.
    fn one(&self, name: &str, kind: Option<i32>) -> &'a CollectedSpan {
        let found: Vec<_> = self
            .spans
            .iter()
            .filter(|s| s.name == name && kind.is_none_or(|k| s.kind == k))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one span {name} (kind {kind:?}), found {}; spans: {:?}",
            found.len(),
            self.names()
        );
        found[0]
    }

    fn any(&self, name: &str) -> Vec<&'a CollectedSpan> {
        self.spans
            .iter()
            .copied()
            .filter(|s| s.name == name)
            .collect()
    }

    fn names(&self) -> BTreeSet<&str> {
        self.spans.iter().map(|s| s.name.as_str()).collect()
    }

    /// Which crate made each span, from the code location the tracing layer records.
    fn crates(&self) -> BTreeSet<String> {
        self.spans
            .iter()
            .filter_map(|s| {
                s.attributes
                    .iter()
                    .find(|(k, _)| {
                        k.as_str() == "code.namespace" || k.as_str() == "code.module.name"
                    })
                    .map(|(_, v)| v.split("::").next().unwrap_or_default().to_owned())
            })
            .collect()
    }
}

/// Uploads TIDES as a caller whose span `span` of trace `trace` is the parent.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: fail loudly at the broken step"
)]
async fn upload_traced(
    gateway: &GatewayHandle,
    trace: &str,
    span: &str,
    wait: bool,
) -> serde_json::Value {
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(TIDES.as_bytes().to_vec()).file_name("tides.txt"),
        )
        .text("wait", wait.to_string());
    let response = gateway
        .client()
        .post(gateway.url("/api/v1/assets"))
        .header("traceparent", format!("00-{trace}-{span}-01"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

fn assert_child(child: &CollectedSpan, parent: &CollectedSpan) {
    assert_eq!(
        child.parent_span_id, parent.span_id,
        "{} should be a child of {}",
        child.name, parent.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_and_a_chat_each_make_one_trace_across_gateway_and_worker() {
    let collector = OtlpCollector::start().await;
    let telemetry =
        thinkbank_common::logging::install("thinkbank-test", Some(collector.endpoint())).unwrap();
    let fake = FakeLlm::start(Script::words("Tides come from the Moon [1].")).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        worker.url(),
        db.url.clone(),
    ))
    .await;
    let http = gateway.client();

    let asset = upload_traced(&gateway, CALLER_TRACE, CALLER_SPAN, true).await;
    let asset_id = asset["asset"]["id"].as_str().unwrap().to_owned();

    let response = http
        .post(gateway.url("/api/v1/chat"))
        .json(&json!({"question": "What causes ocean tides?", "top_k": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_sse(response).await;
    assert_eq!(events.last().unwrap().1.event, "done");

    // Let the last spans close (the stream's server span ends with its body), then export.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    telemetry.flush().await;
    let spans = collector.spans();
    assert!(spans.iter().all(|s| s.service == "thinkbank-test"));

    // The upload: one trace, continuing the caller's.
    let upload = Trace::of(&spans, CALLER_TRACE);
    let http_span = upload.one("POST /api/v1/assets", Some(SERVER));
    assert_eq!(http_span.parent_span_id, CALLER_SPAN);
    assert_eq!(http_span.attributes["http.route"], "/api/v1/assets");
    let client_spans: Vec<_> = upload
        .spans
        .iter()
        .filter(|s| s.kind == CLIENT && s.name.starts_with("/thinkbank.v1.AiWorker/"))
        .collect();
    assert!(!client_spans.is_empty(), "{:?}", upload.names());
    let mut rpc_pairs = 0;
    for client in &client_spans {
        assert_child(client, http_span);
        let server = upload
            .spans
            .iter()
            .find(|s| s.kind == SERVER && s.parent_span_id == client.span_id)
            .unwrap_or_else(|| panic!("no worker span under {}", client.name));
        assert_eq!(server.name, client.name);
        rpc_pairs += 1;
    }
    assert!(rpc_pairs >= 1);
    let queue_wait = upload.one("ingest.queue_wait", None);
    let queued_by = upload
        .spans
        .iter()
        .find(|s| s.kind == SERVER && s.span_id == queue_wait.parent_span_id)
        .unwrap_or_else(|| {
            panic!("the queue wait should hang off the worker call that queued the job")
        });
    let job = upload.one("ingest.job", None);
    assert_child(job, queued_by);
    assert_eq!(job.attributes["asset_id"], asset_id);
    for stage in ["ingest.parse", "ingest.chunk", "db.commit_chunks"] {
        assert_child(upload.one(stage, None), job);
    }
    let batches = upload.any("embed.batch");
    assert!(!batches.is_empty());
    batches.iter().for_each(|b| assert_child(b, job));
    // Every statement is a span where it ran: the chunk commit's inserts under the commit.
    let commit = upload.one("db.commit_chunks", None);
    let commit_queries: Vec<_> = upload
        .any("db.query")
        .into_iter()
        .filter(|q| q.parent_span_id == commit.span_id)
        .collect();
    assert!(
        commit_queries
            .iter()
            .any(|q| q.attributes["db.query.text"].contains("INSERT INTO worker.chunks")),
        "{:?}",
        commit_queries
            .iter()
            .map(|q| &q.attributes["db.query.summary"])
            .collect::<Vec<_>>()
    );
    assert!(
        commit_queries
            .iter()
            .all(|q| q.attributes["db.system.name"] == "postgresql" && q.kind == CLIENT)
    );
    let crates = upload.crates();
    assert!(
        crates.contains("thinkbank_gateway") && crates.contains("thinkbank_ai_worker"),
        "{crates:?}"
    );
    // Nothing of this upload escaped into another trace.
    assert!(
        spans
            .iter()
            .filter(|s| s.attributes.get("asset_id") == Some(&asset_id))
            .all(|s| s.trace_id == CALLER_TRACE)
    );

    // The chat: a new trace rooted at the gateway's HTTP span.
    let chat_http = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/chat")
        .unwrap_or_else(|| panic!("no chat http span among {}", spans.len()));
    assert!(
        chat_http.parent_span_id.is_empty(),
        "no caller context: a root"
    );
    let chat = Trace::of(&spans, &chat_http.trace_id);
    let roots: Vec<_> = chat
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "{:?}", chat.names());
    let client = chat.one("/thinkbank.v1.AiWorker/ChatStream", Some(CLIENT));
    assert_child(client, chat_http);
    let server = chat.one("/thinkbank.v1.AiWorker/ChatStream", Some(SERVER));
    assert_child(server, client);
    assert_eq!(server.attributes["rpc.grpc.status_code"], "OK");
    let answer = chat.one("chat.answer", None);
    assert_child(answer, server);
    let retrieve = chat.one("chat.retrieve", None);
    assert_child(retrieve, answer);
    let vector = chat.one("search.vector", None);
    assert_child(vector, retrieve);
    assert!(
        chat.any("db.query")
            .iter()
            .any(|q| q.parent_span_id == vector.span_id
                && q.attributes["db.query.text"].contains("ORDER BY e.embedding")),
        "the vector leg's SQL should be a span under search.vector"
    );
    // The query is embedded inside the vector leg, once per model the collections use.
    assert_child(chat.one("search.embed", None), vector);
    let llm = chat.one("llm.call", None);
    assert_child(llm, answer);
    assert!(
        llm.events.iter().any(|e| e == "llm first token"),
        "{:?}",
        llm.events
    );
    let crates = chat.crates();
    assert!(
        crates.contains("thinkbank_gateway") && crates.contains("thinkbank_ai_worker"),
        "{crates:?}"
    );
    let by_id: BTreeMap<&str, &CollectedSpan> = chat
        .spans
        .iter()
        .map(|s| (s.span_id.as_str(), *s))
        .collect();
    // Every parent link resolves inside the trace.
    for span in &chat.spans {
        if !span.parent_span_id.is_empty() {
            assert!(
                by_id.contains_key(span.parent_span_id.as_str()),
                "{} has a dangling parent",
                span.name
            );
        }
    }
}

/// A job queued through one worker and processed by another (a second replica, or the same
/// one after a restart) still continues the upload's trace: the context travels in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_claimed_by_another_replica_continues_the_uploads_trace() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const SPAN: &str = "b7ad6b7169203331";
    let collector = OtlpCollector::start().await;
    let telemetry =
        thinkbank_common::logging::install("thinkbank-test", Some(collector.endpoint())).unwrap();
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut api_only = worker_config(&db, &objects);
    api_only.ingest_concurrency = 0;
    let front = spawn_worker_with(api_only).await;
    let gateway = spawn_gateway_with(thinkbank_gateway::Config::for_worker(
        front.url(),
        db.url.clone(),
    ))
    .await;
    let asset = upload_traced(&gateway, TRACE, SPAN, false).await;
    let asset_id = asset["asset"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        asset["asset"]["status"], "queued",
        "nobody processes jobs yet"
    );

    // Another replica, with its own memory (and the shared object store), takes the job.
    let processing = worker_config(&db, &front.objects_dir);
    let back = spawn_worker_with(processing).await;
    let mut client = back.client().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = client
            .get_asset(thinkbank_proto::v1::GetAssetRequest {
                id: asset_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == thinkbank_proto::v1::AssetStatus::Ready as i32 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    telemetry.flush().await;
    let spans = collector.spans();
    let upload = Trace::of(&spans, TRACE);
    let job = upload.one("ingest.job", None);
    assert_eq!(job.attributes["asset_id"], asset_id);
    let queued_by = upload
        .spans
        .iter()
        .find(|s| s.kind == SERVER && s.span_id == job.parent_span_id)
        .unwrap_or_else(|| panic!("ingest.job should hang off the call that queued it"));
    assert_eq!(queued_by.name, "/thinkbank.v1.AiWorker/UploadAsset");
    assert_child(upload.one("ingest.parse", None), job);
    assert!(!upload.any("embed.batch").is_empty());
    assert!(
        job.attributes
            .get("request_id")
            .is_some_and(|id| !id.is_empty()),
        "the request id travels with the job: {:?}",
        job.attributes
    );
    back.stop().await;
    gateway.stop().await;
    front.stop().await;
}
