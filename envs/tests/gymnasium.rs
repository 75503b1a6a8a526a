//! The `gymnasium` bridge against Gymnasium itself: the same trajectory, bit for bit, as the
//! same venv's Python gives for the same seed and actions (the reference is generated here, by
//! that Python); errors of Python envs; `VecEnv` over bridge envs. Needs the venv of
//! `scripts/setup.sh --gymnasium` (or RLPG_PYTHON / VIRTUAL_ENV).

use std::process::Command;

use rlpg_envs::gymnasium::{GymnasiumEnv, python_env};
use rlpg_envs::{Action, Env, EnvError, Space, VecActions, VecEnv};

/// One step as both sides report it: observation bits (exact `f32`), reward, flags.
#[derive(Debug, PartialEq)]
struct Record {
    obs: Vec<u32>,
    reward: f64,
    terminated: bool,
    truncated: bool,
}

/// Gymnasium's own trajectory, from the venv's Python: `reset(seed)`, then the actions in order,
/// with `reset()` (no seed) after every episode end. The first record is the reset's.
fn python_trajectory(id: &str, kwargs: &str, seed: u64, actions: &str) -> Vec<Record> {
    let script = r#"
import json, sys
import numpy as np
import gymnasium as gym
gym_id, kwargs, seed, actions = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
env = gym.make(gym_id, **kwargs)
def bits(obs):
    return np.ascontiguousarray(obs, dtype=np.float32).ravel().view(np.uint32).tolist()
obs, _ = env.reset(seed=seed)
out = [[bits(obs), 0.0, False, False]]
for a in actions:
    a = np.asarray(a, dtype=env.action_space.dtype).reshape(env.action_space.shape) if isinstance(a, list) else a
    obs, r, term, trunc, _ = env.step(a)
    out.append([bits(obs), float(r), bool(term), bool(trunc)])
    if term or trunc:
        obs, _ = env.reset()
        out.append([bits(obs), 0.0, False, False])
print(json.dumps(out))
"#;
    let python = python_env().expect("the gymnasium venv (scripts/setup.sh --gymnasium)").python;
    let out = Command::new(&python)
        .args(["-c", script, id, kwargs, &seed.to_string(), actions])
        .output()
        .expect("run the venv's python");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<(Vec<u32>, f64, bool, bool)> =
        serde_json::from_slice(&out.stdout).expect("reference JSON");
    rows.into_iter()
        .map(|(obs, reward, terminated, truncated)| Record { obs, reward, terminated, truncated })
        .collect()
}

