//! The pathwise actor and the action encoding it shares with the critic.
//!
//! Inside the agent, actions live where the critic sees them: a `Box` action as `y ∈ [−1, 1]^d`
//! (rescaled to the bounds only for the environment, as Stable-Baselines3 does, so learning
//! rates and noise scales do not depend on the bounds), a `Discrete(n)` action as a one-hot
//! (or relaxed one-hot) row of `n` floats, a `MultiDiscrete(nvec)` action as its components'
//! one-hots side by side (`Σ nvec` floats) and a `MultiBinary(n)` action as `n` two-way one-hots
//! ("0" then "1" for each value, `2n` floats): the layout of the action masks, in which a
//! masked-out choice is a column that is always 0.

use rlpg_envs::{BoxSpace, Space};
use rlpg_kernel::heads::{
    argmax, bound_logits_in_place, clamp_log_std, gumbel_max, log_softmax_in_place,
    mask_logits_in_place,
};
use tch::{Device, Kind, Tensor, nn};

use crate::agent::{Actions, AgentError};
use crate::backend::{Backend, Ops, Unary};
use crate::distributions::{GumbelSoftmax, LOG_STD_MAX, LOG_STD_MIN, SquashedGaussian};
use crate::networks::{LayerInit, Mlp};
use crate::scaffold::{Mlps, Net};
use crate::settings::Activation;

/// How the agent's actions relate to the environment's.
#[derive(Clone, Debug)]
pub(crate) enum ActionCoding {
    /// `Box` actions: the agent's `y ∈ [−1, 1]^d` is `loc + scale · y` in the environment.
    Box {
        /// Environment bounds.
        space: BoxSpace,
        /// `(high + low) / 2`, `[d]`.
        loc: Vec<f32>,
        /// `(high − low) / 2`, `[d]`.
        scale: Vec<f32>,
        /// `1 / scale`.
        inv_scale: Vec<f32>,
    },
    /// `Discrete(n)`: the environment takes an index, the critic its one-hot.
    Discrete {
        /// Number of actions.
        n: usize,
    },
    /// `MultiDiscrete(nvec)` or `MultiBinary(n)`: the environment takes an index (or a 0/1 bit)
    /// per component, the critic the components' one-hots side by side.
    Multi {
        /// Choices of each component: `nvec`, or `[2; n]` for a `MultiBinary(n)`.
        parts: Vec<usize>,
    },
}

impl ActionCoding {
    /// The coding of `space`. A `Box` needs finite bounds with `low < high` in every dimension.
    pub(crate) fn new(space: &Space) -> Result<Self, AgentError> {
        match space {
            Space::Discrete(0) => {
                Err(AgentError::Invalid("action space Discrete(0) is empty".into()))
            }
            Space::Discrete(n) => Ok(Self::Discrete { n: *n }),
            Space::MultiDiscrete(_) | Space::MultiBinary(_) => match space.problem() {
                Some(problem) => {
                    Err(AgentError::Invalid(format!("action space {space}: {problem}")))
                }
                None => Ok(Self::Multi { parts: space.mask_components() }),
            },
            Space::Box(b) => {
                if b.dim() == 0 {
                    return Err(AgentError::Invalid(format!("action space {space} is empty")));
                }
                if let Some(i) = (0..b.dim()).find(|&i| {
                    !(b.low[i].is_finite() && b.high[i].is_finite() && b.low[i] < b.high[i])
                }) {
                    return Err(AgentError::Invalid(format!(
                        "action space {space}: dimension {i} has bounds [{}, {}]; the pathwise \
                         agent squashes actions into the box, which needs finite bounds with \
                         low < high",
                        b.low[i], b.high[i]
                    )));
                }
                // In f64, so that wide or very narrow boxes keep what precision f32 has.
                let half = |i: usize| ((f64::from(b.high[i]) - f64::from(b.low[i])) / 2.0) as f32;
                let mid = |i: usize| ((f64::from(b.high[i]) + f64::from(b.low[i])) / 2.0) as f32;
                let scale: Vec<f32> = (0..b.dim()).map(half).collect();
                Ok(Self::Box {
                    space: b.clone(),
                    loc: (0..b.dim()).map(mid).collect(),
                    inv_scale: scale.iter().map(|s| 1.0 / s).collect(),
                    scale,
                })
            }
        }
    }

