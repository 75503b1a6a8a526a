//! The REINFORCE agent's algorithm, top to bottom: construction, the update (advantages, one
//! policy step, the value fit), and acting and observing. The update is written once over the
//! compute backends ([`crate::backend`]): the same text runs on libtorch and on the CPU kernel.

use rlpg_envs::Space;
use tch::{Device, Tensor};

use crate::agent::{ActMode, Actions, Agent, AgentError, Metrics, Transition};
use crate::backend::coverage::AgentKind;
use crate::backend::{self, AnyBackend, Backend, BackendKind, with_backend};
use crate::distributions::{ActionHead, DistributionKind, LogStd};
use crate::grad_noise::GradNoise;
use crate::networks::Mlp;
use crate::networks::{MlpSpec, POLICY_OUTPUT_GAIN, VALUE_OUTPUT_GAIN};
use crate::optim::FlatParams;
use crate::probe::{PolicyProbe, ProbeOps};
use crate::rollout::RolloutBuffer;
use crate::scaffold::{Finite, Layout, Net, obs_dim};
use crate::settings::SettingsContext;

use super::settings::ReinforceConfig;

/// Agent name used in messages and run directories.
pub(super) const NAME: &str = "reinforce";

/// The networks' numbers within the agent (see [`Net::id`]).
const POLICY: u8 = 0;
const VALUE: u8 = 1;

/// Added to the advantages' standard deviation before dividing, so that a batch of equal
/// advantages is not divided by zero.
const ADVANTAGE_STD_EPS: f64 = 1e-8;

/// Shifts and scales `xs` in place to zero mean and unit (sample) standard deviation. A batch of
/// one is only centred.
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
/// `∇J = E[∇ log π(a|s) · A(s, a)]`, with `A = return − V(s)` (or its GAE(λ) estimate), and as
/// options the importance-sampled reuse of each batch that PPO makes of it.
///
/// One update per rollout of `n_steps` steps in every env:
/// 1. `V(s)` and `V(next_obs)` for the whole rollout, each in one batched pass; advantages and
///    returns by [`generalized_advantages`](crate::rollout::generalized_advantages), which
///    bootstraps on truncation and at the rollout end but never past a termination.
/// 2. The policy: by default one gradient step (Adam) on `−mean(log π(a|s) · A) − ent_coef ·
///    entropy`, the gradient norm clipped to `max_grad_norm`; one step, because the samples
///    come from the policy before the step. With `n_epochs` > 1 or `batch_size` the batch is
///    reused for several steps, each sample weighted by the likelihood ratio
///    `r = π(a|s) / π_old(a|s)` (the surrogate `r · A`, whose gradient at `r = 1` is the score
///    function's), optionally clipped (`clip_range`: PPO's `min(r·A, clamp(r, 1 ± ε)·A)`) and
///    stopped early (`target_kl`). Advantages are normalized within each minibatch.
/// 3. The value network regresses on the returns with its own Adam optimizer for
///    `value_epochs` passes of `value_minibatches` shuffled minibatches, its predictions
///    optionally clipped around the rollout's values (`clip_range_vf`).
///
/// Each update returns `losses/policy_loss` (the surrogate `−mean(r·A)`, clipped, without the
/// entropy term; means over the policy's steps), `losses/value_loss` (mean over the value
/// steps), `losses/entropy`, `losses/approx_kl` (old to new policy on the batch after all
/// steps, `mean((r − 1) − log r)`), `losses/explained_variance` (of the baseline before
/// fitting; NaN when the returns are constant) and `losses/grad_norm` (the policy's, before
/// clipping), with `clip_range` `losses/clip_fraction` (samples with `|r − 1| > ε` before each
/// step), with `target_kl` `losses/epochs` (epochs begun), and with `grad_diagnostics`
/// `grad/variance` and `grad/snr` of the first policy gradient. A non-finite loss or gradient
/// norm is reported as [`AgentError::NonFinite`] naming it, before the optimizer step it
/// belongs to is taken; the rollout is dropped either way.
///
/// Checkpoints hold the networks and both optimizers' state ([`Agent::named_tensors`]:
/// `policy/…`, `value/…`, `policy_adam/…`, `value_adam/…`) and the partial rollout with the
/// update counter ([`Agent::training_state`]: `rollout/…`, `updates`), so a resumed run
/// continues exactly, on either backend.
#[derive(Debug)]
pub struct Reinforce {
    /// Where the update and acting are computed, chosen once (`backend` setting).
    backend: AnyBackend,
    pub(super) core: Core,
}

