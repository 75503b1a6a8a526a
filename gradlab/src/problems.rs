//! The problems of the lab and, for each, per-sample gradients of every estimator computed in one
//! batch on tch tensors with the agents' own distributions.
//!
//! Per-sample gradients come from autograd with one copy of the parameters per sample: the
//! parameters are broadcast into a leaf tensor with one row per sample, so the gradient of the
//! *sum* of the per-sample objectives with respect to that leaf is, row by row, the gradient of
//! each sample's own objective. One backward pass thus gives every per-sample gradient, which is
//! what the variance measurements need (a shared scalar parameter would only give their sum).

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use rlpg_agents::backend::{Ops, Torch};
use rlpg_agents::distributions::{Categorical, DiagGaussian, GumbelSoftmax};

use super::theory::{self, ParameterTheory};

/// The problems of the lab, each with a known analytic gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// x ~ N(μ=1, σ=1), f(x) = x²: gradients w.r.t. μ and σ; closed-form variances for both
    /// estimators.
    Square,
    /// x ~ N(μ=0, σ=0.5), f(x) = (x − 1)²: the mean sits away from the minimum, where the
    /// score-function variance grows like (μ − c)⁴/σ².
    ShiftedSquare,
    /// x ~ N(μ=0.5, σ=1), f(x) = 1\[x > 0\]: not differentiable, so only the score function applies.
    Step,
    /// x ~ Categorical(softmax(θ)) over 4 outcomes, f(x) = a table of values: the score function
    /// against the Gumbel-softmax relaxation at several temperatures, soft and straight-through
    /// (the relaxation evaluates f̃(y) = Σ f(k)·y_k², exact on one-hot y).
    Categorical,
}

impl ProblemKind {
    /// Every problem, in the order the report lists them.
    pub const ALL: [ProblemKind; 4] = [
        ProblemKind::Square,
        ProblemKind::ShiftedSquare,
        ProblemKind::Step,
        ProblemKind::Categorical,
    ];

    /// The name used on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::Square => "square",
            ProblemKind::ShiftedSquare => "shifted-square",
            ProblemKind::Step => "step",
            ProblemKind::Categorical => "categorical",
        }
    }

    /// A fixed number per problem, so that each problem draws its own random stream whatever
    /// other problems are selected.
    pub(crate) fn stream(self) -> u64 {
        match self {
            ProblemKind::Square => 1,
            ProblemKind::ShiftedSquare => 2,
            ProblemKind::Step => 3,
            ProblemKind::Categorical => 4,
        }
    }

    /// The problem's distribution, function and closed forms.
    pub(crate) fn problem(self) -> Problem {
        let model = match self {
            ProblemKind::Square => {
                Model::Gaussian { mu: 1.0, sigma: 1.0, f: GaussianF::Quadratic { c: 0.0 } }
            }
            ProblemKind::ShiftedSquare => {
                Model::Gaussian { mu: 0.0, sigma: 0.5, f: GaussianF::Quadratic { c: 1.0 } }
            }
            ProblemKind::Step => Model::Gaussian { mu: 0.5, sigma: 1.0, f: GaussianF::Step },
            ProblemKind::Categorical => Model::Categorical {
                logits: CATEGORICAL_LOGITS.to_vec(),
                values: CATEGORICAL_VALUES.to_vec(),
            },
        };
        Problem { model }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Logits of the categorical problem.
const CATEGORICAL_LOGITS: [f64; 4] = [0.5, 0.0, -0.5, 1.0];
/// `f(k)` for each outcome `k` of the categorical problem: one of them negative, so `f` is not a
/// probability-like quantity.
const CATEGORICAL_VALUES: [f64; 4] = [1.0, 3.0, -1.0, 2.0];

/// The function of a Gaussian problem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum GaussianF {
    /// `(x − c)²`.
    Quadratic {
        /// The centre.
        c: f64,
    },
    /// `1[x > 0]`.
    Step,
}

