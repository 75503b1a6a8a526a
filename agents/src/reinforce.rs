//! REINFORCE with a learned value baseline ([`Reinforce`]) and its settings
//! ([`ReinforceConfig`]).

use rlpg_envs::Space;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor, nn};

use crate::agent::{ActMode, Agent, AgentError, Metrics, Transition};
use crate::distributions::{DistributionKind, LogStd};
use crate::grad_noise::{GradNoise, grad_noise};
use crate::networks::{MlpSnapshot, MlpSpec, PolicyNetwork, ValueNetwork};
use crate::optim::{Adam, FlatParams, clip_grad_norm, find};
use crate::rollout::RolloutBuffer;
use crate::settings::{
    Activation, InvalidSetting, check_at_least_one, check_discount, check_finite,
    check_hidden_sizes, check_non_negative, check_positive, check_unit_interval,
};

/// Settings of the REINFORCE agent. Defaults are tuned for CartPole-v1 with 8 envs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReinforceConfig {
    /// Adam learning rate of the policy network.
    pub learning_rate: f64,
    /// Adam learning rate of the value network (the baseline), which has its own optimizer.
    pub value_learning_rate: f64,
    /// Discount factor γ of future rewards, in (0, 1].
    pub gamma: f64,
    /// GAE λ in [0, 1]: 1 gives plain REINFORCE with a baseline (advantage = discounted return −
    /// V(s)); smaller values trade bias for lower variance using the value function.
    pub gae_lambda: f64,
    /// Steps collected in each env before every update (the batch is `n_steps × num_envs`).
    pub n_steps: usize,
    /// Normalize advantages to zero mean and unit variance within each batch.
    pub normalize_advantages: bool,
    /// Weight of the entropy bonus in the policy loss (0 disables it).
    pub ent_coef: f64,
    /// Largest global L2 norm of each network's gradient; larger gradients are scaled down
    /// (0 disables clipping).
    pub max_grad_norm: f64,
    /// Passes over the batch the value network makes per update.
    pub value_epochs: usize,
    /// Shuffled minibatches per value pass (1 = full-batch steps).
    pub value_minibatches: usize,
    /// Hidden layer widths of the policy and the value network, input side first.
    pub hidden: Vec<usize>,
    /// Nonlinearity between hidden layers: tanh, relu, elu, leaky_relu or silu.
    pub activation: Activation,
    /// Orthogonal weight initialization with CleanRL's gains (√2 hidden, 0.01 policy output,
    /// 1 value output) instead of PyTorch's default.
    pub orthogonal_init: bool,
    /// Initial log standard deviation of the Gaussian policy (continuous actions only).
    pub log_std_init: f64,
    /// Let the policy network output the log standard deviation per state instead of learning
    /// one state-independent value per action dimension (continuous actions only).
    pub state_dependent_std: bool,
    /// Log the policy gradient's noise with every update, as `grad/variance` and `grad/snr`
    /// (see [`crate::grad_noise`]), from one gradient sample per environment (needs
    /// `num_envs >= 2`). Costs one extra backward pass per env per update; never changes the
    /// run.
    pub grad_diagnostics: bool,
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1.5e-3,
            value_learning_rate: 3e-3,
            gamma: 0.99,
            gae_lambda: 1.0,
            n_steps: 48,
            normalize_advantages: true,
            ent_coef: 0.0,
            max_grad_norm: 0.5,
            value_epochs: 4,
            value_minibatches: 1,
            hidden: vec![64, 64],
            activation: Activation::Relu,
            orthogonal_init: true,
            log_std_init: 0.0,
            state_dependent_std: false,
            grad_diagnostics: false,
        }
    }
}

impl ReinforceConfig {
    /// Checks every setting's range; the error names the first bad key and its allowed values.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("value_learning_rate", self.value_learning_rate)?;
        check_discount("gamma", self.gamma)?;
        check_unit_interval("gae_lambda", self.gae_lambda)?;
        check_at_least_one("n_steps", self.n_steps)?;
        check_non_negative("ent_coef", self.ent_coef)?;
        check_non_negative("max_grad_norm", self.max_grad_norm)?;
        check_at_least_one("value_epochs", self.value_epochs)?;
        check_at_least_one("value_minibatches", self.value_minibatches)?;
        check_hidden_sizes("hidden", &self.hidden)?;
        check_finite("log_std_init", self.log_std_init)?;
        Ok(())
    }
}

