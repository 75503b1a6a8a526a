//! Tests of the pathwise agent: its settings, the backend it runs on, the bounded-logits head,
//! its schedule, acting and saved state. The update's arithmetic (TD targets by hand, which
//! network each step moves) is tested through the public interface in
//! `agents/tests/pathwise_update.rs`, where it can hold libtorch's generator for itself; the
//! two backends' equality, tensor by tensor, in `agents/tests/backends.rs`.

use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor};

use crate::agent::{ActMode, Actions, Agent, AgentError, Transition};
use crate::backend::{BackendChoice, BackendKind, Kernel, Ops, Torch};
use crate::distributions::GumbelSoftmax;
use crate::settings::{SettingsContext, WeightInit};

use super::actor;
use super::agent::NAME;
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
        let replay = &mut agent.core.replay;
        replay.push(&obs, &[2.0 * x - 1.0], &[-f64::from(x)], &[i % 7 == 0], &next).unwrap();
    }
}

/// The actions `agent` takes at observations `obs` (rows of 3).
fn act(agent: &mut Pathwise, obs: &[f32], mode: ActMode) -> Actions {
    let mut actions = Actions::default();
    agent.act(obs, mode, &mut actions).expect("act");
    actions
}

/// Float actions' values.
fn floats(actions: &Actions) -> &[f32] {
    match actions {
        Actions::Floats { values, .. } => values,
        other => panic!("expected float actions, got {other}"),
    }
}

/// Index actions' values.
fn indices(actions: &Actions) -> &[i64] {
    match actions {
        Actions::Indices { values, .. } => values,
        other => panic!("expected indices, got {other}"),
    }
}

/// One float action per row.
fn box_action(a: f32) -> Actions {
    Actions::Floats { values: vec![a], width: 1 }
}

