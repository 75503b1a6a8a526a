//! `rlpg eval`: a run's checkpoint evaluated with deterministic episodes, optionally
//! recorded as a video.

use std::path::{Path, PathBuf};

use rlpg_envs::Registry;

use super::{Program, video};
use crate::checkpoint::read_meta;
use crate::run::{
    EnvSource, RunError, default_eval_checkpoint, evaluate_checkpoint, resolve_checkpoint,
};

/// The arguments of `rlpg eval`.
#[derive(clap::Args)]
pub(super) struct EvalArgs {
    /// The run directory printed by `rlpg train`.
    run_dir: PathBuf,
    /// Which checkpoint: `best`, `latest`, or a file (a path, or a name in
    /// RUN_DIR/checkpoints). Default: best if the run has one, else latest.
    #[arg(long, value_name = "WHICH")]
    checkpoint: Option<String>,
    /// Number of episodes (one per environment instance).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    episodes: u64,
    /// Environment `i` is reset with seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print `{"mean_return", "std_return", "episodes", "returns", "checkpoint", "step",
    /// "training_eval_return"}` instead of text (`returns`: every episode's return;
    /// `training_eval_return`: the evaluation saved with the checkpoint, if any).
    #[arg(long)]
    json: bool,
    /// Also render the episodes into this animated GIF (30 fps, frames halved).
    #[arg(long, value_name = "FILE.gif")]
    video: Option<PathBuf>,
    /// Also write the last frame of the first episode, full size, to this PNG.
    #[arg(long, value_name = "FILE.png")]
    frame: Option<PathBuf>,
}

/// Runs `rlpg eval`: the checkpoint's name and step on stderr, the result on stdout.
pub(super) fn eval(args: EvalArgs, registry: &Registry, program: &Program) -> Result<(), RunError> {
    let envs = EnvSource::Registry(registry);
    let EvalArgs { run_dir, checkpoint, episodes, seed, json, video, frame } = args;
    if video.is_some() || frame.is_some() {
        let request = video::VideoRequest {
            run_dir: &run_dir,
            checkpoint: checkpoint.as_deref(),
            episodes: episodes as usize,
            seed,
            video,
            frame,
        };
        video::record(&request, envs)?;
    }
    let path = match checkpoint {
        Some(which) => resolve_checkpoint(&run_dir, &which)?,
        None => eval_checkpoint_of(&run_dir)?,
    };
    let meta = read_meta(&path)?;
    let step = meta.step;
    // Training's own evaluation of this checkpoint (what `rlpg runs` lists as best_eval)
    // used the run's eval_episodes and evaluation seeds: say so, so that a different
    // number here is explained.
    let scored = meta.eval_return.map_or_else(String::new, |r| {
        format!("; training's evaluation at that step gave {r:.2}, on other seeds")
    });
    eprintln!("{}: evaluating {} (step {step}{scored})", program.name, path.display());
    let result = evaluate_checkpoint(&path, episodes as usize, seed, envs)?;
    if json {
        let out = serde_json::json!({
            "mean_return": result.mean_return,
            "std_return": result.std_return,
            "episodes": result.returns.len(),
            "returns": result.returns,
            "infos": result.infos,
            "checkpoint": path,
            "step": step,
            "training_eval_return": meta.eval_return,
        });
        println!("{out}");
    } else {
        let infos: String =
            result.infos.iter().map(|(name, v)| format!(", {name} {v:.2}")).collect();
        println!(
            "mean return {:.2} ± {:.2} over {} episodes{infos}",
            result.mean_return,
            result.std_return,
            result.returns.len()
        );
    }
    Ok(())
}

/// The checkpoint `rlpg eval RUN_DIR` evaluates (as [`evaluate_run`] chooses it), after checking
/// that `run_dir` is a run.
fn eval_checkpoint_of(run_dir: &Path) -> Result<PathBuf, RunError> {
    let run = crate::RunDir::open(run_dir)?;
    if !run.config_path().is_file() {
        return Err(RunError::Usage(format!(
            "{}: missing: this is not an rlpg run directory (or its setup was interrupted)",
            run.config_path().display()
        )));
    }
    default_eval_checkpoint(run.path())
}
