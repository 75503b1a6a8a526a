//! The distributions against closed forms: log-densities and entropies computed by hand, sample
//! moments within a few standard errors, and the squashed Gaussian's change-of-variables
//! correction against a finite-difference Jacobian.

use std::sync::Mutex;

use rlpg_agents::distributions::{
    ActionBounds, Categorical, DiagGaussian, Distribution, DistributionError, SquashedGaussian,
};
use rlpg_envs::BoxSpace;
use tch::{Device, Kind, Tensor};

/// tch's generator is global and tests run in parallel threads: sampling tests hold this lock
/// from `manual_seed` to their last draw so their samples do not depend on scheduling.
static RNG: Mutex<()> = Mutex::new(());

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, expected {want} (tolerance {tol})");
}

/// Mean and standard error of the mean of `xs`.
fn mean_and_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn categorical_log_prob_and_entropy_match_hand_computed_values() {
    let dist = Categorical::from_logits(&Tensor::from_slice(&[1.0f64, 2.0, 3.0]).view([1, 3]));
    // log p_i = l_i - ln(e + e² + e³), computed separately.
    let expected = [-2.407_605_964_444_38, -1.407_605_964_444_38, -0.407_605_964_444_38];
    for (a, want) in expected.iter().enumerate() {
        let got = values(&dist.log_prob(&Tensor::from_slice(&[a as i64])))[0];
        assert_close(&format!("log p({a})"), got, *want, 1e-12);
    }
    let entropy = values(&dist.entropy().expect("categorical entropy has a closed form"))[0];
    assert_close("entropy", entropy, 0.832_395_581_839_938_9, 1e-12);
    assert_eq!(values(&dist.mode()), [2.0], "mode must be the most likely action");
}

#[test]
fn categorical_log_prob_is_per_row_for_a_batch() {
    let logits = Tensor::from_slice(&[0.0f64, 0.0, 5.0, -5.0]).view([2, 2]);
    let dist = Categorical::from_logits(&logits);
    let lp = values(&dist.log_prob(&Tensor::from_slice(&[1i64, 0])));
    assert_close("row 0: uniform", lp[0], (0.5f64).ln(), 1e-12);
    assert_close("row 1: p(0) = sigmoid(10)", lp[1], -(1.0 + (-10.0f64).exp()).ln(), 1e-12);
    assert_eq!(dist.entropy().unwrap().size(), vec![2], "entropy is one value per row");
}

#[test]
fn categorical_sample_frequencies_match_probabilities() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(11);
    let n = 100_000i64;
    let probs = [0.1f64, 0.2, 0.7];
    let logits = Tensor::from_slice(&probs).log().view([1, 3]).expand([n, 3], false);
    let samples = Categorical::from_logits(&logits).sample();
    assert_eq!(samples.kind(), Kind::Int64, "discrete actions are Int64");
    assert_eq!(samples.size(), vec![n], "one action per row");
    let counts = values(&samples.bincount(None::<Tensor>, 3));
    for (i, p) in probs.iter().enumerate() {
        let freq = counts[i] / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert_close(&format!("frequency of action {i}"), freq, *p, 4.0 * se);
    }
}

#[test]
fn categorical_has_no_reparameterized_sample() {
    let dist = Categorical::from_logits(&Tensor::zeros([2, 3], F64));
    assert_eq!(
        dist.rsample().unwrap_err(),
        DistributionError::NotReparameterizable { family: "Categorical" }
    );
    assert!(dist.rsample_with_log_prob().is_err());
}

#[test]
fn diag_gaussian_log_prob_and_entropy_match_hand_computed_values() {
    let mean = Tensor::from_slice(&[0.0f64, 1.0]).view([1, 2]);
    let log_std = Tensor::from_slice(&[0.0f64, 2.0f64.ln()]);
    let dist = DiagGaussian::new(mean, &log_std);
    let x = Tensor::from_slice(&[1.0f64, 2.0]).view([1, 2]);
    // Σ_i -(x_i - μ_i)² / (2σ_i²) - ln σ_i - ½ ln 2π, for (x, μ, σ) = (1, 0, 1) and (2, 1, 2).
    assert_close("log p", values(&dist.log_prob(&x))[0], -3.156_024_246_969_290_7, 1e-12);
    // Σ_i ½ + ½ ln 2π + ln σ_i.
    let h = values(&dist.entropy().expect("Gaussian entropy has a closed form"))[0];
    assert_close("entropy", h, 3.531_024_246_969_290_7, 1e-12);
    assert_eq!(values(&dist.mode()), [0.0, 1.0], "mode is the mean");
}

