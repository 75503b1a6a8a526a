//! The training loop: one loop drives every agent on every environment.
//!
//! The loop owns the environments, seeding, evaluation, logging and saving; the agent owns its
//! buffers and decides when to update (see [`rlpg_agents::Agent`]). On-policy and off-policy
//! agents therefore share this loop unchanged.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rlpg_agents::{ActMode, Agent, AgentError, Transition};
use rlpg_envs::{Env, EnvError, Space, VecActions, VecEnv};
use tch::{Kind, Tensor};

/// Builds one environment instance. The trainer calls it `num_envs` times for training and again
/// for evaluation, so every call must return an independent env.
pub type EnvFactory<'a> = &'a dyn Fn() -> Result<Box<dyn Env>, EnvError>;

/// Receives every scalar the trainer logs, tagged as CleanRL tags them, against the global env
/// step. The TensorBoard writer implements it; tests use an in-memory sink.
pub trait ScalarSink {
    /// Records `value` for `tag` at `step`.
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> std::io::Result<()>;
    /// Makes everything recorded so far durable.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A [`ScalarSink`] that keeps everything in memory, for tests and for library users who want
/// the curves without TensorBoard.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    /// `(tag, step, value)` in the order logged.
    pub records: Vec<(String, u64, f64)>,
}

impl MemorySink {
    /// The values logged under `tag`, in order.
    pub fn values(&self, tag: &str) -> Vec<f64> {
        self.records.iter().filter(|(t, _, _)| t == tag).map(|(_, _, v)| *v).collect()
    }
}

impl ScalarSink for MemorySink {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> std::io::Result<()> {
        self.records.push((tag.to_owned(), step, value));
        Ok(())
    }
}

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An environment failed or broke its contract.
    #[error("environment error at step {step}: {source}")]
    Env {
        /// Global env step at which it happened.
        step: u64,
        /// The env's error.
        source: EnvError,
    },
    /// The agent failed (e.g. a non-finite loss).
    #[error("agent error at step {step}: {source}")]
    Agent {
        /// Global env step at which it happened.
        step: u64,
        /// The agent's error.
        source: AgentError,
    },
    /// Writing logs or files failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being written.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// libtorch failed outside an agent update (e.g. while saving).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Settings of the loop itself (the agent has its own).
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Seed for libtorch and the environments (env `i` gets `seed + i`).
    pub seed: u64,
    /// Environment steps to train for, summed over all envs.
    pub total_timesteps: u64,
    /// Environments stepped in lockstep.
    pub num_envs: usize,
    /// Normalise observations with running statistics.
    pub normalize_obs: bool,
    /// Environment steps between deterministic evaluations (0: only at the end).
    pub eval_every: u64,
    /// Episodes per evaluation.
    pub eval_episodes: usize,
    /// Environment steps between `charts/SPS` points.
    pub log_every: u64,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// When set, training stops as soon as this target is reached (benchmarks measure time to
    /// threshold with it).
    pub stop_at: Option<Target>,
}

/// A return threshold that ends training early.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The mean return of the last 100 training episodes reaches the value (CartPole's
    /// "solved" criterion; needs 100 finished episodes).
    RecentMean(f64),
    /// A periodic deterministic evaluation (every `eval_every` steps) reaches the value.
    Eval(f64),
}

/// Mean and spread of the returns of deterministic evaluation episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// Mean episode return.
    pub mean_return: f64,
    /// Population standard deviation of the episode returns.
    pub std_return: f64,
    /// Every episode's return, in env order.
    pub returns: Vec<f64>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Environment steps taken.
    pub steps: u64,
    /// Episodes finished during training.
    pub episodes: u64,
    /// Mean return of the last (up to) 100 training episodes.
    pub recent_mean_return: Option<f64>,
    /// The final deterministic evaluation.
    pub final_eval: EvalResult,
    /// Training throughput, env steps per second of wall time (evaluation excluded).
    pub steps_per_second: f64,
    /// Every evaluation as `(env step, mean return)`.
    pub evals: Vec<(u64, f64)>,
    /// With [`LoopSettings::stop_at`]: the env step and the training wall time (seconds,
    /// evaluation excluded) at which the target was first reached.
    pub reached_target: Option<(u64, f64)>,
}

/// Converts the agent's action tensor into what the environments accept: discrete indices, or
/// continuous vectors clipped into the action bounds (the agent keeps its unclipped actions for
/// learning, as Stable-Baselines3 does).
pub struct ActionAdapter {
    space: Space,
    discrete: Vec<usize>,
    continuous: Vec<f32>,
}

impl ActionAdapter {
    /// An adapter for `space`.
    pub fn new(space: &Space) -> Self {
        Self { space: space.clone(), discrete: Vec::new(), continuous: Vec::new() }
    }

