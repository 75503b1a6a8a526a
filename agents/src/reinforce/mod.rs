//! REINFORCE with a learned value baseline ([`Reinforce`]) and its settings
//! ([`ReinforceConfig`]).
//!
//! The code, one file per concern: `settings` ([`ReinforceConfig`] and every rule about it),
//! `agent` (the algorithm, top to bottom), `state` (checkpoint tensors and training state) and
//! `tests`.

mod agent;
mod settings;
mod state;
#[cfg(test)]
mod tests;

pub use agent::Reinforce;
pub(crate) use agent::rows_of;
pub use settings::ReinforceConfig;
