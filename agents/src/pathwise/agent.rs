//! The pathwise agent's algorithm, top to bottom: construction, acting and observing, the
//! update (critic target, critic step, actor step), and, in one place, what SAC and TD3 do
//! differently ([`Variant`]). The module docs of [`super`] give the maths.

use rlpg_envs::Space;
use tch::{Device, Kind, Reduction, Tensor, nn};

use crate::agent::{ActMode, Agent, AgentError, Metrics, Transition};
use crate::grad_noise::grad_noise;
use crate::optim::{FlatParams, ScalarAdam};
use crate::probe::{PolicyProbe, gaussian_noise};
use crate::replay::{ReplayBuffer, ReplaySample};
use crate::scaffold::{Finite, Layout, Net, obs_dim};
use crate::settings::SettingsContext;

use super::actor::{ActionCoding, Actor, ActorSpec, PolicySample};
use super::cpu::CpuUpdate;
use super::critic::{ActionInput, TwinCritic};
use super::exploration::PinkNoise;
use super::settings::{DiscreteCritic, Estimator, Exploration, PathwiseConfig};
use super::state::MetricSums;

/// Agent name used in messages and run directories.
pub(super) const NAME: &str = "pathwise";

/// Slices of a minibatch the actor gradient's noise is estimated from (`grad_diagnostics`).
const GRAD_NOISE_SLICES: usize = 8;

/// Fraction of the uniform policy's entropy `ln n` that SAC aims for on `Discrete(n)` by default.
const DISCRETE_TARGET_ENTROPY_FRACTION: f64 = 0.5;

/// The pathwise agent (SAC or TD3). The update, with its maths, is documented in the source of
/// the (private) `pathwise` module.
#[derive(Debug)]
pub struct Pathwise {
    pub(super) cfg: PathwiseConfig,
    pub(super) num_envs: usize,
    pub(super) coding: ActionCoding,
    pub(super) actor: Net<Actor>,
    pub(super) critic: Net<TwinCritic>,
    pub(super) critic_target: Net<TwinCritic, ()>,
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
    encoded_actions: Vec<f32>,
    action_indices: Vec<i64>,
    /// The update written out in plain Rust where it applies (see `super::cpu`); `None`: the
    /// tensor code.
    cpu: Option<CpuUpdate>,
    /// Where the networks, the replay buffer and the optimizer state live; observations
    /// arrive from the CPU and actions go back there.
    device: Device,
}

impl Pathwise {
    /// A new agent for `num_envs` environments with the given spaces. Weights are drawn from
    /// tch's global generator, so calling `tch::manual_seed` first makes construction (and every
    /// later sample and minibatch) reproducible. Runs on the CPU ([`Pathwise::new_on`] takes a
    /// device).
    ///
    /// Errors on settings [`PathwiseConfig::validate`] refuses for these spaces and `num_envs`,
    /// an empty observation space, `num_envs == 0`, or a `Box` action space without finite
    /// bounds.
    pub fn new(
        cfg: &PathwiseConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
    ) -> Result<Self, AgentError> {
        Self::new_on(cfg, observation_space, action_space, num_envs, Device::Cpu)
    }

    /// [`Pathwise::new`] with the networks, the replay buffer (so minibatches are gathered
    /// where they are used) and the optimizer state on `device`. [`Agent::act`] still takes
    /// and returns CPU tensors, and checkpoints hold CPU tensors, so an agent saved on one
    /// device loads on another.
    pub fn new_on(
        cfg: &PathwiseConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
        device: Device,
    ) -> Result<Self, AgentError> {
        let obs_dim = obs_dim(num_envs, observation_space)?;
        cfg.validate(&SettingsContext::run(num_envs, action_space))?;
        let coding = ActionCoding::new(action_space)?;
        let act_dim = coding.dim();
        let init = cfg.layer_init.layer_init();
        let spec = ActorSpec {
            deterministic: cfg.estimator == Estimator::Td3,
            hidden: &cfg.actor_hidden,
            activation: cfg.activation,
            temperature: cfg.gumbel_temperature,
            straight_through: cfg.straight_through,
            logit_bound: cfg.logit_bound,
            init,
        };
        let build_actor = |p: &nn::Path<'_>| Actor::new(p, obs_dim, &coding, &spec);
        let input = match (&coding, cfg.discrete_critic) {
            (ActionCoding::Discrete { .. }, DiscreteCritic::PerAction) => ActionInput::PerAction,
            _ => ActionInput::Concatenated,
        };
        let build_critic = |p: &nn::Path<'_>| {
            Ok(TwinCritic::new(
                p,
                obs_dim,
                act_dim,
                input,
                &cfg.critic_hidden,
                cfg.activation,
                init,
            ))
        };