#[test]
fn diag_gaussian_sample_moments_match_mean_and_variance() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(12);
    let n = 100_000usize;
    let (mu, sigma) = ([-1.0f64, 3.0], [0.5f64, 2.0]);
    let mean = Tensor::from_slice(&mu).view([1, 2]).expand([n as i64, 2], false);
    let log_std = Tensor::from_slice(&sigma).log();
    let samples = DiagGaussian::new(mean, &log_std).sample();
    assert_eq!(samples.size(), vec![n as i64, 2], "continuous actions are [batch, dim]");
    assert!(!samples.requires_grad(), "sample() must not record gradients");
    let xs = values(&samples);
    for d in 0..2 {
        let col: Vec<f64> = xs.iter().skip(d).step_by(2).copied().collect();
        let (m, se) = mean_and_se(&col);
        assert_close(&format!("mean of dim {d}"), m, mu[d], 4.0 * se);
        let squares: Vec<f64> = col.iter().map(|x| (x - mu[d]).powi(2)).collect();
        let (var, var_se) = mean_and_se(&squares);
        assert_close(&format!("variance of dim {d}"), var, sigma[d].powi(2), 4.0 * var_se);
    }
}

/// Bounds [-2, 2] × [0, 1]: a symmetric box and a shifted, narrower one.
fn bounds() -> ActionBounds {
    ActionBounds::new(&BoxSpace::new(vec![-2.0, 0.0], vec![2.0, 1.0])).unwrap()
}

#[test]
fn squashed_gaussian_log_prob_matches_a_hand_computed_value() {
    let b = ActionBounds::new(&BoxSpace::uniform(1, -2.0, 2.0)).unwrap();
    let dist = SquashedGaussian::new(
        Tensor::from_slice(&[0.5f64]).view([1, 1]),
        &Tensor::from_slice(&[0.5f64.ln()]),
        &b,
    );
    // a = 1 → y = 0.5 → u = atanh(0.5); log N(u; 0.5, 0.5²) - ln(1 - 0.5²) - ln 2.
    let got = values(&dist.log_prob(&Tensor::from_slice(&[1.0f64]).view([1, 1])))[0];
    assert_close("log p(1)", got, -0.636_118_652_491_073, 1e-6);
}

#[test]
fn squashed_gaussian_correction_matches_a_finite_difference_jacobian() {
    let b = bounds();
    let (lo, hi) = ([-2.0f64, 0.0], [2.0f64, 1.0]);
    let squash = |u: f64, d: usize| lo[d] + (hi[d] - lo[d]) * (u.tanh() + 1.0) / 2.0;
    let mu = [0.3f64, -0.7];
    let sigma = [0.9f64, 1.6];
    let dist = SquashedGaussian::new(
        Tensor::from_slice(&mu).view([1, 2]),
        &Tensor::from_slice(&sigma).log(),
        &b,
    );
    // Pre-squash points from the centre out to where tanh' is ~1e-3 (a is still clearly inside
    // the box in f64, so atanh recovers u accurately).
    for &(u0, u1) in &[(0.0, 0.0), (0.8, -1.3), (-2.5, 2.0), (3.0, -3.5)] {
        let u = [u0, u1];
        let mut expected = 0.0;
        for d in 0..2 {
            let h = 1e-5;
            let jacobian = (squash(u[d] + h, d) - squash(u[d] - h, d)) / (2.0 * h);
            let z = (u[d] - mu[d]) / sigma[d];
            let log_normal = -0.5 * z * z - sigma[d].ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
            expected += log_normal - jacobian.abs().ln();
        }
        let a = Tensor::from_slice(&[squash(u0, 0), squash(u1, 1)]).view([1, 2]);
        let got = values(&dist.log_prob(&a))[0];
        assert_close(&format!("log p(a(u = {u:?}))"), got, expected, 1e-6);
    }
}

