//! Chat over HTTP with an LLM configured: the real gateway and worker (port 0), a real
//! PostgreSQL and the OpenAI-compatible test server as the model.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::{Duration, Instant};
use thinkbank_testkit::SseJson as _;

use futures::StreamExt as _;
use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};
use thinkbank_testkit::{
    FAKE_MODEL, FakeLlm, GatewayHandle, LlmConfig, Script, TestDatabase, WorkerHandle, llm_config,
    read_sse, spawn_gateway_with, spawn_worker_with_llm,
};

const TIDES: &str = "Tides are the rise and fall of sea levels caused by the gravitational forces exerted by the Moon and the Sun on the oceans of the Earth.";
const COFFEE: &str = "Espresso is brewed by forcing hot water through finely ground coffee beans under high pressure.";
const QUESTION: &str = "What causes ocean tides?";
const ANSWER: &str = "Tides are caused by the gravitational forces of the Moon and the Sun [1].";

struct Stack {
    _db: TestDatabase,
    _worker: WorkerHandle,
    gateway: GatewayHandle,
    http: reqwest::Client,
}

async fn stack(fake: &FakeLlm, llm: Option<LlmConfig>) -> Stack {
    stack_with(fake, llm, 0).await
}

async fn stack_with(fake: &FakeLlm, llm: Option<LlmConfig>, resume_window_secs: u64) -> Stack {
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm.unwrap_or_else(|| llm_config(fake))).await;
    let mut config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    config.sse_resume_window_secs = resume_window_secs;
    let gateway = spawn_gateway_with(config).await;
    let http = gateway.client();
    for (name, text) in [("tides.txt", TIDES), ("coffee.txt", COFFEE)] {
        let form = multipart::Form::new()
            .part(
                "file",
                multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name),
            )
            .text("wait", "true");
        let response = http
            .post(gateway.url("/api/v1/assets"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    Stack {
        _db: db,
        _worker: worker,
        gateway,
        http,
    }
}

async fn ask(stack: &Stack, question: &str) -> reqwest::Response {
    stack
        .http
        .post(stack.gateway.url("/api/v1/chat"))
        .json(&json!({"question": question, "top_k": 2}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_model_token_becomes_one_sse_delta_and_the_final_event_reports_citations() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let stack = stack(&fake, None).await;

    let response = ask(&stack, QUESTION).await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_sse(response).await;
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    let tokens = Script::words(ANSWER).tokens;
    let mut expected = vec!["sources"];
    expected.extend(std::iter::repeat_n("delta", tokens.len()));
    expected.extend(["final", "done"]);
    assert_eq!(names, expected);
    let deltas: Vec<String> = events
        .iter()
        .filter(|(_, e)| e.event == "delta")
        .map(|(_, e)| e.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, tokens);
    let last = events[events.len() - 2].1.json();
    assert_eq!(last["answer_mode"], "generative");
    assert_eq!(last["model"], FAKE_MODEL);
    assert_eq!(last["finish_reason"], "stop");
    assert_eq!(last["citations"][0]["source_index"], 1);
    assert_eq!(last["citations"][0]["verified"], true);
    assert_eq!(last["citations"][0]["fabricated"], false);
    assert_eq!(last["uncited_sources"], json!([2]));
    assert_eq!(last["usage"]["estimated"], false);
    assert!(fake.requests()[0].prompt().contains("[1] tides.txt"));

    // /readyz tells status displays which model answers.
    let ready: Value = stack
        .http
        .get(stack.gateway.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["llm"]["mode"], "generative");
    assert_eq!(ready["llm"]["model"], FAKE_MODEL);
    // The worker asked the provider for its model list, and it answered.
    assert_eq!(ready["llm"]["probe"]["status"], "ok", "{ready}");
    assert!(ready["llm"]["probe"]["latency_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn closing_the_sse_connection_drops_the_upstream_llm_request() {
    let tokens: Vec<String> = (0..200).map(|i| format!(" w{i}")).collect();
    let fake = FakeLlm::start(Script::tokens(tokens).with_delay(Duration::from_millis(50))).await;
    let stack = stack(&fake, None).await;

    let response = ask(&stack, QUESTION).await;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if seen.matches("event: delta").count() >= 2 {
            break;
        }
    }
    let closed_at = Instant::now();
    drop(body);
    let disconnected = fake.wait_for_disconnect(0, Duration::from_secs(5)).await;
    let Some(at) = disconnected else {
        panic!("the upstream request was not dropped within 5 s of closing the SSE stream")
    };
    eprintln!(
        "upstream dropped {:?} after the browser closed",
        at.saturating_duration_since(closed_at)
    );
    assert!(!fake.requests()[0].completed);
}

#[tokio::test]
async fn a_model_failing_mid_answer_gives_an_error_event_then_done() {
    let fake = FakeLlm::start(Script::words(ANSWER).breaking_after(2)).await;
    let stack = stack(&fake, None).await;

    let events = read_sse(ask(&stack, QUESTION).await).await;
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(names, ["sources", "delta", "delta", "error", "done"]);
    let error = events[3].1.json();
    assert_eq!(error["error"]["code"], "unavailable", "{error}");
}

#[tokio::test]
async fn a_dead_provider_is_answered_with_503_once_the_breaker_opens() {
    let fake = FakeLlm::start(Script::failing(500)).await;
    let mut llm = llm_config(&fake);
    llm.llm_max_retries = 0;
    llm.llm_breaker_threshold = 1;
    let stack = stack(&fake, Some(llm)).await;

    // The first failure arrives inside the stream, after the sources.
    let events = read_sse(ask(&stack, QUESTION).await).await;
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(names, ["sources", "error", "done"]);
    // Then the breaker is open: a plain 503 before any stream, without calling the model.
    let response = ask(&stack, QUESTION).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(fake.requests().len(), 1);
}

/// The official `openai` Python package against the façade (`/v1/models`,
/// `/v1/chat/completions` streamed and not), with the fake LLM writing the answer.
#[tokio::test]
async fn the_openai_python_sdk_chats_with_thinkbank_as_a_model() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let stack = stack(&fake, None).await;
    let python = thinkbank_testkit::required_env("THINKBANK_TEST_PYTHON");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_chat.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(stack.gateway.url("/v1"))
        .env("OPENAI_API_KEY", &stack.gateway.api_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let seen: Value = serde_json::from_str(&stdout).unwrap();

    assert_eq!(seen["models"], json!(["thinkbank"]));
    let content = seen["content"].as_str().unwrap();
    assert!(content.starts_with(ANSWER), "{content}");
    assert!(content.contains("Sources:\n[1] tides.txt"), "{content}");
    assert_eq!(seen["finish_reason"], "stop");
    assert!(seen["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(seen["citations"][0]["source_index"], 1);
    assert_eq!(seen["citations"][0]["verified"], true);
    assert_eq!(seen["sources"][0]["filename"], "tides.txt");

    assert_eq!(seen["stream_content"], content);
    assert_eq!(seen["stream_finish_reason"], "stop");
    assert_eq!(seen["stream_citations"][0]["verified"], true);
    assert!(seen["stream_usage"]["total_tokens"].as_u64().unwrap() > 0);
    // A role chunk, one per token, the footer, the finish chunk and the usage chunk.
    let tokens = Script::words(ANSWER).tokens.len() as u64;
    assert_eq!(seen["stream_chunks"].as_u64().unwrap(), tokens + 4);
    assert_eq!(seen["unknown_model_status"], 404);

    // The model saw the numbered sources, once per completion.
    assert_eq!(fake.requests().len(), 2);
    assert!(fake.requests()[1].prompt().contains("[1] tides.txt"));
}

#[tokio::test]
async fn a_chat_is_stored_and_can_be_read_continued_renamed_and_deleted_over_http() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let stack = stack(&fake, None).await;

    let events = read_sse(ask(&stack, QUESTION).await).await;
    let id = events[0].1.json()["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = stack.gateway.url(&format!("/api/v1/conversations/{id}"));
    let stored: Value = stack
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["conversation"]["title"], QUESTION);
    assert_eq!(stored["messages"][0]["role"], "user");
    assert_eq!(stored["messages"][1]["content"], ANSWER);
    assert_eq!(stored["messages"][1]["finish_reason"], "stop");
    assert_eq!(stored["messages"][1]["citations"][0]["verified"], true);
    assert_eq!(
        stored["messages"][1]["sources"][0]["hit"]["filename"],
        "tides.txt"
    );

    let response = stack
        .http
        .post(stack.gateway.url("/api/v1/chat"))
        .json(&json!({"question": "And the Sun?", "conversation_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(read_sse(response).await.last().unwrap().1.event, "done");
    let listed: Value = stack
        .http
        .get(stack.gateway.url("/api/v1/conversations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["conversations"][0]["id"], id.as_str());
    assert_eq!(listed["conversations"][0]["message_count"], 4);

    let renamed = stack
        .http
        .patch(&url)
        .json(&json!({"title": "Tides and the Sun"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["title"], "Tides and the Sun");
    assert_eq!(renamed["message_count"], 4);
    let blank = stack
        .http
        .patch(&url)
        .json(&json!({"title": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(blank.status(), StatusCode::BAD_REQUEST);
    let blank: Value = blank.json().await.unwrap();
    assert_eq!(blank["error"]["code"], "invalid_argument");

    let deleted = stack.http.delete(&url).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let missing = stack.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_stop_endpoint_ends_the_answer_and_drops_the_upstream_request() {
    let tokens: Vec<String> = (0..200).map(|i| format!(" w{i}")).collect();
    let fake = FakeLlm::start(Script::tokens(tokens).with_delay(Duration::from_millis(50))).await;
    let stack = stack(&fake, None).await;

    let response = ask(&stack, QUESTION).await;
    let reader = tokio::spawn(read_sse(response));
    // The conversation id arrives with the sources; wait until the model is streaming.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.requests().is_empty() {
        assert!(Instant::now() < deadline, "the model was never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed: Value = stack
        .http
        .get(stack.gateway.url("/api/v1/conversations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed["conversations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stop_url = stack.gateway.url(&format!("/api/v1/chat/{id}/stop"));
    let stopped = stack.http.post(&stop_url).send().await.unwrap();
    assert_eq!(stopped.status(), StatusCode::NO_CONTENT);

    let events = reader.await.unwrap();
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(&names[names.len() - 2..], ["error", "done"], "{names:?}");
    assert_eq!(
        events[names.len() - 2].1.json()["error"]["code"],
        "cancelled"
    );
    assert!(
        fake.wait_for_disconnect(0, Duration::from_secs(5))
            .await
            .is_some()
    );

    // Stored as cancelled; a second stop finds nothing running.
    let url = stack.gateway.url(&format!("/api/v1/conversations/{id}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored: Value = stack
            .http
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stored["messages"][1]["finish_reason"] == "cancelled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not stored as cancelled: {stored}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = stack.http.post(&stop_url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

/// Reads raw SSE frames until `deltas` delta events arrived; returns (conversation id, last
/// event id, text so far) and drops the connection.
async fn read_until_deltas(response: reqwest::Response, deltas: usize) -> (String, u64, String) {
    let mut body = response.bytes_stream();
    let (mut buffer, mut conversation, mut text, mut seen) =
        (String::new(), String::new(), String::new(), 0);
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            let Some(id) = field("id: ") else { continue };
            let last_id: u64 = id.parse().unwrap();
            let data: Value = serde_json::from_str(&field("data: ").unwrap()).unwrap();
            match field("event: ").as_deref() {
                Some("sources") => {
                    conversation = data["conversation_id"].as_str().unwrap().to_owned()
                }
                Some("delta") => {
                    text.push_str(data["text"].as_str().unwrap());
                    seen += 1;
                    if seen == deltas {
                        return (conversation, last_id, text);
                    }
                }
                _ => {}
            }
        }
    }
    panic!("the stream ended before {deltas} deltas")
}

#[tokio::test]
async fn a_client_reconnecting_with_last_event_id_gets_the_rest_of_the_answer() {
    let tokens: Vec<String> = (0..30).map(|i| format!(" w{i}")).collect();
    let fake =
        FakeLlm::start(Script::tokens(tokens.clone()).with_delay(Duration::from_millis(30))).await;
    let stack = stack_with(&fake, None, 5).await;

    let (conversation, last_id, before) = read_until_deltas(ask(&stack, QUESTION).await, 3).await;
    // The connection is gone; the answer keeps running for the resume window.
    let url = stack
        .gateway
        .url(&format!("/api/v1/chat/{conversation}/events"));
    let response = stack
        .http
        .get(&url)
        .header("Last-Event-ID", last_id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_sse(response).await;
    let ids: Vec<u64> = events
        .iter()
        .map(|(_, e)| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<u64> = (last_id + 1..last_id + 1 + ids.len() as u64).collect();
    assert_eq!(ids, expected, "resumed ids continue without a gap");
    let after: String = events
        .iter()
        .filter(|(_, e)| e.event == "delta")
        .map(|(_, e)| e.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(format!("{before}{after}"), tokens.concat());
    let names: Vec<&str> = events.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(&names[names.len() - 2..], ["final", "done"]);
    assert!(fake.requests()[0].completed, "the answer ran to its end");

    // Unknown streams and bad ids are plain errors.
    let missing = stack
        .http
        .get(
            stack
                .gateway
                .url("/api/v1/chat/00000000-0000-0000-0000-000000000000/events"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bad = stack
        .http
        .get(&url)
        .header("Last-Event-ID", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_a_reconnect_the_answer_is_cancelled_after_the_resume_window() {
    let tokens: Vec<String> = (0..200).map(|i| format!(" w{i}")).collect();
    let fake = FakeLlm::start(Script::tokens(tokens).with_delay(Duration::from_millis(50))).await;
    let stack = stack_with(&fake, None, 1).await;

    let (conversation, _, _) = read_until_deltas(ask(&stack, QUESTION).await, 2).await;
    let disconnected = fake.wait_for_disconnect(0, Duration::from_secs(10)).await;
    assert!(
        disconnected.is_some(),
        "the upstream request outlived the resume window"
    );
    let url = stack
        .gateway
        .url(&format!("/api/v1/conversations/{conversation}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored: Value = stack
            .http
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stored["messages"][1]["finish_reason"] == "cancelled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not stored as cancelled: {stored}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
