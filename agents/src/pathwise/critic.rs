//! The twin action-value critics `Q1(s, a)`, `Q2(s, a)` (Fujimoto et al. 2018): two independent
//! MLPs whose minimum is used for targets, to counter the overestimation a single maximized
//! critic accumulates.

use tch::{Tensor, nn, nn::Module};

use crate::networks::{LayerInit, Mlp};
use crate::settings::Activation;

/// Two Q-networks over the concatenated `(s, a)`, with parameters `q1/…` and `q2/…` under the
/// path they were built with.
#[derive(Debug)]
pub(crate) struct TwinCritic {
    q1: Mlp,
    q2: Mlp,
}

impl TwinCritic {
    /// Twin critics taking `in_dim = obs_dim + action_dim` inputs through `hidden` layers.
    pub(crate) fn new(
        path: &nn::Path<'_>,
        in_dim: usize,
        hidden: &[usize],
        activation: Activation,
    ) -> Self {
        let mlp = |name: &str| {
            Mlp::new(&(path / name), in_dim, hidden, 1, activation, LayerInit::TorchDefault)
        };
        Self { q1: mlp("q1"), q2: mlp("q2") }
    }

    /// `(Q1, Q2)` of `[batch, in_dim]` state-action rows, each `[batch]`.
    pub(crate) fn forward(&self, obs_actions: &Tensor) -> (Tensor, Tensor) {
        (self.q1(obs_actions), self.q2.forward(obs_actions).squeeze_dim(-1))
    }

    /// `Q1` alone, `[batch]` (what TD3's actor maximizes).
    pub(crate) fn q1(&self, obs_actions: &Tensor) -> Tensor {
        self.q1.forward(obs_actions).squeeze_dim(-1)
    }
}
