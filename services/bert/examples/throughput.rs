//! Quick throughput check of the encoder alone (no worker, no database):
//! `cargo run --release -p thinkbank-bert --example throughput -- MODEL_DIR TEXTS_JSON [ROUNDS]`
//! where TEXTS_JSON is an array of strings (`make bench-embed` writes one to
//! `.data/bench-embed/texts.json`). Threads: `RAYON_NUM_THREADS`. `make bench-embed` is the
//! reference measurement; this is for iterating on kernels.

use std::{path::PathBuf, time::Instant};

use thinkbank_bert::Encoder;
use tokenizers::{Tokenizer, TruncationParams};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: throughput MODEL_DIR TEXTS_JSON [ROUNDS]";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(args.next().ok_or(usage)?)?)?;
    let rounds: usize = args.next().map_or(Ok(3), |r| r.parse())?;

    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    tokenizer.with_padding(None);
    tokenizer.with_truncation(Some(TruncationParams {
        max_length: 256,
        ..TruncationParams::default()
    }))?;
    let encodings = tokenizer.encode_batch(texts.iter().map(String::as_str).collect(), true)?;
    let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
    let tokens: usize = ids.iter().map(|s| s.len()).sum();

    let encoder = Encoder::load(
        &std::fs::read_to_string(dir.join("config.json"))?,
        &std::fs::read(dir.join("model.safetensors"))?,
    )?;
    encoder.embed(&ids[..64.min(ids.len())])?;
    println!(
        "{} texts, {tokens} tokens, {} threads, {}",
        ids.len(),
        rayon::current_num_threads(),
        encoder.isa().name()
    );
    for _ in 0..rounds {
        let started = Instant::now();
        encoder.embed(&ids)?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:.1} sentences/s, {:.0} tokens/s",
            ids.len() as f64 / secs,
            tokens as f64 / secs
        );
    }
    Ok(())
}
