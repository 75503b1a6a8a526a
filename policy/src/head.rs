//! The manifest's [`Head`] applied to one row of network outputs: the greedy action, a sample
//! and the distribution, each optionally under an action mask (MaskablePPO's semantics: a
//! disallowed choice's logit is `−∞`). The arithmetic is `rlpg_kernel::heads`, the code rlpg
//! trains with.

use rlpg_envs::{ActionBuf, Space};
use rlpg_kernel::heads::{
    argmax, bernoulli_mode, bernoulli_probability, bound_logits_in_place, clamp_log_std,
    inverse_cdf, log_softmax_in_place, mask_logits_in_place, softmax_in_place,
};

use crate::manifest::{Head, Manifest};

/// The action distribution of a policy for one observation, in the environment's terms.
///
/// Non-exhaustive: heads added later bring variants of their own.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ActionDistribution {
    /// One categorical per component (heads `categorical`, `gumbel_softmax` and
    /// `multi_categorical`): the probabilities of every choice of every component, laid out as
    /// the action mask (`Discrete(n)`: `n`; `MultiDiscrete(nvec)`: component 0's `nvec[0]`
    /// probabilities, then component 1's, ...; `MultiBinary(n)`: `P(0)`, `P(1)` for each value).
    /// Under a mask, disallowed choices have probability exactly 0.
    Categorical {
        /// Probabilities, summing to 1 within each component.
        probs: Vec<f32>,
        /// Choices per component (`[n]`, `nvec` or `[2; n]`), in order.
        components: Vec<usize>,
    },
    /// Independent Bernoullis (head `bernoulli`): `P(value i = 1)` for each value (exactly 0 or
    /// 1 where the mask allows only one).
    Bernoulli {
        /// `P(1)` per value.
        probs: Vec<f32>,
    },
    /// A diagonal Gaussian (head `gaussian`): the action is drawn from `N(mean, std²)` and then
    /// clipped into the box; the greedy action is the clipped mean.
    Gaussian {
        /// Mean per dimension.
        mean: Vec<f32>,
        /// Standard deviation per dimension.
        std: Vec<f32>,
    },
    /// A squashed Gaussian (head `squashed_gaussian`, SAC): `x ~ N(mean, std²)` before the
    /// squash, the action `tanh(x) · scale + loc`; `mode` is that of the mean (the greedy
    /// action), in the environment's units.
    SquashedGaussian {
        /// Pre-squash mean per dimension.
        mean: Vec<f32>,
        /// Pre-squash standard deviation per dimension.
        std: Vec<f32>,
        /// The action of the mean after the squash, the rescale and the clip.
        mode: Vec<f32>,
    },
    /// A deterministic policy (head `deterministic_tanh`, TD3): `action` is the greedy action;
    /// exploring, training added Gaussian noise of std `noise_std` in `[−1, 1]` units.
    Deterministic {
        /// The action, in the environment's units.
        action: Vec<f32>,
        /// The exploration noise's standard deviation before the rescale.
        noise_std: f32,
    },
}

/// What the head computes for a row.
pub(crate) enum Query<'a> {
    /// The greedy action.
    Mode,
    /// An action drawn with this generator.
    Sample(&'a mut SplitMix),
}

/// A head ready to act: the manifest's head with the sizes and tensors it needs.
#[derive(Clone, Debug)]
pub(crate) struct HeadRule {
    head: Head,
    space: Space,
    /// Outputs per component of a discrete head (the mask's layout; the Bernoulli's `n` values
    /// count as `n` components of one logit each).
    components: Vec<usize>,
    /// Values per action of a box.
    dim: usize,
    /// A Gaussian head's state-independent log-std.
    log_std: Option<Vec<f32>>,
    /// `(loc, scale)` of a squashed head.
    rescale: Option<(Vec<f32>, Vec<f32>)>,
}

