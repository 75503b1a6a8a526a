//! [`Policy`]: an export loaded for acting, in plain Rust.

use std::path::Path;

use rlpg_envs::{ActionBuf, Space};

use crate::PolicyError;
use crate::export::Export;
use crate::manifest::{Activation, Head, Manifest};

/// One linear layer with its weights transposed to `[in, out]` row-major, so that the inner
/// loop runs over contiguous outputs (the layout of rlpg-agents' plain-Rust forward pass, whose
/// summation order it repeats).
#[derive(Clone, Debug)]
struct Dense {
    in_dim: usize,
    out_dim: usize,
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    activation: Option<Activation>,
}

/// Frozen observation statistics: `sqrt(var + epsilon)` precomputed (the square root is
/// correctly rounded, so this is the same number the formula gives at each call).
#[derive(Clone, Debug)]
struct Normalizer {
    mean: Vec<f64>,
    std: Vec<f64>,
    clip: f32,
}

/// How outputs become the head's action.
#[derive(Clone, Debug)]
enum HeadOp {
    /// First index of the largest output.
    Argmax,
    /// The first `dim` outputs.
    Mean { dim: usize },
    /// `tanh` of the first `dim` outputs.
    TanhMean { dim: usize },
    /// Logits bounded when `bound > 0`, `log_softmax`, first index of the largest.
    BoundedArgmax { bound: f32 },
}

/// A trained policy loaded from an export directory, acting without libtorch.
///
/// [`Policy::act`] takes a raw observation (as the environment returns it: normalisation, if
/// the run used it, is applied inside) and returns the deterministic action (the mode of the
/// policy) in the environment's action space, exactly as `rlpg eval` steps the environment.
/// `Policy` is immutable and `Sync`: one instance can serve several threads.
#[derive(Clone, Debug)]
pub struct Policy {
    manifest: Manifest,
    obs_dim: usize,
    normalizer: Option<Normalizer>,
    layers: Vec<Dense>,
    head: HeadOp,
    space: Space,
    /// `(loc, scale)` of a squashed head.
    rescale: Option<(Vec<f32>, Vec<f32>)>,
}

