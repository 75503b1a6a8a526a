//! From the agent's actions to the actions an environment accepts.

use rlpg_agents::{Actions, AgentError};
use rlpg_envs::{Space, VecActions};

/// Converts the agent's actions into what the environments accept: indices (one per env, or one
/// per component), 0/1 flags, or continuous vectors clipped into the action bounds (the agent
/// keeps its unclipped actions for learning, as Stable-Baselines3 does).
pub struct ActionAdapter {
    space: Space,
    /// Indices of `Discrete` and `MultiDiscrete` actions.
    indices: Vec<usize>,
    continuous: Vec<f32>,
    /// Values of `MultiBinary` actions.
    flags: Vec<bool>,
}

impl ActionAdapter {
    /// An adapter for `space`.
    pub fn new(space: &Space) -> Self {
        Self {
            space: space.clone(),
            indices: Vec::new(),
            continuous: Vec::new(),
            flags: Vec::new(),
        }
    }

    /// Values per action in the env's terms (1 for `Discrete`).
    pub fn width(&self) -> usize {
        self.space.flat_dim()
    }

    /// The env actions for the agent's `actions` (one index per row for a discrete space, one
    /// index per component for a multi-discrete one, one 0/1 value per flag for a multi-binary
    /// one, the box's dimension of floats per row for a box). Errors when their form does not fit
    /// the action space.
    pub fn convert(&mut self, actions: &Actions) -> Result<VecActions<'_>, AgentError> {
        // A negative index cannot come from a categorical sample; map it to an index the env
        // rejects with its own message rather than wrapping around.
        let to_index = |a: &i64| usize::try_from(*a).unwrap_or(usize::MAX);
        match (&self.space, actions) {
            (Space::Discrete(_), Actions::Indices { values, width: 1 }) => {
                self.indices.clear();
                self.indices.extend(values.iter().map(to_index));
                Ok(VecActions::Discrete(&self.indices))
            }
            (Space::MultiDiscrete(nvec), Actions::Indices { values, width })
                if *width == nvec.len() =>
            {
                self.indices.clear();
                self.indices.extend(values.iter().map(to_index));
                Ok(VecActions::MultiDiscrete(&self.indices))
            }
            (Space::MultiBinary(n), Actions::Indices { values, width }) if *width == *n => {
                self.flags.clear();
                self.flags.extend(values.iter().map(|&b| b != 0));
                Ok(VecActions::MultiBinary(&self.flags))
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
