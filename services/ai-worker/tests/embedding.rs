//! The local embedder reproduces sentence-transformers (PyTorch) to 1e-5, including
//! truncation of long input. The reference vectors were generated once by
//! `fixtures/generate_minilm_fixture.py` and are committed.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use thinkbank_ai_worker::embed::LocalEmbedder;

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    vector: Vec<f32>,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/minilm_embeddings.json");
    serde_json::from_str(text).unwrap()
}

#[test]
fn embedding_matches_sentence_transformers_to_1e_5() {
    let embedder = LocalEmbedder::load(&thinkbank_testkit::model_dir()).unwrap();
    let fixture = fixture();
    let texts: Vec<&str> = fixture.cases.iter().map(|c| c.text.as_str()).collect();
    let embedded = embedder.embed_blocking(&texts).unwrap();
    assert_eq!(embedded.len(), fixture.cases.len());
    for (case, got) in fixture.cases.iter().zip(&embedded) {
        assert_eq!(got.vector.len(), 384);
        let worst = case
            .vector
            .iter()
            .zip(&got.vector)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-5,
            "max abs difference {worst} for {:?}",
            &case.text[..case.text.len().min(40)]
        );
        let norm: f32 = got.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "vector is not L2-normalised: {norm}"
        );
    }
}

#[test]
fn batch_composition_does_not_change_a_vector() {
    let embedder = LocalEmbedder::load(&thinkbank_testkit::model_dir()).unwrap();
    let fixture = fixture();
    let alone = embedder
        .embed_blocking(&[fixture.cases[0].text.as_str()])
        .unwrap();
    let long = fixture.cases.last().unwrap().text.as_str();
    let padded = embedder
        .embed_blocking(&[long, fixture.cases[0].text.as_str()])
        .unwrap();
    let worst = alone[0]
        .vector
        .iter()
        .zip(&padded[1].vector)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "padding changed the vector by {worst}");
}

/// The encoder stacks a call's texts unpadded and splits large calls into groups run on
/// different threads; none of that may change a text's vector beyond float rounding.
#[test]
fn a_text_gets_the_same_vector_alone_and_in_any_batch() {
    let embedder = LocalEmbedder::load(&thinkbank_testkit::model_dir()).unwrap();
    let fixture = fixture();
    let texts: Vec<&str> = fixture.cases.iter().map(|c| c.text.as_str()).collect();
    let alone: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embedder.embed_blocking(&[t]).unwrap().remove(0).vector)
        .collect();
    // Each call lists, per position, which fixture text it holds.
    let n = texts.len();
    let reversed: Vec<usize> = (0..n).rev().collect();
    // ~7,000 tokens: several groups of sequences, run on both threads of the pool.
    let large: Vec<usize> = (0..n * 20 + 3).map(|i| i % n).collect();
    for call in [reversed, large] {
        let call_texts: Vec<&str> = call.iter().map(|&i| texts[i]).collect();
        let embedded = embedder.embed_blocking(&call_texts).unwrap();
        assert_eq!(embedded.len(), call.len());
        for (position, (got, &i)) in embedded.iter().zip(&call).enumerate() {
            let worst = alone[i]
                .iter()
                .zip(&got.vector)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1e-6,
                "text {i} at {position} of {}: differs by {worst}",
                call.len()
            );
        }
    }
}

#[test]
fn long_input_is_truncated_and_reported() {
    let embedder = LocalEmbedder::load(&thinkbank_testkit::model_dir()).unwrap();
    let fixture = fixture();
    let long = fixture.cases.last().unwrap().text.as_str();
    let out = embedder.embed_blocking(&[long, "short text"]).unwrap();
    assert!(out[0].truncated);
    assert_eq!(out[0].token_count, 256);
    assert!(!out[1].truncated);
    assert!(out[1].token_count < 10);
}
