//! Forward and backward passes of small MLPs in plain Rust, straight on a [`FlatParams`] buffer.
//!
//! Why: a classic-control network (4 inputs, 64×64 hidden, 2 outputs, minibatch 128) needs
//! about 0.6 MFLOP per forward pass, which one core does in a few microseconds, but libtorch
//! spends a fixed few microseconds on every operation and about as much again on autograd's
//! bookkeeping, so an update built from tensor operations costs several times its arithmetic.
//! Here a layer is one matrix product (`matrixmultiply`'s sgemm, about 100 GFLOP/s on
//! 128×64×64 products on one core) plus plain loops for the bias and the activation, on memory
//! reused from one call to the next.
//!
//! The networks are the ones [`crate::networks::Mlp`] builds (`fc0, fc1, …` then `out`), read
//! where their variables live in the flat buffer; whether a weight is stored row- or
//! column-major is a matter of strides. The passes compute what autograd computes up to float
//! rounding (summation order): the tests compare them on every activation.

use crate::agent::AgentError;
use crate::optim::FlatParams;
use crate::settings::Activation;

/// Runs `$body` with `$a` bound to a constant equal to `$act`, so that the activation's `match`
/// is resolved once per call rather than once per element, and loops over elements vectorize.
macro_rules! with_activation {
    ($act:expr, $a:ident => $body:expr) => {
        match $act {
            Activation::Tanh => {
                const $a: Activation = Activation::Tanh;
                $body
            }
            Activation::Relu => {
                const $a: Activation = Activation::Relu;
                $body
            }
            Activation::Elu => {
                const $a: Activation = Activation::Elu;
                $body
            }
            Activation::LeakyRelu => {
                const $a: Activation = Activation::LeakyRelu;
                $body
            }
            Activation::Silu => {
                const $a: Activation = Activation::Silu;
                $body
            }
        }
    };
}

/// A matrix inside a slice: element `(i, j)` of a `rows × cols` matrix is at
/// `offset + i·row_stride + j·col_stride`.
#[derive(Clone, Copy, Debug)]
struct View {
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl View {
    /// A row-major `rows × cols` matrix at the start of a slice.
    fn dense(rows: usize, cols: usize) -> Self {
        Self { offset: 0, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transposed matrix (no copy).
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// One past the largest index the matrix touches (0 for an empty one).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }
}

/// `c ← a · b + beta · c` for matrices inside slices.
///
/// # Panics
/// If the shapes do not chain or a matrix reaches past its slice: a bug in this module.
fn gemm(a: &[f32], av: View, b: &[f32], bv: View, beta: f32, c: &mut [f32], cv: View) {
    assert!(av.cols == bv.rows && av.rows == cv.rows && bv.cols == cv.cols, "gemm shapes");
    assert!(av.end() <= a.len() && bv.end() <= b.len() && cv.end() <= c.len(), "gemm bounds");
    if cv.rows == 0 || cv.cols == 0 {
        return;
    }
    let stride = |s: usize| s as isize;
    // SAFETY: the asserts above keep every index the product touches inside its slice; `c` is
    // borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            av.rows,
            av.cols,
            bv.cols,
            1.0,
            a.as_ptr().add(av.offset),
            stride(av.row_stride),
            stride(av.col_stride),
            b.as_ptr().add(bv.offset),
            stride(bv.row_stride),
            stride(bv.col_stride),
            beta,
            c.as_mut_ptr().add(cv.offset),
            stride(cv.row_stride),
            stride(cv.col_stride),
        );
    }
}

/// Where one linear layer `y = x·Wᵀ + b` (`W` is `[out, in]`) lives in the buffer.
#[derive(Clone, Debug)]
struct Layer {
    /// `Wᵀ`, `[in, out]`, inside the buffer.
    weight_t: View,
    /// Offset of the `out` biases.
    bias: usize,
}

impl Layer {
    fn in_dim(&self) -> usize {
        self.weight_t.rows
    }

