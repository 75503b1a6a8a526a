//! What a [`crate::VecEnv`] gathers besides observations and rewards: each env's action mask
//! (of the state it acts on next) and the infos of each step, added up per episode. The vector
//! env calls these from whichever thread steps an env; the checks run once per batch.

use crate::core::{Action, Env, EnvError, InfoKey, InfoTotals, Space};
use crate::space::bits;
use crate::validate::{Origin, check_mask};

/// What the envs of a vector env say of themselves beyond their spaces, checked to agree.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Extras {
    /// Flags per env of an action mask (0: the envs declare no masks).
    pub(crate) mask_len: usize,
    /// The infos each step reports.
    pub(crate) info_keys: Vec<InfoKey>,
}

impl Extras {
    /// What `envs` declare; an error naming the first env that differs from env 0, or masks on
    /// an action space that has none.
    pub(crate) fn of(envs: &[Box<dyn Env>]) -> Result<Self, EnvError> {
        let Some(first) = envs.first() else { return Ok(Self::default()) };
        let other = |message: String| EnvError::Other { env: "VecEnv".to_owned(), message };
        for (i, env) in envs.iter().enumerate().skip(1) {
            if env.masks_actions() != first.masks_actions() {
                return Err(other(format!(
                    "env {i} ({}) {} action masks but env 0 ({}) {}",
                    env.id(),
                    if env.masks_actions() { "declares" } else { "declares no" },
                    first.id(),
                    if first.masks_actions() { "does" } else { "does not" }
                )));
            }
            if env.info_keys() != first.info_keys() {
                return Err(other(format!(
                    "env {i} ({}) reports the infos {:?} but env 0 ({}) {:?}",
                    env.id(),
                    names(env.info_keys()),
                    first.id(),
                    names(first.info_keys())
                )));
            }
        }
        let space = first.action_space();
        if first.masks_actions() && space.mask_len() == 0 {
            return Err(other(format!(
                "{} declares action masks but its action space {space} has none (only Discrete, \
                 MultiDiscrete and MultiBinary spaces do)",
                first.id()
            )));
        }
        let mask_len = if first.masks_actions() { space.mask_len() } else { 0 };
        Ok(Self { mask_len, info_keys: first.info_keys().to_vec() })
    }
}

fn names(keys: &[InfoKey]) -> Vec<&str> {
    keys.iter().map(|k| k.name.as_ref()).collect()
}

/// After `env` stepped: its infos into `infos` (NaN for what it does not report) and, unless the
/// episode ended (the mask then comes with the reset), the mask of its new state into `mask`.
/// Both rows may be empty. The error is the env's own.
#[inline]
pub(crate) fn gather_after_step(
    env: &dyn Env,
    done: bool,
    mask: &mut [bool],
    infos: &mut [f64],
) -> Result<(), EnvError> {
    if !infos.is_empty() {
        infos.fill(f64::NAN);
        env.step_infos(infos);
    }
    if !mask.is_empty() && !done {
        env.action_mask(mask)?;
    }
    Ok(())
}

/// After `env` was reset: the mask of its first state into `mask` (which may be empty).
#[inline]
pub(crate) fn gather_after_reset(env: &dyn Env, mask: &mut [bool]) -> Result<(), EnvError> {
    if mask.is_empty() { Ok(()) } else { env.action_mask(mask) }
}

/// Checks every env's mask (`masks`, `mask_len` flags per env) once all are gathered: the error
/// of the first that leaves a part of the action no choice, tagged with its index and naming
/// where the mask came from (`origin_of(i)`).
pub(crate) fn check_masks(
    envs: &[Box<dyn Env>],
    space: &Space,
    masks: &[bool],
    mask_len: usize,
    origin_of: impl Fn(usize) -> Origin,
) -> Result<(), EnvError> {
    if mask_len == 0 {
        return Ok(());
    }
    for (i, (env, mask)) in envs.iter().zip(masks.chunks_exact(mask_len)).enumerate() {
        if !space.mask_is_valid(mask) {
            return check_mask(env.id(), space, mask, origin_of(i)).map_err(|e| e.in_vec_env(i));
        }
    }
    Ok(())
}

/// Checks each env's action before any env steps: a multi-part action must lie in the action
/// space, and with masks an action must be allowed by the mask of its env's state (`masks`): an
/// action outside the mask never reaches an env. The error names the env, its step, the action
/// and the space or mask. (Discrete and Box actions without masks are the envs' to refuse, as
/// they always were: some clip Box actions.)
pub(crate) fn check_actions_allowed<'a>(
    envs: &[Box<dyn Env>],
    space: &Space,
    masks: &[bool],
    mask_len: usize,
    lengths: &[usize],
    actions: impl Iterator<Item = Action<'a>>,
) -> Result<(), EnvError> {
    let multi = matches!(space, Space::MultiDiscrete(_) | Space::MultiBinary(_));
    if !multi && mask_len == 0 {
        return Ok(());
    }
    for (i, (env, action)) in envs.iter().zip(actions).enumerate() {
        if !space.contains(action) {
            return Err(EnvError::Other {
                env: env.id().to_owned(),
                message: format!(
                    "the action {action} for step {} of the episode is outside the action space \
                     {space}; it was not stepped",
                    lengths[i] + 1
                ),
            }
            .in_vec_env(i));
        }
        if mask_len == 0 {
            continue;
        }
        let mask = &masks[i * mask_len..(i + 1) * mask_len];
        if !space.mask_allows(mask, action) {
            return Err(EnvError::Other {
                env: env.id().to_owned(),
                message: format!(
                    "the action {action} for step {} of the episode is not allowed by the env's \
                     action mask {} of that state; it was not stepped (an agent must sample \
                     within the mask)",
                    lengths[i] + 1,
                    bits(mask)
                ),
            }
            .in_vec_env(i));
        }
    }
    Ok(())
}

/// Adds a step's infos (`infos`, `k` per env) to the episodes' running totals; an infinite value
/// is an error naming the env, its step, the info and the value.
pub(crate) fn add_infos(
    envs: &[Box<dyn Env>],
    keys: &[InfoKey],
    infos: &[f64],
    totals: &mut [InfoTotals],
    lengths: &[usize],
) -> Result<(), EnvError> {
    let k = keys.len();
    if k == 0 {
        return Ok(());
    }
    if let Some(j) = infos.iter().position(|v| v.is_infinite()) {
        let (i, key) = (j / k, &keys[j % k]);
        return Err(EnvError::InvalidOutput {
            env: envs[i].id().to_owned(),
            message: format!(
                "{} reported the info {} = {}",
                Origin::Step(lengths[i]),
                key.name,
                infos[j]
            ),
        }
        .in_vec_env(i));
    }
    for (total, &value) in totals.iter_mut().zip(infos) {
        total.add(value);
    }
    Ok(())
}
