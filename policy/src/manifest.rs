//! `policy.json`: the versioned description of an exported policy.
//!
//! The manifest says everything needed to turn a raw observation into the action the
//! environment received during training, given the tensors of `policy.safetensors`:
//!
//! 1. **Observation normalisation** ([`Normalization`], absent when the run did not normalise):
//!    `z_i = clamp(f32((f64(x_i) − mean_i) / sqrt(var_i + epsilon)), −clip, clip)`, computed in
//!    `f64` and rounded to `f32` before clamping, exactly as rlpg's `NormalizeObservation` and
//!    `VecEnv` do.
//! 2. **Network** ([`Layer`]s, input side first): `h ← act(h · Wᵀ + b)` with `W` the `[out, in]`
//!    `f32` tensor named by [`Layer::weight`] (PyTorch's `nn.Linear` layout) and `b` the `[out]`
//!    tensor named by [`Layer::bias`]; the last layer has no activation.
//! 3. **Head** ([`Head`]): the policy's distribution from the network's outputs, and its mode,
//!    the deterministic action. Discrete heads read their outputs component by component in the
//!    layout of the action mask (below).
//! 4. **Action** ([`ActionSpec`]): for a `Box` space, `a = y · scale + loc` (each in `f32`) when
//!    [`ActionSpec::rescale`] is given, then `a` clamped into `[low, high]` (a NaN stays NaN);
//!    for a `Discrete(n)` space the head's index; for `MultiDiscrete(nvec)` one index per
//!    component; for `MultiBinary(n)` one 0/1 per value.
//! 5. **Mask** ([`MaskSpec`], version 2): an action mask is `len` flags (`true` = allowed), laid
//!    out as sb3-contrib's `MaskablePPO` lays out `action_masks()` and `rlpg_envs::Space::mask_len`
//!    defines it: `n` flags for `Discrete(n)`; for `MultiDiscrete(nvec)` the `nvec[0]` flags of
//!    component 0, then component 1's, ... (`sum(nvec)`); for `MultiBinary(n)` a pair per value,
//!    "may be 0" then "may be 1" (`2n`). A `Box` has no mask. Under a mask, a disallowed
//!    choice's logit is `−∞` (after the head's own transformation, e.g. the logit bound), so its
//!    probability is exactly 0 and the greedy action and samples are always allowed; a component
//!    that allows nothing is an error. [`ActionSpec::mask`] is present when the policy was trained
//!    with masks; its ONNX graph then takes the mask as an input. Any discrete policy accepts a
//!    mask in `rlpg_policy::Policy`.
//!
//! Readers must refuse a [`Manifest::format`] other than [`FORMAT`] and a [`Manifest::version`]
//! they do not know. [`VERSION`] is the one this crate writes; it reads every version from 1
//! on. Version 1 (rlpg before multi-part actions) has no [`Head::MultiCategorical`],
//! [`Head::Bernoulli`], no Gumbel-softmax over several components and no [`ActionSpec::mask`];
//! a version-1 manifest reads and acts exactly as it did. Fields added in a later version bump
//! the version.

use std::fmt;

use rlpg_envs::{BoxSpace, Space};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// The value of [`Manifest::format`].
pub const FORMAT: &str = "rlpg-policy";
/// The manifest version this crate writes. It reads every version from [`OLDEST_VERSION`] to
/// this one.
pub const VERSION: u32 = 2;
/// The oldest manifest version this crate reads.
pub const OLDEST_VERSION: u32 = 1;

/// Lowest and highest log standard deviation of a state-dependent Gaussian head (the clamp
/// rlpg trains with).
pub use rlpg_kernel::heads::{LOG_STD_MAX, LOG_STD_MIN};

