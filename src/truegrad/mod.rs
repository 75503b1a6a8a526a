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

#[cfg(feature = "cli")]
mod plot;
mod rollout;

use std::path::Path;
use std::time::Instant;

use rlpg_agents::PolicyProbe;
use rlpg_envs::RunningMeanStd;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::checkpoint::Checkpoint;
use crate::run::{EnvSource, RunError, build_agent, default_eval_checkpoint, seed_torch};
use crate::trainer::EnvFactory;

#[cfg(feature = "cli")]
pub use plot::plot;
use rollout::torch;
pub use rollout::{Episodes, MakeEnv, play};

/// How much to measure. The defaults take about a minute on Pendulum-v1 on one core.
#[derive(Clone, Debug)]
pub struct TrueGradOptions {
    /// Episodes behind the ground truth.
    pub truth_episodes: usize,
    /// Episodes per ground-truth chunk (and per batch of lockstep rollouts): the truth's
    /// standard error comes from the spread of `truth_episodes / chunk_episodes` chunks.
    pub chunk_episodes: usize,
    /// Independent estimates per estimator.
    pub estimates: usize,
    /// The λ of the GAE estimators.
    pub lambdas: Vec<f64>,
    /// Random directions for the finite-difference cross-check, checked after the direction of
    /// the pilot batch's gradient (0: no cross-check).
    pub fd_directions: usize,
    /// Episode pairs per finite difference.
    pub fd_episodes: usize,
    /// Largest step `h` of the finite differences, along unit directions of the parameter
    /// vector; shorter where `J` is steep, so that `h ‖∇J‖ ≤ 0.01 |J|`.
    pub fd_step: f64,
    /// Episodes per score-function estimate; `None`: the agent's batch in steps over the mean
    /// episode length, rounded (at least 1).
    pub batch_episodes: Option<usize>,
    /// Longest episode allowed (the objective needs whole episodes).
    pub max_steps: usize,
    /// Seed of libtorch's generator and of the environments' resets.
    pub seed: u64,
    /// libtorch threads ([`measure`] sets them).
    pub threads: usize,
}

impl Default for TrueGradOptions {
    fn default() -> Self {
        Self {
            truth_episodes: 32_768,
            chunk_episodes: 512,
            estimates: 100,
            lambdas: vec![0.0, 0.9, 0.97],
            fd_directions: 3,
            fd_episodes: 4096,
            fd_step: 0.01,
            batch_episodes: None,
            max_steps: 100_000,
            seed: 0,
            threads: 1,
        }
    }
}

impl TrueGradOptions {
    /// Checks the options, naming the first bad one.
    pub fn validate(&self) -> Result<(), RunError> {
        let bad = |what: String| Err(RunError::Usage(what));
        if self.chunk_episodes == 0 {
            return bad("--chunk-episodes must be at least 1".into());
        }
        if self.truth_episodes < 2 * self.chunk_episodes {
            return bad(format!(
                "--truth-episodes {} must be at least two chunks of --chunk-episodes {}",
                self.truth_episodes, self.chunk_episodes
            ));
        }
        if self.estimates < 2 {
            return bad(format!("--estimates {} must be at least 2", self.estimates));
        }
        if let Some(l) = self.lambdas.iter().find(|l| !(0.0..=1.0).contains(*l)) {
            return bad(format!("--lambdas: {l} is outside [0, 1]"));
        }
        if self.fd_directions > 0 && self.fd_episodes < 2 {
            return bad(format!("--fd-episodes {} must be at least 2", self.fd_episodes));
        }
        if !(self.fd_step.is_finite() && self.fd_step > 0.0) {
            return bad(format!("--fd-step {} must be a positive number", self.fd_step));
        }
        if self.batch_episodes == Some(0) {
            return bad("--batch-episodes must be at least 1".into());
        }
        if self.max_steps == 0 {
            return bad("--max-steps must be at least 1".into());
        }
        Ok(())
    }
}

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

