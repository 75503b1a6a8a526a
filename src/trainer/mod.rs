//! The training loop: one loop drives every agent on every environment.
//!
//! The loop owns the environments, seeding, evaluation, logging and checkpoint points; the agent
//! owns its buffers and decides when to update (see [`rlpg_agents::Agent`]). On-policy and
//! off-policy agents therefore share this loop unchanged.
//!
//! ## Resumable by construction
//!
//! Everything the loop keeps between two environment steps is a [`LoopState`] (counters, the
//! recent-returns window, the next evaluation, log and checkpoint points, the evaluations so
//! far), so a run can stop after any step and continue from a checkpoint as if it had never
//! stopped:
//!
//! * **libtorch's random numbers.** tch cannot read libtorch's global generator, so its state
//!   cannot be saved. Instead the loop re-seeds it at the start of *every* environment step from
//!   `(seed, global_step)` ([`step_seed`]), in every run. What happens within a step (sampling
//!   actions, the agent's update, its minibatch draws) then depends only on the seed, the step
//!   and the saved state, so a resumed run draws exactly what the uninterrupted run drew.
//! * **Environments** are saved with [`VecEnv::snapshot`] (each env's own state and random
//!   generator, the episode statistics in progress, the observation-normalisation statistics).
//!   An environment that cannot snapshot itself (a user's env without
//!   [`rlpg_envs::Env::snapshot`]) is reset on resume with a seed derived from `(seed, step)`,
//!   and a warning says so: the run continues, but not exactly.
//! * **The agent** saves its networks and optimizer state ([`Agent::named_tensors`]) and its
//!   buffers and counters ([`Agent::training_state`]).
//!
//! Checkpoints are requested from a [`CheckpointSaver`] at the start, every `checkpoint_every`
//! steps, at every new best evaluation, at the end, when a stop is requested, and before
//! returning an environment fault. The sink is flushed before each, so every logged scalar with
//! a step at or before a checkpoint's step is on disk when the checkpoint is.
//!
//! Beside the loop: `actions` turns the agent's action tensor into env actions, `eval` runs
//! deterministic evaluations and renders evaluation videos, `progress` draws the progress bar.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rlpg_agents::{ActMode, Actions, Agent, AgentError, Transition};
use rlpg_envs::{
    AsyncVecEnv, EnvError, EnvThreads, EpisodeRecord, InfoReduce, InfoTotals, MakeEnv,
    RunningMeanStd, Stepping, VecEnv, VecEnvSnapshot,
};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::video::{EncodedGif, VideoError};

mod actions;
mod beside;
mod eval;
mod progress;

pub use actions::ActionAdapter;
use beside::Beside;
pub use eval::{VIDEO_MAX_STEPS, VIDEO_OPTIONS, VIDEO_TAG, evaluate, record_agent_episode};
use eval::{record_video, run_eval};
pub use progress::human_rate;
use progress::progress_bar;

/// Builds one environment instance. The trainer calls it `num_envs` times for training and again
/// for evaluation, so every call must return an independent env.
///
/// A closure `Fn() -> Result<Box<dyn Env>, EnvError>` is one (`&factory` where one is expected),
/// and so are a registry's [`rlpg_envs::EnvEntry`] and a [`rlpg_envs::SendFactory`]. The two
/// last make `Send` envs, which `env_threads` may step on several threads; a closure of
/// `Box<dyn Env>` steps on one thread (see [`MakeEnv`]).
pub type EnvFactory<'a> = &'a dyn MakeEnv;

/// The tag each evaluation's mean return is logged under.
pub const EVAL_MEAN_RETURN: &str = "eval/mean_return";

