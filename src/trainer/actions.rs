//! From the agent's actions to the actions an environment accepts.

use rlpg_agents::{Actions, AgentError};
use rlpg_envs::{Space, VecActions};

/// Converts the agent's actions into what the environments accept: discrete indices, or
/// continuous vectors clipped into the action bounds (the agent keeps its unclipped actions for
/// learning, as Stable-Baselines3 does).
pub struct ActionAdapter {
    space: Space,
    discrete: Vec<usize>,
    continuous: Vec<f32>,
}

impl ActionAdapter {
    /// An adapter for `space`.
    pub fn new(space: &Space) -> Self {
        Self { space: space.clone(), discrete: Vec::new(), continuous: Vec::new() }
    }

    /// The env actions for the agent's `actions` (one index per row for a discrete space, the
    /// box's dimension of floats per row for a box). Errors when their form does not fit the
    /// action space.
    pub fn convert(&mut self, actions: &Actions) -> Result<VecActions<'_>, AgentError> {
        match (&self.space, actions) {
            (Space::Discrete(_), Actions::Indices { values, width: 1 }) => {
                self.discrete.clear();
                // A negative index cannot come from a categorical sample; map it to an index the
                // env rejects with its own message rather than wrapping around.
                self.discrete
                    .extend(values.iter().map(|&a| usize::try_from(a).unwrap_or(usize::MAX)));
                Ok(VecActions::Discrete(&self.discrete))
            }
            (Space::Box(b), Actions::Floats { values, width }) if *width == b.dim() => {
                self.continuous.clear();
                self.continuous.extend_from_slice(values);
                let dim = b.dim();
                for (i, a) in self.continuous.iter_mut().enumerate() {
                    let (lo, hi) = (b.low[i % dim], b.high[i % dim]);
                    // NaN stays NaN so that the env reports it instead of the clip hiding it.
                    if *a < lo {
                        *a = lo;
                    } else if *a > hi {
                        *a = hi;
                    }
                }
                Ok(VecActions::Continuous(&self.continuous))
            }
            (space, actions) => Err(AgentError::Invalid(format!(
                "the agent's actions are {actions}, which do not fit the action space {space}"
            ))),
        }
    }
}
