//! The discrete pathwise update (Gumbel-softmax SAC with per-action twin critics) at
//! `configs/pathwise_cartpole.toml`'s sizes on both backends (the agent's `backend` setting):
//! `kernel`, what `backend = "auto"` runs on the CPU, against `libtorch` with autograd.
//!
//! An iteration is one cycle of `policy_delay = 3` updates: three critic steps and one actor
//! step. Criterion reports it as a throughput in elements per second, where an element is one
//! floating-point operation of the matrix products ([`cycle_flops`]), so `Gelem/s` is the
//! products' GFLOP/s; the time per iteration divided by 3 is the time per update, about all an
//! environment step costs at `updates_per_step = 1`.
//!
//! ```text
//! cargo bench -p rlpg-agents --bench discrete_update -- --warm-up-time 1 --measurement-time 5
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rlpg_agents::{
    Actions, Activation, Agent, BackendChoice, BackendKind, Pathwise, PathwiseConfig, Transition,
};
use rlpg_envs::{BoxSpace, Space};

/// Minibatch rows, hidden widths, CartPole's observation width and action count.
const BATCH: u64 = 128;
const HIDDEN: u64 = 64;
const OBS: u64 = 4;
const ACTIONS: u64 = 2;
/// Critic updates per actor update.
const POLICY_DELAY: u64 = 3;

/// FLOPs of the matrix products of one cycle of [`POLICY_DELAY`] updates. A forward pass
/// through `OBS → HIDDEN → HIDDEN → ACTIONS` is one product per layer; a backward pass is one
/// product per layer for the weight gradients and one per layer but the first for the input
/// gradients. Per update: the target (actor and both target critics forward), the critic step
/// (both critics forward and backward); per cycle one actor step (actor forward and backward,
/// both critics forward: a per-action critic's slope in the action is its output, so nothing
/// is differentiated through it).
fn cycle_flops() -> u64 {
    let layers = [OBS * HIDDEN, HIDDEN * HIDDEN, HIDDEN * ACTIONS].map(|macs| 2 * BATCH * macs);
    let forward: u64 = layers.iter().sum();
    let backward = forward + layers[1..].iter().sum::<u64>();
    let update = 3 * forward + 2 * (forward + backward);
    POLICY_DELAY * update + 3 * forward + backward
}

/// An agent on `backend` with `configs/pathwise_cartpole.toml`'s update and 2,000 CartPole-like
/// transitions.
fn agent(backend: BackendChoice) -> Pathwise {
    tch::manual_seed(0);
    let cfg = PathwiseConfig {
        actor_hidden: vec![HIDDEN as usize; 2],
        critic_hidden: vec![HIDDEN as usize; 2],
        activation: Activation::Relu,
        batch_size: BATCH as usize,
        policy_delay: POLICY_DELAY as usize,
        target_entropy: Some(0.1),
        learning_starts: 1_000_000,
        backend,
        ..PathwiseConfig::default()
    };
    let obs_space = Space::Box(BoxSpace::uniform(OBS as usize, -5.0, 5.0));
    let mut agent = Pathwise::new(&cfg, &obs_space, &Space::Discrete(2), 1).expect("agent");
    for i in 0..2000 {
        let t = i as f32 * 0.01;
        let obs = [t.sin(), t.cos(), (t * 3.0).sin(), (t * 5.0).cos()];
        let next = [(t + 0.01).sin(), (t + 0.01).cos(), (t * 3.0 + 0.03).sin(), t.cos()];
        agent
            .observe(&Transition {
                obs: &obs,
                actions: &Actions::Indices { values: vec![i64::from(i % 3 == 0)], width: 1 },
                rewards: &[1.0],
                terminated: &[i % 100 == 99],
                truncated: &[false],
                next_obs: &next,
                masks: None,
                next_masks: None,
            })
            .expect("observe");
    }
    agent
}

fn discrete_update(c: &mut Criterion) {
    tch::set_num_threads(1);
    let mut group = c.benchmark_group("discrete_update");
    group.throughput(Throughput::Elements(cycle_flops()));
    for (choice, kind) in [
        (BackendChoice::Libtorch, BackendKind::Libtorch),
        (BackendChoice::Kernel, BackendKind::Kernel),
    ] {
        let mut agent = agent(choice);
        assert_eq!(agent.backend(), kind, "the agent runs on the backend it was asked for");
        group.bench_function(kind.name(), |b| {
            b.iter(|| {
                for _ in 0..POLICY_DELAY {
                    agent.update().expect("update");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, discrete_update);
criterion_main!(benches);
