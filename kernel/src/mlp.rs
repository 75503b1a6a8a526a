//! Multi-layer perceptrons read straight from a flat parameter buffer: the forward pass, and
//! the backward pass written out by hand (the gradient with respect to the parameters and/or
//! the inputs).
//!
//! Why: a classic-control network (4 inputs, 64×64 hidden, 2 outputs, minibatch 128) needs
//! about 0.6 MFLOP per forward pass, which one core does in a few microseconds, but libtorch
//! spends a fixed few microseconds on every operation and about as much again on autograd's
//! bookkeeping. Here a layer is one matrix product ([`crate::gemm`]) plus plain loops for the
//! bias and the activation, on memory reused from one call to the next.
//!
//! The layout is rlpg's: layers `fc0, fc1, …` each followed by the activation, then a linear
//! output layer `out`, each a weight `[out, in]` and a bias `[out]`, found by name in the buffer
//! ([`DenseMlp::find`]); whether a weight is stored row- or column-major is a matter of strides.
//! The passes compute what autograd computes up to float rounding (summation order).

use crate::Activation;
use crate::gemm::{View, gemm};

/// Where one named tensor lives in a flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of its first value in the buffer.
    pub offset: usize,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether a matrix is stored column-major (transposed) rather than row-major.
    pub column_major: bool,
}

/// Why an MLP could not be read from a buffer: a missing tensor, or shapes that do not chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayoutError {}

/// Where one layer `y = act(x·Wᵀ + b)` lives in a buffer, and its activation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// The weight `W`, `[out, in]` (row- or column-major).
    pub weight: Segment,
    /// Offset of the `out` biases.
    pub bias: usize,
    /// The nonlinearity after the layer (`None`: linear, as an output layer is).
    pub activation: Option<Activation>,
}

/// Where one linear layer `y = x·Wᵀ + b` (`W` is `[out, in]`) lives in the buffer.
#[derive(Clone, Debug)]
struct Layer {
    /// `Wᵀ`, `[in, out]`, inside the buffer.
    weight_t: View,
    /// Offset of the `out` biases.
    bias: usize,
    activation: Option<Activation>,
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
pub struct DenseMlp {
    layers: Vec<Layer>,
}

/// A forward pass's intermediate values, kept for the backward pass, and the backward pass's
/// working memory: reused from call to call, so that passes allocate nothing once grown.
#[derive(Debug, Default)]
pub struct Trace {
    rows: usize,
    /// Each layer's output `act(x·Wᵀ + b)` (or `x·Wᵀ + b` for a linear layer), `[rows, out]`.
    out: Vec<Vec<f32>>,
    /// Each layer's pre-activation `x·Wᵀ + b`, `[rows, out]`, kept only for activations whose
    /// slope cannot be read off their output ([`Activation::slope_needs_input`]); empty
    /// otherwise.
    pre: Vec<Vec<f32>>,
    /// The gradient with respect to the current layer's output, and the next one's.
    grad: [Vec<f32>; 2],
}

impl Trace {
    /// The output of the last forward pass, `[rows, out_dim]` row-major.
    pub fn output(&self) -> &[f32] {
        self.out.last().map_or(&[], Vec::as_slice)
    }

