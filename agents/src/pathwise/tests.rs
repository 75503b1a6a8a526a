//! Tests of the pathwise agent: its settings, targets, steps, schedule and saved state.

use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor};

use crate::agent::{ActMode, Agent, AgentError, Transition};
use crate::distributions::GumbelSoftmax;
use crate::optim::FlatParams;
use crate::replay::ReplaySample;
use crate::settings::{SettingsContext, WeightInit};

use super::actor;
use super::agent::{NAME, Variant, bootstrapped_target, smoothed_target_action};
use super::settings::MAX_LOGIT_BOUND;
use super::{DiscreteCritic, Estimator, Exploration, Pathwise, PathwiseConfig};

fn pendulum_spaces() -> (Space, Space) {
    (
        Space::Box(BoxSpace::new(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0])),
        Space::Box(BoxSpace::uniform(1, -2.0, 2.0)),
    )
}

fn agent(cfg: &PathwiseConfig, seed: i64) -> Pathwise {
    tch::manual_seed(seed);
    let (obs, act) = pendulum_spaces();
    Pathwise::new(cfg, &obs, &act, 1).unwrap()
}

/// Stores `n` transitions with observations, actions and rewards derived from the index.
fn fill(agent: &mut Pathwise, n: usize) {
    for i in 0..n {
        let x = i as f32 / n as f32;
        let obs = [x.cos(), x.sin(), x];
        let next = [x.sin(), x.cos(), -x];
        agent.replay.push(&obs, &[2.0 * x - 1.0], &[-f64::from(x)], &[i % 7 == 0], &next).unwrap();
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn defaults_are_valid_and_round_trip_through_serde() {
    let cfg = PathwiseConfig::default();
    cfg.validate(&SettingsContext::RANGES_ONLY).expect("defaults must validate");
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<PathwiseConfig>(&json).unwrap(), cfg);
    let partial: PathwiseConfig =
        serde_json::from_str(r#"{"estimator": "td3", "tau": 0.01}"#).unwrap();
    assert_eq!(
        partial,
        PathwiseConfig { estimator: Estimator::Td3, tau: 0.01, ..PathwiseConfig::default() }
    );
    assert!(serde_json::from_str::<PathwiseConfig>(r#"{"tua": 0.01}"#).is_err());
    assert!(serde_json::from_str::<PathwiseConfig>(r#"{"estimator": "ddpg"}"#).is_err());
}

#[test]
fn validate_names_the_key_and_the_allowed_range() {
    let bad = |f: fn(&mut PathwiseConfig)| {
        let mut cfg = PathwiseConfig::default();
        f(&mut cfg);
        cfg.validate(&SettingsContext::RANGES_ONLY).unwrap_err().to_string()
    };
    assert_eq!(bad(|c| c.tau = 0.0), "tau: must be in (0, 1], got 0");
    assert_eq!(bad(|c| c.gamma = 1.5), "gamma: must be in (0, 1], got 1.5");
    assert_eq!(bad(|c| c.batch_size = 0), "batch_size: must be an integer >= 1, got 0");
    assert_eq!(
        bad(|c| c.updates_per_step = 0.0),
        "updates_per_step: must be a finite number > 0, got 0"
    );
    for (key, message) in [
        ("actor_learning_rate", bad(|c| c.actor_learning_rate = -1.0)),
        ("critic_learning_rate", bad(|c| c.critic_learning_rate = f64::NAN)),
        ("alpha_learning_rate", bad(|c| c.alpha_learning_rate = 0.0)),
        ("buffer_size", bad(|c| c.buffer_size = 0)),
        ("actor_hidden", bad(|c| c.actor_hidden = vec![0])),
        ("critic_hidden", bad(|c| c.critic_hidden = vec![64, 0])),
        ("alpha", bad(|c| c.alpha = 0.0)),
        ("target_entropy", bad(|c| c.target_entropy = Some(f64::INFINITY))),
        ("exploration_noise", bad(|c| c.exploration_noise = -0.1)),
        ("policy_noise", bad(|c| c.policy_noise = f64::NAN)),
        ("noise_clip", bad(|c| c.noise_clip = -1.0)),
        ("policy_delay", bad(|c| c.policy_delay = 0)),
        ("gumbel_temperature", bad(|c| c.gumbel_temperature = 0.0)),
        ("max_grad_norm", bad(|c| c.max_grad_norm = -1.0)),
        ("metrics_every", bad(|c| c.metrics_every = 0)),
        ("logit_bound", bad(|c| c.logit_bound = -1.0)),
        ("logit_bound", bad(|c| c.logit_bound = f64::INFINITY)),
        ("logit_bound", bad(|c| c.logit_bound = 9.0)),
        ("max_alpha", bad(|c| c.max_alpha = f64::NAN)),
        ("max_alpha", bad(|c| c.max_alpha = 0.5)),
    ] {
        assert!(message.starts_with(&format!("{key}: ")), "{key} not named in: {message}");
    }
}

/// A SAC agent on 3-wide observations and `Discrete(3)` actions, its buffer filled with 8
/// transitions, half of them terminated.
fn discrete_agent(cfg: &PathwiseConfig, seed: i64) -> Pathwise {
    tch::manual_seed(seed);
    let (obs_space, _) = pendulum_spaces();
    let mut agent = Pathwise::new(cfg, &obs_space, &Space::Discrete(3), 1).unwrap();
    for i in 0..8 {
        let x = i as f32 / 8.0;
        let mut one_hot = [0.0f32; 3];
        one_hot[i % 3] = 1.0;
        let (obs, next) = ([x, -x, 2.0 * x], [x.sin(), x.cos(), -x]);
        agent.replay.push(&obs, &one_hot, &[f64::from(x) + 1.0], &[i % 2 == 0], &next).unwrap();
    }
    agent
}

#[test]
fn discrete_soft_targets_are_the_exact_expectation_over_actions() {
    for discrete_critic in [DiscreteCritic::PerAction, DiscreteCritic::Concatenated] {
        exact_expectation_over_actions(discrete_critic);
    }
}

fn exact_expectation_over_actions(discrete_critic: DiscreteCritic) {
    let cfg = PathwiseConfig {
        gamma: 0.9,
        expected_discrete_value: true,
        discrete_critic,
        ..PathwiseConfig::default()
    };
    let agent = discrete_agent(&cfg, 3);
    let batch = agent.replay.get(&Tensor::arange(8, (Kind::Int64, Device::Cpu))).unwrap();
    let alpha = 0.7;
    let target = Vec::<f32>::try_from(&agent.td_target(&batch, alpha).unwrap()).unwrap();
    // By hand, row by row: the target critics at each one-hot, the policy's probabilities.
    let (probs, log_probs) = agent.actor.module.action_probs(&batch.next_obs).unwrap();
    for row in 0..8i64 {
        let next = batch.next_obs.get(row);
        let mut value = 0.0;
        for a in 0..3i64 {
            let mut one_hot = [0.0f32; 3];
            one_hot[a as usize] = 1.0;
            let input = Tensor::cat(&[&next, &Tensor::from_slice(&one_hot)], 0).view([1, 6]);
            let (q1, q2) = tch::no_grad(|| agent.critic_target.module.forward(&input));
            let q = q1.double_value(&[0]).min(q2.double_value(&[0]));
            let (p, lp) = (probs.double_value(&[row, a]), log_probs.double_value(&[row, a]));
            value += p * (q - alpha * lp);
        }
        let reward = batch.rewards.double_value(&[row]);
        let terminated = batch.terminated.double_value(&[row]);
        assert_eq!(terminated, if row % 2 == 0 { 1.0 } else { 0.0 }, "row {row} flag");
        let expected = reward + 0.9 * (1.0 - terminated) * value;
        let got = f64::from(target[row as usize]);
        assert!(
            (got - expected).abs() < 1e-5,
            "row {row} (terminated {terminated}): target {got}, hand-computed {expected}"
        );
    }
    // The expectation has no sampling noise: the same batch gives the same targets.
    let again = Vec::<f32>::try_from(&agent.td_target(&batch, alpha).unwrap()).unwrap();
    assert_eq!(target, again, "discrete soft targets must be deterministic");
}

#[test]
fn bounded_logits_keep_probabilities_inside_and_the_overshoot_pulls_back() {
    // Huge raw logits, and a row whose logits are all huge and equal-signed (bounding each
    // logit alone would squash it to a uniform policy).
    let raw = Tensor::from_slice(&[1e4f32, -1e4, 0.0, 3e5, 2e5, 2.5e5])
        .view([2, 3])
        .set_requires_grad(true);
    for bound in [3.0, MAX_LOGIT_BOUND] {
        let logits = actor::bounded_logits(&raw, bound);
        let max_abs = logits.abs().max().double_value(&[]);
        assert!(max_abs <= bound, "bound {bound}: a logit reached {max_abs}");
        let d = GumbelSoftmax::from_logits(&logits, 1.0, true);
        let probs = d.probs();
        let (lo, hi) = (probs.min().double_value(&[]), probs.max().double_value(&[]));
        assert!(lo > 0.0 && hi < 1.0, "bound {bound}: probabilities in [{lo}, {hi}]");
        let second = d.categorical_entropy().double_value(&[1]);
        assert!(second < 0.5 * 3f64.ln(), "bound {bound}: row 2 is near uniform ({second})");
        // Past the bound a descent step on the overshoot moves every raw logit back.
        let overshoot = actor::logit_overshoot(&raw, bound).sum(None);
        let grad = Tensor::run_backward(&[&overshoot], &[&raw], false, false).remove(0);
        let centred = &raw - raw.mean_dim(-1, true, None);
        let outward = (&grad * &centred).gt(0.0).logical_and(&centred.abs().gt(bound));
        let pulled = outward.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]);
        // Rows centre on 0: the ±1e4 and ±5e4 logits (four of six) are past the bound.
        assert_eq!(pulled, 4.0, "bound {bound}: overshoot gradient {grad:?}");
    }
    // Inside the bound there is no penalty, and small logits keep their policy.
    let small = Tensor::from_slice(&[0.1f32, -0.2, 0.05]).view([1, 3]);
    assert_eq!(actor::logit_overshoot(&small, 1.0).double_value(&[0]), 0.0);
    let moved = max_abs_diff(
        &actor::bounded_logits(&small, 8.0).softmax(-1, None),
        &small.softmax(-1, None),
    );
    assert!(moved < 1e-4, "a bound of 8 moved the probabilities of small logits by {moved}");
    // Without a bound the same raw logits saturate: the probabilities are exactly 0 and 1.
    let probs = actor::bounded_logits(&raw, 0.0).softmax(-1, None);
    assert_eq!(probs.max().double_value(&[]), 1.0, "unbounded logits should saturate");
}

#[test]
fn alpha_never_exceeds_its_cap() {
    // A target entropy above the uniform policy's ln 3 can never be met, so autotuning
    // raises α at every actor step.
    let cfg = PathwiseConfig {
        target_entropy: Some(5.0),
        alpha_learning_rate: 0.5,
        max_alpha: 3.0,
        batch_size: 8,
        policy_delay: 1,
        ..PathwiseConfig::default()
    };
    let mut capped = discrete_agent(&cfg, 4);
    let mut uncapped = discrete_agent(&PathwiseConfig { max_alpha: 0.0, ..cfg.clone() }, 4);
    for _ in 0..20 {
        capped.update().unwrap();
        uncapped.update().unwrap();
        assert!(capped.alpha() <= 3.0 + 1e-12, "alpha {} exceeds max_alpha 3", capped.alpha());
    }
    assert!((capped.alpha() - 3.0).abs() < 1e-9, "alpha {} should sit at its cap", capped.alpha());
    assert!(uncapped.alpha() > 100.0, "without a cap alpha only reached {}", uncapped.alpha());
}

#[test]
fn construction_rejects_what_the_agent_cannot_handle() {
    let cfg = PathwiseConfig::default();
    let (obs, act) = pendulum_spaces();
    let err = |r: Result<Pathwise, AgentError>| r.unwrap_err().to_string();
    assert!(err(Pathwise::new(&cfg, &obs, &act, 0)).contains("num_envs"));
    let small = PathwiseConfig { buffer_size: 2, ..cfg.clone() };
    assert!(err(Pathwise::new(&small, &obs, &act, 4)).starts_with("buffer_size: "));
    let never = PathwiseConfig { buffer_size: 50, learning_starts: 51, ..cfg.clone() };
    assert!(err(Pathwise::new(&never, &obs, &act, 1)).starts_with("learning_starts: "));
    let unbounded = Space::Box(BoxSpace::uniform(1, f32::NEG_INFINITY, f32::INFINITY));
    assert!(err(Pathwise::new(&cfg, &obs, &unbounded, 1)).contains("finite bounds"));
    let td3 = PathwiseConfig { estimator: Estimator::Td3, ..cfg.clone() };
    assert!(
        err(Pathwise::new(&td3, &obs, &Space::Discrete(2), 1))
            .starts_with("estimator: td3's deterministic actor needs continuous (Box) actions")
    );
    assert!(Pathwise::new(&cfg, &obs, &Space::Discrete(2), 1).is_ok(), "SAC takes Discrete");
}

#[test]
fn bootstrapped_target_masks_terminated_rows_only() {
    let rewards = Tensor::from_slice(&[1.0f32, 1.0, -2.0, 0.5]);
    let terminated = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0]);
    let next_value = Tensor::from_slice(&[10.0f32, 10.0, -4.0, 100.0]);
    let target = bootstrapped_target(&rewards, &terminated, &next_value, 0.9);
    // By hand: 1 + 0.9·10, 1 (terminated), −2 + 0.9·(−4), 0.5 (terminated).
    let expected = Tensor::from_slice(&[10.0f32, 1.0, -5.6, 0.5]);
    assert!(
        max_abs_diff(&target, &expected) < 1e-5,
        "targets {target:?} differ from the hand-computed {expected:?}"
    );
}

/// Three transitions from the same state: one ordinary, one cut by a time limit
/// (truncated, not terminated) and one true end. Returns the agent and the stored batch.
fn three_kinds_of_ends(cfg: &PathwiseConfig) -> (Pathwise, ReplaySample) {
    let cfg = PathwiseConfig { learning_starts: 1_000, ..cfg.clone() };
    let mut agent = agent(&cfg, 3);
    let obs = [0.6f32, 0.8, 0.5];
    let next = [0.8f32, 0.6, -1.5];
    for (truncated, terminated) in [(false, false), (true, false), (false, true)] {
        let actions = Tensor::from_slice(&[1.0f32]).view([1, 1]);
        agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &[-3.0],
                terminated: &[terminated],
                truncated: &[truncated],
                next_obs: &next,
            })
            .unwrap();
    }
    let batch = agent.replay.get(&Tensor::from_slice(&[0i64, 1, 2])).unwrap();
    (agent, batch)
}

