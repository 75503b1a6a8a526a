//! The distributions against closed forms, on both backends (the same generic text evaluated by
//! libtorch and by the plain-Rust kernel): log-densities and entropies computed by hand, sample
//! frequencies and moments within a few standard errors, and the squashed Gaussian's
//! change-of-variables correction against a finite-difference Jacobian.
//!
//! The backends compute in `f32` (their matrices are `f32`, their constants too), so the
//! hand-computed `f64` values are met to `f32` rounding: [`F32_TOL`] relative.

use std::sync::Mutex;

use rlpg_agents::backend::{Kernel, Ops, Torch};
use rlpg_agents::distributions::{Categorical, DiagGaussian, DistributionError, SquashedGaussian};
use tch::Device;

/// tch's generator is global and tests run in parallel threads: sampling tests hold this lock
/// from `manual_seed` to their last draw so their samples do not depend on scheduling.
static RNG: Mutex<()> = Mutex::new(());

/// Relative tolerance of a value computed in `f32` by a few operations against its exact value:
/// a few units in the last place.
const F32_TOL: f64 = 1e-6;

/// Runs `check` on the kernel and on libtorch.
fn on_both_backends(check: impl Fn(Backend)) {
    check(Backend::Kernel(Kernel::default()));
    check(Backend::Torch(Torch::new(Device::Cpu)));
}

/// One of the two backends (the tests are generic functions called on each).
enum Backend {
    Kernel(Kernel),
    Torch(Torch),
}

/// Calls the generic function `$f` with the concrete backend inside `$b`, then any further
/// arguments.
macro_rules! run {
    ($b:expr, $f:ident $(, $arg:expr)*) => {
        match $b {
            Backend::Kernel(mut k) => $f(&mut k $(, $arg)*),
            Backend::Torch(mut t) => $f(&mut t $(, $arg)*),
        }
    };
}

fn host<B: Ops>(b: &mut B, x: &B::M) -> Vec<f64> {
    let mut out = Vec::new();
    b.to_host(x, &mut out).expect("values");
    out.iter().map(|&v| f64::from(v)).collect()
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, expected {want} (tolerance {tol})");
}

/// `got` equals `want` to `f32` rounding.
fn assert_f32(what: &str, got: f64, want: f64) {
    assert_close(what, got, want, F32_TOL * (1.0 + want.abs()));
}

/// Mean and standard error of the mean of `xs`.
fn mean_and_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn categorical_closed_forms<B: Ops>(b: &mut B) {
    let name = b.kind();
    let logits = b.constant(1, 3, &[1.0, 2.0, 3.0]).unwrap();
    let dist = Categorical::from_logits(b, &logits);
    // log p_i = l_i - ln(e + e² + e³), computed separately.
    let expected = [-2.407_605_964_444_38, -1.407_605_964_444_38, -0.407_605_964_444_38];
    for (a, want) in expected.iter().enumerate() {
        let lp = dist.log_prob(b, &[a]);
        assert_eq!(b.shape(&lp), (1, 1));
        assert_f32(&format!("{name}: log p({a})"), host(b, &lp)[0], *want);
    }
    let entropy = dist.entropy(b);
    assert_f32(&format!("{name}: entropy"), host(b, &entropy)[0], 0.832_395_581_839_938_9);
    let probs = dist.probs(b);
    let probs = host(b, &probs);
    for (p, lp) in probs.iter().zip(expected) {
        assert_f32(&format!("{name}: probability"), *p, lp.exp());
    }
    assert_eq!(dist.mode(b).unwrap(), [2], "{name}: mode must be the most likely action");
}

#[test]
fn categorical_log_prob_and_entropy_match_hand_computed_values() {
    on_both_backends(|b| run!(b, categorical_closed_forms));
}

fn categorical_rows<B: Ops>(b: &mut B) {
    let name = b.kind();
    let logits = b.constant(2, 2, &[0.0, 0.0, 5.0, -5.0]).unwrap();
    let dist = Categorical::from_logits(b, &logits);
    let lp = dist.log_prob(b, &[1, 0]);
    let lp = host(b, &lp);
    assert_f32(&format!("{name}: row 0: uniform"), lp[0], (0.5f64).ln());
    assert_f32(
        &format!("{name}: row 1: p(0) = sigmoid(10)"),
        lp[1],
        -(1.0 + (-10.0f64).exp()).ln(),
    );
    let entropy = dist.entropy(b);
    assert_eq!(b.shape(&entropy), (2, 1), "{name}: entropy is one value per row");
    assert_eq!(dist.mode(b).unwrap(), [0, 0], "{name}: first of equal values, then the larger");
}

