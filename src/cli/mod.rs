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
//!
//! This file parses and dispatches; each command lives in its own file, which holds its
//! arguments (a `clap::Args` struct) and the function that runs it: `train.rs`, `eval.rs` (with
//! `video.rs` for `--video`/`--frame`), `plot.rs`, `bench.rs`, `sweep.rs`, `runs.rs`, `envs.rs`,
//! `gradlab.rs`, `doctor.rs`, `completions.rs`, `export.rs`, `check_env.rs`. Shared by several: `presets.rs`
//! (the preset a config-less `train` starts from) and `signals.rs` (Ctrl-C and SIGTERM).

mod bench;
mod check_env;
mod completions;
mod doctor;
mod envs;
mod eval;
mod export;
mod gradlab;
mod plot;
mod presets;
mod runs;
mod signals;
mod sweep;
mod train;
mod video;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rlpg_envs::Registry;

use crate::run::{EnvSource, RunError};
use crate::trainer::{Target, TrainError};

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
    Train(train::TrainArgs),
    /// Evaluate a run's best checkpoint (its newest if none was the best) with deterministic
    /// episodes; names the checkpoint file and its step on stderr.
    #[command(after_help = EXIT_CODES)]
    Eval(eval::EvalArgs),
    /// Plot a metric of many runs on one chart: runs grouped by (env, agent), mean over seeds
    /// with a 95% bootstrap confidence band.
    Plot(plot::PlotArgs),
    /// Measure training throughput and time to a return threshold over several seeds (nothing
    /// is written to disk). Exactly one of --target-recent and --target-eval.
    Bench(bench::BenchArgs),
    /// Run a grid of settings times a list of seeds as separate `train` processes, --jobs at a
    /// time, then print a table (steps/s, final evaluation, time to target). Each run is a
    /// normal run directory in --out, named with its grid point; --emit writes the runs as
    /// commands or a Slurm job array instead. Ctrl-C stops every run with a checkpoint.
    #[command(after_help = EXIT_CODES)]
    Sweep(sweep::SweepArgs),
    /// List the runs in a folder: env, agent, seed, steps done, best evaluation return, and
    /// whether each is complete, resumable or broken.
    Runs(runs::RunsArgs),
    /// List the registered environments with their spaces, masks, infos and time limits.
    Envs(envs::EnvsArgs),
    /// Check that an environment keeps the contract training relies on (spaces, seeding,
    /// observations, rewards, action masks, infos, invalid actions), as the registry makes it,
    /// its time limit included. Exit code 1 when a problem is found.
    #[command(after_help = EXIT_CODES)]
    CheckEnv(check_env::CheckEnvArgs),
    /// Measure the score-function and pathwise gradient estimators against closed forms: bias,
    /// variance and cost on problems with known gradients (see docs/gradlab.md).
    Gradlab(gradlab::GradlabArgs),
    /// Check that libtorch is linked and working: prints rlpg's version, libtorch's version,
    /// build (CPU or CUDA) and folder, whether CUDA is available, and the torch threads.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script, e.g. `rlpg completions bash > ~/.local/share/bash-
    /// completion/completions/rlpg` or `rlpg completions fish >
    /// ~/.config/fish/completions/rlpg.fish`.
    Completions(completions::CompletionsArgs),
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
                RunError::Stopped { source, run_dir, checkpoint: Some(_), .. }
                    if source.resuming_can_work() =>
                {
                    format!(": `{}`", program.resume_command(run_dir))
                }
                RunError::Stopped { source, run_dir, env, .. } => {
                    program.failure_advice(source, run_dir, env)
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

    /// What to do about a run that stopped on `error`, which resuming as it is would meet
    /// again: only commands that can work.
    fn failure_advice(&self, error: &TrainError, run_dir: &Path, env: &str) -> String {
        match error {
            TrainError::Env { .. } => format!(
                ". `{} check-env {env}` checks the environment's contract; once the cause is fixed, `{}` continues the run with new episodes",
                self.invoked_as,
                self.resume_command(run_dir)
            ),
            TrainError::Agent { .. } | TrainError::NonFinite { .. } => {
                ". Resuming replays the same steps into the same error: train a new run with other settings (a smaller learning rate, gradient clipping)"
                    .to_owned()
            }
            _ => String::new(),
        }
    }
}

/// Runs `command`, returning its exit code; an error is reported by the caller.
fn run(command: Command, registry: &Registry, program: &Program) -> Result<u8, RunError> {
    let envs = EnvSource::Registry(registry);
    match command {
        Command::Train(args) => return train::train(args, registry, program),
        Command::Eval(args) => eval::eval(args, registry, program)?,
        Command::Plot(args) => {
            if let Err(e) = plot::run(args) {
                eprintln!("{}: error: {e}", program.name);
                return Ok(if e.is_input_error() { 2 } else { 1 });
            }
        }
        Command::Bench(args) => bench::bench(args, registry, program)?,
        Command::Sweep(args) => return sweep::sweep(args, registry, program),
        Command::Runs(args) => runs::runs(args, program)?,
        Command::Envs(args) => envs::envs(args, registry)?,
        Command::CheckEnv(args) => return check_env::check_env_command(args, registry, program),
        Command::Gradlab(args) => return gradlab::gradlab(args, registry, program),
        Command::Doctor(args) => return doctor::doctor(args),
        Command::Completions(args) => completions::completions::<Cli>(args)?,
        Command::Export(args) => return Ok(export::export(args, envs, &program.name)),
    }
    Ok(0)
}

/// The target that `--target-recent` or `--target-eval` names (clap lets at most one through).
fn target_of(recent: Option<f64>, eval: Option<f64>) -> Option<Target> {
    recent.map(Target::RecentMean).or(eval.map(Target::Eval))
}

/// `value` as one line of JSON.
fn to_json(value: &impl serde::Serialize, what: &'static str) -> Result<String, RunError> {
    serde_json::to_string(value).map_err(|e| RunError::Output { what, message: e.to_string() })
}
