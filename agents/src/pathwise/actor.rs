//! The pathwise actor and the action encoding it shares with the critic.
//!
//! Inside the agent, actions live where the critic sees them: a `Box` action as `y ∈ [−1, 1]^d`
//! (rescaled to the bounds only for the environment, as Stable-Baselines3 does, so learning
//! rates and noise scales do not depend on the bounds), a `Discrete(n)` action as a one-hot
//! (or relaxed one-hot) row of `n` floats.

use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor, nn, nn::Module};

use crate::agent::{ActMode, AgentError};
use crate::distributions::{ActionHead, Distribution, DistributionKind, GumbelSoftmax, LogStd};
use crate::networks::{LayerInit, Mlp};
use crate::settings::Activation;

/// How the agent's actions relate to the environment's.
#[derive(Debug)]
pub(crate) enum ActionCoding {
    /// `Box` actions: the agent's `y ∈ [−1, 1]^d` is `loc + scale · y` in the environment.
    Box {
        /// Environment bounds.
        space: BoxSpace,
        /// `(high + low) / 2`, `[d]`.
        loc: Tensor,
        /// `(high − low) / 2`, `[d]`.
        scale: Tensor,
        /// `loc` and `1 / scale` as floats, to encode stored actions without tensor operations.
        loc_v: Vec<f32>,
        /// See `loc_v`.
        inv_scale_v: Vec<f32>,
    },
    /// `Discrete(n)`: the environment takes an index, the critic its one-hot.
    Discrete {
        /// Number of actions.
        n: usize,
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
            Space::MultiDiscrete(_) | Space::MultiBinary(_) => Err(AgentError::Invalid(format!(
                "action space {space}: no pathwise policy head acts in it yet (issue #30)"
            ))),
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
                let half = |i: usize| ((f64::from(b.high[i]) - f64::from(b.low[i])) / 2.0) as f32;
                let mid = |i: usize| ((f64::from(b.high[i]) + f64::from(b.low[i])) / 2.0) as f32;
                let loc_v: Vec<f32> = (0..b.dim()).map(mid).collect();
                let scale_v: Vec<f32> = (0..b.dim()).map(half).collect();
                Ok(Self::Box {
                    space: b.clone(),
                    loc: Tensor::from_slice(&loc_v),
                    scale: Tensor::from_slice(&scale_v),
                    inv_scale_v: scale_v.iter().map(|s| 1.0 / s).collect(),
                    loc_v,
                })
            }
        }
    }

    /// Floats per action as the critic and the replay buffer see it.
    pub(crate) fn dim(&self) -> usize {
        match self {
            Self::Box { space, .. } => space.dim(),
            Self::Discrete { n } => *n,
        }
    }

    /// The environment's form of the agent's actions from [`Actor::act`]: rescaled `Float
    /// [n, d]` for a box, the `Int64 [n]` indices unchanged for a discrete space.
    pub(crate) fn to_env(&self, actions: Tensor) -> Tensor {
        match self {
            Self::Box { loc, scale, .. } => actions * scale + loc,
            Self::Discrete { .. } => actions,
        }
    }

    /// `n` actions drawn uniformly from the environment's action space, in its form.
    pub(crate) fn random(&self, n: usize) -> Tensor {
        match self {
            Self::Box { loc, scale, space, .. } => {
                let u = Tensor::rand([n as i64, space.dim() as i64], (Kind::Float, Device::Cpu));
                (u * 2.0 - 1.0) * scale + loc
            }
            Self::Discrete { n: k } => {
                Tensor::randint(*k as i64, [n as i64], (Kind::Int64, Device::Cpu))
            }
        }
    }

    /// Appends the critic's encoding of `count` environment-form actions to `out`: `y ∈ [−1, 1]`
    /// for a box, one-hot rows for a discrete space. `i64_scratch` is reused for indices.
    pub(crate) fn encode(
        &self,
        actions: &Tensor,
        count: usize,
        out: &mut Vec<f32>,
        i64_scratch: &mut Vec<i64>,
    ) -> Result<(), AgentError> {
        let shape_error = || {
            AgentError::Invalid(format!(
                "transition actions have shape {:?} and kind {:?}; expected {} as returned by act",
                actions.size(),
                actions.kind(),
                match self {
                    Self::Box { space, .. } => format!("Float [{count}, {}]", space.dim()),
                    Self::Discrete { .. } => format!("Int64 [{count}]"),
                }
            ))
        };
        out.clear();
        match self {
            Self::Box { space, loc_v, inv_scale_v, .. } => {
                let d = space.dim();
                if actions.numel() != count * d || !actions.is_floating_point() {
                    return Err(shape_error());
                }
                out.resize(count * d, 0.0);
                actions.to_kind(Kind::Float).f_copy_data(out, count * d)?;
                for (i, a) in out.iter_mut().enumerate() {
                    *a = (*a - loc_v[i % d]) * inv_scale_v[i % d];
                }
            }
            Self::Discrete { n } => {
                if actions.numel() != count || actions.kind() != Kind::Int64 {
                    return Err(shape_error());
                }
                i64_scratch.resize(count, 0);
                actions.f_copy_data(i64_scratch, count)?;
                out.resize(count * n, 0.0);
                for (row, &a) in i64_scratch.iter().enumerate() {
                    let a = usize::try_from(a).ok().filter(|&a| a < *n).ok_or_else(|| {
                        AgentError::Invalid(format!("action {a} is outside Discrete({n})"))
                    })?;
                    out[row * n + a] = 1.0;
                }
            }
        }
        Ok(())
    }
}

