//! The pathwise agent's plain-Rust update (SAC on the CPU) against the tensor code it replaces:
//! two agents built alike, one switched to the tensor code, take the same updates from the
//! same random draws, and every network, the temperature and every logged metric must move the
//! same way up to float rounding, for each option the plain-Rust code implements, on discrete
//! actions (Gumbel-softmax, per-action critics) and on boxes (squashed Gaussian, concatenated
//! critics); and acting takes the same actions.
//!
//! One test in its own binary on purpose: both agents draw from libtorch's global generator,
//! which a test running in another thread would advance in between.

use rlpg_agents::{ActMode, Activation, Agent, Exploration, Pathwise, PathwiseConfig, Transition};
use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor};

/// Transitions stored before updates start.
const FILLED: usize = 19;
/// Updates compared.
const UPDATES: usize = 6;

/// The `i`-th transition of a made-up task with 3 observations and `action_space`'s actions.
fn observe(
    agent: &mut Pathwise,
    action_space: &Space,
    i: usize,
) -> Option<Vec<(&'static str, f64)>> {
    let x = i as f32 / FILLED as f32;
    let (obs, next) = ([x, -x, 2.0 * x], [x.sin(), x.cos(), -x]);
    let actions = match action_space {
        Space::Discrete(n) => Tensor::from_slice(&[(i % n) as i64]),
        Space::Box(b) => {
            let a: Vec<f32> = (0..b.dim()).map(|j| ((i * 7 + j * 3) as f32).sin() * 1.9).collect();
            Tensor::from_slice(&a).view([1, b.dim() as i64])
        }
        other => panic!("no pathwise head for {other}"),
    };
    agent
        .observe(&Transition {
            obs: &obs,
            actions: &actions,
            rewards: &[f64::from(x) + 1.0],
            terminated: &[i % 4 == 0],
            truncated: &[i % 5 == 0],
            next_obs: &next,
        })
        .expect("observe")
}

/// The agent's networks (actor, critics, target critics) as one flat vector.
fn parameters(agent: &Pathwise) -> Tensor {
    let mut named = agent.named_tensors();
    named.retain(|(name, _)| !name.contains("adam") && !name.contains("alpha"));
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let flat: Vec<Tensor> = named.iter().map(|(_, t)| t.reshape([-1])).collect();
    Tensor::cat(&flat, 0)
}

/// The two codes on `cfg` and `action_space`, compared as the crate doc says.
fn compare(what: &str, cfg: &PathwiseConfig, action_space: &Space) {
    let obs_space = Space::Box(BoxSpace::uniform(3, -3.0, 3.0));
    let build = || {
        tch::manual_seed(11);
        Pathwise::new(cfg, &obs_space, action_space, 1).expect("agent")
    };
    let (mut hand, mut tensors) = (build(), build());
    assert!(hand.uses_cpu_update(), "{what}: the plain-Rust update should apply");
    tensors.use_tensor_update();
    assert!(!tensors.uses_cpu_update());
    let start = parameters(&hand);
    assert_eq!(start.size(), parameters(&tensors).size());
    let mut metrics = [None, None];
    for (k, agent) in [&mut hand, &mut tensors].into_iter().enumerate() {
        for i in 0..FILLED + UPDATES {
            // The same draws for both agents, whatever each update takes.
            tch::manual_seed(100 + i as i64);
            if let Some(m) = observe(agent, action_space, i) {
                metrics[k] = Some(m);
            }
        }
    }
    assert_eq!((hand.updates(), tensors.updates()), (UPDATES as u64, UPDATES as u64));
    let (h, t) = (&parameters(&hand) - &start, &parameters(&tensors) - &start);
    let moved = t.norm().double_value(&[]);
    assert!(moved > 1e-3, "{what}: the networks did not move ({moved})");
    let gap = (&h - &t).norm().double_value(&[]) / moved;
    assert!(gap < 1e-4, "{what}: the parameter changes differ by {gap:.2e} (relative)");
    let alpha_gap = (hand.alpha() - tensors.alpha()).abs() / tensors.alpha();
    assert!(alpha_gap < 1e-6, "{what}: alpha {} against {}", hand.alpha(), tensors.alpha());
    // Acting: the same actions from the same draws, exploring or not, on a batch of states
    // and one state at a time (as with one environment, the shape pink noise comes in).
    let obs = Tensor::randn([64, 3], (Kind::Float, Device::Cpu));
    for mode in [ActMode::Explore, ActMode::Deterministic] {
        let actions = [&mut hand, &mut tensors].map(|agent| {
            tch::manual_seed(7);
            let mut each: Vec<Tensor> = vec![agent.act(&obs, mode)];
            each.extend((0..16).map(|k| agent.act(&obs.narrow(0, k, 1), mode)));
            Tensor::cat(&each, 0)
        });
        let gap = (&actions[0].to_kind(Kind::Double) - &actions[1].to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert!(gap < 1e-4, "{what}: actions ({mode:?}) differ by {gap}");
        // Not trivially equal: the 64 states do not all get the same action.
        let spread = actions[0].to_kind(Kind::Double).std(false).double_value(&[]);
        assert!(spread > 0.0, "{what}: {mode:?} took the same action in every state");
    }
    let [Some(hm), Some(tm)] = metrics else { panic!("{what}: no metrics reported") };
    let tags = |m: &[(&'static str, f64)]| m.iter().map(|(tag, _)| *tag).collect::<Vec<_>>();
    assert_eq!(tags(&hm), tags(&tm), "{what}: metric tags");
    for ((tag, a), (_, b)) in hm.iter().zip(&tm) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1e-2), "{what}: {tag} {a} against {b}");
    }
}

#[test]
fn the_plain_rust_update_is_the_tensor_update() {
    let base = PathwiseConfig {
        batch_size: 16,
        learning_starts: FILLED + 1,
        actor_hidden: vec![16, 12],
        critic_hidden: vec![16, 12],
        policy_delay: 2,
        alpha_learning_rate: 1e-2,
        metrics_every: FILLED + UPDATES,
        ..PathwiseConfig::default()
    };
    let discrete = Space::Discrete(3);
    compare("discrete, defaults", &base, &discrete);
    let relu = PathwiseConfig { activation: Activation::Relu, max_grad_norm: 0.05, ..base.clone() };
    compare("discrete, relu, clipped gradients", &relu, &discrete);
    let relaxed = PathwiseConfig {
        logit_bound: 1.0,
        straight_through: false,
        gumbel_temperature: 0.7,
        ..base.clone()
    };
    compare("discrete, bounded logits, relaxed forward", &relaxed, &discrete);
    let expected = PathwiseConfig {
        expected_discrete_value: true,
        autotune_alpha: false,
        activation: Activation::Elu,
        ..base.clone()
    };
    compare("discrete, exact expected value, fixed alpha", &expected, &discrete);

    let pendulum = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    compare("box, defaults", &base, &pendulum);
    let wide = Space::Box(BoxSpace::new(vec![-1.0, 0.0], vec![1.0, 3.0]));
    compare(
        "box of 2, relu, clipped gradients, policy delay 1",
        &PathwiseConfig { policy_delay: 1, ..relu.clone() },
        &wide,
    );
    let pink = PathwiseConfig { exploration: Exploration::Pink, ..base.clone() };
    compare("box of 2, pink exploration noise", &pink, &wide);
}
