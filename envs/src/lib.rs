//! # rlpg-envs
//!
//! The environment side of rlpg: the [`Env`] trait (Gymnasium's `reset`/`step` with separate
//! `terminated` and `truncated` flags), observation and action [`Space`]s, and the built-in
//! environments.
//!
//! **Owns:** environment dynamics, spaces, wrappers, vector envs, the registry, and the contract
//! checks for user environments.
//!
//! **Must never depend on:** tch, libtorch, or anything of the agents or the CLI. It builds and
//! tests in seconds, and a user's environment can be written against it alone.
//!
//! ## Code map
//!
//! | module | entry points | what it holds |
//! | --- | --- | --- |
//! | `core` | [`Env`], [`Action`], [`Step`], [`Observation`], [`InfoKey`], [`EnvError`], [`EnvSnapshot`] | the contract every environment implements |
//! | `space` | [`Space`], [`BoxSpace`] | Gymnasium's `Discrete`, `Box`, `MultiDiscrete`, `MultiBinary`; action-mask layout; sampling under a mask |
//! | `action_buf` | [`ActionBuf`] | an owned action (what a loaded policy returns) |
//! | `seeding` | [`EnvRng`] | Gymnasium's seeding rules on a portable PCG64 generator |
//! | `classic::cartpole` | [`CartPole`] | CartPole-v1, bit-faithful to Gymnasium 1.4 |
//! | `classic::pendulum` | [`Pendulum`] | Pendulum-v1, bit-faithful to Gymnasium 1.4 |
//! | `classic::acrobot` | [`Acrobot`] | Acrobot-v1, bit-faithful to Gymnasium 1.4 |
//! | `classic::mountain_car` | [`MountainCar`] | MountainCar-v0, bit-faithful to Gymnasium 1.4 |
//! | `classic::mountain_car_continuous` | [`MountainCarContinuous`] | MountainCarContinuous-v0, bit-faithful to Gymnasium 1.4 (with NumPy 2's float32 steps) |
//! | `point_reach` | [`PointReach`] | `bench/PointReach-v0`: a costly env (~50 µs a step) for benchmarks of parallel stepping |
//! | `restock` | [`Restock`] | Restock-v0 (masked multi-part orders) and RestockFlat-v0 (the same shop flattened by hand), Restock6-v0 / Restock6Flat-v0 (six products): rlpg's own env for multi-part and masked actions |
//! | `wrappers::time_limit` | [`TimeLimit`] | the one mechanism that truncates episodes |
//! | `wrappers::episode_statistics` | [`RecordEpisodeStatistics`], [`EpisodeRecord`] | episode return and length |
//! | `wrappers::normalize` | [`NormalizeObservation`] | running observation normalisation for one env |
//! | `render` | [`Frame`], [`render::cartpole`], [`render::pendulum`], [`render::acrobot`], [`render::mountain_car`] | RGB pictures of envs, drawn by a small rasteriser of its own |
//! | `running_mean_std` | [`RunningMeanStd`] | mergeable, serialisable mean/variance statistics |
//! | `vec_env` | [`VecEnv`], [`VecActions`], [`VecStep`], [`VecEnvSnapshot`], [`EnvThreads`] | lockstep envs with same-step autoreset, stepped on one thread or several |
//! | `vec_extras` | (private) | the action masks and step infos a vector env gathers and checks |
//! | `step_pool` | (private) | the persistent threads that step a vector env's envs |
//! | `async_vec_env` | [`AsyncVecEnv`], [`AsyncBatch`] | asynchronous batches (EnvPool's `send`/`recv`): act on whichever envs are ready |
//! | `registry` | [`Registry`], [`EnvEntry`], [`MakeEnv`], [`SendFactory`], [`make`], [`spec`], [`registry()`], [`EnvSpec`] | ids, time limits, listing; built-ins plus a program's own; which envs are `Send` |
//! | `check` | [`check_env`], [`CheckReport`] | contract checks for user environments |
//! | `validate` | (private) | output checks shared by `VecEnv` and `check_env` |
//! | `gym_rs` | `GymRsEnv` (feature `gym-rs`) | adapter for the `gym-rs` crate's MountainCar |
//! | `gymnasium` | `gymnasium::GymnasiumEnv`, `gymnasium::entry`, `gymnasium::worker_vec_env` (feature `gymnasium`) | any Gymnasium env as `gymnasium:<ID>`, in CPython embedded with pyo3 or in worker processes |
//!
//! ## Invariants
//!
//! * An environment never truncates by itself: [`TimeLimit`] is the only source of
//!   `truncated = true`, and [`make`] adds each registered limit with it.
//! * Invalid input is an [`EnvError`], never a panic: stepping before `reset` or after the
//!   episode ended, or an action outside the action space. The exception is Gymnasium's own:
//!   an env whose [`Env::clips_actions`] is true (Pendulum, MountainCarContinuous) clips a
//!   finite out-of-bounds action into its box as Gymnasium does; NaN and infinite actions stay
//!   errors. (The trainer clips or rescales actions into the space before stepping anyway.)
//! * Action masks ([`Env::masks_actions`], [`Env::action_mask`]) follow sb3-contrib's
//!   `MaskablePPO` layout ([`Space::mask_len`]); a mask leaves every part of an action at least
//!   one choice, or it is an error naming the env, the step and the mask.
//! * `reset(Some(seed))` fully determines the episode; `reset(None)` continues the env's stream.
//!   [`VecEnv`] gives env `i` the seed `seed + i`.
//! * [`VecEnv`] follows the "same-step" autoreset convention: `obs` is what to act on next,
//!   `next_obs` is what the action led to (the final observation when an episode ended).
//! * The five classic-control envs match Gymnasium 1.4 step for step, bit for bit (tests replay
//!   its trajectories from `tests/data/`): `f64` state (`f32` where NumPy 2 keeps it so), `f32`
//!   observations, the same operation order, the C library's `pow` where NumPy squares a scalar.
//!
//! ## Writing your own environment
//!
//! Implement [`Env`] for your type (see `examples/custom_env.rs` at the repository root), draw
//! random initial states from an [`EnvRng`] ([`EnvRng::for_reset`] in `reset`, [`EnvRng::stream`]
//! for randomness within a step), wrap it in a [`TimeLimit`] if episodes may not end by
//! themselves, and run [`check_env`] on it before training. Actions made of several parts are a
//! [`Space::MultiDiscrete`] or [`Space::MultiBinary`]; actions that are not allowed in some
//! states are declared with [`Env::masks_actions`] and [`Env::action_mask`] (agents then never
//! choose them); the env's own numbers (lost sales, collisions) are [`Env::info_keys`]. To train it by id (TOML configs,
//! the whole `rlpg` command line), register it: `Registry::builtin().with("MyEnv-v0", MyEnv::new)`
//! (see [`Registry`]; an [`EnvEntry`] adds a time limit and a description).
#![deny(missing_docs)]