/// Everything but the backend: what the generic update and acting work on.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) cfg: ReinforceConfig,
    obs_dim: usize,
    /// How the policy's outputs become a distribution.
    head: ActionHead,
    /// The policy (log-std included) and its optimizer.
    pub(super) policy: Net,
    /// The value network (the baseline) and its optimizer.
    pub(super) value: Net,
    pub(super) buffer: RolloutBuffer,
    pub(super) updates: u64,
    /// The action space, for [`Agent::probe`].
    action_space: Space,
    /// Host copies reused from call to call.
    host: Host,
}

/// Host-side working memory.
#[derive(Debug, Default)]
struct Host {
    outputs: Vec<f32>,
    noise: Vec<f32>,
    log_std: Vec<f32>,
    values: Vec<f32>,
    next_values: Vec<f32>,
    grads: Vec<Vec<f32>>,
    mask_bias: Vec<f32>,
    advantages: Vec<f32>,
    log_ratio: Vec<f32>,
    actions: Actions,
}

impl Reinforce {
    /// A new agent for `num_envs` environments with the given spaces. Weights are drawn from
    /// tch's global generator, so calling `tch::manual_seed` first makes construction (and every
    /// later sample) reproducible. Runs on the CPU ([`Reinforce::new_on`] takes a device).
    ///
    /// Errors on settings [`ReinforceConfig::validate`] refuses for these spaces and `num_envs`
    /// (such as more value minibatches than samples per update), an empty observation space,
    /// `num_envs == 0`, or `backend = "kernel"` with something the kernel does not run.
    pub fn new(
        cfg: &ReinforceConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
    ) -> Result<Self, AgentError> {
        Self::new_on(cfg, observation_space, action_space, num_envs, Device::Cpu)
    }

    /// [`Reinforce::new`] with the networks, the update batches and the optimizer state on
    /// `device` (the kernel backend needs the CPU). [`Agent::act`] takes and returns host
    /// values and checkpoints hold CPU tensors, so an agent saved on one device or backend
    /// loads on another.
    pub fn new_on(
        cfg: &ReinforceConfig,
        observation_space: &Space,
        action_space: &Space,
        num_envs: usize,
        device: Device,
    ) -> Result<Self, AgentError> {
        let obs_dim = obs_dim(num_envs, observation_space)?;
        cfg.validate(&SettingsContext::run(num_envs, action_space))?;
        let settings = serde_json::to_value(cfg)
            .map_err(|e| AgentError::Invalid(format!("settings do not serialize: {e}")))?;
        let kind = backend::resolve(cfg.backend, AgentKind::Reinforce, &settings, device)?;
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
        let mut head = None;
        let policy = Net::trained(POLICY, Layout::AsBuilt, cfg.learning_rate, device, |p| {
            let kind = DistributionKind::for_score_function(action_space);
            let built = ActionHead::new(p, action_space, kind, log_std)?;
            let outputs = built.num_params();
            head = Some(built);
            let init = spec.init(POLICY_OUTPUT_GAIN);
            Ok(vec![("", Mlp::new(p, obs_dim, &spec.hidden, outputs, spec.activation, init))])
        })?;
        let head =
            head.ok_or_else(|| AgentError::Invalid("the policy head was not built".into()))?;
        let value = Net::trained(VALUE, Layout::AsBuilt, cfg.value_learning_rate, device, |p| {
            let init = spec.init(VALUE_OUTPUT_GAIN);
            Ok(vec![("", Mlp::new(p, obs_dim, &spec.hidden, 1, spec.activation, init))])
        })?;
        Ok(Self {
            backend: AnyBackend::new(kind, device),
            core: Core {
                cfg: cfg.clone(),
                obs_dim,
                head,
                policy,
                value,
                buffer: RolloutBuffer::new(cfg.n_steps, num_envs, obs_dim),
                updates: 0,
                action_space: action_space.clone(),
                host: Host::default(),
            },
        })
    }

