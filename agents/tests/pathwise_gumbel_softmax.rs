//! Gumbel-softmax on both backends: hard samples follow the categorical, relaxed samples live on
//! the simplex and approach one-hots as the temperature falls, the straight-through sample is
//! hard forward with the relaxed gradient backward, and the log-probabilities, entropy and mode
//! are the categorical's.

use std::sync::{Mutex, MutexGuard};

use rlpg_agents::backend::{Kernel, Ops, Torch};
use rlpg_agents::distributions::GumbelSoftmax;
use tch::{Device, Kind, Tensor};

/// libtorch's generator is global and tests run in parallel threads: tests that seed it or draw
/// from it hold this lock so that another test's draws cannot interleave with theirs.
static RNG: Mutex<()> = Mutex::new(());

fn rng() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const PROBS: [f32; 4] = [0.1, 0.2, 0.3, 0.4];

/// `rows` copies of the logits `ln PROBS`.
fn logits<B: Ops>(b: &mut B, rows: usize) -> B::M {
    let row: Vec<f32> = PROBS.iter().map(|p| p.ln()).collect();
    b.constant(rows, 4, &row.repeat(rows)).unwrap()
}

fn host<B: Ops>(b: &mut B, x: &B::M) -> Vec<f32> {
    let mut out = Vec::new();
    b.to_host(x, &mut out).unwrap();
    out
}

/// The index of the largest value of each row of 4.
fn argmax_rows(values: &[f32]) -> Vec<usize> {
    values
        .chunks(4)
        .map(|r| (0..4).fold(0, |best, j| if r[j] > r[best] { j } else { best }))
        .collect()
}

/// Runs a generic check on the kernel, then on libtorch.
macro_rules! on_both_backends {
    ($check:ident) => {{
        $check(&mut Kernel::default());
        $check(&mut Torch::new(Device::Cpu));
    }};
}

fn hard_samples<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _rng = rng();
    tch::manual_seed(0);
    let n = 40_000;
    let l = logits(b, n);
    let d = GumbelSoftmax::from_logits(b, &l, 1.0, false);
    let u = b.uniform(n, 4).unwrap();
    let hard = d.one_hot_sample(b, &u);
    let hard = host(b, &hard);
    assert!(hard.iter().all(|&v| v == 0.0 || v == 1.0), "{name}: not one-hot");
    let mut counts = [0usize; 4];
    for a in argmax_rows(&hard) {
        counts[a] += 1;
    }
    for (k, (&count, &p)) in counts.iter().zip(&PROBS).enumerate() {
        let freq = count as f64 / n as f64;
        // Binomial std of a frequency: sqrt(p (1 − p) / n) ≤ 0.0025; allow 5 std.
        let tol = 5.0 * (f64::from(p) * (1.0 - f64::from(p)) / n as f64).sqrt();
        assert!(
            (freq - f64::from(p)).abs() < tol,
            "{name}: action {k}: frequency {freq:.4}, probability {p} (tolerance {tol:.4})"
        );
    }
    // The straight-through sample's argmax is an equally exact categorical sample.
    let st = GumbelSoftmax::from_logits(b, &l, 0.5, true);
    let u = b.uniform(n, 4).unwrap();
    let y = st.rsample(b, &u);
    let mut counts = [0usize; 4];
    for a in argmax_rows(&host(b, &y)) {
        counts[a] += 1;
    }
    for (k, (&count, &p)) in counts.iter().zip(&PROBS).enumerate() {
        let freq = count as f64 / n as f64;
        assert!(
            (freq - f64::from(p)).abs() < 0.012,
            "{name}: straight-through action {k}: {freq:.4} vs {p}"
        );
    }
}

#[test]
fn hard_samples_follow_the_categorical_probabilities() {
    on_both_backends!(hard_samples);
}

fn simplex<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _rng = rng();
    tch::manual_seed(1);
    for temperature in [0.1, 1.0, 10.0] {
        let l = logits(b, 1000);
        let d = GumbelSoftmax::from_logits(b, &l, temperature, false);
        let u = b.uniform(1000, 4).unwrap();
        let y = d.rsample(b, &u);
        assert_eq!(b.shape(&y), (1000, 4));
        let y = host(b, &y);
        let min = y.iter().copied().fold(f32::INFINITY, f32::min);
        let worst = y.chunks(4).map(|r| (r.iter().sum::<f32>() - 1.0).abs()).fold(0.0, f32::max);
        assert!(min >= 0.0, "{name}, τ = {temperature}: negative component {min}");
        assert!(worst < 1e-5, "{name}, τ = {temperature}: a row sums to 1 ± {worst}");
    }
}

#[test]
fn relaxed_samples_lie_on_the_simplex() {
    on_both_backends!(simplex);
}

