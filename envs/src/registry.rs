//! The registry: environment ids, how to build each, and the listing of what is available.
//!
//! The built-in environments are one table (`ENTRIES`); [`make`], [`spec`] and [`registry()`]
//! read it. A program that trains its own environments builds a [`Registry`]: the built-ins
//! plus its entries (`Registry::builtin().with("GridReach-v0", GridReach::new)`), each an id,
//! a factory, an optional time limit and a description.

use std::fmt;
use std::sync::Arc;

use crate::classic::acrobot::Acrobot;
use crate::classic::cartpole::CartPole;
use crate::classic::mountain_car::MountainCar;
use crate::classic::mountain_car_continuous::MountainCarContinuous;
use crate::classic::pendulum::Pendulum;
use crate::core::{Env, EnvError, InfoKey, Space};
use crate::restock::Restock;
use crate::vec_env::{Stepping, VecEnv};
use crate::wrappers::time_limit::TimeLimit;

/// One registered environment, as listed by [`registry`].
#[derive(Clone, Debug, PartialEq)]
pub struct EnvSpec {
    /// The id passed to [`make`], e.g. `"CartPole-v1"`.
    pub id: String,
    /// Observation space of the environment.
    pub observation_space: Space,
    /// Action space of the environment.
    pub action_space: Space,
    /// Whether the environment says which actions each state allows ([`Env::masks_actions`]).
    pub masks_actions: bool,
    /// The named numbers its steps report besides the reward ([`Env::info_keys`]).
    pub info_keys: Vec<InfoKey>,
    /// Episodes are truncated after this many steps by [`make`]'s [`TimeLimit`].
    pub max_episode_steps: Option<usize>,
    /// One line on what the environment is (may be empty for a user's entry).
    pub description: String,
}

impl EnvSpec {
    /// The specification of `env`, registered as `id`.
    fn of(id: &str, env: &dyn Env, max_episode_steps: Option<usize>, description: &str) -> Self {
        Self {
            id: id.to_owned(),
            observation_space: env.observation_space().clone(),
            action_space: env.action_space().clone(),
            masks_actions: env.masks_actions(),
            info_keys: env.info_keys().to_vec(),
            max_episode_steps,
            description: description.to_owned(),
        }
    }
}

impl fmt::Display for EnvSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = self.max_episode_steps.map_or_else(|| "none".to_owned(), |n| n.to_string());
        let masked = if self.masks_actions { " (masked)" } else { "" };
        write!(
            f,
            "{}: observations {}, actions {}{masked}",
            self.id, self.observation_space, self.action_space
        )?;
        if !self.info_keys.is_empty() {
            let infos: Vec<String> =
                self.info_keys.iter().map(|k| format!("{} ({})", k.name, k.reduce)).collect();
            write!(f, ", infos {}", infos.join(", "))?;
        }
        write!(f, ", time limit {limit}: {}", self.description)
    }
}

/// How to build one registered environment.
struct Entry {
    id: &'static str,
    max_episode_steps: usize,
    description: &'static str,
    /// Builds the environment wrapped in a [`TimeLimit`] of the given length. The wrapper is
    /// applied to the concrete type, not to a `Box<dyn Env>`, so that a step costs one dynamic
    /// call rather than two and the environment's step inlines into the wrapper's.
    build: Builder,
}

/// How a built-in env is built: as a `Send` env (every native one), or as one that must stay on
/// the thread that made it (gym-rs's MountainCar holds SDL handles, which are not `Send`).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "gym-rs"), allow(dead_code))]
enum Builder {
    Send(fn(usize) -> Box<dyn Env + Send>),
    Local(fn(usize) -> Box<dyn Env>),
}

impl Entry {
    fn make(&self) -> Box<dyn Env> {
        match self.build {
            Builder::Send(build) => build(self.max_episode_steps),
            Builder::Local(build) => build(self.max_episode_steps),
        }
    }

    fn make_send(&self) -> Result<Box<dyn Env + Send>, EnvError> {
        match self.build {
            Builder::Send(build) => Ok(build(self.max_episode_steps)),
            Builder::Local(_) => Err(EnvError::Other {
                env: self.id.to_owned(),
                message: "this built-in env is not Send (it holds handles that must stay on \
                          their thread), so it cannot be stepped on several threads: step it on \
                          one thread (env_threads = 1)"
                    .to_owned(),
            }),
        }
    }
}