/// The bridge's trajectory for the same protocol as [`python_trajectory`].
fn bridge_trajectory(env: &mut GymnasiumEnv, seed: u64, actions: &[Action<'_>]) -> Vec<Record> {
    let bits = |obs: &[f32]| obs.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let first = env.reset(Some(seed)).expect("reset");
    let mut out =
        vec![Record { obs: bits(&first), reward: 0.0, terminated: false, truncated: false }];
    for &action in actions {
        let step = env.step(action).expect("step");
        out.push(Record {
            obs: bits(&step.obs),
            reward: step.reward,
            terminated: step.terminated,
            truncated: step.truncated,
        });
        if step.done() {
            let obs = env.reset(None).expect("reset");
            out.push(Record { obs: bits(&obs), reward: 0.0, terminated: false, truncated: false });
        }
    }
    out
}

/// A fixed pseudo-random sequence in `[0, 1)` (an LCG: the test needs no `rand`).
fn uniform(n: usize, mut state: u64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn assert_same(id: &str, ours: &[Record], theirs: &[Record]) {
    assert_eq!(ours.len(), theirs.len(), "{id}: trajectories differ in length");
    for (t, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a, b, "{id}: record {t} differs (bridge left, Gymnasium right)");
    }
}

#[test]
fn cartpole_through_the_bridge_is_gymnasiums_trajectory() {
    let id = "gymnasium:CartPole-v1";
    let mut env = GymnasiumEnv::new(id, &serde_json::Map::new()).expect("make");
    assert_eq!(env.action_space(), &Space::Discrete(2));
    assert_eq!(env.observation_space().flat_dim(), 4);
    assert_eq!(env.max_episode_steps(), Some(500));
    let actions: Vec<usize> = uniform(700, 7).iter().map(|u| usize::from(*u < 0.5)).collect();
    let json = serde_json::to_string(&actions).expect("json");
    let theirs = python_trajectory("CartPole-v1", "{}", 42, &json);
    let acts: Vec<Action<'_>> = actions.iter().map(|&a| Action::Discrete(a)).collect();
    let ours = bridge_trajectory(&mut env, 42, &acts);
    assert!(ours.iter().filter(|r| r.terminated).count() >= 5, "episodes should end");
    assert_same(id, &ours, &theirs);
}

#[test]
fn pendulum_through_the_bridge_is_gymnasiums_trajectory_with_its_time_limit() {
    let id = "gymnasium:Pendulum-v1";
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("g".to_owned(), serde_json::json!(9.81));
    let mut env = GymnasiumEnv::new(id, &kwargs).expect("make");
    assert_eq!(env.observation_space().flat_dim(), 3);
    let actions: Vec<[f32; 1]> = uniform(450, 3).iter().map(|u| [(4.0 * u - 2.0) as f32]).collect();
    let json = serde_json::to_string(&actions).expect("json");
    let theirs = python_trajectory("Pendulum-v1", r#"{"g": 9.81}"#, 5, &json);
    let acts: Vec<Action<'_>> = actions.iter().map(|a| Action::Continuous(a)).collect();
    let ours = bridge_trajectory(&mut env, 5, &acts);
    assert_eq!(ours.iter().filter(|r| r.truncated).count(), 2, "Gymnasium's 200-step limit");
    assert!(ours.iter().all(|r| !r.terminated));
    assert_same(id, &ours, &theirs);
}

#[test]
fn a_python_exception_in_step_is_an_env_error_naming_env_type_and_message() {
    // Pendulum with a string for `g`: `make` and `reset` accept it, `step` computes with it.
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("g".to_owned(), serde_json::json!("not a number"));
    let mut env = GymnasiumEnv::new("gymnasium:Pendulum-v1", &kwargs).expect("make");
    env.reset(Some(0)).expect("reset");
    let err = env.step(Action::Continuous(&[0.5])).expect_err("step must raise");
    let text = err.to_string();
    assert!(matches!(err, EnvError::Other { .. }), "{err:?}");
    for part in ["gymnasium:Pendulum-v1", "Python exception in step", "TypeError", "pendulum.py"] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    // The env is in an unknown state after the exception: stepping again needs a reset.
    assert!(matches!(env.step(Action::Continuous(&[0.5])), Err(EnvError::NotReset { .. })));
}

#[test]
fn an_unknown_id_or_an_unsupported_space_is_one_clear_error() {
    let err = GymnasiumEnv::new("gymnasium:NoSuchEnv-v0", &serde_json::Map::new())
        .expect_err("unknown id");
    let text = err.to_string();
    assert!(text.contains("gymnasium.make failed") && text.contains("NoSuchEnv"), "{text}");
    assert!(text.contains("NameNotFound"), "Gymnasium's error type is quoted: {text}");
    // Blackjack observes a Tuple of Discretes.
    let err = GymnasiumEnv::new("gymnasium:Blackjack-v1", &serde_json::Map::new())
        .expect_err("Tuple space");
    let text = err.to_string();
    assert!(text.contains("observation space") && text.contains("Tuple"), "{text}");
    let err = GymnasiumEnv::new("gymnasium:", &serde_json::Map::new()).expect_err("empty id");
    assert!(err.to_string().contains("gymnasium:<ID>"), "{err}");
}

#[test]
fn vec_env_of_bridge_envs_steps_each_as_it_would_alone() {
    // A VecEnv over bridge envs (one GIL acquisition per batch step) against the same envs
    // stepped one by one with the VecEnv's conventions: env i seeded with seed + i, same-step
    // autoreset (next_obs is the final observation, obs the new episode's first).
    let n = 3;
    let make = || GymnasiumEnv::new("gymnasium:CartPole-v1", &serde_json::Map::new()).unwrap();
    let mut vec = VecEnv::new((0..n).map(|_| Box::new(make()) as Box<dyn Env>).collect()).unwrap();
    let mut alone: Vec<GymnasiumEnv> = (0..n).map(|_| make()).collect();
    let mut obs: Vec<f32> = Vec::new();
    for (i, env) in alone.iter_mut().enumerate() {
        obs.extend_from_slice(&env.reset(Some(9 + i as u64)).unwrap());
    }
    assert_eq!(vec.reset(Some(9)).unwrap(), &obs[..]);
    let us = uniform(300 * n, 11);
    let mut ends = 0;
    for t in 0..300 {
        let acts: Vec<usize> = (0..n).map(|i| usize::from(us[t * n + i] < 0.5)).collect();
        let batch = vec.step(VecActions::Discrete(&acts)).unwrap().clone();
        for (i, env) in alone.iter_mut().enumerate() {
            let step = env.step(Action::Discrete(acts[i])).unwrap();
            let row = i * 4..(i + 1) * 4;
            assert_eq!(&batch.next_obs[row.clone()], &step.obs[..], "step {t} env {i} next_obs");
            assert_eq!(batch.rewards[i], step.reward, "step {t} env {i} reward");
            assert_eq!(batch.terminated[i], step.terminated, "step {t} env {i} terminated");
            assert_eq!(batch.truncated[i], step.truncated, "step {t} env {i} truncated");
            let next = if step.done() {
                ends += 1;
                env.reset(None).unwrap()
            } else {
                step.obs
            };
            assert_eq!(&batch.obs[row], &next[..], "step {t} env {i} obs");
        }
    }
    assert!(ends >= 10, "episodes should end and autoreset ({ends})");
}
