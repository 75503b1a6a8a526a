//! The REINFORCE agent's algorithm, top to bottom: construction, the update (advantages, one
//! policy step, the value fit) and acting and observing.

use rlpg_envs::Space;
use tch::{Device, Kind, Reduction, Tensor};

use crate::agent::{ActMode, Agent, AgentError, Metrics, Transition};
use crate::distributions::{DistributionKind, LogStd};
use crate::grad_noise::{GradNoise, grad_noise};
use crate::networks::{MlpSnapshot, MlpSpec, PolicyNetwork, ValueNetwork};
use crate::optim::FlatParams;
use crate::probe::{PolicyProbe, ProbeOps};
use crate::rollout::RolloutBuffer;
use crate::scaffold::{Finite, Layout, Net, obs_dim};
use crate::settings::SettingsContext;

use super::settings::ReinforceConfig;

/// Agent name used in messages and run directories.
pub(super) const NAME: &str = "reinforce";

/// Added to the advantages' standard deviation before dividing, so that a batch of equal
/// advantages is not divided by zero.
const ADVANTAGE_STD_EPS: f64 = 1e-8;

/// Shifts and scales `xs` in place to zero mean and unit (sample) standard deviation. A batch of
/// one is only centred. Done on the CPU vector rather than as tensor operations because the
/// batch is small and each tensor operation has a fixed cost.
pub(super) fn normalize(xs: &mut [f32]) {
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let scale = if xs.len() > 1 { 1.0 / (var.sqrt() + ADVANTAGE_STD_EPS) } else { 1.0 };
    for x in xs {
        *x = ((f64::from(*x) - mean) * scale) as f32;
    }
}

/// REINFORCE with a learned value baseline: the score-function policy gradient
/// `∇J = E[∇ log π(a|s) · A(s, a)]`, with `A = return − V(s)` (or its GAE(λ) estimate).
///
/// One update per rollout of `n_steps` steps in every env:
/// 1. `V(s)` and `V(next_obs)` for the whole rollout, each in one batched pass; advantages and
///    returns by [`generalized_advantages`](crate::rollout::generalized_advantages), which
///    bootstraps on truncation and at the rollout end but never past a termination.
/// 2. One policy gradient step (Adam) on `−mean(log π(a|s) · A) − ent_coef · entropy`, the
///    gradient norm clipped to `max_grad_norm`. One step, because the samples come from the
///    policy before the step: a second step would need importance weights (that is PPO).
/// 3. The value network regresses on the returns with its own Adam optimizer for
///    `value_epochs` passes of `value_minibatches` shuffled minibatches.
///
/// Each update returns `losses/policy_loss` (without the entropy term), `losses/value_loss`
/// (mean over the value steps), `losses/entropy`, `losses/approx_kl` (old to new policy on the
/// batch, `mean((r − 1) − log r)`), `losses/explained_variance` (of the baseline before fitting;
/// NaN when the returns are constant) and `losses/grad_norm` (the policy's, before clipping),
/// and with `grad_diagnostics` `grad/variance` and `grad/snr` of the policy gradient. A
/// non-finite loss or gradient norm is reported as [`AgentError::NonFinite`] naming it, before
/// the optimizer step it belongs to is taken; the rollout is dropped either way.
///
/// Both networks are stepped by [`crate::optim`]'s flat-buffer Adam. Checkpoints hold the
/// networks and both optimizers' state ([`Agent::named_tensors`]: `policy/…`, `value/…`,
/// `policy_adam/…`, `value_adam/…`) and the partial rollout with the update counter
/// ([`Agent::training_state`]: `rollout/…`, `updates`), so a resumed run continues exactly.
#[derive(Debug)]
pub struct Reinforce {
    pub(super) cfg: ReinforceConfig,
    obs_dim: usize,
    /// The policy (log-std included) and its optimizer.
    pub(super) policy: Net<PolicyNetwork>,
    /// The policy body's weights as of the last step, for acting in plain Rust.
    pub(super) acting: MlpSnapshot,
    /// Working memory of `acting`.
    act_scratch: [Vec<f32>; 2],
    /// The value network (the baseline) and its optimizer.
    pub(super) value: Net<ValueNetwork>,
    pub(super) buffer: RolloutBuffer,
    pub(super) updates: u64,
    /// Where the networks, the update's batch and the optimizer state live. The rollout is
    /// collected on the CPU and moved here once per update; acting runs on the CPU from
    /// `acting` whatever the device.
    device: Device,
    /// The action space, for [`Agent::probe`].
    action_space: Space,
}

