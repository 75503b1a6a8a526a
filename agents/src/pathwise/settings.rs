//! The pathwise agent's settings ([`PathwiseConfig`]) and every rule about them
//! ([`PathwiseConfig::validate`]).

use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;

use crate::settings::{
    ActionKind, ActionSpecific, Activation, InvalidSetting, SettingsContext, WeightInit,
    check_action_specific, check_at_least_one, check_discount, check_finite, check_hidden_sizes,
    check_non_negative, check_positive,
};
use rlpg_envs::Space;

/// Largest `logit_bound`: logits `±8` apart by 16 give probabilities `1 − e^(−16) ≈ 1 − 1.1e−7`,
/// the last below 1 in f32.
pub(super) const MAX_LOGIT_BOUND: f64 = 8.0;

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

/// Where the noise of exploring actions on `Box` spaces comes from: SAC's `ε` in
/// `tanh(μ + σ·ε)`, TD3's `ε` in `μ + exploration_noise·ε`. Only acting changes; the updates
/// (and the deterministic evaluation) are the same for every choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exploration {
    /// A fresh i.i.d. standard normal `ε` at every step (SAC's and TD3's usual noise).
    Gaussian,
    /// Pink (1/f) noise (Eberhard et al., ICLR 2023): per env and action dimension a standard
    /// normal sequence correlated over time (lag-1 autocorrelation about 0.8, still about 0.27
    /// after 100 steps), restarted at each new episode. Long pushes in one direction find goals
    /// that white noise averages away, as on MountainCarContinuous.
    Pink,
}

impl std::fmt::Display for Exploration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gaussian => "\"gaussian\"",
            Self::Pink => "\"pink\"",
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
    /// How the actor's and critics' layers start: "pytorch" (PyTorch's `nn.Linear` default,
    /// as Stable-Baselines3) or "kaiming_uniform" (√6 times wider; see [`WeightInit`]).
    pub layer_init: WeightInit,
    /// Initial entropy temperature α (SAC), and its value throughout when autotune_alpha is off.
    pub alpha: f64,
    /// Learn α toward target_entropy (SAC); otherwise α stays fixed at `alpha`.
    pub autotune_alpha: bool,
    /// Entropy the temperature steers the policy toward (SAC with autotune_alpha). Unset: −dim
    /// for Box actions (SAC's heuristic) and half the uniform policy's entropy for discrete
    /// ones: 0.5·ln n for Discrete(n), 0.5·Σᵢ ln nvecᵢ for MultiDiscrete(nvec), 0.5·n·ln 2 for
    /// MultiBinary(n); within action masks, of the uniform policy over each state's allowed
    /// choices (averaged over the minibatch).
    pub target_entropy: Option<f64>,
    /// Std of the Gaussian exploration noise added to the deterministic actor's actions (TD3),
    /// in units of half the action range.
    pub exploration_noise: f64,
    /// Std of the noise on the target action (TD3 target policy smoothing), in units of half
    /// the action range.
    pub policy_noise: f64,
    /// The target action noise is clipped to ±noise_clip (TD3).
    pub noise_clip: f64,
    /// The noise of exploring actions (Box actions only): "gaussian" (i.i.d. at every step;
    /// the default) or "pink" (temporally correlated 1/f noise per env and action dimension,
    /// restarted each episode; see [`Exploration::Pink`]).
    pub exploration: Exploration,
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
    /// (SAC-discrete), instead of one sampled action. Discrete(n) only: a MultiDiscrete or
    /// MultiBinary space has a number of joint actions exponential in its components. Off by default: on the CartPole preset it
    /// measured no better (per-action critic, seeds 10-15: 5 of 6 reach mean-100 >= 475 within
    /// 100k steps either way), although it removes the target's sampling noise.
    pub expected_discrete_value: bool,
    /// How the critics take a discrete action (SAC on Discrete spaces): "per_action" (an MLP
    /// of the state with one output per action, weighted by the one-hot or relaxed action; the
    /// default) or "concatenated" (an MLP of the state and the one-hot, as for Box actions).
    /// On MultiDiscrete and MultiBinary spaces the critics always take the state and the
    /// components' one-hots concatenated, whatever this says: weighting per-action outputs
    /// would make the critic a sum over the components, which cannot price a joint action (a
    /// fee paid once for any order, a shared capacity).
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
    /// pass per slice then, and needs autograd: the updates run the tensor code, not the
    /// plain-Rust one SAC takes on the CPU otherwise, which computes the same update up to float
    /// rounding (so a seeded run with diagnostics can drift from the same run without them).
    /// The diagnostics themselves never change an update.
    pub grad_diagnostics: bool,
    /// Where updates and acting are computed: "kernel" (plain Rust on the CPU, no libtorch
    /// operation per step), "libtorch" (tensors and autograd, any device) or "auto" (the kernel
    /// on the CPU wherever it covers the settings, libtorch otherwise). Both compute the same
    /// update from the same random draws, up to float rounding; the run records which ran.
    pub backend: BackendChoice,
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
            layer_init: WeightInit::Pytorch,
            alpha: 1.0,
            autotune_alpha: true,
            target_entropy: None,
            exploration_noise: 0.1,
            policy_noise: 0.2,
            noise_clip: 0.5,
            exploration: Exploration::Gaussian,
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
            backend: BackendChoice::Auto,
        }
    }
}

