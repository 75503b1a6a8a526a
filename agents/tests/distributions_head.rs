//! The action-space factory: which family each space gets, how many network outputs it needs,
//! and the parameters it creates. (How the outputs become actions and log-probabilities is
//! checked through the agents, by hand from their weights: `tests/reinforce_agent.rs` for the
//! score-function heads, `tests/pathwise_update.rs` for the pathwise actor's.)

use rlpg_agents::distributions::{ActionHead, DistributionError, DistributionKind, LogStd};
use rlpg_agents::{Agent, Estimator, Pathwise, PathwiseConfig};
use rlpg_envs::{BoxSpace, Space};
use tch::{Device, nn};

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
    ];
    for (i, (space, kind, log_std, want)) in cases.into_iter().enumerate() {
        let head = ActionHead::new(&(&p / i), &space, kind, log_std).unwrap();
        assert_eq!(head.kind(), kind);
        assert_eq!(head.num_params(), want, "{kind:?} on {space} with {log_std:?}");
    }
}

#[test]
fn the_pathwise_actor_outputs_means_and_log_stds_logits_or_actions() {
    // SAC's squashed Gaussian: d means and d log-stds; its Gumbel-softmax: n logits; TD3's
    // deterministic actor: d actions.
    let obs = boxed(4);
    let cases = [
        (Estimator::Sac, boxed(3), 6),
        (Estimator::Sac, Space::Discrete(5), 5),
        (Estimator::Td3, boxed(3), 3),
    ];
    for (estimator, space, want) in cases {
        let cfg = PathwiseConfig { estimator, ..PathwiseConfig::default() };
        let agent = Pathwise::new(&cfg, &obs, &space, 1).expect("agent");
        let tensors = agent.named_tensors();
        let shape = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.size());
        assert_eq!(shape("actor/out.bias"), Some(vec![want]), "{estimator:?} on {space}");
        assert_eq!(shape("actor/out.weight"), Some(vec![want, 64]), "{estimator:?} on {space}");
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
    assert!(head.has_log_std_parameter());
    // That the distribution's std comes from it, for every row: `tests/reinforce_agent.rs`
    // (the entropy an update reports, and the actions' spread).
}

#[test]
fn a_state_dependent_log_std_needs_no_parameter() {
    let vs = nn::VarStore::new(Device::Cpu);
    let head = ActionHead::new(
        &vs.root(),
        &boxed(1),
        DistributionKind::DiagGaussian,
        LogStd::StateDependent,
    )
    .unwrap();
    assert!(vs.variables().is_empty(), "no parameter is needed when the network outputs log_std");
    assert!(!head.has_log_std_parameter());
    assert_eq!(head.num_params(), 2, "a mean and a log-std per dimension");
    // The categorical ignores the log-std setting.
    let vs = nn::VarStore::new(Device::Cpu);
    let head = ActionHead::new(
        &vs.root(),
        &Space::Discrete(4),
        DistributionKind::Categorical,
        LogStd::Parameter { init: 0.0 },
    )
    .unwrap();
    assert!(vs.variables().is_empty() && !head.has_log_std_parameter());
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
    assert!(reason(boxed(0), DistributionKind::DiagGaussian).contains("empty"));
}
