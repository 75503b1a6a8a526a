//! The pathwise agent's update checked by hand, through its public interface, on both backends:
//! the TD targets the critics regress on (SAC's soft value, TD3's smoothed target, the exact
//! expectation over discrete actions; bootstrapping through a time limit but never past a true
//! end), and which networks each step moves.
//!
//! The target is read off the update itself. With one transition in the replay buffer and
//! `batch_size = 1`, both critics' loss is `(Q1 − y)² + (Q2 − y)²`, whose gradient with respect
//! to `Q1`'s output bias is `2 (Q1 − y)` (times the one-hot for a per-action critic); after the
//! first step Adam's first moment holds `(1 − β₁)` times that gradient exactly (no clipping by
//! default), so `y = Q1 − m / (2 (1 − β₁))`, with `Q1` computed by hand before the update. The
//! expected `y` is computed by hand in `f64` from the checkpoint's weights and the same random
//! draws (the replay buffer's index, then the target's noise, from libtorch's generator seeded
//! alike), so the networks' forward passes are checked too.
//!
//! libtorch's generator is global and tests run on parallel threads: each test holds [`RNG`].

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rlpg_agents::backend::{Ops, Torch};
use rlpg_agents::distributions::{LOG_STD_MAX, LOG_STD_MIN};
use rlpg_agents::optim::BETA1;
use rlpg_agents::replay::ReplayBuffer;
use rlpg_agents::{
    ActMode, Actions, Agent, BackendChoice, DiscreteCritic, Estimator, Pathwise, PathwiseConfig,
    Transition,
};
use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor};

static RNG: Mutex<()> = Mutex::new(());

fn rng() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const BACKENDS: [BackendChoice; 2] = [BackendChoice::Kernel, BackendChoice::Libtorch];

/// Every checkpoint tensor by name: its shape and its values (row-major, as `f64`).
type State = BTreeMap<String, (Vec<i64>, Vec<f64>)>;

fn state(agent: &dyn Agent) -> State {
    agent
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            let values = Vec::<f64>::try_from(&t.to_kind(Kind::Double).reshape([-1])).unwrap();
            (n, (t.size(), values))
        })
        .collect()
}

/// The MLP under `prefix` (`fc0, fc1, …, out`, ReLU between, the agents' default) at input `x`,
/// by the book in `f64` from the checkpoint's weights (`[out, in]`).
fn mlp(state: &State, prefix: &str, x: &[f64]) -> Vec<f64> {
    let mut h = x.to_vec();
    for layer in 0.. {
        let hidden = format!("{prefix}fc{layer}");
        let last = !state.contains_key(&format!("{hidden}.weight"));
        let name = if last { format!("{prefix}out") } else { hidden };
        let (shape, w) = &state[&format!("{name}.weight")];
        let (_, b) = &state[&format!("{name}.bias")];
        let (out, inp) = (shape[0] as usize, shape[1] as usize);
        assert_eq!(inp, h.len(), "{name} takes {inp} inputs");
        let z: Vec<f64> =
            (0..out).map(|o| b[o] + (0..inp).map(|k| w[o * inp + k] * h[k]).sum::<f64>()).collect();
        if last {
            return z;
        }
        h = z.into_iter().map(|v| v.max(0.0)).collect();
    }
    unreachable!()
}

fn concat(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().chain(b).copied().collect()
}

fn to_f64(xs: &[f32]) -> Vec<f64> {
    xs.iter().map(|&x| f64::from(x)).collect()
}

/// Adam's first moment of `{net}/{tensor}` (the flat moment buffer holds the network's
/// tensors in name order).
fn first_moment(state: &State, net: &str, tensor: &str) -> Vec<f64> {
    let flat = &state[&format!("{net}_adam/exp_avg")].1;
    let prefix = format!("{net}/");
    let mut offset = 0;
    for (name, (_, values)) in state.range(prefix.clone()..) {
        assert!(name.starts_with(&prefix), "{net} has no tensor {tensor}");
        if name[prefix.len()..] == *tensor {
            return flat[offset..offset + values.len()].to_vec();
        }
        offset += values.len();
    }
    panic!("{net} has no tensor {tensor}")
}