/// What turns the actor network's outputs into actions.
#[derive(Debug)]
enum Head {
    /// SAC on a box: a tanh-squashed Gaussian with state-dependent std on `[−1, 1]^d`.
    Squashed(ActionHead),
    /// SAC on a discrete space: Gumbel-softmax over `n` logits, bounded to `±logit_bound`
    /// when it is > 0.
    Relaxed { temperature: f64, straight_through: bool, logit_bound: f64 },
    /// TD3: `tanh` of the outputs, a deterministic action in `[−1, 1]^d`.
    Deterministic,
}

/// The actor's policy at a batch of observations.
enum Policy {
    /// A squashed Gaussian (through the shared [`Distribution`] interface).
    Squashed(Box<dyn Distribution>),
    /// A Gumbel-softmax relaxed categorical, with the [`logit_overshoot`] of its raw logits when
    /// they are bounded.
    Relaxed(GumbelSoftmax, Option<Tensor>),
    /// Deterministic actions in `[−1, 1]^d`.
    Deterministic(Tensor),
}

impl Policy {
    /// The deterministic action: the distribution's mode, or the deterministic action itself.
    fn mode(self) -> Tensor {
        match self {
            Policy::Squashed(d) => d.mode(),
            Policy::Relaxed(d, _) => d.mode(),
            Policy::Deterministic(a) => a,
        }
    }
}