/// Agent name used in messages and run directories.
const NAME: &str = "reinforce";

/// Checkpoint prefix of the policy optimizer's state.
const POLICY_ADAM: &str = "policy_adam";
/// Checkpoint prefix of the value optimizer's state.
const VALUE_ADAM: &str = "value_adam";
/// Training-state prefix of the partial rollout.
const ROLLOUT: &str = "rollout";
/// Training-state name of the update counter.
const UPDATES: &str = "updates";

/// Added to the advantages' standard deviation before dividing, so that a batch of equal
/// advantages is not divided by zero.
const ADVANTAGE_STD_EPS: f64 = 1e-8;

/// Shifts and scales `xs` in place to zero mean and unit (sample) standard deviation. A batch of
/// one is only centred. Done on the CPU vector rather than as tensor operations because the
/// batch is small and each tensor operation has a fixed cost.
fn normalize(xs: &mut [f32]) {
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
    cfg: ReinforceConfig,
    obs_dim: usize,
    policy_store: nn::VarStore,
    policy: PolicyNetwork,
    /// The policy's parameters (log-std included), moved into one buffer for [`Adam`].
    policy_params: FlatParams,
    policy_opt: Adam,
    /// The policy body's weights as of the last step, for acting in plain Rust.
    acting: MlpSnapshot,
    /// Working memory of `acting`.
    act_scratch: [Vec<f32>; 2],
    value_store: nn::VarStore,
    value: ValueNetwork,
    value_params: FlatParams,
    value_opt: Adam,
    buffer: RolloutBuffer,
    updates: u64,
}

