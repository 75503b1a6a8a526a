//! The pathwise agent's algorithm, top to bottom: construction, acting and observing, the
//! update (critic target, critic step, actor step), and, in one place, what SAC and TD3 do
//! differently ([`Variant`]). Written once over the compute backends ([`crate::backend`]); the
//! module docs of [`super`] give the maths.

use rlpg_envs::Space;
use tch::{Device, Tensor};

use crate::agent::{ActMode, Actions, Actor, ActorParams, Agent, AgentError, Metrics, Transition};
use crate::backend::coverage::AgentKind;
use crate::backend::{self, AnyBackend, Backend, BackendKind, Torch, with_backend};
use crate::grad_noise::GradNoise;
use crate::optim::{FlatParams, ScalarAdam};
use crate::probe::{PolicyProbe, gaussian_noise};
use crate::replay::ReplayBuffer;
use crate::scaffold::{Finite, Layout, Net, obs_dim};
use crate::settings::SettingsContext;

use super::actor::{ActionCoding, ActorHead, ActorPolicy, ActorSpec, PolicySample};
use super::beside::PathwiseActor;
use super::critic::{ActionInput, TwinCritic};
use super::exploration::PinkNoise;
use super::settings::{DiscreteCritic, Estimator, Exploration, PathwiseConfig};
use super::state::MetricSums;

/// Agent name used in messages and run directories.
pub(super) const NAME: &str = "pathwise";

/// The networks' numbers within the agent (see [`Net::id`]).
const ACTOR: u8 = 0;
const CRITIC: u8 = 1;
const CRITIC_TARGET: u8 = 2;
const ACTOR_TARGET: u8 = 3;

/// Slices of a minibatch the actor gradient's noise is estimated from (`grad_diagnostics`).
const GRAD_NOISE_SLICES: usize = 8;

/// Fraction of the uniform policy's entropy that SAC aims for on discrete actions by default:
/// `0.5 · ln n` on `Discrete(n)`, `0.5 · Σ_i ln nvec[i]` on `MultiDiscrete(nvec)` (the entropy
/// of independent parts adds up), `0.5 · n · ln 2` on `MultiBinary(n)`. Within action masks the
/// uniform policy is the one over the allowed choices: the target of each state is
/// `0.5 · Σ_i ln(allowed choices of component i)`, so a state whose mask leaves one choice asks
/// for no entropy it cannot have.
const DISCRETE_TARGET_ENTROPY_FRACTION: f64 = 0.5;

/// The pathwise agent (SAC or TD3). The update, with its maths, is documented in the source of
/// the (private) `pathwise` module.
#[derive(Debug)]
pub struct Pathwise {
    /// Where the update and acting are computed, chosen once (`backend` setting).
    backend: AnyBackend,
    pub(super) core: Core,
}

/// Everything but the backend: what the generic update and acting work on.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) cfg: PathwiseConfig,
    pub(super) num_envs: usize,
    pub(super) obs_dim: usize,
    pub(super) coding: ActionCoding,
    pub(super) head: ActorHead,
    critic_shape: TwinCritic,
    pub(super) actor: Net,
    pub(super) critic: Net,
    pub(super) critic_target: Net<()>,
    /// What makes this SAC or TD3.
    pub(super) variant: Variant,
    pub(super) replay: ReplayBuffer,
    /// Transitions observed.
    pub(super) env_steps: u64,
    /// Critic updates done.
    pub(super) updates: u64,
    /// Updates owed to the update-to-data ratio and not yet run.
    pub(super) update_credit: f64,
    pub(super) metrics: MetricSums,
    pub(super) steps_since_metrics: usize,
    /// The exploring actions' noise generator (`exploration = "pink"`); `None`: i.i.d. draws.
    pub(super) pink: Option<PinkNoise>,
    host: Host,
}

/// Host-side working memory, reused from call to call.
#[derive(Debug, Default)]
struct Host {
    encoded: Vec<f32>,
    /// The masks of a transition's two states as `0.0`/`1.0` flags.
    masks: Vec<f32>,
    next_masks: Vec<f32>,
    outputs: Vec<f32>,
    noise: Vec<f32>,
    row: Vec<f32>,
    grads: Vec<Vec<f32>>,
}

/// What makes the agent SAC or TD3; the replay buffer, the twin critics, their targets and the
/// update schedule are shared.
#[derive(Debug)]
pub(super) enum Variant {
    /// SAC: a stochastic actor and an entropy temperature.
    Sac(Temperature),
    /// TD3: a deterministic actor and a target copy of it, Polyak-averaged like the critics'.
    Td3 {
        /// The target actor.
        target_actor: Net<()>,
    },
}