    /// Box actions from the agent's `[−1, 1]` to the environment's bounds, in place (discrete
    /// actions are already in the environment's form).
    pub(crate) fn to_env_form(&self, actions: &mut Actions) {
        if let (Self::Box { loc, scale, .. }, Actions::Floats { values, width }) = (self, actions) {
            let d = *width;
            for (i, a) in values.iter_mut().enumerate() {
                *a = *a * scale[i % d] + loc[i % d];
            }
        }
    }

    /// Floats per action as the critic and the replay buffer see it.
    pub(crate) fn dim(&self) -> usize {
        match self {
            Self::Box { space, .. } => space.dim(),
            Self::Discrete { n } => *n,
            Self::Multi { parts } => parts.iter().sum(),
        }
    }

    /// The choices of each component of a discrete action (`[n]` for `Discrete(n)`), in the
    /// layout of the action masks; empty for a box.
    pub(crate) fn parts(&self) -> Vec<usize> {
        match self {
            Self::Box { .. } => Vec::new(),
            Self::Discrete { n } => vec![*n],
            Self::Multi { parts } => parts.clone(),
        }
    }

    /// `rows` actions drawn uniformly from the environment's action space, in its form, into
    /// `out` (from tch's generator: `rand` on a box, `randint` on a discrete space). With
    /// `masks` (`[rows, Σ parts]`, checked), each component is uniform over the choices its
    /// mask allows, from one `rand` draw per component (as for a `MultiDiscrete` or
    /// `MultiBinary` space without masks).
    pub(crate) fn random(
        &self,
        rows: usize,
        masks: Option<&[bool]>,
        out: &mut Actions,
    ) -> Result<(), AgentError> {
        let parts = self.parts();
        if masks.is_some() || matches!(self, Self::Multi { .. }) {
            let k = parts.len();
            let m: usize = parts.iter().sum();
            let u = Tensor::f_rand([rows as i64, k as i64], (Kind::Float, Device::Cpu))?;
            let mut draws = vec![0.0f32; rows * k];
            u.f_copy_data(&mut draws, rows * k)?;
            let values = out.indices(rows, k);
            for row in 0..rows {
                let mut start = 0;
                for (part, &n) in parts.iter().enumerate() {
                    let allowed = |i: usize| masks.is_none_or(|masks| masks[row * m + start + i]);
                    let count = (0..n).filter(|&i| allowed(i)).count();
                    // In f64 and clamped: `u · count` must not round up to `count`.
                    let pick = ((f64::from(draws[row * k + part]) * count as f64) as usize)
                        .min(count.saturating_sub(1));
                    let choice = (0..n).filter(|&i| allowed(i)).nth(pick).ok_or_else(|| {
                        AgentError::Invalid(format!(
                            "the action mask of row {row} allows no choice of part {part}"
                        ))
                    })?;
                    values[row * k + part] = choice as i64;
                    start += n;
                }
            }
            return Ok(());
        }
        match self {
            Self::Box { space, .. } => {
                let d = space.dim();
                let u = Tensor::f_rand([rows as i64, d as i64], (Kind::Float, Device::Cpu))?;
                let values = out.floats(rows, d);
                u.f_copy_data(values, rows * d)?;
                for a in values.iter_mut() {
                    *a = *a * 2.0 - 1.0;
                }
                self.to_env_form(out);
            }
            Self::Discrete { n } => {
                let a = Tensor::f_randint(*n as i64, [rows as i64], (Kind::Int64, Device::Cpu))?;
                a.f_copy_data(out.indices(rows, 1), rows)?;
            }
            Self::Multi { .. } => unreachable!("drawn above"),
        }
        Ok(())
    }

