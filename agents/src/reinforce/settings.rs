//! The REINFORCE agent's settings ([`ReinforceConfig`]) and every rule about them
//! ([`ReinforceConfig::validate`]).

use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;

use crate::settings::{
    ActionKind, ActionSpecific, Activation, InvalidSetting, SettingsContext, check_action_specific,
    check_at_least_one, check_discount, check_finite, check_hidden_sizes, check_non_negative,
    check_positive, check_unit_interval,
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
    /// Normalize advantages to zero mean and unit variance within each policy minibatch (the
    /// whole batch unless `batch_size` splits it; Stable-Baselines3's and CleanRL's rule).
    pub normalize_advantages: bool,
    /// Weight of the entropy bonus in the policy loss (0 disables it).
    pub ent_coef: f64,
    /// Largest global L2 norm of each network's gradient; larger gradients are scaled down
    /// (0 disables clipping).
    pub max_grad_norm: f64,
    /// Passes over the batch the policy makes per update (Stable-Baselines3's `n_epochs`).
    /// Each policy step after the first reuses samples drawn from an older policy, weighted by
    /// the likelihood ratio `r = π(a|s) / π_old(a|s)` (PPO's surrogate `r·A`; its gradient at
    /// `r = 1` is REINFORCE's `∇ log π · A`). 1 with one minibatch and no `clip_range` is plain
    /// REINFORCE: one step per batch.
    pub n_epochs: usize,
    /// Samples per policy minibatch (Stable-Baselines3's `batch_size`): each epoch steps on
    /// shuffled minibatches of this many samples (the last one may be smaller). Unset: one
    /// step on the whole batch per epoch.
    pub batch_size: Option<usize>,
    /// PPO's clip range ε on the policy ratio: the surrogate becomes
    /// `min(r·A, clamp(r, 1 − ε, 1 + ε)·A)`. Unset: no clipping.
    pub clip_range: Option<f64>,
    /// Clip range of the value predictions around the values the rollout was collected with
    /// (Stable-Baselines3's `clip_range_vf`: `V_old + clamp(V − V_old, −c, c)` is regressed on
    /// the returns). Unset: no value clipping.
    pub clip_range_vf: Option<f64>,
    /// Stops the policy's epochs early once a minibatch's approximate KL divergence from the
    /// rollout's policy exceeds `1.5 · target_kl` (Stable-Baselines3's rule, checked before
    /// that minibatch's step). Unset: every epoch runs.
    pub target_kl: Option<f64>,
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
    /// Where updates and acting are computed: "kernel" (plain Rust on the CPU, no libtorch
    /// operation per step), "libtorch" (tensors and autograd, any device) or "auto" (the kernel
    /// on the CPU wherever it covers the settings, libtorch otherwise). Both compute the same
    /// update from the same random draws, up to float rounding; the run records which ran.
    pub backend: BackendChoice,
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
            n_epochs: 1,
            batch_size: None,
            clip_range: None,
            clip_range_vf: None,
            target_kl: None,
            value_epochs: 4,
            value_minibatches: 1,
            hidden: vec![64, 64],
            activation: Activation::Relu,
            orthogonal_init: true,
            log_std_init: 0.0,
            state_dependent_std: false,
            grad_diagnostics: false,
            backend: BackendChoice::Auto,
        }
    }
}

impl ReinforceConfig {
    /// Checks every rule about these settings: each one's range, then (with `ctx.num_envs`) the
    /// rules that depend on the number of envs, then (with `ctx.action_space`) the
    /// continuous-only options against the action space. The error names the first bad key
    /// (section-relative) and its allowed values. [`Reinforce::new`](super::Reinforce::new) and
    /// the config loader both call this.
    pub fn validate(&self, ctx: &SettingsContext<'_>) -> Result<(), InvalidSetting> {
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("value_learning_rate", self.value_learning_rate)?;
        check_discount("gamma", self.gamma)?;
        check_unit_interval("gae_lambda", self.gae_lambda)?;
        check_at_least_one("n_steps", self.n_steps)?;
        check_non_negative("ent_coef", self.ent_coef)?;
        check_non_negative("max_grad_norm", self.max_grad_norm)?;
        check_at_least_one("n_epochs", self.n_epochs)?;
        if let Some(size) = self.batch_size {
            check_at_least_one("batch_size", size)?;
        }
        if let Some(range) = self.clip_range {
            check_positive("clip_range", range)?;
        }
        if let Some(range) = self.clip_range_vf {
            check_positive("clip_range_vf", range)?;
        }
        if let Some(kl) = self.target_kl {
            check_positive("target_kl", kl)?;
        }
        if self.grad_diagnostics && self.batch_size.is_some() {
            return Err(InvalidSetting::new(
                "grad_diagnostics",
                "measures the first policy step on the whole batch: it needs batch_size unset",
            ));
        }
        check_at_least_one("value_epochs", self.value_epochs)?;
        check_at_least_one("value_minibatches", self.value_minibatches)?;
        check_hidden_sizes("hidden", &self.hidden)?;
        check_finite("log_std_init", self.log_std_init)?;
        if let Some(num_envs) = ctx.num_envs {
            if self.grad_diagnostics && num_envs < 2 {
                return Err(InvalidSetting::new(
                    "grad_diagnostics",
                    format!(
                        "needs num_envs >= 2 (one gradient sample per environment), got \
                         num_envs = {num_envs}"
                    ),
                ));
            }
            let batch = self.n_steps.saturating_mul(num_envs);
            if let Some(size) = self.batch_size.filter(|&size| size > batch) {
                return Err(InvalidSetting::new(
                    "batch_size",
                    format!(
                        "must be <= the samples per update n_steps * num_envs = {} * {num_envs} \
                         = {batch}, got {size}",
                        self.n_steps
                    ),
                ));
            }
            if self.value_minibatches > batch {
                return Err(InvalidSetting::new(
                    "value_minibatches",
                    format!(
                        "must be <= the batch size n_steps * num_envs = {} * {num_envs} = {batch}, \
                         got {}",
                        self.n_steps, self.value_minibatches
                    ),
                ));
            }
        }
        check_action_specific(&self.action_specific(), ctx)
    }

    /// The options that apply to one kind of action space only. Adding such an option means
    /// adding one line here.
    fn action_specific(&self) -> [ActionSpecific; 2] {
        use ActionKind::Continuous;
        let d = Self::default();
        [
            ActionSpecific::new(
                "state_dependent_std",
                Continuous,
                &self.state_dependent_std,
                &d.state_dependent_std,
            ),
            ActionSpecific::new("log_std_init", Continuous, &self.log_std_init, &d.log_std_init),
        ]
    }
}
