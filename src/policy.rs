//! [`Policy`]: a trained policy loaded for acting, on libtorch.
//!
//! It holds only what acting needs, taken from a checkpoint as `rlpg export` takes it (see
//! [`crate::export`]): the acting network, the observation normalisation, the head and the
//! action space with its rescaling. [`Policy::act`] takes a raw observation and returns the
//! action `rlpg eval` sends to the environment; [`Policy::sample_batch`] draws from the policy
//! with a seed. The same policy without libtorch is `rlpg_policy::Policy`, loaded from the
//! export directory.

use std::path::Path;

use rlpg_envs::{ActionBuf, Space};
use rlpg_policy::manifest::{Head, LOG_STD_MAX, LOG_STD_MIN, Manifest};
use rlpg_policy::{Export, MANIFEST_FILE, PolicyError};
use tch::{Kind, Tensor};

use crate::export::{agent_activation, export_checkpoint, tensor_of};
use crate::run::{EnvSource, RunError, default_eval_checkpoint};
use crate::trainer::EnvFactory;

/// A trained policy on libtorch: acts on raw observations as `rlpg eval` does.
#[derive(Debug)]
pub struct Policy {
    manifest: Manifest,
    layers: Vec<(Tensor, Tensor, Option<rlpg_agents::Activation>)>,
    /// A REINFORCE Gaussian's state-independent log-std.
    log_std: Option<Tensor>,
    /// `(mean, sqrt(var + epsilon), clip)` of the observation normalisation.
    normalizer: Option<(Vec<f64>, Vec<f64>, f32)>,
    /// `(loc, scale)` of a squashed head.
    rescale: Option<(Tensor, Tensor)>,
    space: Space,
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
        if path.join(MANIFEST_FILE).is_file() {
            return Ok(Self::from_export(&Export::read(path).map_err(file_error)?));
        }
        let checkpoint =
            if path.is_dir() { default_eval_checkpoint(path)? } else { path.to_owned() };
        let envs = factory.map_or(EnvSource::Builtin, EnvSource::Factory);
        Ok(Self::from_export(&export_checkpoint(&checkpoint, envs)?))
    }

    /// The policy of an export (checked when it was built).
    pub fn from_export(export: &Export) -> Self {
        let manifest = export.manifest.clone();
        let tensor = |name: &str| {
            export.tensor(name).map_or_else(
                || Tensor::zeros([0], (Kind::Float, tch::Device::Cpu)),
                |t| tensor_of(&t.values, &t.shape),
            )
        };
        let layers = manifest
            .layers
            .iter()
            .map(|l| (tensor(&l.weight), tensor(&l.bias), l.activation.map(agent_activation)))
            .collect();
        let log_std = match &manifest.head {
            Head::Gaussian { log_std: Some(name) } => Some(tensor(name)),
            _ => None,
        };
        let normalizer = manifest.observation.normalization.as_ref().map(|n| {
            let std = n.var.iter().map(|v| (v + n.epsilon).sqrt()).collect();
            (n.mean.clone(), std, n.clip)
        });
        let rescale =
            manifest.action.rescale.as_ref().map(|r| {
                (tensor_of(&r.loc, &[r.loc.len()]), tensor_of(&r.scale, &[r.scale.len()]))
            });
        let space = manifest.action.space.to_space();
        Self { manifest, layers, log_std, normalizer, rescale, space }
    }

    /// Floats per observation.
    pub fn obs_dim(&self) -> usize {
        self.manifest.observation.dim
    }

    /// The environment's action space.
    pub fn action_space(&self) -> &Space {
        &self.space
    }

    /// The description of the policy, as `policy.json` holds it.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The deterministic action (the policy's mode) for one raw observation.
    pub fn act(&self, obs: &[f32]) -> Result<ActionBuf, PolicyError> {
        self.check_single(obs)?;
        let mut actions = self.act_batch(obs)?;
        Ok(actions.pop().unwrap_or(ActionBuf::Discrete(0)))
    }

    /// The deterministic actions for raw observations `[rows, obs_dim]` (row-major).
    pub fn act_batch(&self, obs: &[f32]) -> Result<Vec<ActionBuf>, PolicyError> {
        self.act_impl(obs, None)
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
    /// box), from a generator seeded with `seed`: the same seed gives the same actions. Uses
    /// its own generator, leaving libtorch's global one untouched.
    pub fn sample_batch(&self, obs: &[f32], seed: u64) -> Result<Vec<ActionBuf>, PolicyError> {
        self.act_impl(obs, Some(seed))
    }

    fn check_single(&self, obs: &[f32]) -> Result<(), PolicyError> {
        if obs.len() == self.obs_dim() {
            Ok(())
        } else {
            Err(PolicyError::ObservationLength {
                expected: self.obs_dim(),
                got: obs.len(),
                batch: false,
            })
        }
    }

    fn act_impl(&self, obs: &[f32], seed: Option<u64>) -> Result<Vec<ActionBuf>, PolicyError> {
        let dim = self.obs_dim();
        if obs.len() % dim != 0 {
            return Err(PolicyError::ObservationLength {
                expected: dim,
                got: obs.len(),
                batch: true,
            });
        }
        let rows = obs.len() / dim;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let input: Vec<f32> = match &self.normalizer {
            None => obs.to_vec(),
            Some((mean, std, clip)) => obs
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let d = i % dim;
                    (((f64::from(x) - mean[d]) / std[d]) as f32).clamp(-clip, *clip)
                })
                .collect(),
        };
        let torch_error = |e: tch::TchError| PolicyError::Tensors {
            path: "policy".into(),
            what: format!("libtorch: {e}"),
        };
        let outputs = tch::no_grad(|| {
            let mut h = Tensor::from_slice(&input).view([rows as i64, dim as i64]);
            for (w, b, activation) in &self.layers {
                h = h.f_linear(w, Some(b))?;
                if let Some(a) = activation {
                    h = rlpg_agents::networks::activation_tensor(*a, &h);
                }
            }
            Ok::<Tensor, tch::TchError>(h)
        })
        .map_err(torch_error)?;
        let mut rng = seed.map(SplitMix::new);
        let actions = tch::no_grad(|| self.head(&outputs, rng.as_mut())).map_err(torch_error)?;
        self.to_env(actions, rows).map_err(torch_error)
    }

    /// The head's actions for network outputs: `Int64 [rows]` indices or `Float [rows, d]`.
    fn head(&self, outputs: &Tensor, rng: Option<&mut SplitMix>) -> Result<Tensor, tch::TchError> {
        let rows = outputs.size()[0];
        let d = self.manifest.action.space.dim() as i64;
        let normal = |rng: &mut SplitMix| {
            let eps: Vec<f32> = (0..rows * d).map(|_| rng.normal() as f32).collect();
            Tensor::from_slice(&eps).view([rows, d])
        };
        Ok(match (&self.manifest.head, rng) {
            (Head::Categorical, None) => outputs.f_argmax(-1, false)?,
            (Head::GumbelSoftmax { logit_bound, .. }, None) => {
                bounded_logits(outputs, *logit_bound)
                    .f_log_softmax(-1, Kind::Float)?
                    .f_argmax(-1, false)?
            }
            (Head::Categorical, Some(rng)) => categorical_sample(outputs, rng)?,
            (Head::GumbelSoftmax { logit_bound, .. }, Some(rng)) => {
                categorical_sample(&bounded_logits(outputs, *logit_bound), rng)?
            }
            (Head::Gaussian { .. }, None) => outputs.f_narrow(-1, 0, d)?,
            (Head::Gaussian { .. }, Some(rng)) => {
                let std = self.log_std(outputs, d)?.f_exp()?;
                outputs.f_narrow(-1, 0, d)? + std * normal(rng)
            }
            (Head::SquashedGaussian, None) => outputs.f_narrow(-1, 0, d)?.f_tanh()?,
            (Head::SquashedGaussian, Some(rng)) => {
                let std = self.log_std(outputs, d)?.f_exp()?;
                (outputs.f_narrow(-1, 0, d)? + std * normal(rng)).f_tanh()?
            }
            (Head::DeterministicTanh { .. }, None) => outputs.f_tanh()?,
            (Head::DeterministicTanh { exploration_noise }, Some(rng)) => {
                (outputs.f_tanh()? + normal(rng) * *exploration_noise).f_clamp(-1.0, 1.0)?
            }
        })
    }

    /// The Gaussian's log-std: the parameter, or outputs `d..2d` clamped.
    fn log_std(&self, outputs: &Tensor, d: i64) -> Result<Tensor, tch::TchError> {
        match &self.log_std {
            Some(p) => Ok(p.shallow_clone()),
            None => {
                outputs.f_narrow(-1, d, d)?.f_clamp(f64::from(LOG_STD_MIN), f64::from(LOG_STD_MAX))
            }
        }
    }

    /// Rescales a squashed head's actions and converts them as the trainer does for the env
    /// (indices; vectors clipped into the bounds, NaN kept).
    fn to_env(&self, actions: Tensor, rows: usize) -> Result<Vec<ActionBuf>, tch::TchError> {
        match &self.space {
            Space::Discrete(_) => {
                let idx = Vec::<i64>::try_from(&actions.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?)?;
                Ok(idx
                    .into_iter()
                    .map(|a| ActionBuf::Discrete(usize::try_from(a).unwrap_or(usize::MAX)))
                    .collect())
            }
            Space::Box(b) => {
                let actions = match &self.rescale {
                    Some((loc, scale)) => tch::no_grad(|| actions * scale + loc),
                    None => actions,
                };
                let mut flat = Vec::<f32>::try_from(&actions.f_flatten(0, -1)?)?;
                let d = b.dim();
                for (i, a) in flat.iter_mut().enumerate() {
                    let (lo, hi) = (b.low[i % d], b.high[i % d]);
                    if *a < lo {
                        *a = lo;
                    } else if *a > hi {
                        *a = hi;
                    }
                }
                Ok(flat
                    .chunks_exact(d)
                    .take(rows)
                    .map(|x| ActionBuf::Continuous(x.to_vec()))
                    .collect())
            }
            Space::MultiDiscrete(nvec) => {
                let idx = Vec::<i64>::try_from(&actions.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?)?;
                Ok(idx
                    .chunks_exact(nvec.len().max(1))
                    .take(rows)
                    .map(|row| {
                        let row = row.iter().map(|&a| usize::try_from(a).unwrap_or(usize::MAX));
                        ActionBuf::MultiDiscrete(row.collect())
                    })
                    .collect())
            }
            Space::MultiBinary(n) => {
                let bits =
                    Vec::<i64>::try_from(&actions.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?)?;
                Ok(bits
                    .chunks_exact((*n).max(1))
                    .take(rows)
                    .map(|row| ActionBuf::MultiBinary(row.iter().map(|&b| b != 0).collect()))
                    .collect())
            }
        }
    }
}

