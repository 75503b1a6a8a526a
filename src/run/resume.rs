//! Continuing a run from its newest checkpoint, with or without changed settings.

use std::path::Path;

use super::train::{Session, check_renders, probe_env, run_session, warn};
use super::{Envs, RunError, RunLock, RunOutcome, TrainOptions, build_agent, seed_torch};
use crate::checkpoint::{
    self, CheckpointError, EnvSpaces, latest_loadable, remove_stale_temp_files,
};
use crate::config::{AgentKind, Config, Override};
use crate::rundir::RunDir;
use crate::tensorboard::{TbLogger, trim_event_files};
use crate::trainer::EnvFactory;

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
/// the other device's floating-point rounding). `env_threads` and `env_workers` change nothing but
/// speed: the environments give the same results bit for bit on any number of threads or
/// worker processes (and `env_worker_timeout` only how long a worker may take). The agents'
/// `backend` likewise: both backends compute the same update from the same checkpoint
/// (parameters and optimizer state), up to float rounding. Everything else (env, agent, seed, num_envs, normalize_obs, every agent setting,
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
    "env_threads",
    "env_workers",
    "env_worker_timeout",
    "reinforce.backend",
    "pathwise.backend",
    "info_keywords",
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
    let factory: EnvFactory<'_> = &envs;
    let mut probe = probe_env(&config, factory)?;
    config.validate_against_env(&*probe)?;
    check_renders(&config, probe.as_mut())?;
    seed_torch(&config);
    let mut agent = build_agent(&config, probe.observation_space(), probe.action_space())?;
    let spaces = EnvSpaces::new(probe.observation_space(), probe.action_space())
        .masked(probe.masks_actions());
    drop(probe);

    let file_err = |path: &Path, e: std::io::Error| RunError::File {
        path: path.to_owned(),
        message: e.to_string(),
    };
    remove_stale_temp_files(run.path())
        .map_err(|e| file_err(&checkpoint::checkpoint_dir(run.path()), e))?;
    // The run is under way again: a failure it recorded no longer describes it (a new one is
    // recorded if training stops on an error again).
    let failure = run.path().join(crate::runs::FAILURE_FILE);
    match std::fs::remove_file(&failure) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_err(&failure, e)),
        _ => {}
    }
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
    out.env_threads = current.env_threads;
    out.env_workers = current.env_workers;
    out.env_worker_timeout = current.env_worker_timeout;
    out.reinforce.backend = current.reinforce.backend;
    out.pathwise.backend = current.pathwise.backend;
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

/// The resolved config of a run directory.
pub(super) fn load_run_config(run: &RunDir) -> Result<Config, RunError> {
    let path = run.config_path();
    if !path.is_file() {
        return Err(RunError::Usage(format!(
            "{}: missing: this is not an rlpg run directory (or its setup was interrupted)",
            path.display()
        )));
    }
    Ok(Config::load_run_file(&path)?)
}
