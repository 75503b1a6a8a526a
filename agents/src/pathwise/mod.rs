//! The pathwise agent: the policy gradient through a learned critic, `∇θ E[Q(s, a_θ(s, ε))]`,
//! with the action a differentiable function of the policy parameters (the reparameterization
//! trick) instead of the score function's `∇ log π · return`.
//!
//! Two estimators share the replay buffer, the twin critics and the update loop:
//! - **SAC** (`estimator = "sac"`, Haarnoja et al. 2018): a stochastic actor, tanh-squashed
//!   Gaussian for `Box` actions or Gumbel-softmax relaxed categorical for `Discrete` ones, trained
//!   on `E[α log π(a|s) − min(Q1, Q2)(s, a)]` with the entropy temperature α learned toward a
//!   target entropy (or fixed). For `Discrete(n)` the critics are by default linear in the
//!   (relaxed) one-hot, `Q(s, y) = Σ_a y_a q_a(s)` (see `critic`), so that the relaxed
//!   sample's gradient follows the values of the actions.
//! - **TD3** (`estimator = "td3"`, Fujimoto et al. 2018): a deterministic `tanh` actor, Gaussian
//!   exploration noise, clipped noise on the target action ("target policy smoothing") and an
//!   actor update every `policy_delay` critic updates. It is the zero-variance end of the
//!   pathwise family: no sampling inside the gradient at all.
//!
//! One update, on a minibatch drawn uniformly from the replay buffer:
//! 1. **Critic.** The target `y = r + γ (1 − terminated) · V'(s')`, with
//!    `V'(s') = min(Q1', Q2')(s', a') − α log π(a'|s')` and `a'` from the current actor at the
//!    next observation (TD3: `a' = clip(μ'(s') + clip(ε, ±c), ±1)` from the target actor,
//!    no entropy term). For `Discrete(n)` actions with `expected_discrete_value`, the
//!    expectation over `a'` is exact instead of sampled (SAC-discrete, Christodoulou 2019):
//!    `V'(s') = Σ_a π(a|s') (min(Q1', Q2')(s', onehot a) − α log π(a|s'))`, the target critics
//!    evaluated on all `n` one-hots. **Only `terminated` masks the bootstrap**: a truncated
//!    transition's `next_obs` is the final observation of an episode that could have gone on,
//!    and its value counts. Both critics regress on `y` (squared error) with one optimizer.
//! 2. **Actor**, every `policy_delay` critic updates (TD3's delayed policy updates, which SAC
//!    can use too: the actor step is the dearer half of an update). The actor loss is
//!    differentiated with respect to the actor's parameters only: the gradient flows *through*
//!    the critic into the action, and the critic, which has its own parameters and optimizer, is
//!    left unchanged.
//! 3. **Temperature** (SAC with `autotune_alpha`): `log α` takes an Adam step on
//!    `−log α · (log π + target_entropy)`, raising α when the policy's entropy is below target.
//! 4. **Targets.** Polyak averaging `θ' ← (1 − τ) θ' + τ θ` of the target critics (and TD3's
//!    target actor) after each actor update.
//!
//! With `grad_diagnostics`, the first actor step of each metrics window also estimates its
//! gradient's noise from slices of the minibatch ([`crate::grad_noise`]). The noise here comes
//! from the states in the minibatch and, for SAC, the action noise ε; TD3's deterministic actor
//! has only the former.
//!
//! Updates start once `learning_starts` transitions are stored (until then `act` explores with
//! uniformly random actions) and run `updates_per_step` times per environment transition.

mod actor;
mod critic;

use rlpg_envs::Space;
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor, nn};

use crate::agent::{ActMode, Agent, AgentError, Metrics, Transition};
use crate::grad_noise::grad_noise;
use crate::optim::{Adam, FlatParams, ScalarAdam, clip_grad_norm, column_major, find};
use crate::replay::{ReplayBuffer, ReplaySample};
use crate::settings::{
    Activation, InvalidSetting, check_at_least_one, check_discount, check_finite,
    check_hidden_sizes, check_non_negative, check_positive,
};

use actor::{ActionCoding, Actor, ActorSpec, PolicySample};
use critic::{ActionInput, TwinCritic};

/// Which pathwise estimator the agent uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// Soft actor-critic: stochastic reparameterized actor with an entropy bonus.
    Sac,
    /// Twin delayed DDPG: deterministic actor, target smoothing, delayed actor updates.
    Td3,
}

/// How the critics take a `Discrete(n)` action (the one-hot, or the actor's relaxed one-hot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscreteCritic {
    /// An MLP of the state with `n` outputs `q(s)`, and `Q(s, y) = Σ_a y_a q_a(s)`: linear in
    /// the action, so the relaxed sample's gradient `∂Q/∂y = q(s)` is the values of the
    /// actions in that state.
    PerAction,
    /// An MLP of the concatenated `(s, y)` with one output, as for `Box` actions: its slope in
    /// `y` at a one-hot is an extrapolation the critic is never trained on.
    Concatenated,
}

impl std::fmt::Display for DiscreteCritic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PerAction => "\"per_action\"",
            Self::Concatenated => "\"concatenated\"",
        })
    }
}

/// Settings of the pathwise agent. Defaults are tuned for Pendulum-v1 with one env: fast to
/// reach a return of −200 in wall time, not only in samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathwiseConfig {
    /// The estimator: "sac" (stochastic actor, entropy bonus; Box or Discrete actions) or "td3"
    /// (deterministic actor; Box actions only).
    pub estimator: Estimator,
    /// Adam learning rate of the actor.
    pub actor_learning_rate: f64,
    /// Adam learning rate of the twin critics.
    pub critic_learning_rate: f64,
    /// Adam learning rate of log α, the entropy temperature's logarithm (SAC with
    /// autotune_alpha).
    pub alpha_learning_rate: f64,
    /// Discount factor γ of future rewards, in (0, 1].
    pub gamma: f64,
    /// Polyak coefficient τ in (0, 1] of the target networks: each update moves them a
    /// fraction τ toward the trained ones (1 copies them).
    pub tau: f64,
    /// Transitions per minibatch.
    pub batch_size: usize,
    /// Transitions the replay buffer keeps (the oldest are overwritten); at least num_envs.
    pub buffer_size: usize,
    /// Transitions collected with uniformly random actions before learning starts.
    pub learning_starts: usize,
    /// Gradient updates per environment transition (the update-to-data ratio), counted over
    /// all envs; fractional values update every few transitions.
    pub updates_per_step: f64,
    /// Hidden layer widths of the actor, input side first.
    pub actor_hidden: Vec<usize>,
    /// Hidden layer widths of each critic, input side first.
    pub critic_hidden: Vec<usize>,
    /// Nonlinearity between hidden layers: tanh, relu, elu, leaky_relu or silu.
    pub activation: Activation,
    /// Initial entropy temperature α (SAC), and its value throughout when autotune_alpha is off.
    pub alpha: f64,
    /// Learn α toward target_entropy (SAC); otherwise α stays fixed at `alpha`.
    pub autotune_alpha: bool,
    /// Entropy the temperature steers the policy toward (SAC with autotune_alpha). Unset: −dim
    /// for Box actions (SAC's heuristic) and 0.5·ln n for Discrete(n) (half the uniform
    /// policy's entropy).
    pub target_entropy: Option<f64>,
    /// Std of the Gaussian exploration noise added to the deterministic actor's actions (TD3),
    /// in units of half the action range.
    pub exploration_noise: f64,
    /// Std of the noise on the target action (TD3 target policy smoothing), in units of half
    /// the action range.
    pub policy_noise: f64,
    /// The target action noise is clipped to ±noise_clip (TD3).
    pub noise_clip: f64,
    /// Critic updates per actor update (and temperature and target updates): TD3's delayed
    /// policy updates, for either estimator (1 updates the actor with every critic update).
    pub policy_delay: usize,
    /// Temperature τ > 0 of the Gumbel-softmax relaxation of discrete actions (SAC on Discrete
    /// spaces): lower is closer to one-hot, with higher-variance gradients.
    pub gumbel_temperature: f64,
    /// Feed the critic hard one-hot actions in the actor loss, with the relaxed sample's
    /// gradient (straight-through Gumbel-softmax), so the critic is never queried off the
    /// one-hots it is trained on. With the per-action critic, which is linear in the action,
    /// both give each twin the same gradient; they differ only in which twin the minimum picks.
    pub straight_through: bool,
    /// The soft value of next states under a discrete policy (SAC on Discrete spaces): the exact
    /// expectation over all n actions, the target critics evaluated on every one-hot
    /// (SAC-discrete), instead of one sampled action. Off by default: on the CartPole preset it
    /// measured no better (per-action critic, seeds 10-15: 5 of 6 reach mean-100 >= 475 within
    /// 100k steps either way), although it removes the target's sampling noise.
    pub expected_discrete_value: bool,
    /// How the critics take a discrete action (SAC on Discrete spaces): "per_action" (an MLP
    /// of the state with one output per action, weighted by the one-hot or relaxed action; the
    /// default) or "concatenated" (an MLP of the state and the one-hot, as for Box actions).
    /// On the CartPole preset, per_action reached mean-100 >= 475 within 100k steps on 4 of 5
    /// seeds, concatenated on 1 of 5: the relaxed gradient follows the critic's slope in the
    /// action, which only the per-action critic gets right.
    pub discrete_critic: DiscreteCritic,
    /// Bound `L` on the discrete actor's centred logits, `L · tanh(raw / L)` (SAC on Discrete
    /// spaces), so that the softmax cannot saturate to exactly 0 and 1 in f32, where the
    /// entropy and the relaxed sample both lose their gradient and the actor stops learning.
    /// Raw logits past the bound pay a squared penalty in the actor loss, which keeps them
    /// where the `tanh` passes gradient. At most 8 (beyond, 1 − e^(−2L) rounds to 1 in f32);
    /// 0: unbounded.
    pub logit_bound: f64,
    /// Largest entropy temperature α that autotuning may reach (0: no cap). A policy whose
    /// entropy cannot rise would otherwise drive α up without limit, and α · log π in the soft
    /// targets with it.
    pub max_alpha: f64,
    /// Largest global L2 norm of each network's gradient; larger gradients are scaled down
    /// (0 disables clipping).
    pub max_grad_norm: f64,
    /// Environment transitions between returned metrics (each is the mean over the updates
    /// since the last return), to keep logging cheap.
    pub metrics_every: usize,
    /// Log the actor gradient's noise once per `metrics_every` window, as `grad/variance` and
    /// `grad/snr` (see [`crate::grad_noise`]), from 8 slices of the first actor minibatch of the
    /// window (fewer when `batch_size < 8`; needs `batch_size >= 2`). Costs one extra backward
    /// pass per slice then; never changes the run.
    pub grad_diagnostics: bool,
}

