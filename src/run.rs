//! Whole runs: from a resolved [`Config`] to a run directory with TensorBoard curves and
//! checkpoints; from a run directory back to a resumed run or an evaluation.
//!
//! One mechanism saves agents: the checkpoints of [`crate::checkpoint`]. A run writes one at
//! its start, every `checkpoint_every` env steps, at each new best evaluation, at its end, when
//! it is stopped (Ctrl-C, SIGTERM) and after an environment fault; [`resume`] continues from the
//! newest one that loads; [`evaluate_run`] evaluates the best one (or the newest).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rlpg_agents::{Agent, AgentError, Reinforce};
use rlpg_envs::{Env, EnvEntry, EnvError, Registry, Space};

use crate::checkpoint::{
    self, Checkpoint, CheckpointError, EnvSpaces, RunCheckpoints, best_checkpoint, latest_loadable,
    remove_stale_temp_files, step_checkpoints,
};
use crate::config::{AgentKind, Config, ConfigError, Override};
use crate::rundir::{RunDir, RunDirError, atomic_write};
use crate::tensorboard::{TbLogger, config_hparams, config_markdown, trim_event_files};
use crate::trainer::{
    EnvFactory, EvalResult, LoopControl, LoopOutcome, LoopSettings, OBS_CLIP, ResumePoint,
    ScalarSink, Target, TrainError, TrainSummary, evaluate, train_loop_with,
};
use crate::video::EncodedGif;

