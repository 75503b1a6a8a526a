//! Action distributions, each written once over the backends' primitives ([`Ops`]), so the
//! same text runs on libtorch tensors (differentiated by autograd) and on the plain-Rust kernel
//! (differentiated by its tape): one file answers what a distribution does.
//!
//! - [`Categorical`] for `Discrete(n)` spaces in score-function agents: `log_softmax` of logits.
//! - [`DiagGaussian`] for `Box` spaces in score-function agents: unbounded actions (the trainer
//!   clips what it sends to the environment).
//! - [`SquashedGaussian`] for pathwise agents on a box: a Gaussian pushed through `tanh` onto
//!   `(−1, 1)^d` (the agent rescales to the bounds), with its log-density by the change of
//!   variables.
//! - [`GumbelSoftmax`] for pathwise agents on `Discrete(n)`, `MultiDiscrete(nvec)` and
//!   `MultiBinary(n)`: independent categoricals (one per component, a bit being a two-way one)
//!   with a relaxed (Gumbel-softmax) reparameterization; its samples are points on the
//!   simplices of the components.
//! - [`MultiCategorical`] and [`Bernoulli`] for `MultiDiscrete` and `MultiBinary` spaces in
//!   score-function agents: independent parts, their log-probabilities and entropies summed.
//!
//! Action masks (discrete heads) are an additive bias on the logits ([`MASKED_LOGIT`] on a
//! masked-out choice, [`ActionHead::mask_bias`]), so sampling, log-probabilities and entropies
//! are those of the distribution restricted to the allowed choices, as in sb3-contrib's
//! `MaskablePPO`.
//!
//! Shapes: a batch is one row per state; per-action quantities (`log_prob`, `entropy`) are
//! summed over action dimensions to a `[rows, 1]` column. Sampling draws its noise through
//! [`Ops::normal`] and [`Ops::uniform`] (libtorch's generator on either backend), so a seeded
//! run draws the same actions on both.
//!
//! An [`ActionHead`] says how many network outputs a policy needs and turns them into a
//! distribution ([`PolicyDistribution`]), or on the host into actions for the environment.

mod categorical;
mod diag_gaussian;
mod gumbel_softmax;
mod head;
mod multi;
mod squashed_gaussian;

use crate::agent::AgentError;
use crate::backend::Ops;

pub use categorical::Categorical;
pub use diag_gaussian::DiagGaussian;
pub use gumbel_softmax::GumbelSoftmax;
pub(crate) use head::mask_bias_of;
pub use head::{ActionHead, DistributionKind, LogStd, PolicyDistribution};
pub use multi::{Bernoulli, MASKED_LOGIT, MultiCategorical};
pub use rlpg_kernel::heads::{LOG_STD_MAX, LOG_STD_MIN};
pub use squashed_gaussian::SquashedGaussian;

/// `0.5 * ln(2π)`, the constant of the Gaussian log-density per dimension.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// Why a distribution could not be built or could not perform an operation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DistributionError {
    /// A reparameterized sample was asked of a family whose samples are not a differentiable
    /// function of its parameters.
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

/// `−Σ_j p_j log p_j` per row from log-probabilities `log_probs` `[rows, n]`, `[rows, 1]`.
/// `log_softmax` of finite logits is finite, so `p log p` is 0 (not NaN) where `p` underflows.
fn entropy_of<B: Ops>(b: &mut B, log_probs: &B::M) -> B::M {
    let p = b.exp(log_probs);
    let p_log_p = b.mul(&p, log_probs);
    let sum = b.sum_cols(&p_log_p);
    b.neg(&sum)
}