        // Classic-control inputs are 3 or 4 wide: column-major weights keep MKL on its fast
        // products for the first layer's gradients (see `optim::column_major`).
        let layout = Layout::ColumnMajor;
        // Built in this order (actor, TD3's target actor, critic, target critic), which fixes
        // the draws from the generator.
        let actor = Net::trained(layout, cfg.actor_learning_rate, device, build_actor)?;
        let variant = match cfg.estimator {
            Estimator::Td3 => {
                Variant::Td3 { target_actor: Net::target_of(&actor, layout, build_actor)? }
            }
            Estimator::Sac => Variant::Sac(Temperature {
                log_alpha: cfg.alpha.ln(),
                target_entropy: cfg.target_entropy.unwrap_or(match action_space {
                    Space::Discrete(n) => DISCRETE_TARGET_ENTROPY_FRACTION * (*n as f64).ln(),
                    _ => -(action_space.flat_dim() as f64),
                }),
                max_log_alpha: if cfg.max_alpha > 0.0 { cfg.max_alpha.ln() } else { f64::INFINITY },
                opt: cfg.autotune_alpha.then(|| ScalarAdam::new(cfg.alpha_learning_rate)),
            }),
        };
        let critic = Net::trained(layout, cfg.critic_learning_rate, device, build_critic)?;
        let critic_target = Net::target_of(&critic, layout, build_critic)?;
        let cpu =
            CpuUpdate::new(cfg, input, &coding, obs_dim, &actor.params, &critic.params, device)?;

