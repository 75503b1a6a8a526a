//! The `rlpg` command line: parses arguments, resolves them into library calls, reports.
//!
//! Exit codes: 0 success, 1 a failure while running, 2 bad input (arguments or configuration).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rlpg::bench::{self, bench};
use rlpg::run::{RunError, evaluate_run, train};
use rlpg::trainer::Target;
use rlpg::{Config, Override};

/// Policy-gradient reinforcement learning on libtorch: score-function (REINFORCE) and pathwise
/// (reparameterization) agents.
#[derive(Parser)]
#[command(name = "rlpg", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an agent from a TOML config; prints the run directory as the last line of stdout.
    Train {
        /// The config file, e.g. configs/reinforce_cartpole.toml.
        config: PathBuf,
        /// Seed of every random number generator (overrides the config's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Override a config key, e.g. `--set total_timesteps=20000` or
        /// `--set reinforce.learning_rate=3e-4`. Repeatable; later ones win.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
        /// Folder that receives the run directory.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Do not draw the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Evaluate the policy saved in a run directory with deterministic episodes.
    Eval {
        /// The run directory printed by `rlpg train`.
        run_dir: PathBuf,
        /// Number of episodes (one per environment instance).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        episodes: u64,
        /// Environment `i` is reset with seed + i.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print `{"mean_return": …, "std_return": …, "episodes": …}` instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure training throughput and time to a return threshold over several seeds (nothing
    /// is written to disk). Exactly one of --target-recent and --target-eval.
    Bench {
        /// The config file, e.g. configs/reinforce_cartpole.toml.
        config: PathBuf,
        /// Override a config key (as for `train`). Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
        /// Seeds to run, comma separated.
        #[arg(long, value_delimiter = ',', default_values_t = [0u64, 1, 2, 3, 4])]
        seeds: Vec<u64>,
        /// Stop when the mean return of the last 100 training episodes reaches this.
        #[arg(
            long,
            allow_hyphen_values = true,
            conflicts_with = "target_eval",
            required_unless_present = "target_eval"
        )]
        target_recent: Option<f64>,
        /// Stop when a periodic deterministic evaluation (every `eval_every` steps) reaches this.
        #[arg(long, allow_hyphen_values = true)]
        target_eval: Option<f64>,
        /// Print JSON instead of a markdown table.
        #[arg(long)]
        json: bool,
    },
    /// List the registered environments with their spaces and time limits.
    Envs,
    /// Check that libtorch is linked and working: prints its version, threads and devices.
    Doctor,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rlpg: error: {e}");
            ExitCode::from(if e.is_usage_error() { 2 } else { 1 })
        }
    }
}

fn run(command: Command) -> Result<(), RunError> {
    match command {
        Command::Train { config, seed, mut set, out, quiet } => {
            if let Some(seed) = seed {
                set.push(Override::parse(&format!("seed={seed}"))?);
            }
            let config = Config::load(&config, &set)?;
            let trained = train(&config, &out, None, !quiet)?;
            let s = &trained.summary;
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
        Command::Eval { run_dir, episodes, seed, json } => {
            let result = evaluate_run(&run_dir, episodes as usize, seed, None)?;
            if json {
                let out = serde_json::json!({
                    "mean_return": result.mean_return,
                    "std_return": result.std_return,
                    "episodes": result.returns.len(),
                });
                println!("{out}");
            } else {
                println!(
                    "mean return {:.2} ± {:.2} over {} episodes",
                    result.mean_return,
                    result.std_return,
                    result.returns.len()
                );
            }
        }
        Command::Bench { config, set, seeds, target_recent, target_eval, json } => {
            let config = Config::load(&config, &set)?;
            let target = match (target_recent, target_eval) {
                (Some(t), _) => Target::RecentMean(t),
                (None, Some(t)) => Target::Eval(t),
                // clap requires one of the two.
                (None, None) => Target::RecentMean(f64::INFINITY),
            };
            let results = bench(&config, &seeds, target)?;
            if json {
                let out = serde_json::to_string_pretty(&results).map_err(|e| RunError::File {
                    path: "stdout".into(),
                    message: e.to_string(),
                })?;
                println!("{out}");
            } else {
                print!("{}", bench::to_markdown(&results, target));
            }
        }
        Command::Envs => {
            for spec in rlpg::envs::registry() {
                println!("{spec}");
            }
        }
        Command::Doctor => {
            let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
            let sum = t.sum(tch::Kind::Float).double_value(&[]);
            println!("libtorch: ok (sum of [1, 2, 3] = {sum})");
            println!("torch threads: {}", tch::get_num_threads());
            println!("cuda available: {}", tch::Cuda::is_available());
        }
    }
    Ok(())
}
