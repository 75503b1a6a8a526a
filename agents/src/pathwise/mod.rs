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
//!   sample's gradient follows the values of the actions. `MultiDiscrete(nvec)` and
//!   `MultiBinary(n)` actions are a Gumbel-softmax per component (a bit a two-way one, see
//!   [`crate::distributions::GumbelSoftmax`]), the critics an MLP of the state and the
//!   components' (relaxed) one-hots concatenated.
//!
//! **Action masks** (sb3-contrib's `MaskablePPO` semantics): `act_masked` samples (its warm-up
//! actions too) and acts greedily within each state's mask; the replay buffer stores with every
//! transition the masks of both of its states, and the update draws the actor's sample at `s`
//! within `s`' mask and the TD target's next action at `s'` within `s'`' mask (masked logits
//! get [`crate::distributions::MASKED_LOGIT`]: probability exactly 0). The default target
//! entropy follows the masks: half the entropy of the uniform policy over each state's allowed
//! choices.
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
//!
//! The code, one file per concern: `settings` ([`PathwiseConfig`] and every rule about it),
//! `agent` (the algorithm, top to bottom, written once over the compute backends of
//! [`crate::backend`], and in one place what SAC and TD3 do differently), `actor` and `critic`
//! (the networks, the action coding and the actor's heads), `exploration` (pink noise), `state`
//! (checkpoint tensors and training state), `beside` (the [`crate::Actor`] that acts on a copy
//! of the policy while the agent learns) and `tests`.

mod actor;
mod agent;
mod beside;
mod critic;
mod exploration;
mod settings;
mod state;
#[cfg(test)]
mod tests;

pub use agent::Pathwise;
pub use settings::{DiscreteCritic, Estimator, Exploration, PathwiseConfig};