        Ok(Self {
            cfg: cfg.clone(),
            num_envs,
            replay: ReplayBuffer::new_on(cfg.buffer_size, obs_dim, act_dim, device)?,
            coding,
            actor,
            critic,
            critic_target,
            variant,
            env_steps: 0,
            updates: 0,
            update_credit: 0.0,
            metrics: MetricSums::default(),
            steps_since_metrics: 0,
            pink: (cfg.exploration == Exploration::Pink).then(|| PinkNoise::new(num_envs, act_dim)),
            encoded_actions: Vec::new(),
            action_indices: Vec::new(),
            cpu,
            device,
        })
    }

    /// The settings the agent was built with.
    pub fn config(&self) -> &PathwiseConfig {
        &self.cfg
    }

    /// The current entropy temperature α (0 for TD3, which has no entropy term).
    pub fn alpha(&self) -> f64 {
        self.variant.alpha()
    }

    /// Critic updates done so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Transitions stored in the replay buffer.
    pub fn replay_len(&self) -> usize {
        self.replay.len()
    }

    /// Whether updates run the plain-Rust code of `super::cpu` (SAC on the CPU without
    /// gradient diagnostics, with per-action critics for discrete actions) rather than the
    /// tensor code.
    pub fn uses_cpu_update(&self) -> bool {
        self.cpu.is_some()
    }

    /// Makes every later update run the tensor code, as on other devices and settings: for
    /// benchmarks and tests that compare the two. The tensor code differentiates with autograd;
    /// the plain-Rust code computes the same update up to float rounding, several times faster
    /// at classic-control sizes.
    pub fn use_tensor_update(&mut self) {
        self.cpu = None;
    }

    /// The guard on this update's losses and gradient norms.
    pub(super) fn finite(&self) -> Finite {
        Finite { agent: NAME, update: self.updates }
    }

    /// Runs one full update (critic, and actor, temperature and targets when due) on a
    /// minibatch from the replay buffer, whatever the schedule says. Used by `observe`, and by
    /// benchmarks that time updates alone. Errors when the buffer is empty.
    pub fn update(&mut self) -> Result<(), AgentError> {
        if let Some(mut cpu) = self.cpu.take() {
            let result = cpu.update(self);
            self.cpu = Some(cpu);
            return result;
        }
        let batch = self.replay.sample(self.cfg.batch_size)?;
        self.update_on(&batch)
    }

    /// The update on `batch`.
    fn update_on(&mut self, batch: &ReplaySample) -> Result<(), AgentError> {
        let alpha = self.alpha();
        let target = self.td_target(batch, alpha)?;
        self.critic_step(batch, &target)?;
        self.updates += 1;
        // TD3's delayed policy updates: the actor, the temperature and the targets move once
        // every `policy_delay` critic updates.
        if self.updates % self.cfg.policy_delay as u64 == 0 {
            let sample = self.actor_step(&batch.obs, alpha)?;
            let neg_entropy = tch::no_grad(|| sample.neg_entropy.mean(None).double_value(&[]));
            let guard = self.finite();
            self.variant.after_actor_step(
                &self.actor,
                neg_entropy,
                &self.cfg,
                &mut self.metrics,
                guard,
            )?;
            self.critic_target.follow(&self.critic, self.cfg.tau)?;
        }
        Ok(())
    }

    /// The critics' regression target for `batch`, `r + γ (1 − terminated) · V'(s')` (no
    /// gradients).
    pub(super) fn td_target(&self, batch: &ReplaySample, alpha: f64) -> Result<Tensor, AgentError> {
        tch::no_grad(|| {
            let next_value = self.variant.next_value(self, &batch.next_obs, alpha)?;
            Ok(bootstrapped_target(&batch.rewards, &batch.terminated, &next_value, self.cfg.gamma))
        })
    }

    /// SAC's soft value of `obs` estimated with the policy `sample` drawn there:
    /// `min(Q1', Q2')(s, a) − α log π(a|s)` under the target critics (no gradients).
    pub(super) fn soft_value(&self, obs: &Tensor, sample: &PolicySample, alpha: f64) -> Tensor {
        tch::no_grad(|| {
            let (q1, q2) =
                self.critic_target.module.forward(&Tensor::cat(&[obs, &sample.actions], 1));
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
            let critic = &self.critic_target.module;
            let (q1, q2) = critic.every_action(obs).unwrap_or_else(|| {
                let obs_dim = obs.size()[1];
                // Row b·n + a pairs state b with the one-hot of action a.
                let states =
                    obs.unsqueeze(1).expand([batch, n, obs_dim], false).reshape([-1, obs_dim]);
                let one_hots = Tensor::eye(n, (probs.kind(), probs.device()))
                    .unsqueeze(0)
                    .expand([batch, n, n], false)
                    .reshape([-1, n]);
                let (q1, q2) = critic.forward(&Tensor::cat(&[&states, &one_hots], 1));
                (q1.view([batch, n]), q2.view([batch, n]))
            });
            let q = q1.minimum(&q2);
            (probs * (q - log_probs * alpha)).sum_dim_intlist(-1, false, None)
        })
    }

    /// One Adam step of both critics toward `target`, with one optimizer on the sum of their
    /// squared errors.
    pub(super) fn critic_step(
        &mut self,
        batch: &ReplaySample,
        target: &Tensor,
    ) -> Result<(), AgentError> {
        let guard = self.finite();
        let (q1, q2) = self.critic.module.forward(&batch.obs_actions);
        let qf1_loss = q1.mse_loss(target, Reduction::Mean);
        let qf2_loss = q2.mse_loss(target, Reduction::Mean);
        let qf1 = guard.scalar("losses/qf1_loss", &qf1_loss)?;
        let qf2 = guard.scalar("losses/qf2_loss", &qf2_loss)?;
        let norm = self.critic.step(
            &(qf1_loss + qf2_loss),
            self.cfg.max_grad_norm,
            guard,
            "losses/critic_grad_norm",
        )?;
        let q1_mean = tch::no_grad(|| q1.mean(None).double_value(&[]));
        self.metrics.add("losses/qf1_loss", qf1);
        self.metrics.add("losses/qf2_loss", qf2);
        self.metrics.add("losses/qf1_values", q1_mean);
        self.metrics.add("losses/critic_grad_norm", norm);
        Ok(())
    }

    /// One Adam step of the actor through the (unchanged) critic at observations `obs`. Returns
    /// the reparameterized sample it was taken on, for the temperature step.
    pub(super) fn actor_step(
        &mut self,
        obs: &Tensor,
        alpha: f64,
    ) -> Result<PolicySample, AgentError> {
        let guard = self.finite();
        let sample = self.actor.module.rsample(obs)?;
        // Column-major, so that the gradient into the critic's narrow first layer takes MKL's
        // fast product (see `optim::column_major`).
        let obs_actions = Tensor::cat(&[obs.tr(), sample.actions.tr()], 0).tr();
        let sample_losses =
            self.variant.actor_sample_losses(&self.critic.module, &obs_actions, &sample, alpha);
        let sample_losses = match &sample.logit_penalty {
            Some(penalty) => sample_losses + penalty,
            None => sample_losses,
        };
        let actor_loss = sample_losses.mean(None);
        let loss_value = guard.scalar("losses/actor_loss", &actor_loss)?;
        // Once per metrics window: the first actor step after the last report.
        if self.cfg.grad_diagnostics && !self.metrics.contains("grad/variance") {
            let rows = sample_losses.size()[0];
            let slices = (GRAD_NOISE_SLICES as i64).min(rows);
            let sizes: Vec<i64> =
                (0..slices).map(|k| (k + 1) * rows / slices - k * rows / slices).collect();
            let slice_losses = sample_losses.view([-1]).split_with_sizes(&sizes, 0);
            let means: Vec<Tensor> = slice_losses.iter().map(|l| l.mean(None)).collect();
            let noise = grad_noise(&self.actor.params, &Tensor::stack(&means, 0), &sizes)?;
            guard.check("grad/variance", noise.variance)?;
            for (tag, value) in noise.metrics() {
                self.metrics.add(tag, value);
            }
        }
        // Differentiates with respect to the actor's parameters only: the gradient flows through
        // the critic into the action, but the critic's weights get none and its optimizer is not
        // involved.
        let norm = self.actor.step(
            &actor_loss,
            self.cfg.max_grad_norm,
            guard,
            "losses/actor_grad_norm",
        )?;
        self.metrics.add("losses/actor_loss", loss_value);
        self.metrics.add("losses/actor_grad_norm", norm);
        Ok(sample)
    }
}

