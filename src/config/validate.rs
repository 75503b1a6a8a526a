//! Range checks of every setting ([`Config::validate`]) and the checks that depend on the
//! environment's spaces ([`Config::validate_against`]).

use std::fmt;

use rlpg_agents::{Estimator, InvalidSetting, PathwiseConfig, ReinforceConfig};
use rlpg_envs::Space;

use super::{AgentKind, Config, ConfigError};

/// The largest integer a TOML file can hold; larger `u64` settings could not be written back.
const TOML_INT_MAX: u64 = i64::MAX as u64;

impl Config {
    /// Checks every setting's range. Errors name the full key path, e.g.
    /// `reinforce.gamma: must be in (0, 1], got 1.5`. Does not consult the environment registry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.env.trim().is_empty() {
            return Err(invalid("env", "must name an environment, got an empty string"));
        }
        at_least_one("total_timesteps", self.total_timesteps)?;
        at_least_one("num_envs", self.num_envs as u64)?;
        at_least_one("eval_episodes", self.eval_episodes as u64)?;
        at_least_one("log_every", self.log_every)?;
        at_least_one("keep_checkpoints", self.keep_checkpoints as u64)?;
        if self.torch_threads < 1 {
            return Err(invalid(
                "torch_threads",
                format!("must be an integer >= 1, got {}", self.torch_threads),
            ));
        }
        for (key, value) in [
            ("seed", self.seed),
            ("total_timesteps", self.total_timesteps),
            ("eval_every", self.eval_every),
            ("checkpoint_every", self.checkpoint_every),
            ("log_every", self.log_every),
        ] {
            if value > TOML_INT_MAX {
                return Err(invalid(
                    key,
                    format!(
                        "must be at most {TOML_INT_MAX} (TOML integers are signed 64-bit), got \
                         {value}"
                    ),
                ));
            }
        }
        self.check_unused_sections()?;
        for (section, check) in self.section_checks() {
            check.map_err(|e| invalid(&format!("{section}.{}", e.key), e.message))?;
        }
        // Settings of the chosen agent that depend on top-level ones.
        match self.agent {
            AgentKind::Reinforce => {
                let (n_steps, minibatches) =
                    (self.reinforce.n_steps, self.reinforce.value_minibatches);
                let batch = n_steps.saturating_mul(self.num_envs);
                if minibatches > batch {
                    return Err(invalid(
                        "reinforce.value_minibatches",
                        format!(
                            "must be <= the batch size reinforce.n_steps * num_envs = {n_steps} \
                             * {} = {batch}, got {minibatches}",
                            self.num_envs
                        ),
                    ));
                }
            }
            AgentKind::Pathwise => {
                // Each step stores num_envs transitions at once.
                if self.pathwise.buffer_size < self.num_envs {
                    return Err(invalid(
                        "pathwise.buffer_size",
                        format!(
                            "must be >= num_envs = {}, got {}",
                            self.num_envs, self.pathwise.buffer_size
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every agent section with the result of its own range checks. Adding an agent's section
    /// means adding one line here (and its field in [`Config`]).
    fn section_checks(&self) -> [(&'static str, Result<(), InvalidSetting>); 2] {
        [("reinforce", self.reinforce.validate()), ("pathwise", self.pathwise.validate())]
    }

    /// Rejects settings in an agent section other than the chosen agent's: they would be
    /// ignored.
    pub(super) fn check_unused_sections(&self) -> Result<(), ConfigError> {
        match self
            .agent_sections()
            .into_iter()
            .find(|&(kind, at_defaults)| kind != self.agent && !at_defaults)
        {
            Some((kind, _)) => Err(unused_section(kind, self.agent)),
            None => Ok(()),
        }
    }

    /// Checks the settings that depend on the environment: options of the chosen agent that
    /// only make sense for discrete or only for continuous actions (an option counts as given
    /// when it differs from its default), estimators that need continuous actions, observation
    /// normalization that needs Box observations. Errors name the key and the space.
    pub fn validate_against(
        &self,
        observation_space: &Space,
        action_space: &Space,
    ) -> Result<(), ConfigError> {
        let env = &self.env;
        if self.normalize_obs && !matches!(observation_space, Space::Box(_)) {
            return Err(invalid(
                "normalize_obs",
                format!(
                    "needs Box observations, but {env} has observations {observation_space}; \
                     set normalize_obs = false"
                ),
            ));
        }
        let continuous_actions = matches!(action_space, Space::Box(_));
        if self.agent == AgentKind::Pathwise
            && self.pathwise.estimator == Estimator::Td3
            && !continuous_actions
        {
            return Err(invalid(
                "pathwise.estimator",
                format!(
                    "td3's deterministic actor needs continuous (Box) actions, but {env} has \
                     actions {action_space}; use estimator = \"sac\", which relaxes discrete \
                     actions with Gumbel-softmax"
                ),
            ));
        }
        let (needed, kind) = if continuous_actions {
            (ActionKind::Discrete, "discrete")
        } else {
            (ActionKind::Continuous, "continuous (Box)")
        };
        match self.space_specific_options().into_iter().find(|o| o.needs == needed && o.given) {
            Some(option) => Err(invalid(
                option.key,
                format!(
                    "is set to {}, which applies only to {kind} actions, but {env} has actions \
                     {action_space}; remove it",
                    option.value
                ),
            )),
            None => Ok(()),
        }
    }

    /// The chosen agent's options that apply to one kind of action space only. Adding such an
    /// option means adding one line here.
    fn space_specific_options(&self) -> Vec<SpaceSpecificOption> {
        fn option<T: PartialEq + fmt::Display>(
            key: &'static str,
            needs: ActionKind,
            value: &T,
            default: &T,
        ) -> SpaceSpecificOption {
            SpaceSpecificOption { key, needs, given: value != default, value: value.to_string() }
        }
        use ActionKind::{Continuous, Discrete};
        match self.agent {
            AgentKind::Reinforce => {
                let (c, d) = (&self.reinforce, ReinforceConfig::default());
                vec![
                    option(
                        "reinforce.state_dependent_std",
                        Continuous,
                        &c.state_dependent_std,
                        &d.state_dependent_std,
                    ),
                    option("reinforce.log_std_init", Continuous, &c.log_std_init, &d.log_std_init),
                ]
            }
            AgentKind::Pathwise => {
                let (c, d) = (&self.pathwise, PathwiseConfig::default());
                vec![
                    option(
                        "pathwise.gumbel_temperature",
                        Discrete,
                        &c.gumbel_temperature,
                        &d.gumbel_temperature,
                    ),
                    option(
                        "pathwise.straight_through",
                        Discrete,
                        &c.straight_through,
                        &d.straight_through,
                    ),
                    option(
                        "pathwise.expected_discrete_value",
                        Discrete,
                        &c.expected_discrete_value,
                        &d.expected_discrete_value,
                    ),
                    option("pathwise.logit_bound", Discrete, &c.logit_bound, &d.logit_bound),
                    option(
                        "pathwise.discrete_critic",
                        Discrete,
                        &c.discrete_critic,
                        &d.discrete_critic,
                    ),
                ]
            }
        }
    }
}

/// The kind of action space an option applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Discrete,
    Continuous,
}

/// An option that applies to one kind of action space, and whether the config gives it.
struct SpaceSpecificOption {
    key: &'static str,
    needs: ActionKind,
    given: bool,
    value: String,
}

/// The error for a `section` that the `chosen` agent does not use, with no location yet.
pub(super) fn unused_section(section: AgentKind, chosen: AgentKind) -> ConfigError {
    invalid(
        section.name(),
        format!(
            "the [{section}] section is for agent = \"{section}\", but agent = \"{chosen}\" \
             (whose settings go in [{chosen}]), so it would be ignored; remove [{section}] or \
             change agent"
        ),
    )
}

/// The error for `key` with a message and no location yet (the resolver adds it).
pub(super) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { location: None, key: key.to_owned(), message: message.into() }
}

fn at_least_one(key: &str, value: u64) -> Result<(), ConfigError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(invalid(key, format!("must be an integer >= 1, got {value}")))
    }
}