#[test]
fn td3_target_bootstraps_through_truncation_and_stops_at_termination() {
    let cfg = PathwiseConfig {
        estimator: Estimator::Td3,
        policy_noise: 0.0,
        gamma: 0.9,
        ..PathwiseConfig::default()
    };
    let (agent, batch) = three_kinds_of_ends(&cfg);
    let stored: Vec<f32> = Vec::try_from(&batch.terminated).unwrap();
    assert_eq!(stored, [0.0, 0.0, 1.0], "only the true end may be stored as terminated");
    let target: Vec<f32> = Vec::try_from(&agent.td_target(&batch, 0.0).unwrap()).unwrap();
    // By hand: y = r + γ · min(Q1', Q2')(s', μ'(s')) for the first two rows, y = r for the last.
    let next = Tensor::from_slice(&[0.8f32, 0.6, -1.5]).view([1, 3]);
    let next_value = tch::no_grad(|| {
        let Variant::Td3 { target_actor } = &agent.variant else { panic!("not TD3") };
        let mu = target_actor.module.mode(&next);
        let (q1, q2) = agent.critic_target.module.forward(&Tensor::cat(&[&next, &mu], 1));
        q1.minimum(&q2).double_value(&[0])
    });
    let bootstrapped = -3.0 + 0.9 * next_value;
    for (row, expected) in [(0, bootstrapped), (1, bootstrapped), (2, -3.0)] {
        assert!(
            (f64::from(target[row]) - expected).abs() < 1e-5,
            "row {row}: target {} but by hand {expected} (next value {next_value})",
            target[row]
        );
    }
}