/// One index per row.
fn index_action(a: i64) -> Actions {
    Actions::Indices { values: vec![a], width: 1 }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A copy of a network's flat parameters.
fn snapshot(params: &crate::optim::FlatParams) -> Tensor {
    params.values().copy()
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
    let kernel: PathwiseConfig = serde_json::from_str(r#"{"backend": "kernel"}"#).unwrap();
    assert_eq!(kernel.backend, BackendChoice::Kernel);
    let err = serde_json::from_str::<PathwiseConfig>(r#"{"backend": "cpu"}"#).unwrap_err();
    let err = err.to_string();
    assert!(err.contains("cpu") && err.contains("libtorch") && err.contains("kernel"), "{err}");
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
        let replay = &mut agent.core.replay;
        replay.push(&obs, &one_hot, &[f64::from(x) + 1.0], &[i % 2 == 0], &next).unwrap();
    }
    agent
}

/// The bounded-logits head's values on one backend: the logits stay within the bound, the
/// probabilities strictly inside (0, 1), a row of huge equal-signed logits keeps its ranking
/// (not flattened to uniform), small logits keep their policy, and the overshoot penalty is 0
/// inside the bound. Returns nothing; panics naming the backend.
fn bounded_logits_values<B: Ops>(b: &mut B, raw: &B::M) {
    let name = b.kind();
    let mut host = Vec::new();
    for bound in [3.0, MAX_LOGIT_BOUND] {
        let (logits, _) = actor::bounded_logits(b, raw, bound);
        b.to_host(&logits, &mut host).unwrap();
        let max_abs = host.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(f64::from(max_abs) <= bound, "{name}, bound {bound}: a logit reached {max_abs}");
        let d = GumbelSoftmax::from_logits(b, &logits, 1.0, true);
        let probs = d.probs(b);
        b.to_host(&probs, &mut host).unwrap();
        let lo = host.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = host.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(lo > 0.0 && hi < 1.0, "{name}, bound {bound}: probabilities in [{lo}, {hi}]");
        let entropy = d.entropy(b);
        b.to_host(&entropy, &mut host).unwrap();
        let second = f64::from(host[1]);
        assert!(
            second < 0.5 * 3f64.ln(),
            "{name}, bound {bound}: row 2 is near uniform ({second})"
        );
    }
    // Inside the bound there is no penalty, and small logits keep their policy.
    let small = b.constant(1, 3, &[0.1, -0.2, 0.05]).unwrap();
    let (_, overshoot) = actor::bounded_logits(b, &small, 1.0);
    assert_eq!(b.scalar(&overshoot).unwrap(), 0.0, "{name}: a penalty inside the bound");
    let (logits, _) = actor::bounded_logits(b, &small, 8.0);
    let (bounded, plain) = (b.softmax(&logits), b.softmax(&small));
    let (mut p, mut q) = (Vec::new(), Vec::new());
    b.to_host(&bounded, &mut p).unwrap();
    b.to_host(&plain, &mut q).unwrap();
    let moved = p.iter().zip(&q).map(|(a, c)| (a - c).abs()).fold(0.0f32, f32::max);
    assert!(
        moved < 1e-4,
        "{name}: a bound of 8 moved the probabilities of small logits by {moved}"
    );
    // Without a bound the same raw logits saturate: the probabilities are exactly 0 and 1.
    let probs = b.softmax(raw);
    b.to_host(&probs, &mut host).unwrap();
    assert_eq!(host.iter().copied().fold(0.0f32, f32::max), 1.0, "{name}: unbounded logits");
}

/// Huge raw logits, and a row whose logits are all huge and equal-signed (bounding each logit
/// alone would squash it to a uniform policy).
const RAW_LOGITS: [f32; 6] = [1e4, -1e4, 0.0, 3e5, 2e5, 2.5e5];

#[test]
fn bounded_logits_keep_probabilities_inside_on_both_backends() {
    let mut kernel = Kernel::default();
    let raw = kernel.constant(2, 3, &RAW_LOGITS).unwrap();
    bounded_logits_values(&mut kernel, &raw);
    let mut torch = Torch::new(Device::Cpu);
    let raw = torch.constant(2, 3, &RAW_LOGITS).unwrap();
    bounded_logits_values(&mut torch, &raw);
}

#[test]
fn the_logit_overshoot_pulls_every_raw_logit_past_the_bound_back() {
    // Past the bound a descent step on the overshoot moves every raw logit back (autograd of the
    // libtorch face; the kernel's slopes of the same primitives are checked against autograd in
    // `backend::ops` and the agent's whole gradient in `tests/backends.rs`).
    let mut b = Torch::new(Device::Cpu);
    let raw = Tensor::from_slice(&RAW_LOGITS).view([2, 3]).set_requires_grad(true);
    for bound in [3.0, MAX_LOGIT_BOUND] {
        let (_, overshoot) = actor::bounded_logits(&mut b, &raw, bound);
        let total = overshoot.sum(Kind::Float);
        let grad = Tensor::run_backward(&[&total], &[&raw], false, false).remove(0);
        let centred = &raw - raw.mean_dim(-1, true, None);
        let outward = (&grad * &centred).gt(0.0).logical_and(&centred.abs().gt(bound));
        let pulled = outward.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]);
        // Rows centre on 0: the ±1e4 and ±5e4 logits (four of six) are past the bound.
        assert_eq!(pulled, 4.0, "bound {bound}: overshoot gradient {grad:?}");
        let inside = grad.abs().gt(0.0).logical_and(&centred.abs().le(bound));
        assert_eq!(inside.sum(Kind::Int64).int64_value(&[]), 0, "a gradient inside the bound");
    }
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
    let half_bounded = Space::Box(BoxSpace::new(vec![-1.0, f32::NEG_INFINITY], vec![1.0, 0.0]));
    let message = err(Pathwise::new(&cfg, &obs, &half_bounded, 1));
    assert!(message.contains("dimension 1"), "the unbounded dimension is not named: {message}");
    let td3 = PathwiseConfig { estimator: Estimator::Td3, ..cfg.clone() };
    assert!(
        err(Pathwise::new(&td3, &obs, &Space::Discrete(2), 1))
            .starts_with("estimator: td3's deterministic actor needs continuous (Box) actions")
    );
    assert!(Pathwise::new(&cfg, &obs, &Space::Discrete(2), 1).is_ok(), "SAC takes Discrete");
}