    /// The env actions for `actions` (`Int64 [n]` or `Float [n, dim]`).
    pub fn convert(&mut self, actions: &Tensor) -> Result<VecActions<'_>, tch::TchError> {
        match &self.space {
            Space::Discrete(_) => {
                let flat = actions.to_kind(Kind::Int64).flatten(0, -1);
                let idx: Vec<i64> = Vec::try_from(&flat)?;
                self.discrete.clear();
                // A negative index cannot come from a categorical sample; map it to an index the
                // env rejects with its own message rather than wrapping around.
                self.discrete.extend(idx.iter().map(|&a| usize::try_from(a).unwrap_or(usize::MAX)));
                Ok(VecActions::Discrete(&self.discrete))
            }
            Space::Box(b) => {
                let flat = actions.to_kind(Kind::Float).flatten(0, -1);
                self.continuous = Vec::try_from(&flat)?;
                let dim = b.dim();
                for (i, a) in self.continuous.iter_mut().enumerate() {
                    let (lo, hi) = (b.low[i % dim], b.high[i % dim]);
                    // NaN stays NaN so that the env reports it instead of the clip hiding it.
                    if *a < lo {
                        *a = lo;
                    } else if *a > hi {
                        *a = hi;
                    }
                }
                Ok(VecActions::Continuous(&self.continuous))
            }
        }
    }
}

fn env_err(step: u64) -> impl FnOnce(EnvError) -> TrainError {
    move |source| TrainError::Env { step, source }
}

fn make_vec_env(factory: EnvFactory<'_>, n: usize) -> Result<VecEnv, EnvError> {
    VecEnv::new((0..n).map(|_| factory()).collect::<Result<Vec<_>, _>>()?)
}

/// Runs `episodes` deterministic episodes of `agent` on fresh environments from `factory`, one
/// episode per environment, env `i` reset with `seed + i`. `obs_rms`, when given, normalises the
/// observations with frozen training statistics.
pub fn evaluate(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    episodes: usize,
    seed: u64,
    obs_rms: Option<(&rlpg_envs::RunningMeanStd, f32)>,
) -> Result<EvalResult, TrainError> {
    let mut vec = make_vec_env(factory, episodes).map_err(env_err(0))?;
    if let Some((rms, clip)) = obs_rms {
        vec.enable_obs_normalization(clip);
        vec.set_obs_rms(rms.clone()).map_err(env_err(0))?;
        vec.set_obs_normalization_training(false);
    }
    let obs_dim = vec.obs_dim();
    let mut adapter = ActionAdapter::new(vec.action_space());
    let mut obs = vec.reset(Some(seed)).map_err(env_err(0))?.to_vec();
    let mut returns: Vec<Option<f64>> = vec![None; episodes];
    let mut steps = 0u64;
    while returns.iter().any(Option::is_none) {
        let obs_t = Tensor::from_slice(&obs).view([episodes as i64, obs_dim as i64]);
        let actions = tch::no_grad(|| agent.act(&obs_t, ActMode::Deterministic));
        let env_actions = adapter.convert(&actions)?;
        let step = vec.step(env_actions).map_err(env_err(steps))?;
        steps += episodes as u64;
        for ep in &step.episodes {
            if returns[ep.env].is_none() {
                returns[ep.env] = Some(ep.ret);
            }
        }
        obs.copy_from_slice(&step.obs);
    }
    let returns: Vec<f64> = returns.into_iter().flatten().collect();
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / returns.len() as f64;
    Ok(EvalResult { mean_return: mean, std_return: var.sqrt(), returns })
}

/// Observation-normalisation clip (Stable-Baselines3's default).
pub const OBS_CLIP: f32 = 10.0;

