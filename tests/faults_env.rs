//! A user's environment that misbehaves (wrong-length or non-finite observation, non-finite
//! reward, an error from `step`) stops the run with a message naming the env, the step and the
//! value, after a checkpoint from which the run resumes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rlpg::checkpoint::{Checkpoint, step_checkpoints};
use rlpg::envs::{
    Action, Env, EnvError, EnvSnapshot, EnvThreads, Observation, Registry, SendFactory, Space, Step,
};
use rlpg::run::{EnvSource, RunError, RunOutcome, TrainOptions, resume, train_with};
use rlpg::runs::RunStatus;
use rlpg::trainer::{SaveReason, TrainError};
use rlpg::{AgentKind, Config};

mod common;
use common::Scratch;

static TORCH: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug)]
enum Fault {
    ShortObservation,
    NanObservation,
    InfiniteReward,
    StepError,
}

/// CartPole that misbehaves on its `fail_at`-th step (counted over its whole life).
struct Faulty {
    inner: Box<dyn Env + Send>,
    steps: usize,
    fail_at: usize,
    fault: Fault,
}

const ID: &str = "Faulty-v0";

impl Env for Faulty {
    fn id(&self) -> &str {
        ID
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
        let mut step = self.inner.step(action)?;
        self.steps += 1;
        if self.steps == self.fail_at {
            match self.fault {
                Fault::ShortObservation => step.obs.truncate(3),
                Fault::NanObservation => step.obs[2] = f32::NAN,
                Fault::InfiniteReward => step.reward = f64::INFINITY,
                Fault::StepError => {
                    return Err(EnvError::Other {
                        env: ID.to_owned(),
                        message: "sensor failure: pole angle unreadable".to_owned(),
                    });
                }
            }
        }
        Ok(step)
    }
    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        self.inner.snapshot()
    }
    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        self.inner.restore(snapshot)
    }
}

/// Trains with env 1 of 2 failing on its 100th step (global step 2 * 99 = 198 before it);
/// checks the error and the checkpoint; resumes with healthy envs.
fn check_fault(fault: Fault, needles: &[&str]) {
    check_fault_of(fault, needles, false);
}

/// [`check_fault`], acting beside learning (`beside`: the pathwise agent, the envs stepping on a
/// thread of their own, the next step sent before the agent learns from the last).
fn check_fault_of(fault: Fault, needles: &[&str], beside: bool) {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let agent = if beside { AgentKind::Pathwise } else { AgentKind::Reinforce };
    let mut config = Config::new("CartPole-v1", agent);
    config.act_beside_learning = beside;
    config.num_envs = 2;
    config.total_timesteps = 600;
    config.checkpoint_every = 1_000;
    config.eval_every = 0;
    config.eval_episodes = 1;
    let made = AtomicUsize::new(0);
    let faulty = SendFactory(|| {
        let index = made.fetch_add(1, Ordering::SeqCst);
        let inner = rlpg::envs::make_send("CartPole-v1")?;
        // The probe is env 0 (acting beside learning, made twice: as an env and as a `Send`
        // env); the training envs come next: the second one fails.
        let fail_at = if index == 2 + usize::from(beside) { 100 } else { usize::MAX };
        Ok(Box::new(Faulty { inner, steps: 0, fail_at, fault }) as Box<dyn Env + Send>)
    });
    let root = Scratch::new(&format!("envfault-{fault:?}-{beside}"));
    let options = TrainOptions { envs: EnvSource::Factory(&faulty), ..TrainOptions::default() };
    let err = train_with(&config, &root, options).expect_err("the fault must stop training");
    let message = err.to_string();
    let RunError::Stopped { source, run_dir, checkpoint, .. } = err else {
        panic!("{fault:?}: expected RunError::Stopped, got {message}")
    };
    assert!(matches!(*source, TrainError::Env { step: 198, .. }), "{fault:?}: {source:?}");
    for needle in [ID, "at step 198", "vector env slot 1"].iter().chain(needles) {
        assert!(message.contains(needle), "{fault:?}: message lacks {needle:?}: {message}");
    }
    assert!(!message.contains('\n'), "one line: {message}");
    let path = checkpoint.expect("a checkpoint is named");
    assert!(message.contains(&path.display().to_string()), "names the checkpoint: {message}");
    let saved = Checkpoint::read(&path).expect("the fault checkpoint loads");
    assert_eq!((saved.meta.reason, saved.meta.step), (SaveReason::EnvFault, 198), "{fault:?}");
    assert!(!saved.meta.envs.has_env_states(), "mid-step env states must not be saved");
    assert_eq!(step_checkpoints(&run_dir).expect("list").last().map(|c| c.0), Some(198));
    // Resuming as it is would meet the env's error again: the run is failed, not resumable.
    match rlpg::runs::inspect_run(&run_dir).status {
        RunStatus::Failed(error) => {
            assert!(error.contains("at step 198") && error.contains(ID), "{fault:?}: {error}")
        }
        other => panic!("{fault:?}: the run is listed {other}, not failed"),
    }
    assert!(message.contains("marked failed"), "{fault:?}: {message}");

    // With the env fixed, the run resumes from the fault checkpoint (resetting the envs).
    let healthy = SendFactory(|| rlpg::envs::make_send("CartPole-v1"));
    let mut warnings = Vec::new();
    let mut warn = |w: &str| warnings.push(w.to_owned());
    let options = TrainOptions {
        envs: EnvSource::Factory(&healthy),
        warn: Some(&mut warn),
        ..TrainOptions::default()
    };
    let outcome = resume(&run_dir, options).expect("resume after the fault");
    assert!(matches!(outcome, RunOutcome::Finished(ref r) if r.summary.steps == 600));
    assert!(warnings.iter().any(|w| w.contains("resetting the environments")), "{warnings:?}");
    assert_eq!(rlpg::runs::inspect_run(&run_dir).status, RunStatus::Complete);
    assert!(!run_dir.join(rlpg::runs::FAILURE_FILE).exists(), "the failure record is gone");
}