#[test]
fn categorical_log_prob_is_per_row_for_a_batch() {
    on_both_backends(|b| run!(b, categorical_rows));
}

/// Counts of each of `n` actions among `samples`.
fn counts(samples: &[usize], n: usize) -> Vec<usize> {
    let mut counts = vec![0; n];
    for &a in samples {
        counts[a] += 1;
    }
    counts
}

fn categorical_frequencies<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(11);
    let n = 100_000usize;
    let probs = [0.1f32, 0.2, 0.7];
    let row: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
    let logits = b.constant(n, 3, &row.repeat(n)).unwrap();
    let samples = Categorical::from_logits(b, &logits).sample(b).unwrap();
    assert_eq!(samples.len(), n, "{name}: one action per row");
    let counts = counts(&samples, 3);
    for (i, p) in probs.iter().enumerate() {
        let p = f64::from(*p);
        let freq = counts[i] as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert_close(&format!("{name}: frequency of action {i}"), freq, p, 4.0 * se);
    }
}

#[test]
fn categorical_sample_frequencies_match_probabilities() {
    on_both_backends(|b| run!(b, categorical_frequencies));
}

#[test]
fn categorical_has_no_reparameterized_sample() {
    assert_eq!(
        Categorical::<Kernel>::reparameterization().unwrap_err(),
        DistributionError::NotReparameterizable { family: "Categorical" }
    );
    let err = Categorical::<Torch>::reparameterization().unwrap_err().to_string();
    assert!(err.contains("no reparameterized sample") && err.contains("relaxed"), "{err}");
}

fn categorical_impossible_actions<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(16);
    // exp(-200) is 0 in f32: action 1 and action 3 are impossible.
    let n = 50_000;
    let logits = b.constant(n, 4, &[0.0f32, -200.0, 0.0, -200.0].repeat(n)).unwrap();
    let samples = Categorical::from_logits(b, &logits).sample(b).unwrap();
    let counts = counts(&samples, 4);
    assert_eq!(
        (counts[1], counts[3]),
        (0, 0),
        "{name}: impossible actions were sampled: {counts:?}"
    );
    assert!(counts[0] > 0 && counts[2] > 0, "{name}: {counts:?}");
}

#[test]
fn categorical_never_samples_an_action_of_zero_probability() {
    on_both_backends(|b| run!(b, categorical_impossible_actions));
}

fn gaussian_closed_forms<B: Ops>(b: &mut B) {
    let name = b.kind();
    let mean = b.constant(1, 2, &[0.0, 1.0]).unwrap();
    // A state-independent log-std: one `[1, d]` row.
    let log_std = b.constant(1, 2, &[0.0, 2.0f32.ln()]).unwrap();
    let dist = DiagGaussian::new(mean, log_std);
    let x = b.constant(1, 2, &[1.0, 2.0]).unwrap();
    // Σ_i -(x_i - μ_i)² / (2σ_i²) - ln σ_i - ½ ln 2π, for (x, μ, σ) = (1, 0, 1) and (2, 1, 2).
    let lp = dist.log_prob(b, &x);
    assert_f32(&format!("{name}: log p"), host(b, &lp)[0], -3.156_024_246_969_290_7);
    // Σ_i ½ + ½ ln 2π + ln σ_i.
    let h = dist.entropy(b);
    assert_eq!(b.shape(&h), (1, 1), "{name}: a state-independent entropy is one value");
    assert_f32(&format!("{name}: entropy"), host(b, &h)[0], 3.531_024_246_969_290_7);
    // Per-row log-stds broadcast per row.
    let mean = b.constant(2, 1, &[0.0, 0.0]).unwrap();
    let log_std = b.constant(2, 1, &[0.0, -1.0]).unwrap();
    let dist = DiagGaussian::new(mean, log_std);
    let x = b.constant(2, 1, &[1.0, 1.0]).unwrap();
    let lp = dist.log_prob(b, &x);
    let lp = host(b, &lp);
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    assert_f32(&format!("{name}: row 0"), lp[0], -0.5 - half_ln_2pi);
    assert_f32(&format!("{name}: row 1"), lp[1], -0.5 * 1f64.exp().powi(2) + 1.0 - half_ln_2pi);
}

