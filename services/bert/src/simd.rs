//! Runtime choice of the widest vector instructions the CPU has.
//!
//! The element-wise kernels are written as plain, branch-free loops that LLVM vectorises; the
//! [`multiversion!`] macro compiles each one three times (AVX-512, AVX2+FMA, baseline) and
//! picks the version for the detected [`Isa`]. Release binaries stay portable: nothing is
//! compiled for the build machine's CPU.
#![allow(unsafe_code)]

/// A vector instruction set the running CPU supports. Only [`Isa::detect`] and
/// [`Isa::available`] construct one, so holding an `Isa` proves the features are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa(Level);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// AVX-512 F (16 lanes) with FMA.
    Avx512,
    /// AVX2 with FMA (8 lanes).
    Avx2,
    /// Whatever the compilation target guarantees (SSE2 on x86-64), multiply then add.
    Baseline,
}

impl Isa {
    /// The widest instruction set of this CPU.
    pub fn detect() -> Self {
        Self::available()
            .into_iter()
            .next()
            .unwrap_or(Self(Level::Baseline))
    }

    /// Every instruction set this CPU supports, widest first (tests run each of them).
    pub fn available() -> Vec<Self> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            if avx2 && std::is_x86_feature_detected!("avx512f") {
                out.push(Self(Level::Avx512));
            }
            if avx2 {
                out.push(Self(Level::Avx2));
            }
        }
        out.push(Self(Level::Baseline));
        out
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2+fma",
            Level::Baseline => "baseline",
        }
    }

    pub(crate) fn is_avx512(self) -> bool {
        self.0 == Level::Avx512
    }

    pub(crate) fn is_avx2(self) -> bool {
        self.0 == Level::Avx2
    }
}

/// `a * b + c`, fused when the instruction set has FMA (one rounding) and as a multiply and
/// an add otherwise (a software `fmaf` call would be far slower than the kernel itself).
#[inline(always)]
pub fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Defines `pub fn $name(isa: Isa, args...)` that runs the generic body `$body::<FMA>(args...)`
/// compiled for the instruction set `isa` stands for.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$meta])*
        // The two calls below are the only unsafe code of a kernel.
        #[allow(unsafe_code)]
        $vis fn $name(isa: $crate::simd::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                if isa.is_avx512() {
                    // SAFETY: an `Isa` for AVX-512 exists only after runtime detection found
                    // avx512f, avx2 and fma on this CPU.
                    return unsafe { avx512($($arg),*) };
                }
                if isa.is_avx2() {
                    // SAFETY: an `Isa` for AVX2 exists only after runtime detection found avx2
                    // and fma on this CPU.
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = isa;
            $body::<false>($($arg),*)
        }
    };
}

pub(crate) use multiversion;
