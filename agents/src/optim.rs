//! One contiguous parameter buffer per network, and Adam on it, with its state as named
//! tensors for checkpoints. Shared by every agent.
//!
//! Why not `nn::Adam`: libtorch's optimizers and a per-tensor gradient-norm clip launch a few
//! tiny kernels per parameter tensor, and on classic-control networks those launches cost more
//! than the matrix products (about 60 per step per network). Moving a network's parameters into
//! one flat buffer once, at construction ([`FlatParams`]), makes the gradient, its norm, the clip,
//! the Adam step and Polyak averaging a handful of operations whatever the number of layers.
//! The variables keep their names and stay the layers' own autograd leaves; only their storage
//! moves into the buffer. And unlike tch's optimizers, whose moments cannot be read, this Adam
//! exposes its state ([`Adam::state`], [`Adam::load_state`]), so a checkpoint resumes it exactly.
//!
//! The arithmetic is PyTorch's (`torch.optim.Adam` with default betas and epsilon, no weight
//! decay), checked step for step against tch's `nn::Adam` in the tests.

use tch::{Kind, Tensor, nn};

use crate::agent::AgentError;

/// Adam's first-moment decay (PyTorch's default).
pub const BETA1: f64 = 0.9;
/// Adam's second-moment decay (PyTorch's default).
pub const BETA2: f64 = 0.999;
/// Adam's denominator guard (PyTorch's default).
pub const EPS: f64 = 1e-8;
/// The second moment is floored here before its square root (see [`Adam::step`]): a normal
/// `f32` whose root, 1e-15, is negligible next to [`EPS`].
const SQRT_FLOOR: f64 = 1e-30;

/// The trainable variables of one `VarStore`, re-pointed into one contiguous buffer.
///
/// The variables stay the store's own (same names, still leaves that require gradients, still
/// used by the network's layers); only their storage now lives inside one buffer, in the order
/// of their names. Writing to the buffer therefore writes to the network.
#[derive(Debug)]
pub struct FlatParams {
    /// The trainable variables, sorted by name.
    vars: Vec<Tensor>,
    /// The variables' names, in the same order.
    names: Vec<String>,
    /// Where each variable lives in the buffer, in the same order.
    segments: Vec<Segment>,
    /// For each variable, whether it is a column-major matrix (see [`FlatParams::new`]).
    column_major: Vec<bool>,
    /// `[numel]` the buffer holding every variable's values; does not require gradients.
    flat: Tensor,
}

impl FlatParams {
    /// Moves every trainable variable of `store` into one new buffer (values unchanged), on
    /// the store's device. All must be `Float` tensors.
    ///
    /// Each variable keeps its memory layout: row-major (contiguous), or column-major for a
    /// matrix stored transposed (strides `[1, rows]`). The layout decides which matrix products
    /// autograd runs for it, and MKL is several times slower on some shapes than on their
    /// transposes (see [`column_major`]).
    pub fn new(store: &nn::VarStore) -> Result<Self, AgentError> {
        let mut named: Vec<(String, Tensor)> =
            store.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let numel: usize = named.iter().map(|(_, t)| t.numel()).sum();
        let flat = Tensor::f_zeros([numel as i64], (Kind::Float, store.device()))?;
        let mut offset = 0i64;
        let mut vars = Vec::with_capacity(named.len());
        let mut names = Vec::with_capacity(named.len());
        let mut segments = Vec::with_capacity(named.len());
        let mut column_major = Vec::with_capacity(named.len());
        tch::no_grad(|| -> Result<(), AgentError> {
            for (name, mut var) in named {
                if var.kind() != Kind::Float {
                    return Err(AgentError::Invalid(format!(
                        "parameter '{name}' is {:?}; flat parameters must all be Float",
                        var.kind()
                    )));
                }
                let n = var.numel() as i64;
                let size = var.size();
                let transposed = is_column_major(&var);
                let block = flat.f_narrow(0, offset, n)?;
                let mut view = if transposed {
                    block.f_view([size[1], size[0]])?.f_tr()?
                } else {
                    block.f_view(size.as_slice())?
                };
                view.f_copy_(&var)?;
                // `set_data` swaps the storage under the variable while keeping its identity as
                // an autograd leaf, so the layers holding it now read from `flat`.
                var.f_set_data(&view)?;
                vars.push(var);
                names.push(name);
                segments.push(Segment {
                    offset: offset as usize,
                    shape: size.iter().map(|&d| d as usize).collect(),
                    column_major: transposed,
                });
                column_major.push(transposed);
                offset += n;
            }
            Ok(())
        })?;
        Ok(Self { vars, names, segments, column_major, flat })
    }

