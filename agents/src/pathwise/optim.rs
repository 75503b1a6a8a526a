//! One contiguous parameter buffer per network, and Adam on it.
//!
//! An off-policy agent steps three optimizers and two Polyak averages on every environment step,
//! over networks of a few small layers. Done per parameter tensor (as libtorch's optimizers do),
//! that is about 60 tiny kernel launches per network per update, which cost more than the
//! matrix products on small networks. So each network's parameters are moved into one flat
//! buffer once, at construction ([`FlatParams`]); the network's layers keep working on views of
//! it, and Adam, gradient norms and Polyak averaging become a handful of operations on one
//! tensor whatever the number of layers.

use tch::{Device, Kind, Tensor, nn};

use crate::agent::AgentError;

/// The trainable variables of one `VarStore`, re-pointed into one contiguous buffer.
///
/// The variables stay the store's own (same names, still leaves that require gradients, still
/// used by the network's layers); only their storage now lives inside [`FlatParams::flat`], in
/// the order of their names. Writing to the buffer therefore writes to the network.
#[derive(Debug)]
pub(crate) struct FlatParams {
    /// The trainable variables, sorted by name.
    vars: Vec<Tensor>,
    /// `[numel]` the buffer holding every variable's values; does not require gradients.
    flat: Tensor,
}

impl FlatParams {
    /// Moves every trainable variable of `store` into one new buffer (values unchanged).
    pub(crate) fn new(store: &nn::VarStore) -> Result<Self, AgentError> {
        let mut named: Vec<(String, Tensor)> =
            store.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let numel: usize = named.iter().map(|(_, t)| t.numel()).sum();
        let flat = Tensor::f_zeros([numel as i64], (Kind::Float, Device::Cpu))?;
        let mut offset = 0i64;
        let mut vars = Vec::with_capacity(named.len());
        tch::no_grad(|| -> Result<(), AgentError> {
            for (name, mut var) in named {
                if var.kind() != Kind::Float {
                    return Err(AgentError::Invalid(format!(
                        "parameter '{name}' is {:?}; flat parameters must all be Float",
                        var.kind()
                    )));
                }
                let n = var.numel() as i64;
                let view = flat.f_narrow(0, offset, n)?.f_view(var.size().as_slice())?;
                view.shallow_clone().f_copy_(&var)?;
                // `set_data` swaps the storage under the variable while keeping its identity as
                // an autograd leaf, so the layers holding it now read from `flat`.
                var.f_set_data(&view)?;
                vars.push(var);
                offset += n;
            }
            Ok(())
        })?;
        Ok(Self { vars, flat })
    }

    /// The buffer of all parameter values, `[numel]` (for tests that watch what changes).
    #[cfg(test)]
    pub(crate) fn values(&self) -> &Tensor {
        &self.flat
    }

    /// Number of parameters.
    pub(crate) fn numel(&self) -> usize {
        self.flat.numel()
    }

    /// The gradient of scalar `loss` with respect to every parameter, flattened like
    /// [`FlatParams::flat`]. Only the gradients of these parameters are computed: other networks
    /// the loss flows through (a critic under an actor loss) get none, and nothing is
    /// accumulated into any `.grad`.
    pub(crate) fn grad(&self, loss: &Tensor) -> Result<Tensor, AgentError> {
        let grads = Tensor::f_run_backward(&[loss], &self.vars, false, false)?;
        let mut flat = Vec::with_capacity(grads.len());
        for (g, var) in grads.iter().zip(&self.vars) {
            // A parameter the loss does not depend on gets an undefined gradient: zero.
            flat.push(if g.defined() {
                g.f_reshape([-1])?
            } else {
                var.f_zeros_like()?.f_reshape([-1])?
            });
        }
        Ok(Tensor::f_cat(&flat, 0)?)
    }

    /// Overwrites these parameters with `source`'s (same network shape).
    pub(crate) fn copy_from(&mut self, source: &FlatParams) -> Result<(), AgentError> {
        tch::no_grad(|| self.flat.f_copy_(&source.flat))?;
        Ok(())
    }

