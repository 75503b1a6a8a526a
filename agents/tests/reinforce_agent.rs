//! The REINFORCE agent through the `Agent` contract: action shapes, the update schedule and its
//! metrics, learning on one-step bandits (the sign of the score-function gradient), checkpoints,
//! and the errors it reports.

use std::sync::Mutex;

use rlpg_agents::{ActMode, Agent, AgentError, Metrics, Reinforce, ReinforceConfig, Transition};
use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor};

/// Tests seed tch's global generator; hold this while building and driving an agent.
static RNG: Mutex<()> = Mutex::new(());

const TAGS: [&str; 6] = [
    "losses/policy_loss",
    "losses/value_loss",
    "losses/entropy",
    "losses/approx_kl",
    "losses/explained_variance",
    "losses/grad_norm",
];

fn obs_space(dim: usize) -> Space {
    Space::Box(BoxSpace::uniform(dim, -1.0, 1.0))
}

fn small(n_steps: usize) -> ReinforceConfig {
    ReinforceConfig { n_steps, hidden: vec![16], ..ReinforceConfig::default() }
}

/// One step of `n` envs in which every episode ends after a single action (a bandit).
fn bandit_step(
    agent: &mut Reinforce,
    obs: &[f32],
    reward: impl Fn(&Tensor) -> Vec<f64>,
) -> Result<Option<Vec<(&'static str, f64)>>, AgentError> {
    let n = obs.len();
    let obs_t = Tensor::from_slice(obs).view([n as i64, 1]);
    let actions = agent.act(&obs_t, ActMode::Explore);
    let rewards = reward(&actions);
    agent.observe(&Transition {
        obs,
        actions: &actions,
        rewards: &rewards,
        terminated: &vec![true; n],
        truncated: &vec![false; n],
        next_obs: obs,
    })
}

#[test]
fn actions_have_the_contracted_kinds_and_shapes() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(1);
    let obs = Tensor::zeros([5, 3], (Kind::Float, Device::Cpu));
    let mut discrete = Reinforce::new(&small(4), &obs_space(3), &Space::Discrete(4), 5).unwrap();
    for mode in [ActMode::Explore, ActMode::Deterministic] {
        let a = discrete.act(&obs, mode);
        assert_eq!((a.kind(), a.size()), (Kind::Int64, vec![5]), "discrete actions in {mode:?}");
    }
    let mut continuous =
        Reinforce::new(&small(4), &obs_space(3), &Space::Box(BoxSpace::uniform(2, -2.0, 2.0)), 5)
            .unwrap();
    for mode in [ActMode::Explore, ActMode::Deterministic] {
        let a = continuous.act(&obs, mode);
        assert_eq!((a.kind(), a.size()), (Kind::Float, vec![5, 2]), "continuous in {mode:?}");
        assert!(!a.requires_grad(), "act must not record gradients ({mode:?})");
    }
    let a = continuous.act(&obs, ActMode::Deterministic);
    let b = continuous.act(&obs, ActMode::Deterministic);
    assert!(a.equal(&b), "deterministic actions must not depend on the random stream");
}

#[test]
fn updates_after_every_n_steps_with_the_documented_metrics() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(2);
    let mut agent = Reinforce::new(&small(3), &obs_space(1), &Space::Discrete(2), 4).unwrap();
    let obs = [0.1f32, -0.2, 0.3, 0.9];
    let mut updates_at = Vec::new();
    for step in 1..=9 {
        let reward =
            |a: &Tensor| Vec::<i64>::try_from(a).unwrap().iter().map(|&x| x as f64).collect();
        if let Some(metrics) = bandit_step(&mut agent, &obs, reward).unwrap() {
            updates_at.push(step);
            let tags: Vec<&str> = metrics.iter().map(|(t, _)| *t).collect();
            assert_eq!(tags, TAGS, "metric tags or their order changed");
            for (tag, v) in &metrics {
                assert!(v.is_finite(), "{tag} is {v} after step {step}");
            }
            let kl = metrics[3].1;
            assert!(kl >= 0.0, "the (r - 1) - log r estimator is never negative, got {kl}");
        }
    }
    assert_eq!(updates_at, [3, 6, 9], "one update per n_steps = 3 observed steps");
}

