//! # rlpg
//!
//! The `rlpg` library and CLI: configuration files and their validation, the training loop that
//! drives any [`rlpg_agents::Agent`] on any [`rlpg_envs::Env`], run directories, TensorBoard
//! logging, checkpoints and evaluation; and the command line itself ([`cli`]), which a program
//! with its own environments runs with `cli::main_with`.
//!
//! **Features.** `cli` (default) adds the command line ([`cli`], the `rlpg` binary, `rlpg plot`
//! and the estimator lab `gradlab`) and `progress` (default, implied by `cli`) the training
//! progress bar. A library user who writes `rlpg = { ..., default-features = false }` gets the
//! library alone and compiles none of the command line's dependencies. [`tch`], [`rand`] and
//! `rlpg-policy` ([`deploy`]) are re-exported, so a user's versions always match these.
//!
//! **Owns:** everything between the user and the agents: files, the terminal, logs.
//!
//! **Must never be depended on by** `rlpg-envs`, `rlpg-agents` or `rlpg-gradlab`: dependencies
//! point one way, envs <- agents <- (gradlab) <- rlpg. The estimator lab is the `rlpg-gradlab`
//! crate, re-exported here as `gradlab` (feature `cli`).
#![deny(missing_docs)]

/// The `rand` this library and its environments are built with: [`envs::EnvRng`] implements its
/// traits, so a program that draws from an env's generator names `rlpg::rand`, not its own
/// `rand` dependency (whose version may differ and then fails with an opaque trait-bound error).
pub use rand;
pub use rlpg_agents as agents;
pub use rlpg_envs as envs;
#[cfg(feature = "cli")]
pub use rlpg_gradlab as gradlab;
/// The `rlpg-policy` crate: an exported policy (`rlpg export`) loaded and run without libtorch,
/// and the export format itself. [`Policy`] is the same policy on libtorch.
pub use rlpg_policy as deploy;
/// The `tch` (libtorch bindings) this library is built with; a program that builds its own
/// tensors or networks names `rlpg::tch`, so its version always matches.
pub use tch;

pub mod bench;
pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
pub mod export;
pub mod malloc;
#[cfg(feature = "cli")]
pub mod plot;
mod policy;
pub mod run;
mod rundir;
pub mod runs;
pub mod sweep;
mod tensorboard;
pub mod trainer;
pub mod truegrad;
pub mod video;

pub use config::{AgentKind, Config, ConfigError, DeviceSetting, InfoKeyword, Location, Override};
pub use policy::Policy;
pub use rundir::{CONFIG_FILE, RunDir, RunDirError, atomic_write};
pub use tensorboard::{
    ScalarEvent, ScalarLog, TbError, TbLogger, event_files, read_scalars, trim_event_files,
};
