//! A new run: from a resolved [`Config`] to a run directory with TensorBoard curves,
//! checkpoints and a summary; and the training session that resuming shares.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rlpg_agents::Agent;
use rlpg_envs::{Env, EnvError};

use super::{EnvSource, Envs, RunError, RunLock, build_agent, seed_torch};
use crate::checkpoint::{Checkpoint, EnvSpaces, RunCheckpoints, step_checkpoints};
use crate::config::{Config, ConfigError};
use crate::rundir::{RunDir, atomic_write};
use crate::runs::FAILURE_FILE;
use crate::tensorboard::{TbLogger, config_hparams, config_markdown};
use crate::trainer::{
    EnvFactory, LoopControl, LoopOutcome, LoopSettings, ResumePoint, ScalarSink, Target,
    TrainError, TrainSummary, train_loop_with,
};
use crate::video::EncodedGif;

/// File name of the run summary (JSON) inside a run directory, written when training finishes.
pub const SUMMARY_FILE: &str = "summary.json";

/// A finished training run.
#[derive(Debug)]
pub struct TrainedRun {
    /// Its directory.
    pub run_dir: RunDir,
    /// What the training loop reported.
    pub summary: TrainSummary,
}

/// How [`train_with`] or [`resume`](super::resume) ended without an error.
#[derive(Debug)]
// Made once per run: the size of the finished variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
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

/// The loop settings of `config`.
pub fn loop_settings(config: &Config, progress: bool) -> LoopSettings {
    LoopSettings {
        seed: config.seed,
        total_timesteps: config.total_timesteps,
        num_envs: config.num_envs,
        stepping: config.stepping(),
        async_batch: config.async_batch,
        act_beside_learning: config.act_beside_learning,
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
        // Checked by `Config::validate`, so every entry parses.
        info_keywords: config
            .info_keywords()
            .map(|keywords| keywords.into_iter().map(|k| k.name).collect())
            .unwrap_or_default(),
    }
}

/// One env of the run, made to check the config against it before anything is written. When
/// `env_threads` may step the envs on several threads, or `act_beside_learning` on a thread of
/// their own, it is made as the training envs will be, as a `Send` env, so that envs which
/// cannot be (not `Send`, or for threads running Python code) are refused here, naming the key,
/// rather than after the run directory exists.
pub(crate) fn probe_env(
    config: &Config,
    factory: EnvFactory<'_>,
) -> Result<Box<dyn Env>, RunError> {
    let probe = factory.make()?;
    let threads = config.env_threads.resolve(config.num_envs) > 1;
    // Acting beside learning steps the envs on a thread of their own (worker processes' envs
    // are stand-ins, `Send` anyway).
    let beside = config.act_beside_learning && config.env_workers == 0;
    if !threads && !beside {
        return Ok(probe);
    }
    drop(probe);
    let refused = |key: &'static str| {
        move |e: EnvError| {
            RunError::Config(ConfigError::Invalid {
                location: None,
                key: key.to_owned(),
                message: e.to_string(),
            })
        }
    };
    let key = if threads { "env_threads" } else { "act_beside_learning" };
    let probe = factory.make_send().map_err(refused(key))?;
    if threads {
        rlpg_envs::check_threadable(&*probe, true, config.env_threads)
            .map_err(refused("env_threads"))?;
    }
    Ok(probe)
}

/// With `capture_video_every > 0` the environment must render; checked on the probe env before
/// the run directory exists, so a run never fails at its first video.
pub(super) fn check_renders(config: &Config, probe: &mut dyn Env) -> Result<(), RunError> {
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
    let factory: EnvFactory<'_> = &envs;
    let mut probe = probe_env(config, factory)?;
    config.validate_against_env(&*probe)?;
    check_renders(config, probe.as_mut())?;
    seed_torch(config);
    let mut agent = build_agent(config, probe.observation_space(), probe.action_space())?;
    let spaces = EnvSpaces::new(probe.observation_space(), probe.action_space())
        .masked(probe.masks_actions());
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

pub(super) fn warn(options: &mut TrainOptions<'_>, message: &str) {
    match &mut options.warn {
        Some(warn) => warn(message),
        None => eprintln!("rlpg: warning: {message}"),
    }
}

/// Where a training session writes, and what it starts from.
pub(super) struct Session {
    pub(super) run_dir: RunDir,
    pub(super) logger: TbLogger,
    /// The checkpoint it resumes, if any.
    pub(super) start: Option<Checkpoint>,
    /// The environment's spaces, recorded in every checkpoint.
    pub(super) spaces: EnvSpaces,
}

/// Trains in `session.run_dir` from the start or from `session.start`, checkpointing into it.
pub(super) fn run_session(
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
        warn: Some(&mut *warn),
    };
    let header = if fresh {
        // The resolved config (Text dashboard) and the HParams session start, once per run.
        let hparams = config_hparams(config, agent.backend());
        logger
            .text("config", &config_markdown(&hparams), 0)
            .and_then(|()| logger.hparams_start(&hparams))
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
            if !source.resuming_can_work() {
                // The error is what the user must see; a failure to record it is secondary.
                if let Err(e) = write_failure(run_dir.path(), &source) {
                    warn(&format!("cannot mark the run failed: {e}"));
                }
            }
            let checkpoint = newest_checkpoint(run_dir.path());
            return Err(RunError::Stopped {
                source: Box::new(source),
                run_dir: run_dir.path().to_owned(),
                checkpoint,
                env: config.env.clone(),
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

/// Marks the run in `run_dir` failed with `error` ([`FAILURE_FILE`]), for `rlpg runs`.
fn write_failure(run_dir: &Path, error: &TrainError) -> Result<(), RunError> {
    let path = run_dir.join(FAILURE_FILE);
    let json = serde_json::json!({ "error": error.to_string() });
    let bytes = serde_json::to_vec_pretty(&json)
        .map_err(|e| RunError::File { path: path.clone(), message: e.to_string() })?;
    atomic_write(&path, &bytes).map_err(|e| RunError::File { path, message: e.to_string() })
}

fn write_summary(run_dir: &RunDir, summary: &TrainSummary) -> Result<(), RunError> {
    let path = run_dir.path().join(SUMMARY_FILE);
    let file_err = |e: String| RunError::File { path: path.clone(), message: e };
    let json = serde_json::json!({
        "steps": summary.steps,
        "episodes": summary.episodes,
        "recent_mean_return": summary.recent_mean_return,
        "recent_infos": summary.recent_infos,
        "final_eval_mean_return": summary.final_eval.mean_return,
        "final_eval_infos": summary.final_eval.infos,
        "final_eval_std_return": summary.final_eval.std_return,
        "steps_per_second": summary.steps_per_second,
        "env_threads": summary.env_threads,
        "env_workers": summary.env_workers,
        "async_batch": summary.async_batch,
        "act_beside_learning": summary.act_beside_learning,
        "backend": summary.backend.name(),
        "phase_seconds": summary.phase_seconds,
        "evals": summary.evals,
        "reached_target": summary.reached_target.map(|(steps, seconds)| {
            serde_json::json!({ "steps": steps, "seconds": seconds })
        }),
    });
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| file_err(e.to_string()))?;
    atomic_write(&path, &bytes).map_err(|e| file_err(e.to_string()))
}
