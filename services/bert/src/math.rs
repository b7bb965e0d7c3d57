//! Branch-free scalar `exp`, `erf` and GELU that LLVM vectorises inside the kernels' loops.
//! `FMA` selects fused multiply-adds (see [`crate::simd::mul_add`]).

use crate::simd::mul_add;

/// e^x for x in [-87, 88] (clamped outside, which softmax never notices: e^-87 ≈ 1.6e-38),
/// within 2 ulp.
///
/// Cephes' `expf`: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-7 polynomial, 2^n built
/// directly in the exponent bits.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    // 1.5·2^23: adding it rounds to an integer (to nearest) held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // ln2 split in two so that n·LN2_HI is exact and r keeps its low bits.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = mul_add::<FMA>(x, std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = mul_add::<FMA>(n, -LN2_HI, x);
    let r = mul_add::<FMA>(n, -LN2_LO, r);
    let mut p = 1.987_569_1e-4;
    p = mul_add::<FMA>(p, r, 1.398_199_9e-3);
    p = mul_add::<FMA>(p, r, 8.333_452e-3);
    p = mul_add::<FMA>(p, r, 4.166_579_6e-2);
    p = mul_add::<FMA>(p, r, 1.666_666_5e-1);
    p = mul_add::<FMA>(p, r, 0.5); // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let e_r = mul_add::<FMA>(p, r * r, r) + 1.0;
    // t's bits are ROUND's plus n, and ROUND's low 9 bits are zero, so shifting (bits + 127)
    // left by 23 leaves exactly the biased exponent n + 127 (in 1..=254 after the clamp).
    let two_n = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    e_r * two_n
}

/// erf(x) within 4e-7 (a few ulp): Eigen's (and XLA's) rational approximation x·P(x²)/Q(x²) on
/// [-4, 4]; outside, erf is ±1 in f32.
#[inline(always)]
pub fn erf<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10;
    p = mul_add::<FMA>(p, x2, 2.770_681_4e-8);
    p = mul_add::<FMA>(p, x2, -2.101_024e-6);
    p = mul_add::<FMA>(p, x2, -5.692_506_4e-5);
    p = mul_add::<FMA>(p, x2, -7.349_906_3e-4);
    p = mul_add::<FMA>(p, x2, -2.954_600_1e-3);
    p = mul_add::<FMA>(p, x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5;
    q = mul_add::<FMA>(q, x2, -2.133_740_6e-4);
    q = mul_add::<FMA>(q, x2, -1.682_827e-3);
    q = mul_add::<FMA>(q, x2, -7.373_329e-3);
    q = mul_add::<FMA>(q, x2, -1.426_474e-2);
    (x * p / q).clamp(-1.0, 1.0)
}

/// The exact GELU of BERT (`hidden_act: "gelu"`): x·Φ(x) = x/2·(1 + erf(x/√2)).
#[inline(always)]
pub fn gelu<const FMA: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 from its everywhere-convergent series with positive terms,
    /// erf(x) = 2/√π · e^(-x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)).
    fn erf_reference(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= 2.0 * x * x / f64::from(2 * n + 1);
            sum += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
    }

    fn grid(from: f32, to: f32, steps: u32) -> impl Iterator<Item = f32> {
        (0..=steps).map(move |i| from + (to - from) * i as f32 / steps as f32)
    }

    #[test]
    fn erf_is_within_4e_7_everywhere() {
        for fma in [true, false] {
            let mut worst = 0.0f64;
            for x in grid(-6.0, 6.0, 24_001) {
                let got = if fma { erf::<true>(x) } else { erf::<false>(x) };
                let want = erf_reference(f64::from(x));
                worst = worst.max((f64::from(got) - want).abs());
            }
            // A few ulp near |erf| ≈ 1, where one ulp is 6e-8.
            assert!(worst < 4e-7, "fma={fma}: worst erf error {worst}");
        }
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        let mut worst = 0.0f64;
        for x in grid(-10.0, 10.0, 20_001) {
            let x64 = f64::from(x);
            let want = 0.5 * x64 * (1.0 + erf_reference(x64 / std::f64::consts::SQRT_2));
            let got = f64::from(gelu::<true>(x));
            // Relative to max(1, |x|): the output scales with x.
            worst = worst.max((got - want).abs() / x64.abs().max(1.0));
        }
        assert!(worst < 3e-7, "worst relative GELU error {worst}");
    }

    #[test]
    fn exp_is_within_3_ulp_on_the_softmax_range() {
        for fma in [true, false] {
            let mut worst = 0.0f64;
            for x in grid(-87.0, 10.0, 97_001) {
                let got = f64::from(if fma { exp::<true>(x) } else { exp::<false>(x) });
                let want = f64::from(x).exp();
                worst = worst.max((got - want).abs() / want);
            }
            // 3 ulp of f32 is 3·2^-23 ≈ 3.6e-7 relative.
            assert!(
                worst < 3.6e-7,
                "fma={fma}: worst relative exp error {worst}"
            );
        }
    }

    #[test]
    fn exp_clamps_instead_of_overflowing() {
        assert!(exp::<true>(-1000.0) >= 0.0 && exp::<true>(-1000.0) < 1e-37);
        assert!(exp::<true>(1000.0).is_finite());
        assert_eq!(exp::<true>(0.0), 1.0);
    }
}
