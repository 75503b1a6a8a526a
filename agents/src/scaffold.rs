//! What every agent is built from besides its algorithm, written once: a network with its
//! flat parameters, MLPs and optimizer ([`Net`]), the finiteness guard on losses and gradient norms
//! ([`Finite`]), the checks on the run an agent is built for ([`obs_dim`]), and the checkpoint
//! plumbing (variables by name, "does not belong" and counter decoding).

use std::sync::Arc;

use rlpg_envs::Space;
use rlpg_kernel::DenseMlp;
use tch::{Kind, Tensor, nn, nn::Module};

use crate::agent::AgentError;
use crate::networks::Mlp;
use crate::optim::{Adam, FlatParams, column_major, find};

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

/// One MLP of a network: its libtorch module (the libtorch backend's forward pass) and its
/// layout in the network's flat buffer (the kernel's).
#[derive(Debug)]
pub(crate) struct NetMlp {
    module: Mlp,
    pub(crate) dense: Arc<DenseMlp>,
}

impl NetMlp {
    /// The libtorch forward pass.
    pub(crate) fn forward_tensor(&self, x: &Tensor) -> Tensor {
        self.module.forward(x)
    }
}

/// A network: the store of its variables, their flat buffer, the MLPs read from it, and what
/// steps it: an [`Adam`] for a trained network, `()` for a target network that only follows
/// another.
#[derive(Debug)]
pub(crate) struct Net<O = Adam> {
    /// The network's number within its agent (the kernel tracks which values depend on which
    /// network by it): distinct for every network of an agent, below 64.
    pub(crate) id: u8,
    /// The store of the network's variables (named as in checkpoints, under the network's
    /// prefix).
    pub(crate) store: nn::VarStore,
    /// The variables' values in one buffer, shared with the MLPs.
    pub(crate) params: FlatParams,
    /// The optimizer, or `()` for a target network.
    pub(crate) opt: O,
    /// The MLPs, in the order the build function returned them.
    pub(crate) mlps: Vec<NetMlp>,
}

/// What a build function returns: each MLP with the prefix of its variables in the store
/// (`""` at the root, `"q1."` under `q1`).
pub(crate) type Mlps = Vec<(&'static str, Mlp)>;

/// Builds the MLPs in a fresh store on `device` with `build`, lays them out and flattens their
/// parameters.
fn build(
    layout: Layout,
    device: tch::Device,
    build: impl FnOnce(&nn::Path<'_>) -> Result<Mlps, AgentError>,
) -> Result<(nn::VarStore, Vec<NetMlp>, FlatParams), AgentError> {
    let store = nn::VarStore::new(device);
    let modules = build(&store.root())?;
    if layout == Layout::ColumnMajor {
        column_major(&store)?;
    }
    let params = FlatParams::new(&store)?;
    let lookup = |name: &str| params.segment(name).cloned();
    let mlps = modules
        .into_iter()
        .map(|(prefix, module)| {
            let dense = DenseMlp::find(&lookup, prefix, module.activation())
                .map_err(|e| AgentError::Invalid(e.to_string()))?;
            Ok(NetMlp { module, dense: Arc::new(dense) })
        })
        .collect::<Result<Vec<_>, AgentError>>()?;
    Ok((store, mlps, params))
}

impl Net {
    /// A trained network number `id` built by `build` on `device` (weights drawn from tch's
    /// generator for that device), with Adam at learning rate `lr` (its moments on the same
    /// device).
    pub(crate) fn trained(
        id: u8,
        layout: Layout,
        lr: f64,
        device: tch::Device,
        build_mlps: impl FnOnce(&nn::Path<'_>) -> Result<Mlps, AgentError>,
    ) -> Result<Self, AgentError> {
        let (store, mlps, params) = build(layout, device, build_mlps)?;
        let opt = Adam::new(&params, lr)?;
        Ok(Self { id, store, params, opt, mlps })
    }
}

impl Net<()> {
    /// A target network number `id`: built by `build` like `source`, on its device, and
    /// starting as its copy.
    pub(crate) fn target_of<O>(
        id: u8,
        source: &Net<O>,
        layout: Layout,
        build_mlps: impl FnOnce(&nn::Path<'_>) -> Result<Mlps, AgentError>,
    ) -> Result<Self, AgentError> {
        let (store, mlps, mut params) = build(layout, source.store.device(), build_mlps)?;
        params.copy_from(&source.params)?;
        Ok(Self { id, store, params, opt: (), mlps })
    }
}

impl<O> Net<O> {
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
