//! [`RunningMeanStd`]: per-dimension running mean and variance of observations.

use serde::{Deserialize, Serialize};

/// Stable-Baselines3's initial pseudo-count: the statistics start as if `1e-4` samples with mean 0
/// and variance 1 had been seen, which keeps the first normalised values finite.
pub const DEFAULT_INITIAL_COUNT: f64 = 1e-4;

/// Running per-dimension mean and (population) variance of a stream of vectors, merged batch by
/// batch with the parallel-variance formula of Chan, Golub and LeVeque (for a batch of one it is
/// Welford's update). Stable-Baselines3's `RunningMeanStd`, in `f64`.
///
/// Serialisable, so that the statistics of a training run can be saved next to a checkpoint and
/// restored exactly (every `f64` round-trips through JSON). Deserialisation rejects inconsistent
/// data (lengths that differ, a negative variance or count, non-finite values).
///
/// The same type serves [`crate::NormalizeObservation`] (one env) and [`crate::VecEnv`] (all envs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RunningMeanStdFields")]
pub struct RunningMeanStd {
    mean: Vec<f64>,
    var: Vec<f64>,
    count: f64,
}

/// The serialised form, checked by `TryFrom` before it becomes a [`RunningMeanStd`].
#[derive(Deserialize)]
struct RunningMeanStdFields {
    mean: Vec<f64>,
    var: Vec<f64>,
    count: f64,
}

impl TryFrom<RunningMeanStdFields> for RunningMeanStd {
    type Error = String;

    fn try_from(f: RunningMeanStdFields) -> Result<Self, String> {
        if f.mean.len() != f.var.len() {
            return Err(format!(
                "RunningMeanStd: mean has {} values but var has {}",
                f.mean.len(),
                f.var.len()
            ));
        }
        if !(f.count.is_finite() && f.count >= 0.0) {
            return Err(format!("RunningMeanStd: count {} is not a finite number >= 0", f.count));
        }
        if let Some((i, m)) = f.mean.iter().enumerate().find(|(_, m)| !m.is_finite()) {
            return Err(format!("RunningMeanStd: mean[{i}] = {m} is not finite"));
        }
        if let Some((i, v)) = f.var.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(format!("RunningMeanStd: var[{i}] = {v} is not a finite number >= 0"));
        }
        Ok(Self { mean: f.mean, var: f.var, count: f.count })
    }
}

impl RunningMeanStd {
    /// Statistics of `dim`-dimensional vectors with Stable-Baselines3's prior: mean 0, variance 1,
    /// weight [`DEFAULT_INITIAL_COUNT`].
    pub fn new(dim: usize) -> Self {
        Self::with_initial_count(dim, DEFAULT_INITIAL_COUNT)
    }

