//! # rlpg-agents
//!
//! The learning side of rlpg, on libtorch through `tch`: action distributions, networks,
//! rollout and replay buffers, the score-function agent (REINFORCE with a learned value
//! baseline) and the pathwise agent (reparameterized actions trained through a learned critic).
//!
//! **Owns:** everything that touches gradients. The [`Agent`] trait is the whole interface the
//! trainer sees.
//!
//! **Must never depend on:** the `rlpg` crate, TOML files, TensorBoard or the terminal. Agents
//! get plain settings structs and return named metrics; the caller decides what to do with them.
//! It depends on `rlpg-envs` only for spaces.
#![deny(missing_docs)]

mod agent;
pub mod backend;
pub mod distributions;
pub mod grad_noise;
pub mod networks;
pub mod optim;
mod pathwise;
pub mod probe;
mod reinforce;
pub mod replay;
pub mod rollout;
mod scaffold;
mod settings;

pub use agent::{ActMode, Actions, Actor, ActorParams, Agent, AgentError, Metrics, Transition};
pub use backend::{BackendChoice, BackendKind};
pub use pathwise::{DiscreteCritic, Estimator, Exploration, Pathwise, PathwiseConfig};
pub use probe::PolicyProbe;
pub use reinforce::{Reinforce, ReinforceConfig};
pub use settings::{Activation, InvalidSetting, SettingsContext, WeightInit};