#[test]
fn diag_gaussian_log_prob_and_entropy_match_hand_computed_values() {
    on_both_backends(|b| run!(b, gaussian_closed_forms));
}

fn gaussian_moments<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(12);
    let n = 100_000usize;
    let (mu, sigma) = ([-1.0f32, 3.0], [0.5f32, 2.0]);
    let mean = b.constant(n, 2, &mu.repeat(n)).unwrap();
    let log_std = b.constant(1, 2, &[sigma[0].ln(), sigma[1].ln()]).unwrap();
    let dist = DiagGaussian::new(mean, log_std);
    let eps = b.normal(n, 2).unwrap();
    let samples = dist.rsample_from_noise(b, &eps);
    assert_eq!(b.shape(&samples), (n, 2), "{name}: continuous actions are [batch, dim]");
    let xs = host(b, &samples);
    for d in 0..2 {
        let (mu, sigma) = (f64::from(mu[d]), f64::from(sigma[d]));
        let col: Vec<f64> = xs.iter().skip(d).step_by(2).copied().collect();
        let (m, se) = mean_and_se(&col);
        assert_close(&format!("{name}: mean of dim {d}"), m, mu, 4.0 * se);
        let squares: Vec<f64> = col.iter().map(|x| (x - mu).powi(2)).collect();
        let (var, var_se) = mean_and_se(&squares);
        assert_close(&format!("{name}: variance of dim {d}"), var, sigma.powi(2), 4.0 * var_se);
    }
}

#[test]
fn diag_gaussian_sample_moments_match_mean_and_variance() {
    on_both_backends(|b| run!(b, gaussian_moments));
}

/// `log N(u; μ, σ) − ln(1 − tanh(u)²)` summed over dimensions, in `f64` (the squashed
/// density by the change of variables, written independently of the distribution's code).
fn squashed_log_density(u: &[f64], mu: &[f64], sigma: &[f64]) -> f64 {
    let mut total = 0.0;
    for d in 0..u.len() {
        let z = (u[d] - mu[d]) / sigma[d];
        let log_normal = -0.5 * z * z - sigma[d].ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        total += log_normal - (1.0 - u[d].tanh().powi(2)).ln();
    }
    total
}

fn squashed_hand_value<B: Ops>(b: &mut B) {
    let name = b.kind();
    let mean = b.constant(1, 1, &[0.5]).unwrap();
    let log_std = b.constant(1, 1, &[0.5f32.ln()]).unwrap();
    let dist = SquashedGaussian::new(mean, log_std);
    // a = 0.5 → u = atanh(0.5); log N(u; 0.5, 0.5²) − ln(1 − 0.5²). (The agent maps [−1, 1] to
    // the action bounds; with bounds [−2, 2] the density there is this minus ln 2.)
    let u = b.constant(1, 1, &[0.5f64.atanh() as f32]).unwrap();
    let lp = dist.log_prob_of_pre_squash(b, &u);
    let want = -0.636_118_652_491_073 + std::f64::consts::LN_2;
    assert_f32(&format!("{name}: log p(0.5)"), host(b, &lp)[0], want);
    let mode = dist.mode(b);
    assert_f32(&format!("{name}: mode"), host(b, &mode)[0], 0.5f64.tanh());
}

#[test]
fn squashed_gaussian_log_prob_matches_a_hand_computed_value() {
    on_both_backends(|b| run!(b, squashed_hand_value));
}

fn squashed_jacobian<B: Ops>(b: &mut B) {
    let name = b.kind();
    let mu = [0.3f64, -0.7];
    let sigma = [0.9f64, 1.6];
    let mean = b.constant(1, 2, &[0.3, -0.7]).unwrap();
    let log_std = b.constant(1, 2, &[0.9f32.ln(), 1.6f32.ln()]).unwrap();
    let dist = SquashedGaussian::new(mean, log_std);
    // Pre-squash points from the centre out to where tanh' is ~1e-3.
    for &(u0, u1) in &[(0.0f32, 0.0f32), (0.8, -1.3), (-2.5, 2.0), (3.0, -3.5)] {
        let u = [f64::from(u0), f64::from(u1)];
        let mut expected = 0.0;
        for d in 0..2 {
            let h = 1e-5;
            let jacobian = ((u[d] + h).tanh() - (u[d] - h).tanh()) / (2.0 * h);
            let z = (u[d] - mu[d]) / sigma[d];
            let log_normal = -0.5 * z * z - sigma[d].ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
            expected += log_normal - jacobian.abs().ln();
        }
        let points = b.constant(1, 2, &[u0, u1]).unwrap();
        let lp = dist.log_prob_of_pre_squash(b, &points);
        assert_f32(&format!("{name}: log p(tanh {u:?})"), host(b, &lp)[0], expected);
    }
}