mod action_buf;
mod async_vec_env;
mod check;
mod classic;
mod core;
#[cfg(feature = "gym-rs")]
mod gym_rs;
#[cfg(feature = "gymnasium")]
pub mod gymnasium;
mod point_reach;
mod registry;
pub mod render;
mod restock;
mod running_mean_std;
mod seeding;
mod space;
mod step_pool;
mod validate;
mod vec_env;
mod vec_extras;
mod wrappers;

pub use crate::action_buf::ActionBuf;
pub use crate::async_vec_env::{AsyncBatch, AsyncVecEnv};
pub use crate::check::{CLIP_OBS_TOL, CheckReport, check_env};
pub use crate::classic::acrobot::Acrobot;
pub use crate::classic::cartpole::CartPole;
pub use crate::classic::mountain_car::MountainCar;
pub use crate::classic::mountain_car_continuous::MountainCarContinuous;
pub use crate::classic::pendulum::Pendulum;
pub use crate::core::{
    Action, Env, EnvError, EnvSnapshot, InfoKey, InfoReduce, InfoTotals, Observation, Step,
    StepInfo,
};
#[cfg(feature = "gym-rs")]
pub use crate::gym_rs::{GymRsEnv, MOUNTAIN_CAR_ID};
pub use crate::point_reach::{POINT_REACH_ID, POINT_REACH_SUBSTEPS, PointReach};
pub use crate::registry::{
    EnvEntry, EnvSpec, MakeEnv, Registry, RegistryError, SendFactory, make, make_send, registry,
    spec,
};
pub use crate::render::Frame;
pub use crate::restock::{
    DIAGNOSTIC_VARIANTS as RESTOCK_DIAGNOSTIC_VARIANTS, DeliveryCost as RestockDeliveryCost,
    EPISODE_DAYS as RESTOCK_EPISODE_DAYS, HEURISTIC_LEVEL as RESTOCK_HEURISTIC_LEVEL,
    MAX_PRODUCTS as RESTOCK_MAX_PRODUCTS, Ordering as RestockOrdering, RESTOCK_FLAT_ID, RESTOCK_ID,
    RESTOCK6_FLAT_ID, RESTOCK6_ID, Restock, RestockOptions,
};
pub use crate::running_mean_std::{DEFAULT_INITIAL_COUNT, RunningMeanStd};
pub use crate::seeding::EnvRng;
pub use crate::space::{BoxSpace, Space};
pub use crate::vec_env::{
    EnvThreads, SendVecEnv, Stepping, VecActions, VecEnv, VecEnvSnapshot, VecStep,
    check_threadable, cores,
};
pub use crate::wrappers::episode_statistics::{
    DEFAULT_EPISODE_BUFFER, EpisodeRecord, RecordEpisodeStatistics,
};
pub use crate::wrappers::normalize::{
    DEFAULT_NORM_CLIP, DEFAULT_NORM_EPSILON, NormalizeObservation,
};
pub use crate::wrappers::time_limit::TimeLimit;
/// The `rand` whose traits [`EnvRng`] implements (`use rlpg_envs::rand::RngExt;` to draw from
/// it), so an environment's code never depends on a `rand` of another version.
pub use rand;