/// The entropy temperature of SAC.
#[derive(Debug)]
pub(super) struct Temperature {
    pub(super) log_alpha: f64,
    target_entropy: f64,
    /// The default target of a discrete space, which masks scale
    /// ([`DISCRETE_TARGET_ENTROPY_FRACTION`]); false when `target_entropy` is set.
    target_follows_masks: bool,
    /// `ln max_alpha`, the cap on `log_alpha` (+∞ without a cap).
    max_log_alpha: f64,
    /// `None` when α is fixed.
    pub(super) opt: Option<ScalarAdam>,
}

impl Variant {
    /// The entropy temperature α; 0 for TD3, which has no entropy term.
    fn alpha(&self) -> f64 {
        match self {
            Variant::Sac(temperature) => temperature.log_alpha.exp(),
            Variant::Td3 { .. } => 0.0,
        }
    }
}

impl Pathwise {
    /// A new agent for `num_envs` environments with the given spaces. Weights are drawn from
    /// tch's global generator, so calling `tch::manual_seed` first makes construction (and every
    /// later sample and minibatch) reproducible. Runs on the CPU ([`Pathwise::new_on`] takes a
    /// device).
    ///
    /// Errors on settings [`PathwiseConfig::validate`] refuses for these spaces and `num_envs`,
    /// an empty observation space, `num_envs == 0`, a `Box` action space without finite
    /// bounds, or `backend = "kernel"` with something the kernel does not run.
    pub fn new(
        cfg: &PathwiseConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
    ) -> Result<Self, AgentError> {
        Self::new_on(cfg, observation_space, action_space, num_envs, Device::Cpu)
    }

    /// [`Pathwise::new`] with the networks, the replay buffer (so minibatches are gathered
    /// where they are used) and the optimizer state on `device` (the kernel backend needs the
    /// CPU). [`Agent::act`] takes and returns host values and checkpoints hold CPU tensors, so
    /// an agent saved on one device or backend loads on another.
    pub fn new_on(
        cfg: &PathwiseConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
        device: Device,
    ) -> Result<Self, AgentError> {
        let obs_dim = obs_dim(num_envs, observation_space)?;
        cfg.validate(&SettingsContext::run(num_envs, action_space))?;
        let settings = serde_json::to_value(cfg)
            .map_err(|e| AgentError::Invalid(format!("settings do not serialize: {e}")))?;
        let kind = backend::resolve(cfg.backend, AgentKind::Pathwise, &settings, device)?;
        let coding = ActionCoding::new(action_space)?;
        let act_dim = coding.dim();
        let spec = ActorSpec {
            deterministic: cfg.estimator == Estimator::Td3,
            hidden: &cfg.actor_hidden,
            activation: cfg.activation,
            temperature: cfg.gumbel_temperature,
            straight_through: cfg.straight_through,
            logit_bound: cfg.logit_bound,
            init: cfg.layer_init.layer_init(),
        };
        let head = ActorHead::new(&coding, &spec)?;
        let input = match (&coding, cfg.discrete_critic) {
            (ActionCoding::Discrete { .. }, DiscreteCritic::PerAction) => ActionInput::PerAction,
            _ => ActionInput::Concatenated,
        };
        let critic_shape = TwinCritic { input, obs_dim, act_dim };
        let build_actor = |p: &tch::nn::Path<'_>| Ok(head.build(p, obs_dim, &spec));
        let build_critic = |p: &tch::nn::Path<'_>| {
            Ok(critic_shape.build(p, &cfg.critic_hidden, cfg.activation, spec.init))
        };

