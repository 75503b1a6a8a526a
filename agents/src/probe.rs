//! [`PolicyProbe`]: what measuring an agent's policy gradient from the outside needs.
//!
//! A probe exposes the acting policy as a function of its flat parameter vector and of
//! replayable noise, plus the learned functions an estimator may lean on (the value baseline,
//! the critic). Every random draw goes through [`PolicyProbe::draw_noise`], so a caller that
//! keeps the noise can replay the same episode at other parameters (common random numbers).
//! Observations are the agent's inputs (normalised where the run normalises them); actions
//! come in two forms: the environment's (what [`PolicyProbe::act_from_noise`] returns) and the
//! critic's (what [`PolicyProbe::reparameterized_action`] returns and
//! [`PolicyProbe::critic`] takes).

use rlpg_envs::Space;
use tch::{Device, Kind, Tensor};

use crate::distributions::Distribution;
use crate::optim::FlatParams;

/// The policy of an agent as a measurable object. See the [module docs](self).
pub trait PolicyProbe {
    /// The policy's trainable parameters in one flat buffer. Changing its values in place (under
    /// `tch::no_grad`) changes the policy; gradients are taken with [`FlatParams::grad`].
    fn policy_parameters(&self) -> &FlatParams;

    /// `rows` rows of noise from tch's generator, one row per action: standard normals
    /// (`[rows, action_dim]`) for a Gaussian policy, uniforms (`[rows, 1]`) for a categorical
    /// one.
    fn draw_noise(&self, rows: usize) -> Tensor;

    /// The environment's actions for observations `[rows, obs_dim]` and noise from
    /// [`PolicyProbe::draw_noise`], without gradients: `Float [rows, d]` or `Int64 [rows]`.
    fn act_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor;

    /// `log π(a | s)`, `[rows]`, of the actions [`PolicyProbe::act_from_noise`] gives, the
    /// actions held fixed: differentiable in the policy parameters.
    fn log_prob_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor;

    /// The critic's form of the action the noise gives, as a differentiable function of the
    /// policy parameters (the reparameterization), or `None` for a policy without one.
    fn reparameterized_action(&self, obs: &Tensor, noise: &Tensor) -> Option<Tensor>;

    /// The learned state value `V(s)`, `[rows]`, without gradients; `None` without one.
    fn value(&self, obs: &Tensor) -> Option<Tensor>;

    /// The learned action value `Q(s, a)`, `[rows]`, for actions in the critic's form,
    /// differentiable in the actions (what the pathwise actor follows); `None` without one.
    fn critic(&self, obs: &Tensor, actions: &Tensor) -> Option<Tensor>;

    /// The discount the agent was trained with.
    fn gamma(&self) -> f64;

    /// Samples in one policy gradient the agent takes: environment steps per update for an
    /// on-policy agent, the minibatch's states for an off-policy one.
    fn batch_samples(&self) -> usize;
}

/// Draws standard normal noise `[rows, dim]` from tch's generator.
pub(crate) fn gaussian_noise(rows: usize, dim: usize) -> Tensor {
    Tensor::randn([rows as i64, dim as i64], (Kind::Float, Device::Cpu))
}

/// What a probe does with a policy distribution over `space`, shared by the agents.
pub(crate) struct ProbeOps<'a> {
    /// The agent's action space (its distribution's support).
    pub(crate) space: &'a Space,
}

impl ProbeOps<'_> {
    /// Noise for `rows` actions: one uniform per row for a discrete space, standard normals for
    /// a box.
    pub(crate) fn draw(&self, rows: usize) -> Tensor {
        match self.space {
            Space::Discrete(_) => Tensor::rand([rows as i64, 1], (Kind::Float, Device::Cpu)),
            _ => gaussian_noise(rows, self.space.flat_dim()),
        }
    }

    /// The sampled action of `dist` for `noise`: inverse-CDF sampling of the categorical from
    /// one uniform, the Gaussian families from their noise.
    pub(crate) fn act(&self, dist: &dyn Distribution, noise: &Tensor) -> Tensor {
        match self.space {
            Space::Discrete(n) => {
                // Not under `no_grad`: a categorical caches its log-probabilities on first use,
                // and a cache filled without gradients would cut `log_prob` from the parameters.
                let rows = noise.size()[0];
                let log_probs: Vec<Tensor> = (0..*n as i64)
                    .map(|a| dist.log_prob(&Tensor::full([rows], a, (Kind::Int64, Device::Cpu))))
                    .collect();
                let cdf = Tensor::stack(&log_probs, 1).detach().exp().cumsum(1, Kind::Float);
                // The action is the number of cumulative probabilities below the uniform,
                // capped at the last action (rounding can leave the total just under 1).
                let below = cdf.lt_tensor(noise).to_kind(Kind::Int64).sum_dim_intlist(
                    1,
                    false,
                    Kind::Int64,
                );
                below.clamp_max(*n as i64 - 1)
            }
            _ => tch::no_grad(|| dist.sample_from_noise(noise).unwrap_or_else(|| dist.sample())),
        }
    }

    /// `log π(a)` of [`ProbeOps::act`]'s action, differentiable in the parameters.
    pub(crate) fn log_prob(&self, dist: &dyn Distribution, noise: &Tensor) -> Tensor {
        match self.space {
            Space::Discrete(_) => dist.log_prob(&self.act(dist, noise)),
            _ => dist
                .log_prob_from_noise(noise)
                .unwrap_or_else(|| dist.log_prob(&self.act(dist, noise))),
        }
    }
}
