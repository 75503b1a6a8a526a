//! Range checks of every setting ([`Config::validate`]) and the checks that depend on the
//! environment's spaces ([`Config::validate_against`]).

use rlpg_agents::SettingsContext;
use std::time::Duration;

use rlpg_envs::{EnvThreads, Space, Stepping};

use super::{AgentKind, Config, ConfigError, GYMNASIUM_PREFIX};

/// The most threads `env_threads` may ask for.
pub(crate) const MAX_ENV_THREADS: usize = 1024;

/// The largest integer a TOML file can hold; larger `u64` settings could not be written back.
const TOML_INT_MAX: u64 = i64::MAX as u64;
/// Most environments stepped at once (`num_envs`), as `Config::check_sizes` bounds them.
const MAX_ENVS: u128 = 1 << 16;
/// Most evaluation episodes (one environment each); `rlpg eval --episodes` has the same bound.
const MAX_EVAL_EPISODES: u128 = 100_000;
/// Most transitions held at once: REINFORCE's rollout, the replay buffer, a minibatch.
const MAX_TRANSITIONS: u128 = 1 << 27;
/// Widest hidden layer.
const MAX_LAYER_WIDTH: u128 = 1 << 16;
/// Most weights between the hidden layers of one network (1 GiB of `f32`).
const MAX_HIDDEN_WEIGHTS: u128 = 1 << 28;

