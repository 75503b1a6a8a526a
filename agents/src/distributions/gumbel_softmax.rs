//! The Gumbel-softmax (Concrete) relaxation of the categorical distribution: a reparameterized
//! stand-in that lets a pathwise agent push gradients through a discrete choice.
//!
//! With Gumbel noise `g_i = −ln(−ln u_i)`, `u_i ~ U(0, 1)`:
//! - `argmax_i (log p_i + g_i)` is an exact sample of the categorical `p` (the Gumbel-max trick);
//! - `softmax((log p + g) / τ)` is a point on the simplex, differentiable in `log p`, which tends
//!   to that one-hot sample as the temperature `τ → 0` (Jang et al. 2017; Maddison et al. 2017).
//!
//! The straight-through variant returns the hard one-hot in the forward pass and the relaxed
//! sample's gradient in the backward pass (`(hard − relaxed.detach()) + relaxed`), so that a
//! critic trained on one-hot actions is evaluated on one-hot actions.

use rlpg_kernel::heads::UNIFORM_FLOOR;

use super::entropy_of;
use crate::agent::AgentError;
use crate::backend::{Ops, Rowwise, Unary};

/// A batch of categorical distributions over `0..n` with a Gumbel-softmax reparameterization.
#[derive(Debug)]
pub struct GumbelSoftmax<B: Ops> {
    /// `log_softmax` of the logits, `[rows, n]`.
    pub log_probs: B::M,
    temperature: f64,
    straight_through: bool,
}

impl<B: Ops> GumbelSoftmax<B> {
    /// The distributions with probabilities `softmax(logits)` along each row, relaxed with
    /// `temperature` (> 0; smaller is closer to one-hot and has higher-variance gradients).
    /// With `straight_through`, samples are hard one-hots carrying the relaxed gradient.
    ///
    /// # Panics
    /// If `temperature` is not a finite number > 0: it comes from validated settings, so a bad
    /// one is a programming error.
    pub fn from_logits(b: &mut B, logits: &B::M, temperature: f64, straight_through: bool) -> Self {
        assert!(
            temperature.is_finite() && temperature > 0.0,
            "Gumbel-softmax temperature must be a finite number > 0, got {temperature}"
        );
        Self { log_probs: b.log_softmax(logits), temperature, straight_through }
    }

    /// Probabilities of every action, `[rows, n]`.
    pub fn probs(&self, b: &mut B) -> B::M {
        b.exp(&self.log_probs)
    }

    /// The exact entropy `−Σ p log p` of each row, `[rows, 1]`.
    pub fn entropy(&self, b: &mut B) -> B::M {
        entropy_of(b, &self.log_probs)
    }

    /// `log p + g` for uniform draws `u` `[rows, n]`: the perturbed log-probabilities whose
    /// argmax is a categorical sample.
    fn perturbed(&self, b: &mut B, u: &B::M) -> B::M {
        let floored = b.unary(Unary::Clamp(UNIFORM_FLOOR, f32::INFINITY), u);
        let log_u = b.unary(Unary::Log, &floored);
        let neg = b.neg(&log_u);
        let log_neg = b.unary(Unary::Log, &neg);
        let gumbel = b.neg(&log_neg);
        b.add(&self.log_probs, &gumbel)
    }

    /// A reparameterized sample from uniform draws `u` `[rows, n]`: `softmax((log p + g) / τ)`,
    /// or with straight-through the hard one-hot of `argmax(log p + g)` (an exact categorical
    /// sample) carrying that relaxed sample's gradient. `[rows, n]`.
    pub fn rsample(&self, b: &mut B, u: &B::M) -> B::M {
        let perturbed = self.perturbed(b, u);
        let scaled = b.scale(&perturbed, 1.0 / self.temperature);
        let relaxed = b.softmax(&scaled);
        if !self.straight_through {
            return relaxed;
        }
        let hard = b.rowwise(Rowwise::OneHotArgmax, &perturbed);
        let frozen = b.detach(&relaxed);
        let offset = b.sub(&hard, &frozen);
        b.add(&offset, &relaxed)
    }

    /// The hard one-hot of an exact categorical sample from uniform draws `u` `[rows, n]` (the
    /// Gumbel-max trick), without gradient.
    pub fn one_hot_sample(&self, b: &mut B, u: &B::M) -> B::M {
        let perturbed = self.perturbed(b, u);
        let hard = b.rowwise(Rowwise::OneHotArgmax, &perturbed);
        b.detach(&hard)
    }

    /// The most probable action of each row (the first on ties).
    pub fn mode(&self, b: &mut B) -> Result<Vec<usize>, AgentError> {
        let (_, n) = b.shape(&self.log_probs);
        let mut lp = Vec::new();
        b.to_host(&self.log_probs, &mut lp)?;
        Ok(lp.chunks_exact(n.max(1)).map(rlpg_kernel::heads::argmax).collect())
    }
}