impl Reinforce {
    /// A new agent for `num_envs` environments with the given spaces. Weights are drawn from
    /// tch's global generator, so calling `tch::manual_seed` first makes construction (and every
    /// later sample) reproducible. Runs on the CPU ([`Reinforce::new_on`] takes a device).
    ///
    /// Errors on settings [`ReinforceConfig::validate`] refuses for these spaces and `num_envs`
    /// (such as more value minibatches than samples per update), an empty observation space or
    /// `num_envs == 0`.
    pub fn new(
        cfg: &ReinforceConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
    ) -> Result<Self, AgentError> {
        Self::new_on(cfg, observation_space, action_space, num_envs, Device::Cpu)
    }

    /// [`Reinforce::new`] with the networks, the update batches and the optimizer state on
    /// `device`. [`Agent::act`] still takes and returns CPU tensors, and checkpoints hold CPU
    /// tensors, so an agent saved on one device loads on another.
    pub fn new_on(
        cfg: &ReinforceConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
        device: Device,
    ) -> Result<Self, AgentError> {
        let obs_dim = obs_dim(num_envs, observation_space)?;
        cfg.validate(&SettingsContext::run(num_envs, action_space))?;
        let spec = MlpSpec {
            hidden: cfg.hidden.clone(),
            activation: cfg.activation,
            orthogonal_init: cfg.orthogonal_init,
        };
        let log_std = if cfg.state_dependent_std {
            LogStd::StateDependent
        } else {
            LogStd::Parameter { init: cfg.log_std_init }
        };
        // The policy first, then the value network: this order fixes the draws from the
        // generator.
        let policy = Net::trained(Layout::AsBuilt, cfg.learning_rate, device, |p| {
            let kind = DistributionKind::for_score_function(action_space);
            Ok(PolicyNetwork::new(p, obs_dim, action_space, kind, log_std, &spec)?)
        })?;
        let value = Net::trained(Layout::AsBuilt, cfg.value_learning_rate, device, |p| {
            Ok(ValueNetwork::new(p, obs_dim, &spec))
        })?;
        Ok(Self {
            cfg: cfg.clone(),
            obs_dim,
            acting: policy.module.snapshot()?,
            act_scratch: [Vec::new(), Vec::new()],
            policy,
            value,
            buffer: RolloutBuffer::new(cfg.n_steps, num_envs, obs_dim),
            updates: 0,
            device,
            action_space: action_space.clone(),
        })
    }

    /// The settings the agent was built with.
    pub fn config(&self) -> &ReinforceConfig {
        &self.cfg
    }

    /// `V(s)` for observations `[n, obs_dim]`, without gradients.
    pub fn value(&self, obs: &Tensor) -> Tensor {
        tch::no_grad(|| self.value.module.forward(obs))
    }

    /// The guard on this update's losses and gradient norms.
    fn finite(&self) -> Finite {
        Finite { agent: NAME, update: self.updates }
    }