#[test]
fn a_wrong_length_observation_stops_the_run_after_a_checkpoint() {
    check_fault(Fault::ShortObservation, &["observation of length 3"]);
}

#[test]
fn a_nan_observation_stops_the_run_after_a_checkpoint() {
    check_fault(Fault::NanObservation, &["NaN at index 2"]);
}

#[test]
fn an_infinite_reward_stops_the_run_after_a_checkpoint() {
    check_fault(Fault::InfiniteReward, &["non-finite reward inf"]);
}

#[test]
fn an_error_from_step_stops_the_run_after_a_checkpoint() {
    check_fault(Fault::StepError, &["sensor failure: pole angle unreadable"]);
}

/// The step that fails is stepped on the actor thread, sent before the agent learned from the
/// step before it: the error comes back with the envs, after that step is learned from, so the
/// run stops at the same step, with the same checkpoint, as in lockstep, and nothing hangs.
#[test]
fn an_error_from_step_acting_beside_learning_stops_the_run_after_a_checkpoint() {
    check_fault_of(Fault::StepError, &["sensor failure: pole angle unreadable"], true);
}

/// CartPole whose step number `slow_at` (of its life) takes 100 times longer than a step of
/// the rest of the run.
struct Slow(Box<dyn Env + Send>, usize, usize);

impl Env for Slow {
    fn id(&self) -> &str {
        "Slow-v0"
    }
    fn observation_space(&self) -> &Space {
        self.0.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.0.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.0.reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.1 += 1;
        if self.1 == self.2 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.0.step(action)
    }
    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        self.0.snapshot()
    }
    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        self.0.restore(snapshot)
    }
}

/// One step 100 times slower than the rest, acting beside learning: the learner waits for it,
/// and the run is the run without the slow step, transition for transition (same episodes,
/// evaluations and final parameters' evaluation).
#[test]
fn a_step_a_hundred_times_slower_acting_beside_learning_changes_nothing_but_time() {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = Config::new("CartPole-v1", AgentKind::Pathwise);
    config.act_beside_learning = true;
    config.num_envs = 2;
    config.total_timesteps = 600;
    config.eval_every = 300;
    config.eval_episodes = 2;
    let root = Scratch::new("beside-slow");
    let run = |slow_at: usize| {
        let slow = SendFactory(move || {
            let inner = rlpg::envs::make_send("CartPole-v1")?;
            Ok(Box::new(Slow(inner, 0, slow_at)) as Box<dyn Env + Send>)
        });
        let options = TrainOptions { envs: EnvSource::Factory(&slow), ..TrainOptions::default() };
        match train_with(&config, &root, options) {
            Ok(RunOutcome::Finished(run)) => run.summary,
            other => panic!("the run finishes: {other:?}"),
        }
    };
    let (reference, slowed) = (run(usize::MAX), run(150));
    assert_eq!(slowed.steps, 600);
    assert_eq!(slowed.episodes, reference.episodes, "no transition lost or repeated");
    assert_eq!(slowed.evals, reference.evals);
    assert_eq!(slowed.final_eval, reference.final_eval);
    assert_eq!(slowed.recent_mean_return, reference.recent_mean_return);
}

