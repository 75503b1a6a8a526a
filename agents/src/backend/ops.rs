//! The primitives an update is written in, each with its three faces side by side: the tensor
//! expression the libtorch backend evaluates (autograd differentiates it), and the value and
//! slope the CPU kernel evaluates (its tape applies the chain rule with them). Adding a
//! primitive means adding one entry here; the backends dispatch on these enums and need no
//! other change.

use tch::Tensor;

/// An elementwise function of one matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `−x`.
    Neg,
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Log,
    /// `tanh x`.
    Tanh,
    /// `x²`.
    Square,
    /// `ln(1 + eˣ)` (libtorch's softplus, β = 1, linear above 20).
    Softplus,
    /// `max(x, 0)`.
    Relu,
    /// `|x|`.
    Abs,
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `c · x`.
    Scale(f32),
    /// `x + c`.
    Shift(f32),
    /// `x` limited to `[lo, hi]`; the gradient passes where `lo ≤ x ≤ hi` (libtorch's rule).
    Clamp(f32, f32),
}

impl Unary {
    /// The libtorch face: the tensor expression.
    pub fn tensor(self, x: &Tensor) -> Tensor {
        match self {
            Unary::Neg => -x,
            Unary::Exp => x.exp(),
            Unary::Log => x.log(),
            Unary::Tanh => x.tanh(),
            Unary::Square => x.square(),
            Unary::Softplus => x.softplus(),
            Unary::Relu => x.relu(),
            Unary::Abs => x.abs(),
            Unary::Sigmoid => x.sigmoid(),
            Unary::Scale(c) => x * f64::from(c),
            Unary::Shift(c) => x + f64::from(c),
            Unary::Clamp(lo, hi) => x.clamp(f64::from(lo), f64::from(hi)),
        }
    }

    /// The kernel's value at `x`.
    #[inline]
    pub fn value(self, x: f32) -> f32 {
        match self {
            Unary::Neg => -x,
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Tanh => x.tanh(),
            Unary::Square => x * x,
            Unary::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            Unary::Relu => x.max(0.0),
            Unary::Abs => x.abs(),
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Scale(c) => x * c,
            Unary::Shift(c) => x + c,
            Unary::Clamp(lo, hi) => x.clamp(lo, hi),
        }
    }

    /// The kernel's slope `dy/dx` at `x`, where the value is `y`.
    #[inline]
    pub fn slope(self, x: f32, y: f32) -> f32 {
        match self {
            Unary::Neg => -1.0,
            Unary::Exp => y,
            Unary::Log => 1.0 / x,
            Unary::Tanh => 1.0 - y * y,
            Unary::Square => 2.0 * x,
            Unary::Softplus => {
                if x > 20.0 {
                    1.0
                } else {
                    1.0 / (1.0 + (-x).exp())
                }
            }
            Unary::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            // libtorch: sign(x), 0 at 0.
            Unary::Abs => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Unary::Sigmoid => y * (1.0 - y),
            Unary::Scale(c) => c,
            Unary::Shift(_) => 1.0,
            Unary::Clamp(lo, hi) => {
                if lo <= x && x <= hi {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// An elementwise function of two matrices. Either operand may be broadcast: a `[1, c]` row
/// over rows, an `[r, 1]` column over columns, a `[1, 1]` scalar over both (libtorch's rules
/// for two dimensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// `min(a, b)`; on a tie each operand gets half the gradient (libtorch's rule).
    Minimum,
    /// `max(a, b)`; on a tie each operand gets half the gradient (libtorch's rule).
    Maximum,
}

impl Binary {
    /// The libtorch face.
    pub fn tensor(self, a: &Tensor, b: &Tensor) -> Tensor {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            Binary::Minimum => a.minimum(b),
            Binary::Maximum => a.maximum(b),
        }
    }

    /// The kernel's value.
    #[inline]
    pub fn value(self, a: f32, b: f32) -> f32 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            // NaN propagates, as libtorch's minimum and maximum do.
            Binary::Minimum => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.min(b)
                }
            }
            Binary::Maximum => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.max(b)
                }
            }
        }
    }

    /// The kernel's partial derivatives `(∂c/∂a, ∂c/∂b)` at `(a, b)`, where the value is `c`.
    #[inline]
    pub fn slopes(self, a: f32, b: f32, c: f32) -> (f32, f32) {
        let split = |a_wins: bool, b_wins: bool| match (a_wins, b_wins) {
            (true, false) => (1.0, 0.0),
            (false, true) => (0.0, 1.0),
            _ => (0.5, 0.5),
        };
        match self {
            Binary::Add => (1.0, 1.0),
            Binary::Sub => (1.0, -1.0),
            Binary::Mul => (b, a),
            Binary::Div => (1.0 / b, -c / b),
            Binary::Minimum => split(a < b, b < a),
            Binary::Maximum => split(a > b, b > a),
        }
    }
}

