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
//! The chunk gradients reuse the update's forward pass (one backward pass per chunk, keeping the
//! graph) and draw no random numbers, so switching diagnostics on changes the cost of an update
//! but never the training run.

use tch::Tensor;

use crate::agent::AgentError;
use crate::optim::FlatParams;

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
}

/// Gradient-noise statistics of `params` from `chunk_losses`, a `[K]` tensor whose entry `k` is
/// the mean loss over chunk `k` (attached to the graph), and the chunk sizes `sizes` (`K`
/// entries, each ≥ 1). Keeps the graph, so the caller can still differentiate the full loss.
///
/// Errors when there are fewer than two chunks, when the sizes do not match the losses, or in
/// libtorch.
pub fn grad_noise(
    params: &FlatParams,
    chunk_losses: &Tensor,
    sizes: &[i64],
) -> Result<GradNoise, AgentError> {
    let k = sizes.len();
    let shape = chunk_losses.size();
    if k < 2 || shape != [k as i64] || sizes.iter().any(|&n| n < 1) {
        return Err(AgentError::Invalid(format!(
            "gradient diagnostics need at least 2 chunks of at least one sample each, with one \
             loss per chunk; got {shape:?} losses for chunk sizes {sizes:?}"
        )));
    }
    let grads = (0..k)
        .map(|i| params.grad_keeping_graph(&chunk_losses.get(i as i64)))
        .collect::<Result<Vec<_>, _>>()?;
    let grads = Tensor::f_stack(&grads, 0)?.f_to_kind(tch::Kind::Double)?;
    let weights =
        Tensor::from_slice(sizes).f_to_kind(tch::Kind::Double)?.f_to_device(grads.device())?;
    let batch: i64 = sizes.iter().sum();
    tch::no_grad(|| {
        let weights = weights.view([k as i64, 1]);
        let mean =
            (&grads * &weights).f_sum_dim_intlist(0, false, tch::Kind::Double)? / batch as f64;
        let deviations =
            (&grads - &mean).f_square()?.f_sum_dim_intlist(1, false, tch::Kind::Double)?;
        let trace =
            (deviations * weights.view([-1])).f_sum(tch::Kind::Double)?.f_double_value(&[])?
                / (k - 1) as f64;
        let variance = trace / batch as f64;
        let squared_norm = mean.f_square()?.f_sum(tch::Kind::Double)?.f_double_value(&[])?;
        let snr = if variance > 0.0 {
            ((squared_norm - variance).max(0.0) / variance).sqrt()
        } else {
            f64::INFINITY
        };
        Ok(GradNoise { variance, snr })
    })
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, nn};

    use super::*;

    /// A store with one parameter vector `θ` of length `p`, and its flat view.
    fn linear_params(p: i64) -> (nn::VarStore, Tensor, FlatParams) {
        let store = nn::VarStore::new(Device::Cpu);
        let theta = store.root().zeros("theta", &[p]);
        let params = FlatParams::new(&store).expect("one variable");
        (store, theta, params)
    }

    /// Per-sample losses `θ · x_i`: the gradient of sample `i` is exactly `x_i`.
    fn chunk_means(theta: &Tensor, xs: &Tensor, sizes: &[i64]) -> Tensor {
        let per_sample = xs.matmul(theta);
        let chunks = per_sample.split_with_sizes(sizes, 0);
        Tensor::stack(&chunks.iter().map(|c| c.mean(None)).collect::<Vec<_>>(), 0)
    }

    #[test]
    fn matches_the_formula_on_known_per_sample_gradients() {
        let (_store, theta, params) = linear_params(2);
        // Chunks of unequal size; per-sample gradients are the rows.
        let rows = [[1.0, 0.0], [3.0, 2.0], [0.0, 1.0], [2.0, 2.0], [4.0, -1.0], [1.0, 1.0]];
        let sizes = [1i64, 2, 3];
        let xs = Tensor::from_slice(&rows.concat()).view([6, 2]).to_kind(Kind::Float);
        let noise = grad_noise(&params, &chunk_means(&theta, &xs, &sizes), &sizes).unwrap();

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
        tch::manual_seed(7);
        let (p, chunks, per_chunk) = (50i64, 8usize, 32i64);
        let batch = chunks as i64 * per_chunk;
        let (_store, theta, params) = linear_params(p);
        let mu = Tensor::full([p], 0.05, (Kind::Float, Device::Cpu));
        let sizes = vec![per_chunk; chunks];
        let reps = 400;
        let (mut variance, mut snr_squared) = (0.0, 0.0);
        for _ in 0..reps {
            let xs = Tensor::randn([batch, p], (Kind::Float, Device::Cpu)) + &mu;
            let noise = grad_noise(&params, &chunk_means(&theta, &xs, &sizes), &sizes).unwrap();
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
        tch::manual_seed(3);
        let (_store, theta, params) = linear_params(200);
        let sizes = vec![16i64; 8];
        let xs = Tensor::randn([128, 200], (Kind::Float, Device::Cpu));
        let noise = grad_noise(&params, &chunk_means(&theta, &xs, &sizes), &sizes).unwrap();
        // A plug-in ‖ĝ‖ / sqrt(variance) would read about 1 here.
        assert!(noise.snr < 0.75, "zero-mean gradients: {noise:?}");

        let same = Tensor::ones([128, 200], (Kind::Float, Device::Cpu));
        let noise = grad_noise(&params, &chunk_means(&theta, &same, &sizes), &sizes).unwrap();
        assert_eq!(noise.variance, 0.0);
        assert_eq!(noise.snr, f64::INFINITY);
    }

    #[test]
    fn rejects_a_single_chunk_or_mismatched_sizes() {
        let (_store, theta, params) = linear_params(2);
        let xs = Tensor::ones([4, 2], (Kind::Float, Device::Cpu));
        let one = chunk_means(&theta, &xs, &[4]);
        assert!(matches!(grad_noise(&params, &one, &[4]), Err(AgentError::Invalid(_))));
        let two = chunk_means(&theta, &xs, &[2, 2]);
        let err = grad_noise(&params, &two, &[1, 1, 2]).unwrap_err();
        assert!(err.to_string().contains("at least 2 chunks"), "{err}");
    }
}
