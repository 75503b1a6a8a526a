//! The usual claims about the estimators, each turned into a check on the measurements.

use serde::Serialize;

use super::estimates::{Baseline, Estimator, ProblemReport, Row};
use super::format::num;
use super::problems::ProblemKind;

/// The largest `|bias| / SE` accepted for an unbiased estimator.
pub const UNBIASED_WITHIN_SE: f64 = 3.0;
/// The largest relative difference accepted between a measured and a closed-form variance.
pub const VARIANCE_TOLERANCE: f64 = 0.05;

/// One claim and what the measurements say about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Claim {
    /// The claim, as it is usually stated.
    pub claim: String,
    /// The problem it was checked on; `None` for a claim over every problem.
    pub problem: Option<ProblemKind>,
    /// Whether the measurements support it.
    pub holds: bool,
    /// The numbers behind the verdict.
    pub evidence: String,
}

/// Every claim that the measured problems can speak to.
pub(crate) fn check(problems: &[ProblemReport]) -> Vec<Claim> {
    let mut claims = Vec::new();
    for p in problems {
        claims.extend(unbiased(p));
        claims.extend(closed_form_variance(p));
        claims.extend(baselines(p));
        claims.extend(pathwise_quieter(p));
        claims.extend(pathwise_needs_differentiable_f(p));
        claims.extend(relaxation_biased(p));
        claims.extend(temperature_tradeoff(p));
    }
    claims
}

fn claim(claim: &str, p: &ProblemReport, holds: bool, evidence: String) -> Claim {
    Claim { claim: claim.into(), problem: Some(p.kind), holds, evidence }
}

/// The per-sample variance of a row, if measured.
fn variance(row: Option<&Row>) -> Option<f64> {
    row?.measured.as_ref().map(|m| m.variance)
}

/// Unbiased estimators land within 3 standard errors of the analytic gradient.
fn unbiased(p: &ProblemReport) -> Option<Claim> {
    let rows: Vec<(&Row, f64)> = p
        .rows
        .iter()
        .filter(|r| r.unbiased_in_theory && r.applies())
        .filter_map(|r| Some((r, r.bias_in_standard_errors()?)))
        .collect();
    let (worst, z) = rows.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(claim(
        "the score function (any constant baseline) and the pathwise estimator (where it applies) \
         are unbiased",
        p,
        z <= UNBIASED_WITHIN_SE,
        format!(
            "every one of {} estimates within {:.1} SE of the analytic gradient (worst: {} on {}); \
             target ≤ {UNBIASED_WITHIN_SE}",
            rows.len(),
            z,
            worst.estimator,
            worst.parameter
        ),
    ))
}

/// Measured variances match the closed forms.
fn closed_form_variance(p: &ProblemReport) -> Option<Claim> {
    let rows: Vec<(&Row, f64)> = p
        .rows
        .iter()
        .filter(|r| r.applies())
        .filter_map(|r| Some((r, r.variance_relative_error()?)))
        .collect();
    let (worst, rel) = rows.iter().copied().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
    let precision = rows
        .iter()
        .filter_map(|(r, _)| {
            let m = r.measured.as_ref()?;
            Some(m.variance_standard_error / r.closed_form_variance?)
        })
        .fold(0.0, f64::max);
    Some(claim(
        "the per-sample variances follow the closed forms derived from Gaussian/categorical moments",
        p,
        rel.abs() <= VARIANCE_TOLERANCE,
        format!(
            "{} variances, largest difference {:+.1}% ({} on {}); each measured to ±{:.1}% (1 SE) \
             or better; target ±{:.0}%",
            rows.len(),
            100.0 * rel,
            worst.estimator,
            worst.parameter,
            100.0 * precision,
            100.0 * VARIANCE_TOLERANCE
        ),
    ))
}

