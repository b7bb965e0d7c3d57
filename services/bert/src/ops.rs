//! Element-wise and row-wise kernels of the encoder, each compiled per instruction set (see
//! [`crate::simd`]). Rows are contiguous; a row's width is the length of its bias or norm.

use crate::math::{exp, gelu};
use crate::simd::{mul_add, multiversion};

/// Accumulators for reductions: 16 independent partial sums map onto one AVX-512 register (or
/// two AVX2 ones), which is what lets LLVM vectorise a floating-point sum at all.
const LANES: usize = 16;

/// LayerNorm parameters of one normalisation: y = (x - mean)/√(var + eps)·gamma + beta.
#[derive(Debug, Clone)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

multiversion!(
    /// x = gelu(x + bias), row by row.
    pub fn bias_gelu(x: &mut [f32], bias: &[f32]) => bias_gelu_generic
);

multiversion!(
    /// Each row of width `width` becomes its softmax.
    pub fn softmax_rows(x: &mut [f32], width: usize) => softmax_rows_generic
);

multiversion!(
    /// Each row becomes its LayerNorm.
    pub fn layer_norm(x: &mut [f32], norm: &Norm) => layer_norm_generic
);

multiversion!(
    /// hidden = LayerNorm(delta + bias + hidden), row by row: a sub-layer's output projection
    /// (without its bias), plus the residual stream, normalised.
    pub fn add_layer_norm(hidden: &mut [f32], delta: &[f32], bias: &[f32], norm: &Norm) => add_layer_norm_generic
);

#[inline(always)]
fn bias_gelu_generic<const FMA: bool>(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = gelu::<FMA>(*v + b);
        }
    }
}

#[inline(always)]
fn softmax_rows_generic<const FMA: bool>(x: &mut [f32], width: usize) {
    for row in x.chunks_exact_mut(width) {
        let max = lanes_max(row);
        let mut sums = [0.0f32; LANES];
        let (body, tail) = row.split_at_mut(width - width % LANES);
        for chunk in body.chunks_exact_mut(LANES) {
            for (v, s) in chunk.iter_mut().zip(&mut sums) {
                *v = exp::<FMA>(*v - max);
                *s += *v;
            }
        }
        if !tail.is_empty() {
            // The tail goes through the same vector code in a padded block (a scalar loop of
            // exps costs as much as the whole body for short rows). Padding is -inf, whose
            // exp is clamped to ~1e-38: nothing next to a sum that is at least 1.
            let mut block = [f32::NEG_INFINITY; LANES];
            block[..tail.len()].copy_from_slice(tail);
            for (v, s) in block.iter_mut().zip(&mut sums) {
                *v = exp::<FMA>(*v - max);
                *s += *v;
            }
            tail.copy_from_slice(&block[..tail.len()]);
        }
        let inverse = 1.0 / sums.iter().sum::<f32>();
        for v in row.iter_mut() {
            *v *= inverse;
        }
    }
}

#[inline(always)]
fn layer_norm_generic<const FMA: bool>(x: &mut [f32], norm: &Norm) {
    for row in x.chunks_exact_mut(norm.gamma.len()) {
        normalise_row::<FMA>(row, norm);
    }
}

#[inline(always)]
fn add_layer_norm_generic<const FMA: bool>(
    hidden: &mut [f32],
    delta: &[f32],
    bias: &[f32],
    norm: &Norm,
) {
    let width = norm.gamma.len();
    for (row, d) in hidden
        .chunks_exact_mut(width)
        .zip(delta.chunks_exact(width))
    {
        for ((h, d), b) in row.iter_mut().zip(d).zip(bias) {
            *h += d + b;
        }
        normalise_row::<FMA>(row, norm);
    }
}

/// Two passes (mean, then the variance of the deviations) as PyTorch does; one pass of
/// sum-of-squares would lose digits when |mean| is large next to the spread.
#[inline(always)]
fn normalise_row<const FMA: bool>(row: &mut [f32], norm: &Norm) {
    let n = row.len() as f32;
    let mean = lanes_sum(row, |v| v) / n;
    let variance = lanes_sum(row, |v| (v - mean) * (v - mean)) / n;
    let scale = 1.0 / (variance + norm.eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *v = mul_add::<FMA>((*v - mean) * scale, *g, *b);
    }
}

/// Σ f(v) over `row` with `LANES` partial sums.
#[inline(always)]
fn lanes_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut sums = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (s, &v) in sums.iter_mut().zip(chunk) {
            *s += f(v);
        }
    }
    tail + sums.iter().sum::<f32>()
}

