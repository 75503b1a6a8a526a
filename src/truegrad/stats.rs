//! Statistics of repeated gradient estimates ([`GradStats`]) and an estimator's report row.

use tch::{Kind, Tensor};

use super::report::EstimatorRow;
use super::rollout::torch;
use crate::run::RunError;

/// A gradient estimate's statistics over repeated draws: the mean and the per-coordinate
/// standard error of the mean.
#[derive(Debug)]
pub struct GradStats {
    /// The mean, one entry per parameter.
    pub mean: Vec<f64>,
    /// The standard error of each entry of `mean`.
    pub se: Vec<f64>,
    /// The draws, `[draws, parameters]`.
    pub draws: Tensor,
}

impl GradStats {
    /// The statistics of `draws`, one flat gradient each.
    pub fn of(draws: &[Tensor]) -> Result<Self, RunError> {
        let m = Tensor::stack(draws, 0).to_kind(Kind::Double);
        let k = draws.len() as f64;
        let mean = m.mean_dim(0, false, Kind::Double);
        let var = m.var_dim(0, true, false);
        let se = Vec::<f64>::try_from(&(var / k).sqrt()).map_err(torch)?;
        Ok(Self { mean: Vec::<f64>::try_from(&mean).map_err(torch)?, se, draws: m })
    }

    /// `u · mean` and its standard error, from the draws' projections onto `u`.
    pub fn project(&self, u: &[f64]) -> (f64, f64) {
        let u = Tensor::from_slice(u);
        let p = self.draws.mv(&u);
        let k = p.size()[0] as f64;
        (p.mean(Kind::Double).double_value(&[]), (p.var(true).double_value(&[]) / k).sqrt())
    }
}

pub(super) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub(super) fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// The draws (rows) `range` of `draws`.
pub(super) fn half(draws: &Tensor, range: std::ops::Range<i64>) -> Tensor {
    draws.narrow(0, range.start, range.end - range.start)
}

/// [`EstimatorRow::bias_z`].
pub(super) fn split_bias_z(s: &GradStats, truth: &GradStats) -> f64 {
    let (k, c) = (s.draws.size()[0], truth.draws.size()[0]);
    if k < 4 || c < 4 {
        return f64::NAN;
    }
    let (est_a, est_b) = (half(&s.draws, 0..k / 2), half(&s.draws, k / 2..k));
    let (tru_a, tru_b) = (half(&truth.draws, 0..c / 2), half(&truth.draws, c / 2..c));
    let u = est_a.mean_dim(0, false, Kind::Double) - tru_a.mean_dim(0, false, Kind::Double);
    let n = u.norm().double_value(&[]);
    if n.is_nan() || n <= 0.0 {
        return f64::NAN;
    }
    let u = u / n;
    let (pb, pt) = (est_b.mv(&u), tru_b.mv(&u));
    let (kb, kt) = (pb.size()[0] as f64, pt.size()[0] as f64);
    let diff = pb.mean(Kind::Double).double_value(&[]) - pt.mean(Kind::Double).double_value(&[]);
    let se2 = pb.var(true).double_value(&[]) / kb + pt.var(true).double_value(&[]) / kt;
    diff / se2.sqrt()
}

/// The report row of an estimator's estimates `s`.
pub(super) fn row(
    name: &str,
    batch: usize,
    unit: &'static str,
    s: &GradStats,
    truth: &GradStats,
    seconds: f64,
) -> Result<EstimatorRow, RunError> {
    let k = s.draws.size()[0];
    let truth_t = Tensor::from_slice(&truth.mean);
    let truth_norm = norm(&truth.mean);
    let cosines = Vec::<f64>::try_from(
        &(s.draws.mv(&truth_t) / (s.draws.norm_scalaropt_dim(2, [1], false) * truth_norm)),
    )
    .map_err(torch)?;
    let (cosine, cosine_se) = mean_se(&cosines);
    let diff: Vec<f64> = s.mean.iter().zip(&truth.mean).map(|(a, b)| a - b).collect();
    // tr Var of one estimate, from the standard errors of the mean: SE_i² · k.
    let trace_var: f64 = s.se.iter().map(|x| x * x).sum::<f64>() * k as f64;
    let floor = (trace_var / k as f64 + truth.se.iter().map(|x| x * x).sum::<f64>()).sqrt();
    let bias_z = split_bias_z(s, truth);
    Ok(EstimatorRow {
        bias_z,
        name: name.to_owned(),
        batch,
        unit,
        estimates: k as usize,
        cosine,
        cosine_se,
        bias: norm(&diff) / truth_norm,
        noise_floor: floor / truth_norm,
        variance_per_sample: trace_var * batch as f64,
        relative_variance_per_sample: trace_var * batch as f64 / (truth_norm * truth_norm),
        seconds_per_estimate: seconds,
    })
}