const ENTRIES: &[Entry] = &[
    Entry {
        id: "CartPole-v1",
        max_episode_steps: 500,
        description: "balance a pole on a cart by pushing it left or right (Gymnasium 1.4)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(CartPole::new(), limit))),
    },
    Entry {
        id: "Pendulum-v1",
        max_episode_steps: 200,
        description: "swing a pendulum up and hold it with a bounded torque (Gymnasium 1.4)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(Pendulum::new(), limit))),
    },
    Entry {
        id: "Acrobot-v1",
        max_episode_steps: 500,
        description: "swing the free end of a two-link robot above a line, torque on the elbow only (Gymnasium 1.4)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(Acrobot::new(), limit))),
    },
    Entry {
        id: "MountainCar-v0",
        max_episode_steps: 200,
        description: "drive an underpowered car up a hill with three discrete pushes (Gymnasium 1.4)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(MountainCar::new(), limit))),
    },
    Entry {
        id: "MountainCarContinuous-v0",
        max_episode_steps: 999,
        description: "drive an underpowered car up a hill with a continuous force, paying for it (Gymnasium 1.4)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(MountainCarContinuous::new(), limit))),
    },
    Entry {
        id: crate::point_reach::POINT_REACH_ID,
        max_episode_steps: 200,
        description: "push a point mass to a goal; each step integrates 2,000 substeps (~50 µs), a stand-in for a costly simulator in benchmarks of env_threads",
        build: Builder::Send(|limit| {
            Box::new(TimeLimit::new(crate::point_reach::PointReach::new(), limit))
        }),
    },
    Entry {
        id: crate::restock::RESTOCK_ID,
        max_episode_steps: crate::restock::EPISODE_DAYS,
        description: "restock 3 products on 8-unit shelves against random weekly demand; multi-part orders, masks for orders that do not fit (rlpg's own)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(Restock::new(), limit))),
    },
    Entry {
        id: crate::restock::RESTOCK_FLAT_ID,
        max_episode_steps: crate::restock::EPISODE_DAYS,
        description: "Restock-v0 with the order flattened into Discrete(125), over-capacity units clipped and charged (no masks)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(Restock::flattened(), limit))),
    },
    Entry {
        id: crate::restock::RESTOCK6_ID,
        max_episode_steps: crate::restock::EPISODE_DAYS,
        description: "Restock-v0 with six products sharing one delivery fee: MultiDiscrete([5; 6]) orders, masks for orders that do not fit (rlpg's own)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(Restock::six(), limit))),
    },
    Entry {
        id: crate::restock::RESTOCK6_FLAT_ID,
        max_episode_steps: crate::restock::EPISODE_DAYS,
        description: "Restock6-v0 with the order flattened into Discrete(15625), over-capacity units clipped and charged (no masks)",
        build: Builder::Send(|limit| Box::new(TimeLimit::new(Restock::six_flattened(), limit))),
    },
    #[cfg(feature = "gym-rs")]
    Entry {
        id: crate::gym_rs::MOUNTAIN_CAR_ID,
        max_episode_steps: 200,
        description: "drive an underpowered car up a hill (the gym-rs crate's MountainCar)",
        build: Builder::Local(|limit| {
            Box::new(TimeLimit::new(crate::gym_rs::GymRsEnv::mountain_car(), limit))
        }),
    },
];

fn entry(id: &str) -> Result<&'static Entry, EnvError> {
    ENTRIES.iter().find(|e| e.id == id).ok_or_else(|| EnvError::UnknownEnv {
        id: id.to_owned(),
        known: ENTRIES.iter().map(|e| e.id.to_owned()).collect(),
    })
}

/// Builds the registered environment `id`, wrapped in its [`TimeLimit`] (the environment itself
/// never truncates). Unknown ids give [`EnvError::UnknownEnv`] listing the known ones.
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    entry(id).map(Entry::make)
}

/// [`make`] as a `Send` env, for a vector env stepped on several threads.
pub fn make_send(id: &str) -> Result<Box<dyn Env + Send>, EnvError> {
    entry(id)?.make_send()
}

