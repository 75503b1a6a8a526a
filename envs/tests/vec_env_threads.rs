//! `VecEnv` on several threads (`env_threads`): the same results as one thread bit for bit,
//! whatever the thread count; errors, panics and slow envs; envs that are not `Send`.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use rlpg_envs::{
    Action, Env, EnvEntry, EnvError, EnvThreads, MakeEnv, Observation, POINT_REACH_ID, PointReach,
    Registry, SendFactory, Space, Step, VecActions, VecEnv, make_send,
};

/// `n` envs of `id` on `threads` threads.
fn vec_of(id: &str, n: usize, threads: EnvThreads) -> VecEnv {
    let envs = (0..n).map(|_| make_send(id).expect("registered")).collect();
    let mut vec = VecEnv::new_send(envs).expect("same spaces");
    vec.set_threads(threads).expect("Send envs may use threads");
    vec
}

/// [`common::trajectory`] and the final snapshot.
fn trajectory(vec: &mut VecEnv, steps: usize) -> (Vec<String>, String) {
    let out = common::trajectory(vec, steps);
    let snapshot = serde_json::to_string(&vec.snapshot()).expect("snapshot");
    (out, snapshot)
}

#[test]
fn every_thread_count_gives_the_one_thread_results_bit_for_bit() {
    // Discrete and Box actions, autoresets by termination and by time limit, normalisation on
    // and off, more threads than cores and than envs, and an uneven split of envs.
    let cases = [
        ("CartPole-v1", 7, 600, false),
        ("Pendulum-v1", 5, 450, true),
        ("Acrobot-v1", 4, 1_100, false),
        ("MountainCarContinuous-v0", 3, 2_100, true),
        // Multi-part actions, masks and infos.
        ("Restock-v0", 5, 150, false),
    ];
    for (id, n, steps, normalize) in cases {
        let run = |threads| {
            let mut vec = vec_of(id, n, threads);
            if normalize {
                vec.enable_obs_normalization(10.0);
            }
            let result = trajectory(&mut vec, steps);
            let ended: usize = result.0.iter().filter(|s| s.contains("EpisodeRecord")).count();
            (result, ended, vec.threads())
        };
        let (reference, ended, one) = run(EnvThreads::Count(1));
        assert_eq!(one, 1);
        assert!(ended >= 2, "{id}: only {ended} steps ended episodes");
        for threads in [EnvThreads::Count(2), EnvThreads::Count(3), EnvThreads::Count(0)] {
            let (result, _, used) = run(threads);
            assert!(used >= 1 && used <= n, "{id}: {used} threads for {n} envs");
            for (t, (a, b)) in reference.0.iter().zip(&result.0).enumerate() {
                assert_eq!(a, b, "{id} with {threads:?}: output {t} differs from one thread");
            }
            assert_eq!(reference.1, result.1, "{id} with {threads:?}: final snapshots differ");
        }
    }
}

#[test]
fn the_bench_env_is_the_same_on_two_threads_and_resumes_from_a_snapshot_on_another_count() {
    let envs = || (0..4).map(|_| Box::new(PointReach::with_substeps(20)) as Box<dyn Env + Send>);
    let mut one = VecEnv::new_send(envs().collect()).expect("vec");
    let mut two = VecEnv::new_send(envs().collect()).expect("vec");
    two.set_threads(EnvThreads::Count(2)).expect("threads");
    assert_eq!(trajectory(&mut one, 150), trajectory(&mut two, 150));
    // A snapshot taken on one thread continues on two (resuming with another env_threads).
    let mut resumed = VecEnv::new_send(envs().collect()).expect("vec");
    resumed.set_threads(EnvThreads::Count(2)).expect("threads");
    resumed.restore(&one.snapshot()).expect("restore");
    let a = [0.5f32, -0.5].repeat(4);
    for t in 0..50 {
        let x = common::describe(one.step(VecActions::Continuous(&a)).expect("step"));
        let y = common::describe(resumed.step(VecActions::Continuous(&a)).expect("step"));
        assert_eq!(x, y, "step {t} after restoring on two threads");
    }
}

/// A wrapper that fails, panics or sleeps on a chosen step.
struct Faulty {
    inner: Box<dyn Env + Send>,
    steps: usize,
    at: usize,
    fault: Fault,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Error,
    Nan,
    Panic,
    Slow,
    ResetError,
}