    /// The critic's encoding of `count` environment-form actions into `out`: `y ∈ [−1, 1]` for
    /// a box, one-hot rows for a discrete space (one per component, side by side).
    pub(crate) fn encode(
        &self,
        actions: &Actions,
        count: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), AgentError> {
        let shape_error = || {
            AgentError::Invalid(format!(
                "transition actions are {actions}; expected {} as returned by act",
                match self {
                    Self::Box { space, .. } => format!("{count} rows of {} floats", space.dim()),
                    Self::Discrete { .. } => format!("{count} rows of 1 index"),
                    Self::Multi { parts } => format!("{count} rows of {} indices", parts.len()),
                }
            ))
        };
        out.clear();
        match (self, actions) {
            (Self::Box { space, loc, inv_scale, .. }, Actions::Floats { values, width }) => {
                let d = space.dim();
                if *width != d || values.len() != count * d {
                    return Err(shape_error());
                }
                out.extend(
                    values.iter().enumerate().map(|(i, &a)| (a - loc[i % d]) * inv_scale[i % d]),
                );
            }
            (Self::Discrete { n }, Actions::Indices { values, width: 1 }) => {
                if values.len() != count {
                    return Err(shape_error());
                }
                out.resize(count * n, 0.0);
                for (row, &a) in values.iter().enumerate() {
                    let a = usize::try_from(a).ok().filter(|&a| a < *n).ok_or_else(|| {
                        AgentError::Invalid(format!("action {a} is outside Discrete({n})"))
                    })?;
                    out[row * n + a] = 1.0;
                }
            }
            (Self::Multi { parts }, Actions::Indices { values, width }) => {
                let (k, m) = (parts.len(), parts.iter().sum::<usize>());
                if *width != k || values.len() != count * k {
                    return Err(shape_error());
                }
                out.resize(count * m, 0.0);
                for (row, action) in values.chunks_exact(k).enumerate() {
                    let mut start = 0;
                    for (part, (&a, &n)) in action.iter().zip(parts).enumerate() {
                        let a = usize::try_from(a).ok().filter(|&a| a < n).ok_or_else(|| {
                            AgentError::Invalid(format!(
                                "action {a} of component {part} is outside 0..{n}"
                            ))
                        })?;
                        out[row * m + start + a] = 1.0;
                        start += n;
                    }
                }
            }
            _ => return Err(shape_error()),
        }
        Ok(())
    }
}

/// What turns the actor network's outputs into actions.
#[derive(Clone, Debug)]
pub(crate) enum ActorHead {
    /// SAC on a box: a tanh-squashed Gaussian with state-dependent std on `[−1, 1]^d` (the
    /// outputs are `d` means, then `d` raw log-stds).
    Squashed {
        /// Action dimensions.
        d: usize,
    },
    /// SAC on a discrete space: Gumbel-softmax over each component's logits (`parts[i]` of
    /// them, component after component; `[n]` for `Discrete(n)`), each component's bounded to
    /// `±logit_bound` when it is > 0.
    Relaxed { parts: Vec<usize>, temperature: f64, straight_through: bool, logit_bound: f64 },
    /// TD3: `tanh` of the outputs, a deterministic action in `[−1, 1]^d`.
    Deterministic {
        /// Action dimensions.
        d: usize,
    },
}

/// How the actor is built: the parts of the settings it needs.
#[derive(Clone, Debug)]
pub(crate) struct ActorSpec<'a> {
    /// Deterministic `tanh` actor (TD3) instead of a stochastic one (SAC).
    pub(crate) deterministic: bool,
    /// Hidden layer widths.
    pub(crate) hidden: &'a [usize],
    /// Hidden nonlinearity.
    pub(crate) activation: Activation,
    /// Gumbel-softmax temperature (discrete spaces).
    pub(crate) temperature: f64,
    /// Straight-through Gumbel-softmax (discrete spaces).
    pub(crate) straight_through: bool,
    /// Bound `L` on the centred logits, `L · tanh(raw / L)`, with a penalty on raw logits past
    /// it (discrete spaces; 0: unbounded).
    pub(crate) logit_bound: f64,
    /// How the layers start.
    pub(crate) init: LayerInit,
}

/// The actor's policy at a batch of observations.
pub(crate) enum ActorPolicy<B: Ops> {
    /// A squashed Gaussian.
    Squashed(SquashedGaussian<B>),
    /// A Gumbel-softmax relaxed categorical, with the [`logit_overshoot`] of its raw logits when
    /// they are bounded.
    Relaxed(GumbelSoftmax<B>, Option<B::M>),
    /// Deterministic actions in `[−1, 1]^d`.
    Deterministic(B::M),
}

