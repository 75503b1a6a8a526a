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
//! Exit codes, the same for every subcommand ([`EXIT_CODES`], printed by `--help`): 0 success,
//! 1 a failure while running, 2 bad input (arguments, configuration, a path that is not a run or
//! a checkpoint, a rejected registry entry, an environment the registry does not have), 130 / 143
//! training stopped by Ctrl-C / SIGTERM (after checkpointing; a second signal exits at once with
//! the same codes). Commands suggested in messages name the running program as it was invoked.

mod completions;
mod doctor;
mod presets;
mod sweep;

mod export;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

mod plot;
mod video;

use clap::{Parser, Subcommand};
use rlpg_envs::Registry;

use crate::bench;
use crate::checkpoint::read_meta;
use crate::gradlab::{self, GradlabOptions, ProblemKind};
use crate::run::{
    EnvSource, RunError, RunOutcome, TrainOptions, default_eval_checkpoint, evaluate_checkpoint,
    resolve_checkpoint, resume_with, train_with,
};
use crate::trainer::Target;
use crate::truegrad::TrueGradOptions;
use crate::{Config, Override};

/// The exit-code table of every subcommand, shown at the end of `--help`.
pub const EXIT_CODES: &str = "\
Exit codes (every subcommand):
  0    success
  1    a failure while running (I/O, a damaged checkpoint, an environment or agent error)
  2    bad input: arguments, configuration, a path that is not a run or checkpoint, an unknown env
  130  training stopped by Ctrl-C (checkpoint written; resume with `train --resume RUN_DIR`)
  143  training stopped by SIGTERM (the same)";

/// Policy-gradient reinforcement learning on libtorch: score-function (REINFORCE) and pathwise
/// (reparameterization) agents.
#[derive(Parser)]
#[command(name = "rlpg", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an agent from a TOML config, or from --set alone, or continue or extend a run with
    /// --resume; prints the run directory as the last line of stdout. Ctrl-C or SIGTERM finish
    /// the current update, write a checkpoint and exit with 130 / 143; a second one exits at once.
    #[command(after_help = EXIT_CODES)]
    Train {
        /// The config file, e.g. configs/reinforce_cartpole.toml. Without one, --set must name
        /// `env` and `agent`; the built-in preset for that pair (configs/AGENT_ENV.toml) is the
        /// base where one exists, else every default.
        config: Option<PathBuf>,
        /// Continue the run in this directory from its newest checkpoint, in the same
        /// directory and TensorBoard curves. With --set it may change total_timesteps (to
        /// extend a finished run), eval_every, eval_episodes, checkpoint_every,
        /// keep_checkpoints, log_every, checkpoint_replay_buffer and torch_threads, nothing
        /// else. Takes no config, --seed or --out.
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
    },
    /// Evaluate a run's best checkpoint (its newest if none was the best) with deterministic
    /// episodes; names the checkpoint file and its step on stderr.
    #[command(after_help = EXIT_CODES)]
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
    },
    /// Plot a metric of many runs on one chart: runs grouped by (env, agent), mean over seeds
    /// with a 95% bootstrap confidence band.
    Plot(plot::PlotArgs),
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
    /// Run a grid of settings times a list of seeds as separate `train` processes, --jobs at a
    /// time, then print a table (steps/s, final evaluation, time to target). Each run is a
    /// normal run directory in --out, named with its grid point; --emit writes the runs as
    /// commands or a Slurm job array instead. Ctrl-C stops every run with a checkpoint.
    #[command(after_help = EXIT_CODES)]
    Sweep(sweep::SweepArgs),
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
    Envs {
        /// Print a JSON array of `{"id", "observation_space", "action_space",
        /// "max_episode_steps", "description"}` instead of text.
        #[arg(long)]
        json: bool,
    },
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
        /// Also draw the variances against sample count and temperature into this PNG file
        /// (with --policy: each estimator's bias against its variance).
        #[arg(long, value_name = "FILE.png")]
        plot: Option<PathBuf>,
        /// Measure the policy gradient estimators on a trained policy instead (a run directory,
        /// its best or newest checkpoint, or a checkpoint file): a brute-force ground truth
        /// with its standard error, a finite-difference cross-check, and each estimator's
        /// cosine, bias, variance and cost (docs/gradlab.md).
        #[arg(long, value_name = "RUN_OR_CHECKPOINT",
              conflicts_with_all = ["trials", "samples", "problems", "temperatures"])]
        policy: Option<PathBuf>,
        /// With --policy: the measurement's settings.
        #[command(flatten)]
        lab: PolicyLab,
    },
    /// Check that libtorch is linked and working: prints rlpg's version, libtorch's version,
    /// build (CPU or CUDA) and folder, whether CUDA is available, and the torch threads.
    Doctor {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script, e.g. `rlpg completions bash > ~/.local/share/bash-
    /// completion/completions/rlpg` or `rlpg completions fish >
    /// ~/.config/fish/completions/rlpg.fish`.
    Completions {
        /// The shell.
        shell: completions::Shell,
    },
    /// Export a run's policy for deployment without libtorch: policy.json, policy.safetensors
    /// and policy.onnx in --out (loaded by the rlpg-policy crate, numpy or onnxruntime).
    Export(export::ExportArgs),
}