fn temperatures<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _rng = rng();
    tch::manual_seed(2);
    let mut mean_max = |temperature: f64| {
        let l = logits(b, 2000);
        let d = GumbelSoftmax::from_logits(b, &l, temperature, false);
        let u = b.uniform(2000, 4).unwrap();
        let y = d.rsample(b, &u);
        let y = host(b, &y);
        y.chunks(4).map(|r| f64::from(r.iter().copied().fold(0.0, f32::max))).sum::<f64>() / 2000.0
    };
    let (cold, warm, hot) = (mean_max(0.01), mean_max(1.0), mean_max(100.0));
    assert!(cold > 0.99, "{name}, τ = 0.01: the largest component averages {cold}, not ≈ 1");
    assert!(warm < 0.9 && warm > cold - 0.5, "{name}, τ = 1: largest component averages {warm}");
    assert!(hot < 0.3, "{name}, τ = 100: samples should be near uniform (0.25), max {hot}");
    assert!(cold > warm && warm > hot, "{name}: sharpness must fall with temperature");
}

#[test]
fn low_temperatures_approach_one_hot_and_high_ones_the_centre() {
    on_both_backends!(temperatures);
}

/// The straight-through sample and its relaxed twin from the same uniform draws, on one
/// backend: `(hard, soft)` forward values.
fn straight_through_values<B: Ops>(b: &mut B) -> (Vec<f32>, Vec<f32>) {
    let _rng = rng();
    tch::manual_seed(3);
    let u = b.uniform(8, 4).unwrap();
    let l = logits(b, 8);
    let hard = GumbelSoftmax::from_logits(b, &l, 0.7, true).rsample(b, &u);
    let soft = GumbelSoftmax::from_logits(b, &l, 0.7, false).rsample(b, &u);
    (host(b, &hard), host(b, &soft))
}

#[test]
fn straight_through_is_one_hot_forward_with_the_relaxed_gradient() {
    for (name, (hard, soft)) in [
        ("kernel", straight_through_values(&mut Kernel::default())),
        ("libtorch", straight_through_values(&mut Torch::new(Device::Cpu))),
    ] {
        let is_one_hot = hard.iter().all(|&v| v == 0.0 || v == 1.0)
            && hard.chunks(4).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(is_one_hot, "{name}: straight-through forward values are not one-hot: {hard:?}");
        assert_eq!(argmax_rows(&hard), argmax_rows(&soft), "{name}: the hard sample's choice");
    }
    // The gradient (libtorch's autograd of the same text; the kernel's is compared with it in
    // `tests/backends.rs`): straight-through passes the relaxed sample's.
    let temperature = 0.7;
    let weights = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5]);
    let run = |straight_through: bool| {
        let mut b = Torch::new(Device::Cpu);
        let l = logits(&mut b, 8).set_requires_grad(true);
        let _rng = rng();
        tch::manual_seed(3);
        let u = b.uniform(8, 4).unwrap();
        let y = GumbelSoftmax::from_logits(&mut b, &l, temperature, straight_through)
            .rsample(&mut b, &u);
        let grad = Tensor::run_backward(&[(&y * &weights).sum(Kind::Float)], &[&l], false, false)
            .remove(0);
        (y.detach(), grad)
    };
    let (hard, hard_grad) = run(true);
    let (soft, soft_grad) = run(false);
    let same_choice =
        hard.argmax(-1, false).eq_tensor(&soft.argmax(-1, false)).all().int64_value(&[]);
    assert_eq!(same_choice, 1, "the hard sample is not the argmax of the relaxed one");
    let diff = (&hard_grad - &soft_grad).abs().max().double_value(&[]);
    let scale = soft_grad.abs().max().double_value(&[]);
    assert!(scale > 1e-3, "the relaxed gradient vanished ({scale})");
    assert!(diff < 1e-5, "straight-through gradient differs from the relaxed one by {diff}");
}

fn categorical_parts<B: Ops>(b: &mut B) {
    let name = b.kind();
    let l = logits(b, 2);
    let d = GumbelSoftmax::from_logits(b, &l, 1.0, false);
    let lp = host(b, &d.log_probs);
    assert!(
        (lp[3] - 0.4f32.ln()).abs() < 1e-6 && (lp[4] - 0.1f32.ln()).abs() < 1e-6,
        "{name}: {lp:?}"
    );
    let h = d.entropy(b);
    let h = f64::from(host(b, &h)[0]);
    let expected: f64 = PROBS.iter().map(|&p| -f64::from(p) * f64::from(p).ln()).sum();
    assert!((h - expected).abs() < 1e-5, "{name}: entropy {h}, expected {expected}");
    let probs = d.probs(b);
    let probs = host(b, &probs);
    assert!(probs.iter().zip(PROBS.repeat(2)).all(|(p, q)| (p - q).abs() < 1e-6), "{name}");
    assert_eq!(d.mode(b).unwrap(), [3, 3], "{name}: the most likely action is 3");
}