/// Something that builds independent environments of one kind: a [`Registry`]'s [`EnvEntry`],
/// a closure `Fn() -> Result<Box<dyn Env>, EnvError>`, or a [`SendFactory`].
///
/// Whether the environments may be stepped on several threads is in the types: an entry made by
/// [`EnvEntry::new`] (what [`Registry::with`] makes) or a [`SendFactory`] builds `Send` envs;
/// a plain closure returning `Box<dyn Env>` and an [`EnvEntry::local`] build envs that stay on
/// the thread that made them, and [`MakeEnv::make_send`] refuses them with an error that says so.
pub trait MakeEnv {
    /// Builds one environment.
    fn make(&self) -> Result<Box<dyn Env>, EnvError>;

    /// `n` envs in a vector env stepped as `stepping` says. The default steps envs of this
    /// process ([`VecEnv::make`]); worker processes are an error, as only the Gymnasium bridge's
    /// entries have them.
    fn make_vec(&self, n: usize, stepping: &Stepping) -> Result<VecEnv, EnvError> {
        if stepping.workers > 0 {
            return Err(no_workers(self.make()?.id()));
        }
        VecEnv::make(self, n, stepping.threads)
    }

    /// Builds one environment that may move to another thread. The default refuses: it is for
    /// makers whose envs are not known to be `Send`.
    fn make_send(&self) -> Result<Box<dyn Env + Send>, EnvError> {
        let env = self.make()?;
        Err(EnvError::Other {
            env: env.id().to_owned(),
            message: "this env is made as a Box<dyn Env>, which is not known to be Send, so it \
                      cannot be stepped on several threads: make it as a Box<dyn Env + Send> \
                      (Registry::with or EnvEntry::new for a Send env, SendFactory for a \
                      factory), or step it on one thread (env_threads = 1)"
                .to_owned(),
        })
    }
}

impl<F: Fn() -> Result<Box<dyn Env>, EnvError>> MakeEnv for F {
    fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        self()
    }
}

/// The error for worker processes asked of envs that have none.
fn no_workers(env: &str) -> EnvError {
    EnvError::Other {
        env: env.to_owned(),
        message: "env_workers: worker processes run Gymnasium envs (env = \"gymnasium:<ID>\", \
                  on a Unix system); this env steps in this process, on env_threads threads"
            .to_owned(),
    }
}

/// Makes the vector env of an [`EnvEntry`] whose envs step in worker processes.
type WorkersFn = dyn Fn(usize, &Stepping) -> Result<VecEnv, EnvError> + Send + Sync;

/// A factory closure of `Send` environments, `Fn() -> Result<Box<dyn Env + Send>, EnvError>`, as a
/// [`MakeEnv`] whose envs may be stepped on several threads.
///
/// ```
/// use rlpg_envs::{CartPole, Env, MakeEnv, SendFactory};
/// let factory = SendFactory(|| Ok(Box::new(CartPole::new()) as Box<dyn Env + Send>));
/// assert!(factory.make_send().is_ok());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SendFactory<F>(pub F);

impl<F: Fn() -> Result<Box<dyn Env + Send>, EnvError>> MakeEnv for SendFactory<F> {
    fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        (self.0)().map(|env| env as Box<dyn Env>)
    }
    fn make_send(&self) -> Result<Box<dyn Env + Send>, EnvError> {
        (self.0)()
    }
}

/// The specification of the registered environment `id`.
pub fn spec(id: &str) -> Result<EnvSpec, EnvError> {
    entry(id).map(to_spec)
}

/// Every registered environment, in registration order.
pub fn registry() -> Vec<EnvSpec> {
    ENTRIES.iter().map(to_spec).collect()
}

fn to_spec(entry: &Entry) -> EnvSpec {
    let env = entry.make();
    EnvSpec::of(entry.id, &*env, Some(entry.max_episode_steps), entry.description)
}

/// Builds one environment, wrapped in a [`TimeLimit`] of the given length when there is one.
type BuildFn<E> = dyn Fn(Option<usize>) -> Result<Box<E>, EnvError> + Send + Sync;

/// How an [`EnvEntry`] builds its environments: as `Send` ones, or as ones that stay on the
/// thread that made them.
#[derive(Clone)]
enum Build {
    Send(Arc<BuildFn<dyn Env + Send>>),
    Local(Arc<BuildFn<dyn Env>>),
}

