//! `rlpg check-env ID`: the contract checks of `rlpg_envs::check_env` on an environment as the
//! registry makes it (its time limit included), from the command line of any program that
//! hands its registry to `rlpg::cli::main_with`.

use rlpg_envs::{Registry, check_env};

use super::{Program, to_json};
use crate::config::{AgentKind, Config, Override};
use crate::run::{EnvSource, Envs, RunError};

/// The arguments of `rlpg check-env`.
#[derive(clap::Args)]
pub(super) struct CheckEnvArgs {
    /// The environment id, e.g. `Restock-v0` or `gymnasium:CartPole-v1`: checked as `train`
    /// would make it, with the registry's time limit.
    id: String,
    /// A keyword argument of a `gymnasium:<ID>` environment, as a config's `[env_kwargs]`, e.g.
    /// `--set env_kwargs.continuous=true`. Repeatable.
    #[arg(long = "set", value_name = "env_kwargs.KEY=VALUE")]
    set: Vec<Override>,
    /// Print one JSON object `{"env", "ok", "problems", "warnings"}` instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `rlpg check-env`: exit code 0 when the environment keeps the contract, 1 when it does
/// not (each problem on its own line), 2 for an id the registry does not have.
pub(super) fn check_env_command(
    args: CheckEnvArgs,
    registry: &Registry,
    program: &Program,
) -> Result<u8, RunError> {
    let CheckEnvArgs { id, set, json } = args;
    if let Some(other) = set.iter().find(|o| !o.key().starts_with("env_kwargs.")) {
        return Err(RunError::Usage(format!(
            "check-env --set takes env_kwargs.KEY=VALUE only, not `{}`",
            other.key()
        )));
    }
    let mut config = Config::new(id.clone(), AgentKind::Reinforce);
    for o in &set {
        let key = &o.key()["env_kwargs.".len()..];
        config.env_kwargs.insert(key.to_owned(), o.value().clone());
    }
    let envs = Envs::resolve(EnvSource::Registry(registry), &config)?;
    if let (false, Envs::Entry(entry)) = (json, &envs) {
        eprintln!("{}: checking {}", program.name, entry.spec()?);
    }
    let mut env = envs.make()?;
    let report = check_env(&mut *env);
    if json {
        let out = serde_json::json!({
            "env": report.env,
            "ok": report.is_ok(),
            "problems": report.problems,
            "warnings": report.warnings,
        });
        println!("{}", to_json(&out, "check report as JSON")?);
    } else {
        println!("{report}");
    }
    Ok(if report.is_ok() { 0 } else { 1 })
}
