//! Agents on a chosen device: `new_on` builds them there, they act on host observations and
//! return host actions, they update, and a checkpoint written by an agent on one device loads
//! into one on another. On a machine without CUDA the "other" device is the CPU again (what
//! `device = "auto"` means there); on a GPU machine the same test crosses devices.

use rlpg_agents::{
    ActMode, Actions, Agent, Pathwise, PathwiseConfig, Reinforce, ReinforceConfig, Transition,
};
use rlpg_envs::{BoxSpace, Space};
use std::sync::{Mutex, MutexGuard};
use tch::{Device, Tensor};

/// libtorch's generator is global to the process and the tests of this file run on parallel
/// threads: each test that seeds it holds this lock, or another test's draws land between
/// its `manual_seed` and its construction.
static RNG: Mutex<()> = Mutex::new(());

fn rng_turn() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pendulum_spaces() -> (Space, Space) {
    (
        Space::Box(BoxSpace::new(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0])),
        Space::Box(BoxSpace::uniform(1, -2.0, 2.0)),
    )
}

/// The device `device = "auto"` picks here.
fn other_device() -> Device {
    Device::cuda_if_available()
}

/// Feeds `steps` transitions of a fixed pattern (2 envs) so that the agent updates.
fn feed(agent: &mut dyn Agent, steps: usize) {
    for i in 0..steps {
        let x = i as f32 / steps as f32;
        let obs = [x, 1.0 - x, 2.0 * x, -x, x * x, 0.5];
        let mut actions = Actions::default();
        agent.act(&obs, ActMode::Explore, &mut actions).expect("act");
        assert_eq!((actions.rows(), actions.width()), (2, 1), "one action per env");
        let next = [x * 0.5, x, 1.0, 0.0, -x, x];
        let transition = Transition {
            obs: &obs,
            actions: &actions,
            rewards: &[f64::from(x), -f64::from(x)],
            terminated: &[i % 17 == 16, false],
            truncated: &[false, i % 23 == 22],
            next_obs: &next,
            masks: None,
            next_masks: None,
        };
        agent.observe(&transition).expect("observe");
    }
}

/// Deterministic actions of `agent` on a fixed batch.
fn deterministic(agent: &mut dyn Agent) -> Vec<f32> {
    let obs = [0.3f32, -0.2, 1.5, -0.7, 0.1, -4.0];
    let mut actions = Actions::default();
    agent.act(&obs, ActMode::Deterministic, &mut actions).expect("act");
    match actions {
        Actions::Floats { values, .. } => values,
        other => panic!("expected float actions, got {other}"),
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).fold(0.0, f64::max)
}

/// Saves every tensor of `from` (named tensors and training state) and loads them into `to`,
/// checking that their deterministic actions differ before and agree after.
fn transplant(from: &mut dyn Agent, to: &mut dyn Agent) {
    assert!(max_diff(&deterministic(from), &deterministic(to)) > 0.0, "differ before loading");
    // Checkpoints are written from the CPU (src/checkpoint.rs moves every tensor there).
    let to_cpu = |v: Vec<(String, Tensor)>| -> Vec<(String, Tensor)> {
        v.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))).collect()
    };
    to.load_named_tensors(&to_cpu(from.named_tensors())).expect("load named tensors");
    to.load_training_state(&to_cpu(from.training_state(true).expect("state")))
        .expect("load training state");
    let (y_from, y_to) = (deterministic(from), deterministic(to));
    assert!(max_diff(&y_from, &y_to) < 1e-5, "after loading: {y_from:?} vs {y_to:?}");
}

#[test]
fn pathwise_trains_on_the_chosen_device_and_its_checkpoint_loads_on_another() {
    let (obs, act) = pendulum_spaces();
    let cfg = PathwiseConfig { learning_starts: 20, batch_size: 16, ..PathwiseConfig::default() };
    let _turn = rng_turn();
    tch::manual_seed(3);
    let mut a = Pathwise::new_on(&cfg, &obs, &act, 2, Device::Cpu).expect("agent on the CPU");
    feed(&mut a, 60);
    assert!(a.updates() > 0, "the agent must have updated");
    tch::manual_seed(4);
    let mut b = Pathwise::new_on(&cfg, &obs, &act, 2, other_device()).expect("agent");
    transplant(&mut a, &mut b);
    assert_eq!(a.replay_len(), b.replay_len(), "the replay buffer moved along");
    // The loaded agent keeps training where it is.
    feed(&mut b, 10);
}

#[test]
fn reinforce_trains_on_the_chosen_device_and_its_checkpoint_loads_on_another() {
    let (obs, act) = pendulum_spaces();
    let cfg = ReinforceConfig { n_steps: 8, ..ReinforceConfig::default() };
    let _turn = rng_turn();
    tch::manual_seed(5);
    let mut a = Reinforce::new_on(&cfg, &obs, &act, 2, Device::Cpu).expect("agent on the CPU");
    feed(&mut a, 20);
    tch::manual_seed(6);
    let mut b = Reinforce::new_on(&cfg, &obs, &act, 2, other_device()).expect("agent");
    transplant(&mut a, &mut b);
    feed(&mut b, 10);
}

#[test]
fn an_agent_built_on_the_cpu_acts_exactly_as_new_does() {
    // `new` is `new_on(.., Device::Cpu)`: the default path every CPU run takes is unchanged.
    let (obs, act) = pendulum_spaces();
    let cfg = PathwiseConfig::default();
    let _turn = rng_turn();
    tch::manual_seed(9);
    let mut a = Pathwise::new(&cfg, &obs, &act, 2).expect("agent");
    tch::manual_seed(9);
    let mut b = Pathwise::new_on(&cfg, &obs, &act, 2, Device::Cpu).expect("agent");
    assert_eq!(max_diff(&deterministic(&mut a), &deterministic(&mut b)), 0.0);
}
