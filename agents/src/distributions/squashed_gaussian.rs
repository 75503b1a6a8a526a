//! The tanh-squashed Gaussian, rescaled to the action bounds (the SAC policy distribution).

use rlpg_envs::BoxSpace;
use tch::Tensor;

use super::{DiagGaussian, Distribution, DistributionError, DistributionKind, sum_last};

/// How far inside `(-1, 1)` actions are clamped before `atanh` in [`SquashedGaussian::log_prob`],
/// so that an action exactly on a bound (which `tanh` never produces, but clipping or rounding
/// can) gets a large finite log-density instead of an infinite one.
const ATANH_CLAMP: f64 = 1e-6;

/// The affine map from `(-1, 1)` onto the box `(low, high)`: `a = loc + scale * y` with
/// `loc = (high + low) / 2`, `scale = (high - low) / 2`. Built once per agent and shared by every
/// distribution it creates.
#[derive(Debug)]
pub struct ActionBounds {
    loc: Tensor,
    scale: Tensor,
    /// `Σ_i ln scale_i`, the log-determinant of the rescale's Jacobian.
    log_scale_sum: f64,
}

impl ActionBounds {
    /// The bounds of `space`. Every dimension must have finite bounds with `low < high`,
    /// because `tanh` can only be mapped onto a bounded interval.
    pub fn new(space: &BoxSpace) -> Result<Self, DistributionError> {
        for (dim, (&low, &high)) in space.low.iter().zip(&space.high).enumerate() {
            if !(low.is_finite() && high.is_finite() && low < high) {
                return Err(DistributionError::UnsupportedSpace {
                    kind: DistributionKind::SquashedGaussian,
                    space: rlpg_envs::Space::Box(space.clone()).to_string(),
                    reason: format!(
                        "dimension {dim} has bounds [{low}, {high}]; a squashed Gaussian needs \
                         finite bounds with low < high"
                    ),
                });
            }
        }
        // The centre and half-width in f64 so that bounds like [-f32::MAX/2, f32::MAX/2] or very
        // narrow boxes do not lose the little precision f32 has.
        let loc: Vec<f32> = space
            .low
            .iter()
            .zip(&space.high)
            .map(|(&l, &h)| ((h as f64 + l as f64) / 2.0) as f32)
            .collect();
        let half: Vec<f64> =
            space.low.iter().zip(&space.high).map(|(&l, &h)| (h as f64 - l as f64) / 2.0).collect();
        let scale: Vec<f32> = half.iter().map(|&s| s as f32).collect();
        Ok(Self {
            loc: Tensor::from_slice(&loc),
            scale: Tensor::from_slice(&scale),
            log_scale_sum: half.iter().map(|s| s.ln()).sum(),
        })
    }

    /// The bounds with their tensors on `device` (where the distribution's parameters are).
    pub fn to_device(self, device: tch::Device) -> Self {
        Self {
            loc: self.loc.to_device(device),
            scale: self.scale.to_device(device),
            log_scale_sum: self.log_scale_sum,
        }
    }

    /// Number of action dimensions.
    pub fn dim(&self) -> usize {
        self.loc.size()[0] as usize
    }

    /// Maps `y` in `(-1, 1)` to the box.
    fn rescale(&self, y: &Tensor) -> Tensor {
        y * &self.scale + &self.loc
    }

    /// Maps an action in the box back to `(-1, 1)`.
    fn unscale(&self, a: &Tensor) -> Tensor {
        (a - &self.loc) / &self.scale
    }
}

impl Clone for ActionBounds {
    fn clone(&self) -> Self {
        // The tensors are never modified in place, so sharing their storage is safe.
        Self {
            loc: self.loc.shallow_clone(),
            scale: self.scale.shallow_clone(),
            log_scale_sum: self.log_scale_sum,
        }
    }
}

/// A batch of squashed Gaussians: `u ~ N(mean, diag(std²))`, `a = loc + scale * tanh(u)`.
///
/// Actions are float tensors `[batch, dim]`, strictly inside the bounds. The density follows
/// from the change of variables:
/// `log p(a) = log N(u) - Σ log(1 - tanh(u)²) - Σ log scale`.
///
/// There is no closed-form entropy, so [`Distribution::entropy`] returns `None`; pathwise
/// agents estimate it from `-log_prob` of their own samples.
#[derive(Debug)]
pub struct SquashedGaussian {
    base: DiagGaussian,
    bounds: ActionBounds,
}

impl SquashedGaussian {
    /// The squashed Gaussians with pre-squash `mean` `[batch, dim]` and `log_std` (`[batch, dim]`
    /// or `[dim]`), rescaled to `bounds`.
    pub fn new(mean: Tensor, log_std: &Tensor, bounds: &ActionBounds) -> Self {
        Self { base: DiagGaussian::new(mean, log_std), bounds: bounds.clone() }
    }

    /// The Gaussian before squashing.
    pub fn base(&self) -> &DiagGaussian {
        &self.base
    }

    /// `log p(a)` from the pre-squash value `u` (no `atanh` needed).
    fn log_prob_of_pre_squash(&self, u: &Tensor) -> Tensor {
        sum_last(&(self.base.log_density(u) - log_one_minus_tanh_squared(u)))
            - self.bounds.log_scale_sum
    }
}

/// `log(1 - tanh(u)²)` in the form `2 (log 2 - u - softplus(-2u))`, which stays accurate for
/// large `|u|` where `1 - tanh(u)²` rounds to 0 and its log would be `-inf`.
pub(super) fn log_one_minus_tanh_squared(u: &Tensor) -> Tensor {
    (u.neg() - (u * -2.0).softplus() + std::f64::consts::LN_2) * 2.0
}

impl Distribution for SquashedGaussian {
    fn sample(&self) -> Tensor {
        tch::no_grad(|| self.bounds.rescale(&self.base.reparameterized().tanh()))
    }

    fn rsample(&self) -> Result<Tensor, DistributionError> {
        Ok(self.bounds.rescale(&self.base.reparameterized().tanh()))
    }

    fn sample_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        let u = self.base.sample_from_noise(eps)?;
        Some(tch::no_grad(|| self.bounds.rescale(&u.tanh())))
    }

    fn rsample_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        let u = self.base.rsample_from_noise(eps)?;
        Some(self.bounds.rescale(&u.tanh()))
    }

    fn log_prob_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        // The pre-squash value held fixed: the change of variables' term does not depend on
        // the parameters, so this is log π(a) with the sampled action fixed.
        let u = self.base.rsample_from_noise(eps)?.detach();
        Some(self.log_prob_of_pre_squash(&u))
    }

    fn log_prob(&self, actions: &Tensor) -> Tensor {
        let y = self.bounds.unscale(actions).clamp(-1.0 + ATANH_CLAMP, 1.0 - ATANH_CLAMP);
        self.log_prob_of_pre_squash(&y.atanh())
    }

    fn entropy(&self) -> Option<Tensor> {
        None
    }

    fn mode(&self) -> Tensor {
        self.bounds.rescale(&self.base.mean().tanh())
    }

    fn rsample_with_log_prob(&self) -> Result<(Tensor, Tensor), DistributionError> {
        let u = self.base.reparameterized();
        let actions = self.bounds.rescale(&u.tanh());
        Ok((actions, self.log_prob_of_pre_squash(&u)))
    }
}
