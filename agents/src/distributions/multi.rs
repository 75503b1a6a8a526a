//! Multi-part discrete actions: independent categoricals, one per component of a
//! `MultiDiscrete(nvec)` ([`MultiCategorical`]), and independent Bernoullis, one per value of a
//! `MultiBinary(n)` ([`Bernoulli`]). An action's log-probability is the sum of its parts', and
//! so is the entropy (the parts are independent given the state).
//!
//! Masks (sb3-contrib's `MaskablePPO` semantics) enter as an additive bias on the logits, built
//! on the host by [`super::ActionHead::mask_bias`]: [`MASKED_LOGIT`] on a masked-out choice, so
//! that its probability is exactly 0 and sampling, log-probabilities and entropies are those of
//! the distribution restricted to the allowed choices (per component). A Bernoulli whose mask
//! allows one value only gets the bias `±|MASKED_LOGIT|`: it always takes that value, with
//! log-probability 0 and entropy 0.

use super::{Categorical, entropy_of};
use crate::backend::{Ops, Unary};

/// What a mask adds to the logit of a masked-out choice in training (sb3-contrib's
/// `MaskableCategorical` value): its probability is exactly 0 in `f32`, as with the `−∞` that
/// acting and deployment use (`rlpg_kernel::heads::mask_logits_in_place`), while the
/// differentiated arithmetic stays finite (no `−∞ · 0` in an entropy or a gradient).
pub const MASKED_LOGIT: f32 = -1e8;

/// A batch of independent categoricals, component `i` over `0..nvec[i]`, from `[rows,
/// Σ nvec]` logits (component 0's first).
#[derive(Debug)]
pub struct MultiCategorical<B: Ops> {
    /// One categorical per component.
    pub parts: Vec<Categorical<B>>,
}

impl<B: Ops> MultiCategorical<B> {
    /// The distributions of `logits` (`[rows, Σ nvec]`), each component's probabilities the
    /// softmax of its columns; with `mask_bias` (`[rows, Σ nvec]`, see the module docs) added
    /// to the logits first.
    pub fn from_logits(b: &mut B, logits: &B::M, nvec: &[usize], mask_bias: Option<&B::M>) -> Self {
        let masked = mask_bias.map(|bias| b.add(logits, bias));
        let logits = masked.as_ref().unwrap_or(logits);
        let mut start = 0;
        let parts = nvec
            .iter()
            .map(|&n| {
                let cols = b.cols(logits, start, n);
                start += n;
                Categorical::from_logits(b, &cols)
            })
            .collect();
        Self { parts }
    }

    /// `log π(a)` of actions `[rows, components]` (row-major indices), summed over the
    /// components: `[rows, 1]`.
    pub fn log_prob(&self, b: &mut B, actions: &[usize]) -> B::M {
        let k = self.parts.len();
        let mut total: Option<B::M> = None;
        let mut column = Vec::with_capacity(actions.len() / k.max(1));
        for (i, part) in self.parts.iter().enumerate() {
            column.clear();
            column.extend(actions.iter().skip(i).step_by(k).copied());
            let lp = part.log_prob(b, &column);
            total = Some(match total {
                None => lp,
                Some(t) => b.add(&t, &lp),
            });
        }
        total.expect("a MultiDiscrete space has at least one component")
    }

    /// The exact entropy of each row, the sum of the components' (0 for a component the mask
    /// leaves one choice): `[rows, 1]`.
    pub fn entropy(&self, b: &mut B) -> B::M {
        let mut total: Option<B::M> = None;
        for part in &self.parts {
            let h = entropy_of(b, &part.log_probs);
            total = Some(match total {
                None => h,
                Some(t) => b.add(&t, &h),
            });
        }
        total.expect("a MultiDiscrete space has at least one component")
    }
}

/// A batch of independent Bernoullis, value `j` being 1 with probability `sigmoid(logits[:, j])`,
/// from `[rows, n]` logits.
#[derive(Debug)]
pub struct Bernoulli<B: Ops> {
    /// The logits, the mask's bias included, `[rows, n]`.
    pub logits: B::M,
}

impl<B: Ops> Bernoulli<B> {
    /// The distributions of `logits` (`[rows, n]`), with `mask_bias` (`[rows, n]`) added first.
    pub fn from_logits(b: &mut B, logits: &B::M, mask_bias: Option<&B::M>) -> Self {
        let logits = match mask_bias {
            Some(bias) => b.add(logits, bias),
            None => b.alias(logits),
        };
        Self { logits }
    }