/// File name of the run summary (JSON) inside a run directory, written when training finishes.
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
    /// Training stopped before it began (setup of the loop).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Training stopped on an error after it began; the newest good checkpoint is named. (The
    /// message names no command: the CLI adds the one that resumes the run, [`resume`] is the
    /// library's.)
    #[error("{source}; {}", match checkpoint {
        Some(path) => format!(
            "training stopped; last good checkpoint {}, from which the run can be resumed",
            path.display()
        ),
        None => "training stopped before any checkpoint was written".to_owned(),
    })]
    Stopped {
        /// Why.
        source: Box<TrainError>,
        /// The run directory.
        run_dir: PathBuf,
        /// The newest checkpoint on disk, if any.
        checkpoint: Option<PathBuf>,
    },
    /// A checkpoint is missing, incomplete or corrupt.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// `--resume` was given a run that already finished, without a larger `total_timesteps`.
    #[error(
        "nothing to resume: the run in {} is complete ({steps} steps); to train it further, give \
         it a larger budget with --set total_timesteps=N (N > {steps})",
        run_dir.display()
    )]
    Complete {
        /// The run directory.
        run_dir: PathBuf,
        /// Steps it trained.
        steps: u64,
    },
    /// Another process is training the run (it holds the run's lock).
    #[error("{} is in use: another rlpg process is training this run", run_dir.display())]
    InUse {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// The run's environment is not in the registry it was looked up in (e.g. a run of a
    /// user's environment given to a program that does not register it).
    #[error(
        "environment `{id}` is not registered in this program (registered: {}); train, \
         evaluate and resume it with a program whose registry has it (see rlpg::cli::main_with)",
        registered.join(", ")
    )]
    NotRegistered {
        /// The run's environment id.
        id: String,
        /// The ids the registry has.
        registered: Vec<String>,
    },
    /// The Ctrl-C / SIGTERM handlers could not be installed.
    #[error("cannot install the Ctrl-C / SIGTERM handlers: {0}")]
    Signals(std::io::Error),
    /// A result could not be written to stdout.
    #[error("cannot write the {what} to stdout: {message}")]
    Output {
        /// What was being written, e.g. `results as JSON`.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The command line asks for something impossible (what the argument parser cannot catch).
    #[error("{0}")]
    Usage(String),
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
        matches!(
            self,
            RunError::Config(_)
                | RunError::RunDir(RunDirError::NotARunDir { .. })
                | RunError::Complete { .. }
                | RunError::Usage(_)
                | RunError::NotRegistered { .. }
        )
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

/// How [`train_with`] or [`resume`] ended without an error.
#[derive(Debug)]
pub enum RunOutcome {
    /// Training ran to the end.
    Finished(TrainedRun),
    /// A stop was requested; the run was checkpointed at `step` and can be resumed.
    Interrupted {
        /// The run directory.
        run_dir: RunDir,
        /// The step of the checkpoint written on stopping.
        step: u64,
    },
}

/// Where the environments of a run come from.
#[derive(Clone, Copy, Default)]
pub enum EnvSource<'a> {
    /// The built-in registry's entry for the config's `env`.
    #[default]
    Builtin,
    /// This registry's entry for the config's `env`.
    Registry(&'a Registry),
    /// This factory, whatever the config's `env` says: it must build the run's environment.
    Factory(EnvFactory<'a>),
}

/// A run's environments, resolved from an [`EnvSource`] and the config's `env`.
pub(crate) enum Envs<'a> {
    Factory(EnvFactory<'a>),
    Entry(EnvEntry),
}

impl<'a> Envs<'a> {
    /// Looks `env` up unless a factory was given; an unregistered id is
    /// [`RunError::NotRegistered`].
    /// An id `gymnasium:<ID>` that the registry does not have is made by the `gymnasium` bridge
    /// with the config's `env_kwargs`; an error making it (no Python, an unknown id) is
    /// [`RunError::Usage`] quoting Gymnasium's message.
    pub(crate) fn resolve(source: EnvSource<'a>, config: &Config) -> Result<Self, RunError> {
        let env = config.env.as_str();
        let lookup = |registry: &Registry| match registry.get(env) {
            Ok(entry) => Ok(Envs::Entry(entry.clone())),
            Err(_) if env.starts_with(crate::config::GYMNASIUM_PREFIX) => {
                crate::config::gymnasium_entry(config).map(Envs::Entry).map_err(RunError::Usage)
            }
            Err(_) => Err(RunError::NotRegistered {
                id: env.to_owned(),
                registered: registry.ids().into_iter().map(str::to_owned).collect(),
            }),
        };
        match source {
            EnvSource::Builtin => lookup(&Registry::builtin()),
            EnvSource::Registry(registry) => lookup(registry),
            EnvSource::Factory(factory) => Ok(Envs::Factory(factory)),
        }
    }

    pub(crate) fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        match self {
            Envs::Factory(factory) => factory(),
            Envs::Entry(entry) => entry.make(),
        }
    }
}

/// What a run may be given besides its config.
#[derive(Default)]
pub struct TrainOptions<'a> {
    /// Where the environments come from (the built-in registry's `config.env` by default).
    pub envs: EnvSource<'a>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// When set (e.g. by a signal handler), training finishes its step, checkpoints and returns
    /// [`RunOutcome::Interrupted`].
    pub stop: Option<&'a AtomicBool>,
    /// Receives one-line warnings; printed to stderr as `rlpg: warning: …` when `None`.
    pub warn: Option<&'a mut dyn FnMut(&str)>,
    /// A label added to a new run directory's name after the agent,
    /// `{env}__{agent}-{label}__{seed}__{time}` (CleanRL's experiment-name slot), e.g. the grid
    /// point of a sweep. Ignored when resuming.
    pub label: Option<&'a str>,
    /// A return threshold whose first crossing (env step, training seconds) is recorded in the
    /// summary; training continues to its budget.
    pub target: Option<Target>,
}

/// File in a run directory that the process training the run holds locked.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run directory, held by the process that trains the run and released
/// when dropped or when the process ends in any way (the kernel drops `flock` locks with the
/// process, `kill -9` included), so that a second `rlpg train --resume` of a run that is still
/// training is refused instead of interleaving two runs' checkpoints and event files.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock of `run_dir`, or fails at once if another process holds it.
    pub fn acquire(run_dir: &Path) -> Result<RunLock, RunError> {
        let path = run_dir.join(LOCK_FILE);
        let file_err = |message: String| RunError::File { path: path.clone(), message };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| file_err(format!("cannot open the run's lock file: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if locked != 0 {
                let error = std::io::Error::last_os_error();
                return Err(if error.kind() == std::io::ErrorKind::WouldBlock {
                    RunError::InUse { run_dir: run_dir.to_owned() }
                } else {
                    file_err(format!("cannot lock the run: {error}"))
                });
            }
        }
        Ok(RunLock { _file: file })
    }
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

