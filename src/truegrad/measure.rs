//! The measurement itself: the ground truth, the finite-difference cross-check and each
//! estimator, on a policy probe ([`measure_probe`]) or on a run's checkpoint ([`measure`]).

use std::path::Path;
use std::time::Instant;

use rlpg_agents::PolicyProbe;
use rlpg_envs::RunningMeanStd;
use tch::{Kind, Tensor};

use super::TrueGradOptions;
use super::baseline::FittedBaseline;
use super::estimators::{Advantage, pathwise_gradient, row_weights, score_gradient, values};
use super::report::{EstimatorRow, FiniteDifference, TrueGradReport, Truth};
use super::rollout::{Episodes, MakeEnv, concat, play, play_many, seeds, torch, truth_sample_obs};
use super::stats::{GradStats, mean_se, norm, row};
use crate::checkpoint::Checkpoint;
use crate::run::{EnvSource, RunError, build_agent, default_eval_checkpoint, seed_torch};

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

/// What the phases of a measurement share: the policy, its environments, the options, and the
/// next fresh reset seed (every phase plays episodes of its own).
struct Lab<'a> {
    probe: &'a dyn PolicyProbe,
    make_env: MakeEnv<'a>,
    obs_rms: Option<&'a RunningMeanStd>,
    options: &'a TrueGradOptions,
    gamma: f64,
    next_seed: u64,
}

/// Measures the policy of `probe` on environments from `make_env` (observations normalised
/// with `obs_rms` when given). The report's `checkpoint`, `env`, `agent` and `step` are left
/// for the caller to fill in.
///
/// Four phases, in an order the random streams depend on: a pilot batch fits the baseline,
/// `ground_truth` plays the truth's chunks, `finite_differences` cross-checks it, and
/// `estimators` draws each estimator's batches.
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
    let next_seed = options.seed.wrapping_mul(1 << 32);
    let mut lab = Lab { probe, make_env, obs_rms, options, gamma, next_seed };
    let chunk = options.chunk_episodes;

    // The baseline of the truth (and of the estimators when the run has no value network):
    // fitted on a pilot batch independent of every episode measured below.
    let pilot =
        play_many(probe, make_env, obs_rms, chunk, chunk, &mut lab.next_seed, options.max_steps)?;
    let pilot = concat(&pilot)?;
    let baseline = FittedBaseline::fit(probe, &pilot, gamma)?;
    let probe_obs = truth_sample_obs(make_env, obs_rms)?;
    let baseline_name = format!(
        "a baseline fitted on a pilot batch of {chunk} episodes (least squares of the \
         reward-to-go on {})",
        baseline.describe()
    );

    let (truth, truth_report) = ground_truth(&mut lab, &baseline, baseline_name)?;
    let (finite_differences, fd_step) =
        finite_differences(&mut lab, &truth, &truth_report, &pilot, &baseline)?;
    // The finite differences moved the generator by a direction-dependent amount: reseed.
    tch::manual_seed(options.seed.wrapping_add(7) as i64);
    let (rows, stats, not_measured) =
        estimators(&mut lab, &truth, truth_report.mean_length, &probe_obs, &baseline)?;
    let report = TrueGradReport {
        checkpoint: String::new(),
        env: String::new(),
        agent: String::new(),
        step: 0,
        gamma,
        parameters: probe.policy_parameters().numel(),
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

/// The ground truth `∇J`: the score-function estimator with the fitted baseline over
/// `truth_episodes` episodes, in chunks whose spread gives its standard error; with the
/// objective and the episodes' statistics.
fn ground_truth(
    lab: &mut Lab<'_>,
    baseline: &FittedBaseline,
    baseline_name: String,
) -> Result<(GradStats, Truth), RunError> {
    let Lab { probe, make_env, obs_rms, options, gamma, .. } = *lab;
    let next_seed = &mut lab.next_seed;
    let chunk = options.chunk_episodes;
    let chunks = options.truth_episodes / chunk;
    let truth_start = Instant::now();
    let mut rollout_seconds = 0.0;
    let mut chunk_grads = Vec::with_capacity(chunks);
    let (mut disc, mut undisc, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..chunks {
        let t0 = Instant::now();
        let episodes = play(probe, make_env, obs_rms, &seeds(next_seed, chunk), options.max_steps)?;
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
    Ok((truth, truth_report))
}

/// Central finite differences of `J` along the pilot batch's gradient and random unit
/// directions, with common random numbers, against the truth's `u · ∇J`; and the step `h` used.
fn finite_differences(
    lab: &mut Lab<'_>,
    truth: &GradStats,
    truth_report: &Truth,
    pilot: &Episodes,
    baseline: &FittedBaseline,
) -> Result<(Vec<FiniteDifference>, f64), RunError> {
    let Lab { probe, make_env, obs_rms, options, gamma, .. } = *lab;
    let next_seed = &mut lab.next_seed;
    let (truth_norm, objective) = (truth_report.norm, truth_report.objective);
    let params = probe.policy_parameters();
    let numel = params.numel();
    let chunk = options.chunk_episodes;
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
        row_weights(pilot, gamma, &Advantage::Baseline(baseline.predict(probe, pilot)?));
    let along_truth =
        score_gradient(probe, pilot, 0..pilot.len(), &pilot_weights)?.to_kind(Kind::Double);
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
        let fd_seeds = seeds(next_seed, options.fd_episodes);
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
    Ok((finite_differences, fd_step))
}

/// The estimators on a pool of independent episodes, each at its agent's batch size: report
/// rows, the estimates, and what could not be measured.
#[allow(clippy::type_complexity)]
fn estimators(
    lab: &mut Lab<'_>,
    truth: &GradStats,
    mean_length: f64,
    probe_obs: &Tensor,
    baseline: &FittedBaseline,
) -> Result<(Vec<EstimatorRow>, Vec<(String, GradStats)>, Vec<String>), RunError> {
    let Lab { probe, make_env, obs_rms, options, gamma, .. } = *lab;
    let next_seed = &mut lab.next_seed;
    let chunk = options.chunk_episodes;
    let sf_batch = options
        .batch_episodes
        .unwrap_or_else(|| ((probe.batch_samples() as f64 / mean_length).round() as usize).max(1));
    let pw_batch = probe.batch_samples();
    let has_pathwise = {
        let noise = probe.draw_noise(1);
        probe
            .reparameterized_action(probe_obs, &noise)
            .is_some_and(|a| tch::no_grad(|| probe.critic(probe_obs, &a)).is_some())
    };
    let per_estimate = if has_pathwise { sf_batch.max(pw_batch) } else { sf_batch };
    let pool = play_many(
        probe,
        make_env,
        obs_rms,
        per_estimate * options.estimates,
        chunk.max(per_estimate),
        next_seed,
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
        rows.push(row(&name, sf_batch, "episodes", &s, truth, seconds)?);
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
        rows.push(row(&name, pw_batch, "states", &s, truth, seconds)?);
        stats.push((name, s));
    } else {
        not_measured
            .push("pathwise: the policy has no reparameterization or the run no critic".to_owned());
    }
    Ok((rows, stats, not_measured))
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
    let factory = || envs.make();
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
    let mut m = measure_probe(probe, &factory, rms.as_ref(), options)?;
    m.report.checkpoint = checkpoint_path.display().to_string();
    m.report.env = config.env.clone();
    m.report.agent = agent.name().to_owned();
    m.report.step = checkpoint.meta.step;
    Ok(m)
}
