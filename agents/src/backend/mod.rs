//! The two ways an agent's update is computed, behind one interface, so that each algorithm is
//! written once.
//!
//! An update (its targets, losses and schedule) is written as a function generic over
//! `Backend` (the public part of its vocabulary is [`Ops`]): a small set of matrix primitives
//! ([`Unary`], [`Binary`], [`Rowwise`]: elementwise functions,
//! row-wise softmax and sums, column slices, gathers, reductions), the MLP of a network, random
//! draws, and a gradient step on one network. Two implementations evaluate it:
//!
//! - [`Torch`] (`backend = "libtorch"`): each primitive is a libtorch tensor operation and
//!   autograd differentiates the loss. Any device; the reference.
//! - [`Kernel`] (`backend = "kernel"`): each primitive is a plain-Rust loop on the CPU, recorded
//!   on a tape whose backward pass applies the primitives' slopes ([`Unary::slope`]) and the MLPs'
//!   hand-written backward passes (`rlpg_kernel::mlp`). No libtorch operation runs inside an
//!   update, which at classic-control sizes is most of the time libtorch would spend.
//!
//! Both draw their random numbers from libtorch's generator, in the same order and shapes, so
//! a seeded run computes the same update on either up to float rounding; `tests/backends.rs`
//! checks that per tensor for every option the kernel accepts ([`coverage`]).
//!
//! Which one runs is a setting of each agent (`backend = "auto" | "libtorch" | "kernel"`,
//! [`BackendChoice`]): `auto` takes the kernel where [`coverage`] says it covers every option
//! of the run, else libtorch. The choice is made once, at construction, and reported
//! ([`crate::Agent::backend`]); an error of either backend is an error, never a switch.

pub mod coverage;
mod kernel;
mod ops;
mod torch;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::agent::AgentError;
use crate::scaffold::{Finite, Net};

pub use kernel::{Kernel, Var};
pub use ops::{Binary, Rowwise, Unary};
pub use torch::Torch;

/// Which backend an agent's updates run on, as settings name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// The plain-Rust kernel where it covers every option of the run (and the device is the
    /// CPU), libtorch otherwise.
    #[default]
    Auto,
    /// libtorch with autograd, on any device.
    Libtorch,
    /// The plain-Rust CPU kernel; a run with an option it does not cover is refused.
    Kernel,
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "\"auto\"",
            BackendChoice::Libtorch => "\"libtorch\"",
            BackendChoice::Kernel => "\"kernel\"",
        })
    }
}

/// The backend an agent runs on, once chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// libtorch with autograd.
    Libtorch,
    /// The plain-Rust CPU kernel.
    Kernel,
}

impl BackendKind {
    /// The name runs record (`"libtorch"` or `"kernel"`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Libtorch => "libtorch",
            BackendKind::Kernel => "kernel",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The backend `choice` resolves to on `device` for an agent whose settings are `settings`
/// (its section serialized, checked against [`coverage`] for `agent`): `auto` takes the kernel
/// when the device is the CPU and the kernel covers every setting; `kernel` insists, and is an
/// error naming `backend` otherwise; `libtorch` always takes libtorch. The agents' constructors
/// and the config loader both call this, so a run is refused before anything is written.
pub fn resolve(
    choice: BackendChoice,
    agent: coverage::AgentKind,
    settings: &serde_json::Value,
    device: Device,
) -> Result<BackendKind, crate::InvalidSetting> {
    let refusal = if device != Device::Cpu {
        Some(format!("the kernel runs on the CPU only, and the device is {device:?}"))
    } else {
        coverage::refusal(agent, settings)
    };
    match (choice, refusal) {
        (BackendChoice::Libtorch, _) => Ok(BackendKind::Libtorch),
        (BackendChoice::Auto, Some(_)) => Ok(BackendKind::Libtorch),
        (BackendChoice::Auto | BackendChoice::Kernel, None) => Ok(BackendKind::Kernel),
        (BackendChoice::Kernel, Some(why)) => Err(crate::InvalidSetting::new(
            "backend",
            format!("\"kernel\" cannot run this agent: {why}; use \"auto\" or \"libtorch\""),
        )),
    }
}

/// A computation of matrices (`[rows, cols]` of `f32`) in which distributions and losses are
/// written once: the primitives both backends provide.
///
/// Primitives are infallible: shapes are the algorithm's own, so a mismatch is a bug in the
/// algorithm (both backends panic on it). What can fail is what crosses the boundary: data in
/// ([`Ops::constant`]) and values out ([`Ops::to_host`]).
pub trait Ops {
    /// A matrix of this computation: a tensor (libtorch) or a node of the tape (kernel).
    type M: std::fmt::Debug;

    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Starts a new computation. The kernel recycles its tape's memory here; values from before
    /// must not be used after.
    fn begin(&mut self);

