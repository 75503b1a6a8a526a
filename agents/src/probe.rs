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

use crate::agent::{Actions, AgentError};
use crate::backend::{Backend, Ops, Torch};
use crate::distributions::{ActionHead, PolicyDistribution};
use crate::optim::FlatParams;
use crate::scaffold::Net;

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

/// What a probe does with a score-function policy over `space`: its distributions through the
/// libtorch backend (autograd), whatever backend trains the agent.
pub(crate) struct ProbeOps<'a> {
    /// The agent's action space (its distribution's support).
    pub(crate) space: &'a Space,
    /// The policy's head.
    pub(crate) head: &'a ActionHead,
    /// The policy network.
    pub(crate) policy: &'a Net,
}

impl ProbeOps<'_> {
    /// Noise for `rows` actions: one uniform per row for a discrete space, standard normals for
    /// a box.
    pub(crate) fn draw(&self, rows: usize) -> Tensor {
        match self.space {
            Space::Discrete(_) => Tensor::rand([rows as i64, 1], (Kind::Float, Device::Cpu)),
            // One uniform per component or value.
            Space::MultiDiscrete(_) | Space::MultiBinary(_) => {
                let parts = self.space.mask_components().len() as i64;
                Tensor::rand([rows as i64, parts], (Kind::Float, Device::Cpu))
            }
            _ => gaussian_noise(rows, self.space.flat_dim()),
        }
    }

    /// The policy's distributions at `obs`, differentiable in its parameters.
    fn distribution(&self, b: &mut Torch, obs: &Tensor) -> PolicyDistribution<Torch> {
        let outputs = b.mlp(self.policy, 0, obs);
        self.head.distribution(b, self.policy, &outputs, None)
    }

    /// The sampled multi-part action for uniform `noise` (`[rows, parts]`) by the head's own
    /// acting rule, as [`Actions`].
    fn act_multi(&self, obs: &Tensor, noise: &Tensor) -> Result<Actions, AgentError> {
        let mut b = Torch::new(obs.device());
        let outputs = tch::no_grad(|| b.mlp(self.policy, 0, obs));
        let (mut host, mut u) = (Vec::new(), Vec::new());
        b.to_host(&outputs, &mut host)?;
        b.to_host(noise, &mut u)?;
        let mut actions = Actions::default();
        self.head.act(&host, None, Some(&u), None, &mut actions)?;
        Ok(actions)
    }

    /// The sampled action for `noise`: inverse-CDF sampling of the categorical from one
    /// uniform per row (`Int64 [rows]`), the Gaussian from its noise (`Float [rows, d]`).
    pub(crate) fn act(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        let mut b = Torch::new(obs.device());
        match self.distribution(&mut b, obs) {
            PolicyDistribution::Categorical(d) => {
                let n = d.log_probs.size()[1];
                let cdf = d.log_probs.detach().exp().cumsum(1, Kind::Float);
                // The action is the number of cumulative probabilities below the uniform,
                // capped at the last action (rounding can leave the total just under 1).
                let below = cdf.lt_tensor(noise).to_kind(Kind::Int64).sum_dim_intlist(
                    1,
                    false,
                    Kind::Int64,
                );
                below.clamp_max(n - 1)
            }
            PolicyDistribution::Gaussian(d) => d.rsample_from_noise(&mut b, noise).detach(),
            PolicyDistribution::MultiCategorical(_) | PolicyDistribution::Bernoulli(_) => {
                match self.act_multi(obs, noise) {
                    Ok(actions) => actions.to_tensor(),
                    // The head's rule fails only on masks, which a probe does not pass.
                    Err(e) => panic!("a probe's multi-part action: {e}"),
                }
            }
        }
    }

    /// `log π(a)`, `[rows]`, of [`ProbeOps::act`]'s action, differentiable in the parameters.
    pub(crate) fn log_prob(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        let mut b = Torch::new(obs.device());
        let log_prob = match self.distribution(&mut b, obs) {
            PolicyDistribution::Categorical(d) => {
                let actions = self.act(obs, noise);
                d.log_probs.gather(1, &actions.view([-1, 1]), false)
            }
            PolicyDistribution::Gaussian(d) => {
                let actions = d.rsample_from_noise(&mut b, noise).detach();
                d.log_prob(&mut b, &actions)
            }
            dist @ (PolicyDistribution::MultiCategorical(_) | PolicyDistribution::Bernoulli(_)) => {
                match self.act_multi(obs, noise).and_then(|a| dist.log_prob(&mut b, &a)) {
                    Ok(log_prob) => log_prob,
                    Err(e) => panic!("a probe's multi-part log-probability: {e}"),
                }
            }
        };
        log_prob.view([-1])
    }

    /// The reparameterized action for `noise` (a Gaussian's `mean + std · noise`,
    /// differentiable), or `None` for a categorical policy.
    pub(crate) fn reparameterized(&self, obs: &Tensor, noise: &Tensor) -> Option<Tensor> {
        let mut b = Torch::new(obs.device());
        match self.distribution(&mut b, obs) {
            PolicyDistribution::Gaussian(d) => Some(d.rsample_from_noise(&mut b, noise)),
            _ => None,
        }
    }
}
