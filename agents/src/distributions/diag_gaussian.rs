//! The Gaussian with diagonal covariance.

use tch::Tensor;

use super::{Distribution, DistributionError, HALF_LN_2PI, sum_last};

/// A batch of Gaussians with diagonal covariance, `N(mean, diag(exp(log_std)^2))`.
///
/// Actions are float tensors `[batch, dim]`; they are unbounded.
#[derive(Debug)]
pub struct DiagGaussian {
    mean: Tensor,
    log_std: Tensor,
    std: Tensor,
}

impl DiagGaussian {
    /// The Gaussians with the given `mean` `[batch, dim]` and `log_std`, either `[batch, dim]`
    /// (a network output) or `[dim]` (one state-independent parameter, broadcast over the batch).
    pub fn new(mean: Tensor, log_std: &Tensor) -> Self {
        let log_std = log_std.expand_as(&mean);
        let std = log_std.exp();
        Self { mean, log_std, std }
    }

    /// The means, `[batch, dim]`.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// The log standard deviations, `[batch, dim]`.
    pub fn log_std(&self) -> &Tensor {
        &self.log_std
    }

    /// The standard deviations, `[batch, dim]`.
    pub fn std(&self) -> &Tensor {
        &self.std
    }

    /// `mean + std * ε` with `ε ~ N(0, I)`: differentiable in `mean` and `std`.
    pub(super) fn reparameterized(&self) -> Tensor {
        &self.mean + &self.std * self.mean.randn_like()
    }

    /// Per-dimension log-density, `[batch, dim]` (not yet summed).
    pub(super) fn log_density(&self, x: &Tensor) -> Tensor {
        let z = (x - &self.mean) / &self.std;
        z.square() * -0.5 - &self.log_std - HALF_LN_2PI
    }
}

impl Distribution for DiagGaussian {
    fn sample(&self) -> Tensor {
        tch::no_grad(|| self.reparameterized())
    }

    fn rsample(&self) -> Result<Tensor, DistributionError> {
        Ok(self.reparameterized())
    }

    fn sample_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        Some(tch::no_grad(|| &self.mean + &self.std * eps))
    }

    fn rsample_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        Some(&self.mean + &self.std * eps)
    }

    fn log_prob_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        let actions = (&self.mean + &self.std * eps).detach();
        Some(self.log_prob(&actions))
    }

    fn log_prob(&self, actions: &Tensor) -> Tensor {
        sum_last(&self.log_density(actions))
    }

    fn entropy(&self) -> Option<Tensor> {
        // Per dimension: 0.5 * ln(2πe σ²) = 0.5 + 0.5 ln(2π) + ln σ.
        Some(sum_last(&(&self.log_std + (0.5 + HALF_LN_2PI))))
    }

    fn mode(&self) -> Tensor {
        self.mean.shallow_clone()
    }
}
