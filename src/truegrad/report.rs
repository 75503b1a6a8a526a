//! The report of a measurement ([`TrueGradReport`]) and its rendering as markdown and JSON.

use serde::Serialize;

use crate::run::RunError;

/// The measurement: what was measured on, the truth, the cross-check and one row per estimator.
#[derive(Clone, Debug, Serialize)]
pub struct TrueGradReport {
    /// The checkpoint measured (empty for a policy measured directly).
    pub checkpoint: String,
    /// The environment.
    pub env: String,
    /// The agent.
    pub agent: String,
    /// Environment steps the checkpoint had trained.
    pub step: u64,
    /// The discount of `J`.
    pub gamma: f64,
    /// Trainable parameters of the policy.
    pub parameters: usize,
    /// The ground truth and how it was obtained.
    pub truth: Truth,
    /// Finite differences of `J` against the truth, one per direction.
    pub finite_differences: Vec<FiniteDifference>,
    /// The finite differences' step `h`: `--fd-step`, or shorter where `J` is steep
    /// (`h ≤ 0.01 |J| / ‖∇J‖`).
    pub fd_step: f64,
    /// Episode pairs per finite difference.
    pub fd_episodes: usize,
    /// The estimators, measured.
    pub estimators: Vec<EstimatorRow>,
    /// Estimators that could not be measured on this policy, and why.
    pub not_measured: Vec<String>,
    /// Seconds the whole measurement took.
    pub seconds: f64,
}

/// The ground truth `∇J`.
#[derive(Clone, Debug, Serialize)]
pub struct Truth {
    /// Episodes averaged.
    pub episodes: usize,
    /// Chunks whose spread gives the standard error.
    pub chunks: usize,
    /// The baseline of the score-function estimator.
    pub baseline: String,
    /// `J`, the mean discounted return, and its standard error.
    pub objective: f64,
    /// Standard error of `objective`.
    pub objective_se: f64,
    /// Mean undiscounted return.
    pub mean_return: f64,
    /// Mean episode length.
    pub mean_length: f64,
    /// `‖∇J‖`.
    pub norm: f64,
    /// `sqrt(Σ_i SE_i²)`, the expected distance of the truth from `∇J`.
    pub se_norm: f64,
    /// Seconds of environment rollouts per episode (lockstep batches of `chunk_episodes`).
    pub rollout_seconds_per_episode: f64,
    /// Seconds the truth took.
    pub seconds: f64,
}

/// One finite-difference check along a unit direction `u`.
#[derive(Clone, Debug, Serialize)]
pub struct FiniteDifference {
    /// `u`: the direction of a gradient estimated on the pilot batch (independent of the truth
    /// and close to `∇J`, so the slope is steep), or a random one.
    pub direction: &'static str,
    /// `u · ∇J` of the truth.
    pub truth: f64,
    /// Its standard error (from the chunks).
    pub truth_se: f64,
    /// `(J(θ + h u) − J(θ − h u)) / 2h`.
    pub finite_difference: f64,
    /// Its standard error (from the paired episodes).
    pub finite_difference_se: f64,
    /// `(fd − truth) / sqrt(se_fd² + se_truth²)`.
    pub z: f64,
}

/// One estimator, measured.
#[derive(Clone, Debug, Serialize)]
pub struct EstimatorRow {
    /// What it is, e.g. `REINFORCE, GAE(λ=0.9)`.
    pub name: String,
    /// Samples per estimate.
    pub batch: usize,
    /// What a sample is: `episodes` or `states`.
    pub unit: &'static str,
    /// Independent estimates.
    pub estimates: usize,
    /// Mean cosine of one estimate to the truth.
    pub cosine: f64,
    /// Standard error of `cosine`.
    pub cosine_se: f64,
    /// `‖mean estimate − truth‖ / ‖truth‖`.
    pub bias: f64,
    /// What `bias` reads for an unbiased estimator, `sqrt(tr Var(ĝ)/estimates + ‖SE‖²) /
    /// ‖truth‖`: a bias well above it is real.
    pub noise_floor: f64,
    /// A test of the bias that noise cannot fake: the first halves of the estimates and of the
    /// truth's chunks give a direction `u` (their means' difference), along which the second
    /// halves' difference is `z` standard errors from zero. About N(0, 1) for an unbiased
    /// estimator (|z| > 3 rarely); large and positive for a biased one.
    pub bias_z: f64,
    /// `tr Var` of one sample's contribution (`batch · tr Var(ĝ)`), in `∇J`'s units squared.
    pub variance_per_sample: f64,
    /// The same relative to `‖∇J‖²`.
    pub relative_variance_per_sample: f64,
    /// Seconds per estimate: the gradient computation on collected samples, rollouts excluded.
    pub seconds_per_estimate: f64,
}