/// Builds the agent `config.agent` for the given spaces, with `config.num_envs` environments,
/// on the device `config.device` means on this machine (`cuda` without a CUDA device is an
/// error; [`Config::validate_against`] refuses it first).
pub fn build_agent(
    config: &Config,
    observation_space: &Space,
    action_space: &Space,
) -> Result<Box<dyn Agent>, AgentError> {
    let device = config
        .device
        .resolve()
        .map_err(|message| AgentError::Invalid(format!("device: {message}")))?;
    build_agent_on(config, observation_space, action_space, device)
}

/// [`build_agent`] on `device` whatever `config.device` says: evaluation, videos and export
/// act on small batches and run on the CPU, so a run trained on a GPU evaluates anywhere.
pub fn build_agent_on(
    config: &Config,
    observation_space: &Space,
    action_space: &Space,
    device: tch::Device,
) -> Result<Box<dyn Agent>, AgentError> {
    Ok(match config.agent {
        AgentKind::Reinforce => Box::new(Reinforce::new_on(
            &config.reinforce,
            observation_space,
            action_space,
            config.num_envs,
            device,
        )?),
        AgentKind::Pathwise => Box::new(rlpg_agents::Pathwise::new_on(
            &config.pathwise,
            observation_space,
            action_space,
            config.num_envs,
            device,
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
        checkpoint_every: config.checkpoint_every,
        checkpoint_replay_buffer: config.checkpoint_replay_buffer,
        capture_video_every: config.capture_video_every,
        progress,
        stop_at: None,
        record_target: None,
    }
}

/// With `capture_video_every > 0` the environment must render; checked on the probe env before
/// the run directory exists, so a run never fails at its first video.
fn check_renders(config: &Config, probe: &mut dyn Env) -> Result<(), RunError> {
    if config.capture_video_every == 0 {
        return Ok(());
    }
    match probe.reset(Some(config.seed)).and_then(|_| probe.render()) {
        Ok(_) => Ok(()),
        Err(e) => Err(RunError::Usage(format!(
            "capture_video_every = {} needs an environment that renders: {e} (set \
             capture_video_every = 0 to train without videos)",
            config.capture_video_every
        ))),
    }
}

/// Folder of a run's evaluation videos.
pub const VIDEOS_DIR: &str = "videos";

/// The sink of a run: scalars, text and videos go to its event file, videos also to
/// `videos/step-NNNNNNNNN.gif` in the run directory.
struct RunSink<'a> {
    logger: &'a mut TbLogger,
    run_dir: &'a Path,
}

impl ScalarSink for RunSink<'_> {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> std::io::Result<()> {
        self.logger.scalar(tag, value, step)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.logger.flush()
    }
    fn video(&mut self, tag: &str, gif: &EncodedGif, step: u64) -> std::io::Result<()> {
        let dir = self.run_dir.join(VIDEOS_DIR);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("step-{step:09}.gif"));
        atomic_write(&path, &gif.bytes).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
        self.logger.gif(tag, gif, step)
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

/// The built-in environment `config.env` as an [`EnvFactory`]-compatible closure.
pub fn registry_factory(config: &Config) -> impl Fn() -> Result<Box<dyn Env>, EnvError> + '_ {
    move || rlpg_envs::make(&config.env)
}

/// Trains `config` on environments from `factory` (the built-in `config.env` when `None`),
/// writing `{out_root}/{env}__{agent}__{seed}__{time}/` with the resolved config, TensorBoard
/// event files, checkpoints and a summary. No stop flag: see [`train_with`].
///
/// `config` must already be validated ([`Config::load`] does it); its spaces are checked here
/// against the environment the factory builds, so user environments get the same checks.
pub fn train(
    config: &Config,
    out_root: &Path,
    factory: Option<EnvFactory<'_>>,
    progress: bool,
) -> Result<TrainedRun, RunError> {
    let envs = factory.map_or(EnvSource::Builtin, EnvSource::Factory);
    let options = TrainOptions { envs, progress, ..TrainOptions::default() };
    match train_with(config, out_root, options)? {
        RunOutcome::Finished(run) => Ok(run),
        // Without a stop flag nothing can interrupt the run.
        RunOutcome::Interrupted { run_dir, step } => Err(RunError::File {
            path: run_dir.path().to_owned(),
            message: format!("internal error: interrupted at step {step} without a stop request"),
        }),
    }
}

