//! Env-steps per second of `gymnasium:<ID>` envs in this process (the bridge, one interpreter
//! lock) against the same envs in worker processes (`env_workers`), measured side by side:
//! rounds alternate between the two, so that both see the same machine load.
//!
//! ```sh
//! cargo run --release -p rlpg-envs --features gymnasium --example worker_throughput -- \
//!     [ID=LunarLander-v3] [NUM_ENVS=8] [WORKERS=2] [SECONDS=5] [ROUNDS=3]
//! ```
//! Prints one JSON line: each round's env-steps/s on both sides, their medians and the median
//! of the per-round ratios. Actions are pseudo-random, the same on both sides.

use std::time::{Duration, Instant};

use rlpg_envs::gymnasium::{GymnasiumEnv, worker_vec_env};
use rlpg_envs::{Env, Space, VecActions, VecEnv};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    match args.get(i) {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("worker_throughput: argument {i} ({text:?}) is not a valid value");
            std::process::exit(2)
        }),
    }
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("worker_throughput: {e}");
    std::process::exit(1)
}

/// Env-steps per second of `vec` stepped for `seconds`.
fn throughput(vec: &mut VecEnv, seconds: f64) -> f64 {
    let n = vec.num_envs();
    let space = vec.action_space().clone();
    vec.reset(Some(0)).unwrap_or_else(|e| fail(e));
    let start = Instant::now();
    let mut steps = 0usize;
    let mut t = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        t += 1;
        let result = match &space {
            Space::Discrete(k) => {
                let a: Vec<usize> = (0..n).map(|i| (t * 7 + i * 3) % 11 % k).collect();
                vec.step(VecActions::Discrete(&a)).map(drop)
            }
            Space::Box(b) => {
                let d = b.dim();
                let a: Vec<f32> = (0..n * d)
                    .map(|j| {
                        let u = ((t * 13 + j * 7) % 10) as f32 / 9.0;
                        b.low[j % d] + (b.high[j % d] - b.low[j % d]) * u
                    })
                    .collect();
                vec.step(VecActions::Continuous(&a)).map(drop)
            }
            other => fail(format!("no actions for the action space {other}")),
        };
        result.unwrap_or_else(|e| fail(e));
        steps += n;
    }
    steps as f64 / start.elapsed().as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let id = format!("gymnasium:{}", arg(&args, 1, "LunarLander-v3".to_owned()));
    let (n, workers): (usize, usize) = (arg(&args, 2, 8), arg(&args, 3, 2));
    let (seconds, rounds): (f64, usize) = (arg(&args, 4, 5.0), arg(&args, 5, 3));
    let kwargs = serde_json::Map::new();
    let make = || GymnasiumEnv::new(&id, &kwargs).unwrap_or_else(|e| fail(e));
    let probe = make();
    let envs = (0..n).map(|_| Box::new(make()) as Box<dyn Env>).collect();
    let mut here = VecEnv::new(envs).unwrap_or_else(|e| fail(e));
    let timeout = Duration::from_secs(60);
    let mut there =
        worker_vec_env(&id, &kwargs, &probe, n, workers, timeout).unwrap_or_else(|e| fail(e));
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = throughput(&mut here, seconds);
        let b = throughput(&mut there, seconds);
        ours.push(a);
        theirs.push(b);
        ratios.push(b / a);
    }
    println!(
        "{{\"env\": \"{id}\", \"num_envs\": {n}, \"workers\": {workers}, \
         \"in_process_steps_per_s\": {ours:?}, \"workers_steps_per_s\": {theirs:?}, \
         \"median_in_process\": {:.0}, \"median_workers\": {:.0}, \"median_ratio\": {:.3}}}",
        median(&ours),
        median(&theirs),
        median(&ratios)
    );
}