/// The contents of `policy.json`. See the [module docs](self) for what each part computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The manifest version: [`VERSION`] when written by this crate, or an older one
    /// (from [`OLDEST_VERSION`] on) when read.
    pub version: u32,
    /// Where the policy came from (informational; not needed to act).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The observations the policy takes.
    pub observation: ObservationSpec,
    /// The network's linear layers, input side first.
    pub layers: Vec<Layer>,
    /// How the network's outputs become the deterministic action.
    pub head: Head,
    /// The action space and the post-processing into it.
    pub action: ActionSpec,
}

/// Where an exported policy came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Environment id the policy was trained on.
    pub env: String,
    /// Agent name (`reinforce`, `pathwise`).
    pub agent: String,
    /// Estimator or distribution, e.g. `sac`, `td3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimator: Option<String>,
    /// Global env step of the checkpoint.
    pub step: u64,
    /// Mean evaluation return recorded with the checkpoint, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_return: Option<f64>,
    /// The checkpoint file's name.
    pub checkpoint: String,
}

/// The observations a policy takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationSpec {
    /// Floats per observation.
    pub dim: usize,
    /// The frozen training statistics the observations are normalised with, if the run
    /// normalised them.
    pub normalization: Option<Normalization>,
}

/// Observation normalisation with frozen statistics:
/// `clamp(f32((f64(x) − mean) / sqrt(var + epsilon)), −clip, clip)` per dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Per-dimension mean.
    pub mean: Vec<f64>,
    /// Per-dimension population variance.
    pub var: Vec<f64>,
    /// Added to the variance under the square root.
    pub epsilon: f64,
    /// Normalised values are clamped to `[−clip, clip]`.
    pub clip: f32,
}

/// The nonlinearity after a hidden layer: `tanh`, `relu`, `elu` (`x` for `x > 0`, `eˣ − 1`
/// otherwise), `leaky_relu` (`x` for `x > 0`, `0.01 x` otherwise) or `silu` (`x · sigmoid(x)`),
/// computed by `rlpg-kernel`, the code rlpg trains with.
pub use rlpg_kernel::Activation;

/// One linear layer: `y = act(x · Wᵀ + b)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Name of the `[outputs, inputs]` `f32` weight tensor in `policy.safetensors`.
    pub weight: String,
    /// Name of the `[outputs]` `f32` bias tensor in `policy.safetensors`.
    pub bias: String,
    /// Inputs per row.
    pub inputs: usize,
    /// Outputs per row.
    pub outputs: usize,
    /// The nonlinearity applied to the outputs; `null` for the output layer.
    pub activation: Option<Activation>,
}