/// rlpg-agents' bounded logits: `bound · tanh((raw − mean) / bound)`, or `raw` for `bound = 0`.
fn bounded_logits(raw: &Tensor, bound: f32) -> Tensor {
    if bound > 0.0 {
        let bound = f64::from(bound);
        let centred = raw - raw.mean_dim(-1, true, Kind::Float);
        (centred / bound).tanh() * bound
    } else {
        raw.shallow_clone()
    }
}

/// One categorical sample per row of `logits` by the inverse CDF of a uniform draw.
fn categorical_sample(logits: &Tensor, rng: &mut SplitMix) -> Result<Tensor, tch::TchError> {
    let probs = logits.f_softmax(-1, Kind::Float)?;
    let n = probs.size()[1] as usize;
    let p = Vec::<f32>::try_from(&probs.f_flatten(0, -1)?)?;
    let picks: Vec<i64> = p
        .chunks_exact(n)
        .map(|row| {
            let u = rng.uniform() as f32;
            let mut total = 0.0;
            for (i, &pi) in row.iter().enumerate() {
                total += pi;
                if u < total {
                    return i as i64;
                }
            }
            // Rounding left the total just under u: the last action with probability > 0.
            row.iter().rposition(|&pi| pi > 0.0).unwrap_or(n - 1) as i64
        })
        .collect();
    Ok(Tensor::from_slice(&picks))
}

/// SplitMix64, the seeded generator of [`Policy::sample_batch`].
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

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
