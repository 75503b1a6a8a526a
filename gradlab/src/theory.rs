//! Closed forms: the exact gradient of every problem and the exact per-sample variance of each
//! estimator where one exists. Pure `f64` arithmetic, no tensors: the lab measures against these.
//!
//! # Notation
//! For a parameter `θ` with score `s = ∂/∂θ log p(x)` and a constant baseline `b`, the
//! score-function (REINFORCE) per-sample gradient is `(f(x) − b)·s`. Because `E[s] = 0` its mean
//! is the true gradient `g = ∂/∂θ E[f]` for every constant `b`, and its variance is
//!
//! ```text
//! Var_b = E[f² s²] − 2b·E[f s²] + b²·E[s²] − g²,
//! ```
//!
//! a parabola in `b` whose minimum is at `b* = E[f s²] / E[s²]`. A constant baseline lowers the
//! variance exactly when it lies strictly between 0 and `2b*`. So every problem only needs the
//! four moments `g`, `E[s²]`, `E[f s²]`, `E[f² s²]` per parameter ([`ParameterTheory`]).
//!
//! # Gaussian moments
//! With `x = μ + σε`, `ε ~ N(0, 1)`: the scores are `s_μ = ε/σ` and `s_σ = (ε² − 1)/σ`, and the
//! even moments of `ε` are `E ε² = 1, E ε⁴ = 3, E ε⁶ = 15, E ε⁸ = 105` (odd ones vanish).
//! Every expectation below is a polynomial in `ε` integrated term by term with these.
//! For the step function, the truncated moments `E[ε² 1{ε > t}] = Q + tφ(t)` and
//! `E[ε⁴ 1{ε > t}] = 3Q + (t³ + 3t)φ(t)` (with `Q = P(ε > t)`, by parts) do the same job.

use std::f64::consts::PI;

/// The exact moments that decide the score-function variance for one parameter, and the exact
/// pathwise variance where it is known.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParameterTheory {
    /// The parameter's name as printed (`mu`, `sigma`, `theta[0]`).
    pub name: String,
    /// Its value in the problem.
    pub value: f64,
    /// The exact gradient `∂/∂θ E[f(x)]`.
    pub gradient: f64,
    /// `E[s²]`, the Fisher information of the parameter.
    pub e_s2: f64,
    /// `E[f s²]`.
    pub e_f_s2: f64,
    /// `E[f² s²]`.
    pub e_f2_s2: f64,
    /// The exact per-sample variance of the pathwise estimator, if it has one.
    pub pathwise_variance: Option<f64>,
}

impl ParameterTheory {
    /// `Var[(f − b)·s]` for a constant baseline `b` (the module doc derives it).
    pub fn reinforce_variance(&self, baseline: f64) -> f64 {
        self.e_f2_s2 - 2.0 * baseline * self.e_f_s2 + baseline * baseline * self.e_s2
            - self.gradient * self.gradient
    }

    /// The variance-minimizing constant baseline `b* = E[f s²] / E[s²]`.
    pub fn optimal_baseline(&self) -> f64 {
        self.e_f_s2 / self.e_s2
    }
}

/// The standard normal density `φ(z)`.
pub(crate) fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * PI).sqrt()
}