/// How the network's outputs become the deterministic action (before [`ActionSpec`]'s
/// rescaling and clipping), and what a stochastic policy would sample from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Head {
    /// REINFORCE on `Discrete(n)`: the `n` outputs are logits; the action is the index of the
    /// first largest one.
    Categorical,
    /// REINFORCE on a `Box` of `d` dimensions: a diagonal Gaussian whose mean is the first `d`
    /// outputs (the action). Its log standard deviation is the `[d]` tensor named `log_std` when
    /// given, else outputs `d..2d` clamped to [[`LOG_STD_MIN`], [`LOG_STD_MAX`]].
    Gaussian {
        /// Name of the state-independent log-std tensor, if the policy has one.
        log_std: Option<String>,
    },
    /// SAC on a `Box` of `d` dimensions: `tanh` of the first `d` outputs (the pre-squash mean;
    /// outputs `d..2d` are the clamped log standard deviation), in `[−1, 1]`.
    SquashedGaussian,
    /// TD3 on a `Box`: `tanh` of the `d` outputs, in `[−1, 1]`. Exploring, training added
    /// Gaussian noise of std `exploration_noise` and clipped back to `[−1, 1]`.
    DeterministicTanh {
        /// Std of the exploration noise training used.
        exploration_noise: f64,
    },
    /// Pathwise SAC on `Discrete(n)` (Gumbel-softmax): the raw outputs `r` are bounded to
    /// `ℓ = L · tanh((r − mean(r)) / L)` when `logit_bound` `L > 0` (else `ℓ = r`); the action is
    /// the index of the first largest `log_softmax(ℓ)`, the probabilities `softmax(ℓ)`. Since
    /// version 2 it also acts in `MultiDiscrete(nvec)` (`sum(nvec)` outputs) and `MultiBinary(n)`
    /// (`2n` outputs, "0" then "1" for each value): one such categorical per component, each
    /// component's outputs bounded on their own.
    GumbelSoftmax {
        /// The logit bound `L` (0: unbounded).
        logit_bound: f32,
        /// The relaxation temperature used in training (not needed to act).
        temperature: f64,
    },
    /// Independent categoricals, one per component (version 2): over `MultiDiscrete(nvec)` the
    /// `sum(nvec)` outputs are the logits of component 0's `nvec[0]` values, then component 1's,
    /// ... (the mask's layout); each component's action is the index of its first largest
    /// logit, its probabilities the `softmax` of its logits. Over `MultiBinary(n)`, `nvec` is
    /// `[2; n]`: logits of "0" then "1" for each value (sb3-contrib's masked Bernoulli).
    MultiCategorical {
        /// Number of values of each component (as the space's `nvec`, or `[2; n]`).
        nvec: Vec<usize>,
    },
    /// Independent Bernoullis over `MultiBinary(n)` (version 2): output `i` is the logit `ℓᵢ` of
    /// value `i` being 1, `P(1) = sigmoid(ℓᵢ)`; the action is 1 where `ℓᵢ > 0` (SB3's
    /// `round(P(1))`, a tie at `P = 0.5` giving 0). Under a mask whose pair for value `i`
    /// allows only one of 0 and 1, that value is the action and `P(1)` is exactly 0 or 1.
    Bernoulli {
        /// Number of values.
        n: usize,
    },
}

impl Head {
    /// The manifest's name of the head kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Head::Categorical => "categorical",
            Head::Gaussian { .. } => "gaussian",
            Head::SquashedGaussian => "squashed_gaussian",
            Head::DeterministicTanh { .. } => "deterministic_tanh",
            Head::GumbelSoftmax { .. } => "gumbel_softmax",
            Head::MultiCategorical { .. } => "multi_categorical",
            Head::Bernoulli { .. } => "bernoulli",
        }
    }

    /// Whether the head gives indices or flags (discrete actions, which a mask can restrict)
    /// rather than a real vector.
    pub fn is_discrete(&self) -> bool {
        matches!(
            self,
            Head::Categorical
                | Head::GumbelSoftmax { .. }
                | Head::MultiCategorical { .. }
                | Head::Bernoulli { .. }
        )
    }

    /// The first manifest version that has this head over `space`.
    fn since(&self, space: &ActionSpace) -> u32 {
        match (self, space) {
            (Head::MultiCategorical { .. } | Head::Bernoulli { .. }, _) => 2,
            (Head::GumbelSoftmax { .. }, ActionSpace::Discrete { .. }) => 1,
            (Head::GumbelSoftmax { .. }, _) => 2,
            _ => 1,
        }
    }
}

/// The environment's action space and the post-processing from the head's output into it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The action space.
    pub space: ActionSpace,
    /// For a head in `[−1, 1]` (squashed or deterministic tanh): `a = y · scale + loc`.
    pub rescale: Option<Rescale>,
    /// The action mask the policy was trained with, if any (version 2; see the
    /// [module docs](self)). Absent for a policy trained without masks, which still accepts
    /// one in `rlpg_policy::Policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskSpec>,
}

/// The action mask input: `len` flags, `true` where an action is allowed, component after
/// component (`components[i]` flags for component `i`); see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    /// Flags per mask: `rlpg_envs::Space::mask_len` of the action space.
    pub len: usize,
    /// Flags per component, in order: `rlpg_envs::Space::mask_components` (`[n]`, `nvec`, or
    /// `[2; n]`). They sum to `len`.
    pub components: Vec<usize>,
}

