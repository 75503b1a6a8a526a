//! Whole runs: from a resolved [`Config`] to a run directory with TensorBoard curves and a saved
//! policy, and back from a run directory to an evaluation.

use std::path::{Path, PathBuf};

use rlpg_agents::{Agent, AgentError, Reinforce};
use rlpg_envs::{Env, EnvError, RunningMeanStd, Space};
use tch::Tensor;

use crate::config::{AgentKind, Config, ConfigError};
use crate::rundir::{RunDir, RunDirError, atomic_write};
use crate::tensorboard::TbLogger;
use crate::trainer::{
    EnvFactory, EvalResult, LoopSettings, OBS_CLIP, ScalarSink, TrainError, TrainSummary, evaluate,
    train_loop,
};

/// File name of the final policy (all agent tensors) inside a run directory.
pub const POLICY_FILE: &str = "policy.safetensors";
/// File name of the observation-normalisation statistics inside a run directory.
pub const OBS_RMS_FILE: &str = "obs_rms.json";
/// File name of the run summary (JSON) inside a run directory.
pub const SUMMARY_FILE: &str = "summary.json";

/// Everything that can stop `rlpg train` or `rlpg eval`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The run directory could not be created or opened.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// The environment could not be created.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The agent could not be built or loaded.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Training stopped.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A file of the run could not be read or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl RunError {
    /// Whether the error is the user's input (exit code 2) rather than a failure while running.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, RunError::Config(_))
    }
}

/// A finished training run.
#[derive(Debug)]
pub struct TrainedRun {
    /// Its directory.
    pub run_dir: RunDir,
    /// What the training loop reported.
    pub summary: TrainSummary,
}

/// Seeds libtorch and sets its thread count as `config` says. Call before building an agent:
/// network initialisation draws from libtorch's global generator.
///
/// That generator is global to the process: runs trained at the same time on several threads of
/// one process draw from it in an unspecified interleaving and are not reproducible. Train such
/// runs one after another, or in separate processes.
pub fn seed_torch(config: &Config) {
    tch::set_num_threads(config.torch_threads);
    // libtorch takes an i64 seed; reinterpreting the bits keeps every u64 seed distinct.
    tch::manual_seed(config.seed as i64);
}

/// Builds the agent `config.agent` for the given spaces, with `config.num_envs` environments.
pub fn build_agent(
    config: &Config,
    observation_space: &Space,
    action_space: &Space,
) -> Result<Box<dyn Agent>, AgentError> {
    Ok(match config.agent {
        AgentKind::Reinforce => Box::new(Reinforce::new(
            &config.reinforce,
            observation_space,
            action_space,
            config.num_envs,
        )?),
        AgentKind::Pathwise => Box::new(rlpg_agents::Pathwise::new(
            &config.pathwise,
            observation_space,
            action_space,
            config.num_envs,
        )?),
    })
}

/// The loop settings of `config`.
pub fn loop_settings(config: &Config, progress: bool) -> LoopSettings {
    LoopSettings {
        seed: config.seed,
        total_timesteps: config.total_timesteps,
        num_envs: config.num_envs,
        normalize_obs: config.normalize_obs,
        eval_every: config.eval_every,
        eval_episodes: config.eval_episodes,
        log_every: config.log_every,
        progress,
        stop_at: None,
    }
}

impl ScalarSink for TbLogger {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> std::io::Result<()> {
        TbLogger::scalar(self, tag, value, step)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        TbLogger::flush(self)
    }
}

/// The registered environment `config.env` as an [`EnvFactory`]-compatible closure.
pub fn registry_factory(config: &Config) -> impl Fn() -> Result<Box<dyn Env>, EnvError> + '_ {
    move || rlpg_envs::make(&config.env)
}

