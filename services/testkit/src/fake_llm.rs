//! The one allowed fake: an OpenAI-compatible chat and embeddings server for tests, on
//! `127.0.0.1:0` (embeddings: see [`crate::fake_embeddings`]).
//!
//! It speaks the real wire format (`POST /v1/chat/completions` streamed as
//! `data: {chat.completion.chunk}` lines ending with `data: [DONE]`, or one `chat.completion`
//! JSON; `GET /v1/models`), follows a per-request [`Script`] (tokens, delay per token, an HTTP
//! failure before the first token, a break mid-stream, provider quirks), and records every
//! request it received and when its client went away: the streamed body carries a drop guard,
//! so the moment hyper drops the response (the client closed the connection) is recorded.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The model name the fake reports.
pub const FAKE_MODEL: &str = "fake-llm";

/// How the `finish_reason` of the last chunk is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishQuirk {
    /// `"finish_reason": "<value>"`, as OpenAI does (`stop`, `length`).
    Value(String),
    /// `"finish_reason": ""` (some llama.cpp builds).
    Empty,
    /// `"finish_reason": null` on every chunk: the stream just ends.
    Null,
}

/// What the fake does for one request.
#[derive(Debug, Clone)]
pub struct Script {
    /// Content deltas to emit, one chunk each.
    pub tokens: Vec<String>,
    /// Pause before each token.
    pub delay: Duration,
    /// Answer with this HTTP status (and an OpenAI error body) instead of streaming.
    pub fail_with: Option<StatusCode>,
    /// Abort the connection after this many tokens (no `[DONE]`).
    pub break_after: Option<usize>,
    /// Send a corrupt `data:` line (not JSON) in place of this token, then carry on.
    pub garbage_at: Option<usize>,
    /// Send a usage chunk when the client asks for one (`stream_options.include_usage`).
    pub usage: bool,
    pub finish: FinishQuirk,
    /// Ignore `tokens` and answer by echoing the prompt's numbered sources (see
    /// [`Script::echoing_sources`]).
    pub echo_sources: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self::tokens(["Hello", " from", " the", " fake", " model", "."])
    }
}

