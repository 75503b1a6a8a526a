//! Streaming statistics of per-sample gradients: the estimate of each trial and the pooled
//! moments of all samples, accumulated chunk by chunk so memory stays bounded.

use serde::Serialize;
use tch::{Kind, TchError, Tensor};

/// What was measured for one estimator of one parameter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measured {
    /// Mean of the per-trial estimates (each the mean of `samples` per-sample gradients).
    pub mean: f64,
    /// Standard error of that mean: the standard deviation of the trial estimates / √trials.
    pub standard_error: f64,
    /// `mean − analytic gradient`.
    pub bias: f64,
    /// Variance of one per-sample gradient, pooled over all trials × samples. The variance of
    /// one estimate is this divided by the number of samples per estimate.
    pub variance: f64,
    /// Large-sample standard error of `variance`, `√((m₄ − variance²) / n)` with `m₄` the
    /// measured fourth central moment: how precisely the variance itself was measured.
    pub variance_standard_error: f64,
    /// Mean over trials of `(estimate − analytic)²`: the measured mean squared error of one
    /// estimate with this many samples (≈ bias² + variance / samples).
    pub estimate_mse: f64,
    /// Wall-clock seconds per sample (sampling, evaluating `f`, the backward pass).
    pub seconds_per_sample: f64,
    /// `variance × microseconds per sample`: the variance of an estimate bought with one
    /// microsecond of compute. Lower is better; this is the fair comparison between a cheap
    /// noisy estimator and an expensive quiet one.
    pub variance_times_cost: f64,
}

/// Accumulates the per-sample gradients of `P` parameters, `[trials, samples, P]`, chunk by chunk.
///
/// The pooled power sums are taken around `shift` (the analytic gradients): centring near the
/// mean keeps the fourth-moment sums free of catastrophic cancellation. Sums are taken in `f64`
/// whatever the tensors' kind.
#[derive(Debug)]
pub(crate) struct Accumulator {
    shift: Tensor,
    /// Per parameter, the estimate of every trial so far.
    trial_estimates: Vec<Vec<f64>>,
    count: f64,
    /// `sums[k][p] = Σ (g_p − shift_p)^(k+1)`.
    sums: [Vec<f64>; 4],
    seconds: f64,
}

impl Accumulator {
    /// An empty accumulator for parameters whose gradients are centred on `shift`.
    pub fn new(shift: &[f64]) -> Self {
        let p = shift.len();
        Self {
            shift: Tensor::from_slice(shift),
            trial_estimates: vec![Vec::new(); p],
            count: 0.0,
            sums: std::array::from_fn(|_| vec![0.0; p]),
            seconds: 0.0,
        }
    }

    /// Adds per-sample gradients shaped `[trials, samples, P]` (one row per independent trial).
    pub fn add(&mut self, per_sample: &Tensor) -> Result<(), TchError> {
        let g = per_sample.f_to_kind(Kind::Double)?;
        let means = Vec::<Vec<f64>>::try_from(&g.f_mean_dim(1, false, Kind::Double)?)?;
        for trial in means {
            for (estimates, m) in self.trial_estimates.iter_mut().zip(trial) {
                estimates.push(m);
            }
        }
        let d = g.f_sub(&self.shift)?;
        let d2 = d.f_square()?;
        let powers = [d.shallow_clone(), d2.shallow_clone(), d2.f_mul(&d)?, d2.f_square()?];
        for (sums, power) in self.sums.iter_mut().zip(powers) {
            let totals = Vec::<f64>::try_from(&power.f_sum_dim_intlist(
                [0i64, 1].as_slice(),
                false,
                Kind::Double,
            )?)?;
            for (s, t) in sums.iter_mut().zip(totals) {
                *s += t;
            }
        }
        let size = g.size();
        self.count += (size[0] * size[1]) as f64;
        Ok(())
    }

    /// Adds wall-clock time spent producing the gradients (of all parameters together).
    pub fn add_seconds(&mut self, seconds: f64) {
        self.seconds += seconds;
    }

    /// The statistics of each parameter, given the analytic gradients they are compared with.
    pub fn finish(&self, analytic: &[f64]) -> Vec<Measured> {
        analytic.iter().enumerate().map(|(p, &a)| self.finish_one(p, a)).collect()
    }

