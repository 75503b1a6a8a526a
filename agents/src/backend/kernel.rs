//! The plain-Rust CPU kernel: every primitive a loop over `f32`s, recorded on a tape, and a
//! backward pass that walks the tape in reverse applying each primitive's slope ([`super::ops`])
//! and the MLPs' hand-written backward pass (`rlpg_kernel::mlp`).
//!
//! Memory is recycled: [`Backend::begin`] returns every node's buffer to a pool, and the next
//! computation (the same update again, in the same order) takes them back, so a warm update
//! allocates next to nothing.
//!
//! Each node records which networks' parameters it depends on (a bit per network), so a
//! gradient with respect to one network visits only the nodes on a path from its parameters
//! to the loss: the actor's loss flows through the critic into the action, and the critic's
//! parameters get no gradient and cost no product.

use std::sync::Arc;

use rlpg_kernel::{DenseMlp, Trace};
use tch::{Device, Kind, Tensor};

use super::{Backend, BackendKind, Binary, Ops, Rowwise, Unary};
use crate::agent::AgentError;
use crate::optim::{SharedValues, clip_grad_norm_cpu, lerp};
use crate::scaffold::{Finite, Net};

/// A matrix on the kernel's tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(u32);

/// What produced a node, and what its backward pass needs.
#[derive(Debug)]
enum Op {
    /// Data, a random draw, a detached value: no inputs.
    Leaf,
    /// An MLP of network `net` at input `x`; its activations are in `traces[trace]`.
    Mlp {
        x: Var,
        net: u8,
        theta: SharedValues,
        mlp: Arc<DenseMlp>,
        trace: usize,
    },
    /// A parameter vector of network `net`, `[1, len]`, at `offset` in its buffer.
    Param {
        net: u8,
        offset: usize,
    },
    Unary {
        op: Unary,
        x: Var,
    },
    Binary {
        op: Binary,
        a: Var,
        b: Var,
    },
    Rowwise {
        op: Rowwise,
        x: Var,
    },
    Cols {
        x: Var,
        start: usize,
    },
    Reshape {
        x: Var,
    },
    Concat {
        a: Var,
        b: Var,
    },
    Gather {
        x: Var,
        index: Vec<usize>,
    },
    Rows {
        x: Var,
        index: Vec<usize>,
    },
    Mean {
        x: Var,
    },
}

#[derive(Debug)]
struct Node {
    op: Op,
    rows: usize,
    cols: usize,
    value: Vec<f32>,
    /// Bit `k` set: the value depends on network `k`'s parameters.
    deps: u64,
}

/// The CPU kernel: primitives as plain-Rust loops on a tape, differentiated by walking it
/// backwards (see [`crate::backend`]).
#[derive(Debug)]
pub struct Kernel {
    nodes: Vec<Node>,
    /// Buffers of finished computations, reused.
    free: Vec<Vec<f32>>,
    traces: Vec<Trace>,
    free_traces: Vec<Trace>,
    grad_enabled: bool,
    /// The backward pass's gradient per node (empty: none yet).
    grads: Vec<Vec<f32>>,
    /// An MLP's input gradient during the backward pass.
    d_input: Vec<f32>,
    /// The gradient of [`Backend::step`].
    step_grad: Vec<f32>,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            traces: Vec::new(),
            free_traces: Vec::new(),
            grad_enabled: true,
            grads: Vec::new(),
            d_input: Vec::new(),
            step_grad: Vec::new(),
        }
    }
}

/// A buffer of `len` zeros from the pool.
fn take(free: &mut Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut v = free.pop().unwrap_or_default();
    v.clear();
    v.resize(len, 0.0);
    v
}

/// Index of `(i, j)` in an operand of shape `(rows, cols)` broadcast to a larger matrix.
#[inline]
fn broadcast_at(rows: usize, cols: usize, i: usize, j: usize) -> usize {
    let i = if rows == 1 { 0 } else { i };
    let j = if cols == 1 { 0 } else { j };
    i * cols + j
}