    /// Where the variable `name` lives in the buffer, if this buffer holds it.
    pub(crate) fn segment(&self, name: &str) -> Option<&Segment> {
        self.names.iter().position(|n| n == name).map(|i| &self.segments[i])
    }

    /// The variable `name` (an autograd leaf sharing the buffer), if this buffer holds it.
    pub(crate) fn var(&self, name: &str) -> Option<&Tensor> {
        self.names.iter().position(|n| n == name).map(|i| &self.vars[i])
    }

    /// A handle on the buffer that reads its current values later (see [`SharedValues`]).
    pub(crate) fn shared(&self) -> SharedValues {
        SharedValues(self.flat.shallow_clone())
    }

    /// The buffer's values as plain memory, for arithmetic done outside libtorch. Errors unless
    /// the buffer is on the CPU.
    pub(crate) fn cpu_values(&self) -> Result<&[f32], AgentError> {
        let (ptr, len) = cpu_f32_parts(&self.flat)?;
        // SAFETY: `cpu_f32_parts` checked that `len` contiguous floats start at `ptr`; the buffer
        // is owned by `self`, and Rust writes to it only through `&mut self`, which this borrow
        // excludes.
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// [`FlatParams::cpu_values`], writable: writes change the network (the variables share
    /// the buffer).
    pub(crate) fn cpu_values_mut(&mut self) -> Result<&mut [f32], AgentError> {
        // SAFETY: `&mut self` makes this the only Rust view of the buffer while it lives.
        unsafe { cpu_f32(&self.flat) }
    }

    /// The buffer of all parameter values, `[numel]`, in name order.
    pub fn values(&self) -> &Tensor {
        &self.flat
    }

    /// Number of parameters.
    pub fn numel(&self) -> usize {
        self.flat.numel()
    }

    /// The gradient of scalar `loss` with respect to every parameter, flattened like
    /// [`FlatParams::values`]. Only these parameters' gradients are computed: other networks
    /// the loss flows through (a critic under an actor loss) get none, and nothing is
    /// accumulated into any `.grad`.
    pub fn grad(&self, loss: &Tensor) -> Result<Tensor, AgentError> {
        self.backward(loss, false)
    }

    /// [`FlatParams::grad`], keeping the graph so that `loss`'s graph can be differentiated
    /// again (gradient diagnostics take one gradient per chunk of a batch, then the full one).
    pub fn grad_keeping_graph(&self, loss: &Tensor) -> Result<Tensor, AgentError> {
        self.backward(loss, true)
    }

    fn backward(&self, loss: &Tensor, keep_graph: bool) -> Result<Tensor, AgentError> {
        let grads = Tensor::f_run_backward(&[loss], &self.vars, keep_graph, false)?;
        let mut flat = Vec::with_capacity(grads.len());
        for ((g, var), &transposed) in grads.iter().zip(&self.vars).zip(&self.column_major) {
            // A parameter the loss does not depend on gets an undefined gradient: zero.
            let g = if g.defined() { g.shallow_clone() } else { var.f_zeros_like()? };
            // Flattened in the parameter's memory order, as its values are in the buffer.
            flat.push(if transposed { g.f_tr()?.f_reshape([-1])? } else { g.f_reshape([-1])? });
        }
        Ok(Tensor::f_cat(&flat, 0)?)
    }

    /// Overwrites these parameters with `source`'s (same network shape).
    pub fn copy_from(&mut self, source: &FlatParams) -> Result<(), AgentError> {
        tch::no_grad(|| self.flat.f_copy_(&source.flat))?;
        Ok(())
    }

    /// Polyak averaging toward `source`: `θ ← (1 − τ) θ + τ θ_source`.
    pub fn polyak_toward(&mut self, source: &FlatParams, tau: f64) -> Result<(), AgentError> {
        let _ = tch::no_grad(|| self.flat.f_lerp_(&source.flat, tau))?;
        Ok(())
    }
}

/// Where one variable lives in a [`FlatParams`] buffer.
pub(crate) use rlpg_kernel::Segment;

/// A second handle on a [`FlatParams`] buffer (sharing its storage, which it keeps alive), from
/// which the CPU kernel reads the parameters again in a backward pass.
#[derive(Debug)]
pub(crate) struct SharedValues(Tensor);

impl SharedValues {
    /// The buffer's current values. Errors unless it is on the CPU.
    pub(crate) fn values(&self) -> Result<&[f32], AgentError> {
        let (ptr, len) = cpu_f32_parts(&self.0)?;
        // SAFETY: `cpu_f32_parts` checked that `len` contiguous floats start at `ptr`, and this
        // handle keeps the storage alive. Rust writes to the buffer only through
        // `FlatParams::cpu_values_mut` (an optimizer or Polyak step, which take `&mut` of the
        // network), and the kernel never holds this slice across one: it reads it within a
        // forward or backward pass, which runs between steps on the same thread.
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }
}
/// Where the values of `t` start and how many there are, after checking that `t` is a
/// contiguous `Float` tensor on the CPU (a dangling, aligned pointer when it is empty).
fn cpu_f32_parts(t: &Tensor) -> Result<(*mut f32, usize), AgentError> {
    if t.device() != tch::Device::Cpu || t.kind() != Kind::Float || !t.is_contiguous() {
        return Err(AgentError::Invalid(format!(
            "plain-memory access needs a contiguous Float tensor on the CPU, got {:?} on {:?}",
            t.kind(),
            t.device()
        )));
    }
    let len = t.numel();
    let ptr = if len == 0 { std::ptr::NonNull::dangling().as_ptr() } else { t.data_ptr().cast() };
    Ok((ptr, len))
}

/// The values of `t` as a mutable slice.
///
/// # Safety
/// The caller must make sure no other live slice or Rust reference aliases `t`'s storage for
/// the returned lifetime, and that no libtorch operation touches it meanwhile.
unsafe fn cpu_f32<'a>(t: &Tensor) -> Result<&'a mut [f32], AgentError> {
    let (ptr, len) = cpu_f32_parts(t)?;
    // SAFETY: `len` contiguous floats start at `ptr`; exclusivity is the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Whether `t` is a matrix stored column-major (transposed), i.e. strides `[1, rows]`, and not
/// also row-major (as a single row or column is).
fn is_column_major(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    size.len() == 2 && !t.is_contiguous() && stride[0] == 1 && stride[1] == size[0]
}

/// Re-lays every matrix variable of `store` out column-major (values unchanged), before
/// [`FlatParams::new`], for networks whose first or last layer is narrow.
///
/// `nn::Linear` computes `x · Wᵀ`; with `W` row-major, autograd takes the weight gradient as
/// `(gᵀ · x)ᵀ`, and with a narrow input (`x` of 3 or 4 columns, a classic-control observation
/// or observation-action pair) MKL runs that `[256, 256] · [256, 4]` product at about a tenth of
/// its speed on the transposed `[4, 256] · [256, 256]` one, which a column-major `W` gets
/// instead (76 µs against 11 µs at batch 256). The input gradient through such a layer
/// (an actor loss differentiating a critic's action input) is fast likewise when the input is
/// column-major.
pub fn column_major(store: &nn::VarStore) -> Result<(), AgentError> {
    tch::no_grad(|| -> Result<(), AgentError> {
        for (_, mut var) in store.variables() {
            if var.dim() == 2 && !is_column_major(&var) {
                let transposed = var.f_tr()?.f_contiguous()?.f_tr()?;
                var.f_set_data(&transposed)?;
            }
        }
        Ok(())
    })
}

/// Global L2 norm of a flat gradient, and the gradient scaled down to `max_norm` when it is
/// larger and `max_norm > 0` (0 disables clipping), as `torch.nn.utils.clip_grad_norm_`.
pub fn clip_grad_norm(grad: Tensor, max_norm: f64) -> Result<(Tensor, f64), AgentError> {
    let norm = grad.f_norm()?.f_double_value(&[])?;
    if max_norm > 0.0 && norm > max_norm {
        Ok((grad.f_mul_scalar(max_norm / (norm + 1e-6))?, norm))
    } else {
        Ok((grad, norm))
    }
}

/// [`clip_grad_norm`] on a plain-memory gradient, in place: the same norm (accumulated in
/// `f64`) and the same scale `max_norm / (norm + 1e-6)`. Returns the norm before clipping.
pub(crate) fn clip_grad_norm_cpu(grad: &mut [f32], max_norm: f64) -> f64 {
    let norm = grad.iter().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>().sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        grad.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}

/// Adam (Kingma & Ba), as PyTorch computes it, on a [`FlatParams`] buffer.
#[derive(Debug)]
pub struct Adam {
    lr: f64,
    steps: i64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Adam {
    /// Adam with learning rate `lr` for `params`, moments at zero.
    pub fn new(params: &FlatParams, lr: f64) -> Result<Self, AgentError> {
        // The moments live beside the parameters, on their device.
        let device = params.flat.device();
        let zeros = || Tensor::f_zeros([params.numel() as i64], (Kind::Float, device));
        Ok(Self { lr, steps: 0, exp_avg: zeros()?, exp_avg_sq: zeros()? })
    }

    /// Steps taken.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// One step on `params` with the flat gradient `grad`.
    pub fn step(&mut self, params: &mut FlatParams, grad: &Tensor) -> Result<(), AgentError> {
        self.steps += 1;
        // PyTorch computes `beta ** step` with a floating-point power.
        let bias1 = 1.0 - BETA1.powf(self.steps as f64);
        let bias2 = 1.0 - BETA2.powf(self.steps as f64);
        tch::no_grad(|| -> Result<(), tch::TchError> {
            let _ = self.exp_avg.f_lerp_(grad, 1.0 - BETA1)?;
            let _ = self.exp_avg_sq.f_lerp_(&grad.f_square()?, 1.0 - BETA2)?;
            // θ ← θ − lr / bias1 · m / (√v / √bias2 + ε), PyTorch's order of operations.
            // √v through a floor: libtorch's CPU sqrt (MKL's vsSqrt) takes a slow path for
            // zeros and subnormals, about 6x and 35x slower per element than for normal numbers
            // (2 ms for 134k subnormals), and v decays into subnormals for parameters whose
            // gradient stays zero, such as a dead ReLU unit's, over ~70k steps. √SQRT_FLOOR is
            // far below ε·√bias2, so the step is PyTorch's to rounding.
            let mut denom = self.exp_avg_sq.f_clamp_min(SQRT_FLOOR)?;
            let _ = denom.f_sqrt_()?;
            let _ = denom.f_mul_scalar_(1.0 / bias2.sqrt())?;
            let _ = denom.f_add_scalar_(EPS)?;
            let step = self.exp_avg.f_mul_scalar(-self.lr / bias1)?;
            let _ = params.flat.f_addcdiv_(&step, &denom)?;
            Ok(())
        })?;
        Ok(())
    }

    /// [`Adam::step`] in plain Rust on a CPU buffer, with the flat gradient `grad` as plain
    /// memory: the same arithmetic (PyTorch's), without libtorch's per-operation overhead.
    /// Errors unless `params` and the moments are on the CPU and `grad` has one value per
    /// parameter.
    pub(crate) fn step_cpu(
        &mut self,
        params: &mut FlatParams,
        grad: &[f32],
    ) -> Result<(), AgentError> {
        // SAFETY: the moments are owned by `self`, borrowed mutably here, and only read by
        // libtorch when a checkpoint copies them, which cannot happen during this call.
        let (m, v) = unsafe { (cpu_f32(&self.exp_avg)?, cpu_f32(&self.exp_avg_sq)?) };
        let theta = params.cpu_values_mut()?;
        if grad.len() != theta.len() || m.len() != theta.len() {
            return Err(AgentError::Invalid(format!(
                "Adam step: {} gradient values for {} parameters",
                grad.len(),
                theta.len()
            )));
        }
        self.steps += 1;
        let bias1 = 1.0 - BETA1.powf(self.steps as f64);
        let bias2 = 1.0 - BETA2.powf(self.steps as f64);
        let step = (-self.lr / bias1) as f32;
        let inv_sqrt_bias2 = (1.0 / bias2.sqrt()) as f32;
        let (w1, w2) = ((1.0 - BETA1) as f32, (1.0 - BETA2) as f32);
        let floor = SQRT_FLOOR as f32;
        rlpg_kernel::simd::wide(
            #[inline(always)]
            || {
                for (((p, m), v), &g) in
                    theta.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad)
                {
                    // Moments below the floor are flushed to zero. A parameter whose gradient stays zero
                    // (a dead ReLU unit's) has moments decaying geometrically into subnormal numbers,
                    // the first moment within a few hundred steps, and x86 cores take a slow path for
                    // every operation on those (this loop ran 10x slower). The step such a moment would
                    // take is below `lr · 1e-30 / ε`, nothing in f32 arithmetic on the parameters.
                    let flush = |x: f32| if x.abs() < floor { 0.0 } else { x };
                    *m = flush(lerp(*m, g, w1));
                    *v = flush(lerp(*v, g * g, w2));
                    let denom = v.max(floor).sqrt() * inv_sqrt_bias2 + EPS as f32;
                    *p += step * *m / denom;
                }
            },
        );
        Ok(())
    }

    /// The name, kind and shape of every tensor [`Adam::state`] gives under `prefix`, in the
    /// same order: what a checkpoint must hold for [`Adam::load_state`].
    pub fn state_layout(&self, prefix: &str) -> Vec<(String, Kind, Vec<i64>)> {
        let numel = self.exp_avg.numel() as i64;
        vec![
            (format!("{prefix}/exp_avg"), Kind::Float, vec![numel]),
            (format!("{prefix}/exp_avg_sq"), Kind::Float, vec![numel]),
            (format!("{prefix}/steps"), Kind::Int64, vec![1]),
        ]
    }

    /// The optimizer's state as copies named `{prefix}/exp_avg`, `{prefix}/exp_avg_sq` (both
    /// `Float [numel]`) and `{prefix}/steps` (`Int64 [1]`), as [`Adam::state_layout`] lists them.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}/exp_avg"), self.exp_avg.copy()),
            (format!("{prefix}/exp_avg_sq"), self.exp_avg_sq.copy()),
            (format!("{prefix}/steps"), Tensor::from_slice(&[self.steps])),
        ]
    }