    /// The settings the agent was built with.
    pub fn config(&self) -> &ReinforceConfig {
        &self.core.cfg
    }

    /// `V(s)` for observations `[n, obs_dim]` (libtorch's forward pass, without gradients).
    pub fn value(&self, obs: &Tensor) -> Tensor {
        tch::no_grad(|| self.core.value.mlps[0].forward_tensor(obs).squeeze_dim(-1))
    }
}

impl Core {
    /// The guard on this update's losses and gradient norms.
    fn finite(&self) -> Finite {
        Finite { agent: NAME, update: self.updates }
    }

    /// Actions for observations `obs` into `out`: one forward pass of the policy, then the
    /// head's rule on the host (its mode, or a sample from noise drawn here).
    fn act<B: Backend>(
        &mut self,
        b: &mut B,
        obs: &[f32],
        masks: Option<&[bool]>,
        mode: ActMode,
        out: &mut Actions,
    ) -> Result<(), AgentError> {
        let rows = rows_of(obs, self.obs_dim)?;
        b.begin();
        let x = b.constant(rows, self.obs_dim, obs)?;
        let outputs = b.no_grad(|b| b.mlp(&self.policy, 0, &x));
        b.to_host(&outputs, &mut self.host.outputs)?;
        let noise = match mode {
            ActMode::Deterministic => None,
            ActMode::Explore => {
                let (cols, normal) = self.head.noise_cols();
                let draws = if normal { b.normal(rows, cols)? } else { b.uniform(rows, cols)? };
                b.to_host(&draws, &mut self.host.noise)?;
                Some(self.host.noise.as_slice())
            }
        };
        let log_std = if self.head.has_log_std_parameter() {
            let p = b.param(&self.policy, "log_std");
            b.to_host(&p, &mut self.host.log_std)?;
            Some(self.host.log_std.as_slice())
        } else {
            None
        };
        self.head.act(&self.host.outputs, log_std, noise, masks, out)
    }

    /// The bias of the rollout's masks on the policy's logits (see
    /// [`ActionHead::mask_bias`]), `[batch, num_params]`, or `None` without masks.
    fn rollout_mask_bias<B: Backend>(&mut self, b: &mut B) -> Result<Option<B::M>, AgentError> {
        let Some(masks) = self.buffer.masks() else { return Ok(None) };
        self.head.mask_bias(masks, &mut self.host.mask_bias)?;
        let width = self.head.num_params();
        let rows = self.host.mask_bias.len() / width.max(1);
        b.constant(rows, width, &self.host.mask_bias).map(Some)
    }

