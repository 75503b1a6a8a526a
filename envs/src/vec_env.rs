//! [`VecEnv`]: several environments stepped in lockstep, with automatic reset.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::core::{Action, Env, EnvError, EnvSnapshot, InfoKey, InfoTotals, Space, StepInfo};
use crate::registry::MakeEnv;
use crate::running_mean_std::RunningMeanStd;
use crate::step_pool::{MAX_TASKS, StepPool};
use crate::validate::{Origin, check_observation, check_reward};
use crate::vec_extras::{
    Extras, add_infos, check_actions_allowed, check_masks, gather_after_reset, gather_after_step,
};
use crate::wrappers::episode_statistics::EpisodeRecord;
use crate::wrappers::normalize::DEFAULT_NORM_EPSILON;

/// One action per environment, for [`VecEnv::step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VecActions<'a> {
    /// `[n]` actions of a [`Space::Discrete`] action space.
    Discrete(&'a [usize]),
    /// `[n * act_dim]` actions of a [`Space::Box`] action space, row-major (one row per env).
    Continuous(&'a [f32]),
    /// `[n * components]` actions of a [`Space::MultiDiscrete`] action space, row-major.
    MultiDiscrete(&'a [usize]),
    /// `[n * values]` actions of a [`Space::MultiBinary`] action space, row-major.
    MultiBinary(&'a [bool]),
}

impl<'a> VecActions<'a> {
    /// The action of env `i`, actions being `width` values each (1 for `Discrete`), or `None`
    /// past the end.
    pub fn get(&self, i: usize, width: usize) -> Option<Action<'a>> {
        let row =
            |len: usize| (width > 0 && (i + 1) * width <= len).then(|| i * width..(i + 1) * width);
        match *self {
            VecActions::Discrete(a) => a.get(i).map(|&a| Action::Discrete(a)),
            VecActions::Continuous(a) => row(a.len()).map(|r| Action::Continuous(&a[r])),
            VecActions::MultiDiscrete(a) => row(a.len()).map(|r| Action::MultiDiscrete(&a[r])),
            VecActions::MultiBinary(a) => row(a.len()).map(|r| Action::MultiBinary(&a[r])),
        }
    }
}

/// The result of one [`VecEnv::step`]: one row per environment.
///
/// **Autoreset convention ("same-step", as Stable-Baselines3's `VecEnv` and Gymnasium's
/// `AutoresetMode.SAME_STEP`):** when env `i`'s episode ends on this step, it is reset within
/// the same call. `obs` row `i` is then the first observation of the new episode (what the agent
/// acts on next), while `next_obs` row `i` is the final observation of the finished episode
/// (what a learner bootstraps from on truncation). For every other env the two rows are equal.
/// `rewards`, `terminated` and `truncated` always describe the step just taken, never the reset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VecStep {
    /// `[n * obs_dim]` the observation to act on next: for an env whose episode ended this step,
    /// the FIRST observation of its new episode.
    pub obs: Vec<f32>,
    /// `[n * obs_dim]` the observation each action led to: for an env whose episode ended, its
    /// FINAL observation (used to bootstrap on truncation); otherwise equal to the `obs` row.
    pub next_obs: Vec<f32>,
    /// `[n]` rewards of the step.
    pub rewards: Vec<f64>,
    /// `[n]` true ends of the task (no bootstrapping past these).
    pub terminated: Vec<bool>,
    /// `[n]` time-limit ends (bootstrap from `next_obs`).
    pub truncated: Vec<bool>,
    /// Episodes that finished on this step, in env order.
    pub episodes: Vec<EpisodeRecord>,
    /// `[n * mask_len]` which actions the state of each `obs` row allows (after an autoreset,
    /// the new episode's first state), in the layout of [`Space::mask_len`]; empty when the
    /// envs declare no masks ([`Env::masks_actions`]). [`VecEnv::step`] refuses an action
    /// outside its env's mask before stepping anything.
    pub action_masks: Vec<bool>,
    /// `[n * k]` the infos of the step just taken, `k` = [`VecEnv::info_keys`]`.len()` per env
    /// in that order (NaN: not reported by the step).
    pub infos: Vec<f64>,
    /// `[episodes.len() * k]` how each info added up over each episode of `episodes`, in the
    /// same order.
    pub episode_infos: Vec<InfoTotals>,
}

/// The error for an observation of `env` that failed the fast checks (length, finiteness).
#[cold]
#[inline(never)]
fn invalid_observation(env: &dyn Env, space: &Space, obs: &[f32], origin: Origin) -> EnvError {
    check_observation(env.id(), space, obs, origin)
        .err()
        .unwrap_or_else(|| internal_error(env.id()))
}

/// `error`, returned by a sub-env's step number `t` of the episode, with that number added to
/// its message if it is about the env's output (such as an observation of the wrong length).
#[cold]
#[inline(never)]
fn with_step_number(error: EnvError, t: usize) -> EnvError {
    match error {
        EnvError::InvalidOutput { env, message } => {
            EnvError::InvalidOutput { env, message: format!("{message} ({})", Origin::Step(t)) }
        }
        other => other,
    }
}

/// The error of the step of env `envs.len()` that failed with `e`, tagged with its index and
/// step number; or, if one of the envs before it (`envs`, which stepped) returned an invalid
/// observation or reward, that env's error: the lowest index is named.
#[cold]
#[inline(never)]
fn step_failure(
    envs: &[Box<dyn Env>],
    space: &Space,
    out: &VecStep,
    episode_lengths: &[usize],
    e: EnvError,
) -> EnvError {
    let i = envs.len();
    let err = with_step_number(e, episode_lengths[i] + 1).in_vec_env(i);
    first_error(envs, space, &out.next_obs, &out.rewards, episode_lengths, err)
}

/// The fast checks and the detailed ones disagree: a bug in this module, reported rather than
/// panicking.
#[cold]
fn internal_error(env: &str) -> EnvError {
    EnvError::Other {
        env: env.to_owned(),
        message: "internal error: output rejected by VecEnv's fast check but not by the detailed \
                  one"
        .to_owned(),
    }
}

/// Whether every value is finite. `v * 0.0` is `±0` for a finite `v` and NaN for an infinite or
/// NaN one; the branch-free fold vectorises to a few instructions per four values (fewer than
/// with `is_finite`).
#[inline]
fn all_finite(values: &[f32]) -> bool {
    values.iter().fold(true, |ok, &v| ok & (v * 0.0 == 0.0))
}

/// Whether every value is finite (as [`all_finite`]).
#[inline]
fn all_finite_f64(values: &[f64]) -> bool {
    values.iter().fold(true, |ok, &v| ok & (v * 0.0 == 0.0))
}

/// The error of the first of `envs` (those that stepped, in order) whose observation row in
/// `next_obs` or reward is invalid, or else `otherwise`: when several envs fail in one step,
/// the one with the lowest index is named.
#[cold]
#[inline(never)]
fn first_error(
    envs: &[Box<dyn Env>],
    space: &Space,
    next_obs: &[f32],
    rewards: &[f64],
    episode_lengths: &[usize],
    otherwise: EnvError,
) -> EnvError {
    let obs_dim = space.flat_dim();
    for (i, env) in envs.iter().enumerate() {
        // The running lengths already count the step being checked.
        let origin = Origin::Step(episode_lengths[i]);
        let row = &next_obs[i * obs_dim..(i + 1) * obs_dim];
        let checked = check_observation(env.id(), space, row, origin)
            .and_then(|()| check_reward(env.id(), rewards[i], origin));
        if let Err(e) = checked {
            return e.in_vec_env(i);
        }
    }
    otherwise
}

/// Runs `f` attached to the Python interpreter when `python` is true (and the `gymnasium`
/// feature is on), so that the Python envs of a batch take the GIL once between them: their own
/// attach inside `f` is then a thread-local counter, not a lock.
#[inline(always)]
fn with_interpreter<R>(python: bool, f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "gymnasium")]
    if python {
        return crate::gymnasium::attached(f);
    }
    let _ = python;
    f()
}

/// Running observation normalisation shared by all envs of a [`VecEnv`].
#[derive(Clone, Debug)]
struct ObsNormalization {
    rms: RunningMeanStd,
    clip: f32,
    training: bool,
    /// Unnormalised copies of `VecStep::obs` and `VecStep::next_obs`.
    raw_obs: Vec<f32>,
    raw_next_obs: Vec<f32>,
}

