//! The libtorch backend: each primitive a tensor operation, gradients by autograd. The
//! reference, and the backend for other devices.

use tch::{Device, Kind, Tensor};

use super::{Backend, BackendKind, Binary, Ops, Rowwise, Unary};
use crate::agent::AgentError;
use crate::optim::clip_grad_norm;
use crate::scaffold::{Finite, Net};

/// The libtorch backend on one device: each primitive a tensor operation, gradients by autograd
/// (see [`crate::backend`]).
#[derive(Debug)]
pub struct Torch {
    device: Device,
}

impl Torch {
    /// The backend with constants and draws on `device`.
    pub fn new(device: Device) -> Self {
        Self { device }
    }

    fn index(&self, index: &[usize]) -> Tensor {
        let index: Vec<i64> = index.iter().map(|&i| i as i64).collect();
        Tensor::from_slice(&index).to_device(self.device)
    }
}

impl Ops for Torch {
    type M = Tensor;

    fn kind(&self) -> BackendKind {
        BackendKind::Libtorch
    }

    fn begin(&mut self) {}

    fn shape(&self, x: &Tensor) -> (usize, usize) {
        match x.size().as_slice() {
            [r, c] => (*r as usize, *c as usize),
            shape => panic!("backend matrices are 2-D, got a tensor of shape {shape:?}"),
        }
    }

    fn alias(&self, x: &Tensor) -> Tensor {
        x.shallow_clone()
    }

    fn constant(&mut self, rows: usize, cols: usize, data: &[f32]) -> Result<Tensor, AgentError> {
        if data.len() != rows * cols {
            return Err(AgentError::Invalid(format!(
                "{} values for a {rows} × {cols} matrix",
                data.len()
            )));
        }
        Ok(Tensor::from_slice(data).f_view([rows as i64, cols as i64])?.f_to_device(self.device)?)
    }

    fn tensor(&mut self, t: &Tensor) -> Result<Tensor, AgentError> {
        if t.dim() != 2 {
            return Err(AgentError::Invalid(format!("a matrix must be 2-D, got {:?}", t.size())));
        }
        Ok(t.f_to_device(self.device)?)
    }

    fn normal(&mut self, rows: usize, cols: usize) -> Result<Tensor, AgentError> {
        Ok(Tensor::f_randn([rows as i64, cols as i64], (Kind::Float, self.device))?)
    }

    fn uniform(&mut self, rows: usize, cols: usize) -> Result<Tensor, AgentError> {
        Ok(Tensor::f_rand([rows as i64, cols as i64], (Kind::Float, self.device))?)
    }

    fn permutation(&mut self, n: usize) -> Result<Vec<usize>, AgentError> {
        let order = Tensor::f_randperm(n as i64, (Kind::Int64, self.device))?;
        let order = Vec::<i64>::try_from(&order.f_to_device(Device::Cpu)?)?;
        Ok(order.into_iter().map(|i| i as usize).collect())
    }

    fn unary(&mut self, op: Unary, x: &Tensor) -> Tensor {
        op.tensor(x)
    }

    fn binary(&mut self, op: Binary, a: &Tensor, b: &Tensor) -> Tensor {
        op.tensor(a, b)
    }

    fn rowwise(&mut self, op: Rowwise, x: &Tensor) -> Tensor {
        op.tensor(x)
    }

    fn reshape(&mut self, x: &Tensor, rows: usize, cols: usize) -> Tensor {
        x.reshape([rows as i64, cols as i64])
    }

    fn cols(&mut self, x: &Tensor, start: usize, len: usize) -> Tensor {
        x.narrow(1, start as i64, len as i64)
    }

    fn concat_cols(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        // Built column-major: the rows often feed a network whose first layer is narrow (an
        // observation and an action, 3 to 17 wide), and MKL takes its fast products for that
        // layer's gradients when the input is column-major (see `optim::column_major`).
        Tensor::cat(&[a.tr(), b.tr()], 0).tr()
    }

    fn gather_cols(&mut self, x: &Tensor, index: &[usize]) -> Tensor {
        x.gather(1, &self.index(index).view([-1, 1]), false)
    }

    fn select_rows(&mut self, x: &Tensor, index: &[usize]) -> Tensor {
        x.index_select(0, &self.index(index))
    }

    fn mean(&mut self, x: &Tensor) -> Tensor {
        x.mean(None).view([1, 1])
    }

    fn detach(&mut self, x: &Tensor) -> Tensor {
        x.detach()
    }

    fn no_grad<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let _guard = tch::no_grad_guard();
        f(self)
    }

    fn to_host(&mut self, x: &Tensor, out: &mut Vec<f32>) -> Result<(), AgentError> {
        let n = x.numel();
        out.clear();
        out.resize(n, 0.0);
        let values = x.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
        values.f_contiguous()?.f_copy_data(out, n)?;
        Ok(())
    }
}

impl Backend for Torch {
    fn mlp<O>(&mut self, net: &Net<O>, mlp: usize, x: &Tensor) -> Tensor {
        net.mlps[mlp].forward_tensor(x)
    }

    fn param<O>(&mut self, net: &Net<O>, name: &str) -> Tensor {
        match net.params.var(name) {
            Some(var) => var.view([1, -1]),
            None => panic!("network has no parameter '{name}'"),
        }
    }

    fn gradient(&mut self, loss: &Tensor, net: &Net, out: &mut Vec<f32>) -> Result<(), AgentError> {
        let grad = net.params.grad_keeping_graph(loss)?;
        self.to_host(&grad, out)
    }

    fn step(
        &mut self,
        loss: &Tensor,
        net: &mut Net,
        max_grad_norm: f64,
        guard: Finite,
        norm_tag: &str,
    ) -> Result<f64, AgentError> {
        let grad = net.params.grad(loss)?;
        let (grad, norm) = clip_grad_norm(grad, max_grad_norm)?;
        guard.check(norm_tag, norm)?;
        net.opt.step(&mut net.params, &grad)?;
        Ok(norm)
    }

    fn polyak<O>(
        &mut self,
        target: &mut Net<()>,
        source: &Net<O>,
        tau: f64,
    ) -> Result<(), AgentError> {
        target.params.polyak_toward(&source.params, tau)
    }
}