    /// Rows of the last forward pass.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl DenseMlp {
    /// The MLP whose tensors are `{prefix}fc0.weight`, `{prefix}fc0.bias`, …,
    /// `{prefix}out.weight`, `{prefix}out.bias`, located by `lookup` (a name to its
    /// [`Segment`]), with `activation` after every hidden layer. Errors name a missing tensor,
    /// a weight that is not a matrix, a bias of the wrong length, or layers that do not chain.
    pub fn find(
        lookup: &dyn Fn(&str) -> Option<Segment>,
        prefix: &str,
        activation: Activation,
    ) -> Result<Self, LayoutError> {
        let missing = |name: &str| LayoutError(format!("no parameter '{name}' in the buffer"));
        let layer =
            |name: &str, activation: Option<Activation>| -> Result<LayerSpec, LayoutError> {
                let weight_name = format!("{prefix}{name}.weight");
                let bias_name = format!("{prefix}{name}.bias");
                let weight = lookup(&weight_name).ok_or_else(|| missing(&weight_name))?;
                let bias = lookup(&bias_name).ok_or_else(|| missing(&bias_name))?;
                if bias.shape.len() != 1 || weight.shape.first() != bias.shape.first() {
                    return Err(LayoutError(format!(
                        "parameter '{bias_name}' has shape {:?}, expected [{}]",
                        bias.shape,
                        weight.shape.first().copied().unwrap_or(0)
                    )));
                }
                Ok(LayerSpec { weight, bias: bias.offset, activation })
            };
        let mut layers = Vec::new();
        while lookup(&format!("{prefix}fc{}.weight", layers.len())).is_some() {
            layers.push(layer(&format!("fc{}", layers.len()), Some(activation))?);
        }
        layers.push(layer("out", None)?);
        Self::from_layers(&layers).map_err(|e| LayoutError(format!("'{prefix}': {e}")))
    }

    /// The MLP of `layers`, input side first. Errors on a weight that is not a matrix, an
    /// empty list, or layers that do not chain.
    pub fn from_layers(layers: &[LayerSpec]) -> Result<Self, LayoutError> {
        if layers.is_empty() {
            return Err(LayoutError("an MLP needs at least one layer".into()));
        }
        let mut built = Vec::with_capacity(layers.len());
        for (i, spec) in layers.iter().enumerate() {
            let w = &spec.weight;
            let (out, inp) = match w.shape.as_slice() {
                [out, inp] => (*out, *inp),
                shape => {
                    return Err(LayoutError(format!(
                        "the weight of layer {i} has shape {shape:?}, expected a matrix"
                    )));
                }
            };
            // `W` [out, in] row-major is at `o·in + i`; column-major, at `o + i·out`.
            let weight = if w.column_major {
                View { offset: w.offset, rows: out, cols: inp, row_stride: 1, col_stride: out }
            } else {
                View { offset: w.offset, rows: out, cols: inp, row_stride: inp, col_stride: 1 }
            };
            built.push(Layer {
                weight_t: weight.t(),
                bias: spec.bias,
                activation: spec.activation,
            });
        }
        if let Some(i) = (1..built.len()).find(|&i| built[i].in_dim() != built[i - 1].out_dim()) {
            return Err(LayoutError(format!(
                "layer {i} takes {} inputs but the layer before gives {}",
                built[i].in_dim(),
                built[i - 1].out_dim()
            )));
        }
        Ok(Self { layers: built })
    }

    /// Inputs per row.
    pub fn in_dim(&self) -> usize {
        self.layers[0].in_dim()
    }