impl Default for PathwiseConfig {
    fn default() -> Self {
        Self {
            estimator: Estimator::Sac,
            actor_learning_rate: 4e-3,
            critic_learning_rate: 4e-3,
            alpha_learning_rate: 1e-3,
            gamma: 0.99,
            tau: 0.05,
            batch_size: 128,
            buffer_size: 1_000_000,
            learning_starts: 100,
            updates_per_step: 1.0,
            actor_hidden: vec![64, 64],
            critic_hidden: vec![64, 64],
            activation: Activation::Relu,
            alpha: 1.0,
            autotune_alpha: true,
            target_entropy: None,
            exploration_noise: 0.1,
            policy_noise: 0.2,
            noise_clip: 0.5,
            policy_delay: 3,
            gumbel_temperature: 1.0,
            straight_through: true,
            expected_discrete_value: false,
            discrete_critic: DiscreteCritic::PerAction,
            logit_bound: 0.0,
            max_alpha: 0.0,
            max_grad_norm: 0.0,
            metrics_every: 100,
            grad_diagnostics: false,
        }
    }
}

impl PathwiseConfig {
    /// Checks every setting's range; the error names the first bad key and its allowed values.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_positive("actor_learning_rate", self.actor_learning_rate)?;
        check_positive("critic_learning_rate", self.critic_learning_rate)?;
        check_positive("alpha_learning_rate", self.alpha_learning_rate)?;
        check_discount("gamma", self.gamma)?;
        check_discount("tau", self.tau)?;
        check_at_least_one("batch_size", self.batch_size)?;
        check_at_least_one("buffer_size", self.buffer_size)?;
        check_positive("updates_per_step", self.updates_per_step)?;
        check_hidden_sizes("actor_hidden", &self.actor_hidden)?;
        check_hidden_sizes("critic_hidden", &self.critic_hidden)?;
        check_positive("alpha", self.alpha)?;
        if let Some(target) = self.target_entropy {
            check_finite("target_entropy", target)?;
        }
        check_non_negative("exploration_noise", self.exploration_noise)?;
        check_non_negative("policy_noise", self.policy_noise)?;
        check_non_negative("noise_clip", self.noise_clip)?;
        check_at_least_one("policy_delay", self.policy_delay)?;
        check_positive("gumbel_temperature", self.gumbel_temperature)?;
        check_non_negative("logit_bound", self.logit_bound)?;
        if self.logit_bound > MAX_LOGIT_BOUND {
            return Err(InvalidSetting::new(
                "logit_bound",
                format!(
                    "must be <= {MAX_LOGIT_BOUND} (0 for no bound): beyond it the largest \
                     probability rounds to 1 in f32; got {}",
                    self.logit_bound
                ),
            ));
        }
        check_non_negative("max_alpha", self.max_alpha)?;
        if self.max_alpha > 0.0 && self.alpha > self.max_alpha {
            return Err(InvalidSetting::new(
                "max_alpha",
                format!(
                    "must be >= the initial alpha = {} (or 0 for no cap), got {}",
                    self.alpha, self.max_alpha
                ),
            ));
        }
        check_non_negative("max_grad_norm", self.max_grad_norm)?;
        check_at_least_one("metrics_every", self.metrics_every)?;
        if self.grad_diagnostics && self.batch_size < 2 {
            return Err(InvalidSetting::new(
                "grad_diagnostics",
                format!(
                    "needs batch_size >= 2 (slices of a minibatch), got batch_size = {}",
                    self.batch_size
                ),
            ));
        }
        Ok(())
    }
}

/// Agent name used in messages and run directories.
const NAME: &str = "pathwise";

/// Slices of a minibatch the actor gradient's noise is estimated from (`grad_diagnostics`).
const GRAD_NOISE_SLICES: usize = 8;

/// Largest `logit_bound`: logits `±8` apart by 16 give probabilities `1 − e^(−16) ≈ 1 − 1.1e−7`,
/// the last below 1 in f32.
const MAX_LOGIT_BOUND: f64 = 8.0;

/// Fraction of the uniform policy's entropy `ln n` that SAC aims for on `Discrete(n)` by default.
const DISCRETE_TARGET_ENTROPY_FRACTION: f64 = 0.5;

/// The TD target `r + γ (1 − terminated) · next_value`, rowwise.
///
/// Only `terminated` masks the bootstrap. A truncated transition (a time limit) is not passed in
/// at all: its `next_value` is the value of the episode's final observation, and it counts, because
/// the episode could have gone on from there.
pub(crate) fn bootstrapped_target(
    rewards: &Tensor,
    terminated: &Tensor,
    next_value: &Tensor,
    gamma: f64,
) -> Tensor {
    rewards + next_value * (terminated * -gamma + gamma)
}

/// TD3's target policy smoothing: `clip(μ'(s') + clip(ε, −c, c), −1, 1)` with
/// `ε ~ N(0, policy_noise²)`, so the target averages the critic over a small neighbourhood of
/// the target action instead of exploiting a narrow peak.
pub(crate) fn smoothed_target_action(mu: &Tensor, policy_noise: f64, noise_clip: f64) -> Tensor {
    let noise = (mu.randn_like() * policy_noise).clamp(-noise_clip, noise_clip);
    (mu + noise).clamp(-1.0, 1.0)
}

/// The entropy temperature of SAC.
#[derive(Debug)]
struct Temperature {
    log_alpha: f64,
    target_entropy: f64,
    /// `ln max_alpha`, the cap on `log_alpha` (+∞ without a cap).
    max_log_alpha: f64,
    /// `None` when α is fixed.
    opt: Option<ScalarAdam>,
}

impl Temperature {
    fn alpha(&self) -> f64 {
        self.log_alpha.exp()
    }
}

/// A network, the store holding its variables, and the flat view of those variables.
#[derive(Debug)]
struct Net<M> {
    store: nn::VarStore,
    net: M,
    params: FlatParams,
}

impl<M> Net<M> {
    /// Builds `net` in a fresh store with `build` and flattens its parameters.
    fn new(build: impl FnOnce(&nn::Path<'_>) -> Result<M, AgentError>) -> Result<Self, AgentError> {
        let store = nn::VarStore::new(tch::Device::Cpu);
        let net = build(&store.root())?;
        // Classic-control inputs are 3 or 4 wide: column-major weights keep MKL on its fast
        // products for the first layer's gradients (see `optim::column_major`).
        column_major(&store)?;
        let params = FlatParams::new(&store)?;
        Ok(Self { store, net, params })
    }
}

/// Running sums of the metrics of the updates since the last report.
#[derive(Debug, Default)]
struct MetricSums {
    sums: Vec<(&'static str, f64, u32)>,
}

impl MetricSums {
    fn add(&mut self, tag: &'static str, value: f64) {
        match self.sums.iter_mut().find(|(t, _, _)| *t == tag) {
            Some((_, sum, count)) => {
                *sum += value;
                *count += 1;
            }
            None => self.sums.push((tag, value, 1)),
        }
    }

    /// Whether `tag` was recorded since the last [`MetricSums::take_means`].
    fn contains(&self, tag: &str) -> bool {
        self.sums.iter().any(|(t, _, _)| *t == tag)
    }