impl Kernel {
    fn push(&mut self, op: Op, rows: usize, cols: usize, value: Vec<f32>, deps: u64) -> Var {
        debug_assert_eq!(value.len(), rows * cols);
        let deps = if self.grad_enabled { deps } else { 0 };
        self.nodes.push(Node { op, rows, cols, value, deps });
        Var((self.nodes.len() - 1) as u32)
    }

    fn node(&self, x: Var) -> &Node {
        &self.nodes[x.0 as usize]
    }

    /// A leaf holding `len` values written by `fill`.
    fn leaf(&mut self, rows: usize, cols: usize, fill: impl FnOnce(&mut [f32])) -> Var {
        let mut value = take(&mut self.free, rows * cols);
        fill(&mut value);
        self.push(Op::Leaf, rows, cols, value, 0)
    }

    fn draw(&mut self, rows: usize, cols: usize, normal: bool) -> Result<Var, AgentError> {
        let shape = [rows as i64, cols as i64];
        let options = (Kind::Float, Device::Cpu);
        let t =
            if normal { Tensor::f_randn(shape, options)? } else { Tensor::f_rand(shape, options)? };
        let mut value = take(&mut self.free, rows * cols);
        t.f_copy_data(&mut value, rows * cols)?;
        Ok(self.push(Op::Leaf, rows, cols, value, 0))
    }