/// The standard normal CDF `Φ(z)`, through `erfc` so that the far tails keep full relative
/// precision.
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// `x ~ N(μ, σ²)`, `f(x) = (x − c)²`: exact gradients and moments for `μ` and `σ`.
///
/// With `a = μ − c`: `E f = a² + σ²`, so `∂_μ = 2a` and `∂_σ = 2σ`.
///
/// Score function, expanding `f = (a + σε)²` and `f² = (a + σε)⁴`:
/// - `μ`: `E[s²] = 1/σ²`, `E[f s²] = (a² + 3σ²)/σ²`, `E[f² s²] = (a⁴ + 18a²σ² + 15σ⁴)/σ²`;
/// - `σ`: `E[s²] = 2/σ²`, `E[f s²] = (2a² + 10σ²)/σ²`, `E[f² s²] = (2a⁴ + 60a²σ² + 78σ⁴)/σ²`
///   (using `E(ε²−1)² = 2`, `E ε²(ε²−1)² = 10`, `E ε⁴(ε²−1)² = 78`).
///
/// Pathwise, `∂f/∂μ = 2(a + σε)` and `∂f/∂σ = 2(a + σε)ε`: variances `4σ²` and `4a² + 8σ²`
/// (`Var ε² = 2`, `E ε³ = 0`).
pub(crate) fn gaussian_quadratic(mu: f64, sigma: f64, c: f64) -> Vec<ParameterTheory> {
    let a = mu - c;
    let (a2, s2) = (a * a, sigma * sigma);
    vec![
        ParameterTheory {
            name: "mu".into(),
            value: mu,
            gradient: 2.0 * a,
            e_s2: 1.0 / s2,
            e_f_s2: (a2 + 3.0 * s2) / s2,
            e_f2_s2: (a2 * a2 + 18.0 * a2 * s2 + 15.0 * s2 * s2) / s2,
            pathwise_variance: Some(4.0 * s2),
        },
        ParameterTheory {
            name: "sigma".into(),
            value: sigma,
            gradient: 2.0 * sigma,
            e_s2: 2.0 / s2,
            e_f_s2: (2.0 * a2 + 10.0 * s2) / s2,
            e_f2_s2: (2.0 * a2 * a2 + 60.0 * a2 * s2 + 78.0 * s2 * s2) / s2,
            pathwise_variance: Some(4.0 * a2 + 8.0 * s2),
        },
    ]
}

/// `E f` for [`gaussian_quadratic`]: `(μ − c)² + σ²`.
pub(crate) fn gaussian_quadratic_mean(mu: f64, sigma: f64, c: f64) -> f64 {
    (mu - c).powi(2) + sigma * sigma
}

/// `x ~ N(μ, σ²)`, `f(x) = 1{x > 0}`: `E f = Φ(μ/σ)`, so `∂_μ = φ(μ/σ)/σ` and
/// `∂_σ = −(μ/σ²)·φ(μ/σ)`.
///
/// With `t = −μ/σ` (the threshold on `ε`) and `Q = Φ(μ/σ)`; `f² = f`, so `E[f² s²] = E[f s²]`:
/// - `μ`: `E[s²] = 1/σ²`, `E[f s²] = (Q + tφ(t))/σ²`;
/// - `σ`: `E[s²] = 2/σ²`, `E[f s²] = (2Q + (t³ + t)φ(t))/σ²`.
///
/// The pathwise estimator does not apply (`f' = 0` almost surely), so it has no entry here.
pub(crate) fn gaussian_step(mu: f64, sigma: f64) -> Vec<ParameterTheory> {
    let t = -mu / sigma;
    let q = normal_cdf(mu / sigma);
    let phi = normal_pdf(t);
    let s2 = sigma * sigma;
    let e_f_s2_mu = (q + t * phi) / s2;
    let e_f_s2_sigma = (2.0 * q + (t * t * t + t) * phi) / s2;
    vec![
        ParameterTheory {
            name: "mu".into(),
            value: mu,
            gradient: phi / sigma,
            e_s2: 1.0 / s2,
            e_f_s2: e_f_s2_mu,
            e_f2_s2: e_f_s2_mu,
            pathwise_variance: None,
        },
        ParameterTheory {
            name: "sigma".into(),
            value: sigma,
            gradient: t * phi / sigma,
            e_s2: 2.0 / s2,
            e_f_s2: e_f_s2_sigma,
            e_f2_s2: e_f_s2_sigma,
            pathwise_variance: None,
        },
    ]
}

/// `E f` for [`gaussian_step`]: `Φ(μ/σ)`.
pub(crate) fn gaussian_step_mean(mu: f64, sigma: f64) -> f64 {
    normal_cdf(mu / sigma)
}