    /// Restores the state [`Adam::state`] saved under `prefix` from `tensors` (which may hold
    /// other names too). Checks everything before changing anything.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        let layout = self.state_layout(prefix);
        let [exp_avg, exp_avg_sq, steps] = [0, 1, 2].map(|i| {
            let (name, kind, shape) = &layout[i];
            find(tensors, name, *kind, shape)
        });
        let (exp_avg, exp_avg_sq) = (exp_avg?, exp_avg_sq?);
        let steps = steps?.f_int64_value(&[0])?;
        if steps < 0 {
            return Err(AgentError::Invalid(format!("{prefix}/steps is negative ({steps})")));
        }
        tch::no_grad(|| -> Result<(), tch::TchError> {
            self.exp_avg.f_copy_(exp_avg)?;
            self.exp_avg_sq.f_copy_(exp_avg_sq)
        })?;
        self.steps = steps;
        Ok(())
    }
}

/// `a + w (b − a)` as libtorch's CPU `lerp` computes it in `f32` (from the far end for
/// `w ≥ 0.5`).
#[inline]
pub(crate) fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 { a + w * (b - a) } else { b - (b - a) * (1.0 - w) }
}

/// Adam on a single `f64` (e.g. an entropy temperature's logarithm), with PyTorch's arithmetic:
/// a libtorch optimizer step on one number costs more than the number's whole update.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarAdam {
    lr: f64,
    steps: i64,
    exp_avg: f64,
    exp_avg_sq: f64,
}