    /// `(rows, cols)` of `x`.
    fn shape(&self, x: &Self::M) -> (usize, usize);

    /// A second handle on `x` (no copy of its values; the same node of the computation).
    fn alias(&self, x: &Self::M) -> Self::M;

    /// A matrix holding `data` (`rows × cols`, row-major), on the backend's device.
    fn constant(&mut self, rows: usize, cols: usize, data: &[f32]) -> Result<Self::M, AgentError>;

    /// A matrix holding the values of a 2-D tensor (the libtorch backend takes the tensor
    /// itself, on its device; the kernel copies it to the host).
    fn tensor(&mut self, t: &Tensor) -> Result<Self::M, AgentError>;

    /// `rows × cols` standard normal draws from libtorch's generator.
    fn normal(&mut self, rows: usize, cols: usize) -> Result<Self::M, AgentError>;

    /// `rows × cols` uniform draws in `[0, 1)` from libtorch's generator.
    fn uniform(&mut self, rows: usize, cols: usize) -> Result<Self::M, AgentError>;

    /// A uniformly random permutation of `0..n` from libtorch's generator.
    fn permutation(&mut self, n: usize) -> Result<Vec<usize>, AgentError>;

    /// An elementwise function.
    fn unary(&mut self, op: Unary, x: &Self::M) -> Self::M;

    /// An elementwise function of two matrices, broadcasting as [`Binary`] says.
    fn binary(&mut self, op: Binary, a: &Self::M, b: &Self::M) -> Self::M;

    /// A function of each row.
    fn rowwise(&mut self, op: Rowwise, x: &Self::M) -> Self::M;

    /// `x`'s values read as a `rows × cols` matrix (row-major; as many values).
    fn reshape(&mut self, x: &Self::M, rows: usize, cols: usize) -> Self::M;

    /// Columns `start..start + len` of `x`.
    fn cols(&mut self, x: &Self::M, start: usize, len: usize) -> Self::M;

    /// `[a, b]` side by side (same rows).
    fn concat_cols(&mut self, a: &Self::M, b: &Self::M) -> Self::M;

    /// `x[i, index[i]]` for each row `i`: a `[rows, 1]` column.
    fn gather_cols(&mut self, x: &Self::M, index: &[usize]) -> Self::M;

    /// Rows `index` of `x`, in that order.
    fn select_rows(&mut self, x: &Self::M, index: &[usize]) -> Self::M;

    /// The mean of every element, `[1, 1]`.
    fn mean(&mut self, x: &Self::M) -> Self::M;

    /// `x` without its dependence on any parameter: gradients stop here.
    fn detach(&mut self, x: &Self::M) -> Self::M;

    /// Runs `f` with gradients off: nothing computed inside is differentiated.
    fn no_grad<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R
    where
        Self: Sized;

    /// The values of `x`, row-major, into `out`.
    fn to_host(&mut self, x: &Self::M, out: &mut Vec<f32>) -> Result<(), AgentError>;

    // Conveniences over the primitives, so that algorithms read like their formulas.