impl MaskSpec {
    /// The mask of `space` (`None` for a `Box`, which has no masks).
    pub fn of(space: &Space) -> Option<Self> {
        (space.mask_len() > 0)
            .then(|| Self { len: space.mask_len(), components: space.mask_components() })
    }
}

/// The affine map from `[−1, 1]` onto a box, with `loc = (high + low) / 2` and
/// `scale = (high − low) / 2` computed in `f64` and rounded to `f32`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rescale {
    /// Per-dimension centre.
    pub loc: Vec<f32>,
    /// Per-dimension half-width.
    pub scale: Vec<f32>,
}

impl Rescale {
    /// The rescaling onto `space` as rlpg's pathwise agent computes it.
    pub fn of(space: &BoxSpace) -> Self {
        let pairs = space.low.iter().zip(&space.high);
        Self {
            loc: pairs
                .clone()
                .map(|(&l, &h)| ((f64::from(h) + f64::from(l)) / 2.0) as f32)
                .collect(),
            scale: pairs.map(|(&l, &h)| ((f64::from(h) - f64::from(l)) / 2.0) as f32).collect(),
        }
    }
}

/// An action space as written in the manifest. Bounds are JSON numbers, or the strings `"inf"`
/// and `"-inf"` for infinite ones (JSON has no infinity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpace {
    /// Indices `0..n`.
    Discrete {
        /// Number of actions.
        n: usize,
    },
    /// Real vectors with per-dimension bounds.
    Box {
        /// Lower bounds.
        #[serde(with = "bounds")]
        low: Vec<f32>,
        /// Upper bounds.
        #[serde(with = "bounds")]
        high: Vec<f32>,
    },
    /// One index per component, component `i` in `0..nvec[i]`.
    MultiDiscrete {
        /// Number of values of each component.
        nvec: Vec<usize>,
    },
    /// `n` values, each 0 or 1.
    MultiBinary {
        /// Number of values.
        n: usize,
    },
}

impl ActionSpace {
    /// The space as rlpg-envs spells it.
    pub fn to_space(&self) -> Space {
        match self {
            ActionSpace::Discrete { n } => Space::Discrete(*n),
            ActionSpace::Box { low, high } => {
                Space::Box(BoxSpace { low: low.clone(), high: high.clone() })
            }
            ActionSpace::MultiDiscrete { nvec } => Space::MultiDiscrete(nvec.clone()),
            ActionSpace::MultiBinary { n } => Space::MultiBinary(*n),
        }
    }

    /// Values per action (1 for a discrete space, whose action is one index).
    pub fn dim(&self) -> usize {
        self.to_space().flat_dim()
    }
}

impl From<&Space> for ActionSpace {
    fn from(space: &Space) -> Self {
        match space {
            Space::Discrete(n) => ActionSpace::Discrete { n: *n },
            Space::Box(b) => ActionSpace::Box { low: b.low.clone(), high: b.high.clone() },
            Space::MultiDiscrete(nvec) => ActionSpace::MultiDiscrete { nvec: nvec.clone() },
            Space::MultiBinary(n) => ActionSpace::MultiBinary { n: *n },
        }
    }
}

impl fmt::Display for ActionSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_space().fmt(f)
    }
}

/// `f32` bounds as JSON numbers, or `"inf"` / `"-inf"`.
mod bounds {
    use super::*;

    pub(super) fn serialize<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for &v in values {
            if v == f32::INFINITY {
                seq.serialize_element("inf")?;
            } else if v == f32::NEG_INFINITY {
                seq.serialize_element("-inf")?;
            } else {
                seq.serialize_element(&v)?;
            }
        }
        seq.end()
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Bound {
        Number(f32),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Vec::<Bound>::deserialize(d)?
            .into_iter()
            .map(|b| match b {
                Bound::Number(v) => Ok(v),
                Bound::Text(t) if t == "inf" => Ok(f32::INFINITY),
                Bound::Text(t) if t == "-inf" => Ok(f32::NEG_INFINITY),
                Bound::Text(t) => Err(de::Error::custom(format!(
                    "bound \"{t}\" is neither a number nor \"inf\" / \"-inf\""
                ))),
            })
            .collect()
    }
}

