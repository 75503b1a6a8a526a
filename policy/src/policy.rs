//! [`Policy`]: an export loaded for acting, in plain Rust, with the network forward pass and
//! the heads' arithmetic rlpg trains with (`rlpg-kernel`).

use std::path::Path;

use rlpg_envs::{ActionBuf, Space};
use rlpg_kernel::{DenseMlp, LayerSpec, Segment, Trace};

use crate::PolicyError;
use crate::export::Export;
use crate::head::{ActionDistribution, HeadRule, Query, SplitMix};
use crate::manifest::{Head, Manifest};

/// Frozen observation statistics: `sqrt(var + epsilon)` precomputed (the square root is
/// correctly rounded, so this is the same number the formula gives at each call).
#[derive(Clone, Debug)]
struct Normalizer {
    mean: Vec<f64>,
    std: Vec<f64>,
    clip: f32,
}

/// A trained policy loaded from an export directory, acting without libtorch.
///
/// [`Policy::act`] takes a raw observation (as the environment returns it: normalisation, if
/// the run used it, is applied inside) and returns the deterministic action (the mode of the
/// policy) in the environment's action space, exactly as `rlpg eval` steps the environment;
/// [`Policy::sample`] draws from the policy as training explored, from a seed;
/// [`Policy::distribution`] gives the distribution itself (probabilities, or mean and std).
/// Each has a batched form (`*_batch`, rows of observations one after the other) and a masked
/// form (`*_masked`) that takes an optional action mask for discrete heads, as sb3-contrib's
/// `MaskablePPO.predict(obs, action_masks=...)` does: [`Policy::mask_len`] flags per
/// observation, `true` where an action is allowed, laid out as [`crate::manifest`] describes.
/// The network runs on `rlpg-kernel`'s MLP, the code rlpg's CPU kernel trains with. `Policy`
/// is immutable and `Sync`: one instance can serve several threads.
#[derive(Clone, Debug)]
pub struct Policy {
    manifest: Manifest,
    obs_dim: usize,
    normalizer: Option<Normalizer>,
    /// Every layer's weight (`[out, in]` row-major) and bias, one after the other.
    theta: Vec<f32>,
    mlp: DenseMlp,
    head: HeadRule,
    space: Space,
}