/// A batch of actions from the policy with its entropy term.
#[derive(Debug)]
pub(crate) struct PolicySample {
    /// `[batch, action_dim]` actions in the critic's encoding; differentiable in the actor's
    /// parameters when drawn by [`Actor::rsample`].
    pub(crate) actions: Tensor,
    /// `[batch]` the per-state estimate of `−H(π(·|s))` that SAC's objective penalizes:
    /// `log π(a|s)` of the sampled action, or the exact `−H` where the family has a closed form
    /// (the categorical), which carries no sampling noise. Zeros for a deterministic actor,
    /// whose objective (TD3) has no entropy term.
    pub(crate) neg_entropy: Tensor,
    /// `[batch]` the [`logit_overshoot`] penalty of a bounded discrete actor, added to its loss
    /// (from [`Actor::rsample`] only); `None` otherwise.
    pub(crate) logit_penalty: Option<Tensor>,
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

/// The actor: an MLP from observations to a policy over the critic's action encoding.
#[derive(Debug)]
pub(crate) struct Actor {
    body: Mlp,
    head: Head,
}

impl Actor {
    /// An actor under `path` for `obs_dim` observations and actions coded by `coding`:
    /// deterministic (TD3) or stochastic (SAC: squashed Gaussian for a box, Gumbel-softmax for a
    /// discrete space).
    pub(crate) fn new(
        path: &nn::Path<'_>,
        obs_dim: usize,
        coding: &ActionCoding,
        spec: &ActorSpec<'_>,
    ) -> Result<Self, AgentError> {
        let (head, outputs) = match (coding, spec.deterministic) {
            (ActionCoding::Box { space, .. }, true) => (Head::Deterministic, space.dim()),
            (ActionCoding::Box { space, .. }, false) => {
                // The distribution lives on the unit box; the coding rescales for the env.
                let unit = Space::Box(BoxSpace::uniform(space.dim(), -1.0, 1.0));
                let head = ActionHead::new(
                    path,
                    &unit,
                    DistributionKind::SquashedGaussian,
                    LogStd::StateDependent,
                )?;
                let outputs = head.num_params();
                (Head::Squashed(head), outputs)
            }
            (ActionCoding::Discrete { n }, false) => (
                Head::Relaxed {
                    temperature: spec.temperature,
                    straight_through: spec.straight_through,
                    logit_bound: spec.logit_bound,
                },
                *n,
            ),
            (ActionCoding::Discrete { n }, true) => {
                return Err(AgentError::Invalid(format!(
                    "a deterministic actor (estimator td3) needs a Box action space, got \
                     Discrete({n}); use estimator sac, which relaxes discrete actions with \
                     Gumbel-softmax"
                )));
            }
        };
        let body = Mlp::new(path, obs_dim, spec.hidden, outputs, spec.activation, spec.init);
        Ok(Self { body, head })
    }

    /// The policy at `obs`.
    fn policy(&self, obs: &Tensor) -> Policy {
        let outputs = self.body.forward(obs);
        match &self.head {
            Head::Squashed(head) => Policy::Squashed(head.distribution(&outputs)),
            Head::Relaxed { temperature, straight_through, logit_bound } => {
                let logits = bounded_logits(&outputs, *logit_bound);
                let overshoot =
                    (*logit_bound > 0.0).then(|| logit_overshoot(&outputs, *logit_bound));
                let d = GumbelSoftmax::from_logits(&logits, *temperature, *straight_through);
                Policy::Relaxed(d, overshoot)
            }
            Head::Deterministic => Policy::Deterministic(outputs.tanh()),
        }
    }

    /// The squashed Gaussian on `[−1, 1]^d` at `obs` of a stochastic actor on a box (SAC), with
    /// gradients; `None` for the other actors.
    pub(crate) fn squashed(&self, obs: &Tensor) -> Option<Box<dyn Distribution>> {
        match self.policy(obs) {
            Policy::Squashed(d) => Some(d),
            Policy::Relaxed(..) | Policy::Deterministic(_) => None,
        }
    }

    /// The deterministic action at `obs` (the policy's mode), differentiable: `y ∈ [−1, 1]`
    /// floats for a box, `Int64` indices for a discrete space.
    pub(crate) fn mode(&self, obs: &Tensor) -> Tensor {
        self.policy(obs).mode()
    }

    /// Actions for the environment in the agent's form (`y ∈ [−1, 1]` floats or `Int64`
    /// indices), without gradients. Exploring, a deterministic actor adds Gaussian noise of std
    /// `exploration_noise` (clipped back into the box) and a stochastic one samples. `eps`,
    /// when given (`[batch, dim]`, Box actions), is the standard normal noise to explore with
    /// instead of fresh i.i.d. draws (temporally correlated exploration).
    pub(crate) fn act(
        &self,
        obs: &Tensor,
        mode: ActMode,
        exploration_noise: f64,
        eps: Option<&Tensor>,
    ) -> Tensor {
        tch::no_grad(|| match (mode, self.policy(obs)) {
            (ActMode::Deterministic, policy) => policy.mode(),
            (ActMode::Explore, Policy::Squashed(d)) => {
                eps.and_then(|eps| d.sample_from_noise(eps)).unwrap_or_else(|| d.sample())
            }
            (ActMode::Explore, Policy::Relaxed(d, _)) => d.sample(),
            (ActMode::Explore, Policy::Deterministic(a)) => {
                let noise = match eps {
                    Some(eps) => eps * exploration_noise,
                    None => a.randn_like() * exploration_noise,
                };
                (&a + noise).clamp(-1.0, 1.0)
            }
        })
    }