/// What makes the agent SAC or TD3; the replay buffer, the twin critics, their targets and the
/// update schedule are shared. SAC on a discrete space differs from SAC on a box only inside the
/// actor (Gumbel-softmax instead of a squashed Gaussian), the critic's action input, and the
/// optional exact expectation in [`Variant::next_value`].
#[derive(Debug)]
pub(super) enum Variant {
    /// SAC: a stochastic actor and an entropy temperature.
    Sac(Temperature),
    /// TD3: a deterministic actor and a target copy of it, Polyak-averaged like the critics'.
    Td3 {
        /// The target actor.
        target_actor: Net<Actor, ()>,
    },
}

/// The entropy temperature of SAC.
#[derive(Debug)]
pub(super) struct Temperature {
    pub(super) log_alpha: f64,
    target_entropy: f64,
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

    /// `V'(s')` of the TD target at `next_obs` (no gradients).
    fn next_value(
        &self,
        agent: &Pathwise,
        next_obs: &Tensor,
        alpha: f64,
    ) -> Result<Tensor, AgentError> {
        let cfg = &agent.cfg;
        let actor = &agent.actor.module;
        match self {
            // TD3: the smoothed target actor's action, no entropy term.
            Variant::Td3 { target_actor } => {
                let mu = target_actor.module.mode(next_obs);
                let a = smoothed_target_action(&mu, cfg.policy_noise, cfg.noise_clip);
                let (q1, q2) = agent.critic_target.module.forward(&Tensor::cat(&[next_obs, &a], 1));
                Ok(q1.minimum(&q2))
            }
            // SAC: on a discrete space with `expected_discrete_value`, the exact expectation
            // over the n actions; otherwise (a box, or a discrete space by default) the current
            // actor's sample and its entropy term.
            Variant::Sac(_) => {
                match cfg.expected_discrete_value.then(|| actor.action_probs(next_obs)).flatten() {
                    Some((probs, log_probs)) => {
                        Ok(agent.expected_soft_value(next_obs, &probs, &log_probs, alpha))
                    }
                    None => {
                        let sample = actor.sample_for_target(next_obs)?;
                        Ok(agent.soft_value(next_obs, &sample, alpha))
                    }
                }
            }
        }
    }

    /// The actor loss of each sample at the `[obs, action]` rows `obs_actions`: SAC's
    /// `α log π(a|s) − min(Q1, Q2)(s, a)`, TD3's `−Q1(s, μ(s))`.
    fn actor_sample_losses(
        &self,
        critic: &TwinCritic,
        obs_actions: &Tensor,
        sample: &PolicySample,
        alpha: f64,
    ) -> Tensor {
        match self {
            Variant::Sac(_) => {
                let (q1, q2) = critic.forward(obs_actions);
                &sample.neg_entropy * alpha - q1.minimum(&q2)
            }
            Variant::Td3 { .. } => -critic.q1(obs_actions),
        }
    }

