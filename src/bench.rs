//! `rlpg bench`: training throughput and time to a return threshold, over several seeds.
//!
//! Time is training wall time with evaluation excluded, from the first environment step, as the
//! peer scripts measure Stable-Baselines3 (`benches/peers/sb3_time_to_threshold.py`). Nothing is
//! written to disk: curves go to memory.

use crate::config::Config;
use crate::run::{EnvSource, Envs, RunError, build_agent, loop_settings, probe_env, seed_torch};
use crate::trainer::EnvFactory;
use crate::trainer::{EVAL_MEAN_RETURN, MemorySink, PhaseSeconds, ScalarSink, Target, train_loop};

/// One seed's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Environment steps trained (up to reaching the target, or the whole budget).
    pub steps: u64,
    /// Env steps at which the target was first reached, if it was.
    pub steps_to_target: Option<u64>,
    /// Training seconds (evaluation excluded) until the target, if it was reached.
    pub seconds_to_target: Option<f64>,
    /// Training throughput in env steps per second (evaluation excluded).
    pub steps_per_second: f64,
    /// Final deterministic evaluation mean return.
    pub final_eval: f64,
    /// Mean return of the last 100 training episodes at the end.
    pub recent_mean_return: Option<f64>,
    /// Threads that stepped the environments (`env_threads`, resolved).
    pub env_threads: usize,
    /// Where the training time went: stepping the envs, acting, learning (see
    /// [`PhaseSeconds`]), so that a user sees which one limits the run.
    pub phase_seconds: PhaseSeconds,
}

impl SeedResult {
    /// Training seconds (evaluation excluded).
    fn train_seconds(&self) -> f64 {
        self.steps as f64 / self.steps_per_second.max(1e-12)
    }

    /// The shares of the training time spent stepping the envs, acting and learning.
    pub fn phase_shares(&self) -> [f64; 3] {
        let total = self.train_seconds().max(1e-12);
        let p = self.phase_seconds;
        [p.env / total, p.act / total, p.learn / total]
    }
}

/// What [`bench_with_progress`] reports while it runs, so that a long benchmark shows where it
/// is and a stopped one still leaves the seeds it finished on record.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A deterministic evaluation of `seed`'s run: each periodic one and the final one, once per
    /// step (a run that stops at an eval target ends on the evaluation that reached it).
    Eval {
        /// The seed being trained.
        seed: u64,
        /// Environment steps trained so far.
        step: u64,
        /// The evaluation's mean return.
        mean_return: f64,
        /// Wall seconds since this seed's run started (evaluation included).
        elapsed: f64,
    },
    /// A seed's run ended (target reached or budget spent).
    SeedDone(&'a SeedResult),
}

impl std::fmt::Display for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Eval { seed, step, mean_return, elapsed } => {
                write!(f, "seed {seed}: step {step}: eval {mean_return:.1} ({elapsed:.0} s)")
            }
            Progress::SeedDone(r) => match (r.steps_to_target, r.seconds_to_target) {
                (Some(steps), Some(secs)) => write!(
                    f,
                    "seed {}: target reached at step {steps} after {secs:.1} s of training ({:.0} steps/s)",
                    r.seed, r.steps_per_second
                ),
                _ => write!(
                    f,
                    "seed {}: target not reached in {} steps (final eval {:.1}, {:.0} steps/s)",
                    r.seed, r.steps, r.final_eval, r.steps_per_second
                ),
            },
        }
    }
}

/// Passes scalars to memory and each evaluation to the progress callback.
struct ProgressSink<'a> {
    memory: MemorySink,
    seed: u64,
    start: std::time::Instant,
    progress: &'a mut dyn FnMut(Progress<'_>),
}

impl ScalarSink for ProgressSink<'_> {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> std::io::Result<()> {
        if tag == EVAL_MEAN_RETURN {
            let elapsed = self.start.elapsed().as_secs_f64();
            (self.progress)(Progress::Eval { seed: self.seed, step, mean_return: value, elapsed });
        }
        self.memory.scalar(tag, value, step)
    }
}

/// Trains `config` once per seed with `target` as an early stop, on environments from `envs`,
/// and reports each run.
pub fn bench(
    config: &Config,
    seeds: &[u64],
    target: Target,
    envs: EnvSource<'_>,
) -> Result<Vec<SeedResult>, RunError> {
    bench_with_progress(config, seeds, target, envs, &mut |_| {})
}