    /// The means, emptying the sums; `None` when nothing was recorded.
    fn take_means(&mut self) -> Option<Metrics> {
        if self.sums.is_empty() {
            return None;
        }
        Some(self.sums.drain(..).map(|(tag, sum, count)| (tag, sum / f64::from(count))).collect())
    }
}

/// The pathwise agent (SAC or TD3). See the [module docs](self) for the update.
#[derive(Debug)]
pub struct Pathwise {
    cfg: PathwiseConfig,
    num_envs: usize,
    coding: ActionCoding,
    actor: Net<Actor>,
    actor_opt: Adam,
    /// TD3's target actor.
    actor_target: Option<Net<Actor>>,
    critic: Net<TwinCritic>,
    critic_opt: Adam,
    critic_target: Net<TwinCritic>,
    /// SAC's entropy temperature.
    temperature: Option<Temperature>,
    replay: ReplayBuffer,
    /// Transitions observed.
    env_steps: u64,
    /// Critic updates done.
    updates: u64,
    /// Updates owed to the update-to-data ratio and not yet run.
    update_credit: f64,
    metrics: MetricSums,
    steps_since_metrics: usize,
    encoded_actions: Vec<f32>,
    action_indices: Vec<i64>,
}

impl Pathwise {
    /// A new agent for `num_envs` environments with the given spaces. Weights are drawn from
    /// tch's global generator, so calling `tch::manual_seed` first makes construction (and every
    /// later sample and minibatch) reproducible. Runs on the CPU.
    ///
    /// Errors on invalid settings, an empty observation space, `num_envs == 0` or more envs
    /// than `buffer_size`, a `Box` action space without finite bounds, or TD3 with discrete
    /// actions.
    pub fn new(
        cfg: &PathwiseConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
    ) -> Result<Self, AgentError> {
        cfg.validate()?;
        if num_envs == 0 {
            return Err(AgentError::Invalid("num_envs must be >= 1, got 0".into()));
        }
        if cfg.buffer_size < num_envs {
            return Err(InvalidSetting::new(
                "buffer_size",
                format!("must be >= num_envs = {num_envs}, got {}", cfg.buffer_size),
            )
            .into());
        }
        if cfg.learning_starts > cfg.buffer_size {
            return Err(InvalidSetting::new(
                "learning_starts",
                format!(
                    "must be <= buffer_size = {}, or learning would never start, got {}",
                    cfg.buffer_size, cfg.learning_starts
                ),
            )
            .into());
        }
        let obs_dim = observation_space.flat_dim();
        if obs_dim == 0 {
            return Err(AgentError::Invalid(format!(
                "observation space {observation_space} has no dimensions"
            )));
        }
        let coding = ActionCoding::new(action_space)?;
        let act_dim = coding.dim();
        let spec = ActorSpec {
            deterministic: cfg.estimator == Estimator::Td3,
            hidden: &cfg.actor_hidden,
            activation: cfg.activation,
            temperature: cfg.gumbel_temperature,
            straight_through: cfg.straight_through,
            logit_bound: cfg.logit_bound,
        };
        let build_actor = |p: &nn::Path<'_>| Actor::new(p, obs_dim, &coding, &spec);
        let input = match (&coding, cfg.discrete_critic) {
            (ActionCoding::Discrete { .. }, DiscreteCritic::PerAction) => ActionInput::PerAction,
            _ => ActionInput::Concatenated,
        };
        let build_critic = |p: &nn::Path<'_>| {
            Ok(TwinCritic::new(p, obs_dim, act_dim, input, &cfg.critic_hidden, cfg.activation))
        };

        let actor = Net::new(build_actor)?;
        let actor_opt = Adam::new(&actor.params, cfg.actor_learning_rate)?;
        let actor_target = match cfg.estimator {
            Estimator::Td3 => {
                let mut target = Net::new(build_actor)?;
                target.params.copy_from(&actor.params)?;
                Some(target)
            }
            Estimator::Sac => None,
        };
        let critic = Net::new(build_critic)?;
        let critic_opt = Adam::new(&critic.params, cfg.critic_learning_rate)?;
        let mut critic_target = Net::new(build_critic)?;
        critic_target.params.copy_from(&critic.params)?;

        let temperature = match cfg.estimator {
            Estimator::Sac => Some(Temperature {
                log_alpha: cfg.alpha.ln(),
                target_entropy: cfg.target_entropy.unwrap_or(match action_space {
                    Space::Discrete(n) => DISCRETE_TARGET_ENTROPY_FRACTION * (*n as f64).ln(),
                    Space::Box(b) => -(b.dim() as f64),
                }),
                max_log_alpha: if cfg.max_alpha > 0.0 { cfg.max_alpha.ln() } else { f64::INFINITY },
                opt: cfg.autotune_alpha.then(|| ScalarAdam::new(cfg.alpha_learning_rate)),
            }),
            Estimator::Td3 => None,
        };

        Ok(Self {
            cfg: cfg.clone(),
            num_envs,
            replay: ReplayBuffer::new(cfg.buffer_size, obs_dim, act_dim)?,
            coding,
            actor,
            actor_opt,
            actor_target,
            critic,
            critic_opt,
            critic_target,
            temperature,
            env_steps: 0,
            updates: 0,
            update_credit: 0.0,
            metrics: MetricSums::default(),
            steps_since_metrics: 0,
            encoded_actions: Vec::new(),
            action_indices: Vec::new(),
        })
    }

    /// The settings the agent was built with.
    pub fn config(&self) -> &PathwiseConfig {
        &self.cfg
    }

    /// The current entropy temperature α (0 for TD3, which has no entropy term).
    pub fn alpha(&self) -> f64 {
        self.temperature.as_ref().map_or(0.0, Temperature::alpha)
    }

    /// Critic updates done so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Transitions stored in the replay buffer.
    pub fn replay_len(&self) -> usize {
        self.replay.len()
    }

    /// Runs one full update (critic, and actor, temperature and targets when due) on a
    /// minibatch from the replay buffer, whatever the schedule says. Used by `observe`, and by
    /// benchmarks that time updates alone. Errors when the buffer is empty.
    pub fn update(&mut self) -> Result<(), AgentError> {
        let batch = self.replay.sample(self.cfg.batch_size)?;
        self.update_on(&batch)
    }

    /// The update on `batch`.
    fn update_on(&mut self, batch: &ReplaySample) -> Result<(), AgentError> {
        let alpha = self.alpha();
        let target = self.td_target(batch, alpha)?;
        self.critic_step(batch, &target)?;
        self.updates += 1;
        let actor_due = self.updates % self.cfg.policy_delay as u64 == 0;
        if actor_due {
            self.actor_step(&batch.obs, alpha)?;
            self.critic_target.params.polyak_toward(&self.critic.params, self.cfg.tau)?;
            if let Some(target) = &mut self.actor_target {
                target.params.polyak_toward(&self.actor.params, self.cfg.tau)?;
            }
        }
        Ok(())
    }

    /// The critics' regression target for `batch` (no gradients).
    fn td_target(&self, batch: &ReplaySample, alpha: f64) -> Result<Tensor, AgentError> {
        tch::no_grad(|| {
            let next_value = match &self.actor_target {
                // TD3: the smoothed target actor's action, no entropy term.
                Some(target_actor) => {
                    let mu = target_actor.net.mode(&batch.next_obs);
                    let a = smoothed_target_action(&mu, self.cfg.policy_noise, self.cfg.noise_clip);
                    let (q1, q2) =
                        self.critic_target.net.forward(&Tensor::cat(&[&batch.next_obs, &a], 1));
                    q1.minimum(&q2)
                }
                // SAC on a discrete space: the exact expectation over the n actions.
                None => match self
                    .cfg
                    .expected_discrete_value
                    .then(|| self.actor.net.action_probs(&batch.next_obs))
                    .flatten()
                {
                    Some((probs, log_probs)) => {
                        self.expected_soft_value(&batch.next_obs, &probs, &log_probs, alpha)
                    }
                    // SAC on a box: the current actor's sample and its entropy term.
                    None => {
                        let sample = self.actor.net.sample_for_target(&batch.next_obs)?;
                        self.soft_value(&batch.next_obs, &sample, alpha)
                    }
                },
            };
            Ok(bootstrapped_target(&batch.rewards, &batch.terminated, &next_value, self.cfg.gamma))
        })
    }

    /// SAC's soft value of `obs` estimated with the policy `sample` drawn there:
    /// `min(Q1', Q2')(s, a) − α log π(a|s)` under the target critics (no gradients).
    fn soft_value(&self, obs: &Tensor, sample: &PolicySample, alpha: f64) -> Tensor {
        tch::no_grad(|| {
            let (q1, q2) = self.critic_target.net.forward(&Tensor::cat(&[obs, &sample.actions], 1));
            q1.minimum(&q2) - &sample.neg_entropy * alpha
        })
    }

    /// SAC-discrete's exact soft value of `obs` under a categorical policy (Christodoulou 2019):
    /// `Σ_a π(a|s) (min(Q1', Q2')(s, onehot a) − α log π(a|s))`, the target critics evaluated on
    /// all `n` one-hot actions, instead of one sampled action. `probs` and `log_probs` are
    /// `[batch, n]`; no gradients.
    fn expected_soft_value(
        &self,
        obs: &Tensor,
        probs: &Tensor,
        log_probs: &Tensor,
        alpha: f64,
    ) -> Tensor {
        tch::no_grad(|| {
            let (batch, n) = (probs.size()[0], probs.size()[1]);
            let (q1, q2) = self.critic_target.net.every_action(obs).unwrap_or_else(|| {
                let obs_dim = obs.size()[1];
                // Row b·n + a pairs state b with the one-hot of action a.
                let states =
                    obs.unsqueeze(1).expand([batch, n, obs_dim], false).reshape([-1, obs_dim]);
                let one_hots = Tensor::eye(n, (probs.kind(), probs.device()))
                    .unsqueeze(0)
                    .expand([batch, n, n], false)
                    .reshape([-1, n]);
                let (q1, q2) =
                    self.critic_target.net.forward(&Tensor::cat(&[&states, &one_hots], 1));
                (q1.view([batch, n]), q2.view([batch, n]))
            });
            let q = q1.minimum(&q2);
            (probs * (q - log_probs * alpha)).sum_dim_intlist(-1, false, None)
        })
    }

    /// One Adam step of both critics toward `target`.
    fn critic_step(&mut self, batch: &ReplaySample, target: &Tensor) -> Result<(), AgentError> {
        let (q1, q2) = self.critic.net.forward(&batch.obs_actions);
        let qf1_loss = q1.mse_loss(target, Reduction::Mean);
        let qf2_loss = q2.mse_loss(target, Reduction::Mean);
        let qf1 = self.finite("losses/qf1_loss", &qf1_loss)?;
        let qf2 = self.finite("losses/qf2_loss", &qf2_loss)?;
        let grad = self.critic.params.grad(&(qf1_loss + qf2_loss))?;
        let (grad, norm) = clip_grad_norm(grad, self.cfg.max_grad_norm)?;
        self.check("losses/critic_grad_norm", norm)?;
        self.critic_opt.step(&mut self.critic.params, &grad)?;
        let q1_mean = tch::no_grad(|| q1.mean(None).double_value(&[]));
        self.metrics.add("losses/qf1_loss", qf1);
        self.metrics.add("losses/qf2_loss", qf2);
        self.metrics.add("losses/qf1_values", q1_mean);
        self.metrics.add("losses/critic_grad_norm", norm);
        Ok(())
    }