/// A distribution and a function of its samples.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Model {
    /// `x ~ N(mu, sigma²)` through [`DiagGaussian`] with `log_std = ln sigma`.
    Gaussian { mu: f64, sigma: f64, f: GaussianF },
    /// `x ~ Categorical(softmax(logits))`, `f(x) = values[x]`.
    Categorical { logits: Vec<f64>, values: Vec<f64> },
}

/// Whether an estimator can be used on a problem.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Support {
    /// It applies.
    Applies,
    /// It does not apply, but autograd still returns a number (which is wrong); the lab runs it
    /// to show that number.
    AutogradOnly(String),
    /// It cannot even be run.
    Impossible(String),
}

/// A problem ready to sample.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Problem {
    pub model: Model,
}

/// Per-sample ingredients of the score-function estimator.
pub(crate) struct ScoreBatch {
    /// `f(x)` for each sample, `[m, 1]`.
    pub f: Tensor,
    /// `∂/∂θ log p(x)` for each sample and parameter, `[m, P]`.
    pub scores: Tensor,
}

/// Samples are drawn and differentiated in single precision, which halves the memory traffic of
/// these memory-bound batches; every sum over samples is taken in double precision (see
/// `stats.rs`), where rounding would otherwise matter.
const OPTIONS: (Kind, Device) = (Kind::Float, Device::Cpu);

impl Problem {
    /// One line saying what is sampled and what is differentiated.
    pub fn description(&self) -> String {
        match &self.model {
            Model::Gaussian { mu, sigma, f } => {
                let f = match f {
                    GaussianF::Quadratic { c } if *c == 0.0 => "x²".to_string(),
                    GaussianF::Quadratic { c } => format!("(x − {c})²"),
                    GaussianF::Step => "1[x > 0]".to_string(),
                };
                format!(
                    "x ~ N(μ, σ²) with μ = {mu}, σ = {sigma}; f(x) = {f}; gradient of E[f(x)] \
                     w.r.t. μ and σ"
                )
            }
            Model::Categorical { logits, values } => format!(
                "x ~ Categorical(softmax(θ)), θ = {logits:?}, f(x) = {values:?}[x]; gradient of \
                 E[f(x)] w.r.t. every logit θ[k]. The relaxation evaluates f̃(y) = Σ_k f(k)·y_k² \
                 on relaxed samples y (exact on one-hot y)"
            ),
        }
    }

    /// Exact gradient and moments per parameter.
    pub fn theory(&self) -> Vec<ParameterTheory> {
        match &self.model {
            Model::Gaussian { mu, sigma, f: GaussianF::Quadratic { c } } => {
                theory::gaussian_quadratic(*mu, *sigma, *c)
            }
            Model::Gaussian { mu, sigma, f: GaussianF::Step } => theory::gaussian_step(*mu, *sigma),
            Model::Categorical { logits, values } => theory::categorical(logits, values),
        }
    }

    /// `E[f(x)]`, the constant baseline a learned value function would approach.
    pub fn mean_f(&self) -> f64 {
        match &self.model {
            Model::Gaussian { mu, sigma, f: GaussianF::Quadratic { c } } => {
                theory::gaussian_quadratic_mean(*mu, *sigma, *c)
            }
            Model::Gaussian { mu, sigma, f: GaussianF::Step } => {
                theory::gaussian_step_mean(*mu, *sigma)
            }
            Model::Categorical { logits, values } => theory::categorical_mean(logits, values),
        }
    }

    /// Whether the pathwise (reparameterization) estimator applies.
    pub fn pathwise_support(&self) -> Support {
        match &self.model {
            Model::Gaussian { f: GaussianF::Quadratic { .. }, .. } => Support::Applies,
            Model::Gaussian { f: GaussianF::Step, .. } => Support::AutogradOnly(
                "f = 1[x > 0] is not differentiable: its derivative is 0 almost surely, so the \
                 pathwise gradient is 0 whatever the true gradient"
                    .into(),
            ),
            Model::Categorical { logits, .. } => {
                let _ = logits;
                // Ask the agents' Categorical itself rather than restating its limits here.
                match Categorical::<Torch>::reparameterization() {
                    Ok(()) => Support::Applies,
                    Err(e) => Support::Impossible(e.to_string()),
                }
            }
        }
    }