    /// The update on a full buffer.
    fn update<B: Backend>(&mut self, b: &mut B) -> Result<Metrics, AgentError> {
        let guard = self.finite();
        b.begin();
        let (steps, envs) = (self.buffer.len(), self.buffer.n_envs());
        let batch = steps * envs;
        let obs = b.constant(batch, self.obs_dim, self.buffer.obs())?;

        // V(s) and V(next_obs) of the whole rollout, with the value network that was current
        // while the rollout was collected. V(s) stays differentiable: a full-batch first value
        // step regresses exactly these predictions, so it reuses the forward pass.
        let predicted = b.mlp(&self.value, 0, &obs);
        b.to_host(&predicted, &mut self.host.values)?;
        let next_obs = b.constant(batch, self.obs_dim, self.buffer.next_obs())?;
        let next_values = b.no_grad(|b| b.mlp(&self.value, 0, &next_obs));
        b.to_host(&next_values, &mut self.host.next_values)?;
        let (gamma, lambda) = (self.cfg.gamma, self.cfg.gae_lambda);
        let estimates =
            self.buffer.advantages(&self.host.values, &self.host.next_values, gamma, lambda);
        let explained_variance = explained_variance(&self.host.values, &estimates.returns);
        let returns = b.constant(batch, 1, &estimates.returns)?;

        // log π_old(a|s): the rollout's policy on its own actions, under the masks the actions
        // were chosen under (MaskablePPO's semantics). It stays differentiable: a full-batch
        // first policy step is taken at θ_old, so it reuses this forward pass.
        let mask_bias = self.rollout_mask_bias(b)?;
        let outputs = b.mlp(&self.policy, 0, &obs);
        let dist = self.head.distribution(b, &self.policy, &outputs, mask_bias.as_ref());
        let log_prob = dist.log_prob(b, self.buffer.actions())?;
        let entropy = dist.entropy(b);
        let old_log_prob = b.detach(&log_prob);
        let first = Some((log_prob, entropy));
        let fit =
            self.fit_policy(b, &obs, &estimates.advantages, &old_log_prob, first, &mask_bias)?;

        // KL(old || new) on the batch, by the low-variance estimator (r − 1) − log r with
        // r = π_new / π_old, which is non-negative for every sample.
        let approx_kl = b.no_grad(|b| -> Result<f64, AgentError> {
            let outputs = b.mlp(&self.policy, 0, &obs);
            let dist = self.head.distribution(b, &self.policy, &outputs, mask_bias.as_ref());
            let new_log_prob = dist.log_prob(b, self.buffer.actions())?;
            let log_ratio = b.sub(&new_log_prob, &old_log_prob);
            let ratio = b.exp(&log_ratio);
            let ratio_minus_one = b.shift(&ratio, -1.0);
            let kl = b.sub(&ratio_minus_one, &log_ratio);
            let mean = b.mean(&kl);
            b.scalar(&mean)
        })?;
        guard.check("losses/approx_kl", approx_kl)?;

        let old_values = match self.cfg.clip_range_vf {
            Some(_) => Some(b.constant(batch, 1, &self.host.values)?),
            None => None,
        };
        let value_loss = self.fit_value(b, &obs, &returns, predicted, old_values.as_ref())?;
        self.updates += 1;
        let per_step = |sum: f64| sum / fit.steps as f64;
        let mut metrics = vec![
            ("losses/policy_loss", per_step(fit.policy_loss)),
            ("losses/value_loss", value_loss),
            ("losses/entropy", per_step(fit.entropy)),
            ("losses/approx_kl", approx_kl),
            ("losses/explained_variance", explained_variance),
            ("losses/grad_norm", per_step(fit.grad_norm)),
        ];
        if self.cfg.clip_range.is_some() {
            metrics.push(("losses/clip_fraction", per_step(fit.clip_fraction)));
        }
        if self.cfg.target_kl.is_some() {
            metrics.push(("losses/epochs", fit.epochs as f64));
        }
        metrics.extend(fit.noise.into_iter().flat_map(GradNoise::metrics));
        Ok(metrics)
    }