/// Trains `config` on environments from `factory` (the registry's `config.env` when `None`),
/// writing `{out_root}/{env}__{agent}__{seed}__{time}/` with the resolved config, TensorBoard
/// event files, the final policy and a summary.
///
/// `config` must already be validated ([`Config::load`] does it); its spaces are checked here
/// against the environment the factory builds, so user environments get the same checks.
pub fn train(
    config: &Config,
    out_root: &Path,
    factory: Option<EnvFactory<'_>>,
    progress: bool,
) -> Result<TrainedRun, RunError> {
    let registry = registry_factory(config);
    let factory: EnvFactory<'_> = factory.unwrap_or(&registry);
    let probe = factory()?;
    config.validate_against(probe.observation_space(), probe.action_space())?;
    seed_torch(config);
    let mut agent = build_agent(config, probe.observation_space(), probe.action_space())?;
    drop(probe);

    let run_dir = RunDir::create_with_config(out_root, config)?;
    let mut logger = match TbLogger::create(run_dir.path()) {
        Ok(logger) => logger,
        Err(e) => {
            let path = run_dir.path().to_owned();
            // Nothing was trained yet: leave no empty run directory behind.
            let _ = run_dir.discard();
            return Err(RunError::File { path, message: format!("cannot create event file: {e}") });
        }
    };
    let settings = loop_settings(config, progress);
    let (summary, obs_rms) = train_loop(agent.as_mut(), factory, &settings, &mut logger)?;
    save_policy(&run_dir, agent.as_ref(), obs_rms.as_ref())?;
    write_summary(&run_dir, &summary)?;
    Ok(TrainedRun { run_dir, summary })
}

fn file_err(path: &Path, message: impl ToString) -> RunError {
    RunError::File { path: path.to_owned(), message: message.to_string() }
}

/// Writes the agent's tensors (and the observation statistics, if any) into `run_dir`,
/// atomically.
pub fn save_policy(
    run_dir: &RunDir,
    agent: &dyn Agent,
    obs_rms: Option<&RunningMeanStd>,
) -> Result<(), RunError> {
    let path = run_dir.path().join(POLICY_FILE);
    let tensors = agent.named_tensors();
    let bytes = safetensors_bytes(&tensors).map_err(|e| file_err(&path, e))?;
    atomic_write(&path, &bytes).map_err(|e| file_err(&path, e))?;
    if let Some(rms) = obs_rms {
        let path = run_dir.path().join(OBS_RMS_FILE);
        let json = serde_json::to_vec_pretty(rms).map_err(|e| file_err(&path, e))?;
        atomic_write(&path, &json).map_err(|e| file_err(&path, e))?;
    }
    Ok(())
}

/// Serialises named tensors in the safetensors format (through a temporary file: tch writes
/// safetensors only to paths).
fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, String> {
    let dir = std::env::temp_dir();
    let tmp = dir.join(format!(
        "rlpg-{}-{}.safetensors",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let result = Tensor::write_safetensors(tensors, &tmp)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::read(&tmp).map_err(|e| e.to_string()));
    let _ = std::fs::remove_file(&tmp);
    result
}

fn write_summary(run_dir: &RunDir, summary: &TrainSummary) -> Result<(), RunError> {
    let path = run_dir.path().join(SUMMARY_FILE);
    let json = serde_json::json!({
        "steps": summary.steps,
        "episodes": summary.episodes,
        "recent_mean_return": summary.recent_mean_return,
        "final_eval_mean_return": summary.final_eval.mean_return,
        "final_eval_std_return": summary.final_eval.std_return,
        "steps_per_second": summary.steps_per_second,
        "evals": summary.evals,
    });
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| file_err(&path, e))?;
    atomic_write(&path, &bytes).map_err(|e| file_err(&path, e))
}

/// Loads the policy saved in `run_dir` and runs `episodes` deterministic episodes, env `i`
/// reset with `seed + i`, on environments from `factory` (the registry's env when `None`).
pub fn evaluate_run(
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    factory: Option<EnvFactory<'_>>,
) -> Result<EvalResult, RunError> {
    let run = RunDir::open(run_dir)?;
    let config = Config::load(&run.config_path(), &[])?;
    let registry = registry_factory(&config);
    let factory: EnvFactory<'_> = factory.unwrap_or(&registry);
    let probe = factory()?;
    seed_torch(&config);
    let mut agent = build_agent(&config, probe.observation_space(), probe.action_space())?;
    let policy = run.path().join(POLICY_FILE);
    if !policy.exists() {
        return Err(file_err(&policy, "no saved policy (the run has not finished)"));
    }
    let tensors = Tensor::read_safetensors(&policy)
        .map_err(|e| file_err(&policy, format!("cannot read the saved policy: {e}")))?;
    agent.load_named_tensors(&tensors)?;
    let rms = if config.normalize_obs {
        let path = run.path().join(OBS_RMS_FILE);
        let text = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
        Some(serde_json::from_slice::<RunningMeanStd>(&text).map_err(|e| file_err(&path, e))?)
    } else {
        None
    };
    Ok(evaluate(agent.as_mut(), factory, episodes, seed, rms.as_ref().map(|r| (r, OBS_CLIP)))?)
}
