//! The classic-control environments, ported from Gymnasium 1.4 operation by operation.

pub(crate) mod cartpole;
pub(crate) mod pendulum;

use serde::{Deserialize, Serialize};

use crate::core::EnvError;

/// Where an environment is in its episode; decides whether `step` is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Constructed but never reset: there is no state to step from.
    NotReset,
    /// An episode is under way.
    Running,
    /// The last step ended the episode; only `reset` may follow.
    Ended,
}

impl Phase {
    /// `Ok` if a step may be taken now, otherwise the error that names `env`.
    #[inline]
    pub(crate) fn check_step(self, env: &str) -> Result<(), EnvError> {
        match self {
            Phase::Running => Ok(()),
            Phase::NotReset => Err(EnvError::NotReset { env: env.to_owned() }),
            Phase::Ended => Err(EnvError::EpisodeOver { env: env.to_owned() }),
        }
    }
}
