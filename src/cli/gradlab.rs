//! `rlpg gradlab`: the estimator lab on problems with closed-form gradients, or
//! (`--policy`) the policy-gradient estimators measured on a trained policy.

use std::path::PathBuf;

use rlpg_envs::Registry;

use super::Program;
use crate::gradlab::{self, GradlabOptions, ProblemKind};
use crate::run::{EnvSource, RunError};
use crate::truegrad::TrueGradOptions;

/// The arguments of `rlpg gradlab`.
#[derive(clap::Args)]
pub(super) struct GradlabArgs {
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

/// Runs `rlpg gradlab`; a failed measurement is one line on stderr and exit code 2 (bad
/// input) or 1.
pub(super) fn gradlab(
    args: GradlabArgs,
    registry: &Registry,
    program: &Program,
) -> Result<u8, RunError> {
    let envs = EnvSource::Registry(registry);
    match args {
        GradlabArgs { policy: Some(path), seed, threads, json, lab, plot, .. } => {
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
        GradlabArgs {
            trials, samples, seed, problems, temperatures, threads, json, plot, ..
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
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn gradlab(args: &[&str]) -> Result<GradlabArgs, clap::Error> {
        let argv = ["rlpg", "gradlab"].iter().chain(args).copied();
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Gradlab(args) => args,
            _ => panic!("not gradlab"),
        })
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
        let GradlabArgs { lab, seed, threads, policy, .. } = command;
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
