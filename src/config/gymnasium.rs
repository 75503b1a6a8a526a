//! Environment ids `gymnasium:<ID>`: made by the `gymnasium` bridge of rlpg-envs from the
//! config's `env` and `env_kwargs`, when the registry does not have the id itself.

use rlpg_envs::EnvEntry;

use super::Config;

/// The prefix of the env ids of the `gymnasium` bridge (as `rlpg_envs::gymnasium::ID_PREFIX`,
/// which exists only with the feature).
pub(crate) const GYMNASIUM_PREFIX: &str = "gymnasium:";

/// The registry entry of `config.env = "gymnasium:<ID>"` with its `env_kwargs`, made by the
/// `gymnasium` bridge (which makes one env at once, so that an unknown id or a missing package
/// is reported before anything else). Without the feature, an error saying how to get it.
pub(crate) fn gymnasium_entry(config: &Config) -> Result<EnvEntry, String> {
    #[cfg(feature = "gymnasium")]
    {
        // The info keys the config names, each its episode's last value unless said otherwise
        // (Stable-Baselines3's Monitor logs the value at the episode's end).
        let infos: Vec<rlpg_envs::InfoKey> = config
            .info_keywords()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|k| rlpg_envs::InfoKey {
                name: k.name.into(),
                reduce: k.reduce.unwrap_or(rlpg_envs::InfoReduce::Last),
            })
            .collect();
        rlpg_envs::gymnasium::entry_with_infos(&config.env, &config.env_kwargs_json(), &infos)
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "gymnasium"))]
    {
        Err(format!(
            "`{}` needs rlpg built with the `gymnasium` feature: run scripts/setup.sh \
             --gymnasium, then build with `cargo build --release --features gymnasium`",
            config.env
        ))
    }
}
