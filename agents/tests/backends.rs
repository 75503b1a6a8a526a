//! The equivalence table: for every setting value the kernel's coverage table lists
//! (`rlpg_agents::backend::coverage::TABLE`), the plain-Rust kernel computes the same update as
//! libtorch with autograd, tensor by tensor.
//!
//! Two agents, one per backend, are built from the same seed and fed the same transitions with
//! libtorch's generator seeded the same before each step (as the trainer seeds it), so they draw
//! the same minibatches and noise. Compared:
//! - each network's gradient at its first optimizer step, per tensor: Adam's first moment
//!   after one step is exactly `(1 − β₁) g` of the (clipped) gradient `g`;
//! - Adam's first and second moments per tensor once every network has stepped three times;
//! - the update's metrics, and the actions both act with (exploring and greedy).
//!
//! Relative error per tensor: `‖a − b‖ ≤ 1e-4 ‖b‖` (plus 1e-9 absolute, for tensors whose
//! gradient is zero, such as a dead unit's). One test function: the global generator is shared,
//! so the cases run one after another.

use std::collections::BTreeMap;

use rlpg_agents::backend::coverage::{self, AgentKind, Cover};
use rlpg_agents::{
    ActMode, Actions, Agent, Pathwise, PathwiseConfig, Reinforce, ReinforceConfig, Transition,
};
use rlpg_envs::{BoxSpace, Space};
use tch::{Kind, Tensor};

/// Every tensor of a checkpoint by name: its shape and values.
type State = BTreeMap<String, (Vec<i64>, Vec<f64>)>;

const REL_TOL: f64 = 1e-4;
const ABS_TOL: f64 = 1e-9;

/// A test case: an agent's settings (as JSON), the spaces, the number of envs.
#[derive(Clone)]
struct Case {
    name: String,
    agent: AgentKind,
    settings: serde_json::Value,
    discrete: bool,
    num_envs: usize,
    /// Push the Gaussian heads' log-std biases past the clamp.
    clamp: bool,
    /// A multi-part action space instead of [`spaces`]' (with `discrete`'s observations).
    action: Option<Space>,
    /// Act and learn within action masks that change every step.
    masked: bool,
}

fn spaces(discrete: bool) -> (Space, Space) {
    if discrete {
        (Space::Box(BoxSpace::uniform(4, -5.0, 5.0)), Space::Discrete(3))
    } else {
        (Space::Box(BoxSpace::uniform(3, -5.0, 5.0)), Space::Box(BoxSpace::uniform(2, -2.0, 2.0)))
    }
}

fn build(case: &Case, backend: &str, seed: i64) -> Result<Box<dyn Agent>, String> {
    let mut settings = case.settings.clone();
    settings["backend"] = serde_json::json!(backend);
    let (obs, act) = match &case.action {
        Some(action) => (spaces(true).0, action.clone()),
        None => spaces(case.discrete),
    };
    tch::manual_seed(seed);
    let agent: Box<dyn Agent> = match case.agent {
        AgentKind::Reinforce => {
            let cfg: ReinforceConfig =
                serde_json::from_value(settings).map_err(|e| e.to_string())?;
            Box::new(Reinforce::new(&cfg, &obs, &act, case.num_envs).map_err(|e| e.to_string())?)
        }
        AgentKind::Pathwise => {
            let cfg: PathwiseConfig =
                serde_json::from_value(settings).map_err(|e| e.to_string())?;
            Box::new(Pathwise::new(&cfg, &obs, &act, case.num_envs).map_err(|e| e.to_string())?)
        }
    };
    Ok(agent)
}

/// Every tensor of `agent`'s checkpoint by name, as `f64` values.
fn state(agent: &dyn Agent) -> State {
    agent
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            let shape = t.size();
            let values =
                Vec::<f64>::try_from(&t.to_kind(Kind::Double).reshape([-1])).expect("values");
            (n, (shape, values))
        })
        .collect()
}

