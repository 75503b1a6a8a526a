//! The presets of `configs/`, compiled in, so that `rlpg train --set env=… --set agent=…`
//! without a config file starts from the tuned preset for that (agent, env) pair wherever the
//! binary runs.

use crate::{Config, ConfigError, Override};
use rlpg_envs::Registry;

/// One preset per (agent, env) pair: `(file name in configs/, TOML text)`. Alternatives for a
/// pair that already has one (e.g. `pathwise_pendulum_sb3.toml`) are left out: this is the
/// default choice, not the catalogue.
const PRESETS: &[(&str, &str)] = &[
    ("reinforce_cartpole.toml", include_str!("../../configs/reinforce_cartpole.toml")),
    ("reinforce_pendulum.toml", include_str!("../../configs/reinforce_pendulum.toml")),
    ("pathwise_cartpole.toml", include_str!("../../configs/pathwise_cartpole.toml")),
    ("pathwise_pendulum.toml", include_str!("../../configs/pathwise_pendulum.toml")),
];

/// The value of the last `--set key=…` among `overrides`, as text.
fn last_set<'a>(overrides: &'a [Override], key: &str) -> Option<&'a str> {
    overrides.iter().rev().find(|o| o.key() == key).and_then(|o| o.value().as_str())
}

/// The preset whose `env` and `agent` are those `overrides` set, as `(file name, text)`.
pub(crate) fn preset_for(overrides: &[Override]) -> Option<(&'static str, &'static str)> {
    let env = last_set(overrides, "env")?;
    let agent = last_set(overrides, "agent")?;
    PRESETS.iter().copied().find(|(_, text)| {
        let table: toml::Table = match toml::from_str(text) {
            Ok(table) => table,
            Err(_) => return false,
        };
        table.get("env").and_then(|v| v.as_str()) == Some(env)
            && table.get("agent").and_then(|v| v.as_str()) == Some(agent)
    })
}

/// A config from `--set` overrides alone: the preset for their (agent, env) pair with the
/// overrides applied, or every default plus the overrides where no preset exists. Also returns
/// the preset's file name, if one was used.
pub(crate) fn config_without_file(
    overrides: &[Override],
    registry: &Registry,
) -> Result<(Config, Option<&'static str>), ConfigError> {
    match preset_for(overrides) {
        Some((name, text)) => {
            let shown = format!("configs/{name} (built in)");
            Ok((Config::from_toml_str_checked(text, &shown, overrides, registry)?, Some(name)))
        }
        None => Ok((Config::from_overrides_checked(overrides, registry)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(args: &[&str]) -> Vec<Override> {
        args.iter().map(|a| Override::parse(a).expect("parses")).collect()
    }

    #[test]
    fn every_preset_loads_and_is_found_by_its_pair() {
        for (name, text) in PRESETS {
            let config = Config::from_toml_str(text, name, &[]).expect("preset loads");
            let pair =
                sets(&[&format!("env={}", config.env), &format!("agent={}", config.agent.name())]);
            assert_eq!(preset_for(&pair).map(|(n, _)| n), Some(*name));
        }
    }

    #[test]
    fn the_preset_is_used_with_the_overrides_on_top() {
        let registry = Registry::builtin();
        let set = sets(&["env=Pendulum-v1", "agent=pathwise", "seed=9"]);
        let (config, preset) = config_without_file(&set, &registry).expect("config");
        assert_eq!(preset, Some("pathwise_pendulum.toml"));
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pathwise_pendulum.toml");
        let mut expected = Config::load(std::path::Path::new(file), &[]).expect("file");
        expected.seed = 9;
        assert_eq!(config, expected);
    }

    #[test]
    fn without_a_preset_the_defaults_are_used_and_env_and_agent_are_required() {
        let registry = Registry::builtin();
        let set = sets(&["env=Acrobot-v1", "agent=reinforce"]);
        let (config, preset) = config_without_file(&set, &registry).expect("config");
        assert_eq!(preset, None);
        assert_eq!(config, Config::new("Acrobot-v1", crate::AgentKind::Reinforce));
        let missing = config_without_file(&sets(&["env=CartPole-v1"]), &registry);
        assert!(missing.is_err_and(|e| e.to_string().contains("agent")));
    }
}