/// The random draws an update of a one-transition buffer makes before its TD target's noise
/// (the minibatch index), then `cols` standard normals as the target draws them.
fn draws_of_the_next_update(seed: i64, cols: usize) -> Vec<f64> {
    let mut one = ReplayBuffer::new(1, 1, 1).unwrap();
    one.push(&[0.0], &[0.0], &[0.0], &[false], &[0.0]).unwrap();
    tch::manual_seed(seed);
    let _drawn = one.sample_rows(1).unwrap();
    let mut b = Torch::new(Device::Cpu);
    let eps = b.normal(1, cols).unwrap();
    let mut out = Vec::new();
    b.to_host(&eps, &mut out).unwrap();
    to_f64(&out)
}

/// Runs the agent's next update with the generator seeded with `seed` and returns the TD
/// target it regressed its critics on, read off the first step's Adam moment (see the module
/// docs). `q1` is `Q1(s, a)` of the buffer's one transition before the update, `column` the
/// output of `Q1` it is (its action for a per-action critic, else 0). The critic must not have
/// stepped before.
fn target_of_next_update(agent: &mut Pathwise, q1: f64, column: usize, seed: i64) -> f64 {
    assert_eq!(state(agent)["critic_adam/steps"].1, [0.0], "the critic stepped before");
    tch::manual_seed(seed);
    agent.update().expect("update");
    let moment = first_moment(&state(agent), "critic", "q1.out.bias");
    for (j, m) in moment.iter().enumerate() {
        if j != column {
            assert_eq!(*m, 0.0, "Q1's output {j} got a gradient from action {column}'s error");
        }
    }
    q1 - moment[column] / (2.0 * (1.0 - BETA1))
}

fn pendulum_spaces() -> (Space, Space) {
    (
        Space::Box(BoxSpace::new(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0])),
        Space::Box(BoxSpace::uniform(1, -2.0, 2.0)),
    )
}

/// A fresh agent (seeded with `seed`) that stores transitions without updating, so that
/// [`target_of_next_update`] can run its first update.
fn fresh(cfg: &PathwiseConfig, action_space: &Space, seed: i64) -> Pathwise {
    let cfg = PathwiseConfig { learning_starts: 1_000, batch_size: 1, ..cfg.clone() };
    tch::manual_seed(seed);
    Pathwise::new(&cfg, &pendulum_spaces().0, action_space, 1).expect("agent")
}

/// Stores one transition (through `observe`, as training does).
fn store(agent: &mut Pathwise, obs: &[f32], action: &Actions, reward: f64, end: (bool, bool)) {
    let (truncated, terminated) = end;
    let metrics = agent
        .observe(&Transition {
            obs,
            actions: action,
            rewards: &[reward],
            terminated: &[terminated],
            truncated: &[truncated],
            next_obs: &NEXT,
            masks: None,
            next_masks: None,
        })
        .expect("observe");
    assert!(metrics.is_none(), "no update before learning_starts");
}

/// The terminated flags of the stored transitions (the replay buffer as saved in training
/// state: rows of `obs | action | reward | terminated | next_obs`).
fn stored_terminated(agent: &Pathwise, obs_dim: usize, act_dim: usize) -> Vec<f64> {
    let state = agent.training_state(true).unwrap();
    let rows = &state.iter().find(|(n, _)| n == "replay/rows").expect("replay rows").1;
    let width = 2 * obs_dim + act_dim + 2;
    let values = Vec::<f64>::try_from(&rows.to_kind(Kind::Double).reshape([-1])).unwrap();
    values.chunks(width).map(|r| r[obs_dim + act_dim + 1]).collect()
}

const OBS: [f32; 3] = [0.6, 0.8, 0.5];
const NEXT: [f32; 3] = [0.8, 0.6, -1.5];
const REWARD: f64 = -3.0;
const GAMMA: f64 = 0.9;
/// An ordinary step, a time limit (truncated, not terminated), a true end: `(truncated,
/// terminated)`.
const ENDS: [(bool, bool); 3] = [(false, false), (true, false), (false, true)];

/// `log(1 − tanh(u)²)`, accurately in `f64`.
fn log_one_minus_tanh_squared(u: f64) -> f64 {
    let softplus = |x: f64| if x > 30.0 { x } else { x.exp().ln_1p() };
    2.0 * (std::f64::consts::LN_2 - u - softplus(-2.0 * u))
}