/// The agent's update counter (cheap to read: its training state without the replay buffer).
fn updates(agent: &dyn Agent) -> i64 {
    let state = agent.training_state(false).expect("training state");
    let (_, t) = state.iter().find(|(n, _)| n == "updates").expect("an update counter");
    t.int64_value(&[0])
}

/// The Adam state `{net}_adam/{moment}` split per parameter tensor of `{net}/…` (the flat buffer
/// holds them in name order).
fn per_tensor(state: &State, net: &str, moment: &str) -> Vec<(String, Vec<f64>)> {
    let flat = &state[&format!("{net}_adam/{moment}")].1;
    let prefix = format!("{net}/");
    let mut offset = 0;
    let mut out = Vec::new();
    for (name, (_, values)) in state.range(prefix.clone()..) {
        if !name.starts_with(&prefix) {
            break;
        }
        out.push((name.clone(), flat[offset..offset + values.len()].to_vec()));
        offset += values.len();
    }
    assert_eq!(offset, flat.len(), "{net}: the parameters do not cover the Adam state");
    out
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Compares `{net}_adam/{moment}` of the two agents tensor by tensor.
fn compare_moments(case: &str, what: &str, kernel: &State, torch: &State, net: &str, moment: &str) {
    for ((name, k), (_, t)) in
        per_tensor(kernel, net, moment).iter().zip(per_tensor(torch, net, moment))
    {
        let diff: Vec<f64> = k.iter().zip(&t).map(|(a, b)| a - b).collect();
        let (err, scale) = (norm(&diff), norm(&t));
        assert!(
            err <= REL_TOL * scale + ABS_TOL,
            "{case}: {what}: {moment} of {name}: kernel differs from libtorch by {err:.3e} \
             (relative {:.3e}; libtorch's norm {scale:.3e})",
            err / scale.max(1e-30)
        );
    }
}

/// A deterministic transition stream: observations, actions, rewards and ends from the step
/// number.
struct Stream {
    discrete: bool,
    num_envs: usize,
    step: usize,
    /// The action space, for discrete spaces (masks and multi-part actions).
    space: Option<Space>,
    masked: bool,
}

/// One step of the stream, for all envs.
struct Step {
    obs: Vec<f32>,
    actions: Actions,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    next_obs: Vec<f32>,
    /// Masks the actions are allowed by (each flag a pseudo-random bit, the chosen action's
    /// always set).
    masks: Option<Vec<bool>>,
}

impl Stream {
    fn next(&mut self) -> Step {
        let (obs_dim, n) = if self.discrete { (4, self.num_envs) } else { (3, self.num_envs) };
        let s = self.step as f32;
        let obs: Vec<f32> =
            (0..n * obs_dim).map(|i| ((s * 0.37 + i as f32 * 1.3).sin()) * 2.0).collect();
        let next: Vec<f32> =
            (0..n * obs_dim).map(|i| ((s * 0.37 + i as f32 * 1.1 + 0.5).cos()) * 2.0).collect();
        let parts = self.space.as_ref().map_or_else(|| vec![3], Space::mask_components);
        let actions = if self.discrete {
            let k = parts.len();
            Actions::Indices {
                values: (0..n * k)
                    .map(|i| ((self.step * 7 + i * 3 + i / k) % parts[i % k]) as i64)
                    .collect(),
                width: k,
            }
        } else {
            // A box action slightly outside the bounds now and then (the agent keeps what it chose).
            Actions::Floats {
                values: (0..n * 2).map(|i| ((s * 0.71 + i as f32).sin()) * 1.9).collect(),
                width: 2,
            }
        };
        let rewards: Vec<f64> = (0..n).map(|e| f64::from((s * 0.3 + e as f32).cos())).collect();
        let terminated: Vec<bool> = (0..n).map(|e| (self.step + e) % 11 == 10).collect();
        let truncated: Vec<bool> = (0..n).map(|e| (self.step + 2 * e) % 13 == 12).collect();
        let masks = match (&actions, self.masked) {
            (Actions::Indices { values, width }, true) => {
                let m: usize = parts.iter().sum();
                let mut masks = vec![false; n * m];
                for (i, flag) in masks.iter_mut().enumerate() {
                    *flag = (self.step * 5 + i * 11 + i / 3) % 3 != 0;
                }
                for (e, row) in values.chunks_exact(*width).enumerate() {
                    let mut start = 0;
                    for (part, &a) in row.iter().enumerate() {
                        masks[e * m + start + a as usize] = true;
                        start += parts[part];
                    }
                }
                Some(masks)
            }
            _ => None,
        };
        self.step += 1;
        Step { obs, actions, rewards, terminated, truncated, next_obs: next, masks }
    }
}

/// Pushes the log-std half of the Gaussian heads' output biases past the clamp (3 > 2).
fn push_log_std_past_the_clamp(agent: &mut dyn Agent, case: &Case) {
    let (bias, d) = match case.agent {
        AgentKind::Reinforce => ("policy/out.bias", 2),
        AgentKind::Pathwise => ("actor/out.bias", 2),
    };
    let tensors: Vec<(String, Tensor)> = agent
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            if n == bias {
                let _ = t.narrow(0, d, 1).fill_(3.0);
            }
            (n, t)
        })
        .collect();
    agent.load_named_tensors(&tensors).expect("reload");
}

