//! Loops compiled for the widest vector instructions of the CPU that runs them.
//!
//! rlpg is built for the baseline of its target (on x86-64: SSE2, four floats per
//! instruction), so that one binary runs on any machine. The matrix product already picks its
//! micro-kernel at run time (`matrixmultiply` detects AVX2 and AVX-512); [`wide`] gives the
//! elementwise loops around it (bias and activation epilogues, slopes, the optimizer's step)
//! the same: the loop is compiled once more inside a function with AVX-512 (or AVX2) enabled,
//! and the copy this CPU supports runs.
//!
//! The results are the same bit for bit on every path: only the vector width changes, not the
//! operations or their order (no fused multiply-add is formed; Rust never contracts `a * b + c`,
//! and a sum of a slice stays a sequential sum, which the compiler does not reorder).

/// Runs `f`, compiled for AVX-512 or AVX2 when this CPU has them. `f` must be an
/// `#[inline(always)]` closure (`wide(#[inline(always)] || ...)`): its body is compiled inside
/// the wide function only when it is inlined there.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// [`wide`]'s AVX-512 copy.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// [`wide`]'s AVX2 copy.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::wide;

    #[test]
    fn a_wide_loop_computes_what_the_plain_one_does_bit_for_bit() {
        let x: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let plain: Vec<f32> =
            x.iter().map(|&v| (v * 1.5 + 0.25).max(0.0) / (v.abs() + 1.0)).collect();
        let vectorised = wide(
            #[inline(always)]
            || x.iter().map(|&v| (v * 1.5 + 0.25).max(0.0) / (v.abs() + 1.0)).collect::<Vec<f32>>(),
        );
        assert_eq!(plain.len(), vectorised.len());
        for (a, b) in plain.iter().zip(&vectorised) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }
}