/// `n` environments with identical spaces, stepped in lockstep with automatic reset.
///
/// * Seeding: `reset(Some(seed))` resets env `i` with `seed + i`; `reset(None)` and automatic
///   resets continue each env's own random stream, so a seeded run is reproducible.
/// * Autoreset: see [`VecStep`] ("same-step" convention: `obs` holds the new episode's first
///   observation, `next_obs` the finished episode's final one).
/// * Untrusted environments: every observation must have length `obs_dim` and finite values,
///   and every reward must be finite; otherwise `step`/`reset` return an
///   [`EnvError::InvalidOutput`] naming the env id, its index, the step and the value. Every
///   error of a sub-env is returned as [`EnvError::InVecEnv`] with the env's index. `step`
///   checks the values of the whole batch at once after stepping every env; when several envs
///   fail on one step, the error of the lowest index among those that stepped is returned, and
///   errors of automatic resets come after those of the step itself.
/// * After an error the envs are out of lockstep, so `step` refuses to run until `reset`.
/// * Actions: `step` checks only their shape (one action per env, of the action space's kind
///   and dimension). Their values are each env's business: an env refuses an action outside its
///   space with [`EnvError::InvalidAction`], except that an env whose [`Env::clips_actions`] is
///   true (Pendulum-v1, MountainCarContinuous-v0, as in Gymnasium) clips a finite out-of-bounds
///   action into its box and steps. The agents clip or rescale their actions into the space
///   before they get here.
/// * Action masks: when the envs declare them ([`Env::masks_actions`]), the mask of every
///   state to act on is gathered after each reset and step ([`VecStep::action_masks`],
///   [`VecEnv::action_masks`]) and checked (every part of an action keeps a choice); `step`
///   refuses a batch in which an action lies outside its env's mask before any env steps, naming
///   the env, its step, the action and the mask.
/// * Step infos ([`Env::info_keys`]): each step's values ([`VecStep::infos`]) and, for each
///   finished episode, how they added up ([`VecStep::episode_infos`]); an infinite value is an
///   error naming the env, its step and the info. The totals of episodes in progress are part of
///   the snapshot.
/// * Optional observation normalisation ([`VecEnv::enable_obs_normalization`]) with one
///   [`RunningMeanStd`] for all envs, as Stable-Baselines3's `VecNormalize`.
/// * All buffers are allocated up front: a step allocates nothing (unless an error is returned).
pub struct VecEnv {
    envs: Vec<Box<dyn Env>>,
    id: String,
    observation_space: Space,
    action_space: Space,
    obs_dim: usize,
    act_dim: usize,
    out: VecStep,
    episode_returns: Vec<f64>,
    episode_lengths: Vec<usize>,
    /// Whether the envs are reset and in lockstep, so that `step` may run.
    ready: bool,
    normalization: Option<ObsNormalization>,
    /// Some env runs Python code ([`Env::runs_python`]): a step or reset attaches to the
    /// interpreter once for all envs.
    python: bool,
    /// Every env came in as a `Box<dyn Env + Send>` ([`VecEnv::new_send`]). Only then may
    /// `pool` exist: its threads step the envs, so this flag is what makes that sound.
    send: bool,
    /// The threads that step the envs besides the caller's (`None`: the caller's alone).
    pool: Option<StepPool>,
    /// What [`VecEnv::set_threads`] was last asked for.
    threads_setting: EnvThreads,
    /// While [`EnvThreads::Auto`] is measuring.
    auto_probe: Option<AutoProbe>,
    /// What it measured (see [`VecEnv::auto_measurement`]).
    auto_measured: Option<(Duration, Option<(usize, Duration)>)>,
    /// Scratch for threaded and remote steps: each env's result, written by the task of its
    /// index (or by the remote envs).
    infos: Vec<StepInfo>,
    errors: Vec<Option<EnvError>>,
    /// Envs stepped elsewhere as one batch (the Gymnasium bridge's worker processes); `envs`
    /// then holds stand-ins that name them and describe their spaces.
    remote: Option<Remote>,
    /// The envs' action masks and infos (what `out.action_masks` and `out.infos` hold).
    extras: Extras,
    /// `[n * k]` the infos of each env's episode in progress, added up.
    info_totals: Vec<InfoTotals>,
}

/// The state of [`RemoteEnvs`] kept by the vector env.
struct Remote {
    envs: Box<dyn RemoteEnvs>,
    /// `[n * obs_dim]` the first observations of the automatic resets of the last step.
    reset_obs: Vec<f32>,
    /// The errors of those resets, by env.
    reset_errors: Vec<Option<EnvError>>,
}

/// Envs that step as one batch outside the vector env (the Gymnasium bridge's worker
/// processes): each step or reset of all envs is one exchange, and an env whose episode ends
/// is reset there in the same exchange. The vector env keeps its own checks and bookkeeping, so
/// its results are those of the same envs stepped in this process.
pub(crate) trait RemoteEnvs: Send {
    /// The processes stepping the envs.
    fn workers(&self) -> usize;

    /// Resets every env (env `i` with `seed + i`), writing their first observations into the
    /// rows of `obs`. An env's own failure goes into `errors[i]`; `Err` is a failure of the
    /// batch itself (a worker that died or hung).
    fn reset(
        &mut self,
        seed: Option<u64>,
        obs: &mut [f32],
        masks: &mut [bool],
        errors: &mut [Option<EnvError>],
    ) -> Result<(), EnvError>;

    /// Steps every env with its action: the observation into its `next_obs` row and the rest
    /// into `infos`; an env whose episode ended is reset (continuing its random stream) into its
    /// `reset_obs` row. With masks, each env's mask of the state it acts on next (after the
    /// reset, for one that ended) goes into its row of `masks`, and with step infos their values
    /// into `env_infos` (both empty otherwise); `reset` writes the masks of the first states. An env's own failures go into `step_errors[i]` and `reset_errors[i]`;
    /// `Err` is a failure of the batch itself. `lengths` are the envs' episode lengths before
    /// the step, for messages.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        actions: VecActions<'_>,
        lengths: &[usize],
        next_obs: &mut [f32],
        reset_obs: &mut [f32],
        infos: &mut [StepInfo],
        masks_and_infos: (&mut [bool], &mut [f64]),
        step_errors: &mut [Option<EnvError>],
        reset_errors: &mut [Option<EnvError>],
    ) -> Result<(), EnvError>;
}

/// [`EnvThreads::Auto`]'s measurement in progress: of one thread, then maybe of several.
#[derive(Clone, Copy, Debug, Default)]
struct AutoProbe {
    /// The mean step time on one thread, once measured (the threads are being timed then).
    one_thread: Option<Duration>,
    steps: u32,
    total: Duration,
}

impl AutoProbe {
    /// Counts a step that took `elapsed`: the mean of the measured steps once there are
    /// [`EnvThreads::AUTO_PROBE_STEPS`] of them after as many warm-up steps.
    fn time(&mut self, elapsed: Duration) -> Option<Duration> {
        self.steps += 1;
        if self.steps <= EnvThreads::AUTO_PROBE_STEPS {
            return None;
        }
        self.total += elapsed;
        (self.steps == 2 * EnvThreads::AUTO_PROBE_STEPS)
            .then(|| self.total / EnvThreads::AUTO_PROBE_STEPS)
    }
}

/// How many threads step the environments of a [`VecEnv`] (the `env_threads` setting): written
/// in configs as an integer (`0`: one per core) or `"auto"`.
///
/// Whatever the choice, a vector env's results are the same bit for bit: each env keeps its own
/// random generator and writes its own rows, which are read in env order. Threads pay off when a
/// step of all envs costs tens of microseconds or more (`rlpg bench --env-steps` measures it);
/// below that the hand-over between threads costs more than it saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvThreads {
    /// This many threads, the caller's included (`0`: one per core). At most one per env is
    /// used. More than one needs `Send` envs ([`VecEnv::new_send`]).
    Count(usize),
    /// Measure, then choose: after [`EnvThreads::AUTO_PROBE_STEPS`] warm-up steps on one
    /// thread, time as many; if a step of all envs took at least [`EnvThreads::AUTO_MIN_STEP`],
    /// time as many on one thread per core (at most one per env) and keep whichever was faster
    /// ([`EnvThreads::auto_choice`]): on a machine whose other cores are busy, threads can be
    /// slower than one. Envs that are not `Send`, or that run Python code, stay on one thread.
    Auto,
}

impl Default for EnvThreads {
    fn default() -> Self {
        EnvThreads::Count(1)
    }
}

impl EnvThreads {
    /// Steps [`EnvThreads::Auto`] times before it decides (after as many unmeasured ones, which
    /// warm caches and lazy initialisation up).
    pub const AUTO_PROBE_STEPS: u32 = 32;

    /// The mean time of a step of all envs from which [`EnvThreads::Auto`] tries threads.
    pub const AUTO_MIN_STEP: Duration = Duration::from_micros(40);

    /// What [`EnvThreads::Auto`] decides from the mean time of a step of all envs on one thread
    /// and, if it tried them, on `threads` threads: the thread count to keep.
    pub fn auto_choice(one: Duration, tried: Option<(usize, Duration)>) -> usize {
        match tried {
            Some((threads, time)) if one >= Self::AUTO_MIN_STEP && time < one => threads,
            _ => 1,
        }
    }

    /// The threads this setting asks for on this machine, given `num_envs` envs: a count (`0`
    /// resolved to the number of cores), at most one per env; `Auto` counts as one until it
    /// decides.
    pub fn resolve(self, num_envs: usize) -> usize {
        match self {
            EnvThreads::Count(0) => cores().min(num_envs).max(1),
            EnvThreads::Count(n) => n.min(num_envs).max(1),
            EnvThreads::Auto => 1,
        }
    }
}