    /// One Adam step of the actor through the (unchanged) critic at observations `obs`, then
    /// one of the temperature (SAC with autotune).
    fn actor_step(&mut self, obs: &Tensor, alpha: f64) -> Result<(), AgentError> {
        let sample = self.actor.net.rsample(obs)?;
        // Column-major, so that the gradient into the critic's narrow first layer takes MKL's
        // fast product (see `optim::column_major`).
        let obs_actions = Tensor::cat(&[obs.tr(), sample.actions.tr()], 0).tr();
        let sample_losses = match self.cfg.estimator {
            Estimator::Sac => {
                let (q1, q2) = self.critic.net.forward(&obs_actions);
                &sample.neg_entropy * alpha - q1.minimum(&q2)
            }
            Estimator::Td3 => -self.critic.net.q1(&obs_actions),
        };
        let sample_losses = match &sample.logit_penalty {
            Some(penalty) => sample_losses + penalty,
            None => sample_losses,
        };
        let actor_loss = sample_losses.mean(None);
        let loss_value = self.finite("losses/actor_loss", &actor_loss)?;
        // Once per metrics window: the first actor step after the last report.
        if self.cfg.grad_diagnostics && !self.metrics.contains("grad/variance") {
            let rows = sample_losses.size()[0];
            let slices = (GRAD_NOISE_SLICES as i64).min(rows);
            let sizes: Vec<i64> =
                (0..slices).map(|k| (k + 1) * rows / slices - k * rows / slices).collect();
            let slice_losses = sample_losses.view([-1]).split_with_sizes(&sizes, 0);
            let means: Vec<Tensor> = slice_losses.iter().map(|l| l.mean(None)).collect();
            let noise = grad_noise(&self.actor.params, &Tensor::stack(&means, 0), &sizes)?;
            self.check("grad/variance", noise.variance)?;
            for (tag, value) in noise.metrics() {
                self.metrics.add(tag, value);
            }
        }
        // Differentiates with respect to the actor's parameters only: the critic's weights get
        // no gradient and its optimizer is not involved.
        let grad = self.actor.params.grad(&actor_loss)?;
        let (grad, norm) = clip_grad_norm(grad, self.cfg.max_grad_norm)?;
        self.check("losses/actor_grad_norm", norm)?;
        self.actor_opt.step(&mut self.actor.params, &grad)?;
        self.metrics.add("losses/actor_loss", loss_value);
        self.metrics.add("losses/actor_grad_norm", norm);

        if let Some(temperature) = &mut self.temperature {
            let neg_entropy = tch::no_grad(|| sample.neg_entropy.mean(None).double_value(&[]));
            let gap = neg_entropy + temperature.target_entropy;
            let alpha_loss = -temperature.log_alpha * gap;
            if let Some(opt) = &mut temperature.opt {
                // d(alpha_loss)/d(log α) = −gap.
                let stepped = opt.step(temperature.log_alpha, -gap);
                temperature.log_alpha = stepped.min(temperature.max_log_alpha);
            }
            let (log_alpha, alpha_now) = (temperature.log_alpha, temperature.alpha());
            self.check("losses/alpha_loss", alpha_loss)?;
            self.check("losses/alpha", log_alpha)?;
            self.metrics.add("losses/entropy", -neg_entropy);
            self.metrics.add("losses/alpha", alpha_now);
            self.metrics.add("losses/alpha_loss", alpha_loss);
        }
        Ok(())
    }

    /// The value of scalar tensor `t`, or a [`AgentError::NonFinite`] naming `quantity`.
    fn finite(&self, quantity: &str, t: &Tensor) -> Result<f64, AgentError> {
        self.check(quantity, t.f_double_value(&[])?)
    }

    /// `value`, or a [`AgentError::NonFinite`] naming `quantity`.
    fn check(&self, quantity: &str, value: f64) -> Result<f64, AgentError> {
        AgentError::ensure_finite(NAME, quantity, value, self.updates)
    }

    /// Every network variable, named `{network}/{variable}` (the network being `actor`,
    /// `critic`, `critic_target` or, for TD3, `actor_target`), sharing storage with the network.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut stores = vec![
            ("actor", &self.actor.store),
            ("critic", &self.critic.store),
            ("critic_target", &self.critic_target.store),
        ];
        if let Some(target) = &self.actor_target {
            stores.push(("actor_target", &target.store));
        }
        let mut named = Vec::new();
        for (prefix, store) in stores {
            for (name, t) in store.variables() {
                named.push((format!("{prefix}/{name}"), t));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }
}

/// Name of the entropy temperature's logarithm in checkpoints.
const LOG_ALPHA: &str = "log_alpha";
/// Checkpoint prefixes of the optimizers' states.
const ACTOR_ADAM: &str = "actor_adam";
/// See [`ACTOR_ADAM`].
const CRITIC_ADAM: &str = "critic_adam";
/// See [`ACTOR_ADAM`].
const ALPHA_ADAM: &str = "alpha_adam";
/// Training-state names: the replay buffer's prefix and the schedule's counters.
const REPLAY: &str = "replay";
/// See [`REPLAY`].
const ENV_STEPS: &str = "env_steps";
/// See [`REPLAY`].
const UPDATES: &str = "updates";
/// See [`REPLAY`].
const STEPS_SINCE_METRICS: &str = "steps_since_metrics";
/// See [`REPLAY`].
const UPDATE_CREDIT: &str = "update_credit";
/// Training-state prefix of the metric sums since the last report, saved as
/// `metrics/{position}/{tag}` = `[sum, count]` so that the first report after a resume averages
/// the same updates as it would have.
const METRICS: &str = "metrics";
/// Every tag [`MetricSums::add`] is given, for restoring the sums (metrics are named by
/// `&'static str`).
const METRIC_TAGS: [&str; 11] = [
    "grad/variance",
    "grad/snr",
    "losses/qf1_loss",
    "losses/qf2_loss",
    "losses/qf1_values",
    "losses/critic_grad_norm",
    "losses/actor_loss",
    "losses/actor_grad_norm",
    "losses/entropy",
    "losses/alpha",
    "losses/alpha_loss",
];

impl MetricSums {
    /// The sums as `metrics/{position}/{tag}` = `Double [sum, count]`.
    fn state(&self) -> Vec<(String, Tensor)> {
        let sums = self.sums.iter().enumerate();
        sums.map(|(i, (tag, sum, count))| {
            (format!("{METRICS}/{i:02}/{tag}"), Tensor::from_slice(&[*sum, f64::from(*count)]))
        })
        .collect()
    }

    /// The sums saved by [`MetricSums::state`] among `tensors`.
    fn from_state(tensors: &[(String, Tensor)]) -> Result<Self, AgentError> {
        let prefix = format!("{METRICS}/");
        let mut sums = Vec::new();
        for (name, _) in tensors {
            let Some(rest) = name.strip_prefix(&prefix) else { continue };
            let invalid =
                || AgentError::Invalid(format!("training-state tensor '{name}' is invalid"));
            let (position, tag) = rest.split_once('/').ok_or_else(invalid)?;
            let position: usize = position.parse().map_err(|_| invalid())?;
            let tag = METRIC_TAGS.iter().find(|t| **t == tag).ok_or_else(invalid)?;
            let values = find(tensors, name, Kind::Double, &[2])?;
            let (sum, count) = (values.f_double_value(&[0])?, values.f_double_value(&[1])?);
            if !sum.is_finite() || !(1.0..=f64::from(u32::MAX)).contains(&count) {
                return Err(invalid());
            }
            sums.push((position, (*tag, sum, count as u32)));
        }
        sums.sort_by_key(|(position, _)| *position);
        Ok(Self { sums: sums.into_iter().map(|(_, s)| s).collect() })
    }
}

impl Agent for Pathwise {
    fn name(&self) -> &'static str {
        NAME
    }

    fn act(&mut self, obs: &Tensor, mode: ActMode) -> Tensor {
        if mode == ActMode::Explore && self.env_steps < self.cfg.learning_starts as u64 {
            let n = obs.size().first().copied().unwrap_or(0).max(0) as usize;
            return self.coding.random(n);
        }
        let actions = self.actor.net.act(obs, mode, self.cfg.exploration_noise);
        tch::no_grad(|| self.coding.to_env(actions))
    }