/// Receives every scalar the trainer logs, tagged as CleanRL tags them, against the global env
/// step. The TensorBoard writer implements it; tests use an in-memory sink.
pub trait ScalarSink {
    /// Records `value` for `tag` at `step`.
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> std::io::Result<()>;
    /// Makes everything recorded so far durable.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// Records a video of an evaluation episode (see [`LoopSettings::capture_video_every`]);
    /// sinks without a place for videos drop it.
    fn video(&mut self, tag: &str, gif: &EncodedGif, step: u64) -> std::io::Result<()> {
        let _ = (tag, gif, step);
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
    /// Recording an evaluation video failed.
    #[error("cannot record the video at step {step}: {source}")]
    Video {
        /// Global env step of the video.
        step: u64,
        /// What went wrong.
        source: VideoError,
    },
    /// libtorch failed outside an agent update (e.g. while saving).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A network parameter or optimizer value became NaN or infinite (found when checking the
    /// agent's tensors before a checkpoint, which is then not written).
    #[error("non-finite {quantity} at step {step}")]
    NonFinite {
        /// Global env step at which it was found.
        step: u64,
        /// Which tensor, e.g. `parameter 'policy/fc0.weight'`.
        quantity: String,
    },
    /// A checkpoint could not be written.
    #[error("cannot write the checkpoint at step {step}: {message}")]
    Checkpoint {
        /// Global env step of the checkpoint.
        step: u64,
        /// What went wrong.
        message: String,
    },
    /// The saved state to resume from does not fit this run (other envs, other spaces).
    #[error("cannot resume at step {step}: {message}")]
    Resume {
        /// Global env step of the checkpoint.
        step: u64,
        /// What does not fit.
        message: String,
    },
}

impl TrainError {
    /// Whether resuming the run as it is can be expected to get past this error: only for
    /// failures around the run (writing logs or checkpoints: a full disk can be freed). An
    /// environment's error is the environment's to fix (resuming starts new episodes with the
    /// same agent, which tends to meet it again), and an agent's error (a non-finite loss) comes
    /// back exactly, as a resumed run replays the same steps.
    pub fn resuming_can_work(&self) -> bool {
        matches!(self, TrainError::Io { .. } | TrainError::Checkpoint { .. })
    }
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
    /// How the environments step: threads, worker processes (results do not depend on it;
    /// see [`Stepping`]).
    pub stepping: Stepping,
    /// Asynchronous batches (`async_batch`): when above 0, the agent acts on (and learns from)
    /// whichever this many envs finished their step first, while the others step on
    /// [`Stepping::threads`] threads of their own ([`AsyncVecEnv`]). The agent must have been
    /// built for this many rows. Runs are then not reproducible. 0: lockstep.
    pub async_batch: usize,
    /// Acting beside learning: the envs step, and the agent's [`rlpg_agents::Actor`] acts, on
    /// a thread of their own while the agent learns from the previous step; actions are one env
    /// step stale (see `beside.rs`). Needs `Send` envs and an agent with an actor (pathwise).
    pub act_beside_learning: bool,
    /// Normalise observations with running statistics.
    pub normalize_obs: bool,
    /// Environment steps between deterministic evaluations (0: only at the end).
    pub eval_every: u64,
    /// Episodes per evaluation.
    pub eval_episodes: usize,
    /// Environment steps between `charts/SPS` points.
    pub log_every: u64,
    /// Environment steps between checkpoints (0: only at the start and the end). Used only when
    /// a [`CheckpointSaver`] is given.
    pub checkpoint_every: u64,
    /// Include the agent's replay buffer in checkpoints (see [`Agent::training_state`]).
    pub checkpoint_replay_buffer: bool,
    /// Environment steps between evaluation videos (0: none): whenever training passes a
    /// multiple of it, and at the end, one deterministic episode is rendered and handed to
    /// [`ScalarSink::video`] (see [`VIDEO_TAG`]). The environment must render.
    pub capture_video_every: u64,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal; never shown
    /// without the `progress` feature).
    pub progress: bool,
    /// When set, training stops as soon as this target is reached (benchmarks measure time to
    /// threshold with it).
    pub stop_at: Option<Target>,
    /// When set (and `stop_at` is not), the step and time at which this target is first
    /// reached are recorded in [`TrainSummary::reached_target`] and training goes on to its
    /// budget (`rlpg train --target-recent`, `rlpg sweep`).
    pub record_target: Option<Target>,
    /// Names of the env's step infos to log (`info_keywords`): each episode's value goes to
    /// the sink as `infos/<name>`, the mean of the last 100 to [`TrainSummary::recent_infos`].
    pub info_keywords: Vec<String>,
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
    /// The mean over the episodes of each info the env reports, each episode's value added up
    /// as the env declares (infos that no episode reported are left out).
    pub infos: BTreeMap<String, f64>,
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
    /// For each logged info ([`LoopSettings::info_keywords`]), its mean over the last (up to)
    /// 100 training episodes that reported it.
    pub recent_infos: BTreeMap<String, f64>,
    /// The final deterministic evaluation.
    pub final_eval: EvalResult,
    /// Training throughput, env steps per second of wall time (evaluation excluded).
    pub steps_per_second: f64,
    /// Every evaluation as `(env step, mean return)`.
    pub evals: Vec<(u64, f64)>,
    /// With [`LoopSettings::stop_at`] or [`LoopSettings::record_target`]: the env step and the
    /// training wall time (seconds, evaluation excluded) at which the target was first reached.
    pub reached_target: Option<(u64, f64)>,
    /// Threads that stepped the environments at the end of training (what `env_threads`
    /// resolved to; `auto` decides during the first steps).
    pub env_threads: usize,
    /// Worker processes that stepped the environments (0: they stepped in this process).
    pub env_workers: usize,
    /// Envs per asynchronous batch (0: lockstep).
    pub async_batch: usize,
    /// Whether the envs stepped and the agent acted beside its learning.
    pub act_beside_learning: bool,
    /// Where the training time went (over every session of a resumed run).
    pub phase_seconds: PhaseSeconds,
    /// The backend the agent's updates and acting ran on (its `backend` setting resolved).
    pub backend: rlpg_agents::BackendKind,
}

fn env_err(step: u64) -> impl FnOnce(EnvError) -> TrainError {
    move |source| TrainError::Env { step, source }
}

fn make_vec_env(
    factory: EnvFactory<'_>,
    n: usize,
    stepping: &Stepping,
) -> Result<VecEnv, EnvError> {
    factory.make_vec(n, stepping)
}

/// Tag of the mean return of the last 100 training episodes, logged once per `log_every`.
pub const RECENT_MEAN_TAG: &str = "charts/episodic_return_mean100";

/// Observation-normalisation clip (Stable-Baselines3's default).
pub const OBS_CLIP: f32 = 10.0;

/// Length of the recent-returns window (CartPole's "solved" criterion averages 100 episodes).
const RECENT_WINDOW: usize = 100;

/// Everything the loop itself carries from one environment step to the next; saved in every
/// checkpoint so that a resumed run continues exactly where the saved one was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Environment steps taken, summed over all envs.
    pub global_step: u64,
    /// Training episodes finished.
    pub episodes: u64,
    /// Returns of the last (up to 100) training episodes, oldest first.
    pub recent_returns: Vec<f64>,
    /// The values of each logged info in the last (up to 100) training episodes that reported
    /// it, oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recent_infos: BTreeMap<String, Vec<f64>>,
    /// Step at or after which the next periodic evaluation runs (`u64::MAX`: none).
    pub next_eval: u64,
    /// Step at or after which the next `charts/SPS` point is logged.
    pub next_log: u64,
    /// Step at or after which the next interval checkpoint is written (`u64::MAX`: none).
    pub next_checkpoint: u64,
    /// Every evaluation so far as `(env step, mean return)`.
    pub evals: Vec<(u64, f64)>,
    /// The best evaluation so far as `(env step, mean return)`.
    pub best_eval: Option<(u64, f64)>,
    /// Training wall time so far in seconds (evaluation excluded), over all sessions of the run.
    pub train_seconds: f64,
    /// The part of `train_seconds` spent in each phase of a step (see [`PhaseSeconds`]).
    #[serde(default)]
    pub phase_seconds: PhaseSeconds,
    /// Whether training ran to the end (set in the final checkpoint only).
    pub finished: bool,
}

