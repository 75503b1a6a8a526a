//! The classic-control environments, ported from Gymnasium 1.4 operation by operation.

pub(crate) mod acrobot;
pub(crate) mod cartpole;
pub(crate) mod mountain_car;
pub(crate) mod mountain_car_continuous;
pub(crate) mod pendulum;

use std::hint::black_box;

use serde::{Deserialize, Serialize};

use crate::core::EnvError;

/// Where an environment is in its episode; decides whether `step` is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Constructed but never reset: there is no state to step from.
    NotReset,
    /// An episode is under way.
    Running,
    /// The last step ended the episode; only `reset` may follow.
    Ended,
}

impl Phase {
    /// `Ok` if a step may be taken now, otherwise the error that names `env`.
    #[inline]
    pub(crate) fn check_step(self, env: &str) -> Result<(), EnvError> {
        match self {
            Phase::Running => Ok(()),
            Phase::NotReset => Err(EnvError::NotReset { env: env.to_owned() }),
            Phase::Ended => Err(EnvError::EpisodeOver { env: env.to_owned() }),
        }
    }
}

/// `x ** 2` as NumPy computes it for a `float64` scalar: the C library's `pow(x, 2.0)`, which can
/// differ from `x * x` in the last bit. The exponent goes through `black_box` because LLVM
/// otherwise rewrites `pow(x, 2.0)` into `x * x`.
#[inline]
pub(crate) fn numpy_square_f64(x: f64) -> f64 {
    x.powf(black_box(2.0))
}

/// [`numpy_square_f64`] (the C library's `pow(x, 2.0)`) without calling `pow` wherever `x * x`
/// is provably the same double: about 7 in 8 of all inputs.
///
/// Why it is the same: Dekker's exact product gives `x² = p + e` exactly (`p = x * x`, no
/// overflow or underflow for the exponents admitted below). glibc's `pow` (2.28 and later; musl's
/// is the same Arm code) documents a worst-case error of 0.54 ULP. When `p` is not a power of two
/// and `|e| <= 7/16 ulp(p)`, every double other than `p` is at least `9/16 ulp > 0.54 ulp` from
/// `x²`, so `pow` can only return `p`. Elsewhere (within `1/16` ULP of a rounding midpoint, at
/// powers of two, zero, subnormal, huge, infinite or NaN inputs) this calls `pow` itself. The
/// unit test `square_as_pow_is_pow_bit_for_bit` checks millions of inputs against `pow`.
#[inline(always)]
pub(crate) fn square_as_pow(x: f64) -> f64 {
    /// `2^27 + 1`: Veltkamp's splitting constant for binary64.
    const SPLIT: f64 = 134_217_729.0;
    const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
    const MANTISSA: u64 = 0x000f_ffff_ffff_ffff;
    /// Biased exponent fields of `2^-800` and `2^800`: `p` in this range keeps every product of
    /// the exact-product computation free of overflow and underflow.
    const MIN_EXPONENT: u64 = (1023 - 800) << 52;
    const MAX_EXPONENT: u64 = (1023 + 800) << 52;
    /// `7/16 · 2^-52`: `7/16 ulp(p)` is `2^exponent(p)` times this.
    const MARGIN: f64 = 7.0 / 16.0 / 4_503_599_627_370_496.0;
    let p = x * x;
    let bits = p.to_bits();
    let exponent = bits & EXPONENT;
    if bits & MANTISSA == 0 || !(MIN_EXPONENT..=MAX_EXPONENT).contains(&exponent) {
        return numpy_square_f64(x);
    }
    let c = SPLIT * x;
    let hi = c - (c - x);
    let lo = x - hi;
    let e = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo;
    if e.abs() <= f64::from_bits(exponent) * MARGIN { p } else { numpy_square_f64(x) }
}

/// `u ** 2` for a NumPy `float32` scalar: the C library's `powf(u, 2.0f)`.
#[inline]
pub(crate) fn numpy_square_f32(u: f32) -> f32 {
    u.powf(black_box(2.0))
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_pcg::Pcg64;

    use super::{numpy_square_f64, square_as_pow};

    fn check(x: f64) {
        let (fast, pow) = (square_as_pow(x), numpy_square_f64(x));
        assert!(
            fast.to_bits() == pow.to_bits() || (fast.is_nan() && pow.is_nan()),
            "x = {x:e} ({:#x}): square_as_pow {fast:e}, pow {pow:e}",
            x.to_bits()
        );
    }

    #[test]
    fn square_as_pow_is_pow_bit_for_bit() {
        let mut rng = Pcg64::seed_from_u64(15);
        // Every exponent, fast path and fallback alike: random bit patterns.
        for _ in 0..2_000_000 {
            check(f64::from_bits(rng.random::<u64>()));
        }
        // The magnitudes Acrobot squares: velocities up to 9 pi and d2 in [0.75, 1.75].
        for _ in 0..2_000_000 {
            check(rng.random_range(-30.0..30.0));
        }
        // Exact ties of x * x: an odd 27-bit significand whose square has 54 bits, scaled.
        for _ in 0..200_000 {
            let m = rng.random_range(94_906_267_u64..134_217_728) | 1;
            check(m as f64 * 2f64.powi(rng.random_range(-40..10)));
        }
        for x in [0.0, -0.0, 1.0, -2.0, 0.5, f64::MIN_POSITIVE, 1e-300, 1e300, f64::MAX] {
            check(x);
        }
        for x in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 5e-324] {
            check(x);
        }
    }
}