        // Classic-control inputs are 3 or 4 wide: column-major weights keep MKL on its fast
        // products for the first layer's gradients (see `optim::column_major`).
        let layout = Layout::ColumnMajor;
        // Built in this order (actor, TD3's target actor, critic, target critic), which fixes
        // the draws from the generator.
        let actor = Net::trained(ACTOR, layout, cfg.actor_learning_rate, device, build_actor)?;
        let variant = match cfg.estimator {
            Estimator::Td3 => Variant::Td3 {
                target_actor: Net::target_of(ACTOR_TARGET, &actor, layout, build_actor)?,
            },
            Estimator::Sac => Variant::Sac(Temperature {
                log_alpha: cfg.alpha.ln(),
                target_entropy: cfg.target_entropy.unwrap_or(match action_space {
                    Space::Box(_) => -(action_space.flat_dim() as f64),
                    _ => DISCRETE_TARGET_ENTROPY_FRACTION * log_choices(&coding.parts(), None),
                }),
                target_follows_masks: cfg.target_entropy.is_none()
                    && !matches!(action_space, Space::Box(_)),
                max_log_alpha: if cfg.max_alpha > 0.0 { cfg.max_alpha.ln() } else { f64::INFINITY },
                opt: cfg.autotune_alpha.then(|| ScalarAdam::new(cfg.alpha_learning_rate)),
            }),
        };
        let critic = Net::trained(CRITIC, layout, cfg.critic_learning_rate, device, build_critic)?;
        let critic_target = Net::target_of(CRITIC_TARGET, &critic, layout, build_critic)?;
        Ok(Self {
            backend: AnyBackend::new(kind, device),
            core: Core {
                cfg: cfg.clone(),
                num_envs,
                obs_dim,
                replay: ReplayBuffer::new_on(cfg.buffer_size, obs_dim, act_dim, device)?,
                coding,
                head,
                critic_shape,
                actor,
                critic,
                critic_target,
                variant,
                env_steps: 0,
                updates: 0,
                update_credit: 0.0,
                metrics: MetricSums::default(),
                steps_since_metrics: 0,
                pink: (cfg.exploration == Exploration::Pink)
                    .then(|| PinkNoise::new(num_envs, act_dim)),
                host: Host::default(),
            },
        })
    }

    /// The settings the agent was built with.
    pub fn config(&self) -> &PathwiseConfig {
        &self.core.cfg
    }

    /// The current entropy temperature α (0 for TD3, which has no entropy term).
    pub fn alpha(&self) -> f64 {
        self.core.variant.alpha()
    }

    /// Critic updates done so far.
    pub fn updates(&self) -> u64 {
        self.core.updates
    }

    /// Transitions stored in the replay buffer.
    pub fn replay_len(&self) -> usize {
        self.core.replay.len()
    }

    /// Runs one full update (critic, and actor, temperature and targets when due) on a
    /// minibatch from the replay buffer, whatever the schedule says. Used by `observe`, and by
    /// benchmarks that time updates alone. Errors when the buffer is empty.
    pub fn update(&mut self) -> Result<(), AgentError> {
        let core = &mut self.core;
        with_backend!(&mut self.backend, b => core.update(b))
    }
}

impl Core {
    /// The guard on this update's losses and gradient norms.
    pub(super) fn finite(&self) -> Finite {
        Finite { agent: NAME, update: self.updates }
    }

    /// Actions for observations `obs` into `out`, in the environment's form, each within its
    /// row's mask when `masks` (`[rows, mask_len]`) are given.
    fn act<B: Backend>(
        &mut self,
        b: &mut B,
        obs: &[f32],
        masks: Option<&[bool]>,
        mode: ActMode,
        out: &mut Actions,
    ) -> Result<(), AgentError> {
        let rows = crate::reinforce::rows_of(obs, self.obs_dim)?;
        if let Some(masks) = masks {
            self.check_masks(masks, rows)?;
        }
        if mode == ActMode::Explore && self.env_steps < self.cfg.learning_starts as u64 {
            return self.coding.random(rows, masks, out);
        }
        b.begin();
        let x = b.constant(rows, self.obs_dim, obs)?;
        let outputs = b.no_grad(|b| b.mlp(&self.actor, 0, &x));
        b.to_host(&outputs, &mut self.host.outputs)?;
        let noise = match (mode, &mut self.pink) {
            (ActMode::Deterministic, _) => None,
            (ActMode::Explore, Some(pink)) => {
                pink.next_into(&mut self.host.noise);
                if self.host.noise.len() != rows * self.head.action_dim() {
                    return Err(AgentError::Invalid(format!(
                        "pink exploration noise is kept for {} envs; got {rows} observations",
                        self.num_envs
                    )));
                }
                Some(self.host.noise.as_slice())
            }
            (ActMode::Explore, None) => {
                let (cols, normal) = self.head.noise();
                let draws = if normal { b.normal(rows, cols)? } else { b.uniform(rows, cols)? };
                b.to_host(&draws, &mut self.host.noise)?;
                Some(self.host.noise.as_slice())
            }
        };
        let explore_std = self.cfg.exploration_noise;
        self.head.act(&self.host.outputs, noise, masks, explore_std, &mut self.host.row, out);
        // A box action from [−1, 1] to the environment's bounds.
        self.coding.to_env_form(out);
        Ok(())
    }

    /// Checks `masks` for `rows` states: the head takes masks, they have its length and every
    /// component of every row keeps a choice (an error names the row and the component).
    fn check_masks(&mut self, masks: &[bool], rows: usize) -> Result<(), AgentError> {
        let m = self.head.mask_len();
        if m == 0 {
            return Err(AgentError::Invalid(format!(
                "the pathwise agent's policy over {} actions takes no action masks",
                self.coding.dim()
            )));
        }
        if masks.len() != rows * m {
            return Err(AgentError::Invalid(format!(
                "{} mask flags for {rows} states; the action space needs {m} a state",
                masks.len()
            )));
        }
        crate::distributions::mask_bias_of(&self.coding.parts(), false, masks, &mut self.host.row)
    }