/// [`train`] with a stop flag, a registry and the other [`TrainOptions`].
pub fn train_with(
    config: &Config,
    out_root: &Path,
    options: TrainOptions<'_>,
) -> Result<RunOutcome, RunError> {
    let envs = Envs::resolve(options.envs, config)?;
    let make = || envs.make();
    let factory: EnvFactory<'_> = &make;
    let mut probe = factory()?;
    config.validate_against(probe.observation_space(), probe.action_space())?;
    check_renders(config, probe.as_mut())?;
    seed_torch(config);
    let mut agent = build_agent(config, probe.observation_space(), probe.action_space())?;
    let spaces = EnvSpaces::new(probe.observation_space(), probe.action_space());
    drop(probe);

    let run_dir = RunDir::create_with_config_labelled(out_root, config, options.label)?;
    let lock = match RunLock::acquire(run_dir.path()) {
        Ok(lock) => lock,
        Err(e) => {
            let _ = run_dir.discard();
            return Err(e);
        }
    };
    let logger = match TbLogger::create(run_dir.path()) {
        Ok(logger) => logger,
        Err(e) => {
            let path = run_dir.path().to_owned();
            // Nothing was trained yet: leave no empty run directory behind.
            let _ = run_dir.discard();
            return Err(RunError::File { path, message: format!("cannot create event file: {e}") });
        }
    };
    let session = Session { run_dir, logger, start: None, spaces };
    let outcome = run_session(config, session, agent.as_mut(), factory, options);
    drop(lock);
    outcome
}

/// Continues the run in `run_dir` from its newest loadable checkpoint, in the same directory and
/// the same TensorBoard curves: event records after the checkpoint's step are removed first (see
/// [`trim_event_files`]), then a new event file continues them. With libtorch on one thread, a
/// run stopped and resumed ends with the same parameters as a run never stopped.
///
/// A run with no checkpoint at all (killed during its first moments) starts again from step 0
/// with a warning; a run whose checkpoints are all damaged, or that already finished, is an
/// error. `options.envs` must build the same environments as the run's. The run's config is read
/// without looking its environment up; an environment that the source does not have is
/// [`RunError::NotRegistered`].
pub fn resume(run_dir: &Path, options: TrainOptions<'_>) -> Result<RunOutcome, RunError> {
    resume_with(run_dir, &[], options)
}

/// Settings that [`resume_with`] may change: none of them changes what the agent learns from
/// the steps it takes, so a run extended from N to M steps ends with the same parameters as a
/// run trained for M steps at once (bit for bit with libtorch on one thread; nothing in the
/// agents or the loop depends on `total_timesteps`). `torch_threads` is here because it changes
/// speed, not the algorithm, but with more than one thread runs are not bit-reproducible
/// anyway; `device` likewise (a run checkpointed on one device continues on another, with
/// the other device's floating-point rounding). Everything else (env, agent, seed, num_envs, normalize_obs, every agent setting,
/// learning rates included) would make the continued run a different experiment from its
/// first part, and is refused.
pub const RESUME_CHANGEABLE: &[&str] = &[
    "total_timesteps",
    "eval_every",
    "eval_episodes",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "checkpoint_replay_buffer",
    "torch_threads",
    "device",
];

/// File in a run directory where every change of settings made on resuming is appended, one
/// JSON object per line: `{"step": …, "unix_time": …, "rlpg": …, "changes": {key: {"from": …,
/// "to": …}}}`.
pub const CHANGES_FILE: &str = "changes.jsonl";

