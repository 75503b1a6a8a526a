//! The nonlinearity after each hidden layer.

use serde::{Deserialize, Serialize};

/// The nonlinearity after each hidden layer of an MLP, by the name settings and export
/// manifests use (`tanh`, `relu`, `elu`, `leaky_relu`, `silu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Hyperbolic tangent; the usual choice for small policy-gradient networks.
    Tanh,
    /// Rectified linear unit `max(0, x)`.
    Relu,
    /// Exponential linear unit (alpha = 1): `x` for `x > 0`, `eˣ − 1` otherwise.
    Elu,
    /// Leaky ReLU with negative slope 0.01.
    LeakyRelu,
    /// Sigmoid-weighted linear unit `x · sigmoid(x)` (swish).
    Silu,
}

impl Activation {
    /// Every activation, in declaration order (for tests and documentation).
    pub const ALL: [Activation; 5] = [
        Activation::Tanh,
        Activation::Relu,
        Activation::Elu,
        Activation::LeakyRelu,
        Activation::Silu,
    ];

    /// The name settings and manifests use.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Elu => "elu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Silu => "silu",
        }
    }

    /// The nonlinearity of one number. Agrees with libtorch's tensor functions up to rounding.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Tanh => crate::math::tanh(x),
            Activation::Relu => x.max(0.0),
            Activation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Activation::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    0.01 * x
                }
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// The slope of [`Activation::apply`] at `x`, given also its value `y` there: what
    /// autograd's backward pass uses for each (libtorch passes ReLU's gradient where the output
    /// is positive, ELU's and leaky ReLU's where the input is). Where
    /// [`Activation::slope_needs_input`] is false, `x` is not read beyond its sign, which the
    /// output shares: the output may be passed for it.
    #[inline]
    pub fn derivative(self, x: f32, y: f32) -> f32 {
        match self {
            Activation::Tanh => 1.0 - y * y,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Elu => {
                if x > 0.0 {
                    1.0
                } else {
                    x.exp()
                }
            }
            Activation::LeakyRelu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.01
                }
            }
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 + x * (1.0 - s))
            }
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `$body` with `$a` bound to a constant equal to `$act`, so that the activation's `match`
/// is resolved once per call rather than once per element, and loops over elements vectorize.
macro_rules! with_activation {
    ($act:expr, $a:ident => $body:expr) => {
        match $act {
            $crate::Activation::Tanh => {
                const $a: $crate::Activation = $crate::Activation::Tanh;
                $body
            }
            $crate::Activation::Relu => {
                const $a: $crate::Activation = $crate::Activation::Relu;
                $body
            }
            $crate::Activation::Elu => {
                const $a: $crate::Activation = $crate::Activation::Elu;
                $body
            }
            $crate::Activation::LeakyRelu => {
                const $a: $crate::Activation = $crate::Activation::LeakyRelu;
                $body
            }
            $crate::Activation::Silu => {
                const $a: $crate::Activation = $crate::Activation::Silu;
                $body
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use with_activation;

impl Activation {
    /// Whether [`Activation::derivative`] needs the input: for tanh, ReLU and leaky ReLU the
    /// slope is a function of the output alone (leaky ReLU's output is positive exactly where
    /// its input is), so a forward pass keeps only the outputs and the backward pass may give
    /// the output for `x`.
    pub fn slope_needs_input(self) -> bool {
        matches!(self, Activation::Elu | Activation::Silu)
    }

    /// `y[j] = apply(y[j] + bias[j])` for one row `y` of a layer's product: the bias and the
    /// activation in one pass over memory.
    #[inline]
    pub fn bias_apply(self, bias: &[f32], y: &mut [f32]) {
        with_activation!(self, A => {
            for (y, &b) in y.iter_mut().zip(bias) {
                *y = A.apply(*y + b);
            }
        });
    }

    /// As [`Activation::bias_apply`], also keeping the pre-activation `y[j] + bias[j]` in
    /// `pre` (for the activations whose slope needs it).
    #[inline]
    pub fn bias_apply_keep(self, bias: &[f32], y: &mut [f32], pre: &mut [f32]) {
        with_activation!(self, A => {
            for ((y, p), &b) in y.iter_mut().zip(pre.iter_mut()).zip(bias) {
                *p = *y + b;
                *y = A.apply(*p);
            }
        });
    }

    /// `d[i] *= derivative(x[i], y[i])` for every element: a gradient through the activation.
    #[inline]
    pub fn backward_slice(self, x: &[f32], y: &[f32], d: &mut [f32]) {
        with_activation!(self, A => {
            for ((d, &x), &y) in d.iter_mut().zip(x).zip(y) {
                *d *= A.derivative(x, y);
            }
        });
    }
}
