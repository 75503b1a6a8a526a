//! The score-function policy's head: from an action space to a distribution family, how many
//! outputs the network needs, and how those outputs become a distribution (in the backends) or
//! an action for the environment (on the host, for acting).

use rlpg_envs::Space;
use rlpg_kernel::heads::{argmax, clamp_log_std, inverse_cdf};
use tch::nn;

use super::{Categorical, DiagGaussian, DistributionError};
use crate::agent::{Actions, AgentError};
use crate::backend::{Backend, Ops};
use crate::scaffold::Net;

/// Which distribution family a score-function policy uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistributionKind {
    /// [`Categorical`], for `Discrete` spaces.
    Categorical,
    /// [`DiagGaussian`], for `Box` spaces (actions unbounded; the trainer clips them).
    DiagGaussian,
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
    /// [`super::LOG_STD_MIN`, `super::LOG_STD_MAX`] (SAC's choice).
    StateDependent,
}

/// Name of the learned state-independent log-std in its network.
const LOG_STD: &str = "log_std";

/// Turns the raw outputs of a policy network into action distributions.
///
/// Built from the action space; creates the state-independent log-std parameter when there is
/// one (registered as `log_std` under the path it was built with, so optimizers and checkpoints
/// see it like any network weight).
#[derive(Clone, Debug)]
pub struct ActionHead {
    kind: DistributionKind,
    /// Number of actions (Categorical) or action dimensions (Gaussian).
    size: usize,
    /// A learned state-independent log-std (otherwise the network outputs it).
    log_std_parameter: bool,
}

/// A batch of a score-function policy's distributions.
#[derive(Debug)]
pub enum PolicyDistribution<B: Ops> {
    /// Over `Discrete(n)`.
    Categorical(Categorical<B>),
    /// Over a box.
    Gaussian(DiagGaussian<B>),
}

impl<B: Ops> PolicyDistribution<B> {
    /// `log π(a|s)` of the given actions, `[rows, 1]`.
    pub fn log_prob(&self, b: &mut B, actions: &Actions) -> Result<B::M, AgentError> {
        match (self, actions) {
            (PolicyDistribution::Categorical(d), Actions::Indices { values, width: 1 }) => {
                let index: Vec<usize> = values.iter().map(|&a| a as usize).collect();
                Ok(d.log_prob(b, &index))
            }
            (PolicyDistribution::Gaussian(d), Actions::Floats { values, width }) => {
                let x = b.constant(values.len() / width.max(&1), *width, values)?;
                Ok(d.log_prob(b, &x))
            }
            (_, actions) => Err(AgentError::Invalid(format!(
                "actions of shape {actions} do not fit this policy's distribution"
            ))),
        }
    }

    /// The exact entropy, `[rows, 1]` (or `[1, 1]` for a Gaussian with a state-independent
    /// log-std, the same in every row).
    pub fn entropy(&self, b: &mut B) -> B::M {
        match self {
            PolicyDistribution::Categorical(d) => d.entropy(b),
            PolicyDistribution::Gaussian(d) => d.entropy(b),
        }
    }
}

