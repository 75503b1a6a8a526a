//! Both gradient estimators of `E[f(x)]` against the analytic gradient on a known case:
//! `x ~ N(μ, σ²)`, `f(x) = x²`, so `E[f] = μ² + σ²`, `∂/∂μ = 2μ` and `∂/∂σ = 2σ`.
//!
//! The reparameterized estimator differentiates `f(rsample())`; the score-function estimator
//! differentiates the surrogate `f(x) · log p(x)` with `x` from `sample()`. Each must land within
//! four standard errors of the truth, the standard error estimated from the per-sample gradients.

use std::sync::Mutex;

use rlpg_agents::distributions::{ActionBounds, DiagGaussian, Distribution, SquashedGaussian};
use rlpg_envs::BoxSpace;
use tch::{Device, Kind, Tensor};

static RNG: Mutex<()> = Mutex::new(());

const MU: f64 = 1.5;
const SIGMA: f64 = 0.8;
const N: i64 = 200_000;

/// Leaf parameters μ and log σ, and the distribution of `N` draws built from them.
fn parameters() -> (Tensor, Tensor, DiagGaussian) {
    let mu = Tensor::from_slice(&[MU]).set_requires_grad(true);
    let log_sigma = Tensor::from_slice(&[SIGMA.ln()]).set_requires_grad(true);
    let mean = mu.view([1, 1]).expand([N, 1], false);
    let dist = DiagGaussian::new(mean, &log_sigma);
    (mu, log_sigma, dist)
}

fn per_sample(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.detach().flatten(0, -1)).unwrap()
}

/// Standard error of the mean of `xs`.
fn standard_error(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
}

/// Checks the estimated `∂E[f]/∂μ` and `∂E[f]/∂σ` (from the gradient w.r.t. log σ, divided by σ)
/// against `2μ` and `2σ`.
fn check(estimator: &str, mu: &Tensor, log_sigma: &Tensor, se_mu: f64, se_log_sigma: f64) {
    let d_mu = mu.grad().double_value(&[0]);
    let d_sigma = log_sigma.grad().double_value(&[0]) / SIGMA;
    let se_sigma = se_log_sigma / SIGMA;
    assert!(
        (d_mu - 2.0 * MU).abs() <= 4.0 * se_mu,
        "{estimator}: ∂/∂μ = {d_mu}, analytic {} (4 SE = {})",
        2.0 * MU,
        4.0 * se_mu
    );
    assert!(
        (d_sigma - 2.0 * SIGMA).abs() <= 4.0 * se_sigma,
        "{estimator}: ∂/∂σ = {d_sigma}, analytic {} (4 SE = {})",
        2.0 * SIGMA,
        4.0 * se_sigma
    );
}

#[test]
fn reparameterized_gradient_of_expected_square_matches_the_analytic_gradient() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(21);
    let (mu, log_sigma, dist) = parameters();
    let x = dist.rsample().expect("a Gaussian has a reparameterized sample");
    assert!(x.requires_grad(), "rsample must stay connected to the parameters");
    x.square().mean(Kind::Double).backward();
    // Per sample: ∂x²/∂μ = 2x and ∂x²/∂log σ = 2x · (x − μ).
    let xs = per_sample(&x);
    let d_mu: Vec<f64> = xs.iter().map(|x| 2.0 * x).collect();
    let d_log_sigma: Vec<f64> = xs.iter().map(|x| 2.0 * x * (x - MU)).collect();
    check("rsample", &mu, &log_sigma, standard_error(&d_mu), standard_error(&d_log_sigma));
}

#[test]
fn score_function_gradient_of_expected_square_matches_the_analytic_gradient() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(22);
    let (mu, log_sigma, dist) = parameters();
    let x = dist.sample();
    assert!(!x.requires_grad(), "sample() must be detached from the parameters");
    let f = x.square().squeeze_dim(-1);
    (&f * dist.log_prob(&x)).mean(Kind::Double).backward();
    // Per sample: f · ∂log p/∂μ = f (x − μ)/σ², f · ∂log p/∂log σ = f ((x − μ)²/σ² − 1).
    let xs = per_sample(&x);
    let d_mu: Vec<f64> = xs.iter().map(|x| x * x * (x - MU) / SIGMA.powi(2)).collect();
    let d_log_sigma: Vec<f64> =
        xs.iter().map(|x| x * x * ((x - MU).powi(2) / SIGMA.powi(2) - 1.0)).collect();
    check("score function", &mu, &log_sigma, standard_error(&d_mu), standard_error(&d_log_sigma));
}

#[test]
fn squashed_rsample_passes_gradients_to_mean_and_log_std() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(23);
    let mean = Tensor::zeros([16, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let log_std = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let bounds = ActionBounds::new(&BoxSpace::uniform(2, -1.0, 1.0)).unwrap();
    let dist = SquashedGaussian::new(mean.shallow_clone(), &log_std, &bounds);
    let (a, log_prob) = dist.rsample_with_log_prob().unwrap();
    (a.sum(None) + log_prob.sum(None)).backward();
    for (name, p) in [("mean", &mean), ("log_std", &log_std)] {
        let g = p.grad();
        assert!(g.defined(), "no gradient reached {name}");
        let norm = g.norm().double_value(&[]);
        assert!(norm > 0.0 && norm.is_finite(), "gradient of {name} has norm {norm}");
    }
}