    /// Statistics with a prior of mean 0 and variance 1 weighted as `count` samples. With
    /// `count = 0` the statistics are exactly the mean and variance of the data seen.
    ///
    /// # Panics
    /// If `count` is negative or not finite (a programming error).
    pub fn with_initial_count(dim: usize, count: f64) -> Self {
        assert!(count.is_finite() && count >= 0.0, "initial count {count} must be finite and >= 0");
        Self { mean: vec![0.0; dim], var: vec![1.0; dim], count }
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Per-dimension mean.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Per-dimension population variance.
    pub fn var(&self) -> &[f64] {
        &self.var
    }

    /// Number of samples seen, plus the initial pseudo-count.
    pub fn count(&self) -> f64 {
        self.count
    }

    /// Adds a batch of vectors stored row-major in `batch` (`rows * dim` values). The batch's own
    /// mean and variance are computed in two passes, then merged.
    ///
    /// # Panics
    /// If `batch.len()` is not a multiple of [`RunningMeanStd::dim`] (a programming error).
    pub fn update(&mut self, batch: &[f32]) {
        let dim = self.dim();
        if dim == 0 || batch.is_empty() {
            return;
        }
        assert!(
            batch.len() % dim == 0,
            "batch of {} values is not a whole number of {dim}-dimensional rows",
            batch.len()
        );
        let rows = batch.len() / dim;
        let n = rows as f64;
        let total = self.count + n;
        for d in 0..dim {
            let column = || batch[d..].iter().step_by(dim).map(|&x| f64::from(x));
            let batch_mean = column().sum::<f64>() / n;
            let batch_var = column().map(|x| (x - batch_mean) * (x - batch_mean)).sum::<f64>() / n;
            (self.mean[d], self.var[d]) =
                merge(self.mean[d], self.var[d], self.count, batch_mean, batch_var, n, total);
        }
        self.count = total;
    }

    /// Merges the statistics of a batch given by its per-dimension mean and population variance
    /// and its size.
    ///
    /// # Panics
    /// If the slices' lengths differ from [`RunningMeanStd::dim`] (a programming error).
    pub fn update_from_moments(&mut self, batch_mean: &[f64], batch_var: &[f64], batch_count: f64) {
        assert_eq!(batch_mean.len(), self.dim(), "batch mean has the wrong dimension");
        assert_eq!(batch_var.len(), self.dim(), "batch variance has the wrong dimension");
        let total = self.count + batch_count;
        if total == 0.0 {
            return;
        }
        for d in 0..self.dim() {
            (self.mean[d], self.var[d]) = merge(
                self.mean[d],
                self.var[d],
                self.count,
                batch_mean[d],
                batch_var[d],
                batch_count,
                total,
            );
        }
        self.count = total;
    }

    /// Writes `clip((x - mean) / sqrt(var + epsilon), -clip, clip)` of each row of `x` into `out`
    /// (Stable-Baselines3's `VecNormalize.normalize_obs`).
    ///
    /// # Panics
    /// If `x` and `out` differ in length or are not whole rows (a programming error).
    pub fn normalize(&self, x: &[f32], out: &mut [f32], epsilon: f64, clip: f32) {
        let dim = self.dim();
        assert_eq!(x.len(), out.len(), "input and output differ in length");
        if dim == 0 {
            return;
        }
        assert!(x.len() % dim == 0, "{} values are not whole {dim}-dimensional rows", x.len());
        for (row_in, row_out) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            for d in 0..dim {
                let z = (f64::from(row_in[d]) - self.mean[d]) / (self.var[d] + epsilon).sqrt();
                row_out[d] = (z as f32).clamp(-clip, clip);
            }
        }
    }
}