/// A stop (Ctrl-C) requested while a step is in flight on the actor thread: the loop learns from
/// that step too, then checkpoints and stops; the resumed run trains to the end with every step
/// counted once (one checkpoint per step it stopped at, no step lost or repeated).
#[test]
fn a_stop_while_a_step_is_in_flight_learns_from_it_then_checkpoints() {
    use std::sync::atomic::AtomicBool;
    static STOP: AtomicBool = AtomicBool::new(false);
    static ARMED: AtomicBool = AtomicBool::new(true);
    /// CartPole that requests the stop on its 100th step, from the actor thread, once.
    struct Stopper(Box<dyn Env + Send>, usize);
    impl Env for Stopper {
        fn id(&self) -> &str {
            "Stopper-v0"
        }
        fn observation_space(&self) -> &Space {
            self.0.observation_space()
        }
        fn action_space(&self) -> &Space {
            self.0.action_space()
        }
        fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
            self.0.reset(seed)
        }
        fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
            self.1 += 1;
            if self.1 == 100 && ARMED.swap(false, Ordering::SeqCst) {
                STOP.store(true, Ordering::SeqCst);
            }
            self.0.step(action)
        }
        fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
            self.0.snapshot()
        }
        fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
            self.0.restore(snapshot)
        }
    }
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = Config::new("CartPole-v1", AgentKind::Pathwise);
    config.act_beside_learning = true;
    config.num_envs = 2;
    config.total_timesteps = 600;
    config.eval_every = 0;
    config.eval_episodes = 1;
    let root = Scratch::new("beside-stop");
    let stopper = SendFactory(|| {
        Ok(Box::new(Stopper(rlpg::envs::make_send("CartPole-v1")?, 0)) as Box<dyn Env + Send>)
    });
    let options = TrainOptions {
        envs: EnvSource::Factory(&stopper),
        stop: Some(&STOP),
        ..TrainOptions::default()
    };
    let (run_dir, step) = match train_with(&config, &root, options) {
        Ok(RunOutcome::Interrupted { run_dir, step }) => (run_dir, step),
        other => panic!("the stop ends the run with a checkpoint: {other:?}"),
    };
    // The training envs' 100th step is the step from global step 198 to 200, sent before the
    // stop was requested; the loop learns from it, sends no next step, and stops at 200.
    assert_eq!(step, 200, "stopped at step {step}");
    let run_dir = run_dir.path().to_owned();
    let (saved, path) = step_checkpoints(&run_dir).expect("list").pop().expect("a checkpoint");
    assert_eq!(saved, 200, "a checkpoint at the step it stopped at");
    let checkpoint = Checkpoint::read(&path).expect("the stop checkpoint loads");
    assert_eq!(checkpoint.meta.reason, SaveReason::Interrupted);
    assert!(checkpoint.meta.envs.has_env_states(), "drained: the envs are between two steps");
    STOP.store(false, Ordering::SeqCst);
    let options = TrainOptions { envs: EnvSource::Factory(&stopper), ..TrainOptions::default() };
    match resume(&run_dir, options) {
        Ok(RunOutcome::Finished(run)) => assert_eq!(run.summary.steps, 600),
        other => panic!("the resumed run finishes: {other:?}"),
    }
}

/// An env that panics on the actor thread panics the training loop's thread (as it does in
/// lockstep) instead of leaving it waiting for a step that never comes.
#[test]
fn a_panicking_env_acting_beside_learning_panics_the_loop_instead_of_hanging() {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    struct Panics(Box<dyn Env + Send>, usize);
    impl Env for Panics {
        fn id(&self) -> &str {
            "Panics-v0"
        }
        fn observation_space(&self) -> &Space {
            self.0.observation_space()
        }
        fn action_space(&self) -> &Space {
            self.0.action_space()
        }
        fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
            self.0.reset(seed)
        }
        fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
            self.1 += 1;
            assert!(self.1 < 50, "simulator crashed on step {}", self.1);
            self.0.step(action)
        }
    }
    let mut config = Config::new("CartPole-v1", AgentKind::Pathwise);
    config.act_beside_learning = true;
    config.num_envs = 2;
    config.total_timesteps = 600;
    config.eval_every = 0;
    config.eval_episodes = 1;
    let root = Scratch::new("beside-panic");
    let panics = SendFactory(|| {
        Ok(Box::new(Panics(rlpg::envs::make_send("CartPole-v1")?, 0)) as Box<dyn Env + Send>)
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let options = TrainOptions { envs: EnvSource::Factory(&panics), ..TrainOptions::default() };
        train_with(&config, &root, options)
    }));
    let payload = result.expect_err("the env's panic reaches the loop's thread");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(message.contains("simulator crashed on step 50"), "the env's own panic: {message:?}");
}

