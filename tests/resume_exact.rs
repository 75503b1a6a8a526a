//! Exact resumption: a run stopped after a checkpoint and resumed with `rlpg::run::resume` ends
//! with the same parameters, optimizer state, buffers and curves as the run never stopped
//! (libtorch on one thread, as the configs default to).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rlpg::checkpoint::{
    BEST_CHECKPOINT, Checkpoint, checkpoint_dir, read_meta, step_checkpoints, step_file_name,
};
use rlpg::envs::{Action, Env, EnvError, Observation, Space, Step};
use rlpg::envs::{EnvThreads, POINT_REACH_ID};
use rlpg::run::{EnvSource, RunOutcome, TrainOptions, resume, resume_with, train};
use rlpg::{AgentKind, Config, Override, read_scalars};
use tch::Tensor;

mod common;
use common::{Scratch, copy_dir};

/// libtorch's generator is global to the process and the harness runs tests on several
/// threads: runs take turns.
static TORCH: Mutex<()> = Mutex::new(());

/// A copy of the finished run `run_dir` in `into`, put back in the state a `kill -9` right
/// after the checkpoint at `step` would have left: later checkpoints, a best checkpoint from
/// after `step` and the summary are gone. (Event records after `step` stay: resuming must
/// remove them.)
fn as_if_killed_after(run_dir: &Path, step: u64, into: &Path) -> PathBuf {
    let copy = into.join(run_dir.file_name().expect("name"));
    copy_dir(run_dir, &copy);
    for (s, path) in step_checkpoints(&copy).expect("list") {
        if s > step {
            std::fs::remove_file(path).expect("remove later checkpoint");
        }
    }
    let best = checkpoint_dir(&copy).join(BEST_CHECKPOINT);
    if best.exists() && read_meta(&best).expect("best meta").step > step {
        std::fs::remove_file(&best).expect("remove best");
    }
    std::fs::remove_file(copy.join("summary.json")).expect("remove summary");
    assert!(
        checkpoint_dir(&copy).join(step_file_name(step)).is_file(),
        "the run has no checkpoint at step {step} to resume from"
    );
    copy
}

fn final_checkpoint(run_dir: &Path) -> Checkpoint {
    let (_, path) = step_checkpoints(run_dir).expect("list").pop().expect("a checkpoint");
    Checkpoint::read(&path).expect("final checkpoint loads")
}

/// Asserts two tensor lists are bitwise equal, naming the first difference.
fn assert_same_tensors(what: &str, a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    let names = |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "{what}: different tensor names");
    assert!(!a.is_empty(), "{what}: nothing saved");
    for ((name, x), (_, y)) in a.iter().zip(b) {
        assert_eq!(x.size(), y.size(), "{what}: '{name}' changed shape");
        let equal = x.equal(y);
        let floating = matches!(x.kind(), tch::Kind::Float | tch::Kind::Double);
        let diff = if floating {
            (x - y).abs().max().double_value(&[])
        } else {
            f64::from(u8::from(!equal))
        };
        assert!(equal, "{what}: '{name}' differs from the uninterrupted run (max |diff| {diff})");
    }
}

/// Every `(tag, step, value)` logged in the run's event files except the timing-dependent
/// `charts/SPS`, sorted.
fn curves(run_dir: &Path) -> Vec<(String, u64, u32)> {
    let mut all = Vec::new();
    for file in rlpg::event_files(run_dir).expect("event files") {
        for s in read_scalars(&file).expect("readable").scalars {
            if s.tag != "charts/SPS" {
                all.push((s.tag, s.step, s.value.to_bits()));
            }
        }
    }
    all.sort();
    all
}

/// Trains `config` to the end, then trains again from a copy stopped after the checkpoint at
/// `stop_at`, and checks that both end identically.
fn check_exact_resume(name: &str, config: &Config, stop_at: u64) {
    check_exact_resume_with(name, config, stop_at, &[]);
}