/// For each kind of end: a fresh agent (`cfg`, Pendulum's spaces) storing the transition
/// `OBS →(action 1, REWARD)→ NEXT` with that end, whose next update (generator seeded with
/// `seed`, the same for the three) must regress on `y = REWARD + γ (1 − terminated) V'(s')`
/// with `next_value` computed by hand from the agent's checkpoint (and the context printed on a
/// failure). Then truncation bootstraps like an ordinary step and termination does not.
fn check_targets_for_each_end(
    cfg: &PathwiseConfig,
    seed: i64,
    next_value: impl Fn(&State) -> (f64, String),
) {
    let backend = cfg.backend;
    let mut targets = Vec::new();
    for end in ENDS {
        let mut agent = fresh(cfg, &pendulum_spaces().1, 3);
        // Action 1 on [−2, 2]: the critic sees y = 0.5.
        store(&mut agent, &OBS, &Actions::Floats { values: vec![1.0], width: 1 }, REWARD, end);
        // Only the true end is stored as terminated.
        assert_eq!(stored_terminated(&agent, 3, 1), [f64::from(u8::from(end.1))], "{end:?}");
        let s = state(&agent);
        let q1 = mlp(&s, "critic/q1.", &concat(&to_f64(&OBS), &[0.5]))[0];
        let (value, context) = next_value(&s);
        let expected = REWARD + if end.1 { 0.0 } else { GAMMA * value };
        let got = target_of_next_update(&mut agent, q1, 0, seed);
        assert!(
            (got - expected).abs() < 1e-5,
            "{backend} {end:?}: target {got}, by hand {expected} ({context})"
        );
        targets.push(got);
    }
    assert!((targets[0] - targets[1]).abs() < 1e-6, "{backend}: truncation {targets:?}");
    assert!((targets[2] - REWARD).abs() < 1e-5, "{backend}: termination {targets:?}");
    assert!((targets[0] - REWARD).abs() > 1e-3, "{backend}: no bootstrap {targets:?}");
}

/// `min(Q1', Q2')(s', a)` of the target critics, by hand.
fn target_min_q(s: &State, next: &[f64], a: f64) -> f64 {
    let input = concat(next, &[a]);
    mlp(s, "critic_target/q1.", &input)[0].min(mlp(s, "critic_target/q2.", &input)[0])
}

#[test]
fn sac_targets_subtract_the_entropy_term_bootstrap_through_truncation_and_stop_at_termination() {
    let _rng = rng();
    for backend in BACKENDS {
        let cfg = PathwiseConfig {
            gamma: GAMMA,
            alpha: 0.3,
            autotune_alpha: false,
            backend,
            ..PathwiseConfig::default()
        };
        let seed = 40;
        let eps = draws_of_the_next_update(seed, 1)[0];
        // By hand: a' = tanh(u), u = μ + σ ε from the actor at s'; log π(a') by the change of
        // variables; V'(s') = min Q'(s', a') − α log π(a').
        check_targets_for_each_end(&cfg, seed, |s| {
            let next = to_f64(&NEXT);
            let out = mlp(s, "actor/", &next);
            let log_std = out[1].clamp(f64::from(LOG_STD_MIN), f64::from(LOG_STD_MAX));
            let u = out[0] + log_std.exp() * eps;
            let log_prob = -0.5 * eps * eps
                - log_std
                - 0.5 * (2.0 * std::f64::consts::PI).ln()
                - log_one_minus_tanh_squared(u);
            // The sampled action's log-probability is what is subtracted, and it matters.
            assert!(0.3 * GAMMA * log_prob.abs() > 1e-3, "{backend}: a vanishing entropy term");
            let min_q = target_min_q(s, &next, u.tanh());
            (min_q - 0.3 * log_prob, format!("min Q' {min_q}, log π {log_prob}"))
        });
    }
}

#[test]
fn td3_targets_bootstrap_through_truncation_and_stop_at_termination() {
    let _rng = rng();
    for backend in BACKENDS {
        let cfg = PathwiseConfig {
            estimator: Estimator::Td3,
            policy_noise: 0.0,
            gamma: GAMMA,
            backend,
            ..PathwiseConfig::default()
        };
        // By hand, without smoothing noise: V'(s') = min Q'(s', μ'(s')) with the target actor's
        // μ'.
        check_targets_for_each_end(&cfg, 50, |s| {
            let next = to_f64(&NEXT);
            let mu = mlp(s, "actor_target/", &next)[0].tanh();
            let min_q = target_min_q(s, &next, mu);
            (min_q, format!("μ' {mu}"))
        });
    }
}