#[inline(always)]
fn lanes_max(row: &[f32]) -> f32 {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let mut block = [f32::NEG_INFINITY; LANES];
    block[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    for chunk in chunks.chain(std::iter::once(&block[..])) {
        for (m, &v) in maxima.iter_mut().zip(chunk) {
            *m = m.max(v);
        }
    }
    maxima.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Isa;

    /// Deterministic pseudo-random values in [-scale, scale).
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                (unit * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn worst(a: &[f32], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - y).abs())
            .fold(0.0, f64::max)
    }

    fn norm(width: usize) -> Norm {
        Norm {
            gamma: values(width, 7, 1.5),
            beta: values(width, 8, 0.5),
            eps: 1e-12,
        }
    }

    fn layer_norm_reference(row: &[f64], norm: &Norm) -> Vec<f64> {
        let n = row.len() as f64;
        let mean = row.iter().sum::<f64>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let scale = 1.0 / (var + f64::from(norm.eps)).sqrt();
        row.iter()
            .zip(norm.gamma.iter().zip(&norm.beta))
            .map(|(v, (&g, &b))| (v - mean) * scale * f64::from(g) + f64::from(b))
            .collect()
    }

    #[test]
    fn softmax_rows_match_f64_on_every_isa() {
        // Widths around the lane count exercise the vector body and the scalar tail.
        for isa in Isa::available() {
            for width in [1, 5, 16, 17, 65, 256] {
                let mut x = values(3 * width, width as u64, 12.0);
                let want: Vec<f64> = x
                    .chunks(width)
                    .flat_map(|row| {
                        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                        let e: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
                        let sum: f64 = e.iter().sum();
                        e.into_iter().map(move |v| v / sum)
                    })
                    .collect();
                softmax_rows(isa, &mut x, width);
                // Relative error: a few ulp (one ulp is 1.2e-7 relative at worst).
                let err = x
                    .iter()
                    .zip(&want)
                    .map(|(&g, &w)| (f64::from(g) - w).abs() / w)
                    .fold(0.0, f64::max);
                assert!(err < 5e-7, "{}: width {width}: {err}", isa.name());
            }
        }
    }

    #[test]
    fn layer_norm_matches_f64_on_every_isa() {
        for isa in Isa::available() {
            for width in [16, 37, 384] {
                let norm = norm(width);
                // An offset mean checks the two-pass variance.
                let mut x: Vec<f32> = values(4 * width, 3, 2.0).iter().map(|v| v + 30.0).collect();
                let want: Vec<f64> = x
                    .chunks(width)
                    .flat_map(|row| {
                        let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                        layer_norm_reference(&row, &norm)
                    })
                    .collect();
                layer_norm(isa, &mut x, &norm);
                let err = worst(&x, &want);
                assert!(err < 2e-5, "{}: width {width}: {err}", isa.name());
            }
        }
    }

    #[test]
    fn add_layer_norm_adds_delta_bias_and_residual_first() {
        for isa in Isa::available() {
            let width = 48;
            let norm = norm(width);
            let mut hidden = values(2 * width, 11, 1.0);
            let delta = values(2 * width, 12, 1.0);
            let bias = values(width, 13, 0.3);
            let want: Vec<f64> = hidden
                .chunks(width)
                .zip(delta.chunks(width))
                .flat_map(|(h, d)| {
                    let row: Vec<f64> = h
                        .iter()
                        .zip(d)
                        .zip(&bias)
                        .map(|((&h, &d), &b)| f64::from(h) + f64::from(d) + f64::from(b))
                        .collect();
                    layer_norm_reference(&row, &norm)
                })
                .collect();
            add_layer_norm(isa, &mut hidden, &delta, &bias, &norm);
            let err = worst(&hidden, &want);
            assert!(err < 2e-6, "{}: {err}", isa.name());
        }
    }

    #[test]
    fn bias_gelu_matches_scalar_gelu_on_every_isa() {
        let width = 40;
        let bias = values(width, 5, 0.5);
        let input = values(5 * width, 6, 6.0);
        let want: Vec<f64> = input
            .chunks(width)
            .flat_map(|row| row.iter().zip(&bias).map(|(&v, &b)| v + b))
            .map(|v| f64::from(gelu::<true>(v)))
            .collect();
        for isa in Isa::available() {
            let mut x = input.clone();
            bias_gelu(isa, &mut x, &bias);
            // Vector and scalar code may differ in the last bit (FMA vs not).
            let err = worst(&x, &want);
            assert!(err < 1e-6, "{}: {err}", isa.name());
        }
    }
}
