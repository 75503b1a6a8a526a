//! The categorical distribution over `0..n`, parameterized by unnormalized logits.

use super::{DistributionError, entropy_of};
use crate::agent::AgentError;
use crate::backend::Ops;

/// A batch of categorical distributions over `0..n`, one per row of `[rows, n]` logits.
///
/// Actions are indices, one per row. There is no reparameterized sample: a pathwise agent
/// relaxes the categorical instead ([`super::GumbelSoftmax`]).
#[derive(Debug)]
pub struct Categorical<B: Ops> {
    /// `log_softmax(logits)`, `[rows, n]`.
    pub log_probs: B::M,
}

impl<B: Ops> Categorical<B> {
    /// Whether samples are a differentiable function of the parameters: never for a
    /// categorical, whose samples are integers (the error says what to use instead).
    pub fn reparameterization() -> Result<(), DistributionError> {
        Err(DistributionError::NotReparameterizable { family: "Categorical" })
    }

    /// The distributions with probabilities `softmax(logits)` along each row.
    pub fn from_logits(b: &mut B, logits: &B::M) -> Self {
        Self { log_probs: b.log_softmax(logits) }
    }

    /// Probabilities of every action, `[rows, n]`.
    pub fn probs(&self, b: &mut B) -> B::M {
        b.exp(&self.log_probs)
    }

    /// `log π(a)` of one action index per row, `[rows, 1]`.
    pub fn log_prob(&self, b: &mut B, actions: &[usize]) -> B::M {
        b.gather_cols(&self.log_probs, actions)
    }

    /// The exact entropy of each row, `[rows, 1]`.
    pub fn entropy(&self, b: &mut B) -> B::M {
        entropy_of(b, &self.log_probs)
    }

    /// One action per row, by the inverse CDF of one uniform draw per row (drawn here): the
    /// rule acting uses (`rlpg_kernel::heads::inverse_cdf`).
    pub fn sample(&self, b: &mut B) -> Result<Vec<usize>, AgentError> {
        let (rows, n) = b.shape(&self.log_probs);
        let (mut logits, mut u) = (Vec::new(), Vec::new());
        b.to_host(&self.log_probs, &mut logits)?;
        let draws = b.uniform(rows, 1)?;
        b.to_host(&draws, &mut u)?;
        Ok(logits
            .chunks_exact(n.max(1))
            .zip(u)
            .map(|(row, u)| rlpg_kernel::heads::inverse_cdf(row, u))
            .collect())
    }

    /// The most probable action of each row (the first on ties).
    pub fn mode(&self, b: &mut B) -> Result<Vec<usize>, AgentError> {
        let (_, n) = b.shape(&self.log_probs);
        let mut lp = Vec::new();
        b.to_host(&self.log_probs, &mut lp)?;
        Ok(lp.chunks_exact(n.max(1)).map(rlpg_kernel::heads::argmax).collect())
    }
}
