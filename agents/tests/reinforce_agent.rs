//! The REINFORCE agent through the `Agent` contract: action shapes, acting by its policy's
//! distribution (checked by hand from its weights), the update schedule and its metrics,
//! learning on one-step bandits (the sign of the score-function gradient), checkpoints (across
//! backends too), and the errors it reports. Agents run with the default `backend = "auto"`
//! (the kernel on the CPU) unless a test names both.

use std::sync::Mutex;

use rlpg_agents::backend::{Ops, Torch};
use rlpg_agents::distributions::{LOG_STD_MAX, LOG_STD_MIN};
use rlpg_agents::{
    ActMode, Actions, Agent, AgentError, BackendChoice, BackendKind, Metrics, Reinforce,
    ReinforceConfig, Transition,
};
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

/// Index actions' values.
fn indices(actions: &Actions) -> &[i64] {
    match actions {
        Actions::Indices { values, .. } => values,
        other => panic!("expected indices, got {other}"),
    }
}

/// Float actions' values.
fn floats(actions: &Actions) -> &[f32] {
    match actions {
        Actions::Floats { values, .. } => values,
        other => panic!("expected floats, got {other}"),
    }
}

/// The actions `agent` takes at `obs`.
fn act(agent: &mut Reinforce, obs: &[f32], mode: ActMode) -> Actions {
    let mut actions = Actions::default();
    agent.act(obs, mode, &mut actions).expect("act");
    actions
}

/// The reward of a two-armed bandit whose arm 1 pays 1 and arm 0 pays 0.
fn arm_one_pays(a: &Actions) -> Vec<f64> {
    indices(a).iter().map(|&x| x as f64).collect()
}

/// One step of `n` envs in which every episode ends after a single action (a bandit);
/// observations are one number each.
fn bandit_step(
    agent: &mut Reinforce,
    obs: &[f32],
    reward: impl Fn(&Actions) -> Vec<f64>,
) -> Result<Option<Vec<(&'static str, f64)>>, AgentError> {
    let n = obs.len();
    let mut actions = Actions::default();
    agent.act(obs, ActMode::Explore, &mut actions)?;
    let rewards = reward(&actions);
    agent.observe(&Transition {
        obs,
        actions: &actions,
        rewards: &rewards,
        terminated: &vec![true; n],
        truncated: &vec![false; n],
        next_obs: obs,
        masks: None,
        next_masks: None,
    })
}

#[test]
fn actions_have_the_contracted_kinds_and_shapes() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(1);
    let obs = [0.0f32; 5 * 3];
    let mut discrete = Reinforce::new(&small(4), &obs_space(3), &Space::Discrete(4), 5).unwrap();
    for mode in [ActMode::Explore, ActMode::Deterministic] {
        let a = act(&mut discrete, &obs, mode);
        assert!(matches!(a, Actions::Indices { .. }), "discrete actions are indices ({mode:?})");
        assert_eq!((a.rows(), a.width()), (5, 1), "discrete actions in {mode:?}");
        assert!(indices(&a).iter().all(|&i| (0..4).contains(&i)), "{mode:?}: {a:?}");
    }
    let mut continuous =
        Reinforce::new(&small(4), &obs_space(3), &Space::Box(BoxSpace::uniform(2, -2.0, 2.0)), 5)
            .unwrap();
    for mode in [ActMode::Explore, ActMode::Deterministic] {
        let a = act(&mut continuous, &obs, mode);
        assert!(matches!(a, Actions::Floats { .. }), "continuous actions are floats ({mode:?})");
        assert_eq!((a.rows(), a.width()), (5, 2), "continuous in {mode:?}");
    }
    // Deterministic acting draws nothing: the generator is where it was.
    tch::manual_seed(17);
    let a = act(&mut continuous, &obs, ActMode::Deterministic);
    let after = Tensor::randn([4], (Kind::Float, Device::Cpu));
    tch::manual_seed(17);
    let untouched = Tensor::randn([4], (Kind::Float, Device::Cpu));
    assert!(after.equal(&untouched), "deterministic acting drew from the generator");
    let b = act(&mut continuous, &obs, ActMode::Deterministic);
    assert_eq!(a, b, "deterministic actions must not depend on the random stream");
    // Observations that do not fill whole rows are refused.
    let mut out = Actions::default();
    let err = continuous.act(&[0.0; 4], ActMode::Explore, &mut out).unwrap_err().to_string();
    assert!(err.contains("do not fill rows of 3"), "{err}");
}

