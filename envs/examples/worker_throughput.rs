//! Env-steps per second of `gymnasium:<ID>` envs in this process (the bridge, one interpreter
//! lock) against the same envs in worker processes (`env_workers`), measured side by side:
//! rounds alternate between the two, so that both see the same machine load.
//!
//! ```sh
//! cargo run --release -p rlpg-envs --features gymnasium --example worker_throughput -- \
//!     [ID=LunarLander-v3] [NUM_ENVS=8] [WORKERS=2] [SECONDS=5] [ROUNDS=3]
//! ```
//! Prints one JSON line: each round's env-steps/s on both sides and the median of the per-round
//! ratios; the CPU time per env-step on each side (this process's and its worker processes',
//! from `/proc/*/schedstat` on Linux; the workers' minus the in-process one is what the
//! hand-over costs in CPU); and the 10th percentile and median of a batch's wall time (medians
//! over the rounds). Other work on the machine inflates the throughputs and the medians most,
//! the CPU times and the 10th percentiles (batches that ran without being preempted) least.
//! Actions are pseudo-random, the same on both sides.

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

/// On-CPU nanoseconds of the threads of process `pid` (`self` for this one), 0 if unknown.
fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// On-CPU nanoseconds of this process and its child processes (the workers).
fn cpu_with_children_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    let children: Vec<String> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    cpu_ns("self") + children.iter().map(|c| cpu_ns(c)).sum::<u64>()
}

/// One round of stepping one side.
struct Round {
    steps_per_s: f64,
    /// CPU time of this process and its workers per env-step (µs).
    cpu_us_per_step: f64,
    /// The 10th percentile and the median of the batches' wall times (µs).
    batch_us: (f64, f64),
}

/// Steps `vec` for `seconds`.
fn throughput(vec: &mut VecEnv, seconds: f64) -> Round {
    let n = vec.num_envs();
    let space = vec.action_space().clone();
    vec.reset(Some(0)).unwrap_or_else(|e| fail(e));
    let (start, cpu) = (Instant::now(), cpu_with_children_ns());
    let mut batches = Vec::new();
    let mut t = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        t += 1;
        let began = Instant::now();
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
        batches.push(began.elapsed().as_secs_f64() * 1e6);
    }
    let steps = (batches.len() * n) as f64;
    let cpu_us = cpu_with_children_ns().saturating_sub(cpu) as f64 / 1e3;
    batches.sort_by(f64::total_cmp);
    Round {
        steps_per_s: steps / start.elapsed().as_secs_f64(),
        cpu_us_per_step: cpu_us / steps,
        batch_us: (batches[batches.len() / 10], batches[batches.len() / 2]),
    }
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
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
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(throughput(&mut here, seconds));
        theirs.push(throughput(&mut there, seconds));
    }
    let speeds = |side: &[Round]| side.iter().map(|r| r.steps_per_s).collect::<Vec<_>>();
    let ratios = ours.iter().zip(&theirs).map(|(a, b)| b.steps_per_s / a.steps_per_s);
    let cpu = |side: &[Round]| median(side.iter().map(|r| r.cpu_us_per_step));
    let p10 = |side: &[Round]| median(side.iter().map(|r| r.batch_us.0));
    let p50 = |side: &[Round]| median(side.iter().map(|r| r.batch_us.1));
    println!(
        "{{\"env\": \"{id}\", \"num_envs\": {n}, \"workers\": {workers}, \
         \"in_process_steps_per_s\": {:.0?}, \"workers_steps_per_s\": {:.0?}, \
         \"median_ratio\": {:.3}, \
         \"cpu_us_per_step\": {{\"in_process\": {:.1}, \"workers\": {:.1}}}, \
         \"batch_us_p10\": {{\"in_process\": {:.0}, \"workers\": {:.0}}}, \
         \"batch_us_median\": {{\"in_process\": {:.0}, \"workers\": {:.0}}}}}",
        speeds(&ours),
        speeds(&theirs),
        median(ratios),
        cpu(&ours),
        cpu(&theirs),
        p10(&ours),
        p10(&theirs),
        p50(&ours),
        p50(&theirs),
    );
}
