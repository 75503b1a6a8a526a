//! `rlpg gradlab --policy`: how good each policy-gradient estimator is on a real task, at a
//! trained policy, measured against a brute-force ground truth.
//!
//! The objective is the episode's discounted return as the environment defines the episode,
//! `J(θ) = E[Σ_{t<T} γ^t r_t]`, with `T` the termination or the time limit and `γ` the agent's.
//! (The agents bootstrap through a time limit, i.e. they learn values of an unlimited task; `J`
//! stops where the episode does. The difference is what a practitioner's return measures.)
//!
//! - **Ground truth** ([`Measurement::truth`]): the score-function estimator
//!   `Σ_t γ^t ∇log π(a_t|s_t) (G_t − b(s_t))` averaged over many episodes, in chunks whose
//!   spread gives a per-coordinate standard error. Any baseline that does not look at the action
//!   keeps it unbiased: the run's value network when it has one, otherwise the mean
//!   reward-to-go at each time step, from a pilot batch played before.
//! - **Cross-check**: central finite differences of `J` along random unit directions of the
//!   parameter vector, `(J(θ + h u) − J(θ − h u)) / 2h`, with common random numbers (the same
//!   reset seeds and the same noise for each action at `θ ± h u`), against `u · ∇J`.
//! - **Estimators**, each at the batch size its agent uses, repeated on independent batches:
//!   REINFORCE with the reward-to-go and no baseline, with the learned value baseline, with
//!   GAE(λ) advantages; the pathwise gradient `Σ_t γ^t ∇θ Q(s_t, a_θ(s_t, ε_t))` through the
//!   run's critic, estimated from one uniformly drawn state per episode weighted by the
//!   episode's length. Each gets its mean cosine to the truth, its bias relative to the truth's
//!   norm (with the noise floor below which a bias cannot be told from noise), its variance per
//!   sample and the time one estimate takes.
//!
//! Everything the rollouts draw comes from libtorch's generator, seeded from the options, so a
//! measurement is repeatable.
//!
//! It lives in `rlpg` rather than `rlpg-gradlab` because it needs environments, agents and
//! checkpoints, and gradlab must never depend on `rlpg` or `rlpg-envs`. The agents expose their
//! policies to it through [`rlpg_agents::PolicyProbe`].
//!
//! One concern per file:
//!
//! | file | holds |
//! | --- | --- |
//! | `options.rs` | [`TrueGradOptions`]: how much to play and estimate |
//! | `rollout.rs` | [`Episodes`] played in lockstep with their noise kept, [`play`] |
//! | `baseline.rs` | the least-squares baseline fitted on a pilot batch |
//! | `estimators.rs` | the score-function and pathwise gradients measured |
//! | `stats.rs` | [`GradStats`] of repeated estimates, an estimator's report row |
//! | `measure.rs` | [`measure_probe`] and [`measure`]: truth, cross-check, estimators |
//! | `report.rs` | [`TrueGradReport`] and its markdown and JSON |
//! | `plot.rs` | the report's chart (feature `cli`) |

mod baseline;
mod estimators;
mod measure;
mod options;
#[cfg(feature = "cli")]
mod plot;
mod report;
mod rollout;
mod stats;

pub use measure::{Measurement, measure, measure_probe};
pub use options::TrueGradOptions;
#[cfg(feature = "cli")]
pub use plot::plot;
pub use report::{EstimatorRow, FiniteDifference, TrueGradReport, Truth};
pub use rollout::{Episodes, MakeEnv, play};
pub use stats::GradStats;