    /// Whether the Gumbel-softmax relaxation applies (it is biased, but it runs).
    pub fn relaxed_support(&self) -> Support {
        match &self.model {
            Model::Gaussian { .. } => Support::Impossible(
                "x is continuous: a relaxation of a discrete x has nothing to relax (the pathwise \
                 row is the reparameterized estimator here)"
                    .into(),
            ),
            Model::Categorical { .. } => Support::Applies,
        }
    }

    /// `m` independent samples with `f(x)` and the score of each parameter, through the agents'
    /// `log_prob`.
    pub fn score_batch(&self, m: i64) -> ScoreBatch {
        match &self.model {
            Model::Gaussian { mu, sigma, f } => {
                let mut b = torch();
                let (mu_leaf, sigma_leaf, dist) = gaussian_leaves(*mu, *sigma, m);
                let eps = b.normal(m as usize, 1).expect("draws");
                let x = dist.rsample_from_noise(&mut b, &eps).detach();
                let log_prob = dist.log_prob(&mut b, &x);
                let scores = grads_per_sample(&log_prob, &[&mu_leaf, &sigma_leaf]);
                let fx = tch::no_grad(|| apply_gaussian_f(*f, &x));
                ScoreBatch { f: fx, scores }
            }
            Model::Categorical { logits, values } => {
                let mut b = torch();
                let logits_leaf = categorical_leaf(logits, m);
                let dist = Categorical::from_logits(&mut b, &logits_leaf);
                let x = dist.sample(&mut b).expect("a categorical sample");
                let log_prob = dist.log_prob(&mut b, &x);
                let scores = grads_per_sample(&log_prob, &[&logits_leaf]);
                let index: Vec<i64> = x.iter().map(|&a| a as i64).collect();
                let fx =
                    values_tensor(values).index_select(0, &Tensor::from_slice(&index)).unsqueeze(1);
                ScoreBatch { f: fx, scores }
            }
        }
    }

    /// `m` per-sample pathwise gradients `∂f(x(θ, ε))/∂θ`, `[m, P]`, or `None` when the
    /// distribution has no reparameterized sample.
    pub fn pathwise_batch(&self, m: i64) -> Option<Tensor> {
        match &self.model {
            Model::Gaussian { mu, sigma, f } => {
                let mut b = torch();
                let (mu_leaf, sigma_leaf, dist) = gaussian_leaves(*mu, *sigma, m);
                let eps = b.normal(m as usize, 1).ok()?;
                let x = dist.rsample_from_noise(&mut b, &eps);
                Some(grads_per_sample(&apply_gaussian_f(*f, &x), &[&mu_leaf, &sigma_leaf]))
            }
            Model::Categorical { .. } => None,
        }
    }

    /// `m` per-sample Gumbel-softmax gradients of `f̃(y)`, `[m, K]`, or `None` when `x` is not
    /// categorical; `f̃` is [`relaxed_f`].
    pub fn relaxed_batch(
        &self,
        m: i64,
        temperature: f64,
        straight_through: bool,
    ) -> Option<Tensor> {
        match &self.model {
            Model::Gaussian { .. } => None,
            Model::Categorical { logits, values } => {
                let mut b = torch();
                let logits_leaf = categorical_leaf(logits, m);
                let dist =
                    GumbelSoftmax::from_logits(&mut b, &logits_leaf, temperature, straight_through);
                let u = b.uniform(m as usize, logits.len()).ok()?;
                let y = dist.rsample(&mut b, &u);
                Some(grads_per_sample(&relaxed_f(&y, &values_tensor(values)), &[&logits_leaf]))
            }
        }
    }
}

/// `f` extended from the one-hot vertices to the simplex, as a critic `Q(a)` of a relaxed action
/// would be: `f̃(y) = Σ_k f(k)·y_k²` for `y` `[m, K]` and the table `values` `[K]`, exact on
/// every one-hot `y` and nonlinear between them.
///
/// Why not the linear extension `Σ_k f(k)·y_k`: its gradient in `y` is the constant vector `f`,
/// so the straight-through estimator (which only changes the point where that gradient is taken)
/// would return exactly the soft estimator's gradient and the comparison would be empty. A
/// learned critic is never linear in the action; the quadratic is the simplest one that is not.
pub fn relaxed_f(y: &Tensor, values: &Tensor) -> Tensor {
    y.square().matmul(values)
}