    /// One full update on a minibatch from the replay buffer.
    fn update<B: Backend>(&mut self, b: &mut B) -> Result<(), AgentError> {
        b.begin();
        let (od, ad, md) = (self.obs_dim, self.coding.dim(), self.replay.mask_len());
        let rows = b.tensor(&self.replay.sample_rows(self.cfg.batch_size)?)?;
        // Rows are `obs | action | reward | terminated | next_obs` (then `mask | next_mask`).
        let obs = b.cols(&rows, 0, od);
        let actions = b.cols(&rows, od, ad);
        let rewards = b.cols(&rows, od + ad, 1);
        let terminated = b.cols(&rows, od + ad + 1, 1);
        let next_obs = b.cols(&rows, od + ad + 2, od);
        // The masks' logit bias: `(flag − 1) · |MASKED_LOGIT|`, 0 where allowed.
        let (bias, next_bias, target_entropy) = if md > 0 {
            let masks = b.cols(&rows, 2 * od + ad + 2, md);
            let next_masks = b.cols(&rows, 2 * od + ad + 2 + md, md);
            let target_entropy = self.masked_target_entropy(b, &masks)?;
            let big = -f64::from(crate::distributions::MASKED_LOGIT);
            let bias = |b: &mut B, m: &B::M| {
                let scaled = b.scale(m, big);
                b.shift(&scaled, -big)
            };
            (Some(bias(b, &masks)), Some(bias(b, &next_masks)), target_entropy)
        } else {
            (None, None, None)
        };

        let alpha = self.variant.alpha();
        let target =
            self.td_target(b, &rewards, &terminated, &next_obs, next_bias.as_ref(), alpha)?;
        self.critic_step(b, &obs, &actions, &target)?;
        self.updates += 1;
        // TD3's delayed policy updates: the actor, the temperature and the targets move once
        // every `policy_delay` critic updates.
        if self.updates % self.cfg.policy_delay as u64 == 0 {
            let neg_entropy = self.actor_step(b, &obs, bias.as_ref(), alpha)?;
            self.after_actor_step(b, neg_entropy, target_entropy)?;
            b.polyak(&mut self.critic_target, &self.critic, self.cfg.tau)?;
        }
        Ok(())
    }

    /// The critics' regression target `r + γ (1 − terminated) · V'(s')` (no gradients).
    ///
    /// Only `terminated` masks the bootstrap. A truncated transition (a time limit) is stored
    /// like any other: its `next_obs` is the episode's final observation, whose value counts,
    /// because the episode could have gone on from there.
    fn td_target<B: Backend>(
        &self,
        b: &mut B,
        rewards: &B::M,
        terminated: &B::M,
        next_obs: &B::M,
        next_bias: Option<&B::M>,
        alpha: f64,
    ) -> Result<B::M, AgentError> {
        b.no_grad(|b| {
            let next_value = self.next_value(b, next_obs, next_bias, alpha)?;
            let gamma = self.cfg.gamma;
            let keep = b.scale(terminated, -gamma);
            let discount = b.shift(&keep, gamma);
            let bootstrap = b.mul(&next_value, &discount);
            Ok(b.add(rewards, &bootstrap))
        })
    }

