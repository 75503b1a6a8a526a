//! The categorical distribution over `0..n`, parameterized by unnormalized logits.

use tch::{Kind, Tensor};

use super::{Distribution, DistributionError, sum_last};

/// A batch of categorical distributions over `0..n`, from logits of shape `[batch, n]`.
///
/// Actions are `Int64` tensors of shape `[batch]`.
#[derive(Debug)]
pub struct Categorical {
    /// Normalized logits (`log_softmax` of the given ones): log-probabilities of each action.
    log_probs: Tensor,
}

impl Categorical {
    /// The distributions with probabilities `softmax(logits)` along the last dimension.
    pub fn from_logits(logits: &Tensor) -> Self {
        Self { log_probs: logits.log_softmax(-1, None) }
    }

    /// Log-probabilities of every action, `[batch, n]`.
    pub fn log_probs(&self) -> &Tensor {
        &self.log_probs
    }

    /// Probabilities of every action, `[batch, n]`.
    pub fn probs(&self) -> Tensor {
        self.log_probs.exp()
    }
}

impl Distribution for Categorical {
    fn sample(&self) -> Tensor {
        tch::no_grad(|| self.log_probs.exp().multinomial(1, true).squeeze_dim(-1))
    }

    fn rsample(&self) -> Result<Tensor, DistributionError> {
        Err(DistributionError::NotReparameterizable { family: "Categorical" })
    }

    fn log_prob(&self, actions: &Tensor) -> Tensor {
        // Actions may have been stored in another integer or float kind; gather needs Int64.
        let index = if actions.kind() == Kind::Int64 {
            actions.unsqueeze(-1)
        } else {
            actions.to_kind(Kind::Int64).unsqueeze(-1)
        };
        self.log_probs.gather(-1, &index, false).squeeze_dim(-1)
    }

    fn entropy(&self) -> Option<Tensor> {
        // log_softmax of finite logits is finite, so p * log p is 0 (not NaN) where p underflows.
        Some(-sum_last(&(self.log_probs.exp() * &self.log_probs)))
    }

    fn mode(&self) -> Tensor {
        self.log_probs.argmax(-1, false)
    }
}
