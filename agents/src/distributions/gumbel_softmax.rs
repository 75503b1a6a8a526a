//! The Gumbel-softmax (Concrete) relaxation of the categorical distribution: a reparameterized
//! stand-in that lets a pathwise agent push gradients through a discrete choice.
//!
//! With Gumbel noise `g_i = −ln(−ln u_i)`, `u_i ~ U(0, 1)`:
//! - `argmax_i (log p_i + g_i)` is an exact sample of the categorical `p` (the Gumbel-max trick);
//! - `softmax((log p + g) / τ)` is a point on the simplex, differentiable in `log p`, which tends
//!   to that one-hot sample as the temperature `τ → 0` (Jang et al. 2017; Maddison et al. 2017).
//!
//! The straight-through variant returns the hard one-hot in the forward pass and the relaxed
//! sample's gradient in the backward pass (`hard − relaxed.detach() + relaxed`), so that a critic
//! trained on one-hot actions is evaluated on one-hot actions.

use tch::{Kind, Tensor};

use super::{Distribution, DistributionError, sum_last};

/// Uniform draws are kept at least this far above 0 before the double logarithm, so that a draw
/// of exactly 0 gives a very negative but finite Gumbel value instead of `−inf`.
const UNIFORM_FLOOR: f64 = 1e-20;

/// A batch of categorical distributions over `0..n` with a Gumbel-softmax reparameterization.
///
/// Action shapes differ by operation, because a relaxed sample is not an index:
/// - [`sample`](Distribution::sample) and [`mode`](Distribution::mode) return `Int64 [batch]`
///   indices, as every discrete distribution does (what the environment receives);
/// - [`rsample`](Distribution::rsample) returns `Float [batch, n]` points on the simplex (or
///   straight-through one-hots), what a critic `Q(s, a)` takes;
/// - [`log_prob`](Distribution::log_prob) accepts either form: indices are looked up, and a
///   `[batch, n]` float tensor `y` gives `Σ_i y_i log p_i`, which for a one-hot is the log
///   probability of its index;
/// - [`entropy`](Distribution::entropy) is the exact entropy of the categorical.
#[derive(Debug)]
pub struct GumbelSoftmax {
    /// `log_softmax` of the logits, `[batch, n]`.
    log_probs: Tensor,
    temperature: f64,
    straight_through: bool,
}

impl GumbelSoftmax {
    /// The distributions with probabilities `softmax(logits)` along the last dimension, relaxed
    /// with `temperature` (> 0; smaller is closer to one-hot and has higher-variance gradients).
    /// With `straight_through`, [`rsample`](Distribution::rsample) returns hard one-hots carrying
    /// the relaxed gradient.
    ///
    /// # Panics
    /// If `temperature` is not a finite number > 0: it comes from validated settings, so a bad
    /// one is a programming error.
    pub fn from_logits(logits: &Tensor, temperature: f64, straight_through: bool) -> Self {
        assert!(
            temperature.is_finite() && temperature > 0.0,
            "Gumbel-softmax temperature must be a finite number > 0, got {temperature}"
        );
        Self { log_probs: logits.log_softmax(-1, None), temperature, straight_through }
    }

    /// Log-probabilities of every action, `[batch, n]`.
    pub fn log_probs(&self) -> &Tensor {
        &self.log_probs
    }

    /// Probabilities of every action, `[batch, n]`.
    pub fn probs(&self) -> Tensor {
        self.log_probs.exp()
    }

    /// The exact entropy `−Σ p log p` of each row, `[batch]`.
    pub fn categorical_entropy(&self) -> Tensor {
        // log_softmax of finite logits is finite, so p * log p is 0 (not NaN) where p underflows.
        -sum_last(&(self.log_probs.exp() * &self.log_probs))
    }

    /// The relaxation temperature.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// Whether [`rsample`](Distribution::rsample) is straight-through (hard in the forward pass).
    pub fn straight_through(&self) -> bool {
        self.straight_through
    }