    /// Backpropagates the `[1, 1]` `loss` to network `net`'s parameters, adding their
    /// gradient into `param_grad` (as long as the network's buffer).
    fn backward(&mut self, loss: Var, net: u8, param_grad: &mut [f32]) -> Result<(), AgentError> {
        let Kernel { nodes, free, traces, grads, d_input, .. } = self;
        let last = loss.0 as usize;
        let loss_node = &nodes[last];
        if loss_node.rows * loss_node.cols != 1 {
            return Err(AgentError::Invalid(format!(
                "a loss must be one number, got a {} × {} matrix",
                loss_node.rows, loss_node.cols
            )));
        }
        let bit = 1u64 << net;
        for g in grads.iter_mut() {
            if !g.is_empty() {
                free.push(std::mem::take(g));
            }
        }
        grads.resize_with(nodes.len(), Vec::new);
        grads[last] = take(free, 1);
        grads[last][0] = 1.0;
        // The gradient buffer of input `x`, zeroed on first use.
        fn acc<'g>(
            grads: &'g mut [Vec<f32>],
            free: &mut Vec<Vec<f32>>,
            nodes: &[Node],
            x: Var,
        ) -> &'g mut [f32] {
            let i = x.0 as usize;
            if grads[i].is_empty() {
                grads[i] = take(free, nodes[i].rows * nodes[i].cols);
            }
            &mut grads[i]
        }
        let wants = |x: Var| nodes[x.0 as usize].deps & bit != 0;
        for i in (0..=last).rev() {
            if grads[i].is_empty() || nodes[i].deps & bit == 0 {
                continue;
            }
            let g = std::mem::take(&mut grads[i]);
            let node = &nodes[i];
            let (rows, cols) = (node.rows, node.cols);
            match &node.op {
                Op::Leaf => {}
                Op::Param { net: owner, offset } => {
                    if *owner == net {
                        for (p, &d) in param_grad[*offset..*offset + cols].iter_mut().zip(&g) {
                            *p += d;
                        }
                    }
                }
                Op::Mlp { x, net: owner, theta, mlp, trace } => {
                    let want_input = wants(*x);
                    let own = *owner == net;
                    if want_input || own {
                        let theta = theta.values()?;
                        let xv = &nodes[x.0 as usize].value;
                        let grad = if own { Some(&mut *param_grad) } else { None };
                        let d_in = if want_input { Some(&mut *d_input) } else { None };
                        mlp.backward(theta, xv, &mut traces[*trace], &g, grad, d_in);
                        if want_input {
                            let gx = acc(grads, free, nodes, *x);
                            gx.iter_mut().zip(d_input.iter()).for_each(|(a, &b)| *a += b);
                        }
                    }
                }
                Op::Unary { op, x } => {
                    if wants(*x) {
                        let xv = &nodes[x.0 as usize].value;
                        let gx = acc(grads, free, nodes, *x);
                        for e in 0..g.len() {
                            gx[e] += g[e] * op.slope(xv[e], node.value[e]);
                        }
                    }
                }
                Op::Binary { op, a, b } => {
                    let (na, nb) = (&nodes[a.0 as usize], &nodes[b.0 as usize]);
                    let (want_a, want_b) = (wants(*a), wants(*b));
                    let same =
                        na.rows == rows && na.cols == cols && nb.rows == rows && nb.cols == cols;
                    // Each operand's gradient: the same loop, reading its slope.
                    for (side, x, wanted) in [(0, *a, want_a), (1, *b, want_b)] {
                        if !wanted {
                            continue;
                        }
                        let gx = acc(grads, free, nodes, x);
                        for i in 0..rows {
                            for j in 0..cols {
                                let e = i * cols + j;
                                let (ia, ib) = if same {
                                    (e, e)
                                } else {
                                    (
                                        broadcast_at(na.rows, na.cols, i, j),
                                        broadcast_at(nb.rows, nb.cols, i, j),
                                    )
                                };
                                let (sa, sb) = op.slopes(na.value[ia], nb.value[ib], node.value[e]);
                                let (at, slope) = if side == 0 { (ia, sa) } else { (ib, sb) };
                                gx[at] += g[e] * slope;
                            }
                        }
                    }
                }
                Op::Rowwise { op, x } => {
                    if wants(*x) {
                        let in_cols = nodes[x.0 as usize].cols;
                        let gx = acc(grads, free, nodes, *x);
                        for r in 0..rows {
                            op.backward(
                                &node.value[r * cols..(r + 1) * cols],
                                &g[r * cols..(r + 1) * cols],
                                &mut gx[r * in_cols..(r + 1) * in_cols],
                            );
                        }
                    }
                }
                Op::Reshape { x } => {
                    if wants(*x) {
                        let gx = acc(grads, free, nodes, *x);
                        gx.iter_mut().zip(&g).for_each(|(a, &b)| *a += b);
                    }
                }
                Op::Cols { x, start } => {
                    if wants(*x) {
                        let in_cols = nodes[x.0 as usize].cols;
                        let gx = acc(grads, free, nodes, *x);
                        for r in 0..rows {
                            let dst = &mut gx[r * in_cols + start..r * in_cols + start + cols];
                            dst.iter_mut()
                                .zip(&g[r * cols..(r + 1) * cols])
                                .for_each(|(a, &b)| *a += b);
                        }
                    }
                }
                Op::Concat { a, b } => {
                    let ca = nodes[a.0 as usize].cols;
                    for (x, offset, width) in [(*a, 0, ca), (*b, ca, cols - ca)] {
                        if wants(x) {
                            let gx = acc(grads, free, nodes, x);
                            for r in 0..rows {
                                let src = &g[r * cols + offset..r * cols + offset + width];
                                let dst = &mut gx[r * width..(r + 1) * width];
                                dst.iter_mut().zip(src).for_each(|(a, &b)| *a += b);
                            }
                        }
                    }
                }
                Op::Gather { x, index } => {
                    if wants(*x) {
                        let in_cols = nodes[x.0 as usize].cols;
                        let gx = acc(grads, free, nodes, *x);
                        for (r, &c) in index.iter().enumerate() {
                            gx[r * in_cols + c] += g[r];
                        }
                    }
                }
                Op::Rows { x, index } => {
                    if wants(*x) {
                        let gx = acc(grads, free, nodes, *x);
                        for (k, &r) in index.iter().enumerate() {
                            let dst = &mut gx[r * cols..(r + 1) * cols];
                            dst.iter_mut()
                                .zip(&g[k * cols..(k + 1) * cols])
                                .for_each(|(a, &b)| *a += b);
                        }
                    }
                }
                Op::Mean { x } => {
                    if wants(*x) {
                        let n = nodes[x.0 as usize].value.len();
                        let d = g[0] / n as f32;
                        acc(grads, free, nodes, *x).iter_mut().for_each(|v| *v += d);
                    }
                }
            }
            free.push(g);
        }
        Ok(())
    }
}

impl Ops for Kernel {
    type M = Var;

    fn kind(&self) -> BackendKind {
        BackendKind::Kernel
    }