#[test]
fn sac_soft_value_subtracts_the_entropy_term_under_the_target_critics() {
    let cfg = PathwiseConfig::default();
    let (agent, batch) = three_kinds_of_ends(&cfg);
    let alpha = 0.3;
    let sample = agent.actor.module.sample_for_target(&batch.next_obs).unwrap();
    let value = agent.soft_value(&batch.next_obs, &sample, alpha);
    let (q1, q2) = tch::no_grad(|| {
        agent.critic_target.module.forward(&Tensor::cat(&[&batch.next_obs, &sample.actions], 1))
    });
    for row in 0..3 {
        let min_q = q1.double_value(&[row]).min(q2.double_value(&[row]));
        let log_prob = sample.neg_entropy.double_value(&[row]);
        let expected = min_q - alpha * log_prob;
        let got = value.double_value(&[row]);
        assert!(
            (got - expected).abs() < 1e-5,
            "row {row}: soft value {got}, by hand min Q {min_q} − {alpha}·{log_prob}"
        );
    }
    // The sampled action's log-probability, not a constant, is what is subtracted.
    let spread =
        sample.neg_entropy.max().double_value(&[]) - sample.neg_entropy.min().double_value(&[]);
    assert!(spread > 0.0, "three independent samples gave identical log-probabilities");
}