impl HeadRule {
    /// The rule of a checked manifest, with the log-std parameter if the head has one.
    pub(crate) fn new(manifest: &Manifest, log_std: Option<Vec<f32>>) -> Self {
        let space = manifest.action.space.to_space();
        let components = match &manifest.head {
            Head::Bernoulli { n } => vec![1; *n],
            _ => space.mask_components(),
        };
        Self {
            head: manifest.head.clone(),
            dim: space.flat_dim(),
            space,
            components,
            log_std,
            rescale: manifest.action.rescale.as_ref().map(|r| (r.loc.clone(), r.scale.clone())),
        }
    }

    /// The action for one row of outputs, under `mask` (checked by the caller) if given.
    pub(crate) fn action(
        &self,
        outputs: &[f32],
        mask: Option<&[bool]>,
        query: Query<'_>,
        scratch: &mut Vec<f32>,
    ) -> ActionBuf {
        let d = self.dim;
        let mut y: Vec<f32> = match (&self.head, query) {
            (Head::Bernoulli { .. }, query) => {
                let mut rng = match query {
                    Query::Mode => None,
                    Query::Sample(rng) => Some(rng),
                };
                return ActionBuf::MultiBinary(
                    outputs
                        .iter()
                        .enumerate()
                        .map(|(i, &l)| {
                            let allowed = mask.map_or([true, true], |m| [m[2 * i], m[2 * i + 1]]);
                            match rng.as_deref_mut() {
                                None => bernoulli_mode(l, allowed),
                                Some(rng) => {
                                    (rng.uniform() as f32) < bernoulli_probability(l, allowed)
                                }
                            }
                        })
                        .collect(),
                );
            }
            // The common case, REINFORCE's greedy action without a mask: no copy of the logits.
            (Head::Categorical, Query::Mode) if mask.is_none() => {
                return ActionBuf::Discrete(argmax(outputs));
            }
            (Head::Categorical | Head::GumbelSoftmax { .. } | Head::MultiCategorical { .. }, q) => {
                let logits = self.logits(outputs, mask, scratch);
                let mut rng = match q {
                    Query::Mode => None,
                    Query::Sample(rng) => Some(rng),
                };
                let mut choices = Vec::with_capacity(self.components.len());
                let mut start = 0;
                for &k in &self.components {
                    let component = &mut logits[start..start + k];
                    choices.push(match rng.as_deref_mut() {
                        Some(rng) => inverse_cdf(component, rng.uniform() as f32),
                        None => {
                            if matches!(self.head, Head::GumbelSoftmax { .. }) {
                                // The agent's mode is the argmax of `log_softmax` of the
                                // (bounded) logits; the subtraction can round two close logits
                                // to a tie, so it is repeated here.
                                log_softmax_in_place(component);
                            }
                            argmax(component)
                        }
                    });
                    start += k;
                }
                return match self.space {
                    Space::Discrete(_) => ActionBuf::Discrete(choices[0]),
                    Space::MultiBinary(_) => {
                        ActionBuf::MultiBinary(choices.iter().map(|&c| c == 1).collect())
                    }
                    _ => ActionBuf::MultiDiscrete(choices),
                };
            }
            (Head::Gaussian { .. }, Query::Mode) => outputs[..d].to_vec(),
            (Head::Gaussian { .. }, Query::Sample(rng)) => (0..d)
                .map(|j| outputs[j] + self.log_std_at(outputs, j).exp() * rng.normal() as f32)
                .collect(),
            (Head::SquashedGaussian, Query::Mode) => {
                outputs[..d].iter().map(|u| u.tanh()).collect()
            }
            (Head::SquashedGaussian, Query::Sample(rng)) => (0..d)
                .map(|j| {
                    (outputs[j] + self.log_std_at(outputs, j).exp() * rng.normal() as f32).tanh()
                })
                .collect(),
            (Head::DeterministicTanh { .. }, Query::Mode) => {
                outputs[..d].iter().map(|u| u.tanh()).collect()
            }
            (Head::DeterministicTanh { exploration_noise }, Query::Sample(rng)) => outputs[..d]
                .iter()
                .map(|u| (u.tanh() + (rng.normal() * exploration_noise) as f32).clamp(-1.0, 1.0))
                .collect(),
        };
        self.to_box(&mut y);
        ActionBuf::Continuous(y)
    }