impl Script {
    /// A well-behaved answer made of `tokens`.
    pub fn tokens<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            tokens: tokens.into_iter().map(Into::into).collect(),
            delay: Duration::ZERO,
            fail_with: None,
            break_after: None,
            garbage_at: None,
            usage: true,
            finish: FinishQuirk::Value("stop".into()),
            echo_sources: false,
        }
    }

    /// A model that answers with the start of every numbered source in its prompt (the
    /// first [`ECHO_WORDS`] words of each `[n]` block of the system message), each cited as
    /// `[n]`: what a faithful model could at best say, for measuring what retrieval and the
    /// prompt give it.
    pub fn echoing_sources() -> Self {
        Self {
            echo_sources: true,
            ..Self::tokens(Vec::<String>::new())
        }
    }

    /// Splits `text` into word tokens (each but the first with its leading space).
    pub fn words(text: &str) -> Self {
        let tokens: Vec<String> = text
            .split(' ')
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_owned()
                } else {
                    format!(" {w}")
                }
            })
            .collect();
        Self::tokens(tokens)
    }

    /// Fails before the first token with HTTP `status` (e.g. 429, 500).
    pub fn failing(status: u16) -> Self {
        Self {
            fail_with: Some(StatusCode::from_u16(status).expect("a valid HTTP status")),
            ..Self::default()
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn breaking_after(mut self, tokens: usize) -> Self {
        self.break_after = Some(tokens);
        self
    }

    /// A provider that sends a corrupt chunk (`data: {"choices": [{"delta"` cut off) in
    /// place of token `index`, then the rest of the stream.
    pub fn with_garbage_at(mut self, index: usize) -> Self {
        self.garbage_at = Some(index);
        self
    }

    pub fn without_usage(mut self) -> Self {
        self.usage = false;
        self
    }

    pub fn with_finish(mut self, finish: FinishQuirk) -> Self {
        self.finish = finish;
        self
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub body: Value,
    pub received_at: Instant,
    /// When the response body was dropped before it was completely sent: the client left.
    pub disconnected_at: Option<Instant>,
    /// True once the whole body (through `[DONE]`) was produced.
    pub completed: bool,
}

impl RecordedRequest {
    /// Every message's content, joined by newlines: what the model was prompted with.
    pub fn prompt(&self) -> String {
        self.body["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .filter_map(|m| m["content"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Shared {
    scripts: Mutex<VecDeque<Script>>,
    default_script: Mutex<Script>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeLlm {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// The `/v1/embeddings` side: scripted failures, recorded batches.
    pub embeddings: crate::fake_embeddings::FakeEmbeddings,
    rerank: crate::fake_rerank::FakeRerank,
    shutdown: CancellationToken,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeLlm {
    /// Starts the fake; every request follows `default` unless a script was queued.
    pub async fn start(default: Script) -> Self {
        let shared = Arc::new(Shared {
            default_script: Mutex::new(default),
            ..Shared::default()
        });
        let embeddings = crate::fake_embeddings::FakeEmbeddings::default();
        let rerank = crate::fake_rerank::FakeRerank::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/models", get(models))
            .with_state(shared.clone())
            .merge(embeddings.router())
            .merge(rerank.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the fake LLM port");
        let addr = listener.local_addr().expect("bound address");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            // Tokens must leave at once: no Nagle delay between small frames.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        Self {
            addr,
            shared,
            embeddings,
            rerank,
            shutdown,
        }
    }

    /// The reranker's endpoint (`http://127.0.0.1:<port>/v1/rerank`).
    pub fn rerank_url(&self) -> String {
        format!("http://{}/v1/rerank", self.addr)
    }

    /// The rerank requests received so far.
    pub fn rerank_requests(&self) -> Vec<Value> {
        self.rerank.requests()
    }

    /// The base URL an OpenAI client uses (`http://127.0.0.1:<port>/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next request follows `script` (queued scripts are used in order).
    pub fn push_script(&self, script: Script) {
        lock(&self.shared.scripts).push_back(script);
    }

    /// Replaces the script used when none is queued.
    pub fn set_default(&self, script: Script) {
        *lock(&self.shared.default_script) = script;
    }

    /// The chat requests received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Waits (at most `timeout`) until the `index`-th request's client went away, and returns
    /// when that happened; `None` if it did not within `timeout`.
    pub async fn wait_for_disconnect(&self, index: usize, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = lock(&self.shared.requests)
                .get(index)
                .and_then(|r| r.disconnected_at)
            {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": FAKE_MODEL, "object": "model", "created": 0, "owned_by": "thinkbank-tests"}],
    }))
}

/// Words of each source an echoing script repeats.
pub const ECHO_WORDS: usize = 80;

/// The echoing answer for `body`: for every line `[n] …` of the system message, the words
/// of the block under it (up to the next `[m]` line), cut at [`ECHO_WORDS`], then ` [n]`.
fn echo(body: &Value) -> Vec<String> {
    let system = body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "system"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let mut answer = String::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let flush = |block: Option<(String, Vec<String>)>, answer: &mut String| {
        if let Some((number, words)) = block {
            let text: Vec<String> = words.into_iter().take(ECHO_WORDS).collect();
            answer.push_str(&format!("{} [{number}] ", text.join(" ")));
        }
    };
    for line in system.lines() {
        let marker = line
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match marker {
            Some((number, _)) => flush(
                current.replace((number.to_owned(), Vec::new())),
                &mut answer,
            ),
            None => {
                if let Some((_, words)) = current.as_mut() {
                    words.extend(line.split_whitespace().map(str::to_owned));
                }
            }
        }
    }
    flush(current, &mut answer);
    answer
        .trim_end()
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

async fn completions(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let mut script = lock(&shared.scripts)
        .pop_front()
        .unwrap_or_else(|| lock(&shared.default_script).clone());
    if script.echo_sources {
        script.tokens = echo(&body);
    }
    let index = {
        let mut requests = lock(&shared.requests);
        requests.push(RecordedRequest {
            body: body.clone(),
            received_at: Instant::now(),
            disconnected_at: None,
            completed: false,
        });
        requests.len() - 1
    };
    if let Some(status) = script.fail_with {
        lock(&shared.requests)[index].completed = true;
        let body = json!({"error": {
            "message": format!("scripted failure {}", status.as_u16()),
            "type": if status == StatusCode::TOO_MANY_REQUESTS { "rate_limit_error" } else { "server_error" },
            "param": null, "code": null,
        }});
        return (status, Json(body)).into_response();
    }
    let model = body["model"].as_str().unwrap_or(FAKE_MODEL).to_owned();
    let prompt_tokens = word_count(&body);
    if body["stream"].as_bool() == Some(true) {
        let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
        streamed(shared, index, script, model, prompt_tokens, include_usage)
    } else {
        lock(&shared.requests)[index].completed = true;
        let content = script.tokens.concat();
        let mut answer = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_value(&script.finish)}],
        });
        if script.usage {
            answer["usage"] = usage(prompt_tokens, script.tokens.len());
        }
        Json(answer).into_response()
    }
}

fn word_count(body: &Value) -> usize {
    body["messages"].as_array().map_or(0, |messages| {
        messages
            .iter()
            .filter_map(|m| m["content"].as_str())
            .map(|c| c.split_whitespace().count())
            .sum()
    })
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion})
}

fn finish_value(finish: &FinishQuirk) -> Value {
    match finish {
        FinishQuirk::Value(v) => Value::String(v.clone()),
        FinishQuirk::Empty => Value::String(String::new()),
        FinishQuirk::Null => Value::Null,
    }
}