/// [`resume`] with `changes` to the run's settings (`--set` overrides), e.g. a larger
/// `total_timesteps` to extend a finished run. Only the keys of [`RESUME_CHANGEABLE`] may change;
/// any other is [`RunError::Usage`] naming it. A new `total_timesteps` must be above the steps
/// the run has done. The run's `config.toml` is replaced atomically with the new settings and the
/// change is appended to [`CHANGES_FILE`]; training continues in the same directory and curves.
///
/// A finished run's last evaluation (at its old end) counts as the periodic evaluation due at
/// that step, so when `eval_every` divides the old budget the extended run's evaluations and
/// curves are those of a run trained to the new budget at once; otherwise it has one more
/// evaluation, at the old end. The parameters are the same either way.
pub fn resume_with(
    run_dir: &Path,
    changes: &[Override],
    mut options: TrainOptions<'_>,
) -> Result<RunOutcome, RunError> {
    let run = RunDir::open(run_dir)?;
    let old_config = load_run_config(&run)?;
    // Before touching anything: another process may still be training this run.
    let lock = RunLock::acquire(run.path())?;
    let config = apply_changes(&run, &old_config, changes)?;
    let envs = Envs::resolve(options.envs, &config)?;
    let make = || envs.make();
    let factory: EnvFactory<'_> = &make;
    let mut probe = factory()?;
    config.validate_against(probe.observation_space(), probe.action_space())?;
    check_renders(&config, probe.as_mut())?;
    seed_torch(&config);
    let mut agent = build_agent(&config, probe.observation_space(), probe.action_space())?;
    let spaces = EnvSpaces::new(probe.observation_space(), probe.action_space());
    drop(probe);

    let file_err = |path: &Path, e: std::io::Error| RunError::File {
        path: path.to_owned(),
        message: e.to_string(),
    };
    remove_stale_temp_files(run.path())
        .map_err(|e| file_err(&checkpoint::checkpoint_dir(run.path()), e))?;
    let start = match latest_loadable(run.path())? {
        None => {
            warn(&mut options, "no checkpoint in this run yet: training starts again from step 0");
            trim_event_files(run.path(), 0).map_err(|e| file_err(run.path(), e))?;
            None
        }
        Some((path, checkpoint, skipped)) => {
            for e in skipped {
                warn(&mut options, &format!("skipping {e}"));
            }
            let meta = &checkpoint.meta;
            let finished = meta.loop_state.finished;
            if finished && changes.is_empty() {
                return Err(RunError::Complete {
                    run_dir: run.path().to_owned(),
                    steps: meta.step,
                });
            }
            if config.total_timesteps < meta.step
                || (finished && config.total_timesteps == meta.step)
            {
                return Err(RunError::Usage(format!(
                    "--set total_timesteps={}: the run in {} has done {} steps already; give a \
                     larger budget",
                    config.total_timesteps,
                    run.path().display(),
                    meta.step
                )));
            }
            let saved = checkpoint.config(&path)?;
            // The checkpoint may predate a change of the changeable settings (an extension
            // stopped before its first new checkpoint): compare the rest.
            if with_changeable_from(&saved, &config)? != config {
                return Err(RunError::Checkpoint(CheckpointError::Corrupt {
                    path,
                    what: format!(
                        "it was written with a config other than {}",
                        run.config_path().display()
                    ),
                }));
            }
            checkpoint.restore_agent(agent.as_mut(), &path)?;
            agent.load_training_state(&checkpoint.training)?;
            if !meta.replay_buffer && config.agent == AgentKind::Pathwise {
                warn(
                    &mut options,
                    "the checkpoint has no replay buffer (checkpoint_replay_buffer = false): it \
                     refills from now on, so the run does not continue exactly",
                );
            }
            trim_event_files(run.path(), meta.step).map_err(|e| file_err(run.path(), e))?;
            let mut checkpoint = checkpoint;
            continue_schedules(&mut checkpoint.meta.loop_state, &saved, &config);
            Some(checkpoint)
        }
    };
    if config != old_config {
        record_changes(&run, &old_config, &config, start.as_ref().map_or(0, |c| c.meta.step))?;
    }
    let logger = TbLogger::create(run.path()).map_err(|e| RunError::File {
        path: run.path().to_owned(),
        message: format!("cannot create event file: {e}"),
    })?;
    let session = Session { run_dir: run, logger, start, spaces };
    let outcome = run_session(&config, session, agent.as_mut(), factory, options);
    drop(lock);
    outcome
}

/// `old` with `changes` applied; a change of a key outside [`RESUME_CHANGEABLE`] is an error.
fn apply_changes(run: &RunDir, old: &Config, changes: &[Override]) -> Result<Config, RunError> {
    if changes.is_empty() {
        return Ok(old.clone());
    }
    let text = old.to_toml_string()?;
    let name = run.config_path().display().to_string();
    let new = Config::from_toml_str(&text, &name, changes)?;
    let refused: Vec<String> = changed_keys(old, &new)?
        .into_iter()
        .map(|(key, _, _)| key)
        .filter(|key| !RESUME_CHANGEABLE.contains(&key.as_str()))
        .collect();
    if let Some(key) = refused.first() {
        return Err(RunError::Usage(format!(
            "--set {key}: `{key}` cannot change when resuming a run (the continued run would be \
             a different experiment from its first part); a resumed run may change only {}",
            RESUME_CHANGEABLE.join(", ")
        )));
    }
    Ok(new)
}

