//! The estimator lab's library surface: option checks, determinism, and the three outputs
//! (markdown, JSON, PNG), on small runs.

use std::sync::Mutex;

use rlpg_agents::backend::{Ops, Torch};
use rlpg_agents::distributions::GumbelSoftmax;
use rlpg_gradlab::{
    Estimator, GradlabError, GradlabOptions, ProblemKind, Report, plot, relaxed_f, run,
};
use tch::{Kind, Tensor};

/// libtorch has one global generator: runs in parallel threads would interleave their draws and
/// lose reproducibility, so this file's runs take turns.
static TORCH: Mutex<()> = Mutex::new(());

fn small(problems: &[ProblemKind]) -> GradlabOptions {
    GradlabOptions {
        trials: 40,
        samples: 100,
        seed: 7,
        problems: problems.to_vec(),
        temperatures: vec![0.5, 1.0],
        threads: 1,
    }
}

fn run_locked(options: &GradlabOptions) -> Result<Report, GradlabError> {
    let _turn = TORCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    run(options)
}

/// Every measured mean and variance, in row order: what must not change between equal runs
/// (timings may).
fn numbers(report: &Report) -> Vec<(String, String, f64, f64)> {
    report
        .problems
        .iter()
        .flat_map(|p| {
            p.rows.iter().filter_map(move |r| {
                let m = r.measured.as_ref()?;
                Some((
                    format!("{} {}", p.kind, r.parameter),
                    r.estimator.to_string(),
                    m.mean,
                    m.variance,
                ))
            })
        })
        .collect()
}

#[test]
fn bad_options_are_usage_errors_that_name_the_option() {
    let base = small(&[ProblemKind::Step]);
    let cases: Vec<(GradlabOptions, &str)> = vec![
        (GradlabOptions { trials: 1, ..base.clone() }, "trials"),
        (GradlabOptions { samples: 0, ..base.clone() }, "samples"),
        (GradlabOptions { problems: vec![], ..base.clone() }, "problem"),
        (GradlabOptions { temperatures: vec![0.5, 0.0], ..base.clone() }, "temperature"),
        (GradlabOptions { temperatures: vec![f64::NAN], ..base.clone() }, "temperature"),
        (GradlabOptions { threads: 0, ..base.clone() }, "threads"),
        (GradlabOptions { trials: usize::MAX, samples: 2, ..base.clone() }, "trials × samples"),
        (GradlabOptions { trials: 100_000, samples: 100_000, ..base.clone() }, "trials × samples"),
    ];
    for (options, word) in cases {
        let err = run(&options).expect_err("invalid options must be rejected before any work");
        assert!(err.is_usage_error(), "{err} should be a usage error (exit code 2)");
        assert!(err.to_string().contains(word), "error '{err}' should mention '{word}'");
    }
}

#[test]
fn the_same_seed_gives_the_same_numbers_and_another_seed_does_not() {
    let options = small(&[ProblemKind::Square, ProblemKind::Categorical]);
    let a = run_locked(&options).expect("run a");
    let b = run_locked(&options).expect("run b");
    assert_eq!(numbers(&a), numbers(&b), "two runs with seed 7 differ");
    let c = run_locked(&GradlabOptions { seed: 8, ..options }).expect("run c");
    assert_ne!(numbers(&a), numbers(&c), "seeds 7 and 8 gave identical numbers");
}

#[test]
fn a_problem_gives_the_same_numbers_whatever_else_is_selected() {
    let alone = run_locked(&small(&[ProblemKind::Categorical])).expect("categorical alone");
    let with_others = run_locked(&small(&[ProblemKind::Step, ProblemKind::Categorical]))
        .expect("step then categorical");
    let pick = |r: &Report| {
        numbers(r).into_iter().filter(|n| n.0.starts_with("categorical")).collect::<Vec<_>>()
    };
    assert_eq!(
        pick(&alone),
        pick(&with_others),
        "selecting the step changed the categorical's numbers"
    );
    assert!(!pick(&alone).is_empty());
}

#[test]
fn duplicate_problems_run_once_in_the_given_order() {
    let report = run_locked(&small(&[ProblemKind::Step, ProblemKind::Square, ProblemKind::Step]))
        .expect("run");
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, vec![ProblemKind::Step, ProblemKind::Square]);
}

#[test]
fn markdown_has_a_table_per_problem_the_na_reasons_and_the_claims() {
    let report = run_locked(&small(&[ProblemKind::Step, ProblemKind::Categorical])).expect("run");
    let md = report.to_markdown();
    for needle in [
        "rlpg gradlab --trials 40 --samples 100 --seed 7 --problems step,categorical --temperatures 0.5,1",
        "## step",
        "## categorical",
        "| param | estimator | mean ± SE |",
        "autograd gives 0",
        "is not differentiable",
        "Categorical has no reparameterized sample",
        "| gumbel-softmax ST τ=0.5 |",
        "## The usual claims, measured",
    ] {
        assert!(md.contains(needle), "the markdown lacks '{needle}':\n{md}");
    }
}