/// How a vector env steps its envs: the `env_threads`, `env_workers` and `env_worker_timeout`
/// settings. The results are the same bit for bit whatever they are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stepping {
    /// Threads stepping envs of this process ([`EnvThreads`]).
    pub threads: EnvThreads,
    /// Worker processes stepping Gymnasium envs (`0`: the envs run in this process). Only the
    /// Gymnasium bridge has them ([`crate::EnvEntry::with_workers`]).
    pub workers: usize,
    /// How long a worker process may take to answer a step or reset before it is stopped and
    /// the step is an error.
    pub worker_timeout: Duration,
}

impl Stepping {
    /// The default time a worker may take to answer.
    pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(60);
}

impl Default for Stepping {
    fn default() -> Self {
        Self {
            threads: EnvThreads::default(),
            workers: 0,
            worker_timeout: Self::DEFAULT_WORKER_TIMEOUT,
        }
    }
}

/// The number of cores this process may use (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl std::fmt::Display for EnvThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvThreads::Count(n) => write!(f, "{n}"),
            EnvThreads::Auto => f.write_str("\"auto\""),
        }
    }
}

impl Serialize for EnvThreads {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EnvThreads::Count(n) => s.serialize_u64(*n as u64),
            EnvThreads::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for EnvThreads {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EnvThreads;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of threads (0: one per core) or \"auto\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EnvThreads, E> {
                usize::try_from(v).map(EnvThreads::Count).map_err(|_| E::custom("too many threads"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EnvThreads, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EnvThreads, E> {
                match v {
                    "auto" => Ok(EnvThreads::Auto),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The envs of a [`VecEnv`] shared with the tasks of one threaded step, each task using only
/// the env of its own index.
struct SharedEnvs<'a> {
    envs: *mut Box<dyn Env>,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [Box<dyn Env>]>,
}

// SAFETY: built only from a vector env whose `send` flag is set: every env in it was handed over
// as a `Box<dyn Env + Send>`, so using one on another thread is what its type allows. Each task
// index is run by exactly one thread per job (`StepPool::run`), so no env is reached twice.
unsafe impl Sync for SharedEnvs<'_> {}

impl<'a> SharedEnvs<'a> {
    fn new(envs: &'a mut [Box<dyn Env>]) -> Self {
        Self { envs: envs.as_mut_ptr(), len: envs.len(), _borrow: std::marker::PhantomData }
    }

    /// # Safety
    /// Only from the task of index `i` of a pool job (each index is run once).
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, i: usize) -> &mut dyn Env {
        assert!(i < self.len, "env index {i} of {}", self.len);
        // SAFETY: in bounds (checked), and the caller is the one task of index `i`.
        unsafe { &mut **self.envs.add(i) }
    }
}

/// A buffer shared with the tasks of one pool job, each task writing only the `width` values of
/// its own index.
struct SharedRows<'a, T> {
    ptr: *mut T,
    len: usize,
    width: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: each task reaches only its own disjoint rows (see `row`), and `T: Send` lets a value
// be written from another thread.
unsafe impl<T: Send> Sync for SharedRows<'_, T> {}

impl<'a, T> SharedRows<'a, T> {
    fn new(values: &'a mut [T], width: usize) -> Self {
        let len = values.len();
        Self { ptr: values.as_mut_ptr(), len, width, _borrow: std::marker::PhantomData }
    }

    /// # Safety
    /// Only from the task of index `i` of a pool job (each index is run once).
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, i: usize) -> &mut [T] {
        assert!((i + 1) * self.width <= self.len, "row {i} of {} values", self.len);
        // SAFETY: in bounds (checked); rows of different indices do not overlap, and the caller
        // is the one task of index `i`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.width), self.width) }
    }
}

/// Whether envs like `env` may be stepped on several threads as `threads` asks (`send`: they
/// were made as `Box<dyn Env + Send>`): an error saying why not, naming the env. Envs that are not
/// known to be `Send` may not move to another thread, and envs that run Python code would only
/// take turns at its interpreter lock.
pub fn check_threadable(env: &dyn Env, send: bool, threads: EnvThreads) -> Result<(), EnvError> {
    let id = env.id();
    let message = if !send {
        format!(
            "env_threads = {threads} steps envs on several threads, but these envs are not \
             known to be Send: they were made as Box<dyn Env> (a factory or registry entry \
             for envs that are not Send). Make them as Box<dyn Env + Send> (register the env \
             with Registry::with, or wrap a factory in SendFactory), or set env_threads = 1"
        )
    } else if env.runs_python() {
        format!(
            "env_threads = {threads}: {id} runs Python code, and threads would take turns \
             at one interpreter lock; Gymnasium envs run in parallel in worker processes \
             instead (env_workers), or set env_threads = 1"
        )
    } else {
        return Ok(());
    };
    Err(EnvError::Other { env: id.to_owned(), message })
}

/// The error of the lowest of `indices` (increasing) whose task failed, tagged with its index;
/// takes every error of those tasks out of `errors`.
fn first_task_error(
    errors: &mut [Option<EnvError>],
    indices: impl Iterator<Item = usize>,
) -> Result<(), EnvError> {
    let mut first = None;
    for i in indices {
        if let Some(e) = errors[i].take() {
            first.get_or_insert(e.in_vec_env(i));
        }
    }
    first.map_or(Ok(()), Err)
}

/// The action of env `i` in `actions` (shape already checked).
#[inline]
fn action_at<'a>(actions: VecActions<'a>, i: usize, act_dim: usize) -> Action<'a> {
    match actions {
        VecActions::Discrete(a) => Action::Discrete(a[i]),
        VecActions::Continuous(a) => Action::Continuous(&a[i * act_dim..(i + 1) * act_dim]),
        VecActions::MultiDiscrete(a) => Action::MultiDiscrete(&a[i * act_dim..(i + 1) * act_dim]),
        VecActions::MultiBinary(a) => Action::MultiBinary(&a[i * act_dim..(i + 1) * act_dim]),
    }
}

/// Resets `env` (continuing its random stream) into `row`, after the fast checks on the first
/// observation (length, finiteness). The error is the env's own, not yet tagged with its index.
#[inline]
fn autoreset_into(env: &mut dyn Env, space: &Space, row: &mut [f32]) -> Result<(), EnvError> {
    let first = env.reset(None)?;
    if first.len() != row.len() || !all_finite(&first) {
        return Err(invalid_observation(env, space, &first, Origin::Reset));
    }
    row.copy_from_slice(&first);
    Ok(())
}

/// Resets `env` with `seed` into `row`, with the detailed checks of a first observation.
fn seeded_reset_into(
    env: &mut dyn Env,
    space: &Space,
    seed: Option<u64>,
    row: &mut [f32],
) -> Result<(), EnvError> {
    let obs = env.reset(seed)?;
    check_observation(env.id(), space, &obs, Origin::Reset)?;
    row.copy_from_slice(&obs);
    Ok(())
}

impl std::fmt::Debug for VecEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecEnv")
            .field("id", &self.id)
            .field("observation_space", &self.observation_space)
            .field("action_space", &self.action_space)
            .field("ready", &self.ready)
            .field("normalization", &self.normalization.as_ref().map(|n| (&n.rms, n.clip)))
            .finish_non_exhaustive()
    }
}

impl VecEnv {
    /// All envs must have identical spaces (error names the first mismatch). The envs are
    /// stepped on the calling thread: [`VecEnv::set_threads`] refuses more than one, as nothing
    /// says they may move between threads; [`VecEnv::new_send`] takes envs that may.
    pub fn new(envs: Vec<Box<dyn Env>>) -> Result<Self, EnvError> {
        let Some(first) = envs.first() else {
            return Err(EnvError::Other {
                env: "VecEnv".to_owned(),
                message: "a vector env needs at least one environment".to_owned(),
            });
        };
        let observation_space = first.observation_space().clone();
        let action_space = first.action_space().clone();
        for (i, env) in envs.iter().enumerate().skip(1) {
            for (what, theirs, ours) in [
                ("observation", env.observation_space(), &observation_space),
                ("action", env.action_space(), &action_space),
            ] {
                if theirs != ours {
                    return Err(EnvError::Other {
                        env: "VecEnv".to_owned(),
                        message: format!(
                            "env {i} ({}) has {what} space {theirs} but env 0 ({}) has {ours}",
                            env.id(),
                            first.id()
                        ),
                    });
                }
            }
        }
        let n = envs.len();
        let obs_dim = observation_space.flat_dim();
        if obs_dim == 0 {
            return Err(EnvError::Other {
                env: "VecEnv".to_owned(),
                message: format!(
                    "{} has the empty observation space {observation_space}",
                    first.id()
                ),
            });
        }
        if let (Space::MultiDiscrete(_) | Space::MultiBinary(_), Some(problem)) =
            (&action_space, action_space.problem())
        {
            return Err(EnvError::Other {
                env: "VecEnv".to_owned(),
                message: format!("{} has an unusable action space: {problem}", first.id()),
            });
        }
        let extras = Extras::of(&envs)?;
        let (mask_len, k) = (extras.mask_len, extras.info_keys.len());
        let id = format!("VecEnv[{} x {n}]", first.id());
        let python = envs.iter().any(|env| env.runs_python());
        Ok(Self {
            id,
            obs_dim,
            act_dim: action_space.flat_dim(),
            observation_space,
            action_space,
            out: VecStep {
                obs: vec![0.0; n * obs_dim],
                next_obs: vec![0.0; n * obs_dim],
                rewards: vec![0.0; n],
                terminated: vec![false; n],
                truncated: vec![false; n],
                episodes: Vec::with_capacity(n),
                action_masks: vec![true; n * mask_len],
                infos: vec![f64::NAN; n * k],
                episode_infos: Vec::with_capacity(n * k),
            },
            episode_returns: vec![0.0; n],
            episode_lengths: vec![0; n],
            ready: false,
            normalization: None,
            python,
            send: false,
            pool: None,
            threads_setting: EnvThreads::default(),
            auto_probe: None,
            auto_measured: None,
            infos: vec![StepInfo { reward: 0.0, terminated: false, truncated: false }; n],
            errors: vec![None; n],
            remote: None,
            extras,
            info_totals: vec![InfoTotals::default(); n * k],
            envs,
        })
    }