impl LoopState {
    /// The state of a run that has not taken a step yet.
    pub fn start(settings: &LoopSettings) -> Self {
        Self {
            global_step: 0,
            episodes: 0,
            recent_returns: Vec::new(),
            recent_infos: BTreeMap::new(),
            next_eval: if settings.eval_every > 0 { settings.eval_every } else { u64::MAX },
            next_log: settings.log_every.max(1),
            next_checkpoint: if settings.checkpoint_every > 0 {
                settings.checkpoint_every
            } else {
                u64::MAX
            },
            evals: Vec::new(),
            best_eval: None,
            train_seconds: 0.0,
            phase_seconds: PhaseSeconds::default(),
            finished: false,
        }
    }

    /// Mean of the recent-returns window, if any episode finished.
    pub fn recent_mean(&self) -> Option<f64> {
        let r = &self.recent_returns;
        (!r.is_empty()).then(|| r.iter().sum::<f64>() / r.len() as f64)
    }

    fn push_return(&mut self, ret: f64) {
        push_recent(&mut self.recent_returns, ret);
    }

    /// The mean of each logged info's recent window.
    pub fn recent_infos(&self) -> BTreeMap<String, f64> {
        self.recent_infos
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, v)| (name.clone(), v.iter().sum::<f64>() / v.len() as f64))
            .collect()
    }
}

/// Appends `value` to a window of the last [`RECENT_WINDOW`] values.
fn push_recent(window: &mut Vec<f64>, value: f64) {
    if window.len() == RECENT_WINDOW {
        window.remove(0);
    }
    window.push(value);
}

/// An info the loop logs: its index in the env's infos, its tag, and how it adds up.
struct LoggedInfo {
    index: usize,
    name: String,
    tag: String,
    reduce: InfoReduce,
}

/// The infos of `settings.info_keywords` in the env's infos (`vec.info_keys()`); an error names
/// one the env does not report.
fn logged_infos(vec: &VecEnv, settings: &LoopSettings) -> Result<Vec<LoggedInfo>, TrainError> {
    let keys = vec.info_keys();
    settings
        .info_keywords
        .iter()
        .map(|name| {
            let index = keys.iter().position(|k| k.name == *name).ok_or_else(|| {
                let reported: Vec<&str> = keys.iter().map(|k| k.name.as_ref()).collect();
                let env = vec.env(0).map_or_else(|| "the env".to_owned(), |e| e.id().to_owned());
                env_err(0)(EnvError::Other {
                    env,
                    message: format!(
                        "info_keywords names `{name}`, which the env does not report (it reports \
                         {reported:?})"
                    ),
                })
            })?;
            Ok(LoggedInfo {
                index,
                name: name.clone(),
                tag: format!("infos/{name}"),
                reduce: keys[index].reduce,
            })
        })
        .collect()
}

/// Where training time goes: seconds spent stepping the environments, choosing actions, and
/// in the agent's `observe` (storing the transition and, when its schedule says so, updating).
/// What is left of the training time is the loop's own work (logging, checkpoints). Acting
/// beside learning, the env and act phases run on their own thread while the agent learns:
/// `env` is then the time the loop waited for that thread (the stepping and acting its learning
/// did not hide), `act` the copying of the policy for the actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Stepping the environments (`VecEnv::step`, resets included).
    pub env: f64,
    /// The agent choosing actions (`Agent::act`) and their conversion for the envs.
    pub act: f64,
    /// The agent storing transitions and updating (`Agent::observe`).
    pub learn: f64,
}

/// Why the loop asks for a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveReason {
    /// Before the first step of a new run, so that even a run killed at once can be resumed.
    Start,
    /// Every `checkpoint_every` steps.
    Interval,
    /// An evaluation beat every earlier one.
    NewBest,
    /// Training ran to the end.
    Final,
    /// A stop was requested (Ctrl-C, SIGTERM).
    Interrupted,
    /// An environment failed; the envs' own states are not saved (they are mid-step), so a
    /// resume from this checkpoint resets them.
    EnvFault,
}

impl SaveReason {
    /// Lowercase name, as written in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            SaveReason::Start => "start",
            SaveReason::Interval => "interval",
            SaveReason::NewBest => "new_best",
            SaveReason::Final => "final",
            SaveReason::Interrupted => "interrupted",
            SaveReason::EnvFault => "env_fault",
        }
    }
}

/// One checkpoint's content, handed to a [`CheckpointSaver`]. The tensors are copies, already
/// checked to be finite.
pub struct SavePoint<'a> {
    /// Why it is written.
    pub reason: SaveReason,
    /// The loop's state after the last completed step.
    pub state: &'a LoopState,
    /// The agent's [`Agent::named_tensors`] (networks, optimizer state).
    pub agent_tensors: &'a [(String, Tensor)],
    /// The agent's [`Agent::training_state`] (buffers, counters).
    pub training_tensors: &'a [(String, Tensor)],
    /// The environments, observation statistics included.
    pub envs: &'a VecEnvSnapshot,
    /// The evaluation done at this very step, if one was (for [`SaveReason::NewBest`] and
    /// [`SaveReason::Final`]).
    pub eval_return: Option<f64>,
    /// The backend the agent runs on.
    pub backend: rlpg_agents::BackendKind,
}

/// Writes the checkpoints the loop asks for (the run directory's implementation is in
/// [`crate::run`]).
pub trait CheckpointSaver {
    /// Makes `point` durable. An error stops training.
    fn save(&mut self, point: &SavePoint<'_>) -> Result<(), String>;
}

/// Where a resumed run starts: what a checkpoint saved of the loop and the environments. The
/// agent is loaded by the caller before the loop starts.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// The loop's state at the checkpoint.
    pub state: LoopState,
    /// The environments at the checkpoint.
    pub envs: VecEnvSnapshot,
}

/// What the loop may be given beyond its settings: a checkpoint writer, a stop flag, a point to
/// resume from, and a place for warnings.
#[derive(Default)]
pub struct LoopControl<'a> {
    /// Receives checkpoints; without one, nothing is saved.
    pub saver: Option<&'a mut dyn CheckpointSaver>,
    /// Checked after every step: when set, the loop finishes the step (and any update in it),
    /// writes a checkpoint, flushes the sink and returns [`LoopOutcome::Stopped`].
    pub stop: Option<&'a AtomicBool>,
    /// Continue from this point instead of starting afresh.
    pub resume: Option<ResumePoint>,
    /// Receives one-line warnings (e.g. an env that resumes by resetting); dropped when `None`.
    pub warn: Option<&'a mut dyn FnMut(&str)>,
}

