//! [`Space`]: the sets that observations and actions lie in, as Gymnasium's spaces, with the
//! layout of their action masks and uniform sampling (under a mask).

use std::fmt;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::action_buf::ActionBuf;
use crate::core::Action;

/// A set of valid observations or actions, as Gymnasium's spaces of the same names.
///
/// Every element has a flat representation of [`Space::flat_dim`] values (an observation row
/// is that many `f32`s). Gymnasium's spaces with several axes (a `MultiDiscrete` whose `nvec`
/// is a matrix, a `MultiBinary((3, 2))`) are flattened in C order by the bridge, as
/// Stable-Baselines3 flattens them.
///
/// How this grows: shaped observations (images as `[C, H, W]` with `u8` or `f32` values) and
/// dictionaries of named spaces are further variants beside these, each with a flat layout of
/// its own; code that only needs sizes asks [`Space::flat_dim`] and [`Space::mask_len`] instead
/// of matching on the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Space {
    /// Integers `0..n`.
    Discrete(usize),
    /// Real vectors with per-dimension bounds `low[i] <= x[i] <= high[i]` (bounds may be infinite).
    Box(BoxSpace),
    /// Gymnasium's `MultiDiscrete(nvec)`: one integer per component, component `i` in
    /// `0..nvec[i]` (an order size for each of several products, a key of a game controller).
    /// Gymnasium's `start` offsets are the bridge's business: rlpg's components always start at 0.
    MultiDiscrete(Vec<usize>),
    /// Gymnasium's `MultiBinary(n)`: `n` independent yes/no values (switches, items to pick).
    MultiBinary(usize),
}

/// Per-dimension bounds of a [`Space::Box`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxSpace {
    /// Lower bound of each dimension (may be `-inf`).
    pub low: Vec<f32>,
    /// Upper bound of each dimension (may be `+inf`).
    pub high: Vec<f32>,
}

impl BoxSpace {
    /// A box with the given bounds.
    ///
    /// # Panics
    /// If `low` and `high` differ in length or some `low[i] > high[i]`: a space is declared by the
    /// programmer, so a malformed one is a bug, not bad input.
    pub fn new(low: Vec<f32>, high: Vec<f32>) -> Self {
        assert_eq!(low.len(), high.len(), "BoxSpace bounds differ in length");
        assert!(low.iter().zip(&high).all(|(l, h)| l <= h), "BoxSpace has low > high");
        Self { low, high }
    }

    /// The same bound `[low, high]` on each of `dim` dimensions.
    pub fn uniform(dim: usize, low: f32, high: f32) -> Self {
        Self::new(vec![low; dim], vec![high; dim])
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.low.len()
    }

    /// Whether `x` has the right length and lies within the bounds (NaN never does).
    pub fn contains(&self, x: &[f32]) -> bool {
        x.len() == self.dim()
            && x.iter().zip(self.low.iter().zip(&self.high)).all(|(v, (l, h))| *l <= *v && *v <= *h)
    }
}