/// Trains `agent` on environments from `factory` and logs to `sink`.
///
/// Seeds libtorch with `settings.seed` first, so an agent built before calling this must have
/// been built after seeding too (see [`crate::run::train_run`], which does both in order).
pub fn train_loop(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    settings: &LoopSettings,
    sink: &mut dyn ScalarSink,
) -> Result<(TrainSummary, Option<rlpg_envs::RunningMeanStd>), TrainError> {
    let n = settings.num_envs;
    let mut vec = make_vec_env(factory, n).map_err(env_err(0))?;
    if settings.normalize_obs {
        vec.enable_obs_normalization(OBS_CLIP);
    }
    let obs_dim = vec.obs_dim();
    let mut adapter = ActionAdapter::new(vec.action_space());
    let mut obs = vec.reset(Some(settings.seed)).map_err(env_err(0))?.to_vec();
    let io = |context: &str| {
        let context = context.to_owned();
        move |source| TrainError::Io { context, source }
    };

    let progress = progress_bar(settings);
    let mut recent: VecDeque<f64> = VecDeque::with_capacity(100);
    let mut global_step = 0u64;
    let mut episodes = 0u64;
    let mut next_eval = if settings.eval_every > 0 { settings.eval_every } else { u64::MAX };
    let mut next_log = settings.log_every.max(1);
    let mut evals = Vec::new();
    let mut train_time = 0.0f64;
    let mut window_start = (Instant::now(), 0u64);
    let mut last_tick = Instant::now();
    let mut reached_target = None;

    while global_step < settings.total_timesteps && reached_target.is_none() {
        let obs_t = Tensor::from_slice(&obs).view([n as i64, obs_dim as i64]);
        let actions = tch::no_grad(|| agent.act(&obs_t, ActMode::Explore));
        let env_actions = adapter.convert(&actions)?;
        let step = vec.step(env_actions).map_err(env_err(global_step))?;
        global_step += n as u64;

        let transition = Transition {
            obs: &obs,
            actions: &actions,
            rewards: &step.rewards,
            terminated: &step.terminated,
            truncated: &step.truncated,
            next_obs: &step.next_obs,
        };
        let metrics = agent
            .observe(&transition)
            .map_err(|source| TrainError::Agent { step: global_step, source })?;
        if let Some(metrics) = metrics {
            for (tag, value) in metrics {
                sink.scalar(tag, value, global_step).map_err(io("writing metrics"))?;
            }
        }
        for ep in &step.episodes {
            episodes += 1;
            sink.scalar("charts/episodic_return", ep.ret, global_step)
                .map_err(io("writing metrics"))?;
            sink.scalar("charts/episodic_length", ep.length as f64, global_step)
                .map_err(io("writing metrics"))?;
            if recent.len() == 100 {
                recent.pop_front();
            }
            recent.push_back(ep.ret);
        }
        obs.copy_from_slice(&step.obs);

        if global_step >= next_log {
            next_log += settings.log_every.max(1);
            let (start, start_step) = window_start;
            let sps = (global_step - start_step) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            sink.scalar("charts/SPS", sps, global_step).map_err(io("writing metrics"))?;
            window_start = (Instant::now(), global_step);
        }
        train_time += last_tick.elapsed().as_secs_f64();
        if let (Some(Target::RecentMean(target)), Some(m)) = (settings.stop_at, mean(&recent)) {
            if recent.len() == 100 && m >= target {
                reached_target = Some((global_step, train_time));
            }
        }
        if global_step >= next_eval && global_step < settings.total_timesteps {
            next_eval += settings.eval_every;
            let result = run_eval(agent, factory, settings, &vec)?;
            sink.scalar("eval/mean_return", result.mean_return, global_step)
                .map_err(io("writing metrics"))?;
            evals.push((global_step, result.mean_return));
            if matches!(settings.stop_at, Some(Target::Eval(t)) if result.mean_return >= t) {
                reached_target = Some((global_step, train_time));
            }
            window_start = (Instant::now(), global_step);
        }
        last_tick = Instant::now();
        if let Some(bar) = &progress {
            bar.set_position(global_step);
            if let Some(mean) = mean(&recent) {
                bar.set_message(format!("return(100) {mean:.1}"));
            }
        }
    }
    let final_eval = run_eval(agent, factory, settings, &vec)?;
    sink.scalar("eval/mean_return", final_eval.mean_return, global_step)
        .map_err(io("writing metrics"))?;
    evals.push((global_step, final_eval.mean_return));
    if reached_target.is_none()
        && matches!(settings.stop_at, Some(Target::Eval(t)) if final_eval.mean_return >= t)
    {
        reached_target = Some((global_step, train_time));
    }
    sink.flush().map_err(io("flushing metrics"))?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let summary = TrainSummary {
        steps: global_step,
        episodes,
        recent_mean_return: mean(&recent),
        final_eval,
        steps_per_second: global_step as f64 / train_time.max(1e-9),
        evals,
        reached_target,
    };
    Ok((summary, vec.obs_rms().cloned()))
}

fn run_eval(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    settings: &LoopSettings,
    train_env: &VecEnv,
) -> Result<EvalResult, TrainError> {
    // Evaluation envs are seeded apart from the training envs so that evaluation never replays
    // a training episode start.
    let eval_seed = settings.seed.wrapping_add(1_000_000);
    let rms = train_env.obs_rms().map(|r| (r, OBS_CLIP));
    evaluate(agent, factory, settings.eval_episodes, eval_seed, rms)
}

fn mean(values: &VecDeque<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn progress_bar(settings: &LoopSettings) -> Option<indicatif::ProgressBar> {
    if !settings.progress {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(settings.total_timesteps),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} steps {per_sec} {msg}",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    Some(bar)
}

/// Path of the saved final policy inside a run directory.
pub fn policy_path(run_dir: &Path) -> PathBuf {
    run_dir.join("policy.safetensors")
}