/// A batch of actions from the policy with its entropy term.
pub(crate) struct PolicySample<B: Ops> {
    /// `[rows, action_dim]` actions in the critic's encoding; differentiable in the actor's
    /// parameters when drawn by [`ActorHead::rsample`].
    pub(crate) actions: B::M,
    /// `[rows, 1]` the per-state estimate of `−H(π(·|s))` that SAC's objective penalizes:
    /// `log π(a|s)` of the sampled action, or the exact `−H` where the family has a closed form
    /// (the categorical), which carries no sampling noise. `None` for a deterministic actor,
    /// whose objective (TD3) has no entropy term.
    pub(crate) neg_entropy: Option<B::M>,
    /// `[rows, 1]` the [`logit_overshoot`] penalty of a bounded discrete actor, added to its
    /// loss (from [`ActorHead::rsample`] only); `None` otherwise.
    pub(crate) logit_penalty: Option<B::M>,
}

impl ActorHead {
    /// The head for actions coded by `coding`: deterministic (TD3) or stochastic (SAC: squashed
    /// Gaussian for a box, Gumbel-softmax for a discrete space).
    pub(crate) fn new(coding: &ActionCoding, spec: &ActorSpec<'_>) -> Result<Self, AgentError> {
        Ok(match (coding, spec.deterministic) {
            (ActionCoding::Box { space, .. }, true) => Self::Deterministic { d: space.dim() },
            (ActionCoding::Box { space, .. }, false) => Self::Squashed { d: space.dim() },
            (ActionCoding::Discrete { .. } | ActionCoding::Multi { .. }, false) => Self::Relaxed {
                parts: coding.parts(),
                temperature: spec.temperature,
                straight_through: spec.straight_through,
                logit_bound: spec.logit_bound,
            },
            (ActionCoding::Discrete { .. } | ActionCoding::Multi { .. }, true) => {
                return Err(AgentError::Invalid(format!(
                    "a deterministic actor (estimator td3) needs a Box action space, got \
                     discrete actions with components {:?}; use estimator sac, which relaxes \
                     discrete actions with Gumbel-softmax",
                    coding.parts()
                )));
            }
        })
    }

    /// Outputs the actor network needs.
    pub(crate) fn outputs(&self) -> usize {
        match self {
            Self::Squashed { d } => 2 * d,
            Self::Relaxed { parts, .. } => parts.iter().sum(),
            Self::Deterministic { d } => *d,
        }
    }

    /// The actor network's MLP for `obs_dim` observations under `path`.
    pub(crate) fn build(&self, path: &nn::Path<'_>, obs_dim: usize, spec: &ActorSpec<'_>) -> Mlps {
        let outputs = self.outputs();
        vec![("", Mlp::new(path, obs_dim, spec.hidden, outputs, spec.activation, spec.init))]
    }

    /// The policy of actor network `net` at `obs`, within the masks whose logit bias is
    /// `mask_bias` (`[rows, outputs()]`, see [`mask_bias`]; discrete heads only, `None`: every
    /// action allowed). The logit bound applies to the network's outputs, then the mask.
    pub(crate) fn policy<B: Backend, O>(
        &self,
        b: &mut B,
        net: &Net<O>,
        obs: &B::M,
        mask_bias: Option<&B::M>,
    ) -> ActorPolicy<B> {
        let outputs = b.mlp(net, 0, obs);
        match self {
            &Self::Squashed { d } => {
                let mean = b.cols(&outputs, 0, d);
                let raw = b.cols(&outputs, d, d);
                let log_std = b.clamp(&raw, LOG_STD_MIN.into(), LOG_STD_MAX.into());
                ActorPolicy::Squashed(SquashedGaussian::new(mean, log_std))
            }
            Self::Relaxed { parts, temperature, straight_through, logit_bound } => {
                let (logits, overshoot) = if *logit_bound > 0.0 {
                    let (logits, overshoot) = bounded_parts(b, &outputs, parts, *logit_bound);
                    (logits, Some(overshoot))
                } else {
                    (outputs, None)
                };
                let (t, st) = (*temperature, *straight_through);
                let d = GumbelSoftmax::from_parts(b, &logits, parts, mask_bias, t, st);
                ActorPolicy::Relaxed(d, overshoot)
            }
            Self::Deterministic { .. } => ActorPolicy::Deterministic(b.tanh(&outputs)),
        }
    }

