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
#![deny(missing_docs)]

mod core;

pub use crate::core::{Action, BoxSpace, Env, EnvError, Observation, Space, Step};