    fn out_dim(&self) -> usize {
        self.weight_t.cols
    }
}

/// An MLP's layout in a flat parameter buffer, and its passes.
#[derive(Clone, Debug)]
pub(crate) struct DenseMlp {
    layers: Vec<Layer>,
    activation: Activation,
}

/// A forward pass's intermediate values, kept for the backward pass, and the backward pass's
/// working memory: reused from call to call, so that passes allocate nothing once grown.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    rows: usize,
    /// Each layer's pre-activation `x·Wᵀ + b`, `[rows, out]`; the last is the output.
    pre: Vec<Vec<f32>>,
    /// Each hidden layer's activation, `[rows, out]`.
    post: Vec<Vec<f32>>,
    /// The gradient with respect to the current layer's output, and the next one's.
    grad: [Vec<f32>; 2],
}

impl Trace {
    /// The output of the last forward pass, `[rows, out_dim]` row-major.
    pub(crate) fn output(&self) -> &[f32] {
        self.pre.last().map_or(&[], |v| v.as_slice())
    }
}

impl DenseMlp {
    /// The MLP whose variables are `{prefix}fc0.weight`, `{prefix}fc0.bias`, …,
    /// `{prefix}out.weight`, `{prefix}out.bias` in `params` (as [`crate::networks::Mlp`] names
    /// them under a path: `prefix` is `""` at the store's root, `"q1."` under `q1`), with
    /// `activation` after every hidden layer.
    pub(crate) fn find(
        params: &FlatParams,
        prefix: &str,
        activation: Activation,
    ) -> Result<Self, AgentError> {
        let missing = |name: &str| {
            AgentError::Invalid(format!("no parameter '{name}' in the network's flat buffer"))
        };
        let layer = |name: &str| -> Result<Layer, AgentError> {
            let weight_name = format!("{prefix}{name}.weight");
            let bias_name = format!("{prefix}{name}.bias");
            let w = params.segment(&weight_name).ok_or_else(|| missing(&weight_name))?;
            let b = params.segment(&bias_name).ok_or_else(|| missing(&bias_name))?;
            let (out, inp) = match w.shape.as_slice() {
                [out, inp] => (*out, *inp),
                shape => {
                    return Err(AgentError::Invalid(format!(
                        "parameter '{weight_name}' has shape {shape:?}, expected a matrix"
                    )));
                }
            };
            if b.shape != [out] {
                return Err(AgentError::Invalid(format!(
                    "parameter '{bias_name}' has shape {:?}, expected [{out}]",
                    b.shape
                )));
            }
            // `W` [out, in] row-major is at `o·in + i`; column-major, at `o + i·out`.
            let weight = if w.column_major {
                View { offset: w.offset, rows: out, cols: inp, row_stride: 1, col_stride: out }
            } else {
                View { offset: w.offset, rows: out, cols: inp, row_stride: inp, col_stride: 1 }
            };
            Ok(Layer { weight_t: weight.t(), bias: b.offset })
        };
        let mut layers = Vec::new();
        while params.segment(&format!("{prefix}fc{}.weight", layers.len())).is_some() {
            layers.push(layer(&format!("fc{}", layers.len()))?);
        }
        layers.push(layer("out")?);
        if let Some(i) = (1..layers.len()).find(|&i| layers[i].in_dim() != layers[i - 1].out_dim())
        {
            return Err(AgentError::Invalid(format!(
                "layer {i} of '{prefix}' takes {} inputs but the layer before gives {}",
                layers[i].in_dim(),
                layers[i - 1].out_dim()
            )));
        }
        Ok(Self { layers, activation })
    }

    /// Inputs per row.
    pub(crate) fn in_dim(&self) -> usize {
        self.layers[0].in_dim()
    }