/// `saved` with the [`RESUME_CHANGEABLE`] settings taken from `current`.
fn with_changeable_from(saved: &Config, current: &Config) -> Result<Config, RunError> {
    let mut out = saved.clone();
    out.total_timesteps = current.total_timesteps;
    out.eval_every = current.eval_every;
    out.eval_episodes = current.eval_episodes;
    out.checkpoint_every = current.checkpoint_every;
    out.keep_checkpoints = current.keep_checkpoints;
    out.log_every = current.log_every;
    out.checkpoint_replay_buffer = current.checkpoint_replay_buffer;
    out.torch_threads = current.torch_threads;
    out.device = current.device;
    // Keep this function and the list in step: a key in the list must be copied above.
    let missed: Vec<String> = changed_keys(&out, current)?
        .into_iter()
        .map(|(key, _, _)| key)
        .filter(|key| RESUME_CHANGEABLE.contains(&key.as_str()))
        .collect();
    debug_assert!(missed.is_empty(), "RESUME_CHANGEABLE keys not copied: {missed:?}");
    Ok(out)
}

/// The leaf keys (dotted paths) whose values differ between `a` and `b`, with both values.
fn changed_keys(
    a: &Config,
    b: &Config,
) -> Result<Vec<(String, serde_json::Value, serde_json::Value)>, RunError> {
    fn flatten(
        value: &serde_json::Value,
        prefix: &str,
        out: &mut Vec<(String, serde_json::Value)>,
    ) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let path =
                        if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    flatten(value, &path, out);
                }
            }
            leaf => out.push((prefix.to_owned(), leaf.clone())),
        }
    }
    let json = |c: &Config| {
        serde_json::to_value(c)
            .map_err(|e| RunError::Output { what: "config as JSON", message: e.to_string() })
    };
    let (mut left, mut right) = (Vec::new(), Vec::new());
    flatten(&json(a)?, "", &mut left);
    flatten(&json(b)?, "", &mut right);
    Ok(left
        .into_iter()
        .zip(right)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((key, x), (_, y))| (key, x, y))
        .collect())
}

/// Moves the loop's next evaluation, log point and checkpoint past `state.global_step` where the
/// schedule changed or the point was due at a finished run's end (where the run's final
/// evaluation and checkpoint already took its place).
fn continue_schedules(state: &mut crate::trainer::LoopState, saved: &Config, config: &Config) {
    let step = state.global_step;
    let next_after = |every: u64| match every {
        0 => u64::MAX,
        every => (step / every + 1).saturating_mul(every),
    };
    if config.eval_every != saved.eval_every || state.next_eval <= step {
        state.next_eval = next_after(config.eval_every);
    }
    if config.checkpoint_every != saved.checkpoint_every || state.next_checkpoint <= step {
        state.next_checkpoint = next_after(config.checkpoint_every);
    }
    if config.log_every != saved.log_every {
        state.next_log = next_after(config.log_every.max(1));
    }
    state.finished = false;
}

/// Writes the changed settings as the run's `config.toml` (atomically) and appends the change
/// to [`CHANGES_FILE`].
fn record_changes(run: &RunDir, old: &Config, new: &Config, step: u64) -> Result<(), RunError> {
    use std::io::Write;
    let changes: serde_json::Map<String, serde_json::Value> = changed_keys(old, new)?
        .into_iter()
        .map(|(key, from, to)| (key, serde_json::json!({ "from": from, "to": to })))
        .collect();
    run.write_config(new)?;
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let line = serde_json::json!({
        "step": step,
        "unix_time": unix_time,
        "rlpg": env!("CARGO_PKG_VERSION"),
        "changes": changes,
    });
    let path = run.path().join(CHANGES_FILE);
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    appended.map_err(|e| RunError::File { path, message: e.to_string() })
}