    fn begin(&mut self) {
        for node in self.nodes.drain(..) {
            self.free.push(node.value);
        }
        self.free_traces.append(&mut self.traces);
        for g in self.grads.iter_mut() {
            if !g.is_empty() {
                self.free.push(std::mem::take(g));
            }
        }
        self.grad_enabled = true;
    }

    fn shape(&self, x: &Var) -> (usize, usize) {
        let n = self.node(*x);
        (n.rows, n.cols)
    }

    fn alias(&self, x: &Var) -> Var {
        *x
    }

    fn constant(&mut self, rows: usize, cols: usize, data: &[f32]) -> Result<Var, AgentError> {
        if data.len() != rows * cols {
            return Err(AgentError::Invalid(format!(
                "{} values for a {rows} × {cols} matrix",
                data.len()
            )));
        }
        Ok(self.leaf(rows, cols, |v| v.copy_from_slice(data)))
    }

    fn tensor(&mut self, t: &Tensor) -> Result<Var, AgentError> {
        let (rows, cols) = match t.size().as_slice() {
            [r, c] => (*r as usize, *c as usize),
            shape => {
                return Err(AgentError::Invalid(format!("a matrix must be 2-D, got {shape:?}")));
            }
        };
        let values = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
        let mut value = take(&mut self.free, rows * cols);
        values.f_copy_data(&mut value, rows * cols)?;
        Ok(self.push(Op::Leaf, rows, cols, value, 0))
    }

    fn normal(&mut self, rows: usize, cols: usize) -> Result<Var, AgentError> {
        self.draw(rows, cols, true)
    }

    fn uniform(&mut self, rows: usize, cols: usize) -> Result<Var, AgentError> {
        self.draw(rows, cols, false)
    }

    fn permutation(&mut self, n: usize) -> Result<Vec<usize>, AgentError> {
        let order = Tensor::f_randperm(n as i64, (Kind::Int64, Device::Cpu))?;
        let order = Vec::<i64>::try_from(&order.f_to_device(Device::Cpu)?)?;
        Ok(order.into_iter().map(|i| i as usize).collect())
    }

    fn unary(&mut self, op: Unary, x: &Var) -> Var {
        let n = &self.nodes[x.0 as usize];
        let (rows, cols, deps) = (n.rows, n.cols, n.deps);
        let mut value = take(&mut self.free, rows * cols);
        let xv = &self.nodes[x.0 as usize].value;
        for (y, &v) in value.iter_mut().zip(xv) {
            *y = op.value(v);
        }
        self.push(Op::Unary { op, x: *x }, rows, cols, value, deps)
    }

    fn binary(&mut self, op: Binary, a: &Var, b: &Var) -> Var {
        let (na, nb) = (&self.nodes[a.0 as usize], &self.nodes[b.0 as usize]);
        let rows = na.rows.max(nb.rows);
        let cols = na.cols.max(nb.cols);
        let fits = |n: &Node| (n.rows == rows || n.rows == 1) && (n.cols == cols || n.cols == 1);
        assert!(
            fits(na) && fits(nb),
            "cannot broadcast {} × {} with {} × {}",
            na.rows,
            na.cols,
            nb.rows,
            nb.cols
        );
        let deps = na.deps | nb.deps;
        let mut value = take(&mut self.free, rows * cols);
        let (na, nb) = (&self.nodes[a.0 as usize], &self.nodes[b.0 as usize]);
        if na.value.len() == value.len() && nb.value.len() == value.len() {
            for ((y, &p), &q) in value.iter_mut().zip(&na.value).zip(&nb.value) {
                *y = op.value(p, q);
            }
        } else {
            for i in 0..rows {
                for j in 0..cols {
                    let p = na.value[broadcast_at(na.rows, na.cols, i, j)];
                    let q = nb.value[broadcast_at(nb.rows, nb.cols, i, j)];
                    value[i * cols + j] = op.value(p, q);
                }
            }
        }
        self.push(Op::Binary { op, a: *a, b: *b }, rows, cols, value, deps)
    }