impl Manifest {
    /// Checks that the parts fit together (dimensions, the head against the space and the last
    /// layer's width); tensor shapes are checked against the layers when the tensors are
    /// loaded. The error says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format is \"{}\", expected \"{FORMAT}\"", self.format));
        }
        if !(OLDEST_VERSION..=VERSION).contains(&self.version) {
            return Err(format!(
                "version {} is not supported (this rlpg-policy reads versions \
                 {OLDEST_VERSION} to {VERSION})",
                self.version
            ));
        }
        let obs_dim = self.observation.dim;
        if obs_dim == 0 {
            return Err("observation.dim is 0".into());
        }
        if let Some(n) = &self.observation.normalization {
            if n.mean.len() != obs_dim || n.var.len() != obs_dim {
                return Err(format!(
                    "observation.normalization has {} means and {} variances for observations of \
                     {obs_dim} values",
                    n.mean.len(),
                    n.var.len()
                ));
            }
            let sound = n.mean.iter().all(|m| m.is_finite())
                && n.var.iter().all(|v| v.is_finite() && *v >= 0.0)
                && n.epsilon.is_finite()
                && n.epsilon >= 0.0
                && n.clip > 0.0;
            if !sound {
                return Err("observation.normalization needs finite means, variances >= 0, \
                            epsilon >= 0 and clip > 0"
                    .into());
            }
            if n.var.iter().any(|v| v + n.epsilon <= 0.0) {
                return Err("observation.normalization: var + epsilon must be > 0".into());
            }
        }
        let Some(last) = self.layers.last() else {
            return Err("layers is empty".into());
        };
        let mut width = obs_dim;
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.inputs != width {
                return Err(format!(
                    "layers[{i}] takes {} inputs but receives {width}",
                    layer.inputs
                ));
            }
            if layer.outputs == 0 {
                return Err(format!("layers[{i}] has 0 outputs"));
            }
            let is_last = i + 1 == self.layers.len();
            if is_last != layer.activation.is_none() {
                return Err(format!(
                    "layers[{i}]: hidden layers have an activation and the output layer has none"
                ));
            }
            width = layer.outputs;
        }
        let outputs = last.outputs;
        let space = &self.action.space;
        if let Some(problem) = space.to_space().problem() {
            return Err(format!("action.space: {problem}"));
        }
        let since = self.head.since(space);
        if self.version < since {
            return Err(format!(
                "head {} over {space} needs manifest version {since}, this one is version {}",
                self.head.kind(),
                self.version
            ));
        }
        let discrete_outputs = |needed: usize| -> Result<(), String> {
            if outputs != needed {
                return Err(format!(
                    "head {} over {space} needs {needed} outputs, the last layer has {outputs}",
                    self.head.kind()
                ));
            }
            if let Head::GumbelSoftmax { logit_bound, .. } = self.head {
                if !(logit_bound.is_finite() && logit_bound >= 0.0) {
                    return Err(format!("head.logit_bound must be >= 0, got {logit_bound}"));
                }
            }
            if self.action.rescale.is_some() {
                return Err("action.rescale is given for a discrete space".into());
            }
            Ok(())
        };
        match (space, &self.head) {
            (ActionSpace::Discrete { n }, Head::Categorical | Head::GumbelSoftmax { .. }) => {
                discrete_outputs(*n)?;
            }
            (
                ActionSpace::MultiDiscrete { .. } | ActionSpace::MultiBinary { .. },
                Head::GumbelSoftmax { .. },
            ) => discrete_outputs(space.to_space().mask_len())?,
            (
                ActionSpace::MultiDiscrete { .. } | ActionSpace::MultiBinary { .. },
                head @ Head::MultiCategorical { nvec },
            ) => {
                let expected = space.to_space().mask_components();
                if *nvec != expected {
                    return Err(format!(
                        "head {} has nvec {nvec:?}, the space {space} needs {expected:?}",
                        head.kind()
                    ));
                }
                discrete_outputs(nvec.iter().sum())?;
            }
            (ActionSpace::MultiBinary { n }, Head::Bernoulli { n: m }) => {
                if m != n {
                    return Err(format!("head bernoulli has n = {m}, the space is {space}"));
                }
                discrete_outputs(*n)?;
            }
            (ActionSpace::Box { low, high }, head) if !head.is_discrete() => {
                let d = low.len();
                if d == 0 || high.len() != d {
                    return Err(format!(
                        "action.space has {} lower and {} upper bounds",
                        low.len(),
                        high.len()
                    ));
                }
                if low.iter().zip(high).any(|(l, h)| l.is_nan() || h.is_nan() || l > h) {
                    return Err("action.space has a NaN bound or low > high".into());
                }
                let expected: &[usize] = match head {
                    Head::Gaussian { log_std: Some(_) } | Head::DeterministicTanh { .. } => &[d],
                    Head::Gaussian { log_std: None } | Head::SquashedGaussian => &[2 * d],
                    _ => &[],
                };
                if !expected.contains(&outputs) {
                    return Err(format!(
                        "head {} over a {d}-dimensional box needs {} outputs, the last layer has \
                         {outputs}",
                        head.kind(),
                        expected[0]
                    ));
                }
                let squashed =
                    matches!(head, Head::SquashedGaussian | Head::DeterministicTanh { .. });
                match (&self.action.rescale, squashed) {
                    (Some(r), true) => {
                        if r.loc.len() != d || r.scale.len() != d {
                            return Err(format!(
                                "action.rescale has {} loc and {} scale values for {d} dimensions",
                                r.loc.len(),
                                r.scale.len()
                            ));
                        }
                        if r.loc.iter().chain(&r.scale).any(|v| !v.is_finite()) {
                            return Err("action.rescale values must be finite".into());
                        }
                    }
                    (None, true) => {
                        return Err(format!(
                            "head {} acts in [-1, 1] and needs action.rescale",
                            head.kind()
                        ));
                    }
                    (Some(_), false) => {
                        return Err("action.rescale is only for squashed heads".into());
                    }
                    (None, false) => {}
                }
            }
            (space, head) => {
                return Err(format!("head {} cannot act in the space {space}", head.kind()));
            }
        }
        if let Some(mask) = &self.action.mask {
            if self.version < 2 {
                return Err(format!(
                    "action.mask needs manifest version 2, this one is version {}",
                    self.version
                ));
            }
            let space = space.to_space();
            let expected = MaskSpec::of(&space);
            if expected.as_ref() != Some(mask) {
                return Err(match expected {
                    None => format!("action.mask is given for {space}, which has no masks"),
                    Some(e) => format!(
                        "action.mask has len {} and components {:?}, the space {space} needs \
                         len {} and components {:?}",
                        mask.len, mask.components, e.len, e.components
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_bounds_round_trip_through_json_as_strings() {
        let space =
            ActionSpace::Box { low: vec![f32::NEG_INFINITY, -2.0], high: vec![f32::INFINITY, 2.5] };
        let json = serde_json::to_string(&space).expect("serializes");
        assert_eq!(json, r#"{"type":"box","low":["-inf",-2.0],"high":["inf",2.5]}"#);
        let back: ActionSpace = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, space);
        let bad = serde_json::from_str::<ActionSpace>(r#"{"type":"box","low":["nan"],"high":[1]}"#);
        assert!(bad.unwrap_err().to_string().contains("\"nan\""), "the bad bound is named");
    }

    #[test]
    fn rescale_is_computed_in_f64_as_the_pathwise_agent_does() {
        let r = Rescale::of(&BoxSpace::new(vec![-2.0, 0.0], vec![2.0, 1.0]));
        assert_eq!(r.loc, [0.0, 0.5]);
        assert_eq!(r.scale, [2.0, 0.5]);
    }
}