fn warn(options: &mut TrainOptions<'_>, message: &str) {
    match &mut options.warn {
        Some(warn) => warn(message),
        None => eprintln!("rlpg: warning: {message}"),
    }
}

/// The resolved config of a run directory.
fn load_run_config(run: &RunDir) -> Result<Config, RunError> {
    let path = run.config_path();
    if !path.is_file() {
        return Err(RunError::Usage(format!(
            "{}: missing: this is not an rlpg run directory (or its setup was interrupted)",
            path.display()
        )));
    }
    Ok(Config::load_run_file(&path)?)
}

/// Where a training session writes, and what it starts from.
struct Session {
    run_dir: RunDir,
    logger: TbLogger,
    /// The checkpoint it resumes, if any.
    start: Option<Checkpoint>,
    /// The environment's spaces, recorded in every checkpoint.
    spaces: EnvSpaces,
}

/// Trains in `session.run_dir` from the start or from `session.start`, checkpointing into it.
fn run_session(
    config: &Config,
    session: Session,
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    mut options: TrainOptions<'_>,
) -> Result<RunOutcome, RunError> {
    let Session { run_dir, mut logger, start, spaces } = session;
    let mut saver = RunCheckpoints::new(run_dir.path(), config)?.with_spaces(spaces);
    let fresh = start.is_none();
    let mut settings = loop_settings(config, options.progress);
    settings.record_target = options.target;
    let mut print_warning = |message: &str| eprintln!("rlpg: warning: {message}");
    let warn: &mut dyn FnMut(&str) = match options.warn.take() {
        Some(warn) => warn,
        None => &mut print_warning,
    };
    let control = LoopControl {
        saver: Some(&mut saver),
        stop: options.stop,
        resume: start.map(|c| ResumePoint { state: c.meta.loop_state, envs: c.meta.envs }),
        warn: Some(warn),
    };
    let header = if fresh {
        // The resolved config (Text dashboard) and the HParams session start, once per run.
        logger
            .text("config", &config_markdown(config), 0)
            .and_then(|()| logger.hparams_start(&config_hparams(config)))
    } else {
        Ok(())
    };
    header.map_err(|e| RunError::File {
        path: logger.path().to_owned(),
        message: format!("cannot write the config summary: {e}"),
    })?;
    let mut sink = RunSink { logger: &mut logger, run_dir: run_dir.path() };
    let outcome = train_loop_with(agent, factory, &settings, &mut sink, control);
    // Whatever happened, what was logged so far belongs on disk.
    let flushed = logger.flush();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(source) => {
            let checkpoint = newest_checkpoint(run_dir.path());
            return Err(RunError::Stopped {
                source: Box::new(source),
                run_dir: run_dir.path().to_owned(),
                checkpoint,
            });
        }
    };
    flushed.map_err(|e| RunError::File {
        path: logger.path().to_owned(),
        message: format!("cannot flush the event file: {e}"),
    })?;
    match outcome {
        LoopOutcome::Stopped { step } => Ok(RunOutcome::Interrupted { run_dir, step }),
        LoopOutcome::Finished(summary) => {
            logger.hparams_end(true, summary.steps).and_then(|()| logger.flush()).map_err(|e| {
                RunError::File {
                    path: logger.path().to_owned(),
                    message: format!("cannot write the HParams session end: {e}"),
                }
            })?;
            write_summary(&run_dir, &summary)?;
            Ok(RunOutcome::Finished(TrainedRun { run_dir, summary }))
        }
    }
}

/// The newest step checkpoint of a run, for error messages.
fn newest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    step_checkpoints(run_dir).ok().and_then(|c| c.last().map(|(_, p)| p.clone()))
}

fn write_summary(run_dir: &RunDir, summary: &TrainSummary) -> Result<(), RunError> {
    let path = run_dir.path().join(SUMMARY_FILE);
    let file_err = |e: String| RunError::File { path: path.clone(), message: e };
    let json = serde_json::json!({
        "steps": summary.steps,
        "episodes": summary.episodes,
        "recent_mean_return": summary.recent_mean_return,
        "final_eval_mean_return": summary.final_eval.mean_return,
        "final_eval_std_return": summary.final_eval.std_return,
        "steps_per_second": summary.steps_per_second,
        "evals": summary.evals,
        "reached_target": summary.reached_target.map(|(steps, seconds)| {
            serde_json::json!({ "steps": steps, "seconds": seconds })
        }),
    });
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| file_err(e.to_string()))?;
    atomic_write(&path, &bytes).map_err(|e| file_err(e.to_string()))
}

