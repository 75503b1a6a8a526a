//! Live gradient-noise diagnostics: how noisy an agent's policy-gradient estimate is, measured
//! on the update's own batch. Logged as `grad/variance` and `grad/snr` when an agent's
//! `grad_diagnostics` setting is on.
//!
//! The batch of `B` samples is split into `K ≥ 2` disjoint chunks of `n_k` samples whose
//! gradient estimates are independent given the parameters (REINFORCE: one chunk per
//! environment, whose trajectory segments are independent; the pathwise agent: slices of a
//! replay minibatch drawn uniformly with replacement). With `g_k` the gradient of chunk `k`'s
//! mean loss and `ĝ = Σ n_k g_k / B` the gradient the update actually takes,
//!
//! ```text
//! tr Σ̂   = Σ_k n_k ‖g_k − ĝ‖² / (K − 1)         (unbiased for the trace of the per-sample
//!                                                 covariance Σ when samples are i.i.d.)
//! variance = tr Σ̂ / B                            (estimates tr Var(ĝ) = E‖ĝ − ∇‖²)
//! snr      = sqrt(max(‖ĝ‖² − variance, 0) / variance)
//! ```
//!
//! `snr` estimates `‖∇‖ / sqrt(tr Var(ĝ))`, the true gradient's norm over the estimate's noise.
//! Its numerator is debiased (`E‖ĝ‖² = ‖∇‖² + tr Var(ĝ)`), so an estimate that is all noise
//! reads near 0 rather than near 1. When chunks are correlated (samples within an REINFORCE
//! chunk are, along a trajectory) the formula still holds per chunk: `variance` is then the
//! variance of the mean of `K` independent chunk estimates, which is what the update uses.
//!
//! The chunk gradients reuse the update's forward pass (one backward pass per chunk, on either
//! backend) and draw no random numbers, so switching diagnostics on changes the cost of an update
//! but never the training run.

use crate::agent::AgentError;

/// Noise statistics of one minibatch gradient (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradNoise {
    /// Estimated `tr Var(ĝ)`, the expected squared distance of the update's gradient from the
    /// true gradient.
    pub variance: f64,
    /// Estimated signal-to-noise ratio `‖∇‖ / sqrt(tr Var(ĝ))`.
    pub snr: f64,
}

impl GradNoise {
    /// The statistics as the metrics an agent returns.
    pub fn metrics(self) -> [(&'static str, f64); 2] {
        [("grad/variance", self.variance), ("grad/snr", self.snr)]
    }

    /// The statistics of chunk gradients `grads` (entry `k`: the gradient of chunk `k`'s mean
    /// loss, all of one length) with chunk sizes `sizes` (each ≥ 1), computed in `f64`.
    ///
    /// Errors when there are fewer than two chunks, when the sizes do not match the gradients,
    /// or when the gradients differ in length.
    pub fn from_chunks(grads: &[Vec<f32>], sizes: &[usize]) -> Result<Self, AgentError> {
        let k = sizes.len();
        let p = grads.first().map_or(0, Vec::len);
        if k < 2 || grads.len() != k || sizes.contains(&0) || grads.iter().any(|g| g.len() != p) {
            return Err(AgentError::Invalid(format!(
                "gradient diagnostics need at least 2 chunks of at least one sample each, with \
                 one gradient per chunk; got {} gradients for chunk sizes {sizes:?}",
                grads.len()
            )));
        }
        let batch: usize = sizes.iter().sum();
        let mut mean = vec![0.0f64; p];
        for (g, &n) in grads.iter().zip(sizes) {
            for (m, &v) in mean.iter_mut().zip(g) {
                *m += n as f64 * f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= batch as f64);
        let weighted_deviations: f64 = grads
            .iter()
            .zip(sizes)
            .map(|(g, &n)| {
                let d2: f64 = g.iter().zip(&mean).map(|(&v, m)| (f64::from(v) - m).powi(2)).sum();
                n as f64 * d2
            })
            .sum();
        let variance = weighted_deviations / (k - 1) as f64 / batch as f64;
        let squared_norm: f64 = mean.iter().map(|m| m * m).sum();
        let snr = if variance > 0.0 {
            ((squared_norm - variance).max(0.0) / variance).sqrt()
        } else {
            f64::INFINITY
        };
        Ok(GradNoise { variance, snr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-sample gradients `x_i` (rows of `xs`, `p` wide): chunk `k`'s gradient is the mean
    /// of its rows.
    fn chunk_grads(xs: &[f64], p: usize, sizes: &[usize]) -> Vec<Vec<f32>> {
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                let g = (0..p)
                    .map(|j| {
                        ((start..start + n).map(|i| xs[i * p + j]).sum::<f64>() / n as f64) as f32
                    })
                    .collect();
                start += n;
                g
            })
            .collect()
    }

    /// A deterministic standard normal stream (Box-Muller over an LCG).
    fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut uniform = || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            })
            .collect()
    }

