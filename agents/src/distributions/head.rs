//! The score-function policy's head: from an action space to a distribution family, how many
//! outputs the network needs, and how those outputs become a distribution (in the backends) or
//! an action for the environment (on the host, for acting).

use rlpg_envs::Space;
use rlpg_kernel::heads::{
    argmax, bernoulli_mode, bernoulli_probability, clamp_log_std, inverse_cdf, mask_logits_in_place,
};
use tch::nn;

use super::{
    Bernoulli, Categorical, DiagGaussian, DistributionError, MASKED_LOGIT, MultiCategorical,
};
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
    /// [`MultiCategorical`], for `MultiDiscrete` spaces: one categorical per component.
    MultiCategorical,
    /// [`Bernoulli`], for `MultiBinary` spaces: one Bernoulli per value.
    Bernoulli,
}

impl DistributionKind {
    /// The family a score-function agent (REINFORCE) uses for `space`: Categorical for
    /// `Discrete`, DiagGaussian for `Box` (its log-density needs no inverse transform, and the
    /// trainer clips actions to the bounds), MultiCategorical for `MultiDiscrete`, Bernoulli for
    /// `MultiBinary`.
    pub fn for_score_function(space: &Space) -> Self {
        match space {
            Space::Box(_) => DistributionKind::DiagGaussian,
            Space::Discrete(_) => DistributionKind::Categorical,
            Space::MultiDiscrete(_) => DistributionKind::MultiCategorical,
            Space::MultiBinary(_) => DistributionKind::Bernoulli,
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
    /// Number of actions (Categorical), action dimensions (Gaussian), logits (MultiCategorical:
    /// `Σ nvec`) or values (Bernoulli).
    size: usize,
    /// The choices of each part of an action: `[n]` (Categorical), `nvec` (MultiCategorical),
    /// `[2; n]` (Bernoulli), none (Gaussian); the layout of the masks.
    parts: Vec<usize>,
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
    /// Over `MultiDiscrete(nvec)`.
    MultiCategorical(MultiCategorical<B>),
    /// Over `MultiBinary(n)`.
    Bernoulli(Bernoulli<B>),
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
            (PolicyDistribution::MultiCategorical(d), Actions::Indices { values, width })
                if *width == d.parts.len() =>
            {
                let index: Vec<usize> = values.iter().map(|&a| a as usize).collect();
                Ok(d.log_prob(b, &index))
            }
            (PolicyDistribution::Bernoulli(d), Actions::Indices { values, width })
                if *width == b.shape(&d.logits).1 =>
            {
                d.log_prob(b, values)
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
            PolicyDistribution::MultiCategorical(d) => d.entropy(b),
            PolicyDistribution::Bernoulli(d) => d.entropy(b),
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
            (DistributionKind::MultiCategorical, Space::MultiDiscrete(nvec)) => nvec.iter().sum(),
            (DistributionKind::Bernoulli, Space::MultiBinary(n)) => *n,
            (DistributionKind::DiagGaussian, _) => {
                return Err(unsupported("a Gaussian needs a Box action space"));
            }
            (DistributionKind::Categorical, _) => {
                return Err(unsupported("Categorical needs a Discrete action space"));
            }
            (DistributionKind::MultiCategorical, _) => {
                return Err(unsupported("MultiCategorical needs a MultiDiscrete action space"));
            }
            (DistributionKind::Bernoulli, _) => {
                return Err(unsupported("Bernoulli needs a MultiBinary action space"));
            }
        };
        if size == 0 || action_space.problem().is_some() {
            return Err(unsupported("the action space is empty"));
        }
        let parts = action_space.mask_components();
        let log_std_parameter = match (kind, log_std) {
            (DistributionKind::DiagGaussian, LogStd::Parameter { init }) => {
                let _ = path.var(LOG_STD, &[size as i64], nn::Init::Const(init));
                true
            }
            _ => false,
        };
        Ok(Self { kind, size, parts, log_std_parameter })
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
    /// policy network `net`, under the masks whose bias ([`ActionHead::mask_bias`]) is
    /// `mask_bias` when given.
    pub(crate) fn distribution<B: Backend>(
        &self,
        b: &mut B,
        net: &Net,
        outputs: &B::M,
        mask_bias: Option<&B::M>,
    ) -> PolicyDistribution<B> {
        match self.kind {
            DistributionKind::Categorical => {
                let masked = mask_bias.map(|bias| b.add(outputs, bias));
                let logits = masked.as_ref().unwrap_or(outputs);
                PolicyDistribution::Categorical(Categorical::from_logits(b, logits))
            }
            DistributionKind::MultiCategorical => PolicyDistribution::MultiCategorical(
                MultiCategorical::from_logits(b, outputs, &self.parts, mask_bias),
            ),
            DistributionKind::Bernoulli => {
                PolicyDistribution::Bernoulli(Bernoulli::from_logits(b, outputs, mask_bias))
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
            // One uniform per component (inverse CDF) or per value.
            DistributionKind::MultiCategorical | DistributionKind::Bernoulli => {
                (self.parts.len(), false)
            }
        }
    }

    /// Flags per row of an action mask for this head (the action space's
    /// `Space::mask_len`): 0 for a Gaussian, which takes no masks.
    pub fn mask_len(&self) -> usize {
        self.parts.iter().sum()
    }

    /// The bias the masks `masks` (`[rows, mask_len()]`, the action space's layout) add to the
    /// logits, `[rows, num_params()]` into `out`: 0 where allowed, [`MASKED_LOGIT`] on a masked
    /// choice; for a Bernoulli `−|MASKED_LOGIT|` on a value that may only be 0, `+|MASKED_LOGIT|`
    /// on one that may only be 1. Errors on masks of the wrong length, for a Gaussian, or one
    /// that allows no choice of some part (a row and part named).
    pub fn mask_bias(&self, masks: &[bool], out: &mut Vec<f32>) -> Result<(), AgentError> {
        let bernoulli = self.kind == DistributionKind::Bernoulli;
        if self.mask_len() == 0 {
            return Err(AgentError::Invalid(format!(
                "{} mask flags for a {:?} head, which takes no masks",
                masks.len(),
                self.kind
            )));
        }
        mask_bias_of(&self.parts, bernoulli, masks, out)
    }

    /// Actions for the environment from network outputs `outputs` (`[rows, num_params()]`
    /// row-major) on the host: the mode, or with `noise` (as [`ActionHead::noise_cols`] says) a
    /// sample, the rule of the distributions' own sampling. `log_std` is the learned parameter
    /// when there is one.
    ///
    /// With `masks` (`[rows, mask_len()]`), every choice is among those its row's mask allows:
    /// the most probable allowed one, or a sample of the distribution restricted to them (what
    /// [`ActionHead::mask_bias`] gives the update). Errors on masks of the wrong length or a mask
    /// that allows no choice of some part.
    pub(crate) fn act(
        &self,
        outputs: &[f32],
        log_std: Option<&[f32]>,
        noise: Option<&[f32]>,
        masks: Option<&[bool]>,
        out: &mut Actions,
    ) -> Result<(), AgentError> {
        let width = self.num_params();
        let rows = outputs.len() / width;
        let m = self.mask_len();
        if let Some(masks) = masks
            && (m == 0 || masks.len() != rows * m)
        {
            return Err(AgentError::Invalid(format!(
                "{} mask flags for {rows} rows of a {:?} head, which needs {m} a row",
                masks.len(),
                self.kind
            )));
        }
        let none_allowed = |row: usize, part: usize| {
            AgentError::Invalid(format!(
                "the action mask of row {row} allows no choice of part {part}"
            ))
        };
        match self.kind {
            DistributionKind::Categorical | DistributionKind::MultiCategorical => {
                let k = self.parts.len();
                let values = out.indices(rows, k);
                let mut masked = Vec::new();
                for (row, logits) in outputs.chunks_exact(width).enumerate() {
                    let mut start = 0;
                    for (part, &n) in self.parts.iter().enumerate() {
                        let mut l = &logits[start..start + n];
                        if let Some(masks) = masks {
                            // The masked choices' logits become −∞: probability exactly 0.
                            let mask = &masks[row * m + start..row * m + start + n];
                            if !mask.iter().any(|&f| f) {
                                return Err(none_allowed(row, part));
                            }
                            masked.clear();
                            masked.extend_from_slice(l);
                            mask_logits_in_place(&mut masked, mask);
                            l = &masked;
                        }
                        let a = match noise {
                            Some(u) => inverse_cdf(l, u[row * k + part]),
                            None => argmax(l),
                        };
                        values[row * k + part] = a as i64;
                        start += n;
                    }
                }
            }
            DistributionKind::Bernoulli => {
                let n = self.size;
                let values = out.indices(rows, n);
                for (row, logits) in outputs.chunks_exact(width).enumerate() {
                    for (j, &l) in logits.iter().enumerate() {
                        let allowed = match masks {
                            None => [true, true],
                            Some(masks) => [masks[row * m + 2 * j], masks[row * m + 2 * j + 1]],
                        };
                        if allowed == [false, false] {
                            return Err(none_allowed(row, j));
                        }
                        let one = match noise {
                            Some(u) => u[row * n + j] < bernoulli_probability(l, allowed),
                            None => bernoulli_mode(l, allowed),
                        };
                        values[row * n + j] = i64::from(one);
                    }
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
        Ok(())
    }
}

/// The logit bias of action masks `masks` (`[rows, Σ parts]`, the action space's layout, one
/// part per component) into `out`, `[rows, Σ parts]`: 0 where allowed, [`MASKED_LOGIT`] on a
/// masked choice; with `bernoulli` (each part a `[may be 0, may be 1]` pair and one logit of "1"
/// per part), `[rows, parts]`: `−|MASKED_LOGIT|` on a value that may only be 0,
/// `+|MASKED_LOGIT|` on one that may only be 1. Errors on masks of the wrong length or one that
/// allows no choice of some part (a row and part named). Shared by the score-function
/// ([`ActionHead::mask_bias`]) and the pathwise agents' heads.
pub(crate) fn mask_bias_of(
    parts: &[usize],
    bernoulli: bool,
    masks: &[bool],
    out: &mut Vec<f32>,
) -> Result<(), AgentError> {
    let m: usize = parts.iter().sum();
    if m == 0 || masks.len() % m != 0 {
        return Err(AgentError::Invalid(format!(
            "{} mask flags do not fill rows of {m} (the mask length of the action space)",
            masks.len()
        )));
    }
    out.clear();
    for (row, mask) in masks.chunks_exact(m).enumerate() {
        let mut start = 0;
        for (part, &k) in parts.iter().enumerate() {
            let flags = &mask[start..start + k];
            if !flags.iter().any(|&f| f) {
                return Err(AgentError::Invalid(format!(
                    "the action mask of row {row} allows no choice of part {part} (flags \
                     {start}..{})",
                    start + k
                )));
            }
            if bernoulli {
                out.push(match (flags[0], flags[1]) {
                    (true, false) => MASKED_LOGIT,
                    (false, true) => -MASKED_LOGIT,
                    _ => 0.0,
                });
            } else {
                out.extend(flags.iter().map(|&f| if f { 0.0 } else { MASKED_LOGIT }));
            }
            start += k;
        }
    }
    Ok(())
}
