//! The lab's whole report (every problem's rows and the checked claims), as markdown for people
//! and JSON for machines.

use std::fmt::Write as _;

use serde::Serialize;

use super::claims::Claim;
use super::error::GradlabError;
use super::estimates::{Applicability, Baseline, Estimator, ProblemReport};
use super::format::{cell, grouped, num, se, signed};
use super::problems::ProblemKind;
use super::stats::Measured;

/// The whole lab run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The command that reproduces this report.
    pub command: String,
    /// Independent estimates per estimator.
    pub trials: usize,
    /// Samples per estimate.
    pub samples: usize,
    /// The seed.
    pub seed: u64,
    /// Gumbel-softmax temperatures.
    pub temperatures: Vec<f64>,
    /// libtorch intra-op threads used (timings depend on it).
    pub torch_threads: i32,
    /// Wall-clock seconds of the whole run.
    pub elapsed_seconds: f64,
    /// One section per problem.
    pub problems: Vec<ProblemReport>,
    /// The usual claims, each checked against the measurements.
    pub claims: Vec<Claim>,
}

impl Report {
    /// The report of one problem, if it was run.
    pub fn problem(&self, kind: ProblemKind) -> Option<&ProblemReport> {
        self.problems.iter().find(|p| p.kind == kind)
    }

    /// Pretty-printed JSON of the whole report (field names as in these types).
    pub fn to_json(&self) -> Result<String, GradlabError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Readable markdown: one table per problem, a temperature summary for the relaxation, and
    /// the claims with their verdicts.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let total = self.trials * self.samples;
        let _ = writeln!(out, "# Gradient estimators, measured\n");
        let _ = writeln!(out, "`{}`\n", self.command);
        let _ = writeln!(
            out,
            "{} trials × {} samples per estimate ({} samples per estimator), seed {}, libtorch \
             threads: {}, wall time {:.1} s.\n",
            self.trials,
            self.samples,
            grouped(total),
            self.seed,
            self.torch_threads,
            self.elapsed_seconds
        );
        let _ = writeln!(
            out,
            "*mean ± SE*: mean of the {} estimates and its standard error. *bias (/SE)*: mean − \
             analytic, and its size in standard errors. *variance*: of one per-sample gradient \
             (an estimate's variance is this / {}), ± its standard error. *closed form (Δ)*: the \
             exact per-sample variance and the measured one's relative difference. *var × µs*: \
             variance × microseconds per sample, the variance bought with one microsecond.\n",
            self.trials, self.samples
        );
        for p in &self.problems {
            write_problem(&mut out, p);
        }
        if !self.claims.is_empty() {
            let _ = writeln!(out, "## The usual claims, measured\n");
            let _ = writeln!(out, "| claim | problem | holds | evidence |");
            let _ = writeln!(out, "|---|---|---|---|");
            for c in &self.claims {
                let problem = c.problem.map(|p| p.name()).unwrap_or("all");
                let holds = if c.holds { "yes" } else { "**no**" };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(&c.claim),
                    problem,
                    holds,
                    cell(&c.evidence)
                );
            }
            out.push('\n');
        }
        out
    }
}

