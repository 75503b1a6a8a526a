//! Exports with random weights, one per head type and activation, and random observations:
//! shared by the crate's tests and the `write_check_fixtures` example (the Python/onnxruntime
//! check). Not a module of the library: test support only.

#![allow(dead_code)]

use std::path::Path;

use rlpg_policy::manifest::{
    ActionSpace, ActionSpec, Activation, FORMAT, Head, Layer, MaskSpec, Normalization,
    ObservationSpec, Rescale, VERSION,
};
use rlpg_policy::{Export, Manifest, NamedTensor};

/// SplitMix64: a small, fully specified generator, so fixtures are the same everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// One synthetic case: a name, and the parts of its manifest.
pub struct Case {
    /// Folder name.
    pub name: &'static str,
    /// Observation size.
    pub obs_dim: usize,
    /// Hidden widths.
    pub hidden: &'static [usize],
    /// Hidden activation.
    pub activation: Activation,
    /// Head.
    pub head: Head,
    /// Action space.
    pub space: ActionSpace,
    /// Whether observations are normalised.
    pub normalize: bool,
    /// Whether the policy declares an action mask (its ONNX graph then takes one).
    pub masked: bool,
}

/// Every head type, every activation, with and without normalisation, finite and infinite
/// bounds.
pub fn cases() -> Vec<Case> {
    let boxed = |low: Vec<f32>, high: Vec<f32>| ActionSpace::Box { low, high };
    vec![
        Case {
            name: "categorical",
            obs_dim: 4,
            hidden: &[16, 8],
            activation: Activation::Tanh,
            head: Head::Categorical,
            space: ActionSpace::Discrete { n: 3 },
            normalize: true,
            masked: false,
        },
        Case {
            name: "gaussian_log_std_parameter",
            obs_dim: 3,
            hidden: &[16],
            activation: Activation::Relu,
            head: Head::Gaussian { log_std: Some("log_std".into()) },
            space: boxed(vec![-2.0, -1.0], vec![2.0, 1.0]),
            normalize: false,
            masked: false,
        },
        Case {
            name: "gaussian_state_dependent_unbounded",
            obs_dim: 5,
            hidden: &[12, 12],
            activation: Activation::Elu,
            head: Head::Gaussian { log_std: None },
            space: boxed(vec![f32::NEG_INFINITY, -1.0], vec![f32::INFINITY, 1.0]),
            normalize: true,
            masked: false,
        },
        Case {
            name: "squashed_gaussian",
            obs_dim: 3,
            hidden: &[16, 16],
            activation: Activation::Silu,
            head: Head::SquashedGaussian,
            space: boxed(vec![-2.0, 0.0], vec![2.0, 1.0]),
            normalize: true,
            masked: false,
        },
        Case {
            name: "deterministic_tanh",
            obs_dim: 3,
            hidden: &[16],
            activation: Activation::LeakyRelu,
            head: Head::DeterministicTanh { exploration_noise: 0.1 },
            space: boxed(vec![-2.0], vec![2.0]),
            normalize: false,
            masked: false,
        },
        Case {
            name: "gumbel_softmax",
            obs_dim: 4,
            hidden: &[16],
            activation: Activation::Tanh,
            head: Head::GumbelSoftmax { logit_bound: 0.0, temperature: 1.0 },
            space: ActionSpace::Discrete { n: 2 },
            normalize: false,
            masked: false,
        },
        Case {
            name: "gumbel_softmax_bounded",
            obs_dim: 4,
            hidden: &[16, 16],
            activation: Activation::Tanh,
            head: Head::GumbelSoftmax { logit_bound: 2.0, temperature: 0.5 },
            space: ActionSpace::Discrete { n: 3 },
            normalize: true,
            masked: false,
        },
        Case {
            name: "categorical_masked",
            obs_dim: 4,
            hidden: &[16],
            activation: Activation::Tanh,
            head: Head::Categorical,
            space: ActionSpace::Discrete { n: 4 },
            normalize: false,
            masked: true,
        },
        Case {
            name: "multi_categorical",
            obs_dim: 5,
            hidden: &[16, 16],
            activation: Activation::Tanh,
            head: Head::MultiCategorical { nvec: vec![3, 4, 2] },
            space: ActionSpace::MultiDiscrete { nvec: vec![3, 4, 2] },
            normalize: true,
            masked: true,
        },
        Case {
            name: "multi_categorical_unmasked",
            obs_dim: 3,
            hidden: &[12],
            activation: Activation::Elu,
            head: Head::MultiCategorical { nvec: vec![4, 1, 3] },
            space: ActionSpace::MultiDiscrete { nvec: vec![4, 1, 3] },
            normalize: false,
            masked: false,
        },
        Case {
            name: "multi_categorical_over_multi_binary",
            obs_dim: 4,
            hidden: &[16],
            activation: Activation::Silu,
            head: Head::MultiCategorical { nvec: vec![2, 2, 2] },
            space: ActionSpace::MultiBinary { n: 3 },
            normalize: false,
            masked: true,
        },
        Case {
            name: "bernoulli",
            obs_dim: 4,
            hidden: &[16, 8],
            activation: Activation::Tanh,
            head: Head::Bernoulli { n: 4 },
            space: ActionSpace::MultiBinary { n: 4 },
            normalize: true,
            masked: true,
        },
        Case {
            name: "bernoulli_unmasked",
            obs_dim: 3,
            hidden: &[8],
            activation: Activation::LeakyRelu,
            head: Head::Bernoulli { n: 2 },
            space: ActionSpace::MultiBinary { n: 2 },
            normalize: false,
            masked: false,
        },
        Case {
            name: "gumbel_softmax_multi_discrete_bounded",
            obs_dim: 4,
            hidden: &[16],
            activation: Activation::Relu,
            head: Head::GumbelSoftmax { logit_bound: 2.0, temperature: 1.0 },
            space: ActionSpace::MultiDiscrete { nvec: vec![3, 2] },
            normalize: false,
            masked: true,
        },
        Case {
            name: "gumbel_softmax_bounded_masked",
            obs_dim: 3,
            hidden: &[16],
            activation: Activation::Tanh,
            head: Head::GumbelSoftmax { logit_bound: 1.5, temperature: 1.0 },
            space: ActionSpace::Discrete { n: 3 },
            normalize: true,
            masked: true,
        },
        Case {
            name: "gumbel_softmax_multi_binary",
            obs_dim: 3,
            hidden: &[16],
            activation: Activation::Tanh,
            head: Head::GumbelSoftmax { logit_bound: 0.0, temperature: 1.0 },
            space: ActionSpace::MultiBinary { n: 2 },
            normalize: true,
            masked: true,
        },
    ]
}