    /// `V'(s')` of the TD target at `next_obs`, the policy there within the masks of the
    /// logit bias `next_bias` (the next states' masks) when given.
    fn next_value<B: Backend>(
        &self,
        b: &mut B,
        next_obs: &B::M,
        next_bias: Option<&B::M>,
        alpha: f64,
    ) -> Result<B::M, AgentError> {
        let target = &self.critic_target;
        match &self.variant {
            // TD3: the smoothed target actor's action, no entropy term. Target policy
            // smoothing: `clip(μ'(s') + clip(ε, −c, c), −1, 1)`, `ε ~ N(0, policy_noise²)`, so
            // the target averages the critic over a small neighbourhood of the target action
            // instead of exploiting a narrow peak.
            Variant::Td3 { target_actor } => {
                let ActorPolicy::Deterministic(mu) =
                    self.head.policy(b, target_actor, next_obs, None)
                else {
                    return Err(AgentError::Invalid("TD3's actor is deterministic".into()));
                };
                let (rows, d) = b.shape(&mu);
                let eps = b.normal(rows, d)?;
                let (noise, clip) = (self.cfg.policy_noise, self.cfg.noise_clip);
                let scaled = b.scale(&eps, noise);
                let clipped = b.clamp(&scaled, -clip, clip);
                let moved = b.add(&mu, &clipped);
                let a = b.clamp(&moved, -1.0, 1.0);
                let (q1, q2) = self.critic_shape.values(b, target, next_obs, &a);
                Ok(b.minimum(&q1, &q2))
            }
            // SAC on a discrete space with `expected_discrete_value`: the exact expectation over
            // the n actions (SAC-discrete, Christodoulou 2019),
            // `Σ_a π(a|s') (min(Q1', Q2')(s', a) − α log π(a|s'))`.
            Variant::Sac(_) if self.cfg.expected_discrete_value => {
                let ActorPolicy::Relaxed(d, _) =
                    self.head.policy(b, &self.actor, next_obs, next_bias)
                else {
                    return Err(AgentError::Invalid(
                        "expected_discrete_value needs a discrete action space".into(),
                    ));
                };
                let (q1, q2) = self.critic_shape.every_action(b, target, next_obs)?;
                let q = b.minimum(&q1, &q2);
                let entropy_term = b.scale(&d.log_probs, alpha);
                let soft = b.sub(&q, &entropy_term);
                let probs = d.probs(b);
                let weighted = b.mul(&probs, &soft);
                Ok(b.sum_cols(&weighted))
            }
            // SAC otherwise: the current actor's sample and its entropy term,
            // `min(Q1', Q2')(s', a') − α log π(a'|s')`.
            Variant::Sac(_) => {
                let sample = self.head.sample_for_target(b, &self.actor, next_obs, next_bias)?;
                let (q1, q2) = self.critic_shape.values(b, target, next_obs, &sample.actions);
                let q = b.minimum(&q1, &q2);
                match &sample.neg_entropy {
                    Some(neg_entropy) => {
                        let term = b.scale(neg_entropy, alpha);
                        Ok(b.sub(&q, &term))
                    }
                    None => Ok(q),
                }
            }
        }
    }

    /// One Adam step of both critics toward `target`, with one optimizer on the sum of their
    /// squared errors.
    fn critic_step<B: Backend>(
        &mut self,
        b: &mut B,
        obs: &B::M,
        actions: &B::M,
        target: &B::M,
    ) -> Result<(), AgentError> {
        let guard = self.finite();
        let (q1, q2) = self.critic_shape.values(b, &self.critic, obs, actions);
        let mse = |b: &mut B, q: &B::M| {
            let error = b.sub(q, target);
            let squared = b.square(&error);
            b.mean(&squared)
        };
        let qf1_loss = mse(b, &q1);
        let qf2_loss = mse(b, &q2);
        let qf1 = guard.check("losses/qf1_loss", b.scalar(&qf1_loss)?)?;
        let qf2 = guard.check("losses/qf2_loss", b.scalar(&qf2_loss)?)?;
        let loss = b.add(&qf1_loss, &qf2_loss);
        let max_norm = self.cfg.max_grad_norm;
        let norm = b.step(&loss, &mut self.critic, max_norm, guard, "losses/critic_grad_norm")?;
        let q1_mean = b.host_mean(&q1)?;
        self.metrics.add("losses/qf1_loss", qf1);
        self.metrics.add("losses/qf2_loss", qf2);
        self.metrics.add("losses/qf1_values", q1_mean);
        self.metrics.add("losses/critic_grad_norm", norm);
        Ok(())
    }