#[test]
fn log_prob_entropy_and_mode_are_the_categoricals() {
    on_both_backends!(categorical_parts);
}

/// Independent components within masks: nvec `[3, 2, 4]` (the middle one a bit as a two-way
/// categorical), component 0's middle choice and component 2's first and last masked out with
/// the additive bias the agents use. Against the closed forms on the host: each component's
/// probabilities are the softmax over its allowed logits (exactly 0 for a masked choice), the
/// entropy is the sum of the components' restricted entropies, the mode is each component's
/// most probable allowed choice, hard and relaxed samples put exactly nothing on masked
/// choices, each component of a relaxed sample sums to 1, and the Gumbel-max samples follow the
/// restricted probabilities.
fn masked_parts<B: Ops>(b: &mut B) {
    let name = b.kind();
    let _rng = rng();
    tch::manual_seed(3);
    let parts = [3usize, 2, 4];
    let logits_row = [0.3f32, 2.0, -1.0, 0.5, -0.25, 1.5, 0.2, -0.7, 0.9];
    let allowed = [true, false, true, true, true, false, true, true, false];
    let bias_row: Vec<f32> = allowed
        .iter()
        .map(|&a| if a { 0.0 } else { rlpg_agents::distributions::MASKED_LOGIT })
        .collect();
    // Closed forms, per component.
    let mut probs = Vec::new();
    let mut entropy = 0.0f64;
    let mut modes = Vec::new();
    let mut start = 0;
    for &k in &parts {
        let range = start..start + k;
        let total: f64 =
            range.clone().filter(|&i| allowed[i]).map(|i| f64::from(logits_row[i]).exp()).sum();
        let p: Vec<f64> = range
            .clone()
            .map(|i| if allowed[i] { f64::from(logits_row[i]).exp() / total } else { 0.0 })
            .collect();
        entropy -= p.iter().filter(|&&q| q > 0.0).map(|q| q * q.ln()).sum::<f64>();
        modes.push((0..k).fold(0, |best, j| if p[j] > p[best] { j } else { best }));
        probs.extend(p);
        start += k;
    }
    let n = 40_000;
    let l = b.constant(n, 9, &logits_row.repeat(n)).unwrap();
    let bias = b.constant(n, 9, &bias_row.repeat(n)).unwrap();
    for straight_through in [false, true] {
        let d = GumbelSoftmax::from_parts(b, &l, &parts, Some(&bias), 0.7, straight_through);
        assert_eq!(d.parts(), parts);
        let p = d.probs(b);
        let p = host(b, &p);
        for (i, (&got, &want)) in p[..9].iter().zip(&probs).enumerate() {
            assert!((f64::from(got) - want).abs() < 1e-6, "{name}: p[{i}] {got} vs {want}");
            if want == 0.0 {
                assert_eq!(got, 0.0, "{name}: a masked choice must have probability 0");
            }
        }
        let h = d.entropy(b);
        let h = host(b, &h);
        assert!((f64::from(h[0]) - entropy).abs() < 1e-5, "{name}: entropy {} vs {entropy}", h[0]);
        assert_eq!(d.mode(b).unwrap()[..3], modes, "{name}: modes");
        let u = b.uniform(n, 9).unwrap();
        let y = d.rsample(b, &u);
        let y = host(b, &y);
        let u = b.uniform(n, 9).unwrap();
        let hard = d.one_hot_sample(b, &u);
        let hard = host(b, &hard);
        let mut counts = [0usize; 9];
        for (row, hard_row) in y.chunks(9).zip(hard.chunks(9)) {
            let mut start = 0;
            for &k in &parts {
                let sum: f32 = row[start..start + k].iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{name}: a component sums to {sum}");
                let ones = hard_row[start..start + k].iter().filter(|&&v| v == 1.0).count();
                assert_eq!(ones, 1, "{name}: one hot choice per component");
                start += k;
            }
            for i in 0..9 {
                if !allowed[i] {
                    assert_eq!(row[i], 0.0, "{name}: relaxed weight on masked choice {i}");
                    assert_eq!(hard_row[i], 0.0, "{name}: masked choice {i} sampled");
                }
                if hard_row[i] == 1.0 {
                    counts[i] += 1;
                }
            }
        }
        for (i, (&count, &p)) in counts.iter().zip(&probs).enumerate() {
            let freq = count as f64 / n as f64;
            let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-9;
            assert!((freq - p).abs() <= tol, "{name}: choice {i}: frequency {freq:.4} vs {p:.4}");
        }
    }
}

#[test]
fn masked_independent_parts_match_their_closed_forms() {
    on_both_backends!(masked_parts);
}
