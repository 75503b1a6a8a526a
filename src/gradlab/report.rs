//! The lab's report: one row per (parameter, estimator), as markdown for people and JSON for
//! machines.

use std::fmt::Write as _;

use serde::Serialize;

use super::GradlabError;
use super::claims::Claim;
use super::problems::ProblemKind;
use super::stats::Measured;

/// A constant baseline subtracted from `f` in the score-function estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// `b = 0`: plain REINFORCE.
    None,
    /// `b = E[f(x)]`: what a learned value function approximates.
    Mean,
    /// `b* = E[f s²] / E[s²]` for each parameter: the constant of least variance.
    Optimal,
}

/// A gradient estimator.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Estimator {
    /// The score function `(f(x) − b) ∇θ log pθ(x)`.
    Reinforce {
        /// The baseline `b`.
        baseline: Baseline,
    },
    /// The reparameterization gradient `∇θ f(gθ(ε))`.
    Pathwise,
    /// The pathwise gradient through a Gumbel-softmax relaxed sample of a categorical.
    GumbelSoftmax {
        /// The relaxation temperature; `None` on a row saying the relaxation does not apply.
        temperature: Option<f64>,
        /// Hard one-hot forward pass with the relaxed gradient.
        straight_through: bool,
    },
}

impl std::fmt::Display for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Estimator::Reinforce { baseline: Baseline::None } => f.write_str("reinforce"),
            Estimator::Reinforce { baseline: Baseline::Mean } => f.write_str("reinforce, b = E[f]"),
            Estimator::Reinforce { baseline: Baseline::Optimal } => {
                f.write_str("reinforce, b = b*")
            }
            Estimator::Pathwise => f.write_str("pathwise"),
            Estimator::GumbelSoftmax { temperature, straight_through } => {
                f.write_str("gumbel-softmax")?;
                if *straight_through {
                    f.write_str(" ST")?;
                }
                match temperature {
                    Some(t) => write!(f, " τ={t}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Whether an estimator applies to a problem.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applicability {
    /// It applies (it may still be biased, as a relaxation is).
    Applies,
    /// It does not apply, for this reason. A row may still carry measurements: what autograd
    /// returns when it is run anyway.
    NotApplicable(String),
}

/// One estimator of one parameter's gradient.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The parameter (`mu`, `sigma`, `theta[k]`).
    pub parameter: String,
    /// The estimator.
    pub estimator: Estimator,
    /// Whether it applies.
    pub applicability: Applicability,
    /// Whether theory says it is unbiased here (the target "within 3 standard errors" is checked
    /// on these rows).
    pub unbiased_in_theory: bool,
    /// The exact gradient.
    pub analytic_gradient: f64,
    /// The constant baseline used, for score-function rows.
    pub baseline_value: Option<f64>,
    /// The exact per-sample variance, where known.
    pub closed_form_variance: Option<f64>,
    /// What was measured; `None` when the estimator cannot be run at all.
    pub measured: Option<Measured>,
}

impl Row {
    /// `|bias| / standard error`, for rows with a nonzero standard error.
    pub fn bias_in_standard_errors(&self) -> Option<f64> {
        let m = self.measured.as_ref()?;
        (m.standard_error > 0.0).then(|| m.bias.abs() / m.standard_error)
    }

    /// `(measured − closed form) / closed form` of the per-sample variance.
    pub fn variance_relative_error(&self) -> Option<f64> {
        let m = self.measured.as_ref()?;
        let cf = self.closed_form_variance?;
        (cf > 0.0).then(|| (m.variance - cf) / cf)
    }

    /// Whether the estimator applies.
    pub fn applies(&self) -> bool {
        self.applicability == Applicability::Applies
    }
}

/// A parameter of a problem with its exact gradient and the baselines used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParameterSummary {
    /// The parameter's name.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// `∂/∂θ E[f(x)]`.
    pub analytic_gradient: f64,
    /// The constant baseline `E[f]`.
    pub mean_baseline: f64,
    /// The optimal constant baseline `b* = E[f s²] / E[s²]` for this parameter.
    pub optimal_baseline: f64,
}

/// Everything measured on one problem.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProblemReport {
    /// Which problem.
    pub kind: ProblemKind,
    /// What is sampled and differentiated.
    pub description: String,
    /// `E[f(x)]`.
    pub mean_f: f64,
    /// The parameters.
    pub parameters: Vec<ParameterSummary>,
    /// One row per (parameter, estimator), grouped by parameter.
    pub rows: Vec<Row>,
}

impl ProblemReport {
    /// The row of this parameter and estimator, if there is one.
    pub fn row(&self, parameter: &str, estimator: Estimator) -> Option<&Row> {
        self.rows.iter().find(|r| r.parameter == parameter && r.estimator == estimator)
    }
}

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

/// Text made safe for a markdown table cell: a `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// An integer with thousands separators: `1,000,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with about four significant digits, in scientific notation when very large or small.
pub(crate) fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-3..5).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    // Trailing zeros after the point carry no information here.
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A standard error with two significant digits.
fn se(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return num(x);
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-3..5).contains(&magnitude) {
        return format!("{x:.1e}");
    }
    let decimals = (1 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A number with an explicit sign.
fn signed(x: f64) -> String {
    if x > 0.0 { format!("+{}", num(x)) } else { num(x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(2.0), "2");
        assert_eq!(num(30.1234), "30.12");
        assert_eq!(num(-0.17603), "-0.176");
        assert_eq!(num(123456.0), "1.235e5");
        assert_eq!(num(0.00012346), "1.235e-4");
        assert_eq!(se(0.0054321), "0.0054");
        assert_eq!(se(12.3), "12");
        assert_eq!(signed(0.5), "+0.5");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(cell("|bias| > 3"), "\\|bias\\| > 3");
    }

    #[test]
    fn estimator_labels_name_the_variant() {
        assert_eq!(
            Estimator::Reinforce { baseline: Baseline::Optimal }.to_string(),
            "reinforce, b = b*"
        );
        let st = Estimator::GumbelSoftmax { temperature: Some(0.5), straight_through: true };
        assert_eq!(st.to_string(), "gumbel-softmax ST τ=0.5");
    }
}