#[test]
fn learns_the_better_arm_of_a_two_armed_bandit() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(3);
    let cfg = ReinforceConfig { learning_rate: 1e-2, ..small(4) };
    let mut agent = Reinforce::new(&cfg, &obs_space(1), &Space::Discrete(2), 16).unwrap();
    let obs = [0.5f32; 16];
    // Arm 1 pays 1, arm 0 pays 0.
    let reward = |a: &Tensor| Vec::<i64>::try_from(a).unwrap().iter().map(|&x| x as f64).collect();
    for _ in 0..4 * 60 {
        bandit_step(&mut agent, &obs, reward).unwrap();
    }
    let greedy = agent.act(&Tensor::from_slice(&obs).view([16, 1]), ActMode::Deterministic);
    assert!(greedy.eq(1).all().int64_value(&[]) == 1, "greedy arm should be 1: {greedy}");
    let sampled = agent.act(&Tensor::from_slice(&obs).view([16, 1]), ActMode::Explore);
    let share = sampled.to_kind(Kind::Double).mean(None).double_value(&[]);
    assert!(share > 0.9, "the policy should pull arm 1 most of the time, share {share}");
}

#[test]
fn moves_a_gaussian_policy_towards_the_best_action() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(4);
    let cfg = ReinforceConfig { learning_rate: 1e-2, ..small(4) };
    let space = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    let mut agent = Reinforce::new(&cfg, &obs_space(1), &space, 16).unwrap();
    let obs = [0.0f32; 16];
    // Reward −(a − 1)²: the best action is 1, the initial mean is near 0.
    let reward = |a: &Tensor| {
        Vec::<f32>::try_from(&a.flatten(0, -1))
            .unwrap()
            .iter()
            .map(|&x| -(x as f64 - 1.0).powi(2))
            .collect()
    };
    for _ in 0..4 * 80 {
        bandit_step(&mut agent, &obs, reward).unwrap();
    }
    let mean =
        agent.act(&Tensor::zeros([1, 1], (Kind::Float, Device::Cpu)), ActMode::Deterministic);
    let mean = mean.double_value(&[0, 0]);
    assert!((mean - 1.0).abs() < 0.25, "the policy mean should approach 1, got {mean}");
}

