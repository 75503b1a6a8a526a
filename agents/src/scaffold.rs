//! What every agent is built from besides its algorithm, written once: a network with its
//! flat parameters and optimizer ([`Net`]), the finiteness guard on losses and gradient norms
//! ([`Finite`]), the checks on the run an agent is built for ([`obs_dim`]), and the checkpoint
//! plumbing (variables by name, "does not belong" and counter decoding).

use rlpg_envs::Space;
use tch::{Kind, Tensor, nn};

use crate::agent::AgentError;
use crate::optim::{Adam, FlatParams, clip_grad_norm, column_major, find};

/// How a [`Net`]'s weight matrices are laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// As the layers create them (row-major).
    AsBuilt,
    /// Column-major (see [`column_major`]): for networks with a narrow first layer, such as a
    /// classic-control observation 3 or 4 wide, whose weight gradients MKL then computes on its
    /// fast products.
    ColumnMajor,
}

/// A network, the store holding its variables, their flat view, and what steps them: an
/// [`Adam`] for a trained network, `()` for a target network that only follows another.
#[derive(Debug)]
pub(crate) struct Net<M, O = Adam> {
    /// The store of the network's variables (named as in checkpoints, under the network's
    /// prefix).
    pub(crate) store: nn::VarStore,
    /// The network itself.
    pub(crate) module: M,
    /// The variables' values in one buffer, shared with the network.
    pub(crate) params: FlatParams,
    /// The optimizer, or `()` for a target network.
    pub(crate) opt: O,
}

