//! Steps per second of the built-in environments: raw, through `make` (time limit, boxed), and
//! in a `VecEnv` of 8. Actions are precomputed pseudo-random ones so that choosing them costs
//! (almost) nothing; finished episodes are reset inside the measured loop.
//!
//! Targets on the project's 2-core machine, one core: at least 100x Gymnasium 1.4's unwrapped
//! envs (192k CartPole and 108k Pendulum steps/s), i.e. 19.2M and 10.8M steps/s, and a `VecEnv`
//! costing at most 10% more per env-step than the single env through `make`.
//!
//! Run: `cargo bench -p rlpg-envs --bench step_throughput -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use rlpg_envs::{Action, CartPole, Env, Pendulum, VecActions, VecEnv, make};

/// Steps per measured iteration (per env for the vector env).
const STEPS: usize = 10_000;
/// Length of the precomputed action table (a power of two, indexed with a mask).
const TABLE: usize = 4096;
const NUM_ENVS: usize = 8;

fn discrete_actions() -> Vec<usize> {
    let mut rng = Pcg64::seed_from_u64(1);
    (0..TABLE).map(|_| rng.random_range(0..2)).collect()
}

fn torques() -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(2);
    (0..TABLE).map(|_| rng.random_range(-2.0..=2.0)).collect()
}

/// `STEPS` steps of `env` with the `k`-th action `action(k)`, resetting finished episodes.
fn run<E: Env + ?Sized>(env: &mut E, k0: &mut usize, action: impl Fn(usize) -> Action<'static>) {
    for _ in 0..STEPS {
        let a = action(*k0 & (TABLE - 1));
        *k0 += 1;
        // Read in place rather than moved out with `expect`: moving the freshly written `Step`
        // copies it with wide loads that the CPU cannot forward from its store buffer, a stall
        // of the benchmark loop rather than of the environment (`VecEnv` reads it the same way).
        let result = env.step(a);
        let Ok(step) = &result else { panic!("step failed: {result:?}") };
        if step.done() {
            black_box(env.reset(None).expect("reset"));
        } else {
            black_box(&step.obs);
        }
    }
}

fn single_env(c: &mut Criterion) {
    let discrete: &'static [usize] = discrete_actions().leak();
    let torque: &'static [f32] = torques().leak();
    let cartpole_action = |k: usize| Action::Discrete(discrete[k]);
    let pendulum_action = |k: usize| Action::Continuous(std::slice::from_ref(&torque[k]));

    let mut group = c.benchmark_group("single_env");
    group.throughput(Throughput::Elements(STEPS as u64));

    let mut k = 0;
    let mut env = CartPole::new();
    env.reset(Some(0)).expect("reset");
    group.bench_function("CartPole-v1/raw", |b| b.iter(|| run(&mut env, &mut k, cartpole_action)));

    let mut env = make("CartPole-v1").expect("registered");
    env.reset(Some(0)).expect("reset");
    group.bench_function("CartPole-v1/make", |b| {
        b.iter(|| run(env.as_mut(), &mut k, cartpole_action))
    });

    let mut env = Pendulum::new();
    env.reset(Some(0)).expect("reset");
    group.bench_function("Pendulum-v1/raw", |b| b.iter(|| run(&mut env, &mut k, pendulum_action)));

    let mut env = make("Pendulum-v1").expect("registered");
    env.reset(Some(0)).expect("reset");
    group.bench_function("Pendulum-v1/make", |b| {
        b.iter(|| run(env.as_mut(), &mut k, pendulum_action))
    });
    group.finish();
}

fn vec_env(c: &mut Criterion) {
    let discrete = discrete_actions();
    let torque = torques();
    let mut group = c.benchmark_group("vec_env_8");
    // Counted in env-steps, so the numbers compare directly with the single env's.
    group.throughput(Throughput::Elements((STEPS * NUM_ENVS) as u64));

    for id in ["CartPole-v1", "Pendulum-v1"] {
        let envs = (0..NUM_ENVS).map(|_| make(id).expect("registered")).collect();
        let mut venv = VecEnv::new(envs).expect("same spaces");
        venv.reset(Some(0)).expect("reset");
        let mut k = 0;
        group.bench_function(id, |b| {
            b.iter(|| {
                for _ in 0..STEPS {
                    // A window of the table, shifted each step: cheap and varied.
                    let start = (k * NUM_ENVS) & (TABLE - 1);
                    k += 1;
                    let end = start + NUM_ENVS;
                    let actions = if id == "CartPole-v1" {
                        VecActions::Discrete(&discrete[start..end])
                    } else {
                        VecActions::Continuous(&torque[start..end])
                    };
                    black_box(venv.step(actions).expect("step"));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, single_env, vec_env);
criterion_main!(benches);
