//! The factory from an action space to a distribution: how many outputs a policy network needs,
//! and how those outputs become a [`Distribution`].

use rlpg_envs::Space;
use tch::{Tensor, nn};

use super::{
    ActionBounds, Categorical, DiagGaussian, Distribution, DistributionError, SquashedGaussian,
};

/// Lowest log standard deviation a state-dependent Gaussian head can output (as in SB3 and SAC):
/// below it the density is so peaked that log-probabilities overflow.
pub const LOG_STD_MIN: f64 = -20.0;
/// Highest log standard deviation a state-dependent Gaussian head can output: `e² ≈ 7.4`, wider
/// than any normalized action range needs.
pub const LOG_STD_MAX: f64 = 2.0;

/// Which distribution family a policy uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistributionKind {
    /// [`Categorical`], for `Discrete` spaces.
    Categorical,
    /// [`DiagGaussian`], for `Box` spaces when actions need not be bounded by the distribution.
    DiagGaussian,
    /// [`SquashedGaussian`], for `Box` spaces with finite bounds.
    SquashedGaussian,
}

impl DistributionKind {
    /// The family a score-function agent (REINFORCE) uses for `space`: Categorical for
    /// `Discrete`, DiagGaussian for `Box` (its log-density needs no inverse transform, and the
    /// trainer clips actions to the bounds).
    pub fn for_score_function(space: &Space) -> Self {
        match space {
            Space::Box(_) => DistributionKind::DiagGaussian,
            _ => DistributionKind::Categorical,
        }
    }
}

/// Where a Gaussian head's log standard deviation comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LogStd {
    /// One learned value per action dimension, the same in every state (SB3's and CleanRL's
    /// choice for on-policy agents), starting at `init`.
    Parameter {
        /// Initial log standard deviation.
        init: f64,
    },
    /// The network outputs a log standard deviation per state and dimension, clamped to
    /// [`LOG_STD_MIN`, `LOG_STD_MAX`] (SAC's choice).
    StateDependent,
}

/// The family with what it needs beyond the network outputs.
#[derive(Debug)]
enum Family {
    Categorical,
    DiagGaussian,
    SquashedGaussian(ActionBounds),
}

/// Turns the raw outputs of a policy network into action distributions.
///
/// Built from the action space; owns the state-independent log-std parameter when there is one
/// (registered as `log_std` under the path it was built with, so optimizers and checkpoints see
/// it like any network weight).
#[derive(Debug)]
pub struct ActionHead {
    family: Family,
    /// Number of actions (Categorical) or action dimensions (Gaussians).
    size: usize,
    /// The learned state-independent log-std, `[dim]`; `None` for Categorical or when the
    /// network outputs it.
    log_std: Option<Tensor>,
}

impl ActionHead {
    /// A head producing `kind` distributions over `action_space`, with parameters created under
    /// `path`. `log_std` is ignored for Categorical.
    ///
    /// Errors when `kind` cannot represent the space (a Gaussian for `Discrete`, Categorical for
    /// `Box`, a squashed Gaussian for a box with an infinite bound) or the space is empty.
    pub fn new(
        path: &nn::Path<'_>,
        action_space: &Space,
        kind: DistributionKind,
        log_std: LogStd,
    ) -> Result<Self, DistributionError> {
        let unsupported = |reason: &str| DistributionError::UnsupportedSpace {
            kind,
            space: action_space.to_string(),
            reason: reason.to_owned(),
        };
        let (family, size) = match (kind, action_space) {
            (DistributionKind::Categorical, Space::Discrete(n)) => (Family::Categorical, *n),
            (DistributionKind::DiagGaussian, Space::Box(b)) => (Family::DiagGaussian, b.dim()),
            (DistributionKind::SquashedGaussian, Space::Box(b)) => {
                (Family::SquashedGaussian(ActionBounds::new(b)?.to_device(path.device())), b.dim())
            }
            (DistributionKind::Categorical, Space::Box(_)) => {
                return Err(unsupported("Categorical needs a Discrete action space"));
            }
            (_, Space::Discrete(_)) => {
                return Err(unsupported("Gaussian families need a Box action space"));
            }
            (_, Space::MultiDiscrete(_) | Space::MultiBinary(_)) => {
                return Err(unsupported("no policy head acts in this space yet (issue #30)"));
            }
        };
        if size == 0 {
            return Err(unsupported("the action space is empty"));
        }
        let log_std = match (&family, log_std) {
            (Family::Categorical, _) | (_, LogStd::StateDependent) => None,
            (_, LogStd::Parameter { init }) => {
                Some(path.var("log_std", &[size as i64], nn::Init::Const(init)))
            }
        };
        Ok(Self { family, size, log_std })
    }

    /// The distribution family.
    pub fn kind(&self) -> DistributionKind {
        match self.family {
            Family::Categorical => DistributionKind::Categorical,
            Family::DiagGaussian => DistributionKind::DiagGaussian,
            Family::SquashedGaussian(_) => DistributionKind::SquashedGaussian,
        }
    }