#[test]
fn squashed_gaussian_density_integrates_to_one_over_the_bounds() {
    let b = ActionBounds::new(&BoxSpace::uniform(1, -3.0, 1.0)).unwrap();
    let n = 200_000i64;
    let dist = SquashedGaussian::new(
        Tensor::full([n, 1], 0.4, F64),
        &Tensor::from_slice(&[0.7f64.ln()]),
        &b,
    );
    // Midpoint rule over (-3, 1).
    let width = 4.0 / n as f64;
    let a = (Tensor::arange(n, F64) + 0.5) * width - 3.0;
    let mass = dist.log_prob(&a.view([n, 1])).exp().sum(Kind::Double).double_value(&[]) * width;
    assert_close("∫ p(a) da", mass, 1.0, 1e-4);
}

#[test]
fn squashed_gaussian_samples_stay_inside_the_bounds_and_mode_is_the_squashed_mean() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(13);
    let b = bounds();
    let n = 10_000;
    let dist = SquashedGaussian::new(
        Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2]).expand([n, 2], false),
        &Tensor::from_slice(&[1.0f32, 1.0]),
        &b,
    );
    let a = values(&dist.sample());
    let inside = a.chunks(2).all(|r| (-2.0..=2.0).contains(&r[0]) && (0.0..=1.0).contains(&r[1]));
    assert!(inside, "a squashed sample left the box");
    let mode = values(&dist.mode().narrow(0, 0, 1));
    assert_close("mode dim 0", mode[0], 0.0, 1e-6);
    assert_close("mode dim 1", mode[1], 0.5 + 0.5 * 1.0f64.tanh(), 1e-6);
    assert!(dist.entropy().is_none(), "the squashed Gaussian has no closed-form entropy");
}

#[test]
fn squashed_log_prob_from_the_pre_squash_value_agrees_with_inverting_the_action() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(14);
    let b = bounds();
    let dist = SquashedGaussian::new(
        Tensor::randn([64, 2], F64) * 0.5,
        &Tensor::from_slice(&[-0.5f64, 0.2]),
        &b,
    );
    let (a, lp) = dist.rsample_with_log_prob().unwrap();
    let diff = (lp - dist.log_prob(&a)).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "log p via u and via atanh(a) differ by {diff}");
}

#[test]
fn squashed_log_prob_stays_finite_far_into_the_tails_in_f32() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(15);
    // Means of ±12: tanh(u) rounds to ±1 in f32, where the naive log(1 - tanh²) is -inf.
    let b = bounds();
    let mean = Tensor::from_slice(&[12.0f32, -12.0]).view([1, 2]).expand([256, 2], false);
    let dist = SquashedGaussian::new(mean, &Tensor::from_slice(&[-2.0f32, -2.0]), &b);
    let (_, lp) = dist.rsample_with_log_prob().unwrap();
    let all_finite = lp.isfinite().all().int64_value(&[]) == 1;
    assert!(all_finite, "log-probabilities in the tails must be finite: {lp}");
}

#[test]
fn squashed_gaussian_rejects_unbounded_boxes() {
    let err = ActionBounds::new(&BoxSpace::new(vec![-1.0, f32::NEG_INFINITY], vec![1.0, 0.0]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dimension 1"), "error should name the unbounded dimension: {err}");
}

#[test]
fn categorical_never_samples_an_action_of_zero_probability() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(16);
    // exp(-200) is 0 in f32: action 1 and action 3 are impossible.
    let logits =
        Tensor::from_slice(&[0.0f32, -200.0, 0.0, -200.0]).view([1, 4]).expand([50_000, 4], false);
    let counts = values(&Categorical::from_logits(&logits).sample().bincount(None::<Tensor>, 4));
    assert_eq!((counts[1], counts[3]), (0.0, 0.0), "impossible actions were sampled: {counts:?}");
}
