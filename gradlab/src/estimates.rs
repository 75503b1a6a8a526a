//! What the lab measures on one problem: the estimators, one [`Row`] per (parameter, estimator)
//! and a problem's section of the report. Plain data: the claims (`claims.rs`), the rendering
//! (`report.rs`) and the charts (`plot.rs`) read it.

use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use super::*;

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