/// The settings of `rlpg gradlab --policy` (each requires `--policy`); the defaults are
/// [`TrueGradOptions::default`]'s.
#[derive(Debug, Clone, clap::Args)]
struct PolicyLab {
    /// With --policy: episodes behind the ground truth.
    #[arg(long, default_value_t = TrueGradOptions::default().truth_episodes, requires = "policy")]
    truth_episodes: usize,
    /// With --policy: episodes per ground-truth chunk (the standard error comes from the
    /// chunks' spread) and per batch of lockstep rollouts.
    #[arg(long, default_value_t = TrueGradOptions::default().chunk_episodes, requires = "policy")]
    chunk_episodes: usize,
    /// With --policy: independent estimates per estimator.
    #[arg(long, default_value_t = TrueGradOptions::default().estimates, requires = "policy")]
    estimates: usize,
    /// With --policy: the λ of the GAE estimators, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = TrueGradOptions::default().lambdas,
          requires = "policy")]
    lambdas: Vec<f64>,
    /// With --policy: random directions of the finite-difference cross-check (0: none).
    #[arg(long, default_value_t = TrueGradOptions::default().fd_directions, requires = "policy")]
    fd_directions: usize,
    /// With --policy: episode pairs per finite difference.
    #[arg(long, default_value_t = TrueGradOptions::default().fd_episodes, requires = "policy")]
    fd_episodes: usize,
    /// With --policy: the finite differences' largest step along unit directions of the
    /// parameters (shorter where J is steep: h ‖∇J‖ ≤ 0.01 |J|).
    #[arg(long, default_value_t = TrueGradOptions::default().fd_step, requires = "policy")]
    fd_step: f64,
    /// With --policy: episodes per score-function estimate (default: the agent's batch in
    /// steps over the mean episode length).
    #[arg(long, requires = "policy")]
    batch_episodes: Option<usize>,
}

impl PolicyLab {
    /// The measurement's options with the command's seed and thread count.
    fn options(self, seed: u64, threads: usize) -> TrueGradOptions {
        TrueGradOptions {
            truth_episodes: self.truth_episodes,
            chunk_episodes: self.chunk_episodes,
            estimates: self.estimates,
            lambdas: self.lambdas,
            fd_directions: self.fd_directions,
            fd_episodes: self.fd_episodes,
            fd_step: self.fd_step,
            batch_episodes: self.batch_episodes,
            seed,
            threads,
            ..TrueGradOptions::default()
        }
    }
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
    ExitCode::from(exit_code_of(registry, args))
}

/// The `rlpg` command line with the environments of `registry`, then [`exit_now`] with its exit
/// code: what the `rlpg` binary does, about 0.1-0.3 s faster than returning from `main` (see
/// [`exit_now`]).
pub fn main_with_and_exit(registry: Registry) -> ! {
    exit_now(exit_code_of(registry, std::env::args_os()))
}

/// Ends the process with `code` at once: flushes stdout and stderr, then `_exit(2)`, which
/// skips the C++ static destructors of libtorch. Those deregister every one of libtorch's
/// operators one by one and take as long as a quarter to a half of a short command's run
/// (`rlpg --help`: about 0.16-0.34 s of 0.42-0.68 s measured with `strace -ttt` on a loaded
/// 2-core machine, between the last write and `exit_group`). Nothing of rlpg's needs them: by
/// the time a command returns, its files are written, synced and closed, and locks are
/// released by the kernel with the process.
pub fn exit_now(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(unix)]
    {
        // SAFETY: `_exit` ends the process without running atexit handlers or static
        // destructors; Rust's buffered stdout was flushed above, and nothing else buffers.
        unsafe { libc::_exit(i32::from(code)) }
    }
    #[cfg(not(unix))]
    std::process::exit(i32::from(code))
}