/// The checkpoint [`evaluate_run`] uses: the best one if the run has one, else the newest.
pub fn default_eval_checkpoint(run_dir: &Path) -> Result<PathBuf, RunError> {
    if let Some(best) = best_checkpoint(run_dir) {
        return Ok(best);
    }
    let steps = step_checkpoints(run_dir).map_err(|e| RunError::File {
        path: checkpoint::checkpoint_dir(run_dir),
        message: e.to_string(),
    })?;
    match steps.last() {
        Some((_, path)) => Ok(path.clone()),
        None => Err(CheckpointError::NotFound { dir: checkpoint::checkpoint_dir(run_dir) }.into()),
    }
}

/// The checkpoint `which` names in `run_dir`: `best`, `latest` (the newest step checkpoint), or
/// a file, as a path or as a name inside the run's `checkpoints/` folder.
pub fn resolve_checkpoint(run_dir: &Path, which: &str) -> Result<PathBuf, RunError> {
    let dir = checkpoint::checkpoint_dir(run_dir);
    let not_found = || RunError::from(CheckpointError::NotFound { dir: dir.clone() });
    match which {
        "best" => best_checkpoint(run_dir).ok_or_else(|| {
            RunError::Usage(format!(
                "{}: no best checkpoint (the run has not evaluated yet)",
                dir.join(checkpoint::BEST_CHECKPOINT).display()
            ))
        }),
        "latest" => {
            let steps = step_checkpoints(run_dir)
                .map_err(|e| RunError::File { path: dir.clone(), message: e.to_string() })?;
            steps.last().map(|(_, p)| p.clone()).ok_or_else(not_found)
        }
        file => {
            let path = PathBuf::from(file);
            if path.is_file() {
                return Ok(path);
            }
            let inside = dir.join(file);
            if inside.is_file() {
                return Ok(inside);
            }
            Err(RunError::Usage(format!(
                "{}: no such checkpoint (nor in {})",
                path.display(),
                dir.display()
            )))
        }
    }
}

/// Loads the run's best checkpoint (the newest when no evaluation was saved as best) and runs
/// `episodes` deterministic episodes, env `i` reset with `seed + i`, on environments from
/// `envs` (an unregistered environment is [`RunError::NotRegistered`]).
pub fn evaluate_run(
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    envs: EnvSource<'_>,
) -> Result<EvalResult, RunError> {
    let run = RunDir::open(run_dir)?;
    load_run_config(&run)?;
    let path = default_eval_checkpoint(run.path())?;
    evaluate_checkpoint(&path, episodes, seed, envs)
}

/// Loads the checkpoint at `path` and evaluates it as [`evaluate_run`] does. Its config comes
/// from the checkpoint itself.
pub fn evaluate_checkpoint(
    path: &Path,
    episodes: usize,
    seed: u64,
    envs: EnvSource<'_>,
) -> Result<EvalResult, RunError> {
    let checkpoint = Checkpoint::read(path)?;
    let config = checkpoint.config(path)?;
    let envs = Envs::resolve(envs, &config)?;
    let make = || envs.make();
    let factory: EnvFactory<'_> = &make;
    let probe = factory()?;
    seed_torch(&config);
    let (obs_space, action_space) = (probe.observation_space(), probe.action_space());
    let mut agent = build_agent_on(&config, obs_space, action_space, tch::Device::Cpu)?;
    drop(probe);
    checkpoint.restore_agent(agent.as_mut(), path)?;
    let rms = if config.normalize_obs { checkpoint.meta.envs.obs_rms().cloned() } else { None };
    if config.normalize_obs && rms.is_none() {
        return Err(RunError::Checkpoint(CheckpointError::Corrupt {
            path: path.to_owned(),
            what: "normalize_obs is on but it holds no observation statistics".to_owned(),
        }));
    }
    Ok(evaluate(agent.as_mut(), factory, episodes, seed, rms.as_ref().map(|r| (r, OBS_CLIP)))?)
}