impl ScalarAdam {
    /// Adam with learning rate `lr`, moments at zero.
    pub fn new(lr: f64) -> Self {
        Self { lr, steps: 0, exp_avg: 0.0, exp_avg_sq: 0.0 }
    }

    /// The parameter after one step from `value` with gradient `grad`.
    pub fn step(&mut self, value: f64, grad: f64) -> f64 {
        self.steps += 1;
        self.exp_avg = BETA1 * self.exp_avg + (1.0 - BETA1) * grad;
        self.exp_avg_sq = BETA2 * self.exp_avg_sq + (1.0 - BETA2) * grad * grad;
        let bias1 = 1.0 - BETA1.powf(self.steps as f64);
        let bias2 = 1.0 - BETA2.powf(self.steps as f64);
        let denom = self.exp_avg_sq.sqrt() / bias2.sqrt() + EPS;
        value - self.lr / bias1 * self.exp_avg / denom
    }

    /// The name, kind and shape of every tensor [`ScalarAdam::state`] gives under `prefix`.
    pub fn state_layout(prefix: &str) -> Vec<(String, Kind, Vec<i64>)> {
        vec![
            (format!("{prefix}/moments"), Kind::Double, vec![2]),
            (format!("{prefix}/steps"), Kind::Int64, vec![1]),
        ]
    }

