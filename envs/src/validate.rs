//! Checks on what an (untrusted) environment returns, shared by [`crate::VecEnv`] and
//! [`crate::check_env`].

use crate::core::{EnvError, Space};

/// Where an output came from, for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Origin {
    /// The observation returned by `reset`.
    Reset,
    /// The output of the given step of the episode (1-based).
    Step(usize),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Reset => write!(f, "reset"),
            Origin::Step(t) => write!(f, "step {t} of the episode"),
        }
    }
}

/// `Ok` if `obs` has the length of `space`'s flat representation and only finite values.
#[inline]
pub(crate) fn check_observation(
    env: &str,
    space: &Space,
    obs: &[f32],
    origin: Origin,
) -> Result<(), EnvError> {
    let dim = space.flat_dim();
    if obs.len() != dim {
        return Err(EnvError::InvalidOutput {
            env: env.to_owned(),
            message: format!(
                "{origin} returned an observation of length {} ({obs:?}) but the observation \
                 space {space} has dimension {dim}",
                obs.len()
            ),
        });
    }
    if let Some((i, v)) = obs.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EnvError::InvalidOutput {
            env: env.to_owned(),
            message: format!(
                "{origin} returned the observation {obs:?} whose value {v} at index {i} is not \
                 finite"
            ),
        });
    }
    Ok(())
}

/// `Ok` if `reward` is finite.
#[inline]
pub(crate) fn check_reward(env: &str, reward: f64, origin: Origin) -> Result<(), EnvError> {
    if reward.is_finite() {
        Ok(())
    } else {
        Err(EnvError::InvalidOutput {
            env: env.to_owned(),
            message: format!("{origin} returned the non-finite reward {reward}"),
        })
    }
}

/// `Ok` if `mask` is a valid action mask of `space` (see [`Space::mask_problem`]): the error
/// names the env, where the mask came from and the mask.
#[inline]
pub(crate) fn check_mask(
    env: &str,
    space: &Space,
    mask: &[bool],
    origin: Origin,
) -> Result<(), EnvError> {
    match space.mask_problem(mask) {
        None => Ok(()),
        Some(problem) => Err(EnvError::InvalidOutput {
            env: env.to_owned(),
            message: format!("action_mask after {origin}: {problem}"),
        }),
    }
}