/// One environment of a [`Registry`]: its id, a factory, an optional time limit that the
/// registry applies with [`TimeLimit`], and a one-line description for listings.
///
/// ```
/// use rlpg_envs::{EnvEntry, Pendulum, Registry};
/// let entry = EnvEntry::new("LongPendulum-v0", Pendulum::new)
///     .max_episode_steps(1000)
///     .description("Pendulum-v1 with five times the time limit");
/// let registry = Registry::builtin().try_with_entry(entry).expect("a new, well-formed id");
/// assert_eq!(registry.spec("LongPendulum-v0").unwrap().max_episode_steps, Some(1000));
/// ```
#[derive(Clone)]
pub struct EnvEntry {
    id: String,
    description: String,
    max_episode_steps: Option<usize>,
    build: Build,
    /// Makes its vector env in worker processes (the Gymnasium bridge's entries).
    workers: Option<Arc<WorkersFn>>,
}

impl fmt::Debug for EnvEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvEntry")
            .field("id", &self.id)
            .field("max_episode_steps", &self.max_episode_steps)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl EnvEntry {
    /// An entry for `id` whose environments `factory` makes; no time limit (the factory's
    /// environment may end episodes or truncate them itself) and no description.
    ///
    /// The environment must be `Send`, so that a vector env can step several of them on
    /// several threads (`env_threads`): plain data and `Arc`/`Mutex` are; `Rc`, `RefCell`
    /// shared through `Rc` and raw pointers are not. An environment that cannot be `Send` is
    /// registered with [`EnvEntry::local`] instead, and steps on one thread.
    pub fn new<E, F>(id: impl Into<String>, factory: F) -> Self
    where
        E: Env + Send + 'static,
        F: Fn() -> E + Send + Sync + 'static,
    {
        Self::try_new(id, move || Ok(factory()))
    }

    /// [`EnvEntry::new`] for a factory that can fail (e.g. one that reads a file).
    pub fn try_new<E, F>(id: impl Into<String>, factory: F) -> Self
    where
        E: Env + Send + 'static,
        F: Fn() -> Result<E, EnvError> + Send + Sync + 'static,
    {
        // The time limit wraps the concrete type, so a step stays one dynamic call.
        let build = move |limit: Option<usize>| -> Result<Box<dyn Env + Send>, EnvError> {
            let env = factory()?;
            Ok(match limit {
                Some(limit) => Box::new(TimeLimit::new(env, limit)),
                None => Box::new(env),
            })
        };
        Self::with_build(id.into(), Build::Send(Arc::new(build)))
    }

    /// An entry for an environment that is not `Send` (e.g. one holding an `Rc` or a handle of
    /// a library that must stay on its thread): it trains as any other, but its vector env
    /// steps on one thread, and asking for more (`env_threads`) is an error saying why.
    pub fn local<E, F>(id: impl Into<String>, factory: F) -> Self
    where
        E: Env + 'static,
        F: Fn() -> E + Send + Sync + 'static,
    {
        Self::try_local(id, move || Ok(factory()))
    }

    /// [`EnvEntry::local`] for a factory that can fail.
    pub fn try_local<E, F>(id: impl Into<String>, factory: F) -> Self
    where
        E: Env + 'static,
        F: Fn() -> Result<E, EnvError> + Send + Sync + 'static,
    {
        let build = move |limit: Option<usize>| -> Result<Box<dyn Env>, EnvError> {
            let env = factory()?;
            Ok(match limit {
                Some(limit) => Box::new(TimeLimit::new(env, limit)),
                None => Box::new(env),
            })
        };
        Self::with_build(id.into(), Build::Local(Arc::new(build)))
    }

    fn with_build(id: String, build: Build) -> Self {
        Self { id, description: String::new(), max_episode_steps: None, build, workers: None }
    }

    /// Makes this entry's vector envs with `workers` when `env_workers` asks for worker
    /// processes (what the Gymnasium bridge's `gymnasium::entry` does).
    pub fn with_workers(
        mut self,
        workers: impl Fn(usize, &Stepping) -> Result<VecEnv, EnvError> + Send + Sync + 'static,
    ) -> Self {
        self.workers = Some(Arc::new(workers));
        self
    }

    /// Whether its environments are `Send` ([`EnvEntry::new`]), so that they may be stepped
    /// on several threads.
    pub fn is_send(&self) -> bool {
        matches!(self.build, Build::Send(_))
    }

    /// Truncates every episode after `steps` steps with a [`TimeLimit`] added by the registry.
    pub fn max_episode_steps(mut self, steps: usize) -> Self {
        self.max_episode_steps = Some(steps);
        self
    }

    /// One line on what the environment is, shown by `rlpg envs`.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Builds one environment, with the entry's time limit.
    pub fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        match &self.build {
            Build::Send(build) => build(self.max_episode_steps).map(|env| env as Box<dyn Env>),
            Build::Local(build) => build(self.max_episode_steps),
        }
    }

    /// [`EnvEntry::make`] as a `Send` env; an error for an [`EnvEntry::local`] entry.
    pub fn make_send(&self) -> Result<Box<dyn Env + Send>, EnvError> {
        match &self.build {
            Build::Send(build) => build(self.max_episode_steps),
            Build::Local(_) => Err(EnvError::Other {
                env: self.id.clone(),
                message: "registered with EnvEntry::local (Registry::with_local) as an env that \
                          is not Send, so it cannot be stepped on several threads: step it on \
                          one thread (env_threads = 1), or make it Send and register it with \
                          Registry::with"
                    .to_owned(),
            }),
        }
    }

    /// The entry's specification; builds the environment once to read its spaces.
    pub fn spec(&self) -> Result<EnvSpec, EnvError> {
        let env = self.make()?;
        Ok(EnvSpec::of(&self.id, &*env, self.max_episode_steps, &self.description))
    }

    fn builtin(entry: &'static Entry) -> Self {
        // Built-in environments are only built through their limit: `None` cannot occur, as no
        // method removes a limit once set, and a limit no episode reaches stands in for it.
        let build = match entry.build {
            Builder::Send(build) => Build::Send(Arc::new(move |limit: Option<usize>| {
                Ok(build(limit.unwrap_or(usize::MAX)))
            })),
            Builder::Local(build) => Build::Local(Arc::new(move |limit: Option<usize>| {
                Ok(build(limit.unwrap_or(usize::MAX)))
            })),
        };
        Self {
            id: entry.id.to_owned(),
            description: entry.description.to_owned(),
            max_episode_steps: Some(entry.max_episode_steps),
            build,
            workers: None,
        }
    }
}

