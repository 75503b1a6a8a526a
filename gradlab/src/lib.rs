//! # rlpg-gradlab
//!
//! An estimator lab (`rlpg gradlab`) that *measures* the usual claims about gradient estimators
//! instead of repeating them.
//!
//! Two ways to estimate `∇θ E_{x~pθ}[f(x)]`:
//! - the **score function** (REINFORCE): `E[f(x) ∇θ log pθ(x)]`, which needs only `log p` — it
//!   works for any `f` and for discrete `x` — but is noisy, and is usually paired with a baseline
//!   `b` (a control variate): `E[(f(x) − b) ∇θ log pθ(x)]`;
//! - the **pathwise** (reparameterization) estimator: `E[∇θ f(gθ(ε))]` with `x = gθ(ε)`, which
//!   needs a differentiable `f` and a reparameterizable distribution, and is usually much quieter.
//!   For a categorical `x`, the Gumbel-softmax relaxation makes it *run*, at the price of a bias.
//!
//! Every problem here has a known analytic gradient (and, for the score function and the
//! Gaussian pathwise estimator, a known per-sample variance: see `theory.rs` for the
//! derivations). Each estimator is run over many independent trials of many samples, all in
//! batched tensor operations with the agents' own distributions ([`DiagGaussian`],
//! [`Categorical`], [`GumbelSoftmax`]), and the [`Report`] gives for each one its mean, standard
//! error, bias, per-sample variance against the closed form, and variance × cost.
//!
//! Entry points: [`run`] with [`GradlabOptions`], then [`Report::to_markdown`],
//! [`Report::to_json`] and [`plot`].
//!
//! **Owns:** the problems and their closed forms (`problems.rs`, `theory.rs`), the batched
//! estimators and their statistics (this file, `stats.rs`), the measured rows (`estimates.rs`),
//! the claims checked on them (`claims.rs`), the markdown/JSON report (`report.rs`) and the PNG
//! charts (`plot.rs`). Modules depend one way: `theory` <- `problems` <- `estimates` <- `claims`
//! <- `report` <- `plot`, with `error`, `format` (number formatting) and `stats` below them; only
//! this file, which runs the estimators, sees them all.
//!
//! **Must never depend on** `rlpg` (the CLI crate calls this one, not the reverse) or directly
//! on `rlpg-envs`; of `rlpg-agents` it uses only [`rlpg_agents::distributions`], and of `tch`
//! only tensors and autograd, the global seed and the thread count. It writes no file but the chart it is asked
//! for. The `clap` feature (off by default, on in the CLI) only derives `clap::ValueEnum` for
//! [`ProblemKind`].
//!
//! [`DiagGaussian`]: rlpg_agents::distributions::DiagGaussian
//! [`Categorical`]: rlpg_agents::distributions::Categorical
//! [`GumbelSoftmax`]: rlpg_agents::distributions::GumbelSoftmax
#![deny(missing_docs)]

mod claims;
mod error;
mod estimates;
mod format;
mod plot;
mod problems;
mod report;
mod stats;
mod theory;

use std::time::Instant;

use tch::Tensor;

pub use claims::Claim;
pub use error::GradlabError;
pub use estimates::{Applicability, Baseline, Estimator, ParameterSummary, ProblemReport, Row};
pub use plot::plot;
pub use problems::{ProblemKind, relaxed_f};
pub use report::Report;
pub use stats::Measured;

use problems::{Problem, Support};
use stats::Accumulator;
use theory::ParameterTheory;

/// The temperatures of the Gumbel-softmax relaxation measured by default.
pub const DEFAULT_TEMPERATURES: [f64; 5] = [0.1, 0.3, 0.5, 1.0, 2.0];

/// Samples per tensor batch. Trials are processed in chunks of about this many samples, so a
/// run of any size uses a bounded amount of memory (~100 MB for the categorical problem).
const CHUNK_SAMPLES: usize = 1 << 18;

/// The largest `trials × samples` accepted: about a minute per estimator on two cores.
pub const MAX_TOTAL_SAMPLES: usize = 1 << 31;

/// What to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct GradlabOptions {
    /// Independent estimates per estimator (≥ 2): the standard error of the mean estimate comes
    /// from their spread.
    pub trials: usize,
    /// Samples averaged in one estimate (≥ 1).
    pub samples: usize,
    /// Seed of libtorch's generator; each (problem, estimator) pair derives its own stream from
    /// it, so selecting fewer problems or temperatures does not change the others' numbers.
    pub seed: u64,
    /// The problems to run, in this order (duplicates are ignored).
    pub problems: Vec<ProblemKind>,
    /// Gumbel-softmax temperatures for the categorical problem (each finite and > 0); each is
    /// measured soft and straight-through.
    pub temperatures: Vec<f64>,
    /// libtorch intra-op threads during the run (≥ 1; the previous setting is restored
    /// afterwards). One by default: on two cores a second thread makes an idle run about 1.5×
    /// faster, but makes it 3× slower as soon as other processes compete for the cores, because
    /// libtorch's waiting workers spin; one thread keeps the run and its per-sample costs stable.
    pub threads: usize,
}