/// The export of `case` with weights drawn from `rng` (std `1/√fan_in`, biases ±0.5, so that
/// outputs are of order one and every branch of every head is taken).
pub fn export(case: &Case, rng: &mut Rng) -> Export {
    let dim = case.space.dim();
    let outputs = match (&case.space, &case.head) {
        (_, Head::Bernoulli { n }) => *n,
        (ActionSpace::Box { .. }, Head::Gaussian { log_std: None } | Head::SquashedGaussian) => {
            2 * dim
        }
        (ActionSpace::Box { .. }, _) => dim,
        (space, _) => space.to_space().mask_len(),
    };
    let mut widths = vec![case.obs_dim];
    widths.extend_from_slice(case.hidden);
    widths.push(outputs);
    let mut layers = Vec::new();
    let mut tensors = Vec::new();
    for (i, pair) in widths.windows(2).enumerate() {
        let (inputs, outs) = (pair[0], pair[1]);
        let last = i + 2 == widths.len();
        let name = if last { "out".to_owned() } else { format!("fc{i}") };
        let scale = 1.5 / (inputs as f64).sqrt();
        let weight = (0..inputs * outs).map(|_| (rng.normal() * scale) as f32).collect();
        let bias = (0..outs).map(|_| (rng.uniform() - 0.5) as f32).collect();
        tensors.push(NamedTensor {
            name: format!("{name}.weight"),
            shape: vec![outs, inputs],
            values: weight,
        });
        tensors.push(NamedTensor { name: format!("{name}.bias"), shape: vec![outs], values: bias });
        layers.push(Layer {
            weight: format!("{name}.weight"),
            bias: format!("{name}.bias"),
            inputs,
            outputs: outs,
            activation: (!last).then_some(case.activation),
        });
    }
    if let Head::Gaussian { log_std: Some(name) } = &case.head {
        let values = (0..dim).map(|_| (rng.uniform() - 1.0) as f32).collect();
        tensors.push(NamedTensor { name: name.clone(), shape: vec![dim], values });
    }
    let normalization = case.normalize.then(|| Normalization {
        mean: (0..case.obs_dim).map(|_| rng.normal()).collect(),
        var: (0..case.obs_dim).map(|_| 0.1 + 4.0 * rng.uniform()).collect(),
        epsilon: 1e-8,
        clip: 2.5,
    });
    let rescale = match (&case.space, &case.head) {
        (
            ActionSpace::Box { low, high },
            Head::SquashedGaussian | Head::DeterministicTanh { .. },
        ) => Some(Rescale::of(&rlpg_envs::BoxSpace { low: low.clone(), high: high.clone() })),
        _ => None,
    };
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        source: None,
        observation: ObservationSpec { dim: case.obs_dim, normalization },
        layers,
        head: case.head.clone(),
        action: ActionSpec {
            space: case.space.clone(),
            rescale,
            mask: if case.masked { MaskSpec::of(&case.space.to_space()) } else { None },
        },
    };
    Export::new(manifest, tensors, Path::new(case.name)).expect("a fixture export is valid")
}

/// `rows` raw observations of `obs_dim` values, spread widely (normal with std 3).
pub fn observations(rng: &mut Rng, rows: usize, obs_dim: usize) -> Vec<f32> {
    (0..rows * obs_dim).map(|_| (rng.normal() * 3.0) as f32).collect()
}

/// `rows` random action masks of `space` (`rows × mask_len` flags): each flag allowed with
/// probability 0.6, and one random choice of any part that would allow none switched on, so
/// every mask is valid.
pub fn masks(rng: &mut Rng, rows: usize, space: &ActionSpace) -> Vec<bool> {
    let space = space.to_space();
    let mut out = Vec::with_capacity(rows * space.mask_len());
    for _ in 0..rows {
        for k in space.mask_components() {
            let start = out.len();
            out.extend((0..k).map(|_| rng.uniform() < 0.6));
            if !out[start..].iter().any(|&f| f) {
                let pick = ((rng.uniform() * k as f64) as usize).min(k - 1);
                out[start + pick] = true;
            }
        }
    }
    out
}