    fn rowwise(&mut self, op: Rowwise, x: &Var) -> Var {
        let n = &self.nodes[x.0 as usize];
        let (rows, in_cols, deps) = (n.rows, n.cols, n.deps);
        let cols = op.out_cols(in_cols);
        let mut value = take(&mut self.free, rows * cols);
        let xv = &self.nodes[x.0 as usize].value;
        for r in 0..rows {
            op.value(&xv[r * in_cols..(r + 1) * in_cols], &mut value[r * cols..(r + 1) * cols]);
        }
        self.push(Op::Rowwise { op, x: *x }, rows, cols, value, deps)
    }

    fn reshape(&mut self, x: &Var, rows: usize, cols: usize) -> Var {
        let n = &self.nodes[x.0 as usize];
        assert_eq!(n.rows * n.cols, rows * cols, "reshape changes the number of values");
        let deps = n.deps;
        let mut value = take(&mut self.free, rows * cols);
        value.copy_from_slice(&self.nodes[x.0 as usize].value);
        self.push(Op::Reshape { x: *x }, rows, cols, value, deps)
    }

    fn cols(&mut self, x: &Var, start: usize, len: usize) -> Var {
        let n = &self.nodes[x.0 as usize];
        let (rows, in_cols, deps) = (n.rows, n.cols, n.deps);
        assert!(start + len <= in_cols, "columns {start}..{} of {in_cols}", start + len);
        let mut value = take(&mut self.free, rows * len);
        let xv = &self.nodes[x.0 as usize].value;
        for r in 0..rows {
            value[r * len..(r + 1) * len]
                .copy_from_slice(&xv[r * in_cols + start..r * in_cols + start + len]);
        }
        self.push(Op::Cols { x: *x, start }, rows, len, value, deps)
    }

    fn concat_cols(&mut self, a: &Var, b: &Var) -> Var {
        let (na, nb) = (&self.nodes[a.0 as usize], &self.nodes[b.0 as usize]);
        assert_eq!(na.rows, nb.rows, "concatenated matrices differ in rows");
        let (rows, ca, cb, deps) = (na.rows, na.cols, nb.cols, na.deps | nb.deps);
        let cols = ca + cb;
        let mut value = take(&mut self.free, rows * cols);
        let (na, nb) = (&self.nodes[a.0 as usize], &self.nodes[b.0 as usize]);
        for r in 0..rows {
            value[r * cols..r * cols + ca].copy_from_slice(&na.value[r * ca..(r + 1) * ca]);
            value[r * cols + ca..(r + 1) * cols].copy_from_slice(&nb.value[r * cb..(r + 1) * cb]);
        }
        self.push(Op::Concat { a: *a, b: *b }, rows, cols, value, deps)
    }

    fn gather_cols(&mut self, x: &Var, index: &[usize]) -> Var {
        let n = &self.nodes[x.0 as usize];
        let (rows, cols, deps) = (n.rows, n.cols, n.deps);
        assert_eq!(index.len(), rows, "one index per row");
        let mut value = take(&mut self.free, rows);
        let xv = &self.nodes[x.0 as usize].value;
        for (r, &c) in index.iter().enumerate() {
            assert!(c < cols, "column {c} of {cols}");
            value[r] = xv[r * cols + c];
        }
        self.push(Op::Gather { x: *x, index: index.to_vec() }, rows, 1, value, deps)
    }

    fn select_rows(&mut self, x: &Var, index: &[usize]) -> Var {
        let n = &self.nodes[x.0 as usize];
        let (rows, cols, deps) = (n.rows, n.cols, n.deps);
        let mut value = take(&mut self.free, index.len() * cols);
        let xv = &self.nodes[x.0 as usize].value;
        for (k, &r) in index.iter().enumerate() {
            assert!(r < rows, "row {r} of {rows}");
            value[k * cols..(k + 1) * cols].copy_from_slice(&xv[r * cols..(r + 1) * cols]);
        }
        self.push(Op::Rows { x: *x, index: index.to_vec() }, index.len(), cols, value, deps)
    }

    fn mean(&mut self, x: &Var) -> Var {
        let n = &self.nodes[x.0 as usize];
        let deps = n.deps;
        // Summed in f64 and rounded once: libtorch's CPU reduction is pairwise in f32, so the
        // two agree to rounding either way, and this is the closer to the exact mean.
        let mean = n.value.iter().map(|&v| f64::from(v)).sum::<f64>() / n.value.len().max(1) as f64;
        let mut value = take(&mut self.free, 1);
        value[0] = mean as f32;
        self.push(Op::Mean { x: *x }, 1, 1, value, deps)
    }