/// A gradient estimate's statistics over repeated draws: the mean and the per-coordinate
/// standard error of the mean.
#[derive(Debug)]
pub struct GradStats {
    /// The mean, one entry per parameter.
    pub mean: Vec<f64>,
    /// The standard error of each entry of `mean`.
    pub se: Vec<f64>,
    /// The draws, `[draws, parameters]`.
    pub draws: Tensor,
}

impl GradStats {
    /// The statistics of `draws`, one flat gradient each.
    pub fn of(draws: &[Tensor]) -> Result<Self, RunError> {
        let m = Tensor::stack(draws, 0).to_kind(Kind::Double);
        let k = draws.len() as f64;
        let mean = m.mean_dim(0, false, Kind::Double);
        let var = m.var_dim(0, true, false);
        let se = Vec::<f64>::try_from(&(var / k).sqrt()).map_err(torch)?;
        Ok(Self { mean: Vec::<f64>::try_from(&mean).map_err(torch)?, se, draws: m })
    }

    /// `u · mean` and its standard error, from the draws' projections onto `u`.
    pub fn project(&self, u: &[f64]) -> (f64, f64) {
        let u = Tensor::from_slice(u);
        let p = self.draws.mv(&u);
        let k = p.size()[0] as f64;
        (p.mean(Kind::Double).double_value(&[]), (p.var(true).double_value(&[]) / k).sqrt())
    }
}

/// A measurement with its gradient vectors, for callers (and tests) that need more than the
/// report.
#[derive(Debug)]
pub struct Measurement {
    /// The report.
    pub report: TrueGradReport,
    /// The truth's chunks.
    pub truth: GradStats,
    /// Each estimator's estimates, in the order of the report's rows.
    pub estimators: Vec<(String, GradStats)>,
}

/// How the score-function estimators weigh `∇log π(a_t|s_t)`.
#[derive(Clone, Debug)]
enum Advantage {
    /// The reward-to-go `G_t`.
    RewardToGo,
    /// `G_t − b_t` with a baseline per row.
    Baseline(Vec<f64>),
    /// GAE(λ) from the value per row; `V = 0` after the episode's end.
    Gae(f64, Vec<f64>),
}

/// Each row's weight `γ^t A_t` in the score-function estimator.
fn row_weights(episodes: &Episodes, gamma: f64, advantage: &Advantage) -> Vec<f64> {
    let to_go = episodes.rewards_to_go(gamma);
    let n = to_go.len();
    let adv: Vec<f64> = match advantage {
        Advantage::RewardToGo => to_go,
        Advantage::Baseline(b) => (0..n).map(|i| to_go[i] - b[i]).collect(),
        Advantage::Gae(lambda, v) => {
            let mut out = vec![0.0; n];
            for e in 0..episodes.len() {
                let mut acc = 0.0;
                let (first, end) = (episodes.starts[e], episodes.starts[e + 1]);
                for i in (first..end).rev() {
                    let next = if i + 1 < end { v[i + 1] } else { 0.0 };
                    let delta = episodes.rewards[i] + gamma * next - v[i];
                    acc = delta + gamma * lambda * acc;
                    out[i] = acc;
                }
            }
            out
        }
    };
    adv.iter().zip(&episodes.time).map(|(a, &t)| gamma.powi(t as i32) * a).collect()
}

/// The score-function estimate of `∇J` from episodes `range`: `(1/n) Σ rows w · ∇log π`.
fn score_gradient(
    probe: &dyn PolicyProbe,
    episodes: &Episodes,
    range: std::ops::Range<usize>,
    weights: &[f64],
) -> Result<Tensor, RunError> {
    let count = range.len() as f64;
    let (first, rows) = episodes.rows_of(range);
    let obs = episodes.obs.narrow(0, first as i64, rows as i64);
    let noise = episodes.noise.narrow(0, first as i64, rows as i64);
    let w: Vec<f32> = weights[first..first + rows].iter().map(|&w| (w / count) as f32).collect();
    let log_prob = probe.log_prob_from_noise(&obs, &noise);
    let surrogate = (log_prob * Tensor::from_slice(&w)).sum(Kind::Float);
    Ok(probe.policy_parameters().grad(&surrogate)?)
}