#[test]
fn checkpoint_round_trip_restores_the_policy_and_rejects_mismatches() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let space = Space::Box(BoxSpace::uniform(2, -1.0, 1.0));
    tch::manual_seed(5);
    let source = Reinforce::new(&small(2), &obs_space(3), &space, 1).unwrap();
    tch::manual_seed(6);
    let mut target = Reinforce::new(&small(2), &obs_space(3), &space, 1).unwrap();
    let saved = source.named_tensors();
    let names: Vec<&str> = saved.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "policy/fc0.bias",
            "policy/fc0.weight",
            "policy/log_std",
            "policy/out.bias",
            "policy/out.weight",
            "policy_adam/exp_avg",
            "policy_adam/exp_avg_sq",
            "policy_adam/steps",
            "value/fc0.bias",
            "value/fc0.weight",
            "value/out.bias",
            "value/out.weight",
            "value_adam/exp_avg",
            "value_adam/exp_avg_sq",
            "value_adam/steps",
        ],
        "checkpoint names"
    );

    let obs = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
    let mut source = source;
    let before = target.act(&obs, ActMode::Deterministic);
    let want = source.act(&obs, ActMode::Deterministic);
    assert!(!before.equal(&want), "differently seeded agents should differ before loading");
    target.load_named_tensors(&saved).unwrap();
    assert!(
        target.act(&obs, ActMode::Deterministic).equal(&want),
        "loading must restore the policy"
    );
    assert!(target.value(&obs).equal(&source.value(&obs)), "loading must restore the value net");

    let missing: Vec<_> = saved
        .iter()
        .filter(|(n, _)| n != "policy/log_std")
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    let err = target.load_named_tensors(&missing).unwrap_err().to_string();
    assert!(err.contains("missing tensor 'policy/log_std'"), "unexpected error: {err}");

    let mut reshaped: Vec<_> = saved.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    reshaped[2].1 = Tensor::zeros([3], (Kind::Float, Device::Cpu));
    let err = target.load_named_tensors(&reshaped).unwrap_err().to_string();
    assert!(
        err.contains("'policy/log_std' is Float [3], expected Float [2]"),
        "unexpected error: {err}"
    );

    let mut extra: Vec<_> = saved.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    extra.push(("critic/q.weight".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
    let err = target.load_named_tensors(&extra).unwrap_err().to_string();
    assert!(err.contains("'critic/q.weight' does not belong"), "unexpected error: {err}");
}

#[test]
fn a_loaded_checkpoint_resumes_training_exactly() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(8);
    let mut source = Reinforce::new(&small(2), &obs_space(1), &Space::Discrete(2), 4).unwrap();
    let obs = [0.3f32, -0.1, 0.7, 0.0];
    let reward = |a: &Tensor| Vec::<i64>::try_from(a).unwrap().iter().map(|&x| x as f64).collect();
    // Two updates, then one step of a new rollout still waiting in the buffer.
    for _ in 0..5 {
        bandit_step(&mut source, &obs, reward).unwrap();
    }
    tch::manual_seed(9);
    let mut resumed = Reinforce::new(&small(2), &obs_space(1), &Space::Discrete(2), 4).unwrap();
    resumed.load_named_tensors(&source.named_tensors()).unwrap();
    resumed.load_training_state(&source.training_state(false).unwrap()).unwrap();
    // The same next step for both completes the rollout: the updates must agree exactly, which
    // needs the optimizer moments and step counts, the weights, and the partial rollout.
    let actions = Tensor::from_slice(&[1i64, 0, 1, 1]);
    for agent in [&mut source, &mut resumed] {
        let metrics = agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &[1.0, 0.0, 1.0, 1.0],
                terminated: &[true; 4],
                truncated: &[false; 4],
                next_obs: &obs,
            })
            .unwrap();
        assert!(metrics.is_some(), "the restored partial rollout should complete on this step");
    }
    for ((name, a), (_, b)) in source.named_tensors().iter().zip(resumed.named_tensors().iter()) {
        assert!(a.equal(b), "'{name}' differs after resuming from a checkpoint");
    }
    let (a, b) = (source.training_state(false).unwrap(), resumed.training_state(false).unwrap());
    let updates = |state: &[(String, Tensor)]| {
        state.iter().find(|(n, _)| n == "updates").map(|(_, t)| t.int64_value(&[0]))
    };
    assert_eq!((updates(&a), updates(&b)), (Some(3), Some(3)), "update counters after resuming");

    let foreign = [("replay/obs".to_owned(), Tensor::zeros([1], (Kind::Float, Device::Cpu)))];
    let err = resumed.load_training_state(&foreign).unwrap_err().to_string();
    assert!(err.contains("'replay/obs' does not belong"), "unexpected error: {err}");
}