#[test]
fn updates_after_every_n_steps_with_the_documented_metrics() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(2);
    let mut agent = Reinforce::new(&small(3), &obs_space(1), &Space::Discrete(2), 4).unwrap();
    let obs = [0.1f32, -0.2, 0.3, 0.9];
    let mut updates_at = Vec::new();
    for step in 1..=9 {
        if let Some(metrics) = bandit_step(&mut agent, &obs, arm_one_pays).unwrap() {
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
    for _ in 0..4 * 60 {
        bandit_step(&mut agent, &obs, arm_one_pays).unwrap();
    }
    let greedy = act(&mut agent, &obs, ActMode::Deterministic);
    assert!(indices(&greedy).iter().all(|&a| a == 1), "greedy arm should be 1: {greedy:?}");
    let sampled = act(&mut agent, &obs, ActMode::Explore);
    let share = indices(&sampled).iter().sum::<i64>() as f64 / 16.0;
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
    let reward = |a: &Actions| floats(a).iter().map(|&x| -(f64::from(x) - 1.0).powi(2)).collect();
    for _ in 0..4 * 80 {
        bandit_step(&mut agent, &obs, reward).unwrap();
    }
    let mean = f64::from(floats(&act(&mut agent, &[0.0], ActMode::Deterministic))[0]);
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

    let obs_t = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
    let obs = Vec::<f32>::try_from(&obs_t.view([-1])).unwrap();
    let mut source = source;
    let before = act(&mut target, &obs, ActMode::Deterministic);
    let want = act(&mut source, &obs, ActMode::Deterministic);
    assert_ne!(before, want, "differently seeded agents should differ before loading");
    target.load_named_tensors(&saved).unwrap();
    assert_eq!(
        act(&mut target, &obs, ActMode::Deterministic),
        want,
        "loading must restore the policy"
    );
    let value = source.value(&obs_t);
    assert_eq!(value.size(), [4], "one value per state");
    assert!(target.value(&obs_t).equal(&value), "loading must restore the value net");

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
    // Two updates, then one step of a new rollout still waiting in the buffer.
    for _ in 0..5 {
        bandit_step(&mut source, &obs, arm_one_pays).unwrap();
    }
    tch::manual_seed(9);
    let mut resumed = Reinforce::new(&small(2), &obs_space(1), &Space::Discrete(2), 4).unwrap();
    resumed.load_named_tensors(&source.named_tensors()).unwrap();
    resumed.load_training_state(&source.training_state(false).unwrap()).unwrap();
    // The same next step for both completes the rollout: the updates must agree exactly, which
    // needs the optimizer moments and step counts, the weights, and the partial rollout.
    let actions = Actions::Indices { values: vec![1, 0, 1, 1], width: 1 };
    for agent in [&mut source, &mut resumed] {
        let metrics = agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &[1.0, 0.0, 1.0, 1.0],
                terminated: &[true; 4],
                truncated: &[false; 4],
                next_obs: &obs,
                masks: None,
                next_masks: None,
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
    let actions = Actions::Indices { values: vec![0, 1], width: 1 };
    let err = agent
        .observe(&Transition {
            obs: &[0.0; 3],
            actions: &actions,
            rewards: &[0.0; 2],
            terminated: &[false; 2],
            truncated: &[false; 2],
            next_obs: &[0.0; 4],
            masks: None,
            next_masks: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("obs has 3 values, expected 4"), "unexpected error: {err}");
    // Actions of the wrong kind for the policy: refused by the update they would poison, naming
    // their shape (the rollout is dropped, as after any failed update).
    let mut agent = Reinforce::new(&small(1), &obs_space(2), &Space::Discrete(2), 2).unwrap();
    let err = agent
        .observe(&Transition {
            obs: &[0.0; 4],
            actions: &Actions::Floats { values: vec![0.5, 1.0], width: 1 },
            rewards: &[0.0; 2],
            terminated: &[false; 2],
            truncated: &[false; 2],
            next_obs: &[0.0; 4],
            masks: None,
            next_masks: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("2 rows of 1 floats"), "unexpected error: {err}");
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
    let reward = |a: &Actions| floats(a).iter().map(|&x| -(f64::from(x) - 1.0).powi(2)).collect();
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

/// The MLP under `prefix` (`fc0, …, out`, ReLU between, the default activation) at each row of
/// `x`, by the book in `f64` from the checkpoint's weights (`[out, in]`).
fn mlp(tensors: &[(String, Tensor)], prefix: &str, x: &[f32], in_dim: usize) -> Vec<Vec<f64>> {
    let get = |name: &str| {
        let t = &tensors.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1;
        let values = Vec::<f64>::try_from(&t.to_kind(Kind::Double).reshape([-1])).unwrap();
        (t.size(), values)
    };
    let has = |name: &str| tensors.iter().any(|(n, _)| n == name);
    x.chunks(in_dim)
        .map(|row| {
            let mut h: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            for layer in 0.. {
                let hidden = format!("{prefix}fc{layer}");
                let last = !has(&format!("{hidden}.weight"));
                let name = if last { format!("{prefix}out") } else { hidden };
                let (shape, w) = get(&format!("{name}.weight"));
                let (_, b) = get(&format!("{name}.bias"));
                let (out, inp) = (shape[0] as usize, shape[1] as usize);
                let z: Vec<f64> = (0..out)
                    .map(|o| b[o] + (0..inp).map(|k| w[o * inp + k] * h[k]).sum::<f64>())
                    .collect();
                if last {
                    return z;
                }
                h = z.into_iter().map(|v| v.max(0.0)).collect();
            }
            unreachable!()
        })
        .collect()
}

/// `n` draws of libtorch's generator seeded with `seed`, as the backends draw them: uniforms
/// in `[0, 1)` or standard normals, `rows × cols`.
fn draws(seed: i64, rows: usize, cols: usize, normal: bool) -> Vec<f64> {
    tch::manual_seed(seed);
    let mut b = Torch::new(Device::Cpu);
    let x = if normal { b.normal(rows, cols) } else { b.uniform(rows, cols) }.unwrap();
    let mut out = Vec::new();
    b.to_host(&x, &mut out).unwrap();
    out.iter().map(|&v| f64::from(v)).collect()
}

#[test]
fn acting_follows_the_policys_distribution_by_hand_on_both_backends() {
    // Greedy: the most probable index, or the Gaussian's mean. Exploring: the inverse CDF of one
    // uniform per row (a categorical sample), or mean + σ ε with one standard normal per
    // dimension, σ from the learned parameter or the clamped network output.
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let rows = 64;
    let obs: Vec<f32> = (0..rows * 3).map(|i| ((i as f32) * 0.77).sin() * 3.0).collect();
    let box2 = Space::Box(BoxSpace::uniform(2, -1.0, 1.0));
    for backend in [BackendChoice::Kernel, BackendChoice::Libtorch] {
        let cfg = ReinforceConfig { orthogonal_init: false, backend, ..small(4) };
        let gaussian = ReinforceConfig { log_std_init: -0.3, ..cfg.clone() };
        let state_dependent = ReinforceConfig { state_dependent_std: true, ..cfg.clone() };
        for (name, cfg, space) in [
            ("categorical", &cfg, Space::Discrete(5)),
            ("gaussian", &gaussian, box2.clone()),
            ("state-dependent gaussian", &state_dependent, box2.clone()),
        ] {
            let what = format!("{name} on {backend}");
            tch::manual_seed(31);
            let mut agent = Reinforce::new(cfg, &obs_space(3), &space, 1).unwrap();
            if cfg.state_dependent_std {
                // Half the rows' first log-std past the upper clamp, the other half's second
                // past the lower one: out.bias holds (means, raw log-stds).
                let tensors: Vec<(String, Tensor)> = agent
                    .named_tensors()
                    .into_iter()
                    .map(|(n, t)| {
                        if n == "policy/out.bias" {
                            (n, Tensor::from_slice(&[0.2f32, -0.1, 2.5, -21.0]))
                        } else {
                            (n, t)
                        }
                    })
                    .collect();
                agent.load_named_tensors(&tensors).unwrap();
            }
            let tensors = agent.named_tensors();
            let outputs = mlp(&tensors, "policy/", &obs, 3);
            let greedy = act(&mut agent, &obs, ActMode::Deterministic);
            let seed = 77;
            match &space {
                Space::Discrete(n) => {
                    let u = draws(seed, rows, 1, false);
                    let explored = {
                        tch::manual_seed(seed);
                        act(&mut agent, &obs, ActMode::Explore)
                    };
                    for (r, logits) in outputs.iter().enumerate() {
                        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let best = logits.iter().position(|&l| l == max).unwrap();
                        assert_eq!(indices(&greedy)[r], best as i64, "{what}: greedy row {r}");
                        let total: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                        let mut cumulative = 0.0;
                        let mut sample = n - 1;
                        for (k, l) in logits.iter().enumerate() {
                            cumulative += (l - max).exp() / total;
                            if u[r] < cumulative {
                                sample = k;
                                break;
                            }
                        }
                        assert_eq!(
                            indices(&explored)[r],
                            sample as i64,
                            "{what}: row {r}, u {}",
                            u[r]
                        );
                    }
                    let distinct =
                        (0..*n as i64).filter(|a| indices(&explored).contains(a)).count();
                    assert!(distinct >= 3, "{what}: exploring took only {distinct} actions");
                }
                _ => {
                    let eps = draws(seed, rows, 2, true);
                    let explored = {
                        tch::manual_seed(seed);
                        act(&mut agent, &obs, ActMode::Explore)
                    };
                    let parameter = tensors.iter().find(|(n, _)| n == "policy/log_std");
                    let parameter = parameter.map(|(_, t)| Vec::<f32>::try_from(t).unwrap());
                    assert_eq!(parameter.is_some(), !cfg.state_dependent_std, "{what}");
                    for (r, out) in outputs.iter().enumerate() {
                        for j in 0..2 {
                            let log_std = match &parameter {
                                Some(p) => f64::from(p[j]),
                                None => {
                                    out[2 + j].clamp(f64::from(LOG_STD_MIN), f64::from(LOG_STD_MAX))
                                }
                            };
                            let (g, e) = (floats(&greedy)[r * 2 + j], floats(&explored)[r * 2 + j]);
                            let want = out[j] + log_std.exp() * eps[r * 2 + j];
                            assert!((f64::from(g) - out[j]).abs() < 1e-5, "{what}: greedy {r}.{j}");
                            assert!(
                                (f64::from(e) - want).abs() < 1e-5 * (1.0 + want.abs()),
                                "{what}: row {r}.{j}: {e} vs {want} (log σ {log_std})"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn the_entropy_an_update_reports_is_the_closed_form_of_its_log_std() {
    // Before the policy step: Σ_j (½ + ½ ln 2π + log σ_j), with σ the learned parameter, or the
    // network's outputs clamped to [LOG_STD_MIN, LOG_STD_MAX].
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let per_dim = 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln();
    let space = Space::Box(BoxSpace::uniform(2, -1.0, 1.0));
    for backend in [BackendChoice::Kernel, BackendChoice::Libtorch] {
        let parameter = ReinforceConfig { log_std_init: -0.5, backend, ..small(2) };
        // A linear policy with zero weights: every state's outputs are out.bias = (means,
        // raw log-stds), here far past both clamps.
        let state_dependent =
            ReinforceConfig { hidden: vec![], state_dependent_std: true, ..parameter.clone() };
        for (cfg, want) in [
            (&parameter, 2.0 * (per_dim - 0.5)),
            (&state_dependent, 2.0 * per_dim + f64::from(LOG_STD_MAX) + f64::from(LOG_STD_MIN)),
        ] {
            tch::manual_seed(41);
            let mut agent = Reinforce::new(cfg, &obs_space(1), &space, 4).unwrap();
            if cfg.state_dependent_std {
                let tensors: Vec<(String, Tensor)> = agent
                    .named_tensors()
                    .into_iter()
                    .map(|(n, t)| match n.as_str() {
                        "policy/out.weight" => (n, t.zeros_like()),
                        "policy/out.bias" => (n, Tensor::from_slice(&[0.0f32, 0.0, 100.0, -100.0])),
                        _ => (n, t),
                    })
                    .collect();
                agent.load_named_tensors(&tensors).unwrap();
            }
            let reward = |a: &Actions| {
                floats(a).chunks(2).map(|r| -f64::from(r[0] * r[0] + r[1] * r[1])).collect()
            };
            let obs = [0.1f32, -0.4, 0.9, 0.0];
            let metrics = loop {
                if let Some(m) = bandit_step(&mut agent, &obs, reward).unwrap() {
                    break m;
                }
            };
            let entropy = metrics.iter().find(|(t, _)| *t == "losses/entropy").unwrap().1;
            assert!(
                (entropy - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{backend}, state-dependent {}: entropy {entropy}, closed form {want}",
                cfg.state_dependent_std
            );
        }
    }
}

#[test]
fn a_checkpoint_moves_between_backends_and_resumes_alike() {
    // Saved mid-rollout by an agent on one backend, loaded by one on the other: the same
    // parameters, optimizer state and partial rollout, so the same update up to float rounding.
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let space = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    let obs = [0.3f32, -0.1, 0.7, 0.0];
    let reward = |a: &Actions| floats(a).iter().map(|&x| -(f64::from(x) - 1.0).powi(2)).collect();
    for (from, to) in [
        (BackendChoice::Kernel, BackendChoice::Libtorch),
        (BackendChoice::Libtorch, BackendChoice::Kernel),
    ] {
        let cfg = |backend| ReinforceConfig { backend, value_minibatches: 2, ..small(3) };
        tch::manual_seed(8);
        let mut source = Reinforce::new(&cfg(from), &obs_space(1), &space, 4).unwrap();
        // Two updates, and two steps of the third rollout.
        for _ in 0..8 {
            bandit_step(&mut source, &obs, reward).unwrap();
        }
        tch::manual_seed(9);
        let mut resumed = Reinforce::new(&cfg(to), &obs_space(1), &space, 4).unwrap();
        let kind = |c| {
            if c == BackendChoice::Kernel { BackendKind::Kernel } else { BackendKind::Libtorch }
        };
        assert_eq!((source.backend(), resumed.backend()), (kind(from), kind(to)));
        resumed.load_named_tensors(&source.named_tensors()).unwrap();
        resumed.load_training_state(&source.training_state(false).unwrap()).unwrap();
        let actions = Actions::Floats { values: vec![0.5, 1.5, -0.2, 1.0], width: 1 };
        for agent in [&mut source, &mut resumed] {
            tch::manual_seed(10);
            let metrics = agent
                .observe(&Transition {
                    obs: &obs,
                    actions: &actions,
                    rewards: &[0.75, 0.75, -1.44, 1.0],
                    terminated: &[true; 4],
                    truncated: &[false; 4],
                    next_obs: &obs,
                    masks: None,
                    next_masks: None,
                })
                .unwrap();
            assert!(metrics.is_some(), "{from} → {to}: the partial rollout should complete");
        }
        for ((name, a), (_, b)) in source.named_tensors().iter().zip(resumed.named_tensors().iter())
        {
            let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
            let err = (&a - &b).norm().double_value(&[]);
            let scale = a.norm().double_value(&[]);
            assert!(err <= 1e-4 * scale + 1e-9, "{from} → {to}: '{name}' differs by {err}");
        }
    }
}