    /// A reparameterized sample at `obs` for the actor loss, differentiable in the actor's
    /// parameters.
    pub(crate) fn rsample(&self, obs: &Tensor) -> Result<PolicySample, AgentError> {
        Ok(match self.policy(obs) {
            Policy::Squashed(d) => {
                let (actions, log_prob) = d.rsample_with_log_prob()?;
                PolicySample { actions, neg_entropy: log_prob, logit_penalty: None }
            }
            Policy::Relaxed(d, overshoot) => PolicySample {
                actions: d.rsample()?,
                neg_entropy: -d.categorical_entropy(),
                logit_penalty: overshoot,
            },
            Policy::Deterministic(actions) => deterministic_sample(actions),
        })
    }

    /// For a discrete policy, the probabilities and log-probabilities of every action at `obs`
    /// (`[batch, n]` each, without gradients), from which a soft value is an exact expectation;
    /// `None` for a box.
    pub(crate) fn action_probs(&self, obs: &Tensor) -> Option<(Tensor, Tensor)> {
        tch::no_grad(|| match self.policy(obs) {
            Policy::Relaxed(d, _) => Some((d.probs(), d.log_probs().shallow_clone())),
            Policy::Squashed(_) | Policy::Deterministic(_) => None,
        })
    }

    /// A sample at next observations for the TD target, without gradients. Discrete actions
    /// are hard one-hots (an exact categorical sample), the inputs the critic is trained on;
    /// the others as in [`Actor::rsample`].
    pub(crate) fn sample_for_target(&self, obs: &Tensor) -> Result<PolicySample, AgentError> {
        tch::no_grad(|| {
            Ok(match self.policy(obs) {
                Policy::Squashed(d) => {
                    let (actions, log_prob) = d.rsample_with_log_prob()?;
                    PolicySample { actions, neg_entropy: log_prob, logit_penalty: None }
                }
                Policy::Relaxed(d, _) => PolicySample {
                    actions: d.one_hot(&d.sample()),
                    neg_entropy: -d.categorical_entropy(),
                    logit_penalty: None,
                },
                Policy::Deterministic(actions) => deterministic_sample(actions),
            })
        })
    }
}

/// The actor's logits with their spread bounded: `raw` centred on its row mean, then
/// `bound · tanh(· / bound)`, so that logits differ by at most `2 · bound` and no softmax
/// probability can round to exactly 0 or 1 in f32 (with `n` actions the smallest is at least
/// `e^(−2·bound) / n`). Centring matters: bounding each logit alone lets all of them saturate at
/// `+bound` together, a uniform policy with no gradient. `bound = 0` returns `raw` unchanged.
///
/// A `tanh` alone only moves the problem: raw logits keep drifting past the bound, where its
/// gradient vanishes; [`logit_overshoot`] is the penalty that keeps them inside.
pub(crate) fn bounded_logits(raw: &Tensor, bound: f64) -> Tensor {
    if bound > 0.0 { (centred(raw) / bound).tanh() * bound } else { raw.shallow_clone() }
}

/// `Σ_i max(|c_i| − bound, 0)²` per row of the centred raw logits `c`, `[batch]`: zero inside
/// the bound, and a restoring gradient that grows with the overshoot outside it, so that the raw
/// logits stay where [`bounded_logits`]' `tanh` still passes gradient.
pub(crate) fn logit_overshoot(raw: &Tensor, bound: f64) -> Tensor {
    let excess = (centred(raw).abs() - bound).relu();
    (&excess * &excess).sum_dim_intlist(-1, false, None)
}

/// `raw` minus its row mean (the softmax is unchanged).
fn centred(raw: &Tensor) -> Tensor {
    raw - raw.mean_dim(-1, true, None)
}

/// A deterministic actor's actions with a zero entropy term.
fn deterministic_sample(actions: Tensor) -> PolicySample {
    let batch = actions.size().first().copied().unwrap_or(0);
    let neg_entropy = Tensor::zeros([batch], (Kind::Float, actions.device()));
    PolicySample { actions, neg_entropy, logit_penalty: None }
}