fn snapshot(params: &FlatParams) -> Tensor {
    params.values().copy()
}

#[test]
fn actor_step_changes_the_actor_and_leaves_the_critics_unchanged() {
    let concatenated = PathwiseConfig {
        discrete_critic: DiscreteCritic::Concatenated,
        ..PathwiseConfig::default()
    };
    let filled = |cfg: &PathwiseConfig| {
        let mut agent = agent(cfg, 5);
        fill(&mut agent, 64);
        agent
    };
    let agents = [
        ("sac", filled(&PathwiseConfig::default())),
        ("td3", filled(&PathwiseConfig { estimator: Estimator::Td3, ..PathwiseConfig::default() })),
        ("discrete, per-action critic", discrete_agent(&PathwiseConfig::default(), 5)),
        ("discrete, concatenated critic", discrete_agent(&concatenated, 5)),
    ];
    for (estimator, mut agent) in agents {
        let batch = agent.replay.sample(32).unwrap();
        let (actor, critic) = (snapshot(&agent.actor.params), snapshot(&agent.critic.params));
        let critic_target = snapshot(&agent.critic_target.params);
        agent.actor_step(&batch.obs, 0.2).unwrap();
        let moved = max_abs_diff(&actor, agent.actor.params.values());
        assert!(moved > 1e-6, "{estimator}: the actor step left the actor unchanged");
        let critic_moved = max_abs_diff(&critic, agent.critic.params.values());
        assert_eq!(critic_moved, 0.0, "{estimator}: the actor step changed the critic");
        let target_moved = max_abs_diff(&critic_target, agent.critic_target.params.values());
        assert_eq!(target_moved, 0.0, "{estimator}: the actor step changed the target");
        // The critics' own parameters carry no gradient from the actor loss either.
        let stray = agent.critic.store.trainable_variables().iter().any(|v| v.grad().defined());
        assert!(!stray, "{estimator}: the actor loss left gradients on the critic");
    }
}