impl Reinforce {
    /// A new agent for `num_envs` environments with the given spaces. Weights are drawn from
    /// tch's global generator, so calling `tch::manual_seed` first makes construction (and every
    /// later sample) reproducible. Runs on the CPU.
    ///
    /// Errors on invalid settings, an empty observation space, `num_envs == 0`, or more value
    /// minibatches than samples per update.
    pub fn new(
        cfg: &ReinforceConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
    ) -> Result<Self, AgentError> {
        cfg.validate()?;
        if num_envs == 0 {
            return Err(AgentError::Invalid("num_envs must be >= 1, got 0".into()));
        }
        if cfg.grad_diagnostics && num_envs < 2 {
            return Err(InvalidSetting::new(
                "grad_diagnostics",
                "needs num_envs >= 2 (one gradient sample per environment), got num_envs = 1",
            )
            .into());
        }
        let batch = cfg.n_steps * num_envs;
        if cfg.value_minibatches > batch {
            return Err(InvalidSetting::new(
                "value_minibatches",
                format!(
                    "must be <= the batch size n_steps * num_envs = {batch}, got {}",
                    cfg.value_minibatches
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

        let policy_store = nn::VarStore::new(Device::Cpu);
        let policy = PolicyNetwork::new(
            &policy_store.root(),
            obs_dim,
            action_space,
            DistributionKind::for_score_function(action_space),
            log_std,
            &spec,
        )?;
        let policy_params = FlatParams::new(&policy_store)?;
        let policy_opt = Adam::new(&policy_params, cfg.learning_rate)?;

        let value_store = nn::VarStore::new(Device::Cpu);
        let value = ValueNetwork::new(&value_store.root(), obs_dim, &spec);
        let value_params = FlatParams::new(&value_store)?;
        let value_opt = Adam::new(&value_params, cfg.value_learning_rate)?;

        Ok(Self {
            cfg: cfg.clone(),
            obs_dim,
            acting: policy.snapshot()?,
            act_scratch: [Vec::new(), Vec::new()],
            policy_store,
            policy,
            policy_params,
            policy_opt,
            value_store,
            value,
            value_params,
            value_opt,
            buffer: RolloutBuffer::new(cfg.n_steps, num_envs, obs_dim),
            updates: 0,
        })
    }

    /// The settings the agent was built with.
    pub fn config(&self) -> &ReinforceConfig {
        &self.cfg
    }

    /// `V(s)` for observations `[n, obs_dim]`, without gradients.
    pub fn value(&self, obs: &Tensor) -> Tensor {
        tch::no_grad(|| self.value.forward(obs))
    }

    /// The update on a full buffer.
    fn update(&mut self) -> Result<Metrics, AgentError> {
        let buffer = &self.buffer;
        let batch = (buffer.len() * buffer.n_envs()) as i64;
        let obs_dim = self.obs_dim as i64;
        let obs = Tensor::from_slice(buffer.obs()).view([batch, obs_dim]);
        let actions = buffer.actions();

        // V(s) and V(next_obs) of the whole rollout, with the value network that was current
        // while the rollout was collected. V(s) keeps its graph: a full-batch first value step
        // regresses exactly these predictions, so it reuses the forward pass.
        let predicted = self.value.forward(&obs);
        let values = Vec::<f32>::try_from(&predicted.detach())?;
        let next_values = tch::no_grad(|| {
            let next_obs = Tensor::from_slice(buffer.next_obs()).view([batch, obs_dim]);
            Vec::<f32>::try_from(&self.value.forward(&next_obs))
        })?;
        let mut estimates =
            buffer.advantages(&values, &next_values, self.cfg.gamma, self.cfg.gae_lambda);
        let explained_variance = explained_variance(&values, &estimates.returns);
        if self.cfg.normalize_advantages {
            normalize(&mut estimates.advantages);
        }
        let returns = Tensor::from_slice(&estimates.returns);
        let advantages = Tensor::from_slice(&estimates.advantages);

        // Policy: one score-function gradient step.
        let dist = self.policy.distribution(&obs);
        let log_prob = dist.log_prob(&actions);
        let entropy = dist.entropy().ok_or_else(|| {
            AgentError::Invalid("the policy distribution has no closed-form entropy".into())
        })?;
        let score_terms = -(&log_prob * &advantages);
        // Per sample: the score-function term and the entropy bonus.
        let sample_losses = &score_terms - &entropy * self.cfg.ent_coef;
        let policy_loss = score_terms.mean(None);
        let policy_loss_value = self.finite("losses/policy_loss", &policy_loss)?;
        let entropy_value = self.finite("losses/entropy", &entropy.mean(None))?;
        let loss = sample_losses.mean(None);
        let noise = if self.cfg.grad_diagnostics {
            // One chunk per env: rows are step-major, so env e's samples are column e.
            let (steps, envs) = (buffer.len() as i64, buffer.n_envs() as i64);
            let per_env = sample_losses.view([steps, envs]).mean_dim(0, false, Kind::Float);
            let noise = grad_noise(&self.policy_params, &per_env, &vec![steps; envs as usize])?;
            self.check("grad/variance", noise.variance)?;
            Some(noise)
        } else {
            None
        };
        let grad = self.policy_params.grad(&loss)?;
        let (grad, grad_norm) = clip_grad_norm(grad, self.cfg.max_grad_norm)?;
        self.check("losses/grad_norm", grad_norm)?;
        self.policy_opt.step(&mut self.policy_params, &grad)?;
        self.acting = self.policy.snapshot()?;

        // KL(old || new) on the batch, by the low-variance estimator (r − 1) − log r with
        // r = π_new / π_old, which is non-negative for every sample.
        let approx_kl = tch::no_grad(|| {
            let log_ratio = self.policy.distribution(&obs).log_prob(&actions) - log_prob.detach();
            ((log_ratio.exp() - 1.0) - &log_ratio).mean(None).double_value(&[])
        });
        self.check("losses/approx_kl", approx_kl)?;

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
                let order = Tensor::randperm(batch, (Kind::Int64, Device::Cpu));
                order.split(minibatch_size, 0).into_iter().map(Some).collect()
            };
            for index in index_sets {
                let (prediction, target) = match (&index, reusable.take()) {
                    (None, Some(predicted)) => (predicted, returns.shallow_clone()),
                    (None, None) => (self.value.forward(obs), returns.shallow_clone()),
                    (Some(idx), _) => (
                        self.value.forward(&obs.index_select(0, idx)),
                        returns.index_select(0, idx),
                    ),
                };
                let loss = prediction.mse_loss(&target, Reduction::Mean);
                let loss_value = self.finite("losses/value_loss", &loss)?;
                let grad = self.value_params.grad(&loss)?;
                let (grad, grad_norm) = clip_grad_norm(grad, self.cfg.max_grad_norm)?;
                self.check("value_grad_norm", grad_norm)?;
                self.value_opt.step(&mut self.value_params, &grad)?;
                loss_sum += loss_value;
                steps += 1;
            }
        }
        Ok(loss_sum / steps as f64)
    }

    /// Both networks' parameters by checkpoint name (`policy/…`, the log-std included, and
    /// `value/…`), as the live variables.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (prefix, store) in [("policy", &self.policy_store), ("value", &self.value_store)] {
            named.extend(store.variables().into_iter().map(|(n, t)| (format!("{prefix}/{n}"), t)));
        }
        named
    }

