//! Env-steps per second of a `gymnasium:<ID>` env through the bridge, in rlpg's `VecEnv` (one
//! GIL acquisition per batch step): the rlpg side of `benches/peers/bridge_overhead.sh`, whose
//! Python side steps the same envs in Python itself and in Gymnasium's `SyncVectorEnv`.
//!
//! ```sh
//! cargo run --release -p rlpg-envs --features gymnasium --example bridge_overhead -- \
//!     [ID=CartPole-v1] [NUM_ENVS=8] [BATCH_STEPS=5000] [ROUNDS=5]
//! ```
//! Prints one JSON line: the env-steps/s of each round and their median. Actions are uniformly
//! random, drawn ahead of time from a fixed table.

use std::time::Instant;

use rlpg_envs::gymnasium::GymnasiumEnv;
use rlpg_envs::{Env, Space, VecActions, VecEnv};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    match args.get(i) {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("bridge_overhead: argument {i} ({text:?}) is not a valid value");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let id: String = arg(&args, 1, "CartPole-v1".to_owned());
    let (n, steps, rounds): (usize, usize, usize) =
        (arg(&args, 2, 8), arg(&args, 3, 5000), arg(&args, 4, 5));
    let full = format!("gymnasium:{id}");
    let envs: Vec<Box<dyn Env>> = (0..n)
        .map(|_| match GymnasiumEnv::new(&full, &serde_json::Map::new()) {
            Ok(env) => Box::new(env) as Box<dyn Env>,
            Err(e) => {
                eprintln!("bridge_overhead: {e}");
                std::process::exit(2)
            }
        })
        .collect();
    let mut vec = VecEnv::new(envs).expect("envs of one id share their spaces");
    const TABLE: usize = 4096;
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (discrete, continuous): (Vec<usize>, Vec<f32>) = match vec.action_space().clone() {
        Space::Discrete(k) => {
            ((0..TABLE * n).map(|_| (next() * k as f64) as usize).collect(), vec![])
        }
        Space::Box(b) => (
            vec![],
            (0..TABLE * n)
                .map(|i| {
                    let d = i % b.dim();
                    b.low[d] + (b.high[d] - b.low[d]) * next() as f32
                })
                .collect(),
        ),
        other => {
            eprintln!("bridge_overhead steps Discrete and Box action spaces, not {other}");
            std::process::exit(2);
        }
    };
    vec.reset(Some(0)).expect("reset");
    let mut per_round = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for t in 0..steps {
            let row = t % TABLE;
            let actions = if discrete.is_empty() {
                let dim = continuous.len() / (TABLE * n);
                VecActions::Continuous(&continuous[row * n * dim..(row + 1) * n * dim])
            } else {
                VecActions::Discrete(&discrete[row * n..(row + 1) * n])
            };
            vec.step(actions).expect("step");
        }
        per_round.push((steps * n) as f64 / start.elapsed().as_secs_f64());
    }
    let mut sorted = per_round.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{{\"side\": \"rlpg VecEnv over the bridge\", \"env\": \"{id}\", \"num_envs\": {n}, \
         \"env_steps_per_s\": {per_round:?}, \"median\": {median:.1}}}"
    );
}