    /// Outputs per row.
    pub(crate) fn out_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].out_dim()
    }

    /// The outputs at `rows` input rows `x` (`[rows, in_dim]`, row-major) with parameters
    /// `theta` (the whole flat buffer), kept in `trace` ([`Trace::output`]) with what
    /// [`DenseMlp::backward`] needs.
    ///
    /// # Panics
    /// If `x` is not `rows × in_dim` values, or `theta` is not the buffer the layout was read
    /// from.
    pub(crate) fn forward<'t>(
        &self,
        theta: &[f32],
        x: &[f32],
        rows: usize,
        trace: &'t mut Trace,
    ) -> &'t [f32] {
        assert_eq!(x.len(), rows * self.in_dim(), "input is not {rows} rows of {}", self.in_dim());
        let depth = self.layers.len();
        trace.rows = rows;
        trace.pre.resize_with(depth, Vec::new);
        trace.post.resize_with(depth - 1, Vec::new);
        for (l, layer) in self.layers.iter().enumerate() {
            let out = layer.out_dim();
            let mut pre = std::mem::take(&mut trace.pre[l]);
            pre.clear();
            let bias = &theta[layer.bias..layer.bias + out];
            for _ in 0..rows {
                pre.extend_from_slice(bias);
            }
            let input = if l == 0 { x } else { trace.post[l - 1].as_slice() };
            let iv = View::dense(rows, layer.in_dim());
            gemm(input, iv, theta, layer.weight_t, 1.0, &mut pre, View::dense(rows, out));
            if l + 1 < depth {
                let post = &mut trace.post[l];
                post.resize(pre.len(), 0.0);
                with_activation!(self.activation, A => {
                    for (h, &z) in post.iter_mut().zip(&pre) {
                        *h = A.apply_f32(z);
                    }
                });
            }
            trace.pre[l] = pre;
        }
        trace.output()
    }

    /// Backpropagates `d_out`, the loss's gradient with respect to the outputs of the forward
    /// pass in `trace` on inputs `x`: the gradient with respect to this network's parameters
    /// goes into `grad` when given (a buffer as long as `theta`, at the same offsets; other
    /// entries are left alone), the gradient with respect to the inputs, `[rows, in_dim]`,
    /// into `d_input` when given. Products that neither needs are skipped.
    ///
    /// # Panics
    /// If the shapes do not match the forward pass in `trace`.
    pub(crate) fn backward(
        &self,
        theta: &[f32],
        x: &[f32],
        trace: &mut Trace,
        d_out: &[f32],
        mut grad: Option<&mut [f32]>,
        d_input: Option<&mut Vec<f32>>,
    ) {
        let rows = trace.rows;
        assert_eq!(d_out.len(), rows * self.out_dim(), "output gradient shape");
        if let Some(grad) = &grad {
            assert_eq!(grad.len(), theta.len(), "gradient buffer length");
        }
        let [g, next] = &mut trace.grad;
        g.clear();
        g.extend_from_slice(d_out);
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (inp, out) = (layer.in_dim(), layer.out_dim());
            if let Some(grad) = grad.as_deref_mut() {
                let input = if l == 0 { x } else { trace.post[l - 1].as_slice() };
                // ∂L/∂Wᵀ = inputᵀ · g, written where Wᵀ's values are.
                let iv = View::dense(rows, inp).t();
                gemm(input, iv, g, View::dense(rows, out), 0.0, grad, layer.weight_t);
                // ∂L/∂b: the column sums of g.
                let db = &mut grad[layer.bias..layer.bias + out];
                db.fill(0.0);
                for row in g.chunks_exact(out) {
                    for (d, &v) in db.iter_mut().zip(row) {
                        *d += v;
                    }
                }
            }
            if l == 0 && d_input.is_none() {
                break;
            }
            // ∂L/∂(this layer's input) = g · W.
            next.clear();
            next.resize(rows * inp, 0.0);
            let wv = layer.weight_t.t();
            gemm(g, View::dense(rows, out), theta, wv, 0.0, next, View::dense(rows, inp));
            if l == 0 {
                if let Some(d_input) = d_input {
                    d_input.clear();
                    d_input.extend_from_slice(next);
                }
                break;
            }
            // Through the previous layer's activation.
            let (pre, post) = (&trace.pre[l - 1], &trace.post[l - 1]);
            with_activation!(self.activation, A => {
                for ((d, &z), &h) in next.iter_mut().zip(pre).zip(post) {
                    *d *= A.derivative_f32(z, h);
                }
            });
            std::mem::swap(g, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networks::{LayerInit, Mlp};
    use crate::optim::column_major;
    use tch::{Device, Kind, Tensor, nn, nn::Module};

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// An MLP in a store laid out row- or column-major, flattened.
    fn network(activation: Activation, column: bool) -> (nn::VarStore, Mlp, FlatParams) {
        tch::manual_seed(3);
        let store = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&(store.root() / "q1"), 5, &[16, 12], 3, activation, LayerInit::Pytorch);
        if column {
            column_major(&store).expect("layout");
        }
        let params = FlatParams::new(&store).expect("flat");
        (store, mlp, params)
    }

    #[test]
    fn passes_match_autograd_for_every_activation_and_layout() {
        let activations = [
            Activation::Tanh,
            Activation::Relu,
            Activation::Elu,
            Activation::LeakyRelu,
            Activation::Silu,
        ];
        for activation in activations {
            for column in [false, true] {
                let (_store, mlp, params) = network(activation, column);
                let dense = DenseMlp::find(&params, "q1.", activation).expect("layout");
                assert_eq!((dense.in_dim(), dense.out_dim()), (5, 3));
                let rows = 7;
                let x = Tensor::randn([rows, 5], (Kind::Float, Device::Cpu));
                let weights = Tensor::randn([rows, 3], (Kind::Float, Device::Cpu));
                let y = mlp.forward(&x);
                let loss = (&y * &weights).sum(Kind::Float);
                let expected_grad =
                    Vec::<f32>::try_from(&params.grad(&loss).expect("grad")).expect("values");

                let xs = Vec::<f32>::try_from(&x.view([-1])).expect("x");
                let d_out = Vec::<f32>::try_from(&weights.view([-1])).expect("d_out");
                let theta = params.cpu_values().expect("values");
                let mut trace = Trace::default();
                let out = dense.forward(theta, &xs, rows as usize, &mut trace).to_vec();
                let expected = Vec::<f32>::try_from(&y.detach().view([-1])).expect("y");
                let what = format!("{activation:?}, column-major {column}");
                assert!(max_abs_diff(&out, &expected) < 1e-5, "forward, {what}");
                let mut grad = vec![f32::NAN; theta.len()];
                let mut d_input = Vec::new();
                dense.backward(theta, &xs, &mut trace, &d_out, Some(&mut grad), Some(&mut d_input));
                assert!(max_abs_diff(&grad, &expected_grad) < 1e-4, "backward, {what}");
                let x_grad = x.set_requires_grad(true);
                let loss = (mlp.forward(&x_grad) * &weights).sum(Kind::Float);
                let expected_input =
                    Tensor::run_backward(&[loss], &[&x_grad], false, false).remove(0);
                let expected_input = Vec::<f32>::try_from(&expected_input.view([-1])).expect("dx");
                assert!(max_abs_diff(&d_input, &expected_input) < 1e-4, "input gradient, {what}");
                // The input gradient alone, without the parameters'.
                let mut again = Vec::new();
                dense.forward(theta, &xs, rows as usize, &mut trace);
                dense.backward(theta, &xs, &mut trace, &d_out, None, Some(&mut again));
                assert_eq!(again, d_input, "input gradient alone, {what}");
            }
        }
    }

    #[test]
    fn a_network_missing_from_the_buffer_is_an_error_naming_the_variable() {
        let (_store, _mlp, params) = network(Activation::Relu, true);
        let err = DenseMlp::find(&params, "q2.", Activation::Relu).expect_err("no q2");
        assert!(err.to_string().contains("q2.out.weight"), "{err}");
    }
}