    #[test]
    fn matches_the_formula_on_known_per_sample_gradients() {
        // Chunks of unequal size; per-sample gradients are the rows.
        let rows = [[1.0, 0.0], [3.0, 2.0], [0.0, 1.0], [2.0, 2.0], [4.0, -1.0], [1.0, 1.0]];
        let sizes = [1usize, 2, 3];
        let noise =
            GradNoise::from_chunks(&chunk_grads(&rows.concat(), 2, &sizes), &sizes).unwrap();

        // By hand: chunk means g_k, full mean ĝ, weighted squared deviations.
        let g: [[f64; 2]; 3] = [[1.0, 0.0], [1.5, 1.5], [7.0 / 3.0, 2.0 / 3.0]];
        let mean: [f64; 2] = [(1.0 + 3.0 + 7.0) / 6.0, (0.0 + 3.0 + 2.0) / 6.0];
        let trace: f64 = g
            .iter()
            .zip(sizes)
            .map(|(gk, n)| n as f64 * ((gk[0] - mean[0]).powi(2) + (gk[1] - mean[1]).powi(2)))
            .sum::<f64>()
            / 2.0;
        let variance = trace / 6.0;
        let snr = ((mean[0] * mean[0] + mean[1] * mean[1] - variance).max(0.0) / variance).sqrt();
        assert!((noise.variance - variance).abs() < 1e-6 * variance, "{noise:?} vs {variance}");
        assert!((noise.snr - snr).abs() < 1e-5 * snr.max(1.0), "{noise:?} vs {snr}");
    }

    #[test]
    fn estimates_the_variance_and_snr_of_iid_gradients() {
        // Per-sample gradients x_i ~ N(μ, I) in p dimensions: tr Var(ĝ) = p / B and
        // SNR = ‖μ‖ / sqrt(p / B). Averaged over repetitions, the estimates match.
        let (p, chunks, per_chunk) = (50usize, 8usize, 32usize);
        let batch = chunks * per_chunk;
        let sizes = vec![per_chunk; chunks];
        let reps = 400;
        let (mut variance, mut snr_squared) = (0.0, 0.0);
        for rep in 0..reps {
            let xs: Vec<f64> =
                normals(batch * p, rep as u64 + 1).iter().map(|x| x + 0.05).collect();
            let noise = GradNoise::from_chunks(&chunk_grads(&xs, p, &sizes), &sizes).unwrap();
            variance += noise.variance / reps as f64;
            snr_squared += noise.snr * noise.snr / reps as f64;
        }
        let true_variance = p as f64 / batch as f64;
        let true_snr_squared = 0.05f64.powi(2) * p as f64 / true_variance;
        // The variance estimate is unbiased: its mean over 400 repetitions of a chi-square with
        // 7 degrees of freedom (times p) is within a few percent.
        assert!(
            (variance / true_variance - 1.0).abs() < 0.03,
            "variance {variance} vs {true_variance}"
        );
        // The debiased SNR² is close to the truth (a ratio, so only approximately unbiased).
        assert!(
            (snr_squared / true_snr_squared - 1.0).abs() < 0.15,
            "snr² {snr_squared} vs {true_snr_squared}"
        );
    }

    #[test]
    fn pure_noise_reads_near_zero_and_a_constant_gradient_reads_infinite() {
        let sizes = vec![16usize; 8];
        let xs = normals(128 * 200, 3);
        let noise = GradNoise::from_chunks(&chunk_grads(&xs, 200, &sizes), &sizes).unwrap();
        // A plug-in ‖ĝ‖ / sqrt(variance) would read about 1 here.
        assert!(noise.snr < 0.75, "zero-mean gradients: {noise:?}");

        let same = vec![1.0; 128 * 200];
        let noise = GradNoise::from_chunks(&chunk_grads(&same, 200, &sizes), &sizes).unwrap();
        assert_eq!(noise.variance, 0.0);
        assert_eq!(noise.snr, f64::INFINITY);
    }

    #[test]
    fn rejects_a_single_chunk_or_mismatched_sizes() {
        let one = chunk_grads(&[1.0; 8], 2, &[4]);
        assert!(matches!(GradNoise::from_chunks(&one, &[4]), Err(AgentError::Invalid(_))));
        let two = chunk_grads(&[1.0; 8], 2, &[2, 2]);
        let err = GradNoise::from_chunks(&two, &[1, 1, 2]).unwrap_err();
        assert!(err.to_string().contains("at least 2 chunks"), "{err}");
    }
}
