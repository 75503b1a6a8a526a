//! `rlpg bench`: training throughput and time to a return threshold over several seeds.

use std::path::PathBuf;

use rlpg_envs::Registry;

use super::{Program, target_of};
use crate::bench;
use crate::run::{EnvSource, RunError};
use crate::trainer::Target;
use crate::{Config, Override};

/// The arguments of `rlpg bench`.
#[derive(clap::Args)]
pub(super) struct BenchArgs {
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
}

/// Runs `rlpg bench`: progress on stderr, the table (or JSON) alone on stdout.
pub(super) fn bench(
    args: BenchArgs,
    registry: &Registry,
    program: &Program,
) -> Result<(), RunError> {
    let envs = EnvSource::Registry(registry);
    let BenchArgs { config, set, seeds, target_recent, target_eval, json } = args;
    let config = Config::load_checked(&config, &set, registry)?;
    // clap requires one of the two.
    let target = target_of(target_recent, target_eval).unwrap_or(Target::RecentMean(f64::INFINITY));
    // Progress goes to stderr (the table stays alone on stdout), one line per
    // evaluation and per finished seed, so a long benchmark shows where it is and an
    // interrupted one leaves its finished seeds on record.
    let name = &program.name;
    let results = bench::bench_with_progress(&config, &seeds, target, envs, &mut |p| {
        eprintln!("{name}: {p}");
    })?;
    if json {
        let out = serde_json::to_string_pretty(&results)
            .map_err(|e| RunError::Output { what: "results as JSON", message: e.to_string() })?;
        println!("{out}");
    } else {
        print!("{}", bench::to_markdown(&results, target));
    }
    Ok(())
}