    /// The policy's steps on one batch: `n_epochs` passes of shuffled minibatches (one
    /// full-batch step per pass without `batch_size`), each an Adam step on
    /// `−mean(min(r·A, clamp(r, 1 − ε, 1 + ε)·A)) − ent_coef · entropy` with
    /// `r = exp(log π − log π_old)` (`r·A` without `clip_range`), the gradient norm clipped to
    /// `max_grad_norm`, advantages normalized within the minibatch. The first step on the whole
    /// batch is taken at θ_old, where `r = 1` exactly and `∇(r·A) = ∇ log π · A`: with one
    /// epoch, no minibatches and no clipping this is REINFORCE's single step, bit for bit.
    ///
    /// `advantages` are the batch's, unnormalized; `old_log_prob` is `log π_old(a|s)` of every
    /// sample (detached), and `first` the differentiable log-probabilities and entropies of the
    /// same forward pass, for a first step on the whole batch.
    fn fit_policy<B: Backend>(
        &mut self,
        b: &mut B,
        obs: &B::M,
        advantages: &[f32],
        old_log_prob: &B::M,
        first: Option<(B::M, B::M)>,
        mask_bias: &Option<B::M>,
    ) -> Result<PolicyFit, AgentError> {
        let guard = self.finite();
        let batch = advantages.len();
        let size = self.cfg.batch_size.unwrap_or(batch).min(batch);
        let mut reusable = first;
        let mut fit = PolicyFit::default();
        'epochs: for epoch in 0..self.cfg.n_epochs {
            // Full-batch steps need no shuffling; otherwise the permutation comes from tch's
            // global generator, so `manual_seed` fixes the minibatch order too.
            let order = if size == batch { None } else { Some(b.permutation(batch)?) };
            let chunks: Vec<Option<&[usize]>> = match &order {
                None => vec![None],
                Some(order) => order.chunks(size).map(Some).collect(),
            };
            fit.epochs = epoch + 1;
            for rows in chunks {
                let adv = &mut self.host.advantages;
                adv.clear();
                match rows {
                    None => adv.extend_from_slice(advantages),
                    Some(rows) => adv.extend(rows.iter().map(|&i| advantages[i])),
                }
                if self.cfg.normalize_advantages {
                    normalize(adv);
                }
                let adv = b.constant(adv.len(), 1, adv)?;
                let (log_prob, entropy, old) = match (rows, reusable.take()) {
                    (None, Some((log_prob, entropy))) => (log_prob, entropy, b.alias(old_log_prob)),
                    (None, None) => {
                        let outputs = b.mlp(&self.policy, 0, obs);
                        let bias = mask_bias.as_ref();
                        let dist = self.head.distribution(b, &self.policy, &outputs, bias);
                        let log_prob = dist.log_prob(b, self.buffer.actions())?;
                        (log_prob, dist.entropy(b), b.alias(old_log_prob))
                    }
                    (Some(rows), _) => {
                        let x = b.select_rows(obs, rows);
                        let outputs = b.mlp(&self.policy, 0, &x);
                        let bias = mask_bias.as_ref().map(|m| b.select_rows(m, rows));
                        let dist = self.head.distribution(b, &self.policy, &outputs, bias.as_ref());
                        self.buffer.actions().select_rows(rows, &mut self.host.actions);
                        let log_prob = dist.log_prob(b, &self.host.actions)?;
                        (log_prob, dist.entropy(b), b.select_rows(old_log_prob, rows))
                    }
                };
                let log_ratio = b.sub(&log_prob, &old);
                let ratio = b.exp(&log_ratio);
                let surrogate = b.mul(&ratio, &adv);
                let objective = match self.cfg.clip_range {
                    None => surrogate,
                    Some(eps) => {
                        let clipped = b.clamp(&ratio, 1.0 - eps, 1.0 + eps);
                        let clipped = b.mul(&clipped, &adv);
                        b.minimum(&surrogate, &clipped)
                    }
                };
                let score_terms = b.neg(&objective);
                // Per sample: the surrogate's term and the entropy bonus.
                let bonus = b.scale(&entropy, self.cfg.ent_coef);
                let sample_losses = b.sub(&score_terms, &bonus);
                let policy_loss = b.mean(&score_terms);
                let policy_loss_value =
                    guard.check("losses/policy_loss", b.scalar(&policy_loss)?)?;
                let mean_entropy = b.mean(&entropy);
                let entropy_value = guard.check("losses/entropy", b.scalar(&mean_entropy)?)?;
                let loss = b.mean(&sample_losses);
                if self.cfg.clip_range.is_some() || self.cfg.target_kl.is_some() {
                    b.to_host(&log_ratio, &mut self.host.log_ratio)?;
                    let (kl, clipped) = ratio_statistics(&self.host.log_ratio, self.cfg.clip_range);
                    // Stable-Baselines3's early stop, never before the update's first step.
                    let limit = self.cfg.target_kl.map_or(f64::INFINITY, |kl| 1.5 * kl);
                    if fit.steps > 0 && kl > limit {
                        break 'epochs;
                    }
                    fit.clip_fraction += clipped;
                }
                if self.cfg.grad_diagnostics && fit.steps == 0 {
                    fit.noise = Some(self.grad_noise(b, &sample_losses)?);
                }
                let max_norm = self.cfg.max_grad_norm;
                let grad_norm =
                    b.step(&loss, &mut self.policy, max_norm, guard, "losses/grad_norm")?;
                fit.policy_loss += policy_loss_value;
                fit.entropy += entropy_value;
                fit.grad_norm += grad_norm;
                fit.steps += 1;
            }
        }
        Ok(fit)
    }

    /// The policy gradient's noise from one chunk of `sample_losses` (the whole batch, in
    /// rollout order) per env.
    fn grad_noise<B: Backend>(
        &mut self,
        b: &mut B,
        sample_losses: &B::M,
    ) -> Result<GradNoise, AgentError> {
        let (steps, envs) = (self.buffer.len(), self.buffer.n_envs());
        // One chunk per env: rows are step-major, so env e's samples are rows e, e + envs, …
        self.host.grads.resize_with(envs, Vec::new);
        for (e, grad) in self.host.grads.iter_mut().enumerate() {
            let rows: Vec<usize> = (0..steps).map(|t| t * envs + e).collect();
            let chunk = b.select_rows(sample_losses, &rows);
            let chunk_loss = b.mean(&chunk);
            b.gradient(&chunk_loss, &self.policy, grad)?;
        }
        let noise = GradNoise::from_chunks(&self.host.grads, &vec![steps; envs])?;
        self.finite().check("grad/variance", noise.variance)?;
        Ok(noise)
    }

    /// Regresses `V(s)` on `returns`; returns the mean squared error over all minibatch steps.
    /// `predicted` is `V(obs)` from the current network, still differentiable; `old_values`
    /// (with `clip_range_vf`) the values the rollout was collected with, around which the
    /// predictions are clipped.
    fn fit_value<B: Backend>(
        &mut self,
        b: &mut B,
        obs: &B::M,
        returns: &B::M,
        predicted: B::M,
        old_values: Option<&B::M>,
    ) -> Result<f64, AgentError> {
        let guard = self.finite();
        let mut reusable = Some(predicted);
        let (batch, _) = b.shape(returns);
        let minibatches = self.cfg.value_minibatches;
        let minibatch_size = batch.div_ceil(minibatches);
        let mut loss_sum = 0.0;
        let mut steps = 0usize;
        for _ in 0..self.cfg.value_epochs {
            // Full-batch steps need no shuffling; otherwise the permutation comes from tch's
            // global generator, so `manual_seed` fixes the minibatch order too.
            let order = if minibatches == 1 { None } else { Some(b.permutation(batch)?) };
            let chunks: Vec<Option<&[usize]>> = match &order {
                None => vec![None],
                Some(order) => order.chunks(minibatch_size).map(Some).collect(),
            };
            for index in chunks {
                let (prediction, target) = match (index, reusable.take()) {
                    (None, Some(predicted)) => (predicted, b.alias(returns)),
                    (None, None) => (b.mlp(&self.value, 0, obs), b.alias(returns)),
                    (Some(rows), _) => {
                        let x = b.select_rows(obs, rows);
                        (b.mlp(&self.value, 0, &x), b.select_rows(returns, rows))
                    }
                };
                let prediction = match (self.cfg.clip_range_vf, old_values) {
                    (Some(c), Some(old)) => {
                        let old = match index {
                            None => b.alias(old),
                            Some(rows) => b.select_rows(old, rows),
                        };
                        let change = b.sub(&prediction, &old);
                        let change = b.clamp(&change, -c, c);
                        b.add(&old, &change)
                    }
                    _ => prediction,
                };
                let error = b.sub(&prediction, &target);
                let squared = b.square(&error);
                let loss = b.mean(&squared);
                let loss_value = guard.check("losses/value_loss", b.scalar(&loss)?)?;
                let max_norm = self.cfg.max_grad_norm;
                b.step(&loss, &mut self.value, max_norm, guard, "value_grad_norm")?;
                loss_sum += loss_value;
                steps += 1;
            }
        }
        Ok(loss_sum / steps as f64)
    }
}