    /// A reparameterized sample at `obs` (within the masks of `mask_bias`) for the actor loss,
    /// differentiable in the actor's parameters, with fresh noise: `rows × d` normals (box) or
    /// `rows × Σ parts` uniforms (discrete).
    pub(crate) fn rsample<B: Backend>(
        &self,
        b: &mut B,
        net: &Net,
        obs: &B::M,
        mask_bias: Option<&B::M>,
    ) -> Result<PolicySample<B>, AgentError> {
        let (rows, _) = b.shape(obs);
        Ok(match self.policy(b, net, obs, mask_bias) {
            ActorPolicy::Squashed(d) => {
                let eps = b.normal(rows, self.action_dim())?;
                let (actions, log_prob) = d.rsample_with_log_prob(b, &eps);
                PolicySample { actions, neg_entropy: Some(log_prob), logit_penalty: None }
            }
            ActorPolicy::Relaxed(d, overshoot) => {
                let u = b.uniform(rows, self.action_dim())?;
                let actions = d.rsample(b, &u);
                let entropy = d.entropy(b);
                PolicySample {
                    actions,
                    neg_entropy: Some(b.neg(&entropy)),
                    logit_penalty: overshoot,
                }
            }
            ActorPolicy::Deterministic(actions) => {
                PolicySample { actions, neg_entropy: None, logit_penalty: None }
            }
        })
    }

    /// A sample at next observations (within the masks of `mask_bias`, the next states') for
    /// the TD target (call under `no_grad`). Discrete actions are hard one-hots (an exact
    /// categorical sample of every component), the inputs the critic is trained on; the others
    /// as in [`ActorHead::rsample`].
    pub(crate) fn sample_for_target<B: Backend>(
        &self,
        b: &mut B,
        net: &Net,
        obs: &B::M,
        mask_bias: Option<&B::M>,
    ) -> Result<PolicySample<B>, AgentError> {
        let (rows, _) = b.shape(obs);
        match self.policy(b, net, obs, mask_bias) {
            ActorPolicy::Relaxed(d, _) => {
                let u = b.uniform(rows, self.action_dim())?;
                let actions = d.one_hot_sample(b, &u);
                let entropy = d.entropy(b);
                Ok(PolicySample {
                    actions,
                    neg_entropy: Some(b.neg(&entropy)),
                    logit_penalty: None,
                })
            }
            _ => self.rsample(b, net, obs, mask_bias),
        }
    }

    /// Floats per action in the critic's encoding.
    pub(crate) fn action_dim(&self) -> usize {
        match self {
            Self::Squashed { d } | Self::Deterministic { d } => *d,
            Self::Relaxed { parts, .. } => parts.iter().sum(),
        }
    }

    /// What exploring draws per row: `(columns, normal)`; discrete heads draw a uniform per
    /// logit for the Gumbel-max trick, the others standard normals.
    pub(crate) fn noise(&self) -> (usize, bool) {
        match self {
            Self::Relaxed { parts, .. } => (parts.iter().sum(), false),
            Self::Squashed { d } | Self::Deterministic { d } => (*d, true),
        }
    }

    /// Flags per row of an action mask for this head (the action space's `Space::mask_len`);
    /// 0 for the box heads, which take no masks.
    pub(crate) fn mask_len(&self) -> usize {
        match self {
            Self::Relaxed { parts, .. } => parts.iter().sum(),
            Self::Squashed { .. } | Self::Deterministic { .. } => 0,
        }
    }

