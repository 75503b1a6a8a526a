//! `AsyncVecEnv` (asynchronous batches, `async_batch`): however the batches fall, each env's
//! own trajectory is the one it has alone, every transition arrives exactly once, a slow env
//! does not hold back the others, and faults are errors, never a hang.

use std::time::{Duration, Instant};

use rlpg_envs::{
    Action, AsyncVecEnv, Env, EnvError, EnvThreads, Observation, PointReach, Space, Step,
    VecActions, VecEnv,
};

const N: usize = 6;

/// The action of env `i` on its `k`-th step: a function of the env and its own step count, so
/// that the env's trajectory does not depend on which batches it was in.
fn action_of(i: usize, k: usize) -> [f32; 2] {
    let u = |j: usize| ((i * 7919 + k * 104_729 + j * 31) % 1000) as f32 / 500.0 - 1.0;
    [u(0), u(1)]
}

/// One env's trajectory as `(obs acted on, action, reward, next_obs, terminated, truncated)`.
type Record = (Vec<u32>, [u32; 2], u64, Vec<u32>, bool, bool);

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Env `i` stepped alone for `steps` steps, reset with `seed + i` and after every episode.
fn alone(make: &dyn Fn() -> Box<dyn Env + Send>, i: usize, steps: usize) -> Vec<Record> {
    let mut env = make();
    let mut obs = env.reset(Some(40 + i as u64)).expect("reset");
    (0..steps)
        .map(|k| {
            let a = action_of(i, k);
            let step = env.step(Action::Continuous(&a)).expect("step");
            let record = (
                bits(&obs),
                a.map(f32::to_bits),
                step.reward.to_bits(),
                bits(&step.obs),
                step.terminated,
                step.truncated,
            );
            obs = if step.done() { env.reset(None).expect("reset") } else { step.obs };
            record
        })
        .collect()
}

/// Steps `envs` asynchronously until every env has `steps` transitions; returns each env's
/// trajectory and the sequence of batches (their env indices).
fn run_async(envs: &mut AsyncVecEnv, steps: usize) -> (Vec<Vec<Record>>, Vec<Vec<usize>>) {
    let mut records: Vec<Vec<Record>> = vec![Vec::new(); envs.num_envs()];
    let mut counts = vec![0usize; envs.num_envs()];
    let mut batches = Vec::new();
    envs.reset(Some(40)).expect("reset");
    while records.iter().any(|r| r.len() < steps) {
        let batch = envs.recv().expect("recv").clone();
        batches.push(batch.envs.clone());
        if batch.stepped {
            for (k, &i) in batch.envs.iter().enumerate() {
                let row = k * 6..(k + 1) * 6;
                let a = action_of(i, counts[i] - 1);
                records[i].push((
                    bits(&batch.prev_obs[row.clone()]),
                    a.map(f32::to_bits),
                    batch.step.rewards[k].to_bits(),
                    bits(&batch.step.next_obs[row]),
                    batch.step.terminated[k],
                    batch.step.truncated[k],
                ));
            }
        }
        let actions: Vec<f32> = batch.envs.iter().flat_map(|&i| action_of(i, counts[i])).collect();
        batch.envs.iter().for_each(|&i| counts[i] += 1);
        envs.send(VecActions::Continuous(&actions)).expect("send");
    }
    (records, batches)
}

fn point_reach() -> Box<dyn Env + Send> {
    Box::new(rlpg_envs::TimeLimit::new(PointReach::with_substeps(200), 40))
}

fn async_of(make: &dyn Fn() -> Box<dyn Env + Send>, batch: usize, threads: usize) -> AsyncVecEnv {
    let vec = VecEnv::new_send((0..N).map(|_| make()).collect()).expect("vec");
    AsyncVecEnv::new(vec, batch, threads).expect("async")
}

#[test]
fn each_env_has_its_own_trajectory_whatever_the_batches() {
    for (batch, threads) in [(1, 2), (2, 2), (3, 1), (6, 3)] {
        let mut envs = async_of(&point_reach, batch, threads);
        let (records, batches) = run_async(&mut envs, 100);
        for (i, ours) in records.iter().enumerate() {
            let theirs = alone(&point_reach, i, ours.len());
            assert_eq!(ours, &theirs, "env {i} (batch {batch}, {threads} threads)");
            assert!(ours.iter().any(|r| r.5), "env {i}: no time limit crossed");
        }
        assert!(batches.iter().all(|b| b.len() == batch));
        // Every env appears once per round right after the reset.
        let first: Vec<usize> = batches.iter().take(N / batch).flatten().copied().collect();
        assert_eq!(first, (0..N).collect::<Vec<_>>());
    }
}

/// PointReach whose env `slow` (by its reset seed) sleeps 30 ms on its 3rd step, or fails.
struct Faulty {
    inner: Box<dyn Env + Send>,
    seed: Option<u64>,
    steps: usize,
    fault: &'static str,
}