#[test]
fn critic_step_changes_the_critics_and_leaves_the_actor_unchanged() {
    let mut agent = agent(&PathwiseConfig::default(), 6);
    fill(&mut agent, 64);
    let batch = agent.replay.sample(32).unwrap();
    let (actor, critic) = (snapshot(&agent.actor.params), snapshot(&agent.critic.params));
    let target = agent.td_target(&batch, 0.2).unwrap();
    agent.critic_step(&batch, &target).unwrap();
    assert!(max_abs_diff(&critic, agent.critic.params.values()) > 1e-6, "critic did not move");
    assert_eq!(max_abs_diff(&actor, agent.actor.params.values()), 0.0, "actor moved");
}

#[test]
fn td3_smoothing_noise_is_clipped_and_actions_stay_in_the_box() {
    tch::manual_seed(0);
    let mu = Tensor::from_slice(&[-1.0f32, -0.3, 0.0, 0.9]).view([4, 1]).repeat([5000, 1]);
    let a = smoothed_target_action(&mu, 10.0, 0.5);
    let shift = (&a - &mu).abs().max().double_value(&[]);
    assert!(shift <= 0.5 + 1e-6, "noise beyond the clip: |a − μ| up to {shift}");
    let (lo, hi) = (a.min().double_value(&[]), a.max().double_value(&[]));
    assert!(lo >= -1.0 && hi <= 1.0, "smoothed actions leave [−1, 1]: [{lo}, {hi}]");
    // With noise std 10 the clip binds almost always: μ = −0.3 lands on −0.8 or 0.2.
    let middle = a.reshape([5000, 4]).select(1, 1);
    let on_edges = ((&middle + 0.8).abs().lt(1e-5).logical_or(&(&middle - 0.2).abs().lt(1e-5)))
        .to_kind(Kind::Float)
        .mean(None)
        .double_value(&[]);
    assert!(on_edges > 0.9, "only {on_edges} of large noises were clipped to ±0.5");
    let no_noise = smoothed_target_action(&mu, 0.0, 0.5);
    assert_eq!(max_abs_diff(&no_noise, &mu), 0.0, "zero policy noise must return μ");
}

#[test]
fn updates_follow_learning_starts_and_the_update_to_data_ratio() {
    let cfg = PathwiseConfig {
        learning_starts: 10,
        updates_per_step: 0.75,
        batch_size: 8,
        ..PathwiseConfig::default()
    };
    tch::manual_seed(0);
    let (obs_space, act_space) = pendulum_spaces();
    let mut agent = Pathwise::new(&cfg, &obs_space, &act_space, 2).unwrap();
    let obs = [0.0f32, 1.0, 0.0, 1.0, 0.0, 0.0];
    let mut counts = Vec::new();
    for _ in 0..10 {
        let actions = agent.act(&Tensor::from_slice(&obs).view([2, 3]), ActMode::Explore);
        agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &[0.0, 0.0],
                terminated: &[false, false],
                truncated: &[false, false],
                next_obs: &obs,
            })
            .unwrap();
        counts.push(agent.updates());
    }
    // 2 transitions per step; from the 10th transition on, 0.75 updates per transition.
    assert_eq!(counts, [0, 0, 0, 0, 1, 3, 4, 6, 7, 9], "updates after each step");
}

#[test]
fn acting_is_uniform_before_learning_starts_and_in_the_env_form_after() {
    let (obs_space, act_space) = pendulum_spaces();
    tch::manual_seed(1);
    let cfg = PathwiseConfig { learning_starts: 5, ..PathwiseConfig::default() };
    let mut agent = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    let obs = Tensor::zeros([4000, 3], (Kind::Float, Device::Cpu));
    let random = agent.act(&obs, ActMode::Explore);
    assert_eq!(random.size(), vec![4000, 1]);
    let (lo, hi, mean) = (
        random.min().double_value(&[]),
        random.max().double_value(&[]),
        random.mean(None).double_value(&[]),
    );
    assert!(lo >= -2.0 && hi <= 2.0 && lo < -1.9 && hi > 1.9, "not uniform on [−2, 2]");
    assert!(mean.abs() < 0.1, "uniform actions on [−2, 2] average {mean}");
    // Deterministic acting uses the policy even before learning starts.
    let a = agent.act(&obs, ActMode::Deterministic);
    assert_eq!(max_abs_diff(&a, &a.narrow(0, 0, 1).expand_as(&a)), 0.0, "one state, one mode");

    let mut discrete = Pathwise::new(&cfg, &obs_space, &Space::Discrete(3), 1).unwrap();
    for mode in [ActMode::Explore, ActMode::Deterministic] {
        let a = discrete.act(&obs, mode);
        assert_eq!((a.kind(), a.size()), (Kind::Int64, vec![4000]), "{mode:?}");
        let (lo, hi) = (a.min().int64_value(&[]), a.max().int64_value(&[]));
        assert!(lo >= 0 && hi <= 2, "{mode:?} actions outside 0..3: [{lo}, {hi}]");
    }
}

