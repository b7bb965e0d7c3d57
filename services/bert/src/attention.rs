//! Multi-head self-attention of one sequence, head by head, on its rows of the fused QKV
//! projection. The batch is unpadded, so no mask: every key is a real token.

use crate::{
    matmul::{Mat, MatMut, matmul},
    ops::softmax_rows,
    simd::Isa,
};

/// Shape of the attention of one layer.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub count: usize,
    pub size: usize,
}

/// Writes `softmax(Q·Kᵀ/√d)·V` of every head of the sequence occupying rows
/// `start..start + len` into the same rows of `context` (row width `hidden`, head `h` in
/// columns `h·d..(h+1)·d`). `qkv` rows are `[Q | K | V]`, each `hidden` wide; `scores` is
/// scratch space, grown as needed.
pub fn attend(
    isa: Isa,
    heads: Heads,
    qkv: &[f32],
    context: &mut [f32],
    scores: &mut Vec<f32>,
    start: usize,
    len: usize,
) {
    if len == 0 {
        // Nothing to attend to, and no rows to slice into.
        return;
    }
    let hidden = heads.count * heads.size;
    let qkv_width = 3 * hidden;
    if scores.len() < len * len {
        scores.resize(len * len, 0.0);
    }
    let scale = 1.0 / (heads.size as f32).sqrt();
    let rows = &qkv[start * qkv_width..];
    for head in 0..heads.count {
        let column = head * heads.size;
        let q = Mat::new(&rows[column..], len, heads.size, qkv_width);
        let k = Mat::new(&rows[hidden + column..], len, heads.size, qkv_width);
        let v = Mat::new(&rows[2 * hidden + column..], len, heads.size, qkv_width);
        let scores = &mut scores[..len * len];
        matmul(MatMut::new(scores, len, len, len), q, k.t(), scale, false);
        softmax_rows(isa, scores, len);
        matmul(
            MatMut::new(
                &mut context[start * hidden + column..],
                len,
                heads.size,
                hidden,
            ),
            Mat::new(scores, len, len, len),
            v,
            1.0,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward f64 attention of one sequence.
    fn reference(qkv: &[f32], heads: Heads, len: usize) -> Vec<f64> {
        let hidden = heads.count * heads.size;
        let at = |t: usize, part: usize, h: usize, i: usize| {
            f64::from(qkv[t * 3 * hidden + part * hidden + h * heads.size + i])
        };
        let mut out = vec![0.0; len * hidden];
        for h in 0..heads.count {
            for t in 0..len {
                let logits: Vec<f64> = (0..len)
                    .map(|u| {
                        (0..heads.size)
                            .map(|i| at(t, 0, h, i) * at(u, 1, h, i))
                            .sum::<f64>()
                            / (heads.size as f64).sqrt()
                    })
                    .collect();
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for i in 0..heads.size {
                    out[t * hidden + h * heads.size + i] =
                        (0..len).map(|u| weights[u] / sum * at(u, 2, h, i)).sum();
                }
            }
        }
        out
    }

    #[test]
    fn each_sequence_attends_only_to_itself() {
        let heads = Heads { count: 3, size: 4 };
        let hidden = 12;
        let lens = [5, 1, 0, 9, 0];
        let total: usize = lens.iter().sum();
        let qkv: Vec<f32> = (0..total * 3 * hidden)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 2.0)
            .collect();
        for isa in Isa::available() {
            let mut context = vec![f32::NAN; total * hidden];
            let mut scores = Vec::new();
            let mut start = 0;
            for &len in &lens {
                attend(isa, heads, &qkv, &mut context, &mut scores, start, len);
                start += len;
            }
            let mut start = 0;
            for &len in &lens {
                let own = &qkv[start * 3 * hidden..(start + len) * 3 * hidden];
                let want = reference(own, heads, len);
                let got = &context[start * hidden..(start + len) * hidden];
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (f64::from(*g) - w).abs() < 1e-5,
                        "{}: {g} vs {w}",
                        isa.name()
                    );
                }
                start += len;
            }
        }
    }
}
