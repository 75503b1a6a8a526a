//! Both gradient estimators of `E[f(x)]` against the analytic gradient on a known case:
//! `x ~ N(μ, σ²)`, `f(x) = x²`, so `E[f] = μ² + σ²`, `∂/∂μ = 2μ` and `∂/∂σ = 2σ`.
//!
//! The reparameterized estimator differentiates `f(rsample)`; the score-function estimator
//! differentiates the surrogate `f(x) · log p(x)` with `x` a detached sample. Each must land
//! within four standard errors of the truth, the standard error estimated from the per-sample
//! gradients.
//!
//! These differentiate the distributions' libtorch face with autograd, through the same generic
//! text the kernel runs: the kernel's slope of each primitive is checked against autograd in
//! `backend::ops`, and its whole update gradient, tensor by tensor, in `tests/backends.rs` (it
//! differentiates with respect to a network's parameters only, so has no entry point for a
//! free-standing `μ` here).

use std::sync::Mutex;

use rlpg_agents::backend::{Ops, Torch};
use rlpg_agents::distributions::{DiagGaussian, SquashedGaussian};
use tch::{Device, Kind, Tensor};

static RNG: Mutex<()> = Mutex::new(());

const MU: f64 = 1.5;
const SIGMA: f64 = 0.8;
const N: usize = 200_000;

/// Leaf parameters μ and log σ (`[1, 1]` each), and the distribution of `N` draws built from
/// them.
fn parameters(b: &mut Torch) -> (Tensor, Tensor, DiagGaussian<Torch>) {
    let mu = Tensor::from_slice(&[MU as f32]).view([1, 1]).set_requires_grad(true);
    let log_sigma = Tensor::from_slice(&[SIGMA.ln() as f32]).view([1, 1]).set_requires_grad(true);
    let mean = b.tensor(&mu.expand([N as i64, 1], false)).unwrap();
    let log_std = b.tensor(&log_sigma).unwrap();
    (mu, log_sigma, DiagGaussian::new(mean, log_std))
}

fn per_sample(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.detach().to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// Standard error of the mean of `xs`.
fn standard_error(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
}

/// Checks the estimated `∂E[f]/∂μ` and `∂E[f]/∂σ` (from the gradient w.r.t. log σ, divided by σ)
/// against `2μ` and `2σ`.
fn check(estimator: &str, grads: &[Tensor], se_mu: f64, se_log_sigma: f64) {
    let d_mu = grads[0].double_value(&[0, 0]);
    let d_sigma = grads[1].double_value(&[0, 0]) / SIGMA;
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
    let mut b = Torch::new(Device::Cpu);
    let (mu, log_sigma, dist) = parameters(&mut b);
    let eps = b.normal(N, 1).unwrap();
    let x = dist.rsample_from_noise(&mut b, &eps);
    assert!(x.requires_grad(), "rsample must stay connected to the parameters");
    let loss = x.square().mean(Kind::Float);
    let grads = Tensor::run_backward(&[&loss], &[&mu, &log_sigma], false, false);
    // Per sample: ∂x²/∂μ = 2x and ∂x²/∂log σ = 2x · (x − μ).
    let xs = per_sample(&x);
    let d_mu: Vec<f64> = xs.iter().map(|x| 2.0 * x).collect();
    let d_log_sigma: Vec<f64> = xs.iter().map(|x| 2.0 * x * (x - MU)).collect();
    check("rsample", &grads, standard_error(&d_mu), standard_error(&d_log_sigma));
}

#[test]
fn score_function_gradient_of_expected_square_matches_the_analytic_gradient() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(22);
    let mut b = Torch::new(Device::Cpu);
    let (mu, log_sigma, dist) = parameters(&mut b);
    let eps = b.normal(N, 1).unwrap();
    let drawn = dist.rsample_from_noise(&mut b, &eps);
    let x = b.detach(&drawn);
    assert!(!x.requires_grad(), "the sample must be detached from the parameters");
    let f = x.square();
    let log_prob = dist.log_prob(&mut b, &x);
    assert_eq!(log_prob.size(), [N as i64, 1], "log_prob is one value per row");
    let surrogate = (&f * &log_prob).mean(Kind::Float);
    let grads = Tensor::run_backward(&[&surrogate], &[&mu, &log_sigma], false, false);
    // Per sample: f · ∂log p/∂μ = f (x − μ)/σ², f · ∂log p/∂log σ = f ((x − μ)²/σ² − 1).
    let xs = per_sample(&x);
    let d_mu: Vec<f64> = xs.iter().map(|x| x * x * (x - MU) / SIGMA.powi(2)).collect();
    let d_log_sigma: Vec<f64> =
        xs.iter().map(|x| x * x * ((x - MU).powi(2) / SIGMA.powi(2) - 1.0)).collect();
    check("score function", &grads, standard_error(&d_mu), standard_error(&d_log_sigma));
}

#[test]
fn squashed_rsample_passes_gradients_to_mean_and_log_std() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(23);
    let mut b = Torch::new(Device::Cpu);
    let mean = Tensor::zeros([16, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let log_std = Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let dist = SquashedGaussian::new(b.tensor(&mean).unwrap(), b.tensor(&log_std).unwrap());
    let eps = b.normal(16, 2).unwrap();
    let (a, log_prob) = dist.rsample_with_log_prob(&mut b, &eps);
    let total = a.sum(Kind::Float) + log_prob.sum(Kind::Float);
    let grads = Tensor::run_backward(&[&total], &[&mean, &log_std], false, false);
    for (name, g) in ["mean", "log_std"].iter().zip(&grads) {
        assert!(g.defined(), "no gradient reached {name}");
        let norm = g.norm().double_value(&[]);
        assert!(norm > 0.0 && norm.is_finite(), "gradient of {name} has norm {norm}");
    }
}