    /// `a + b`.
    fn add(&mut self, a: &Self::M, b: &Self::M) -> Self::M {
        self.binary(Binary::Add, a, b)
    }
    /// `a − b`.
    fn sub(&mut self, a: &Self::M, b: &Self::M) -> Self::M {
        self.binary(Binary::Sub, a, b)
    }
    /// `a · b` elementwise.
    fn mul(&mut self, a: &Self::M, b: &Self::M) -> Self::M {
        self.binary(Binary::Mul, a, b)
    }
    /// `a / b` elementwise.
    fn div(&mut self, a: &Self::M, b: &Self::M) -> Self::M {
        self.binary(Binary::Div, a, b)
    }
    /// `min(a, b)` elementwise.
    fn minimum(&mut self, a: &Self::M, b: &Self::M) -> Self::M {
        self.binary(Binary::Minimum, a, b)
    }
    /// `max(a, b)` elementwise.
    fn maximum(&mut self, a: &Self::M, b: &Self::M) -> Self::M {
        self.binary(Binary::Maximum, a, b)
    }
    /// `c · x`.
    fn scale(&mut self, x: &Self::M, c: f64) -> Self::M {
        self.unary(Unary::Scale(c as f32), x)
    }
    /// `x + c`.
    fn shift(&mut self, x: &Self::M, c: f64) -> Self::M {
        self.unary(Unary::Shift(c as f32), x)
    }
    /// `eˣ`.
    fn exp(&mut self, x: &Self::M) -> Self::M {
        self.unary(Unary::Exp, x)
    }
    /// `tanh x`.
    fn tanh(&mut self, x: &Self::M) -> Self::M {
        self.unary(Unary::Tanh, x)
    }
    /// `x²`.
    fn square(&mut self, x: &Self::M) -> Self::M {
        self.unary(Unary::Square, x)
    }
    /// `−x`.
    fn neg(&mut self, x: &Self::M) -> Self::M {
        self.unary(Unary::Neg, x)
    }
    /// `x` limited to `[lo, hi]`.
    fn clamp(&mut self, x: &Self::M, lo: f64, hi: f64) -> Self::M {
        self.unary(Unary::Clamp(lo as f32, hi as f32), x)
    }
    /// Row sums, `[rows, 1]`.
    fn sum_cols(&mut self, x: &Self::M) -> Self::M {
        self.rowwise(Rowwise::Sum, x)
    }
    /// Row-wise `log_softmax`.
    fn log_softmax(&mut self, x: &Self::M) -> Self::M {
        self.rowwise(Rowwise::LogSoftmax, x)
    }
    /// Row-wise `softmax`.
    fn softmax(&mut self, x: &Self::M) -> Self::M {
        self.rowwise(Rowwise::Softmax, x)
    }
    /// The value of a `[1, 1]` matrix.
    fn scalar(&mut self, x: &Self::M) -> Result<f64, AgentError> {
        let mut out = Vec::with_capacity(1);
        self.to_host(x, &mut out)?;
        match out.as_slice() {
            [v] => Ok(f64::from(*v)),
            values => Err(AgentError::Invalid(format!(
                "expected one value, got {} (a loss must be reduced to a scalar)",
                values.len()
            ))),
        }
    }
    /// The mean of a `[rows, 1]` column as a number, read on the host in `f64` (for metrics).
    fn host_mean(&mut self, x: &Self::M) -> Result<f64, AgentError> {
        let mut out = Vec::new();
        self.to_host(x, &mut out)?;
        Ok(out.iter().map(|&v| f64::from(v)).sum::<f64>() / out.len().max(1) as f64)
    }
}

/// [`Ops`] plus what an update needs of networks: their MLPs and parameters as matrices, the
/// gradient with respect to one network, its optimizer step, Polyak averaging.
pub(crate) trait Backend: Ops + Sized {
    /// The output of `net`'s MLP number `mlp` at inputs `x`.
    fn mlp<O>(&mut self, net: &Net<O>, mlp: usize, x: &Self::M) -> Self::M;

    /// `net`'s parameter `name` (a vector, e.g. a learned log standard deviation) as a
    /// `[1, len]` row.
    fn param<O>(&mut self, net: &Net<O>, name: &str) -> Self::M;

    /// The gradient of the `[1, 1]` `loss` with respect to every parameter of `net`, flattened
    /// as its buffer is, into `out`. Other networks the loss flows through get none. The
    /// computation stays differentiable (several gradients can be taken from one loss).
    fn gradient(&mut self, loss: &Self::M, net: &Net, out: &mut Vec<f32>)
    -> Result<(), AgentError>;

    /// One optimizer step of `net` on `loss`: its gradient (only `net`'s parameters), the
    /// global norm clipped to `max_grad_norm` (0: no clipping), Adam. Returns the norm before
    /// clipping, which `guard` checks under `norm_tag` (no step is taken on a non-finite one).
    fn step(
        &mut self,
        loss: &Self::M,
        net: &mut Net,
        max_grad_norm: f64,
        guard: Finite,
        norm_tag: &str,
    ) -> Result<f64, AgentError>;

    /// Polyak averaging of a target network toward `source`: `θ ← (1 − τ) θ + τ θ_source`.
    fn polyak<O>(
        &mut self,
        target: &mut Net<()>,
        source: &Net<O>,
        tau: f64,
    ) -> Result<(), AgentError>;
}

/// One of the two backends, owned by an agent.
#[derive(Debug)]
pub(crate) enum AnyBackend {
    /// libtorch.
    Torch(Torch),
    /// The plain-Rust kernel.
    Kernel(Kernel),
}

impl AnyBackend {
    /// The backend of `kind` on `device` (the kernel ignores it: it runs on the CPU).
    pub(crate) fn new(kind: BackendKind, device: Device) -> Self {
        match kind {
            BackendKind::Libtorch => AnyBackend::Torch(Torch::new(device)),
            BackendKind::Kernel => AnyBackend::Kernel(Kernel::default()),
        }
    }

    /// Which backend this is.
    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            AnyBackend::Torch(_) => BackendKind::Libtorch,
            AnyBackend::Kernel(_) => BackendKind::Kernel,
        }
    }
}

/// Runs `$body` with `$b` bound to the concrete backend inside `$any` (an [`AnyBackend`]), so
/// that a generic algorithm is instantiated for each and dispatched once per call.
macro_rules! with_backend {
    ($any:expr, $b:ident => $body:expr) => {
        match $any {
            $crate::backend::AnyBackend::Torch($b) => $body,
            $crate::backend::AnyBackend::Kernel($b) => $body,
        }
    };
}
pub(crate) use with_backend;