    /// Outputs per row.
    pub fn out_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].out_dim()
    }

    /// One past the largest buffer index the layout reads: a buffer shorter than this cannot be
    /// the one it was read from.
    pub fn extent(&self) -> usize {
        let layers = self.layers.iter();
        layers.map(|l| l.weight_t.end().max(l.bias + l.out_dim())).max().unwrap_or(0)
    }

    /// Multiply-adds of one forward pass per row (for FLOP counts).
    pub fn macs_per_row(&self) -> usize {
        self.layers.iter().map(|l| l.in_dim() * l.out_dim()).sum()
    }

    /// The outputs at `rows` input rows `x` (`[rows, in_dim]`, row-major) with parameters
    /// `theta` (the whole flat buffer), kept in `trace` ([`Trace::output`]) with what
    /// [`DenseMlp::backward`] needs.
    ///
    /// # Panics
    /// If `x` is not `rows × in_dim` values, or `theta` is shorter than [`DenseMlp::extent`].
    pub fn forward<'t>(
        &self,
        theta: &[f32],
        x: &[f32],
        rows: usize,
        trace: &'t mut Trace,
    ) -> &'t [f32] {
        assert_eq!(x.len(), rows * self.in_dim(), "input is not {rows} rows of {}", self.in_dim());
        let depth = self.layers.len();
        trace.rows = rows;
        trace.out.resize_with(depth, Vec::new);
        trace.pre.resize_with(depth, Vec::new);
        for (l, layer) in self.layers.iter().enumerate() {
            let width = layer.out_dim();
            let (done, rest) = trace.out.split_at_mut(l);
            let y = &mut rest[0];
            // Every value is overwritten (the product ignores what was there), so a buffer of
            // the right length is reused as it is.
            y.resize(rows * width, 0.0);
            let input = if l == 0 { x } else { &done[l - 1] };
            let iv = View::dense(rows, layer.in_dim());
            gemm(input, iv, theta, layer.weight_t, 0.0, y, View::dense(rows, width));
            // One pass over the product: the bias, then the activation, in place.
            let bias = &theta[layer.bias..layer.bias + width];
            let pre = &mut trace.pre[l];
            crate::simd::wide(
                #[inline(always)]
                || match layer.activation {
                    Some(activation) if activation.slope_needs_input() => {
                        pre.resize(rows * width, 0.0);
                        for (p, y) in pre.chunks_exact_mut(width).zip(y.chunks_exact_mut(width)) {
                            activation.bias_apply_keep(bias, y, p);
                        }
                    }
                    Some(activation) => {
                        pre.clear();
                        for y in y.chunks_exact_mut(width) {
                            activation.bias_apply(bias, y);
                        }
                    }
                    None => {
                        pre.clear();
                        for y in y.chunks_exact_mut(width) {
                            y.iter_mut().zip(bias).for_each(|(y, &b)| *y += b);
                        }
                    }
                },
            );
        }
        trace.output()
    }

    /// Backpropagates `d_out`, the loss's gradient with respect to the outputs of the forward
    /// pass in `trace` on inputs `x`: the gradient with respect to this network's parameters is
    /// **added** into `grad` when given (a buffer as long as `theta`, at the same offsets;
    /// other entries are left alone), the gradient with respect to the inputs, `[rows,
    /// in_dim]`, is written into `d_input` when given. Products that neither needs are skipped.
    ///
    /// # Panics
    /// If the shapes do not match the forward pass in `trace`.
    pub fn backward(
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
        let Trace { out: outputs, pre, grad: [g, next], .. } = trace;
        // The two gradient buffers only grow: each pass works on a prefix (`g[..len]`), and
        // every value of a prefix is written before it is read, so no pass zeroes memory.
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        };
        let mut len = d_out.len();
        grow(g, len);
        g[..len].copy_from_slice(d_out);
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (inp, width) = (layer.in_dim(), layer.out_dim());
            let gl = &mut g[..len];
            // Through this layer's activation, to its pre-activation.
            if let Some(activation) = layer.activation {
                let input = if pre[l].is_empty() { &outputs[l] } else { &pre[l] };
                let output = &outputs[l];
                crate::simd::wide(
                    #[inline(always)]
                    || activation.backward_slice(input, output, gl),
                );
            }
            let input: &[f32] = if l == 0 { x } else { &outputs[l - 1] };
            if let Some(grad) = grad.as_deref_mut() {
                // ∂L/∂Wᵀ += inputᵀ · g, where Wᵀ's values are.
                let iv = View::dense(rows, inp).t();
                gemm(input, iv, gl, View::dense(rows, width), 1.0, grad, layer.weight_t);
                // ∂L/∂b += the column sums of g.
                let db = &mut grad[layer.bias..layer.bias + width];
                crate::simd::wide(
                    #[inline(always)]
                    || {
                        for row in gl.chunks_exact(width) {
                            for (d, &v) in db.iter_mut().zip(row) {
                                *d += v;
                            }
                        }
                    },
                );
            }
            if l == 0 && d_input.is_none() {
                break;
            }
            // ∂L/∂(this layer's input) = g · W, every value overwritten.
            let next_len = rows * inp;
            grow(next, next_len);
            let wv = layer.weight_t.t();
            let dv = View::dense(rows, inp);
            gemm(gl, View::dense(rows, width), theta, wv, 0.0, &mut next[..next_len], dv);
            if l == 0 {
                if let Some(d_input) = d_input {
                    d_input.clear();
                    d_input.extend_from_slice(&next[..next_len]);
                }
                break;
            }
            std::mem::swap(g, next);
            len = next_len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A 3-layer MLP in a buffer, row- or column-major, with deterministic values.
    fn network(column_major: bool) -> (HashMap<String, Segment>, Vec<f32>) {
        let dims = [(4, 3), (5, 4), (2, 5)]; // (out, in)
        let names = ["fc0", "fc1", "out"];
        let mut segments = HashMap::new();
        let mut theta = Vec::new();
        for (name, (out, inp)) in names.iter().zip(dims) {
            segments.insert(
                format!("{name}.weight"),
                Segment { offset: theta.len(), shape: vec![out, inp], column_major },
            );
            theta.extend((0..out * inp).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0));
            segments.insert(
                format!("{name}.bias"),
                Segment { offset: theta.len(), shape: vec![out], column_major: false },
            );
            theta.extend((0..out).map(|i| i as f32 / 10.0 - 0.2));
        }
        (segments, theta)
    }

    /// `act` by the book, in f64.
    fn act64(act: Activation, z: f64) -> f64 {
        match act {
            Activation::Tanh => z.tanh(),
            Activation::Relu => z.max(0.0),
            Activation::Elu => {
                if z > 0.0 {
                    z
                } else {
                    z.exp_m1()
                }
            }
            Activation::LeakyRelu => {
                if z > 0.0 {
                    z
                } else {
                    0.01 * z
                }
            }
            Activation::Silu => z / (1.0 + (-z).exp()),
        }
    }

    /// The forward pass by the book, in f64, weights read as `[out, in]`.
    fn reference(
        theta: &[f32],
        segments: &HashMap<String, Segment>,
        x: &[f32],
        act: Activation,
    ) -> Vec<f64> {
        let mut h: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        for (i, name) in ["fc0", "fc1", "out"].iter().enumerate() {
            let w = &segments[&format!("{name}.weight")];
            let b = &segments[&format!("{name}.bias")];
            let (out, inp) = (w.shape[0], w.shape[1]);
            let at = |o: usize, k: usize| {
                if w.column_major {
                    theta[w.offset + o + k * out]
                } else {
                    theta[w.offset + o * inp + k]
                }
            };
            h = (0..out)
                .map(|o| {
                    let z = f64::from(theta[b.offset + o])
                        + (0..inp).map(|k| f64::from(at(o, k)) * h[k]).sum::<f64>();
                    if i < 2 { act64(act, z) } else { z }
                })
                .collect();
        }
        h
    }

    #[test]
    fn forward_matches_the_definition_and_backward_matches_finite_differences() {
        for (column_major, act) in
            [false, true].into_iter().flat_map(|c| Activation::ALL.map(|a| (c, a)))
        {
            let (segments, theta) = network(column_major);
            let lookup = |name: &str| segments.get(name).cloned();
            let mlp = DenseMlp::find(&lookup, "", act).expect("layout");
            assert_eq!((mlp.in_dim(), mlp.out_dim(), mlp.extent()), (3, 2, theta.len()));
            let x = [0.3f32, -0.7, 0.2];
            let mut trace = Trace::default();
            let y = mlp.forward(&theta, &x, 1, &mut trace).to_vec();
            let want = reference(&theta, &segments, &x, act);
            for (a, b) in y.iter().zip(&want) {
                assert!((f64::from(*a) - b).abs() < 1e-6, "forward {a} vs {b}");
            }
            // Loss = y0 + 2 y1; the gradient is added into a buffer that starts at 1.
            let mut grad = vec![1.0f32; theta.len()];
            let mut d_input = Vec::new();
            mlp.backward(&theta, &x, &mut trace, &[1.0, 2.0], Some(&mut grad), Some(&mut d_input));
            let loss = |theta: &[f32], x: &[f32]| {
                let y = reference(theta, &segments, x, act);
                y[0] + 2.0 * y[1]
            };
            for i in 0..theta.len() {
                let (mut up, mut down) = (theta.clone(), theta.clone());
                up[i] += 1e-3;
                down[i] -= 1e-3;
                let fd = (loss(&up, &x) - loss(&down, &x)) / 2e-3;
                let got = f64::from(grad[i]) - 1.0;
                assert!(
                    (got - fd).abs() < 1e-3,
                    "{act}, column-major {column_major}: param {i}: {got} vs {fd}"
                );
            }
            for k in 0..3 {
                let (mut up, mut down) = (x, x);
                up[k] += 1e-3;
                down[k] -= 1e-3;
                let fd = (loss(&theta, &up) - loss(&theta, &down)) / 2e-3;
                assert!((f64::from(d_input[k]) - fd).abs() < 1e-3, "{act}: input {k}");
            }
        }
    }

    #[test]
    fn a_reused_trace_gives_the_same_passes_at_any_number_of_rows() {
        // Buffers are reused without clearing: a pass after a larger or smaller one must not
        // see the values it left behind.
        for act in Activation::ALL {
            let (segments, theta) = network(false);
            let lookup = |name: &str| segments.get(name).cloned();
            let mlp = DenseMlp::find(&lookup, "", act).expect("layout");
            let rows: Vec<[f32; 3]> = (0..12)
                .map(|r| [r as f32 / 6.0 - 1.0, 0.5 - r as f32 / 9.0, 0.1 * r as f32])
                .collect();
            let single = |x: &[f32; 3], d: &[f32]| {
                let mut trace = Trace::default();
                let y = mlp.forward(&theta, x, 1, &mut trace).to_vec();
                let mut grad = vec![0.0f32; theta.len()];
                let mut d_input = Vec::new();
                mlp.backward(&theta, x, &mut trace, d, Some(&mut grad), Some(&mut d_input));
                (y, grad, d_input)
            };
            let mut trace = Trace::default();
            for n in [12, 3, 7, 1, 12] {
                let x: Vec<f32> = rows[..n].iter().flatten().copied().collect();
                let d: Vec<f32> = (0..2 * n).map(|i| (i % 5) as f32 - 2.0).collect();
                let y = mlp.forward(&theta, &x, n, &mut trace).to_vec();
                let mut grad = vec![0.0f32; theta.len()];
                let mut d_input = Vec::new();
                mlp.backward(&theta, &x, &mut trace, &d, Some(&mut grad), Some(&mut d_input));
                let mut grad_sum = vec![0.0f32; theta.len()];
                for r in 0..n {
                    let (y1, g1, d1) = single(&rows[r], &d[2 * r..2 * r + 2]);
                    // One row and many take different product paths (summation orders).
                    for (a, b) in y[2 * r..2 * r + 2].iter().zip(&y1) {
                        assert!((a - b).abs() < 1e-6, "{act}: rows {n}, row {r}: {a} vs {b}");
                    }
                    for (a, b) in d_input[3 * r..3 * r + 3].iter().zip(&d1) {
                        assert!((a - b).abs() < 1e-6, "{act}: input gradient {a} vs {b}");
                    }
                    grad_sum.iter_mut().zip(&g1).for_each(|(s, g)| *s += g);
                }
                for (a, b) in grad.iter().zip(&grad_sum) {
                    assert!((a - b).abs() < 1e-5, "{act}: rows {n}: gradient {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn a_tensor_missing_from_the_buffer_is_an_error_naming_it() {
        let (segments, _) = network(true);
        let lookup = |name: &str| segments.get(name).cloned();
        let err = DenseMlp::find(&lookup, "q2.", Activation::Relu).expect_err("no q2");
        assert!(err.to_string().contains("q2.out.weight"), "{err}");
    }
}
