//! The Gaussian with diagonal covariance.

use super::HALF_LN_2PI;
use crate::backend::Ops;

/// A batch of Gaussians with diagonal covariance, `N(mean, diag(exp(log_std)²))`.
///
/// `mean` is `[rows, d]`; `log_std` is `[rows, d]` (a network output) or `[1, d]` (one
/// state-independent parameter, broadcast over the rows). Actions are `[rows, d]`, unbounded.
#[derive(Debug)]
pub struct DiagGaussian<B: Ops> {
    /// The means, `[rows, d]`.
    pub mean: B::M,
    /// The log standard deviations, `[rows, d]` or `[1, d]`.
    pub log_std: B::M,
}

impl<B: Ops> DiagGaussian<B> {
    /// The Gaussians with the given parameters.
    pub fn new(mean: B::M, log_std: B::M) -> Self {
        Self { mean, log_std }
    }

    /// `mean + std · eps` for standard normal noise `eps` `[rows, d]`: a sample that is a
    /// differentiable function of the parameters (the reparameterization).
    pub fn rsample_from_noise(&self, b: &mut B, eps: &B::M) -> B::M {
        let std = b.exp(&self.log_std);
        let scaled = b.mul(&std, eps);
        b.add(&self.mean, &scaled)
    }

    /// `log N(x)` per dimension, `[rows, d]` (not yet summed).
    pub fn log_density(&self, b: &mut B, x: &B::M) -> B::M {
        let std = b.exp(&self.log_std);
        let centred = b.sub(x, &self.mean);
        let z = b.div(&centred, &std);
        let z2 = b.square(&z);
        let half = b.scale(&z2, -0.5);
        let minus_log_std = b.sub(&half, &self.log_std);
        b.shift(&minus_log_std, -HALF_LN_2PI)
    }

    /// `log π(a)` of actions `[rows, d]`, summed over dimensions: `[rows, 1]`.
    pub fn log_prob(&self, b: &mut B, actions: &B::M) -> B::M {
        let density = self.log_density(b, actions);
        b.sum_cols(&density)
    }

    /// The exact entropy, `Σ_j (½ + ½ ln 2π + log σ_j)`: `[rows, 1]`, or `[1, 1]` when the
    /// log-std is a state-independent parameter (the same in every row).
    pub fn entropy(&self, b: &mut B) -> B::M {
        let per_dim = b.shift(&self.log_std, 0.5 + HALF_LN_2PI);
        b.sum_cols(&per_dim)
    }
}