    /// One Adam step of the actor through the (unchanged) critic at observations `obs`:
    /// SAC's loss `α log π(a|s) − min(Q1, Q2)(s, a)`, TD3's `−Q1(s, μ(s))`, per sample, plus a
    /// bounded discrete actor's logit penalty; the policy within the masks of the logit bias
    /// `bias` when given. Returns the mean `−H` estimate of the sample it was taken on (0 for
    /// TD3), for the temperature step.
    fn actor_step<B: Backend>(
        &mut self,
        b: &mut B,
        obs: &B::M,
        bias: Option<&B::M>,
        alpha: f64,
    ) -> Result<f64, AgentError> {
        let guard = self.finite();
        let sample: PolicySample<B> = self.head.rsample(b, &self.actor, obs, bias)?;
        // The gradient flows through the critic into the action; the critic's weights get none
        // (the step below differentiates with respect to the actor only).
        let mut sample_losses = match (&self.variant, &sample.neg_entropy) {
            (Variant::Sac(_), Some(neg_entropy)) => {
                let (q1, q2) = self.critic_shape.values(b, &self.critic, obs, &sample.actions);
                let q = b.minimum(&q1, &q2);
                let entropy_term = b.scale(neg_entropy, alpha);
                b.sub(&entropy_term, &q)
            }
            _ => {
                let q1 = self.critic_shape.q1(b, &self.critic, obs, &sample.actions);
                b.neg(&q1)
            }
        };
        if let Some(penalty) = &sample.logit_penalty {
            sample_losses = b.add(&sample_losses, penalty);
        }
        let actor_loss = b.mean(&sample_losses);
        let loss_value = guard.check("losses/actor_loss", b.scalar(&actor_loss)?)?;
        // Once per metrics window: the first actor step after the last report.
        if self.cfg.grad_diagnostics && !self.metrics.contains("grad/variance") {
            let (rows, _) = b.shape(&sample_losses);
            let slices = GRAD_NOISE_SLICES.min(rows);
            let sizes: Vec<usize> =
                (0..slices).map(|k| (k + 1) * rows / slices - k * rows / slices).collect();
            self.host.grads.resize_with(slices, Vec::new);
            let mut start = 0;
            for (grad, &size) in self.host.grads.iter_mut().zip(&sizes) {
                let index: Vec<usize> = (start..start + size).collect();
                start += size;
                let slice = b.select_rows(&sample_losses, &index);
                let slice_loss = b.mean(&slice);
                b.gradient(&slice_loss, &self.actor, grad)?;
            }
            let noise = GradNoise::from_chunks(&self.host.grads, &sizes)?;
            guard.check("grad/variance", noise.variance)?;
            for (tag, value) in noise.metrics() {
                self.metrics.add(tag, value);
            }
        }
        let max_norm = self.cfg.max_grad_norm;
        let norm =
            b.step(&actor_loss, &mut self.actor, max_norm, guard, "losses/actor_grad_norm")?;
        self.metrics.add("losses/actor_loss", loss_value);
        self.metrics.add("losses/actor_grad_norm", norm);
        match &sample.neg_entropy {
            Some(neg_entropy) => b.host_mean(neg_entropy),
            None => Ok(0.0),
        }
    }

    /// The minibatch's mean default target entropy within its states' masks (`masks`,
    /// `[rows, mask_len]` flags), `None` when the target does not follow the masks (a target
    /// set in the settings, or TD3); see [`DISCRETE_TARGET_ENTROPY_FRACTION`].
    fn masked_target_entropy<B: Backend>(
        &mut self,
        b: &mut B,
        masks: &B::M,
    ) -> Result<Option<f64>, AgentError> {
        match &self.variant {
            Variant::Sac(t) if t.target_follows_masks => {}
            _ => return Ok(None),
        }
        b.to_host(masks, &mut self.host.masks)?;
        let parts = self.coding.parts();
        let m: usize = parts.iter().sum();
        let rows = self.host.masks.len() / m.max(1);
        let total: f64 =
            self.host.masks.chunks_exact(m.max(1)).map(|row| log_choices(&parts, Some(row))).sum();
        Ok(Some(DISCRETE_TARGET_ENTROPY_FRACTION * total / rows.max(1) as f64))
    }

    /// What follows an actor step: SAC's temperature step (with `autotune_alpha`) on the mean
    /// `neg_entropy` of the actor's sample, toward the target entropy (`target_entropy` when
    /// the masks set it, see [`Core::masked_target_entropy`]), TD3's target actor moving toward
    /// the actor.
    fn after_actor_step<B: Backend>(
        &mut self,
        b: &mut B,
        neg_entropy: f64,
        target_entropy: Option<f64>,
    ) -> Result<(), AgentError> {
        let guard = self.finite();
        match &mut self.variant {
            Variant::Sac(temperature) => {
                // `log α` steps on `−log α · (log π + target_entropy)`, raising α when the
                // policy's entropy is below target.
                let target = target_entropy.unwrap_or(temperature.target_entropy);
                let gap = neg_entropy + target;
                let alpha_loss = -temperature.log_alpha * gap;
                if let Some(opt) = &mut temperature.opt {
                    // d(alpha_loss)/d(log α) = −gap.
                    let stepped = opt.step(temperature.log_alpha, -gap);
                    temperature.log_alpha = stepped.min(temperature.max_log_alpha);
                }
                guard.check("losses/alpha_loss", alpha_loss)?;
                guard.check("losses/alpha", temperature.log_alpha)?;
                self.metrics.add("losses/entropy", -neg_entropy);
                self.metrics.add("losses/alpha", temperature.log_alpha.exp());
                self.metrics.add("losses/alpha_loss", alpha_loss);
            }
            Variant::Td3 { target_actor } => b.polyak(target_actor, &self.actor, self.cfg.tau)?,
        }
        Ok(())
    }

