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

/// `u ** 2` for a NumPy `float32` scalar: the C library's `powf(u, 2.0f)`.
#[inline]
pub(crate) fn numpy_square_f32(u: f32) -> f32 {
    u.powf(black_box(2.0))
}
