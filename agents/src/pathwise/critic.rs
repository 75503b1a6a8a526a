//! The twin action-value critics `Q1(s, a)`, `Q2(s, a)` (Fujimoto et al. 2018): two independent
//! MLPs (`q1`, `q2` in one network) whose minimum is used for targets, to counter the
//! overestimation a single maximized critic accumulates.
//!
//! A critic takes the action in one of two ways ([`ActionInput`]):
//! - **concatenated**: an MLP of the row `(s, a)` with one output (what `Box` actions use);
//! - **per action** (`Discrete(n)` by default): an MLP of `s` alone with `n` outputs `q(s)`, and
//!   `Q(s, y) = Σ_a y_a q_a(s)` for a (relaxed or hard) one-hot `y`. On one-hots both are a
//!   critic of `(s, a)`; they differ in the slope the pathwise actor follows. Here
//!   `∂Q/∂y = q(s)`, the values of every action, so a relaxed sample's gradient ranks actions by
//!   their values in each state. A concatenated MLP's slope at a one-hot is whatever its
//!   first layer extrapolates, which it was never trained to get right.

use tch::nn;

use crate::backend::Backend;
use crate::networks::{LayerInit, Mlp};
use crate::scaffold::{Mlps, Net};
use crate::settings::Activation;

/// How a critic takes its action input; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActionInput {
    /// One MLP over the concatenated `(s, a)` row, one output.
    Concatenated,
    /// One MLP over `s` with `n` outputs, weighted by the `n` action inputs.
    PerAction,
}

/// The shape of the twin critics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TwinCritic {
    pub(crate) input: ActionInput,
    pub(crate) obs_dim: usize,
    pub(crate) act_dim: usize,
}

impl TwinCritic {
    /// The two MLPs `q1` and `q2` under `path`, through `hidden` layers.
    pub(crate) fn build(
        &self,
        path: &nn::Path<'_>,
        hidden: &[usize],
        activation: Activation,
        init: LayerInit,
    ) -> Mlps {
        let (in_dim, out_dim) = match self.input {
            ActionInput::Concatenated => (self.obs_dim + self.act_dim, 1),
            ActionInput::PerAction => (self.obs_dim, self.act_dim),
        };
        let mlp = |name: &str| Mlp::new(&(path / name), in_dim, hidden, out_dim, activation, init);
        vec![("q1.", mlp("q1")), ("q2.", mlp("q2"))]
    }

    /// `(Q1, Q2)` of observations `obs` `[rows, obs_dim]` and actions `actions`
    /// `[rows, act_dim]` in the critic's encoding, each `[rows, 1]`.
    pub(crate) fn values<B: Backend, O>(
        &self,
        b: &mut B,
        net: &Net<O>,
        obs: &B::M,
        actions: &B::M,
    ) -> (B::M, B::M) {
        match self.input {
            ActionInput::Concatenated => {
                let x = b.concat_cols(obs, actions);
                (b.mlp(net, 0, &x), b.mlp(net, 1, &x))
            }
            ActionInput::PerAction => {
                let q1 = b.mlp(net, 0, obs);
                let q2 = b.mlp(net, 1, obs);
                let w1 = b.mul(&q1, actions);
                let w2 = b.mul(&q2, actions);
                (b.sum_cols(&w1), b.sum_cols(&w2))
            }
        }
    }

    /// `Q1` alone, `[rows, 1]` (what TD3's actor maximizes).
    pub(crate) fn q1<B: Backend, O>(
        &self,
        b: &mut B,
        net: &Net<O>,
        obs: &B::M,
        actions: &B::M,
    ) -> B::M {
        match self.input {
            ActionInput::Concatenated => {
                let x = b.concat_cols(obs, actions);
                b.mlp(net, 0, &x)
            }
            ActionInput::PerAction => {
                let q1 = b.mlp(net, 0, obs);
                let w1 = b.mul(&q1, actions);
                b.sum_cols(&w1)
            }
        }
    }

    /// `(Q1, Q2)` of every one-hot action at `[rows, obs_dim]` observations, each
    /// `[rows, act_dim]`: one forward pass for a per-action critic, the `rows × act_dim` pairs
    /// of states and one-hots for a concatenated one.
    pub(crate) fn every_action<B: Backend, O>(
        &self,
        b: &mut B,
        net: &Net<O>,
        obs: &B::M,
    ) -> Result<(B::M, B::M), crate::AgentError> {
        match self.input {
            ActionInput::PerAction => Ok((b.mlp(net, 0, obs), b.mlp(net, 1, obs))),
            ActionInput::Concatenated => {
                let (rows, _) = b.shape(obs);
                let n = self.act_dim;
                // Row r·n + a pairs state r with the one-hot of action a.
                let states: Vec<usize> = (0..rows * n).map(|i| i / n).collect();
                let states = b.select_rows(obs, &states);
                let mut eye = vec![0.0f32; rows * n * n];
                for i in 0..rows * n {
                    eye[i * n + i % n] = 1.0;
                }
                let one_hots = b.constant(rows * n, n, &eye)?;
                let (q1, q2) = self.values(b, net, &states, &one_hots);
                Ok((b.reshape(&q1, rows, n), b.reshape(&q2, rows, n)))
            }
        }
    }
}