impl Policy {
    /// Loads the export in `dir` (`policy.json` and `policy.safetensors`, as `rlpg export`
    /// writes them). Errors name the file and what is wrong: a missing or damaged file, a
    /// manifest of an unknown format or version, a tensor missing or of the wrong shape.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, PolicyError> {
        Self::from_export(&Export::read(dir.as_ref())?)
    }

    /// The policy of an export already in memory (see [`Export::new`], which checks it).
    /// Errors when its layers do not chain into one network.
    pub fn from_export(export: &Export) -> Result<Self, PolicyError> {
        let manifest = &export.manifest;
        // `Export` is checked on construction: every tensor below exists with its shape.
        let values = |name: &str| export.tensor(name).map(|t| t.values.clone()).unwrap_or_default();
        let mut theta = Vec::new();
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let weight = Segment {
                offset: theta.len(),
                shape: vec![layer.outputs, layer.inputs],
                column_major: false,
            };
            theta.extend(values(&layer.weight));
            let bias = theta.len();
            theta.extend(values(&layer.bias));
            layers.push(LayerSpec { weight, bias, activation: layer.activation });
        }
        let mlp = DenseMlp::from_layers(&layers).map_err(|e| PolicyError::Manifest {
            path: crate::MANIFEST_FILE.into(),
            what: format!("the layers do not form one network: {e}"),
        })?;
        if mlp.extent() > theta.len() {
            return Err(PolicyError::Manifest {
                path: crate::MANIFEST_FILE.into(),
                what: "the layers' tensors are shorter than their shapes".into(),
            });
        }
        let normalizer = manifest.observation.normalization.as_ref().map(|n| Normalizer {
            mean: n.mean.clone(),
            std: n.var.iter().map(|v| (v + n.epsilon).sqrt()).collect(),
            clip: n.clip,
        });
        let log_std = match &manifest.head {
            Head::Gaussian { log_std: Some(name) } => Some(values(name)),
            _ => None,
        };
        Ok(Self {
            obs_dim: manifest.observation.dim,
            normalizer,
            theta,
            mlp,
            head: HeadRule::new(manifest, log_std),
            space: manifest.action.space.to_space(),
            manifest: manifest.clone(),
        })
    }

    /// Floats per observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// The environment's action space, which every action is in.
    pub fn action_space(&self) -> &Space {
        &self.space
    }

    /// Flags per action mask (`rlpg_envs::Space::mask_len` of the action space): `n` for
    /// `Discrete(n)`, `sum(nvec)` for `MultiDiscrete(nvec)`, `2n` for `MultiBinary(n)`, 0 for a
    /// `Box` (which takes no mask).
    pub fn mask_len(&self) -> usize {
        self.space.mask_len()
    }

    /// The manifest the policy was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The deterministic action for one raw observation of [`Policy::obs_dim`] floats.
    pub fn act(&self, obs: &[f32]) -> Result<ActionBuf, PolicyError> {
        self.act_masked(obs, None)
    }

    /// The deterministic action for one raw observation under an action mask of
    /// [`Policy::mask_len`] flags, if given: the most probable allowed choice of each part.
    /// A mask of the wrong length, a part that allows no choice or a mask for a `Box` is an
    /// error naming it.
    pub fn act_masked(&self, obs: &[f32], mask: Option<&[bool]>) -> Result<ActionBuf, PolicyError> {
        self.check_single(obs)?;
        Ok(self.actions(obs, mask, None)?.pop().unwrap_or(ActionBuf::Discrete(0)))
    }

    /// The deterministic actions for a batch of raw observations, row-major (`rows ×`
    /// [`Policy::obs_dim`] floats), one action per row.
    pub fn act_batch(&self, obs: &[f32]) -> Result<Vec<ActionBuf>, PolicyError> {
        self.actions(obs, None, None)
    }

    /// [`Policy::act_batch`] under masks, if given: `rows ×` [`Policy::mask_len`] flags, one
    /// mask per observation. An error names the first row whose mask is not valid.
    pub fn act_batch_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
    ) -> Result<Vec<ActionBuf>, PolicyError> {
        self.actions(obs, masks, None)
    }

    /// One action drawn from the policy for one raw observation; see [`Policy::sample_batch`].
    pub fn sample(&self, obs: &[f32], seed: u64) -> Result<ActionBuf, PolicyError> {
        self.sample_masked(obs, None, seed)
    }

    /// One action drawn from the policy under an action mask, if given (see
    /// [`Policy::act_masked`]): a disallowed choice has probability 0 and is never drawn.
    pub fn sample_masked(
        &self,
        obs: &[f32],
        mask: Option<&[bool]>,
        seed: u64,
    ) -> Result<ActionBuf, PolicyError> {
        self.check_single(obs)?;
        let mut rng = SplitMix(seed);
        Ok(self.actions(obs, mask, Some(&mut rng))?.pop().unwrap_or(ActionBuf::Discrete(0)))
    }

    /// Actions drawn from the policy (as the agent explores: a sample of each categorical or
    /// Bernoulli; the Gaussian's mean plus `std · ε`, clipped; the squashed Gaussian's
    /// `tanh(mean + std · ε)` rescaled; TD3's action plus Gaussian noise of std
    /// `exploration_noise`, clipped to the box), from a generator seeded with `seed`: the same
    /// seed gives the same actions.
    pub fn sample_batch(&self, obs: &[f32], seed: u64) -> Result<Vec<ActionBuf>, PolicyError> {
        self.actions(obs, None, Some(&mut SplitMix(seed)))
    }

    /// [`Policy::sample_batch`] under masks, if given (`rows ×` [`Policy::mask_len`] flags).
    pub fn sample_batch_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
        seed: u64,
    ) -> Result<Vec<ActionBuf>, PolicyError> {
        self.actions(obs, masks, Some(&mut SplitMix(seed)))
    }

    /// The policy's action distribution for one raw observation: probabilities for discrete
    /// heads, mean and std for Gaussian ones (see [`ActionDistribution`]).
    pub fn distribution(&self, obs: &[f32]) -> Result<ActionDistribution, PolicyError> {
        self.distribution_masked(obs, None)
    }

    /// [`Policy::distribution`] under an action mask, if given: disallowed choices have
    /// probability exactly 0 and the allowed ones of each part sum to 1.
    pub fn distribution_masked(
        &self,
        obs: &[f32],
        mask: Option<&[bool]>,
    ) -> Result<ActionDistribution, PolicyError> {
        self.check_single(obs)?;
        let mut all = self.distribution_batch_masked(obs, mask)?;
        all.pop().ok_or(PolicyError::ObservationLength {
            expected: self.obs_dim,
            got: obs.len(),
            batch: false,
        })
    }

    /// The action distributions for a batch of raw observations (row-major), one per row.
    pub fn distribution_batch(&self, obs: &[f32]) -> Result<Vec<ActionDistribution>, PolicyError> {
        self.distribution_batch_masked(obs, None)
    }

    /// [`Policy::distribution_batch`] under masks, if given (`rows ×` [`Policy::mask_len`]
    /// flags).
    pub fn distribution_batch_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
    ) -> Result<Vec<ActionDistribution>, PolicyError> {
        self.per_row(obs, masks, |row, mask, scratch| self.head.distribution(row, mask, scratch))
    }

    /// The network's outputs for raw observations, each row with its mask (checked first):
    /// `f(outputs, mask, scratch)` per row, in order.
    fn per_row<T>(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
        mut f: impl FnMut(&[f32], Option<&[bool]>, &mut Vec<f32>) -> T,
    ) -> Result<Vec<T>, PolicyError> {
        let (trace, rows) = self.forward(obs)?;
        self.check_masks(masks, rows)?;
        let width = self.mlp.out_dim();
        let mask_len = self.mask_len();
        let mut scratch = Vec::new();
        Ok(trace
            .output()
            .chunks_exact(width)
            .enumerate()
            .map(|(r, row)| {
                let mask = masks.map(|m| &m[r * mask_len..(r + 1) * mask_len]);
                f(row, mask, &mut scratch)
            })
            .collect())
    }

    fn check_single(&self, obs: &[f32]) -> Result<(), PolicyError> {
        if obs.len() == self.obs_dim {
            Ok(())
        } else {
            Err(PolicyError::ObservationLength {
                expected: self.obs_dim,
                got: obs.len(),
                batch: false,
            })
        }
    }

    /// Checks `masks` for `rows` observations: the whole length, then each row's mask
    /// against the space (each part allows a choice).
    fn check_masks(&self, masks: Option<&[bool]>, rows: usize) -> Result<(), PolicyError> {
        let Some(masks) = masks else { return Ok(()) };
        let len = self.mask_len();
        let batch = rows != 1;
        if len == 0 || masks.len() != rows * len {
            if let Some(what) = self.space.mask_problem(masks).filter(|_| !batch || len == 0) {
                return Err(PolicyError::Mask { row: None, what });
            }
            return Err(PolicyError::Mask {
                row: None,
                what: format!(
                    "{} mask flags for {rows} observations, expected {rows} × {len} (the masks of {} one after the other)",
                    masks.len(),
                    self.space
                ),
            });
        }
        for (r, mask) in masks.chunks_exact(len).enumerate() {
            if let Some(what) = self.space.mask_problem(mask) {
                return Err(PolicyError::Mask { row: batch.then_some(r), what });
            }
        }
        Ok(())
    }

    /// The network's pass over raw observations (its output is `trace.output()`), and the
    /// number of rows.
    fn forward(&self, obs: &[f32]) -> Result<(Trace, usize), PolicyError> {
        if self.obs_dim == 0 || obs.len() % self.obs_dim != 0 {
            return Err(PolicyError::ObservationLength {
                expected: self.obs_dim,
                got: obs.len(),
                batch: true,
            });
        }
        let rows = obs.len() / self.obs_dim;
        let mut trace = Trace::default();
        if rows > 0 {
            let mut input = Vec::with_capacity(obs.len());
            self.normalize(obs, &mut input);
            self.mlp.forward(&self.theta, &input, rows, &mut trace);
        }
        Ok((trace, rows))
    }

    /// The actions for raw observations under `masks`: the mode, or with `rng` a sample.
    fn actions(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
        mut rng: Option<&mut SplitMix>,
    ) -> Result<Vec<ActionBuf>, PolicyError> {
        self.per_row(obs, masks, |row, mask, scratch| {
            let query = match rng.as_deref_mut() {
                None => Query::Mode,
                Some(rng) => Query::Sample(rng),
            };
            self.head.action(row, mask, query, scratch)
        })
    }

    /// Raw observations normalised as training did (or copied), into `out`.
    fn normalize(&self, obs: &[f32], out: &mut Vec<f32>) {
        match &self.normalizer {
            None => out.extend_from_slice(obs),
            Some(n) => out.extend(obs.chunks_exact(self.obs_dim).flat_map(|row| {
                row.iter().zip(n.mean.iter().zip(&n.std)).map(|(&x, (&m, &s))| {
                    // `clamp` would panic on a NaN clip; the manifest's clip is checked > 0.
                    (((f64::from(x) - m) / s) as f32).clamp(-n.clip, n.clip)
                })
            })),
        }
    }
}
