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
//!
//! **Several parts.** Over a `MultiDiscrete(nvec)` the same relaxation runs on each component
//! independently: the logits are `Σ nvec` columns, component after component (the layout of the
//! action masks), each component's columns get their own `log_softmax`, Gumbel-max sample and
//! relaxed softmax, and a sample is the concatenation of the components' (relaxed) one-hots. The
//! entropy of independent parts is the sum of theirs. A `MultiBinary(n)` is relaxed the same
//! way as `n` two-way categoricals (`nvec = [2; n]`, logits of "0" then "1" for each value): a
//! two-way Gumbel-softmax of logits `(l₀, l₁)` is exactly the binary Concrete (relaxed
//! Bernoulli) of logit `l₁ − l₀`, since the difference of two Gumbels is logistic, so nothing
//! is lost, and a bit's mask pair ("may be 0", "may be 1") is then a bias on its two logits like
//! any other component's.
//!
//! **Masks** (sb3-contrib's `MaskablePPO` semantics) enter as an additive bias on the logits,
//! [`MASKED_LOGIT`](super::MASKED_LOGIT) on a masked-out choice: its probability, its share of
//! a relaxed sample (`exp(−10⁸/τ)`) and its chance of being the Gumbel-max sample are exactly 0
//! in `f32`, and the entropy is that of the distribution restricted to the allowed choices.

use rlpg_kernel::heads::UNIFORM_FLOOR;

use super::entropy_of;
use crate::agent::AgentError;
use crate::backend::{Ops, Rowwise, Unary};

/// A batch of independent categoricals, component `i` over `0..parts[i]` (one component for a
/// `Discrete(n)`), with a Gumbel-softmax reparameterization.
#[derive(Debug)]
pub struct GumbelSoftmax<B: Ops> {
    /// `log_softmax` of each component's logits, `[rows, Σ parts]`, component after component.
    pub log_probs: B::M,
    /// Choices of each component.
    parts: Vec<usize>,
    temperature: f64,
    straight_through: bool,
}

impl<B: Ops> GumbelSoftmax<B> {
    /// The distributions with probabilities `softmax(logits)` along each row, relaxed with
    /// `temperature` (> 0; smaller is closer to one-hot and has higher-variance gradients).
    /// With `straight_through`, samples are hard one-hots carrying the relaxed gradient.
    /// One component over all the columns; see [`GumbelSoftmax::from_parts`] for several.
    ///
    /// # Panics
    /// If `temperature` is not a finite number > 0: it comes from validated settings, so a bad
    /// one is a programming error.
    pub fn from_logits(b: &mut B, logits: &B::M, temperature: f64, straight_through: bool) -> Self {
        let (_, n) = b.shape(logits);
        Self::from_parts(b, logits, &[n], None, temperature, straight_through)
    }

    /// [`GumbelSoftmax::from_logits`] over independent components: `logits` `[rows, Σ parts]`
    /// holds component 0's `parts[0]` logits, then component 1's, and so on; with `mask_bias`
    /// (`[rows, Σ parts]`: 0 on an allowed choice, [`MASKED_LOGIT`](super::MASKED_LOGIT) on a
    /// masked one) added to the logits first.
    ///
    /// # Panics
    /// If `temperature` is not a finite number > 0, or `parts` do not sum to the logits'
    /// columns: both come from the validated settings and the action space.
    pub fn from_parts(
        b: &mut B,
        logits: &B::M,
        parts: &[usize],
        mask_bias: Option<&B::M>,
        temperature: f64,
        straight_through: bool,
    ) -> Self {
        assert!(
            temperature.is_finite() && temperature > 0.0,
            "Gumbel-softmax temperature must be a finite number > 0, got {temperature}"
        );
        let (_, cols) = b.shape(logits);
        assert_eq!(parts.iter().sum::<usize>(), cols, "the parts {parts:?} do not fill the logits");
        let masked = mask_bias.map(|bias| b.add(logits, bias));
        let logits = masked.as_ref().unwrap_or(logits);
        let log_probs = per_part(b, logits, parts, |b, x| b.log_softmax(x));
        Self { log_probs, parts: parts.to_vec(), temperature, straight_through }
    }

    /// The choices of each component.
    pub fn parts(&self) -> &[usize] {
        &self.parts
    }

    /// Probabilities of every choice, `[rows, Σ parts]`.
    pub fn probs(&self, b: &mut B) -> B::M {
        b.exp(&self.log_probs)
    }

    /// The exact entropy `−Σ p log p` of each row, summed over the components (the sum over all
    /// columns is the sum of the components' entropies), `[rows, 1]`. A masked choice's
    /// `p log p` is `0 · (≈ −10⁸) = 0`.
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

    /// A reparameterized sample from uniform draws `u` `[rows, Σ parts]`: per component
    /// `softmax((log p + g) / τ)`, or with straight-through the hard one-hot of
    /// `argmax(log p + g)` (an exact categorical sample) carrying that relaxed sample's
    /// gradient. `[rows, Σ parts]`.
    pub fn rsample(&self, b: &mut B, u: &B::M) -> B::M {
        let perturbed = self.perturbed(b, u);
        let scaled = b.scale(&perturbed, 1.0 / self.temperature);
        let relaxed = per_part(b, &scaled, &self.parts, |b, x| b.softmax(x));
        if !self.straight_through {
            return relaxed;
        }
        let hard = per_part(b, &perturbed, &self.parts, |b, x| b.rowwise(Rowwise::OneHotArgmax, x));
        let frozen = b.detach(&relaxed);
        let offset = b.sub(&hard, &frozen);
        b.add(&offset, &relaxed)
    }

    /// The hard one-hots of an exact categorical sample of every component from uniform draws
    /// `u` `[rows, Σ parts]` (the Gumbel-max trick), without gradient.
    pub fn one_hot_sample(&self, b: &mut B, u: &B::M) -> B::M {
        let perturbed = self.perturbed(b, u);
        let hard = per_part(b, &perturbed, &self.parts, |b, x| b.rowwise(Rowwise::OneHotArgmax, x));
        b.detach(&hard)
    }

    /// The most probable choice of each component, `[rows, components]` row-major (the first
    /// on ties).
    pub fn mode(&self, b: &mut B) -> Result<Vec<usize>, AgentError> {
        let (_, n) = b.shape(&self.log_probs);
        let mut lp = Vec::new();
        b.to_host(&self.log_probs, &mut lp)?;
        let mut modes = Vec::new();
        for row in lp.chunks_exact(n.max(1)) {
            let mut start = 0;
            for &k in &self.parts {
                modes.push(rlpg_kernel::heads::argmax(&row[start..start + k]));
                start += k;
            }
        }
        Ok(modes)
    }
}

/// `f` applied to each component's columns of `x` (`[rows, Σ parts]`), the results side by
/// side; `f(x)` itself for one component (no copies).
fn per_part<B: Ops>(
    b: &mut B,
    x: &B::M,
    parts: &[usize],
    mut f: impl FnMut(&mut B, &B::M) -> B::M,
) -> B::M {
    if parts.len() <= 1 {
        return f(b, x);
    }
    let mut start = 0;
    let mut out: Option<B::M> = None;
    for &k in parts {
        let cols = b.cols(x, start, k);
        start += k;
        let y = f(b, &cols);
        out = Some(match out {
            None => y,
            Some(left) => b.concat_cols(&left, &y),
        });
    }
    out.expect("at least two parts")
}
