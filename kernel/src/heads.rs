//! The action heads' arithmetic on one row of network outputs, for acting: the greedy action,
//! the probabilities, and a sample from noise the caller draws (so that training, which draws
//! from libtorch's generator, and deployment, which draws from its own, share the rule).
//!
//! Every function works on one row; callers loop over rows. The formulas are libtorch's
//! (`log_softmax` as `x − max − ln Σ exp(x − max)`, `argmax` taking the first of equal values),
//! so greedy actions agree with the tensor code's wherever the logits are not within rounding
//! of a tie.

/// Uniform draws are floored here before the Gumbel transform `−ln(−ln u)`, so that a draw of
/// exactly 0 gives a very negative but finite value instead of `−∞`.
pub const UNIFORM_FLOOR: f32 = 1e-20;

/// Lowest log standard deviation a state-dependent Gaussian head can output (as in SB3 and SAC):
/// below it the density is so peaked that log-probabilities overflow.
pub const LOG_STD_MIN: f32 = -20.0;
/// Highest log standard deviation a state-dependent Gaussian head can output: `e² ≈ 7.4`, wider
/// than any normalized action range needs.
pub const LOG_STD_MAX: f32 = 2.0;

/// The index of the first largest value (libtorch's `argmax` on ties); a NaN counts as the
/// largest, as libtorch's does, so a broken network shows up as one fixed action rather than
/// silently.
pub fn argmax(values: &[f32]) -> usize {
    argmax_of(values.iter().copied())
}

/// [`argmax`] of the values an iterator yields (0 for none).
pub fn argmax_of(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if i == 0 || (!best.1.is_nan() && (v > best.1 || v.is_nan())) {
            best = (i, v);
        }
    }
    best.0
}

/// `x ← log_softmax(x)`.
pub fn log_softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = x.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
    x.iter_mut().for_each(|v| *v = *v - max - log_sum);
}

/// `x ← softmax(x)`.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    x.iter_mut().for_each(|v| *v = (*v - max).exp());
    let sum: f32 = x.iter().sum();
    x.iter_mut().for_each(|v| *v /= sum);
}

/// A categorical sample from `logits` and one uniform draw `u ∈ [0, 1)` by the inverse CDF: the
/// number of cumulative probabilities `≤ u`, at most the last action of positive probability
/// (so a logit of `−∞`, a masked action, is never drawn, even when the rounded cumulative sum
/// stays below `u`).
pub fn inverse_cdf(logits: &[f32], u: f32) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let mut cdf = 0.0f32;
    let mut below = 0usize;
    let mut last_possible = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        let p = (l - max).exp() / total;
        if p > 0.0 {
            last_possible = i;
        }
        cdf += p;
        if cdf <= u {
            below += 1;
        }
    }
    below.min(last_possible)
}