/// The pathwise estimate of `∇J` through the probe's critic from the rows `picks`, each
/// weighted (`T_e γ^t` for a state drawn uniformly from its episode of length `T_e`): `None`
/// when the policy has no reparameterization or no critic.
fn pathwise_gradient(
    probe: &dyn PolicyProbe,
    episodes: &Episodes,
    picks: &[(usize, f64)],
) -> Result<Option<Tensor>, RunError> {
    let index: Vec<i64> = picks.iter().map(|&(row, _)| row as i64).collect();
    let index = Tensor::from_slice(&index);
    let obs = episodes.obs.index_select(0, &index);
    let noise = episodes.noise.index_select(0, &index);
    let Some(actions) = probe.reparameterized_action(&obs, &noise) else { return Ok(None) };
    let Some(q) = probe.critic(&obs, &actions) else { return Ok(None) };
    let w: Vec<f32> = picks.iter().map(|&(_, w)| (w / picks.len() as f64) as f32).collect();
    let surrogate = (q * Tensor::from_slice(&w)).sum(Kind::Float);
    Ok(Some(probe.policy_parameters().grad(&surrogate)?))
}

/// Plays `count` episodes in lockstep batches of `batch`, seeds from `next_seed` on.
fn play_many(
    probe: &dyn PolicyProbe,
    make_env: MakeEnv<'_>,
    obs_rms: Option<&RunningMeanStd>,
    count: usize,
    batch: usize,
    next_seed: &mut u64,
    max_steps: usize,
) -> Result<Vec<Episodes>, RunError> {
    let mut out = Vec::new();
    let mut left = count;
    while left > 0 {
        let n = left.min(batch);
        let seeds: Vec<u64> = (0..n as u64).map(|i| *next_seed + i).collect();
        *next_seed += n as u64;
        out.push(play(probe, make_env, obs_rms, &seeds, max_steps)?);
        left -= n;
    }
    Ok(out)
}