impl Env for Faulty {
    fn id(&self) -> &str {
        "Faulty-v0"
    }
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.seed = seed.or(self.seed);
        self.inner.reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.steps += 1;
        let mut step = self.inner.step(action)?;
        if self.seed == Some(42) && self.steps == 3 {
            match self.fault {
                "slow" => std::thread::sleep(Duration::from_millis(30)),
                "nan" => step.obs[1] = f32::NAN,
                "panic" => panic!("Faulty broke at its step 3"),
                _ => {}
            }
        }
        Ok(step)
    }
}

#[test]
fn a_slow_env_holds_back_only_itself() {
    let make = || {
        let inner = point_reach();
        Box::new(Faulty { inner, seed: None, steps: 0, fault: "slow" }) as Box<dyn Env + Send>
    };
    let mut envs = async_of(&make, 1, 2);
    let start = Instant::now();
    let (records, batches) = run_async(&mut envs, 20);
    // Env 2 (seed 42) slept 30 ms on its 3rd step: meanwhile the other envs went on, so some
    // batches between its 3rd and 4th transitions are of other envs, many of them.
    let positions: Vec<usize> =
        batches.iter().enumerate().filter(|(_, b)| b[0] == 2).map(|(k, _)| k).collect();
    let gap = positions.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(gap > 2 * N, "the other envs waited for the slow one (largest gap {gap} batches)");
    assert!(start.elapsed() >= Duration::from_millis(30));
    for (i, ours) in records.iter().enumerate() {
        assert_eq!(ours, &alone(&make, i, ours.len()), "env {i}");
    }
}

#[test]
fn faults_are_errors_naming_the_env_and_its_step() {
    for (fault, needles) in [
        ("nan", &["vector env slot 2", "NaN", "step 3"][..]),
        ("panic", &["vector env slot 2", "panicked while stepping", "Faulty broke at its step 3"]),
    ] {
        let make = || {
            let inner = point_reach();
            Box::new(Faulty { inner, seed: None, steps: 0, fault }) as Box<dyn Env + Send>
        };
        let mut envs = async_of(&make, 2, 2);
        envs.reset(Some(40)).expect("reset");
        // Until the fault surfaces (a panic can take a while: the panic hook may print a
        // backtrace first, while the other envs go on stepping).
        let start = Instant::now();
        let err = std::iter::repeat(())
            .take_while(|()| start.elapsed() < Duration::from_secs(60))
            .find_map(|()| match envs.recv() {
                Ok(batch) => {
                    let actions = vec![0.1; batch.envs.len() * 2];
                    envs.send(VecActions::Continuous(&actions)).expect("send");
                    None
                }
                Err(e) => Some(e),
            })
            .expect("the fault surfaces");
        let text = err.to_string();
        for needle in needles {
            assert!(text.contains(needle), "{fault}: `{needle}` missing from: {text}");
        }
        // Then the envs must be reset; after it they step again.
        assert!(matches!(envs.recv(), Err(EnvError::NotReset { .. })));
        envs.reset(Some(0)).expect("reset after the fault");
        envs.recv().expect("recv after the reset");
    }
}

#[test]
fn bad_setups_and_calls_are_errors() {
    let vec = || VecEnv::new_send((0..N).map(|_| point_reach()).collect()).expect("vec");
    for batch in [0, 4, 7] {
        let err = AsyncVecEnv::new(vec(), batch, 2).expect_err("bad batch");
        assert!(err.to_string().contains("divide"), "{err}");
    }
    let local = VecEnv::new((0..N).map(|_| point_reach() as Box<dyn Env>).collect()).expect("vec");
    let err = AsyncVecEnv::new(local, 2, 2).expect_err("not Send").to_string();
    assert!(err.contains("Send") && err.contains("async_batch"), "{err}");
    let mut envs = AsyncVecEnv::new(vec(), 3, 2).expect("async");
    assert!(matches!(envs.recv(), Err(EnvError::NotReset { .. })));
    envs.reset(Some(1)).expect("reset");
    let err = envs.send(VecActions::Continuous(&[0.0; 6])).expect_err("no batch");
    assert!(err.to_string().contains("without a batch"), "{err}");
    envs.recv().expect("recv");
    assert!(envs.recv().expect_err("twice").to_string().contains("send the actions"));
    let err = envs.send(VecActions::Continuous(&[0.0; 4])).expect_err("4 values for 3 envs");
    assert!(err.to_string().contains("4 action values for a batch of 3"), "{err}");
    envs.send(VecActions::Continuous(&[0.0; 6])).expect("send");
    // Dropped while its envs step: the threads finish their step and end.
    drop(envs);
    let mut threaded = vec();
    threaded.set_threads(EnvThreads::Count(2)).expect("threads");
    AsyncVecEnv::new(threaded, 2, 1).expect("a vector env on threads converts too");
}