impl MakeEnv for EnvEntry {
    fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        EnvEntry::make(self)
    }
    fn make_vec(&self, n: usize, stepping: &Stepping) -> Result<VecEnv, EnvError> {
        match &self.workers {
            Some(workers) if stepping.workers > 0 => workers(n, stepping),
            _ if stepping.workers > 0 => Err(no_workers(&self.id)),
            _ => VecEnv::make(self, n, stepping.threads),
        }
    }
    fn make_send(&self) -> Result<Box<dyn Env + Send>, EnvError> {
        EnvEntry::make_send(self)
    }
}

/// Why an entry could not be added to a [`Registry`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The id is registered already.
    #[error("environment id `{id}` is registered twice")]
    Duplicate {
        /// The id.
        id: String,
    },
    /// The id is not of the form the registry accepts.
    #[error("environment id {id:?} is malformed: {reason}")]
    MalformedId {
        /// The id as given.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The environments a program can build by id: the built-ins plus the program's own entries.
///
/// Ids are Gymnasium-style: an ASCII letter first, then letters, digits and `_ - . : /` (e.g.
/// `"GridReach-v0"`, `"my-lab/Maze-v2"`), at most [`Registry::MAX_ID_LEN`] characters, each
/// registered once.
///
/// [`Registry::with`] chains for a program's `main` and never panics: a rejected entry is
/// recorded and reported by [`Registry::check`] (the CLI checks before anything else and exits
/// with code 2). [`Registry::register`] and [`Registry::try_with`] report it at once.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    entries: Vec<EnvEntry>,
    rejected: Vec<RegistryError>,
}

impl Registry {
    /// The longest id accepted.
    pub const MAX_ID_LEN: usize = 100;

    /// A registry without any environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in environments ([`registry()`] lists them).
    pub fn builtin() -> Self {
        Self { entries: ENTRIES.iter().map(EnvEntry::builtin).collect(), rejected: Vec::new() }
    }