    /// Probabilities of 1, `[rows, n]`.
    pub fn probs(&self, b: &mut B) -> B::M {
        b.unary(Unary::Sigmoid, &self.logits)
    }

    /// `log π(a)` of 0/1 actions `[rows, n]` (row-major), summed over the values: with
    /// `s = 2a − 1`, `log π(a_j) = −softplus(−s_j · l_j)`; `[rows, 1]`.
    pub fn log_prob(&self, b: &mut B, actions: &[i64]) -> Result<B::M, crate::AgentError> {
        let (rows, n) = b.shape(&self.logits);
        let signs: Vec<f32> = actions.iter().map(|&a| if a != 0 { 1.0 } else { -1.0 }).collect();
        let s = b.constant(rows, n, &signs)?;
        let x = b.mul(&s, &self.logits);
        let minus_x = b.neg(&x);
        let soft = b.unary(Unary::Softplus, &minus_x);
        let sum = b.sum_cols(&soft);
        Ok(b.neg(&sum))
    }

    /// The exact entropy, `Σ_j softplus(l_j) − sigmoid(l_j) · l_j`: `[rows, 1]`.
    pub fn entropy(&self, b: &mut B) -> B::M {
        let soft = b.unary(Unary::Softplus, &self.logits);
        let p = b.unary(Unary::Sigmoid, &self.logits);
        let pl = b.mul(&p, &self.logits);
        let h = b.sub(&soft, &pl);
        b.sum_cols(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Kernel, Torch};
    use tch::Device;

    /// Closed forms on the host: the masked categorical is the softmax over the allowed logits.
    fn restricted(logits: &[f32], allowed: &[bool]) -> Vec<f64> {
        let total: f64 =
            logits.iter().zip(allowed).filter(|(_, a)| **a).map(|(&l, _)| f64::from(l).exp()).sum();
        logits
            .iter()
            .zip(allowed)
            .map(|(&l, &a)| if a { f64::from(l).exp() / total } else { 0.0 })
            .collect()
    }

    fn check<B: Ops>(b: &mut B) {
        // One row, nvec [3, 2]; component 0 masks its middle choice, component 1 allows both.
        let logits = [0.3f32, 2.0, -1.0, 0.5, -0.25];
        let mask = [true, false, true, true, true];
        let bias: Vec<f32> = mask.iter().map(|&m| if m { 0.0 } else { MASKED_LOGIT }).collect();
        let x = b.constant(1, 5, &logits).expect("logits");
        let bias = b.constant(1, 5, &bias).expect("bias");
        let d = MultiCategorical::from_logits(b, &x, &[3, 2], Some(&bias));
        let (p0, p1) = (restricted(&logits[..3], &mask[..3]), restricted(&logits[3..], &mask[3..]));
        let lp = d.log_prob(b, &[2, 1]);
        let want = p0[2].ln() + p1[1].ln();
        assert!((b.scalar(&lp).expect("lp") - want).abs() < 1e-5, "masked log-probability");
        let h = d.entropy(b);
        let entropy = |p: &[f64]| -p.iter().filter(|&&q| q > 0.0).map(|q| q * q.ln()).sum::<f64>();
        let want = entropy(&p0) + entropy(&p1);
        assert!((b.scalar(&h).expect("h") - want).abs() < 1e-5, "masked entropy");

        // Bernoullis: value 0 free, value 1 forced to 1 by its mask, value 2 forced to 0.
        let logits = [0.7f32, -0.4, 1.3];
        let bias = [0.0, -MASKED_LOGIT, MASKED_LOGIT];
        let x = b.constant(1, 3, &logits).expect("logits");
        let bias = b.constant(1, 3, &bias).expect("bias");
        let d = Bernoulli::from_logits(b, &x, Some(&bias));
        let sigmoid = |l: f32| 1.0 / (1.0 + (-f64::from(l)).exp());
        let lp = d.log_prob(b, &[0, 1, 0]).expect("lp");
        let want = (1.0 - sigmoid(0.7)).ln();
        assert!((b.scalar(&lp).expect("lp") - want).abs() < 1e-5, "Bernoulli log-probability");
        let h = d.entropy(b);
        let p = sigmoid(0.7);
        let want = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        assert!((b.scalar(&h).expect("h") - want).abs() < 1e-5, "Bernoulli entropy");
    }

    #[test]
    fn masked_parts_match_the_closed_forms_on_both_backends() {
        check(&mut Torch::new(Device::Cpu));
        check(&mut Kernel::default());
    }
}
