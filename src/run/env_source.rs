//! Where a run's environments come from: the built-in registry, a user's registry, or a
//! factory ([`EnvSource`]), resolved against the config's `env`.

use rlpg_envs::{Env, EnvEntry, EnvError, MakeEnv, Registry, Stepping, VecEnv};

use super::RunError;
use crate::config::Config;
use crate::trainer::EnvFactory;

/// Where the environments of a run come from.
#[derive(Clone, Copy, Default)]
pub enum EnvSource<'a> {
    /// The built-in registry's entry for the config's `env`.
    #[default]
    Builtin,
    /// This registry's entry for the config's `env`.
    Registry(&'a Registry),
    /// This factory, whatever the config's `env` says: it must build the run's environment.
    Factory(EnvFactory<'a>),
}

/// A run's environments, resolved from an [`EnvSource`] and the config's `env`.
pub(crate) enum Envs<'a> {
    Factory(EnvFactory<'a>),
    Entry(EnvEntry),
}

impl<'a> Envs<'a> {
    /// Looks `env` up unless a factory was given; an unregistered id is
    /// [`RunError::NotRegistered`].
    /// An id `gymnasium:<ID>` that the registry does not have is made by the `gymnasium` bridge
    /// with the config's `env_kwargs`; an error making it (no Python, an unknown id) is
    /// [`RunError::Usage`] quoting Gymnasium's message.
    pub(crate) fn resolve(source: EnvSource<'a>, config: &Config) -> Result<Self, RunError> {
        let env = config.env.as_str();
        let lookup = |registry: &Registry| match registry.get(env) {
            Ok(entry) => Ok(Envs::Entry(entry.clone())),
            Err(_) if env.starts_with(crate::config::GYMNASIUM_PREFIX) => {
                crate::config::gymnasium_entry(config).map(Envs::Entry).map_err(RunError::Usage)
            }
            Err(_) => Err(RunError::NotRegistered {
                id: env.to_owned(),
                registered: registry.ids().into_iter().map(str::to_owned).collect(),
            }),
        };
        match source {
            EnvSource::Builtin => lookup(&Registry::builtin()),
            EnvSource::Registry(registry) => lookup(registry),
            EnvSource::Factory(factory) => Ok(Envs::Factory(factory)),
        }
    }

    pub(crate) fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        MakeEnv::make(self)
    }
}

impl MakeEnv for Envs<'_> {
    fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        match self {
            Envs::Factory(factory) => factory.make(),
            Envs::Entry(entry) => entry.make(),
        }
    }
    fn make_send(&self) -> Result<Box<dyn Env + Send>, EnvError> {
        match self {
            Envs::Factory(factory) => factory.make_send(),
            Envs::Entry(entry) => entry.make_send(),
        }
    }
    fn make_vec(&self, n: usize, stepping: &Stepping) -> Result<VecEnv, EnvError> {
        match self {
            Envs::Factory(factory) => factory.make_vec(n, stepping),
            Envs::Entry(entry) => entry.make_vec(n, stepping),
        }
    }
}

/// The built-in environment `config.env` as an [`EnvFactory`]-compatible closure. It makes
/// `Box<dyn Env>`, which steps on one thread; for `env_threads`, pass the registry's entry
/// instead (`Registry::builtin().get(id)`), which makes `Send` envs.
pub fn registry_factory(config: &Config) -> impl Fn() -> Result<Box<dyn Env>, EnvError> + '_ {
    move || rlpg_envs::make(&config.env)
}