#[test]
fn squashed_gaussian_correction_matches_a_finite_difference_jacobian() {
    on_both_backends(|b| run!(b, squashed_jacobian));
}

fn squashed_mass<B: Ops>(b: &mut B) {
    let name = b.kind();
    let n = 200_000usize;
    let mean = b.constant(n, 1, &vec![0.4; n]).unwrap();
    let log_std = b.constant(1, 1, &[0.7f32.ln()]).unwrap();
    let dist = SquashedGaussian::new(mean, log_std);
    // Midpoint rule over (−1, 1) in a = tanh u: u = atanh a.
    let width = 2.0 / n as f64;
    let u: Vec<f32> = (0..n).map(|i| ((i as f64 + 0.5) * width - 1.0).atanh() as f32).collect();
    let points = b.constant(n, 1, &u).unwrap();
    let lp = dist.log_prob_of_pre_squash(b, &points);
    let mass = host(b, &lp).iter().map(|l| l.exp()).sum::<f64>() * width;
    assert_close(&format!("{name}: ∫ p(a) da"), mass, 1.0, 1e-4);
}

#[test]
fn squashed_gaussian_density_integrates_to_one_over_the_interval() {
    on_both_backends(|b| run!(b, squashed_mass));
}

fn squashed_samples<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(13);
    let n = 10_000;
    let mu = [0.0f32, 1.0];
    let mean = b.constant(n, 2, &mu.repeat(n)).unwrap();
    let log_std = b.constant(1, 2, &[1.0, 1.0]).unwrap();
    let dist = SquashedGaussian::new(mean, log_std);
    let eps = b.normal(n, 2).unwrap();
    let (a, lp) = dist.rsample_with_log_prob(b, &eps);
    assert_eq!((b.shape(&a), b.shape(&lp)), ((n, 2), (n, 1)), "{name}: shapes");
    let (a, lp, eps) = (host(b, &a), host(b, &lp), host(b, &eps));
    assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)), "{name}: a squashed sample left [−1, 1]");
    // Each sample's log-density is the change-of-variables formula at its own pre-squash value.
    let sigma = [1f64.exp(); 2];
    for row in 0..50 {
        let u: Vec<f64> = (0..2).map(|d| f64::from(mu[d]) + sigma[d] * eps[row * 2 + d]).collect();
        for d in 0..2 {
            assert_f32(&format!("{name}: sample {row}"), a[row * 2 + d], u[d].tanh());
        }
        let want = squashed_log_density(&u, &[0.0, 1.0], &sigma);
        assert_f32(&format!("{name}: log p of sample {row}"), lp[row], want);
    }
    let mode = dist.mode(b);
    let mode = host(b, &mode);
    assert_f32(&format!("{name}: mode dim 0"), mode[0], 0.0);
    assert_f32(&format!("{name}: mode dim 1"), mode[1], 1.0f64.tanh());
}

#[test]
fn squashed_gaussian_samples_stay_inside_and_carry_their_own_log_density() {
    on_both_backends(|b| run!(b, squashed_samples));
}

fn squashed_tails<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(15);
    // Means of ±12: tanh(u) rounds to ±1 in f32, where the naive log(1 - tanh²) is -inf.
    let mean = b.constant(256, 2, &[12.0f32, -12.0].repeat(256)).unwrap();
    let log_std = b.constant(1, 2, &[-2.0, -2.0]).unwrap();
    let dist = SquashedGaussian::new(mean, log_std);
    let eps = b.normal(256, 2).unwrap();
    let (_, lp) = dist.rsample_with_log_prob(b, &eps);
    let lp = host(b, &lp);
    assert!(lp.iter().all(|v| v.is_finite()), "{name}: log-probabilities in the tails: {lp:?}");
}

#[test]
fn squashed_log_prob_stays_finite_far_into_the_tails_in_f32() {
    on_both_backends(|b| run!(b, squashed_tails));
}