/// The values per row of `episodes` (the probe's value network).
fn values(probe: &dyn PolicyProbe, episodes: &Episodes) -> Result<Option<Vec<f64>>, RunError> {
    match tch::no_grad(|| probe.value(&episodes.obs)) {
        Some(v) => Ok(Some(
            Vec::<f32>::try_from(&v.flatten(0, -1))
                .map_err(torch)?
                .into_iter()
                .map(f64::from)
                .collect(),
        )),
        None => Ok(None),
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// Measures the policy of `probe` on environments from `make_env` (observations normalised
/// with `obs_rms` when given). The report's `checkpoint`, `env`, `agent` and `step` are left
/// for the caller to fill in.
pub fn measure_probe(
    probe: &dyn PolicyProbe,
    make_env: MakeEnv<'_>,
    obs_rms: Option<&RunningMeanStd>,
    options: &TrueGradOptions,
) -> Result<Measurement, RunError> {
    options.validate()?;
    let start = Instant::now();
    tch::manual_seed(options.seed as i64);
    let gamma = probe.gamma();
    let params = probe.policy_parameters();
    let numel = params.numel();
    let mut next_seed = options.seed.wrapping_mul(1 << 32);
    let chunk = options.chunk_episodes;
    let chunks = options.truth_episodes / chunk;

    // The baseline of the truth (and of the estimators when the run has no value network):
    // fitted on a pilot batch independent of every episode measured below.
    let pilot =
        play_many(probe, make_env, obs_rms, chunk, chunk, &mut next_seed, options.max_steps)?;
    let pilot = concat(&pilot)?;
    let baseline = FittedBaseline::fit(probe, &pilot, gamma)?;
    let probe_obs = truth_sample_obs(make_env, obs_rms)?;
    let baseline_name = format!(
        "a baseline fitted on a pilot batch of {chunk} episodes (least squares of the \
         reward-to-go on {})",
        baseline.describe()
    );

    // Ground truth.
    let truth_start = Instant::now();
    let mut rollout_seconds = 0.0;
    let mut chunk_grads = Vec::with_capacity(chunks);
    let (mut disc, mut undisc, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..chunks {
        let t0 = Instant::now();
        let episodes =
            play(probe, make_env, obs_rms, &seeds(&mut next_seed, chunk), options.max_steps)?;
        rollout_seconds += t0.elapsed().as_secs_f64();
        disc.extend(episodes.discounted_returns(gamma));
        undisc.extend(episodes.discounted_returns(1.0));
        lengths.extend(
            (0..episodes.len()).map(|e| (episodes.starts[e + 1] - episodes.starts[e]) as f64),
        );
        let b = baseline.predict(probe, &episodes)?;
        let weights = row_weights(&episodes, gamma, &Advantage::Baseline(b));
        chunk_grads.push(score_gradient(probe, &episodes, 0..episodes.len(), &weights)?);
    }
    let truth = GradStats::of(&chunk_grads)?;
    let truth_norm = norm(&truth.mean);
    let se_norm = norm(&truth.se);
    let (objective, objective_se) = mean_se(&disc);
    let mean_length = lengths.iter().sum::<f64>() / lengths.len() as f64;
    let truth_report = Truth {
        episodes: chunks * chunk,
        chunks,
        baseline: baseline_name,
        objective,
        objective_se,
        mean_return: undisc.iter().sum::<f64>() / undisc.len() as f64,
        mean_length,
        norm: truth_norm,
        se_norm,
        rollout_seconds_per_episode: rollout_seconds / (chunks * chunk) as f64,
        seconds: truth_start.elapsed().as_secs_f64(),
    };

    // Finite differences along random unit directions, with common random numbers.
    let mut finite_differences = Vec::new();
    // A step along which J changes by at most 1% to first order: J's curvature biases a central
    // difference by O(h²), and a steep policy needs a short step (on Pendulum, SAC after 1,000
    // steps: h = 0.01 gave 3,912 ± 49 along a slope of 6,361 ± 22, h = 0.002 gave 6,131 ± 238).
    let fd_step = if truth_norm > 0.0 && objective != 0.0 {
        options.fd_step.min(0.01 * objective.abs() / truth_norm)
    } else {
        options.fd_step
    };
    let original = params.values().copy();
    // The first direction is the pilot batch's gradient: strongly sloped, and independent of
    // the truth's chunks (the truth's own direction would favour its noise).
    let pilot_weights =
        row_weights(&pilot, gamma, &Advantage::Baseline(baseline.predict(probe, &pilot)?));
    let along_truth =
        score_gradient(probe, &pilot, 0..pilot.len(), &pilot_weights)?.to_kind(Kind::Double);
    let random_directions = (0..options.fd_directions)
        .map(|_| Tensor::randn([numel as i64], (Kind::Double, tch::Device::Cpu)));
    let directions: Vec<(&'static str, Tensor)> = if options.fd_directions == 0 {
        Vec::new()
    } else {
        std::iter::once(("pilot gradient", along_truth))
            .chain(random_directions.map(|u| ("random", u)))
            .collect()
    };
    for (j, (kind, u)) in directions.into_iter().enumerate() {
        let u = &u / u.norm();
        let u_vec = Vec::<f64>::try_from(&u).map_err(torch)?;
        let direction_seed = options.seed.wrapping_add(1_000 + j as u64) as i64;
        let fd_seeds = seeds(&mut next_seed, options.fd_episodes);
        let returns_at = |sign: f64| -> Result<Vec<f64>, RunError> {
            tch::no_grad(|| {
                let moved = &original + (&u * (sign * fd_step)).to_kind(Kind::Float);
                params.values().shallow_clone().copy_(&moved);
            });
            tch::manual_seed(direction_seed);
            let mut out = Vec::new();
            for s in fd_seeds.chunks(chunk) {
                out.extend(
                    play(probe, make_env, obs_rms, s, options.max_steps)?.discounted_returns(gamma),
                );
            }
            Ok(out)
        };
        let plus = returns_at(1.0);
        let minus = returns_at(-1.0);
        tch::no_grad(|| params.values().shallow_clone().copy_(&original));
        let (plus, minus) = (plus?, minus?);
        let diffs: Vec<f64> =
            plus.iter().zip(&minus).map(|(p, m)| (p - m) / (2.0 * fd_step)).collect();
        let (fd, fd_se) = mean_se(&diffs);
        let (proj, proj_se) = truth.project(&u_vec);
        finite_differences.push(FiniteDifference {
            direction: kind,
            truth: proj,
            truth_se: proj_se,
            finite_difference: fd,
            finite_difference_se: fd_se,
            z: (fd - proj) / (fd_se * fd_se + proj_se * proj_se).sqrt(),
        });
    }
    // The finite differences moved the generator by a direction-dependent amount: reseed.
    tch::manual_seed(options.seed.wrapping_add(7) as i64);

    // The estimators on a pool of independent episodes.
    let sf_batch = options
        .batch_episodes
        .unwrap_or_else(|| ((probe.batch_samples() as f64 / mean_length).round() as usize).max(1));
    let pw_batch = probe.batch_samples();
    let has_pathwise = {
        let noise = probe.draw_noise(1);
        probe
            .reparameterized_action(&probe_obs, &noise)
            .is_some_and(|a| tch::no_grad(|| probe.critic(&probe_obs, &a)).is_some())
    };
    let per_estimate = if has_pathwise { sf_batch.max(pw_batch) } else { sf_batch };
    let pool = play_many(
        probe,
        make_env,
        obs_rms,
        per_estimate * options.estimates,
        chunk.max(per_estimate),
        &mut next_seed,
        options.max_steps,
    )?;
    let pool = concat(&pool)?;
    // The run's value network, or the baseline fitted on the pilot batch in its place.
    let (v, which) = match values(probe, &pool)? {
        Some(v) => (v, "V(s) (the run's)"),
        None => (baseline.predict(probe, &pool)?, "b(s, t) fitted on the spot"),
    };
    let mut kinds: Vec<(String, Advantage)> = vec![
        ("REINFORCE, no baseline (reward-to-go)".into(), Advantage::RewardToGo),
        (format!("REINFORCE, baseline {which}"), Advantage::Baseline(v.clone())),
    ];
    for &lambda in &options.lambdas {
        kinds.push((
            format!("REINFORCE, GAE(λ={lambda}) on {which}"),
            Advantage::Gae(lambda, v.clone()),
        ));
    }
    let mut not_measured = Vec::new();
    let mut rows = Vec::new();
    let mut stats = Vec::new();
    for (name, advantage) in kinds {
        let weights = row_weights(&pool, gamma, &advantage);
        let t0 = Instant::now();
        let draws = (0..options.estimates)
            .map(|r| {
                score_gradient(
                    probe,
                    &pool,
                    r * per_estimate..r * per_estimate + sf_batch,
                    &weights,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let seconds = t0.elapsed().as_secs_f64() / options.estimates as f64;
        let s = GradStats::of(&draws)?;
        rows.push(row(&name, sf_batch, "episodes", &s, &truth, seconds)?);
        stats.push((name, s));
    }
    if has_pathwise {
        let name = "pathwise through the run's critic".to_owned();
        let u = Vec::<f64>::try_from(&Tensor::rand(
            [(options.estimates * pw_batch) as i64],
            (Kind::Double, tch::Device::Cpu),
        ))
        .map_err(torch)?;
        let t0 = Instant::now();
        let mut draws = Vec::with_capacity(options.estimates);
        for r in 0..options.estimates {
            let picks: Vec<(usize, f64)> = (0..pw_batch)
                .map(|b| {
                    let e = r * per_estimate + b;
                    let (first, len) = pool.rows_of(e..e + 1);
                    let t = ((u[r * pw_batch + b] * len as f64) as usize).min(len - 1);
                    (first + t, len as f64 * gamma.powi(t as i32))
                })
                .collect();
            if let Some(g) = pathwise_gradient(probe, &pool, &picks)? {
                draws.push(g);
            }
        }
        let seconds = t0.elapsed().as_secs_f64() / options.estimates as f64;
        let s = GradStats::of(&draws)?;
        rows.push(row(&name, pw_batch, "states", &s, &truth, seconds)?);
        stats.push((name, s));
    } else {
        not_measured
            .push("pathwise: the policy has no reparameterization or the run no critic".to_owned());
    }
    let report = TrueGradReport {
        checkpoint: String::new(),
        env: String::new(),
        agent: String::new(),
        step: 0,
        gamma,
        parameters: numel,
        truth: truth_report,
        finite_differences,
        fd_step,
        fd_episodes: options.fd_episodes,
        estimators: rows,
        not_measured,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok(Measurement { report, truth, estimators: stats })
}

/// A state-and-time baseline `b(s, t) = φ(s, t) · w` fitted by least squares to the
/// reward-to-go of a pilot batch. The features are `[1, s, s_i s_j, V(s), Q(s, mode(s))]` (the
/// last two where the run has them), each also multiplied by `γ^(T − t)` with `T` the longest
/// pilot episode, so that a return cut off by a time limit is in reach of a linear fit.
struct FittedBaseline {
    weights: Tensor,
    horizon: f64,
    gamma: f64,
    value: bool,
    critic: bool,
}

impl FittedBaseline {
    fn fit(probe: &dyn PolicyProbe, pilot: &Episodes, gamma: f64) -> Result<Self, RunError> {
        let horizon = pilot.time.iter().copied().max().map_or(0.0, |t| (t + 1) as f64);
        let probe_rows = pilot.obs.narrow(0, 0, pilot.obs.size()[0].min(1));
        let value = tch::no_grad(|| probe.value(&probe_rows)).is_some();
        let critic = tch::no_grad(|| {
            let zero = probe.draw_noise(probe_rows.size()[0] as usize).zeros_like();
            probe
                .reparameterized_action(&probe_rows, &zero)
                .and_then(|a| probe.critic(&probe_rows, &a))
                .is_some()
        });
        let mut fitted = Self {
            weights: Tensor::zeros([0], (Kind::Double, tch::Device::Cpu)),
            horizon,
            gamma,
            value,
            critic,
        };
        let x = fitted.features(probe, pilot)?;
        let y = Tensor::from_slice(&pilot.rewards_to_go(gamma));
        let xtx = x.tr().mm(&x);
        let f = xtx.size()[0];
        // A tiny ridge keeps the normal equations solvable when features coincide.
        let ridge = 1e-9 * xtx.trace().double_value(&[]) / f as f64 + 1e-12;
        let a = xtx + Tensor::eye(f, (Kind::Double, tch::Device::Cpu)) * ridge;
        let b = x.tr().mv(&y).unsqueeze(1);
        fitted.weights = Tensor::f_linalg_solve(&a, &b, true).map_err(torch)?.squeeze_dim(1);
        Ok(fitted)
    }

    fn describe(&self) -> String {
        let mut parts = vec!["1", "s", "s_i s_j"];
        if self.value {
            parts.push("V(s)");
        }
        if self.critic {
            parts.push("Q(s, mode(s))");
        }
        format!("[{}] × [1, γ^(T−t)], T = {}", parts.join(", "), self.horizon)
    }

    fn features(&self, probe: &dyn PolicyProbe, episodes: &Episodes) -> Result<Tensor, RunError> {
        let obs = episodes.obs.to_kind(Kind::Double);
        let rows = obs.size()[0];
        let d = obs.size()[1];
        let mut cols =
            vec![Tensor::ones([rows, 1], (Kind::Double, tch::Device::Cpu)), obs.shallow_clone()];
        for i in 0..d {
            for j in i..d {
                cols.push((obs.narrow(1, i, 1) * obs.narrow(1, j, 1)).view([rows, 1]));
            }
        }
        tch::no_grad(|| {
            if self.value {
                if let Some(v) = probe.value(&episodes.obs) {
                    cols.push(v.to_kind(Kind::Double).view([rows, 1]));
                }
            }
            if self.critic {
                let zero = probe.draw_noise(rows as usize).zeros_like();
                if let Some(q) = probe
                    .reparameterized_action(&episodes.obs, &zero)
                    .and_then(|a| probe.critic(&episodes.obs, &a))
                {
                    cols.push(q.to_kind(Kind::Double).view([rows, 1]));
                }
            }
        });
        let base = Tensor::cat(&cols, 1);
        let decay: Vec<f64> =
            episodes.time.iter().map(|&t| self.gamma.powf(self.horizon - t as f64)).collect();
        let decay = Tensor::from_slice(&decay).view([rows, 1]);
        Ok(Tensor::cat(&[&base, &(&base * decay)], 1))
    }

    fn predict(&self, probe: &dyn PolicyProbe, episodes: &Episodes) -> Result<Vec<f64>, RunError> {
        let x = self.features(probe, episodes)?;
        Vec::<f64>::try_from(&x.mv(&self.weights)).map_err(torch)
    }
}

/// `n` fresh reset seeds.
fn seeds(next_seed: &mut u64, n: usize) -> Vec<u64> {
    let out = (0..n as u64).map(|i| *next_seed + i).collect();
    *next_seed += n as u64;
    out
}

/// One reset observation as the policy sees it, `[1, obs_dim]` (to ask the probe what it has).
fn truth_sample_obs(
    make_env: MakeEnv<'_>,
    obs_rms: Option<&RunningMeanStd>,
) -> Result<Tensor, RunError> {
    let mut env = make_env()?;
    let raw = env.reset(Some(0))?;
    let mut input = raw.to_vec();
    if let Some(rms) = obs_rms {
        rms.normalize(&raw, &mut input, rlpg_envs::DEFAULT_NORM_EPSILON, crate::trainer::OBS_CLIP);
    }
    Ok(Tensor::from_slice(&input).view([1, input.len() as i64]))
}

/// The batches as one.
fn concat(batches: &[Episodes]) -> Result<Episodes, RunError> {
    let mut starts = vec![0];
    let (mut rewards, mut time) = (Vec::new(), Vec::new());
    for b in batches {
        let offset = rewards.len();
        starts.extend(b.starts[1..].iter().map(|s| s + offset));
        rewards.extend_from_slice(&b.rewards);
        time.extend_from_slice(&b.time);
    }
    let obs: Vec<&Tensor> = batches.iter().map(|b| &b.obs).collect();
    let noise: Vec<&Tensor> = batches.iter().map(|b| &b.noise).collect();
    Ok(Episodes {
        obs: Tensor::f_cat(&obs, 0).map_err(torch)?,
        noise: Tensor::f_cat(&noise, 0).map_err(torch)?,
        rewards,
        time,
        starts,
    })
}

/// The draws (rows) `range` of `draws`.
fn half(draws: &Tensor, range: std::ops::Range<i64>) -> Tensor {
    draws.narrow(0, range.start, range.end - range.start)
}

/// [`EstimatorRow::bias_z`].
fn split_bias_z(s: &GradStats, truth: &GradStats) -> f64 {
    let (k, c) = (s.draws.size()[0], truth.draws.size()[0]);
    if k < 4 || c < 4 {
        return f64::NAN;
    }
    let (est_a, est_b) = (half(&s.draws, 0..k / 2), half(&s.draws, k / 2..k));
    let (tru_a, tru_b) = (half(&truth.draws, 0..c / 2), half(&truth.draws, c / 2..c));
    let u = est_a.mean_dim(0, false, Kind::Double) - tru_a.mean_dim(0, false, Kind::Double);
    let n = u.norm().double_value(&[]);
    if n.is_nan() || n <= 0.0 {
        return f64::NAN;
    }
    let u = u / n;
    let (pb, pt) = (est_b.mv(&u), tru_b.mv(&u));
    let (kb, kt) = (pb.size()[0] as f64, pt.size()[0] as f64);
    let diff = pb.mean(Kind::Double).double_value(&[]) - pt.mean(Kind::Double).double_value(&[]);
    let se2 = pb.var(true).double_value(&[]) / kb + pt.var(true).double_value(&[]) / kt;
    diff / se2.sqrt()
}

/// The report row of an estimator's estimates `s`.
fn row(
    name: &str,
    batch: usize,
    unit: &'static str,
    s: &GradStats,
    truth: &GradStats,
    seconds: f64,
) -> Result<EstimatorRow, RunError> {
    let k = s.draws.size()[0];
    let truth_t = Tensor::from_slice(&truth.mean);
    let truth_norm = norm(&truth.mean);
    let cosines = Vec::<f64>::try_from(
        &(s.draws.mv(&truth_t) / (s.draws.norm_scalaropt_dim(2, [1], false) * truth_norm)),
    )
    .map_err(torch)?;
    let (cosine, cosine_se) = mean_se(&cosines);
    let diff: Vec<f64> = s.mean.iter().zip(&truth.mean).map(|(a, b)| a - b).collect();
    // tr Var of one estimate, from the standard errors of the mean: SE_i² · k.
    let trace_var: f64 = s.se.iter().map(|x| x * x).sum::<f64>() * k as f64;
    let floor = (trace_var / k as f64 + truth.se.iter().map(|x| x * x).sum::<f64>()).sqrt();
    let bias_z = split_bias_z(s, truth);
    Ok(EstimatorRow {
        bias_z,
        name: name.to_owned(),
        batch,
        unit,
        estimates: k as usize,
        cosine,
        cosine_se,
        bias: norm(&diff) / truth_norm,
        noise_floor: floor / truth_norm,
        variance_per_sample: trace_var * batch as f64,
        relative_variance_per_sample: trace_var * batch as f64 / (truth_norm * truth_norm),
        seconds_per_estimate: seconds,
    })
}

/// Measures the policy of the checkpoint at `path` (a run directory: its best checkpoint, or
/// the newest without one) on its environment from `envs`.
pub fn measure(
    path: &Path,
    options: &TrueGradOptions,
    envs: EnvSource<'_>,
) -> Result<Measurement, RunError> {
    options.validate()?;
    if !path.exists() {
        return Err(RunError::Usage(format!(
            "{} is not a run directory or checkpoint file: it does not exist",
            path.display()
        )));
    }
    let checkpoint_path =
        if path.is_dir() { default_eval_checkpoint(path)? } else { path.to_owned() };
    let checkpoint = Checkpoint::read(&checkpoint_path)?;
    let config = checkpoint.config(&checkpoint_path)?;
    let envs = crate::run::Envs::resolve(envs, &config)?;
    let make = || envs.make();
    let factory: EnvFactory<'_> = &make;
    let probe_env = factory()?;
    seed_torch(&config);
    let mut agent = build_agent(&config, probe_env.observation_space(), probe_env.action_space())?;
    drop(probe_env);
    checkpoint.restore_agent(agent.as_mut(), &checkpoint_path)?;
    let rms = if config.normalize_obs { checkpoint.meta.envs.obs_rms().cloned() } else { None };
    let probe = agent.probe().ok_or_else(|| {
        RunError::Usage(format!(
            "the {} agent of {} offers no policy probe (measured: REINFORCE, and SAC on a Box \
             action space; not TD3 or Gumbel-softmax)",
            agent.name(),
            checkpoint_path.display()
        ))
    })?;
    tch::set_num_threads(options.threads.max(1) as i32);
    let mut m = measure_probe(probe, factory, rms.as_ref(), options)?;
    m.report.checkpoint = checkpoint_path.display().to_string();
    m.report.env = config.env.clone();
    m.report.agent = agent.name().to_owned();
    m.report.step = checkpoint.meta.step;
    Ok(m)
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
fn sig(x: f64, digits: usize) -> String {
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
