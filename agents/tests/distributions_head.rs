//! The action-space factory: which family each space gets, how many network outputs it needs,
//! how those outputs become distributions, and the plain-Rust acting path that must agree with
//! them.

use rlpg_agents::distributions::{
    ActionHead, DistributionError, DistributionKind, LOG_STD_MAX, LOG_STD_MIN, LogStd,
};
use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor, nn};

/// Tests that draw from tch's global generator hold this, so that a seeded test's draws are its
/// own.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn boxed(dim: usize) -> Space {
    Space::Box(BoxSpace::uniform(dim, -1.0, 1.0))
}

#[test]
fn families_follow_the_action_space_and_the_estimator() {
    use DistributionKind::*;
    assert_eq!(DistributionKind::for_score_function(&Space::Discrete(3)), Categorical);
    assert_eq!(DistributionKind::for_score_function(&boxed(2)), DiagGaussian);
}

#[test]
fn heads_ask_for_the_right_number_of_network_outputs() {
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root();
    let param = LogStd::Parameter { init: -0.5 };
    let cases = [
        (Space::Discrete(5), DistributionKind::Categorical, param, 5),
        (boxed(3), DistributionKind::DiagGaussian, param, 3),
        (boxed(3), DistributionKind::DiagGaussian, LogStd::StateDependent, 6),
        (boxed(3), DistributionKind::SquashedGaussian, LogStd::StateDependent, 6),
    ];
    for (i, (space, kind, log_std, want)) in cases.into_iter().enumerate() {
        let head = ActionHead::new(&(&p / i), &space, kind, log_std).unwrap();
        assert_eq!(head.kind(), kind);
        assert_eq!(head.num_params(), want, "{kind:?} on {space} with {log_std:?}");
    }
}

#[test]
fn a_state_independent_log_std_is_a_named_trainable_parameter() {
    let vs = nn::VarStore::new(Device::Cpu);
    let head = ActionHead::new(
        &(vs.root() / "policy"),
        &boxed(2),
        DistributionKind::DiagGaussian,
        LogStd::Parameter { init: -0.5 },
    )
    .unwrap();
    let vars = vs.variables();
    let log_std = vars.get("policy.log_std").expect("log_std should be registered");
    assert!(log_std.requires_grad(), "log_std must be trainable");
    assert_eq!(Vec::<f32>::try_from(log_std).unwrap(), [-0.5, -0.5]);
    assert!(head.log_std_parameter().is_some());

    // The distribution's std comes from the parameter, for every row.
    let dist = head.distribution(&Tensor::zeros([4, 2], (Kind::Float, Device::Cpu)));
    let entropy = dist.entropy().unwrap();
    let per_dim = 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5;
    let err = (entropy - 2.0 * per_dim).abs().max().double_value(&[]);
    assert!(err < 1e-6, "entropy does not reflect log_std = -0.5 (error {err})");
}

#[test]
fn state_dependent_log_std_is_split_from_the_outputs_and_clamped() {
    let vs = nn::VarStore::new(Device::Cpu);
    let head = ActionHead::new(
        &vs.root(),
        &boxed(1),
        DistributionKind::DiagGaussian,
        LogStd::StateDependent,
    )
    .unwrap();
    assert!(vs.variables().is_empty(), "no parameter is needed when the network outputs log_std");
    // Rows: (mean, log_std) = (0, 100) and (0, -100): clamped to LOG_STD_MAX and LOG_STD_MIN.
    let params = Tensor::from_slice(&[0.0f64, 100.0, 0.0, -100.0]).view([2, 2]);
    let entropy = head.distribution(&params).entropy().unwrap();
    let constant = 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln();
    let got = Vec::<f64>::try_from(&entropy).unwrap();
    assert!((got[0] - (constant + LOG_STD_MAX)).abs() < 1e-9, "upper clamp: {got:?}");
    assert!((got[1] - (constant + LOG_STD_MIN)).abs() < 1e-9, "lower clamp: {got:?}");
}