    /// Stores one step of the environments and runs the updates the schedule owes.
    fn observe<B: Backend>(
        &mut self,
        b: &mut B,
        t: &Transition<'_>,
    ) -> Result<Option<Metrics>, AgentError> {
        let n = t.rewards.len();
        if n != self.num_envs {
            return Err(AgentError::Invalid(format!(
                "transition has {n} rewards, expected one per env ({})",
                self.num_envs
            )));
        }
        self.coding.encode(t.actions, n, &mut self.host.encoded)?;
        self.transition_masks(t)?;
        // `truncated` is deliberately not stored: a truncated transition bootstraps from its
        // final observation like any other.
        self.replay.push_masked(
            t.obs,
            &self.host.encoded,
            t.rewards,
            t.terminated,
            t.next_obs,
            &self.host.masks,
            &self.host.next_masks,
        )?;
        self.env_steps += n as u64;
        if let Some(pink) = &mut self.pink {
            let ended = t.terminated.iter().zip(t.truncated).map(|(&a, &b)| a || b);
            ended.enumerate().filter(|(_, e)| *e).for_each(|(i, _)| pink.episode_ended(i));
        }
        // Gated on what the buffer holds rather than on env steps, so that a run resumed
        // without its replay buffer refills `learning_starts` transitions before updating.
        if self.replay.len() >= self.cfg.learning_starts.max(1) {
            self.update_credit += self.cfg.updates_per_step * n as f64;
            while self.update_credit >= 1.0 {
                self.update_credit -= 1.0;
                self.update(b)?;
            }
        }
        self.steps_since_metrics += n;
        if self.steps_since_metrics >= self.cfg.metrics_every {
            if let Some(metrics) = self.metrics.take_means() {
                self.steps_since_metrics = 0;
                return Ok(Some(metrics));
            }
        }
        Ok(None)
    }
}

impl Core {
    /// The masks of transition `t`'s two states as `0.0`/`1.0` flags into `host.masks` and
    /// `host.next_masks` (both empty without masks). The first masked transition turns on the
    /// replay buffer's mask columns (an empty buffer only: a buffer holding unmasked
    /// transitions refuses masked ones, and the other way round). Where an episode ended, the
    /// vector env reports the next episode's first mask, not one of the final observation's
    /// state: the target's next action there is drawn without a mask (a terminated
    /// transition's is multiplied by 0; a truncated one's final state has no mask to use).
    fn transition_masks(&mut self, t: &Transition<'_>) -> Result<(), AgentError> {
        self.host.masks.clear();
        self.host.next_masks.clear();
        let n = t.rewards.len();
        let Some(masks) = t.masks else {
            if self.replay.mask_len() > 0 {
                return Err(AgentError::Invalid(
                    "a transition without action masks, but the agent has learned within masks \
                     (its replay buffer stores them)"
                        .into(),
                ));
            }
            return Ok(());
        };
        self.check_masks(masks, n)?;
        let m = self.head.mask_len();
        let next_masks = t.next_masks.ok_or_else(|| {
            AgentError::Invalid(
                "a transition with action masks needs the masks of its next states too \
                 (Transition::next_masks)"
                    .into(),
            )
        })?;
        if next_masks.len() != n * m {
            return Err(AgentError::Invalid(format!(
                "{} next-state mask flags for {n} transitions; the action space needs {m} each",
                next_masks.len()
            )));
        }
        if self.replay.mask_len() == 0 {
            self.replay.enable_masks(m)?;
        }
        let flag = |f: bool| f32::from(u8::from(f));
        self.host.masks.extend(masks.iter().map(|&f| flag(f)));
        for (i, next) in next_masks.chunks_exact(m).enumerate() {
            if t.terminated[i] || t.truncated.get(i).copied().unwrap_or(false) {
                self.host.next_masks.extend(std::iter::repeat_n(1.0, m));
            } else {
                self.host.next_masks.extend(next.iter().map(|&f| flag(f)));
            }
        }
        // The next states' masks must leave every component a choice too.
        crate::distributions::mask_bias_of(
            &self.coding.parts(),
            false,
            next_masks,
            &mut self.host.row,
        )
    }
}

/// `Σ_i ln(choices of component i)`: the entropy of the uniform policy over the choices `mask`
/// (`0.0`/`1.0` flags, `Σ parts` of them) allows, or over every choice without a mask.
fn log_choices(parts: &[usize], mask: Option<&[f32]>) -> f64 {
    let mut start = 0;
    let mut total = 0.0;
    for &k in parts {
        let allowed = match mask {
            Some(mask) => mask[start..start + k].iter().filter(|&&f| f > 0.5).count(),
            None => k,
        };
        total += (allowed.max(1) as f64).ln();
        start += k;
    }
    total
}

