//! The categorical distribution over `0..n`, parameterized by unnormalized logits.

use std::cell::OnceCell;

use tch::{Kind, Tensor};

use super::{Distribution, DistributionError, sum_last};

/// A batch of categorical distributions over `0..n`, from logits of shape `[batch, n]`.
///
/// Actions are `Int64` tensors of shape `[batch]`.
#[derive(Debug)]
pub struct Categorical {
    logits: Tensor,
    /// `log_softmax(logits)`, computed on first use: acting only samples and never needs it.
    log_probs: OnceCell<Tensor>,
}

impl Categorical {
    /// The distributions with probabilities `softmax(logits)` along the last dimension.
    pub fn from_logits(logits: &Tensor) -> Self {
        Self { logits: logits.shallow_clone(), log_probs: OnceCell::new() }
    }

    /// Log-probabilities of every action, `[batch, n]`.
    pub fn log_probs(&self) -> &Tensor {
        self.log_probs.get_or_init(|| self.logits.log_softmax(-1, None))
    }

    /// Probabilities of every action, `[batch, n]`.
    pub fn probs(&self) -> Tensor {
        self.logits.softmax(-1, None)
    }
}

/// [`Categorical::sample`]'s rule for one row of logits in plain Rust: the number of
/// cumulative softmax probabilities `<= u`, at most the last action.
pub(super) fn inverse_cdf(logits: &[f32], u: f32) -> i64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let mut cdf = 0.0f32;
    let mut below = 0i64;
    for &l in logits {
        cdf += (l - max).exp() / total;
        if cdf <= u {
            below += 1;
        }
    }
    below.min(logits.len() as i64 - 1)
}

impl Distribution for Categorical {
    fn sample(&self) -> Tensor {
        // Inverse-CDF sampling: the action is the number of cumulative probabilities <= u for
        // u ~ U[0, 1). One uniform per row and six small tensor operations: acting calls this
        // once per env step, and it costs about a third of `multinomial`.
        tch::no_grad(|| {
            let cdf = self.logits.softmax(-1, None).cumsum(-1, None);
            let n = cdf.size().last().copied().unwrap_or(1);
            let u = cdf.narrow(-1, n - 1, 1).rand_like();
            // The last cumulative sum can round to just below 1, so u may exceed it; the count
            // is then n, which stands for the last action.
            cdf.le_tensor(&u).sum_dim_intlist(-1, false, Kind::Int64).clamp_max(n - 1)
        })
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
        self.log_probs().gather(-1, &index, false).squeeze_dim(-1)
    }

    fn entropy(&self) -> Option<Tensor> {
        // log_softmax of finite logits is finite, so p * log p is 0 (not NaN) where p underflows.
        let log_probs = self.log_probs();
        Some(-sum_last(&(log_probs.exp() * log_probs)))
    }

    fn mode(&self) -> Tensor {
        self.logits.argmax(-1, false)
    }
}