    /// Adds `entry`, or fails if its id is malformed or registered already.
    pub fn register(&mut self, entry: EnvEntry) -> Result<(), RegistryError> {
        check_id(&entry.id)?;
        if self.entries.iter().any(|e| e.id == entry.id) {
            return Err(RegistryError::Duplicate { id: entry.id });
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Adds an entry for `id` made by `factory` (no time limit, no description); a rejected id
    /// is recorded for [`Registry::check`]. See [`Registry::with_entry`] for the other fields.
    /// The environment must be `Send` (see [`EnvEntry::new`]); [`Registry::with_local`] takes
    /// one that is not.
    pub fn with<E, F>(self, id: impl Into<String>, factory: F) -> Self
    where
        E: Env + Send + 'static,
        F: Fn() -> E + Send + Sync + 'static,
    {
        self.with_entry(EnvEntry::new(id, factory))
    }

    /// [`Registry::with`] for an environment that is not `Send` ([`EnvEntry::local`]): its
    /// vector env steps on one thread.
    pub fn with_local<E, F>(self, id: impl Into<String>, factory: F) -> Self
    where
        E: Env + 'static,
        F: Fn() -> E + Send + Sync + 'static,
    {
        self.with_entry(EnvEntry::local(id, factory))
    }

    /// Adds `entry`; a rejected one is recorded for [`Registry::check`].
    pub fn with_entry(mut self, entry: EnvEntry) -> Self {
        if let Err(e) = self.register(entry) {
            self.rejected.push(e);
        }
        self
    }

    /// [`Registry::with`], failing at once on a rejected id.
    pub fn try_with<E, F>(self, id: impl Into<String>, factory: F) -> Result<Self, RegistryError>
    where
        E: Env + Send + 'static,
        F: Fn() -> E + Send + Sync + 'static,
    {
        self.try_with_entry(EnvEntry::new(id, factory))
    }

    /// [`Registry::with_entry`], failing at once on a rejected entry.
    pub fn try_with_entry(mut self, entry: EnvEntry) -> Result<Self, RegistryError> {
        self.register(entry)?;
        Ok(self)
    }

    /// The first entry that [`Registry::with`] or [`Registry::with_entry`] rejected, if any.
    pub fn check(&self) -> Result<(), RegistryError> {
        self.rejected.first().map_or(Ok(()), |e| Err(e.clone()))
    }

    /// The registered ids, in registration order.
    pub fn ids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.id.as_str()).collect()
    }

    /// Whether `id` is registered.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// The entry of `id`; an unregistered id is [`EnvError::UnknownEnv`] listing the known ones.
    pub fn get(&self, id: &str) -> Result<&EnvEntry, EnvError> {
        self.entries.iter().find(|e| e.id == id).ok_or_else(|| EnvError::UnknownEnv {
            id: id.to_owned(),
            known: self.ids().into_iter().map(str::to_owned).collect(),
        })
    }

    /// Builds the environment `id` with its time limit.
    pub fn make(&self, id: &str) -> Result<Box<dyn Env>, EnvError> {
        self.get(id)?.make()
    }

    /// [`Registry::make`] as a `Send` env ([`EnvEntry::make_send`]).
    pub fn make_send(&self, id: &str) -> Result<Box<dyn Env + Send>, EnvError> {
        self.get(id)?.make_send()
    }

    /// The specification of `id` (builds the environment once).
    pub fn spec(&self, id: &str) -> Result<EnvSpec, EnvError> {
        self.get(id)?.spec()
    }

    /// The specification of every entry, in registration order.
    pub fn specs(&self) -> Result<Vec<EnvSpec>, EnvError> {
        self.entries.iter().map(EnvEntry::spec).collect()
    }
}