#[test]
fn the_backend_setting_is_honoured_and_auto_takes_the_kernel_for_every_option() {
    // Every option of the agent is in the kernel's coverage table, so `auto` takes the kernel
    // on the CPU whatever the settings; `libtorch` and `kernel` are taken as asked.
    let sac = PathwiseConfig::default();
    let configs = [
        ("sac", sac.clone(), false),
        ("td3", PathwiseConfig { estimator: Estimator::Td3, ..sac.clone() }, false),
        ("pink", PathwiseConfig { exploration: Exploration::Pink, ..sac.clone() }, false),
        ("discrete", sac.clone(), true),
        (
            "concatenated",
            PathwiseConfig { discrete_critic: DiscreteCritic::Concatenated, ..sac.clone() },
            true,
        ),
        ("diagnostics", PathwiseConfig { grad_diagnostics: true, ..sac.clone() }, true),
    ];
    for (name, cfg, discrete) in configs {
        for (choice, want) in [
            (BackendChoice::Auto, BackendKind::Kernel),
            (BackendChoice::Libtorch, BackendKind::Libtorch),
            (BackendChoice::Kernel, BackendKind::Kernel),
        ] {
            let cfg = PathwiseConfig { backend: choice, ..cfg.clone() };
            let agent = if discrete { discrete_agent(&cfg, 1) } else { agent(&cfg, 1) };
            assert_eq!(agent.backend(), want, "{name} with backend = {choice}");
        }
    }
    // The kernel runs on the CPU only: asking for it on another device is refused, naming the
    // setting (before anything is built there, so this holds without a GPU too).
    let (obs, act) = pendulum_spaces();
    let kernel = PathwiseConfig { backend: BackendChoice::Kernel, ..sac };
    let err = Pathwise::new_on(&kernel, &obs, &act, 1, Device::Cuda(0)).unwrap_err().to_string();
    assert!(err.starts_with("backend: ") && err.contains("CPU"), "{err}");
}

