//! The pathwise agent's plain-Rust update (SAC with discrete actions and per-action critics on
//! the CPU) against the tensor code it replaces: two agents built alike, one switched to the
//! tensor code, take the same updates from the same random draws, and every network, the
//! temperature and every logged metric must move the same way up to float rounding, for each
//! option the plain-Rust code implements; and acting takes the same actions.
//!
//! One test in its own binary on purpose: both agents draw from libtorch's global generator,
//! which a test running in another thread would advance in between.

use rlpg_agents::{ActMode, Activation, Agent, Pathwise, PathwiseConfig, Transition};
use rlpg_envs::{BoxSpace, Space};
use tch::Tensor;

/// Transitions stored before updates start.
const FILLED: usize = 19;
/// Updates compared.
const UPDATES: usize = 6;

/// The `i`-th transition of a made-up 3-observation, 3-action task.
fn observe(agent: &mut Pathwise, i: usize) -> Option<Vec<(&'static str, f64)>> {
    let x = i as f32 / FILLED as f32;
    let (obs, next) = ([x, -x, 2.0 * x], [x.sin(), x.cos(), -x]);
    agent
        .observe(&Transition {
            obs: &obs,
            actions: &Tensor::from_slice(&[(i % 3) as i64]),
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
    let variants = [
        ("defaults", base.clone()),
        (
            "relu, clipped gradients",
            PathwiseConfig { activation: Activation::Relu, max_grad_norm: 0.05, ..base.clone() },
        ),
        (
            "bounded logits, relaxed forward",
            PathwiseConfig {
                logit_bound: 1.0,
                straight_through: false,
                gumbel_temperature: 0.7,
                ..base.clone()
            },
        ),
        (
            "exact expected value, fixed alpha",
            PathwiseConfig {
                expected_discrete_value: true,
                autotune_alpha: false,
                activation: Activation::Elu,
                ..base.clone()
            },
        ),
    ];
    let obs_space = Space::Box(BoxSpace::uniform(3, -3.0, 3.0));
    for (what, cfg) in variants {
        let build = || {
            tch::manual_seed(11);
            Pathwise::new(&cfg, &obs_space, &Space::Discrete(3), 1).expect("agent")
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
                if let Some(m) = observe(agent, i) {
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
        // Acting: the same actions from the same draws, exploring or not.
        let obs = Tensor::randn([64, 3], (tch::Kind::Float, tch::Device::Cpu));
        for mode in [ActMode::Explore, ActMode::Deterministic] {
            let actions = [&mut hand, &mut tensors].map(|agent| {
                tch::manual_seed(7);
                Vec::<i64>::try_from(&agent.act(&obs, mode)).expect("actions")
            });
            assert_eq!(actions[0], actions[1], "{what}: actions ({mode:?})");
            // Not trivially equal: the 64 states get more than one action.
            let distinct = (0..3).filter(|a| actions[0].contains(a)).count();
            assert!(distinct >= 2, "{what}: {mode:?} took one action in every state");
        }
        let [Some(hm), Some(tm)] = metrics else { panic!("{what}: no metrics reported") };
        let tags = |m: &[(&'static str, f64)]| m.iter().map(|(tag, _)| *tag).collect::<Vec<_>>();
        assert_eq!(tags(&hm), tags(&tm), "{what}: metric tags");
        for ((tag, a), (_, b)) in hm.iter().zip(&tm) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1e-2), "{what}: {tag} {a} against {b}");
        }
    }
}