/// Records the disconnect when the body is dropped before it finished.
struct DropGuard {
    shared: Arc<Shared>,
    index: usize,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let mut requests = lock(&self.shared.requests);
        if let Some(request) = requests.get_mut(self.index)
            && !request.completed
        {
            request.disconnected_at = Some(Instant::now());
        }
    }
}

fn chunk(model: &str, delta: Value, finish: Value) -> String {
    let chunk = json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n")
}

fn streamed(
    shared: Arc<Shared>,
    index: usize,
    script: Script,
    model: String,
    prompt_tokens: usize,
    include_usage: bool,
) -> Response {
    let guard = DropGuard { shared, index };
    let stream = frames(guard, script, model, prompt_tokens, include_usage);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The body as a stream of SSE frames, following `script`.
fn frames(
    guard: DropGuard,
    script: Script,
    model: String,
    prompt_tokens: usize,
    include_usage: bool,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> + Send {
    enum Step {
        Role,
        Token(usize),
        Finish,
        Usage,
        Done,
        Over,
    }
    futures::stream::unfold((guard, Step::Role), move |(guard, step)| {
        let script = script.clone();
        let model = model.clone();
        async move {
            let (frame, next) = match step {
                Step::Over => return None,
                Step::Role => (
                    chunk(
                        &model,
                        json!({"role": "assistant", "content": ""}),
                        Value::Null,
                    ),
                    Step::Token(0),
                ),
                Step::Token(i) if Some(i) == script.break_after => {
                    // Let the frames before the break reach the client, then abort the
                    // connection; the record stays "not completed", like a real crash.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Some((
                        Err(std::io::Error::other("scripted break mid-stream")),
                        (guard, Step::Over),
                    ));
                }
                Step::Token(i) if Some(i) == script.garbage_at => (
                    "data: {\"id\": \"chatcmpl-fake\", \"choices\": [{\"delta\"\n\n".to_owned(),
                    Step::Token(i + 1),
                ),
                Step::Token(i) => match script.tokens.get(i) {
                    Some(token) => {
                        tokio::time::sleep(script.delay).await;
                        (
                            chunk(&model, json!({"content": token}), Value::Null),
                            Step::Token(i + 1),
                        )
                    }
                    None => (String::new(), Step::Finish),
                },
                Step::Finish => match &script.finish {
                    FinishQuirk::Null => (String::new(), Step::Usage),
                    other => (chunk(&model, json!({}), finish_value(other)), Step::Usage),
                },
                Step::Usage => {
                    let frame = if include_usage && script.usage {
                        let body = json!({
                            "id": "chatcmpl-fake", "object": "chat.completion.chunk",
                            "created": 0, "model": model, "choices": [],
                            "usage": usage(prompt_tokens, script.tokens.len()),
                        });
                        format!("data: {body}\n\n")
                    } else {
                        String::new()
                    };
                    (frame, Step::Done)
                }
                Step::Done => {
                    lock(&guard.shared.requests)[guard.index].completed = true;
                    ("data: [DONE]\n\n".to_owned(), Step::Over)
                }
            };
            Some((Ok(frame), (guard, next)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(fake: &FakeLlm, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/chat/completions", fake.base_url()))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    #[tokio::test]
    async fn streams_chunks_then_usage_then_done() {
        let fake = FakeLlm::start(Script::tokens(["a", "b"])).await;
        let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                          "messages": [{"role": "user", "content": "hi there"}]});
        let text = post(&fake, body).await.text().await.expect("body");
        let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
        assert_eq!(frames.len(), 6, "{text}");
        assert!(frames[1].contains(r#""content":"a""#));
        assert!(frames[3].contains(r#""finish_reason":"stop""#));
        assert!(frames[4].contains(r#""prompt_tokens":2"#));
        assert_eq!(frames[5], "data: [DONE]");
        assert!(fake.requests()[0].completed);
    }

    #[tokio::test]
    async fn a_break_delivers_the_tokens_before_it_then_fails() {
        let fake = FakeLlm::start(Script::tokens(["a", "b", "c", "d"]).breaking_after(3)).await;
        let body = json!({"model": "m", "stream": true, "messages": []});
        let mut response = post(&fake, body).await;
        let mut text = String::new();
        let failed = loop {
            match response.chunk().await {
                Ok(Some(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        assert!(failed, "{text}");
        assert!(text.contains(r#""content":"c""#), "{text}");
        assert!(!text.contains("[DONE]"));
    }

    #[tokio::test]
    async fn non_streamed_answers_and_models_use_the_openai_shapes() {
        let fake = FakeLlm::start(Script::tokens(["a", "b"]).without_usage()).await;
        let answer: Value = post(&fake, json!({"model": "m", "messages": []}))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(answer["choices"][0]["message"]["content"], "ab");
        assert!(answer.get("usage").is_none());
        let models: Value = reqwest::get(format!("{}/models", fake.base_url()))
            .await
            .expect("models")
            .json()
            .await
            .expect("json");
        assert_eq!(models["data"][0]["id"], FAKE_MODEL);
    }
}
