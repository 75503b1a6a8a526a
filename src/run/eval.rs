//! Which checkpoint of a run is evaluated, and its deterministic evaluation.

use std::path::{Path, PathBuf};

use super::resume::load_run_config;
use super::{EnvSource, Envs, RunError, build_agent_on, seed_torch};
use crate::checkpoint::{self, Checkpoint, CheckpointError, best_checkpoint, step_checkpoints};
use crate::rundir::RunDir;
use crate::trainer::{EnvFactory, EvalResult, OBS_CLIP, evaluate};

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
    let factory: EnvFactory<'_> = &envs;
    let probe = factory.make()?;
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