/// How a controlled run ended.
#[derive(Debug, Clone)]
// Made once per run: the size of the finished variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum LoopOutcome {
    /// Training ran to `total_timesteps` (or its target).
    Finished(TrainSummary),
    /// A stop was requested; a checkpoint at `step` was written (when a saver was given).
    Stopped {
        /// Global env step of the last completed step.
        step: u64,
    },
}

/// The seed libtorch's global generator gets at the start of the step that begins at
/// `global_step` of a run seeded with `seed`: SplitMix64 of both, so that neighbouring steps and
/// seeds get unrelated streams.
pub fn step_seed(seed: u64, global_step: u64) -> i64 {
    let mixed = splitmix64(seed ^ splitmix64(global_step ^ 0x5851_f42d_4c95_7f2d));
    // libtorch takes an i64; reinterpreting the bits keeps every value distinct.
    mixed as i64
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Trains `agent` on environments from `factory` and logs to `sink`, with no checkpoints, stop
/// flag or resume (see [`train_loop_with`] for those).
///
/// The agent must have been built after seeding libtorch (see [`crate::run::train`]'s
/// order); the loop itself re-seeds libtorch at every step (see the [module docs](self)).
pub fn train_loop(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    settings: &LoopSettings,
    sink: &mut dyn ScalarSink,
) -> Result<(TrainSummary, Option<RunningMeanStd>), TrainError> {
    let mut obs_rms = None;
    let outcome =
        train_loop_inner(agent, factory, settings, sink, LoopControl::default(), &mut obs_rms)?;
    match outcome {
        LoopOutcome::Finished(summary) => Ok((summary, obs_rms)),
        // Without a stop flag the loop cannot stop early.
        LoopOutcome::Stopped { step } => Err(TrainError::Resume {
            step,
            message: "internal error: stopped without a stop request".to_owned(),
        }),
    }
}

/// [`train_loop`] with checkpoints, a stop flag and resumption (see [`LoopControl`]).
pub fn train_loop_with(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    settings: &LoopSettings,
    sink: &mut dyn ScalarSink,
    control: LoopControl<'_>,
) -> Result<LoopOutcome, TrainError> {
    train_loop_inner(agent, factory, settings, sink, control, &mut None)
}

/// The loop's working parts besides its state.
struct Session<'c, 'a> {
    saver: Option<&'c mut dyn CheckpointSaver>,
    warn: Option<&'c mut dyn FnMut(&str)>,
    settings: &'a LoopSettings,
}

impl Session<'_, '_> {
    fn warn(&mut self, message: &str) {
        if let Some(warn) = &mut self.warn {
            warn(message);
        }
    }

    /// Flushes the sink, then hands a checkpoint of the current state to the saver (if any).
    /// The agent's tensors are checked first: a non-finite one is an error and nothing is
    /// written, so the last good checkpoint stays the newest.
    fn save(
        &mut self,
        reason: SaveReason,
        state: &LoopState,
        agent: &dyn Agent,
        envs: &VecEnvSnapshot,
        eval_return: Option<f64>,
        sink: &mut dyn ScalarSink,
    ) -> Result<(), TrainError> {
        sink.flush()
            .map_err(|source| TrainError::Io { context: "flushing metrics".to_owned(), source })?;
        let Some(saver) = self.saver.as_deref_mut() else { return Ok(()) };
        let step = state.global_step;
        let agent_tensors = agent.named_tensors();
        let training_tensors = agent
            .training_state(self.settings.checkpoint_replay_buffer)
            .map_err(|source| TrainError::Agent { step, source })?;
        for (name, t) in agent_tensors.iter().chain(&training_tensors) {
            if !all_finite(t)? {
                return Err(TrainError::NonFinite { step, quantity: format!("tensor '{name}'") });
            }
        }
        let point = SavePoint {
            reason,
            state,
            agent_tensors: &agent_tensors,
            training_tensors: &training_tensors,
            envs,
            eval_return,
            backend: agent.backend(),
        };
        saver.save(&point).map_err(|message| TrainError::Checkpoint { step, message })
    }
}

/// Whether every value of `t` is finite (integer and boolean tensors always are).
fn all_finite(t: &Tensor) -> Result<bool, TrainError> {
    let floating = matches!(
        t.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16 | Kind::ComplexFloat
    );
    if !floating || t.numel() == 0 {
        return Ok(true);
    }
    Ok(t.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0)
}

fn io_err(context: &str) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { context: context.to_owned(), source }
}