/// Checks that `id` has the form [`Registry`] documents.
fn check_id(id: &str) -> Result<(), RegistryError> {
    let malformed = |reason: &str| {
        Err(RegistryError::MalformedId { id: id.to_owned(), reason: reason.to_owned() })
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:/".contains(c);
    match id.chars().next() {
        None => malformed("it is empty"),
        Some(first) if !first.is_ascii_alphabetic() => {
            malformed("it must start with an ASCII letter")
        }
        _ if id.chars().count() > Registry::MAX_ID_LEN => {
            malformed(&format!("it is longer than {} characters", Registry::MAX_ID_LEN))
        }
        _ if !id.chars().all(allowed) => malformed(
            "only ASCII letters, digits and `_ - . : /` are allowed (e.g. \"GridReach-v0\")",
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Action, BoxSpace};

    #[test]
    fn cartpole_is_truncated_at_500_by_make() {
        let mut env = make("CartPole-v1").expect("registered");
        assert_eq!(env.id(), "CartPole-v1");
        let mut obs = env.reset(Some(0)).expect("reset");
        for t in 1..=500 {
            // The fixtures' balancing controller: keeps the pole up for the whole episode.
            let s = 0.05 * obs[0] + 0.1 * obs[1] + obs[2] + 0.3 * obs[3];
            let step = env.step(Action::Discrete(usize::from(s > 0.0))).expect("step");
            assert!(!step.terminated, "the controller let the pole fall at step {t}");
            assert_eq!(step.truncated, t == 500, "step {t}: truncated {}", step.truncated);
            obs = step.obs;
        }
        env.step(Action::Discrete(0)).expect_err("step after the time limit");
    }

    #[test]
    fn pendulum_is_truncated_at_200_by_make() {
        let mut env = make("Pendulum-v1").expect("registered");
        env.reset(Some(3)).expect("reset");
        for t in 1..=200 {
            let step = env.step(Action::Continuous(&[0.5])).expect("step");
            assert_eq!(step.truncated, t == 200, "step {t}");
        }
    }

    #[test]
    fn unknown_ids_list_the_known_ones() {
        let err = make("CartPole-v0").err().expect("unknown id accepted");
        let msg = err.to_string();
        assert!(
            msg.contains("'CartPole-v0'")
                && msg.contains(
                    "CartPole-v1, Pendulum-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0"
                ),
            "message '{msg}' must name the id and the known ids"
        );
    }

    #[test]
    fn registry_lists_ids_spaces_and_limits() {
        let specs = registry();
        let cartpole = specs.iter().find(|s| s.id == "CartPole-v1").expect("CartPole listed");
        assert_eq!(cartpole.action_space, Space::Discrete(2));
        assert_eq!(cartpole.max_episode_steps, Some(500));
        let pendulum = spec("Pendulum-v1").expect("Pendulum listed");
        assert_eq!(pendulum.action_space, Space::Box(BoxSpace::uniform(1, -2.0, 2.0)));
        assert_eq!(pendulum.observation_space.flat_dim(), 3);
        assert_eq!(pendulum.max_episode_steps, Some(200));
        let line = pendulum.to_string();
        assert!(line.contains("Pendulum-v1") && line.contains("time limit 200"), "{line}");
    }

    #[test]
    fn the_builtin_registry_matches_the_free_functions() {
        let builtin = Registry::builtin();
        builtin.check().expect("built-ins are well formed");
        assert_eq!(builtin.specs().expect("built-ins build"), registry());
        let mut env = builtin.make("CartPole-v1").expect("registered");
        env.reset(Some(0)).expect("reset");
        for t in 1..=500 {
            match env.step(Action::Discrete(t % 2)) {
                Ok(step) if step.terminated => return,
                Ok(step) => assert_eq!(step.truncated, t == 500, "step {t}"),
                Err(e) => panic!("step {t}: {e}"),
            }
        }
    }

    #[test]
    fn a_user_entry_gets_its_time_limit_and_is_listed_after_the_builtins() {
        let registry = Registry::builtin().with_entry(
            EnvEntry::new("ShortPendulum-v0", crate::Pendulum::new)
                .max_episode_steps(3)
                .description("three steps"),
        );
        registry.check().expect("a new, well-formed id");
        assert_eq!(registry.ids().last(), Some(&"ShortPendulum-v0"));
        let mut env = registry.make("ShortPendulum-v0").expect("registered");
        env.reset(Some(1)).expect("reset");
        let truncated: Vec<bool> =
            (0..3).map(|_| env.step(Action::Continuous(&[0.0])).expect("step").truncated).collect();
        assert_eq!(truncated, [false, false, true]);
        let spec = registry.spec("ShortPendulum-v0").expect("spec");
        assert_eq!((spec.max_episode_steps, spec.description.as_str()), (Some(3), "three steps"));
        // Without a limit, the factory's environment is used as it is.
        let plain = Registry::new().with("Plain-v0", crate::Pendulum::new);
        assert_eq!(plain.spec("Plain-v0").expect("spec").max_episode_steps, None);
        let mut env = plain.make("Plain-v0").expect("registered");
        env.reset(Some(1)).expect("reset");
        for _ in 0..300 {
            assert!(!env.step(Action::Continuous(&[0.0])).expect("step").truncated);
        }
    }

    #[test]
    fn duplicate_and_malformed_ids_are_rejected_without_panicking() {
        let err = Registry::builtin()
            .try_with("CartPole-v1", crate::CartPole::new)
            .expect_err("a built-in id");
        assert_eq!(err, RegistryError::Duplicate { id: "CartPole-v1".to_owned() });
        assert_eq!(err.to_string(), "environment id `CartPole-v1` is registered twice");
        let long = format!("A{}", "b".repeat(Registry::MAX_ID_LEN));
        for (id, reason) in [
            ("", "empty"),
            ("1Grid-v0", "start with an ASCII letter"),
            ("Grid Reach-v0", "only ASCII letters"),
            ("Grid\nReach", "only ASCII letters"),
            ("Grïd-v0", "only ASCII letters"),
            (long.as_str(), "longer than 100"),
        ] {
            let registry = Registry::new().with(id, crate::CartPole::new);
            let err = registry.check().expect_err(id);
            assert!(
                matches!(&err, RegistryError::MalformedId { id: i, .. } if i == id)
                    && err.to_string().contains(reason),
                "{id:?}: expected a MalformedId mentioning `{reason}`, got `{err}`"
            );
            assert!(registry.ids().is_empty(), "a rejected entry is not registered");
        }
        // `with` keeps going and reports the first rejection.
        let registry = Registry::builtin()
            .with("Pendulum-v1", crate::Pendulum::new)
            .with("Ok-v0", crate::Pendulum::new);
        assert!(registry.contains("Ok-v0"));
        assert!(matches!(registry.check(), Err(RegistryError::Duplicate { .. })));
    }

    #[test]
    fn an_unregistered_id_names_the_registered_ones() {
        let registry = Registry::new().with("Grid-v0", crate::CartPole::new);
        let msg = registry.make("CartPole-v1").err().expect("not in this registry").to_string();
        assert!(msg.contains("'CartPole-v1'") && msg.contains("known ids: Grid-v0"), "{msg}");
    }

    #[test]
    fn the_new_classic_control_envs_have_gymnasiums_spaces_and_limits() {
        let acrobot = spec("Acrobot-v1").expect("Acrobot listed");
        assert_eq!(acrobot.action_space, Space::Discrete(3));
        assert_eq!(acrobot.observation_space.flat_dim(), 6);
        assert_eq!(acrobot.max_episode_steps, Some(500));
        let car = spec("MountainCar-v0").expect("MountainCar listed");
        assert_eq!(car.action_space, Space::Discrete(3));
        let obs_space = Space::Box(BoxSpace::new(vec![-1.2, -0.07], vec![0.6, 0.07]));
        assert_eq!(car.observation_space, obs_space);
        assert_eq!(car.max_episode_steps, Some(200));
        let continuous = spec("MountainCarContinuous-v0").expect("MountainCarContinuous listed");
        assert_eq!(continuous.action_space, Space::Box(BoxSpace::uniform(1, -1.0, 1.0)));
        assert_eq!(continuous.observation_space, obs_space);
        assert_eq!(continuous.max_episode_steps, Some(999));
        for (id, limit) in
            [("Acrobot-v1", 500), ("MountainCar-v0", 200), ("MountainCarContinuous-v0", 999)]
        {
            let mut env = make(id).expect("registered");
            env.reset(Some(0)).expect("reset");
            let action = match env.action_space() {
                Space::Discrete(_) => Action::Discrete(1),
                Space::Box(_) => Action::Continuous(&[0.0]),
                other => panic!("{id} has the action space {other}"),
            };
            for t in 1..=limit {
                // Doing nothing reaches no goal, so only the time limit ends these episodes.
                let step = env.step(action).expect("step");
                assert!(!step.terminated, "{id} step {t} terminated");
                assert_eq!(step.truncated, t == limit, "{id} step {t}");
            }
        }
    }
}