    /// A vector env of envs stepped elsewhere by `remote`; `stand_ins` name them and describe
    /// their spaces (one per env).
    #[cfg(all(feature = "gymnasium", unix))]
    pub(crate) fn new_remote(
        stand_ins: Vec<Box<dyn Env + Send>>,
        remote: Box<dyn RemoteEnvs>,
    ) -> Result<Self, EnvError> {
        // Stand-ins and remote envs are `Send`: the vector env may move to another thread
        // (`into_send`); `set_threads` refuses threads for remote envs on its own.
        let mut vec = Self::new_send(stand_ins)?;
        let n = vec.envs.len();
        vec.remote = Some(Remote {
            envs: remote,
            reset_obs: vec![0.0; n * vec.obs_dim],
            reset_errors: vec![None; n],
        });
        // Nothing runs in this process's interpreter.
        vec.python = false;
        Ok(vec)
    }

    /// Whether the envs step in other processes (the Gymnasium bridge's workers).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The worker processes stepping the envs (`0`: they step in this process).
    pub fn workers(&self) -> usize {
        self.remote.as_ref().map_or(0, |r| r.envs.workers())
    }

    /// [`VecEnv::new`] for envs that may be stepped on other threads ([`VecEnv::set_threads`]).
    /// Starts on one thread.
    pub fn new_send(envs: Vec<Box<dyn Env + Send>>) -> Result<Self, EnvError> {
        let envs = envs.into_iter().map(|env| env as Box<dyn Env>).collect();
        let mut vec = Self::new(envs)?;
        vec.send = true;
        Ok(vec)
    }

    /// `n` envs from [`MakeEnv::make_send`] (an env that is not `Send` is an error saying so)
    /// stepped on `threads` threads: a vector env that may move to another thread
    /// ([`VecEnv::into_send`]).
    pub fn make_send<M: MakeEnv + ?Sized>(
        make: &M,
        n: usize,
        threads: EnvThreads,
    ) -> Result<Self, EnvError> {
        let mut vec = Self::new_send((0..n).map(|_| make.make_send()).collect::<Result<_, _>>()?)?;
        vec.set_threads(threads)?;
        Ok(vec)
    }

    /// `n` envs from `make` stepped on `threads` threads: [`MakeEnv::make_send`] when the setting
    /// may use more than one thread (an env that is not `Send` is then an error saying so),
    /// [`MakeEnv::make`] otherwise.
    pub fn make<M: MakeEnv + ?Sized>(
        make: &M,
        n: usize,
        threads: EnvThreads,
    ) -> Result<Self, EnvError> {
        let mut vec = if threads == EnvThreads::Count(1) {
            Self::new((0..n).map(|_| make.make()).collect::<Result<_, _>>()?)?
        } else {
            Self::new_send((0..n).map(|_| make.make_send()).collect::<Result<_, _>>()?)?
        };
        vec.set_threads(threads)?;
        Ok(vec)
    }

    /// Steps the envs on this many threads from the next `step` or `reset` on (see
    /// [`EnvThreads`]; the results do not depend on it). More than one thread needs envs given
    /// as `Send` ([`VecEnv::new_send`]) that run no Python code (their steps would only take
    /// turns at the interpreter lock): otherwise an error says why and nothing changes.
    pub fn set_threads(&mut self, threads: EnvThreads) -> Result<(), EnvError> {
        let n = self.envs.len();
        let wanted = threads.resolve(n);
        if threads != EnvThreads::Auto && wanted > 1 {
            if self.remote.is_some() {
                return Err(EnvError::Other {
                    env: self.id.clone(),
                    message: format!(
                        "env_threads = {threads}: these envs step in worker processes \
                         (env_workers), which run them in parallel already; set env_threads = 1"
                    ),
                });
            }
            self.check_threadable(threads)?;
        }
        if wanted > MAX_TASKS.min(u32::MAX as usize) || n > MAX_TASKS {
            return Err(EnvError::Other {
                env: self.id.clone(),
                message: format!("at most {MAX_TASKS} envs can be stepped on threads"),
            });
        }
        self.threads_setting = threads;
        self.auto_probe = (threads == EnvThreads::Auto).then(AutoProbe::default);
        self.auto_measured = None;
        self.start_threads(wanted)
    }

    /// Why this vector env cannot step on `threads` threads, if it cannot.
    fn check_threadable(&self, threads: EnvThreads) -> Result<(), EnvError> {
        match self.envs.first() {
            Some(env) => check_threadable(&**env, self.send, threads),
            None => Ok(()),
        }
    }

    /// Replaces the pool by one of `threads` threads (none for one).
    fn start_threads(&mut self, threads: usize) -> Result<(), EnvError> {
        if self.threads() == threads {
            return Ok(());
        }
        self.pool = None;
        if threads > 1 {
            let pool = StepPool::new(threads, "rlpg-env").map_err(|e| EnvError::Other {
                env: self.id.clone(),
                message: format!("cannot start {threads} threads to step the envs: {e}"),
            })?;
            self.pool = Some(pool);
        }
        Ok(())
    }