fn train_loop_inner(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    settings: &LoopSettings,
    sink: &mut dyn ScalarSink,
    control: LoopControl<'_>,
    final_rms: &mut Option<RunningMeanStd>,
) -> Result<LoopOutcome, TrainError> {
    let LoopControl { saver, stop, resume, warn } = control;
    let mut session = Session { saver, warn, settings };
    let n = settings.num_envs;
    let mut vec = if settings.act_beside_learning && settings.stepping.workers == 0 {
        // Made as `Send` envs: they will step on the actor thread.
        VecEnv::make_send(factory, n, settings.stepping.threads)
    } else {
        make_vec_env(factory, n, &settings.stepping)
    }
    .map_err(env_err(0))?;
    let async_batch = settings.async_batch;
    if settings.normalize_obs {
        vec.enable_obs_normalization(OBS_CLIP);
    }
    let logged = logged_infos(&vec, settings)?;
    let info_count = vec.info_keys().len();
    let mut adapter = ActionAdapter::new(vec.action_space());
    let fresh = resume.is_none();
    let mut state = match resume {
        None => {
            vec.reset(Some(settings.seed)).map_err(env_err(0))?;
            LoopState::start(settings)
        }
        Some(point) => {
            restore_envs(&mut vec, &point, settings, &mut session)?;
            point.state
        }
    };
    if settings.act_beside_learning && async_batch > 0 {
        return Err(TrainError::Agent {
            step: state.global_step,
            source: AgentError::Invalid(
                "act_beside_learning and async_batch both overlap stepping and learning: choose \
                 one"
                .to_owned(),
            ),
        });
    }
    let mut envs = if settings.act_beside_learning {
        let beside = Beside::new(vec, agent).map_err(|e| e.at(state.global_step))?;
        TrainEnvs::Beside(Box::new(beside))
    } else if async_batch > 0 {
        let threads = match settings.stepping.threads.resolve(n) {
            1 if settings.stepping.threads != EnvThreads::Count(1) => rlpg_envs::cores().min(n),
            threads => threads,
        };
        let step = state.global_step;
        let mut envs = AsyncVecEnv::new(vec, async_batch, threads).map_err(env_err(step))?;
        // The envs restart here: asynchronous runs keep no env states in checkpoints.
        let seed = if fresh { settings.seed } else { step_seed(settings.seed, step) as u64 };
        envs.reset(Some(seed)).map_err(env_err(step))?;
        TrainEnvs::Async { envs, actions: None }
    } else {
        let masks = vec.action_masks().map(<[bool]>::to_vec);
        TrainEnvs::Lockstep { obs: vec.obs().to_vec(), masks, vec }
    };
    if fresh {
        let snapshot = envs.snapshot();
        session.save(SaveReason::Start, &state, agent, &snapshot, None, sink)?;
    }

    let progress = progress_bar(settings, state.global_step);
    let mut window_start = (Instant::now(), state.global_step);
    let mut last_tick = Instant::now();
    let mut reached_target = None;
    // The latest periodic evaluation and its step: a run that stops at an eval target ends on
    // that very step, and its final evaluation is this one rather than a second, identical one.
    let mut last_eval: Option<(u64, EvalResult)> = None;
    // The step of the latest periodic video, for the same reason.
    let mut last_video = None;
    let target = settings.stop_at.or(settings.record_target);
    let stops = settings.stop_at.is_some();
    let mut actions = Actions::default();

    // Acting beside learning, a step may be in flight when a stop or a target is met: the loop
    // goes on until it has learned from that step too.
    while state.global_step < settings.total_timesteps
        && (!(stops && reached_target.is_some()) || envs.in_flight())
    {
        // See the module docs: every step draws from a generator seeded by (seed, step), which
        // is what makes a resumed run continue exactly.
        tch::manual_seed(step_seed(settings.seed, state.global_step));
        let phases = &mut state.phase_seconds;
        let stepped = match &mut envs {
            TrainEnvs::Lockstep { vec, obs, masks } => {
                let masks = masks.as_deref();
                lockstep_step(vec, obs, masks, agent, &mut adapter, phases, &mut actions)
            }
            TrainEnvs::Async { envs, actions: last } => {
                async_step(envs, last, agent, &mut adapter, phases, &mut actions)
            }
            TrainEnvs::Beside(beside) => {
                // The next step may start before this one is learned from unless the loop needs
                // the envs after this one (see beside.rs).
                let (now, next) = (state.global_step, state.global_step + n as u64);
                let every = settings.capture_video_every;
                let prefetch = next < settings.total_timesteps
                    && next < state.next_eval
                    && next < state.next_checkpoint
                    && !(every > 0 && next / every > now / every)
                    && !(stops && reached_target.is_some())
                    && !stop.is_some_and(|s| s.load(Ordering::SeqCst));
                beside_step(beside, agent, settings.seed, now, next, prefetch, phases)
            }
        };
        let learning = Instant::now();
        let step = match stepped {
            Ok(stepped) => stepped,
            Err(StepError::Agent(source)) => {
                return Err(TrainError::Agent { step: state.global_step, source });
            }
            Err(StepError::Env(source)) => {
                let error = TrainError::Env { step: state.global_step, source };
                // The envs are mid-step (some stepped, some not): keep everything else and let
                // a resume reset them. The normalisation statistics are still those of the last
                // completed step (they change only once every env has stepped).
                let snapshot = envs.snapshot().without_env_states();
                state.train_seconds += last_tick.elapsed().as_secs_f64();
                // The environment's error is what the user must see; a failed save is secondary
                // and reported through the warning channel.
                if let Err(e) =
                    session.save(SaveReason::EnvFault, &state, agent, &snapshot, None, sink)
                {
                    session.warn(&format!("could not save a checkpoint after the fault: {e}"));
                }
                return Err(error);
            }
        };
        let rows = step.rewards.len() as u64;
        let global_step = state.global_step + rows;

        let transition = Transition {
            obs: step.obs,
            actions: step.actions,
            rewards: step.rewards,
            terminated: step.terminated,
            truncated: step.truncated,
            next_obs: step.next_obs,
            masks: step.masks,
            next_masks: step.next_masks,
        };
        let metrics = agent
            .observe(&transition)
            .map_err(|source| TrainError::Agent { step: global_step, source })?;
        state.phase_seconds.learn += learning.elapsed().as_secs_f64();
        state.global_step = global_step;
        if let Some(metrics) = metrics {
            for (tag, value) in metrics {
                sink.scalar(tag, value, global_step).map_err(io_err("writing metrics"))?;
            }
        }
        for (e, ep) in step.episodes.iter().enumerate() {
            state.episodes += 1;
            sink.scalar("charts/episodic_return", ep.ret, global_step)
                .map_err(io_err("writing metrics"))?;
            sink.scalar("charts/episodic_length", ep.length as f64, global_step)
                .map_err(io_err("writing metrics"))?;
            state.push_return(ep.ret);
            for info in &logged {
                let totals = step.episode_infos.get(e * info_count + info.index);
                if let Some(value) = totals.and_then(|t| t.value(info.reduce)) {
                    sink.scalar(&info.tag, value, global_step)
                        .map_err(io_err("writing metrics"))?;
                    push_recent(state.recent_infos.entry(info.name.clone()).or_default(), value);
                }
            }
        }
        if let TrainEnvs::Lockstep { vec, obs, masks } = &mut envs {
            obs.copy_from_slice(vec.obs());
            if let (Some(masks), Some(next)) = (masks, vec.action_masks()) {
                masks.copy_from_slice(next);
            }
        }

        if global_step >= state.next_log {
            state.next_log = advance(state.next_log, settings.log_every.max(1), global_step);
            let (start, start_step) = window_start;
            let sps = (global_step - start_step) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            sink.scalar("charts/SPS", sps, global_step).map_err(io_err("writing metrics"))?;
            if let Some(mean) = state.recent_mean() {
                sink.scalar(RECENT_MEAN_TAG, mean, global_step)
                    .map_err(io_err("writing metrics"))?;
            }
            window_start = (Instant::now(), global_step);
        }
        state.train_seconds += last_tick.elapsed().as_secs_f64();
        if let (Some(Target::RecentMean(target)), Some(m), None) =
            (target, state.recent_mean(), reached_target)
        {
            if state.recent_returns.len() == RECENT_WINDOW && m >= target {
                reached_target = Some((global_step, state.train_seconds));
            }
        }
        if global_step >= state.next_eval && global_step < settings.total_timesteps {
            state.next_eval = advance(state.next_eval, settings.eval_every, global_step);
            let result = run_eval(agent, factory, settings, envs.obs_rms(), envs.eval_threads())?;
            sink.scalar(EVAL_MEAN_RETURN, result.mean_return, global_step)
                .map_err(io_err("writing metrics"))?;
            state.evals.push((global_step, result.mean_return));
            if reached_target.is_none()
                && matches!(target, Some(Target::Eval(t)) if result.mean_return >= t)
            {
                reached_target = Some((global_step, state.train_seconds));
            }
            if state.best_eval.is_none_or(|(_, best)| result.mean_return > best) {
                state.best_eval = Some((global_step, result.mean_return));
                let snapshot = envs.snapshot();
                let ret = Some(result.mean_return);
                session.save(SaveReason::NewBest, &state, agent, &snapshot, ret, sink)?;
            }
            last_eval = Some((global_step, result));
            window_start = (Instant::now(), global_step);
        }
        let every = settings.capture_video_every;
        if every > 0
            && global_step / every > (global_step - rows) / every
            && global_step < settings.total_timesteps
        {
            record_video(agent, factory, settings, envs.obs_rms(), global_step, sink)?;
            last_video = Some(global_step);
            window_start = (Instant::now(), global_step);
        }
        if global_step >= state.next_checkpoint && global_step < settings.total_timesteps {
            state.next_checkpoint =
                advance(state.next_checkpoint, settings.checkpoint_every, global_step);
            let snapshot = envs.snapshot();
            session.save(SaveReason::Interval, &state, agent, &snapshot, None, sink)?;
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) && !envs.in_flight() {
            let snapshot = envs.snapshot();
            session.save(SaveReason::Interrupted, &state, agent, &snapshot, None, sink)?;
            if let Some(bar) = progress {
                bar.abandon();
            }
            return Ok(LoopOutcome::Stopped { step: global_step });
        }
        last_tick = Instant::now();
        if let Some(bar) = &progress {
            bar.set_position(global_step);
            if let Some(mean) = state.recent_mean() {
                bar.set_message(format!("return(100) {mean:.1}"));
            }
        }
    }
    let global_step = state.global_step;
    let final_eval = match last_eval {
        Some((step, result)) if step == global_step => result,
        _ => {
            let result = run_eval(agent, factory, settings, envs.obs_rms(), envs.eval_threads())?;
            sink.scalar(EVAL_MEAN_RETURN, result.mean_return, global_step)
                .map_err(io_err("writing metrics"))?;
            state.evals.push((global_step, result.mean_return));
            result
        }
    };
    if settings.capture_video_every > 0 && last_video != Some(global_step) {
        record_video(agent, factory, settings, envs.obs_rms(), global_step, sink)?;
    }
    if reached_target.is_none()
        && matches!(target, Some(Target::Eval(t)) if final_eval.mean_return >= t)
    {
        reached_target = Some((global_step, state.train_seconds));
    }
    let snapshot = envs.snapshot();
    let ret = Some(final_eval.mean_return);
    if state.best_eval.is_none_or(|(_, best)| final_eval.mean_return > best) {
        state.best_eval = Some((global_step, final_eval.mean_return));
        session.save(SaveReason::NewBest, &state, agent, &snapshot, ret, sink)?;
    }
    state.finished = true;
    session.save(SaveReason::Final, &state, agent, &snapshot, ret, sink)?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    *final_rms = envs.obs_rms().cloned();
    Ok(LoopOutcome::Finished(TrainSummary {
        steps: global_step,
        episodes: state.episodes,
        recent_mean_return: state.recent_mean(),
        recent_infos: state.recent_infos(),
        final_eval,
        steps_per_second: global_step as f64 / state.train_seconds.max(1e-9),
        backend: agent.backend(),
        evals: state.evals,
        reached_target,
        env_threads: envs.threads(),
        env_workers: envs.workers(),
        async_batch: settings.async_batch,
        act_beside_learning: settings.act_beside_learning,
        phase_seconds: state.phase_seconds,
    }))
}