/// One problem's section.
fn write_problem(out: &mut String, p: &ProblemReport) {
    let _ = writeln!(out, "## {}\n\n{}\n", p.kind, p.description);
    let gradients: Vec<String> = p
        .parameters
        .iter()
        .map(|q| format!("∂/∂{} = {}", q.name, num(q.analytic_gradient)))
        .collect();
    let optimal: Vec<String> =
        p.parameters.iter().map(|q| format!("{} {}", q.name, num(q.optimal_baseline))).collect();
    let _ = writeln!(
        out,
        "Analytic gradient: {}. E[f] = {}. Optimal baselines b*: {}.\n",
        gradients.join(", "),
        num(p.mean_f),
        optimal.join(", ")
    );
    let _ = writeln!(
        out,
        "| param | estimator | mean ± SE | analytic | bias (/SE) | variance | closed form (Δ) | var × µs |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let mut reasons: Vec<String> = Vec::new();
    // The relaxation's per-logit rows (2 × temperatures × logits) would drown the table; the
    // summary below aggregates them and `--json` has every one.
    for r in p.rows.iter().filter(|r| !is_relaxed_setting(&r.estimator)) {
        let mut estimator = r.estimator.to_string();
        if let Some(b) = r.baseline_value
            && r.estimator != (Estimator::Reinforce { baseline: Baseline::None })
        {
            let _ = write!(estimator, " = {}", num(b));
        }
        if let Applicability::NotApplicable(reason) = &r.applicability {
            let index = match reasons.iter().position(|x| x == reason) {
                Some(i) => i,
                None => {
                    reasons.push(reason.clone());
                    reasons.len() - 1
                }
            };
            let _ = write!(estimator, " — **n/a** [{}]", index + 1);
        }
        let cells = match &r.measured {
            None => [
                "—".to_string(),
                num(r.analytic_gradient),
                "—".into(),
                "—".into(),
                "—".into(),
                "—".into(),
            ],
            Some(m) => {
                let mean = if r.applies() {
                    format!("{} ± {}", num(m.mean), se(m.standard_error))
                } else {
                    format!("autograd gives {} ± {}", num(m.mean), se(m.standard_error))
                };
                let sigmas =
                    r.bias_in_standard_errors().map(|s| format!(" ({s:.1})")).unwrap_or_default();
                let variance = format!("{} ± {}", num(m.variance), se(m.variance_standard_error));
                let closed = match (r.closed_form_variance, r.variance_relative_error()) {
                    (Some(cf), Some(rel)) => format!("{} ({:+.1}%)", num(cf), 100.0 * rel),
                    (Some(cf), None) => num(cf),
                    (None, _) => "—".into(),
                };
                [
                    mean,
                    num(r.analytic_gradient),
                    format!("{}{}", signed(m.bias), sigmas),
                    variance,
                    closed,
                    num(m.variance_times_cost),
                ]
            }
        };
        let _ = writeln!(out, "| {} | {} | {} |", r.parameter, estimator, cells.join(" | "));
    }
    out.push('\n');
    for (i, reason) in reasons.iter().enumerate() {
        let _ = writeln!(out, "[{}] {}.\n", i + 1, reason);
    }
    write_temperature_summary(out, p);
}

/// Whether the estimator is a Gumbel-softmax at some temperature (rather than the n/a row).
fn is_relaxed_setting(e: &Estimator) -> bool {
    matches!(e, Estimator::GumbelSoftmax { temperature: Some(_), .. })
}

/// For the relaxation: squared bias and variance summed over parameters, per temperature.
fn write_temperature_summary(out: &mut String, p: &ProblemReport) {
    let sums = |e: Estimator| -> Option<[f64; 4]> {
        let rows: Vec<&Measured> = p
            .rows
            .iter()
            .filter(|r| r.estimator == e)
            .filter_map(|r| r.measured.as_ref())
            .collect();
        if rows.is_empty() {
            return None;
        }
        Some([
            rows.iter().map(|m| m.bias * m.bias).sum(),
            rows.iter().map(|m| m.variance).sum(),
            rows.iter().map(|m| m.bias.abs() / m.standard_error).fold(0.0, f64::max),
            rows.iter().map(|m| m.variance_times_cost).sum(),
        ])
    };
    let mut temperatures: Vec<f64> = p
        .rows
        .iter()
        .filter_map(|r| match r.estimator {
            Estimator::GumbelSoftmax { temperature: Some(t), .. } => Some(t),
            _ => None,
        })
        .collect();
    temperatures.sort_by(f64::total_cmp);
    temperatures.dedup();
    if temperatures.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Score function against the Gumbel-softmax relaxation, summed over the {} logits (per-logit \
         rows are in `--json`). Soft and straight-through (ST) at one temperature share their \
         noise. Σ bias² includes the noise floor Σ SE² of an unbiased estimator.\n",
        p.parameters.len()
    );
    let _ = writeln!(out, "| estimator | Σ bias² | max \\|bias\\|/SE | Σ variance | Σ var × µs |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    let mut line = |e: Estimator| {
        if let Some([b, v, w, c]) = sums(e) {
            let _ = writeln!(out, "| {e} | {} | {w:.1} | {} | {} |", num(b), num(v), num(c));
        }
    };
    for baseline in [Baseline::None, Baseline::Mean, Baseline::Optimal] {
        line(Estimator::Reinforce { baseline });
    }
    for &t in &temperatures {
        for straight_through in [false, true] {
            line(Estimator::GumbelSoftmax { temperature: Some(t), straight_through });
        }
    }
    out.push('\n');
}
