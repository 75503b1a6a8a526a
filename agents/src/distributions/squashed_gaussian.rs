//! The tanh-squashed Gaussian on `(−1, 1)^d` (the SAC policy distribution; the agent rescales
//! its actions to the environment's bounds).

use super::DiagGaussian;
use crate::backend::Ops;

/// A batch of squashed Gaussians: `u ~ N(mean, diag(std²))`, `a = tanh(u)`.
///
/// The density follows from the change of variables,
/// `log p(a) = Σ_j (log N(u_j) − log(1 − tanh(u_j)²))`. There is no closed-form entropy;
/// pathwise agents estimate it from `−log p` of their own samples.
#[derive(Debug)]
pub struct SquashedGaussian<B: Ops> {
    /// The Gaussian before squashing.
    pub base: DiagGaussian<B>,
}

impl<B: Ops> SquashedGaussian<B> {
    /// The squashed Gaussians with pre-squash `mean` `[rows, d]` and `log_std`.
    pub fn new(mean: B::M, log_std: B::M) -> Self {
        Self { base: DiagGaussian::new(mean, log_std) }
    }

    /// A reparameterized sample `tanh(mean + std · eps)` for standard normal noise `eps`, and
    /// its log-density, computed from the pre-squash value (no `atanh`, which loses an action
    /// saturated near a bound): `([rows, d], [rows, 1])`.
    pub fn rsample_with_log_prob(&self, b: &mut B, eps: &B::M) -> (B::M, B::M) {
        let u = self.base.rsample_from_noise(b, eps);
        let actions = b.tanh(&u);
        let log_prob = self.log_prob_of_pre_squash(b, &u);
        (actions, log_prob)
    }

    /// `log p(tanh u)` from the pre-squash value `u`, `[rows, 1]`.
    pub fn log_prob_of_pre_squash(&self, b: &mut B, u: &B::M) -> B::M {
        let density = self.base.log_density(b, u);
        let jacobian = log_one_minus_tanh_squared(b, u);
        let per_dim = b.sub(&density, &jacobian);
        b.sum_cols(&per_dim)
    }

    /// The deterministic action, `tanh(mean)`.
    pub fn mode(&self, b: &mut B) -> B::M {
        b.tanh(&self.base.mean)
    }
}

/// `log(1 − tanh(u)²)` in the form `2 (ln 2 − u − softplus(−2u))`, which stays accurate for
/// large `|u|` where `1 − tanh(u)²` rounds to 0 and its log would be `−∞`.
pub(crate) fn log_one_minus_tanh_squared<B: Ops>(b: &mut B, u: &B::M) -> B::M {
    let minus_two_u = b.scale(u, -2.0);
    let soft = b.unary(crate::backend::Unary::Softplus, &minus_two_u);
    let neg_u = b.neg(u);
    let diff = b.sub(&neg_u, &soft);
    let shifted = b.shift(&diff, std::f64::consts::LN_2);
    b.scale(&shifted, 2.0)
}