/// An env that is not `Send`: CartPole sharing its step counter through an `Rc`.
struct Shared {
    inner: Box<dyn Env>,
    steps: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Env for Shared {
    fn id(&self) -> &str {
        "Shared-v0"
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
        self.steps.set(self.steps.get() + 1);
        self.inner.step(action)
    }
}

fn shared() -> Shared {
    let inner = rlpg::envs::make("CartPole-v1").expect("registered");
    Shared { inner, steps: std::rc::Rc::default() }
}

#[test]
fn env_threads_for_envs_that_are_not_send_is_refused_before_the_run_directory_exists() {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = Config::new("Shared-v0", AgentKind::Reinforce);
    config.total_timesteps = 512;
    config.eval_every = 0;
    config.eval_episodes = 1;
    config.env_threads = EnvThreads::Count(2);
    let root = Scratch::new("env-threads-not-send");
    let registry = Registry::builtin().with_local("Shared-v0", shared);
    let factory = || Ok(Box::new(shared()) as Box<dyn Env>);
    for (what, envs) in
        [("with_local", EnvSource::Registry(&registry)), ("factory", EnvSource::Factory(&factory))]
    {
        let options = TrainOptions { envs, ..TrainOptions::default() };
        let err = train_with(&config, &root, options).expect_err("refused");
        let message = err.to_string();
        for needle in ["env_threads", "Shared-v0", "Send", "env_threads = 1"] {
            assert!(message.contains(needle), "{what}: `{needle}` missing from: {message}");
        }
        assert!(err.is_usage_error(), "{what}: a config error: {message}");
        let left: Vec<_> = std::fs::read_dir(&*root).map(|d| d.count()).into_iter().collect();
        assert!(
            left.iter().all(|&n| n == 0),
            "{what}: something was written in {}",
            root.display()
        );
    }
    // Acting beside learning steps the envs on a thread of their own: refused the same way.
    config.env_threads = EnvThreads::Count(1);
    config.agent = AgentKind::Pathwise;
    config.act_beside_learning = true;
    for (what, envs) in
        [("with_local", EnvSource::Registry(&registry)), ("factory", EnvSource::Factory(&factory))]
    {
        let options = TrainOptions { envs, ..TrainOptions::default() };
        let err = train_with(&config, &root, options).expect_err("refused");
        let message = err.to_string();
        for needle in ["act_beside_learning", "Shared-v0", "Send"] {
            assert!(message.contains(needle), "{what}: `{needle}` missing from: {message}");
        }
        assert!(err.is_usage_error(), "{what}: a config error: {message}");
        let left: Vec<_> = std::fs::read_dir(&*root).map(|d| d.count()).into_iter().collect();
        assert!(left.iter().all(|&n| n == 0), "{what}: something was written");
    }
    config.agent = AgentKind::Reinforce;
    config.act_beside_learning = false;
    // On one thread the same envs train; a SendFactory of Send envs trains on two.
    config.env_threads = EnvThreads::Count(1);
    let options = TrainOptions { envs: EnvSource::Registry(&registry), ..TrainOptions::default() };
    assert!(matches!(train_with(&config, &root, options), Ok(RunOutcome::Finished(_))));
    config.env = "CartPole-v1".to_owned();
    config.env_threads = EnvThreads::Count(2);
    let send = SendFactory(|| rlpg::envs::make_send("CartPole-v1"));
    let options = TrainOptions { envs: EnvSource::Factory(&send), ..TrainOptions::default() };
    match train_with(&config, &root, options) {
        Ok(RunOutcome::Finished(run)) => assert_eq!(run.summary.env_threads, 2),
        other => panic!("a SendFactory trains on two threads: {other:?}"),
    }
}
