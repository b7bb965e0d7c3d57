//! A `/rerank` endpoint with the Cohere/Jina wire shape (`{"query", "documents", "top_n"}` in,
//! `{"results": [{"index", "relevance_score"}]}` out; TEI's `texts` is read too), served by
//! the fake LLM server. Its "model" is lexical and deterministic: a document's score is the
//! share of the query's words (three letters or more, lower-cased) it contains, so a test can
//! predict the order it produces.

use std::sync::{Arc, Mutex};

use axum::{Json, Router, extract::State, routing::post};
use serde_json::{Value, json};

#[derive(Debug, Clone, Default)]
pub struct FakeRerank {
    requests: Arc<Mutex<Vec<Value>>>,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// The fake's score of `document` for `query`.
pub fn score(query: &str, document: &str) -> f64 {
    let query = words(query);
    if query.is_empty() {
        return 0.0;
    }
    let document = words(document);
    let found = query.iter().filter(|w| document.contains(w)).count();
    found as f64 / query.len() as f64
}

async fn rerank(State(fake): State<FakeRerank>, Json(body): Json<Value>) -> Json<Value> {
    if let Ok(mut requests) = fake.requests.lock() {
        requests.push(body.clone());
    }
    let query = body["query"].as_str().unwrap_or_default();
    let documents = body["documents"]
        .as_array()
        .or_else(|| body["texts"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut results: Vec<(usize, f64)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| (i, score(query, d.as_str().unwrap_or_default())))
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_n = body["top_n"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(results.len());
    let results: Vec<Value> = results
        .into_iter()
        .take(top_n)
        .map(|(index, s)| json!({"index": index, "relevance_score": s}))
        .collect();
    Json(json!({"id": "fake-rerank", "results": results}))
}

impl FakeRerank {
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/rerank", post(rerank))
            .with_state(self.clone())
    }

    /// The rerank requests received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_score_is_the_share_of_query_words_found() {
        assert_eq!(
            super::score("tidal moon pull", "The Moon's pull makes tides"),
            2.0 / 3.0
        );
        assert_eq!(super::score("a b", "anything"), 0.0);
    }
}