impl Default for GradlabOptions {
    /// The default suite: 1000 trials × 1000 samples of every problem, seed 0, temperatures
    /// 0.1, 0.3, 0.5, 1, 2, one libtorch thread.
    fn default() -> Self {
        Self {
            trials: 1000,
            samples: 1000,
            seed: 0,
            problems: ProblemKind::ALL.to_vec(),
            temperatures: DEFAULT_TEMPERATURES.to_vec(),
            threads: 1,
        }
    }
}

impl GradlabOptions {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), GradlabError> {
        let invalid = |message: String| Err(GradlabError::InvalidOption(message));
        if self.trials < 2 {
            return invalid(format!(
                "trials must be at least 2 (a standard error needs two estimates), got {}",
                self.trials
            ));
        }
        if self.samples == 0 {
            return invalid("samples must be at least 1".into());
        }
        match self.trials.checked_mul(self.samples) {
            Some(total) if total <= MAX_TOTAL_SAMPLES => {}
            _ => {
                return invalid(format!(
                    "trials × samples = {} × {} is more than {MAX_TOTAL_SAMPLES} samples per \
                     estimator; lower one of them",
                    self.trials, self.samples
                ));
            }
        }
        if self.problems.is_empty() {
            return invalid("select at least one problem".into());
        }
        if self.threads == 0 || self.threads > 1024 {
            return invalid(format!("threads must be between 1 and 1024, got {}", self.threads));
        }
        if let Some(t) = self.temperatures.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
            return invalid(format!("every temperature must be a finite number > 0, got {t}"));
        }
        Ok(())
    }

    /// The command line that reproduces these options (defaults left out).
    pub fn command_line(&self) -> String {
        let defaults = GradlabOptions::default();
        let mut cmd = format!(
            "rlpg gradlab --trials {} --samples {} --seed {}",
            self.trials, self.samples, self.seed
        );
        if self.problems != defaults.problems {
            let names: Vec<_> = self.problems.iter().map(|p| p.name()).collect();
            cmd.push_str(&format!(" --problems {}", names.join(",")));
        }
        if self.temperatures != defaults.temperatures {
            let temps: Vec<_> = self.temperatures.iter().map(|t| t.to_string()).collect();
            cmd.push_str(&format!(" --temperatures {}", temps.join(",")));
        }
        if self.threads != defaults.threads {
            cmd.push_str(&format!(" --threads {}", self.threads));
        }
        cmd
    }
}

/// Runs every selected problem with every estimator and checks the usual claims.
///
/// Sets libtorch's intra-op threads to `options.threads` for the run and restores them after.
pub fn run(options: &GradlabOptions) -> Result<Report, GradlabError> {
    options.validate()?;
    let previous_threads = tch::get_num_threads();
    // Validated to 1..=1024 above, so the cast is exact.
    tch::set_num_threads(options.threads as i32);
    let report = run_with_threads(options);
    tch::set_num_threads(previous_threads);
    report
}