    /// The state as `{prefix}/moments` (`Double [2]`: first and second moment) and
    /// `{prefix}/steps` (`Int64 [1]`), as [`ScalarAdam::state_layout`] lists them.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}/moments"), Tensor::from_slice(&[self.exp_avg, self.exp_avg_sq])),
            (format!("{prefix}/steps"), Tensor::from_slice(&[self.steps])),
        ]
    }

    /// Restores the state [`ScalarAdam::state`] saved under `prefix`.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        let moments = find(tensors, &format!("{prefix}/moments"), Kind::Double, &[2])?;
        let steps = find(tensors, &format!("{prefix}/steps"), Kind::Int64, &[1])?;
        let (m, v) = (moments.f_double_value(&[0])?, moments.f_double_value(&[1])?);
        let steps = steps.f_int64_value(&[0])?;
        if !(m.is_finite() && v.is_finite() && v >= 0.0 && steps >= 0) {
            return Err(AgentError::Invalid(format!(
                "{prefix}: invalid Adam state (moments {m}, {v}; steps {steps})"
            )));
        }
        (self.exp_avg, self.exp_avg_sq, self.steps) = (m, v, steps);
        Ok(())
    }
}

/// The tensor named `name` in `tensors`, checked to be of `kind` and `shape`.
pub fn find<'a>(
    tensors: &'a [(String, Tensor)],
    name: &str,
    kind: Kind,
    shape: &[i64],
) -> Result<&'a Tensor, AgentError> {
    let t = tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| AgentError::Invalid(format!("checkpoint is missing tensor '{name}'")))?;
    if t.kind() != kind || t.size() != shape {
        return Err(AgentError::Invalid(format!(
            "checkpoint tensor '{name}' is {:?} {:?}, expected {kind:?} {shape:?}",
            t.kind(),
            t.size()
        )));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networks::{LayerInit, Mlp};
    use crate::settings::Activation;
    use tch::Device;
    use tch::nn::{Module, OptimizerConfig};

    fn mlp_store(seed: i64) -> (nn::VarStore, Mlp) {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), 3, &[8, 5], 2, Activation::Tanh, LayerInit::Pytorch);
        (vs, mlp)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn flattening_keeps_the_values_and_the_network_reads_the_buffer() {
        let (vs, mlp) = mlp_store(0);
        let x = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let before = mlp.forward(&x);
        let flat = FlatParams::new(&vs).unwrap();
        assert_eq!(flat.numel(), 3 * 8 + 8 + 8 * 5 + 5 + 5 * 2 + 2);
        let diff = max_diff(&mlp.forward(&x), &before);
        assert_eq!(diff, 0.0, "flattening changed the network's output by {diff}");
        let _ = tch::no_grad(|| flat.values().shallow_clone().zero_());
        let out = mlp.forward(&x).abs().max().double_value(&[]);
        assert_eq!(out, 0.0, "zeroing the buffer must zero every weight, output max |y| = {out}");
        assert!(vs.trainable_variables().iter().all(Tensor::requires_grad));
    }

    #[test]
    fn adam_takes_the_same_steps_as_libtorch_adam() {
        let (vs_ref, mlp_ref) = mlp_store(1);
        let (mut vs, mlp) = mlp_store(2);
        // Same starting point, whatever other tests drew from the generator meanwhile.
        vs.copy(&vs_ref).unwrap();
        let mut reference = nn::Adam::default().build(&vs_ref, 3e-3).unwrap();
        let mut params = FlatParams::new(&vs).unwrap();
        let mut opt = Adam::new(&params, 3e-3).unwrap();
        let x = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([16, 2], (Kind::Float, Device::Cpu));
        for step in 1..=20 {
            reference.backward_step(&(mlp_ref.forward(&x) - &y).square().mean(None));
            let grad = params.grad(&(mlp.forward(&x) - &y).square().mean(None)).unwrap();
            opt.step(&mut params, &grad).unwrap();
            let (a, b) = (vs_ref.variables(), vs.variables());
            for (name, t) in &a {
                let diff = max_diff(t, &b[name]);
                assert!(
                    diff < 1e-6,
                    "after {step} steps '{name}' differs from libtorch's by {diff}"
                );
            }
        }
        assert_eq!(opt.steps(), 20);
    }

    #[test]
    fn column_major_weights_keep_their_layout_and_take_the_same_steps() {
        let (vs_ref, mlp_ref) = mlp_store(5);
        let (mut vs, mlp) = mlp_store(6);
        vs.copy(&vs_ref).unwrap();
        column_major(&vs).unwrap();
        let mut reference = nn::Adam::default().build(&vs_ref, 3e-3).unwrap();
        let mut params = FlatParams::new(&vs).unwrap();
        let mut opt = Adam::new(&params, 3e-3).unwrap();
        let vars = vs.variables();
        let w = &vars["fc0.weight"];
        assert_eq!((w.size(), w.stride()), (vec![8, 3], vec![1, 8]), "fc0.weight not column-major");
        assert!(vars["fc0.bias"].is_contiguous(), "vectors stay as they are");
        // The buffer holds the matrix in its memory order: fc0.bias (8), then fc0.weight by columns.
        let block = params.values().narrow(0, 8, 24).view([3, 8]);
        assert_eq!(
            max_diff(&block, &w.tr()),
            0.0,
            "the buffer is not in the weight's memory order"
        );
        let x = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([16, 2], (Kind::Float, Device::Cpu));
        for step in 1..=10 {
            reference.backward_step(&(mlp_ref.forward(&x) - &y).square().mean(None));
            let grad = params.grad(&(mlp.forward(&x) - &y).square().mean(None)).unwrap();
            opt.step(&mut params, &grad).unwrap();
            for (name, t) in &vs_ref.variables() {
                let diff = max_diff(t, &vars[name]);
                assert!(diff < 1e-6, "after {step} steps '{name}' differs by {diff}");
            }
        }
        assert!(!vars["fc1.weight"].is_contiguous(), "stepping lost the column-major layout");
    }

    #[test]
    fn a_reloaded_adam_continues_exactly_where_the_saved_one_was() {
        let (vs, mlp) = mlp_store(4);
        let mut params = FlatParams::new(&vs).unwrap();
        let mut opt = Adam::new(&params, 1e-2).unwrap();
        let x = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        let loss = |m: &Mlp| m.forward(&x).square().mean(None);
        for _ in 0..3 {
            let grad = params.grad(&loss(&mlp)).unwrap();
            opt.step(&mut params, &grad).unwrap();
        }
        let saved_values = params.values().copy();
        let saved = opt.state("adam");
        let names: Vec<&str> = saved.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["adam/exp_avg", "adam/exp_avg_sq", "adam/steps"]);

        // A second network and optimizer, loaded with the saved values and state.
        let (vs2, mlp2) = mlp_store(5);
        let mut params2 = FlatParams::new(&vs2).unwrap();
        tch::no_grad(|| params2.values().shallow_clone().copy_(&saved_values));
        let mut opt2 = Adam::new(&params2, 1e-2).unwrap();
        opt2.load_state("adam", &saved).unwrap();
        for step in 0..3 {
            let grad = params.grad(&loss(&mlp)).unwrap();
            opt.step(&mut params, &grad).unwrap();
            let grad2 = params2.grad(&loss(&mlp2)).unwrap();
            opt2.step(&mut params2, &grad2).unwrap();
            let diff = max_diff(params.values(), params2.values());
            assert_eq!(diff, 0.0, "step {step} after reloading differs by {diff}");
        }
        let wrong =
            vec![("adam/exp_avg".to_owned(), Tensor::zeros([3], (Kind::Float, Device::Cpu)))];
        let err = opt2.load_state("adam", &wrong).unwrap_err().to_string();
        assert!(err.contains("adam/exp_avg"), "error must name the tensor: {err}");
    }

    #[test]
    fn scalar_adam_matches_flat_adam_and_reloads_exactly() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _x = vs.root().var("x", &[1], nn::Init::Const(0.5));
        let mut params = FlatParams::new(&vs).unwrap();
        let mut opt = Adam::new(&params, 0.1).unwrap();
        let mut scalar = ScalarAdam::new(0.1);
        let mut value = 0.5;
        for g in [1.0, -0.3, 2.5, 0.0, -1.0] {
            opt.step(&mut params, &Tensor::from_slice(&[g as f32])).unwrap();
            value = scalar.step(value, g);
            let flat = params.values().double_value(&[0]);
            assert!((flat - value).abs() < 1e-6, "scalar Adam at {value}, flat Adam at {flat}");
        }
        let mut reloaded = ScalarAdam::new(0.1);
        reloaded.load_state("alpha", &scalar.state("alpha")).unwrap();
        assert_eq!(reloaded, scalar, "a reloaded scalar Adam must equal the saved one");
    }

    #[test]
    fn polyak_moves_a_fraction_tau_of_the_way() {
        let (vs_a, _a) = mlp_store(2);
        let (vs_b, _b) = mlp_store(3);
        let a = FlatParams::new(&vs_a).unwrap();
        let mut b = FlatParams::new(&vs_b).unwrap();
        let start = b.values().copy();
        b.polyak_toward(&a, 0.25).unwrap();
        let expected = &start * 0.75 + a.values() * 0.25;
        let diff = max_diff(b.values(), &expected);
        assert!(diff < 1e-6, "Polyak step off by {diff}");
        b.copy_from(&a).unwrap();
        assert_eq!(max_diff(b.values(), a.values()), 0.0);
    }

    #[test]
    fn clipping_rescales_only_gradients_above_the_limit() {
        let g = Tensor::from_slice(&[3.0f32, 4.0]);
        let (clipped, norm) = clip_grad_norm(g.shallow_clone(), 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6, "norm {norm} != 5");
        let after = clipped.norm().double_value(&[]);
        assert!((after - 1.0).abs() < 1e-5, "clipped norm {after} != 1");
        let (kept, _) = clip_grad_norm(g.shallow_clone(), 0.0).unwrap();
        assert_eq!(max_diff(&kept, &g), 0.0, "0 must disable clipping");
    }
}