    /// What follows an actor step: SAC's temperature step (with `autotune_alpha`) on the mean
    /// `neg_entropy` of the actor's sample, TD3's target actor moving toward the actor.
    pub(super) fn after_actor_step(
        &mut self,
        actor: &Net<Actor>,
        neg_entropy: f64,
        cfg: &PathwiseConfig,
        metrics: &mut MetricSums,
        guard: Finite,
    ) -> Result<(), AgentError> {
        match self {
            Variant::Sac(temperature) => {
                // `log α` steps on `−log α · (log π + target_entropy)`, raising α when the
                // policy's entropy is below target.
                let gap = neg_entropy + temperature.target_entropy;
                let alpha_loss = -temperature.log_alpha * gap;
                if let Some(opt) = &mut temperature.opt {
                    // d(alpha_loss)/d(log α) = −gap.
                    let stepped = opt.step(temperature.log_alpha, -gap);
                    temperature.log_alpha = stepped.min(temperature.max_log_alpha);
                }
                guard.check("losses/alpha_loss", alpha_loss)?;
                guard.check("losses/alpha", temperature.log_alpha)?;
                metrics.add("losses/entropy", -neg_entropy);
                metrics.add("losses/alpha", temperature.log_alpha.exp());
                metrics.add("losses/alpha_loss", alpha_loss);
            }
            Variant::Td3 { target_actor } => target_actor.follow(actor, cfg.tau)?,
        }
        Ok(())
    }
}

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

/// [`bootstrapped_target`] of one transition, in the same order of operations.
pub(crate) fn bootstrapped_target_value(
    reward: f32,
    terminated: f32,
    next_value: f32,
    gamma: f64,
) -> f32 {
    let gamma = gamma as f32;
    reward + next_value * (terminated * -gamma + gamma)
}

/// TD3's target policy smoothing: `clip(μ'(s') + clip(ε, −c, c), −1, 1)` with
/// `ε ~ N(0, policy_noise²)`, so the target averages the critic over a small neighbourhood of
/// the target action instead of exploiting a narrow peak.
pub(crate) fn smoothed_target_action(mu: &Tensor, policy_noise: f64, noise_clip: f64) -> Tensor {
    let noise = (mu.randn_like() * policy_noise).clamp(-noise_clip, noise_clip);
    (mu + noise).clamp(-1.0, 1.0)
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
        let eps = match (&mut self.pink, mode) {
            (Some(pink), ActMode::Explore) => Some(pink.next().to_device(self.device)),
            _ => None,
        };
        // The plain-Rust code acts where it updates: the same draws (or the same pink noise) as
        // the tensor code below, without its dozen tensor operations per step. An observation
        // tensor it cannot read falls through to the tensor code, which reports it as it always
        // has.
        if let Some(cpu) = &mut self.cpu {
            let explore = mode == ActMode::Explore;
            if let Ok(actions) = cpu.act(&self.actor.params, obs, explore, eps.as_ref()) {
                return tch::no_grad(|| self.coding.to_env(actions));
            }
        }
        let obs = obs.to_device(self.device);
        let actions = self.actor.module.act(&obs, mode, self.cfg.exploration_noise, eps.as_ref());
        // Actions go back to the CPU, where the environments (and the action coding) are.
        tch::no_grad(|| self.coding.to_env(actions.to_device(Device::Cpu)))
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
        let sac = matches!(self.variant, Variant::Sac(_));
        (sac && matches!(self.coding, ActionCoding::Box { .. })).then_some(self as &dyn PolicyProbe)
    }
}

/// SAC's exploring policy on a box, with `min(Q1, Q2)` (what its actor maximizes) as critic.
impl PolicyProbe for Pathwise {
    fn policy_parameters(&self) -> &FlatParams {
        &self.actor.params
    }

    fn draw_noise(&self, rows: usize) -> Tensor {
        gaussian_noise(rows, self.coding.dim())
    }

    fn act_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let y = self.reparameterized_action(obs, noise);
            self.coding.to_env(y.unwrap_or_else(|| self.actor.module.mode(obs)))
        })
    }

    fn log_prob_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        let dist = self.actor.module.squashed(obs);
        dist.and_then(|d| d.log_prob_from_noise(noise))
            .unwrap_or_else(|| Tensor::zeros([obs.size()[0]], (Kind::Float, Device::Cpu)))
    }

    fn reparameterized_action(&self, obs: &Tensor, noise: &Tensor) -> Option<Tensor> {
        self.actor.module.squashed(obs)?.rsample_from_noise(noise)
    }

    fn value(&self, _obs: &Tensor) -> Option<Tensor> {
        None
    }

    fn critic(&self, obs: &Tensor, actions: &Tensor) -> Option<Tensor> {
        let (q1, q2) = self.critic.module.forward(&Tensor::cat(&[obs, actions], 1));
        Some(q1.minimum(&q2))
    }

    fn gamma(&self) -> f64 {
        self.cfg.gamma
    }

    fn batch_samples(&self) -> usize {
        self.cfg.batch_size
    }
}