fn run_with_threads(options: &GradlabOptions) -> Result<Report, GradlabError> {
    let start = Instant::now();
    let mut kinds = Vec::new();
    for &kind in &options.problems {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    warm_up(&kinds, options);
    let problems =
        kinds.iter().map(|&kind| measure_problem(kind, options)).collect::<Result<Vec<_>, _>>()?;
    let claims = claims::check(&problems);
    Ok(Report {
        command: options.command_line(),
        trials: options.trials,
        samples: options.samples,
        seed: options.seed,
        temperatures: options.temperatures.clone(),
        torch_threads: tch::get_num_threads(),
        elapsed_seconds: start.elapsed().as_secs_f64(),
        problems,
        claims,
    })
}

/// Runs a small batch of every estimator once, untimed. The first batches of a process pay for
/// libtorch's allocator and kernel set-up; without this the first estimator measured would look
/// slower per sample than the same code does later. Every estimator reseeds before it measures,
/// so the draws made here change no result.
fn warm_up(kinds: &[ProblemKind], options: &GradlabOptions) {
    const SAMPLES: i64 = 4096;
    for kind in kinds {
        let problem = kind.problem();
        let _ = problem.score_batch(SAMPLES);
        let _ = problem.pathwise_batch(SAMPLES);
        if let Some(&t) = options.temperatures.first() {
            let _ = problem.relaxed_batch(SAMPLES, t, true);
        }
    }
}

/// Which random stream an estimator draws from (see [`seed_stream`]).
#[derive(Clone, Copy)]
enum Stream {
    Reinforce,
    Pathwise,
    Relaxed { temperature: f64 },
}

/// Seeds libtorch for one (problem, estimator) pair with a SplitMix64 mix of the user's seed and
/// the pair, so that streams are unrelated and each pair's numbers depend only on the seed.
fn seed_stream(seed: u64, kind: ProblemKind, stream: Stream) {
    let id = match stream {
        Stream::Reinforce => 1,
        Stream::Pathwise => 2,
        Stream::Relaxed { temperature } => temperature.to_bits(),
    };
    let mut z = seed
        .wrapping_add(kind.stream().wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(id.wrapping_mul(0xD1B5_4A32_D192_ED69));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    tch::manual_seed((z >> 1) as i64);
}

/// Trials per chunk: whole trials, about [`CHUNK_SAMPLES`] samples per chunk.
fn chunks(trials: usize, samples: usize) -> impl Iterator<Item = usize> {
    let per_chunk = (CHUNK_SAMPLES / samples).max(1);
    let full = trials / per_chunk;
    let rest = trials % per_chunk;
    std::iter::repeat_n(per_chunk, full).chain((rest > 0).then_some(rest))
}

/// Runs every estimator on one problem.
fn measure_problem(
    kind: ProblemKind,
    options: &GradlabOptions,
) -> Result<ProblemReport, GradlabError> {
    let problem = kind.problem();
    let theory = problem.theory();
    let mean_f = problem.mean_f();

    let mut rows_by_parameter: Vec<Vec<Row>> = vec![Vec::new(); theory.len()];
    for (j, row) in measure_reinforce(&problem, &theory, mean_f, kind, options)? {
        rows_by_parameter[j].push(row);
    }
    for (j, row) in measure_pathwise(&problem, &theory, kind, options)? {
        rows_by_parameter[j].push(row);
    }
    for (j, row) in measure_relaxed(&problem, &theory, kind, options)? {
        rows_by_parameter[j].push(row);
    }

    let parameters = theory
        .iter()
        .map(|th| ParameterSummary {
            name: th.name.clone(),
            value: th.value,
            analytic_gradient: th.gradient,
            mean_baseline: mean_f,
            optimal_baseline: th.optimal_baseline(),
        })
        .collect();
    Ok(ProblemReport {
        kind,
        description: problem.description(),
        mean_f,
        parameters,
        rows: rows_by_parameter.into_iter().flatten().collect(),
    })
}

/// The score-function estimator with each baseline. The scores are computed once per chunk and
/// shared by the three baselines; each baseline's cost is the shared cost plus its own product.
fn measure_reinforce(
    problem: &Problem,
    theory: &[ParameterTheory],
    mean_f: f64,
    kind: ProblemKind,
    options: &GradlabOptions,
) -> Result<Vec<(usize, Row)>, GradlabError> {
    let baselines: Vec<(Baseline, Vec<f64>)> = vec![
        (Baseline::None, vec![0.0; theory.len()]),
        (Baseline::Mean, vec![mean_f; theory.len()]),
        (Baseline::Optimal, theory.iter().map(ParameterTheory::optimal_baseline).collect()),
    ];
    let gradients: Vec<f64> = theory.iter().map(|th| th.gradient).collect();
    let mut accs: Vec<Accumulator> =
        baselines.iter().map(|_| Accumulator::new(&gradients)).collect();
    let n = options.samples as i64;
    let p = theory.len() as i64;
    seed_stream(options.seed, kind, Stream::Reinforce);
    for t in chunks(options.trials, options.samples) {
        let clock = Instant::now();
        let batch = problem.score_batch(t as i64 * n);
        let shared = clock.elapsed().as_secs_f64();
        for ((_, values), acc) in baselines.iter().zip(&mut accs) {
            let clock = Instant::now();
            // (f − b_p) · s_p for every parameter p at once: [m, 1] − [P] broadcasts to [m, P].
            let b = Tensor::from_slice(values).f_to_kind(batch.f.kind())?;
            let g = batch.f.f_sub(&b)?.f_mul(&batch.scores)?.f_view([t as i64, n, p])?;
            acc.add_seconds(shared + clock.elapsed().as_secs_f64());
            acc.add(&g)?;
        }
    }
    let mut rows = Vec::new();
    for ((baseline, values), acc) in baselines.iter().zip(&accs) {
        for (j, (th, measured)) in theory.iter().zip(acc.finish(&gradients)).enumerate() {
            rows.push((
                j,
                Row {
                    parameter: th.name.clone(),
                    estimator: Estimator::Reinforce { baseline: *baseline },
                    applicability: Applicability::Applies,
                    unbiased_in_theory: true,
                    analytic_gradient: th.gradient,
                    baseline_value: Some(values[j]),
                    closed_form_variance: Some(th.reinforce_variance(values[j])),
                    measured: Some(measured),
                },
            ));
        }
    }
    Ok(rows)
}

/// The pathwise estimator, or the rows saying why it does not apply.
fn measure_pathwise(
    problem: &Problem,
    theory: &[ParameterTheory],
    kind: ProblemKind,
    options: &GradlabOptions,
) -> Result<Vec<(usize, Row)>, GradlabError> {
    let support = problem.pathwise_support();
    let row = |th: &ParameterTheory, applicability: Applicability, measured| Row {
        parameter: th.name.clone(),
        estimator: Estimator::Pathwise,
        applicability,
        unbiased_in_theory: matches!(support, Support::Applies),
        analytic_gradient: th.gradient,
        baseline_value: None,
        closed_form_variance: th.pathwise_variance,
        measured,
    };
    let applicability = match &support {
        Support::Applies => Applicability::Applies,
        Support::AutogradOnly(reason) => Applicability::NotApplicable(reason.clone()),
        Support::Impossible(reason) => {
            let na = Applicability::NotApplicable(reason.clone());
            return Ok(theory
                .iter()
                .enumerate()
                .map(|(j, th)| (j, row(th, na.clone(), None)))
                .collect());
        }
    };
    seed_stream(options.seed, kind, Stream::Pathwise);
    let measured = measure_batches(theory, options, |m| {
        problem.pathwise_batch(m).ok_or_else(|| refused("pathwise"))
    })?;
    Ok(theory
        .iter()
        .zip(measured)
        .enumerate()
        .map(|(j, (th, m))| (j, row(th, applicability.clone(), Some(m))))
        .collect())
}

/// The Gumbel-softmax estimator at every temperature, soft and straight-through, or one row per
/// parameter saying why it does not apply.
fn measure_relaxed(
    problem: &Problem,
    theory: &[ParameterTheory],
    kind: ProblemKind,
    options: &GradlabOptions,
) -> Result<Vec<(usize, Row)>, GradlabError> {
    let mut rows = Vec::new();
    if let Support::Impossible(reason) | Support::AutogradOnly(reason) = problem.relaxed_support() {
        for (j, th) in theory.iter().enumerate() {
            rows.push((
                j,
                Row {
                    parameter: th.name.clone(),
                    estimator: Estimator::GumbelSoftmax {
                        temperature: None,
                        straight_through: false,
                    },
                    applicability: Applicability::NotApplicable(reason.clone()),
                    unbiased_in_theory: false,
                    analytic_gradient: th.gradient,
                    baseline_value: None,
                    closed_form_variance: None,
                    measured: None,
                },
            ));
        }
        return Ok(rows);
    }
    for &temperature in &options.temperatures {
        for straight_through in [false, true] {
            // Soft and straight-through draw the same noise (common random numbers): their
            // difference at one temperature is then the estimators', not the samples'.
            seed_stream(options.seed, kind, Stream::Relaxed { temperature });
            let measured = measure_batches(theory, options, |m| {
                problem
                    .relaxed_batch(m, temperature, straight_through)
                    .ok_or_else(|| refused("Gumbel-softmax"))
            })?;
            for (j, (th, m)) in theory.iter().zip(measured).enumerate() {
                rows.push((
                    j,
                    Row {
                        parameter: th.name.clone(),
                        estimator: Estimator::GumbelSoftmax {
                            temperature: Some(temperature),
                            straight_through,
                        },
                        applicability: Applicability::Applies,
                        // A relaxation: unbiased for the relaxed objective, not for E[f(x)].
                        unbiased_in_theory: false,
                        analytic_gradient: th.gradient,
                        baseline_value: None,
                        closed_form_variance: None,
                        measured: Some(m),
                    },
                ));
            }
        }
    }
    Ok(rows)
}

/// The error for a batch function that refuses although the problem said the estimator applies.
fn refused(estimator: &str) -> GradlabError {
    GradlabError::Internal(format!("the {estimator} batch refused a problem it supports"))
}

/// Runs `batch(m)` (per-sample gradients `[m, P]` of `m` samples) over all chunks, timing it.
/// Every parameter is charged the whole cost: the gradient vector is computed in one pass.
fn measure_batches(
    theory: &[ParameterTheory],
    options: &GradlabOptions,
    batch: impl Fn(i64) -> Result<Tensor, GradlabError>,
) -> Result<Vec<Measured>, GradlabError> {
    let gradients: Vec<f64> = theory.iter().map(|th| th.gradient).collect();
    let mut acc = Accumulator::new(&gradients);
    let n = options.samples as i64;
    for t in chunks(options.trials, options.samples) {
        let clock = Instant::now();
        let grads = batch(t as i64 * n)?;
        acc.add_seconds(clock.elapsed().as_secs_f64());
        acc.add(&grads.f_view([t as i64, n, theory.len() as i64])?)?;
    }
    Ok(acc.finish(&gradients))
}