    /// The distribution for one row of outputs, under `mask` (checked by the caller) if given.
    pub(crate) fn distribution(
        &self,
        outputs: &[f32],
        mask: Option<&[bool]>,
        scratch: &mut Vec<f32>,
    ) -> ActionDistribution {
        let d = self.dim;
        match &self.head {
            Head::Bernoulli { .. } => ActionDistribution::Bernoulli {
                probs: outputs
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| {
                        let allowed = mask.map_or([true, true], |m| [m[2 * i], m[2 * i + 1]]);
                        bernoulli_probability(l, allowed)
                    })
                    .collect(),
            },
            Head::Categorical | Head::GumbelSoftmax { .. } | Head::MultiCategorical { .. } => {
                let logits = self.logits(outputs, mask, scratch);
                let mut start = 0;
                for &k in &self.components {
                    softmax_in_place(&mut logits[start..start + k]);
                    start += k;
                }
                ActionDistribution::Categorical {
                    probs: logits.to_vec(),
                    components: self.components.clone(),
                }
            }
            Head::Gaussian { .. } => ActionDistribution::Gaussian {
                mean: outputs[..d].to_vec(),
                std: (0..d).map(|j| self.log_std_at(outputs, j).exp()).collect(),
            },
            Head::SquashedGaussian => {
                let mut mode: Vec<f32> = outputs[..d].iter().map(|u| u.tanh()).collect();
                self.to_box(&mut mode);
                ActionDistribution::SquashedGaussian {
                    mean: outputs[..d].to_vec(),
                    std: (0..d).map(|j| self.log_std_at(outputs, j).exp()).collect(),
                    mode,
                }
            }
            Head::DeterministicTanh { exploration_noise } => {
                let mut action: Vec<f32> = outputs[..d].iter().map(|u| u.tanh()).collect();
                self.to_box(&mut action);
                ActionDistribution::Deterministic { action, noise_std: *exploration_noise as f32 }
            }
        }
    }

    /// A discrete head's logits in `scratch`: bounded per component (Gumbel-softmax with a
    /// logit bound), then masked.
    fn logits<'s>(
        &self,
        outputs: &[f32],
        mask: Option<&[bool]>,
        scratch: &'s mut Vec<f32>,
    ) -> &'s mut [f32] {
        scratch.clear();
        scratch.extend_from_slice(outputs);
        if let Head::GumbelSoftmax { logit_bound, .. } = self.head {
            let mut start = 0;
            for &k in &self.components {
                bound_logits_in_place(&mut scratch[start..start + k], logit_bound);
                start += k;
            }
        }
        if let Some(mask) = mask {
            mask_logits_in_place(scratch, mask);
        }
        scratch
    }

    /// A box head's output `y` rescaled (squashed heads) and clipped into the bounds.
    fn to_box(&self, y: &mut [f32]) {
        if let Some((loc, scale)) = &self.rescale {
            for ((a, &l), &s) in y.iter_mut().zip(loc).zip(scale) {
                *a = *a * s + l;
            }
        }
        if let Space::Box(b) = &self.space {
            for ((a, &lo), &hi) in y.iter_mut().zip(&b.low).zip(&b.high) {
                // NaN stays NaN, as rlpg's trainer leaves it for the env to reject.
                if *a < lo {
                    *a = lo;
                } else if *a > hi {
                    *a = hi;
                }
            }
        }
    }

    /// A Gaussian head's log-std of dimension `j`: the parameter, or output `d + j` clamped.
    fn log_std_at(&self, outputs: &[f32], j: usize) -> f32 {
        match &self.log_std {
            Some(p) => p[j],
            None => clamp_log_std(outputs[self.dim + j]),
        }
    }
}

/// SplitMix64, the seeded generator of `Policy::sample_batch`.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}