#[test]
fn the_actor_loss_leaves_no_gradient_on_the_critics_parameters() {
    // libtorch's autograd would accumulate one into `.grad` if the actor step differentiated
    // the critic's weights; the kernel computes none by construction (its tape follows only
    // the actor's bit), and `tests/pathwise_update.rs` checks on both backends that the actor
    // step leaves the critic's values alone.
    for (name, cfg, discrete) in [
        ("sac", PathwiseConfig::default(), false),
        ("td3", PathwiseConfig { estimator: Estimator::Td3, ..PathwiseConfig::default() }, false),
        ("discrete", PathwiseConfig::default(), true),
    ] {
        let cfg = PathwiseConfig { backend: BackendChoice::Libtorch, policy_delay: 1, ..cfg };
        let mut agent = if discrete {
            discrete_agent(&cfg, 5)
        } else {
            let mut agent = agent(&cfg, 5);
            fill(&mut agent, 64);
            agent
        };
        agent.update().unwrap();
        assert_eq!(agent.core.actor.opt.steps(), 1, "{name}: the actor did not step");
        for net in [&agent.core.critic.store, &agent.core.critic_target.store] {
            let stray = net.trainable_variables().iter().any(|v| v.grad().defined());
            assert!(!stray, "{name}: the update left gradients on a critic");
        }
    }
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
        let actions = act(&mut agent, &obs, ActMode::Explore);
        agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &[0.0, 0.0],
                terminated: &[false, false],
                truncated: &[false, false],
                next_obs: &obs,
                masks: None,
                next_masks: None,
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
    let obs = vec![0.0f32; 4000 * 3];
    let random = act(&mut agent, &obs, ActMode::Explore);
    assert_eq!((random.rows(), random.width()), (4000, 1));
    let values = floats(&random);
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
    assert!(lo >= -2.0 && hi <= 2.0 && lo < -1.9 && hi > 1.9, "not uniform on [−2, 2]");
    assert!(mean.abs() < 0.1, "uniform actions on [−2, 2] average {mean}");
    // Deterministic acting uses the policy even before learning starts.
    let a = act(&mut agent, &obs, ActMode::Deterministic);
    let a = floats(&a);
    assert!(a.iter().all(|&v| v == a[0]), "one state, one mode");
    assert!((-2.0..=2.0).contains(&a[0]), "the mode {} is outside the bounds", a[0]);

    let mut discrete = Pathwise::new(&cfg, &obs_space, &Space::Discrete(3), 1).unwrap();
    for mode in [ActMode::Explore, ActMode::Deterministic] {
        let a = act(&mut discrete, &obs, mode);
        assert_eq!((a.rows(), a.width()), (4000, 1), "{mode:?}");
        let a = indices(&a);
        let (lo, hi) = (a.iter().min().unwrap(), a.iter().max().unwrap());
        assert!(*lo >= 0 && *hi <= 2, "{mode:?} actions outside 0..3: [{lo}, {hi}]");
    }
    // Observations that do not fill whole rows are refused, naming the width.
    let mut out = Actions::default();
    let err = agent.act(&[0.0; 4], ActMode::Deterministic, &mut out).unwrap_err().to_string();
    assert!(err.contains("do not fill rows of 3"), "{err}");
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
                actions: &index_action(a),
                rewards: &[1.0],
                terminated: &[false],
                truncated: &[false],
                next_obs: &obs,
                masks: None,
                next_masks: None,
            })
            .unwrap();
    }
    let stored = agent.core.replay.get(&Tensor::from_slice(&[0i64, 1, 2])).unwrap().actions;
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
        actions: &index_action(3),
        rewards: &[1.0],
        terminated: &[false],
        truncated: &[false],
        next_obs: &obs,
        masks: None,
        next_masks: None,
    });
    assert!(bad.unwrap_err().to_string().contains("outside Discrete(3)"));
    // Float actions for a discrete space are refused, naming what was expected.
    let err = agent
        .observe(&Transition {
            obs: &obs,
            actions: &box_action(0.5),
            rewards: &[1.0],
            terminated: &[false],
            truncated: &[false],
            next_obs: &obs,
            masks: None,
            next_masks: None,
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 rows of 1 floats") && err.contains("1 rows of 1 index"), "{err}");
}

#[test]
fn a_non_finite_reward_is_reported_by_the_loss_it_poisons() {
    let mut agent = agent(&PathwiseConfig { learning_starts: 1, ..PathwiseConfig::default() }, 4);
    let obs = [0.0f32, 1.0, 0.0];
    let err = agent
        .observe(&Transition {
            obs: &obs,
            actions: &box_action(0.5),
            rewards: &[f64::NAN],
            terminated: &[false],
            truncated: &[false],
            next_obs: &obs,
            masks: None,
            next_masks: None,
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
fn a_non_finite_loss_is_refused_before_any_step_on_either_backend() {
    for backend in [BackendChoice::Kernel, BackendChoice::Libtorch] {
        let cfg = PathwiseConfig { learning_starts: 1_000_000, backend, ..Default::default() };
        let mut agent = discrete_agent(&cfg, 2);
        agent
            .core
            .replay
            .push(&[0.0, 0.0, 0.0], &[1.0, 0.0, 0.0], &[f64::NAN], &[false], &[0.0; 3])
            .unwrap();
        let (critic, actor) =
            (snapshot(&agent.core.critic.params), snapshot(&agent.core.actor.params));
        // With 9 transitions and 128 draws, the poisoned one is drawn.
        let err = agent.update().unwrap_err();
        match err {
            AgentError::NonFinite { quantity, .. } => assert_eq!(quantity, "losses/qf1_loss"),
            other => panic!("{backend}: expected NonFinite, got {other}"),
        }
        let moved = max_abs_diff(&critic, agent.core.critic.params.values());
        assert_eq!(moved, 0.0, "{backend}: the critic moved");
        assert_eq!(max_abs_diff(&actor, agent.core.actor.params.values()), 0.0, "{backend}");
        assert_eq!(agent.core.critic.opt.steps(), 0, "{backend}: the critic's Adam stepped");
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

        let obs: Vec<f32> = (0..15).map(|i| ((i as f32) * 0.7).sin() * 2.0).collect();
        let before = act(&mut dest, &obs, ActMode::Deterministic);
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
        let after = act(&mut dest, &obs, ActMode::Deterministic);
        assert_eq!(before, after, "a refused checkpoint changed the agent");

        dest.load_named_tensors(&saved).unwrap();
        let (a, b) = (
            act(&mut source, &obs, ActMode::Deterministic),
            act(&mut dest, &obs, ActMode::Deterministic),
        );
        assert_eq!(a, b, "{estimator:?}: loaded agent acts differently");
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
        agent
            .observe(&Transition {
                obs: &obs,
                actions: &box_action(0.25),
                rewards: &[-1.0],
                terminated: &[false],
                truncated: &[false],
                next_obs: &obs,
                masks: None,
                next_masks: None,
            })
            .unwrap();
    };
    for _ in 0..7 {
        step(&mut source);
    }
    assert_eq!(
        (source.updates(), source.core.update_credit),
        (2, 0.0),
        "4 transitions → 2 updates"
    );
    step(&mut source);
    assert_eq!(source.core.update_credit, 0.5, "an odd transition leaves half an update owed");

    let mut dest = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    dest.load_named_tensors(&source.named_tensors()).unwrap();
    dest.load_training_state(&source.training_state(true).unwrap()).unwrap();
    let schedule = |a: &Pathwise| (a.core.env_steps, a.core.updates, a.core.update_credit);
    assert_eq!(schedule(&dest), schedule(&source));
    assert_eq!(dest.replay_len(), source.replay_len());
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
    assert!(!source.core.metrics.sums.is_empty(), "the source has unreported metrics");
    assert_eq!(
        sums.core.metrics.sums, source.core.metrics.sums,
        "metric sums differ after loading"
    );

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
    let obs = [0.0f32, 1.0, 0.5];
    let lag1 = |exploration: Exploration| {
        tch::manual_seed(2);
        let cfg = PathwiseConfig { exploration, ..cfg.clone() };
        let mut agent = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
        let a: Vec<f64> = (0..4000)
            .map(|_| f64::from(floats(&act(&mut agent, &obs, ActMode::Explore))[0]))
            .collect();
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
        let _ = act(&mut source, &obs, ActMode::Explore);
    }
    let state = source.training_state(false).unwrap();
    assert!(state.iter().any(|(n, _)| n.starts_with("exploration/")), "no generator state");
    let mut dest = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
    dest.load_named_tensors(&source.named_tensors()).unwrap();
    dest.load_training_state(&state).unwrap();
    for ((n, x), (_, y)) in state.iter().zip(&dest.training_state(false).unwrap()) {
        assert_eq!(max_abs_diff(x, y), 0.0, "training state '{n}' not restored");
    }
    // Acting with several rows when the generator is kept for one env is an error.
    let mut out = Actions::default();
    let err = dest.act(&[0.0; 6], ActMode::Explore, &mut out).unwrap_err().to_string();
    assert!(err.contains("pink exploration noise is kept for 1 envs"), "{err}");
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