/// The table of `f` values as a `[K]` tensor of the batches' kind.
fn values_tensor(values: &[f64]) -> Tensor {
    Tensor::from_slice(values).to_kind(OPTIONS.0)
}

/// The agents' distributions run here through their libtorch backend, whose autograd gives
/// the per-sample gradients.
fn torch() -> Torch {
    Torch::new(OPTIONS.1)
}

/// One `(μ, σ)` leaf per sample, `[m, 1]` each, and the agents' Gaussian over them.
fn gaussian_leaves(mu: f64, sigma: f64, m: i64) -> (Tensor, Tensor, DiagGaussian<Torch>) {
    let mu_leaf = Tensor::full([m, 1], mu, OPTIONS).set_requires_grad(true);
    let sigma_leaf = Tensor::full([m, 1], sigma, OPTIONS).set_requires_grad(true);
    // DiagGaussian is parameterized by log σ; differentiating through the log gives ∂/∂σ.
    let dist = DiagGaussian::new(mu_leaf.shallow_clone(), sigma_leaf.log());
    (mu_leaf, sigma_leaf, dist)
}

/// One row of logits per sample, `[m, K]`.
fn categorical_leaf(logits: &[f64], m: i64) -> Tensor {
    values_tensor(logits).unsqueeze(0).repeat([m, 1]).set_requires_grad(true)
}

/// `f(x)` elementwise. The step is written as `relu(sign(x))` (exactly `1[x > 0]`, with
/// `sign(0) = 0`) so that autograd runs through it and returns what it returns for any step: 0.
fn apply_gaussian_f(f: GaussianF, x: &Tensor) -> Tensor {
    match f {
        GaussianF::Quadratic { c } => (x - c).square(),
        GaussianF::Step => x.sign().relu(),
    }
}

/// The gradient of `Σ_i per_sample[i]` with respect to per-sample leaves (`[m, 1]` or `[m, K]`
/// each), concatenated into `[m, P]`. A leaf the output does not depend on gets zeros, which is
/// what its gradient is.
fn grads_per_sample(per_sample: &Tensor, leaves: &[&Tensor]) -> Tensor {
    let total = per_sample.sum(per_sample.kind());
    let grads = Tensor::run_backward(&[total], leaves, false, false);
    let grads: Vec<Tensor> = grads
        .into_iter()
        .zip(leaves)
        .map(|(g, leaf)| if g.defined() { g } else { leaf.zeros_like() })
        .collect();
    Tensor::cat(&grads, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relaxed_f_is_exact_on_one_hot_vectors() {
        let v = values_tensor(&CATEGORICAL_VALUES);
        let eye = Tensor::eye(CATEGORICAL_VALUES.len() as i64, OPTIONS);
        let at_vertices = Vec::<f64>::try_from(&relaxed_f(&eye, &v).to_kind(Kind::Double))
            .expect("a small tensor converts");
        assert_eq!(at_vertices, CATEGORICAL_VALUES.to_vec(), "f̃(e_k) must be f(k)");
    }

    #[test]
    fn per_sample_leaves_give_per_sample_gradients() {
        // d/dμ of (x − c)² for x = μ + σε is 2(x − c): check sample by sample.
        tch::manual_seed(3);
        let (mu, sigma, dist) = gaussian_leaves(0.5, 2.0, 64);
        let mut b = torch();
        let eps = b.normal(64, 1).expect("draws");
        let x = dist.rsample_from_noise(&mut b, &eps);
        let grads = grads_per_sample(
            &apply_gaussian_f(GaussianF::Quadratic { c: 1.0 }, &x),
            &[&mu, &sigma],
        );
        assert_eq!(grads.size(), vec![64, 2]);
        let expected = (x.detach() - 1.0) * 2.0;
        let diff = (grads.narrow(1, 0, 1) - expected).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "per-sample ∂/∂μ differs from 2(x − c) by {diff}");
    }
}
