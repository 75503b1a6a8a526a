//! [`VecEnv`]: several environments stepped in lockstep, with automatic reset.

use serde::{Deserialize, Serialize};

use crate::core::{Action, Env, EnvError, EnvSnapshot, Space};
use crate::running_mean_std::RunningMeanStd;
use crate::validate::{Origin, check_observation, check_reward};
use crate::wrappers::episode_statistics::EpisodeRecord;
use crate::wrappers::normalize::DEFAULT_NORM_EPSILON;

/// One action per environment, for [`VecEnv::step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VecActions<'a> {
    /// `[n]` actions of a [`Space::Discrete`] action space.
    Discrete(&'a [usize]),
    /// `[n * act_dim]` actions of a [`Space::Box`] action space, row-major (one row per env).
    Continuous(&'a [f32]),
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
    /// All envs must have identical spaces (error names the first mismatch).
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
            },
            episode_returns: vec![0.0; n],
            episode_lengths: vec![0; n],
            ready: false,
            normalization: None,
            python,
            envs,
        })
    }

    /// Number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
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
        for (i, env) in self.envs.iter_mut().enumerate() {
            let obs = env
                .reset(seed.map(|s| s.wrapping_add(i as u64)))
                .and_then(|obs| {
                    check_observation(env.id(), &self.observation_space, &obs, Origin::Reset)
                        .map(|()| obs)
                })
                .map_err(|e| e.in_vec_env(i))?;
            self.out.obs[i * obs_dim..(i + 1) * obs_dim].copy_from_slice(&obs);
        }
        self.out.next_obs.copy_from_slice(&self.out.obs);
        self.out.rewards.fill(0.0);
        self.out.terminated.fill(false);
        self.out.truncated.fill(false);
        self.out.episodes.clear();
        self.episode_returns.fill(0.0);
        self.episode_lengths.fill(0);
        self.normalize_outputs();
        self.ready = true;
        Ok(())
    }

    /// Steps all envs in lockstep with automatic reset (see [`VecStep`] for the convention).
    pub fn step(&mut self, actions: VecActions<'_>) -> Result<&VecStep, EnvError> {
        with_interpreter(self.python, || self.step_all(actions))?;
        Ok(&self.out)
    }

    fn step_all(&mut self, actions: VecActions<'_>) -> Result<(), EnvError> {
        if !self.ready {
            return Err(EnvError::NotReset { env: self.id.clone() });
        }
        self.check_actions_shape(actions)?;
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
        for (i, (env, action)) in self.envs.iter_mut().zip(actions).enumerate() {
            // The env writes its observation straight into its row: no `Step` to move, copy or
            // drop.
            let row = &mut all_next[i * obs_dim..(i + 1) * obs_dim];
            let step = match env.step_into(action, row) {
                Ok(step) => step,
                Err(e) => {
                    let err = with_step_number(e, lengths[i] + 1).in_vec_env(i);
                    return Err(first_error(
                        &self.envs[..i],
                        &self.observation_space,
                        &out.next_obs,
                        &out.rewards,
                        &self.episode_lengths,
                        err,
                    ));
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

    /// Phase 2 of [`VecEnv::step`], once every env has stepped: checks all observations and
    /// rewards in one branch-free (vectorisable) pass over the contiguous `next_obs` and
    /// `rewards` buffers, walking back to name the env and value only if something is wrong;
    /// then copies `next_obs` to `obs` in one go and resets the envs whose episode ended,
    /// restarting their running sums and writing their first observations over their `obs` rows.
    fn finish_step(&mut self) -> Result<(), EnvError> {
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
        let (returns, lengths) = (&mut self.episode_returns[..n], &mut self.episode_lengths[..n]);
        for (ret, &reward) in returns.iter_mut().zip(&out.rewards[..n]) {
            *ret += reward;
        }
        out.obs.copy_from_slice(&out.next_obs);
        for episode in &out.episodes {
            let i = episode.env;
            returns[i] = 0.0;
            lengths[i] = 0;
            let env = &mut self.envs[i];
            let first = env.reset(None).map_err(|e| e.in_vec_env(i))?;
            if first.len() != obs_dim || !all_finite(&first) {
                return Err(invalid_observation(
                    &**env,
                    &self.observation_space,
                    &first,
                    Origin::Reset,
                )
                .in_vec_env(i));
            }
            out.obs[i * obs_dim..(i + 1) * obs_dim].copy_from_slice(&first);
        }
        Ok(())
    }

    fn check_actions_shape(&self, actions: VecActions<'_>) -> Result<(), EnvError> {
        let n = self.num_envs();
        let problem = match (actions, &self.action_space) {
            (VecActions::Discrete(a), Space::Discrete(_)) if a.len() != n => {
                format!("{} discrete actions given for {n} envs", a.len())
            }
            (VecActions::Continuous(a), Space::Box(_)) if a.len() != n * self.act_dim => format!(
                "{} action values given for {n} envs with {}-dimensional actions (need {})",
                a.len(),
                self.act_dim,
                n * self.act_dim
            ),
            (VecActions::Discrete(_), Space::Discrete(_))
            | (VecActions::Continuous(_), Space::Box(_)) => return Ok(()),
            (VecActions::Discrete(_), space) => {
                format!("discrete actions given but the action space is {space}")
            }
            (VecActions::Continuous(_), space) => {
                format!("continuous actions given but the action space is {space}")
            }
        };
        Err(EnvError::Other { env: self.id.clone(), message: problem })
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