    /// The update on a full buffer.
    fn update(&mut self) -> Result<Metrics, AgentError> {
        let guard = self.finite();
        let buffer = &self.buffer;
        let batch = (buffer.len() * buffer.n_envs()) as i64;
        let obs_dim = self.obs_dim as i64;
        // The rollout crosses to the device once per update (a no-op on the CPU).
        let device = self.device;
        let obs = Tensor::from_slice(buffer.obs()).view([batch, obs_dim]).f_to_device(device)?;
        let actions = buffer.actions().f_to_device(device)?;

        // V(s) and V(next_obs) of the whole rollout, with the value network that was current
        // while the rollout was collected. V(s) keeps its graph: a full-batch first value step
        // regresses exactly these predictions, so it reuses the forward pass.
        let predicted = self.value.module.forward(&obs);
        let values = Vec::<f32>::try_from(&predicted.detach().f_to_device(Device::Cpu)?)?;
        let next_values = tch::no_grad(|| {
            let next_obs =
                Tensor::from_slice(buffer.next_obs()).view([batch, obs_dim]).f_to_device(device)?;
            Vec::<f32>::try_from(&self.value.module.forward(&next_obs).f_to_device(Device::Cpu)?)
        })?;
        let mut estimates =
            buffer.advantages(&values, &next_values, self.cfg.gamma, self.cfg.gae_lambda);
        let explained_variance = explained_variance(&values, &estimates.returns);
        if self.cfg.normalize_advantages {
            normalize(&mut estimates.advantages);
        }
        let returns = Tensor::from_slice(&estimates.returns).f_to_device(device)?;
        let advantages = Tensor::from_slice(&estimates.advantages).f_to_device(device)?;

        // Policy: one score-function gradient step.
        let dist = self.policy.module.distribution(&obs);
        let log_prob = dist.log_prob(&actions);
        let entropy = dist.entropy().ok_or_else(|| {
            AgentError::Invalid("the policy distribution has no closed-form entropy".into())
        })?;
        let score_terms = -(&log_prob * &advantages);
        // Per sample: the score-function term and the entropy bonus.
        let sample_losses = &score_terms - &entropy * self.cfg.ent_coef;
        let policy_loss = score_terms.mean(None);
        let policy_loss_value = guard.scalar("losses/policy_loss", &policy_loss)?;
        let entropy_value = guard.scalar("losses/entropy", &entropy.mean(None))?;
        let loss = sample_losses.mean(None);
        let noise = if self.cfg.grad_diagnostics {
            // One chunk per env: rows are step-major, so env e's samples are column e.
            let (steps, envs) = (buffer.len() as i64, buffer.n_envs() as i64);
            let per_env = sample_losses.view([steps, envs]).mean_dim(0, false, Kind::Float);
            let noise = grad_noise(&self.policy.params, &per_env, &vec![steps; envs as usize])?;
            guard.check("grad/variance", noise.variance)?;
            Some(noise)
        } else {
            None
        };
        let grad_norm =
            self.policy.step(&loss, self.cfg.max_grad_norm, guard, "losses/grad_norm")?;
        self.acting = self.policy.module.snapshot()?;

        // KL(old || new) on the batch, by the low-variance estimator (r − 1) − log r with
        // r = π_new / π_old, which is non-negative for every sample.
        let approx_kl = tch::no_grad(|| {
            let log_ratio =
                self.policy.module.distribution(&obs).log_prob(&actions) - log_prob.detach();
            ((log_ratio.exp() - 1.0) - &log_ratio).mean(None).double_value(&[])
        });
        guard.check("losses/approx_kl", approx_kl)?;

        let value_loss = self.fit_value(&obs, &returns, predicted)?;
        self.updates += 1;
        let mut metrics = vec![
            ("losses/policy_loss", policy_loss_value),
            ("losses/value_loss", value_loss),
            ("losses/entropy", entropy_value),
            ("losses/approx_kl", approx_kl),
            ("losses/explained_variance", explained_variance),
            ("losses/grad_norm", grad_norm),
        ];
        metrics.extend(noise.into_iter().flat_map(GradNoise::metrics));
        Ok(metrics)
    }

    /// Regresses `V(s)` on `returns`; returns the mean squared error over all minibatch steps.
    /// `predicted` is `V(obs)` from the current network, with its graph.
    fn fit_value(
        &mut self,
        obs: &Tensor,
        returns: &Tensor,
        predicted: Tensor,
    ) -> Result<f64, AgentError> {
        let guard = self.finite();
        let mut reusable = Some(predicted);
        let batch = returns.size()[0];
        let minibatches = self.cfg.value_minibatches as i64;
        let minibatch_size = (batch + minibatches - 1) / minibatches;
        let mut loss_sum = 0.0;
        let mut steps = 0usize;
        for _ in 0..self.cfg.value_epochs {
            // Full-batch steps need no shuffling; otherwise randperm draws from tch's global
            // generator, so `manual_seed` fixes the minibatch order too.
            let index_sets: Vec<Option<Tensor>> = if minibatches == 1 {
                vec![None]
            } else {
                let order = Tensor::randperm(batch, (Kind::Int64, self.device));
                order.split(minibatch_size, 0).into_iter().map(Some).collect()
            };
            for index in index_sets {
                let (prediction, target) = match (&index, reusable.take()) {
                    (None, Some(predicted)) => (predicted, returns.shallow_clone()),
                    (None, None) => (self.value.module.forward(obs), returns.shallow_clone()),
                    (Some(idx), _) => (
                        self.value.module.forward(&obs.index_select(0, idx)),
                        returns.index_select(0, idx),
                    ),
                };
                let loss = prediction.mse_loss(&target, Reduction::Mean);
                let loss_value = guard.scalar("losses/value_loss", &loss)?;
                self.value.step(&loss, self.cfg.max_grad_norm, guard, "value_grad_norm")?;
                loss_sum += loss_value;
                steps += 1;
            }
        }
        Ok(loss_sum / steps as f64)
    }
}

