//! The embedding backends behind the model registry: the OpenAI-compatible one against the
//! fake server's real-wire-format `/v1/embeddings` (batching within the provider's limit,
//! retries honouring `Retry-After`, giving up on persistent 5xx, truncation), and the local
//! model behind the dynamic batcher (concurrent requests get the vectors they would get alone).
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use thinkbank_ai_worker::embed::{LocalEmbedder, Registry, registry::EmbedConfig};
use thinkbank_testkit::{FakeLlm, Script, fake_vector};

fn local() -> LocalEmbedder {
    LocalEmbedder::load(&thinkbank_testkit::model_dir()).unwrap()
}

/// A registry with the local model and `remote-64` on `fake`, with test-sized retries.
fn registry(fake: &FakeLlm, extra: &str) -> Registry {
    let spec = format!(
        r#"[{{"name": "remote-64", "base_url": "{}", "model": "text-embedding-fake", "dimensions": 64,
             "max_batch": 3, "max_retries": 2, "backoff_ms": 10, "timeout_ms": 5000 {extra}}}]"#,
        fake.base_url()
    );
    let config = EmbedConfig {
        embedding_models: spec,
        ..EmbedConfig::default()
    };
    Registry::new(local(), &config).unwrap()
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("sentence number {i} about tides and the moon"))
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: dimensions differ");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: max abs difference {worst}");
}

#[tokio::test]
async fn remote_inputs_are_sent_in_batches_within_the_provider_limit_and_keep_their_order() {
    let fake = FakeLlm::start(Script::default()).await;
    fake.embeddings.set_max_batch(3);
    let registry = registry(&fake, "");
    let model = registry.get("remote-64").unwrap();
    assert_eq!(model.info().dimensions, 64);
    let input = texts(7);
    let out = model.embed(input.clone()).await.unwrap();
    assert_eq!(fake.embeddings.batch_sizes(), vec![3, 3, 1]);
    assert_eq!(out.len(), 7);
    for (text, embedded) in input.iter().zip(&out) {
        assert_close(&embedded.vector, &fake_vector(text, 64), text);
        assert!(!embedded.truncated);
    }
    let requests = fake.embeddings.requests();
    assert!(requests.iter().all(|r| r.model == "text-embedding-fake"));
}

#[tokio::test]
async fn a_429_is_retried_after_the_delay_the_provider_asked_for() {
    let fake = FakeLlm::start(Script::default()).await;
    fake.embeddings.fail_next(1, 429, Some(1));
    fake.embeddings.fail_next(1, 503, None);
    let registry = registry(&fake, "");
    let out = registry
        .get("remote-64")
        .unwrap()
        .embed(texts(2))
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    let requests = fake.embeddings.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 503, 200]);
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(
        waited >= Duration::from_millis(950),
        "the retry came {waited:?} after a 429 with Retry-After: 1"
    );
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_configured_retries() {
    let fake = FakeLlm::start(Script::default()).await;
    fake.embeddings.fail_next(10, 500, None);
    let registry = registry(&fake, "");
    let error = registry
        .get("remote-64")
        .unwrap()
        .embed(texts(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            thinkbank_ai_worker::embed::EmbedError::Unavailable(_)
        ),
        "{error:?}"
    );
    // The first attempt and two retries.
    assert_eq!(fake.embeddings.requests().len(), 3);
}

#[tokio::test]
async fn remote_input_over_the_token_limit_is_cut_and_flagged() {
    let fake = FakeLlm::start(Script::default()).await;
    let registry = registry(&fake, r#", "max_tokens": 8"#);
    let long = "one two three four five six seven eight nine ten eleven twelve".to_owned();
    let out = registry
        .get("remote-64")
        .unwrap()
        .embed(vec![long, "short".into()])
        .await
        .unwrap();
    assert!(out[0].truncated);
    assert_eq!(out[0].token_count, 8);
    assert!(!out[1].truncated);
    let sent = &fake.embeddings.requests()[0].inputs;
    assert_eq!(sent[0], "one two three four five six seven eight");
}

#[tokio::test]
async fn unknown_models_are_rejected_naming_the_configured_ones() {
    let fake = FakeLlm::start(Script::default()).await;
    let registry = registry(&fake, "");
    let error = registry
        .get("text-embedding-3-large")
        .unwrap_err()
        .to_string();
    assert!(error.contains("all-minilm-l6-v2"), "{error}");
    assert!(error.contains("remote-64"), "{error}");
    assert_eq!(registry.get("").unwrap().info().name, "all-minilm-l6-v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_local_requests_merged_by_the_batcher_get_their_own_vectors() {
    let fake = FakeLlm::start(Script::default()).await;
    let registry = registry(&fake, "");
    let reference = local();
    let inputs: Vec<Vec<String>> = (0..12)
        .map(|i| {
            (0..=i % 4)
                .map(|j| format!("request {i} text {j}: {}", "word ".repeat(i * 3 + j)))
                .collect()
        })
        .collect();
    let model = registry.get("all-minilm-l6-v2").unwrap().clone();
    let tasks: Vec<_> = inputs
        .iter()
        .cloned()
        .map(|texts| {
            let model = model.clone();
            tokio::spawn(async move { model.embed(texts).await })
        })
        .collect();
    for (texts, task) in inputs.iter().zip(tasks) {
        let got = task.await.unwrap().unwrap();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let alone = reference.embed_blocking(&refs).unwrap();
        assert_eq!(got.len(), texts.len());
        for ((g, a), text) in got.iter().zip(&alone).zip(texts) {
            assert_close(&g.vector, &a.vector, text);
            assert_eq!(g.token_count, a.token_count);
        }
    }
}