/// The baseline claims, per parameter: b* beats every other constant; b = E[f] beats none.
///
/// The second is the one usually stated and the one that can fail: `Var_b` is a parabola in `b`
/// with its minimum at `b*` and `Var_b = Var_0` at `b = 2b*`, so a constant `b` lowers the
/// variance exactly when it lies between 0 and `2b*`. Where it fails, the evidence says so
/// together with that interval, which the closed form predicts.
fn baselines(p: &ProblemReport) -> Vec<Claim> {
    let mut optimal_best = true;
    let mut mean_helps = true;
    let mut parts = Vec::new();
    let mut failures = Vec::new();
    for q in &p.parameters {
        let v = |baseline| variance(p.row(&q.name, Estimator::Reinforce { baseline }));
        let (Some(none), Some(mean), Some(optimal)) =
            (v(Baseline::None), v(Baseline::Mean), v(Baseline::Optimal))
        else {
            continue;
        };
        optimal_best &= optimal < mean && optimal < none;
        if mean >= none {
            mean_helps = false;
            let (lo, hi) = if q.optimal_baseline > 0.0 {
                (0.0, 2.0 * q.optimal_baseline)
            } else {
                (2.0 * q.optimal_baseline, 0.0)
            };
            failures.push(format!(
                "on {} E[f] = {} raises it, as theory predicts: it lies outside ({}, {}), between 0 and 2b*",
                q.name,
                num(q.mean_baseline),
                num(lo),
                num(hi)
            ));
        }
        parts.push(format!("{}: {} → {} → {}", q.name, num(none), num(mean), num(optimal)));
    }
    if parts.is_empty() {
        return Vec::new();
    }
    let series = format!("per-sample variance none → E[f] → b*: {}", parts.join("; "));
    let mut mean_evidence = series.clone();
    if !failures.is_empty() {
        mean_evidence = format!("{}; {}", failures.join("; "), series);
    }
    vec![
        claim(
            "the optimal constant baseline b* = E[f s²]/E[s²] has the least variance",
            p,
            optimal_best,
            series,
        ),
        claim(
            "a baseline b = E[f] reduces the score function's variance",
            p,
            mean_helps,
            mean_evidence,
        ),
    ]
}

/// Where the pathwise estimator applies, it is quieter than the score function even with the
/// optimal baseline, per sample and per microsecond.
fn pathwise_quieter(p: &ProblemReport) -> Vec<Claim> {
    let mut per_sample = (true, Vec::new());
    let mut per_cost = (true, Vec::new());
    for q in &p.parameters {
        let Some(path) = p.row(&q.name, Estimator::Pathwise).filter(|r| r.applies()) else {
            continue;
        };
        let Some(path) = path.measured.as_ref() else { continue };
        let reinforce: Vec<_> = [Baseline::None, Baseline::Mean, Baseline::Optimal]
            .into_iter()
            .filter_map(|baseline| {
                p.row(&q.name, Estimator::Reinforce { baseline })?.measured.as_ref()
            })
            .collect();
        let Some(best_var) = reinforce.iter().map(|m| m.variance).min_by(f64::total_cmp) else {
            continue;
        };
        let Some(best_cost) =
            reinforce.iter().map(|m| m.variance_times_cost).min_by(f64::total_cmp)
        else {
            continue;
        };
        per_sample.0 &= path.variance < best_var;
        per_sample.1.push(format!("{}: {} vs {}", q.name, num(path.variance), num(best_var)));
        per_cost.0 &= path.variance_times_cost < best_cost;
        per_cost.1.push(format!(
            "{}: {} vs {}",
            q.name,
            num(path.variance_times_cost),
            num(best_cost)
        ));
    }
    if per_sample.1.is_empty() {
        return Vec::new();
    }
    vec![
        claim(
            "the pathwise estimator has lower variance than the score function",
            p,
            per_sample.0,
            format!(
                "per-sample variance, pathwise vs the best score-function baseline: {}",
                per_sample.1.join("; ")
            ),
        ),
        claim(
            "… and stays ahead once its cost per sample is counted",
            p,
            per_cost.0,
            format!(
                "variance × µs per sample, pathwise vs the best score function: {}",
                per_cost.1.join("; ")
            ),
        ),
    ]
}