    /// How many outputs per state the policy network must produce: `n` logits for
    /// Categorical, `dim` means for a Gaussian with a state-independent log-std, `2 * dim`
    /// (means, then log-stds) for a state-dependent one.
    pub fn num_params(&self) -> usize {
        match (&self.family, &self.log_std) {
            (Family::Categorical, _) | (_, Some(_)) => self.size,
            (_, None) => 2 * self.size,
        }
    }

    /// The learned state-independent log standard deviation `[dim]`, if this head has one.
    pub fn log_std_parameter(&self) -> Option<&Tensor> {
        self.log_std.as_ref()
    }

    /// The distributions for network outputs `params` of shape `[batch, num_params()]`.
    pub fn distribution(&self, params: &Tensor) -> Box<dyn Distribution> {
        match &self.family {
            Family::Categorical => Box::new(Categorical::from_logits(params)),
            Family::DiagGaussian => {
                let (mean, log_std) = self.split_gaussian(params);
                Box::new(DiagGaussian::new(mean, &log_std))
            }
            Family::SquashedGaussian(bounds) => {
                let (mean, log_std) = self.split_gaussian(params);
                Box::new(SquashedGaussian::new(mean, &log_std, bounds))
            }
        }
    }

    /// Actions for network outputs `outputs` (`[rows, num_params()]` row-major, from
    /// [`crate::networks::MlpSnapshot::forward`]) computed in plain Rust, for acting on small
    /// batches where each tensor operation's fixed cost dominates. The same rules as the
    /// distributions' `sample` and `mode`, drawing the same random numbers from tch's generator
    /// (one uniform per row for Categorical, one standard normal per action dimension for
    /// DiagGaussian), so actions match theirs up to float rounding in the probabilities.
    ///
    /// Returns `None` for the squashed Gaussian, which acts through its tensor distribution.
    pub fn act_from_outputs(&self, outputs: &[f32], deterministic: bool) -> Option<Tensor> {
        let width = self.num_params();
        let rows = outputs.len() / width;
        match &self.family {
            Family::Categorical => {
                let uniforms = if deterministic {
                    None
                } else {
                    Some(draws(Tensor::rand([rows as i64, 1], CPU_FLOAT))?)
                };
                let actions: Vec<i64> = outputs
                    .chunks_exact(width)
                    .enumerate()
                    .map(|(row, logits)| match &uniforms {
                        Some(u) => super::categorical::inverse_cdf(logits, u[row]),
                        None => first_argmax(logits),
                    })
                    .collect();
                Some(Tensor::from_slice(&actions))
            }
            Family::DiagGaussian => {
                let d = self.size;
                // The means; exploring adds `std * ε` to each.
                let mut actions: Vec<f32> =
                    outputs.chunks_exact(width).flat_map(|p| p[..d].iter().copied()).collect();
                if !deterministic {
                    let eps = draws(Tensor::randn([rows as i64, d as i64], CPU_FLOAT))?;
                    let param_log_std = match &self.log_std {
                        Some(p) => Some(draws(p.shallow_clone())?),
                        None => None,
                    };
                    for (row, params) in outputs.chunks_exact(width).enumerate() {
                        for j in 0..d {
                            let log_std = match &param_log_std {
                                Some(p) => p[j],
                                None => params[d + j].clamp(LOG_STD_MIN as f32, LOG_STD_MAX as f32),
                            };
                            actions[row * d + j] += log_std.exp() * eps[row * d + j];
                        }
                    }
                }
                Some(Tensor::from_slice(&actions).view([rows as i64, d as i64]))
            }
            Family::SquashedGaussian(_) => None,
        }
    }

    /// Splits Gaussian parameters into the mean and the log-std (the learned parameter, or the
    /// second half of the outputs, clamped).
    fn split_gaussian(&self, params: &Tensor) -> (Tensor, Tensor) {
        match &self.log_std {
            Some(log_std) => (params.shallow_clone(), log_std.shallow_clone()),
            None => {
                let d = self.size as i64;
                let log_std = params.narrow(-1, d, d).clamp(LOG_STD_MIN, LOG_STD_MAX);
                (params.narrow(-1, 0, d), log_std)
            }
        }
    }
}

/// Float tensors on the CPU, as the random draws of acting are made.
const CPU_FLOAT: (tch::Kind, tch::Device) = (tch::Kind::Float, tch::Device::Cpu);

/// The values of `t` as a flat vector (`None` if libtorch cannot convert them, in which case
/// the caller acts through the tensor distributions instead).
fn draws(t: Tensor) -> Option<Vec<f32>> {
    // The learned log-std lives on the training device; acting reads it on the CPU.
    Vec::<f32>::try_from(&t.to_device(tch::Device::Cpu).flatten(0, -1)).ok()
}

/// The index of the first largest value (as `argmax` breaks ties).
fn first_argmax(values: &[f32]) -> i64 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as i64
}
