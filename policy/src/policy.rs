//! [`Policy`]: an export loaded for acting, in plain Rust, with the network forward pass and
//! the heads' arithmetic rlpg trains with (`rlpg-kernel`).

use std::path::Path;

use rlpg_envs::{ActionBuf, Space};
use rlpg_kernel::heads::{
    argmax, bound_logits_in_place, clamp_log_std, inverse_cdf, log_softmax_in_place,
};
use rlpg_kernel::{DenseMlp, LayerSpec, Segment, Trace};

use crate::PolicyError;
use crate::export::Export;
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
/// [`Policy::sample`] draws from the policy as training explored, from a seed. The network runs
/// on `rlpg-kernel`'s MLP, the code rlpg's CPU kernel trains with. `Policy` is immutable and
/// `Sync`: one instance can serve several threads.
#[derive(Clone, Debug)]
pub struct Policy {
    manifest: Manifest,
    obs_dim: usize,
    normalizer: Option<Normalizer>,
    /// Every layer's weight (`[out, in]` row-major) and bias, one after the other.
    theta: Vec<f32>,
    mlp: DenseMlp,
    /// A Gaussian head's state-independent log-std.
    log_std: Option<Vec<f32>>,
    space: Space,
    /// `(loc, scale)` of a squashed head.
    rescale: Option<(Vec<f32>, Vec<f32>)>,
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
            log_std,
            space: manifest.action.space.to_space(),
            rescale: manifest.action.rescale.as_ref().map(|r| (r.loc.clone(), r.scale.clone())),
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

    /// The manifest the policy was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The deterministic action for one raw observation of [`Policy::obs_dim`] floats.
    pub fn act(&self, obs: &[f32]) -> Result<ActionBuf, PolicyError> {
        self.check_single(obs)?;
        let mut actions = self.act_batch(obs)?;
        Ok(actions.pop().unwrap_or(ActionBuf::Discrete(0)))
    }

    /// The deterministic actions for a batch of raw observations, row-major (`rows ×`
    /// [`Policy::obs_dim`] floats), one action per row.
    pub fn act_batch(&self, obs: &[f32]) -> Result<Vec<ActionBuf>, PolicyError> {
        self.actions(obs, None)
    }

    /// One action drawn from the policy for one raw observation; see [`Policy::sample_batch`].
    pub fn sample(&self, obs: &[f32], seed: u64) -> Result<ActionBuf, PolicyError> {
        self.check_single(obs)?;
        let mut actions = self.sample_batch(obs, seed)?;
        Ok(actions.pop().unwrap_or(ActionBuf::Discrete(0)))
    }

    /// Actions drawn from the policy (as the agent explores: a categorical sample; the
    /// Gaussian's mean plus `std · ε`, clipped; the squashed Gaussian's `tanh(mean + std · ε)`
    /// rescaled; TD3's action plus Gaussian noise of std `exploration_noise`, clipped to the
    /// box), from a generator seeded with `seed`: the same seed gives the same actions.
    pub fn sample_batch(&self, obs: &[f32], seed: u64) -> Result<Vec<ActionBuf>, PolicyError> {
        self.actions(obs, Some(&mut SplitMix(seed)))
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

    /// The actions for raw observations: the mode, or with `rng` a sample.
    fn actions(
        &self,
        obs: &[f32],
        rng: Option<&mut SplitMix>,
    ) -> Result<Vec<ActionBuf>, PolicyError> {
        if self.obs_dim == 0 || obs.len() % self.obs_dim != 0 {
            return Err(PolicyError::ObservationLength {
                expected: self.obs_dim,
                got: obs.len(),
                batch: true,
            });
        }
        let rows = obs.len() / self.obs_dim;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let mut input = Vec::with_capacity(obs.len());
        self.normalize(obs, &mut input);
        let mut trace = Trace::default();
        let outputs = self.mlp.forward(&self.theta, &input, rows, &mut trace);
        let width = self.mlp.out_dim();
        let mut rng = rng;
        let mut scratch = Vec::new();
        Ok(outputs
            .chunks_exact(width)
            .map(|row| self.head_action(row, rng.as_deref_mut(), &mut scratch))
            .collect())
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

    /// The action for one row of outputs (the mode, or with `rng` a sample), post-processed
    /// into the action space.
    fn head_action(
        &self,
        outputs: &[f32],
        rng: Option<&mut SplitMix>,
        scratch: &mut Vec<f32>,
    ) -> ActionBuf {
        let d = self.manifest.action.space.dim();
        let mut y: Vec<f32> = match (&self.manifest.head, rng) {
            (Head::Categorical, None) => return ActionBuf::Discrete(argmax(outputs)),
            (Head::Categorical, Some(rng)) => {
                return ActionBuf::Discrete(inverse_cdf(outputs, rng.uniform() as f32));
            }
            (Head::GumbelSoftmax { logit_bound, .. }, rng) => {
                scratch.clear();
                scratch.extend_from_slice(outputs);
                bound_logits_in_place(scratch, *logit_bound);
                // The agent's mode is the argmax of `log_softmax` of the (bounded) logits; the
                // subtraction can round two close logits to a tie, so it is repeated here.
                log_softmax_in_place(scratch);
                return ActionBuf::Discrete(match rng {
                    None => argmax(scratch),
                    Some(rng) => inverse_cdf(scratch, rng.uniform() as f32),
                });
            }
            (Head::Gaussian { .. }, None) => outputs[..d].to_vec(),
            (Head::Gaussian { .. }, Some(rng)) => (0..d)
                .map(|j| outputs[j] + self.log_std_at(outputs, j, d).exp() * rng.normal() as f32)
                .collect(),
            (Head::SquashedGaussian, None) => outputs[..d].iter().map(|u| u.tanh()).collect(),
            (Head::SquashedGaussian, Some(rng)) => (0..d)
                .map(|j| {
                    (outputs[j] + self.log_std_at(outputs, j, d).exp() * rng.normal() as f32).tanh()
                })
                .collect(),
            (Head::DeterministicTanh { .. }, None) => {
                outputs[..d].iter().map(|u| u.tanh()).collect()
            }
            (Head::DeterministicTanh { exploration_noise }, Some(rng)) => outputs[..d]
                .iter()
                .map(|u| (u.tanh() + (rng.normal() * exploration_noise) as f32).clamp(-1.0, 1.0))
                .collect(),
        };
        if let Some((loc, scale)) = &self.rescale {
            for ((a, &l), &s) in y.iter_mut().zip(loc).zip(scale) {
                *a = *a * s + l;
            }
        }
        if let Space::Box(b) = &self.space {
            for ((a, &lo), &hi) in y.iter_mut().zip(&b.low).zip(&b.high) {
                // NaN stays NaN, as rlpg's trainer leaves it for the env to reject.
                if *a < lo {
                    *a = lo;
                } else if *a > hi {
                    *a = hi;
                }
            }
        }
        ActionBuf::Continuous(y)
    }

    /// A Gaussian head's log-std of dimension `j`: the parameter, or output `d + j` clamped.
    fn log_std_at(&self, outputs: &[f32], j: usize, d: usize) -> f32 {
        match &self.log_std {
            Some(p) => p[j],
            None => clamp_log_std(outputs[d + j]),
        }
    }
}

/// SplitMix64, the seeded generator of [`Policy::sample_batch`].
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}
