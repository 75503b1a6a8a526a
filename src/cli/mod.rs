//! The `rlpg` command line as a library module: parses arguments, resolves them into library
//! calls, reports. The `rlpg` binary is [`main`]; a program with its own environments gets the
//! whole command line for them (TOML configs, `--set`, train, eval, resume, runs, bench, envs)
//! with [`main_with`]:
//!
//! ```no_run
//! # use rlpg::envs::Pendulum as GridReach;
//! use rlpg::envs::Registry;
//!
//! fn main() -> std::process::ExitCode {
//!     rlpg::cli::main_with(Registry::builtin().with("GridReach-v0", GridReach::new))
//! }
//! ```
//!
//! Exit codes: 0 success, 1 a failure while running, 2 bad input (arguments, configuration, a
//! rejected registry entry, an environment the registry does not have), 130 / 143 training
//! stopped by Ctrl-C / SIGTERM (after checkpointing; a second signal exits at once with the same
//! codes). Commands suggested in messages name the running program as it was invoked.

mod export;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::{Parser, Subcommand};
use rlpg_envs::Registry;

use crate::bench::{self, bench};
use crate::gradlab::{self, GradlabOptions, ProblemKind};
use crate::run::{
    EnvSource, RunError, RunOutcome, TrainOptions, evaluate_checkpoint, evaluate_run,
    resolve_checkpoint, resume, train_with,
};
use crate::trainer::Target;
use crate::{Config, Override};

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
    /// Train an agent from a TOML config, or continue a stopped run with --resume; prints the
    /// run directory as the last line of stdout. Ctrl-C or SIGTERM finish the current update,
    /// write a checkpoint and exit with 130 / 143; a second one exits at once.
    Train {
        /// The config file, e.g. configs/reinforce_cartpole.toml.
        #[arg(required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Continue the run in this directory from its newest checkpoint, in the same
        /// directory and TensorBoard curves (takes no config, --seed, --set or --out).
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "seed", "set", "out"])]
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
    },
    /// Evaluate a run's best checkpoint (its newest if none was the best) with deterministic
    /// episodes.
    Eval {
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
    /// List the runs in a folder: env, agent, seed, steps done, best evaluation return, and
    /// whether each is complete, resumable or broken.
    Runs {
        /// Folder holding the run directories.
        #[arg(long, default_value = "runs")]
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the registered environments with their spaces and time limits.
    Envs,
    /// Measure the score-function and pathwise gradient estimators against closed forms: bias,
    /// variance and cost on problems with known gradients (see docs/gradlab.md).
    Gradlab {
        /// Independent estimates per estimator (their spread gives the standard error).
        #[arg(long, default_value_t = 1000)]
        trials: usize,
        /// Samples averaged in one estimate.
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        /// Seed of libtorch's generator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Problems to run, comma separated.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = ProblemKind::ALL)]
        problems: Vec<ProblemKind>,
        /// Gumbel-softmax temperatures for the categorical problem, comma separated.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true,
              default_values_t = crate::gradlab::DEFAULT_TEMPERATURES)]
        temperatures: Vec<f64>,
        /// libtorch threads during the run.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print JSON instead of the markdown report.
        #[arg(long)]
        json: bool,
        /// Also draw the variances against sample count and temperature into this PNG file.
        #[arg(long, value_name = "FILE.png")]
        plot: Option<PathBuf>,
    },
    /// Check that libtorch is linked and working: prints its version, threads and devices.
    Doctor,
    /// Export a run's policy for deployment without libtorch: policy.json, policy.safetensors
    /// and policy.onnx in --out (loaded by the rlpg-policy crate, numpy or onnxruntime).
    Export(export::ExportArgs),
}

/// The `rlpg` command line with the built-in environments.
pub fn main() -> ExitCode {
    main_with(Registry::builtin())
}

/// The `rlpg` command line with the environments of `registry`, on the process's arguments.
/// A registry entry that [`Registry::with`] rejected is reported at once, with exit code 2.
pub fn main_with(registry: Registry) -> ExitCode {
    main_with_args(registry, std::env::args_os())
}

/// [`main_with`] on `args` (the first is the program, as in `std::env::args_os`), for tests and
/// programs that build their arguments. Parse errors, `--help` and `--version` print what clap
/// prints and return its exit code instead of exiting.
pub fn main_with_args<I, T>(registry: Registry, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    crate::malloc::tune_for_training();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let program = Program::from_arg(args.first());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // What `Cli::parse` does, without leaving the process.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if let Err(e) = registry.check() {
        eprintln!("{}: error: the environment registry: {e}", program.name);
        return ExitCode::from(2);
    }
    match run(cli.command, &registry, &program) {
        Ok(code) => code,
        Err(e) => {
            let hint = match &e {
                RunError::Stopped { run_dir, checkpoint: Some(_), .. } => {
                    format!(": `{}`", program.resume_command(run_dir))
                }
                _ => String::new(),
            };
            eprintln!("{}: error: {e}{hint}", program.name);
            ExitCode::from(if e.is_usage_error() { 2 } else { 1 })
        }
    }
}

/// The running program, for messages.
struct Program {
    /// Its file name, the prefix of messages (`rlpg` for the `rlpg` binary).
    name: String,
    /// How it was invoked (its first argument), for commands to copy.
    invoked_as: String,
}