/// Runs one case; returns false when the settings do not apply to its space (refused by
/// validation alike on both backends).
fn run(case: &Case) -> bool {
    let seed = 17;
    let (mut kernel, mut torch) = match (build(case, "kernel", seed), build(case, "libtorch", seed))
    {
        (Ok(k), Ok(t)) => (k, t),
        (Err(k), Err(t)) => {
            assert_eq!(k, t, "{}: the backends refuse differently", case.name);
            return false;
        }
        (k, t) => panic!(
            "{}: one backend refused: kernel {:?}, libtorch {:?}",
            case.name,
            k.err(),
            t.err()
        ),
    };
    assert_eq!(kernel.backend().name(), "kernel");
    assert_eq!(torch.backend().name(), "libtorch");
    assert_eq!(
        state(kernel.as_ref()),
        state(torch.as_ref()),
        "{}: construction differs",
        case.name
    );
    if case.clamp {
        push_log_std_past_the_clamp(kernel.as_mut(), case);
        push_log_std_past_the_clamp(torch.as_mut(), case);
    }
    let nets: &[&str] = match case.agent {
        AgentKind::Reinforce => &["policy", "value"],
        AgentKind::Pathwise => &["actor", "critic"],
    };
    let mut compared_first = vec![false; nets.len()];
    let mut stream = Stream {
        discrete: case.discrete,
        num_envs: case.num_envs,
        step: 0,
        space: case.action.clone().or_else(|| case.discrete.then(|| spaces(true).1)),
        masked: case.masked,
    };
    let mut actions = (Actions::default(), Actions::default());
    let mut last_updates = 0;
    let mut following = stream.next();
    for step in 0..400 {
        // The next step's masks are the masks of this step's next states (as a vector env
        // reports them after stepping).
        let current = std::mem::replace(&mut following, stream.next());
        let Step { obs, actions: chosen, rewards, terminated, truncated, next_obs, masks } =
            current;
        let masks = masks.as_deref();
        let next_masks = following.masks.as_deref();
        // Acting: the same actions from the same draws (within the same masks).
        for mode in [ActMode::Explore, ActMode::Deterministic] {
            tch::manual_seed(1000 + step as i64);
            kernel.act_masked(&obs, masks, mode, &mut actions.0).expect("kernel acts");
            tch::manual_seed(1000 + step as i64);
            torch.act_masked(&obs, masks, mode, &mut actions.1).expect("libtorch acts");
            match (&actions.0, &actions.1) {
                (Actions::Floats { values: a, .. }, Actions::Floats { values: b, .. }) => {
                    let err = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
                    assert!(err < 1e-4, "{}: {mode:?} actions differ by {err}", case.name);
                }
                (a, b) => assert_eq!(a, b, "{}: {mode:?} actions differ", case.name),
            }
        }
        let t = Transition {
            obs: &obs,
            actions: &chosen,
            rewards: &rewards,
            terminated: &terminated,
            truncated: &truncated,
            next_obs: &next_obs,
            masks,
            next_masks,
        };
        tch::manual_seed(seed + step as i64);
        let mk = kernel.observe(&t).unwrap_or_else(|e| panic!("{}: kernel: {e}", case.name));
        tch::manual_seed(seed + step as i64);
        let mt = torch.observe(&t).unwrap_or_else(|e| panic!("{}: libtorch: {e}", case.name));
        match (&mk, &mt) {
            (Some(a), Some(b)) => {
                assert_eq!(a.len(), b.len(), "{}: metrics differ", case.name);
                for ((ta, va), (tb, vb)) in a.iter().zip(b) {
                    assert_eq!(ta, tb);
                    let ok = (va - vb).abs() <= 1e-3 * va.abs().max(vb.abs()) + 1e-6
                        || (va.is_nan() && vb.is_nan());
                    assert!(ok, "{}: metric {ta}: kernel {va}, libtorch {vb}", case.name);
                }
            }
            (None, None) => {}
            _ => panic!("{}: one backend reported metrics and the other did not", case.name),
        }
        // Optimizer states change only with updates: compare them when some happened.
        let done = updates(kernel.as_ref());
        assert_eq!(done, updates(torch.as_ref()), "{}: update counts differ", case.name);
        if done == last_updates {
            continue;
        }
        last_updates = done;
        let (sk, st) = (state(kernel.as_ref()), state(torch.as_ref()));
        let steps = |s: &State, net: &str| s[&format!("{net}_adam/steps")].1[0];
        for (i, net) in nets.iter().enumerate() {
            assert_eq!(
                steps(&sk, net),
                steps(&st, net),
                "{}: {net} stepped differently",
                case.name
            );
            if !compared_first[i] && steps(&sk, net) >= 1.0 {
                // One step of Adam from zero moments: exp_avg = (1 − β₁) g exactly. A network
                // that steps several times per update (the value network's epochs) is compared
                // after its first update's steps.
                let what = if steps(&sk, net) == 1.0 { "first gradient" } else { "first update" };
                compare_moments(&case.name, what, &sk, &st, net, "exp_avg");
                compare_moments(&case.name, what, &sk, &st, net, "exp_avg_sq");
                compared_first[i] = true;
            }
        }
        if nets.iter().all(|net| steps(&sk, net) >= 3.0) {
            for net in nets {
                compare_moments(&case.name, "after three updates", &sk, &st, net, "exp_avg");
                compare_moments(&case.name, "after three updates", &sk, &st, net, "exp_avg_sq");
            }
            return true;
        }
    }
    panic!("{}: the networks did not step three times within 400 env steps", case.name);
}