#[test]
fn discrete_actions_are_stored_one_hot_and_train() {
    let (obs_space, _) = pendulum_spaces();
    tch::manual_seed(2);
    let cfg = PathwiseConfig {
        learning_starts: 1,
        batch_size: 4,
        metrics_every: 1,
        ..PathwiseConfig::default()
    };
    let mut agent = Pathwise::new(&cfg, &obs_space, &Space::Discrete(3), 1).unwrap();
    let obs = [0.1f32, 0.2, 0.3];
    let mut metrics = None;
    for a in [2i64, 0, 1] {
        metrics = agent
            .observe(&Transition {
                obs: &obs,
                actions: &Tensor::from_slice(&[a]),
                rewards: &[1.0],
                terminated: &[false],
                truncated: &[false],
                next_obs: &obs,
            })
            .unwrap();
    }
    let stored = agent.replay.get(&Tensor::from_slice(&[0i64, 1, 2])).unwrap().actions;
    let expected =
        Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).view([3, 3]);
    assert_eq!(max_abs_diff(&stored, &expected), 0.0, "stored actions {stored:?}");
    let tags: Vec<&str> = metrics.expect("an update happened").iter().map(|(t, _)| *t).collect();
    for tag in [
        "losses/qf1_loss",
        "losses/qf2_loss",
        "losses/qf1_values",
        "losses/actor_loss",
        "losses/alpha",
        "losses/alpha_loss",
    ] {
        assert!(tags.contains(&tag), "metrics lack {tag}: {tags:?}");
    }
    let bad = agent.observe(&Transition {
        obs: &obs,
        actions: &Tensor::from_slice(&[3i64]),
        rewards: &[1.0],
        terminated: &[false],
        truncated: &[false],
        next_obs: &obs,
    });
    assert!(bad.unwrap_err().to_string().contains("outside Discrete(3)"));
}

#[test]
fn a_non_finite_reward_is_reported_by_the_loss_it_poisons() {
    let mut agent = agent(&PathwiseConfig { learning_starts: 1, ..PathwiseConfig::default() }, 4);
    let obs = [0.0f32, 1.0, 0.0];
    let err = agent
        .observe(&Transition {
            obs: &obs,
            actions: &Tensor::from_slice(&[0.5f32]).view([1, 1]),
            rewards: &[f64::NAN],
            terminated: &[false],
            truncated: &[false],
            next_obs: &obs,
        })
        .unwrap_err();
    match err {
        AgentError::NonFinite { quantity, agent, .. } => {
            assert_eq!((agent, quantity.as_str()), (NAME, "losses/qf1_loss"));
        }
        other => panic!("expected NonFinite, got {other}"),
    }
}

