//! `rlpg train`: a new run from a config file or `--set` alone, or `--resume` of a run, with
//! Ctrl-C and SIGTERM stopping it at a checkpoint.

use std::path::PathBuf;

use rlpg_envs::Registry;

use super::signals::StopSignals;
use super::{Program, presets, target_of, to_json};
use crate::run::{EnvSource, RunError, RunOutcome, TrainOptions, resume_with, train_with};
use crate::{Config, Override};

/// The arguments of `rlpg train`.
#[derive(clap::Args)]
pub(super) struct TrainArgs {
    /// The config file, e.g. configs/reinforce_cartpole.toml. Without one, --set must name
    /// `env` and `agent`; the built-in preset for that pair (configs/AGENT_ENV.toml) is the
    /// base where one exists, else every default.
    config: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint, in the same
    /// directory and TensorBoard curves. With --set it may change total_timesteps (to
    /// extend a finished run), eval_every, eval_episodes, checkpoint_every,
    /// keep_checkpoints, log_every, checkpoint_replay_buffer, torch_threads, device and
    /// env_threads, nothing else. Takes no config, --seed or --out.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "seed", "out"])]
    resume: Option<PathBuf>,
    /// Seed of every random number generator (overrides the config's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Override a config key, e.g. `--set total_timesteps=20000` or
    /// `--set reinforce.learning_rate=3e-4`. Repeatable; later ones win.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
    /// Folder that receives the run directory [default: runs].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not draw the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Print one JSON object (run directory, steps, episodes, final evaluation, steps/s;
    /// `{"run_dir", "stopped_at_step"}` when stopped by a signal) as the last line of stdout
    /// instead of the text summary and directory.
    #[arg(long)]
    json: bool,
    /// Add LABEL to the run directory's name after the agent:
    /// `{env}__{agent}-{label}__{seed}__{time}` (letters, digits, `-`, `_`, `.`).
    #[arg(long, value_name = "LABEL", conflicts_with = "resume")]
    label: Option<String>,
    /// Record when the mean return of the last 100 training episodes first reaches this
    /// (step and training seconds, in summary.json and --json); training goes on.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "target_eval")]
    target_recent: Option<f64>,
    /// Record when a deterministic evaluation first reaches this; training goes on.
    #[arg(long, allow_hyphen_values = true)]
    target_eval: Option<f64>,
}

/// Runs `rlpg train`; the exit code is 130 / 143 when a signal stopped training.
pub(super) fn train(
    args: TrainArgs,
    registry: &Registry,
    program: &Program,
) -> Result<u8, RunError> {
    let envs = EnvSource::Registry(registry);
    let TrainArgs {
        config,
        resume: resume_dir,
        seed,
        mut set,
        out,
        quiet,
        json,
        label,
        target_recent,
        target_eval,
    } = args;
    if let Some(label) = &label {
        check_label(label)?;
    }
    let signals = StopSignals::install()?;
    // Warnings carry the running program's name, as every other message does.
    let mut warn = |message: &str| eprintln!("{}: warning: {message}", program.name);
    let options = TrainOptions {
        envs,
        progress: !quiet,
        stop: Some(&signals.stop),
        warn: Some(&mut warn),
        label: label.as_deref(),
        target: target_of(target_recent, target_eval),
    };
    let outcome = match (resume_dir, config) {
        (Some(dir), _) => {
            eprintln!("{}: resuming {}", program.name, dir.display());
            resume_with(&dir, &set, options)?
        }
        (None, Some(config)) => {
            if let Some(seed) = seed {
                set.push(Override::parse(&format!("seed={seed}"))?);
            }
            let config = Config::load_checked(&config, &set, registry)?;
            let out = out.unwrap_or_else(|| PathBuf::from("runs"));
            train_with(&config, &out, options)?
        }
        (None, None) => {
            if let Some(seed) = seed {
                set.push(Override::parse(&format!("seed={seed}"))?);
            }
            let (config, preset) = presets::config_without_file(&set, registry)?;
            match preset {
                Some(name) => eprintln!(
                    "{}: no config file: using the built-in preset configs/{name} with \
                     the --set overrides",
                    program.name
                ),
                None => eprintln!(
                    "{}: no config file and no preset for ({}, {}): using the defaults \
                     with the --set overrides",
                    program.name, config.agent, config.env
                ),
            }
            let out = out.unwrap_or_else(|| PathBuf::from("runs"));
            train_with(&config, &out, options)?
        }
    };
    match outcome {
        RunOutcome::Finished(trained) => print_trained(&trained, json)?,
        RunOutcome::Interrupted { run_dir, step } => {
            eprintln!(
                "{}: stopped at step {step}, checkpoint written; continue with `{}`",
                program.name,
                program.resume_command(run_dir.path())
            );
            if json {
                let out = serde_json::json!({
                    "run_dir": run_dir.path(),
                    "stopped_at_step": step,
                });
                println!("{}", to_json(&out, "training summary as JSON")?);
            } else {
                println!("{}", run_dir.path().display());
            }
            return Ok(signals.exit_code());
        }
    }
    Ok(0)
}

/// A run directory label: letters, digits, `-`, `_` and `.`, without `__` (the separator of the
/// name's fields).
fn check_label(label: &str) -> Result<(), RunError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if label.is_empty() || !label.chars().all(allowed) || label.contains("__") {
        return Err(RunError::Usage(format!(
            "--label {label:?}: a label is letters, digits, `-`, `_` and `.`, without `__`"
        )));
    }
    Ok(())
}

/// What `rlpg train` prints for a finished run: a summary line and the run directory, or (with
/// `--json`) one JSON object holding both.
fn print_trained(trained: &crate::run::TrainedRun, json: bool) -> Result<(), RunError> {
    let s = &trained.summary;
    if json {
        let out = serde_json::json!({
            "run_dir": trained.run_dir.path(),
            "steps": s.steps,
            "episodes": s.episodes,
            "recent_mean_return": s.recent_mean_return,
            "recent_infos": s.recent_infos,
            "final_eval_mean_return": s.final_eval.mean_return,
            "final_eval_infos": s.final_eval.infos,
            "final_eval_std_return": s.final_eval.std_return,
            "final_eval_returns": s.final_eval.returns,
            "best_eval": s.evals.iter().map(|(_, r)| *r).reduce(f64::max),
            "steps_per_second": s.steps_per_second,
            "steps_to_target": s.reached_target.map(|(steps, _)| steps),
            "seconds_to_target": s.reached_target.map(|(_, seconds)| seconds),
            "env_threads": s.env_threads,
            "env_workers": s.env_workers,
            "async_batch": s.async_batch,
            "act_beside_learning": s.act_beside_learning,
            "backend": s.backend.name(),
            "phase_seconds": s.phase_seconds,
        });
        println!("{}", to_json(&out, "training summary as JSON")?);
    } else {
        println!(
            "trained {} steps ({:.0} steps/s), {} episodes, final eval {:.1} ± {:.1}",
            s.steps,
            s.steps_per_second,
            s.episodes,
            s.final_eval.mean_return,
            s.final_eval.std_return
        );
        println!("{}", trained.run_dir.path().display());
    }
    Ok(())
}