/// A function of each row of a matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rowwise {
    /// `x − ln Σ eˣ` along the row.
    LogSoftmax,
    /// `eˣ / Σ eˣ` along the row.
    Softmax,
    /// The row's sum, a `[rows, 1]` column.
    Sum,
    /// The one-hot row of the row's largest value (the first on ties); no gradient.
    OneHotArgmax,
}

impl Rowwise {
    /// The libtorch face.
    pub fn tensor(self, x: &Tensor) -> Tensor {
        match self {
            Rowwise::LogSoftmax => x.log_softmax(-1, None),
            Rowwise::Softmax => x.softmax(-1, None),
            Rowwise::Sum => x.sum_dim_intlist(-1, true, None),
            Rowwise::OneHotArgmax => {
                let n = x.size().last().copied().unwrap_or(1);
                x.detach().argmax(-1, false).one_hot(n).to_kind(x.kind())
            }
        }
    }

    /// The kernel's value of one row `x` into `y` (as long as `x`, or one value for `Sum`).
    pub fn value(self, x: &[f32], y: &mut [f32]) {
        match self {
            Rowwise::LogSoftmax => {
                y.copy_from_slice(x);
                rlpg_kernel::heads::log_softmax_in_place(y);
            }
            Rowwise::Softmax => {
                y.copy_from_slice(x);
                rlpg_kernel::heads::softmax_in_place(y);
            }
            Rowwise::Sum => y[0] = x.iter().sum(),
            Rowwise::OneHotArgmax => {
                y.fill(0.0);
                y[rlpg_kernel::heads::argmax(x)] = 1.0;
            }
        }
    }

    /// The kernel's gradient of one row: `dx += J(x)ᵀ dy`, with `y` the row's value.
    pub fn backward(self, y: &[f32], dy: &[f32], dx: &mut [f32]) {
        match self {
            // y = x − lse(x): dx = dy − softmax(x) Σ dy.
            Rowwise::LogSoftmax => {
                let total: f32 = dy.iter().sum();
                for ((d, &g), &l) in dx.iter_mut().zip(dy).zip(y) {
                    *d += g - l.exp() * total;
                }
            }
            // dx = y ⊙ (dy − ⟨y, dy⟩).
            Rowwise::Softmax => {
                let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
                for ((d, &g), &p) in dx.iter_mut().zip(dy).zip(y) {
                    *d += p * (g - dot);
                }
            }
            Rowwise::Sum => dx.iter_mut().for_each(|d| *d += dy[0]),
            Rowwise::OneHotArgmax => {}
        }
    }