/// Probabilities `softmax(logits)`, computed stably.
pub(crate) fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// `x ~ Categorical(softmax(θ))`, `f(x) = values[x]`: the score of logit `j` at outcome `k` is
/// `δ_kj − p_j`, so every moment is a finite sum over the `K` outcomes; the gradient is
/// `p_j (f_j − E f)` and `E[s_j²] = p_j (1 − p_j)`.
pub(crate) fn categorical(logits: &[f64], values: &[f64]) -> Vec<ParameterTheory> {
    let p = softmax(logits);
    let expect = |h: &dyn Fn(usize) -> f64| -> f64 { (0..p.len()).map(|k| p[k] * h(k)).sum() };
    (0..p.len())
        .map(|j| {
            let score = |k: usize| if k == j { 1.0 - p[j] } else { -p[j] };
            ParameterTheory {
                name: format!("theta[{j}]"),
                value: logits[j],
                gradient: expect(&|k| values[k] * score(k)),
                e_s2: expect(&|k| score(k).powi(2)),
                e_f_s2: expect(&|k| values[k] * score(k).powi(2)),
                e_f2_s2: expect(&|k| values[k].powi(2) * score(k).powi(2)),
                pathwise_variance: None,
            }
        })
        .collect()
}

/// `E f` for [`categorical`]: `Σ_k p_k f_k`.
pub(crate) fn categorical_mean(logits: &[f64], values: &[f64]) -> f64 {
    softmax(logits).iter().zip(values).map(|(p, f)| p * f).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `E[h(ε)]` for `ε ~ N(0, 1)` by the trapezoid rule on [−12, 12]: independent of every
    /// moment identity used above, so it checks the algebra rather than repeating it.
    fn gauss_expect(h: impl Fn(f64) -> f64) -> f64 {
        let n = 400_000;
        let (lo, hi) = (-12.0, 12.0);
        let dx = (hi - lo) / n as f64;
        (0..=n)
            .map(|i| {
                let e = lo + i as f64 * dx;
                let w = if i == 0 || i == n { 0.5 } else { 1.0 };
                w * h(e) * normal_pdf(e)
            })
            .sum::<f64>()
            * dx
    }

    fn assert_close(what: &str, closed: f64, numeric: f64) {
        let tol = 1e-6 * (1.0 + numeric.abs());
        assert!(
            (closed - numeric).abs() < tol,
            "{what}: closed form {closed} differs from numerical integration {numeric}"
        );
    }

    /// Checks every moment of a Gaussian problem against quadrature of its definition.
    fn check_gaussian(theory: &[ParameterTheory], mu: f64, sigma: f64, f: impl Fn(f64) -> f64) {
        let x = |e: f64| mu + sigma * e;
        let scores: [&dyn Fn(f64) -> f64; 2] = [&|e| e / sigma, &|e| (e * e - 1.0) / sigma];
        for (th, s) in theory.iter().zip(scores) {
            let n = &th.name;
            assert_close(&format!("{n} gradient"), th.gradient, gauss_expect(|e| f(x(e)) * s(e)));
            assert_close(&format!("{n} E[s²]"), th.e_s2, gauss_expect(|e| s(e).powi(2)));
            assert_close(
                &format!("{n} E[f s²]"),
                th.e_f_s2,
                gauss_expect(|e| f(x(e)) * s(e).powi(2)),
            );
            assert_close(
                &format!("{n} E[f² s²]"),
                th.e_f2_s2,
                gauss_expect(|e| f(x(e)).powi(2) * s(e).powi(2)),
            );
        }
    }

    #[test]
    fn quadratic_moments_match_quadrature() {
        let (mu, sigma, c) = (0.3, 0.7, 1.2);
        check_gaussian(&gaussian_quadratic(mu, sigma, c), mu, sigma, |x| (x - c).powi(2));
    }

    #[test]
    fn quadratic_pathwise_variances_match_quadrature() {
        let (mu, sigma, c) = (0.3, 0.7, 1.2);
        let th = gaussian_quadratic(mu, sigma, c);
        let d_mu = |e: f64| 2.0 * (mu + sigma * e - c);
        let d_sigma = |e: f64| 2.0 * (mu + sigma * e - c) * e;
        let var = |g: &dyn Fn(f64) -> f64| gauss_expect(|e| g(e).powi(2)) - gauss_expect(g).powi(2);
        assert_close(
            "pathwise mu variance",
            th[0].pathwise_variance.unwrap_or(f64::NAN),
            var(&d_mu),
        );
        assert_close(
            "pathwise sigma variance",
            th[1].pathwise_variance.unwrap_or(f64::NAN),
            var(&d_sigma),
        );
    }

    #[test]
    fn step_moments_match_quadrature() {
        let (mu, sigma) = (0.4, 1.3);
        // The step is discontinuous; the trapezoid rule still converges (error ~ dx).
        let th = gaussian_step(mu, sigma);
        let f = |x: f64| if x > 0.0 { 1.0 } else { 0.0 };
        let x = |e: f64| mu + sigma * e;
        for (th, s) in th
            .iter()
            .zip([&(|e: f64| e / sigma) as &dyn Fn(f64) -> f64, &|e: f64| (e * e - 1.0) / sigma])
        {
            let numeric = gauss_expect(|e| f(x(e)) * s(e));
            assert!(
                (th.gradient - numeric).abs() < 1e-4,
                "{} gradient: closed form {} vs quadrature {numeric}",
                th.name,
                th.gradient
            );
            let numeric = gauss_expect(|e| f(x(e)) * s(e).powi(2));
            assert!(
                (th.e_f_s2 - numeric).abs() < 1e-4,
                "{} E[f s²]: closed form {} vs quadrature {numeric}",
                th.name,
                th.e_f_s2
            );
        }
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        for (z, expected) in
            [(0.0, 0.5), (1.0, 0.841_344_746_068_543), (-2.0, 0.022_750_131_948_179)]
        {
            assert!(
                (normal_cdf(z) - expected).abs() < 1e-12,
                "Φ({z}) = {} != {expected}",
                normal_cdf(z)
            );
        }
    }

    #[test]
    fn categorical_gradient_matches_finite_differences() {
        let logits = [0.3, -0.2, 1.1, 0.0];
        let values = [1.0, -2.0, 0.5, 3.0];
        let th = categorical(&logits, &values);
        for (j, th) in th.iter().enumerate() {
            let h = 1e-6;
            let mut up = logits;
            up[j] += h;
            let mut down = logits;
            down[j] -= h;
            let fd =
                (categorical_mean(&up, &values) - categorical_mean(&down, &values)) / (2.0 * h);
            assert!(
                (th.gradient - fd).abs() < 1e-8,
                "theta[{j}]: closed-form gradient {} vs finite difference {fd}",
                th.gradient
            );
        }
    }

    #[test]
    fn optimal_baseline_minimizes_the_variance_parabola() {
        for th in gaussian_quadratic(1.0, 1.0, 0.0) {
            let b = th.optimal_baseline();
            let at = th.reinforce_variance(b);
            for delta in [-0.1, 0.1] {
                assert!(
                    th.reinforce_variance(b + delta) > at,
                    "{}: moving the baseline from b* = {b} by {delta} did not raise the variance",
                    th.name
                );
            }
        }
    }

    #[test]
    fn square_problem_closed_forms_are_the_textbook_numbers() {
        // x ~ N(1, 1), f = x²: pathwise variances 4σ² = 4 and 4a² + 8σ² = 12; REINFORCE
        // variances (1 + 18 + 15) − 4 = 30 and (2 + 60 + 78) − 4 = 136.
        let th = gaussian_quadratic(1.0, 1.0, 0.0);
        assert_eq!(th[0].pathwise_variance, Some(4.0));
        assert_eq!(th[1].pathwise_variance, Some(12.0));
        assert_eq!(th[0].reinforce_variance(0.0), 30.0);
        assert_eq!(th[1].reinforce_variance(0.0), 136.0);
    }
}