    /// Number of categories.
    pub fn num_categories(&self) -> i64 {
        self.log_probs.size().last().copied().unwrap_or(0)
    }

    /// `log p + g`: the perturbed log-probabilities whose argmax is a categorical sample.
    fn perturbed(&self) -> Tensor {
        let u = self.log_probs.rand_like().clamp_min(UNIFORM_FLOOR);
        let gumbel = -(-u.log()).log();
        &self.log_probs + gumbel
    }

    /// One-hot rows `[batch, n]` (in the logits' float kind) of indices `[batch]`.
    pub fn one_hot(&self, indices: &Tensor) -> Tensor {
        indices.one_hot(self.num_categories()).to_kind(self.log_probs.kind())
    }

    /// A relaxed sample and, from the same noise, the hard one-hot of its argmax (which is an
    /// exact categorical sample).
    fn relaxed_and_hard(&self) -> (Tensor, Tensor) {
        let perturbed = self.perturbed();
        let hard = self.one_hot(&perturbed.argmax(-1, false));
        let relaxed = (perturbed / self.temperature).softmax(-1, None);
        (relaxed, hard)
    }
}

impl Distribution for GumbelSoftmax {
    fn sample(&self) -> Tensor {
        tch::no_grad(|| self.perturbed().argmax(-1, false))
    }

    fn rsample(&self) -> Result<Tensor, DistributionError> {
        let (relaxed, hard) = self.relaxed_and_hard();
        if self.straight_through {
            // Forward value: `hard`; gradient: that of `relaxed`.
            Ok(hard - relaxed.detach() + relaxed)
        } else {
            Ok(relaxed)
        }
    }

    fn log_prob(&self, actions: &Tensor) -> Tensor {
        if actions.is_floating_point() && actions.dim() == self.log_probs.dim() {
            sum_last(&(actions * &self.log_probs))
        } else {
            let index = actions.to_kind(Kind::Int64).unsqueeze(-1);
            self.log_probs.gather(-1, &index, false).squeeze_dim(-1)
        }
    }

    fn entropy(&self) -> Option<Tensor> {
        Some(self.categorical_entropy())
    }

    fn mode(&self) -> Tensor {
        self.log_probs.argmax(-1, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn logits() -> Tensor {
        Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0, 0.0, 0.0]).view([2, 3])
    }

    #[test]
    fn log_prob_of_an_index_and_of_its_one_hot_agree() {
        let d = GumbelSoftmax::from_logits(&logits(), 1.0, false);
        let idx = Tensor::from_slice(&[2i64, 0]);
        let by_index = d.log_prob(&idx);
        let by_one_hot = d.log_prob(&d.one_hot(&idx));
        let expected = d.log_probs().gather(-1, &idx.unsqueeze(-1), false).squeeze_dim(-1);
        let diff = (&by_index - &expected).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "index log_prob differs from log_softmax by {diff}");
        let diff = (&by_one_hot - &expected).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "one-hot log_prob differs from the index's by {diff}");
    }

    #[test]
    fn entropy_is_the_categorical_entropy_and_mode_the_argmax() {
        let d = GumbelSoftmax::from_logits(&logits(), 0.5, true);
        let h = d.entropy().unwrap();
        let uniform = h.double_value(&[1]);
        assert!((uniform - 3f64.ln()).abs() < 1e-6, "uniform row entropy {uniform} != ln 3");
        assert_eq!(Vec::<i64>::try_from(&d.mode()).unwrap()[0], 2, "argmax of [0.5, -1, 2] is 2");
        assert_eq!(d.mode().kind(), Kind::Int64);
        assert_eq!(d.sample().size(), vec![2]);
        assert_eq!(d.sample().kind(), Kind::Int64);
    }

    #[test]
    #[should_panic(expected = "temperature")]
    fn a_zero_temperature_is_a_programming_error() {
        let _ = GumbelSoftmax::from_logits(
            &Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)),
            0.0,
            false,
        );
    }
}