impl Config {
    /// Checks every setting's range, and the chosen agent's settings against `num_envs`. Errors
    /// name the full key path, e.g. `reinforce.gamma: must be in (0, 1], got 1.5`. Does not
    /// consult the environment registry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.env.trim().is_empty() {
            return Err(invalid("env", "must name an environment, got an empty string"));
        }
        self.check_env_kwargs()?;
        self.info_keywords()?;
        at_least_one("total_timesteps", self.total_timesteps)?;
        at_least_one("num_envs", self.num_envs as u64)?;
        at_least_one("eval_episodes", self.eval_episodes as u64)?;
        at_least_one("log_every", self.log_every)?;
        at_least_one("keep_checkpoints", self.keep_checkpoints as u64)?;
        if let EnvThreads::Count(n) = self.env_threads {
            if n > MAX_ENV_THREADS {
                return Err(invalid(
                    "env_threads",
                    format!(
                        "must be a number of threads from 0 (one per core) to {MAX_ENV_THREADS}, \
                         or \"auto\"; got {n}"
                    ),
                ));
            }
        }
        self.check_stepping()?;
        self.check_async_batch()?;
        self.check_act_beside_learning()?;
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
        self.check_sizes()?;
        self.check_agent_sections(None)
    }

    /// Upper bounds on what a config makes rlpg allocate at once: environments, evaluation
    /// episodes (one environment each), REINFORCE's rollout, the replay buffer and minibatch, and
    /// the networks' hidden layers. A config may come from a checkpoint or a run directory rlpg
    /// did not write, and `rlpg eval` or `rlpg::Policy::load` build its agent before its
    /// tensors are compared with the file's: without these bounds a few edited bytes ask for
    /// terabytes (a capacity overflow panic, or minutes of swapping before the kernel kills the
    /// process). Each bound is far above any sensible run; the agents' own settings check what
    /// the values mean, these only how big they are.
    fn check_sizes(&self) -> Result<(), ConfigError> {
        let at_most = |key: &str, value: u128, max: u128, what: &str| {
            if value <= max {
                Ok(())
            } else {
                Err(invalid(key, format!("{what} must be at most {max}, got {value}")))
            }
        };
        let envs = self.num_envs as u128;
        at_most("num_envs", envs, MAX_ENVS, "environments stepped at once")?;
        let episodes = self.eval_episodes as u128;
        at_most("eval_episodes", episodes, MAX_EVAL_EPISODES, "episodes (one environment each)")?;
        let r = &self.reinforce;
        let rollout = r.n_steps as u128 * envs;
        at_most("reinforce.n_steps", rollout, MAX_TRANSITIONS, "n_steps × num_envs (the rollout)")?;
        let p = &self.pathwise;
        at_most("pathwise.buffer_size", p.buffer_size as u128, MAX_TRANSITIONS, "the buffer")?;
        at_most("pathwise.batch_size", p.batch_size as u128, MAX_TRANSITIONS, "the minibatch")?;
        for (key, hidden) in [
            ("reinforce.hidden", &r.hidden),
            ("pathwise.actor_hidden", &p.actor_hidden),
            ("pathwise.critic_hidden", &p.critic_hidden),
        ] {
            for &width in hidden {
                at_most(key, width as u128, MAX_LAYER_WIDTH, "each hidden layer's width")?;
            }
            let weights: u128 = hidden.windows(2).map(|w| w[0] as u128 * w[1] as u128).sum();
            at_most(key, weights, MAX_HIDDEN_WEIGHTS, "the weights between hidden layers")?;
        }
        Ok(())
    }

    /// `env_kwargs` only for `gymnasium:<ID>` envs, and only values that JSON (and so Python) can
    /// carry exactly: no NaN or infinities, and no dates or times in a config built in code
    /// (a TOML file's dates arrive as their text).
    fn check_env_kwargs(&self) -> Result<(), ConfigError> {
        if self.env_kwargs.is_empty() {
            return Ok(());
        }
        if !self.env.starts_with(GYMNASIUM_PREFIX) {
            return Err(invalid(
                "env_kwargs",
                format!(
                    "keyword arguments are for Gymnasium environments (env = \"{GYMNASIUM_PREFIX}<ID>\"), \
                     but env is `{}`",
                    self.env
                ),
            ));
        }
        fn check(key: &str, value: &toml::Value) -> Result<(), ConfigError> {
            match value {
                toml::Value::Datetime(_) => Err(invalid(
                    key,
                    "a date or time cannot be passed to gymnasium.make; write it as a string",
                )),
                toml::Value::Float(f) if !f.is_finite() => {
                    Err(invalid(key, format!("must be a finite number, got {f}")))
                }
                toml::Value::Array(items) => {
                    items.iter().enumerate().try_for_each(|(i, v)| check(&format!("{key}[{i}]"), v))
                }
                toml::Value::Table(table) => {
                    table.iter().try_for_each(|(k, v)| check(&format!("{key}.{k}"), v))
                }
                _ => Ok(()),
            }
        }
        self.env_kwargs.iter().try_for_each(|(k, v)| check(&format!("env_kwargs.{k}"), v))
    }

    /// `env_workers` only for `gymnasium:<ID>` envs and without `env_threads`; a positive,
    /// finite `env_worker_timeout`.
    fn check_stepping(&self) -> Result<(), ConfigError> {
        let timeout = self.env_worker_timeout;
        if !(timeout > 0.0 && Duration::try_from_secs_f64(timeout).is_ok()) {
            return Err(invalid(
                "env_worker_timeout",
                format!("must be a positive, finite number of seconds, got {timeout}"),
            ));
        }
        if self.env_workers == 0 {
            return Ok(());
        }
        if self.env_workers > MAX_ENV_THREADS {
            return Err(invalid(
                "env_workers",
                format!("must be at most {MAX_ENV_THREADS}, got {}", self.env_workers),
            ));
        }
        if !self.env.starts_with(GYMNASIUM_PREFIX) {
            return Err(invalid(
                "env_workers",
                format!(
                    "worker processes run Gymnasium envs (env = \"{GYMNASIUM_PREFIX}<ID>\"), but env \
                     is `{}`; Rust envs step on several threads with env_threads",
                    self.env
                ),
            ));
        }
        if matches!(self.env_threads, EnvThreads::Count(n) if n != 1) {
            return Err(invalid(
                "env_threads",
                format!(
                    "with env_workers = {} the envs step in worker processes, in parallel \
                     already; set env_threads = 1 (or leave it out)",
                    self.env_workers
                ),
            ));
        }
        Ok(())
    }

    /// `async_batch`: a divisor of `num_envs`, for the pathwise agent without pink noise, envs
    /// stepped in this process.
    fn check_async_batch(&self) -> Result<(), ConfigError> {
        let (batch, n) = (self.async_batch, self.num_envs);
        if batch == 0 {
            return Ok(());
        }
        let problem = if batch > n || n % batch != 0 {
            format!("must divide num_envs ({n}) and be at most it, got {batch}")
        } else if self.agent != AgentKind::Pathwise {
            format!(
                "asynchronous batches are for off-policy agents (agent = \"pathwise\"): the \
                 {} agent's rollouts follow each env through time, and a batch holds whichever \
                 envs were ready; set async_batch = 0",
                self.agent
            )
        } else if self.pathwise.exploration == rlpg_agents::Exploration::Pink {
            "pathwise.exploration = \"pink\" follows each env through time, and a batch holds \
             whichever envs were ready; use \"gaussian\" exploration or async_batch = 0"
                .to_owned()
        } else if self.env_workers > 0 {
            "asynchronous batches step envs of this process on threads; with env_workers the \
             envs step in worker processes (set one of them to 0)"
                .to_owned()
        } else if !self.info_keywords.is_empty() {
            "asynchronous batches do not add up the env's step infos; leave info_keywords out \
             or set async_batch = 0"
                .to_owned()
        } else {
            return Ok(());
        };
        Err(invalid("async_batch", problem))
    }

    /// `act_beside_learning`: the pathwise agent with i.i.d. exploration noise, in lockstep.
    fn check_act_beside_learning(&self) -> Result<(), ConfigError> {
        if !self.act_beside_learning {
            return Ok(());
        }
        let problem = if self.agent != AgentKind::Pathwise {
            format!(
                "acting beside learning is for the pathwise agent, whose actor acts on a copy of its policy; the {} agent learns from whole rollouts of its current policy: set act_beside_learning = false",
                self.agent
            )
        } else if self.pathwise.exploration == rlpg_agents::Exploration::Pink {
            "pathwise.exploration = \"pink\" keeps each env's noise sequence in the agent, and the actor acts beside it: use \"gaussian\" exploration or act_beside_learning = false"
                .to_owned()
        } else if self.async_batch > 0 {
            "asynchronous batches already step the envs while the agent learns: set async_batch              = 0 or act_beside_learning = false"
                .to_owned()
        } else {
            return Ok(());
        };
        Err(invalid("act_beside_learning", problem))
    }

    /// The rows of the agent's batches: `async_batch` envs when asynchronous, else `num_envs`.
    pub fn agent_rows(&self) -> usize {
        if self.async_batch > 0 { self.async_batch } else { self.num_envs }
    }

    /// How the run's environments step: `env_threads`, `env_workers`, `env_worker_timeout`.
    pub fn stepping(&self) -> Stepping {
        let timeout = Duration::try_from_secs_f64(self.env_worker_timeout);
        Stepping {
            threads: self.env_threads,
            workers: self.env_workers,
            worker_timeout: timeout.unwrap_or(Stepping::DEFAULT_WORKER_TIMEOUT),
        }
    }

    /// `env_kwargs` as a JSON object (what the `gymnasium` bridge passes to `gymnasium.make`).
    /// Validated configs convert exactly.
    pub fn env_kwargs_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(&self.env_kwargs) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// Checks every agent section with its settings' own `validate` (the one the agent's
    /// constructor calls too): the chosen agent's against `num_envs` and, when known, the
    /// action space; the others' ranges only. Errors name the full key, e.g.
    /// `pathwise.learning_starts`.
    fn check_agent_sections(&self, action_space: Option<&Space>) -> Result<(), ConfigError> {
        let chosen =
            SettingsContext { num_envs: Some(self.agent_rows()), action_space, env: &self.env };
        let context =
            |agent| if self.agent == agent { chosen } else { SettingsContext::RANGES_ONLY };
        let checks = [
            ("reinforce", self.reinforce.validate(&context(AgentKind::Reinforce))),
            ("pathwise", self.pathwise.validate(&context(AgentKind::Pathwise))),
        ];
        for (section, check) in checks {
            check.map_err(|e| invalid(&format!("{section}.{}", e.key), e.message))?;
        }
        Ok(())
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

    /// Checks the settings that depend on the environment and the machine: a `device` this
    /// machine has, observation normalization that needs
    /// Box observations, then the chosen agent's section against the action space (its
    /// settings' own `validate`: estimators that need continuous actions, options that apply to
    /// one kind of action space only, an option counting as given when it differs from its
    /// default). Errors name the key and the space.
    pub fn validate_against(
        &self,
        observation_space: &Space,
        action_space: &Space,
    ) -> Result<(), ConfigError> {
        let device = self.device.resolve().map_err(|message| invalid("device", message))?;
        self.check_backend(device)?;
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
        self.check_agent_sections(Some(action_space))
    }
}

impl Config {
    /// The chosen agent's `backend` against the device and the kernel's coverage table (the
    /// check its constructor makes): `"kernel"` with an option the kernel does not compute, or
    /// on a GPU, is an error naming `{agent}.backend`.
    fn check_backend(&self, device: tch::Device) -> Result<(), ConfigError> {
        use rlpg_agents::backend::{coverage, resolve};
        let (section, choice, kind, settings) = match self.agent {
            AgentKind::Reinforce => (
                "reinforce",
                self.reinforce.backend,
                coverage::AgentKind::Reinforce,
                serde_json::to_value(&self.reinforce),
            ),
            AgentKind::Pathwise => (
                "pathwise",
                self.pathwise.backend,
                coverage::AgentKind::Pathwise,
                serde_json::to_value(&self.pathwise),
            ),
        };
        let settings = settings.map_err(|e| invalid(section, format!("cannot serialize: {e}")))?;
        resolve(choice, kind, &settings, device)
            .map(|_| ())
            .map_err(|e| invalid(&format!("{section}.{}", e.key), e.message))
    }
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
