//! From the agent's action tensor to the actions an environment accepts.

use rlpg_envs::{Space, VecActions};
use tch::{Kind, Tensor};

/// Converts the agent's action tensor into what the environments accept: discrete indices, or
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

    /// The env actions for `actions` (`Int64 [n]` or `Float [n, dim]`).
    pub fn convert(&mut self, actions: &Tensor) -> Result<VecActions<'_>, tch::TchError> {
        match &self.space {
            Space::Discrete(_) => {
                let flat = actions.to_kind(Kind::Int64).flatten(0, -1);
                let idx: Vec<i64> = Vec::try_from(&flat)?;
                self.discrete.clear();
                // A negative index cannot come from a categorical sample; map it to an index the
                // env rejects with its own message rather than wrapping around.
                self.discrete.extend(idx.iter().map(|&a| usize::try_from(a).unwrap_or(usize::MAX)));
                Ok(VecActions::Discrete(&self.discrete))
            }
            Space::Box(b) => {
                let flat = actions.to_kind(Kind::Float).flatten(0, -1);
                self.continuous = Vec::try_from(&flat)?;
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
            // No agent acts in these spaces yet (building one fails first), and the vector env
            // cannot step them yet.
            Space::MultiDiscrete(_) | Space::MultiBinary(_) => Err(tch::TchError::Kind(format!(
                "no agent acts in the action space {} yet",
                self.space
            ))),
        }
    }
}