/// The training envs: stepped in lockstep, or in asynchronous batches.
// One per run: the size difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum TrainEnvs {
    /// A [`VecEnv`], and the observations the agent acts on next with their action masks (when
    /// the envs declare masks).
    Lockstep { vec: VecEnv, obs: Vec<f32>, masks: Option<Vec<bool>> },
    /// An [`AsyncVecEnv`], and each env's last action (rows by env index), from which a batch's
    /// transitions take their actions.
    Async { envs: AsyncVecEnv, actions: Option<Actions> },
    /// A [`VecEnv`] stepped, and acted on, beside the agent's learning (boxed: it holds two
    /// steps' rows).
    Beside(Box<Beside>),
}

impl TrainEnvs {
    /// The vector env stepped in lockstep (the envs of an asynchronous one are its own).
    fn lockstep_vec(&self) -> Option<&VecEnv> {
        match self {
            TrainEnvs::Lockstep { vec, .. } => Some(vec),
            TrainEnvs::Beside(beside) => Some(beside.vec()),
            TrainEnvs::Async { .. } => None,
        }
    }

    /// What a checkpoint holds of the envs (asynchronous ones: no env states).
    fn snapshot(&self) -> VecEnvSnapshot {
        match self {
            TrainEnvs::Lockstep { vec, .. } => vec.snapshot(),
            TrainEnvs::Beside(beside) => beside.vec().snapshot(),
            TrainEnvs::Async { envs, .. } => envs.snapshot(),
        }
    }