    fn observe(&mut self, t: &Transition<'_>) -> Result<Option<Metrics>, AgentError> {
        let n = t.rewards.len();
        if n != self.num_envs {
            return Err(AgentError::Invalid(format!(
                "transition has {n} rewards, expected one per env ({})",
                self.num_envs
            )));
        }
        self.coding.encode(t.actions, n, &mut self.encoded_actions, &mut self.action_indices)?;
        // `truncated` is deliberately not stored: a truncated transition bootstraps from its
        // final observation like any other.
        self.replay.push(t.obs, &self.encoded_actions, t.rewards, t.terminated, t.next_obs)?;
        self.env_steps += n as u64;
        // Gated on what the buffer holds rather than on env steps, so that a run resumed
        // without its replay buffer refills `learning_starts` transitions before updating.
        if self.replay.len() >= self.cfg.learning_starts.max(1) {
            self.update_credit += self.cfg.updates_per_step * n as f64;
            while self.update_credit >= 1.0 {
                self.update_credit -= 1.0;
                self.update()?;
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

    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> =
            self.parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        named.extend(self.actor_opt.state(ACTOR_ADAM));
        named.extend(self.critic_opt.state(CRITIC_ADAM));
        if let Some(temperature) = &self.temperature {
            named.push((LOG_ALPHA.to_owned(), Tensor::from_slice(&[temperature.log_alpha])));
            if let Some(opt) = &temperature.opt {
                named.extend(opt.state(ALPHA_ADAM));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    fn load_named_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        // The name, kind and shape of everything a checkpoint of this agent holds.
        let mut expected: Vec<(String, Kind, Vec<i64>)> =
            self.parameters().into_iter().map(|(n, t)| (n, Kind::Float, t.size())).collect();
        let adam = |prefix: &str, numel: usize| {
            [
                (format!("{prefix}/exp_avg"), Kind::Float, vec![numel as i64]),
                (format!("{prefix}/exp_avg_sq"), Kind::Float, vec![numel as i64]),
                (format!("{prefix}/steps"), Kind::Int64, vec![1]),
            ]
        };
        expected.extend(adam(ACTOR_ADAM, self.actor.params.numel()));
        expected.extend(adam(CRITIC_ADAM, self.critic.params.numel()));
        if let Some(temperature) = &self.temperature {
            expected.push((LOG_ALPHA.to_owned(), Kind::Double, vec![1]));
            if temperature.opt.is_some() {
                expected.push((format!("{ALPHA_ADAM}/moments"), Kind::Double, vec![2]));
                expected.push((format!("{ALPHA_ADAM}/steps"), Kind::Int64, vec![1]));
            }
        }
        // Check everything before changing anything, so a bad checkpoint leaves the agent intact.
        if let Some((name, _)) =
            tensors.iter().find(|(n, _)| !expected.iter().any(|(e, _, _)| e == n))
        {
            return Err(AgentError::Invalid(format!(
                "checkpoint tensor '{name}' does not belong to this {NAME} agent"
            )));
        }
        for (name, kind, shape) in &expected {
            find(tensors, name, *kind, shape)?;
        }
        let log_alpha = match &self.temperature {
            Some(_) => {
                let v = find(tensors, LOG_ALPHA, Kind::Double, &[1])?.f_double_value(&[0])?;
                if !v.is_finite() {
                    return Err(AgentError::Invalid(format!(
                        "checkpoint tensor '{LOG_ALPHA}' is {v}, not a finite number"
                    )));
                }
                Some(v)
            }
            None => None,
        };
        tch::no_grad(|| {
            for (name, mut target) in self.parameters() {
                target.f_copy_(find(tensors, &name, Kind::Float, &target.size())?)?;
            }
            Ok::<_, AgentError>(())
        })?;
        self.actor_opt.load_state(ACTOR_ADAM, tensors)?;
        self.critic_opt.load_state(CRITIC_ADAM, tensors)?;
        if let (Some(temperature), Some(v)) = (&mut self.temperature, log_alpha) {
            temperature.log_alpha = v;
            if let Some(opt) = &mut temperature.opt {
                opt.load_state(ALPHA_ADAM, tensors)?;
            }
        }
        Ok(())
    }

    fn training_state(&self, include_replay: bool) -> Result<Vec<(String, Tensor)>, AgentError> {
        let mut state = if include_replay { self.replay.state_tensors(REPLAY) } else { Vec::new() };
        let count = |n: u64| Tensor::from_slice(&[n as i64]);
        state.push((ENV_STEPS.to_owned(), count(self.env_steps)));
        state.push((UPDATES.to_owned(), count(self.updates)));
        state.push((STEPS_SINCE_METRICS.to_owned(), count(self.steps_since_metrics as u64)));
        state.push((UPDATE_CREDIT.to_owned(), Tensor::from_slice(&[self.update_credit])));
        state.extend(self.metrics.state());
        Ok(state)
    }

    fn load_training_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        let (replay_prefix, metrics_prefix) = (format!("{REPLAY}/"), format!("{METRICS}/"));
        let counters = [ENV_STEPS, UPDATES, STEPS_SINCE_METRICS];
        if let Some((name, _)) = tensors.iter().find(|(n, _)| {
            !n.starts_with(&replay_prefix)
                && !n.starts_with(&metrics_prefix)
                && !counters.contains(&n.as_str())
                && n != UPDATE_CREDIT
        }) {
            return Err(AgentError::Invalid(format!(
                "training-state tensor '{name}' does not belong to this {NAME} agent"
            )));
        }
        let mut values = [0u64; 3];
        for (value, name) in values.iter_mut().zip(counters) {
            let v = find(tensors, name, Kind::Int64, &[1])?.f_int64_value(&[0])?;
            *value = u64::try_from(v).map_err(|_| {
                AgentError::Invalid(format!("training-state '{name}' is negative ({v})"))
            })?;
        }
        let credit = find(tensors, UPDATE_CREDIT, Kind::Double, &[1])?.f_double_value(&[0])?;
        if !(0.0..1.0).contains(&credit) {
            return Err(AgentError::Invalid(format!(
                "training-state '{UPDATE_CREDIT}' must be in [0, 1), got {credit}"
            )));
        }
        let metrics = MetricSums::from_state(tensors)?;
        self.replay.load_state_tensors(REPLAY, tensors)?;
        self.metrics = metrics;
        let [env_steps, updates, since_metrics] = values;
        self.env_steps = env_steps;
        self.updates = updates;
        self.steps_since_metrics = since_metrics as usize;
        self.update_credit = credit;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributions::GumbelSoftmax;
    use rlpg_envs::BoxSpace;
    use tch::{Device, Kind};

    fn pendulum_spaces() -> (Space, Space) {
        (
            Space::Box(BoxSpace::new(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0])),
            Space::Box(BoxSpace::uniform(1, -2.0, 2.0)),
        )
    }

    fn agent(cfg: &PathwiseConfig, seed: i64) -> Pathwise {
        tch::manual_seed(seed);
        let (obs, act) = pendulum_spaces();
        Pathwise::new(cfg, &obs, &act, 1).unwrap()
    }

    /// Stores `n` transitions with observations, actions and rewards derived from the index.
    fn fill(agent: &mut Pathwise, n: usize) {
        for i in 0..n {
            let x = i as f32 / n as f32;
            let obs = [x.cos(), x.sin(), x];
            let next = [x.sin(), x.cos(), -x];
            agent
                .replay
                .push(&obs, &[2.0 * x - 1.0], &[-f64::from(x)], &[i % 7 == 0], &next)
                .unwrap();
        }
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_serde() {
        let cfg = PathwiseConfig::default();
        cfg.validate().expect("defaults must validate");
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<PathwiseConfig>(&json).unwrap(), cfg);
        let partial: PathwiseConfig =
            serde_json::from_str(r#"{"estimator": "td3", "tau": 0.01}"#).unwrap();
        assert_eq!(
            partial,
            PathwiseConfig { estimator: Estimator::Td3, tau: 0.01, ..PathwiseConfig::default() }
        );
        assert!(serde_json::from_str::<PathwiseConfig>(r#"{"tua": 0.01}"#).is_err());
        assert!(serde_json::from_str::<PathwiseConfig>(r#"{"estimator": "ddpg"}"#).is_err());
    }

    #[test]
    fn validate_names_the_key_and_the_allowed_range() {
        let bad = |f: fn(&mut PathwiseConfig)| {
            let mut cfg = PathwiseConfig::default();
            f(&mut cfg);
            cfg.validate().unwrap_err().to_string()
        };
        assert_eq!(bad(|c| c.tau = 0.0), "tau: must be in (0, 1], got 0");
        assert_eq!(bad(|c| c.gamma = 1.5), "gamma: must be in (0, 1], got 1.5");
        assert_eq!(bad(|c| c.batch_size = 0), "batch_size: must be an integer >= 1, got 0");
        assert_eq!(
            bad(|c| c.updates_per_step = 0.0),
            "updates_per_step: must be a finite number > 0, got 0"
        );
        for (key, message) in [
            ("actor_learning_rate", bad(|c| c.actor_learning_rate = -1.0)),
            ("critic_learning_rate", bad(|c| c.critic_learning_rate = f64::NAN)),
            ("alpha_learning_rate", bad(|c| c.alpha_learning_rate = 0.0)),
            ("buffer_size", bad(|c| c.buffer_size = 0)),
            ("actor_hidden", bad(|c| c.actor_hidden = vec![0])),
            ("critic_hidden", bad(|c| c.critic_hidden = vec![64, 0])),
            ("alpha", bad(|c| c.alpha = 0.0)),
            ("target_entropy", bad(|c| c.target_entropy = Some(f64::INFINITY))),
            ("exploration_noise", bad(|c| c.exploration_noise = -0.1)),
            ("policy_noise", bad(|c| c.policy_noise = f64::NAN)),
            ("noise_clip", bad(|c| c.noise_clip = -1.0)),
            ("policy_delay", bad(|c| c.policy_delay = 0)),
            ("gumbel_temperature", bad(|c| c.gumbel_temperature = 0.0)),
            ("max_grad_norm", bad(|c| c.max_grad_norm = -1.0)),
            ("metrics_every", bad(|c| c.metrics_every = 0)),
            ("logit_bound", bad(|c| c.logit_bound = -1.0)),
            ("logit_bound", bad(|c| c.logit_bound = f64::INFINITY)),
            ("logit_bound", bad(|c| c.logit_bound = 9.0)),
            ("max_alpha", bad(|c| c.max_alpha = f64::NAN)),
            ("max_alpha", bad(|c| c.max_alpha = 0.5)),
        ] {
            assert!(message.starts_with(&format!("{key}: ")), "{key} not named in: {message}");
        }
    }

    /// A SAC agent on 3-wide observations and `Discrete(3)` actions, its buffer filled with 8
    /// transitions, half of them terminated.
    fn discrete_agent(cfg: &PathwiseConfig, seed: i64) -> Pathwise {
        tch::manual_seed(seed);
        let (obs_space, _) = pendulum_spaces();
        let mut agent = Pathwise::new(cfg, &obs_space, &Space::Discrete(3), 1).unwrap();
        for i in 0..8 {
            let x = i as f32 / 8.0;
            let mut one_hot = [0.0f32; 3];
            one_hot[i % 3] = 1.0;
            let (obs, next) = ([x, -x, 2.0 * x], [x.sin(), x.cos(), -x]);
            agent.replay.push(&obs, &one_hot, &[f64::from(x) + 1.0], &[i % 2 == 0], &next).unwrap();
        }
        agent
    }

    #[test]
    fn discrete_soft_targets_are_the_exact_expectation_over_actions() {
        for discrete_critic in [DiscreteCritic::PerAction, DiscreteCritic::Concatenated] {
            exact_expectation_over_actions(discrete_critic);
        }
    }

    fn exact_expectation_over_actions(discrete_critic: DiscreteCritic) {
        let cfg = PathwiseConfig {
            gamma: 0.9,
            expected_discrete_value: true,
            discrete_critic,
            ..PathwiseConfig::default()
        };
        let agent = discrete_agent(&cfg, 3);
        let batch = agent.replay.get(&Tensor::arange(8, (Kind::Int64, Device::Cpu))).unwrap();
        let alpha = 0.7;
        let target = Vec::<f32>::try_from(&agent.td_target(&batch, alpha).unwrap()).unwrap();
        // By hand, row by row: the target critics at each one-hot, the policy's probabilities.
        let (probs, log_probs) = agent.actor.net.action_probs(&batch.next_obs).unwrap();
        for row in 0..8i64 {
            let next = batch.next_obs.get(row);
            let mut value = 0.0;
            for a in 0..3i64 {
                let mut one_hot = [0.0f32; 3];
                one_hot[a as usize] = 1.0;
                let input = Tensor::cat(&[&next, &Tensor::from_slice(&one_hot)], 0).view([1, 6]);
                let (q1, q2) = tch::no_grad(|| agent.critic_target.net.forward(&input));
                let q = q1.double_value(&[0]).min(q2.double_value(&[0]));
                let (p, lp) = (probs.double_value(&[row, a]), log_probs.double_value(&[row, a]));
                value += p * (q - alpha * lp);
            }
            let reward = batch.rewards.double_value(&[row]);
            let terminated = batch.terminated.double_value(&[row]);
            assert_eq!(terminated, if row % 2 == 0 { 1.0 } else { 0.0 }, "row {row} flag");
            let expected = reward + 0.9 * (1.0 - terminated) * value;
            let got = f64::from(target[row as usize]);
            assert!(
                (got - expected).abs() < 1e-5,
                "row {row} (terminated {terminated}): target {got}, hand-computed {expected}"
            );
        }
        // The expectation has no sampling noise: the same batch gives the same targets.
        let again = Vec::<f32>::try_from(&agent.td_target(&batch, alpha).unwrap()).unwrap();
        assert_eq!(target, again, "discrete soft targets must be deterministic");
    }

    #[test]
    fn bounded_logits_keep_probabilities_inside_and_the_overshoot_pulls_back() {
        // Huge raw logits, and a row whose logits are all huge and equal-signed (bounding each
        // logit alone would squash it to a uniform policy).
        let raw = Tensor::from_slice(&[1e4f32, -1e4, 0.0, 3e5, 2e5, 2.5e5])
            .view([2, 3])
            .set_requires_grad(true);
        for bound in [3.0, MAX_LOGIT_BOUND] {
            let logits = actor::bounded_logits(&raw, bound);
            let max_abs = logits.abs().max().double_value(&[]);
            assert!(max_abs <= bound, "bound {bound}: a logit reached {max_abs}");
            let d = GumbelSoftmax::from_logits(&logits, 1.0, true);
            let probs = d.probs();
            let (lo, hi) = (probs.min().double_value(&[]), probs.max().double_value(&[]));
            assert!(lo > 0.0 && hi < 1.0, "bound {bound}: probabilities in [{lo}, {hi}]");
            let second = d.categorical_entropy().double_value(&[1]);
            assert!(second < 0.5 * 3f64.ln(), "bound {bound}: row 2 is near uniform ({second})");
            // Past the bound a descent step on the overshoot moves every raw logit back.
            let overshoot = actor::logit_overshoot(&raw, bound).sum(None);
            let grad = Tensor::run_backward(&[&overshoot], &[&raw], false, false).remove(0);
            let centred = &raw - raw.mean_dim(-1, true, None);
            let outward = (&grad * &centred).gt(0.0).logical_and(&centred.abs().gt(bound));
            let pulled = outward.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]);
            // Rows centre on 0: the ±1e4 and ±5e4 logits (four of six) are past the bound.
            assert_eq!(pulled, 4.0, "bound {bound}: overshoot gradient {grad:?}");
        }
        // Inside the bound there is no penalty, and small logits keep their policy.
        let small = Tensor::from_slice(&[0.1f32, -0.2, 0.05]).view([1, 3]);
        assert_eq!(actor::logit_overshoot(&small, 1.0).double_value(&[0]), 0.0);
        let moved = max_abs_diff(
            &actor::bounded_logits(&small, 8.0).softmax(-1, None),
            &small.softmax(-1, None),
        );
        assert!(moved < 1e-4, "a bound of 8 moved the probabilities of small logits by {moved}");
        // Without a bound the same raw logits saturate: the probabilities are exactly 0 and 1.
        let probs = actor::bounded_logits(&raw, 0.0).softmax(-1, None);
        assert_eq!(probs.max().double_value(&[]), 1.0, "unbounded logits should saturate");
    }

    #[test]
    fn alpha_never_exceeds_its_cap() {
        // A target entropy above the uniform policy's ln 3 can never be met, so autotuning
        // raises α at every actor step.
        let cfg = PathwiseConfig {
            target_entropy: Some(5.0),
            alpha_learning_rate: 0.5,
            max_alpha: 3.0,
            batch_size: 8,
            policy_delay: 1,
            ..PathwiseConfig::default()
        };
        let mut capped = discrete_agent(&cfg, 4);
        let mut uncapped = discrete_agent(&PathwiseConfig { max_alpha: 0.0, ..cfg.clone() }, 4);
        for _ in 0..20 {
            capped.update().unwrap();
            uncapped.update().unwrap();
            assert!(capped.alpha() <= 3.0 + 1e-12, "alpha {} exceeds max_alpha 3", capped.alpha());
        }
        assert!(
            (capped.alpha() - 3.0).abs() < 1e-9,
            "alpha {} should sit at its cap",
            capped.alpha()
        );
        assert!(uncapped.alpha() > 100.0, "without a cap alpha only reached {}", uncapped.alpha());
    }

    #[test]
    fn construction_rejects_what_the_agent_cannot_handle() {
        let cfg = PathwiseConfig::default();
        let (obs, act) = pendulum_spaces();
        let err = |r: Result<Pathwise, AgentError>| r.unwrap_err().to_string();
        assert!(err(Pathwise::new(&cfg, &obs, &act, 0)).contains("num_envs"));
        let small = PathwiseConfig { buffer_size: 2, ..cfg.clone() };
        assert!(err(Pathwise::new(&small, &obs, &act, 4)).starts_with("buffer_size: "));
        let never = PathwiseConfig { buffer_size: 50, learning_starts: 51, ..cfg.clone() };
        assert!(err(Pathwise::new(&never, &obs, &act, 1)).starts_with("learning_starts: "));
        let unbounded = Space::Box(BoxSpace::uniform(1, f32::NEG_INFINITY, f32::INFINITY));
        assert!(err(Pathwise::new(&cfg, &obs, &unbounded, 1)).contains("finite bounds"));
        let td3 = PathwiseConfig { estimator: Estimator::Td3, ..cfg.clone() };
        assert!(
            err(Pathwise::new(&td3, &obs, &Space::Discrete(2), 1)).contains("Box action space")
        );
        assert!(Pathwise::new(&cfg, &obs, &Space::Discrete(2), 1).is_ok(), "SAC takes Discrete");
    }

    #[test]
    fn bootstrapped_target_masks_terminated_rows_only() {
        let rewards = Tensor::from_slice(&[1.0f32, 1.0, -2.0, 0.5]);
        let terminated = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0]);
        let next_value = Tensor::from_slice(&[10.0f32, 10.0, -4.0, 100.0]);
        let target = bootstrapped_target(&rewards, &terminated, &next_value, 0.9);
        // By hand: 1 + 0.9·10, 1 (terminated), −2 + 0.9·(−4), 0.5 (terminated).
        let expected = Tensor::from_slice(&[10.0f32, 1.0, -5.6, 0.5]);
        assert!(
            max_abs_diff(&target, &expected) < 1e-5,
            "targets {target:?} differ from the hand-computed {expected:?}"
        );
    }

    /// Three transitions from the same state: one ordinary, one cut by a time limit
    /// (truncated, not terminated) and one true end. Returns the agent and the stored batch.
    fn three_kinds_of_ends(cfg: &PathwiseConfig) -> (Pathwise, ReplaySample) {
        let cfg = PathwiseConfig { learning_starts: 1_000, ..cfg.clone() };
        let mut agent = agent(&cfg, 3);
        let obs = [0.6f32, 0.8, 0.5];
        let next = [0.8f32, 0.6, -1.5];
        for (truncated, terminated) in [(false, false), (true, false), (false, true)] {
            let actions = Tensor::from_slice(&[1.0f32]).view([1, 1]);
            agent
                .observe(&Transition {
                    obs: &obs,
                    actions: &actions,
                    rewards: &[-3.0],
                    terminated: &[terminated],
                    truncated: &[truncated],
                    next_obs: &next,
                })
                .unwrap();
        }
        let batch = agent.replay.get(&Tensor::from_slice(&[0i64, 1, 2])).unwrap();
        (agent, batch)
    }

    #[test]
    fn td3_target_bootstraps_through_truncation_and_stops_at_termination() {
        let cfg = PathwiseConfig {
            estimator: Estimator::Td3,
            policy_noise: 0.0,
            gamma: 0.9,
            ..PathwiseConfig::default()
        };
        let (agent, batch) = three_kinds_of_ends(&cfg);
        let stored: Vec<f32> = Vec::try_from(&batch.terminated).unwrap();
        assert_eq!(stored, [0.0, 0.0, 1.0], "only the true end may be stored as terminated");
        let target: Vec<f32> = Vec::try_from(&agent.td_target(&batch, 0.0).unwrap()).unwrap();
        // By hand: y = r + γ · min(Q1', Q2')(s', μ'(s')) for the first two rows, y = r for the last.
        let next = Tensor::from_slice(&[0.8f32, 0.6, -1.5]).view([1, 3]);
        let next_value = tch::no_grad(|| {
            let mu = agent.actor_target.as_ref().unwrap().net.mode(&next);
            let (q1, q2) = agent.critic_target.net.forward(&Tensor::cat(&[&next, &mu], 1));
            q1.minimum(&q2).double_value(&[0])
        });
        let bootstrapped = -3.0 + 0.9 * next_value;
        for (row, expected) in [(0, bootstrapped), (1, bootstrapped), (2, -3.0)] {
            assert!(
                (f64::from(target[row]) - expected).abs() < 1e-5,
                "row {row}: target {} but by hand {expected} (next value {next_value})",
                target[row]
            );
        }
    }

    #[test]
    fn sac_soft_value_subtracts_the_entropy_term_under_the_target_critics() {
        let cfg = PathwiseConfig::default();
        let (agent, batch) = three_kinds_of_ends(&cfg);
        let alpha = 0.3;
        let sample = agent.actor.net.sample_for_target(&batch.next_obs).unwrap();
        let value = agent.soft_value(&batch.next_obs, &sample, alpha);
        let (q1, q2) = tch::no_grad(|| {
            agent.critic_target.net.forward(&Tensor::cat(&[&batch.next_obs, &sample.actions], 1))
        });
        for row in 0..3 {
            let min_q = q1.double_value(&[row]).min(q2.double_value(&[row]));
            let log_prob = sample.neg_entropy.double_value(&[row]);
            let expected = min_q - alpha * log_prob;
            let got = value.double_value(&[row]);
            assert!(
                (got - expected).abs() < 1e-5,
                "row {row}: soft value {got}, by hand min Q {min_q} − {alpha}·{log_prob}"
            );
        }
        // The sampled action's log-probability, not a constant, is what is subtracted.
        let spread =
            sample.neg_entropy.max().double_value(&[]) - sample.neg_entropy.min().double_value(&[]);
        assert!(spread > 0.0, "three independent samples gave identical log-probabilities");
    }

    fn snapshot(params: &FlatParams) -> Tensor {
        params.values().copy()
    }

    #[test]
    fn actor_step_changes_the_actor_and_leaves_the_critics_unchanged() {
        let concatenated = PathwiseConfig {
            discrete_critic: DiscreteCritic::Concatenated,
            ..PathwiseConfig::default()
        };
        let filled = |cfg: &PathwiseConfig| {
            let mut agent = agent(cfg, 5);
            fill(&mut agent, 64);
            agent
        };
        let agents = [
            ("sac", filled(&PathwiseConfig::default())),
            (
                "td3",
                filled(&PathwiseConfig { estimator: Estimator::Td3, ..PathwiseConfig::default() }),
            ),
            ("discrete, per-action critic", discrete_agent(&PathwiseConfig::default(), 5)),
            ("discrete, concatenated critic", discrete_agent(&concatenated, 5)),
        ];
        for (estimator, mut agent) in agents {
            let batch = agent.replay.sample(32).unwrap();
            let (actor, critic) = (snapshot(&agent.actor.params), snapshot(&agent.critic.params));
            let critic_target = snapshot(&agent.critic_target.params);
            agent.actor_step(&batch.obs, 0.2).unwrap();
            let moved = max_abs_diff(&actor, agent.actor.params.values());
            assert!(moved > 1e-6, "{estimator}: the actor step left the actor unchanged");
            let critic_moved = max_abs_diff(&critic, agent.critic.params.values());
            assert_eq!(critic_moved, 0.0, "{estimator}: the actor step changed the critic");
            let target_moved = max_abs_diff(&critic_target, agent.critic_target.params.values());
            assert_eq!(target_moved, 0.0, "{estimator}: the actor step changed the target");
            // The critics' own parameters carry no gradient from the actor loss either.
            let stray = agent.critic.store.trainable_variables().iter().any(|v| v.grad().defined());
            assert!(!stray, "{estimator}: the actor loss left gradients on the critic");
        }
    }

    #[test]
    fn critic_step_changes_the_critics_and_leaves_the_actor_unchanged() {
        let mut agent = agent(&PathwiseConfig::default(), 6);
        fill(&mut agent, 64);
        let batch = agent.replay.sample(32).unwrap();
        let (actor, critic) = (snapshot(&agent.actor.params), snapshot(&agent.critic.params));
        let target = agent.td_target(&batch, 0.2).unwrap();
        agent.critic_step(&batch, &target).unwrap();
        assert!(max_abs_diff(&critic, agent.critic.params.values()) > 1e-6, "critic did not move");
        assert_eq!(max_abs_diff(&actor, agent.actor.params.values()), 0.0, "actor moved");
    }

    #[test]
    fn td3_smoothing_noise_is_clipped_and_actions_stay_in_the_box() {
        tch::manual_seed(0);
        let mu = Tensor::from_slice(&[-1.0f32, -0.3, 0.0, 0.9]).view([4, 1]).repeat([5000, 1]);
        let a = smoothed_target_action(&mu, 10.0, 0.5);
        let shift = (&a - &mu).abs().max().double_value(&[]);
        assert!(shift <= 0.5 + 1e-6, "noise beyond the clip: |a − μ| up to {shift}");
        let (lo, hi) = (a.min().double_value(&[]), a.max().double_value(&[]));
        assert!(lo >= -1.0 && hi <= 1.0, "smoothed actions leave [−1, 1]: [{lo}, {hi}]");
        // With noise std 10 the clip binds almost always: μ = −0.3 lands on −0.8 or 0.2.
        let middle = a.reshape([5000, 4]).select(1, 1);
        let on_edges = ((&middle + 0.8).abs().lt(1e-5).logical_or(&(&middle - 0.2).abs().lt(1e-5)))
            .to_kind(Kind::Float)
            .mean(None)
            .double_value(&[]);
        assert!(on_edges > 0.9, "only {on_edges} of large noises were clipped to ±0.5");
        let no_noise = smoothed_target_action(&mu, 0.0, 0.5);
        assert_eq!(max_abs_diff(&no_noise, &mu), 0.0, "zero policy noise must return μ");
    }

    #[test]
    fn updates_follow_learning_starts_and_the_update_to_data_ratio() {
        let cfg = PathwiseConfig {
            learning_starts: 10,
            updates_per_step: 0.75,
            batch_size: 8,
            ..PathwiseConfig::default()
        };
        tch::manual_seed(0);
        let (obs_space, act_space) = pendulum_spaces();
        let mut agent = Pathwise::new(&cfg, &obs_space, &act_space, 2).unwrap();
        let obs = [0.0f32, 1.0, 0.0, 1.0, 0.0, 0.0];
        let mut counts = Vec::new();
        for _ in 0..10 {
            let actions = agent.act(&Tensor::from_slice(&obs).view([2, 3]), ActMode::Explore);
            agent
                .observe(&Transition {
                    obs: &obs,
                    actions: &actions,
                    rewards: &[0.0, 0.0],
                    terminated: &[false, false],
                    truncated: &[false, false],
                    next_obs: &obs,
                })
                .unwrap();
            counts.push(agent.updates());
        }
        // 2 transitions per step; from the 10th transition on, 0.75 updates per transition.
        assert_eq!(counts, [0, 0, 0, 0, 1, 3, 4, 6, 7, 9], "updates after each step");
    }

    #[test]
    fn acting_is_uniform_before_learning_starts_and_in_the_env_form_after() {
        let (obs_space, act_space) = pendulum_spaces();
        tch::manual_seed(1);
        let cfg = PathwiseConfig { learning_starts: 5, ..PathwiseConfig::default() };
        let mut agent = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
        let obs = Tensor::zeros([4000, 3], (Kind::Float, Device::Cpu));
        let random = agent.act(&obs, ActMode::Explore);
        assert_eq!(random.size(), vec![4000, 1]);
        let (lo, hi, mean) = (
            random.min().double_value(&[]),
            random.max().double_value(&[]),
            random.mean(None).double_value(&[]),
        );
        assert!(lo >= -2.0 && hi <= 2.0 && lo < -1.9 && hi > 1.9, "not uniform on [−2, 2]");
        assert!(mean.abs() < 0.1, "uniform actions on [−2, 2] average {mean}");
        // Deterministic acting uses the policy even before learning starts.
        let a = agent.act(&obs, ActMode::Deterministic);
        assert_eq!(max_abs_diff(&a, &a.narrow(0, 0, 1).expand_as(&a)), 0.0, "one state, one mode");

        let mut discrete = Pathwise::new(&cfg, &obs_space, &Space::Discrete(3), 1).unwrap();
        for mode in [ActMode::Explore, ActMode::Deterministic] {
            let a = discrete.act(&obs, mode);
            assert_eq!((a.kind(), a.size()), (Kind::Int64, vec![4000]), "{mode:?}");
            let (lo, hi) = (a.min().int64_value(&[]), a.max().int64_value(&[]));
            assert!(lo >= 0 && hi <= 2, "{mode:?} actions outside 0..3: [{lo}, {hi}]");
        }
    }

    #[test]
    fn discrete_actions_are_stored_one_hot_and_train() {
        let (obs_space, _) = pendulum_spaces();
        tch::manual_seed(2);
        let cfg = PathwiseConfig {
            learning_starts: 1,
            batch_size: 4,
            metrics_every: 1,
            ..PathwiseConfig::default()
        };
        let mut agent = Pathwise::new(&cfg, &obs_space, &Space::Discrete(3), 1).unwrap();
        let obs = [0.1f32, 0.2, 0.3];
        let mut metrics = None;
        for a in [2i64, 0, 1] {
            metrics = agent
                .observe(&Transition {
                    obs: &obs,
                    actions: &Tensor::from_slice(&[a]),
                    rewards: &[1.0],
                    terminated: &[false],
                    truncated: &[false],
                    next_obs: &obs,
                })
                .unwrap();
        }
        let stored = agent.replay.get(&Tensor::from_slice(&[0i64, 1, 2])).unwrap().actions;
        let expected =
            Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).view([3, 3]);
        assert_eq!(max_abs_diff(&stored, &expected), 0.0, "stored actions {stored:?}");
        let tags: Vec<&str> =
            metrics.expect("an update happened").iter().map(|(t, _)| *t).collect();
        for tag in [
            "losses/qf1_loss",
            "losses/qf2_loss",
            "losses/qf1_values",
            "losses/actor_loss",
            "losses/alpha",
            "losses/alpha_loss",
        ] {
            assert!(tags.contains(&tag), "metrics lack {tag}: {tags:?}");
        }
        let bad = agent.observe(&Transition {
            obs: &obs,
            actions: &Tensor::from_slice(&[3i64]),
            rewards: &[1.0],
            terminated: &[false],
            truncated: &[false],
            next_obs: &obs,
        });
        assert!(bad.unwrap_err().to_string().contains("outside Discrete(3)"));
    }

    #[test]
    fn a_non_finite_reward_is_reported_by_the_loss_it_poisons() {
        let mut agent =
            agent(&PathwiseConfig { learning_starts: 1, ..PathwiseConfig::default() }, 4);
        let obs = [0.0f32, 1.0, 0.0];
        let err = agent
            .observe(&Transition {
                obs: &obs,
                actions: &Tensor::from_slice(&[0.5f32]).view([1, 1]),
                rewards: &[f64::NAN],
                terminated: &[false],
                truncated: &[false],
                next_obs: &obs,
            })
            .unwrap_err();
        match err {
            AgentError::NonFinite { quantity, agent, .. } => {
                assert_eq!((agent, quantity.as_str()), (NAME, "losses/qf1_loss"));
            }
            other => panic!("expected NonFinite, got {other}"),
        }
    }

    #[test]
    fn checkpoints_round_trip_and_bad_ones_leave_the_agent_intact() {
        for estimator in [Estimator::Sac, Estimator::Td3] {
            let cfg = PathwiseConfig { estimator, alpha: 0.3, ..PathwiseConfig::default() };
            let mut source = agent(&cfg, 7);
            fill(&mut source, 64);
            for _ in 0..4 {
                source.update().unwrap();
            }
            let mut dest = agent(&cfg, 8);
            let saved = source.named_tensors();
            let names: Vec<&str> = saved.iter().map(|(n, _)| n.as_str()).collect();
            for prefix in [
                "actor/",
                "critic/q1.",
                "critic/q2.",
                "critic_target/q1.",
                "critic_target/q2.",
                "actor_adam/exp_avg",
                "critic_adam/exp_avg_sq",
                "critic_adam/steps",
            ] {
                assert!(names.iter().any(|n| n.starts_with(prefix)), "{estimator:?}: no {prefix}*");
            }
            let sac = estimator == Estimator::Sac;
            assert_eq!(names.contains(&"log_alpha"), sac);
            assert_eq!(names.contains(&"alpha_adam/moments"), sac);
            assert_eq!(names.iter().any(|n| n.starts_with("actor_target/")), !sac);

            let obs = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
            let before = dest.act(&obs, ActMode::Deterministic);
            let copy = || saved.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
            let mut missing: Vec<(String, Tensor)> = copy();
            missing.retain(|(n, _)| n != "critic_adam/steps");
            let err = dest.load_named_tensors(&missing).unwrap_err().to_string();
            assert!(err.contains("missing tensor 'critic_adam/steps'"), "{err}");
            let mut wrong: Vec<(String, Tensor)> = copy();
            wrong[0].1 = Tensor::zeros([1], (Kind::Float, Device::Cpu));
            let err = dest.load_named_tensors(&wrong).unwrap_err().to_string();
            assert!(
                err.contains(&format!("'{}'", wrong[0].0)) && err.contains("expected"),
                "{err}"
            );
            let mut stray: Vec<(String, Tensor)> = copy();
            stray.push((
                "critic/q3.out.bias".into(),
                Tensor::zeros([1], (Kind::Float, Device::Cpu)),
            ));
            assert!(dest.load_named_tensors(&stray).unwrap_err().to_string().contains("q3"));
            let after = dest.act(&obs, ActMode::Deterministic);
            assert_eq!(
                max_abs_diff(&before, &after),
                0.0,
                "a refused checkpoint changed the agent"
            );

            dest.load_named_tensors(&saved).unwrap();
            let (a, b) =
                (source.act(&obs, ActMode::Deterministic), dest.act(&obs, ActMode::Deterministic));
            assert_eq!(max_abs_diff(&a, &b), 0.0, "{estimator:?}: loaded agent acts differently");
            assert!((dest.alpha() - source.alpha()).abs() < 1e-12);
            let restored = dest.named_tensors();
            assert_eq!(restored.len(), saved.len());
            for ((n, x), (m, y)) in saved.iter().zip(restored.iter()) {
                assert_eq!(n, m);
                assert_eq!(max_abs_diff(x, y), 0.0, "{n} not restored");
            }
        }
    }

    #[test]
    fn training_state_restores_the_replay_buffer_and_the_schedule() {
        let cfg = PathwiseConfig {
            learning_starts: 4,
            updates_per_step: 0.5,
            ..PathwiseConfig::default()
        };
        let (obs_space, act_space) = pendulum_spaces();
        tch::manual_seed(9);
        let mut source = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
        let obs = [0.0f32, 1.0, 0.5];
        let step = |agent: &mut Pathwise| {
            let actions = Tensor::from_slice(&[0.25f32]).view([1, 1]);
            agent
                .observe(&Transition {
                    obs: &obs,
                    actions: &actions,
                    rewards: &[-1.0],
                    terminated: &[false],
                    truncated: &[false],
                    next_obs: &obs,
                })
                .unwrap();
        };
        for _ in 0..7 {
            step(&mut source);
        }
        assert_eq!((source.updates(), source.update_credit), (2, 0.0), "4 transitions → 2 updates");
        step(&mut source);
        assert_eq!(source.update_credit, 0.5, "an odd transition leaves half an update owed");

        let mut dest = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
        dest.load_named_tensors(&source.named_tensors()).unwrap();
        dest.load_training_state(&source.training_state(true).unwrap()).unwrap();
        assert_eq!(
            (dest.env_steps, dest.updates, dest.update_credit, dest.replay_len()),
            (source.env_steps, source.updates, source.update_credit, source.replay_len())
        );
        for ((n, x), (_, y)) in
            source.training_state(true).unwrap().iter().zip(&dest.training_state(true).unwrap())
        {
            assert_eq!(max_abs_diff(x, y), 0.0, "training state '{n}' not restored");
        }
        // The owed half update is paid on the next transition, as it would have been.
        step(&mut dest);
        assert_eq!(dest.updates(), source.updates() + 1);

        // Without the replay buffer the agent refills learning_starts transitions first.
        let mut refill = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
        refill.load_training_state(&source.training_state(false).unwrap()).unwrap();
        assert_eq!(refill.replay_len(), 0);
        for _ in 0..3 {
            step(&mut refill);
        }
        assert_eq!(refill.updates(), source.updates(), "updated before the buffer refilled");
        step(&mut refill);
        assert!(refill.updates() > source.updates(), "no update once refilled");

        // The metric sums since the last report carry over, in order.
        let mut sums = Pathwise::new(&cfg, &obs_space, &act_space, 1).unwrap();
        sums.load_training_state(&source.training_state(false).unwrap()).unwrap();
        assert!(!source.metrics.sums.is_empty(), "the source has unreported metrics");
        assert_eq!(sums.metrics.sums, source.metrics.sums, "metric sums differ after loading");

        let mut bad = source.training_state(false).unwrap();
        bad.push(("rollout/obs".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
        assert!(refill.load_training_state(&bad).unwrap_err().to_string().contains("rollout/obs"));
        let mut negative = source.training_state(false).unwrap();
        for (n, t) in &mut negative {
            if n == "updates" {
                *t = Tensor::from_slice(&[-3i64]);
            }
        }
        assert!(
            refill.load_training_state(&negative).unwrap_err().to_string().contains("negative")
        );
    }
}