impl Space {
    /// Length of the flat `f32` vector that represents one element: 1 for `Discrete`, the
    /// dimension for `Box`, one value per component for `MultiDiscrete` and `MultiBinary`.
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete(_) => 1,
            Space::Box(b) => b.dim(),
            Space::MultiDiscrete(nvec) => nvec.len(),
            Space::MultiBinary(n) => *n,
        }
    }

    /// Length of an action mask for this action space ([`crate::Env::action_mask`]), laid out as
    /// sb3-contrib's `MaskablePPO` lays out `action_masks()`: one flag per action of a
    /// `Discrete(n)` (`n`); the flags of each component in turn for a `MultiDiscrete` (`nvec[0]`
    /// flags for component 0's values, then component 1's, ...: `sum(nvec)`); a pair per value of
    /// a `MultiBinary(n)`, "may be 0" then "may be 1" (`2n`). A `Box` has no masks (0).
    pub fn mask_len(&self) -> usize {
        match self {
            Space::Discrete(n) => *n,
            Space::Box(_) => 0,
            Space::MultiDiscrete(nvec) => nvec.iter().sum(),
            Space::MultiBinary(n) => 2 * n,
        }
    }

    /// The number of choices of each part of an action that a mask covers, in the mask's order:
    /// `[n]` for `Discrete(n)`, `nvec` for `MultiDiscrete`, `[2; n]` for `MultiBinary(n)`, none
    /// for a `Box`. [`Space::mask_len`] is their sum.
    pub fn mask_components(&self) -> Vec<usize> {
        match self {
            Space::Discrete(n) => vec![*n],
            Space::Box(_) => Vec::new(),
            Space::MultiDiscrete(nvec) => nvec.clone(),
            Space::MultiBinary(n) => vec![2; *n],
        }
    }

    /// Why this space cannot be used (no elements, or no dimensions), or `None`. Gymnasium
    /// refuses the same spaces: `Discrete(0)`, a `MultiDiscrete` with a count of 0.
    pub fn problem(&self) -> Option<String> {
        match self {
            Space::Discrete(0) => Some("Discrete(0) has no elements".to_owned()),
            Space::Box(b) if b.dim() == 0 => Some("a Box with no dimensions".to_owned()),
            Space::MultiDiscrete(nvec) if nvec.is_empty() => {
                Some("MultiDiscrete([]) has no components".to_owned())
            }
            Space::MultiDiscrete(nvec) => nvec.iter().position(|&k| k == 0).map(|i| {
                format!("{self} has no values for component {i} (every count must be positive)")
            }),
            Space::MultiBinary(0) => Some("MultiBinary(0) has no values".to_owned()),
            _ => None,
        }
    }

    /// What is wrong with `mask` as an action mask of this space ([`Space::mask_len`] flags in
    /// that method's layout), or `None` if it is a valid mask: it must have the right length,
    /// the space must have masks at all (a `Box` has none), and every part of an action must keep
    /// at least one allowed choice. The sentence names the part and quotes its flags.
    pub fn mask_problem(&self, mask: &[bool]) -> Option<String> {
        if matches!(self, Space::Box(_)) {
            return Some(format!("the action space {self} has no masks (only discrete spaces do)"));
        }
        if mask.len() != self.mask_len() {
            return Some(format!(
                "a mask of {} flags for the action space {self}, which needs {}",
                mask.len(),
                self.mask_len()
            ));
        }
        let mut start = 0;
        for (part, k) in self.mask_components().into_iter().enumerate() {
            let flags = &mask[start..start + k];
            if !flags.iter().any(|&f| f) {
                let what = match self {
                    Space::Discrete(_) => "allows no action".to_owned(),
                    Space::MultiBinary(_) => {
                        format!(
                            "allows neither 0 nor 1 for value {part} (flags {start}..{})",
                            start + k
                        )
                    }
                    _ => format!(
                        "allows no value of component {part} (flags {start}..{}: {})",
                        start + k,
                        bits(flags)
                    ),
                };
                return Some(format!("the mask {} {what}", bits(mask)));
            }
            start += k;
        }
        None
    }

    /// Whether `mask` is a valid mask of this space ([`Space::mask_problem`] is `None`), without
    /// allocating: for the checks of every step.
    #[inline]
    pub fn mask_is_valid(&self, mask: &[bool]) -> bool {
        let parts_allow = |width: usize| mask.chunks_exact(width).all(|c| c.iter().any(|&f| f));
        mask.len() == self.mask_len()
            && match self {
                Space::Box(_) => false,
                Space::Discrete(_) => mask.iter().any(|&f| f),
                Space::MultiBinary(_) => parts_allow(2),
                Space::MultiDiscrete(nvec) => {
                    let mut start = 0;
                    nvec.iter().all(|&n| {
                        let ok = mask[start..start + n].iter().any(|&f| f);
                        start += n;
                        ok
                    })
                }
            }
    }

    /// Whether `action` (an element of this space) is allowed by `mask` (a valid mask of this
    /// space, see [`Space::mask_problem`]). Actions of another kind or shape are not.
    pub fn mask_allows(&self, mask: &[bool], action: Action<'_>) -> bool {
        if !self.contains(action) || mask.len() != self.mask_len() {
            return false;
        }
        match (self, action) {
            (Space::Discrete(_), Action::Discrete(a)) => mask[a],
            (Space::MultiDiscrete(nvec), Action::MultiDiscrete(a)) => {
                let mut start = 0;
                a.iter().zip(nvec).all(|(&v, &n)| {
                    let allowed = mask[start + v];
                    start += n;
                    allowed
                })
            }
            (Space::MultiBinary(_), Action::MultiBinary(a)) => {
                a.iter().enumerate().all(|(i, &v)| mask[2 * i + usize::from(v)])
            }
            _ => false,
        }
    }

    /// A random element of this space, as Gymnasium's `space.sample()`: each part uniform over
    /// its allowed choices (all of them without a `mask`); a `Box` uniform within finite bounds,
    /// `low + Exp(1)` or `high - Exp(1)` with one infinite bound and `N(0, 1)` with none. An error
    /// (the sentence of [`Space::mask_problem`]) if `mask` is not a valid mask of the space, where
    /// Gymnasium would quietly take the first value of a component that allows none.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        mask: Option<&[bool]>,
    ) -> Result<ActionBuf, String> {
        if let Some(problem) = mask.and_then(|m| self.mask_problem(m)) {
            return Err(problem);
        }
        // One allowed choice of `k`, uniform, from the flags at `start` (all of them unmasked).
        let mut pick = |start: usize, k: usize| -> usize {
            match mask {
                None => rng.random_range(0..k),
                Some(mask) => {
                    let flags = &mask[start..start + k];
                    let allowed = flags.iter().filter(|&&f| f).count();
                    let nth = rng.random_range(0..allowed);
                    flags.iter().enumerate().filter(|(_, f)| **f).nth(nth).map_or(0, |(i, _)| i)
                }
            }
        };
        Ok(match self {
            Space::Discrete(n) => ActionBuf::Discrete(pick(0, *n)),
            Space::MultiDiscrete(nvec) => {
                let mut start = 0;
                ActionBuf::MultiDiscrete(
                    nvec.iter()
                        .map(|&n| {
                            let v = pick(start, n);
                            start += n;
                            v
                        })
                        .collect(),
                )
            }
            Space::MultiBinary(n) => {
                ActionBuf::MultiBinary((0..*n).map(|i| pick(2 * i, 2) == 1).collect())
            }
            Space::Box(b) => ActionBuf::Continuous(
                b.low
                    .iter()
                    .zip(&b.high)
                    .map(|(&lo, &hi)| match (lo.is_finite(), hi.is_finite()) {
                        (true, true) if lo == hi => lo,
                        (true, true) => rng.random_range(lo..=hi),
                        (true, false) => lo + Distribution::<f32>::sample(&Exp1, rng),
                        (false, true) => hi - Distribution::<f32>::sample(&Exp1, rng),
                        (false, false) => Distribution::<f32>::sample(&StandardNormal, rng),
                    })
                    .collect(),
            ),
        })
    }

    /// Whether `action` is an element of this space (right kind, shape and bounds).
    pub fn contains(&self, action: Action<'_>) -> bool {
        match (self, action) {
            (Space::Discrete(n), Action::Discrete(a)) => a < *n,
            (Space::Box(b), Action::Continuous(x)) => b.contains(x),
            (Space::MultiDiscrete(nvec), Action::MultiDiscrete(a)) => {
                a.len() == nvec.len() && a.iter().zip(nvec).all(|(v, n)| v < n)
            }
            (Space::MultiBinary(n), Action::MultiBinary(a)) => a.len() == *n,
            _ => false,
        }
    }

    /// Whether the flat observation row `obs` is an element of this space: within the bounds of
    /// a `Box`; whole numbers in range for `Discrete` and `MultiDiscrete`; 0 or 1 for
    /// `MultiBinary`. (The length is [`Space::flat_dim`]; NaN is in no space.)
    pub fn contains_flat(&self, obs: &[f32]) -> bool {
        let index_below = |v: f32, n: usize| v >= 0.0 && v.fract() == 0.0 && (v as usize) < n;
        obs.len() == self.flat_dim()
            && match self {
                Space::Box(b) => b.contains(obs),
                Space::Discrete(n) => index_below(obs[0], *n),
                Space::MultiDiscrete(nvec) => {
                    obs.iter().zip(nvec).all(|(&v, &n)| index_below(v, n))
                }
                Space::MultiBinary(_) => obs.iter().all(|&v| v == 0.0 || v == 1.0),
            }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete(n) => write!(f, "Discrete({n})"),
            Space::Box(b) => {
                let same = |v: &[f32]| v.iter().all(|x| x.to_bits() == v[0].to_bits());
                if !b.low.is_empty() && same(&b.low) && same(&b.high) {
                    write!(f, "Box({}, {}, ({},))", b.low[0], b.high[0], b.dim())
                } else {
                    write!(f, "Box({:?}, {:?})", b.low, b.high)
                }
            }
            Space::MultiDiscrete(nvec) => write!(f, "MultiDiscrete({nvec:?})"),
            Space::MultiBinary(n) => write!(f, "MultiBinary({n})"),
        }
    }
}

/// Flags as Gymnasium prints an `int8` mask: `[1, 0, 1]`.
pub(crate) fn bits(flags: &[bool]) -> String {
    let bits: Vec<u8> = flags.iter().map(|&f| u8::from(f)).collect();
    format!("{bits:?}")
}