/// The command line on `args`, returning its exit code.
fn exit_code_of<I, T>(registry: Registry, args: I) -> u8
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
            return u8::try_from(e.exit_code()).unwrap_or(2);
        }
    };
    if let Err(e) = registry.check() {
        eprintln!("{}: error: the environment registry: {e}", program.name);
        return 2;
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
            if e.is_usage_error() { 2 } else { 1 }
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

fn run(command: Command, registry: &Registry, program: &Program) -> Result<u8, RunError> {
    let envs = EnvSource::Registry(registry);
    match command {
        Command::Train {
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
        } => {
            if let Some(label) = &label {
                check_label(label)?;
            }
            let signals = StopSignals::install()?;
            let options = TrainOptions {
                envs,
                progress: !quiet,
                stop: Some(&signals.stop),
                label: label.as_deref(),
                target: target_of(target_recent, target_eval),
                ..TrainOptions::default()
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
        }
        Command::Runs { dir, json } => {
            if !dir.is_dir() {
                return Err(RunError::Usage(format!(
                    "{}: no such folder (`{} train` creates runs/; name another with --dir)",
                    dir.display(),
                    program.invoked_as
                )));
            }
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
        Command::Eval { run_dir, checkpoint, episodes, seed, json, video, frame } => {
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
                    "checkpoint": path,
                    "step": step,
                    "training_eval_return": meta.eval_return,
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
            // clap requires one of the two.
            let target =
                target_of(target_recent, target_eval).unwrap_or(Target::RecentMean(f64::INFINITY));
            // Progress goes to stderr (the table stays alone on stdout), one line per
            // evaluation and per finished seed, so a long benchmark shows where it is and an
            // interrupted one leaves its finished seeds on record.
            let name = &program.name;
            let results = bench::bench_with_progress(&config, &seeds, target, envs, &mut |p| {
                eprintln!("{name}: {p}");
            })?;
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
        Command::Gradlab { policy: Some(path), seed, threads, json, lab, plot, .. } => {
            let options = lab.options(seed, threads);
            let text = crate::truegrad::measure(&path, &options, envs).and_then(|m| {
                if let Some(file) = &plot {
                    crate::truegrad::plot(&m.report, file)?;
                }
                if json { m.report.to_json() } else { Ok(m.report.to_markdown()) }
            });
            match text {
                Ok(text) => println!("{}", text.trim_end()),
                Err(e) => {
                    eprintln!("{}: error: {e}", program.name);
                    return Ok(if e.is_usage_error() { 2 } else { 1 });
                }
            }
        }
        Command::Gradlab {
            trials,
            samples,
            seed,
            problems,
            temperatures,
            threads,
            json,
            plot,
            ..
        } => {
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
                    return Ok(if e.is_usage_error() { 2 } else { 1 });
                }
            }
        }
        Command::Export(args) => return Ok(export::export(args, envs, &program.name)),
        Command::Sweep(args) => return sweep::sweep(args, registry, program),
        Command::Plot(args) => {
            if let Err(e) = plot::run(args) {
                eprintln!("{}: error: {e}", program.name);
                return Ok(if e.is_input_error() { 2 } else { 1 });
            }
        }
        Command::Envs { json } => print_envs(registry, json)?,
        Command::Doctor { json } => {
            let report = doctor::Report::gather();
            if json {
                println!("{}", to_json(&report, "doctor's report as JSON")?);
            } else {
                print!("{}", report.to_text());
            }
            if !report.ok() {
                return Ok(1);
            }
        }
        Command::Completions { shell } => completions::print::<Cli>(shell)
            .map_err(|e| RunError::Output { what: "completion script", message: e.to_string() })?,
    }
    Ok(0)
}

/// The target that `--target-recent` or `--target-eval` names (clap lets at most one through).
fn target_of(recent: Option<f64>, eval: Option<f64>) -> Option<Target> {
    recent.map(Target::RecentMean).or(eval.map(Target::Eval))
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

/// `value` as one line of JSON.
fn to_json(value: &impl serde::Serialize, what: &'static str) -> Result<String, RunError> {
    serde_json::to_string(value).map_err(|e| RunError::Output { what, message: e.to_string() })
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
            "final_eval_mean_return": s.final_eval.mean_return,
            "final_eval_std_return": s.final_eval.std_return,
            "final_eval_returns": s.final_eval.returns,
            "best_eval": s.evals.iter().map(|(_, r)| *r).reduce(f64::max),
            "steps_per_second": s.steps_per_second,
            "steps_to_target": s.reached_target.map(|(steps, _)| steps),
            "seconds_to_target": s.reached_target.map(|(_, seconds)| seconds),
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

/// `rlpg envs`: one line per environment, or a JSON array.
fn print_envs(registry: &Registry, json: bool) -> Result<(), RunError> {
    let specs = registry.specs()?;
    if json {
        let list: Vec<serde_json::Value> = specs
            .iter()
            .map(|spec| {
                serde_json::json!({
                    "id": spec.id,
                    "observation_space": spec.observation_space.to_string(),
                    "action_space": spec.action_space.to_string(),
                    "max_episode_steps": spec.max_episode_steps,
                    "description": spec.description,
                })
            })
            .collect();
        #[cfg(feature = "gymnasium")]
        let list = {
            let mut list = list;
            list.push(serde_json::json!({
                "id": GYMNASIUM_SYNTAX.0,
                "observation_space": "Box or Discrete",
                "action_space": "Box or Discrete",
                "max_episode_steps": null,
                "description": GYMNASIUM_SYNTAX.1,
            }));
            list
        };
        println!("{}", to_json(&list, "environment list as JSON")?);
    } else {
        for spec in specs {
            println!("{spec}");
        }
        #[cfg(feature = "gymnasium")]
        println!("{}: {}", GYMNASIUM_SYNTAX.0, GYMNASIUM_SYNTAX.1);
    }
    Ok(())
}

/// How `rlpg envs` lists the ids of the `gymnasium` bridge: the syntax and what it means.
#[cfg(feature = "gymnasium")]
const GYMNASIUM_SYNTAX: (&str, &str) = (
    "gymnasium:<ID>",
    "any Gymnasium environment with Box or Discrete spaces, e.g. gymnasium:LunarLander-v3, \
     made by gymnasium.make(ID, **env_kwargs) with Gymnasium's own time limit, in the Python of \
     RLPG_PYTHON, VIRTUAL_ENV or scripts/setup.sh --gymnasium",
);

#[cfg(test)]
mod tests {
    use super::*;

    fn gradlab(args: &[&str]) -> Result<Command, clap::Error> {
        let argv = ["rlpg", "gradlab"].iter().chain(args).copied();
        Cli::try_parse_from(argv).map(|cli| cli.command)
    }

    #[test]
    fn gradlab_policy_settings_reach_the_measurement_options() {
        let command = gradlab(&[
            "--policy",
            "runs/x",
            "--seed",
            "7",
            "--threads",
            "2",
            "--truth-episodes",
            "1024",
            "--lambdas",
            "0.5,1",
            "--fd-step",
            "0.02",
            "--batch-episodes",
            "9",
        ])
        .expect("parses");
        let Command::Gradlab { lab, seed, threads, policy, .. } = command else {
            panic!("not gradlab");
        };
        assert_eq!(policy, Some(PathBuf::from("runs/x")));
        let options = lab.options(seed, threads);
        let defaults = TrueGradOptions::default();
        assert_eq!(options.truth_episodes, 1024);
        assert_eq!(options.lambdas, vec![0.5, 1.0]);
        assert_eq!(options.fd_step, 0.02);
        assert_eq!(options.batch_episodes, Some(9));
        assert_eq!((options.seed, options.threads), (7, 2));
        // Unset flags take the library's defaults.
        assert_eq!(options.chunk_episodes, defaults.chunk_episodes);
        assert_eq!(options.estimates, defaults.estimates);
        assert_eq!(options.fd_directions, defaults.fd_directions);
        assert_eq!(options.fd_episodes, defaults.fd_episodes);
        assert_eq!(options.max_steps, defaults.max_steps);
    }

    #[test]
    fn gradlab_policy_settings_without_policy_are_refused() {
        for flag in ["--truth-episodes", "--fd-step", "--lambdas", "--batch-episodes"] {
            let e = gradlab(&[flag, "1"]).err().unwrap_or_else(|| panic!("{flag} accepted"));
            assert!(e.to_string().contains("--policy"), "{flag}: {e}");
        }
        gradlab(&["--policy", "runs/x", "--trials", "5"]).err().expect("--trials conflicts");
    }
}
