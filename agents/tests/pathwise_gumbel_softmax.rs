//! Gumbel-softmax: hard samples follow the categorical, relaxed samples live on the simplex and
//! approach one-hots as the temperature falls, and the straight-through sample is hard forward
//! with the relaxed gradient backward.

use rlpg_agents::distributions::{Distribution, GumbelSoftmax};
use std::sync::{Mutex, MutexGuard};

use tch::{Kind, Tensor};

/// libtorch's generator is global and tests run in parallel threads: tests that seed it or draw
/// from it hold this lock so that another test's draws cannot interleave with theirs.
static RNG: Mutex<()> = Mutex::new(());

fn rng() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const PROBS: [f32; 4] = [0.1, 0.2, 0.3, 0.4];

/// `rows` copies of the logits `ln PROBS`.
fn logits(rows: i64) -> Tensor {
    Tensor::from_slice(&PROBS).log().view([1, 4]).repeat([rows, 1])
}

#[test]
fn hard_samples_follow_the_categorical_probabilities() {
    let _rng = rng();
    tch::manual_seed(0);
    let n = 40_000;
    let d = GumbelSoftmax::from_logits(&logits(n), 1.0, false);
    let samples = d.sample();
    assert_eq!((samples.kind(), samples.size()), (Kind::Int64, vec![n]));
    let counts: Vec<i64> = Vec::try_from(&samples.bincount(None::<Tensor>, 4)).unwrap();
    for (k, (&count, &p)) in counts.iter().zip(&PROBS).enumerate() {
        let freq = count as f64 / n as f64;
        // Binomial std of a frequency: sqrt(p (1 − p) / n) ≤ 0.0025; allow 5 std.
        let tol = 5.0 * (f64::from(p) * (1.0 - f64::from(p)) / n as f64).sqrt();
        assert!(
            (freq - f64::from(p)).abs() < tol,
            "action {k}: frequency {freq:.4}, probability {p} (tolerance {tol:.4})"
        );
    }
    // The straight-through sample's argmax is an equally exact categorical sample.
    let st = GumbelSoftmax::from_logits(&logits(n), 0.5, true).rsample().unwrap();
    let counts: Vec<i64> =
        Vec::try_from(&st.argmax(-1, false).bincount(None::<Tensor>, 4)).unwrap();
    for (k, (&count, &p)) in counts.iter().zip(&PROBS).enumerate() {
        let freq = count as f64 / n as f64;
        assert!(
            (freq - f64::from(p)).abs() < 0.012,
            "straight-through action {k}: {freq:.4} vs {p}"
        );
    }
}

#[test]
fn relaxed_samples_lie_on_the_simplex() {
    let _rng = rng();
    tch::manual_seed(1);
    for temperature in [0.1, 1.0, 10.0] {
        let y = GumbelSoftmax::from_logits(&logits(1000), temperature, false).rsample().unwrap();
        assert_eq!(y.size(), vec![1000, 4]);
        let min = y.min().double_value(&[]);
        let row_sums = y.sum_dim_intlist(-1, false, None);
        let worst = (row_sums - 1.0).abs().max().double_value(&[]);
        assert!(min >= 0.0, "τ = {temperature}: negative component {min}");
        assert!(worst < 1e-5, "τ = {temperature}: a row sums to 1 ± {worst}");
    }
}

#[test]
fn low_temperatures_approach_one_hot_and_high_ones_the_centre() {
    let _rng = rng();
    tch::manual_seed(2);
    let mean_max = |temperature: f64| {
        let y = GumbelSoftmax::from_logits(&logits(2000), temperature, false).rsample().unwrap();
        y.max_dim(-1, false).0.mean(None).double_value(&[])
    };
    let (cold, warm, hot) = (mean_max(0.01), mean_max(1.0), mean_max(100.0));
    assert!(cold > 0.99, "τ = 0.01: the largest component averages {cold}, not ≈ 1");
    assert!(warm < 0.9 && warm > cold - 0.5, "τ = 1: largest component averages {warm}");
    assert!(hot < 0.3, "τ = 100: samples should be near uniform (0.25), max averages {hot}");
    assert!(cold > warm && warm > hot, "sharpness must fall with temperature");
}

#[test]
fn straight_through_is_one_hot_forward_with_the_relaxed_gradient() {
    let temperature = 0.7;
    let weights = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5]);
    // The same noise for both samples: the same seed before the same draws.
    let run = |straight_through: bool| {
        let l = logits(8).set_requires_grad(true);
        let _rng = rng();
        tch::manual_seed(3);
        let y = GumbelSoftmax::from_logits(&l, temperature, straight_through).rsample().unwrap();
        let grad =
            Tensor::run_backward(&[(&y * &weights).sum(None)], &[&l], false, false).remove(0);
        (y.detach(), grad)
    };
    let (hard, hard_grad) = run(true);
    let (soft, soft_grad) = run(false);
    let is_one_hot = hard.eq(0.0).logical_or(&hard.eq(1.0)).all().int64_value(&[]) == 1
        && (hard.sum_dim_intlist(-1, false, None) - 1.0).abs().max().double_value(&[]) < 1e-6;
    assert!(is_one_hot, "straight-through forward values are not one-hot: {hard:?}");
    let same_choice =
        hard.argmax(-1, false).eq_tensor(&soft.argmax(-1, false)).all().int64_value(&[]);
    assert_eq!(same_choice, 1, "the hard sample is not the argmax of the relaxed one");
    let diff = (&hard_grad - &soft_grad).abs().max().double_value(&[]);
    let scale = soft_grad.abs().max().double_value(&[]);
    assert!(scale > 1e-3, "the relaxed gradient vanished ({scale})");
    assert!(diff < 1e-5, "straight-through gradient differs from the relaxed one by {diff}");
}

#[test]
fn log_prob_entropy_and_mode_are_the_categoricals() {
    let d = GumbelSoftmax::from_logits(&logits(2), 1.0, false);
    let lp: Vec<f32> = Vec::try_from(&d.log_prob(&Tensor::from_slice(&[3i64, 0]))).unwrap();
    assert!((lp[0] - 0.4f32.ln()).abs() < 1e-6 && (lp[1] - 0.1f32.ln()).abs() < 1e-6, "{lp:?}");
    let h = d.entropy().unwrap().double_value(&[0]);
    let expected: f64 = PROBS.iter().map(|&p| -f64::from(p) * f64::from(p).ln()).sum();
    assert!((h - expected).abs() < 1e-5, "entropy {h}, expected {expected}");
    let mode: Vec<i64> = Vec::try_from(&d.mode()).unwrap();
    assert_eq!(mode, [3, 3], "the most likely action is 3");
}
