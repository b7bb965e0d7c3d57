//! `POST /v1/embeddings` of the fake OpenAI-compatible server, in the real wire format.
//!
//! Vectors are deterministic and meaningful: a hashed bag of words (each lower-cased word adds
//! ±1 to one of `dimensions` buckets), L2-normalised, so texts sharing words are close and a
//! search with these vectors finds the right chunk. The fake can answer 429 (with
//! `Retry-After`) or 5xx for the next N calls, rejects batches over a configured size with 400
//! like real providers, and records every request with its batch size.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// Dimensions returned when neither the fake nor the request sets them.
pub const DEFAULT_DIMENSIONS: usize = 64;

/// One scripted failure of the embeddings endpoint.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingFailure {
    pub status: u16,
    /// Sent as `Retry-After` (seconds) when set.
    pub retry_after_secs: Option<u64>,
}

/// One embeddings request the fake received.
#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    pub model: String,
    pub inputs: Vec<String>,
    pub received_at: Instant,
    /// The HTTP status answered.
    pub status: u16,
}

#[derive(Debug)]
struct Inner {
    dimensions: usize,
    max_batch: usize,
    failures: VecDeque<EmbeddingFailure>,
    requests: Vec<EmbeddingRequest>,
}

/// The embeddings side of the fake; shared by the server and the test.
#[derive(Debug, Clone)]
pub struct FakeEmbeddings {
    inner: Arc<Mutex<Inner>>,
}

impl Default for FakeEmbeddings {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                dimensions: DEFAULT_DIMENSIONS,
                max_batch: 2048,
                failures: VecDeque::new(),
                requests: Vec::new(),
            })),
        }
    }
}

impl FakeEmbeddings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Vector size when the request does not ask for one.
    pub fn set_dimensions(&self, dimensions: usize) {
        self.lock().dimensions = dimensions.max(1);
    }

    /// Larger batches are refused with 400, as providers do.
    pub fn set_max_batch(&self, max_batch: usize) {
        self.lock().max_batch = max_batch.max(1);
    }

    /// The next `times` calls fail with `status` (and `Retry-After` when given).
    pub fn fail_next(&self, times: usize, status: u16, retry_after_secs: Option<u64>) {
        let mut inner = self.lock();
        for _ in 0..times {
            inner.failures.push_back(EmbeddingFailure {
                status,
                retry_after_secs,
            });
        }
    }

    /// Drops the failures not used yet: the next call succeeds.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Requests so far, in order (failed ones included).
    pub fn requests(&self) -> Vec<EmbeddingRequest> {
        self.lock().requests.clone()
    }

    /// Inputs per successful request, in order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.inputs.len())
            .collect()
    }

    /// The router serving `POST /v1/embeddings`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/embeddings", post(embeddings))
            .with_state(self.clone())
    }
}

/// The fake's vector for `text` at `dimensions`: a signed, hashed bag of words, normalised.
pub fn fake_vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dimensions.max(1)];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = fnv1a(&word.to_lowercase());
        let bucket = usize::try_from(hash % v.len() as u64).unwrap_or(0);
        v[bucket] += if hash & (1 << 63) == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
    } else {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn error(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (status, Json(body)).into_response()
}

async fn embeddings(State(fake): State<FakeEmbeddings>, Json(body): Json<Value>) -> Response {
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut inner = fake.lock();
    let failure = inner.failures.pop_front();
    let status = match (failure, inputs.len()) {
        (Some(f), _) => f.status,
        (None, 0) => 400,
        (None, n) if n > inner.max_batch => 400,
        (None, _) => 200,
    };
    inner.requests.push(EmbeddingRequest {
        model: model.clone(),
        inputs: inputs.clone(),
        received_at: Instant::now(),
        status,
    });
    let dimensions = body["dimensions"]
        .as_u64()
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(inner.dimensions);
    let max_batch = inner.max_batch;
    drop(inner);

    if let Some(failure) = failure {
        let status =
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = if failure.status == 429 {
            "rate_limit_error"
        } else {
            "server_error"
        };
        let mut response = error(
            status,
            &format!("scripted failure {}", failure.status),
            kind,
        );
        if let Some(secs) = failure.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if inputs.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "input must not be empty",
            "invalid_request_error",
        );
    }
    if inputs.len() > max_batch {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("at most {max_batch} inputs per request"),
            "invalid_request_error",
        );
    }
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": fake_vector(text, dimensions)})
        })
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}
