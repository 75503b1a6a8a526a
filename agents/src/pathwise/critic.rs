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

use crate::agent::AgentError;
use crate::networks::{LayerInit, Mlp};
use crate::optim::FlatParams;
use crate::settings::Activation;

/// How a critic takes its action input; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActionInput {
    /// One MLP over the concatenated `(s, a)` row, one output.
    Concatenated,
    /// One MLP over `s` with `n` outputs, weighted by the `n` action inputs.
    PerAction,
}

/// Which value of the twins an actor climbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Follow {
    /// `min(Q1, Q2)` (SAC).
    Min,
    /// `Q1` alone (TD3).
    Q1,
}

/// The share of `min(a, b)`'s gradient that goes to `a`, per element: 1 where `a < b`, ½ on
/// ties, 0 otherwise (autograd's rule for `minimum`).
fn min_weight(a: &Tensor, b: &Tensor) -> Result<Tensor, tch::TchError> {
    let below = a.f_lt_tensor(b)?.f_to_kind(a.kind())?;
    let tied = a.f_eq_tensor(b)?.f_to_kind(a.kind())?;
    below.f_add(&(tied * 0.5))
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
    ) -> Self {
        let (in_dim, out_dim) = match input {
            ActionInput::Concatenated => (obs_dim + act_dim, 1),
            ActionInput::PerAction => (obs_dim, act_dim),
        };
        let mlp = |name: &str| {
            Mlp::new(&(path / name), in_dim, hidden, out_dim, activation, LayerInit::TorchDefault)
        };
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

    /// `(Q1, Q2)` of every one-hot action at `[batch, obs_dim]` observations, each
    /// `[batch, act_dim]`: one forward pass for a per-action critic, `None` for a concatenated
    /// one.
    pub(crate) fn every_action(&self, obs: &Tensor) -> Option<(Tensor, Tensor)> {
        (self.input == ActionInput::PerAction).then(|| (self.q1.forward(obs), self.q2.forward(obs)))
    }

    /// The critics' values at `[batch, obs_dim + act_dim]` rows and the gradient of their
    /// regression loss `mse(Q1, target) + mse(Q2, target)` with respect to both critics'
    /// parameters, laid out like `params` (this critic's flat parameters): one hand-written
    /// forward and backward pass per network ([`Mlp::backward`]), no autograd graph.
    pub(crate) fn regression_grad(
        &self,
        obs_actions: &Tensor,
        target: &Tensor,
        params: &FlatParams,
    ) -> Result<(Tensor, Tensor, Tensor), AgentError> {
        let grad = params.zero_grad_buffer()?;
        let rows = obs_actions.size()[0];
        let (input, weights) = match self.input {
            ActionInput::Concatenated => (obs_actions.shallow_clone(), None),
            ActionInput::PerAction => (
                obs_actions.f_narrow(1, 0, self.obs_dim)?,
                Some(obs_actions.f_narrow(1, self.obs_dim, self.act_dim)?),
            ),
        };
        let mut values = Vec::with_capacity(2);
        for q in [&self.q1, &self.q2] {
            let (out, tape) = q.forward_taped(&input)?;
            let (value, grad_out) = tch::no_grad(|| -> Result<_, AgentError> {
                let value = match &weights {
                    None => out.f_squeeze_dim(-1)?,
                    Some(w) => (&out * w).f_sum_dim_intlist(-1, false, None)?,
                };
                // d mean((Q − target)²) / dQ, then through the action weighting.
                let dq = ((&value - target) * (2.0 / rows as f64)).f_unsqueeze(-1)?;
                let grad_out = match &weights {
                    None => dq,
                    Some(w) => dq * w,
                };
                Ok((value, grad_out))
            })?;
            q.backward(&tape, &grad_out, Some((params, &grad)), false)?;
            values.push(value);
        }
        let q2 = values.pop().expect("two critics");
        let q1 = values.pop().expect("two critics");
        Ok((q1, q2, grad))
    }

    /// The value an actor climbs at `[batch, obs_dim + act_dim]` rows, `[batch]` (`min(Q1, Q2)`
    /// or `Q1` alone, per `follow`), and each row's gradient of it with respect to that row's
    /// action columns, `[batch, act_dim]`. By hand ([`Mlp::backward`] to the input, or for a
    /// per-action critic its action values, the exact slope): no autograd graph, and no
    /// gradient for the critics' parameters. Ties of the minimum split the gradient in half,
    /// as autograd's `minimum` does.
    pub(crate) fn action_gradient(
        &self,
        obs_actions: &Tensor,
        follow: Follow,
    ) -> Result<(Tensor, Tensor), AgentError> {
        let nets: &[&Mlp] = match follow {
            Follow::Min => &[&self.q1, &self.q2],
            Follow::Q1 => &[&self.q1],
        };
        match self.input {
            ActionInput::PerAction => tch::no_grad(|| {
                let obs = obs_actions.f_narrow(1, 0, self.obs_dim)?;
                let y = obs_actions.f_narrow(1, self.obs_dim, self.act_dim)?;
                let mut slopes = Vec::with_capacity(nets.len());
                for q in nets {
                    slopes.push(q.forward(&obs));
                }
                let values: Vec<Tensor> = slopes
                    .iter()
                    .map(|s| (s * &y).f_sum_dim_intlist(-1, false, None))
                    .collect::<Result<_, _>>()?;
                Ok(match follow {
                    Follow::Q1 => (values[0].shallow_clone(), slopes[0].shallow_clone()),
                    Follow::Min => {
                        let w1 = min_weight(&values[0], &values[1])?.f_unsqueeze(-1)?;
                        let grad = &slopes[1] + (&slopes[0] - &slopes[1]) * w1;
                        (values[0].f_minimum(&values[1])?, grad)
                    }
                })
            }),
            ActionInput::Concatenated => {
                let mut taped = Vec::with_capacity(nets.len());
                for q in nets {
                    taped.push(q.forward_taped(obs_actions)?);
                }
                let values: Vec<Tensor> =
                    taped.iter().map(|(out, _)| out.f_squeeze_dim(-1)).collect::<Result<_, _>>()?;
                // The weight of each network's value in the followed one, per row.
                let (value, weights) = tch::no_grad(|| -> Result<_, AgentError> {
                    Ok(match follow {
                        Follow::Q1 => (values[0].shallow_clone(), vec![values[0].f_ones_like()?]),
                        Follow::Min => {
                            let w1 = min_weight(&values[0], &values[1])?;
                            let w2 = w1.f_neg()? + 1.0;
                            (values[0].f_minimum(&values[1])?, vec![w1, w2])
                        }
                    })
                })?;
                let mut grad: Option<Tensor> = None;
                for ((q, (_, tape)), w) in nets.iter().zip(&taped).zip(&weights) {
                    let g = q
                        .backward(tape, &w.f_unsqueeze(-1)?, None, true)?
                        .expect("asked for the input gradient");
                    let g = g.f_narrow(1, self.obs_dim, self.act_dim)?;
                    grad = Some(match grad {
                        None => g,
                        Some(acc) => acc + g,
                    });
                }
                Ok((value, grad.expect("at least one critic")))
            }
        }
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
        let critic = TwinCritic::new(&store.root(), 4, 3, input, &[16, 16], Activation::Tanh);
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
            let (followed, _) = critic
                .action_gradient(&Tensor::cat(&[&obs, &one_hot], 1), Follow::Q1)
                .expect("value");
            assert_eq!(max_abs_diff(&followed, &q1), 0.0);
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
    fn the_hand_written_regression_gradient_is_autograds() {
        let activations = [
            Activation::Tanh,
            Activation::Relu,
            Activation::Elu,
            Activation::LeakyRelu,
            Activation::Silu,
        ];
        for input in [ActionInput::Concatenated, ActionInput::PerAction] {
            for activation in activations {
                for column_major in [false, true] {
                    tch::manual_seed(7);
                    let store = nn::VarStore::new(Device::Cpu);
                    let critic = TwinCritic::new(&store.root(), 4, 3, input, &[32, 16], activation);
                    if column_major {
                        crate::optim::column_major(&store).expect("layout");
                    }
                    let params = FlatParams::new(&store).expect("flat");
                    // 130 rows of 32: large enough for tanh's sigmoid route.
                    let obs_actions = Tensor::randn([130, 7], (Kind::Float, Device::Cpu));
                    let target = Tensor::randn([130], (Kind::Float, Device::Cpu));
                    let (q1, q2) = critic.forward(&obs_actions);
                    let loss = q1.mse_loss(&target, tch::Reduction::Mean)
                        + q2.mse_loss(&target, tch::Reduction::Mean);
                    let expected = params.grad(&loss).expect("autograd");
                    let (h1, h2, grad) =
                        critic.regression_grad(&obs_actions, &target, &params).expect("by hand");
                    let case = format!("{input:?} {activation:?} column-major {column_major}");
                    assert_eq!(max_abs_diff(&h1, &q1), 0.0, "{case}: Q1");
                    assert_eq!(max_abs_diff(&h2, &q2), 0.0, "{case}: Q2");
                    let scale = expected.abs().max().double_value(&[]);
                    let diff = max_abs_diff(&grad, &expected);
                    assert!(scale > 0.0 && diff <= 1e-5 * scale, "{case}: {diff} of {scale}");
                }
            }
        }
    }

    #[test]
    fn the_hand_written_action_gradient_is_autograds() {
        for input in [ActionInput::Concatenated, ActionInput::PerAction] {
            for activation in [Activation::Tanh, Activation::Relu, Activation::Silu] {
                for follow in [Follow::Min, Follow::Q1] {
                    tch::manual_seed(11);
                    let store = nn::VarStore::new(Device::Cpu);
                    let critic = TwinCritic::new(&store.root(), 4, 3, input, &[32, 16], activation);
                    let obs = Tensor::randn([130, 4], (Kind::Float, Device::Cpu));
                    let actions =
                        Tensor::randn([130, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
                    let (q1, q2) = critic.forward(&Tensor::cat(&[&obs, &actions], 1));
                    let expected_value = match follow {
                        Follow::Min => q1.minimum(&q2),
                        Follow::Q1 => q1,
                    };
                    let expected_slope = Tensor::run_backward(
                        &[expected_value.sum(None)],
                        &[&actions],
                        false,
                        false,
                    )
                    .remove(0);
                    let rows = Tensor::cat(&[&obs, &actions.detach()], 1);
                    let (value, slope) = critic.action_gradient(&rows, follow).expect("by hand");
                    let case = format!("{input:?} {activation:?} {follow:?}");
                    assert_eq!(max_abs_diff(&value, &expected_value), 0.0, "{case}: value");
                    let scale = expected_slope.abs().max().double_value(&[]);
                    let diff = max_abs_diff(&slope, &expected_slope);
                    assert!(scale > 0.0 && diff <= 1e-5 * scale, "{case}: {diff} of {scale}");
                }
            }
        }
        // Ties split the slope in half, as autograd's minimum does.
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[2.0f32, 2.0, 1.0]);
        let w = Vec::<f32>::try_from(&min_weight(&a, &b).expect("weights")).expect("f32");
        assert_eq!(w, vec![1.0, 0.5, 0.0]);
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