#[test]
fn td3_smoothing_noise_is_clipped_and_target_actions_stay_in_the_box() {
    let _rng = rng();
    let (_, act_space) = pendulum_spaces();
    // Noise of std 10 clipped to ±0.5 around a target action of 0.9: a positive noise lands
    // on the box's edge 1, a negative one past −0.5 on 0.4.
    const MU: f64 = 0.9;
    for backend in BACKENDS {
        let cfg = PathwiseConfig {
            estimator: Estimator::Td3,
            policy_noise: 10.0,
            noise_clip: 0.5,
            gamma: GAMMA,
            backend,
            ..PathwiseConfig::default()
        };
        let (mut on_edge, mut clipped_low, mut discriminating) = (0, 0, 0);
        for seed in 60..72 {
            let mut agent = fresh(&cfg, &act_space, 3);
            // The target actor made constant: μ'(s) = tanh(atanh 0.9).
            let tensors: Vec<(String, Tensor)> = agent
                .named_tensors()
                .into_iter()
                .map(|(n, t)| match n.as_str() {
                    "actor_target/out.weight" => (n, t.zeros_like()),
                    "actor_target/out.bias" => (n, t.full_like(MU.atanh())),
                    _ => (n, t),
                })
                .collect();
            agent.load_named_tensors(&tensors).unwrap();
            store(
                &mut agent,
                &OBS,
                &Actions::Floats { values: vec![1.0], width: 1 },
                REWARD,
                (false, false),
            );
            let s = state(&agent);
            assert!((mlp(&s, "actor_target/", &to_f64(&NEXT))[0].tanh() - MU).abs() < 1e-6);
            let q1 = mlp(&s, "critic/q1.", &concat(&to_f64(&OBS), &[0.5]))[0];
            let eps = draws_of_the_next_update(seed, 1)[0];
            let smoothed = (MU + (10.0 * eps).clamp(-0.5, 0.5)).clamp(-1.0, 1.0);
            let value = |a: f64| target_min_q(&s, &to_f64(&NEXT), a);
            let expected = REWARD + GAMMA * value(smoothed);
            let got = target_of_next_update(&mut agent, q1, 0, seed);
            assert!(
                (got - expected).abs() < 1e-5,
                "{backend} seed {seed}: target {got}, by hand {expected} (a' = {smoothed})"
            );
            on_edge += usize::from(smoothed == 1.0);
            clipped_low += usize::from((smoothed - 0.4).abs() < 1e-12);
            // Without the clips the target would be another number.
            discriminating +=
                usize::from((REWARD + GAMMA * value(MU + 10.0 * eps) - got).abs() > 1e-3);
        }
        assert!(on_edge > 0 && clipped_low > 0, "{backend}: edge {on_edge}, clipped {clipped_low}");
        assert!(discriminating > 0, "{backend}: the clipped and unclipped targets agree");
    }
}

/// The transitions of the discrete cases: observation, action, reward, terminated (half of
/// them) and next observation.
fn discrete_transition(i: usize) -> ([f32; 3], usize, f64, bool, [f32; 3]) {
    let x = i as f32 / 8.0;
    ([x, -x, 2.0 * x], i % 3, f64::from(x) + 1.0, i % 2 == 0, [x.sin(), x.cos(), -x])
}