    fn finish_one(&self, p: usize, analytic: f64) -> Measured {
        let estimates = &self.trial_estimates[p];
        let trials = estimates.len() as f64;
        let mean = estimates.iter().sum::<f64>() / trials;
        let spread = estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>();
        let standard_error = (spread / (trials - 1.0)).sqrt() / trials.sqrt();
        let estimate_mse = estimates.iter().map(|e| (e - analytic).powi(2)).sum::<f64>() / trials;

        let n = self.count;
        let [r1, r2, r3, r4] = [0, 1, 2, 3].map(|k| self.sums[k][p] / n);
        // Central moments from raw moments about the shift. Rounding can leave a tiny negative
        // m2 for a constant gradient (the pathwise step: all zeros); variance is never below 0.
        let m2 = (r2 - r1 * r1).max(0.0);
        let m4 = r4 - 4.0 * r3 * r1 + 6.0 * r2 * r1 * r1 - 3.0 * r1.powi(4);
        let variance = m2 * n / (n - 1.0);
        let variance_standard_error = ((m4 - m2 * m2).max(0.0) / n).sqrt();
        let seconds_per_sample = self.seconds / n;
        Measured {
            mean,
            standard_error,
            bias: mean - analytic,
            variance,
            variance_standard_error,
            estimate_mse,
            seconds_per_sample,
            variance_times_cost: variance * seconds_per_sample * 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_a_known_table_are_exact() {
        // Two trials of three samples: estimates 2 and 5, pooled values 1..=6.
        let g = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3, 1]);
        let mut acc = Accumulator::new(&[3.0]);
        acc.add(&g).expect("accumulating a small tensor");
        acc.add_seconds(6e-6);
        let m = acc.finish(&[3.0]).remove(0);
        assert!((m.mean - 3.5).abs() < 1e-12, "mean of estimates 2 and 5 is 3.5, got {}", m.mean);
        // sd of {2, 5} is 3/√2; SE = that / √2 = 1.5.
        assert!(
            (m.standard_error - 1.5).abs() < 1e-12,
            "SE should be 1.5, got {}",
            m.standard_error
        );
        assert!((m.bias - 0.5).abs() < 1e-12, "bias should be 0.5, got {}", m.bias);
        // Sample variance of 1..=6 is 3.5.
        assert!((m.variance - 3.5).abs() < 1e-12, "variance of 1..=6 is 3.5, got {}", m.variance);
        assert!(
            (m.estimate_mse - 2.5).abs() < 1e-12,
            "((2-3)² + (5-3)²)/2 = 2.5, got {}",
            m.estimate_mse
        );
        assert!((m.seconds_per_sample - 1e-6).abs() < 1e-18, "6 µs over 6 samples is 1 µs each");
        assert!(
            (m.variance_times_cost - 3.5).abs() < 1e-9,
            "3.5 × 1 µs, got {}",
            m.variance_times_cost
        );
    }

    #[test]
    fn parameters_are_kept_apart() {
        // Parameter 0 is constant 2 (variance 0), parameter 1 alternates 0 and 4 (variance 16/3).
        let g = Tensor::from_slice(&[2.0f32, 0.0, 2.0, 4.0, 2.0, 0.0, 2.0, 4.0]).view([2, 2, 2]);
        let mut acc = Accumulator::new(&[2.0, 2.0]);
        acc.add(&g).expect("accumulating");
        let m = acc.finish(&[2.0, 2.0]);
        assert_eq!(m[0].variance, 0.0, "a constant gradient has variance 0");
        assert!(
            (m[1].variance - 16.0 / 3.0).abs() < 1e-12,
            "variance of 0,4,0,4 is 16/3, got {}",
            m[1].variance
        );
    }

    #[test]
    fn chunks_accumulate_like_one_batch() {
        let g = Tensor::from_slice(&[0.5f64, -1.0, 2.0, 4.0, 1.5, 0.0, 3.0, -2.0]).view([4, 2, 1]);
        let mut whole = Accumulator::new(&[1.0]);
        whole.add(&g).expect("whole");
        let mut parts = Accumulator::new(&[1.0]);
        parts.add(&g.narrow(0, 0, 1)).expect("first chunk");
        parts.add(&g.narrow(0, 1, 3)).expect("second chunk");
        let (a, b) = (whole.finish(&[1.0]).remove(0), parts.finish(&[1.0]).remove(0));
        for (what, x, y) in [
            ("mean", a.mean, b.mean),
            ("variance", a.variance, b.variance),
            ("variance SE", a.variance_standard_error, b.variance_standard_error),
            ("SE", a.standard_error, b.standard_error),
        ] {
            assert!((x - y).abs() < 1e-12, "{what}: one batch gives {x}, two chunks give {y}");
        }
    }
}