/// Chan et al.'s parallel merge of (mean, population variance, count) pairs; `total` is the sum
/// of the counts.
#[inline]
fn merge(
    mean: f64,
    var: f64,
    count: f64,
    batch_mean: f64,
    batch_var: f64,
    batch_count: f64,
    total: f64,
) -> (f64, f64) {
    let delta = batch_mean - mean;
    let new_mean = mean + delta * batch_count / total;
    let m2 = var * count + batch_var * batch_count + delta * delta * count * batch_count / total;
    (new_mean, m2 / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, spread-out data set: rows of 3 values, one column with a large offset
    /// (where a naive sum-of-squares variance would lose digits).
    fn data(rows: usize) -> Vec<f32> {
        (0..rows)
            .flat_map(|i| {
                let t = i as f32;
                [(t * 0.37).sin() * 3.0, 1000.0 + (t * 1.3).cos(), (i % 7) as f32 - 3.0]
            })
            .collect()
    }

    fn two_pass(data: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let n = (data.len() / dim) as f64;
        let mean: Vec<f64> = (0..dim)
            .map(|d| data[d..].iter().step_by(dim).map(|&x| f64::from(x)).sum::<f64>() / n)
            .collect();
        let var = (0..dim)
            .map(|d| {
                data[d..]
                    .iter()
                    .step_by(dim)
                    .map(|&x| (f64::from(x) - mean[d]).powi(2))
                    .sum::<f64>()
                    / n
            })
            .collect();
        (mean, var)
    }

    fn assert_close(a: &[f64], b: &[f64], rel: f64, what: &str) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= rel * y.abs().max(1.0),
                "{what}[{i}]: running {x} vs two-pass {y} (diff {})",
                (x - y).abs()
            );
        }
    }

    #[test]
    fn batches_of_any_size_match_the_two_pass_statistics() {
        let data = data(1000);
        let (mean, var) = two_pass(&data, 3);
        for batch_rows in [1, 7, 64, 1000] {
            let mut rms = RunningMeanStd::with_initial_count(3, 0.0);
            for batch in data.chunks(batch_rows * 3) {
                rms.update(batch);
            }
            assert_eq!(rms.count(), 1000.0);
            assert_close(rms.mean(), &mean, 1e-12, &format!("mean, batches of {batch_rows}"));
            assert_close(rms.var(), &var, 1e-10, &format!("var, batches of {batch_rows}"));
        }
    }

    #[test]
    fn default_prior_is_a_pseudo_sample_of_mean_0_var_1() {
        // Merging data into the prior equals the exact statistics of the weighted mixture.
        let data = data(50);
        let mut rms = RunningMeanStd::new(3);
        rms.update(&data);
        let n = 50.0;
        let eps = DEFAULT_INITIAL_COUNT;
        for d in 0..3 {
            let col: Vec<f64> = data[d..].iter().step_by(3).map(|&x| f64::from(x)).collect();
            let mean = col.iter().sum::<f64>() / (n + eps);
            let var = (eps * (1.0 + mean * mean)
                + col.iter().map(|x| (x - mean).powi(2)).sum::<f64>())
                / (n + eps);
            assert_close(&rms.mean()[d..=d], &[mean], 1e-12, "mean with prior");
            assert_close(&rms.var()[d..=d], &[var], 1e-9, "var with prior");
        }
    }

    #[test]
    fn update_from_moments_equals_update() {
        let data = data(40);
        let (m, v) = two_pass(&data[60..], 3);
        let mut a = RunningMeanStd::new(3);
        a.update(&data[..60]);
        let mut b = a.clone();
        a.update(&data[60..]);
        b.update_from_moments(&m, &v, 20.0);
        assert_close(a.mean(), b.mean(), 1e-14, "mean");
        assert_close(a.var(), b.var(), 1e-12, "var");
    }

    #[test]
    fn json_round_trip_is_exact() {
        let mut rms = RunningMeanStd::new(3);
        rms.update(&data(33));
        let json = serde_json::to_string(&rms).expect("serialize");
        let back: RunningMeanStd = serde_json::from_str(&json).expect("deserialize");
        let bits = |r: &RunningMeanStd| {
            (r.mean.iter().chain(&r.var).map(|x| x.to_bits()).collect::<Vec<_>>(), r.count)
        };
        assert_eq!(bits(&back), bits(&rms), "statistics changed through JSON: {json}");
    }

    #[test]
    fn inconsistent_saved_statistics_are_rejected_with_a_reason() {
        for (json, reason) in [
            (r#"{"mean":[0.0],"var":[1.0,1.0],"count":1.0}"#, "mean has 1 values but var has 2"),
            (r#"{"mean":[0.0],"var":[-1.0],"count":1.0}"#, "var[0] = -1"),
            (r#"{"mean":[0.0],"var":[1.0],"count":-3.0}"#, "count -3"),
        ] {
            let err = serde_json::from_str::<RunningMeanStd>(json).expect_err(json).to_string();
            assert!(err.contains(reason), "error '{err}' for {json} must say '{reason}'");
        }
    }

    #[test]
    fn normalize_centres_scales_and_clips() {
        let mut rms = RunningMeanStd::with_initial_count(2, 0.0);
        rms.update(&[1.0, 10.0, 3.0, 30.0]); // mean [2, 20], var [1, 100]
        let mut out = [0.0; 4];
        rms.normalize(&[2.0, 40.0, 0.0, -1000.0], &mut out, 0.0, 5.0);
        assert_eq!(out, [0.0, 2.0, -2.0, -5.0], "expected (x - mean) / std clipped at 5");
    }
}