impl Agent for Pathwise {
    fn name(&self) -> &'static str {
        NAME
    }

    fn backend(&self) -> BackendKind {
        self.backend.kind()
    }

    fn act(&mut self, obs: &[f32], mode: ActMode, actions: &mut Actions) -> Result<(), AgentError> {
        let core = &mut self.core;
        with_backend!(&mut self.backend, b => core.act(b, obs, None, mode, actions))
    }

    fn act_masked(
        &mut self,
        obs: &[f32],
        masks: Option<&[bool]>,
        mode: ActMode,
        actions: &mut Actions,
    ) -> Result<(), AgentError> {
        let core = &mut self.core;
        with_backend!(&mut self.backend, b => core.act(b, obs, masks, mode, actions))
    }

    fn observe(&mut self, t: &Transition<'_>) -> Result<Option<Metrics>, AgentError> {
        let core = &mut self.core;
        with_backend!(&mut self.backend, b => core.observe(b, t))
    }

    fn actor(&self) -> Option<Result<Box<dyn Actor>, AgentError>> {
        Some(PathwiseActor::new(&self.core).map(|actor| Box::new(actor) as Box<dyn Actor>))
    }

    fn actor_params(&self, params: &mut ActorParams) -> Result<(), AgentError> {
        self.core.actor_params(params)
    }

    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.checkpoint_tensors()
    }

    fn load_named_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        self.load_checkpoint_tensors(tensors)
    }

    fn training_state(&self, include_replay: bool) -> Result<Vec<(String, Tensor)>, AgentError> {
        Ok(self.schedule_state(include_replay))
    }

    fn load_training_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        self.load_schedule_state(tensors)
    }

    fn probe(&self) -> Option<&dyn PolicyProbe> {
        // SAC on a box: a squashed Gaussian driven by Gaussian noise. TD3's exploring policy
        // (a clipped Gaussian around a deterministic action) and the Gumbel-softmax actor are
        // not offered.
        matches!(self.core.head, ActorHead::Squashed { .. }).then_some(self as &dyn PolicyProbe)
    }
}

impl Pathwise {
    /// The squashed Gaussian at `obs` through libtorch (autograd), for the probe.
    fn squashed(
        &self,
        b: &mut Torch,
        obs: &Tensor,
    ) -> Option<crate::distributions::SquashedGaussian<Torch>> {
        match self.core.head.policy(b, &self.core.actor, obs, None) {
            ActorPolicy::Squashed(d) => Some(d),
            _ => None,
        }
    }
}

/// SAC's exploring policy on a box, with `min(Q1, Q2)` (what its actor maximizes) as critic.
/// Measured through libtorch (autograd), whatever backend trains the agent.
impl PolicyProbe for Pathwise {
    fn policy_parameters(&self) -> &FlatParams {
        &self.core.actor.params
    }

    fn draw_noise(&self, rows: usize) -> Tensor {
        gaussian_noise(rows, self.core.coding.dim())
    }

    fn act_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let y = self.reparameterized_action(obs, noise).unwrap_or_else(|| obs.zeros_like());
            match &self.core.coding {
                ActionCoding::Box { loc, scale, .. } => {
                    y * Tensor::from_slice(scale) + Tensor::from_slice(loc)
                }
                ActionCoding::Discrete { .. } | ActionCoding::Multi { .. } => y,
            }
        })
    }

    fn log_prob_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        let mut b = Torch::new(obs.device());
        match self.squashed(&mut b, obs) {
            Some(d) => {
                // The pre-squash value held fixed: log π(a) with the sampled action fixed.
                let u = d.base.rsample_from_noise(&mut b, noise).detach();
                d.log_prob_of_pre_squash(&mut b, &u).view([-1])
            }
            None => Tensor::zeros([obs.size()[0]], (tch::Kind::Float, Device::Cpu)),
        }
    }

    fn reparameterized_action(&self, obs: &Tensor, noise: &Tensor) -> Option<Tensor> {
        let mut b = Torch::new(obs.device());
        let d = self.squashed(&mut b, obs)?;
        Some(d.rsample_with_log_prob(&mut b, noise).0)
    }

    fn value(&self, _obs: &Tensor) -> Option<Tensor> {
        None
    }

    fn critic(&self, obs: &Tensor, actions: &Tensor) -> Option<Tensor> {
        let mut b = Torch::new(obs.device());
        let (q1, q2) = self.core.critic_shape.values(&mut b, &self.core.critic, obs, actions);
        Some(q1.minimum(&q2).view([-1]))
    }

    fn gamma(&self) -> f64 {
        self.core.cfg.gamma
    }

    fn batch_samples(&self) -> usize {
        self.core.cfg.batch_size
    }
}