impl Policy {
    /// Loads the export in `dir` (`policy.json` and `policy.safetensors`, as `rlpg export`
    /// writes them). Errors name the file and what is wrong: a missing or damaged file, a
    /// manifest of an unknown format or version, a tensor missing or of the wrong shape.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, PolicyError> {
        Ok(Self::from_export(&Export::read(dir.as_ref())?))
    }

    /// The policy of an export already in memory (see [`Export::new`], which checks it).
    pub fn from_export(export: &Export) -> Self {
        let manifest = &export.manifest;
        // `Export` is checked on construction: every tensor below exists with its shape.
        let values = |name: &str| export.tensor(name).map(|t| t.values.clone()).unwrap_or_default();
        let layers = manifest
            .layers
            .iter()
            .map(|layer| {
                let w = values(&layer.weight);
                let (rows, cols) = (layer.outputs, layer.inputs);
                let mut weight_t = vec![0.0; rows * cols];
                for r in 0..rows {
                    for c in 0..cols {
                        weight_t[c * rows + r] = w.get(r * cols + c).copied().unwrap_or(0.0);
                    }
                }
                Dense {
                    in_dim: cols,
                    out_dim: rows,
                    weight_t,
                    bias: values(&layer.bias),
                    activation: layer.activation,
                }
            })
            .collect();
        let normalizer = manifest.observation.normalization.as_ref().map(|n| Normalizer {
            mean: n.mean.clone(),
            std: n.var.iter().map(|v| (v + n.epsilon).sqrt()).collect(),
            clip: n.clip,
        });
        let dim = manifest.action.space.dim();
        let head = match &manifest.head {
            Head::Categorical => HeadOp::Argmax,
            // The agent's mode is the argmax of `log_softmax` of the (bounded) logits; the
            // subtraction can round two close logits to a tie, so it is repeated here.
            Head::GumbelSoftmax { logit_bound, .. } => {
                HeadOp::BoundedArgmax { bound: *logit_bound }
            }
            Head::Gaussian { .. } => HeadOp::Mean { dim },
            Head::SquashedGaussian | Head::DeterministicTanh { .. } => HeadOp::TanhMean { dim },
        };
        Self {
            obs_dim: manifest.observation.dim,
            normalizer,
            layers,
            head,
            space: manifest.action.space.to_space(),
            rescale: manifest.action.rescale.as_ref().map(|r| (r.loc.clone(), r.scale.clone())),
            manifest: manifest.clone(),
        }
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
        if obs.len() != self.obs_dim {
            return Err(PolicyError::ObservationLength {
                expected: self.obs_dim,
                got: obs.len(),
                batch: false,
            });
        }
        let mut actions = self.act_batch(obs)?;
        Ok(actions.pop().unwrap_or(ActionBuf::Discrete(0)))
    }

    /// The deterministic actions for a batch of raw observations, row-major (`rows ×`
    /// [`Policy::obs_dim`] floats), one action per row.
    pub fn act_batch(&self, obs: &[f32]) -> Result<Vec<ActionBuf>, PolicyError> {
        if obs.len() % self.obs_dim != 0 {
            return Err(PolicyError::ObservationLength {
                expected: self.obs_dim,
                got: obs.len(),
                batch: true,
            });
        }
        let mut scratch = [Vec::new(), Vec::new()];
        let outputs = self.outputs(obs, &mut scratch);
        let width = self.layers.last().map_or(1, |l| l.out_dim);
        Ok(outputs.chunks_exact(width).map(|row| self.head_action(row)).collect())
    }

    /// The network's raw outputs for normalised observations `[rows, obs_dim]`.
    fn outputs<'a>(&self, obs: &[f32], scratch: &'a mut [Vec<f32>; 2]) -> &'a [f32] {
        let [a, b] = scratch;
        a.clear();
        match &self.normalizer {
            None => a.extend_from_slice(obs),
            Some(n) => a.extend(obs.chunks_exact(self.obs_dim).flat_map(|row| {
                row.iter()
                    .zip(n.mean.iter().zip(&n.std))
                    .map(|(&x, (&m, &s))| ((f64::from(x) - m) / s) as f32)
            })),
        }
        if let Some(n) = &self.normalizer {
            for z in a.iter_mut() {
                // `clamp` would panic on a NaN clip; the manifest's clip is checked > 0.
                *z = z.clamp(-n.clip, n.clip);
            }
        }
        let rows = obs.len() / self.obs_dim;
        let (mut current, mut next) = (a, b);
        for layer in &self.layers {
            next.clear();
            next.resize(rows * layer.out_dim, 0.0);
            for (x, y) in
                current.chunks_exact(layer.in_dim).zip(next.chunks_exact_mut(layer.out_dim))
            {
                y.copy_from_slice(&layer.bias);
                for (&xk, w) in x.iter().zip(layer.weight_t.chunks_exact(layer.out_dim)) {
                    if xk != 0.0 {
                        for (yj, &wj) in y.iter_mut().zip(w) {
                            *yj += xk * wj;
                        }
                    }
                }
                if let Some(activation) = layer.activation {
                    for yj in y.iter_mut() {
                        *yj = activation.apply(*yj);
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        current
    }

    /// The action for one row of outputs, post-processed into the action space.
    fn head_action(&self, outputs: &[f32]) -> ActionBuf {
        let mut y: Vec<f32> = match self.head {
            HeadOp::Argmax => return ActionBuf::Discrete(first_argmax(outputs)),
            HeadOp::BoundedArgmax { bound } => {
                return ActionBuf::Discrete(first_argmax(&log_softmax(&bounded(outputs, bound))));
            }
            HeadOp::Mean { dim } => outputs[..dim].to_vec(),
            HeadOp::TanhMean { dim } => outputs[..dim].iter().map(|u| u.tanh()).collect(),
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
}

/// `bound · tanh((r − mean(r)) / bound)`, or `r` for `bound = 0` (rlpg-agents' bounded logits).
fn bounded(raw: &[f32], bound: f32) -> Vec<f32> {
    if bound <= 0.0 {
        return raw.to_vec();
    }
    let mean = raw.iter().sum::<f32>() / raw.len() as f32;
    raw.iter().map(|r| ((r - mean) / bound).tanh() * bound).collect()
}

/// `x − logsumexp(x)`, as libtorch computes it (`x − max − ln Σ exp(x − max)`).
fn log_softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
    let lse = sum.ln();
    x.iter().map(|v| v - max - lse).collect()
}

/// The index of the first largest value (as `argmax` breaks ties).
fn first_argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