    /// The value of scalar tensor `t`, or a [`AgentError::NonFinite`] naming `quantity`.
    fn finite(&self, quantity: &str, t: &Tensor) -> Result<f64, AgentError> {
        self.check(quantity, t.f_double_value(&[])?)
    }

    /// `value`, or a [`AgentError::NonFinite`] naming `quantity`.
    fn check(&self, quantity: &str, value: f64) -> Result<f64, AgentError> {
        AgentError::ensure_finite(NAME, quantity, value, self.updates)
    }
}

/// `1 − Var(returns − values) / Var(returns)`: 1 when the value function predicts the returns
/// perfectly, 0 when it does no better than a constant, NaN when the returns have no variance.
fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
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
                if let Some(actions) = self.policy.head().act_from_outputs(outputs, deterministic) {
                    return actions;
                }
            }
        }
        tch::no_grad(|| {
            let dist = self.policy.distribution(obs);
            match mode {
                ActMode::Explore => dist.sample(),
                ActMode::Deterministic => dist.mode(),
            }
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
        let mut named: Vec<(String, Tensor)> =
            self.parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        named.extend(self.policy_opt.state(POLICY_ADAM));
        named.extend(self.value_opt.state(VALUE_ADAM));
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    fn load_named_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        let targets = self.parameters();
        let optimizers = [
            (POLICY_ADAM, self.policy_params.numel() as i64),
            (VALUE_ADAM, self.value_params.numel() as i64),
        ];
        // Adam's state per prefix, with the kind and shape `Adam::state` gives each tensor.
        let optimizer_state: Vec<(String, Kind, Vec<i64>)> = optimizers
            .iter()
            .flat_map(|&(prefix, numel)| {
                [
                    (format!("{prefix}/exp_avg"), Kind::Float, vec![numel]),
                    (format!("{prefix}/exp_avg_sq"), Kind::Float, vec![numel]),
                    (format!("{prefix}/steps"), Kind::Int64, vec![1]),
                ]
            })
            .collect();
        // Check everything before copying anything, so a bad checkpoint leaves the agent intact.
        let known = |n: &str| {
            targets.iter().any(|(t, _)| t == n) || optimizer_state.iter().any(|(o, _, _)| o == n)
        };
        if let Some((name, _)) = tensors.iter().find(|(n, _)| !known(n)) {
            return Err(AgentError::Invalid(format!(
                "checkpoint tensor '{name}' does not belong to this {NAME} agent"
            )));
        }
        let mut pairs = Vec::with_capacity(targets.len());
        for (name, target) in targets {
            pairs.push((
                target.shallow_clone(),
                find(tensors, &name, target.kind(), &target.size())?,
            ));
        }
        for (name, kind, shape) in &optimizer_state {
            find(tensors, name, *kind, shape)?;
        }
        tch::no_grad(|| {
            for (mut target, source) in pairs {
                target.f_copy_(source)?;
            }
            Ok::<_, AgentError>(())
        })?;
        self.policy_opt.load_state(POLICY_ADAM, tensors)?;
        self.value_opt.load_state(VALUE_ADAM, tensors)?;
        self.acting = self.policy.snapshot()?;
        Ok(())
    }

    fn training_state(&self, include_replay: bool) -> Result<Vec<(String, Tensor)>, AgentError> {
        // An on-policy agent has no replay buffer; its unlearned experience is the partial
        // rollout, which a resumed run completes before its next update.
        let _ = include_replay;
        let mut state = self.buffer.state_tensors(ROLLOUT);
        state.push((UPDATES.to_owned(), Tensor::from_slice(&[self.updates as i64])));
        Ok(state)
    }

    fn load_training_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        let rollout_prefix = format!("{ROLLOUT}/");
        if let Some((name, _)) =
            tensors.iter().find(|(n, _)| n != UPDATES && !n.starts_with(&rollout_prefix))
        {
            return Err(AgentError::Invalid(format!(
                "training-state tensor '{name}' does not belong to this {NAME} agent"
            )));
        }
        let updates = find(tensors, UPDATES, Kind::Int64, &[1])?.f_int64_value(&[0])?;
        let updates = u64::try_from(updates).map_err(|_| {
            AgentError::Invalid(format!("training-state '{UPDATES}' is negative ({updates})"))
        })?;
        self.buffer.load_state_tensors(ROLLOUT, tensors)?;
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_serde() {
        let cfg = ReinforceConfig::default();
        cfg.validate().expect("defaults must validate");
        let json = serde_json::to_string(&cfg).unwrap();
        let back: ReinforceConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        let partial: ReinforceConfig = serde_json::from_str(r#"{"gamma": 0.9}"#).unwrap();
        assert_eq!(partial, ReinforceConfig { gamma: 0.9, ..ReinforceConfig::default() });
        let unknown = serde_json::from_str::<ReinforceConfig>(r#"{"gama": 0.9}"#);
        assert!(unknown.is_err(), "a misspelled key must be rejected");
    }

    #[test]
    fn validate_names_the_key_and_the_allowed_range() {
        let bad = |f: fn(&mut ReinforceConfig)| {
            let mut cfg = ReinforceConfig::default();
            f(&mut cfg);
            cfg.validate().unwrap_err().to_string()
        };
        assert_eq!(bad(|c| c.gamma = 1.5), "gamma: must be in (0, 1], got 1.5");
        assert_eq!(bad(|c| c.gae_lambda = -0.1), "gae_lambda: must be in [0, 1], got -0.1");
        assert_eq!(
            bad(|c| c.learning_rate = 0.0),
            "learning_rate: must be a finite number > 0, got 0"
        );
        assert_eq!(
            bad(|c| c.value_learning_rate = f64::NAN),
            "value_learning_rate: must be a finite number > 0, got NaN"
        );
        assert_eq!(bad(|c| c.n_steps = 0), "n_steps: must be an integer >= 1, got 0");
        assert!(bad(|c| c.hidden = vec![0]).starts_with("hidden: "));
        assert!(bad(|c| c.ent_coef = -1.0).starts_with("ent_coef: "));
        assert!(bad(|c| c.max_grad_norm = f64::INFINITY).starts_with("max_grad_norm: "));
        assert!(bad(|c| c.value_epochs = 0).starts_with("value_epochs: "));
        assert!(bad(|c| c.value_minibatches = 0).starts_with("value_minibatches: "));
        assert!(bad(|c| c.log_std_init = f64::NAN).starts_with("log_std_init: "));
    }

    #[test]
    fn normalize_gives_zero_mean_and_unit_sample_std() {
        let mut xs = [1.0f32, 2.0, 3.0, 6.0];
        normalize(&mut xs);
        let mean: f32 = xs.iter().sum::<f32>() / 4.0;
        let var: f32 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "mean {mean}, variance {var}");
        let mut one = [5.0f32];
        normalize(&mut one);
        assert_eq!(one, [0.0], "a single advantage is only centred");
    }

    #[test]
    fn explained_variance_is_one_for_perfect_and_zero_for_constant_predictions() {
        let returns = [1.0, 2.0, 3.0, 4.0];
        assert!((explained_variance(&returns, &returns) - 1.0).abs() < 1e-12);
        assert!(explained_variance(&[2.5; 4], &returns).abs() < 1e-12);
        assert!(explained_variance(&[0.0; 4], &[1.0; 4]).is_nan());
    }
}
