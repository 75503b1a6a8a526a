//! [`Policy`]: a trained policy loaded for acting.
//!
//! It holds only what acting needs, taken from a checkpoint as `rlpg export` takes it (see
//! [`crate::export`]): the acting network, the observation normalisation, the head and the
//! action space with its rescaling. [`Policy::act`] takes a raw observation and returns the
//! action `rlpg eval` sends to the environment; [`Policy::sample_batch`] draws from the policy
//! with a seed; [`Policy::distribution`] gives the distribution; each also under an action
//! mask (`*_masked`). It is `rlpg_policy::Policy` (no libtorch) loaded from a run or a checkpoint as
//! well as from an export directory.

use std::path::Path;

use rlpg_envs::{ActionBuf, Space};
use rlpg_policy::manifest::Manifest;
use rlpg_policy::{ActionDistribution, Export, MANIFEST_FILE, PolicyError};

use crate::export::export_checkpoint;
use crate::run::{EnvSource, RunError, default_eval_checkpoint};
use crate::trainer::EnvFactory;

/// A trained policy: acts on raw observations as `rlpg eval` does, with the network forward
/// pass rlpg's CPU kernel trains with (it is `rlpg_policy::Policy`, loaded from a run or a
/// checkpoint as well as from an export).
#[derive(Clone, Debug)]
pub struct Policy {
    inner: rlpg_policy::Policy,
}

impl Policy {
    /// Loads a policy from `path`: a run directory (its best checkpoint, or the newest when it
    /// has none), a checkpoint file, or an export directory (`policy.json`, as `rlpg export`
    /// writes it). The environment need not be registered: checkpoints record its spaces. (A
    /// checkpoint written before they were recorded takes them from the built-in registry; for
    /// such a checkpoint of another environment, use [`Policy::load_with`].)
    pub fn load(path: impl AsRef<Path>) -> Result<Self, RunError> {
        Self::load_impl(path.as_ref(), None)
    }

    /// [`Policy::load`] with the environment (for its spaces, when the checkpoint does not record
    /// them) from `factory`.
    pub fn load_with(path: impl AsRef<Path>, factory: EnvFactory<'_>) -> Result<Self, RunError> {
        Self::load_impl(path.as_ref(), Some(factory))
    }

    fn load_impl(path: &Path, factory: Option<EnvFactory<'_>>) -> Result<Self, RunError> {
        let file_error =
            |e: PolicyError| RunError::File { path: path.to_owned(), message: e.to_string() };
        let export = if path.join(MANIFEST_FILE).is_file() {
            Export::read(path).map_err(file_error)?
        } else {
            let checkpoint =
                if path.is_dir() { default_eval_checkpoint(path)? } else { path.to_owned() };
            let envs = factory.map_or(EnvSource::Builtin, EnvSource::Factory);
            export_checkpoint(&checkpoint, envs)?
        };
        Self::from_export(&export).map_err(file_error)
    }

    /// The policy of an export (checked when it was built).
    pub fn from_export(export: &Export) -> Result<Self, PolicyError> {
        Ok(Self { inner: rlpg_policy::Policy::from_export(export)? })
    }

    /// Floats per observation.
    pub fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }

    /// The environment's action space.
    pub fn action_space(&self) -> &Space {
        self.inner.action_space()
    }

    /// The description of the policy, as `policy.json` holds it.
    pub fn manifest(&self) -> &Manifest {
        self.inner.manifest()
    }

    /// Flags per action mask (`n`, `sum(nvec)`, `2n`; 0 for a `Box`): see
    /// [`rlpg_policy::Policy::mask_len`].
    pub fn mask_len(&self) -> usize {
        self.inner.mask_len()
    }

    /// The deterministic action (the policy's mode) for one raw observation.
    pub fn act(&self, obs: &[f32]) -> Result<ActionBuf, PolicyError> {
        self.inner.act(obs)
    }

    /// The deterministic action under an action mask, if given (MaskablePPO's `predict` with
    /// `action_masks`): see [`rlpg_policy::Policy::act_masked`].
    pub fn act_masked(&self, obs: &[f32], mask: Option<&[bool]>) -> Result<ActionBuf, PolicyError> {
        self.inner.act_masked(obs, mask)
    }

    /// The deterministic actions for raw observations `[rows, obs_dim]` (row-major).
    pub fn act_batch(&self, obs: &[f32]) -> Result<Vec<ActionBuf>, PolicyError> {
        self.inner.act_batch(obs)
    }

    /// [`Policy::act_batch`] under masks, if given (`rows × mask_len` flags).
    pub fn act_batch_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
    ) -> Result<Vec<ActionBuf>, PolicyError> {
        self.inner.act_batch_masked(obs, masks)
    }

    /// One action drawn from the policy for one raw observation; see [`Policy::sample_batch`].
    pub fn sample(&self, obs: &[f32], seed: u64) -> Result<ActionBuf, PolicyError> {
        self.inner.sample(obs, seed)
    }

    /// [`Policy::sample`] under an action mask, if given: masked choices are never drawn.
    pub fn sample_masked(
        &self,
        obs: &[f32],
        mask: Option<&[bool]>,
        seed: u64,
    ) -> Result<ActionBuf, PolicyError> {
        self.inner.sample_masked(obs, mask, seed)
    }

    /// Actions drawn from the policy (as the agent explores: a sample of each categorical or
    /// Bernoulli; the Gaussian's mean plus `std · ε`, clipped; the squashed Gaussian's
    /// `tanh(mean + std · ε)` rescaled; TD3's action plus Gaussian noise of std
    /// `exploration_noise`, clipped to the box), from a generator seeded with `seed`: the same
    /// seed gives the same actions. Uses its own generator, leaving libtorch's global one
    /// untouched.
    pub fn sample_batch(&self, obs: &[f32], seed: u64) -> Result<Vec<ActionBuf>, PolicyError> {
        self.inner.sample_batch(obs, seed)
    }

    /// [`Policy::sample_batch`] under masks, if given (`rows × mask_len` flags).
    pub fn sample_batch_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
        seed: u64,
    ) -> Result<Vec<ActionBuf>, PolicyError> {
        self.inner.sample_batch_masked(obs, masks, seed)
    }

    /// The action distribution for one raw observation (probabilities, or mean and std).
    pub fn distribution(&self, obs: &[f32]) -> Result<ActionDistribution, PolicyError> {
        self.inner.distribution(obs)
    }

    /// [`Policy::distribution`] under an action mask, if given: masked choices have
    /// probability exactly 0.
    pub fn distribution_masked(
        &self,
        obs: &[f32],
        mask: Option<&[bool]>,
    ) -> Result<ActionDistribution, PolicyError> {
        self.inner.distribution_masked(obs, mask)
    }

    /// The action distributions for raw observations `[rows, obs_dim]`, one per row.
    pub fn distribution_batch(&self, obs: &[f32]) -> Result<Vec<ActionDistribution>, PolicyError> {
        self.inner.distribution_batch(obs)
    }

    /// [`Policy::distribution_batch`] under masks, if given (`rows × mask_len` flags).
    pub fn distribution_batch_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
    ) -> Result<Vec<ActionDistribution>, PolicyError> {
        self.inner.distribution_batch_masked(obs, masks)
    }
}