#[test]
fn json_round_trips_with_every_row_and_claim() {
    let report =
        run_locked(&small(&[ProblemKind::ShiftedSquare, ProblemKind::Categorical])).expect("run");
    let json = report.to_json().expect("serialize");
    let v: serde_json::Value = serde_json::from_str(&json).expect("the JSON parses");
    assert_eq!(v["trials"], 40);
    assert_eq!(v["samples"], 100);
    assert_eq!(v["problems"][0]["kind"], "shifted-square");
    let rows = v["problems"][1]["rows"].as_array().expect("rows is an array");
    // 4 logits × (3 baselines + pathwise n/a + 2 temperatures × 2 variants).
    assert_eq!(rows.len(), 4 * (3 + 1 + 4), "categorical rows");
    let gumbel = rows
        .iter()
        .find(|r| r["estimator"]["kind"] == "gumbel-softmax")
        .expect("a Gumbel-softmax row");
    assert_eq!(gumbel["estimator"]["temperature"], 0.5);
    assert!(gumbel["measured"]["variance"].as_f64().is_some_and(|x| x > 0.0));
    let na = rows.iter().find(|r| r["estimator"]["kind"] == "pathwise").expect("a pathwise row");
    assert!(na["applicability"]["not_applicable"].is_string(), "n/a rows carry their reason: {na}");
    assert!(na["measured"].is_null());
    assert_eq!(
        v["claims"].as_array().map(Vec::len),
        Some(report.claims.len()),
        "every claim is serialized"
    );
}

#[test]
fn plot_writes_a_png_of_the_expected_size() {
    let report =
        run_locked(&small(&[ProblemKind::Square, ProblemKind::Step, ProblemKind::Categorical]))
            .expect("run");
    let dir = std::env::temp_dir().join(format!("rlpg-gradlab-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("estimators.png");
    plot(&report, &path).expect("plot");
    let bytes = std::fs::read(&path).expect("the PNG exists");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
    // IHDR: width and height are the first two big-endian u32 after the chunk header.
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    // 3 problem panels + the temperature panel = 2 rows of 2 panels (760 × 520) + the title.
    assert_eq!((width, height), (1520, 2 * 520 + 50), "unexpected image size");
    assert!(bytes.len() > 20_000, "a {} byte PNG is too small to hold the charts", bytes.len());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plot_into_a_missing_directory_is_a_runtime_error_naming_the_file() {
    let report = run_locked(&small(&[ProblemKind::Step])).expect("run");
    let path = std::env::temp_dir().join("rlpg-no-such-dir-for-gradlab").join("x.png");
    let err = plot(&report, &path).expect_err("the directory does not exist");
    assert!(!err.is_usage_error(), "a failed write is not a usage error: {err}");
    assert!(err.to_string().contains("x.png"), "the error should name the file: {err}");
}

#[test]
fn the_categorical_relaxation_rows_cover_every_temperature_soft_and_straight_through() {
    let report = run_locked(&small(&[ProblemKind::Categorical])).expect("run");
    let p = report.problem(ProblemKind::Categorical).expect("categorical");
    for t in [0.5, 1.0] {
        for straight_through in [false, true] {
            let e = Estimator::GumbelSoftmax { temperature: Some(t), straight_through };
            let n = p.rows.iter().filter(|r| r.estimator == e && r.measured.is_some()).count();
            assert_eq!(n, 4, "{e}: expected one measured row per logit");
        }
    }
}

/// Per-sample gradients of `critic(y)` w.r.t. the logits, for Gumbel-softmax samples drawn with
/// `seed` from the agents' distribution.
fn relaxed_grads(seed: i64, straight_through: bool, critic: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let _turn = TORCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    let logits = Tensor::from_slice(&[0.5f32, 0.0, -0.5, 1.0]).unsqueeze(0).repeat([256, 1]);
    let logits = logits.set_requires_grad(true);
    let mut b = Torch::new(tch::Device::Cpu);
    let u = b.uniform(256, 4).expect("draws");
    let y = GumbelSoftmax::from_logits(&mut b, &logits, 0.7, straight_through).rsample(&mut b, &u);
    let total = critic(&y).sum(Kind::Float);
    Tensor::run_backward(&[total], &[&logits], false, false).remove(0)
}

#[test]
fn with_a_linear_critic_straight_through_and_soft_gradients_coincide_so_the_lab_uses_a_quadratic() {
    let v = Tensor::from_slice(&[1.0f32, 3.0, -1.0, 2.0]);
    let soft = relaxed_grads(11, false, |y| y.matmul(&v));
    let st = relaxed_grads(11, true, |y| y.matmul(&v));
    let diff = (&soft - &st).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "linear critic: soft and ST gradients differ by {diff}");
    let soft = relaxed_grads(11, false, |y| relaxed_f(y, &v));
    let st = relaxed_grads(11, true, |y| relaxed_f(y, &v));
    let diff = (&soft - &st).abs().max().double_value(&[]);
    assert!(diff > 1e-2, "quadratic critic: soft and ST gradients should differ, max diff {diff}");
}

#[test]
fn run_uses_the_requested_threads_and_restores_the_previous_setting() {
    let _turn = TORCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = tch::get_num_threads();
    tch::set_num_threads(2);
    let report = run(&GradlabOptions { threads: 1, ..small(&[ProblemKind::Step]) });
    let after = tch::get_num_threads();
    tch::set_num_threads(before);
    let report = report.expect("run");
    assert_eq!(report.torch_threads, 1, "the run should use the requested single thread");
    assert_eq!(after, 2, "run should restore the caller's thread count");
}
