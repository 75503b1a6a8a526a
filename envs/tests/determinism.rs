//! Seeding of the built-in environments: the same seed replays the same episode, different
//! seeds differ, and `reset(None)` continues the stream.

use rlpg_envs::{Action, Env, make};

/// First observation plus `steps` steps (with resets after episode ends), flattened.
fn run(id: &str, seed: u64, steps: usize) -> Vec<f64> {
    let mut env = make(id).expect("registered");
    let mut trace: Vec<f64> =
        env.reset(Some(seed)).expect("reset").iter().map(|&x| x.into()).collect();
    for t in 0..steps {
        let torque = [((t % 9) as f32 - 4.0) / 2.0];
        let action = match id {
            "CartPole-v1" => Action::Discrete(t % 3 % 2),
            _ => Action::Continuous(&torque),
        };
        let step = env.step(action).expect("step");
        trace.extend(step.obs.iter().map(|&x| f64::from(x)));
        trace.push(step.reward);
        if step.done() {
            trace.extend(env.reset(None).expect("reset").iter().map(|&x| f64::from(x)));
        }
    }
    trace
}

#[test]
fn same_seed_gives_the_same_trajectory() {
    for id in ["CartPole-v1", "Pendulum-v1"] {
        for seed in [0, 1, 12345, u64::MAX] {
            assert_eq!(run(id, seed, 600), run(id, seed, 600), "{id} seed {seed}");
        }
    }
}

#[test]
fn different_seeds_give_different_trajectories() {
    for id in ["CartPole-v1", "Pendulum-v1"] {
        let runs: Vec<_> = (0..20).map(|seed| run(id, seed, 50)).collect();
        for i in 0..runs.len() {
            for j in i + 1..runs.len() {
                assert_ne!(runs[i], runs[j], "{id}: seeds {i} and {j} gave the same trajectory");
            }
        }
    }
}

#[test]
fn reset_without_seed_continues_the_stream() {
    for id in ["CartPole-v1", "Pendulum-v1"] {
        let mut env = make(id).expect("registered");
        let first = env.reset(Some(7)).expect("reset");
        let second = env.reset(None).expect("reset");
        assert_ne!(first, second, "{id}: reset(None) restarted the stream");
        let mut again = make(id).expect("registered");
        again.reset(Some(7)).expect("reset");
        assert_eq!(again.reset(None).expect("reset"), second, "{id}: the continued stream differs");
    }
}