/// [`bench()`], calling `progress` at each evaluation (see [`Progress::Eval`]) and when each seed
/// ends.
pub fn bench_with_progress(
    config: &Config,
    seeds: &[u64],
    target: Target,
    envs: EnvSource<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<SeedResult>, RunError> {
    let envs = Envs::resolve(envs, config)?;
    let factory: EnvFactory<'_> = &envs;
    let probe = probe_env(config, factory)?;
    config.validate_against_env(&*probe)?;
    let mut results = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let config = Config { seed, ..config.clone() };
        seed_torch(&config);
        let mut agent = build_agent(&config, probe.observation_space(), probe.action_space())?;
        let mut settings = loop_settings(&config, false);
        settings.stop_at = Some(target);
        // Nothing is written to disk, so evaluation videos would only cost time.
        settings.capture_video_every = 0;
        let mut sink = ProgressSink {
            memory: MemorySink::default(),
            seed,
            start: std::time::Instant::now(),
            progress: &mut *progress,
        };
        let (summary, _) = train_loop(agent.as_mut(), factory, &settings, &mut sink)?;
        let result = SeedResult {
            seed,
            steps: summary.steps,
            steps_to_target: summary.reached_target.map(|(s, _)| s),
            seconds_to_target: summary.reached_target.map(|(_, t)| t),
            steps_per_second: summary.steps_per_second,
            final_eval: summary.final_eval.mean_return,
            recent_mean_return: summary.recent_mean_return,
            env_threads: summary.env_threads,
            phase_seconds: summary.phase_seconds,
        };
        progress(Progress::SeedDone(&result));
        results.push(result);
    }
    Ok(results)
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

/// A markdown table of `results` with a summary line (median time to target over all seeds,
/// counting a seed that missed the target as missing).
pub fn to_markdown(results: &[SeedResult], target: Target) -> String {
    let rows: Vec<(&str, &SeedResult)> = results.iter().map(|r| ("", r)).collect();
    table(&rows, Some(target), None)
}

/// The table of [`to_markdown`] for runs in groups (`rlpg sweep`'s grid points): a first column
/// `group_header` naming each row's group, and one summary line per group (seeds that reached
/// the target, median seconds to it, median steps/s, median final evaluation). Without a
/// target the target columns are left out.
pub fn to_markdown_grouped(
    rows: &[(&str, &SeedResult)],
    target: Option<Target>,
    group_header: &str,
) -> String {
    table(rows, target, Some(group_header))
}

fn table(rows: &[(&str, &SeedResult)], target: Option<Target>, group: Option<&str>) -> String {
    let mut columns: Vec<&str> = group.into_iter().collect();
    columns.push("seed");
    if target.is_some() {
        columns.extend(["steps to target", "seconds to target"]);
    } else {
        columns.push("steps");
    }
    columns.extend(["steps/s", "final eval", "mean-100", "env step", "acting", "learning"]);
    let mut out = format!("| {} |\n|{}\n", columns.join(" | "), "---|".repeat(columns.len()));
    let fmt_opt = |v: Option<String>| v.unwrap_or_else(|| "not reached".to_owned());
    for (name, r) in rows {
        let mut cells: Vec<String> = Vec::new();
        if group.is_some() {
            cells.push((*name).to_owned());
        }
        cells.push(r.seed.to_string());
        if target.is_some() {
            cells.push(fmt_opt(r.steps_to_target.map(|s| s.to_string())));
            cells.push(fmt_opt(r.seconds_to_target.map(|s| format!("{s:.2}"))));
        } else {
            cells.push(r.steps.to_string());
        }
        cells.push(format!("{:.0}", r.steps_per_second));
        cells.push(format!("{:.1}", r.final_eval));
        cells.push(r.recent_mean_return.map_or_else(|| "-".to_owned(), |m| format!("{m:.1}")));
        let p = r.phase_seconds;
        for (seconds, share) in [p.env, p.act, p.learn].into_iter().zip(r.phase_shares()) {
            cells.push(format!("{seconds:.2} s ({:.0}%)", 100.0 * share));
        }
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    // Groups in the order they first appear.
    let mut groups: Vec<&str> = Vec::new();
    for (name, _) in rows {
        if !groups.contains(name) {
            groups.push(name);
        }
    }
    out.push('\n');
    for name in groups {
        let results: Vec<&SeedResult> =
            rows.iter().filter(|(n, _)| *n == name).map(|(_, r)| *r).collect();
        let prefix = if group.is_some() { format!("{name}: ") } else { String::new() };
        out.push_str(&format!("{prefix}{}\n", summary_line(&results, target)));
    }
    out
}

/// One summary line over the seeds of `results`.
fn summary_line(results: &[&SeedResult], target: Option<Target>) -> String {
    format!("{}; {}", outcome_summary(results, target), phase_summary(results))
}

/// Where the time went, as median shares over the seeds, and the threads that stepped the envs.
fn phase_summary(results: &[&SeedResult]) -> String {
    let share = |k: usize| {
        let shares: Vec<f64> = results.iter().map(|r| 100.0 * r.phase_shares()[k]).collect();
        median(&shares).map_or_else(|| "-".to_owned(), |m| format!("{m:.0}%"))
    };
    let threads: Vec<f64> = results.iter().map(|r| r.env_threads as f64).collect();
    format!(
        "training time in env steps {}, acting {}, learning {} (medians; env steps on {} thread(s))",
        share(0),
        share(1),
        share(2),
        median(&threads).map_or_else(|| "-".to_owned(), |t| format!("{t}")),
    )
}

/// The seeds' outcome: the target, or the final evaluations without one.
fn outcome_summary(results: &[&SeedResult], target: Option<Target>) -> String {
    let sps: Vec<f64> = results.iter().map(|r| r.steps_per_second).collect();
    let Some(target) = target else {
        let evals: Vec<f64> = results.iter().map(|r| r.final_eval).collect();
        return format!(
            "{} seeds; median steps/s {:.0}; median final eval {}",
            results.len(),
            median(&sps).unwrap_or(0.0),
            median(&evals).map_or_else(|| "-".to_owned(), |m| format!("{m:.1}")),
        );
    };
    let reached: Vec<f64> = results.iter().filter_map(|r| r.seconds_to_target).collect();
    let target = match target {
        Target::RecentMean(t) => format!("mean of last 100 episodes >= {t}"),
        Target::Eval(t) => format!("deterministic eval >= {t}"),
    };
    format!(
        "target ({target}) reached by {} of {} seeds; median seconds to target {}; median steps/s {:.0}",
        reached.len(),
        results.len(),
        if reached.len() == results.len() {
            median(&reached).map_or_else(|| "-".to_owned(), |m| format!("{m:.2}"))
        } else {
            "n/a (not every seed reached it)".to_owned()
        },
        median(&sps).unwrap_or(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
