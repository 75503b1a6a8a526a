//! Gymnasium envs in worker processes (`env_workers`): the same results as in this process, bit
//! for bit; a Python exception, a worker that dies, one that hangs and one very slow step.
//! Needs the venv of `scripts/setup.sh --gymnasium`. The faulty envs are
//! `tests/data/python/faulty_envs.py`, put on the workers' `PYTHONPATH`.

use std::sync::Once;
use std::time::{Duration, Instant};

mod common;
use common::trajectory;

use rlpg_envs::gymnasium::{GymnasiumEnv, worker_vec_env};
use rlpg_envs::{Env, EnvError, EnvThreads, VecEnv, VecStep};

/// Puts the faulty envs' module on the workers' path, once, before any test starts a process.
fn python_path() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/python");
        // SAFETY: every test calls this first, so no other thread reads the environment while
        // it is written (`Once` makes the others wait).
        unsafe { std::env::set_var("PYTHONPATH", dir) };
    });
}

fn kwargs(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// `n` envs of `id` in this process.
fn in_process(id: &str, kw: &serde_json::Map<String, serde_json::Value>, n: usize) -> VecEnv {
    python_path();
    let envs = (0..n)
        .map(|_| Box::new(GymnasiumEnv::new(id, kw).expect("make")) as Box<dyn Env>)
        .collect();
    VecEnv::new(envs).expect("vec")
}

/// `n` envs of `id` in `workers` worker processes.
fn in_workers(
    id: &str,
    kw: &serde_json::Map<String, serde_json::Value>,
    n: usize,
    workers: usize,
    timeout: Duration,
) -> VecEnv {
    python_path();
    let probe = GymnasiumEnv::new(id, kw).expect("make");
    worker_vec_env(id, kw, &probe, n, workers, timeout).expect("workers start")
}

fn step(vec: &mut VecEnv, t: usize) -> Result<VecStep, EnvError> {
    common::step_pseudo_random(vec, t).cloned()
}

#[test]
fn worker_processes_give_the_in_process_results_bit_for_bit() {
    for (id, n, workers, steps) in [
        ("gymnasium:CartPole-v1", 5, 2, 300),
        ("gymnasium:Pendulum-v1", 8, 3, 420),
        ("gymnasium:LunarLander-v3", 8, 2, 300),
    ] {
        let kw = serde_json::Map::new();
        let reference = trajectory(&mut in_process(id, &kw, n), steps);
        let ended = reference.iter().filter(|s| s.contains("EpisodeRecord")).count();
        assert!(ended >= 2, "{id}: {ended} steps ended episodes");
        let mut vec = in_workers(id, &kw, n, workers, Duration::from_secs(30));
        assert!(vec.is_remote());
        let ours = trajectory(&mut vec, steps);
        for (t, (a, b)) in reference.iter().zip(&ours).enumerate() {
            assert_eq!(a, b, "{id}: output {t} differs from the in-process bridge");
        }
        // Threads are refused: the workers run in parallel already.
        let err = vec.set_threads(EnvThreads::Count(2)).expect_err("threads");
        assert!(err.to_string().contains("env_workers"), "{err}");
    }
}

/// Worker-process envs may move to another thread (`act_beside_learning` steps them on the
/// actor thread): stepped there, they give the in-process results bit for bit.
#[test]
fn worker_envs_step_on_another_thread_with_the_in_process_results() {
    let (id, kw) = ("gymnasium:CartPole-v1", serde_json::Map::new());
    let reference = trajectory(&mut in_process(id, &kw, 4), 120);
    let vec = in_workers(id, &kw, 4, 2, Duration::from_secs(30));
    let send = vec.into_send("this test").expect("worker envs are Send");
    let ours = std::thread::spawn(move || {
        let mut vec = send.into_inner();
        trajectory(&mut vec, 120)
    })
    .join()
    .expect("the thread stepping the workers' envs");
    assert_eq!(reference, ours);
    // In-process bridge envs made as Box<dyn Env> are not known to be Send: a clear error.
    let err = in_process(id, &kw, 2).into_send("act_beside_learning").expect_err("not Send");
    assert!(err.to_string().contains("act_beside_learning") && err.to_string().contains("Send"));
}

#[test]
fn a_python_exception_names_the_env_and_quotes_it() {
    // Env 5 of 8 (reset with seed 3 + 5) raises on its 4th step; workers hold envs 0-3 and 4-7.
    let kw = kwargs(&[("fault", "raise".into()), ("seed", 8.into()), ("at", 4.into())]);
    let mut vec = in_workers("gymnasium:faulty_envs:Faulty-v0", &kw, 8, 2, Duration::from_secs(30));
    vec.reset(Some(3)).expect("reset");
    let err = (0..10).find_map(|t| step(&mut vec, t).err()).expect("the 4th step fails");
    let text = err.to_string();
    assert!(matches!(err, EnvError::InVecEnv { index: 5, .. }), "{err:?}");
    for part in ["Python exception in step", "RuntimeError", "sensor failure", "faulty_envs.py"] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    // An env's own exception leaves the workers running: after a reset the envs step again.
    vec.reset(Some(100)).expect("reset after the error");
    step(&mut vec, 0).expect("step after the reset");
}

#[test]
fn an_exception_with_a_huge_message_is_reported_cut_short() {
    // Env 2 of 4 (reset with seed 3 + 2) raises on its 2nd step with a 200 kB message: more
    // than a worker's error area holds.
    let kw = kwargs(&[("fault", "raise_long".into()), ("seed", 5.into()), ("at", 2.into())]);
    let mut vec = in_workers("gymnasium:faulty_envs:Faulty-v0", &kw, 4, 2, Duration::from_secs(30));
    vec.reset(Some(3)).expect("reset");
    let err = (0..5).find_map(|t| step(&mut vec, t).err()).expect("the 2nd step fails");
    let text = err.to_string();
    assert!(matches!(err, EnvError::InVecEnv { index: 2, .. }), "{err:?}");
    for part in ["Python exception in step", "RuntimeError", "sensor failure at step 2", "[...]"] {
        assert!(text.contains(part), "`{part}` missing from: {}", &text[..text.len().min(300)]);
    }
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    vec.reset(Some(100)).expect("reset after the error");
    step(&mut vec, 0).expect("step after the reset");
}

#[test]
fn a_worker_that_dies_is_an_error_naming_the_env_and_its_step() {
    for fault in ["die", "exit"] {
        // Env 6 (seed 3 + 6) kills its worker on its 5th step.
        let kw = kwargs(&[("fault", fault.into()), ("seed", 9.into()), ("at", 5.into())]);
        let mut vec =
            in_workers("gymnasium:faulty_envs:Faulty-v0", &kw, 8, 2, Duration::from_secs(30));
        vec.reset(Some(3)).expect("reset");
        let start = Instant::now();
        let err = (0..10).find_map(|t| step(&mut vec, t).err()).expect("the 5th step fails");
        assert!(start.elapsed() < Duration::from_secs(10), "{fault}: took {:?}", start.elapsed());
        let text = err.to_string();
        assert!(matches!(err, EnvError::InVecEnv { index: 6, .. }), "{fault}: {err:?}");
        let how = if fault == "die" { "killed by signal 9" } else { "exited with code 3" };
        for part in ["worker process 1 of 2", how, "while stepping env 6", "step 5 of its episode"]
        {
            assert!(text.contains(part), "{fault}: `{part}` missing from: {text}");
        }
        // The pool is closed: a clear error, not a hang.
        let again = vec.reset(Some(0)).expect_err("closed").to_string();
        assert!(again.contains("stopped after an earlier error"), "{again}");
    }
}

#[test]
fn a_worker_that_hangs_is_stopped_after_the_timeout() {
    let kw = kwargs(&[("fault", "hang".into()), ("seed", 3.into()), ("at", 2.into())]);
    let mut vec =
        in_workers("gymnasium:faulty_envs:Faulty-v0", &kw, 4, 2, Duration::from_millis(1500));
    vec.reset(Some(3)).expect("reset");
    let start = Instant::now();
    let err = (0..5).find_map(|t| step(&mut vec, t).err()).expect("the 2nd step hangs");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let text = err.to_string();
    assert!(matches!(err, EnvError::InVecEnv { index: 0, .. }), "{err:?}");
    for part in ["did not answer within 2 s", "env_worker_timeout", "stepping env 0", "step 2 of"] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
}

#[test]
fn one_step_a_hundred_times_slower_gives_the_in_process_results() {
    // Env 1 (seed 11 + 1 in `trajectory`) sleeps 0.2 s on its 3rd step (a step takes ~20 µs).
    let kw = kwargs(&[("fault", "slow".into()), ("seed", 12.into()), ("at", 3.into())]);
    let id = "gymnasium:faulty_envs:Faulty-v0";
    python_path();
    let reference = trajectory(&mut in_process(id, &kw, 4), 40);
    let mut workers = in_workers(id, &kw, 4, 2, Duration::from_secs(5));
    let start = Instant::now();
    let ours = trajectory(&mut workers, 40);
    assert!(start.elapsed() >= Duration::from_millis(200), "the slow step did not happen");
    assert_eq!(reference, ours);
}