    /// The threads stepping the envs now, the caller's included.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, StepPool::threads)
    }

    /// What [`VecEnv::set_threads`] was last asked for (one thread by default).
    pub fn threads_setting(&self) -> EnvThreads {
        self.threads_setting
    }

    /// With [`EnvThreads::Auto`]: counts a step that took `elapsed` and, once enough are timed,
    /// decides.
    fn probe_step_cost(&mut self, elapsed: Duration) {
        let threads = EnvThreads::Count(0).resolve(self.envs.len());
        let current = self.threads();
        let Some(probe) = &mut self.auto_probe else { return };
        let Some(mean) = probe.time(elapsed) else { return };
        let one_thread = probe.one_thread;
        let threadable = self.remote.is_none() && self.check_threadable(EnvThreads::Auto).is_ok();
        let probe = self.auto_probe.get_or_insert_default();
        match one_thread {
            // One thread measured: try threads if the step is costly enough.
            None if mean >= EnvThreads::AUTO_MIN_STEP && threads > 1 && threadable => {
                *probe = AutoProbe { one_thread: Some(mean), ..AutoProbe::default() };
                if self.start_threads(threads).is_err() {
                    // A pool that cannot start leaves the envs on one thread, still correct.
                    self.auto_probe = None;
                }
            }
            None => {
                self.auto_probe = None;
                self.auto_measured = Some((mean, None));
            }
            Some(one) => {
                let keep = EnvThreads::auto_choice(one, Some((current, mean)));
                self.auto_probe = None;
                self.auto_measured = Some((one, Some((current, mean))));
                // Back to one thread cannot fail.
                let _ = self.start_threads(keep);
            }
        }
    }

    /// What [`EnvThreads::Auto`] measured, once it decided: the mean time of a step of all envs
    /// on one thread and, if it tried them, the thread count it tried and its mean step time.
    pub fn auto_measurement(&self) -> Option<(Duration, Option<(usize, Duration)>)> {
        self.auto_measured
    }

    /// Number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// `VecEnv[<env id> x <n>]`, the name its errors carry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The observation-normalisation clip, if normalisation is on.
    pub fn obs_clip(&self) -> Option<f32> {
        self.normalization.as_ref().map(|n| n.clip)
    }

    /// The envs, for an [`crate::AsyncVecEnv`]: only envs given as `Send` that run no Python
    /// code in this process may step on its threads (an error says why not).
    pub(crate) fn into_send_envs(mut self) -> Result<Vec<Box<dyn Env>>, EnvError> {
        if self.remote.is_some() {
            return Err(EnvError::Other {
                env: self.id.clone(),
                message: "asynchronous batches step envs of this process on threads; these envs \
                          step in worker processes (env_workers)"
                    .to_owned(),
            });
        }
        if let Some(env) = self.envs.first() {
            check_threadable(&**env, self.send, EnvThreads::Count(2)).map_err(|e| {
                EnvError::Other { env: env.id().to_owned(), message: format!("async_batch: {e}") }
            })?;
        }
        // Stops the pool first: its threads never touch the envs between jobs anyway.
        self.pool = None;
        Ok(std::mem::take(&mut self.envs))
    }

    /// This vector env as one that may move to another thread (the trainer steps it beside the
    /// learner, `act_beside_learning`): only envs given as `Send` ([`VecEnv::new_send`],
    /// [`VecEnv::make_send`], the Gymnasium bridge's worker processes) may; otherwise an error
    /// says why, naming the env and `what` asked for it.
    pub fn into_send(self, what: &str) -> Result<SendVecEnv, EnvError> {
        if !self.send {
            return Err(EnvError::Other {
                env: self.id.clone(),
                message: format!(
                    "{what} steps the envs on a thread of their own, but these envs are not \
                     known to be Send: they were made as Box<dyn Env> (a factory or registry \
                     entry for envs that are not Send). Make them as Box<dyn Env + Send> \
                     (register the env with Registry::with, or wrap a factory in SendFactory)"
                ),
            });
        }
        Ok(SendVecEnv(self))
    }

    /// The observation space shared by all envs.
    pub fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    /// The action space shared by all envs.
    pub fn action_space(&self) -> &Space {
        &self.action_space
    }

    /// Length of one observation row.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// The environment at `index`, if there is one.
    pub fn env(&self, index: usize) -> Option<&dyn Env> {
        self.envs.get(index).map(|e| &**e as &dyn Env)
    }

    /// `[n * obs_dim]` the observations to act on next (normalised if normalisation is on).
    pub fn obs(&self) -> &[f32] {
        &self.out.obs
    }

    /// Resets all; env i gets seed + i (None: continue streams). Returns [n * obs_dim].
    pub fn reset(&mut self, seed: Option<u64>) -> Result<&[f32], EnvError> {
        with_interpreter(self.python, || self.reset_all(seed))?;
        Ok(&self.out.obs)
    }

    fn reset_all(&mut self, seed: Option<u64>) -> Result<(), EnvError> {
        self.ready = false;
        let obs_dim = self.obs_dim;
        let seed_of = |i: usize| seed.map(|s| s.wrapping_add(i as u64));
        if let Some(remote) = &mut self.remote {
            remote.envs.reset(
                seed,
                &mut self.out.obs,
                &mut self.out.action_masks,
                &mut self.errors,
            )?;
            first_task_error(&mut self.errors, 0..self.envs.len())?;
            // The same checks as for envs in this process.
            for (i, env) in self.envs.iter().enumerate() {
                let row = &self.out.obs[i * obs_dim..(i + 1) * obs_dim];
                check_observation(env.id(), &self.observation_space, row, Origin::Reset)
                    .map_err(|e| e.in_vec_env(i))?;
            }
        } else if let Some(pool) = &mut self.pool {
            let (envs, space) = (SharedEnvs::new(&mut self.envs), &self.observation_space);
            let rows = SharedRows::new(&mut self.out.obs, obs_dim);
            let errors = SharedRows::new(&mut self.errors, 1);
            pool.run(envs.len, &|i| {
                // SAFETY: this is the task of index `i`.
                let (env, row, error) = unsafe { (envs.get(i), rows.row(i), errors.row(i)) };
                error[0] = seeded_reset_into(env, space, seed_of(i), row).err();
            });
            first_task_error(&mut self.errors, 0..self.envs.len())?;
        } else {
            for (i, env) in self.envs.iter_mut().enumerate() {
                let row = &mut self.out.obs[i * obs_dim..(i + 1) * obs_dim];
                seeded_reset_into(&mut **env, &self.observation_space, seed_of(i), row)
                    .map_err(|e| e.in_vec_env(i))?;
            }
        }
        self.episode_lengths.fill(0);
        self.gather_all_masks()?;
        self.out.next_obs.copy_from_slice(&self.out.obs);
        self.out.rewards.fill(0.0);
        self.out.terminated.fill(false);
        self.out.truncated.fill(false);
        self.out.episodes.clear();
        self.out.infos.fill(f64::NAN);
        self.out.episode_infos.clear();
        self.info_totals.fill(InfoTotals::default());
        self.episode_returns.fill(0.0);
        self.normalize_outputs();
        self.ready = true;
        Ok(())
    }

    /// Asks every env for the mask of its current state (after a reset or a restore, where
    /// `episode_lengths` say how far each episode is) and checks them.
    fn gather_all_masks(&mut self) -> Result<(), EnvError> {
        let m = self.extras.mask_len;
        if m == 0 {
            return Ok(());
        }
        // Envs in worker processes sent their masks with their observations.
        if self.remote.is_none() {
            for (i, (env, mask)) in
                self.envs.iter().zip(self.out.action_masks.chunks_exact_mut(m)).enumerate()
            {
                gather_after_reset(&**env, mask).map_err(|e| e.in_vec_env(i))?;
            }
        }
        let lengths = &self.episode_lengths;
        check_masks(&self.envs, &self.action_space, &self.out.action_masks, m, |i| {
            if lengths[i] == 0 { Origin::Reset } else { Origin::Step(lengths[i]) }
        })
    }

    /// The number of flags of each env's action mask (0 when the envs declare no masks).
    pub fn mask_len(&self) -> usize {
        self.extras.mask_len
    }

    /// `[n * mask_len]` which actions the state of each `obs` row allows (see
    /// [`VecStep::action_masks`]), or `None` when the envs declare no masks.
    pub fn action_masks(&self) -> Option<&[bool]> {
        (self.extras.mask_len > 0).then_some(&self.out.action_masks[..])
    }

    /// The infos each step reports ([`Env::info_keys`] of the envs), in the order of
    /// [`VecStep::infos`] and [`VecStep::episode_infos`].
    pub fn info_keys(&self) -> &[InfoKey] {
        &self.extras.info_keys
    }

    /// Steps all envs in lockstep with automatic reset (see [`VecStep`] for the convention).
    pub fn step(&mut self, actions: VecActions<'_>) -> Result<&VecStep, EnvError> {
        if self.auto_probe.is_some() {
            let start = Instant::now();
            with_interpreter(self.python, || self.step_all(actions))?;
            self.probe_step_cost(start.elapsed());
        } else {
            with_interpreter(self.python, || self.step_all(actions))?;
        }
        Ok(&self.out)
    }

    fn step_all(&mut self, actions: VecActions<'_>) -> Result<(), EnvError> {
        if !self.ready {
            return Err(EnvError::NotReset { env: self.id.clone() });
        }
        self.check_actions_shape(actions)?;
        let act_dim = self.act_dim;
        check_actions_allowed(
            &self.envs,
            &self.action_space,
            &self.out.action_masks,
            self.extras.mask_len,
            &self.episode_lengths,
            (0..self.envs.len()).map(|i| action_at(actions, i, act_dim)),
        )?;
        // Set again only once every env has stepped: an error return leaves it false, so the
        // envs, now out of lockstep, must be reset before the next step.
        self.ready = false;
        // The loop is compiled once per kind of action and observation size up to 8 (every
        // size an `Observation` holds inline), so that choosing the action is not a branch per
        // env and the rows of `next_obs` are at constant offsets.
        macro_rules! dispatch {
            ($action:expr) => {
                match self.obs_dim {
                    1 => self.step_envs::<1>($action),
                    2 => self.step_envs::<2>($action),
                    3 => self.step_envs::<3>($action),
                    4 => self.step_envs::<4>($action),
                    5 => self.step_envs::<5>($action),
                    6 => self.step_envs::<6>($action),
                    7 => self.step_envs::<7>($action),
                    8 => self.step_envs::<8>($action),
                    _ => self.step_envs::<0>($action),
                }
            };
        }
        // `check_actions_shape` made both lengths exact: one action per env.
        let (act_dim, n) = (self.act_dim, self.envs.len());
        if self.pool.is_some() || self.remote.is_some() {
            self.step_envs_elsewhere(actions)?;
            self.finish_step()?;
            if self.normalization.is_some() {
                self.normalize_outputs();
            }
            self.ready = true;
            return Ok(());
        }
        match actions {
            VecActions::Discrete(a) => dispatch!(a.iter().map(|&a| Action::Discrete(a))),
            // `chunks_exact` yields the rows without a bounds check each, but needs rows of at
            // least one value: an action space may have no dimensions (a rare case, compiled
            // once for any observation size).
            VecActions::Continuous(a) if act_dim > 0 => {
                dispatch!(a.chunks_exact(act_dim).map(Action::Continuous))
            }
            VecActions::Continuous(_) => {
                self.step_envs::<0>(std::iter::repeat_n(Action::Continuous(&[]), n))
            }
            // `VecEnv::new` refused these spaces without components, so `act_dim > 0`.
            VecActions::MultiDiscrete(a) => {
                dispatch!(a.chunks_exact(act_dim).map(Action::MultiDiscrete))
            }
            VecActions::MultiBinary(a) => {
                dispatch!(a.chunks_exact(act_dim).map(Action::MultiBinary))
            }
        }?;
        self.finish_step()?;
        if self.normalization.is_some() {
            self.normalize_outputs();
        }
        self.ready = true;
        Ok(())
    }

    /// Phase 1 of [`VecEnv::step`]: steps every env, each writing its observation straight into
    /// its `next_obs` row, and copies the rest of what it returned into the batch buffers
    /// (reward, flags), for observations of `D` values (`D = 0`: any size, read from
    /// `self.obs_dim`). Only a sub-env's error is checked here (the trait's default `step_into`
    /// reports an observation of the wrong length as one); the values are checked in one pass
    /// over the whole batch by [`VecEnv::finish_step`].
    #[inline(always)]
    fn step_envs<'a, const D: usize>(
        &mut self,
        actions: impl Iterator<Item = Action<'a>>,
    ) -> Result<(), EnvError> {
        let obs_dim = if D == 0 { self.obs_dim } else { D };
        let n = self.envs.len();
        let out = &mut self.out;
        out.episodes.clear();
        // Per-env slices of exactly `n` entries (rows): lets the compiler drop most bounds
        // checks of the hot loop.
        let (rewards, terminated, truncated) =
            (&mut out.rewards[..n], &mut out.terminated[..n], &mut out.truncated[..n]);
        let (returns, lengths) = (&mut self.episode_returns[..n], &mut self.episode_lengths[..n]);
        let all_next = &mut out.next_obs[..n * obs_dim];
        let (m, k) = (self.extras.mask_len, self.extras.info_keys.len());
        let (masks, infos) = (&mut out.action_masks, &mut out.infos);
        for (i, (env, action)) in self.envs.iter_mut().zip(actions).enumerate() {
            // The env writes its observation straight into its row: no `Step` to move, copy or
            // drop.
            let row = &mut all_next[i * obs_dim..(i + 1) * obs_dim];
            let stepped = env.step_into(action, row).and_then(|step| {
                let (mask, info) = (&mut masks[i * m..(i + 1) * m], &mut infos[i * k..(i + 1) * k]);
                gather_after_step(&**env, step.done(), mask, info).map(|()| step)
            });
            let step = match stepped {
                Ok(step) => step,
                Err(e) => {
                    let (envs, space) = (&self.envs[..i], &self.observation_space);
                    return Err(step_failure(envs, space, out, &self.episode_lengths, e));
                }
            };
            rewards[i] = step.reward;
            terminated[i] = step.terminated;
            truncated[i] = step.truncated;
            // `lengths[i]` now numbers the step just taken, for error messages; the reward is
            // added to the running return only by `finish_step`, once every reward has passed
            // the checks, so that a rejected one (NaN, infinite) never reaches the return a
            // checkpoint saves.
            lengths[i] += 1;
            // `|`, not `||`: one test instead of two branches.
            if step.terminated | step.truncated {
                let ret = returns[i] + step.reward;
                out.episodes.push(EpisodeRecord { env: i, ret, length: lengths[i] });
            }
        }
        Ok(())
    }

    /// Phase 1 of [`VecEnv::step`] on the pool or the remote envs: each env steps on whichever
    /// thread claims it (or in its worker process), writing its `next_obs` row and its result;
    /// then the results are read in env order, as [`VecEnv::step_envs`] reads them, so that the
    /// batch is the same as on one thread. When envs fail, the error of the lowest index is
    /// returned, as on one thread (where the envs after it do not step at all; either way the
    /// envs must be reset).
    fn step_envs_elsewhere(&mut self, actions: VecActions<'_>) -> Result<(), EnvError> {
        let (n, obs_dim, act_dim) = (self.envs.len(), self.obs_dim, self.act_dim);
        if let Some(remote) = &mut self.remote {
            remote.envs.step(
                actions,
                &self.episode_lengths,
                &mut self.out.next_obs,
                &mut remote.reset_obs,
                &mut self.infos,
                (&mut self.out.action_masks, &mut self.out.infos),
                &mut self.errors,
                &mut remote.reset_errors,
            )?;
        } else if let Some(pool) = &mut self.pool {
            let envs = SharedEnvs::new(&mut self.envs);
            let rows = SharedRows::new(&mut self.out.next_obs, obs_dim);
            let infos = SharedRows::new(&mut self.infos, 1);
            let errors = SharedRows::new(&mut self.errors, 1);
            let masks = SharedRows::new(&mut self.out.action_masks, self.extras.mask_len);
            let env_infos = SharedRows::new(&mut self.out.infos, self.extras.info_keys.len());
            pool.run(n, &|i| {
                // SAFETY: this is the task of index `i`.
                let (env, row) = unsafe { (envs.get(i), rows.row(i)) };
                let stepped = env.step_into(action_at(actions, i, act_dim), row).and_then(|info| {
                    // SAFETY: as above.
                    let (mask, values) = unsafe { (masks.row(i), env_infos.row(i)) };
                    gather_after_step(env, info.done(), mask, values).map(|()| info)
                });
                match stepped {
                    // SAFETY: as above.
                    Ok(info) => unsafe { infos.row(i)[0] = info },
                    // SAFETY: as above.
                    Err(e) => unsafe { errors.row(i)[0] = Some(e) },
                }
            });
        } else {
            return Err(internal_error(&self.id));
        }
        let out = &mut self.out;
        out.episodes.clear();
        for i in 0..n {
            if let Some(e) = self.errors[i].take() {
                self.errors.iter_mut().for_each(|e| *e = None);
                let (envs, space) = (&self.envs[..i], &self.observation_space);
                return Err(step_failure(envs, space, out, &self.episode_lengths, e));
            }
            let step = self.infos[i];
            out.rewards[i] = step.reward;
            out.terminated[i] = step.terminated;
            out.truncated[i] = step.truncated;
            self.episode_lengths[i] += 1;
            if step.done() {
                let (ret, length) =
                    (self.episode_returns[i] + step.reward, self.episode_lengths[i]);
                out.episodes.push(EpisodeRecord { env: i, ret, length });
            }
        }
        Ok(())
    }

    /// Phase 2 of [`VecEnv::step`], once every env has stepped: checks all observations and
    /// rewards in one branch-free (vectorisable) pass over the contiguous `next_obs` and
    /// `rewards` buffers, walking back to name the env and value only if something is wrong;
    /// then copies `next_obs` to `obs` in one go and resets the envs whose episode ended,
    /// restarting their running sums and writing their first observations over their `obs` rows.
    fn finish_step(&mut self) -> Result<(), EnvError> {
        self.finish_step_and_reset()?;
        let (m, lengths) = (self.extras.mask_len, &self.episode_lengths);
        check_masks(&self.envs, &self.action_space, &self.out.action_masks, m, |i| {
            if lengths[i] == 0 { Origin::Reset } else { Origin::Step(lengths[i]) }
        })
    }

    /// [`VecEnv::finish_step`] but for the check of the masks: checks the outputs, adds the
    /// step's infos to the episodes' totals (handing over those of the episodes that ended),
    /// and resets the envs whose episode ended (with the masks of their first states).
    fn finish_step_and_reset(&mut self) -> Result<(), EnvError> {
        let (n, obs_dim) = (self.envs.len(), self.obs_dim);
        let out = &mut self.out;
        if !(all_finite(&out.next_obs) & all_finite_f64(&out.rewards)) {
            return Err(first_error(
                &self.envs,
                &self.observation_space,
                &out.next_obs,
                &out.rewards,
                &self.episode_lengths,
                internal_error(&self.id),
            ));
        }
        let k = self.extras.info_keys.len();
        out.episode_infos.clear();
        if k > 0 {
            let (keys, totals) = (&self.extras.info_keys, &mut self.info_totals);
            add_infos(&self.envs, keys, &out.infos, totals, &self.episode_lengths)?;
            for episode in &out.episodes {
                let row = &mut totals[episode.env * k..(episode.env + 1) * k];
                out.episode_infos.extend_from_slice(row);
                row.fill(InfoTotals::default());
            }
        }
        let (returns, lengths) = (&mut self.episode_returns[..n], &mut self.episode_lengths[..n]);
        for (ret, &reward) in returns.iter_mut().zip(&out.rewards[..n]) {
            *ret += reward;
        }
        out.obs.copy_from_slice(&out.next_obs);
        for episode in &out.episodes {
            returns[episode.env] = 0.0;
            lengths[episode.env] = 0;
        }
        if let Some(remote) = &mut self.remote {
            // The worker processes reset the envs already: check and take their observations.
            let ended = out.episodes.iter().map(|e| e.env);
            first_task_error(&mut remote.reset_errors, ended)?;
            for episode in &out.episodes {
                let (i, env) = (episode.env, &self.envs[episode.env]);
                let first = &remote.reset_obs[i * obs_dim..(i + 1) * obs_dim];
                if !all_finite(first) {
                    let space = &self.observation_space;
                    let err = invalid_observation(&**env, space, first, Origin::Reset);
                    return Err(err.in_vec_env(i));
                }
                out.obs[i * obs_dim..(i + 1) * obs_dim].copy_from_slice(first);
            }
            return Ok(());
        }
        match &mut self.pool {
            // Resets on the pool when several are due (one is not worth the hand-over).
            Some(pool) if out.episodes.len() > 1 => {
                let (envs, space) = (SharedEnvs::new(&mut self.envs), &self.observation_space);
                let rows = SharedRows::new(&mut out.obs, obs_dim);
                let errors = SharedRows::new(&mut self.errors, 1);
                let masks = SharedRows::new(&mut out.action_masks, self.extras.mask_len);
                let episodes = &out.episodes;
                pool.run(episodes.len(), &|k| {
                    let i = episodes[k].env;
                    // SAFETY: the episodes name distinct envs, so task `k` alone reaches env `i`.
                    let (env, row, error) = unsafe { (envs.get(i), rows.row(i), errors.row(i)) };
                    // SAFETY: as above.
                    let mask = unsafe { masks.row(i) };
                    error[0] = autoreset_into(env, space, row)
                        .and_then(|()| gather_after_reset(env, mask))
                        .err();
                });
                first_task_error(&mut self.errors, out.episodes.iter().map(|e| e.env))
            }
            _ => {
                let m = self.extras.mask_len;
                for episode in &out.episodes {
                    let (i, env) = (episode.env, &mut self.envs[episode.env]);
                    let row = &mut out.obs[i * obs_dim..(i + 1) * obs_dim];
                    autoreset_into(&mut **env, &self.observation_space, row)
                        .and_then(|()| {
                            gather_after_reset(&**env, &mut out.action_masks[i * m..(i + 1) * m])
                        })
                        .map_err(|e| e.in_vec_env(i))?;
                }
                Ok(())
            }
        }
    }

    fn check_actions_shape(&self, actions: VecActions<'_>) -> Result<(), EnvError> {
        let (n, d) = (self.num_envs(), self.act_dim);
        let values = |len: usize, what: &str| {
            (len != n * d).then(|| {
                format!("{len} {what} given for {n} envs with {d} per action (need {})", n * d)
            })
        };
        let problem = match (actions, &self.action_space) {
            (VecActions::Discrete(a), Space::Discrete(_)) => {
                (a.len() != n).then(|| format!("{} discrete actions given for {n} envs", a.len()))
            }
            (VecActions::Continuous(a), Space::Box(_)) => values(a.len(), "action values"),
            (VecActions::MultiDiscrete(a), Space::MultiDiscrete(_)) => {
                values(a.len(), "multi-discrete components")
            }
            (VecActions::MultiBinary(a), Space::MultiBinary(_)) => {
                values(a.len(), "multi-binary values")
            }
            (actions, space) => {
                let kind = match actions {
                    VecActions::Discrete(_) => "discrete",
                    VecActions::Continuous(_) => "continuous",
                    VecActions::MultiDiscrete(_) => "multi-discrete",
                    VecActions::MultiBinary(_) => "multi-binary",
                };
                Some(format!("{kind} actions given but the action space is {space}"))
            }
        };
        match problem {
            None => Ok(()),
            Some(message) => Err(EnvError::Other { env: self.id.clone(), message }),
        }
    }

    /// Turns on running observation normalisation shared by all envs (Stable-Baselines3's
    /// `VecNormalize` with `epsilon = 1e-8`): from the next `reset`/`step` on, `obs` and
    /// `next_obs` are `clip((x - mean) / sqrt(var + 1e-8), -clip, clip)`. While training (the
    /// default), the statistics are first updated with the new `obs` rows of every step (the
    /// observations the agent acts on, as `VecNormalize` does). If normalisation is already on,
    /// only `clip` changes and the statistics are kept.
    ///
    /// # Panics
    /// If `clip` is not positive (a programming error).
    pub fn enable_obs_normalization(&mut self, clip: f32) {
        assert!(clip > 0.0, "clip {clip} must be positive");
        match &mut self.normalization {
            Some(norm) => norm.clip = clip,
            None => {
                self.normalization = Some(ObsNormalization {
                    rms: RunningMeanStd::new(self.obs_dim),
                    clip,
                    training: true,
                    raw_obs: self.out.obs.clone(),
                    raw_next_obs: self.out.next_obs.clone(),
                })
            }
        }
    }

    /// Turns observation normalisation off (statistics are dropped).
    pub fn disable_obs_normalization(&mut self) {
        self.normalization = None;
    }

    /// The shared observation statistics, if normalisation is on (for saving them).
    pub fn obs_rms(&self) -> Option<&RunningMeanStd> {
        self.normalization.as_ref().map(|n| &n.rms)
    }

    /// Replaces the observation statistics (for resuming or evaluating a saved agent). Fails if
    /// normalisation is off or the dimension is not `obs_dim`.
    pub fn set_obs_rms(&mut self, rms: RunningMeanStd) -> Result<(), EnvError> {
        let problem = match &mut self.normalization {
            None => "observation normalisation is off; enable it before setting statistics".into(),
            Some(_) if rms.dim() != self.obs_dim => format!(
                "observation statistics have dimension {} but observations have {}",
                rms.dim(),
                self.obs_dim
            ),
            Some(norm) => {
                norm.rms = rms;
                return Ok(());
            }
        };
        Err(EnvError::Other { env: self.id.clone(), message: problem })
    }

    /// Turns statistics updates on (training) or off (evaluation: frozen statistics). No effect
    /// while normalisation is off.
    pub fn set_obs_normalization_training(&mut self, training: bool) {
        if let Some(norm) = &mut self.normalization {
            norm.training = training;
        }
    }

    /// Whether normalisation is on and updating its statistics.
    pub fn obs_normalization_training(&self) -> bool {
        self.normalization.as_ref().is_some_and(|n| n.training)
    }

    /// `[n * obs_dim]` the unnormalised observations to act on next (equal to
    /// [`VecEnv::obs`] while normalisation is off).
    pub fn raw_obs(&self) -> &[f32] {
        self.normalization.as_ref().map_or(&self.out.obs, |n| &n.raw_obs)
    }

    /// `[n * obs_dim]` the unnormalised `next_obs` of the last step (equal to
    /// `VecStep::next_obs` while normalisation is off).
    pub fn raw_next_obs(&self) -> &[f32] {
        self.normalization.as_ref().map_or(&self.out.next_obs, |n| &n.raw_next_obs)
    }

    /// The complete state of the vector env between two steps, for checkpoints: each env's
    /// [`Env::snapshot`] (`None` for an env that cannot take one), the observations to act on
    /// next, the returns and lengths of the episodes in progress, and the normalisation
    /// statistics.
    pub fn snapshot(&self) -> VecEnvSnapshot {
        VecEnvSnapshot {
            envs: self.envs.iter().map(|e| e.snapshot().ok()).collect(),
            obs: self.out.obs.clone(),
            next_obs: self.out.next_obs.clone(),
            episode_returns: self.episode_returns.clone(),
            episode_lengths: self.episode_lengths.clone(),
            ready: self.ready,
            info_totals: self.info_totals.clone(),
            normalization: self.normalization.as_ref().map(|n| NormalizationSnapshot {
                rms: n.rms.clone(),
                clip: n.clip,
                training: n.training,
                raw_obs: n.raw_obs.clone(),
                raw_next_obs: n.raw_next_obs.clone(),
            }),
        }
    }

    /// Puts the vector env back in the state of `snapshot`, taken from a vector env of the same
    /// environments with the same normalisation setting. Fails with
    /// [`EnvError::SnapshotUnsupported`] (changing nothing) when the snapshot lacks some env's
    /// state; the caller may then [`VecEnv::reset`] instead. After any other error the vector
    /// env needs a `reset`.
    pub fn restore(&mut self, snapshot: &VecEnvSnapshot) -> Result<(), EnvError> {
        let (n, obs_dim) = (self.envs.len(), self.obs_dim);
        let mismatch = |message: String| EnvError::Other { env: self.id.clone(), message };
        if snapshot.envs.len() != n
            || snapshot.obs.len() != n * obs_dim
            || snapshot.next_obs.len() != n * obs_dim
            || snapshot.episode_returns.len() != n
            || snapshot.episode_lengths.len() != n
        {
            return Err(mismatch(format!(
                "the snapshot is of {} envs with {} observation values, this vector env has {n} \
                 envs of {obs_dim}",
                snapshot.envs.len(),
                snapshot.obs.len()
            )));
        }
        if snapshot.normalization.is_some() != self.normalization.is_some() {
            return Err(mismatch(
                "observation normalisation is on in only one of the snapshot and this vector env"
                    .to_owned(),
            ));
        }
        if let Some(norm) = &snapshot.normalization {
            if norm.rms.dim() != obs_dim
                || norm.raw_obs.len() != n * obs_dim
                || norm.raw_next_obs.len() != n * obs_dim
            {
                return Err(mismatch(
                    "the snapshot's normalisation state has other dimensions".into(),
                ));
            }
        }
        if snapshot.envs.iter().any(Option::is_none) {
            return Err(EnvError::SnapshotUnsupported { env: self.id.clone() });
        }
        self.ready = false;
        for (i, (env, state)) in self.envs.iter_mut().zip(&snapshot.envs).enumerate() {
            if let Some(state) = state {
                env.restore(state).map_err(|e| e.in_vec_env(i))?;
            }
        }
        self.out.obs.copy_from_slice(&snapshot.obs);
        self.out.next_obs.copy_from_slice(&snapshot.next_obs);
        self.episode_returns.copy_from_slice(&snapshot.episode_returns);
        self.episode_lengths.copy_from_slice(&snapshot.episode_lengths);
        if let (Some(norm), Some(saved)) = (&mut self.normalization, &snapshot.normalization) {
            norm.rms = saved.rms.clone();
            norm.clip = saved.clip;
            norm.training = saved.training;
            norm.raw_obs.copy_from_slice(&saved.raw_obs);
            norm.raw_next_obs.copy_from_slice(&saved.raw_next_obs);
        }
        if snapshot.info_totals.len() == self.info_totals.len() {
            self.info_totals.copy_from_slice(&snapshot.info_totals);
        } else {
            self.info_totals.fill(InfoTotals::default());
        }
        if snapshot.ready {
            // The masks are the envs' answer for their restored states.
            self.gather_all_masks()?;
        }
        self.ready = snapshot.ready;
        Ok(())
    }

    /// Replaces the raw observations in `self.out` by normalised ones, keeping the raw copies.
    fn normalize_outputs(&mut self) {
        let Some(norm) = &mut self.normalization else { return };
        norm.raw_obs.copy_from_slice(&self.out.obs);
        norm.raw_next_obs.copy_from_slice(&self.out.next_obs);
        if norm.training {
            norm.rms.update(&norm.raw_obs);
        }
        norm.rms.normalize(&norm.raw_obs, &mut self.out.obs, DEFAULT_NORM_EPSILON, norm.clip);
        norm.rms.normalize(
            &norm.raw_next_obs,
            &mut self.out.next_obs,
            DEFAULT_NORM_EPSILON,
            norm.clip,
        );
    }
}
/// A [`VecEnv`] that may move to another thread ([`VecEnv::into_send`]): the trainer steps it on
/// a thread of its own while the agent learns (`act_beside_learning`). It derefs to the vector
/// env; [`SendVecEnv::into_inner`] gives it back.
#[derive(Debug)]
pub struct SendVecEnv(VecEnv);