    /// The agent's-form actions (`y ∈ [−1, 1]` floats or indices) from the actor's outputs on
    /// the host: the mode, or exploring with `noise` (as [`ActorHead::noise`] says; TD3 scales
    /// its normals by `exploration_noise`). The rule of the distributions' own sampling, from
    /// the same draws. `scratch` is working memory.
    ///
    /// With `masks` (`[rows, mask_len()]`, checked by the caller), a discrete head's every
    /// choice is one its row's mask allows: masked logits become `−∞` after the logit bound (as
    /// in deployment), so the mode is the most probable allowed choice and a Gumbel-max sample
    /// is one of the distribution restricted to the allowed choices (what the update's
    /// [`MASKED_LOGIT`](crate::distributions::MASKED_LOGIT) bias gives).
    pub(crate) fn act(
        &self,
        outputs: &[f32],
        noise: Option<&[f32]>,
        masks: Option<&[bool]>,
        exploration_noise: f64,
        scratch: &mut Vec<f32>,
        out: &mut Actions,
    ) {
        let width = self.outputs();
        let rows = outputs.len() / width;
        match *self {
            Self::Squashed { d } => {
                let values = out.floats(rows, d);
                for (row, o) in outputs.chunks_exact(width).enumerate() {
                    for j in 0..d {
                        let u = match noise {
                            Some(eps) => o[j] + clamp_log_std(o[d + j]).exp() * eps[row * d + j],
                            None => o[j],
                        };
                        values[row * d + j] = u.tanh();
                    }
                }
            }
            Self::Deterministic { d } => {
                let values = out.floats(rows, d);
                for (row, o) in outputs.chunks_exact(width).enumerate() {
                    for j in 0..d {
                        let mu = o[j].tanh();
                        values[row * d + j] = match noise {
                            Some(eps) => {
                                (mu + eps[row * d + j] * exploration_noise as f32).clamp(-1.0, 1.0)
                            }
                            None => mu,
                        };
                    }
                }
            }
            Self::Relaxed { ref parts, logit_bound, .. } => {
                let k = parts.len();
                let values = out.indices(rows, k);
                for (row, o) in outputs.chunks_exact(width).enumerate() {
                    let mut start = 0;
                    for (part, &n) in parts.iter().enumerate() {
                        let columns = row * width + start..row * width + start + n;
                        scratch.clear();
                        scratch.extend_from_slice(&o[start..start + n]);
                        bound_logits_in_place(scratch, logit_bound as f32);
                        if let Some(masks) = masks {
                            mask_logits_in_place(scratch, &masks[columns.clone()]);
                        }
                        log_softmax_in_place(scratch);
                        values[row * k + part] = match noise {
                            Some(u) => gumbel_max(scratch, &u[columns]),
                            None => argmax(scratch),
                        } as i64;
                        start += n;
                    }
                }
            }
        }
    }
}

/// [`bounded_logits`] of each component's columns of `raw` (`[rows, Σ parts]`) on its own,
/// side by side, with the components' [`logit_overshoot`] penalties summed; the same as
/// `bounded_logits` for one component.
pub(crate) fn bounded_parts<B: Ops>(
    b: &mut B,
    raw: &B::M,
    parts: &[usize],
    bound: f64,
) -> (B::M, B::M) {
    if parts.len() <= 1 {
        return bounded_logits(b, raw, bound);
    }
    let mut start = 0;
    let mut out: Option<(B::M, B::M)> = None;
    for &k in parts {
        let cols = b.cols(raw, start, k);
        start += k;
        let (logits, overshoot) = bounded_logits(b, &cols, bound);
        out = Some(match out {
            None => (logits, overshoot),
            Some((left, total)) => (b.concat_cols(&left, &logits), b.add(&total, &overshoot)),
        });
    }
    out.expect("at least two parts")
}

/// The actor's logits with their spread bounded: `raw` centred on its row mean, then
/// `bound · tanh(· / bound)`, so that logits differ by at most `2 · bound` and no softmax
/// probability can round to exactly 0 or 1 in f32 (with `n` actions the smallest is at least
/// `e^(−2·bound) / n`). Centring matters: bounding each logit alone lets all of them saturate at
/// `+bound` together, a uniform policy with no gradient. Returned with the
/// [`logit_overshoot`] penalty of the same raw logits.
///
/// A `tanh` alone only moves the problem: raw logits keep drifting past the bound, where its
/// gradient vanishes; the overshoot is the penalty that keeps them inside.
pub(crate) fn bounded_logits<B: Ops>(b: &mut B, raw: &B::M, bound: f64) -> (B::M, B::M) {
    let (_, n) = b.shape(raw);
    let sum = b.sum_cols(raw);
    let mean = b.scale(&sum, 1.0 / n as f64);
    let centred = b.sub(raw, &mean);
    let scaled = b.scale(&centred, 1.0 / bound);
    let squashed = b.tanh(&scaled);
    let logits = b.scale(&squashed, bound);
    (logits, logit_overshoot(b, &centred, bound))
}

/// `Σ_i max(|c_i| − bound, 0)²` per row of the centred raw logits `c`, `[rows, 1]`: zero inside
/// the bound, and a restoring gradient that grows with the overshoot outside it, so that the raw
/// logits stay where [`bounded_logits`]' `tanh` still passes gradient.
pub(crate) fn logit_overshoot<B: Ops>(b: &mut B, centred: &B::M, bound: f64) -> B::M {
    let magnitude = b.unary(Unary::Abs, centred);
    let beyond = b.shift(&magnitude, -bound);
    let excess = b.unary(Unary::Relu, &beyond);
    let squared = b.square(&excess);
    b.sum_cols(&squared)
}
