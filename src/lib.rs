//! # rlpg
//!
//! The `rlpg` library and CLI: configuration files and their validation, the training loop that
//! drives any [`rlpg_agents::Agent`] on any [`rlpg_envs::Env`], run directories, TensorBoard
//! logging, checkpoints and evaluation; and the command line itself ([`cli`]), which a program
//! with its own environments runs with [`cli::main_with`].
//!
//! **Owns:** everything between the user and the agents: files, the terminal, logs.
//!
//! **Must never be depended on by** `rlpg-envs`, `rlpg-agents` or `rlpg-gradlab`: dependencies
//! point one way, envs <- agents <- (gradlab) <- rlpg. The estimator lab is the `rlpg-gradlab`
//! crate, re-exported here as [`gradlab`].
#![deny(missing_docs)]

pub use rlpg_agents as agents;
pub use rlpg_envs as envs;
pub use rlpg_gradlab as gradlab;

pub mod bench;
pub mod checkpoint;
pub mod cli;
mod config;
pub mod export;
pub mod malloc;
pub mod plot;
mod policy;
pub mod run;
mod rundir;
pub mod runs;
mod tensorboard;
pub mod trainer;
pub mod video;

pub use config::{AgentKind, Config, ConfigError, Location, Override};
pub use policy::Policy;
pub use rundir::{CONFIG_FILE, RunDir, RunDirError, atomic_write};
pub use tensorboard::{
    ScalarEvent, ScalarLog, TbError, TbLogger, event_files, read_scalars, trim_event_files,
};