    fn obs_rms(&self) -> Option<&RunningMeanStd> {
        match (self, self.lockstep_vec()) {
            (TrainEnvs::Async { envs, .. }, _) => envs.obs_rms(),
            (_, vec) => vec.and_then(VecEnv::obs_rms),
        }
    }

    fn threads(&self) -> usize {
        match (self, self.lockstep_vec()) {
            (TrainEnvs::Async { envs, .. }, _) => envs.threads(),
            (_, vec) => vec.map_or(1, VecEnv::threads),
        }
    }

    fn workers(&self) -> usize {
        self.lockstep_vec().map_or(0, VecEnv::workers)
    }

    /// Whether a step is in flight (acting beside learning).
    fn in_flight(&self) -> bool {
        matches!(self, TrainEnvs::Beside(beside) if beside.in_flight())
    }

    /// The threads evaluation envs step on: as many as the training envs use in this process
    /// (`auto` has decided by now, or soon will; evaluation steps the same envs).
    fn eval_threads(&self) -> EnvThreads {
        match self.lockstep_vec() {
            Some(vec) if vec.is_remote() => EnvThreads::default(),
            Some(vec) if vec.threads() == 1 => vec.threads_setting(),
            _ => EnvThreads::Count(self.threads()),
        }
    }
}

/// What one step gave the agent to learn from: its transition's rows (all envs in lockstep, a
/// batch asynchronously) and the episodes it ended.
struct StepRows<'a> {
    obs: &'a [f32],
    actions: &'a Actions,
    rewards: &'a [f64],
    terminated: &'a [bool],
    truncated: &'a [bool],
    next_obs: &'a [f32],
    episodes: &'a [EpisodeRecord],
    /// Each finished episode's info totals, `info_keys().len()` per episode.
    episode_infos: &'a [InfoTotals],
    /// The action masks the actions were chosen under, when the envs declare masks.
    masks: Option<&'a [bool]>,
    /// The masks the envs reported after the step (see [`Transition::next_masks`]).
    next_masks: Option<&'a [bool]>,
}

/// Why a step failed: an environment (the loop checkpoints before reporting it) or the agent
/// acting.
enum StepError {
    Env(EnvError),
    Agent(AgentError),
}

impl StepError {
    /// The training error of this failure at global env step `step`.
    fn at(self, step: u64) -> TrainError {
        match self {
            StepError::Env(source) => TrainError::Env { step, source },
            StepError::Agent(source) => TrainError::Agent { step, source },
        }
    }
}

/// One lockstep step: the agent acts on `obs`, every env steps. Returns the actions.
fn lockstep_step<'e>(
    vec: &'e mut VecEnv,
    obs: &'e [f32],
    masks: Option<&'e [bool]>,
    agent: &mut dyn Agent,
    adapter: &mut ActionAdapter,
    phases: &mut PhaseSeconds,
    actions: &'e mut Actions,
) -> Result<StepRows<'e>, StepError> {
    let acting = Instant::now();
    agent.act_masked(obs, masks, ActMode::Explore, actions).map_err(StepError::Agent)?;
    let env_actions = adapter.convert(actions).map_err(StepError::Agent)?;
    let stepping = Instant::now();
    phases.act += (stepping - acting).as_secs_f64();
    let stepped = vec.step(env_actions);
    phases.env += stepping.elapsed().as_secs_f64();
    let step = stepped.map_err(StepError::Env)?;
    let rows = StepRows {
        obs,
        actions,
        rewards: &step.rewards,
        terminated: &step.terminated,
        truncated: &step.truncated,
        next_obs: &step.next_obs,
        episodes: &step.episodes,
        episode_infos: &step.episode_infos,
        masks,
        next_masks: masks.map(|_| &step.action_masks[..]),
    };
    Ok(rows)
}

/// The next asynchronous batch that stepped. The agent acts on every batch as it arrives (the
/// batches of reset envs too) and the actions are sent before this returns, so that the envs
/// step while the agent learns from the batch. Returns the actions the batch's envs stepped
/// with (taken from `last`, each env's last action).
fn async_step<'e>(
    envs: &'e mut AsyncVecEnv,
    last: &mut Option<Actions>,
    agent: &mut dyn Agent,
    adapter: &mut ActionAdapter,
    phases: &mut PhaseSeconds,
    taken: &'e mut Actions,
) -> Result<StepRows<'e>, StepError> {
    let n = envs.num_envs();
    let mut actions = Actions::default();
    loop {
        let waiting = Instant::now();
        let batch = envs.recv().map_err(StepError::Env)?;
        let acting = Instant::now();
        phases.env += (acting - waiting).as_secs_f64();
        agent.act(&batch.step.obs, ActMode::Explore, &mut actions).map_err(StepError::Agent)?;
        let ids = batch.envs.clone();
        let stepped = batch.stepped;
        let learn = match last {
            Some(last) if stepped => {
                last.select_rows(&ids, taken);
                true
            }
            _ => false,
        };
        last.get_or_insert_with(Actions::default).set_rows(&ids, &actions, n);
        let env_actions = adapter.convert(&actions).map_err(StepError::Agent)?;
        envs.send(env_actions).map_err(StepError::Env)?;
        phases.act += acting.elapsed().as_secs_f64();
        if learn {
            let batch = envs.last_batch();
            let step = &batch.step;
            let rows = StepRows {
                obs: &batch.prev_obs,
                actions: taken,
                rewards: &step.rewards,
                terminated: &step.terminated,
                truncated: &step.truncated,
                next_obs: &step.next_obs,
                episodes: &step.episodes,
                episode_infos: &step.episode_infos,
                // Asynchronous batches take no masked envs (the settings refuse them).
                masks: None,
                next_masks: None,
            };
            return Ok(rows);
        }
    }
}