#[test]
fn discrete_soft_targets_are_the_exact_expectation_over_actions() {
    let _rng = rng();
    let space = Space::Discrete(3);
    for discrete_critic in [DiscreteCritic::PerAction, DiscreteCritic::Concatenated] {
        for backend in BACKENDS {
            let cfg = PathwiseConfig {
                gamma: GAMMA,
                expected_discrete_value: true,
                discrete_critic,
                alpha: 0.7,
                autotune_alpha: false,
                backend,
                ..PathwiseConfig::default()
            };
            let per_action = discrete_critic == DiscreteCritic::PerAction;
            // `Q(s, a)` of one network: the `a`-th output of a per-action critic, the one output
            // of a concatenated one at `[s, one-hot a]`.
            let q = |s: &State, prefix: &str, x: &[f64], a: usize| {
                if per_action {
                    mlp(s, prefix, x)[a]
                } else {
                    let mut one_hot = [0.0; 3];
                    one_hot[a] = 1.0;
                    mlp(s, prefix, &concat(x, &one_hot))[0]
                }
            };
            for i in 0..8 {
                let (obs, action, reward, terminated, next) = discrete_transition(i);
                let mut targets = Vec::new();
                for seed in [70, 71] {
                    let mut agent = fresh(&cfg, &space, 3);
                    let actions = Actions::Indices { values: vec![action as i64], width: 1 };
                    agent
                        .observe(&Transition {
                            obs: &obs,
                            actions: &actions,
                            rewards: &[reward],
                            terminated: &[terminated],
                            truncated: &[false],
                            next_obs: &next,
                            masks: None,
                            next_masks: None,
                        })
                        .unwrap();
                    assert_eq!(stored_terminated(&agent, 3, 3), [f64::from(u8::from(terminated))]);
                    let s = state(&agent);
                    let q1 = q(&s, "critic/q1.", &to_f64(&obs), action);
                    // By hand: Σ_a π(a|s') (min(Q1', Q2')(s', a) − α log π(a|s')).
                    let next = to_f64(&next);
                    let logits = mlp(&s, "actor/", &next);
                    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
                    let mut value = 0.0;
                    for (a, logit) in logits.iter().enumerate() {
                        let log_p = logit - lse;
                        let min_q = q(&s, "critic_target/q1.", &next, a).min(q(
                            &s,
                            "critic_target/q2.",
                            &next,
                            a,
                        ));
                        value += log_p.exp() * (min_q - 0.7 * log_p);
                    }
                    let expected = reward + if terminated { 0.0 } else { GAMMA * value };
                    let column = if per_action { action } else { 0 };
                    let got = target_of_next_update(&mut agent, q1, column, seed);
                    assert!(
                        (got - expected).abs() < 1e-5,
                        "{backend} {discrete_critic}, row {i} (terminated {terminated}): target \
                         {got}, by hand {expected}"
                    );
                    targets.push(got);
                }
                // The expectation has no sampling noise: other draws give the same target.
                assert_eq!(targets[0], targets[1], "{backend} {discrete_critic}, row {i}");
            }
        }
    }
}

/// What one full update moved, for an agent with `policy_delay` 1 (critic, actor, targets) and
/// one with `policy_delay` 2 (its first update steps the critic only), built and fed alike.
#[test]
fn the_critic_step_moves_only_the_critic_and_the_actor_step_only_the_actor() {
    let _rng = rng();
    let (obs_space, box_space) = pendulum_spaces();
    let sac =
        PathwiseConfig { batch_size: 32, learning_starts: 1_000, ..PathwiseConfig::default() };
    let cases = [
        ("sac", sac.clone(), box_space.clone()),
        ("td3", PathwiseConfig { estimator: Estimator::Td3, ..sac.clone() }, box_space),
        ("discrete, per-action critic", sac.clone(), Space::Discrete(3)),
        (
            "discrete, concatenated critic",
            PathwiseConfig { discrete_critic: DiscreteCritic::Concatenated, ..sac.clone() },
            Space::Discrete(3),
        ),
    ];
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let diff =
        |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    for (name, cfg, space) in cases {
        for backend in BACKENDS {
            let tau = cfg.tau;
            let mut after = Vec::new();
            let mut before = None;
            for policy_delay in [1, 2] {
                let cfg = PathwiseConfig { policy_delay, backend, ..cfg.clone() };
                tch::manual_seed(5);
                let mut agent = Pathwise::new(&cfg, &obs_space, &space, 1).unwrap();
                for i in 0..64 {
                    let x = i as f32 / 64.0;
                    let actions = match space {
                        Space::Discrete(n) => {
                            Actions::Indices { values: vec![(i % n) as i64], width: 1 }
                        }
                        _ => Actions::Floats { values: vec![4.0 * x - 2.0], width: 1 },
                    };
                    agent
                        .observe(&Transition {
                            obs: &[x.cos(), x.sin(), x],
                            actions: &actions,
                            rewards: &[-f64::from(x)],
                            terminated: &[i % 7 == 0],
                            truncated: &[i % 11 == 0],
                            next_obs: &[x.sin(), x.cos(), -x],
                            masks: None,
                            next_masks: None,
                        })
                        .unwrap();
                }
                before = Some(state(&agent));
                tch::manual_seed(11);
                agent.update().unwrap();
                after.push(state(&agent));
            }
            let (before, (one, two)) = (before.unwrap(), (&after[0], &after[1]));
            let what = format!("{name} on {backend}");
            for (tensor, (_, v0)) in &before {
                let (v1, v2) = (&one[tensor].1, &two[tensor].1);
                let net = tensor.split('/').next().unwrap();
                match net {
                    // The critic step is the same in both: the actor step that follows in the
                    // first leaves the critic alone.
                    "critic" => assert_eq!(v1, v2, "{what}: the actor step changed {tensor}"),
                    // The critic step leaves the actor alone; the actor step moves it.
                    "actor" => assert_eq!(v0, v2, "{what}: the critic step changed {tensor}"),
                    // Targets move only by Polyak averaging after an actor step.
                    "critic_target" | "actor_target" => {
                        assert_eq!(v0, v2, "{what}: {tensor} moved without an actor step");
                        let source = &one[&tensor.replacen("_target", "", 1)].1;
                        let polyak: Vec<f64> =
                            v0.iter().zip(source).map(|(t, s)| t + tau * (s - t)).collect();
                        assert!(
                            diff(v1, &polyak) < 1e-6,
                            "{what}: {tensor} is not the Polyak average"
                        );
                    }
                    _ => {}
                }
            }
            let moved = |net: &str, s: &State| -> f64 {
                before
                    .iter()
                    .filter(|(n, _)| n.starts_with(&format!("{net}/")))
                    .map(|(n, (_, v))| diff(v, &s[n].1))
                    .fold(0.0, f64::max)
            };
            assert!(moved("critic", two) > 1e-6, "{what}: the critic step did not move the critic");
            assert!(moved("actor", one) > 1e-6, "{what}: the actor step did not move the actor");
            let steps = |s: &State, net: &str| s[&format!("{net}_adam/steps")].1[0];
            assert_eq!((steps(one, "critic"), steps(one, "actor")), (1.0, 1.0), "{what}");
            assert_eq!((steps(two, "critic"), steps(two, "actor")), (1.0, 0.0), "{what}");
            assert!(norm(&first_moment(two, "actor", "out.bias")) == 0.0, "{what}");
        }
    }
}