/// What the policy's steps on one batch did: sums over the steps taken (the metrics are their
/// means), the epochs begun, and the gradient noise of the first step.
#[derive(Debug, Default)]
struct PolicyFit {
    steps: usize,
    epochs: usize,
    policy_loss: f64,
    entropy: f64,
    grad_norm: f64,
    clip_fraction: f64,
    noise: Option<GradNoise>,
}

/// CleanRL's and Stable-Baselines3's statistics of a minibatch's log-ratios `log r`: the
/// approximate KL divergence `mean((r − 1) − log r)` and the fraction of samples with
/// `|r − 1| > ε` (0 without a clip range).
pub(super) fn ratio_statistics(log_ratio: &[f32], clip_range: Option<f64>) -> (f64, f64) {
    let n = log_ratio.len().max(1) as f64;
    let (mut kl, mut clipped) = (0.0, 0usize);
    for &l in log_ratio {
        let l = f64::from(l);
        let r = l.exp();
        kl += (r - 1.0) - l;
        if clip_range.is_some_and(|eps| (r - 1.0).abs() > eps) {
            clipped += 1;
        }
    }
    (kl / n, clipped as f64 / n)
}

/// Rows of observations `obs` of `width` floats each; errors unless they fill whole rows.
pub(crate) fn rows_of(obs: &[f32], width: usize) -> Result<usize, AgentError> {
    if obs.is_empty() || width == 0 || obs.len() % width != 0 {
        return Err(AgentError::Invalid(format!(
            "{} observation values do not fill rows of {width}",
            obs.len()
        )));
    }
    Ok(obs.len() / width)
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

    fn observe(&mut self, transition: &Transition<'_>) -> Result<Option<Metrics>, AgentError> {
        self.core.buffer.push(transition)?;
        if !self.core.buffer.is_full() {
            return Ok(None);
        }
        let core = &mut self.core;
        let metrics = with_backend!(&mut self.backend, b => core.update(b));
        // Whatever the outcome, the rollout was collected by the previous policy: start anew.
        self.core.buffer.clear();
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
/// Measured through libtorch (autograd), whatever backend trains the agent.
impl PolicyProbe for Reinforce {
    fn policy_parameters(&self) -> &FlatParams {
        &self.core.policy.params
    }

    fn draw_noise(&self, rows: usize) -> Tensor {
        self.probe_ops().draw(rows)
    }

    fn act_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        tch::no_grad(|| self.probe_ops().act(obs, noise))
    }

    fn log_prob_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        self.probe_ops().log_prob(obs, noise)
    }

    fn reparameterized_action(&self, obs: &Tensor, noise: &Tensor) -> Option<Tensor> {
        self.probe_ops().reparameterized(obs, noise)
    }

    fn value(&self, obs: &Tensor) -> Option<Tensor> {
        Some(Reinforce::value(self, obs))
    }

    fn critic(&self, _obs: &Tensor, _actions: &Tensor) -> Option<Tensor> {
        None
    }

    fn gamma(&self) -> f64 {
        self.core.cfg.gamma
    }

    fn batch_samples(&self) -> usize {
        self.core.cfg.n_steps * self.core.buffer.n_envs()
    }
}

impl Reinforce {
    fn probe_ops(&self) -> ProbeOps<'_> {
        ProbeOps {
            space: &self.core.action_space,
            head: &self.core.head,
            policy: &self.core.policy,
        }
    }
}