/// Builds `module` in a fresh store on `device` with `build`, lays it out and flattens its
/// parameters.
fn build<M>(
    layout: Layout,
    device: tch::Device,
    build: impl FnOnce(&nn::Path<'_>) -> Result<M, AgentError>,
) -> Result<(nn::VarStore, M, FlatParams), AgentError> {
    let store = nn::VarStore::new(device);
    let module = build(&store.root())?;
    if layout == Layout::ColumnMajor {
        column_major(&store)?;
    }
    let params = FlatParams::new(&store)?;
    Ok((store, module, params))
}

impl<M> Net<M> {
    /// A trained network built by `build` on `device` (weights drawn from tch's generator for
    /// that device), with Adam at learning rate `lr` (its moments on the same device).
    pub(crate) fn trained(
        layout: Layout,
        lr: f64,
        device: tch::Device,
        build_module: impl FnOnce(&nn::Path<'_>) -> Result<M, AgentError>,
    ) -> Result<Self, AgentError> {
        let (store, module, params) = build(layout, device, build_module)?;
        let opt = Adam::new(&params, lr)?;
        Ok(Self { store, module, params, opt })
    }

    /// One Adam step on `loss`, its gradient's global norm clipped to `max_grad_norm` (0: no
    /// clipping). Returns the norm before clipping, which must be finite (`guard` names it
    /// `norm_tag` otherwise, and no step is taken). Only this network's parameters get a
    /// gradient: other networks the loss flows through are left unchanged.
    pub(crate) fn step(
        &mut self,
        loss: &Tensor,
        max_grad_norm: f64,
        guard: Finite,
        norm_tag: &str,
    ) -> Result<f64, AgentError> {
        let grad = self.params.grad(loss)?;
        let (grad, norm) = clip_grad_norm(grad, max_grad_norm)?;
        guard.check(norm_tag, norm)?;
        self.opt.step(&mut self.params, &grad)?;
        Ok(norm)
    }
}

impl<M> Net<M, ()> {
    /// A target network: built by `build` like `source`, on its device, and starting as its
    /// copy.
    pub(crate) fn target_of<O>(
        source: &Net<M, O>,
        layout: Layout,
        build_module: impl FnOnce(&nn::Path<'_>) -> Result<M, AgentError>,
    ) -> Result<Self, AgentError> {
        let (store, module, mut params) = build(layout, source.store.device(), build_module)?;
        params.copy_from(&source.params)?;
        Ok(Self { store, module, params, opt: () })
    }

    /// Polyak averaging toward `source`: `θ ← (1 − τ) θ + τ θ_source`.
    pub(crate) fn follow<O>(&mut self, source: &Net<M, O>, tau: f64) -> Result<(), AgentError> {
        self.params.polyak_toward(&source.params, tau)
    }
}

impl<M, O> Net<M, O> {
    /// Every variable, named `{prefix}/{variable}` as in checkpoints, sharing storage with the
    /// network.
    pub(crate) fn variables(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let named = self.store.variables().into_iter();
        named.map(|(name, t)| (format!("{prefix}/{name}"), t)).collect()
    }
}

/// The check every loss, gradient norm and temperature goes through: a finite value passes,
/// anything else is [`AgentError::NonFinite`] naming the agent, the quantity and the update.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Finite {
    /// Agent name.
    pub(crate) agent: &'static str,
    /// The update counter at which the value was computed.
    pub(crate) update: u64,
}

impl Finite {
    /// `value`, or a [`AgentError::NonFinite`] naming `quantity`.
    pub(crate) fn check(self, quantity: &str, value: f64) -> Result<f64, AgentError> {
        if value.is_finite() {
            Ok(value)
        } else {
            let (agent, update) = (self.agent, self.update);
            Err(AgentError::NonFinite { agent, quantity: quantity.to_owned(), value, update })
        }
    }

    /// The value of scalar tensor `t`, or a [`AgentError::NonFinite`] naming `quantity`.
    pub(crate) fn scalar(self, quantity: &str, t: &Tensor) -> Result<f64, AgentError> {
        self.check(quantity, t.f_double_value(&[])?)
    }
}

/// The width of an observation row for an agent built for `num_envs` environments with
/// `observation_space`: errors on `num_envs == 0` or an observation space without dimensions.
pub(crate) fn obs_dim(num_envs: usize, observation_space: &Space) -> Result<usize, AgentError> {
    if num_envs == 0 {
        return Err(AgentError::Invalid("num_envs must be >= 1, got 0".into()));
    }
    match observation_space.flat_dim() {
        0 => Err(AgentError::Invalid(format!(
            "observation space {observation_space} has no dimensions"
        ))),
        dim => Ok(dim),
    }
}

/// Name, kind and shape of one tensor an agent saves.
pub(crate) type TensorLayout = (String, Kind, Vec<i64>);

/// Errors naming the first of `tensors` that is not `belongs` to this `agent`'s `what`
/// ("checkpoint" or "training-state"), so that a file meant for another agent is refused
/// before anything is changed.
pub(crate) fn reject_foreign(
    agent: &str,
    what: &str,
    tensors: &[(String, Tensor)],
    belongs: impl Fn(&str) -> bool,
) -> Result<(), AgentError> {
    match tensors.iter().find(|(name, _)| !belongs(name)) {
        None => Ok(()),
        Some((name, _)) => Err(AgentError::Invalid(format!(
            "{what} tensor '{name}' does not belong to this {agent} agent"
        ))),
    }
}

/// Checks that `tensors` hold exactly the checkpoint `expected` describes: nothing that does
/// not belong to `agent`, and every expected tensor with its kind and shape. Changes nothing,
/// so a refused checkpoint leaves the agent intact.
pub(crate) fn check_checkpoint(
    agent: &str,
    tensors: &[(String, Tensor)],
    expected: &[TensorLayout],
) -> Result<(), AgentError> {
    reject_foreign(agent, "checkpoint", tensors, |n| expected.iter().any(|(e, _, _)| e == n))?;
    for (name, kind, shape) in expected {
        find(tensors, name, *kind, shape)?;
    }
    Ok(())
}

/// Copies each of `tensors` into the variable of the same name among `variables` (checked
/// beforehand with [`check_checkpoint`]).
pub(crate) fn copy_variables(
    variables: Vec<(String, Tensor)>,
    tensors: &[(String, Tensor)],
) -> Result<(), AgentError> {
    tch::no_grad(|| {
        for (name, mut target) in variables {
            target.f_copy_(find(tensors, &name, Kind::Float, &target.size())?)?;
        }
        Ok(())
    })
}

/// A counter saved as a one-element `Int64` tensor, as a count (negative values are refused).
pub(crate) fn counter(tensors: &[(String, Tensor)], name: &str) -> Result<u64, AgentError> {
    let v = find(tensors, name, Kind::Int64, &[1])?.f_int64_value(&[0])?;
    u64::try_from(v)
        .map_err(|_| AgentError::Invalid(format!("training-state '{name}' is negative ({v})")))
}

/// A count as the one-element `Int64` tensor [`counter`] reads.
pub(crate) fn counter_tensor(n: u64) -> Tensor {
    Tensor::from_slice(&[n as i64])
}