#[test]
fn a_checkpoint_moves_between_backends_and_both_continue_alike() {
    // Saved by an agent on one backend, loaded by one on the other: the same parameters,
    // optimizer state and replay buffer, so the same actions and the same next update up to
    // float rounding.
    let _rng = rng();
    let (obs_space, act_space) = pendulum_spaces();
    let cfg = PathwiseConfig {
        policy_delay: 1,
        batch_size: 32,
        learning_starts: 40,
        ..Default::default()
    };
    for (from, to) in [
        (BackendChoice::Kernel, BackendChoice::Libtorch),
        (BackendChoice::Libtorch, BackendChoice::Kernel),
    ] {
        tch::manual_seed(7);
        let mut source = Pathwise::new(
            &PathwiseConfig { backend: from, ..cfg.clone() },
            &obs_space,
            &act_space,
            1,
        )
        .unwrap();
        for i in 0..45 {
            let x = i as f32 / 45.0;
            source
                .observe(&Transition {
                    obs: &[x.cos(), x.sin(), x],
                    actions: &Actions::Floats { values: vec![2.0 * x - 1.0], width: 1 },
                    rewards: &[-f64::from(x)],
                    terminated: &[i % 7 == 0],
                    truncated: &[false],
                    next_obs: &[x.sin(), x.cos(), -x],
                    masks: None,
                    next_masks: None,
                })
                .unwrap();
        }
        assert_eq!(source.updates(), 6);
        tch::manual_seed(8);
        let mut dest = Pathwise::new(
            &PathwiseConfig { backend: to, ..cfg.clone() },
            &obs_space,
            &act_space,
            1,
        )
        .unwrap();
        dest.load_named_tensors(&source.named_tensors()).unwrap();
        dest.load_training_state(&source.training_state(true).unwrap()).unwrap();
        let obs: Vec<f32> = (0..12).map(|i| ((i as f32) * 0.3).cos()).collect();
        let (mut a, mut b) = (Actions::default(), Actions::default());
        source.act(&obs, ActMode::Deterministic, &mut a).unwrap();
        dest.act(&obs, ActMode::Deterministic, &mut b).unwrap();
        let (Actions::Floats { values: a, .. }, Actions::Floats { values: b, .. }) = (&a, &b)
        else {
            panic!("float actions")
        };
        let err = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "{from} → {to}: greedy actions differ by {err}");
        for agent in [&mut source, &mut dest] {
            tch::manual_seed(99);
            agent.update().unwrap();
        }
        let (s, d) = (state(&source), state(&dest));
        for (name, (_, x)) in &s {
            let y = &d[name].1;
            let err = x.iter().zip(y).map(|(p, q)| (p - q).powi(2)).sum::<f64>().sqrt();
            let scale = x.iter().map(|p| p * p).sum::<f64>().sqrt();
            assert!(
                err <= 1e-4 * scale + 1e-9,
                "{from} → {to}: {name} differs by {err} (norm {scale})"
            );
        }
    }
}