/// Invalid-action masking of one component's logits (sb3-contrib's `MaskablePPO`): `x ← −∞`
/// where `allowed` is false, so the disallowed actions' probabilities are exactly 0 and neither
/// [`argmax`] nor [`inverse_cdf`] can pick them while one action is allowed. The caller checks
/// that one is (a component with none allowed has no distribution).
pub fn mask_logits_in_place(logits: &mut [f32], allowed: &[bool]) {
    for (l, &ok) in logits.iter_mut().zip(allowed) {
        if !ok {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// `1 / (1 + e^(−x))`, libtorch's `sigmoid` formula (exactly 0 and 1 far out, never NaN for a
/// finite `x`).
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `P(value = 1)` of a Bernoulli with logit `logit` under a mask pair `[may be 0, may be 1]`
/// (at least one true): `sigmoid(logit)` when both are allowed, else exactly 0 or 1.
pub fn bernoulli_probability(logit: f32, allowed: [bool; 2]) -> f32 {
    match allowed {
        [true, false] => 0.0,
        [false, true] => 1.0,
        _ => sigmoid(logit),
    }
}

/// The mode of a Bernoulli with logit `logit` under a mask pair `[may be 0, may be 1]` (at least
/// one true): 1 where `logit > 0` (SB3's `round(sigmoid(logit))`, a tie at 0.5 giving 0), unless
/// the mask allows only one value.
pub fn bernoulli_mode(logit: f32, allowed: [bool; 2]) -> bool {
    match allowed {
        [true, false] => false,
        [false, true] => true,
        _ => logit > 0.0,
    }
}

/// `−ln(−ln u)` with `u` floored at [`UNIFORM_FLOOR`]: a standard Gumbel draw from a uniform one.
pub fn gumbel(u: f32) -> f32 {
    -(-u.max(UNIFORM_FLOOR).ln()).ln()
}

/// A categorical sample from log-probabilities (or logits) `lp` and as many uniform draws `u`,
/// by the Gumbel-max trick: the index of the largest `lp_a + gumbel(u_a)`.
pub fn gumbel_max(lp: &[f32], u: &[f32]) -> usize {
    argmax_of(lp.iter().zip(u).map(|(&l, &u)| l + gumbel(u)))
}

/// `bound · tanh((r − mean(r)) / bound)` in place, or `r` unchanged for `bound ≤ 0`: logits
/// whose spread is bounded, so no probability rounds to exactly 0 or 1 (see rlpg-agents'
/// Gumbel-softmax actor).
pub fn bound_logits_in_place(raw: &mut [f32], bound: f32) {
    if bound <= 0.0 || raw.is_empty() {
        return;
    }
    let mean = raw.iter().sum::<f32>() / raw.len() as f32;
    raw.iter_mut().for_each(|r| *r = ((*r - mean) / bound).tanh() * bound);
}

/// A state-dependent log standard deviation clamped to [`LOG_STD_MIN`, `LOG_STD_MAX`].
pub fn clamp_log_std(raw: f32) -> f32 {
    raw.clamp(LOG_STD_MIN, LOG_STD_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_ties_and_nan_as_largest() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[1.0, f32::NAN, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 5.0]), 0);
        assert_eq!(argmax(&[-1.0]), 0);
    }

    #[test]
    fn inverse_cdf_splits_the_unit_interval_by_the_probabilities() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 1/4, 3/4
        assert_eq!(inverse_cdf(&logits, 0.0), 0);
        assert_eq!(inverse_cdf(&logits, 0.2499), 0);
        assert_eq!(inverse_cdf(&logits, 0.2501), 1);
        assert_eq!(inverse_cdf(&logits, 0.9999999), 1);
    }

    #[test]
    fn masked_logits_have_probability_zero_and_are_never_drawn_or_chosen() {
        let mut logits = [3.0f32, 0.5, 9.0, -1.0];
        mask_logits_in_place(&mut logits, &[true, true, false, false]);
        assert_eq!(argmax(&logits), 0, "the largest allowed logit, not the masked 9");
        let mut p = logits;
        softmax_in_place(&mut p);
        assert_eq!((p[2], p[3]), (0.0, 0.0), "masked probabilities are exactly 0");
        assert!((p[0] + p[1] - 1.0).abs() < 1e-6);
        for k in 0..=1000 {
            let u = (k as f32 / 1000.0).min(0.999_999_94);
            assert!(inverse_cdf(&logits, u) < 2, "u = {u} drew a masked action");
        }
        // Masked at the end, with u above the rounded total (twelve times 1/12 sums to
        // 0.9999999 in f32): the last allowed action, not the masked one after it.
        let mut logits = [0.0f32; 13];
        logits[12] = f32::NEG_INFINITY;
        assert_eq!(inverse_cdf(&logits, 0.999_999_94), 11);
        let logits = [f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY];
        assert_eq!(inverse_cdf(&logits, 0.0), 1);
    }

    #[test]
    fn bernoulli_probability_and_mode_follow_the_logit_and_the_mask() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) - 0.880_797_1).abs() < 1e-6);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
        assert_eq!(bernoulli_probability(2.0, [true, true]), sigmoid(2.0));
        assert_eq!(bernoulli_probability(2.0, [true, false]), 0.0);
        assert_eq!(bernoulli_probability(-2.0, [false, true]), 1.0);
        assert!(bernoulli_mode(0.1, [true, true]));
        assert!(!bernoulli_mode(0.0, [true, true]), "a tie at P = 0.5 gives 0");
        assert!(!bernoulli_mode(5.0, [true, false]));
        assert!(bernoulli_mode(-5.0, [false, true]));
    }

    #[test]
    fn softmax_and_log_softmax_agree() {
        let mut p = [0.5f32, -1.0, 2.0];
        let mut lp = p;
        softmax_in_place(&mut p);
        log_softmax_in_place(&mut lp);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        for (a, b) in p.iter().zip(&lp) {
            assert!((a.ln() - b).abs() < 1e-6);
        }
    }

    #[test]
    fn gumbel_max_frequencies_follow_the_probabilities() {
        let lp = [(0.2f32).ln(), (0.5f32).ln(), (0.3f32).ln()];
        let mut counts = [0usize; 3];
        let mut x = 12345u64;
        let mut uniform = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 40) as f32) / (1u64 << 24) as f32
        };
        for _ in 0..30000 {
            let u = [uniform(), uniform(), uniform()];
            counts[gumbel_max(&lp, &u)] += 1;
        }
        for (c, p) in counts.iter().zip([0.2, 0.5, 0.3]) {
            let f = *c as f64 / 30000.0;
            assert!((f - p).abs() < 0.015, "frequency {f} vs {p}");
        }
    }

    #[test]
    fn bounded_logits_keep_their_order_and_spread_below_twice_the_bound() {
        let mut r = [100.0f32, -50.0, 0.0];
        bound_logits_in_place(&mut r, 2.0);
        assert!(r[0] > r[2] && r[2] > r[1]);
        assert!(r[0] - r[1] <= 4.0);
    }
}