// SAFETY: `VecEnv` is not `Send` only because of its field `envs: Vec<Box<dyn Env>>`: every other
// field is `Send`, as `fields_besides_envs_are_send` checks at compile time (it names every field,
// so a new one must be added there too). `SendVecEnv` is made only by `VecEnv::into_send`, from a
// vector env whose `send` flag is set: each of its envs was handed over as a
// `Box<dyn Env + Send>` (`new_send`) and merely coerced to `Box<dyn Env>`, and no method of
// `VecEnv` puts an env in afterwards. Moving the whole vector env to another thread therefore
// moves only `Send` values; `SendVecEnv` is not `Sync`, so it is never shared between threads.
unsafe impl Send for SendVecEnv {}

/// Compile-time proof for `SendVecEnv`'s `Send`: every field of a `VecEnv` but `envs` is `Send`.
#[allow(dead_code)]
fn fields_besides_envs_are_send(vec: VecEnv) {
    fn send<T: Send>(_: T) {}
    let VecEnv {
        envs: _,
        id,
        observation_space,
        action_space,
        obs_dim,
        act_dim,
        out,
        episode_returns,
        episode_lengths,
        ready,
        normalization,
        python,
        send: send_flag,
        pool,
        threads_setting,
        auto_probe,
        auto_measured,
        infos,
        errors,
        remote,
        extras,
        info_totals,
    } = vec;
    send((id, observation_space, action_space, obs_dim, act_dim, out, episode_returns));
    send((episode_lengths, ready, normalization, python, send_flag, pool, threads_setting));
    send((auto_probe, auto_measured, infos, errors, remote, extras, info_totals));
}