#[test]
fn a_non_finite_reward_stops_the_update_with_the_quantity_named() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(7);
    let mut agent = Reinforce::new(&small(1), &obs_space(1), &Space::Discrete(2), 2).unwrap();
    let err = bandit_step(&mut agent, &[0.0, 0.0], |_| vec![f64::NAN, 1.0]).unwrap_err();
    match err {
        AgentError::NonFinite { agent, quantity, value, update } => {
            assert_eq!((agent, quantity.as_str(), update), ("reinforce", "losses/policy_loss", 0));
            assert!(value.is_nan(), "the reported value should be the NaN loss, got {value}");
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    // The failed rollout is dropped, so the agent can go on with finite data.
    let ok = bandit_step(&mut agent, &[0.0, 0.0], |_| vec![0.0, 1.0]).unwrap();
    assert!(ok.is_some(), "the next full rollout should update normally");
}

#[test]
fn construction_and_observation_errors_name_the_problem() {
    // Construction draws weights from the global generator: hold the lock like the others.
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cfg = ReinforceConfig { value_minibatches: 9, ..small(2) };
    let err = Reinforce::new(&cfg, &obs_space(1), &Space::Discrete(2), 4).unwrap_err().to_string();
    assert_eq!(
        err,
        "value_minibatches: must be <= the batch size n_steps * num_envs = 2 * 4 = 8, got 9"
    );
    let cfg = ReinforceConfig { gamma: 0.0, ..small(2) };
    let err = Reinforce::new(&cfg, &obs_space(1), &Space::Discrete(2), 4).unwrap_err().to_string();
    assert_eq!(err, "gamma: must be in (0, 1], got 0");
    let err = Reinforce::new(&small(2), &obs_space(1), &Space::Discrete(2), 0).unwrap_err();
    assert!(err.to_string().contains("num_envs"), "unexpected error: {err}");

    let mut agent = Reinforce::new(&small(2), &obs_space(2), &Space::Discrete(2), 2).unwrap();
    let actions = Tensor::from_slice(&[0i64, 1]);
    let err = agent
        .observe(&Transition {
            obs: &[0.0; 3],
            actions: &actions,
            rewards: &[0.0; 2],
            terminated: &[false; 2],
            truncated: &[false; 2],
            next_obs: &[0.0; 4],
        })
        .unwrap_err();
    assert!(err.to_string().contains("obs has 3 values, expected 4"), "unexpected error: {err}");
}

/// Drives `updates` updates of a one-step Gaussian bandit (reward −(a − 1)²) with `num_envs`
/// envs and returns every update's metrics and the final parameters.
fn gaussian_bandit_run(
    cfg: &ReinforceConfig,
    num_envs: usize,
    updates: usize,
) -> (Vec<Metrics>, Vec<(String, Tensor)>) {
    tch::manual_seed(11);
    let space = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    let mut agent = Reinforce::new(cfg, &obs_space(1), &space, num_envs).unwrap();
    let obs = vec![0.25f32; num_envs];
    let reward = |a: &Tensor| {
        let a = Vec::<f32>::try_from(&a.flatten(0, -1)).unwrap();
        a.iter().map(|&x| -(f64::from(x) - 1.0).powi(2)).collect()
    };
    let mut metrics = Vec::new();
    while metrics.len() < updates {
        if let Some(m) = bandit_step(&mut agent, &obs, reward).unwrap() {
            metrics.push(m);
        }
    }
    (metrics, agent.named_tensors())
}

#[test]
fn gradient_diagnostics_are_logged_and_never_change_the_run() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let plain = ReinforceConfig { learning_rate: 1e-2, ..small(4) };
    let diagnosed = ReinforceConfig { grad_diagnostics: true, ..plain.clone() };
    let (metrics_off, params_off) = gaussian_bandit_run(&plain, 8, 6);
    let (metrics_on, params_on) = gaussian_bandit_run(&diagnosed, 8, 6);
    for (off, on) in metrics_off.iter().zip(&metrics_on) {
        let tags: Vec<&str> = on.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags[..TAGS.len()], TAGS, "the usual metrics come first");
        assert_eq!(tags[TAGS.len()..], ["grad/variance", "grad/snr"]);
        assert_eq!(off[..], on[..TAGS.len()], "diagnostics changed the losses");
        let (variance, snr) = (on[TAGS.len()].1, on[TAGS.len() + 1].1);
        assert!(variance > 0.0 && variance.is_finite() && snr >= 0.0, "{on:?}");
    }
    for ((name, off), (_, on)) in params_off.iter().zip(&params_on) {
        assert!(off.equal(on), "diagnostics changed parameter {name}");
    }
}

#[test]
fn gradient_variance_falls_as_one_over_the_number_of_envs() {
    // With a (practically) frozen policy every update estimates the same gradient, from
    // `num_envs` independent per-env samples: 8x the envs, 1/8 the variance.
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cfg = ReinforceConfig {
        learning_rate: 1e-9,
        normalize_advantages: false,
        grad_diagnostics: true,
        ..small(4)
    };
    let mean_variance = |num_envs| {
        let (metrics, _) = gaussian_bandit_run(&cfg, num_envs, 40);
        let variances: Vec<f64> = metrics
            .iter()
            .map(|m| m.iter().find(|(t, _)| *t == "grad/variance").expect("logged").1)
            .collect();
        variances.iter().sum::<f64>() / variances.len() as f64
    };
    let ratio = mean_variance(8) / mean_variance(64);
    assert!((5.0..12.0).contains(&ratio), "variance ratio 8 envs / 64 envs = {ratio}, expected ~8");
}

#[test]
fn gradient_diagnostics_need_two_envs() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cfg = ReinforceConfig { grad_diagnostics: true, ..small(2) };
    let err = Reinforce::new(&cfg, &obs_space(1), &Space::Discrete(2), 1).unwrap_err().to_string();
    assert_eq!(
        err,
        "grad_diagnostics: needs num_envs >= 2 (one gradient sample per environment), got \
         num_envs = 1"
    );
    assert!(Reinforce::new(&cfg, &obs_space(1), &Space::Discrete(2), 2).is_ok());
}