impl Env for Faulty {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        if self.fault == Fault::ResetError && self.at > 0 && self.steps >= self.at {
            return Err(EnvError::Other { env: "Faulty".into(), message: "reset broke".into() });
        }
        self.inner.reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.steps += 1;
        let mut step = self.inner.step(action)?;
        if self.steps == self.at {
            match self.fault {
                Fault::Error => {
                    return Err(EnvError::Other { env: "Faulty".into(), message: "broke".into() });
                }
                Fault::Nan => step.obs[0] = f32::NAN,
                Fault::Panic => panic!("Faulty panicked at its step {}", self.steps),
                Fault::Slow => std::thread::sleep(Duration::from_millis(20)),
                Fault::ResetError => step.terminated = true,
            }
        }
        Ok(step)
    }
}

/// 6 CartPoles, env `i` faulting at its step `at[i]` (0: never).
fn faulty_vec(fault: Fault, at: [usize; 6], threads: usize) -> VecEnv {
    let envs = at
        .iter()
        .map(|&at| {
            let inner = make_send("CartPole-v1").expect("registered");
            Box::new(Faulty { inner, steps: 0, at, fault }) as Box<dyn Env + Send>
        })
        .collect();
    let mut vec = VecEnv::new_send(envs).expect("vec");
    vec.set_threads(EnvThreads::Count(threads)).expect("threads");
    vec
}

/// Steps `vec` (CartPole, alternating actions) until it fails or 30 steps pass.
fn first_failure(vec: &mut VecEnv) -> Option<(usize, String)> {
    vec.reset(Some(0)).expect("reset");
    (0..30).find_map(|t| {
        let actions: Vec<usize> = (0..6).map(|i| (t + i) % 2).collect();
        vec.step(VecActions::Discrete(&actions)).err().map(|e| (t, e.to_string()))
    })
}

#[test]
fn errors_name_the_lowest_failing_env_as_on_one_thread() {
    for fault in [Fault::Error, Fault::Nan, Fault::ResetError] {
        // Envs 4 and 2 fail on the same step: env 2 is named, with the step and the value.
        let at = [0, 0, 5, 0, 5, 0];
        let expected = first_failure(&mut faulty_vec(fault, at, 1)).expect("fails");
        for threads in [2, 3, 6] {
            let got = first_failure(&mut faulty_vec(fault, at, threads)).expect("fails");
            assert_eq!(got, expected, "{fault:?} on {threads} threads");
        }
        assert!(expected.1.contains("vector env slot 2"), "{fault:?}: {}", expected.1);
        // After the error the envs must be reset before stepping again.
        let mut vec = faulty_vec(fault, at, 2);
        first_failure(&mut vec);
        let err = vec.step(VecActions::Discrete(&[0; 6])).expect_err("not reset");
        assert!(matches!(err, EnvError::NotReset { .. }), "{err:?}");
    }
}

#[test]
fn a_panicking_env_panics_the_caller_instead_of_hanging() {
    let mut vec = faulty_vec(Fault::Panic, [0, 0, 0, 3, 0, 0], 2);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| first_failure(&mut vec)));
    let payload = result.expect_err("the env's panic reaches the caller");
    let message = payload.downcast_ref::<String>().map_or("", String::as_str);
    assert!(message.contains("Faulty panicked at its step 3"), "{message}");
    // The vector env is still usable after a reset.
    let mut vec = faulty_vec(Fault::Panic, [0; 6], 2);
    assert_eq!(first_failure(&mut vec), None);
}

#[test]
fn one_env_a_hundred_times_slower_on_one_step_gives_the_same_batch() {
    // Env 1's 4th step sleeps 20 ms (CartPole steps take nanoseconds): the batch waits for it
    // and is the one-thread batch.
    let run = |threads| {
        let mut vec = faulty_vec(Fault::Slow, [0, 4, 0, 0, 0, 0], threads);
        let start = Instant::now();
        let steps = trajectory(&mut vec, 40);
        (steps, start.elapsed())
    };
    let (one, _) = run(1);
    let (two, elapsed) = run(2);
    assert_eq!(one, two);
    assert!(elapsed >= Duration::from_millis(20), "the slow step was skipped: {elapsed:?}");
}

/// An env that is not `Send`: it shares a step counter through an `Rc`.
struct Counted {
    inner: Box<dyn Env>,
    count: Rc<AtomicUsize>,
}

impl Env for Counted {
    fn id(&self) -> &str {
        "Counted-v0"
    }
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.inner.reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.step(action)
    }
}

fn counted() -> Counted {
    let inner = rlpg_envs::make("CartPole-v1").expect("registered");
    Counted { inner, count: Rc::new(AtomicUsize::new(0)) }
}