    /// Polyak averaging toward `source`: `θ ← (1 − τ) θ + τ θ_source`.
    pub(crate) fn polyak_toward(
        &mut self,
        source: &FlatParams,
        tau: f64,
    ) -> Result<(), AgentError> {
        let _ = tch::no_grad(|| self.flat.f_lerp_(&source.flat, tau))?;
        Ok(())
    }
}

/// Adam's first-moment decay (PyTorch's default).
const BETA1: f64 = 0.9;
/// Adam's second-moment decay (PyTorch's default).
const BETA2: f64 = 0.999;
/// Adam's denominator guard (PyTorch's default).
const EPS: f64 = 1e-8;

/// Adam (Kingma & Ba), as PyTorch computes it, on a [`FlatParams`] buffer.
#[derive(Debug)]
pub(crate) struct Adam {
    lr: f64,
    steps: i32,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Adam {
    /// Adam with learning rate `lr` for `params`, moments at zero.
    pub(crate) fn new(params: &FlatParams, lr: f64) -> Result<Self, AgentError> {
        let zeros = || Tensor::f_zeros([params.numel() as i64], (Kind::Float, Device::Cpu));
        Ok(Self { lr, steps: 0, exp_avg: zeros()?, exp_avg_sq: zeros()? })
    }

    /// One step on `params` with the flat gradient `grad`.
    pub(crate) fn step(
        &mut self,
        params: &mut FlatParams,
        grad: &Tensor,
    ) -> Result<(), AgentError> {
        self.steps += 1;
        let bias1 = 1.0 - BETA1.powi(self.steps);
        let bias2 = 1.0 - BETA2.powi(self.steps);
        tch::no_grad(|| -> Result<(), tch::TchError> {
            let _ = self.exp_avg.f_lerp_(grad, 1.0 - BETA1)?;
            let _ = self.exp_avg_sq.f_lerp_(&grad.f_square()?, 1.0 - BETA2)?;
            // θ ← θ − lr / bias1 · m / (√v / √bias2 + ε), PyTorch's order of operations.
            let mut denom = self.exp_avg_sq.f_sqrt()?;
            let _ = denom.f_mul_scalar_(1.0 / bias2.sqrt())?;
            let _ = denom.f_add_scalar_(EPS)?;
            let step = self.exp_avg.f_mul_scalar(-self.lr / bias1)?;
            let _ = params.flat.f_addcdiv_(&step, &denom)?;
            Ok(())
        })?;
        Ok(())
    }
}

/// Adam on a single `f64` (the entropy temperature's logarithm), with PyTorch's arithmetic: a
/// libtorch optimizer step on one number costs more than the number's whole update.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScalarAdam {
    lr: f64,
    steps: i32,
    exp_avg: f64,
    exp_avg_sq: f64,
}

impl ScalarAdam {
    /// Adam with learning rate `lr`, moments at zero.
    pub(crate) fn new(lr: f64) -> Self {
        Self { lr, steps: 0, exp_avg: 0.0, exp_avg_sq: 0.0 }
    }

    /// The parameter after one step from `value` with gradient `grad`.
    pub(crate) fn step(&mut self, value: f64, grad: f64) -> f64 {
        self.steps += 1;
        self.exp_avg = BETA1 * self.exp_avg + (1.0 - BETA1) * grad;
        self.exp_avg_sq = BETA2 * self.exp_avg_sq + (1.0 - BETA2) * grad * grad;
        let bias1 = 1.0 - BETA1.powi(self.steps);
        let bias2 = 1.0 - BETA2.powi(self.steps);
        let denom = self.exp_avg_sq.sqrt() / bias2.sqrt() + EPS;
        value - self.lr / bias1 * self.exp_avg / denom
    }
}

