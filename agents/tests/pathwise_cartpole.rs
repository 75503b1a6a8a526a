//! The pathwise agent learns CartPole-v1 through the Gumbel-softmax relaxation (SAC on discrete
//! actions, per-action twin critics), with `configs/pathwise_cartpole.toml`'s settings and the
//! default `backend = "auto"` (the plain-Rust kernel on the CPU), driven by a minimal loop (act,
//! step the vector env, observe) like the trainer in the `rlpg` crate.

use std::sync::Mutex;
use std::time::Instant;

use rlpg_agents::{
    ActMode, Actions, Activation, Agent, BackendKind, Pathwise, PathwiseConfig, Transition,
    WeightInit,
};
use rlpg_envs::{Env, VecActions, VecEnv, make};

/// libtorch's generator is global: runs hold this lock so that tests on parallel threads cannot
/// interleave their draws.
static RNG: Mutex<()> = Mutex::new(());

/// `configs/pathwise_cartpole.toml`'s `[pathwise]` section (this crate cannot read rlpg's
/// configs; `tests/train_end_to_end.rs` in the `rlpg` crate loads the file itself).
fn preset() -> PathwiseConfig {
    PathwiseConfig {
        actor_learning_rate: 4e-3,
        critic_learning_rate: 4e-3,
        alpha_learning_rate: 1e-3,
        gamma: 0.98,
        tau: 0.05,
        batch_size: 128,
        buffer_size: 1_000_000,
        learning_starts: 100,
        updates_per_step: 1.0,
        actor_hidden: vec![64, 64],
        critic_hidden: vec![64, 64],
        activation: Activation::Relu,
        layer_init: WeightInit::KaimingUniform,
        alpha: 1.0,
        autotune_alpha: true,
        target_entropy: Some(0.1),
        policy_delay: 3,
        gumbel_temperature: 1.0,
        straight_through: true,
        max_grad_norm: 0.0,
        metrics_every: 100,
        ..PathwiseConfig::default()
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// What one training run produced.
struct Run {
    /// Returns of finished episodes, in the order they finished.
    returns: Vec<f64>,
    /// Env steps at which the mean return of the last 100 episodes first reached 475, if it did.
    solved_at: Option<usize>,
    /// Env steps per second, updates included.
    steps_per_second: f64,
}

/// Trains on one CartPole-v1 env for `total_steps` env steps.
fn train(cfg: &PathwiseConfig, seed: u64, total_steps: usize) -> Run {
    let _rng = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed as i64);
    let envs: Vec<Box<dyn Env>> = vec![make("CartPole-v1").expect("CartPole-v1 is registered")];
    let mut venv = VecEnv::new(envs).unwrap();
    let mut obs = venv.reset(Some(seed)).unwrap().to_vec();
    let mut agent = Pathwise::new(cfg, venv.observation_space(), venv.action_space(), 1).unwrap();
    assert_eq!(agent.backend(), BackendKind::Kernel, "auto takes the kernel on the CPU");
    let (mut returns, mut solved_at) = (Vec::new(), None);
    let mut actions = Actions::default();
    let start = Instant::now();
    for step in 1..=total_steps {
        agent.act(&obs, ActMode::Explore, &mut actions).unwrap();
        let Actions::Indices { values, .. } = &actions else { panic!("CartPole takes indices") };
        let s = venv.step(VecActions::Discrete(&[values[0] as usize])).unwrap();
        for episode in &s.episodes {
            returns.push(episode.ret);
            if solved_at.is_none()
                && returns.len() >= 100
                && mean(&returns[returns.len() - 100..]) >= 475.0
            {
                solved_at = Some(step);
            }
        }
        let metrics = agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &s.rewards,
                terminated: &s.terminated,
                truncated: &s.truncated,
                next_obs: &s.next_obs,
                masks: None,
                next_masks: None,
            })
            .unwrap();
        for (tag, v) in metrics.iter().flatten() {
            assert!(v.is_finite(), "metric {tag} = {v} at step {step}");
        }
        obs.copy_from_slice(&s.obs);
    }
    Run { returns, solved_at, steps_per_second: total_steps as f64 / start.elapsed().as_secs_f64() }
}

/// A uniformly random policy's CartPole episodes average about 22 steps; half-way from there to
/// the README's 475 is about 250 (the bar `reinforce_cartpole.rs` sets too). Seeds 1-3 (fixed in
/// advance) must each average above 250 over their last 20 episodes within 15k steps. Measured
/// when this test was written: 456.2, 422.8 and 363.9.
#[test]
fn gumbel_softmax_sac_learns_cartpole_to_a_mean_return_above_250_within_15k_steps() {
    tch::set_num_threads(1);
    let cfg = preset();
    for seed in [1, 2, 3] {
        let run = train(&cfg, seed, 15_000);
        let last = &run.returns[run.returns.len().saturating_sub(20)..];
        let score = mean(last);
        eprintln!(
            "seed {seed}, 15k steps: {} episodes, mean of last {} = {score:.1}, {:.0} steps/s",
            run.returns.len(),
            last.len(),
            run.steps_per_second
        );
        assert!(
            score > 250.0,
            "seed {seed}: mean return of the last {} episodes is {score:.1}, not > 250",
            last.len()
        );
    }
}

/// The README's claim: mean-100 >= 475 within 100k steps on 4 of 5 seeds (measured when this
/// test was written, seeds 0-4: solved at 72.3k, 51.7k, never (final mean-100 438.4), 55.5k,
/// 49.5k). Slow (about 95 s per seed on this loaded 2-core machine, ~1,000 env steps/s), so
/// run on demand:
/// `cargo test --release -p rlpg-agents --test pathwise_cartpole -- --ignored --nocapture`.
#[test]
#[ignore = "five 100k-step runs; run on demand"]
fn gumbel_softmax_sac_solves_cartpole_within_100k_steps_on_most_seeds() {
    tch::set_num_threads(1);
    let cfg = preset();
    let mut solved = 0;
    for seed in 0..5 {
        let run = train(&cfg, seed, 100_000);
        let tail = mean(&run.returns[run.returns.len().saturating_sub(100)..]);
        eprintln!(
            "seed {seed}: solved at {:?} steps, final mean-100 {tail:.1}, {:.0} steps/s",
            run.solved_at, run.steps_per_second
        );
        solved += usize::from(run.solved_at.is_some());
    }
    assert!(solved >= 4, "solved on only {solved} of 5 seeds");
}