impl PathwiseConfig {
    /// Checks every rule about these settings: each one's range, then (with `ctx.num_envs`) the
    /// replay buffer against the number of envs, then (with `ctx.action_space`) the estimator
    /// and the discrete-only options against the action space. The error names the first bad
    /// key (section-relative) and its allowed values. [`Pathwise::new`](super::Pathwise::new)
    /// and the config loader both call this.
    pub fn validate(&self, ctx: &SettingsContext<'_>) -> Result<(), InvalidSetting> {
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
        // Each env step stores num_envs transitions at once.
        if let Some(num_envs) = ctx.num_envs {
            if self.buffer_size < num_envs {
                return Err(InvalidSetting::new(
                    "buffer_size",
                    format!("must be >= num_envs = {num_envs}, got {}", self.buffer_size),
                ));
            }
        }
        if self.learning_starts > self.buffer_size {
            return Err(InvalidSetting::new(
                "learning_starts",
                format!(
                    "must be <= buffer_size = {}, or learning would never start, got {}",
                    self.buffer_size, self.learning_starts
                ),
            ));
        }
        if let Some(action_space) = ctx.action_space {
            if self.expected_discrete_value
                && matches!(action_space, Space::MultiDiscrete(_) | Space::MultiBinary(_))
            {
                return Err(InvalidSetting::new(
                    "expected_discrete_value",
                    format!(
                        "the exact expectation over next actions evaluates the critics on every \
                         joint action, but {} has actions {action_space}, whose joint actions \
                         grow exponentially with its components; remove it (a sampled next \
                         action is the default)",
                        ctx.env
                    ),
                ));
            }
            if self.estimator == Estimator::Td3 && !matches!(action_space, Space::Box(_)) {
                return Err(InvalidSetting::new(
                    "estimator",
                    format!(
                        "td3's deterministic actor needs continuous (Box) actions, but {} has \
                         actions {action_space}; use estimator = \"sac\", which relaxes discrete \
                         actions with Gumbel-softmax",
                        ctx.env
                    ),
                ));
            }
        }
        check_action_specific(&self.action_specific(), ctx)
    }

    /// The options that apply to one kind of action space only. Adding such an option means
    /// adding one line here.
    fn action_specific(&self) -> [ActionSpecific; 6] {
        use ActionKind::{Continuous, Discrete};
        let d = Self::default();
        [
            ActionSpecific::new(
                "gumbel_temperature",
                Discrete,
                &self.gumbel_temperature,
                &d.gumbel_temperature,
            ),
            ActionSpecific::new(
                "straight_through",
                Discrete,
                &self.straight_through,
                &d.straight_through,
            ),
            ActionSpecific::new(
                "expected_discrete_value",
                Discrete,
                &self.expected_discrete_value,
                &d.expected_discrete_value,
            ),
            ActionSpecific::new("logit_bound", Discrete, &self.logit_bound, &d.logit_bound),
            ActionSpecific::new(
                "discrete_critic",
                Discrete,
                &self.discrete_critic,
                &d.discrete_critic,
            ),
            ActionSpecific::new("exploration", Continuous, &self.exploration, &d.exploration),
        ]
    }
}
