//! One forward pass over a group of sequences, all tokens of all sequences stacked into one
//! `tokens × hidden` matrix (no padding), then mean pooling and L2 normalisation.
//!
//! Everything except attention works on the stacked rows, so each dense layer is one large
//! GEMM; attention runs per sequence. Runs on the calling thread.

use crate::{
    attention::{Heads, attend},
    matmul::{Mat, MatMut, matmul},
    ops::{add_layer_norm, bias_gelu, layer_norm},
    simd::Isa,
    weights::{Dense, Weights},
};

/// Activation buffers, kept between calls so that steady-state embedding allocates nothing
/// but its output (fresh multi-megabyte buffers would cost page faults on every batch).
#[derive(Debug, Default)]
pub struct Scratch {
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    delta: Vec<f32>,
    ffn: Vec<f32>,
    scores: Vec<f32>,
}

/// What the forward pass needs of the model.
pub struct Model<'a> {
    pub weights: &'a Weights,
    pub heads: Heads,
    pub isa: Isa,
}

/// Sentence embeddings of `sequences` (token ids already checked against the vocabulary and
/// the position table).
pub fn embed(model: &Model<'_>, sequences: &[&[u32]], scratch: &mut Scratch) -> Vec<Vec<f32>> {
    let hidden = model.heads.count * model.heads.size;
    let tokens: usize = sequences.iter().map(|s| s.len()).sum();
    let ffn_width = model.weights.layers.first().map_or(0, |l| l.ffn_in.outputs);
    // Every buffer is fully written before it is read, so stale contents are harmless.
    scratch.hidden.resize(tokens * hidden, 0.0);
    scratch.qkv.resize(tokens * 3 * hidden, 0.0);
    scratch.context.resize(tokens * hidden, 0.0);
    scratch.delta.resize(tokens * hidden, 0.0);
    scratch.ffn.resize(tokens * ffn_width, 0.0);

    embed_tokens(model, sequences, &mut scratch.hidden);
    for layer in &model.weights.layers {
        let s = &mut *scratch;
        dense(&mut s.qkv, &s.hidden, tokens, &layer.qkv, true);
        let mut start = 0;
        for sequence in sequences {
            let len = sequence.len();
            attend(
                model.isa,
                model.heads,
                &s.qkv,
                &mut s.context,
                &mut s.scores,
                start,
                len,
            );
            start += len;
        }
        dense(
            &mut s.delta,
            &s.context,
            tokens,
            &layer.attention_out,
            false,
        );
        add_layer_norm(
            model.isa,
            &mut s.hidden,
            &s.delta,
            &layer.attention_out.bias,
            &layer.attention_norm,
        );
        dense(&mut s.ffn, &s.hidden, tokens, &layer.ffn_in, false);
        bias_gelu(model.isa, &mut s.ffn, &layer.ffn_in.bias);
        dense(&mut s.delta, &s.ffn, tokens, &layer.ffn_out, false);
        add_layer_norm(
            model.isa,
            &mut s.hidden,
            &s.delta,
            &layer.ffn_out.bias,
            &layer.ffn_norm,
        );
    }
    pool(&scratch.hidden, sequences, hidden)
}

/// Word + position + token type (0) embeddings, then LayerNorm, into `out`.
fn embed_tokens(model: &Model<'_>, sequences: &[&[u32]], out: &mut [f32]) {
    let w = model.weights;
    let hidden = w.token_type0.len();
    let mut rows = out.chunks_exact_mut(hidden);
    for sequence in sequences {
        for (position, (&id, row)) in sequence.iter().zip(&mut rows).enumerate() {
            let id = id as usize;
            let word = &w.word[id * hidden..(id + 1) * hidden];
            let pos = &w.position[position * hidden..(position + 1) * hidden];
            // PyTorch's order: (word + token type) + position.
            for (((o, a), t), p) in row.iter_mut().zip(word).zip(&w.token_type0).zip(pos) {
                *o = a + t + p;
            }
        }
    }
    layer_norm(model.isa, out, &w.embedding_norm);
}

/// `dst = x·W (+ bias)`, `x` being `rows × inputs`. With `bias`, `dst` starts as the bias
/// and the GEMM accumulates onto it; without, the caller folds the bias into the next pass.
fn dense(dst: &mut [f32], x: &[f32], rows: usize, layer: &Dense, bias: bool) {
    if bias {
        for row in dst.chunks_exact_mut(layer.outputs) {
            row.copy_from_slice(&layer.bias);
        }
    }
    matmul(
        MatMut::new(dst, rows, layer.outputs, layer.outputs),
        Mat::new(x, rows, layer.inputs, layer.inputs),
        Mat::new(&layer.weight, layer.inputs, layer.outputs, layer.outputs),
        1.0,
        bias,
    );
}

/// sentence-transformers' mean pooling then `normalize`: the mean of a sequence's rows, over
/// max(norm, 1e-12). An empty sequence gives the zero vector.
fn pool(states: &[f32], sequences: &[&[u32]], hidden: usize) -> Vec<Vec<f32>> {
    let mut rows = states.chunks_exact(hidden);
    sequences
        .iter()
        .map(|sequence| {
            let mut sum = vec![0.0f32; hidden];
            for row in (&mut rows).take(sequence.len()) {
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += v;
                }
            }
            let count = sequence.len().max(1) as f32;
            let mean: Vec<f32> = sum.iter().map(|s| s / count).collect();
            let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
            mean.iter().map(|m| m / norm).collect()
        })
        .collect()
}
