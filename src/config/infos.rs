//! `info_keywords`: which of an environment's step infos a run logs (as Stable-Baselines3's
//! `Monitor(info_keywords=...)`), and the checks of the environment's masks and infos against
//! the settings.

use rlpg_envs::{Env, InfoKey, InfoReduce};

use super::validate::invalid;
use super::{Config, ConfigError};

/// One entry of `info_keywords`: an info's name, and the reduction written after it, if any
/// (`"stock:mean"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoKeyword {
    /// The info's name.
    pub name: String,
    /// How it adds up over an episode, when the entry says so.
    pub reduce: Option<InfoReduce>,
}

impl InfoKeyword {
    /// Parses `name` or `name:sum|mean|last`; an error says what is wrong.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (name, reduce) = match entry.rsplit_once(':') {
            Some((name, reduce)) => {
                let reduce = InfoReduce::from_name(reduce).ok_or_else(|| {
                    format!(
                        "{entry:?}: after the name, `:sum`, `:mean` or `:last`, not `:{reduce}`"
                    )
                })?;
                (name, Some(reduce))
            }
            None => (entry, None),
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
        if name.is_empty() || !name.chars().all(allowed) {
            return Err(format!(
                "{entry:?}: an info name is ASCII letters, digits and _ - . /, optionally followed \
                 by :sum, :mean or :last"
            ));
        }
        Ok(Self { name: name.to_owned(), reduce })
    }
}

impl Config {
    /// The entries of `info_keywords`, parsed (checked by [`Config::validate`]).
    pub fn info_keywords(&self) -> Result<Vec<InfoKeyword>, ConfigError> {
        let mut parsed: Vec<InfoKeyword> = Vec::new();
        for (i, entry) in self.info_keywords.iter().enumerate() {
            let keyword = InfoKeyword::parse(entry)
                .map_err(|message| invalid(&format!("info_keywords[{i}]"), message))?;
            if parsed.iter().any(|k| k.name == keyword.name) {
                return Err(invalid(
                    &format!("info_keywords[{i}]"),
                    format!("names the info `{}` twice", keyword.name),
                ));
            }
            parsed.push(keyword);
        }
        Ok(parsed)
    }

    /// Checks the settings against what the environment says of itself besides its spaces:
    /// every `info_keywords` entry must be an info it reports ([`Env::info_keys`]; a reduction
    /// written after the name must be the one the env declares), and an env that declares action
    /// masks must be stepped where the masks reach the agent (in lockstep).
    pub fn validate_env_reports(
        &self,
        masks_actions: bool,
        info_keys: &[InfoKey],
    ) -> Result<(), ConfigError> {
        let env = &self.env;
        for (i, keyword) in self.info_keywords()?.into_iter().enumerate() {
            let key = format!("info_keywords[{i}]");
            let Some(declared) = info_keys.iter().find(|k| k.name == keyword.name) else {
                let reported: Vec<String> =
                    info_keys.iter().map(|k| format!("{} ({})", k.name, k.reduce)).collect();
                let nearest = info_keys
                    .iter()
                    .map(|k| (k, strsim::jaro_winkler(&keyword.name, &k.name)))
                    .filter(|(_, s)| *s >= 0.8)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map_or_else(String::new, |(k, _)| format!("did you mean `{}`? ", k.name));
                let reports = if reported.is_empty() {
                    "it reports none (Env::info_keys)".to_owned()
                } else {
                    format!("it reports {}", reported.join(", "))
                };
                return Err(invalid(
                    &key,
                    format!("{env} reports no info `{}`; {nearest}{reports}", keyword.name),
                ));
            };
            if let Some(reduce) = keyword.reduce.filter(|r| *r != declared.reduce) {
                return Err(invalid(
                    &key,
                    format!(
                        "{env} declares `{}` as its episode {}, not its {reduce}; write `{}`",
                        declared.name, declared.reduce, declared.name
                    ),
                ));
            }
        }
        // Both agents act within masks (the pathwise agent with SAC; td3 is refused on discrete
        // actions by the space check). The envs' masks reach the agent in lockstep only.
        if masks_actions && self.async_batch > 0 {
            return Err(invalid(
                "async_batch",
                format!(
                    "{env} declares action masks (some actions are not allowed in some states), \
                     and asynchronous batches do not hand the masks to the agent yet: it would \
                     choose actions the env refuses; set async_batch = 0"
                ),
            ));
        }
        if masks_actions && self.act_beside_learning {
            return Err(invalid(
                "act_beside_learning",
                format!(
                    "{env} declares action masks (some actions are not allowed in some states), \
                     and the actor acting beside learning does not take masks yet: it would \
                     choose actions the env refuses; set act_beside_learning = false"
                ),
            ));
        }
        Ok(())
    }

    /// [`Config::validate_against`] the spaces of `env`, then [`Config::validate_env_reports`]
    /// of its masks and infos.
    pub fn validate_against_env(&self, env: &dyn Env) -> Result<(), ConfigError> {
        self.validate_against(env.observation_space(), env.action_space())?;
        self.validate_env_reports(env.masks_actions(), env.info_keys())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_names_with_an_optional_reduction() {
        let k = InfoKeyword::parse("lost_sales").expect("a name");
        assert_eq!((k.name.as_str(), k.reduce), ("lost_sales", None));
        let k = InfoKeyword::parse("stock:mean").expect("with a reduction");
        assert_eq!((k.name.as_str(), k.reduce), ("stock", Some(InfoReduce::Mean)));
        assert!(InfoKeyword::parse("stock:median").expect_err("unknown").contains(":median"));
        assert!(InfoKeyword::parse("").is_err() && InfoKeyword::parse("a b").is_err());
    }
}