/// [`check_exact_resume`], resuming with the `--set` `changes`.
fn check_exact_resume_with(name: &str, config: &Config, stop_at: u64, changes: &[&str]) {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let root = Scratch::new(&format!("resume-{name}"));
    let full = train(config, &root.join("full"), None, false).expect("uninterrupted run");
    let full_dir = full.run_dir.path().to_owned();
    let copy = as_if_killed_after(&full_dir, stop_at, &root.join("resumed"));
    let mut warnings = Vec::new();
    let mut warn = |w: &str| warnings.push(w.to_owned());
    let options = TrainOptions { warn: Some(&mut warn), ..TrainOptions::default() };
    let changes: Vec<Override> =
        changes.iter().map(|c| c.parse().expect("a KEY=VALUE override")).collect();
    let outcome = resume_with(&copy, &changes, options).expect("resume");
    assert!(warnings.is_empty(), "exact resume warned: {warnings:?}");
    let RunOutcome::Finished(resumed) = outcome else { panic!("resumed run did not finish") };
    assert_eq!(resumed.summary.steps, full.summary.steps);
    assert_eq!(resumed.summary.episodes, full.summary.episodes, "episode counts differ");
    assert_same_runs(&full_dir, &copy);
    let files = rlpg::event_files(&copy).expect("event files");
    assert_eq!(files.len(), 2, "the resumed run must add exactly one event file: {files:?}");
}

/// Asserts that two runs ended with the same agent, buffers, evaluations, environment states
/// and curves.
fn assert_same_runs(first: &Path, second: &Path) {
    let (a, b) = (final_checkpoint(first), final_checkpoint(second));
    assert_same_tensors("agent", &a.agent, &b.agent);
    assert_same_tensors("training state", &a.training, &b.training);
    assert_eq!(a.meta.loop_state.evals, b.meta.loop_state.evals, "evaluations differ");
    assert_eq!(a.meta.loop_state.recent_returns, b.meta.loop_state.recent_returns);
    assert_eq!(a.meta.envs, b.meta.envs, "environment states differ");
    assert_eq!(curves(first), curves(second), "logged curves differ");
}

/// A REINFORCE run on the ~50 µs bench env (2 evaluations, a checkpoint half-way).
fn bench_env_config(env_threads: EnvThreads) -> Config {
    let mut config = Config::new(POINT_REACH_ID, AgentKind::Reinforce);
    config.seed = 5;
    config.total_timesteps = 4_096;
    config.checkpoint_every = 2_048;
    config.keep_checkpoints = 10;
    config.eval_every = 2_048;
    config.eval_episodes = 3;
    config.env_threads = env_threads;
    config.validate().expect("valid");
    config
}

#[test]
fn training_is_bit_identical_on_one_thread_two_threads_and_auto() {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let root = Scratch::new("env-threads");
    let run = |threads, name: &str| {
        let config = bench_env_config(threads);
        let run = train(&config, &root.join(name), None, false).expect("run");
        let summary =
            std::fs::read_to_string(run.run_dir.path().join("summary.json")).expect("summary");
        (run, summary)
    };
    let (one, one_summary) = run(EnvThreads::Count(1), "one");
    assert!(one_summary.contains("\"env_threads\": 1"), "{one_summary}");
    let cores = rlpg::envs::cores().min(8);
    for (threads, name) in [(EnvThreads::Count(2), "two"), (EnvThreads::Auto, "auto")] {
        let (other, summary) = run(threads, name);
        // Auto keeps one per core or one, whichever it measured faster.
        let used = other.summary.env_threads;
        let expected: &[usize] = if threads == EnvThreads::Auto { &[1, cores] } else { &[2] };
        assert!(expected.contains(&used), "{name}: {used} threads");
        assert!(summary.contains(&format!("\"env_threads\": {used}")), "{summary}");
        assert_eq!(other.summary.evals, one.summary.evals, "{name}: evaluations differ");
        assert_same_runs(one.run_dir.path(), other.run_dir.path());
    }
}