    fn detach(&mut self, x: &Var) -> Var {
        let n = &self.nodes[x.0 as usize];
        let (rows, cols) = (n.rows, n.cols);
        let mut value = take(&mut self.free, rows * cols);
        value.copy_from_slice(&self.nodes[x.0 as usize].value);
        self.push(Op::Leaf, rows, cols, value, 0)
    }

    fn no_grad<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = std::mem::replace(&mut self.grad_enabled, false);
        let result = f(self);
        self.grad_enabled = before;
        result
    }

    fn to_host(&mut self, x: &Var, out: &mut Vec<f32>) -> Result<(), AgentError> {
        out.clear();
        out.extend_from_slice(&self.node(*x).value);
        Ok(())
    }
}

impl Backend for Kernel {
    fn mlp<O>(&mut self, net: &Net<O>, mlp: usize, x: &Var) -> Var {
        let layout = Arc::clone(&net.mlps[mlp].dense);
        let theta = net.params.shared();
        let values = match theta.values() {
            Ok(values) => values,
            Err(e) => panic!("the kernel's networks live on the CPU: {e}"),
        };
        let mut trace = self.free_traces.pop().unwrap_or_default();
        let (rows, deps) = (self.node(*x).rows, self.node(*x).deps);
        let out = layout.forward(values, &self.nodes[x.0 as usize].value, rows, &mut trace);
        let mut value = take(&mut self.free, out.len());
        value.copy_from_slice(out);
        self.traces.push(trace);
        let cols = layout.out_dim();
        let op = Op::Mlp { x: *x, net: net.id, theta, mlp: layout, trace: self.traces.len() - 1 };
        self.push(op, rows, cols, value, deps | 1 << net.id)
    }

    fn param<O>(&mut self, net: &Net<O>, name: &str) -> Var {
        let Some(segment) = net.params.segment(name) else {
            panic!("network has no parameter '{name}'")
        };
        let (offset, len) = (segment.offset, segment.shape.iter().product::<usize>());
        let values = match net.params.cpu_values() {
            Ok(values) => &values[offset..offset + len],
            Err(e) => panic!("the kernel's networks live on the CPU: {e}"),
        };
        let mut value = take(&mut self.free, len);
        value.copy_from_slice(values);
        self.push(Op::Param { net: net.id, offset }, 1, len, value, 1 << net.id)
    }

    fn gradient(&mut self, loss: &Var, net: &Net, out: &mut Vec<f32>) -> Result<(), AgentError> {
        out.clear();
        out.resize(net.params.numel(), 0.0);
        self.backward(*loss, net.id, out)
    }

    fn step(
        &mut self,
        loss: &Var,
        net: &mut Net,
        max_grad_norm: f64,
        guard: Finite,
        norm_tag: &str,
    ) -> Result<f64, AgentError> {
        let mut grad = std::mem::take(&mut self.step_grad);
        let result = self.gradient(loss, net, &mut grad).and_then(|()| {
            let norm = clip_grad_norm_cpu(&mut grad, max_grad_norm);
            guard.check(norm_tag, norm)?;
            net.opt.step_cpu(&mut net.params, &grad)?;
            Ok(norm)
        });
        self.step_grad = grad;
        result
    }

    fn polyak<O>(
        &mut self,
        target: &mut Net<()>,
        source: &Net<O>,
        tau: f64,
    ) -> Result<(), AgentError> {
        let source = source.params.cpu_values()?;
        let target = target.params.cpu_values_mut()?;
        if source.len() != target.len() {
            return Err(AgentError::Invalid(format!(
                "Polyak averaging of {} parameters toward {}",
                target.len(),
                source.len()
            )));
        }
        let tau = tau as f32;
        rlpg_kernel::simd::wide(
            #[inline(always)]
            || {
                for (t, &s) in target.iter_mut().zip(source) {
                    *t = lerp(*t, s, tau);
                }
            },
        );
        Ok(())
    }
}
