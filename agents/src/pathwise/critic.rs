//! The twin action-value critics `Q1(s, a)`, `Q2(s, a)` (Fujimoto et al. 2018): two independent
//! MLPs whose minimum is used for targets, to counter the overestimation a single maximized
//! critic accumulates.
//!
//! A critic takes the action in one of two ways ([`ActionInput`]):
//! - **concatenated**: an MLP of the row `(s, a)` with one output (what `Box` actions use);
//! - **per action** (`Discrete(n)` by default): an MLP of `s` alone with `n` outputs `q(s)`, and
//!   `Q(s, y) = Σ_a y_a q_a(s)` for a (relaxed or hard) one-hot `y`. On one-hots both are a
//!   critic of `(s, a)`; they differ in the slope the pathwise actor follows. Here
//!   `∂Q/∂y = q(s)`, the values of every action, so a relaxed sample's gradient ranks actions by
//!   their values in each state. A concatenated MLP's slope at a one-hot is whatever its
//!   first layer extrapolates, which it was never trained to get right.

use tch::{Tensor, nn, nn::Module};

use crate::networks::{LayerInit, Mlp};
use crate::settings::Activation;

/// How a critic takes its action input; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActionInput {
    /// One MLP over the concatenated `(s, a)` row, one output.
    Concatenated,
    /// One MLP over `s` with `n` outputs, weighted by the `n` action inputs.
    PerAction,
}

/// Two Q-networks with parameters `q1/…` and `q2/…` under the path they were built with.
#[derive(Debug)]
pub(crate) struct TwinCritic {
    q1: Mlp,
    q2: Mlp,
    input: ActionInput,
    obs_dim: i64,
    act_dim: i64,
}

impl TwinCritic {
    /// Twin critics of `obs_dim` observations and `act_dim` action inputs through `hidden`
    /// layers.
    pub(crate) fn new(
        path: &nn::Path<'_>,
        obs_dim: usize,
        act_dim: usize,
        input: ActionInput,
        hidden: &[usize],
        activation: Activation,
        init: LayerInit,
    ) -> Self {
        let (in_dim, out_dim) = match input {
            ActionInput::Concatenated => (obs_dim + act_dim, 1),
            ActionInput::PerAction => (obs_dim, act_dim),
        };
        let mlp = |name: &str| Mlp::new(&(path / name), in_dim, hidden, out_dim, activation, init);
        Self {
            q1: mlp("q1"),
            q2: mlp("q2"),
            input,
            obs_dim: obs_dim as i64,
            act_dim: act_dim as i64,
        }
    }

    /// `(Q1, Q2)` of `[batch, obs_dim + act_dim]` state-action rows, each `[batch]`.
    pub(crate) fn forward(&self, obs_actions: &Tensor) -> (Tensor, Tensor) {
        (self.value(&self.q1, obs_actions), self.value(&self.q2, obs_actions))
    }

    /// `Q1` alone, `[batch]` (what TD3's actor maximizes).
    pub(crate) fn q1(&self, obs_actions: &Tensor) -> Tensor {
        self.value(&self.q1, obs_actions)
    }

    /// `(Q1, Q2)` of every one-hot action at `[batch, obs_dim]` observations, each
    /// `[batch, act_dim]`: one forward pass for a per-action critic, `None` for a concatenated
    /// one.
    pub(crate) fn every_action(&self, obs: &Tensor) -> Option<(Tensor, Tensor)> {
        (self.input == ActionInput::PerAction).then(|| (self.q1.forward(obs), self.q2.forward(obs)))
    }

    /// One network's value of state-action rows, `[batch]`.
    fn value(&self, q: &Mlp, obs_actions: &Tensor) -> Tensor {
        match self.input {
            ActionInput::Concatenated => q.forward(obs_actions).squeeze_dim(-1),
            ActionInput::PerAction => {
                let obs = obs_actions.narrow(1, 0, self.obs_dim);
                let actions = obs_actions.narrow(1, self.obs_dim, self.act_dim);
                (q.forward(&obs) * actions).sum_dim_intlist(-1, false, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn critic(input: ActionInput, seed: i64) -> (nn::VarStore, TwinCritic) {
        tch::manual_seed(seed);
        let store = nn::VarStore::new(Device::Cpu);
        let critic = TwinCritic::new(
            &store.root(),
            4,
            3,
            input,
            &[16, 16],
            Activation::Tanh,
            LayerInit::Pytorch,
        );
        (store, critic)
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn a_per_action_critic_is_linear_in_the_action_with_the_action_values_as_slope() {
        let (_store, critic) = critic(ActionInput::PerAction, 1);
        let obs = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        let (q1_all, q2_all) = critic.every_action(&obs).expect("a per-action critic");
        assert_eq!(q1_all.size(), vec![5, 3]);
        // On every one-hot, Q is that action's output.
        for a in 0..3 {
            let one_hot = Tensor::zeros([5, 3], (Kind::Float, Device::Cpu));
            let _ = one_hot.narrow(1, a, 1).fill_(1.0);
            let (q1, q2) = critic.forward(&Tensor::cat(&[&obs, &one_hot], 1));
            assert_eq!(max_abs_diff(&q1, &q1_all.select(1, a)), 0.0, "Q1 at action {a}");
            assert_eq!(max_abs_diff(&q2, &q2_all.select(1, a)), 0.0, "Q2 at action {a}");
            assert_eq!(max_abs_diff(&critic.q1(&Tensor::cat(&[&obs, &one_hot], 1)), &q1), 0.0);
        }
        // At a relaxed action y, Q = Σ_a y_a q_a(s), and ∂Q/∂y = q(s): the slope a relaxed
        // sample's gradient follows is exactly the values of the actions.
        let y = Tensor::rand([5, 3], (Kind::Float, Device::Cpu))
            .softmax(-1, None)
            .set_requires_grad(true);
        let (q1, _) = critic.forward(&Tensor::cat(&[&obs, &y], 1));
        let by_hand = (&q1_all * &y).sum_dim_intlist(-1, false, None);
        assert!(max_abs_diff(&q1, &by_hand) < 1e-6);
        let slope = Tensor::run_backward(&[q1.sum(None)], &[&y], false, false).remove(0);
        assert!(max_abs_diff(&slope, &q1_all) < 1e-6, "dQ/dy {slope:?} vs q(s) {q1_all:?}");
    }

    #[test]
    fn a_concatenated_critic_has_one_output_and_no_per_action_values() {
        let (_store, critic) = critic(ActionInput::Concatenated, 2);
        let obs = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        assert!(critic.every_action(&obs).is_none());
        let y = Tensor::zeros([5, 3], (Kind::Float, Device::Cpu));
        let _ = y.narrow(1, 0, 1).fill_(1.0);
        let (q1, q2) = critic.forward(&Tensor::cat(&[&obs, &y], 1));
        assert_eq!((q1.size(), q2.size()), (vec![5], vec![5]));
        assert!(max_abs_diff(&q1, &q2) > 0.0, "the twins share weights");
    }
}