#[test]
fn envs_not_known_to_be_send_refuse_threads_with_a_clear_error_and_run_on_one() {
    let needles = ["Counted-v0", "Send", "env_threads = 1"];
    let check = |err: EnvError, what: &str| {
        let msg = err.to_string();
        for needle in needles {
            assert!(msg.contains(needle), "{what}: `{needle}` missing from: {msg}");
        }
    };
    // A vector env of Box<dyn Env>.
    let mut vec = VecEnv::new(vec![Box::new(counted()), Box::new(counted())]).expect("vec");
    check(vec.set_threads(EnvThreads::Count(2)).expect_err("not Send"), "VecEnv::new");
    assert_eq!(vec.threads(), 1);
    vec.set_threads(EnvThreads::Auto).expect("auto stays on one thread for such envs");
    vec.reset(Some(0)).expect("and they still step");
    // A registry entry for a non-Send env, and a factory closure of Box<dyn Env>.
    let registry = Registry::new().with_local("Counted-v0", counted);
    registry.check().expect("registered");
    let entry = registry.get("Counted-v0").expect("entry");
    assert!(!entry.is_send());
    check(VecEnv::make(entry, 2, EnvThreads::Count(2)).expect_err("local"), "with_local");
    let factory = || Ok(Box::new(counted()) as Box<dyn Env>);
    check(VecEnv::make(&factory, 2, EnvThreads::Count(0)).expect_err("factory"), "factory");
    // On one thread both work.
    VecEnv::make(entry, 2, EnvThreads::Count(1)).expect("one thread");
    VecEnv::make(&factory, 2, EnvThreads::Count(1)).expect("one thread");
    // Send makers give threads.
    let send = SendFactory(|| make_send("CartPole-v1"));
    assert!(send.make_send().is_ok());
    let registry = Registry::builtin().with("Reach-v9", || PointReach::with_substeps(5));
    assert!(registry.get("Reach-v9").expect("entry").is_send());
    let vec = VecEnv::make(&send, 4, EnvThreads::Count(2)).expect("Send factory");
    assert_eq!(vec.threads(), 2);
    let vec = VecEnv::make(&EnvEntry::new("X-v0", PointReach::new), 3, EnvThreads::Count(8))
        .expect("Send entry");
    assert_eq!(vec.threads(), 3, "at most one thread per env");
}

#[test]
fn auto_keeps_what_it_measured_faster_and_changes_no_result() {
    // The decision from measured mean step times of all envs.
    let us = Duration::from_micros;
    assert_eq!(EnvThreads::auto_choice(us(5), None), 1, "cheap steps: not tried");
    assert_eq!(EnvThreads::auto_choice(us(400), Some((2, us(220)))), 2, "threads were faster");
    assert_eq!(EnvThreads::auto_choice(us(400), Some((2, us(450)))), 1, "busy cores: slower");
    assert_eq!(EnvThreads::auto_choice(us(30), Some((2, us(20)))), 1, "below the bar");
    // CartPole steps cost nanoseconds: one thread, never tried.
    let mut cheap = vec_of("CartPole-v1", 4, EnvThreads::Auto);
    trajectory(&mut cheap, 200);
    assert_eq!(cheap.threads(), 1);
    assert_eq!(cheap.threads_setting(), EnvThreads::Auto);
    // The bench env (~50 µs a step, 4 envs): measured on one thread, then on one per core, and
    // the faster kept; whatever it keeps, the results are those of one thread.
    let mut costly = vec_of(POINT_REACH_ID, 4, EnvThreads::Auto);
    assert_eq!(costly.threads(), 1, "auto starts on one thread");
    let steps = 4 * EnvThreads::AUTO_PROBE_STEPS as usize + 10;
    let reference = trajectory(&mut vec_of(POINT_REACH_ID, 4, EnvThreads::Count(1)), steps);
    assert_eq!(trajectory(&mut costly, steps), reference, "auto changed the results");
    let cores = rlpg_envs::cores().min(4);
    let (one, tried) = costly.auto_measurement().expect("auto has decided");
    assert!(one >= EnvThreads::AUTO_MIN_STEP, "a step of 4 bench envs took {one:?}");
    if cores > 1 {
        let (threads, time) = tried.expect("threads were tried");
        assert_eq!(threads, cores);
        let kept = if time < one { cores } else { 1 };
        assert_eq!(costly.threads(), kept, "one thread {one:?}, {threads} threads {time:?}");
    }
    assert!(cheap.auto_measurement().is_some_and(|(_, tried)| tried.is_none()));
}