/// Small networks (the table's values run on these unless they set the sizes themselves).
fn base(agent: AgentKind) -> serde_json::Value {
    match agent {
        AgentKind::Reinforce => serde_json::json!({
            "n_steps": 6, "hidden": [16, 12], "value_minibatches": 1
        }),
        AgentKind::Pathwise => serde_json::json!({
            "actor_hidden": [16, 12], "critic_hidden": [16, 12], "batch_size": 16,
            "learning_starts": 20, "policy_delay": 1, "buffer_size": 1000
        }),
    }
}

fn defaults(agent: AgentKind) -> serde_json::Value {
    let mut v = match agent {
        AgentKind::Reinforce => serde_json::to_value(ReinforceConfig::default()),
        AgentKind::Pathwise => serde_json::to_value(PathwiseConfig::default()),
    }
    .expect("serialize");
    for (k, x) in base(agent).as_object().expect("object") {
        v[k] = x.clone();
    }
    v
}

#[test]
fn the_kernel_computes_libtorchs_update_for_every_covered_setting() {
    let mut cases = Vec::new();
    for row in coverage::TABLE {
        if row.key == "backend" {
            continue;
        }
        let (Cover::Any(values) | Cover::Only(values)) = row.cover;
        for value in values {
            for discrete in [true, false] {
                let mut settings = defaults(row.agent);
                settings[row.key] = serde_json::from_str(value).expect("a JSON literal");
                cases.push(Case {
                    name: format!(
                        "{:?} {} = {value} ({})",
                        row.agent,
                        row.key,
                        if discrete { "discrete" } else { "box" }
                    ),
                    agent: row.agent,
                    settings,
                    discrete,
                    num_envs: 1,
                    clamp: false,
                    action: None,
                    masked: false,
                });
            }
        }
    }
    // Beyond single settings: several envs, an active log-std clamp, TD3 with delay and
    // clipping together, the update-to-data ratio with several envs, and Stable-Baselines3's
    // sizes (256×256, batch 256).
    let with = |agent: AgentKind, pairs: serde_json::Value| {
        let mut s = defaults(agent);
        for (k, v) in pairs.as_object().expect("object") {
            s[k] = v.clone();
        }
        s
    };
    for discrete in [true, false] {
        let d = if discrete { "discrete" } else { "box" };
        cases.push(Case {
            name: format!("Reinforce num_envs = 3 ({d})"),
            agent: AgentKind::Reinforce,
            settings: with(
                AgentKind::Reinforce,
                serde_json::json!({"grad_diagnostics": true, "value_minibatches": 2}),
            ),
            discrete,
            num_envs: 3,
            clamp: false,
            action: None,
            masked: false,
        });
        cases.push(Case {
            name: format!("Pathwise num_envs = 3, updates_per_step = 1.5 ({d})"),
            agent: AgentKind::Pathwise,
            settings: with(AgentKind::Pathwise, serde_json::json!({"updates_per_step": 1.5})),
            discrete,
            num_envs: 3,
            clamp: false,
            action: None,
            masked: false,
        });
    }
    cases.push(Case {
        name: "Reinforce state-dependent std with an active clamp".into(),
        agent: AgentKind::Reinforce,
        settings: with(AgentKind::Reinforce, serde_json::json!({"state_dependent_std": true})),
        discrete: false,
        num_envs: 2,
        clamp: true,
        action: None,
        masked: false,
    });
    cases.push(Case {
        name: "Pathwise squashed Gaussian with an active clamp".into(),
        agent: AgentKind::Pathwise,
        settings: defaults(AgentKind::Pathwise),
        discrete: false,
        num_envs: 1,
        clamp: true,
        action: None,
        masked: false,
    });
    cases.push(Case {
        name: "Pathwise TD3, policy_delay 2, clipping, max_alpha".into(),
        agent: AgentKind::Pathwise,
        settings: with(
            AgentKind::Pathwise,
            serde_json::json!({
                "estimator": "td3", "policy_delay": 2, "max_grad_norm": 0.01, "activation": "tanh"
            }),
        ),
        discrete: false,
        num_envs: 2,
        clamp: false,
        action: None,
        masked: false,
    });
    cases.push(Case {
        name: "Pathwise SAC capped alpha, relu, clipping".into(),
        agent: AgentKind::Pathwise,
        settings: with(
            AgentKind::Pathwise,
            serde_json::json!({"max_alpha": 1.0, "alpha": 1.0, "max_grad_norm": 0.01}),
        ),
        discrete: false,
        num_envs: 1,
        clamp: false,
        action: None,
        masked: false,
    });
    for discrete in [true, false] {
        cases.push(Case {
            name: format!(
                "Pathwise at Stable-Baselines3's sizes ({})",
                if discrete { "discrete" } else { "box" }
            ),
            agent: AgentKind::Pathwise,
            settings: with(
                AgentKind::Pathwise,
                serde_json::json!({
                    "actor_hidden": [256, 256], "critic_hidden": [256, 256], "batch_size": 256,
                    "learning_starts": 256, "activation": "relu"
                }),
            ),
            discrete,
            num_envs: 1,
            clamp: false,
            action: None,
            masked: false,
        });
    }
    // The multi-part heads and the masks (REINFORCE: independent categoricals, Bernoullis, and
    // the categorical of a Discrete space, each with and without masks that change every step).
    for (action, name) in [
        (Space::Discrete(3), "Discrete(3)"),
        (Space::MultiDiscrete(vec![3, 2, 4]), "MultiDiscrete([3, 2, 4])"),
        (Space::MultiBinary(3), "MultiBinary(3)"),
    ] {
        for masked in [false, true] {
            cases.push(Case {
                name: format!("Reinforce {name}{}", if masked { " within masks" } else { "" }),
                agent: AgentKind::Reinforce,
                settings: with(AgentKind::Reinforce, serde_json::json!({"ent_coef": 0.05})),
                discrete: true,
                num_envs: 2,
                clamp: false,
                action: Some(action.clone()),
                masked,
            });
        }
    }
    // The pathwise agent's relaxed heads over the same spaces (a Gumbel-softmax per component,
    // a two-way one per bit), with and without masks (in acting, the critic's target at the next
    // states and the actor loss), and with the per-component logit bound.
    for (action, name) in [
        (Space::Discrete(3), "Discrete(3)"),
        (Space::MultiDiscrete(vec![3, 2, 4]), "MultiDiscrete([3, 2, 4])"),
        (Space::MultiBinary(3), "MultiBinary(3)"),
    ] {
        for (masked, settings) in [
            (false, serde_json::json!({})),
            (true, serde_json::json!({})),
            (true, serde_json::json!({"logit_bound": 2.0, "straight_through": false})),
            // Discrete(3) only: the multi-part spaces refuse it, alike on both backends.
            (true, serde_json::json!({"expected_discrete_value": true})),
        ] {
            let extra = if settings.as_object().is_some_and(|o| o.is_empty()) {
                String::new()
            } else {
                format!(" {settings}")
            };
            cases.push(Case {
                name: format!(
                    "Pathwise {name}{}{extra}",
                    if masked { " within masks" } else { "" }
                ),
                agent: AgentKind::Pathwise,
                settings: with(AgentKind::Pathwise, settings),
                discrete: true,
                num_envs: 2,
                clamp: false,
                action: Some(action.clone()),
                masked,
            });
        }
    }
    // Importance-sampled reuse (PPO's clipped surrogate): several epochs of shuffled
    // minibatches, a clip range that binds, value clipping and a KL target, on every head,
    // with and without masks (the ratio uses each transition's stored mask).
    let reuse = serde_json::json!({
        "n_epochs": 3, "batch_size": 4, "clip_range": 0.05, "clip_range_vf": 0.05,
        "target_kl": 0.02, "value_minibatches": 3, "ent_coef": 0.05, "learning_rate": 0.01
    });
    for discrete in [true, false] {
        cases.push(Case {
            name: format!(
                "Reinforce reused batches ({})",
                if discrete { "discrete" } else { "box" }
            ),
            agent: AgentKind::Reinforce,
            settings: with(AgentKind::Reinforce, reuse.clone()),
            discrete,
            num_envs: 2,
            clamp: false,
            action: None,
            masked: false,
        });
    }
    for (action, name) in [
        (Space::MultiDiscrete(vec![3, 2, 4]), "MultiDiscrete([3, 2, 4])"),
        (Space::MultiBinary(3), "MultiBinary(3)"),
        (Space::Discrete(3), "Discrete(3)"),
    ] {
        cases.push(Case {
            name: format!("Reinforce reused batches, {name} within masks"),
            agent: AgentKind::Reinforce,
            settings: with(AgentKind::Reinforce, reuse.clone()),
            discrete: true,
            num_envs: 2,
            clamp: false,
            action: Some(action),
            masked: true,
        });
    }
    let mut ran = 0;
    for case in &cases {
        if run(case) {
            ran += 1;
        } else {
            // Only a setting for the other kind of action space may be refused: every head
            // with and without masks must be compared.
            let multi = case.action.as_ref().is_some_and(|a| a.mask_components().len() > 1);
            assert!(
                case.action.is_none() || (multi && case.name.contains("expected_discrete_value")),
                "{}: refused",
                case.name
            );
        }
    }
    assert!(ran * 10 >= cases.len() * 8, "only {ran} of {} cases applied", cases.len());
    eprintln!(
        "{ran} of {} cases compared (the rest are settings for the other action space)",
        cases.len()
    );
}