impl SendVecEnv {
    /// The vector env.
    pub fn into_inner(self) -> VecEnv {
        self.0
    }
}

impl std::ops::Deref for SendVecEnv {
    type Target = VecEnv;
    fn deref(&self) -> &VecEnv {
        &self.0
    }
}

impl std::ops::DerefMut for SendVecEnv {
    fn deref_mut(&mut self) -> &mut VecEnv {
        &mut self.0
    }
}

/// The state of a [`VecEnv`] between two steps, from [`VecEnv::snapshot`]. Serialisable;
/// observations are stored as `f32` bit patterns so that they round-trip exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VecEnvSnapshot {
    envs: Vec<Option<EnvSnapshot>>,
    #[serde(with = "f32_bits")]
    obs: Vec<f32>,
    #[serde(with = "f32_bits")]
    next_obs: Vec<f32>,
    episode_returns: Vec<f64>,
    episode_lengths: Vec<usize>,
    ready: bool,
    /// The infos of the episodes in progress (absent from snapshots of envs without infos,
    /// and of rlpg before infos: those restore with fresh totals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    info_totals: Vec<InfoTotals>,
    normalization: Option<NormalizationSnapshot>,
}

/// The saved part of [`ObsNormalization`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct NormalizationSnapshot {
    rms: RunningMeanStd,
    clip: f32,
    training: bool,
    #[serde(with = "f32_bits")]
    raw_obs: Vec<f32>,
    #[serde(with = "f32_bits")]
    raw_next_obs: Vec<f32>,
}