/// One step acting beside learning: sends the step that starts at env step `now` if none is in
/// flight (the loop needed the envs after the last one), waits for it, then, if `prefetch`, sends
/// the step that starts at `next` with the policy as it is now, before the agent learns from this
/// one. The actor's draws are seeded from `(seed, step)` ([`actor_seed`]).
fn beside_step<'e>(
    beside: &'e mut Beside,
    agent: &dyn Agent,
    seed: u64,
    now: u64,
    next: u64,
    prefetch: bool,
    phases: &mut PhaseSeconds,
) -> Result<StepRows<'e>, StepError> {
    let start = Instant::now();
    if !beside.in_flight() {
        beside.send(agent, actor_seed(seed, now))?;
    }
    let sent = Instant::now();
    let received = beside.recv();
    let waited = Instant::now();
    phases.act += (sent - start).as_secs_f64();
    phases.env += (waited - sent).as_secs_f64();
    received?;
    if prefetch {
        beside.send(agent, actor_seed(seed, next))?;
        phases.act += waited.elapsed().as_secs_f64();
    }
    Ok(beside.rows())
}

/// The seed of the actor's draws for the step that begins at `global_step` (acting beside
/// learning): from the same mix as [`step_seed`], salted so that it is not libtorch's seed.
fn actor_seed(seed: u64, global_step: u64) -> u64 {
    step_seed(seed ^ 0xac70_b351_de1e_a4b1, global_step) as u64
}

/// The next multiple-of-`every` point after `now`, from the point `due` that was just reached.
/// Skips points that a large step (many envs) jumped over, so that one step never triggers two.
fn advance(due: u64, every: u64, now: u64) -> u64 {
    if every == 0 {
        return u64::MAX;
    }
    let mut next = due.saturating_add(every);
    if next <= now {
        next = (now / every + 1).saturating_mul(every);
    }
    next
}

/// Puts the freshly built `vec` in the state `point` saved. Envs that cannot be restored (no
/// snapshot saved, or an env without snapshot support) are all reset with a seed derived from
/// `(seed, step)`, after a warning.
fn restore_envs(
    vec: &mut VecEnv,
    point: &ResumePoint,
    settings: &LoopSettings,
    session: &mut Session<'_, '_>,
) -> Result<(), TrainError> {
    let step = point.state.global_step;
    let resume_err = |message: String| TrainError::Resume { step, message };
    if point.envs.num_envs() != vec.num_envs() {
        return Err(resume_err(format!(
            "the checkpoint has {} environments, this run has {}",
            point.envs.num_envs(),
            vec.num_envs()
        )));
    }
    match vec.restore(&point.envs) {
        Ok(()) => Ok(()),
        Err(e) if point.envs.has_env_states() && !is_unsupported(&e) => {
            Err(resume_err(format!("cannot restore the environments: {e}")))
        }
        Err(e) => {
            let why = if point.envs.has_env_states() {
                format!("{e}")
            } else if vec.env(0).is_some_and(|env| env.runs_python()) {
                "checkpoints do not save the internal state of Python (Gymnasium) environments, \
                 so training continues with fresh episodes"
                    .to_owned()
            } else {
                "the checkpoint holds no environment states: its environments cannot save their \
                 state, it was written after an env fault, or during asynchronous batches \
                 (async_batch)"
                    .to_owned()
            };
            session.warn(&format!(
                "resuming at step {step} by resetting the environments ({why}); the run continues \
                 but does not replay the uninterrupted run exactly"
            ));
            if let Some(rms) = point.envs.obs_rms() {
                vec.set_obs_rms(rms.clone())
                    .map_err(|e| resume_err(format!("observation statistics: {e}")))?;
            }
            let seed = step_seed(settings.seed, step) as u64;
            vec.reset(Some(seed)).map_err(env_err(step))?;
            Ok(())
        }
    }
}

/// Whether `e` (maybe inside a vector env's tag) says an env cannot snapshot or restore itself.
fn is_unsupported(e: &EnvError) -> bool {
    match e {
        EnvError::SnapshotUnsupported { .. } => true,
        EnvError::InVecEnv { source, .. } => is_unsupported(source),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_to_the_next_multiple_and_skips_points_jumped_over() {
        assert_eq!(advance(1000, 1000, 1000), 2000);
        assert_eq!(advance(1000, 1000, 1004), 2000);
        // One step of many envs crossed two points: the next one is after `now`.
        assert_eq!(advance(1000, 1000, 2500), 3000);
        assert_eq!(advance(1000, 0, 1000), u64::MAX);
    }

    #[test]
    fn step_seeds_differ_between_steps_and_seeds_and_repeat_exactly() {
        assert_eq!(step_seed(1, 8), step_seed(1, 8));
        assert_ne!(step_seed(1, 8), step_seed(1, 16));
        assert_ne!(step_seed(1, 8), step_seed(2, 8));
        assert_ne!(step_seed(0, 0), 0, "seed 0 at step 0 must still be mixed");
    }

    #[test]
    fn the_recent_window_keeps_the_last_hundred_returns() {
        let settings = LoopSettings {
            seed: 0,
            total_timesteps: 1,
            num_envs: 1,
            stepping: Stepping::default(),
            async_batch: 0,
            act_beside_learning: false,
            normalize_obs: false,
            eval_every: 0,
            eval_episodes: 1,
            log_every: 1,
            checkpoint_every: 0,
            checkpoint_replay_buffer: false,
            capture_video_every: 0,
            progress: false,
            stop_at: None,
            record_target: None,
            info_keywords: Vec::new(),
        };
        let mut state = LoopState::start(&settings);
        assert_eq!((state.next_eval, state.next_checkpoint), (u64::MAX, u64::MAX));
        for r in 0..150 {
            state.push_return(f64::from(r));
        }
        assert_eq!(state.recent_returns.len(), 100);
        assert_eq!(state.recent_returns[0], 50.0, "the oldest kept return must be the 51st");
        assert_eq!(state.recent_mean(), Some(99.5));
    }
}