/// Global L2 norm of a flat gradient, and the gradient scaled down to `max_norm` when it is
/// larger and `max_norm > 0` (0 disables clipping).
pub(crate) fn clip_grad_norm(grad: Tensor, max_norm: f64) -> Result<(Tensor, f64), AgentError> {
    let norm = grad.f_norm()?.f_double_value(&[])?;
    if max_norm > 0.0 && norm > max_norm {
        Ok((grad.f_mul_scalar(max_norm / (norm + 1e-6))?, norm))
    } else {
        Ok((grad, norm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networks::{LayerInit, Mlp};
    use crate::settings::Activation;
    use tch::nn::{Module, OptimizerConfig};

    fn mlp_store(seed: i64) -> (nn::VarStore, Mlp) {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), 3, &[8, 5], 2, Activation::Tanh, LayerInit::TorchDefault);
        (vs, mlp)
    }

    #[test]
    fn flattening_keeps_the_values_and_the_network_reads_the_buffer() {
        let (vs, mlp) = mlp_store(0);
        let x = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let before = mlp.forward(&x);
        let mut flat = FlatParams::new(&vs).unwrap();
        assert_eq!(flat.numel(), 3 * 8 + 8 + 8 * 5 + 5 + 5 * 2 + 2);
        let diff = (mlp.forward(&x) - &before).abs().max().double_value(&[]);
        assert_eq!(diff, 0.0, "flattening changed the network's output by {diff}");
        let _ = tch::no_grad(|| flat.flat.zero_());
        let out = mlp.forward(&x).abs().max().double_value(&[]);
        assert_eq!(out, 0.0, "zeroing the buffer must zero every weight, output max |y| = {out}");
        assert!(vs.trainable_variables().iter().all(Tensor::requires_grad));
    }

    #[test]
    fn flat_adam_takes_the_same_steps_as_libtorch_adam() {
        let (vs_ref, mlp_ref) = mlp_store(1);
        let (vs, mlp) = mlp_store(1);
        let mut opt_ref = nn::Adam::default().build(&vs_ref, 3e-3).unwrap();
        let mut params = FlatParams::new(&vs).unwrap();
        let mut opt = Adam::new(&params, 3e-3).unwrap();
        let x = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([16, 2], (Kind::Float, Device::Cpu));
        for _ in 0..5 {
            let loss = (mlp_ref.forward(&x) - &y).square().mean(None);
            opt_ref.backward_step(&loss);
            let loss = (mlp.forward(&x) - &y).square().mean(None);
            let grad = params.grad(&loss).unwrap();
            opt.step(&mut params, &grad).unwrap();
        }
        let (a, b) = (vs_ref.variables(), vs.variables());
        for (name, t) in &a {
            let diff = (t - &b[name]).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "after 5 Adam steps '{name}' differs from libtorch's by {diff}");
        }
    }

    #[test]
    fn scalar_adam_matches_flat_adam_on_a_one_element_buffer() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _x = vs.root().var("x", &[1], nn::Init::Const(0.5));
        let mut params = FlatParams::new(&vs).unwrap();
        let mut opt = Adam::new(&params, 0.1).unwrap();
        let mut scalar = ScalarAdam::new(0.1);
        let mut value = 0.5;
        for g in [1.0, -0.3, 2.5, 0.0, -1.0] {
            opt.step(&mut params, &Tensor::from_slice(&[g as f32])).unwrap();
            value = scalar.step(value, g);
            let flat = params.flat.double_value(&[0]);
            assert!((flat - value).abs() < 1e-6, "scalar Adam at {value}, flat Adam at {flat}");
        }
    }

    #[test]
    fn polyak_moves_a_fraction_tau_of_the_way() {
        let (vs_a, _a) = mlp_store(2);
        let (vs_b, _b) = mlp_store(3);
        let a = FlatParams::new(&vs_a).unwrap();
        let mut b = FlatParams::new(&vs_b).unwrap();
        let start = b.flat.copy();
        b.polyak_toward(&a, 0.25).unwrap();
        let expected = &start * 0.75 + &a.flat * 0.25;
        let diff = (&b.flat - expected).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "Polyak step off by {diff}");
        b.copy_from(&a).unwrap();
        assert_eq!((&b.flat - &a.flat).abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn clipping_rescales_only_gradients_above_the_limit() {
        let g = Tensor::from_slice(&[3.0f32, 4.0]);
        let (clipped, norm) = clip_grad_norm(g.shallow_clone(), 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6, "norm {norm} != 5");
        let after = clipped.norm().double_value(&[]);
        assert!((after - 1.0).abs() < 1e-5, "clipped norm {after} != 1");
        let (kept, _) = clip_grad_norm(g.shallow_clone(), 0.0).unwrap();
        assert_eq!((kept - g).abs().max().double_value(&[]), 0.0, "0 must disable clipping");
    }
}