    /// Columns of the result for `cols` columns of input.
    pub fn out_cols(self, cols: usize) -> usize {
        match self {
            Rowwise::LogSoftmax | Rowwise::Softmax | Rowwise::OneHotArgmax => cols,
            Rowwise::Sum => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    const UNARY: [Unary; 12] = [
        Unary::Neg,
        Unary::Exp,
        Unary::Log,
        Unary::Tanh,
        Unary::Square,
        Unary::Softplus,
        Unary::Relu,
        Unary::Abs,
        Unary::Sigmoid,
        Unary::Scale(-1.7),
        Unary::Shift(0.3),
        Unary::Clamp(-0.5, 0.8),
    ];

    /// Positive inputs for `Log`, mixed signs otherwise, away from kinks.
    fn inputs(op: Unary) -> Vec<f32> {
        let xs = [-2.3f32, -0.7, -0.1, 0.2, 0.9, 1.6, 25.0];
        if op == Unary::Log { xs.iter().map(|x| x.abs()).collect() } else { xs.to_vec() }
    }

    #[test]
    fn each_unary_primitive_agrees_with_its_tensor_face_and_autograd() {
        for op in UNARY {
            let xs = inputs(op);
            let x = Tensor::from_slice(&xs).set_requires_grad(true);
            let y = op.tensor(&x);
            let grad = Tensor::run_backward(&[y.sum(Kind::Float)], &[&x], false, false).remove(0);
            let (y, grad) =
                (Vec::<f32>::try_from(&y.detach()).unwrap(), Vec::<f32>::try_from(&grad).unwrap());
            for (i, &x) in xs.iter().enumerate() {
                let v = op.value(x);
                assert!(
                    (v - y[i]).abs() <= 1e-6 * (1.0 + y[i].abs()),
                    "{op:?}({x}): {v} vs {}",
                    y[i]
                );
                let s = op.slope(x, v);
                assert!(
                    (s - grad[i]).abs() <= 1e-5 * (1.0 + grad[i].abs()),
                    "{op:?}'({x}): {s} vs {}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn each_binary_primitive_agrees_with_its_tensor_face_and_autograd() {
        let a = [0.5f32, -1.0, 2.0, 3.0];
        let b = [1.5f32, -2.0, 2.0, 0.25];
        for op in
            [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Minimum, Binary::Maximum]
        {
            let ta = Tensor::from_slice(&a).set_requires_grad(true);
            let tb = Tensor::from_slice(&b).set_requires_grad(true);
            let c = op.tensor(&ta, &tb);
            let grads = Tensor::run_backward(&[c.sum(Kind::Float)], &[&ta, &tb], false, false);
            let c = Vec::<f32>::try_from(&c.detach()).unwrap();
            let (ga, gb) = (
                Vec::<f32>::try_from(&grads[0]).unwrap(),
                Vec::<f32>::try_from(&grads[1]).unwrap(),
            );
            for i in 0..a.len() {
                let v = op.value(a[i], b[i]);
                assert!((v - c[i]).abs() < 1e-6, "{op:?}: {v} vs {}", c[i]);
                let (da, db) = op.slopes(a[i], b[i], v);
                assert!(
                    (da - ga[i]).abs() < 1e-6 && (db - gb[i]).abs() < 1e-6,
                    "{op:?} at {i}: ({da}, {db}) vs ({}, {})",
                    ga[i],
                    gb[i]
                );
            }
        }
    }

    #[test]
    fn each_rowwise_primitive_agrees_with_its_tensor_face_and_autograd() {
        let xs = [0.5f32, -1.0, 2.0, 0.0, 0.0, 3.0];
        let weights = [0.3f32, -1.2, 0.7, 2.0, 0.1, -0.4];
        for op in [Rowwise::LogSoftmax, Rowwise::Softmax, Rowwise::Sum] {
            let x = Tensor::from_slice(&xs).view([2, 3]).set_requires_grad(true);
            let y = op.tensor(&x);
            let w =
                Tensor::from_slice(&weights[..2 * op.out_cols(3)]).view([2, op.out_cols(3) as i64]);
            let grad =
                Tensor::run_backward(&[(&y * &w).sum(Kind::Float)], &[&x], false, false).remove(0);
            let y = Vec::<f32>::try_from(&y.detach().view([-1])).unwrap();
            let grad = Vec::<f32>::try_from(&grad.reshape([-1])).unwrap();
            let oc = op.out_cols(3);
            for r in 0..2 {
                let mut v = vec![0.0; oc];
                op.value(&xs[r * 3..r * 3 + 3], &mut v);
                for j in 0..oc {
                    assert!((v[j] - y[r * oc + j]).abs() < 1e-6, "{op:?} value");
                }
                let mut dx = vec![0.0; 3];
                op.backward(&v, &weights[r * oc..r * oc + oc], &mut dx);
                for j in 0..3 {
                    assert!(
                        (dx[j] - grad[r * 3 + j]).abs() < 1e-5,
                        "{op:?} gradient {dx:?} vs {grad:?}"
                    );
                }
            }
        }
        let _ = Device::Cpu;
    }
}