#[test]
fn a_run_on_one_env_thread_resumed_on_two_ends_exactly_as_the_uninterrupted_run() {
    let config = bench_env_config(EnvThreads::Count(1));
    check_exact_resume_with("env-threads", &config, 2_048, &["env_threads=2"]);
}

#[test]
fn reinforce_on_cartpole_resumed_mid_rollout_ends_exactly_as_the_uninterrupted_run() {
    let mut config = Config::new("CartPole-v1", AgentKind::Reinforce);
    config.seed = 11;
    config.total_timesteps = 6_000;
    // 1000 is not a multiple of the 256-step rollout: checkpoints fall mid-rollout.
    config.checkpoint_every = 1_000;
    config.keep_checkpoints = 10;
    config.eval_every = 2_000;
    config.eval_episodes = 3;
    config.reinforce.value_minibatches = 4;
    config.validate().expect("valid");
    check_exact_resume("reinforce", &config, 3_000);
}

#[test]
fn clipped_surrogate_reinforce_resumed_mid_rollout_ends_exactly_as_the_uninterrupted_run() {
    // PPO's options: shuffled policy minibatches from the seeded generator, several epochs,
    // clipping of the ratio and the values, a KL target; MultiDiscrete actions within masks
    // (the ratio uses each transition's stored mask).
    let mut config = Config::new("Restock-v0", AgentKind::Reinforce);
    config.seed = 7;
    config.total_timesteps = 6_000;
    config.checkpoint_every = 1_000;
    config.keep_checkpoints = 10;
    config.eval_every = 2_000;
    config.eval_episodes = 3;
    config.reinforce.n_steps = 56;
    config.reinforce.n_epochs = 4;
    config.reinforce.batch_size = Some(64);
    config.reinforce.clip_range = Some(0.2);
    config.reinforce.clip_range_vf = Some(0.5);
    config.reinforce.target_kl = Some(0.02);
    config.reinforce.value_minibatches = 4;
    config.validate().expect("valid");
    check_exact_resume("reinforce-clipped", &config, 3_000);
}

#[test]
fn masked_reinforce_on_restock_resumed_mid_rollout_ends_exactly_as_the_uninterrupted_run() {
    // Restock-v0: MultiDiscrete actions within masks that change every step, and step infos
    // logged. The partial rollout in the checkpoint holds its masks, the env snapshots the
    // state its next mask comes from, and the info sums of the episodes in progress carry over.
    let mut config = Config::new("Restock-v0", AgentKind::Reinforce);
    config.seed = 5;
    config.total_timesteps = 6_000;
    // 1000 is not a multiple of the 8 x 56-step rollout: checkpoints fall mid-rollout.
    config.checkpoint_every = 1_000;
    config.keep_checkpoints = 10;
    config.eval_every = 2_000;
    config.eval_episodes = 3;
    config.info_keywords = vec!["lost_sales".into(), "stock".into()];
    config.reinforce.n_steps = 56;
    config.reinforce.value_minibatches = 4;
    config.validate().expect("valid");
    check_exact_resume("reinforce-masked", &config, 3_000);
}

#[test]
fn pathwise_on_pendulum_resumed_after_learning_started_ends_exactly_as_the_uninterrupted_run() {
    let mut config = Config::new("Pendulum-v1", AgentKind::Pathwise);
    config.seed = 5;
    config.num_envs = 2;
    config.total_timesteps = 1_200;
    config.checkpoint_every = 400;
    config.keep_checkpoints = 10;
    config.eval_every = 600;
    config.eval_episodes = 1;
    config.normalize_obs = true;
    config.pathwise.learning_starts = 200;
    config.pathwise.batch_size = 32;
    config.pathwise.buffer_size = 1_000;
    config.pathwise.metrics_every = 70;
    config.validate().expect("valid");
    check_exact_resume("pathwise", &config, 800);
}