impl ActionHead {
    /// A head producing `kind` distributions over `action_space`, with parameters created under
    /// `path`. `log_std` is ignored for Categorical.
    ///
    /// Errors when `kind` cannot represent the space (a Gaussian for `Discrete`, Categorical for
    /// `Box`) or the space is empty.
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
        let size = match (kind, action_space) {
            (DistributionKind::Categorical, Space::Discrete(n)) => *n,
            (DistributionKind::DiagGaussian, Space::Box(b)) => b.dim(),
            (DistributionKind::Categorical, Space::Box(_)) => {
                return Err(unsupported("Categorical needs a Discrete action space"));
            }
            (DistributionKind::DiagGaussian, Space::Discrete(_)) => {
                return Err(unsupported("a Gaussian needs a Box action space"));
            }
            (_, Space::MultiDiscrete(_) | Space::MultiBinary(_)) => {
                return Err(unsupported("no policy head acts in this space yet (issue #30)"));
            }
        };
        if size == 0 {
            return Err(unsupported("the action space is empty"));
        }
        let log_std_parameter = match (kind, log_std) {
            (DistributionKind::DiagGaussian, LogStd::Parameter { init }) => {
                let _ = path.var(LOG_STD, &[size as i64], nn::Init::Const(init));
                true
            }
            _ => false,
        };
        Ok(Self { kind, size, log_std_parameter })
    }

    /// The distribution family.
    pub fn kind(&self) -> DistributionKind {
        self.kind
    }

    /// How many outputs per state the policy network must produce: `n` logits for
    /// Categorical, `dim` means for a Gaussian with a state-independent log-std, `2 * dim`
    /// (means, then log-stds) for a state-dependent one.
    pub fn num_params(&self) -> usize {
        match self.kind {
            DistributionKind::DiagGaussian if !self.log_std_parameter => 2 * self.size,
            _ => self.size,
        }
    }

    /// Whether the log-std is a learned state-independent parameter.
    pub fn has_log_std_parameter(&self) -> bool {
        self.log_std_parameter
    }

    /// The distributions for the network outputs `outputs` (`[rows, num_params()]`) of the
    /// policy network `net`.
    pub(crate) fn distribution<B: Backend>(
        &self,
        b: &mut B,
        net: &Net,
        outputs: &B::M,
    ) -> PolicyDistribution<B> {
        match self.kind {
            DistributionKind::Categorical => {
                PolicyDistribution::Categorical(Categorical::from_logits(b, outputs))
            }
            DistributionKind::DiagGaussian => {
                let d = self.size;
                let (mean, log_std) = if self.log_std_parameter {
                    (b.alias(outputs), b.param(net, LOG_STD))
                } else {
                    let mean = b.cols(outputs, 0, d);
                    let raw = b.cols(outputs, d, d);
                    (mean, b.clamp(&raw, super::LOG_STD_MIN.into(), super::LOG_STD_MAX.into()))
                };
                PolicyDistribution::Gaussian(DiagGaussian::new(mean, log_std))
            }
        }
    }

    /// Noise columns per row that exploring draws: one uniform per row for Categorical (the
    /// inverse CDF), one standard normal per dimension for a Gaussian.
    pub(crate) fn noise_cols(&self) -> (usize, bool) {
        match self.kind {
            DistributionKind::Categorical => (1, false),
            DistributionKind::DiagGaussian => (self.size, true),
        }
    }

    /// Actions for the environment from network outputs `outputs` (`[rows, num_params()]`
    /// row-major) on the host: the mode, or with `noise` (as [`ActionHead::noise_cols`] says) a
    /// sample, the rule of the distributions' own sampling. `log_std` is the learned parameter
    /// when there is one.
    pub(crate) fn act(
        &self,
        outputs: &[f32],
        log_std: Option<&[f32]>,
        noise: Option<&[f32]>,
        out: &mut Actions,
    ) {
        let width = self.num_params();
        let rows = outputs.len() / width;
        match self.kind {
            DistributionKind::Categorical => {
                let values = out.indices(rows, 1);
                for (row, logits) in outputs.chunks_exact(width).enumerate() {
                    let a = match noise {
                        Some(u) => inverse_cdf(logits, u[row]),
                        None => argmax(logits),
                    };
                    values[row] = a as i64;
                }
            }
            DistributionKind::DiagGaussian => {
                let d = self.size;
                let values = out.floats(rows, d);
                for (row, params) in outputs.chunks_exact(width).enumerate() {
                    for j in 0..d {
                        let mut a = params[j];
                        if let Some(eps) = noise {
                            let log_std = match log_std {
                                Some(p) => p[j],
                                None => clamp_log_std(params[d + j]),
                            };
                            a += log_std.exp() * eps[row * d + j];
                        }
                        values[row * d + j] = a;
                    }
                }
            }
        }
    }
}
