//! Env-steps per second of a `VecEnv` of 8 costly envs (`bench/PointReach-v0`, ~50 µs a step)
//! stepped on 1 and 2 threads (`env_threads`), and of 8 CartPoles (~40 ns a step) on 1 and 2
//! threads, where threads cost more than they save.
//!
//! Target on the project's 2-core machine: 2 threads at least 1.8x the env-steps/s of one for
//! the costly env.
//!
//! Run: `cargo bench -p rlpg-envs --bench env_threads -- --warm-up-time 1 --measurement-time 5`
//!
//! With `RLPG_BENCH_COMPARE=<rounds>` it instead times both thread counts in alternating rounds
//! of 2 s (so that both see the same machine load) and prints one JSON line with each round's
//! env-steps/s and the median ratio.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use rlpg_envs::{EnvThreads, POINT_REACH_ID, Space, VecActions, VecEnv, make_send};

const NUM_ENVS: usize = 8;

/// A vector env of `NUM_ENVS` envs of `id` on `threads` threads, reset.
fn vec_env(id: &str, threads: usize) -> VecEnv {
    let envs = (0..NUM_ENVS).map(|_| make_send(id).expect("registered")).collect();
    let mut vec = VecEnv::new_send(envs).expect("same spaces");
    vec.set_threads(EnvThreads::Count(threads)).expect("Send envs");
    vec.reset(Some(0)).expect("reset");
    vec
}

/// 64 batches of pseudo-random actions for the action space of `vec`.
fn action_table(vec: &VecEnv) -> (Vec<Vec<usize>>, Vec<Vec<f32>>) {
    let hash = |t: usize, j: usize| ((t * 7919 + j * 104_729) % 1000) as f32 / 1000.0;
    match vec.action_space() {
        Space::Discrete(k) => (
            (0..64).map(|t| (0..NUM_ENVS).map(|i| (t * 31 + i * 17) % k).collect()).collect(),
            vec![],
        ),
        Space::Box(b) => {
            let d = b.dim();
            let table = (0..64)
                .map(|t| {
                    (0..NUM_ENVS * d)
                        .map(|j| b.low[j % d] + (b.high[j % d] - b.low[j % d]) * hash(t, j))
                        .collect()
                })
                .collect();
            (vec![], table)
        }
        other => panic!("no actions for the action space {other}"),
    }
}

/// Steps `vec` once with batch `t` of the table.
fn step(vec: &mut VecEnv, table: &(Vec<Vec<usize>>, Vec<Vec<f32>>), t: usize) {
    let result = if table.0.is_empty() {
        vec.step(VecActions::Continuous(&table.1[t % 64]))
    } else {
        vec.step(VecActions::Discrete(&table.0[t % 64]))
    };
    black_box(result.expect("step").rewards[0]);
}

fn threads(c: &mut Criterion) {
    for (id, name) in [(POINT_REACH_ID, "PointReach"), ("CartPole-v1", "CartPole")] {
        let mut group = c.benchmark_group(format!("env_threads/{name}"));
        group.throughput(Throughput::Elements(NUM_ENVS as u64));
        for threads in [1, 2] {
            let mut vec = vec_env(id, threads);
            let table = action_table(&vec);
            let mut t = 0;
            group.bench_function(format!("vec8/{threads}"), |b| {
                b.iter(|| {
                    t += 1;
                    step(&mut vec, &table, t);
                })
            });
        }
        group.finish();
    }
}

/// Alternating rounds of 2 s on 1 and 2 threads; prints one JSON line.
fn compare(rounds: usize) {
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut vecs = [vec_env(POINT_REACH_ID, 1), vec_env(POINT_REACH_ID, 2)];
    let table = action_table(&vecs[0]);
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (vec, rate) in vecs.iter_mut().zip(&mut rates) {
            let start = Instant::now();
            let mut t = 0;
            while start.elapsed().as_secs_f64() < 2.0 {
                t += 1;
                step(vec, &table, t);
            }
            rate.push((t * NUM_ENVS) as f64 / start.elapsed().as_secs_f64());
        }
    }
    let ratios: Vec<f64> = rates[1].iter().zip(&rates[0]).map(|(b, a)| b / a).collect();
    println!(
        "{{\"env\": \"{POINT_REACH_ID}\", \"num_envs\": {NUM_ENVS}, \"one_thread_steps_per_s\": \
         {:?}, \"two_threads_steps_per_s\": {:?}, \"median_ratio\": {:.3}}}",
        rates[0].iter().map(|r| r.round()).collect::<Vec<_>>(),
        rates[1].iter().map(|r| r.round()).collect::<Vec<_>>(),
        median(&ratios)
    );
}

criterion_group!(benches, threads);

fn main() {
    if let Some(rounds) = std::env::var("RLPG_BENCH_COMPARE").ok().and_then(|r| r.parse().ok()) {
        compare(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
