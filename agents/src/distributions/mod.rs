//! Action distributions on tch tensors, behind one [`Distribution`] trait (the design of
//! Stable-Baselines3's `common/distributions.py`), so that REINFORCE never branches on the
//! action type: [`DistributionKind::for_score_function`] picks the family from the space. The
//! pathwise actor does branch, in one place (`pathwise::actor`): its critic takes a `Box`
//! action rescaled to `[−1, 1]` and a `Discrete` one as a (relaxed) one-hot, so it pairs each
//! family with its own action coding.
//!
//! - [`Categorical`] for `Discrete(n)` spaces: actions are `Int64` tensors `[batch]`.
//! - [`DiagGaussian`] for `Box` spaces in score-function agents: actions are `Float`
//!   `[batch, dim]`, unbounded (the trainer clips what it sends to the environment).
//! - [`SquashedGaussian`] for `Box` spaces in pathwise agents: a Gaussian pushed through `tanh`
//!   and rescaled to the bounds, so every action is inside the box.
//! - [`GumbelSoftmax`] for `Discrete(n)` spaces in pathwise agents: the categorical with a
//!   relaxed (Gumbel-softmax) reparameterization; `rsample` gives points on the simplex.
//!
//! An [`ActionHead`], built from the action space and a [`DistributionKind`], says how many
//! network outputs the chosen distribution needs and turns those outputs into a distribution.

mod categorical;
mod diag_gaussian;
mod gumbel_softmax;
mod head;
mod squashed_gaussian;

use tch::Tensor;

use crate::agent::AgentError;

pub use categorical::Categorical;
pub use diag_gaussian::DiagGaussian;
pub use gumbel_softmax::GumbelSoftmax;
pub use head::{ActionHead, DistributionKind, LOG_STD_MAX, LOG_STD_MIN, LogStd};
pub use squashed_gaussian::{ActionBounds, SquashedGaussian};

/// `0.5 * ln(2π)`, the constant of the Gaussian log-density per dimension.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// A batch of action distributions, one per row of the parameters they were built from.
///
/// Shapes: discrete actions are `Int64 [batch]`, continuous ones `Float [batch, dim]`; every
/// per-action quantity (`log_prob`, `entropy`) is summed over action dimensions to `[batch]`.
pub trait Distribution {
    /// Draws one action per row without recording gradients (for acting).
    fn sample(&self) -> Tensor;

    /// Draws one action per row as a differentiable function of the parameters (the
    /// reparameterization trick), so gradients of a function of the action flow back to the
    /// network. Families without a reparameterization (Categorical) return
    /// [`DistributionError::NotReparameterizable`].
    fn rsample(&self) -> Result<Tensor, DistributionError>;

    /// `log π(a)` for the given actions, summed over action dimensions: shape `[batch]`.
    /// Differentiable with respect to the parameters (this is the score-function gradient's
    /// ingredient).
    fn log_prob(&self, actions: &Tensor) -> Tensor;

    /// The exact entropy of each row, `[batch]`, or `None` when the family has no closed form
    /// (the squashed Gaussian). Differentiable with respect to the parameters.
    fn entropy(&self) -> Option<Tensor>;

    /// The deterministic action used for evaluation: the most likely action for Categorical,
    /// the mean for DiagGaussian, the squashed mean for SquashedGaussian.
    fn mode(&self) -> Tensor;

    /// Draws one action per row without recording gradients, as [`Distribution::sample`] but
    /// from the given standard normal noise `eps` (`[batch, dim]`) instead of fresh i.i.d.
    /// draws: the action the reparameterization maps `eps` to (temporally correlated
    /// exploration supplies its own `eps`). `None` for families not driven by Gaussian noise.
    fn sample_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        let _ = eps;
        None
    }

    /// The action [`Distribution::sample_from_noise`] gives for `eps`, as a differentiable
    /// function of the parameters (a reparameterized sample with the noise supplied), so that
    /// the same noise can be replayed at other parameters. `None` for families not driven by
    /// Gaussian noise.
    fn rsample_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        let _ = eps;
        None
    }

    /// `log π(a)`, `[batch]`, of the action `a` that [`Distribution::sample_from_noise`] gives
    /// for `eps`, with `a` held fixed and the parameters free: the score function's ingredient
    /// for such a sample. Computed from the noise, so a squashed sample needs no `atanh` (which
    /// loses an action saturated near a bound). `None` for families not driven by Gaussian
    /// noise.
    fn log_prob_from_noise(&self, eps: &Tensor) -> Option<Tensor> {
        let _ = eps;
        None
    }

    /// A reparameterized sample together with its log-probability. Families that transform a
    /// base sample override this to compute the log-probability from the untransformed value,
    /// which is both cheaper and more accurate than inverting the transform.
    fn rsample_with_log_prob(&self) -> Result<(Tensor, Tensor), DistributionError> {
        let actions = self.rsample()?;
        let log_prob = self.log_prob(&actions);
        Ok((actions, log_prob))
    }
}

/// Why a distribution could not be built or could not perform an operation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DistributionError {
    /// `rsample` was called on a family whose samples are not a differentiable function of its
    /// parameters.
    #[error(
        "{family} has no reparameterized sample (rsample); use a score-function agent or a \
         relaxed distribution"
    )]
    NotReparameterizable {
        /// The distribution family, e.g. `"Categorical"`.
        family: &'static str,
    },
    /// The distribution kind cannot represent actions of this space.
    #[error("{kind:?} cannot represent actions of the space {space}: {reason}")]
    UnsupportedSpace {
        /// The requested kind.
        kind: DistributionKind,
        /// The action space, formatted.
        space: String,
        /// What is wrong with the combination.
        reason: String,
    },
}

impl From<DistributionError> for AgentError {
    fn from(e: DistributionError) -> Self {
        AgentError::Invalid(e.to_string())
    }
}

/// Sums a `[batch, dim]` tensor over its last dimension.
fn sum_last(xs: &Tensor) -> Tensor {
    xs.sum_dim_intlist(-1, false, None)
}
