//! The encoder on the real all-MiniLM-L6-v2 (`THINKBANK_EMBED_MODEL_DIR`, set by
//! `thinkbank_dev.py env --purpose test`) against the sentence-transformers reference vectors
//! the worker's tests use, on every instruction set this CPU has.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::path::PathBuf;

use thinkbank_bert::{EncodeError, Encoder, Isa};
use tokenizers::{Tokenizer, TruncationParams};

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    vector: Vec<f32>,
}

fn model_dir() -> PathBuf {
    std::env::var("THINKBANK_EMBED_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            panic!("THINKBANK_EMBED_MODEL_DIR is not set: eval \"$(python3 deploy/local/thinkbank_dev.py env --purpose test)\"")
        })
}

fn encoder() -> Encoder {
    let dir = model_dir();
    Encoder::load(
        &std::fs::read_to_string(dir.join("config.json")).unwrap(),
        &std::fs::read(dir.join("model.safetensors")).unwrap(),
    )
    .unwrap()
}

/// Token ids as sentence-transformers makes them: special tokens, truncation at 256.
fn token_ids(texts: &[&str]) -> Vec<Vec<u32>> {
    let mut tokenizer = Tokenizer::from_file(model_dir().join("tokenizer.json")).unwrap();
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: 256,
            ..TruncationParams::default()
        }))
        .unwrap();
    tokenizer
        .encode_batch(texts.to_vec(), true)
        .unwrap()
        .iter()
        .map(|e| e.get_ids().to_vec())
        .collect()
}

#[test]
fn every_instruction_set_matches_sentence_transformers_to_1e_5() {
    let fixture: Fixture = serde_json::from_str(include_str!(
        "../../ai-worker/tests/fixtures/minilm_embeddings.json"
    ))
    .unwrap();
    let texts: Vec<&str> = fixture.cases.iter().map(|c| c.text.as_str()).collect();
    let ids = token_ids(&texts);
    let ids: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let mut encoder = encoder();
    for isa in Isa::available() {
        encoder = encoder.with_isa(isa);
        let vectors = encoder.embed(&ids).unwrap();
        for (case, got) in fixture.cases.iter().zip(&vectors) {
            let worst = case
                .vector
                .iter()
                .zip(got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1e-5,
                "{}: max abs difference {worst} for {:?}",
                isa.name(),
                &case.text[..case.text.len().min(40)]
            );
        }
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let encoder = encoder();
    let vocab = encoder.config().vocab_size;
    let unknown = [101, u32::try_from(vocab).unwrap(), 102];
    assert!(matches!(
        encoder.embed(&[&unknown]),
        Err(EncodeError::UnknownToken { .. })
    ));
    let too_long = vec![100u32; encoder.config().max_position_embeddings + 1];
    assert!(matches!(
        encoder.embed(&[&too_long]),
        Err(EncodeError::TooLong { .. })
    ));
    assert!(encoder.embed(&[]).unwrap().is_empty());
    // No tokens at all: sentence-transformers' clamps give the zero vector.
    let empty = encoder.embed(&[&[]]).unwrap();
    assert!(empty[0].iter().all(|&v| v == 0.0));
}