#[test]
fn checkpoints_round_trip_and_bad_ones_leave_the_agent_intact() {
    for estimator in [Estimator::Sac, Estimator::Td3] {
        let cfg = PathwiseConfig { estimator, alpha: 0.3, ..PathwiseConfig::default() };
        let mut source = agent(&cfg, 7);
        fill(&mut source, 64);
        for _ in 0..4 {
            source.update().unwrap();
        }
        let mut dest = agent(&cfg, 8);
        let saved = source.named_tensors();
        let names: Vec<&str> = saved.iter().map(|(n, _)| n.as_str()).collect();
        for prefix in [
            "actor/",
            "critic/q1.",
            "critic/q2.",
            "critic_target/q1.",
            "critic_target/q2.",
            "actor_adam/exp_avg",
            "critic_adam/exp_avg_sq",
            "critic_adam/steps",
        ] {
            assert!(names.iter().any(|n| n.starts_with(prefix)), "{estimator:?}: no {prefix}*");
        }
        let sac = estimator == Estimator::Sac;
        assert_eq!(names.contains(&"log_alpha"), sac);
        assert_eq!(names.contains(&"alpha_adam/moments"), sac);
        assert_eq!(names.iter().any(|n| n.starts_with("actor_target/")), !sac);

        let obs = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        let before = dest.act(&obs, ActMode::Deterministic);
        let copy = || saved.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        let mut missing: Vec<(String, Tensor)> = copy();
        missing.retain(|(n, _)| n != "critic_adam/steps");
        let err = dest.load_named_tensors(&missing).unwrap_err().to_string();
        assert!(err.contains("missing tensor 'critic_adam/steps'"), "{err}");
        let mut wrong: Vec<(String, Tensor)> = copy();
        wrong[0].1 = Tensor::zeros([1], (Kind::Float, Device::Cpu));
        let err = dest.load_named_tensors(&wrong).unwrap_err().to_string();
        assert!(err.contains(&format!("'{}'", wrong[0].0)) && err.contains("expected"), "{err}");
        let mut stray: Vec<(String, Tensor)> = copy();
        stray.push(("critic/q3.out.bias".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
        assert!(dest.load_named_tensors(&stray).unwrap_err().to_string().contains("q3"));
        let after = dest.act(&obs, ActMode::Deterministic);
        assert_eq!(max_abs_diff(&before, &after), 0.0, "a refused checkpoint changed the agent");

        dest.load_named_tensors(&saved).unwrap();
        let (a, b) =
            (source.act(&obs, ActMode::Deterministic), dest.act(&obs, ActMode::Deterministic));
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{estimator:?}: loaded agent acts differently");
        assert!((dest.alpha() - source.alpha()).abs() < 1e-12);
        let restored = dest.named_tensors();
        assert_eq!(restored.len(), saved.len());
        for ((n, x), (m, y)) in saved.iter().zip(restored.iter()) {
            assert_eq!(n, m);
            assert_eq!(max_abs_diff(x, y), 0.0, "{n} not restored");
        }
    }
}

#[test]
fn training_state_restores_the_replay_buffer_and_the_schedule() {
    let cfg =
        PathwiseConfig { learning_starts: 4, updates_per_step: 0.5, ..PathwiseConfig::default() };
    let (obs_space, act_space) = pendulum_spaces();
    tch::manual_seed(9);
    let mut source = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    let obs = [0.0f32, 1.0, 0.5];
    let step = |agent: &mut Pathwise| {
        let actions = Tensor::from_slice(&[0.25f32]).view([1, 1]);
        agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &[-1.0],
                terminated: &[false],
                truncated: &[false],
                next_obs: &obs,
            })
            .unwrap();
    };
    for _ in 0..7 {
        step(&mut source);
    }
    assert_eq!((source.updates(), source.update_credit), (2, 0.0), "4 transitions → 2 updates");
    step(&mut source);
    assert_eq!(source.update_credit, 0.5, "an odd transition leaves half an update owed");

    let mut dest = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    dest.load_named_tensors(&source.named_tensors()).unwrap();
    dest.load_training_state(&source.training_state(true).unwrap()).unwrap();
    assert_eq!(
        (dest.env_steps, dest.updates, dest.update_credit, dest.replay_len()),
        (source.env_steps, source.updates, source.update_credit, source.replay_len())
    );
    for ((n, x), (_, y)) in
        source.training_state(true).unwrap().iter().zip(&dest.training_state(true).unwrap())
    {
        assert_eq!(max_abs_diff(x, y), 0.0, "training state '{n}' not restored");
    }
    // The owed half update is paid on the next transition, as it would have been.
    step(&mut dest);
    assert_eq!(dest.updates(), source.updates() + 1);

    // Without the replay buffer the agent refills learning_starts transitions first.
    let mut refill = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    refill.load_training_state(&source.training_state(false).unwrap()).unwrap();
    assert_eq!(refill.replay_len(), 0);
    for _ in 0..3 {
        step(&mut refill);
    }
    assert_eq!(refill.updates(), source.updates(), "updated before the buffer refilled");
    step(&mut refill);
    assert!(refill.updates() > source.updates(), "no update once refilled");

    // The metric sums since the last report carry over, in order.
    let mut sums = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    sums.load_training_state(&source.training_state(false).unwrap()).unwrap();
    assert!(!source.metrics.sums.is_empty(), "the source has unreported metrics");
    assert_eq!(sums.metrics.sums, source.metrics.sums, "metric sums differ after loading");

    let mut bad = source.training_state(false).unwrap();
    bad.push(("rollout/obs".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
    assert!(refill.load_training_state(&bad).unwrap_err().to_string().contains("rollout/obs"));
    let mut negative = source.training_state(false).unwrap();
    for (n, t) in &mut negative {
        if n == "updates" {
            *t = Tensor::from_slice(&[-3i64]);
        }
    }
    assert!(refill.load_training_state(&negative).unwrap_err().to_string().contains("negative"));
}

#[test]
fn pink_exploration_is_box_only_correlates_actions_and_resumes_exactly() {
    let (obs_space, act_space) = pendulum_spaces();
    let cfg = PathwiseConfig {
        exploration: Exploration::Pink,
        learning_starts: 0,
        ..PathwiseConfig::default()
    };
    // The setting's rule: Box actions only.
    let err = Pathwise::new(&cfg, &obs_space, &Space::Discrete(3), 1).unwrap_err().to_string();
    assert!(err.contains("exploration") && err.contains("\"pink\""), "{err}");
    cfg.validate(&SettingsContext::RANGES_ONLY).unwrap();
    assert_eq!(PathwiseConfig::default().exploration, Exploration::Gaussian);

    // One state, many steps: the squashed pre-tanh actions follow the noise, so consecutive
    // actions correlate under pink noise and not under Gaussian noise.
    let obs = Tensor::from_slice(&[0.0f32, 1.0, 0.5]).view([1, 3]);
    let lag1 = |exploration: Exploration| {
        tch::manual_seed(2);
        let cfg = PathwiseConfig { exploration, ..cfg.clone() };
        let mut agent = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
        let a: Vec<f64> =
            (0..4000).map(|_| agent.act(&obs, ActMode::Explore).double_value(&[0, 0])).collect();
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
        a.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>() / var
    };
    let (pink, white) = (lag1(Exploration::Pink), lag1(Exploration::Gaussian));
    assert!(pink > 0.5 && white.abs() < 0.15, "lag-1 autocorrelation: pink {pink}, white {white}");

    // The generator is training state: a restored agent draws the same next action.
    tch::manual_seed(3);
    let mut source = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    for _ in 0..30 {
        let _ = source.act(&obs, ActMode::Explore);
    }
    let state = source.training_state(false).unwrap();
    assert!(state.iter().any(|(n, _)| n.starts_with("exploration/")), "no generator state");
    let mut dest = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    dest.load_named_tensors(&source.named_tensors()).unwrap();
    dest.load_training_state(&state).unwrap();
    for ((n, x), (_, y)) in state.iter().zip(&dest.training_state(false).unwrap()) {
        assert_eq!(max_abs_diff(x, y), 0.0, "training state '{n}' not restored");
    }
    // A Gaussian agent's training state has no generator, and refuses one.
    let gaussian = PathwiseConfig { exploration: Exploration::Gaussian, ..cfg.clone() };
    let mut plain = Pathwise::new(&gaussian, &obs_space, &act_space, 1).unwrap();
    let err = plain.load_training_state(&state).unwrap_err().to_string();
    assert!(err.contains("exploration/"), "{err}");
}

#[test]
fn layer_init_sets_how_wide_the_actors_and_critics_weights_start() {
    // Pendulum: 3 observations, so the actor's first layer has fan-in 3 and the critics' 4.
    for (init, widest) in [(WeightInit::Pytorch, 1.0), (WeightInit::KaimingUniform, 6f64.sqrt())] {
        let cfg = PathwiseConfig { layer_init: init, ..PathwiseConfig::default() };
        let agent = agent(&cfg, 5);
        let mut seen = 0;
        for (name, t) in agent.named_tensors() {
            let fan_in = match name.as_str() {
                "actor/fc0.weight" => 3.0,
                "critic/q1.fc0.weight" | "critic/q2.fc0.weight" => 4.0,
                "actor/fc1.weight" | "critic/q1.fc1.weight" => 64.0,
                _ => continue,
            };
            seen += 1;
            let bound = widest / f64::sqrt(fan_in);
            let max = t.abs().max().double_value(&[]);
            assert!(
                max <= bound && max > 0.8 * bound,
                "{init:?} {name}: max |w| {max}, bound {bound}"
            );
        }
        assert_eq!(seen, 5, "{init:?}: the weights looked for");
    }
}

#[test]
fn the_plain_rust_update_applies_only_where_it_computes_the_same_update() {
    let sac = PathwiseConfig::default();
    assert!(discrete_agent(&sac, 1).uses_cpu_update());
    let concatenated =
        PathwiseConfig { discrete_critic: DiscreteCritic::Concatenated, ..sac.clone() };
    assert!(!discrete_agent(&concatenated, 1).uses_cpu_update());
    let diagnostics = PathwiseConfig { grad_diagnostics: true, ..sac.clone() };
    assert!(!discrete_agent(&diagnostics, 1).uses_cpu_update());
    assert!(agent(&sac, 1).uses_cpu_update(), "SAC on a Box");
    let td3 = PathwiseConfig { estimator: Estimator::Td3, ..sac.clone() };
    assert!(!agent(&td3, 1).uses_cpu_update(), "TD3 takes the tensor code");
}

#[test]
fn the_plain_rust_update_refuses_a_non_finite_loss_and_changes_nothing() {
    let cfg = PathwiseConfig { learning_starts: 1_000_000, ..PathwiseConfig::default() };
    let mut agent = discrete_agent(&cfg, 2);
    assert!(agent.uses_cpu_update());
    agent
        .replay
        .push(&[0.0, 0.0, 0.0], &[1.0, 0.0, 0.0], &[f64::NAN], &[false], &[0.0; 3])
        .unwrap();
    let before = snapshot(&agent.critic.params);
    // With 9 transitions and 256 draws, the poisoned one is drawn.
    let err = agent.update().unwrap_err();
    match err {
        AgentError::NonFinite { quantity, .. } => assert_eq!(quantity, "losses/qf1_loss"),
        other => panic!("expected NonFinite, got {other}"),
    }
    assert_eq!(max_abs_diff(&before, agent.critic.params.values()), 0.0, "the critic moved");
}