impl VecEnvSnapshot {
    /// A snapshot without env states (resuming from it resets the envs) of envs whose raw
    /// observations to act on next are `obs`, with their running episode statistics and, if
    /// normalisation is on, its statistics and clip.
    pub(crate) fn without_env_states_of(
        obs: &[f32],
        episode_returns: &[f64],
        episode_lengths: &[usize],
        normalization: Option<(&RunningMeanStd, f32)>,
    ) -> Self {
        Self {
            envs: vec![None; episode_returns.len()],
            obs: obs.to_vec(),
            next_obs: obs.to_vec(),
            episode_returns: episode_returns.to_vec(),
            episode_lengths: episode_lengths.to_vec(),
            // Asynchronous envs sum no step infos: a resume starts their sums afresh.
            info_totals: Vec::new(),
            ready: true,
            normalization: normalization.map(|(rms, clip)| NormalizationSnapshot {
                rms: rms.clone(),
                clip,
                training: true,
                raw_obs: obs.to_vec(),
                raw_next_obs: obs.to_vec(),
            }),
        }
    }

    /// Number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// Whether every env's own state is in the snapshot (so that [`VecEnv::restore`] can
    /// continue exactly).
    pub fn has_env_states(&self) -> bool {
        self.envs.iter().all(Option::is_some)
    }

    /// The observation-normalisation statistics, if normalisation was on.
    pub fn obs_rms(&self) -> Option<&RunningMeanStd> {
        self.normalization.as_ref().map(|n| &n.rms)
    }

    /// The observations the agent acts on next, `[n * obs_dim]` (normalised if normalisation
    /// was on).
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// This snapshot without the envs' own states: what is still valid when the envs stopped
    /// in the middle of a step (some stepped, some not). Restoring it fails with
    /// [`EnvError::SnapshotUnsupported`], after which the caller resets the envs.
    pub fn without_env_states(mut self) -> Self {
        self.envs.iter_mut().for_each(|e| *e = None);
        self
    }
}

/// `Vec<f32>` as the `u32` bit pattern of each value: exact, NaN and infinities included.
mod f32_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(|v| v.to_bits()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Ok(Vec::<u32>::deserialize(d)?.into_iter().map(f32::from_bits).collect())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CartPole, TimeLimit};

    fn cartpoles(n: usize) -> VecEnv {
        let envs =
            (0..n).map(|_| Box::new(TimeLimit::new(CartPole::new(), 20)) as Box<dyn Env>).collect();
        VecEnv::new(envs).expect("vec env")
    }

    /// Steps `vec` `steps` times with a fixed action pattern; returns every step's output.
    fn run(vec: &mut VecEnv, steps: usize) -> Vec<VecStep> {
        (0..steps)
            .map(|t| {
                let actions: Vec<usize> = (0..vec.num_envs()).map(|i| (t + i) % 2).collect();
                vec.step(VecActions::Discrete(&actions)).expect("step").clone()
            })
            .collect()
    }

    #[test]
    fn a_restored_snapshot_replays_the_same_steps_resets_and_statistics() {
        let mut vec = cartpoles(3);
        vec.enable_obs_normalization(10.0);
        vec.reset(Some(7)).expect("reset");
        run(&mut vec, 13);
        let json = serde_json::to_string(&vec.snapshot()).expect("serialise");
        let snapshot: VecEnvSnapshot = serde_json::from_str(&json).expect("deserialise");
        assert!(snapshot.has_env_states() && snapshot.obs_rms().is_some());

        let mut copy = cartpoles(3);
        copy.enable_obs_normalization(10.0);
        copy.restore(&snapshot).expect("restore");
        assert_eq!(copy.obs(), vec.obs(), "observations to act on differ after restore");
        // 40 more steps cross several autoresets and the 20-step time limit.
        assert_eq!(run(&mut copy, 40), run(&mut vec, 40), "steps differ after restore");
        assert_eq!(copy.obs_rms(), vec.obs_rms(), "statistics differ after restore");
    }

    #[test]
    fn a_snapshot_without_env_states_is_refused_and_changes_nothing() {
        let mut vec = cartpoles(2);
        vec.reset(Some(1)).expect("reset");
        let partial = vec.snapshot().without_env_states();
        assert!(!partial.has_env_states());
        let mut other = cartpoles(2);
        other.reset(Some(2)).expect("reset");
        let before = other.obs().to_vec();
        let err = other.restore(&partial).expect_err("no env states");
        assert!(matches!(err, EnvError::SnapshotUnsupported { .. }), "{err:?}");
        assert_eq!(other.obs(), before, "a refused restore must change nothing");
        other.step(VecActions::Discrete(&[0, 1])).expect("still steppable");
        let err = cartpoles(3).restore(&vec.snapshot()).expect_err("3 envs vs 2");
        assert!(err.to_string().contains("3 envs"), "{err}");
    }
}