/// On a non-differentiable f, autograd's pathwise gradient is silently wrong.
fn pathwise_needs_differentiable_f(p: &ProblemReport) -> Option<Claim> {
    let rows: Vec<&Row> = p
        .rows
        .iter()
        .filter(|r| r.estimator == Estimator::Pathwise && !r.applies() && r.measured.is_some())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut holds = true;
    let mut parts = Vec::new();
    for r in rows {
        let m = r.measured.as_ref()?;
        let reinforce =
            p.row(&r.parameter, Estimator::Reinforce { baseline: Baseline::Optimal })?;
        let reinforce_se = reinforce.measured.as_ref()?.standard_error;
        // Wrong means: far from the truth by the yardstick of the estimator that does apply.
        holds &= m.bias.abs() > UNBIASED_WITHIN_SE * reinforce_se;
        parts.push(format!(
            "{}: autograd {} vs analytic {} (score function: {} ± {})",
            r.parameter,
            num(m.mean),
            num(r.analytic_gradient),
            num(reinforce.measured.as_ref()?.mean),
            num(reinforce_se)
        ));
    }
    Some(claim(
        "the pathwise estimator needs a differentiable f; the score function does not",
        p,
        holds,
        parts.join("; "),
    ))
}

/// The Gumbel-softmax gradient is biased for E[f(x)]: detectably so at some temperature.
fn relaxation_biased(p: &ProblemReport) -> Option<Claim> {
    let mut biased = Vec::new();
    let mut hidden = Vec::new();
    for e in relaxed_settings(p) {
        let worst = p
            .rows
            .iter()
            .filter(|r| r.estimator == e)
            .filter_map(Row::bias_in_standard_errors)
            .fold(0.0, f64::max);
        if worst > UNBIASED_WITHIN_SE {
            biased.push(e)
        } else {
            hidden.push(format!("{e} ({worst:.1} SE)"))
        }
    }
    if biased.is_empty() && hidden.is_empty() {
        return None;
    }
    let mut evidence = format!(
        "|bias| > {UNBIASED_WITHIN_SE} SE for some logit at {} of {} settings",
        biased.len(),
        biased.len() + hidden.len()
    );
    if !hidden.is_empty() {
        evidence.push_str(&format!(
            "; below the noise of this run at {} (a lower temperature needs more samples to show \
             its smaller bias)",
            hidden.join(", ")
        ));
    }
    Some(claim("the Gumbel-softmax (relaxed) gradient is biased", p, !biased.is_empty(), evidence))
}

/// Lowering the temperature lowers the bias and raises the variance.
fn temperature_tradeoff(p: &ProblemReport) -> Vec<Claim> {
    let mut claims = Vec::new();
    for straight_through in [false, true] {
        let mut points: Vec<(f64, f64, f64)> = relaxed_settings(p)
            .filter_map(|e| match e {
                Estimator::GumbelSoftmax { temperature: Some(t), straight_through: st }
                    if st == straight_through =>
                {
                    let ms: Vec<_> = p
                        .rows
                        .iter()
                        .filter(|r| r.estimator == e)
                        .filter_map(|r| r.measured.as_ref())
                        .collect();
                    Some((
                        t,
                        ms.iter().map(|m| m.bias * m.bias).sum(),
                        ms.iter().map(|m| m.variance).sum(),
                    ))
                }
                _ => None,
            })
            .collect();
        if points.len() < 2 {
            continue;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bias_rises = points.windows(2).all(|w| w[0].1 < w[1].1);
        let variance_falls = points.windows(2).all(|w| w[0].2 > w[1].2);
        let series: Vec<String> =
            points.iter().map(|(t, b, v)| format!("τ={t}: {}/{}", num(*b), num(*v))).collect();
        let kind = if straight_through { "straight-through" } else { "soft" };
        claims.push(claim(
            &format!("lower temperature: less bias, more variance ({kind} Gumbel-softmax)"),
            p,
            bias_rises && variance_falls,
            format!(
                "Σ bias² / Σ variance: {} (bias² rises with τ: {}; variance falls with τ: {})",
                series.join(", "),
                yes_no(bias_rises),
                yes_no(variance_falls)
            ),
        ));
    }
    claims
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The distinct measured Gumbel-softmax settings of a problem, in row order.
fn relaxed_settings(p: &ProblemReport) -> impl Iterator<Item = Estimator> + '_ {
    let mut seen: Vec<Estimator> = Vec::new();
    for r in &p.rows {
        if matches!(r.estimator, Estimator::GumbelSoftmax { temperature: Some(_), .. })
            && r.measured.is_some()
            && !seen.contains(&r.estimator)
        {
            seen.push(r.estimator);
        }
    }
    seen.into_iter()
}