#[test]
fn samples_have_the_contracted_kinds_and_shapes() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root();
    let discrete = ActionHead::new(
        &(&p / "d"),
        &Space::Discrete(4),
        DistributionKind::Categorical,
        LogStd::StateDependent,
    )
    .unwrap();
    let a = discrete.distribution(&Tensor::zeros([7, 4], (Kind::Float, Device::Cpu))).sample();
    assert_eq!((a.kind(), a.size()), (Kind::Int64, vec![7]));
    let squashed = ActionHead::new(
        &(&p / "s"),
        &Space::Box(BoxSpace::new(vec![0.0, -3.0], vec![1.0, 3.0])),
        DistributionKind::SquashedGaussian,
        LogStd::Parameter { init: 0.0 },
    )
    .unwrap();
    let dist = squashed.distribution(&Tensor::zeros([7, 2], (Kind::Float, Device::Cpu)));
    let a = dist.sample();
    assert_eq!((a.kind(), a.size()), (Kind::Float, vec![7, 2]));
    assert_eq!(dist.log_prob(&a).size(), vec![7], "log_prob is summed over action dimensions");
}

#[test]
fn mismatched_families_and_spaces_are_rejected_with_a_reason() {
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root();
    let any = LogStd::Parameter { init: 0.0 };
    let reason = |space: Space, kind| match ActionHead::new(&p, &space, kind, any) {
        Err(DistributionError::UnsupportedSpace { reason, .. }) => reason,
        other => panic!("{kind:?} on {space} should be unsupported, got {other:?}"),
    };
    assert!(reason(boxed(2), DistributionKind::Categorical).contains("Discrete"));
    assert!(reason(Space::Discrete(2), DistributionKind::DiagGaussian).contains("Box"));
    assert!(reason(Space::Discrete(0), DistributionKind::Categorical).contains("empty"));
    let unbounded = Space::Box(BoxSpace::uniform(1, f32::NEG_INFINITY, f32::INFINITY));
    assert!(reason(unbounded, DistributionKind::SquashedGaussian).contains("finite bounds"));
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.flatten(0, -1)).expect("floats")
}

/// `act_from_outputs` against the tensor distribution's `sample` (same seed) and `mode`.
fn check_against_tensor_distribution(head: &ActionHead, outputs: &Tensor, seed: i64) {
    let dist = head.distribution(outputs);
    let values = floats(outputs);
    for deterministic in [false, true] {
        tch::manual_seed(seed);
        let expected = if deterministic { dist.mode() } else { dist.sample() };
        tch::manual_seed(seed);
        let got = head.act_from_outputs(&values, deterministic).expect("handled");
        assert_eq!((got.kind(), got.size()), (expected.kind(), expected.size()));
        if got.kind() == Kind::Int64 {
            assert!(got.equal(&expected), "deterministic {deterministic}: {got} vs {expected}");
        } else {
            let diff = (&got - &expected).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "deterministic {deterministic}: differ by {diff}");
        }
    }
}

#[test]
fn plain_rust_acting_matches_the_tensor_distributions() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let options = (Kind::Float, Device::Cpu);
    let categorical = ActionHead::new(
        &(&root / "c"),
        &Space::Discrete(5),
        DistributionKind::Categorical,
        LogStd::StateDependent,
    )
    .unwrap();
    let boxed = Space::Box(BoxSpace::uniform(3, -1.0, 1.0));
    let gaussian = ActionHead::new(
        &(&root / "g"),
        &boxed,
        DistributionKind::DiagGaussian,
        LogStd::Parameter { init: -0.3 },
    )
    .unwrap();
    let state_dependent = ActionHead::new(
        &(&root / "s"),
        &boxed,
        DistributionKind::DiagGaussian,
        LogStd::StateDependent,
    )
    .unwrap();
    for seed in 0..20 {
        tch::manual_seed(100 + seed);
        check_against_tensor_distribution(
            &categorical,
            &(Tensor::randn([64, 5], options) * 3.0),
            seed,
        );
        check_against_tensor_distribution(&gaussian, &Tensor::randn([16, 3], options), seed);
        check_against_tensor_distribution(
            &state_dependent,
            &(Tensor::randn([16, 6], options) * 5.0),
            seed,
        );
    }
}

#[test]
fn the_squashed_gaussian_is_left_to_its_tensor_distribution() {
    let vs = nn::VarStore::new(Device::Cpu);
    let boxed = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    let head = ActionHead::new(
        &vs.root(),
        &boxed,
        DistributionKind::SquashedGaussian,
        LogStd::StateDependent,
    )
    .unwrap();
    assert!(head.act_from_outputs(&[0.1, -0.2], false).is_none());
}