/// `1 − Var(returns − values) / Var(returns)`: 1 when the value function predicts the returns
/// perfectly, 0 when it does no better than a constant, NaN when the returns have no variance.
pub(super) fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
    let n = returns.len() as f64;
    let variance = |xs: &mut dyn Iterator<Item = f64>| {
        let xs: Vec<f64> = xs.collect();
        let mean = xs.iter().sum::<f64>() / n;
        xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n
    };
    let var_returns = variance(&mut returns.iter().map(|&r| f64::from(r)));
    if var_returns == 0.0 {
        return f64::NAN;
    }
    let var_residual =
        variance(&mut returns.iter().zip(values).map(|(&r, &v)| f64::from(r) - f64::from(v)));
    1.0 - var_residual / var_returns
}

impl Agent for Reinforce {
    fn name(&self) -> &'static str {
        NAME
    }

    fn act(&mut self, obs: &Tensor, mode: ActMode) -> Tensor {
        // The plain-Rust forward pass (see `MlpSnapshot`): a few µs instead of libtorch's
        // per-operation cost on batches this small. Anything it does not handle (a squashed
        // Gaussian, observations that are not f32 rows) takes the tensor path below.
        if let Ok(input) = Vec::<f32>::try_from(&obs.flatten(0, -1)) {
            if !input.is_empty() && input.len() % self.obs_dim == 0 {
                let outputs = self.acting.forward(&input, &mut self.act_scratch);
                let deterministic = mode == ActMode::Deterministic;
                if let Some(actions) =
                    self.policy.module.head().act_from_outputs(outputs, deterministic)
                {
                    return actions;
                }
            }
        }
        tch::no_grad(|| {
            let dist = self.policy.module.distribution(&obs.to_device(self.device));
            let actions = match mode {
                ActMode::Explore => dist.sample(),
                ActMode::Deterministic => dist.mode(),
            };
            actions.to_device(Device::Cpu)
        })
    }

    fn observe(&mut self, transition: &Transition<'_>) -> Result<Option<Metrics>, AgentError> {
        self.buffer.push(transition)?;
        if !self.buffer.is_full() {
            return Ok(None);
        }
        let metrics = self.update();
        // Whatever the outcome, the rollout was collected by the previous policy: start anew.
        self.buffer.clear();
        metrics.map(Some)
    }

    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.checkpoint_tensors()
    }

    fn load_named_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        self.load_checkpoint_tensors(tensors)
    }

    fn training_state(&self, include_replay: bool) -> Result<Vec<(String, Tensor)>, AgentError> {
        // An on-policy agent has no replay buffer; its unlearned experience is the partial
        // rollout, which a resumed run completes before its next update.
        let _ = include_replay;
        Ok(self.rollout_state())
    }

    fn load_training_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        self.load_rollout_state(tensors)
    }

    fn probe(&self) -> Option<&dyn PolicyProbe> {
        Some(self)
    }
}

/// The policy as the agent samples it, with the value network as its baseline; no critic.
impl PolicyProbe for Reinforce {
    fn policy_parameters(&self) -> &FlatParams {
        &self.policy.params
    }

    fn draw_noise(&self, rows: usize) -> Tensor {
        self.probe_ops().draw(rows)
    }

    fn act_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        let dist = tch::no_grad(|| self.policy.module.distribution(obs));
        self.probe_ops().act(dist.as_ref(), noise)
    }

    fn log_prob_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        let dist = self.policy.module.distribution(obs);
        self.probe_ops().log_prob(dist.as_ref(), noise)
    }

    fn reparameterized_action(&self, obs: &Tensor, noise: &Tensor) -> Option<Tensor> {
        self.policy.module.distribution(obs).rsample_from_noise(noise)
    }

    fn value(&self, obs: &Tensor) -> Option<Tensor> {
        Some(Reinforce::value(self, obs))
    }

    fn critic(&self, _obs: &Tensor, _actions: &Tensor) -> Option<Tensor> {
        None
    }

    fn gamma(&self) -> f64 {
        self.cfg.gamma
    }

    fn batch_samples(&self) -> usize {
        self.cfg.n_steps * self.buffer.n_envs()
    }
}

impl Reinforce {
    fn probe_ops(&self) -> ProbeOps<'_> {
        ProbeOps { space: &self.action_space }
    }
}