#[test]
fn masked_pathwise_on_restock_resumed_after_learning_started_ends_exactly_as_the_uninterrupted_run()
{
    // Restock-v0 with the pathwise agent: a Gumbel-softmax per component within masks that
    // change every step. The checkpoints' replay buffer holds both states' masks of every
    // transition (the TD target's next action is drawn within the next state's), and the warm-up
    // actions before learning starts are uniform within the masks.
    let mut config = Config::new("Restock-v0", AgentKind::Pathwise);
    config.seed = 5;
    config.num_envs = 2;
    config.total_timesteps = 1_200;
    config.checkpoint_every = 400;
    config.keep_checkpoints = 10;
    config.eval_every = 600;
    config.eval_episodes = 2;
    config.info_keywords = vec!["lost_sales".into()];
    config.pathwise.learning_starts = 300;
    config.pathwise.batch_size = 32;
    config.pathwise.buffer_size = 1_000;
    config.pathwise.metrics_every = 70;
    config.pathwise.logit_bound = 3.0;
    config.validate().expect("valid");
    check_exact_resume("pathwise-masked", &config, 800);
}

/// Acting beside learning drains its one step in flight before every checkpoint (see
/// `src/trainer/beside.rs`), so a run resumed from a periodic checkpoint replays the
/// uninterrupted run exactly too: the actor's draws are seeded from `(seed, step)`.
#[test]
fn pathwise_acting_beside_learning_resumed_ends_exactly_as_the_uninterrupted_run() {
    let mut config = Config::new(POINT_REACH_ID, AgentKind::Pathwise);
    config.seed = 5;
    config.num_envs = 4;
    config.total_timesteps = 1_200;
    config.checkpoint_every = 400;
    config.keep_checkpoints = 10;
    config.eval_every = 600;
    config.eval_episodes = 1;
    config.act_beside_learning = true;
    config.pathwise.learning_starts = 200;
    config.pathwise.batch_size = 32;
    config.pathwise.buffer_size = 1_000;
    config.pathwise.metrics_every = 70;
    config.validate().expect("valid");
    check_exact_resume("pathwise-beside", &config, 800);
}

/// CartPole behind a wrapper that does not implement snapshots, as a user's env may not.
struct NoSnapshots(Box<dyn Env>);

impl Env for NoSnapshots {
    fn id(&self) -> &str {
        "NoSnapshotCartPole"
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
        self.0.step(action)
    }
}

#[test]
fn an_env_without_snapshots_resumes_by_resetting_with_a_warning() {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = Config::new("CartPole-v1", AgentKind::Reinforce);
    config.total_timesteps = 2_000;
    config.checkpoint_every = 1_000;
    config.eval_every = 0;
    config.eval_episodes = 2;
    let factory =
        || rlpg::envs::make("CartPole-v1").map(|e| Box::new(NoSnapshots(e)) as Box<dyn Env>);
    let root = Scratch::new("resume-nosnap");
    let full = train(&config, &root.join("full"), Some(&factory), false).expect("run");
    let meta = read_meta(&checkpoint_dir(full.run_dir.path()).join(step_file_name(1_000)))
        .expect("checkpoint");
    assert!(!meta.envs.has_env_states(), "an env without snapshots cannot have saved its state");
    let copy = as_if_killed_after(full.run_dir.path(), 1_000, &root.join("resumed"));
    let mut warnings = Vec::new();
    let mut warn = |w: &str| warnings.push(w.to_owned());
    let options = TrainOptions {
        envs: EnvSource::Factory(&factory),
        warn: Some(&mut warn),
        ..TrainOptions::default()
    };
    let outcome = resume(&copy, options).expect("resume");
    assert!(matches!(outcome, RunOutcome::Finished(ref r) if r.summary.steps == 2_000));
    assert!(
        warnings.iter().any(|w| w.contains("resetting the environments") && w.contains("1000")),
        "expected a warning about resetting the envs at step 1000, got {warnings:?}"
    );
}