impl TrueGradReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String, RunError> {
        serde_json::to_string_pretty(self)
            .map_err(|e| RunError::Output { what: "report as JSON", message: e.to_string() })
    }

    /// The report as markdown: the setting, the truth, the cross-check and the table.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let t = &self.truth;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "policy: {} ({}, {}, step {}), {} parameters\n",
            self.checkpoint, self.env, self.agent, self.step, self.parameters
        );
        let _ = writeln!(
            out,
            "objective J = E[Σ_{{t<T}} γ^t r_t], γ = {}, T = the episode's end (mean length \
             {:.1}): J = {:.3} ± {:.3} (mean undiscounted return {:.2})\n",
            self.gamma, t.mean_length, t.objective, t.objective_se, t.mean_return
        );
        let _ = writeln!(
            out,
            "truth: score function with {}, {} episodes in {} chunks: ‖∇J‖ = {}, standard \
             error ‖SE‖ = {} ({:.1}% of ‖∇J‖); {:.1} s ({:.2} ms of rollout per episode)\n",
            t.baseline,
            t.episodes,
            t.chunks,
            sig(t.norm, 4),
            sig(t.se_norm, 3),
            100.0 * t.se_norm / t.norm,
            t.seconds,
            1e3 * t.rollout_seconds_per_episode
        );
        if !self.finite_differences.is_empty() {
            let _ = writeln!(
                out,
                "cross-check: central finite differences of J along unit directions u, h = {}, \
                 {} episode pairs with common random numbers:\n",
                sig(self.fd_step, 2),
                self.fd_episodes
            );
            let _ = writeln!(out, "| u | u·∇J (truth) | finite difference | z |");
            let _ = writeln!(out, "|---|---|---|---|");
            for (i, f) in self.finite_differences.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "| {} {} | {} ± {} | {} ± {} | {:+.2} |",
                    i + 1,
                    f.direction,
                    sig(f.truth, 4),
                    sig(f.truth_se, 2),
                    sig(f.finite_difference, 4),
                    sig(f.finite_difference_se, 2),
                    f.z
                );
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "| estimator | batch | cosine to ∇J | bias / ‖∇J‖ (noise floor) | bias z | variance per \
             sample / ‖∇J‖² | ms per estimate |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for r in &self.estimators {
            let _ = writeln!(
                out,
                "| {} | {} {} | {:.3} ± {:.3} | {:.3} ({:.3}) | {:+.1} | {} | {:.2} |",
                r.name,
                r.batch,
                r.unit,
                r.cosine,
                r.cosine_se,
                r.bias,
                r.noise_floor,
                r.bias_z,
                sig(r.relative_variance_per_sample, 3),
                1e3 * r.seconds_per_estimate
            );
        }
        for n in &self.not_measured {
            let _ = writeln!(out, "\nnot measured: {n}");
        }
        let _ = writeln!(
            out,
            "\n{} estimates per estimator; {:.1} s in all",
            self.estimators.first().map_or(0, |r| r.estimates),
            self.seconds
        );
        out
    }
}

/// `x` with `digits` significant digits, in scientific notation outside `[1e-3, 1e5)`.
pub(super) fn sig(x: f64, digits: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if (-3..5).contains(&magnitude) {
        let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{:.*e}", digits.saturating_sub(1), x)
    }
}