impl Program {
    fn from_arg(arg0: Option<&OsString>) -> Self {
        let invoked_as =
            arg0.and_then(|a| a.to_str()).filter(|a| !a.is_empty()).unwrap_or("rlpg").to_owned();
        let name = Path::new(&invoked_as)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("rlpg")
            .to_owned();
        Self { name, invoked_as }
    }

    /// The command that continues the run in `run_dir`.
    fn resume_command(&self, run_dir: &Path) -> String {
        format!("{} train --resume {}", self.invoked_as, run_dir.display())
    }
}

/// Ctrl-C and SIGTERM while training: the first sets `stop` (the loop checkpoints and returns)
/// and records which signal came; a second one exits at once with 128 + its number. Exiting
/// without cleanup is safe because every checkpoint and config is written atomically and event
/// files tolerate a cut-off last record.
struct StopSignals {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl StopSignals {
    fn install() -> Result<Self, RunError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            let installed = signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&stop),
            )
            .and_then(|_| {
                signal_hook::flag::register_usize(signal, Arc::clone(&which), signal as usize)
            })
            // Registered last: the conditional shutdown above must see the flag as it was
            // before this signal, so that only a second signal exits.
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)));
            installed.map_err(RunError::Signals)?;
        }
        Ok(Self { stop, which })
    }

    /// 128 + the number of the signal that stopped training (130 for SIGINT, 143 for SIGTERM).
    fn exit_code(&self) -> u8 {
        let signal = self.which.load(Ordering::SeqCst);
        u8::try_from(128 + signal).unwrap_or(1)
    }
}

fn run(command: Command, registry: &Registry, program: &Program) -> Result<ExitCode, RunError> {
    let envs = EnvSource::Registry(registry);
    match command {
        Command::Train { config, resume: resume_dir, seed, mut set, out, quiet } => {
            let signals = StopSignals::install()?;
            let options = TrainOptions {
                envs,
                progress: !quiet,
                stop: Some(&signals.stop),
                ..TrainOptions::default()
            };
            let outcome = match (resume_dir, config) {
                (Some(dir), _) => {
                    eprintln!("{}: resuming {}", program.name, dir.display());
                    resume(&dir, options)?
                }
                (None, Some(config)) => {
                    if let Some(seed) = seed {
                        set.push(Override::parse(&format!("seed={seed}"))?);
                    }
                    let config = Config::load_checked(&config, &set, registry)?;
                    let out = out.unwrap_or_else(|| PathBuf::from("runs"));
                    train_with(&config, &out, options)?
                }
                // clap requires a config unless --resume is given.
                (None, None) => {
                    return Err(RunError::Usage(
                        "rlpg train: give a config file or --resume RUN_DIR".to_owned(),
                    ));
                }
            };
            match outcome {
                RunOutcome::Finished(trained) => {
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
                RunOutcome::Interrupted { run_dir, step } => {
                    eprintln!(
                        "{}: stopped at step {step}, checkpoint written; continue with `{}`",
                        program.name,
                        program.resume_command(run_dir.path())
                    );
                    println!("{}", run_dir.path().display());
                    return Ok(ExitCode::from(signals.exit_code()));
                }
            }
        }
        Command::Runs { dir, json } => {
            let runs = crate::runs::list_runs(&dir)
                .map_err(|e| RunError::File { path: dir.clone(), message: e.to_string() })?;
            if json {
                let out = serde_json::to_string_pretty(&runs).map_err(|e| RunError::Output {
                    what: "run list as JSON",
                    message: e.to_string(),
                })?;
                println!("{out}");
            } else if runs.is_empty() {
                println!("no runs in {}", dir.display());
            } else {
                print!("{}", crate::runs::to_table(&runs));
            }
        }
        Command::Eval { run_dir, checkpoint, episodes, seed, json } => {
            let result = match checkpoint {
                Some(which) => {
                    let path = resolve_checkpoint(&run_dir, &which)?;
                    evaluate_checkpoint(&path, episodes as usize, seed, envs)?
                }
                None => evaluate_run(&run_dir, episodes as usize, seed, envs)?,
            };
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
            let config = Config::load_checked(&config, &set, registry)?;
            let target = match (target_recent, target_eval) {
                (Some(t), _) => Target::RecentMean(t),
                (None, Some(t)) => Target::Eval(t),
                // clap requires one of the two.
                (None, None) => Target::RecentMean(f64::INFINITY),
            };
            let results = bench(&config, &seeds, target, envs)?;
            if json {
                let out = serde_json::to_string_pretty(&results).map_err(|e| RunError::Output {
                    what: "results as JSON",
                    message: e.to_string(),
                })?;
                println!("{out}");
            } else {
                print!("{}", bench::to_markdown(&results, target));
            }
        }
        Command::Gradlab { trials, samples, seed, problems, temperatures, threads, json, plot } => {
            let options = GradlabOptions { trials, samples, seed, problems, temperatures, threads };
            let report = gradlab::run(&options).and_then(|report| {
                let text = if json { report.to_json()? } else { report.to_markdown() };
                if let Some(path) = &plot {
                    gradlab::plot(&report, path)?;
                }
                Ok(text)
            });
            match report {
                Ok(text) => println!("{}", text.trim_end()),
                Err(e) => {
                    eprintln!("{}: error: {e}", program.name);
                    return Ok(ExitCode::from(if e.is_usage_error() { 2 } else { 1 }));
                }
            }
        }
        Command::Export(args) => return Ok(export::export(args, envs, &program.name)),
        Command::Envs => {
            for spec in registry.specs()? {
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
    Ok(ExitCode::SUCCESS)
}
